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

/// Another service asks about a user registered milliseconds ago, before the registration
/// event arrived here: the lookup waits for it briefly instead of answering 404.
#[tokio::test]
async fn a_lookup_waits_briefly_for_a_registration_in_flight() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7().to_string();
    let port = app.port;
    let path = format!("/internal/users/{id}");
    let lookup = tokio::spawn(async move { minute_testkit::http_get(port, &path).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.registered(&id, "late_arrival", None).await;
    let (status, body) = lookup.await.expect("joins").expect("answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("late_arrival"), "{body}");
}
