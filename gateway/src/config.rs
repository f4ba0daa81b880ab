//! The gateway's settings, read once at start.

use std::time::Duration;

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute gateway`.
pub const DEFAULT_PORT: u16 = 8080;

/// One subgraph: its name in the supergraph and its GraphQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subgraph {
    /// `auth`, `users`, ...
    pub name: String,
    /// `http://host:port/graphql`.
    pub url: String,
}

/// Settings of the gateway.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
    /// The subgraphs to compose (`AUTH_URL`, `USERS_URL`, `CONVERSATIONS_URL`,
    /// `MESSAGING_URL`, `REALTIME_URL`; base URLs, `/graphql` appended).
    pub subgraphs: Vec<Subgraph>,
    /// `GRAPHQL_INTROSPECTION` (default false; true in all-in-one dev mode).
    pub introspection: bool,
    /// `GRAPHIQL` on GET `/graphql` (default: same as introspection).
    pub graphiql: bool,
    /// `GRAPHQL_MAX_DEPTH` (15).
    pub max_depth: usize,
    /// `GRAPHQL_MAX_ALIASES` (30).
    pub max_aliases: usize,
    /// `GRAPHQL_MAX_TOKENS` (1,000).
    pub max_tokens: usize,
    /// `GRAPHQL_MAX_COST` (demand-control budget, 5,000).
    pub max_cost: u64,
    /// `GRAPHQL_MAX_BODY_BYTES` (1 MiB).
    pub max_body_bytes: usize,
    /// `GRAPHQL_BATCHING` (false): JSON arrays of operations.
    pub batching: bool,
    /// `SUBGRAPH_TIMEOUT_SECS` (5).
    pub subgraph_timeout: Duration,
    /// `SUPERGRAPH_REFRESH_SECS` (30).
    pub refresh_interval: Duration,
}

/// The subgraph URL variables, in composition order.
pub const SUBGRAPH_VARS: [(&str, &str); 5] = [
    ("auth", "AUTH_URL"),
    ("users", "USERS_URL"),
    ("conversations", "CONVERSATIONS_URL"),
    ("messaging", "MESSAGING_URL"),
    ("realtime", "REALTIME_URL"),
];

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut subgraphs = Vec::new();
        for (name, var) in SUBGRAPH_VARS {
            if let Some(base) = env.url(var, &["http", "https"])? {
                subgraphs.push(Subgraph {
                    name: name.to_owned(),
                    url: graphql_url(&base),
                });
            }
        }
        let introspection = env.flag("GRAPHQL_INTROSPECTION", false)?;
        let positive = |name: &str, default: usize| -> Result<usize, ConfigError> {
            let v: usize = env.or(name, default, "a positive whole number")?;
            if v == 0 {
                return Err(ConfigError {
                    var: name.into(),
                    expected: "a positive whole number".into(),
                    found: Some("0".into()),
                });
            }
            Ok(v)
        };
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            subgraphs,
            introspection,
            graphiql: env.flag("GRAPHIQL", introspection)?,
            max_depth: positive("GRAPHQL_MAX_DEPTH", 15)?,
            max_aliases: positive("GRAPHQL_MAX_ALIASES", 30)?,
            max_tokens: positive("GRAPHQL_MAX_TOKENS", 1_000)?,
            max_cost: env.or("GRAPHQL_MAX_COST", 5_000, "a positive whole number")?,
            max_body_bytes: positive("GRAPHQL_MAX_BODY_BYTES", 1 << 20)?,
            batching: env.flag("GRAPHQL_BATCHING", false)?,
            subgraph_timeout: env.seconds("SUBGRAPH_TIMEOUT_SECS", 5)?,
            refresh_interval: env.seconds("SUPERGRAPH_REFRESH_SECS", 30)?,
        })
    }
}

/// `http://h:p` -> `http://h:p/graphql` (kept when it already ends with a path).
pub fn graphql_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/graphql") {
        base.to_owned()
    } else {
        format!("{base}/graphql")
    }
}
