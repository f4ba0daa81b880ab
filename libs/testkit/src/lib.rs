//! Helpers for Minute's tests: unique names so tests run in parallel against shared real
//! servers, the addresses of those servers (RabbitMQ, Redis, the MongoDB-wire server that
//! `scripts/test` starts), broker control for fault tests, and clients: GraphQL over HTTP
//! ([`GraphqlClient`]) and graphql-transport-ws over `/ws` ([`WsClient`]).
//!
//! Every address comes from the environment `scripts/test` sets, with the machine's
//! defaults; a test that needs MongoDB and finds no URI fails with a message saying how to
//! get one rather than skipping.
#![warn(missing_docs)]

use std::process::Command;

pub mod jwt;
pub mod ws;
pub use ws::WsClient;

/// A name unique to this test run: `<prefix>-<12 hex>`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// A bus namespace unique to one test (`t-<12 hex>.`).
pub fn unique_namespace() -> String {
    format!("{}.", unique("t"))
}

/// RabbitMQ URL: `TEST_AMQP_URL` or the machine's broker on 127.0.0.1:5672.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Redis URL: `TEST_REDIS_URL` or the machine's Redis on 127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The MongoDB-wire server's URI from `TEST_MONGODB_URI`.
///
/// # Panics
/// When unset: run the tests with `scripts/test`, which installs and starts the server.
pub fn mongodb_uri() -> String {
    match std::env::var("TEST_MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => uri,
        _ => panic!(
            "TEST_MONGODB_URI is not set: run the tests with scripts/test, which installs and \
             starts the MongoDB-wire server (see ../shared/mongodb-standin.md), or start one \
             and export TEST_MONGODB_URI=mongodb://127.0.0.1:<port>/?retryWrites=false"
        ),
    }
}

/// A database name unique to one test.
pub fn unique_database(service: &str) -> String {
    unique(&format!("t_{service}")).replace('-', "_")
}

/// Connects to the MongoDB-wire server and returns a fresh, uniquely named database.
pub async fn mongodb_database(service: &str) -> mongodb::Database {
    let client = mongodb::Client::with_uri_str(mongodb_uri())
        .await
        .expect("TEST_MONGODB_URI must be a valid MongoDB URI");
    client.database(&unique_database(service))
}

/// Runs `rabbitmqctl <args>` and panics with its output when it fails.
pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be on PATH (RabbitMQ is installed on this machine kind)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (for child processes that take `PORT`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `GET http://127.0.0.1:<port><path>`: status and body, or `None` when nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let r = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

/// Waits up to `within` for `GET /readyz` on `port` to answer 200. `Err` holds the last
/// answer (status and body, or `None` when nothing answered), for the failure message.
pub async fn until_ready(
    port: u16,
    within: std::time::Duration,
) -> Result<(), Option<(u16, String)>> {
    let ready = eventually(within, || async move {
        matches!(http_get(port, "/readyz").await, Some((200, _)))
    })
    .await;
    if ready {
        Ok(())
    } else {
        Err(http_get(port, "/readyz").await)
    }
}

/// Sends `signal` (e.g. `TERM`, `KILL`, `STOP`, `CONT`) to a process.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{signal} {pid} failed");
}

/// A GraphQL-over-HTTP client as a real client uses it: `POST <url>` with a JSON body and,
/// when logged in, `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct GraphqlClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl GraphqlClient {
    /// A client for `http://127.0.0.1:<port>/graphql`.
    pub fn new(port: u16) -> Self {
        Self::with_url(format!("http://127.0.0.1:{port}/graphql"))
    }

    /// A client for any GraphQL URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.into(),
            token: None,
        }
    }

    /// The same client acting with `token`.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends a query; returns the whole response body (`data` and `errors`).
    pub async fn raw(&self, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let mut req = self
            .http
            .post(&self.url)
            .timeout(std::time::Duration::from_secs(30))
            .json(&serde_json::json!({"query": query, "variables": variables}));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("the GraphQL endpoint answers");
        let text = resp.text().await.expect("a body");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON response, got: {text}"))
    }

    /// Sends a query and returns `data`, panicking with the errors if there are any.
    pub async fn ok(&self, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let body = self.raw(query, variables).await;
        assert!(
            body.get("errors")
                .is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)),
            "unexpected GraphQL errors: {body}"
        );
        body["data"].clone()
    }

    /// Sends a query that must fail; returns the first error's `extensions.code`.
    pub async fn error_code(&self, query: &str, variables: serde_json::Value) -> String {
        let body = self.raw(query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("an error with extensions.code, got: {body}"))
            .to_owned()
    }
}
