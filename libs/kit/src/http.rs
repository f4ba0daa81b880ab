//! Serving a role over HTTP: the role's router plus `/healthz` (the process is alive),
//! `/readyz` (every dependency answers; 503 with a JSON body naming what is not ready) and
//! `/metrics` (Prometheus text format, see [`crate::metrics`]). [`serve`] records every
//! request's latency.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One dependency's readiness.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Name shown in `/readyz` (`broker`, `redis`, `database`...).
    fn name(&self) -> &str;
    /// `Err(reason)` while not ready.
    async fn check(&self) -> Result<(), String>;
}

/// A readiness check from a closure.
pub struct FnCheck<F> {
    name: String,
    f: F,
}

impl<F, Fut> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    /// Named check.
    pub fn new(name: impl Into<String>, f: F) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            f,
        })
    }
}

#[async_trait]
impl<F, Fut> ReadinessCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }
    async fn check(&self) -> Result<(), String> {
        (self.f)().await
    }
}

/// The set of checks behind `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    /// No checks yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a check.
    pub fn with(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.checks.push(check);
        self
    }
    /// Adds every check of `other`.
    pub fn merge(mut self, other: Readiness) -> Self {
        self.checks.extend(other.checks);
        self
    }
    /// Runs every check (each bounded to 2 s); `(all ready, per-check report)`.
    pub async fn report(&self) -> (bool, serde_json::Value) {
        let mut all = true;
        let mut out = serde_json::Map::new();
        for c in &self.checks {
            let r = tokio::time::timeout(Duration::from_secs(2), c.check())
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            let v = match r {
                Ok(()) => json!({"ready": true}),
                Err(e) => {
                    all = false;
                    json!({"ready": false, "error": e})
                }
            };
            out.insert(c.name().to_owned(), v);
        }
        (all, json!({"ready": all, "checks": out}))
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(r): State<Readiness>) -> impl IntoResponse {
    let (ok, body) = r.report().await;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route("/metrics", get(crate::metrics::handler))
}

/// Binds `host:port` (port 0 picks a free one).
pub async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

/// Serves `router` until `shutdown` fires, then stops accepting and lets in-flight
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::from_fn(crate::metrics::track_http));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
