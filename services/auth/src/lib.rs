//! The auth service (`minute auth`): accounts (username + argon2id hash), sessions with
//! rotating refresh tokens, login throttling, and session revocation that reaches every
//! service. It owns no profile data: `AuthPayload.user` is a reference to the users
//! subgraph's `User`, which learns about new accounts from `auth.account.registered.v1`.
//!
//! Where to start reading:
//! - [`domain::service::AuthService`]: every operation and its rules;
//! - [`domain::credentials`] and [`domain::tokens`]: what valid input looks like;
//! - [`domain::hasher`]: argon2id on a bounded blocking pool;
//! - [`store`]: the storage trait, its MongoDB and SQLite adapters, throttle counters;
//! - [`events`]: the outbox and its relay;
//! - [`api`]: the GraphQL subgraph (thin).
//!
//! Access tokens are JWTs issued with `minute_kit::auth::JwtKeys`; every service verifies
//! them and checks the shared revocation set (Redis with TTL = access-token lifetime, or
//! in-process in all-in-one mode), to which auth writes a session id before answering a
//! call that revokes it.

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use minute_kit::http;
use minute_kit::infra::Infra;
use minute_kit::mongo::MongoCheck;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

use crate::config::Storage;
use crate::domain::hasher::Hasher;
use crate::domain::service::{AuthService, Deps};
use crate::events::Relay;
use crate::store::AuthStore;
use crate::store::embedded::SqliteStore;
use crate::store::mongo::MongoStore;
use crate::store::throttle::{MemoryThrottle, RedisThrottle, Throttle};

/// The running service.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    relay: Relay,
    store: Arc<dyn AuthStore>,
    infra_stop: CancellationToken,
}

/// How often expired sessions and refresh tokens are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl App {
    /// Binds the port and assembles the service on the shared infrastructure.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        // Series that must exist at zero before the first failure (alerts compare rates).
        metrics::counter!("minute_auth_login_failures_total").increment(0);
        metrics::counter!("minute_rate_limit_hits_total", "limit" => "login").increment(0);
        let (store, readiness) = open_store(&settings, &infra).await?;
        let throttle: Arc<dyn Throttle> = match &infra.redis {
            Some(conn) => Arc::new(RedisThrottle::new(conn.clone(), infra.redis_prefix.clone())),
            None => Arc::new(MemoryThrottle::default()),
        };
        let hashing = settings.hashing;
        // One hash (the dummy) is computed here; keep it off the async workers.
        let hasher = tokio::task::spawn_blocking(move || Hasher::new(hashing))
            .await?
            .map_err(|e| anyhow::anyhow!("password hasher: {e}"))?;
        let purge_store = store.clone();
        let relay = Relay::new(
            store.clone(),
            infra.bus.clone(),
            infra.auth.revocations().clone(),
            infra.auth.keys().access_ttl(),
            settings.outbox_interval,
        );
        let service = Arc::new(AuthService::new(Deps {
            store,
            hasher: Arc::new(hasher),
            throttle,
            authenticator: infra.auth.clone(),
            relay: relay.waker(),
            limits: settings.throttle,
            refresh_ttl: settings.refresh_ttl,
        }));
        let router = api::router(api::schema(service), infra.auth.clone())
            .merge(http::health_routes(readiness));
        let listener = http::bind(&settings.common.host, settings.common.port)
            .await
            .with_context(|| format!("binding port {}", settings.common.port))?;
        Ok(Self {
            listener,
            router,
            relay,
            store: purge_store,
            infra_stop: infra.stop.clone(),
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves (and relays the outbox) until `shutdown` or the infrastructure's stop fires.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tasks = self.infra_stop.child_token();
        let relay = tokio::spawn(self.relay.run(tasks.clone()));
        let purge = tokio::spawn(store::purge_periodically(
            self.store,
            PURGE_EVERY,
            tasks.clone(),
        ));
        let stop = tasks.clone();
        let serving = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = stop.cancelled() => {}
            }
        })
        .await;
        tasks.cancel();
        let _ = tokio::join!(relay, purge);
        serving?;
        Ok(())
    }
}

async fn open_store(
    settings: &Settings,
    infra: &Infra,
) -> anyhow::Result<(Arc<dyn AuthStore>, http::Readiness)> {
    let readiness = infra.readiness.clone();
    match &settings.storage {
        Storage::Mongo(mongo) => {
            let db = minute_kit::mongo::connect(mongo)
                .await
                .context("AUTH_DATABASE_URL / DATABASE_URL")?;
            let store = MongoStore::new(db.clone())
                .await
                .map_err(|e| anyhow::anyhow!("auth database: {e}"))?;
            Ok((Arc::new(store), readiness.with(Arc::new(MongoCheck(db)))))
        }
        Storage::Embedded(path) => {
            let store = SqliteStore::open(path)
                .map_err(|e| anyhow::anyhow!("MINUTE_DATA_DIR ({}): {e}", path.display()))?;
            Ok((Arc::new(store), readiness))
        }
    }
}
