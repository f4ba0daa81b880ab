//! The conversations service (`minute conversations`): direct and group conversations,
//! their members and roles, and the order of a user's conversations by last activity.
//!
//! It owns conversations and memberships; it does not own users (only a replica of which
//! ids exist, [`directory`]) nor messages (only each conversation's last activity time,
//! from `messaging.message.created.v1`).
//!
//! Where to start reading:
//! - [`api`]: the GraphQL subgraph of api.md and the internal endpoints;
//! - [`domain::rules`]: who may do what (the policies are listed there);
//! - [`domain::service`]: how an operation loads, decides and stores;
//! - [`store`]: the storage traits, MongoDB and SQLite adapters, one conformance suite;
//! - [`events`]: the outbox relay and the consumers (queue names, routing).
//!
//! Policies worth knowing: a direct conversation with oneself is `BAD_USER_INPUT`; unknown
//! user ids are `BAD_USER_INPUT`; a group title is 1..=200 characters after trimming, one
//! line; a group holds at most `CONVERSATIONS_MAX_GROUP_MEMBERS` (10,000) members.

pub mod api;
pub mod config;
pub mod directory;
pub mod domain;
pub mod events;
pub mod store;

use std::sync::Arc;

use minute_kit::http::{self, FnCheck, Readiness};
use minute_kit::infra::Infra;
use minute_kit::mongo::MongoCheck;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

use crate::config::Storage;
use crate::directory::Directory;
use crate::domain::service::Service;
use crate::events::Relay;
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;

/// The running service.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
}

async fn open_store(storage: &Storage) -> anyhow::Result<(Arc<dyn Store>, Readiness)> {
    match storage {
        Storage::Mongo(m) => {
            let db = minute_kit::mongo::connect(m).await?;
            let store = MongoStore::new(db.clone()).await?;
            Ok((
                Arc::new(store),
                Readiness::new().with(Arc::new(MongoCheck(db))),
            ))
        }
        Storage::Embedded(path) => {
            let store = EmbeddedStore::open(path).map_err(|e| {
                anyhow::anyhow!("MINUTE_DATA_DIR: cannot open {}: {e}", path.display())
            })?;
            let probe = store.clone();
            let check = FnCheck::new("database", move || {
                let probe = probe.clone();
                async move {
                    use crate::store::ConversationStore;
                    probe.ping().await.map_err(|e| e.to_string())
                }
            });
            Ok((Arc::new(store), Readiness::new().with(check)))
        }
    }
}

impl App {
    /// Opens the store, declares and starts the consumers and the outbox relay (they stop
    /// with `infra.stop`), binds the port and assembles the routes.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        let (store, db_ready) = open_store(&settings.storage).await?;
        let relay = Relay::new(store.clone(), infra.bus.clone(), settings.outbox_interval);
        let directory = Directory::new(store.clone(), settings.users_url.clone());
        let service = Service::new(
            store.clone(),
            directory,
            settings.max_group_members,
            relay.waker(),
        );
        events::start_consumers(
            store,
            infra.bus.clone(),
            settings.queue_expires,
            infra.stop.clone(),
        )
        .await?;
        tokio::spawn(relay.run(infra.stop.clone()));

        let listener = http::bind(&settings.common.host, settings.common.port).await?;
        let readiness = infra.readiness.clone().merge(db_ready);
        let router = minute_kit::graphql::router(api::schema(service.clone()), infra.auth.clone())
            .merge(api::internal::router(service))
            .merge(http::health_routes(readiness));
        Ok(Self { listener, router })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` fires.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        http::serve(self.listener, self.router, shutdown).await?;
        Ok(())
    }
}
