//! `POST /graphql`. The same steps as `minute_kit::graphql::handler` (authenticate once,
//! pass the trace context) plus what auth alone needs: the client address for throttling,
//! and a code on errors async-graphql raises before any resolver runs (a missing field or
//! a wrongly typed variable), which are bad input (`BAD_USER_INPUT`) by definition.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use minute_kit::ApiError;
use minute_kit::auth::Authenticator;
use minute_kit::graphql::Caller;

use super::{AuthSchema, ClientIp};

#[derive(Clone)]
struct GraphqlState {
    schema: AuthSchema,
    auth: Arc<Authenticator>,
}

/// The router serving `POST /graphql`; serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(schema: AuthSchema, auth: Arc<Authenticator>) -> axum::Router {
    axum::Router::new()
        .route("/graphql", post(graphql))
        .with_state(GraphqlState { schema, auth })
}

async fn graphql(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let caller = match headers.get(axum::http::header::AUTHORIZATION) {
        None => Caller(Err(ApiError::unauthenticated("authentication required"))),
        Some(v) => match v.to_str() {
            Ok(v) => Caller(state.auth.header(v).await),
            Err(_) => Caller(Err(ApiError::unauthenticated(
                "malformed Authorization header",
            ))),
        },
    };
    let request = request
        .into_inner()
        .data(caller)
        .data(ClientIp(client_ip(&headers, peer.ip())));
    let schema = &state.schema;
    let mut response = minute_kit::graphql::traced(&headers, request, |request| async move {
        schema.execute(request).await
    })
    .await;
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    response.into()
}

/// The first `X-Forwarded-For` entry (set by the gateway / load balancer in front), else
/// the TCP peer.
fn client_ip(headers: &HeaderMap, peer: IpAddr) -> IpAddr {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_wins_over_the_peer() {
        let peer: IpAddr = [127, 0, 0, 1].into();
        let mut h = HeaderMap::new();
        assert_eq!(client_ip(&h, peer), peer);
        h.insert(
            "x-forwarded-for",
            "203.0.113.7, 10.0.0.1".parse().expect("header"),
        );
        assert_eq!(client_ip(&h, peer), IpAddr::from([203, 0, 113, 7]));
        h.insert("x-forwarded-for", "garbage".parse().expect("header"));
        assert_eq!(client_ip(&h, peer), peer);
    }
}
