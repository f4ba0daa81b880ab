//! `minute gateway`: one `/graphql` over Minute's subgraphs (design.md §7).
//!
//! Nothing here plans queries. [`compose`] fetches each subgraph's SDL (`_service { sdl }`)
//! and composes the supergraph with `graphql-composition`; [`engine`] runs **hive-router**
//! (The Guild's federation router) on a loopback port with a config derived from Minute's
//! settings (limits, header propagation, timeouts, introspection, error masking); [`edge`]
//! is the public axum front: it owns `/healthz` and `/readyz`, refuses oversized or
//! batched requests before they reach the engine, forwards only the headers subgraphs need,
//! and maps the engine's error codes onto the codes of `api.md`.
//!
//! Start at [`App::build`]; the supergraph is kept fresh by [`compose::Composer`].

// The engine's ntex middleware stack is a deeply nested type (hive-router sets the same).
#![recursion_limit = "256"]

pub mod compose;
pub mod config;
pub mod edge;
pub mod engine;

use std::sync::Arc;

use minute_kit::http;
use minute_kit::infra::Infra;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

/// The running gateway.
pub struct App {
    listener: TcpListener,
    settings: Settings,
    infra: Infra,
}

impl App {
    /// Binds the public port; the engine starts once the first composition succeeds.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        let listener = http::bind(&settings.common.host, settings.common.port).await?;
        Ok(Self {
            listener,
            settings,
            infra,
        })
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The edge router, for embedding (`minute all` mounts it beside `/ws`).
    pub fn into_parts(self) -> (TcpListener, Arc<edge::Edge>, Composition) {
        let engine = engine::Engine::new(&self.settings);
        let edge = Arc::new(edge::Edge::new(
            &self.settings,
            engine.clone(),
            self.infra.readiness.clone(),
        ));
        let composer = compose::Composer::new(&self.settings, engine);
        (
            self.listener,
            edge,
            Composition {
                composer,
                stop: self.infra.stop.clone(),
            },
        )
    }

    /// Serves until `stop` fires.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let (listener, edge, composition) = self.into_parts();
        let background = tokio::spawn(composition.run());
        let router = edge.router();
        let served = http::serve(listener, router, stop.clone()).await;
        stop.cancel();
        let _ = background.await;
        edge.shutdown();
        served.map_err(Into::into)
    }
}

/// The background task that composes and refreshes the supergraph.
pub struct Composition {
    composer: compose::Composer,
    stop: CancellationToken,
}

impl Composition {
    /// Composes (retrying with backoff until every subgraph answers), starts the engine,
    /// then refreshes on an interval and on SIGHUP until stopped.
    pub async fn run(self) {
        self.composer.run(self.stop).await;
    }
}
