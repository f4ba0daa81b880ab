//! The rules of messaging: value types that can only hold valid values (parsed once at the
//! edge), the message model, who may do what, and the operations ([`service`]) that tie
//! the rules to the store, the membership replica and the outbox.

pub mod membership;
pub mod service;
pub mod values;

use chrono::{DateTime, Utc};
use minute_kit::ApiError;

pub use values::{ClientMessageId, Emoji, HistoryLimit, MessageBody, Page, SearchTerms};

/// A member's role, as the conversations service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created the conversation.
    Owner,
    /// Manages members.
    Admin,
    /// Reads and writes.
    Member,
}

impl Role {
    /// Stored / wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "OWNER",
            Self::Admin => "ADMIN",
            Self::Member => "MEMBER",
        }
    }
    /// Parses the stored / wire form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OWNER" => Some(Self::Owner),
            "ADMIN" => Some(Self::Admin),
            "MEMBER" => Some(Self::Member),
            _ => None,
        }
    }
    /// OWNER and ADMIN moderate others' messages.
    pub fn moderates(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
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

/// One user's reaction with one emoji.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionEntry {
    /// The emoji.
    pub emoji: String,
    /// Who reacted.
    pub user_id: String,
}

/// A message as stored. `rev` changes with every change (optimistic concurrency).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Id (UUID v7, so ids sort by creation time).
    pub id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// Position in the conversation, from 1, gap-free.
    pub seq: i64,
    /// Author.
    pub sender_id: String,
    /// The sender's idempotency key.
    pub client_message_id: Option<String>,
    /// Text; `None` once deleted.
    pub body: Option<String>,
    /// Replied-to message (same conversation).
    pub reply_to_id: Option<String>,
    /// Creation time (ms precision, as both stores keep it).
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub edited_at: Option<DateTime<Utc>>,
    /// Deletion (tombstone).
    pub deleted_at: Option<DateTime<Utc>>,
    /// One entry per (user, emoji).
    pub reactions: Vec<ReactionEntry>,
    /// Revision for compare-and-set updates.
    pub rev: i64,
}

/// At most this many (user, emoji) reactions on one message, so a document stays bounded.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 1_000;

/// An emoji's tally on one message, from one viewer's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionCount {
    /// The emoji.
    pub emoji: String,
    /// How many users.
    pub count: i64,
    /// Whether the viewer is one of them.
    pub reacted_by_me: bool,
}

impl Message {
    /// Tallies reactions by emoji in first-use order.
    pub fn reaction_counts(&self, viewer: &str) -> Vec<ReactionCount> {
        let mut out: Vec<ReactionCount> = Vec::new();
        for r in &self.reactions {
            let mine = r.user_id == viewer;
            match out.iter_mut().find(|c| c.emoji == r.emoji) {
                Some(c) => {
                    c.count += 1;
                    c.reacted_by_me |= mine;
                }
                None => out.push(ReactionCount {
                    emoji: r.emoji.clone(),
                    count: 1,
                    reacted_by_me: mine,
                }),
            }
        }
        out
    }

    /// How many users reacted with `emoji`.
    pub fn count_of(&self, emoji: &str) -> i64 {
        self.reactions.iter().filter(|r| r.emoji == emoji).count() as i64
    }

    /// True when `user` reacted with `emoji`.
    pub fn has_reaction(&self, user: &str, emoji: &str) -> bool {
        self.reactions
            .iter()
            .any(|r| r.user_id == user && r.emoji == emoji)
    }
}

/// Which per-member marker a receipt moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// `readSeq`.
    Read,
    /// `deliveredSeq`.
    Delivered,
}

/// One member's markers in one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Markers {
    /// The member.
    pub user_id: String,
    /// Highest seq read.
    pub read_seq: i64,
    /// When `read_seq` last moved.
    pub read_at: Option<DateTime<Utc>>,
    /// Highest seq delivered to a device.
    pub delivered_seq: i64,
    /// When `delivered_seq` last moved.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Why an operation was refused; maps to api.md's codes at the edge.
#[derive(Debug)]
pub enum DomainError {
    /// Invalid input (`BAD_USER_INPUT`).
    Invalid(String),
    /// Not visible to the caller (`NOT_FOUND`).
    NotFound(&'static str),
    /// Visible, but not allowed (`FORBIDDEN`).
    Forbidden(&'static str),
    /// Store, bus or peer failure (`INTERNAL`, masked).
    Internal(String),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::bad_input(m),
            DomainError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            DomainError::Forbidden(m) => ApiError::forbidden(m),
            DomainError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::store::StoreError> for DomainError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// The current time at the precision both stores keep (milliseconds).
pub fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// A new message id: UUID v7, time-ordered.
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
