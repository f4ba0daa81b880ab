//! The messaging service (`minute messaging`): messages with gap-free per-conversation seqs,
//! idempotent sends, edits, tombstone deletes, replies, reactions, read/delivered markers,
//! unread counts and search — and the events that tell everyone else (design.md §3-§5).
//!
//! It owns messages, seq counters, idempotency claims, reactions, markers and a replica of
//! memberships. It does not own conversations or members (the conversations service does;
//! see [`domain::membership`] for how the replica and the synchronous fallback combine) nor
//! users (`sender` is a federation reference).
//!
//! Map of the crate:
//! - [`config`]: settings (Mongo or embedded SQLite, `CONVERSATIONS_URL`, relay interval).
//! - [`api`]: the GraphQL subgraph (thin) and its DataLoaders.
//! - [`domain`]: value types ([`domain::values`]), the message model, and the operations
//!   ([`domain::service::Messaging`]) — start reading there.
//! - [`store`]: the store traits and the MongoDB / SQLite adapters.
//! - [`events`]: the outbox relay and the membership consumer.
//! - [`clients`]: the conversations service's internal membership endpoint.

pub mod api;
pub mod clients;
pub mod config;
pub mod domain;
pub mod events;
pub mod store;

use std::sync::Arc;

use minute_kit::http;
use minute_kit::infra::Infra;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::{Settings, Storage};

use crate::domain::membership::{Membership, MembershipOwner};
use crate::domain::service::Messaging;
use crate::events::Relay;
use crate::store::Stores;

/// The running service.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    relay: Relay,
    stop: CancellationToken,
}

/// Opens the configured store; for MongoDB also returns its readiness check.
pub async fn open_stores(
    storage: &Storage,
) -> anyhow::Result<(Stores, Option<Arc<dyn http::ReadinessCheck>>)> {
    Ok(match storage {
        Storage::Mongo(m) => {
            let db = minute_kit::mongo::connect(m).await?;
            let s = Arc::new(store::mongo::MongoStore::open(db.clone()).await?);
            let check: Arc<dyn http::ReadinessCheck> = Arc::new(minute_kit::mongo::MongoCheck(db));
            (
                Stores {
                    messages: s.clone(),
                    members: s,
                },
                Some(check),
            )
        }
        Storage::Embedded(path) => {
            let s = Arc::new(store::embedded::SqliteStore::open(path)?);
            (
                Stores {
                    messages: s.clone(),
                    members: s,
                },
                None,
            )
        }
    })
}

impl App {
    /// Binds the port and assembles the service on the shared infrastructure.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        let (stores, db_check) = open_stores(&settings.storage).await?;
        let mut readiness = infra.readiness.clone();
        if let Some(c) = db_check {
            readiness = readiness.with(c);
        }
        let owner = settings.conversations_url.as_ref().map(|u| {
            Arc::new(clients::ConversationsClient::new(u.clone())) as Arc<dyn MembershipOwner>
        });
        let membership = Membership::new(stores.members.clone(), owner);
        let wake = Arc::new(Notify::new());
        let service = Messaging::new(stores.messages.clone(), membership, wake.clone());
        events::start_membership_consumer(
            infra.bus.clone(),
            stores.members.clone(),
            infra.stop.clone(),
        )
        .await?;
        let router = minute_kit::graphql::router(api::schema(service), infra.auth.clone())
            .merge(http::health_routes(readiness));
        let listener = http::bind(&settings.common.host, settings.common.port).await?;
        let relay = Relay {
            store: stores.messages,
            bus: infra.bus.clone(),
            wake,
            interval: settings.relay_interval,
        };
        Ok(Self {
            listener,
            router,
            relay,
            stop: infra.stop.clone(),
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves, with the outbox relay running, until `shutdown` (or the infra's stop) fires.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay_stop = shutdown.child_token();
        let infra_stop = self.stop.clone();
        let rs = relay_stop.clone();
        tokio::spawn(async move {
            infra_stop.cancelled().await;
            rs.cancel();
        });
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        let served = http::serve(self.listener, self.router, shutdown).await;
        relay_stop.cancel();
        let _ = relay.await;
        served?;
        Ok(())
    }
}
