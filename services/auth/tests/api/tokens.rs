//! Every kind of bad access token is refused with UNAUTHENTICATED through a protected
//! mutation (`logout`), and none of them has any effect.

use minute_kit::auth::JwtKeys;
use minute_kit::config::Env;
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn forged_expired_and_revoked_tokens_are_refused() {
    let app = spawn_app().await;
    let victim = app.register("victim").await;
    let forged = minute_testkit::jwt::forgeries(&victim.access, &victim.refresh, SECRET);
    for (what, token) in &forged {
        assert_eq!(
            app.logout_code(token).await.as_deref(),
            Some("UNAUTHENTICATED"),
            "{what}"
        );
    }
    let no_header = app.client.raw(LOGOUT, json!({})).await;
    assert_eq!(
        code(&no_header).as_deref(),
        Some("UNAUTHENTICATED"),
        "no header"
    );

    // None of the forgeries revoked anything: the genuine token still works, once.
    assert_eq!(app.logout_code(&victim.access).await, None);
    assert_eq!(
        app.logout_code(&victim.access).await.as_deref(),
        Some("UNAUTHENTICATED"),
        "a token of a revoked session"
    );
}

#[tokio::test]
async fn garbage_refresh_tokens_are_unauthenticated() {
    let app = spawn_app().await;
    let s = app.register("holder").await;
    for bad in ["", "x", &s.access, &"A".repeat(43), &"é".repeat(43)] {
        assert_eq!(
            code(&app.refresh(bad).await).as_deref(),
            Some("UNAUTHENTICATED"),
            "{bad}"
        );
    }
    app.refresh_ok(&s.refresh).await;
}

#[tokio::test]
async fn tokens_of_the_previous_secret_verify_during_rotation() {
    let rotated = minute_kit::config::JwtSettings::from_env(
        &Env::from_pairs([
            ("JWT_SECRET", "the-next-secret-the-next-secret-the-next"),
            ("JWT_SECRET_PREVIOUS", SECRET),
        ]),
        None,
    )
    .expect("settings");
    let app = spawn_full(&minute_testkit::unique_database("auth"), &[], true, rotated).await;
    let old_keys = JwtKeys::new(&jwt());
    let issued_before_rotation = old_keys.issue("u-before", "s-before", Some("before"));
    assert_eq!(app.logout_code(&issued_before_rotation).await, None);

    let fresh = app.register("after").await;
    assert!(
        old_keys.verify(&fresh.access).is_err(),
        "new tokens use the new secret"
    );
    assert_eq!(app.logout_code(&fresh.access).await, None);
}
