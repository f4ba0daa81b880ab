//! Storage of conversations, members, the outbox and the local replicas, behind two
//! traits with two adapters each: [`mongo`] (production) and [`embedded`] (SQLite, for
//! `minute all`). One conformance suite ([`conformance`]) runs against both.
//!
//! Every write that must produce events takes them as [`OutboxEvent`]s and stores them in
//! the same transaction; the relay in `events.rs` publishes and deletes them.

pub mod embedded;
pub mod mongo;

#[cfg(test)]
mod conformance;

use std::collections::HashSet;

use async_trait::async_trait;

use crate::domain::{
    ActivityCursor, Change, Conversation, ConversationId, KnownUser, Member, NewConversation,
    UserId,
};

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The conversation moved since the change was decided (or does not exist): decide again.
    #[error("the conversation changed concurrently")]
    VersionConflict,
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// A backend error from anything printable.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        Self::Backend(e.to_string())
    }
}

/// An event waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event id (envelope id; consumers dedupe by it).
    pub id: String,
    /// Routing key on `minute.events`.
    pub routing_key: String,
    /// Routing keys on `minute.delivery` (`conv.<id>`, `user.<id>`).
    pub delivery_keys: Vec<String>,
    /// The JSON envelope.
    pub body: String,
    /// Trace context of the request that caused it.
    pub traceparent: Option<String>,
}

/// Outcome of [`ConversationStore::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Stored as given.
    Inserted,
    /// A direct conversation for this pair already existed (the given one was not stored).
    ExistingDirect(ConversationId),
}

/// One of a user's memberships with the activity time it is ordered by.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The membership.
    pub member: Member,
    /// Last activity of the conversation as kept on the membership, ms.
    pub activity_ms: i64,
}

/// Conversations, members and the outbox.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Stores a conversation with its members and events atomically. For a direct
    /// conversation whose pair exists, stores nothing and names the existing one (the pair
    /// is a unique key, so racing creators agree).
    async fn create(
        &self,
        new: &NewConversation,
        outbox: &[OutboxEvent],
    ) -> Result<Created, StoreError>;

    /// A conversation by id.
    async fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError>;

    /// Conversations by ids (any order; missing ones left out).
    async fn conversations(&self, ids: &[ConversationId]) -> Result<Vec<Conversation>, StoreError>;

    /// One membership.
    async fn member(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError>;

    /// The members among `users` (one query, for bulk checks).
    async fn members_among(
        &self,
        conversation: &ConversationId,
        users: &[UserId],
    ) -> Result<Vec<Member>, StoreError>;

    /// Up to `limit` members ordered by user id, after `after`.
    async fn members_page(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError>;

    /// Applies `change` with its events atomically if the conversation is still at
    /// `change.expected_version`; else [`StoreError::VersionConflict`] and nothing written.
    async fn apply(&self, change: &Change, outbox: &[OutboxEvent]) -> Result<(), StoreError>;

    /// Up to `limit` of `user`'s memberships, most recently active first, after `after`.
    async fn memberships(
        &self,
        user: &UserId,
        after: Option<&ActivityCursor>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError>;

    /// Ids of every conversation `user` is in.
    async fn conversation_ids_of(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError>;

    /// Moves the conversation's activity to `at_ms` if later, once per `event_id`
    /// (false: already processed).
    async fn record_activity(
        &self,
        event_id: &str,
        conversation: &ConversationId,
        at_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` unsent events, oldest first.
    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Forgets published events.
    async fn delete_outbox(&self, ids: &[String]) -> Result<(), StoreError>;

    /// Readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The local replica of which users exist (from `auth.account.registered.v1`, plus
/// answers cached from the users service).
#[async_trait]
pub trait UserReplica: Send + Sync {
    /// Which of `ids` are known.
    async fn known(&self, ids: &[UserId]) -> Result<HashSet<UserId>, StoreError>;
    /// Records users confirmed by the users service (idempotent).
    async fn remember(&self, users: &[KnownUser]) -> Result<(), StoreError>;
    /// Records a registration once per `event_id` (false: already processed).
    async fn record_registered(&self, event_id: &str, user: &KnownUser)
    -> Result<bool, StoreError>;
}

/// Both traits, as one adapter implements them.
pub trait Store: ConversationStore + UserReplica {}
impl<T: ConversationStore + UserReplica> Store for T {}
