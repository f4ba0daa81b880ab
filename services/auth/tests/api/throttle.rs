//! Login throttling: per account and per client address, shared through Redis (and
//! in-process without it).

use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn the_101st_failed_login_is_rate_limited_while_other_accounts_log_in() {
    let app = spawn_app().await;
    app.register("target").await;
    app.register("bystander").await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = app.client.clone();
        attempts.spawn(async move {
            client
                .raw(
                    LOGIN,
                    json!({"u": "target", "p": format!("wrong password {i}")}),
                )
                .await
        });
        if attempts.len() >= 4 {
            let body = attempts.join_next().await.expect("a task").expect("joined");
            assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"), "{body}");
        }
    }
    while let Some(body) = attempts.join_next().await {
        let body = body.expect("joined");
        assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"), "{body}");
    }

    let limited = app.login("target", "wrong password 101").await;
    assert_eq!(code(&limited).as_deref(), Some("RATE_LIMITED"), "{limited}");
    let retry = limited["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .expect("retryAfter");
    assert!((1..=3600).contains(&retry), "{retry}");
    let right = app.login("target", PASSWORD).await;
    assert_eq!(
        code(&right).as_deref(),
        Some("RATE_LIMITED"),
        "even the right password waits"
    );

    app.login_ok("bystander", PASSWORD).await;
}

#[tokio::test]
async fn each_client_address_has_its_own_limit() {
    let app = spawn_with(&[("AUTH_LOGIN_FAILURES_PER_IP", "3")]).await;
    app.register("someone").await;
    for i in 0..3 {
        let body = app
            .login_from("198.51.100.7", &format!("nobody{i}"), PASSWORD)
            .await;
        assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"));
    }
    let body = app.login_from("198.51.100.7", "someone", PASSWORD).await;
    assert_eq!(code(&body).as_deref(), Some("RATE_LIMITED"));
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some()
    );
    let body = app.login_from("198.51.100.8", "someone", PASSWORD).await;
    assert_eq!(code(&body), None, "another address is not affected: {body}");
}

#[tokio::test]
async fn without_redis_the_limits_are_kept_in_process() {
    let app = spawn_on(
        &minute_testkit::unique_database("auth"),
        &[("AUTH_LOGIN_FAILURES_PER_ACCOUNT", "2")],
        false,
    )
    .await;
    let s = app.register("local").await;
    for _ in 0..2 {
        assert_eq!(
            code(&app.login("local", "wrong password").await).as_deref(),
            Some("UNAUTHENTICATED")
        );
    }
    assert_eq!(
        code(&app.login("local", PASSWORD).await).as_deref(),
        Some("RATE_LIMITED")
    );
    assert_eq!(app.logout_code(&s.access).await, None);
    assert_eq!(
        app.logout_code(&s.access).await.as_deref(),
        Some("UNAUTHENTICATED"),
        "in-process revocations work too"
    );
}

#[tokio::test]
async fn a_login_storm_does_not_starve_other_requests() {
    let app = spawn_with(&[("AUTH_LOGIN_FAILURES_PER_ACCOUNT", "1000")]).await;
    app.register("stormed").await;
    let mut storm = tokio::task::JoinSet::new();
    let storm_started = std::time::Instant::now();
    for i in 0..40 {
        let client = app.client.clone();
        storm.spawn(async move {
            client
                .raw(LOGIN, json!({"u": "stormed", "p": format!("guess {i}")}))
                .await
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let health = minute_testkit::http_get(app.port, "/healthz").await;
    let cheap = app.refresh("not-a-refresh-token").await;
    let waited = started.elapsed();
    assert_eq!(health.map(|(status, _)| status), Some(200));
    assert_eq!(code(&cheap).as_deref(), Some("UNAUTHENTICATED"));
    assert!(
        waited < std::time::Duration::from_millis(500),
        "waited {waited:?} behind the storm"
    );
    while let Some(r) = storm.join_next().await {
        assert_eq!(
            code(&r.expect("joined")).as_deref(),
            Some("UNAUTHENTICATED")
        );
    }
    let storm_took = storm_started.elapsed();
    assert!(
        storm_took > started.duration_since(storm_started) + waited,
        "the cheap requests were answered while the storm was still hashing ({storm_took:?})"
    );
}
