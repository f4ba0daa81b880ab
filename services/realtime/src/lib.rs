//! The realtime service (`minute realtime`): `GET /ws`, where clients speak
//! graphql-transport-ws and receive the events they must see (api.md "Realtime").
//!
//! It owns WebSocket sessions, a replica of conversation memberships, typing throttles and
//! presence. It owns no messages or conversations: it routes what other services publish.
//!
//! Where to start reading:
//! - [`api::ws`]: the socket task (init within 3 s, operations, limits, close codes);
//! - [`hub`]: the routing table and the delivery bindings of this replica's queue;
//! - [`events`]: the consumers (delivery queue, membership replica) and what is published;
//! - [`domain`]: the protocol messages, membership changes, the frame budget, and the
//!   shared projections that render `events` subscriptions without a per-socket executor;
//! - [`store`]: the membership replica (MongoDB / SQLite) and Redis-or-in-process ephemera.
//!
//! Routing (design.md §4): each replica has one exclusive queue `realtime.<replica-id>`
//! bound to `minute.delivery` with `conv.<id>` / `user.<id>` for what its sockets need, so a
//! group message costs one copy per replica, not per member.
//!
//! Numbers: `cargo bench -p minute-realtime --bench idle_connections` (RSS per idle
//! authenticated connection) and `--bench delivery` (latency across two replicas, fan-out).

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
mod fallback;
mod hub;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use minute_kit::http::{self, FnCheck};
use minute_kit::infra::Infra;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

use crate::api::ws::{WsState, close_all};
use crate::config::Storage;
use crate::hub::{Hub, HubDeps};
use crate::store::MembershipStore;
use crate::store::ephemeral::{Ephemeral, MemoryEphemeral, RedisEphemeral};

/// The running service.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    hub: Arc<Hub>,
}

async fn open_store(storage: &Storage) -> anyhow::Result<Arc<dyn MembershipStore>> {
    Ok(match storage {
        Storage::Mongo(m) => {
            let db = minute_kit::mongo::connect(m)
                .await
                .context("REALTIME database")?;
            Arc::new(store::mongo::MongoMemberships::new(db).await?)
        }
        Storage::Embedded(path) => Arc::new(
            store::embedded::SqliteMemberships::open(path)
                .with_context(|| format!("embedded store at {}", path.display()))?,
        ),
    })
}

impl App {
    /// Binds the port, opens the membership replica, declares the queues and starts the
    /// consumers and presence tasks on the shared infrastructure.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        // Series that must exist at zero before the first event (alerts compare rates).
        metrics::gauge!("minute_realtime_ws_connections").increment(0.0);
        metrics::counter!("minute_realtime_slow_client_disconnects_total").increment(0);
        metrics::counter!("minute_rate_limit_hits_total", "limit" => "ws_frames").increment(0);
        let store = open_store(&settings.storage).await?;
        let ephemeral: Arc<dyn Ephemeral> = match &infra.redis {
            Some(conn) => Arc::new(RedisEphemeral::new(
                conn.clone(),
                infra.redis_prefix.clone(),
            )),
            None => Arc::new(MemoryEphemeral::default()),
        };
        let queue = events::replica_queue(&infra.replica_id);
        let hub = Hub::start(
            HubDeps {
                bus: infra.bus.clone(),
                store: store.clone(),
                ephemeral,
                conversations: fallback::ConversationsClient::new(
                    settings.conversations_url.clone(),
                ),
                replica_id: infra.replica_id.clone(),
                queue,
                max_per_user: settings.limits.connections_per_user.max(1),
                outbound_queue: settings.limits.outbound_queue,
                presence_ttl: settings.presence.ttl,
            },
            infra.stop.clone(),
        );
        events::start(hub.clone(), infra.bus.clone(), infra.stop.clone()).await?;
        spawn_presence(hub.clone(), &settings, infra.stop.clone());

        let listener = http::bind(&settings.common.host, settings.common.port).await?;
        let probe = store.clone();
        let readiness = infra
            .readiness
            .clone()
            .with(FnCheck::new("database", move || {
                let s = probe.clone();
                async move { s.ping().await.map_err(|e| e.to_string()) }
            }));
        let ws = Arc::new(WsState {
            hub: hub.clone(),
            schema: api::schema(Some(hub.clone())),
            auth: infra.auth.clone(),
            limits: settings.limits.clone(),
            stop: infra.stop.clone(),
            projections: Default::default(),
        });
        let router = axum::Router::new()
            .route("/ws", get(api::ws::handler))
            .with_state(ws)
            .merge(http::health_routes(readiness));
        Ok(Self {
            listener,
            router,
            hub,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The routes without this service's own listener, for `minute all` to mount `/ws` on
    /// the public port; open sockets still get a 1001 close frame when `shutdown` fires.
    pub fn into_router(self, shutdown: CancellationToken) -> axum::Router {
        let hub = self.hub.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            close_all(&hub);
        });
        self.router
    }

    /// Serves until `shutdown` fires; open sockets get a 1001 close frame.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let hub = self.hub.clone();
        let closing = shutdown.clone();
        tokio::spawn(async move {
            closing.cancelled().await;
            close_all(&hub);
        });
        http::serve(self.listener, self.router, shutdown).await?;
        Ok(())
    }
}

/// The heartbeat that keeps this replica's users online in the shared store, and the
/// sweeper that announces the users of replicas that stopped heartbeating.
fn spawn_presence(hub: Arc<Hub>, settings: &Settings, stop: CancellationToken) {
    let ttl = settings.presence.ttl;
    let sweep_every = settings.presence.sweep_every;
    let beat = hub.clone();
    let beat_stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
        loop {
            tokio::select! {
                _ = beat_stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let users = beat.present_users();
            let (eph, replica) = (&beat.deps.ephemeral, &beat.deps.replica_id);
            if let Err(e) = eph.heartbeat(&users, replica, ttl).await {
                tracing::warn!(error = %e, "presence heartbeat failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match hub.deps.ephemeral.sweep().await {
                Ok(gone) => {
                    for user in gone {
                        hub.publish_presence(&user, false).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "presence sweep failed"),
            }
        }
    });
}
