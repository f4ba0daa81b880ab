//! Where profiles live: the [`UserStore`] trait and its two adapters, [`MongoStore`]
//! (production) and [`SqliteStore`] (embedded, `minute all`). Both pass the same
//! conformance suite (`tests/api/store.rs`).
//!
//! Every write carries its outbox event ([`OutboxEntry`]) and stores it atomically with
//! the change (MongoDB: in the profile document; SQLite: in the same transaction). The
//! relay in `events.rs` publishes pending entries and marks them sent.
//!
//! Search is served by indexes on lower-cased copies of the username and the display
//! name: a prefix is a range `[prefix, prefix + U+10FFFF)` on each, never a scan.

mod embedded;
mod mongo;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Storage;
use crate::domain::{Profile, SearchQuery, UserId};

pub use embedded::SqliteStore;
pub use mongo::MongoStore;

/// A storage failure (the message goes to the log, never to the client).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    pub(crate) fn from_display(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// An event waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The event id (the envelope's).
    pub id: String,
    /// Routing key on `minute.events`.
    pub routing_key: String,
    /// The serialised envelope.
    pub body: String,
}

/// An unsent outbox entry and the profile it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The profile's user.
    pub user_id: UserId,
    /// The event.
    pub entry: OutboxEntry,
}

/// The profile store.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// One profile.
    async fn get(&self, id: &UserId) -> Result<Option<Profile>, StoreError>;
    /// Many profiles in ONE query (the `User` entity loader); unknown ids are left out.
    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<Profile>, StoreError>;
    /// Up to `limit` profiles whose username starts with the prefix (by username), then
    /// those whose display name does (by display name), without duplicates.
    async fn search(&self, query: &SearchQuery, limit: usize) -> Result<Vec<Profile>, StoreError>;
    /// Inserts `profile` with its event unless a profile with its id exists; true when
    /// inserted.
    async fn insert(&self, profile: &Profile, event: &OutboxEntry) -> Result<bool, StoreError>;
    /// Replaces the profile whose version is `profile.version - 1` and stores `event` with
    /// it; false (nothing written) when the stored version differs.
    async fn replace(&self, profile: &Profile, event: &OutboxEntry) -> Result<bool, StoreError>;
    /// Up to `limit` unsent events, oldest profiles first, each profile's in order.
    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError>;
    /// Marks one event sent.
    async fn mark_sent(&self, user_id: &UserId, event_id: &str) -> Result<(), StoreError>;
    /// Readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store the settings name (creating indexes / tables).
pub async fn open(storage: &Storage) -> anyhow::Result<Arc<dyn UserStore>> {
    Ok(match storage {
        Storage::Mongo(settings) => {
            let db = minute_kit::mongo::connect(settings).await?;
            Arc::new(MongoStore::open(db).await?)
        }
        Storage::Embedded(path) => Arc::new(SqliteStore::open(path)?),
    })
}

/// Merges the two halves of a search: username matches first, then display-name matches
/// not already present, at most `limit`.
pub(crate) fn merge_search(
    by_username: Vec<Profile>,
    by_display_name: Vec<Profile>,
    limit: usize,
) -> Vec<Profile> {
    let mut out = by_username;
    out.truncate(limit);
    for p in by_display_name {
        if out.len() >= limit {
            break;
        }
        if !out.iter().any(|q| q.id == p.id) {
            out.push(p);
        }
    }
    out
}
