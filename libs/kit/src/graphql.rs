//! The subgraph HTTP handler: reads `Authorization`, authenticates the caller once, and
//! hands the result to resolvers through the request data. Resolvers call [`viewer`].

use std::sync::Arc;

use async_graphql::{Context, Executor};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use tracing::Instrument;

use crate::auth::{Authenticator, Viewer};
use crate::error::ApiError;

/// What the handler found about the caller.
#[derive(Clone)]
pub struct Caller(pub Result<Viewer, ApiError>);

/// The W3C `traceparent` of the request, if any.
#[derive(Clone, Debug)]
pub struct TraceParent(pub Option<String>);

/// The authenticated viewer, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Viewer> {
    match ctx.data_opt::<Caller>() {
        Some(Caller(Ok(v))) => Ok(v),
        Some(Caller(Err(e))) => Err(e.clone().into_graphql()),
        None => Err(ApiError::unauthenticated("authentication required").into_graphql()),
    }
}

/// The request's trace context.
pub fn traceparent(ctx: &Context<'_>) -> Option<String> {
    ctx.data_opt::<TraceParent>().and_then(|t| t.0.clone())
}

/// Shared state of the handler.
#[derive(Clone)]
pub struct GraphqlState<E> {
    /// The schema.
    pub executor: E,
    /// Token verification.
    pub auth: Arc<Authenticator>,
}

/// Authenticates the request and executes it (inside [`traced`]).
pub async fn handler<E: Executor>(
    State(state): State<GraphqlState<E>>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let mut response = traced(&headers, request.into_inner(), |request| async {
        let caller = match headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.to_str())
        {
            None => Caller(Err(ApiError::unauthenticated("authentication required"))),
            Some(Err(_)) => Caller(Err(ApiError::unauthenticated(
                "malformed Authorization header",
            ))),
            Some(Ok(v)) => Caller(state.auth.header(v).await),
        };
        state.executor.execute(request.data(caller)).await
    })
    .await;
    code_request_errors(&mut response);
    response.into()
}

/// Runs `execute` inside a server span that continues the caller's `traceparent`, with the
/// span's own trace context in the request data ([`traceparent`], what resolvers store
/// with events), and records `minute_graphql_request_duration_seconds{tier="subgraph"}`.
pub async fn traced<F, Fut>(
    headers: &HeaderMap,
    request: async_graphql::Request,
    execute: F,
) -> async_graphql::Response
where
    F: FnOnce(async_graphql::Request) -> Fut,
    Fut: std::future::Future<Output = async_graphql::Response>,
{
    let started = std::time::Instant::now();
    let operation = crate::metrics::operation_label(
        crate::metrics::operation_of(request.operation_name.as_deref(), &request.query).as_deref(),
    );
    let span = tracing::error_span!(
        "graphql",
        otel.name = %format!("graphql {operation}"),
        otel.kind = "server",
        graphql.operation.name = %operation,
        trace_id = tracing::field::Empty,
    );
    let incoming = headers
        .get(minute_bus::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    minute_bus::trace::continue_trace(&span, incoming);
    let traceparent = minute_bus::trace::traceparent_of(&span, incoming);
    let response = execute(request.data(TraceParent(traceparent)))
        .instrument(span)
        .await;
    crate::metrics::record_graphql(
        "subgraph",
        operation,
        response.errors.is_empty(),
        started.elapsed(),
    );
    response
}

/// A router serving `POST /graphql` for `executor`.
pub fn router<E: Executor>(executor: E, auth: Arc<Authenticator>) -> axum::Router {
    axum::Router::new()
        .route("/graphql", post(handler::<E>))
        .with_state(GraphqlState { executor, auth })
}

/// Errors async-graphql raises before any resolver runs — a syntax error, a missing field,
/// a wrongly typed variable or argument — carry no code; they are bad input by definition
/// (api.md), and without a code the gateway would mask them as `INTERNAL`.
pub fn code_request_errors(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
}

/// Applies Minute's subgraph limits (defence in depth behind the gateway's).
pub fn limits<Q, M, S>(
    builder: async_graphql::SchemaBuilder<Q, M, S>,
) -> async_graphql::SchemaBuilder<Q, M, S> {
    builder
        .limit_depth(16)
        .limit_complexity(5_000)
        .limit_recursive_depth(32)
}
