//! The federation engine: hive-router as a library, on its own ntex runtime thread and a
//! loopback port. Its config is derived from Minute's settings (no YAML for operators to
//! keep in sync) and its supergraph is a file the engine polls, so a recomposition is a
//! file write.
//!
//! hive-router's own entry point also installs a global tracing subscriber and reads its
//! config from process env vars (`PORT`, `LOG_LEVEL`, ... which Minute uses with other
//! meanings), so we assemble the server from the crate's public parts instead.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hive_router::ntex;
use hive_router::ntex::web;
use serde_json::json;

use crate::config::Settings;

/// A handle to the engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    port: u16,
    supergraph: PathBuf,
    config: serde_json::Value,
    running: Mutex<Option<Running>>,
    failure: Mutex<Option<String>>,
}

struct Running {
    server: ntex::server::Server,
}

/// Headers forwarded to every subgraph request. Cookies and hop-by-hop headers never are
/// (hive-router also drops hop-by-hop headers by itself).
pub const PROPAGATED_HEADERS: [&str; 5] = [
    "authorization",
    "traceparent",
    "tracestate",
    "x-request-id",
    "x-forwarded-for",
];

impl Engine {
    /// Prepares the engine on a free loopback port; nothing runs until [`Engine::start`].
    pub fn new(settings: &Settings) -> Self {
        let port = free_loopback_port();
        let dir =
            std::env::temp_dir().join(format!("minute-gateway-{}", uuid::Uuid::new_v4().simple()));
        let supergraph = dir.join("supergraph.graphql");
        let config = router_config(settings, port, &supergraph);
        Self {
            inner: Arc::new(Inner {
                port,
                supergraph,
                config,
                running: Mutex::new(None),
                failure: Mutex::new(None),
            }),
        }
    }

    /// The engine's GraphQL URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.inner.port)
    }

    /// The engine's readiness URL (200 once a supergraph is loaded).
    pub fn readiness_url(&self) -> String {
        format!("http://127.0.0.1:{}/readiness", self.inner.port)
    }

    /// True once started.
    pub fn is_started(&self) -> bool {
        self.inner
            .running
            .lock()
            .map(|r| r.is_some())
            .unwrap_or(false)
    }

    /// Why the engine could not start, if it could not.
    pub fn failure(&self) -> Option<String> {
        self.inner.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Writes the supergraph and starts the engine thread (once).
    pub fn start(&self, supergraph: &str) -> anyhow::Result<()> {
        let result = self.try_start(supergraph);
        if let (Err(e), Ok(mut f)) = (&result, self.inner.failure.lock()) {
            *f = Some(format!("{e:#}"));
        }
        result
    }

    fn try_start(&self, supergraph: &str) -> anyhow::Result<()> {
        // Two rustls back ends are linked (ring through the MongoDB driver, aws-lc through
        // the engine); the engine's HTTP client needs the process default chosen.
        static CRYPTO: std::sync::Once = std::sync::Once::new();
        CRYPTO.call_once(hive_router::init_rustls_crypto_provider);
        self.update(supergraph)?;
        let mut running = self
            .inner
            .running
            .lock()
            .map_err(|_| anyhow::anyhow!("engine lock poisoned"))?;
        if running.is_some() {
            return Ok(());
        }
        let config: hive_router::config::HiveRouterConfig =
            serde_json::from_value(self.inner.config.clone())?;
        let config = config.into_static();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("hive-router".into())
            .spawn(move || {
                ntex::rt::System::build()
                    .name("hive-router")
                    .build(ntex::rt::DefaultRuntime)
                    .block_on(async move {
                        match serve(config).await {
                            Ok(server) => {
                                let _ = tx.send(Ok(server.clone()));
                                let _ = server.await;
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        }
                    });
            })?;
        let server = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the engine thread ended"))??;
        *running = Some(Running { server });
        Ok(())
    }

    /// Replaces the supergraph file atomically; the engine polls it and reloads.
    pub fn update(&self, supergraph: &str) -> anyhow::Result<()> {
        let path = &self.inner.supergraph;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, supergraph)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Stops the engine (graceful) and removes its files.
    pub fn shutdown(&self) {
        if let Ok(mut r) = self.inner.running.lock()
            && let Some(running) = r.take()
        {
            // `stop` returns a future run by the engine's own runtime; fire and forget.
            drop(running.server.stop(true));
        }
        if let Some(dir) = self.inner.supergraph.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

/// The engine's configuration, derived from Minute's settings.
pub fn router_config(
    settings: &Settings,
    port: u16,
    supergraph: &std::path::Path,
) -> serde_json::Value {
    let timeout = format!("{}s", settings.subgraph_timeout.as_secs().max(1));
    json!({
        "log": {"level": "error"},
        "http": {"host": "127.0.0.1", "port": port, "graphql_endpoint": "/graphql"},
        "supergraph": {"source": "file", "path": supergraph.display().to_string(), "poll_interval": "1s"},
        "laboratory": {"enabled": settings.graphiql},
        "introspection": settings.introspection,
        "headers": {"all": {"request": [{"propagate": {"named": PROPAGATED_HEADERS}}]}},
        "limits": {
            "max_depth": {"n": settings.max_depth},
            "max_aliases": {"n": settings.max_aliases},
            "max_tokens": {"n": settings.max_tokens},
        },
        "demand_control": {
            "enabled": true,
            "operation_cost": {"max": settings.max_cost, "mode": "enforce"},
            // Lists without `@listSize` are estimated at 10 items each.
            "default_list_size": {"all": 10},
            "subgraphs_budget": {"mode": "measure", "all": null},
        },
        "traffic_shaping": {
            "all": {"request_timeout": timeout, "dedupe_enabled": false},
        },
        // Subgraphs already mask their internal errors; keep their codes and messages.
        "error_masking": {"enabled": false},
    })
}

async fn serve(
    config: &'static hive_router::config::HiveRouterConfig,
) -> Result<ntex::server::Server, anyhow::Error> {
    use hive_router::pipeline::{
        long_lived_client_limit::LongLivedClientLimitService,
        request_identifiers::RequestIdentifiersService, request_summary::RequestSummaryService,
        response_compression::ResponseCompressionService,
    };
    use hive_router::plugins::plugins_service::PluginService;
    use hive_router::telemetry::TelemetryContext;

    let telemetry = TelemetryContext::from_propagation_config(
        &config.telemetry.tracing.propagation,
        &config.log,
    );
    let mut tasks = hive_router::background_tasks::BackgroundTasksManager::new();
    let (shared, schema) = hive_router::configure_app_from_config(
        config,
        telemetry,
        &mut tasks,
        hive_router::PluginRegistry::new(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("engine configuration: {e}"))?;
    // The background tasks (supergraph polling) live as long as the engine thread.
    std::mem::forget(tasks);
    let graphql_path = config.graphql_path().to_owned();
    let paths = hive_router::RouterPaths::new(graphql_path.clone(), None, None);
    let long_lived = LongLivedClientLimitService::new(config);
    let compression = ResponseCompressionService::new(config);
    let server = web::HttpServer::new(async move || {
        web::App::new()
            .middleware(long_lived.clone())
            .middleware(PluginService::new(paths.clone(), None))
            .middleware(RequestSummaryService::new(&graphql_path))
            .middleware(RequestIdentifiersService)
            .middleware(compression.clone())
            .state(shared.clone())
            .state(schema.clone())
            .state(shared.telemetry_context.clone())
            .state(schema.callback_subscriptions.clone())
            .configure(|m| hive_router::configure_ntex_app(m, &paths, None))
    })
    .disable_signals()
    .config(
        ntex::SharedCfg::new("MINUTE_GATEWAY").add(hive_router::build_http_service_config(config)),
    )
    .bind(config.address())?
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_config_is_a_valid_engine_config() {
        let env = minute_kit::config::Env::from_pairs([("AUTH_URL", "http://127.0.0.1:1")]);
        let settings = Settings::from_env(&env).expect("settings");
        let dir =
            std::env::temp_dir().join(format!("engine-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("supergraph.graphql");
        std::fs::write(&file, "").expect("write");
        let json = router_config(&settings, 4000, &file);
        let parsed: Result<hive_router::config::HiveRouterConfig, _> = serde_json::from_value(json);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }
}
