//! Every flow of the auth contract, end to end.

use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn register_then_login_refresh_and_logout() {
    let app = spawn_app().await;
    let mut events = app.auth_events().await;

    let alice = app.register("Alice").await;
    let claims = app
        .infra
        .auth
        .keys()
        .verify(&alice.access)
        .expect("valid access token");
    assert_eq!(claims.sub, alice.user_id);
    assert_eq!(
        claims.username.as_deref(),
        Some("alice"),
        "stored lower-case"
    );
    let registered = next_event(&mut events, "auth.account.registered").await;
    assert_eq!(registered.data["user_id"], json!(alice.user_id));
    assert_eq!(registered.data["username"], json!("alice"));
    assert_eq!(registered.data["display_name"], json!("Display Name"));

    let login = app.login_ok("ALICE", PASSWORD).await;
    assert_eq!(login.user_id, alice.user_id);
    let body = app.login("alice", PASSWORD).await;
    assert_eq!(body["data"]["login"]["expiresIn"], json!(900));

    let rotated = app.refresh_ok(&login.refresh).await;
    assert_ne!(rotated.refresh, login.refresh, "every refresh rotates");
    assert_eq!(rotated.user_id, alice.user_id);
    let sid = |t: &str| app.infra.auth.keys().verify(t).expect("valid").sid;
    assert_eq!(sid(&rotated.access), sid(&login.access), "same session");

    assert_eq!(app.logout_code(&rotated.access).await, None);
    let revoked = next_event(&mut events, "auth.session.revoked").await;
    assert_eq!(revoked.data["reason"], json!("logout"));
    assert_eq!(revoked.data["session_ids"], json!([sid(&login.access)]));
    assert_eq!(
        app.logout_code(&rotated.access).await.as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&app.refresh(&rotated.refresh).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        app.logout_code(&alice.access).await,
        None,
        "other sessions live on"
    );
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let mut events = app.auth_events().await;
    app.register("bob").await;
    let first = app.login_ok("bob", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;

    let replay = app.refresh(&first.refresh).await;
    assert_eq!(code(&replay).as_deref(), Some("UNAUTHENTICATED"));
    assert_eq!(
        code(&app.refresh(&second.refresh).await).as_deref(),
        Some("UNAUTHENTICATED"),
        "the current token of the family is dead too"
    );
    assert_eq!(
        app.logout_code(&second.access).await.as_deref(),
        Some("UNAUTHENTICATED")
    );
    let revoked = next_event(&mut events, "auth.session.revoked").await;
    assert_eq!(revoked.data["reason"], json!("refresh_reuse"));
}

#[tokio::test]
async fn logout_all_revokes_every_session() {
    let app = spawn_app().await;
    let mut events = app.auth_events().await;
    let a = app.register("carol").await;
    let b = app.login_ok("carol", PASSWORD).await;
    let other = app.register("dave").await;

    let data = app.as_user(&b.access).ok(LOGOUT_ALL, json!({})).await;
    assert_eq!(data["logoutAll"], json!(true));
    for s in [&a, &b] {
        assert_eq!(
            app.logout_code(&s.access).await.as_deref(),
            Some("UNAUTHENTICATED")
        );
        assert_eq!(
            code(&app.refresh(&s.refresh).await).as_deref(),
            Some("UNAUTHENTICATED")
        );
    }
    let revoked = next_event(&mut events, "auth.session.revoked").await;
    assert_eq!(revoked.data["reason"], json!("logout_all"));
    assert_eq!(
        revoked.data["session_ids"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        app.logout_code(&other.access).await,
        None,
        "other users untouched"
    );
    app.login_ok("carol", PASSWORD).await;
}

#[tokio::test]
async fn change_password_revokes_the_other_sessions() {
    let app = spawn_app().await;
    let mut events = app.auth_events().await;
    let here = app.register("erin").await;
    let elsewhere = app.login_ok("erin", PASSWORD).await;
    let me = app.as_user(&here.access);

    let wrong = me
        .raw(
            CHANGE_PASSWORD,
            json!({"c": "not my password", "n": "a new password"}),
        )
        .await;
    assert_eq!(code(&wrong).as_deref(), Some("UNAUTHENTICATED"));
    let short = me
        .raw(CHANGE_PASSWORD, json!({"c": PASSWORD, "n": "short"}))
        .await;
    assert_eq!(code(&short).as_deref(), Some("BAD_USER_INPUT"));
    let elsewhere = app.refresh_ok(&elsewhere.refresh).await;

    let data = me
        .ok(
            CHANGE_PASSWORD,
            json!({"c": PASSWORD, "n": "a new password"}),
        )
        .await;
    assert_eq!(data["changePassword"], json!(true));
    assert_eq!(
        app.logout_code(&elsewhere.access).await.as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&app.refresh(&elsewhere.refresh).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    let revoked = next_event(&mut events, "auth.session.revoked").await;
    assert_eq!(revoked.data["reason"], json!("password_changed"));

    let kept = app.refresh_ok(&here.refresh).await;
    assert_eq!(
        code(&app.login("erin", PASSWORD).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    app.login_ok("erin", "a new password").await;
    assert_eq!(
        app.logout_code(&kept.access).await,
        None,
        "the caller's session stays"
    );
}

#[tokio::test]
async fn usernames_are_unique_even_when_registrations_race() {
    let app = spawn_app().await;
    app.register("frank").await;
    let again = app
        .client
        .raw(REGISTER, json!({"u": "FRANK", "p": PASSWORD}))
        .await;
    assert_eq!(code(&again).as_deref(), Some("CONFLICT"));

    let vars = json!({"u": "grace", "p": PASSWORD});
    let (a, b) = tokio::join!(
        app.client.raw(REGISTER, vars.clone()),
        app.client.raw(REGISTER, vars.clone())
    );
    let mut codes = [code(&a), code(&b)];
    codes.sort();
    assert_eq!(codes, [None, Some("CONFLICT".to_owned())], "{a} {b}");
    assert_eq!(app.store.counts().await.expect("counts").accounts, 2);
}

#[tokio::test]
async fn an_event_stored_without_waking_the_relay_is_still_published() {
    use minute_auth::store::{Account, AuthStore};
    let database = minute_testkit::unique_database("auth");
    let first = spawn_on(&database, &[], true).await;
    let mut events = first.auth_events().await;
    // Written as `register` writes it, but the process "crashes" before relaying: the
    // store is used directly, and no relay is woken.
    let db = mongodb::Client::with_uri_str(minute_testkit::mongodb_uri())
        .await
        .expect("client")
        .database(&database);
    let store = minute_auth::store::mongo::MongoStore::new(db)
        .await
        .expect("store");
    let now = chrono::Utc::now();
    let account = Account {
        id: "u-crash".into(),
        username: "crash".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        created_at: now,
    };
    let event = minute_auth::events::account_registered("u-crash", "crash", None, now, None);
    store
        .create_account(&account, &event)
        .await
        .expect("stored");
    let got = next_event(&mut events, "auth.account.registered").await;
    assert_eq!(got.data["user_id"], json!("u-crash"));
    assert!(
        minute_testkit::eventually(std::time::Duration::from_secs(5), || async {
            store.counts().await.map(|c| c.outbox == 0).unwrap_or(false)
        })
        .await,
        "the relay empties the outbox"
    );
}

#[tokio::test]
async fn readiness_includes_the_database() {
    let app = spawn_app().await;
    let port = app.port;
    let ready = minute_testkit::eventually(std::time::Duration::from_secs(10), || async move {
        minute_testkit::http_get(port, "/readyz")
            .await
            .is_some_and(|(status, body)| status == 200 && body.contains("\"database\""))
    })
    .await;
    assert!(ready, "/readyz never reported ready with a database check");
}

#[tokio::test]
async fn all_in_one_mode_serves_every_flow_on_sqlite() {
    let app = spawn_embedded().await;
    let mut events = app.auth_events().await;
    let first = app.register("solo").await;
    assert_eq!(
        next_event(&mut events, "auth.account.registered")
            .await
            .data["username"],
        json!("solo")
    );
    let other = app.login_ok("solo", PASSWORD).await;
    let rotated = app.refresh_ok(&other.refresh).await;
    assert_eq!(
        code(&app.refresh(&other.refresh).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        app.logout_code(&rotated.access).await.as_deref(),
        Some("UNAUTHENTICATED"),
        "family revoked"
    );
    let me = app.as_user(&first.access);
    me.ok(
        CHANGE_PASSWORD,
        json!({"c": PASSWORD, "n": "another password"}),
    )
    .await;
    app.login_ok("solo", "another password").await;
    assert_eq!(me.ok(LOGOUT_ALL, json!({})).await["logoutAll"], json!(true));
    assert_eq!(
        app.logout_code(&first.access).await.as_deref(),
        Some("UNAUTHENTICATED")
    );
    let counts = app.store.counts().await.expect("counts");
    assert_eq!(counts.accounts, 1);
}
