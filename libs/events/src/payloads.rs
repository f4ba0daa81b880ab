//! The payloads of every event, grouped by the context that publishes them.
//! IDs are strings (opaque to other services); times are UTC.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Event;

macro_rules! event {
    ($ty:ident, $ctx:literal, $agg:literal, $name:literal, $v:literal) => {
        impl Event for $ty {
            const CONTEXT: &'static str = $ctx;
            const AGGREGATE: &'static str = $agg;
            const NAME: &'static str = $name;
            const VERSION: u32 = $v;
        }
    };
}

// ---- auth ----

/// `auth.account.registered.v1`: an account now exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRegistered {
    /// The new user's id.
    pub user_id: String,
    /// Lower-case username.
    pub username: String,
    /// Display name given at registration, if any.
    #[serde(default)]
    pub display_name: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}
event!(AccountRegistered, "auth", "account", "registered", 1);

/// `auth.session.revoked.v1`: these sessions' tokens must stop working and their sockets close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRevoked {
    /// Owner of the sessions.
    pub user_id: String,
    /// The revoked session ids (`sid` claim).
    pub session_ids: Vec<String>,
    /// `logout`, `logout_all`, `password_changed`, `refresh_reuse`.
    pub reason: String,
}
event!(SessionRevoked, "auth", "session", "revoked", 1);

// ---- users ----

/// `users.user.updated.v1`: a profile changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserUpdated {
    /// The user.
    pub user_id: String,
    /// Username (lower-case).
    pub username: String,
    /// Current display name.
    pub display_name: String,
    /// Current avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
}
event!(UserUpdated, "users", "user", "updated", 1);

// ---- conversations ----

/// Kind of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConversationKind {
    /// Two users.
    Direct,
    /// A titled group.
    Group,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberRole {
    /// Created it; manages roles.
    Owner,
    /// Manages members and title.
    Admin,
    /// Reads and writes.
    Member,
}

/// A member as carried in events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRef {
    /// The user.
    pub user_id: String,
    /// Their role.
    pub role: MemberRole,
}

/// `conversations.conversation.created.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationCreated {
    /// The conversation.
    pub conversation_id: String,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Title (groups).
    #[serde(default)]
    pub title: Option<String>,
    /// Every initial member with role.
    pub members: Vec<MemberRef>,
    /// Membership version after this change (per conversation, increasing).
    pub version: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}
event!(
    ConversationCreated,
    "conversations",
    "conversation",
    "created",
    1
);

/// `conversations.conversation.updated.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationUpdated {
    /// The conversation.
    pub conversation_id: String,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// Version after this change.
    pub version: u64,
}
event!(
    ConversationUpdated,
    "conversations",
    "conversation",
    "updated",
    1
);

/// `conversations.member.added.v1` (also sent when a role changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberAdded {
    /// The conversation.
    pub conversation_id: String,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Added members.
    pub members: Vec<MemberRef>,
    /// Membership version after this change.
    pub version: u64,
}
event!(MemberAdded, "conversations", "member", "added", 1);

/// `conversations.member.removed.v1` (removal or leave).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRemoved {
    /// The conversation.
    pub conversation_id: String,
    /// The removed user.
    pub user_id: String,
    /// Membership version after this change.
    pub version: u64,
}
event!(MemberRemoved, "conversations", "member", "removed", 1);

// ---- messaging ----

/// `messaging.message.created.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageCreated {
    /// The conversation.
    pub conversation_id: String,
    /// The message.
    pub message_id: String,
    /// Position in the conversation.
    pub seq: i64,
    /// Author.
    pub sender_id: String,
    /// The client's idempotency key.
    #[serde(default)]
    pub client_message_id: Option<String>,
    /// Text.
    pub body: String,
    /// Replied-to message.
    #[serde(default)]
    pub reply_to_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}
event!(MessageCreated, "messaging", "message", "created", 1);

/// `messaging.message.edited.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEdited {
    /// The conversation.
    pub conversation_id: String,
    /// The message.
    pub message_id: String,
    /// Its seq (unchanged by edits).
    pub seq: i64,
    /// New text.
    pub body: String,
    /// Edit time.
    pub edited_at: DateTime<Utc>,
}
event!(MessageEdited, "messaging", "message", "edited", 1);

/// `messaging.message.deleted.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeleted {
    /// The conversation.
    pub conversation_id: String,
    /// The message.
    pub message_id: String,
    /// Its seq.
    pub seq: i64,
    /// Deletion time.
    pub deleted_at: DateTime<Utc>,
}
event!(MessageDeleted, "messaging", "message", "deleted", 1);

/// `messaging.reaction.changed.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactionChanged {
    /// The conversation.
    pub conversation_id: String,
    /// The message.
    pub message_id: String,
    /// The emoji.
    pub emoji: String,
    /// Count of this emoji after the change.
    pub count: i64,
    /// Who reacted.
    pub user_id: String,
    /// Added or removed.
    pub added: bool,
}
event!(ReactionChanged, "messaging", "reaction", "changed", 1);

/// Which marker a receipt moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// `readSeq`.
    Read,
    /// `deliveredSeq`.
    Delivered,
}

/// `messaging.receipt.updated.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptUpdated {
    /// The conversation.
    pub conversation_id: String,
    /// The reader.
    pub user_id: String,
    /// Read or delivered.
    pub kind: ReceiptKind,
    /// New marker value.
    pub seq: i64,
}
event!(ReceiptUpdated, "messaging", "receipt", "updated", 1);

// ---- realtime ----

/// `realtime.presence.changed.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceChanged {
    /// The user.
    pub user_id: String,
    /// Online now?
    pub online: bool,
    /// Last seen (when going offline).
    #[serde(default)]
    pub last_seen_at: Option<DateTime<Utc>>,
}
event!(PresenceChanged, "realtime", "presence", "changed", 1);

/// `realtime.typing.started.v1` (delivery only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypingStarted {
    /// The conversation.
    pub conversation_id: String,
    /// Who types.
    pub user_id: String,
}
event!(TypingStarted, "realtime", "typing", "started", 1);
