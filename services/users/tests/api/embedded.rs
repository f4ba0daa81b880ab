//! The service as `minute all` starts it without `DATABASE_URL`: settings from the
//! environment, embedded SQLite under `MINUTE_DATA_DIR`, the same flows through HTTP.

use std::time::Duration;

use minute_kit::config::Env;
use minute_users::{App, Settings};
use serde_json::json;

use crate::helpers::infra;

#[tokio::test]
async fn embedded_mode_serves_the_same_flows() {
    let dir = std::env::temp_dir().join(minute_testkit::unique("users-data"));
    let env = Env::from_pairs([
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("MINUTE_DATA_DIR", dir.to_str().expect("utf-8 temp dir")),
    ]);
    let mut settings = Settings::from_env(&env).expect("settings");
    settings.queue_expiry = Some(Duration::from_secs(60));
    let infra = infra().await;
    let app = App::build(settings, infra.clone()).await.expect("builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(infra.stop.clone()));
    assert!(
        dir.join("users.sqlite3").exists(),
        "the data dir and file are created"
    );

    let id = uuid::Uuid::now_v7().to_string();
    let token = infra.auth.keys().issue(&id, "s1", Some("emb"));
    let client = minute_testkit::GraphqlClient::new(port).with_token(token);
    let me = client.ok("{ me { id displayName } }", json!({})).await;
    assert_eq!(me["me"]["displayName"], "emb");
    let out = client
        .ok(
            "mutation { updateProfile(input: {displayName: \"Embedded\"}) { displayName } }",
            json!({}),
        )
        .await;
    assert_eq!(out["updateProfile"]["displayName"], "Embedded");
    let found = client
        .ok("{ searchUsers(query: \"EMB\") { id } }", json!({}))
        .await;
    assert_eq!(found["searchUsers"][0]["id"], id.as_str());
    let (status, _) = minute_testkit::http_get(port, "/readyz")
        .await
        .expect("answers");
    assert_eq!(status, 200);
    infra.stop.cancel();
}
