//! The messaging service (`minute messaging`). Not built yet: serves `/healthz` and `/readyz` only;
//! see its issue.

pub mod config;

use minute_kit::http;
use minute_kit::infra::Infra;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Settings;

/// The running service.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
}

impl App {
    /// Binds the port and assembles the service on the shared infrastructure.
    pub async fn build(settings: Settings, infra: Infra) -> anyhow::Result<Self> {
        let listener = http::bind(&settings.common.host, settings.common.port).await?;
        let router = http::health_routes(infra.readiness.clone());
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
