//! Persistence of accounts, sessions (refresh-token families), refresh-token hashes and the
//! outbox, behind one trait with two adapters: [`mongo::MongoStore`] (production) and
//! [`embedded::SqliteStore`] (all-in-one mode). The conformance suite in
//! `tests/api/store.rs` runs on both. Login throttle counters live in [`throttle`]
//! (Redis, or in-process).
//!
//! Invariants every adapter keeps:
//! - `username` is unique (a unique index, not read-then-write): a registration race
//!   yields one account and one [`StoreError::Duplicate`].
//! - A refresh token is rotated at most once: the rotation is a conditional update on
//!   "not rotated yet"; the loser of a race sees [`Rotation::Reused`].
//! - Events are written in the same transaction as the change they describe (outbox).

pub mod embedded;
pub mod mongo;
pub mod throttle;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::events::OutboxEvent;

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub id: String,
    /// Lower-case username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A session to create with its first refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Session id (`sid` claim; the refresh-token family).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Owner's username (for the `username` claim on refresh).
    pub username: String,
    /// Device label.
    pub device_name: Option<String>,
    /// SHA-256 of the first refresh token.
    pub token_hash: String,
    /// Now.
    pub created_at: DateTime<Utc>,
    /// When the first refresh token expires.
    pub expires_at: DateTime<Utc>,
}

/// The session a refresh token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// Session id.
    pub session_id: String,
    /// Owner.
    pub user_id: String,
    /// Owner's username.
    pub username: String,
}

/// Outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now rotated and the new hash is the current one.
    Rotated(SessionRef),
    /// The token had been rotated already: a replay (RFC 9700 §4.14.2). The caller
    /// revokes the family.
    Reused(SessionRef),
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// Which of a user's live sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope<'a> {
    /// This one.
    Session(&'a str),
    /// All of them.
    All,
    /// All but this one.
    AllExcept(&'a str),
}

impl RevokeScope<'_> {
    /// True when `session_id` is in scope.
    pub fn includes(&self, session_id: &str) -> bool {
        match self {
            Self::Session(s) => *s == session_id,
            Self::All => true,
            Self::AllExcept(s) => *s != session_id,
        }
    }
}

/// Builds the event for the sessions a revocation actually revoked (called inside the
/// write, so the event is stored with it).
pub type RevocationEvent = Arc<dyn Fn(&[String]) -> OutboxEvent + Send + Sync>;

/// Row counts (tests assert that refused calls wrote nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Accounts.
    pub accounts: u64,
    /// Sessions.
    pub sessions: u64,
    /// Refresh-token hashes.
    pub refresh_tokens: u64,
    /// Unsent events.
    pub outbox: u64,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint (the username).
    #[error("duplicate key")]
    Duplicate,
    /// The database failed.
    #[error("database: {0}")]
    Backend(String),
}

impl StoreError {
    pub(crate) fn backend(e: impl std::fmt::Display) -> Self {
        Self::Backend(e.to_string())
    }
}

/// Everything auth keeps.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    /// Stores a new account with its `auth.account.registered.v1` event;
    /// [`StoreError::Duplicate`] when the username is taken.
    async fn create_account(
        &self,
        account: &Account,
        event: &OutboxEvent,
    ) -> Result<(), StoreError>;
    /// The account with this (lower-case) username.
    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError>;
    /// The account with this id.
    async fn account_by_id(&self, user_id: &str) -> Result<Option<Account>, StoreError>;
    /// Starts a session with its first refresh token.
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError>;
    /// Rotates refresh token `old_hash` to `new_hash` (valid until `expires_at`).
    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;
    /// Revokes `user_id`'s live sessions in `scope` with `reason`, storing `event(ids)`
    /// in the same write when any was revoked; returns the ids revoked now.
    async fn revoke_sessions(
        &self,
        user_id: &str,
        scope: RevokeScope<'_>,
        reason: &str,
        now: DateTime<Utc>,
        event: RevocationEvent,
    ) -> Result<Vec<String>, StoreError>;
    /// Replaces the password hash and revokes every other live session in one write;
    /// returns the ids revoked.
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: DateTime<Utc>,
        event: RevocationEvent,
    ) -> Result<Vec<String>, StoreError>;
    /// Up to `limit` unsent events, oldest first.
    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError>;
    /// Marks an event published.
    async fn mark_sent(&self, event_id: &str) -> Result<(), StoreError>;
    /// Row counts.
    async fn counts(&self) -> Result<Counts, StoreError>;
    /// Deletes refresh tokens and sessions that expired before `now` (a session expires
    /// with its newest refresh token); returns how many rows went.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Purges expired tokens and sessions every `every` until `stop` fires, so storage stays
/// bounded by the live sessions.
pub async fn purge_periodically(
    store: Arc<dyn AuthStore>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store.purge_expired(Utc::now()).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired sessions and tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
    }
}
