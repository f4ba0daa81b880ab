//! The operations of the auth subgraph, independent of GraphQL.
//!
//! Sessions: each login (or registration) starts a session whose id is the access token's
//! `sid` and which owns one refresh-token family. Every refresh rotates the token; a
//! rotated token presented again means it leaked, so the whole family is revoked.
//! Revoking writes the session ids to the shared revocation set (checked by every
//! service's JWT verifier) before answering, and stores `auth.session.revoked.v1`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use minute_kit::auth::{Authenticator, Viewer};

use super::AuthError;
use super::credentials::{LoginAttempt, NewPassword, PresentedPassword, Registration};
use super::hasher::Hasher;
use super::tokens::RefreshToken;
use crate::config::ThrottleSettings;
use crate::events::{self, RelayWaker};
use crate::store::throttle::Throttle;
use crate::store::{Account, AuthStore, NewSession, RevocationEvent, RevokeScope, Rotation};

/// Tokens handed to a client.
#[derive(Debug, Clone)]
pub struct Issued {
    /// JWT access token.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// The user.
    pub user_id: String,
}

/// Why sessions are revoked (the event's `reason`).
pub mod reason {
    /// `logout`.
    pub const LOGOUT: &str = "logout";
    /// `logoutAll`.
    pub const LOGOUT_ALL: &str = "logout_all";
    /// `changePassword`.
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// A rotated refresh token was presented again.
    pub const REFRESH_REUSE: &str = "refresh_reuse";
}

/// What the service is built from.
pub struct Deps {
    /// Storage.
    pub store: Arc<dyn AuthStore>,
    /// Password hashing pool.
    pub hasher: Arc<Hasher>,
    /// Attempt counters.
    pub throttle: Arc<dyn Throttle>,
    /// Token keys and the revocation set.
    pub authenticator: Arc<Authenticator>,
    /// Wakes the outbox relay.
    pub relay: RelayWaker,
    /// Limits.
    pub limits: ThrottleSettings,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
}

/// The auth operations.
pub struct AuthService {
    deps: Deps,
}

impl AuthService {
    /// The service over `deps`.
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    /// Creates an account and logs it in.
    pub async fn register(
        &self,
        input: Registration,
        traceparent: Option<String>,
    ) -> Result<Issued, AuthError> {
        let d = &self.deps;
        let account = Account {
            id: uuid::Uuid::now_v7().to_string(),
            username: input.username.as_str().to_owned(),
            password_hash: d.hasher.hash(input.password.expose()).await?,
            created_at: Utc::now(),
        };
        let event = events::account_registered(
            &account.id,
            &account.username,
            input.display_name.as_ref().map(|l| l.as_str()),
            account.created_at,
            traceparent,
        );
        match d.store.create_account(&account, &event).await {
            Ok(()) => d.relay.wake(),
            Err(crate::store::StoreError::Duplicate) => return Err(AuthError::UsernameTaken),
            Err(e) => return Err(e.into()),
        }
        self.start_session(&account, None).await
    }

    /// Logs in. Unknown users and wrong passwords fail alike, after one hash each.
    pub async fn login(
        &self,
        input: LoginAttempt,
        client: Option<IpAddr>,
    ) -> Result<Issued, AuthError> {
        let keys = self.count_attempt(input.username.as_str(), client).await?;
        let account = self
            .deps
            .store
            .account_by_username(input.username.as_str())
            .await?;
        let phc = account.as_ref().map(|a| a.password_hash.as_str());
        let matches = self
            .deps
            .hasher
            .verify(input.password.expose(), phc)
            .await?;
        match account {
            Some(account) if matches => {
                self.forgive(&keys).await;
                self.start_session(&account, input.device_name.as_ref().map(|l| l.as_str()))
                    .await
            }
            _ => {
                metrics::counter!("minute_auth_login_failures_total").increment(1);
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// Rotates a refresh token; a reused one revokes its whole session.
    pub async fn refresh(
        &self,
        presented: &str,
        traceparent: Option<String>,
    ) -> Result<Issued, AuthError> {
        let token = RefreshToken::parse(presented)?;
        let next = RefreshToken::generate();
        let now = Utc::now();
        let expires = now + self.refresh_ttl();
        match self
            .deps
            .store
            .rotate(&token.hash(), &next.hash(), now, expires)
            .await?
        {
            Rotation::Rotated(s) => Ok(self.issue(&s.user_id, &s.session_id, &s.username, next)),
            Rotation::Reused(s) => {
                tracing::warn!(session = %s.session_id, "refresh token reused; revoking the session");
                self.revoke(
                    &s.user_id,
                    RevokeScope::Session(&s.session_id),
                    reason::REFRESH_REUSE,
                    traceparent,
                )
                .await?;
                Err(AuthError::InvalidRefreshToken)
            }
            Rotation::Invalid => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// Revokes the caller's session.
    pub async fn logout(&self, viewer: &Viewer, tp: Option<String>) -> Result<(), AuthError> {
        let scope = RevokeScope::Session(&viewer.session_id);
        self.revoke(&viewer.user_id, scope, reason::LOGOUT, tp)
            .await
    }

    /// Revokes every session of the caller.
    pub async fn logout_all(&self, viewer: &Viewer, tp: Option<String>) -> Result<(), AuthError> {
        self.revoke(&viewer.user_id, RevokeScope::All, reason::LOGOUT_ALL, tp)
            .await
    }

    /// Changes the password after checking the current one, and revokes every other
    /// session. Wrong current passwords count against the account's login limit.
    pub async fn change_password(
        &self,
        viewer: &Viewer,
        current: PresentedPassword,
        new: NewPassword,
        traceparent: Option<String>,
    ) -> Result<(), AuthError> {
        let d = &self.deps;
        let account = d
            .store
            .account_by_id(&viewer.user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let keys = self.count_attempt(&account.username, None).await?;
        if !d
            .hasher
            .verify(current.expose(), Some(&account.password_hash))
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        self.forgive(&keys).await;
        let hash = d.hasher.hash(new.expose()).await?;
        let user_id = viewer.user_id.clone();
        let event: RevocationEvent = Arc::new(move |ids: &[String]| {
            events::session_revoked(&user_id, ids, reason::PASSWORD_CHANGED, traceparent.clone())
        });
        let revoked = d
            .store
            .change_password(
                &viewer.user_id,
                &hash,
                &viewer.session_id,
                Utc::now(),
                event,
            )
            .await?;
        self.apply_revocations(&revoked).await
    }

    async fn revoke(
        &self,
        user_id: &str,
        scope: RevokeScope<'_>,
        why: &str,
        traceparent: Option<String>,
    ) -> Result<(), AuthError> {
        let owner = user_id.to_owned();
        let reason = why.to_owned();
        let event: RevocationEvent = Arc::new(move |ids: &[String]| {
            events::session_revoked(&owner, ids, &reason, traceparent.clone())
        });
        let mut revoked = self
            .deps
            .store
            .revoke_sessions(user_id, scope, why, Utc::now(), event)
            .await?;
        // The caller's own session goes into the revocation set even when the store had
        // it revoked already (an earlier attempt may have failed before reaching Redis).
        if let RevokeScope::Session(sid) = scope
            && !revoked.iter().any(|s| s == sid)
        {
            revoked.push(sid.to_owned());
        }
        self.apply_revocations(&revoked).await
    }

    /// Writes the ids to the shared revocation set before the caller is answered.
    async fn apply_revocations(&self, session_ids: &[String]) -> Result<(), AuthError> {
        let d = &self.deps;
        let ttl = d.authenticator.keys().access_ttl();
        for sid in session_ids {
            d.authenticator
                .revocations()
                .revoke(sid, ttl)
                .await
                .map_err(|e| AuthError::Internal(e.message))?;
        }
        d.relay.wake();
        Ok(())
    }

    async fn start_session(
        &self,
        account: &Account,
        device_name: Option<&str>,
    ) -> Result<Issued, AuthError> {
        let token = RefreshToken::generate();
        let now = Utc::now();
        let session = NewSession {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: account.id.clone(),
            username: account.username.clone(),
            device_name: device_name.map(str::to_owned),
            token_hash: token.hash(),
            created_at: now,
            expires_at: now + self.refresh_ttl(),
        };
        self.deps.store.create_session(&session).await?;
        Ok(self.issue(&account.id, &session.id, &account.username, token))
    }

    fn issue(
        &self,
        user_id: &str,
        session_id: &str,
        username: &str,
        token: RefreshToken,
    ) -> Issued {
        let keys = self.deps.authenticator.keys();
        Issued {
            access_token: keys.issue(user_id, session_id, Some(username)),
            refresh_token: token.expose().to_owned(),
            expires_in: keys.access_ttl().as_secs(),
            user_id: user_id.to_owned(),
        }
    }

    fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.deps.refresh_ttl).unwrap_or(chrono::Duration::days(30))
    }

    /// Counts one login attempt against the client address and the account name (known
    /// or not, so limits reveal nothing about which accounts exist). Refused past either
    /// limit, before any password work.
    async fn count_attempt(
        &self,
        username: &str,
        client: Option<IpAddr>,
    ) -> Result<Vec<String>, AuthError> {
        let d = &self.deps;
        let mut counted = Vec::with_capacity(2);
        let checks = client
            .map(|ip| (format!("ip:{ip}"), d.limits.ip_failures))
            .into_iter()
            .chain(std::iter::once((
                format!("account:{username}"),
                d.limits.account_failures,
            )));
        for (key, limit) in checks {
            let hit = d.throttle.hit(&key, d.limits.window).await?;
            if hit.count > limit {
                metrics::counter!("minute_rate_limit_hits_total", "limit" => "login").increment(1);
                return Err(AuthError::RateLimited {
                    retry_after_secs: hit.resets_in_secs,
                });
            }
            counted.push(key);
        }
        Ok(counted)
    }

    /// A successful attempt was not a failure: take it back from the counters.
    async fn forgive(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.deps.throttle.forgive(key).await {
                // Worst case the attempt stays counted as a failure; never fail a login for it.
                tracing::warn!(error = %e, "throttle counter not decremented");
            }
        }
    }
}
