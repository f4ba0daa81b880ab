//! `GET /internal/users/{id}` for other services' read-your-writes fallback.

use serde_json::{Value, json};

use crate::helpers::{ME, spawn_app};

#[tokio::test]
async fn internal_lookup() {
    let app = spawn_app().await;
    let (id, hal) = app.user("hal");
    hal.ok(ME, json!({})).await;
    let (status, body) = minute_testkit::http_get(app.port, &format!("/internal/users/{id}"))
        .await
        .expect("answers");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        json!({"id": id, "username": "hal", "displayName": "hal"})
    );
    let (status, _) = minute_testkit::http_get(app.port, "/internal/users/nobody")
        .await
        .expect("answers");
    assert_eq!(status, 404);
    let (status, _) = minute_testkit::http_get(app.port, "/readyz")
        .await
        .expect("answers");
    assert_eq!(status, 200);
}
