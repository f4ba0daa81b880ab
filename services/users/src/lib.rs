//! The users service (`minute users`): profiles (display name, avatar URL, bio), the
//! `User` federation entity, prefix search, and the profile half of read-your-writes
//! after `register`.
//!
//! It owns the `minute_users` database (or `users.sqlite3` embedded). It does not own
//! accounts, usernames or passwords (auth does): a profile comes into being from
//! `auth.account.registered.v1`, or from the token's claims when `me` comes first.
//!
//! Where to start reading:
//! - [`domain`]: the input types ([`domain::input`]), the profile rules
//!   ([`domain::profile`]: provisional profiles, registrations, edits) and
//!   [`domain::Users`], the operations.
//! - [`api`]: the GraphQL subgraph (`schema.graphql` is its committed SDL), the batching
//!   `User` loader, and `GET /internal/users/{id}`.
//! - [`store`]: the [`store::UserStore`] trait, MongoDB and SQLite adapters.
//! - [`events`]: the outbox relay (`users.user.updated.v1`) and the consumer of
//!   `auth.account.registered.v1` (queue `users.accounts`).
//! - [`config`]: the settings, read once.

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod store;

use std::sync::Arc;

use minute_kit::http::{self, FnCheck};
use minute_kit::infra::Infra;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

use crate::domain::Users;
use crate::store::UserStore;

/// The running service.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    users: Arc<Users>,
    store: Arc<dyn UserStore>,
    relay: Arc<Notify>,
    settings: Settings,
    infra: Infra,
}

impl App {
    /// Binds the port, opens the store the settings name and assembles the service.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        let store = store::open(&settings.storage).await?;
        Self::build_with_store(settings, infra, store).await
    }

    /// Like [`App::build`] over a given store (tests wrap the real store, e.g. to count
    /// its queries).
    pub async fn build_with_store(
        settings: Settings,
        infra: Infra,
        store: Arc<dyn UserStore>,
    ) -> anyhow::Result<Self> {
        // Declared before serving, so a registration published once `build` returns is
        // already queued for us.
        events::declare_queues(infra.bus.as_ref(), settings.queue_expiry).await?;
        let listener = http::bind(&settings.common.host, settings.common.port).await?;
        let relay = Arc::new(Notify::new());
        let users = Arc::new(Users::new(store.clone(), relay.clone()));
        let probe = store.clone();
        let readiness = infra
            .readiness
            .clone()
            .with(FnCheck::new("database", move || {
                let probe = probe.clone();
                async move { probe.ping().await.map_err(|e| e.to_string()) }
            }));
        let router = minute_kit::graphql::router(api::schema(users.clone()), infra.auth.clone())
            .merge(api::internal_routes(users.clone()))
            .merge(http::health_routes(readiness));
        Ok(Self {
            listener,
            router,
            users,
            store,
            relay,
            settings,
            infra,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves, relays the outbox and consumes registrations until `shutdown` (or the
    /// infrastructure's stop) fires; then stops the background tasks and waits for them.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tasks = self.infra.stop.child_token();
        let relay = tokio::spawn(events::run_relay(
            self.store.clone(),
            self.infra.bus.clone(),
            self.relay.clone(),
            self.settings.outbox_interval,
            tasks.clone(),
        ));
        let consumer = tokio::spawn(events::run_consumer(
            self.users.clone(),
            self.infra.bus.clone(),
            tasks.clone(),
        ));
        let serve_stop = shutdown.clone();
        let infra_stop = self.infra.stop.clone();
        let stop_serving = CancellationToken::new();
        let trigger = stop_serving.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = serve_stop.cancelled() => {}
                _ = infra_stop.cancelled() => {}
            }
            trigger.cancel();
        });
        let served = http::serve(self.listener, self.router, stop_serving).await;
        tasks.cancel();
        for (name, task) in [("outbox relay", relay), ("registration consumer", consumer)] {
            if let Err(e) = task.await {
                tracing::error!(error = %e, task = name, "background task panicked");
            }
        }
        served?;
        Ok(())
    }
}
