//! The public front of the gateway (axum): `/graphql` (POST and, for GraphiQL or queries,
//! GET), `/healthz`, `/readyz`. It refuses what must never reach the engine — bodies over
//! the limit, batched arrays unless enabled — and rewrites the engine's error codes onto
//! the codes of `api.md` (parse, validation and limit errors are `BAD_USER_INPUT`; anything
//! unknown is `INTERNAL`, message masked, with the trace id).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use minute_kit::http::{FnCheck, Readiness, health_routes};
use minute_kit::trace::{self, TRACEPARENT};
use tracing::Instrument;

use crate::config::Settings;
use crate::engine::{Engine, PROPAGATED_HEADERS};

/// The edge's state.
pub struct Edge {
    client: reqwest::Client,
    engine: Engine,
    max_body_bytes: usize,
    batching: bool,
    readiness: Readiness,
}

/// Codes of `api.md` passed through from subgraphs unchanged.
const CONTRACT_CODES: [&str; 7] = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "RATE_LIMITED",
    "INTERNAL",
];

/// Engine codes that mean the request itself is wrong.
const REQUEST_ERROR_CODES: [&str; 12] = [
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "OPERATION_RESOLUTION_FAILURE",
    "INTROSPECTION_DISABLED",
    "BAD_REQUEST",
    "MAX_DEPTH_EXCEEDED",
    "MAX_ALIASES_EXCEEDED",
    "MAX_TOKENS_EXCEEDED",
    "MAX_DIRECTIVES_EXCEEDED",
    "COST_ESTIMATED_TOO_EXPENSIVE",
    "SUBSCRIPTIONS_NOT_SUPPORTED",
    "PERSISTED_DOCUMENT_NOT_FOUND",
];

impl Edge {
    /// From settings and the engine; `readiness` adds the process's own checks.
    pub fn new(settings: &Settings, engine: Engine, readiness: Readiness) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(settings.subgraph_timeout * 3)
            .build()
            .unwrap_or_default();
        let probe_client = client.clone();
        let probe_engine = engine.clone();
        let readiness = readiness.with(FnCheck::new("supergraph", move || {
            let client = probe_client.clone();
            let engine = probe_engine.clone();
            async move {
                if let Some(failure) = engine.failure() {
                    return Err(format!("engine failed to start: {failure}"));
                }
                if !engine.is_started() {
                    return Err("not composed yet (waiting for subgraphs)".to_owned());
                }
                match client.get(engine.readiness_url()).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("engine not ready: {}", r.status())),
                    Err(e) => Err(format!("engine unreachable: {e}")),
                }
            }
        }));
        Self {
            client,
            engine,
            max_body_bytes: settings.max_body_bytes,
            batching: settings.batching,
            readiness,
        }
    }

    /// `/graphql`, `/healthz`, `/readyz`.
    pub fn router(self: &Arc<Self>) -> Router {
        self.graphql_router()
            .merge(health_routes(self.readiness.clone()))
    }

    /// `/graphql` only (for mounting beside other routes).
    pub fn graphql_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/graphql", get(forward).post(forward))
            .with_state(self.clone())
    }

    /// The readiness checks (for `minute all` to merge).
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Stops the engine.
    pub fn shutdown(&self) {
        self.engine.shutdown();
    }
}

/// A GraphQL error response produced by the edge itself.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, axum::Json(body)).into_response()
}

/// The edge's unit of work: a server span that continues the client's `traceparent`
/// (or starts a trace) and whose context is what the engine propagates to subgraphs.
async fn forward(State(edge): State<Arc<Edge>>, request: Request) -> Response {
    let span = tracing::error_span!(
        "gateway",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        graphql.operation.name = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let incoming = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    trace::continue_trace(&span, incoming.as_deref());
    // Without trace export and without a client traceparent, a fresh one still ties the
    // log lines of every hop together.
    let traceparent =
        trace::traceparent_of(&span, incoming.as_deref()).unwrap_or_else(trace::new_traceparent);
    forward_traced(edge, request, traceparent, span.clone())
        .instrument(span)
        .await
}

async fn forward_traced(
    edge: Arc<Edge>,
    request: Request,
    traceparent: String,
    span: tracing::Span,
) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let body = match axum::body::to_bytes(body, edge.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                &format!(
                    "request body exceeds the limit of {} bytes (GRAPHQL_MAX_BODY_BYTES)",
                    edge.max_body_bytes
                ),
            );
        }
    };
    if parts.method == Method::POST
        && !edge.batching
        && body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "batched requests are disabled (GRAPHQL_BATCHING)",
        );
    }
    if parts.method == Method::POST && unnamed_among_several_operations(&body) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the document has several operations: name the one to run in operationName",
        );
    }
    if !edge.engine.is_started() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL",
            "the API is starting: waiting for every subgraph",
        );
    }
    let mut url = edge.engine.url();
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let operation =
        minute_kit::metrics::operation_label(operation_name(parts.uri.query(), &body).as_deref());
    span.record("otel.name", format!("graphql {operation}").as_str());
    span.record("graphql.operation.name", operation.as_str());
    let mut upstream = edge.client.request(parts.method.clone(), url).body(body);
    for (name, value) in forwarded_headers(&parts.headers, peer.as_deref()) {
        if name != TRACEPARENT {
            upstream = upstream.header(name, value);
        }
    }
    upstream = upstream.header(TRACEPARENT, &traceparent);
    let response = match upstream.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "federation engine unreachable");
            return refuse(StatusCode::BAD_GATEWAY, "INTERNAL", "internal error");
        }
    };
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = response.bytes().await.unwrap_or_default();
    let failed = !status.is_success() || has_errors(&bytes);
    let trace_id = trace::trace_id_of(&traceparent).unwrap_or_else(trace::new_trace_id);
    let bytes = rewrite_errors(bytes, trace_id);
    minute_kit::metrics::record_graphql("gateway", operation, !failed, started.elapsed());
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK);
    if let Some(ct) = content_type
        && let Ok(v) = HeaderValue::from_bytes(ct.as_bytes())
    {
        out.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    out
}

/// True for a request without `operationName` whose document holds several operations.
/// The GraphQL spec (GetOperation) makes that a request error; the engine would run the
/// first one instead — possibly a mutation the client never meant to send alone. Bodies
/// that are not JSON or not GraphQL are left to the engine, which refuses them.
fn unnamed_among_several_operations(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Request {
        #[serde(default)]
        query: Option<String>,
        #[serde(default, rename = "operationName")]
        operation_name: Option<String>,
    }
    let Ok(Request {
        query: Some(query),
        operation_name,
    }) = serde_json::from_slice::<Request>(body)
    else {
        return false;
    };
    if operation_name.is_some_and(|n| !n.is_empty()) {
        return false;
    }
    // Two operations need two selection sets: a document with fewer `{` is not parsed.
    if query.matches('{').count() < 2 {
        return false;
    }
    match async_graphql_parser::parse_query(&query) {
        Ok(doc) => matches!(
            doc.operations,
            async_graphql_parser::types::DocumentOperations::Multiple(ops) if ops.len() > 1
        ),
        Err(_) => false,
    }
}

/// Only what the engine and subgraphs need: content negotiation and the propagated set.
/// Never cookies or hop-by-hop headers.
fn forwarded_headers(headers: &HeaderMap, peer: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["content-type", "accept"]
        .iter()
        .chain(PROPAGATED_HEADERS.iter())
    {
        if *name == "x-forwarded-for" {
            continue;
        }
        if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
            out.push(((*name).to_owned(), v.to_owned()));
        }
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (forwarded, peer) {
        (Some(f), Some(p)) => out.push(("x-forwarded-for".into(), format!("{f}, {p}"))),
        (Some(f), None) => out.push(("x-forwarded-for".into(), f)),
        (None, Some(p)) => out.push(("x-forwarded-for".into(), p.to_owned())),
        (None, None) => {}
    }
    out
}

/// The operation name of a GraphQL request (`operationName` in the JSON body or the query
/// string), for metrics and span names.
fn operation_name(query: Option<&str>, body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "operationName")]
        operation_name: Option<String>,
        #[serde(default)]
        query: String,
    }
    let named = if body.is_empty() {
        let mut named = Named {
            operation_name: None,
            query: String::new(),
        };
        for (k, v) in url::form_urlencoded::parse(query?.as_bytes()) {
            match k.as_ref() {
                "operationName" => named.operation_name = Some(v.into_owned()),
                "query" => named.query = v.into_owned(),
                _ => {}
            }
        }
        named
    } else {
        serde_json::from_slice::<Named>(body).ok()?
    };
    minute_kit::metrics::operation_of(named.operation_name.as_deref(), &named.query)
}

/// True when a GraphQL response body carries errors.
fn has_errors(bytes: &[u8]) -> bool {
    bytes.windows(8).any(|w| w == b"\"errors\"")
}

/// Maps every error's `extensions.code` onto the contract's codes.
pub fn rewrite_errors(bytes: Bytes, trace_id: String) -> Bytes {
    // Fast path: most responses carry no errors.
    if !bytes.windows(8).any(|w| w == b"\"errors\"") {
        return bytes;
    }
    let Ok(mut body) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    // Without `data` the request never executed: parse, validation or limit errors.
    let rejected = body.get("data").is_none();
    let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) else {
        return bytes;
    };
    for error in errors.iter_mut() {
        let code = error["extensions"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if CONTRACT_CODES.contains(&code.as_str()) {
            continue;
        }
        if rejected || REQUEST_ERROR_CODES.contains(&code.as_str()) || code.starts_with("MAX_") {
            set_code(error, "BAD_USER_INPUT", None);
        } else {
            tracing::error!(code = %code, error = %error, trace_id = %trace_id, "masked engine error");
            set_code(
                error,
                "INTERNAL",
                Some(format!("internal error (trace {trace_id})")),
            );
        }
    }
    serde_json::to_vec(&body).map(Bytes::from).unwrap_or(bytes)
}

fn set_code(error: &mut Value, code: &str, message: Option<String>) {
    if !error.get("extensions").is_some_and(Value::is_object) {
        error["extensions"] = json!({});
    }
    let original = error["extensions"]["code"].clone();
    error["extensions"]["code"] = json!(code);
    if !original.is_null() && original != json!(code) {
        error["extensions"]["engineCode"] = original;
    }
    if let Some(m) = message {
        error["message"] = json!(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_operations_need_an_operation_name() {
        let several = |q: &str, name: Value| {
            unnamed_among_several_operations(
                json!({"query": q, "operationName": name})
                    .to_string()
                    .as_bytes(),
            )
        };
        let two = "query A { me { id } } mutation B { logout }";
        assert!(several(two, Value::Null));
        assert!(several(two, json!("")));
        assert!(!several(two, json!("B")));
        assert!(!several("query A { me { id } }", Value::Null));
        assert!(!several("{ me { id } }", Value::Null));
        assert!(!several(
            "query A { me { id } } fragment F on User { id }",
            Value::Null
        ));
        assert!(
            !several("{ me { id ", Value::Null),
            "syntax errors are the engine's"
        );
        assert!(!unnamed_among_several_operations(b"not json"));
        assert!(!unnamed_among_several_operations(b"{\"variables\": {}}"));
    }

    #[test]
    fn engine_codes_map_onto_the_contract() {
        let rejected = json!({"errors": [
            {"message": "Cannot query field", "extensions": {"code": "FieldsOnCorrectType"}}
        ]});
        let out = rewrite_errors(Bytes::from(rejected.to_string()), "abc".into());
        let out: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(out["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

        let body = json!({"data": null, "errors": [
            {"message": "Syntax Error", "extensions": {"code": "GRAPHQL_PARSE_FAILED"}},
            {"message": "depth", "extensions": {"code": "MAX_DEPTH_EXCEEDED"}},
            {"message": "nope", "extensions": {"code": "FORBIDDEN"}},
            {"message": "secret stack trace", "extensions": {"code": "SUBGRAPH_REQUEST_FAILURE"}},
            {"message": "no code"}
        ]});
        let out = rewrite_errors(Bytes::from(body.to_string()), "abc".into());
        let out: Value = serde_json::from_slice(&out).expect("json");
        let codes: Vec<&str> = out["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["extensions"]["code"].as_str().expect("code"))
            .collect();
        assert_eq!(
            codes,
            [
                "BAD_USER_INPUT",
                "BAD_USER_INPUT",
                "FORBIDDEN",
                "INTERNAL",
                "INTERNAL"
            ]
        );
        assert_eq!(out["errors"][3]["message"], "internal error (trace abc)");
    }

    #[test]
    fn cookies_and_hop_by_hop_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("session=1"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        let names: Vec<String> = forwarded_headers(&h, Some("10.0.0.1"))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(names.contains(&"authorization".to_owned()));
        assert!(names.contains(&"traceparent".to_owned()));
        assert!(names.contains(&"x-forwarded-for".to_owned()));
        assert!(!names.iter().any(|n| n == "cookie" || n == "connection"));
    }

    #[test]
    fn operation_names_come_from_the_body_or_the_query_string() {
        let body = br#"{"query":"mutation SendMessage { x }","operationName":"SendMessage"}"#;
        assert_eq!(operation_name(None, body).as_deref(), Some("SendMessage"));
        assert_eq!(
            operation_name(None, br#"{"query":"{ me { id } }"}"#).as_deref(),
            Some("me")
        );
        assert_eq!(
            operation_name(Some("query=%7Bme%7D&operationName=Me"), b"").as_deref(),
            Some("Me")
        );
    }
}
