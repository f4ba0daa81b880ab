//! Internal HTTP endpoints for other services (not routed by the gateway), answering from
//! the source of truth so their replicas can read their writes:
//! - `GET /internal/conversations/{id}/members/{userId}` -> 200
//!   `{"member":bool,"role":"OWNER"|"ADMIN"|"MEMBER"|null,"kind":"DIRECT"|"GROUP","version":u64}`
//!   | 404 (no such conversation);
//! - `GET /internal/users/{userId}/conversations` -> 200 `{"conversationIds":[...]}` (all).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::domain::service::Service;

/// The internal routes.
pub fn router(service: Service) -> Router {
    Router::new()
        .route(
            "/internal/conversations/{id}/members/{user_id}",
            get(membership),
        )
        .route(
            "/internal/users/{user_id}/conversations",
            get(conversations),
        )
        .with_state(service)
}

fn failed(e: crate::domain::Error) -> Response {
    tracing::error!(error = %e, "internal endpoint failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

async fn membership(
    State(service): State<Service>,
    Path((id, user_id)): Path<(String, String)>,
) -> Response {
    match service.membership(&id, &user_id).await {
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Ok(Some((conv, member))) => Json(json!({
            "member": member.is_some(),
            "role": member.map(|m| m.role.as_str()),
            "kind": conv.kind.as_str(),
            "version": conv.version,
        }))
        .into_response(),
        Err(e) => failed(e),
    }
}

async fn conversations(State(service): State<Service>, Path(user_id): Path<String>) -> Response {
    match service.conversation_ids(&user_id).await {
        Ok(ids) => {
            let ids: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
            Json(json!({ "conversationIds": ids })).into_response()
        }
        Err(e) => failed(e),
    }
}
