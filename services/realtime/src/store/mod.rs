//! Storage of the realtime service.
//!
//! - [`MembershipStore`]: the membership replica kept from conversations events (who is in
//!   which conversation, and which conversations are direct), with a MongoDB adapter
//!   ([`mongo`]) and an embedded SQLite one ([`embedded`]), both checked by [`conformance`].
//! - [`Ephemeral`]: typing throttles and presence, in Redis across replicas
//!   ([`ephemeral::RedisEphemeral`]) or in-process ([`ephemeral::MemoryEphemeral`]).

pub mod conformance;
pub mod embedded;
pub mod ephemeral;
pub mod mongo;

use async_trait::async_trait;

pub use ephemeral::Ephemeral;

use crate::domain::membership::MembershipChange;

/// A storage failure (logged; never shown to clients).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// Wraps any error.
    pub fn from_display(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// Most conversations one user is loaded with (no unbounded query).
pub const MAX_CONVERSATIONS_PER_USER: i64 = 10_000;

/// The membership replica.
#[async_trait]
pub trait MembershipStore: Send + Sync {
    /// Applies a change: each member row moves only to a newer version.
    async fn apply(&self, change: &MembershipChange) -> Result<(), StoreError>;
    /// The conversations `user_id` is a member of, or `None` when the replica has never heard
    /// of the user (then the caller asks the conversations service).
    async fn conversations_of(&self, user_id: &str) -> Result<Option<Vec<String>>, StoreError>;
    /// The other members of `user_id`'s direct conversations.
    async fn direct_peers(&self, user_id: &str) -> Result<Vec<String>, StoreError>;
    /// Readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}
