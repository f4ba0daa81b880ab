//! Access tokens: HS256 JWTs signed with `JWT_SECRET`, the algorithm pinned, `iss`, `aud`,
//! `exp`, `nbf` and `typ = access` checked; `JWT_SECRET_PREVIOUS` verifies only, so the
//! secret can rotate. A token of a revoked session is refused within 2 s everywhere:
//! auth writes the session id to Redis (TTL = access-token lifetime) before answering,
//! and every verifier checks it ([`Revocations`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtSettings;
use crate::error::ApiError;

/// `typ` of access tokens.
pub const ACCESS: &str = "access";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id (one per login / refresh-token family).
    pub sid: String,
    /// Token id.
    pub jti: String,
    /// Issued at (s).
    pub iat: i64,
    /// Not before (s).
    pub nbf: i64,
    /// Expires (s).
    pub exp: i64,
    /// Token type: `access`.
    pub typ: String,
    /// Username at issue time (lets `me` answer before the profile event lands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// User id.
    pub user_id: String,
    /// Session id.
    pub session_id: String,
    /// Username claim, if present.
    pub username: Option<String>,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: Vec<DecodingKey>,
    validation: Validation,
    settings: JwtSettings,
}

impl JwtKeys {
    /// Keys from settings.
    pub fn new(settings: &JwtSettings) -> Self {
        let mut decoding = vec![DecodingKey::from_secret(&settings.secret)];
        if let Some(prev) = &settings.previous_secret {
            decoding.push(DecodingKey::from_secret(prev));
        }
        // Only HS256: `alg: none` and RS/HS confusion are refused by the library.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&settings.secret),
            decoding,
            validation,
            settings: settings.clone(),
        }
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.settings.access_ttl
    }

    /// Issues an access token for `user_id` in session `session_id`.
    pub fn issue(&self, user_id: &str, session_id: &str, username: Option<&str>) -> String {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.settings.access_ttl.as_secs()).unwrap_or(900);
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            typ: ACCESS.to_owned(),
            username: username.map(str::to_owned),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the current key (tests forge tokens with it).
    pub fn sign(&self, claims: &Claims) -> String {
        // HS256 signing of a serialisable struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verifies signature, algorithm, issuer, audience, times and type.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        for key in &self.decoding {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.typ != ACCESS {
                        return Err(ApiError::unauthenticated("not an access token"));
                    }
                    return Ok(c);
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    continue;
                }
                Err(e) => {
                    return Err(ApiError::unauthenticated(format!("invalid token: {e}")));
                }
            }
        }
        Err(ApiError::unauthenticated("invalid token: bad signature"))
    }
}

/// Where revoked session ids live.
#[async_trait]
pub trait Revocations: Send + Sync {
    /// Marks a session revoked for `ttl` (the access-token lifetime).
    async fn revoke(&self, session_id: &str, ttl: Duration) -> Result<(), ApiError>;
    /// True when the session was revoked.
    async fn is_revoked(&self, session_id: &str) -> Result<bool, ApiError>;
}

/// In-process revocations for `minute all` without Redis.
#[derive(Default)]
pub struct MemoryRevocations {
    revoked: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl Revocations for MemoryRevocations {
    async fn revoke(&self, session_id: &str, ttl: Duration) -> Result<(), ApiError> {
        let mut m = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, until| *until > now);
        m.insert(session_id.to_owned(), now + ttl);
        Ok(())
    }
    async fn is_revoked(&self, session_id: &str) -> Result<bool, ApiError> {
        let m = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.get(session_id)
            .is_some_and(|until| *until > Instant::now()))
    }
}

/// Revocations shared by every replica through Redis: `minute:revoked:<sid>` with a TTL.
///
/// While Redis is unreachable the check fails open: a session is refused only when this
/// process already knows it is revoked (it revoked it, or Redis said so before). Refusing
/// every request instead would stop all messaging during a Redis outage (issue 12's fault
/// test: "Redis stopped for 20 s, messages still flow"); the exposure is bounded by the
/// access-token lifetime, and revocations made while Redis is down fail at the issuer.
pub struct RedisRevocations {
    conn: ::redis::aio::ConnectionManager,
    prefix: String,
    known: Mutex<HashMap<String, Instant>>,
    last_warning: Mutex<Option<Instant>>,
}

/// How long a revocation learnt from Redis is remembered for outages (an access token's
/// default lifetime).
const REMEMBER_REVOKED: Duration = Duration::from_secs(900);
/// How many revocations one process remembers for outages at the most.
const REMEMBER_AT_MOST: usize = 100_000;

impl RedisRevocations {
    /// Uses `conn`; `prefix` keeps tests apart (production: `minute:`).
    pub fn new(conn: ::redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            known: Mutex::default(),
            last_warning: Mutex::default(),
        }
    }
    fn key(&self, sid: &str) -> String {
        format!("{}revoked:{sid}", self.prefix)
    }
    fn remember(&self, sid: &str, ttl: Duration) {
        let mut m = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, until| *until > now);
        if m.len() >= REMEMBER_AT_MOST {
            // Bounded: past the cap, forget the revocation that expires first (Redis holds
            // them all; this is only the outage fallback).
            if let Some(first) = m
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| k.clone())
            {
                m.remove(&first);
            }
        }
        m.insert(sid.to_owned(), now + ttl);
    }
    fn known_revoked(&self, sid: &str) -> bool {
        let m = self.known.lock().unwrap_or_else(|p| p.into_inner());
        m.get(sid).is_some_and(|until| *until > Instant::now())
    }
    /// One warning per 10 s, not one per request, while Redis is down.
    fn warn_unavailable(&self, e: &::redis::RedisError) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, "Redis unavailable: session revocation checked against this process's memory only");
        }
    }
}

#[async_trait]
impl Revocations for RedisRevocations {
    async fn revoke(&self, session_id: &str, ttl: Duration) -> Result<(), ApiError> {
        self.remember(session_id, ttl);
        let mut c = self.conn.clone();
        let secs = ttl.as_secs().max(1) + 5;
        ::redis::cmd("SET")
            .arg(self.key(session_id))
            .arg(1)
            .arg("EX")
            .arg(secs)
            .query_async::<()>(&mut c)
            .await
            .map_err(ApiError::internal)
    }
    async fn is_revoked(&self, session_id: &str) -> Result<bool, ApiError> {
        let mut c = self.conn.clone();
        match ::redis::cmd("EXISTS")
            .arg(self.key(session_id))
            .query_async::<bool>(&mut c)
            .await
        {
            Ok(true) => {
                self.remember(session_id, REMEMBER_REVOKED);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                self.warn_unavailable(&e);
                Ok(self.known_revoked(session_id))
            }
        }
    }
}

/// Turns an `Authorization` header into a [`Viewer`]: verifies the token, then checks
/// that its session is not revoked.
#[derive(Clone)]
pub struct Authenticator {
    keys: JwtKeys,
    revocations: Arc<dyn Revocations>,
}

impl Authenticator {
    /// From keys and the revocation store.
    pub fn new(keys: JwtKeys, revocations: Arc<dyn Revocations>) -> Self {
        Self { keys, revocations }
    }

    /// The keys (auth issues tokens with them).
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// The revocation store.
    pub fn revocations(&self) -> &Arc<dyn Revocations> {
        &self.revocations
    }

    /// Authenticates a bearer token.
    pub async fn token(&self, token: &str) -> Result<Viewer, ApiError> {
        let claims = self.keys.verify(token)?;
        if self.revocations.is_revoked(&claims.sid).await? {
            return Err(ApiError::unauthenticated("session revoked"));
        }
        Ok(Viewer {
            user_id: claims.sub,
            session_id: claims.sid,
            username: claims.username,
        })
    }

    /// Authenticates an `Authorization: Bearer <token>` header value.
    pub async fn header(&self, value: &str) -> Result<Viewer, ApiError> {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthenticated("expected Authorization: Bearer <token>"))?;
        self.token(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, JwtSettings};

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(
            &JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", secret)]), None)
                .expect("settings"),
        )
    }

    fn b64(s: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() {
        let k = keys(SECRET);
        let t = k.issue("u1", "s1", Some("alice"));
        let c = k.verify(&t).expect("valid");
        assert_eq!((c.sub.as_str(), c.sid.as_str()), ("u1", "s1"));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let k = keys(SECRET);
        let good = k.issue("u1", "s1", None);
        let claims = k.verify(&good).expect("valid");
        let other = keys("another-secret-another-secret-!!");
        assert!(
            k.verify(&other.issue("u1", "s1", None)).is_err(),
            "other key"
        );

        let payload = good.split('.').nth(1).expect("payload");
        let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(k.verify(&none).is_err(), "alg none");
        let rs = format!("{}.{payload}.xyz", b64(br#"{"alg":"RS256","typ":"JWT"}"#));
        assert!(k.verify(&rs).is_err(), "RS256 header");

        let now = chrono::Utc::now().timestamp();
        let expired = Claims {
            exp: now - 60,
            iat: now - 120,
            nbf: now - 120,
            ..claims.clone()
        };
        assert!(k.verify(&k.sign(&expired)).is_err(), "expired");
        let future = Claims {
            nbf: now + 600,
            ..claims.clone()
        };
        assert!(k.verify(&k.sign(&future)).is_err(), "not yet valid");
        let iss = Claims {
            iss: "evil".into(),
            ..claims.clone()
        };
        assert!(k.verify(&k.sign(&iss)).is_err(), "issuer");
        let aud = Claims {
            aud: "other".into(),
            ..claims.clone()
        };
        assert!(k.verify(&k.sign(&aud)).is_err(), "audience");
        let refresh = Claims {
            typ: "refresh".into(),
            ..claims
        };
        assert!(k.verify(&k.sign(&refresh)).is_err(), "typ");
        assert!(k.verify("garbage").is_err());
        assert!(k.verify("").is_err());
    }

    #[test]
    fn previous_secret_verifies_during_rotation() {
        let old = keys(SECRET);
        let token = old.issue("u1", "s1", None);
        let rotated = JwtKeys::new(
            &JwtSettings::from_env(
                &Env::from_pairs([
                    ("JWT_SECRET", "a-brand-new-secret-of-32-bytes!!"),
                    ("JWT_SECRET_PREVIOUS", SECRET),
                ]),
                None,
            )
            .expect("settings"),
        );
        assert!(rotated.verify(&token).is_ok());
    }

    #[tokio::test]
    async fn revoked_sessions_are_refused() {
        let auth = Authenticator::new(keys(SECRET), Arc::new(MemoryRevocations::default()));
        let t = auth.keys().issue("u1", "s1", None);
        assert!(auth.header(&format!("Bearer {t}")).await.is_ok());
        assert!(auth.header(&t).await.is_err(), "no Bearer prefix");
        auth.revocations()
            .revoke("s1", Duration::from_secs(60))
            .await
            .expect("revoke");
        assert!(auth.header(&format!("Bearer {t}")).await.is_err());
    }
}
