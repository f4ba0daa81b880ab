//! Prometheus metrics behind `GET /metrics` (text format 0.0.4) on every role's port.
//!
//! Code records through the `metrics` facade (`metrics::counter!`, `gauge!`, `histogram!`),
//! which, like `tracing`, talks to one recorder per process: the Prometheus recorder that
//! [`install`] puts in place (telemetry start-up calls it). Without it, recording is a
//! no-op. Histograms use [`BUCKETS`] (seconds). Names start with `minute_`; see the README
//! for the list.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds: sub-millisecond to ten seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often buffered histogram samples are folded in when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder (once; later calls return the same handle).
/// `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?;
            let handle = builder.install_recorder().ok()?;
            let upkeep = handle.clone();
            // Folds histogram samples in even when nobody scrapes, so they cannot pile up.
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            Some(handle)
        })
        .as_ref()
}

/// The current metrics in the Prometheus text format (empty without a recorder).
pub fn render() -> String {
    let Some(handle) = HANDLE.get().and_then(Option::as_ref) else {
        return String::new();
    };
    if let Some(rss) = resident_memory_bytes() {
        ::metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    handle.render()
}

/// `GET /metrics`.
pub async fn handler() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
}

/// This process's resident set size (Linux: `/proc/self/statm`, in pages).
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Every Linux platform Minute ships for uses 4 KiB pages.
    Some(pages * 4096)
}

/// Middleware recording `minute_http_request_duration_seconds{method, path, status}`,
/// with the route's pattern (never the raw URL) as `path`.
pub async fn track_http(request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    if path == "/metrics" {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    ::metrics::histogram!(
        "minute_http_request_duration_seconds",
        "method" => method,
        "path" => path,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Most distinct operation names kept as label values; later ones count as `other`.
const MAX_OPERATIONS: usize = 256;

/// A bounded, safe label for a client-chosen GraphQL operation name: a GraphQL name of at
/// most 64 characters, among the first [`MAX_OPERATIONS`] seen, else `other`;
/// `anonymous` when there is none. Clients cannot blow up the series count.
pub fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return "anonymous".to_owned();
    };
    let valid = name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return "other".to_owned();
    }
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.contains(name) || seen.len() < MAX_OPERATIONS {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// What a GraphQL request is called for metrics and span names: its `operationName`, else
/// the name of the document's operation, else its first root field (what the gateway's
/// planner sends subgraphs is anonymous: `mutation($a:X!){sendMessage(...){...}}`).
pub fn operation_of(operation_name: Option<&str>, query: &str) -> Option<String> {
    if let Some(name) = operation_name.filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    let ident = |s: &str| -> Option<(String, usize)> {
        let s_trim = s.trim_start();
        let skipped = s.len() - s_trim.len();
        let len = s_trim
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s_trim.len());
        (len > 0).then(|| (s_trim[..len].to_owned(), skipped + len))
    };
    let doc = query.trim_start();
    if let Some((keyword, end)) = ident(doc)
        && ["query", "mutation", "subscription"].contains(&keyword.as_str())
        && let Some((name, _)) = ident(&doc[end..])
    {
        return Some(name);
    }
    let body = &doc[doc.find('{')? + 1..];
    let (first, end) = ident(body)?;
    match body[end..].trim_start().strip_prefix(':') {
        // `alias: field`
        Some(rest) => ident(rest).map(|(field, _)| field),
        None => Some(first),
    }
}

/// Records one GraphQL request at `tier` (`gateway` or `subgraph`).
pub fn record_graphql(tier: &'static str, operation: String, ok: bool, elapsed: Duration) {
    ::metrics::histogram!(
        "minute_graphql_request_duration_seconds",
        "tier" => tier,
        "operation" => operation,
        "outcome" => if ok { "ok" } else { "error" },
    )
    .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_the_request_or_its_document() {
        assert_eq!(operation_of(Some("Op"), "{ a }").as_deref(), Some("Op"));
        assert_eq!(
            operation_of(
                None,
                " mutation SendMessage($i: X!) { sendMessage(input: $i) { id } }"
            )
            .as_deref(),
            Some("SendMessage")
        );
        assert_eq!(
            operation_of(None, "mutation($a:X!){sendMessage(input:$a){id}}").as_deref(),
            Some("sendMessage")
        );
        assert_eq!(
            operation_of(None, "{ mine: me { id } }").as_deref(),
            Some("me")
        );
        assert_eq!(operation_of(None, "").as_deref(), None);
    }

    #[test]
    fn operation_labels_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("SendMessage")), "SendMessage");
        assert_eq!(operation_label(Some("drop table; --")), "other");
        assert_eq!(operation_label(Some(&"a".repeat(65))), "other");
        for i in 0..MAX_OPERATIONS + 10 {
            operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(operation_label(Some("BrandNewOperation")), "other");
        assert_eq!(operation_label(Some("SendMessage")), "SendMessage");
    }
}
