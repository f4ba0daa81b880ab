//! Every kind of bad access token is refused with UNAUTHENTICATED through a protected
//! mutation (`logout`), and none of them has any effect.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use minute_kit::auth::{Claims, JwtKeys};
use minute_kit::config::Env;
use serde_json::json;

use super::helpers::*;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload` signed with HMAC-SHA256 under `secret`, whatever the header says.
fn hmac_signed(header: &str, claims: &Claims, secret: &[u8]) -> String {
    let payload = b64(&serde_json::to_vec(claims).expect("claims"));
    let message = format!("{}.{payload}", b64(header.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

#[tokio::test]
async fn forged_expired_and_revoked_tokens_are_refused() {
    let app = spawn_app().await;
    let victim = app.register("victim").await;
    let keys = app.infra.auth.keys();
    let claims = keys.verify(&victim.access).expect("valid");
    let now = chrono::Utc::now().timestamp();
    let other_key = JwtKeys::new(
        &minute_kit::config::JwtSettings::from_env(
            &Env::from_pairs([("JWT_SECRET", "a-completely-different-secret-key!!")]),
            None,
        )
        .expect("settings"),
    );
    let payload = victim.access.split('.').nth(1).expect("payload").to_owned();
    let mut flipped = victim.access.clone();
    let last = flipped.pop().expect("a char");
    flipped.push(if last == 'A' { 'B' } else { 'A' });

    let forged: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
        ),
        (
            "other key",
            other_key.issue(&claims.sub, &claims.sid, Some("victim")),
        ),
        (
            "RS256 header, HMAC signature (RS/HS confusion)",
            hmac_signed(r#"{"alg":"RS256","typ":"JWT"}"#, &claims, SECRET.as_bytes()),
        ),
        (
            "HS512 with the right secret",
            hmac_signed(r#"{"alg":"HS512","typ":"JWT"}"#, &claims, SECRET.as_bytes()),
        ),
        (
            "expired",
            keys.sign(&Claims {
                iat: now - 3600,
                nbf: now - 3600,
                exp: now - 60,
                ..claims.clone()
            }),
        ),
        (
            "not yet valid",
            keys.sign(&Claims {
                nbf: now + 600,
                ..claims.clone()
            }),
        ),
        (
            "wrong iss",
            keys.sign(&Claims {
                iss: "evil".into(),
                ..claims.clone()
            }),
        ),
        (
            "wrong aud",
            keys.sign(&Claims {
                aud: "elsewhere".into(),
                ..claims.clone()
            }),
        ),
        (
            "typ refresh",
            keys.sign(&Claims {
                typ: "refresh".into(),
                ..claims.clone()
            }),
        ),
        ("the refresh token as access token", victim.refresh.clone()),
        ("garbled", "not.a.jwt".into()),
        ("flipped signature", flipped),
        ("empty", String::new()),
    ];
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
