//! Bad input is BAD_USER_INPUT and writes nothing.

use std::time::{Duration, Instant};

use minute_auth::store::Counts;
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn bad_registrations_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let huge = "p".repeat(1 << 20);
    let cases = [
        json!({"u": "", "p": PASSWORD}),
        json!({"u": "ab", "p": PASSWORD}),
        json!({"u": "a".repeat(33), "p": PASSWORD}),
        json!({"u": "bad name", "p": PASSWORD}),
        json!({"u": "émile", "p": PASSWORD}),
        json!({"u": "semi;colon", "p": PASSWORD}),
        json!({"u": "okname", "p": ""}),
        json!({"u": "okname", "p": "7 chars"}),
        json!({"u": "okname", "p": "x".repeat(129)}),
        json!({"u": "okname", "p": PASSWORD, "d": "d".repeat(65)}),
        json!({"u": "okname"}),
        json!({"p": PASSWORD}),
        json!({"u": 42, "p": PASSWORD}),
    ];
    for vars in &cases {
        let body = app.client.raw(REGISTER, vars.clone()).await;
        assert_eq!(
            code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{vars}: {body}"
        );
    }
    let missing = app
        .client
        .raw(
            "mutation { register(input: {username: \"okname\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(
        code(&missing).as_deref(),
        Some("BAD_USER_INPUT"),
        "{missing}"
    );

    let started = Instant::now();
    let body = app
        .client
        .raw(REGISTER, json!({"u": "okname", "p": huge}))
        .await;
    assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not hashed"
    );

    assert_eq!(app.store.counts().await.expect("counts"), Counts::default());
}

#[tokio::test]
async fn bad_logins_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    app.register("realuser").await;
    let before = app.store.counts().await.expect("counts");
    let huge = "p".repeat(1 << 20);
    for (u, p) in [
        ("", PASSWORD),
        ("x", PASSWORD),
        ("bad name", PASSWORD),
        ("realuser", ""),
        ("realuser", huge.as_str()),
    ] {
        let body = app.login(u, p).await;
        assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"), "{u:?}");
    }
    let body = app
        .client
        .raw(
            "mutation { login(input: {username: \"realuser\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body).as_deref(), Some("BAD_USER_INPUT"));
    let unchanged = app.store.counts().await.expect("counts");
    assert_eq!(
        (unchanged.accounts, unchanged.sessions),
        (before.accounts, before.sessions)
    );
    assert_eq!(unchanged.refresh_tokens, before.refresh_tokens);
}
