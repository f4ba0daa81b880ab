//! Every kind of bad access token, made from a genuine one: the forgeries the Auth issue
//! lists, for the tests that check each of them is refused wherever a token is taken.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload` signed with HMAC-SHA256 under `secret`, whatever the header says.
pub fn hmac_signed(header: &Value, claims: &Value, secret: &str) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HMAC signing cannot fail");
    format!("{message}.{signature}")
}

/// The claims of `token`, read without checking anything.
///
/// # Panics
/// If `token` is not three dot-separated parts with a JSON object in the middle.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `(what it is, token)` for every forgery of `genuine` (an access token signed with
/// HS256 under `secret`), plus `refresh`, the same session's refresh token, which is no
/// access token either. None of them may be accepted.
pub fn forgeries(genuine: &str, refresh: &str, secret: &str) -> Vec<(&'static str, String)> {
    let claims = claims_of(genuine);
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().expect("an object of claims") {
            c[k] = v.clone();
        }
        hmac_signed(&json!({"alg": "HS256", "typ": "JWT"}), &c, secret)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let now = i64::try_from(now).expect("a 64-bit time");
    let (head_and_payload, signature) = genuine.rsplit_once('.').expect("a signed JWT");
    let payload = genuine.split('.').nth(1).expect("payload");
    let mut flipped = genuine.to_owned();
    let last = flipped.pop().expect("a char");
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let mut other_user = genuine.split('.').map(str::to_owned).collect::<Vec<_>>();
    let mut other_claims = claims.clone();
    other_claims["sub"] = json!("someone-else");
    other_user[1] = b64(other_claims.to_string().as_bytes());
    vec![
        (
            "alg none",
            format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
        ),
        (
            "alg none, signature kept",
            format!("{}.{payload}.{signature}", b64(br#"{"alg":"none"}"#)),
        ),
        (
            "signed with another secret",
            hmac_signed(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &claims,
                "a-completely-different-secret-key-32b",
            ),
        ),
        (
            "RS256 header over an HMAC signature (RS/HS confusion)",
            hmac_signed(&json!({"alg": "RS256", "typ": "JWT"}), &claims, secret),
        ),
        (
            "HS512 header",
            hmac_signed(&json!({"alg": "HS512", "typ": "JWT"}), &claims, secret),
        ),
        (
            "expired",
            with(json!({"iat": now - 3600, "nbf": now - 3600, "exp": now - 120})),
        ),
        ("not valid yet", with(json!({"nbf": now + 600}))),
        ("wrong iss", with(json!({"iss": "evil"}))),
        ("wrong aud", with(json!({"aud": "elsewhere"}))),
        ("typ refresh", with(json!({"typ": "refresh"}))),
        (
            "another user's id under the genuine signature",
            other_user.join("."),
        ),
        ("the refresh token", refresh.to_owned()),
        ("truncated", genuine[..genuine.len() - 10].to_owned()),
        ("header and payload only", head_and_payload.to_owned()),
        ("flipped signature", flipped),
        ("garbage", "not.a.jwt".into()),
        ("not base64", "%%%.%%%.%%%".into()),
        ("4 KiB of junk", "A".repeat(4096)),
        ("empty", String::new()),
    ]
}
