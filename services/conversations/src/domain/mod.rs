//! The rules of conversations: valid values ([`types`]), the model, the authorization and
//! membership rules as pure functions ([`rules`]), and the operations that load state,
//! apply a rule and store the outcome with its events ([`service`]).

pub mod rules;
pub mod service;
pub mod types;

use chrono::{DateTime, Utc};
use minute_kit::ApiError;

pub use types::{
    ActivityCursor, ConversationId, Kind, MemberCursor, PageSize, Role, Title, UserId, UserIds,
};

use crate::store::StoreError;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid input; nothing was written.
    #[error("{0}")]
    BadInput(String),
    /// Absent or not visible to the caller.
    #[error("conversation not found")]
    NotFound,
    /// Visible, but the caller's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The users service could not say whether a user exists.
    #[error("users service unavailable: {0}")]
    UsersUnavailable(String),
}

impl Error {
    /// `BAD_USER_INPUT`.
    pub fn bad_input(m: impl Into<String>) -> Self {
        Self::BadInput(m.into())
    }
    /// `FORBIDDEN`.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::Forbidden(m.into())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::BadInput(m) => ApiError::bad_input(m),
            Error::NotFound => ApiError::not_found("conversation not found"),
            Error::Forbidden(m) => ApiError::forbidden(m),
            other => ApiError::internal(other),
        }
    }
}

/// A conversation as stored (without its members).
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: Kind,
    /// Title (groups).
    pub title: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Current number of members.
    pub member_count: u64,
    /// Current number of owners (the last one may not leave).
    pub owner_count: u64,
    /// Increases with every change (membership, roles, title); carried by every event.
    pub version: u64,
    /// Time of the latest message (or creation), ms since the epoch.
    pub last_activity_ms: i64,
}

/// A member of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The user.
    pub user_id: UserId,
    /// Role.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// A new conversation with its initial members.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// The conversation (version 1).
    pub conversation: Conversation,
    /// Every initial member.
    pub members: Vec<Member>,
    /// For direct conversations: the unordered pair as a unique key.
    pub direct_key: Option<String>,
}

/// One atomic change of an existing conversation, valid only if the conversation is still
/// at `expected_version` (optimistic concurrency: the rule was decided on that state).
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// The conversation.
    pub conversation_id: Option<ConversationId>,
    /// Version the decision was made on; the change stores `expected_version + 1`.
    pub expected_version: u64,
    /// New title.
    pub title: Option<Title>,
    /// Members to add.
    pub add: Vec<Member>,
    /// Members to remove.
    pub remove: Vec<UserId>,
    /// Role changes.
    pub set_roles: Vec<(UserId, Role)>,
    /// Member count after the change.
    pub member_count: u64,
    /// Owner count after the change.
    pub owner_count: u64,
    /// Activity time given to added members (the conversation's, so it sorts in place).
    pub activity_ms: i64,
}

impl Change {
    /// The version after this change.
    pub fn new_version(&self) -> u64 {
        self.expected_version + 1
    }
    /// True when the change writes nothing.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.set_roles.is_empty()
    }
}

/// A user known to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownUser {
    /// Id.
    pub id: UserId,
    /// Username, when known.
    pub username: Option<String>,
}
