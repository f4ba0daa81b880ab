//! Composition: fetch every subgraph's SDL and compose the supergraph with
//! `graphql-composition`, then the one fix-up hive-router needs (design.md §7): the composed
//! root types lack `@join__type(graph: ...)`, without which the engine cannot plan.
//!
//! [`Composer::run`] keeps the supergraph fresh: it retries with backoff until every
//! subgraph answers, recomposes on an interval and on SIGHUP, and keeps the last good
//! supergraph when a new composition fails (logging why).

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, Subgraph};
use crate::engine::Engine;

/// Why a composition failed.
#[derive(Debug)]
pub enum ComposeError {
    /// A subgraph did not answer `_service { sdl }`.
    Unreachable {
        /// Which.
        subgraph: String,
        /// Why.
        reason: String,
    },
    /// The SDLs do not compose.
    Invalid(String),
}

impl std::fmt::Display for ComposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { subgraph, reason } => {
                write!(f, "subgraph {subgraph} unreachable: {reason}")
            }
            Self::Invalid(d) => write!(f, "composition failed: {d}"),
        }
    }
}

impl std::error::Error for ComposeError {}

/// Fetches `_service { sdl }` from one subgraph.
pub async fn fetch_sdl(
    client: &reqwest::Client,
    subgraph: &Subgraph,
) -> Result<String, ComposeError> {
    let unreachable = |reason: String| ComposeError::Unreachable {
        subgraph: subgraph.name.clone(),
        reason,
    };
    let response = client
        .post(&subgraph.url)
        .json(&json!({"query": "{ _service { sdl } }"}))
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    body["data"]["_service"]["sdl"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| unreachable(format!("no _service.sdl in {body}")))
}

/// Composes `(subgraph, sdl)` pairs into a supergraph SDL hive-router can plan with.
pub fn compose_supergraph(parts: &[(Subgraph, String)]) -> Result<String, ComposeError> {
    let mut subgraphs = graphql_composition::Subgraphs::default();
    for (sg, sdl) in parts {
        subgraphs
            .ingest_str(sdl, &sg.name, Some(&sg.url))
            .map_err(|e| ComposeError::Invalid(format!("{}: {e}", sg.name)))?;
    }
    let graph = graphql_composition::compose(&mut subgraphs)
        .into_result()
        .map_err(|d| {
            let messages: Vec<String> = d.iter_messages().map(str::to_owned).collect();
            ComposeError::Invalid(messages.join("; "))
        })?;
    let sdl = graphql_composition::render_federated_sdl(&graph)
        .map_err(|e| ComposeError::Invalid(e.to_string()))?;
    Ok(add_root_join_types(&sdl, parts))
}

/// Adds `@join__type(graph: G)` to each root type for every subgraph that defines it.
pub fn add_root_join_types(supergraph: &str, parts: &[(Subgraph, String)]) -> String {
    let graphs = join_graph_values(supergraph);
    let mut out = String::with_capacity(supergraph.len() + 256);
    for line in supergraph.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let root = ["Query", "Mutation", "Subscription"].into_iter().find(|r| {
            trimmed
                .strip_prefix("type ")
                .and_then(|rest| rest.strip_prefix(r))
                .is_some_and(|rest| {
                    rest.starts_with([' ', '\n', '{', '@', '\r']) || rest.is_empty()
                })
        });
        let Some(root) = root else {
            out.push_str(line);
            continue;
        };
        let directives: String = parts
            .iter()
            .filter(|(_, sdl)| defines_type(sdl, root))
            .filter_map(|(sg, _)| graphs.iter().find(|(name, _)| *name == sg.name))
            .filter(|(_, value)| !line.contains(&format!("@join__type(graph: {value})")))
            .map(|(_, value)| format!(" @join__type(graph: {value})"))
            .collect();
        let head = format!("type {root}");
        out.push_str(&line.replacen(&head, &format!("{head}{directives}"), 1));
    }
    out
}

/// `(subgraph name, enum value)` from `enum join__Graph { VALUE @join__graph(name: "x" ...) }`.
fn join_graph_values(supergraph: &str) -> Vec<(String, String)> {
    let Some(start) = supergraph.find("enum join__Graph") else {
        return Vec::new();
    };
    let body = &supergraph[start..];
    let end = body.find('}').unwrap_or(body.len());
    body[..end]
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let value = l.split_whitespace().next()?;
            let name_at = l.find("name: \"")? + 7;
            let name_end = l[name_at..].find('"')? + name_at;
            Some((l[name_at..name_end].to_owned(), value.to_owned()))
        })
        .collect()
}

fn defines_type(sdl: &str, name: &str) -> bool {
    sdl.lines().any(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("extend ").unwrap_or(l);
        l.strip_prefix("type ")
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.is_empty() || r.starts_with([' ', '{', '@']))
    })
}

/// Keeps the engine's supergraph fresh.
pub struct Composer {
    client: reqwest::Client,
    subgraphs: Vec<Subgraph>,
    engine: Engine,
    refresh: Duration,
}

impl Composer {
    /// From settings.
    pub fn new(settings: &Settings, engine: Engine) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            client,
            subgraphs: settings.subgraphs.clone(),
            engine,
            refresh: settings.refresh_interval.max(Duration::from_secs(1)),
        }
    }

    /// Fetches every SDL and composes.
    pub async fn compose_once(&self) -> Result<String, ComposeError> {
        let mut parts = Vec::with_capacity(self.subgraphs.len());
        for sg in &self.subgraphs {
            parts.push((sg.clone(), fetch_sdl(&self.client, sg).await?));
        }
        compose_supergraph(&parts)
    }

    /// See the module docs.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut last = loop {
            match self.compose_once().await {
                Ok(sdl) => break sdl,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "supergraph not composed yet");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        if let Err(e) = self.engine.start(&last) {
            tracing::error!(error = %e, "the federation engine did not start");
            return;
        }
        tracing::info!(
            subgraphs = self.subgraphs.len(),
            "supergraph composed; engine started"
        );
        let mut hangup = sighup();
        let mut tick = tokio::time::interval(self.refresh);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                _ = next_hangup(&mut hangup) => tracing::info!("SIGHUP: recomposing the supergraph"),
            }
            match self.compose_once().await {
                Ok(sdl) if sdl == last => {}
                Ok(sdl) => match self.engine.update(&sdl) {
                    Ok(()) => {
                        tracing::info!("supergraph changed; engine reloading it");
                        last = sdl;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not hand the new supergraph to the engine")
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "recomposition failed; keeping the last good supergraph")
                }
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn sighup() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn next_hangup(h: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = h {
        s.recv().await;
        return;
    }
    let _ = h;
    std::future::pending::<()>().await;
}
