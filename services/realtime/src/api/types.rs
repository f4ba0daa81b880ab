//! The `Event` union of api.md, exactly: clients select fields with `... on MessageCreated`.

use async_graphql::{Enum, ID, SimpleObject, Union};
use chrono::{DateTime, Utc};

/// `MemberRole`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "MemberRole")]
pub enum Role {
    /// Created the conversation.
    Owner,
    /// Manages members.
    Admin,
    /// Reads and writes.
    Member,
}

impl From<minute_events::MemberRole> for Role {
    fn from(r: minute_events::MemberRole) -> Self {
        match r {
            minute_events::MemberRole::Owner => Self::Owner,
            minute_events::MemberRole::Admin => Self::Admin,
            minute_events::MemberRole::Member => Self::Member,
        }
    }
}

/// A new message.
#[derive(SimpleObject, Clone, Debug)]
pub struct MessageCreated {
    pub conversation_id: ID,
    pub seq: i64,
    pub message_id: ID,
    pub sender_id: ID,
    pub client_message_id: Option<String>,
    pub body: String,
    pub reply_to_id: Option<ID>,
    pub created_at: DateTime<Utc>,
}

/// An edited message.
#[derive(SimpleObject, Clone, Debug)]
pub struct MessageEdited {
    pub conversation_id: ID,
    pub seq: i64,
    pub message_id: ID,
    pub body: String,
    pub edited_at: DateTime<Utc>,
}

/// A deleted message.
#[derive(SimpleObject, Clone, Debug)]
pub struct MessageDeleted {
    pub conversation_id: ID,
    pub seq: i64,
    pub message_id: ID,
    pub deleted_at: DateTime<Utc>,
}

/// A reaction added or removed.
#[derive(SimpleObject, Clone, Debug)]
pub struct ReactionChanged {
    pub conversation_id: ID,
    pub message_id: ID,
    pub emoji: String,
    pub count: i64,
    pub user_id: ID,
    pub added: bool,
}

/// A member read up to `seq` (also reaches the reader's other devices).
#[derive(SimpleObject, Clone, Debug)]
pub struct ReadMarkerUpdated {
    pub conversation_id: ID,
    pub user_id: ID,
    pub seq: i64,
}

/// A member's devices received up to `seq`.
#[derive(SimpleObject, Clone, Debug)]
pub struct DeliveredMarkerUpdated {
    pub conversation_id: ID,
    pub user_id: ID,
    pub seq: i64,
}

/// Title changed.
#[derive(SimpleObject, Clone, Debug)]
pub struct ConversationUpdated {
    pub conversation_id: ID,
    pub title: Option<String>,
}

/// A member joined (or changed role).
#[derive(SimpleObject, Clone, Debug)]
pub struct MemberAdded {
    pub conversation_id: ID,
    pub user_id: ID,
    pub role: Role,
}

/// A member left or was removed; the removed user gets it, then nothing more.
#[derive(SimpleObject, Clone, Debug)]
pub struct MemberRemoved {
    pub conversation_id: ID,
    pub user_id: ID,
}

/// Someone types (expires after 5 s unless repeated).
#[derive(SimpleObject, Clone, Debug)]
pub struct TypingStarted {
    pub conversation_id: ID,
    pub user_id: ID,
}

/// A direct-conversation peer came online or went offline.
#[derive(SimpleObject, Clone, Debug)]
pub struct PresenceChanged {
    pub user_id: ID,
    pub online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// This socket's session was revoked; the socket closes with 4401 next.
#[derive(SimpleObject, Clone, Debug)]
pub struct SessionRevoked {
    pub reason: String,
}

/// `union Event` of api.md.
#[derive(Union, Clone, Debug)]
#[graphql(name = "Event")]
pub enum Event {
    MessageCreated(MessageCreated),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeleted),
    ReactionChanged(ReactionChanged),
    ReadMarkerUpdated(ReadMarkerUpdated),
    DeliveredMarkerUpdated(DeliveredMarkerUpdated),
    ConversationUpdated(ConversationUpdated),
    MemberAdded(MemberAdded),
    MemberRemoved(MemberRemoved),
    TypingStarted(TypingStarted),
    PresenceChanged(PresenceChanged),
    SessionRevoked(SessionRevoked),
}
