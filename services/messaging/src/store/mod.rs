//! Storage of messages, markers, the outbox and the membership replica: the traits, and
//! two adapters with the same behaviour, proven by one conformance suite
//! (`tests/api/store.rs`): [`mongo::MongoStore`] and [`embedded::SqliteStore`].

pub mod embedded;
pub mod mongo;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{MarkerKind, Markers, Message, Page, Role, SearchTerms};

/// A storage failure (never shown to clients).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// MongoDB driver error.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Anything else (corrupt document, task panicked...).
    #[error("{0}")]
    Other(String),
}

/// An event waiting in the outbox: published to `minute.events` with `routing_key` and to
/// `minute.delivery` with `delivery_key`; `body` is the JSON envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Event id (envelope id); consumers dedupe by it.
    pub id: String,
    /// Routing key on `minute.events`.
    pub routing_key: String,
    /// Routing key on `minute.delivery` (`conv.<id>`).
    pub delivery_key: String,
    /// The serialised envelope.
    pub body: String,
}

/// Unpublished events of one stored record, in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Which record holds them (adapter-specific).
    pub source: String,
    /// The record's revision when read.
    pub rev: i64,
    /// The events.
    pub events: Vec<OutboxEvent>,
}

/// What `sendMessage` asks the store to create.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Pre-generated id.
    pub id: String,
    /// The conversation.
    pub conversation_id: String,
    /// Author.
    pub sender_id: String,
    /// Idempotency key, unique per sender.
    pub client_message_id: String,
    /// Trimmed, valid text.
    pub body: String,
    /// Replied-to message (checked by the caller).
    pub reply_to_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Result of a create.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// A new message with the next seq.
    Created(Message),
    /// The sender already sent this `clientMessageId`: the original.
    Existing(Message),
}

impl SendOutcome {
    /// The message either way.
    pub fn message(&self) -> &Message {
        match self {
            Self::Created(m) | Self::Existing(m) => m,
        }
    }
}

/// Builds the outbox events of a new message once its seq is known.
pub type EventsFor<'a> = &'a (dyn Fn(&Message) -> Vec<OutboxEvent> + Send + Sync);

/// Messages, per-member markers and their outbox.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Creates the message with the conversation's next seq and its events in one atomic
    /// step, or returns the original for a repeated `(sender, clientMessageId)`.
    async fn create(
        &self,
        new: NewMessage,
        events: EventsFor<'_>,
    ) -> Result<SendOutcome, StoreError>;
    /// Messages by id (missing ids are skipped).
    async fn get(&self, ids: &[String]) -> Result<Vec<Message>, StoreError>;
    /// Replaces `before` by `after` (same id) if nobody changed it meanwhile (same `rev`),
    /// appending `events` to its outbox atomically. False when `before` is stale.
    async fn replace(
        &self,
        before: &Message,
        after: &Message,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError>;
    /// A page of history, ascending by seq, and whether more lie beyond it (older for
    /// latest/before, newer for after/between).
    async fn history(
        &self,
        conversation_id: &str,
        page: Page,
    ) -> Result<(Vec<Message>, bool), StoreError>;
    /// The messages at the given (conversation, seq) positions.
    async fn at_seqs(&self, positions: &[(String, i64)]) -> Result<Vec<Message>, StoreError>;
    /// Last assigned seq per conversation (absent = 0).
    async fn last_seqs(&self, conversations: &[String])
    -> Result<HashMap<String, i64>, StoreError>;
    /// Per conversation: how many messages `user` sent after the given seq.
    async fn own_after(
        &self,
        user: &str,
        from: &[(String, i64)],
    ) -> Result<HashMap<String, i64>, StoreError>;
    /// Newest first, not deleted, every word present, within `conversations`.
    async fn search(
        &self,
        conversations: &[String],
        terms: &SearchTerms,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError>;
    /// Moves `user`'s marker forward to `seq` (never backwards), with its event. True if
    /// it moved.
    async fn mark(
        &self,
        conversation_id: &str,
        user: &str,
        kind: MarkerKind,
        seq: i64,
        at: DateTime<Utc>,
        event: OutboxEvent,
    ) -> Result<bool, StoreError>;
    /// `user`'s markers in each conversation that has any.
    async fn markers_of(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, Markers>, StoreError>;
    /// The `limit` members with the highest marker of `kind` (> 0), highest first.
    async fn top_markers(
        &self,
        conversation_id: &str,
        kind: MarkerKind,
        limit: i64,
    ) -> Result<Vec<Markers>, StoreError>;
    /// Up to `limit` records with unpublished events.
    async fn pending(&self, limit: i64) -> Result<Vec<OutboxItem>, StoreError>;
    /// Marks `item`'s events published (events added since stay pending).
    async fn mark_sent(&self, item: &OutboxItem) -> Result<(), StoreError>;
    /// [`MessageStore::mark_sent`] for several items, in as few writes as the adapter can.
    async fn mark_sent_many(&self, items: &[OutboxItem]) -> Result<(), StoreError> {
        for item in items {
            self.mark_sent(item).await?;
        }
        Ok(())
    }
}

/// A membership as the replica knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRecord {
    /// `None` once removed.
    pub role: Option<Role>,
    /// Membership version of the conversation when this was set.
    pub version: u64,
}

/// One member's state at a membership version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    /// The conversation.
    pub conversation_id: String,
    /// The user.
    pub user_id: String,
    /// Role, or `None` when removed.
    pub role: Option<Role>,
    /// Version after the change.
    pub version: u64,
}

/// The replica of memberships. Each (conversation, user) keeps the version that set it, and
/// a change applies only when newer: events are deltas about single members, so per-member
/// versions make applying them order-safe and idempotent.
#[async_trait]
pub trait MembershipStore: Send + Sync + 'static {
    /// Applies the change if newer than what is held. True if applied.
    async fn apply(&self, change: &MemberChange) -> Result<bool, StoreError>;
    /// What the replica knows about `user` in `conversation_id`.
    async fn member(
        &self,
        conversation_id: &str,
        user: &str,
    ) -> Result<Option<MemberRecord>, StoreError>;
    /// `user`'s records in the given conversations.
    async fn memberships(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, MemberRecord>, StoreError>;
    /// True when the replica holds any member record of the conversation.
    async fn knows_conversation(&self, conversation_id: &str) -> Result<bool, StoreError>;
    /// Up to `limit` conversations `user` is currently a member of.
    async fn conversations_of(&self, user: &str, limit: i64) -> Result<Vec<String>, StoreError>;
}

/// Both stores of one adapter.
#[derive(Clone)]
pub struct Stores {
    /// Messages, markers, outbox.
    pub messages: Arc<dyn MessageStore>,
    /// Membership replica.
    pub members: Arc<dyn MembershipStore>,
}

/// Outbox id separator inside `OutboxItem::source` and compound keys; ids never contain it.
pub(crate) const SEP: char = '\u{1f}';
