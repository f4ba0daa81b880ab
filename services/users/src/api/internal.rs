//! `GET /internal/users/{id}` -> 200 `{"id","username","displayName"}` | 404: other
//! services' synchronous fallback while their replica lags (design.md §3). Internal port
//! only; the gateway does not route it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{UserId, Users};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InternalUser {
    id: String,
    username: String,
    display_name: String,
}

async fn get_user(State(users): State<Arc<Users>>, Path(id): Path<String>) -> Response {
    let Ok(id) = UserId::parse(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // A caller asks because its replica has not heard of the user yet — typically one
    // registered milliseconds ago (`createGroup` naming a brand-new account), whose
    // `auth.account.registered.v1` may not have reached us either: wait for it briefly, as
    // the entity loader does, rather than answering "unknown user".
    let mut found = users.get(&id).await;
    for pause in super::loader::REGISTRATION_GRACE {
        if !matches!(found, Ok(None)) {
            break;
        }
        tokio::time::sleep(pause).await;
        found = users.get(&id).await;
    }
    match found {
        Ok(Some(p)) => Json(InternalUser {
            id: p.id.as_str().to_owned(),
            username: p.username,
            display_name: p.display_name,
        })
        .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "internal user lookup failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The internal routes.
pub fn routes(users: Arc<Users>) -> Router {
    Router::new()
        .route("/internal/users/{id}", get(get_user))
        .with_state(users)
}
