//! How conversations events change memberships. Each change carries the conversation's
//! membership `version`; a stored member row only moves to a newer version, so events
//! applied twice or out of order leave the same state (cross-service agreement).

use minute_events::{
    ConversationCreated, ConversationKind, MemberAdded, MemberRemoved, MemberRole,
};

/// One membership change of one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The conversation.
    pub conversation_id: String,
    /// Membership version after the change.
    pub version: u64,
    /// Direct conversation? (`None`: the event does not say.)
    pub direct: Option<bool>,
    /// Users whose membership the change sets: `(user, is member now, role)`.
    pub members: Vec<MemberState>,
}

/// A user's membership after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The user.
    pub user_id: String,
    /// Member now?
    pub member: bool,
    /// Role when a member.
    pub role: Option<MemberRole>,
}

fn direct(kind: ConversationKind) -> Option<bool> {
    Some(kind == ConversationKind::Direct)
}

impl From<&ConversationCreated> for MembershipChange {
    fn from(e: &ConversationCreated) -> Self {
        Self {
            conversation_id: e.conversation_id.clone(),
            version: e.version,
            direct: direct(e.kind),
            members: e
                .members
                .iter()
                .map(|m| MemberState {
                    user_id: m.user_id.clone(),
                    member: true,
                    role: Some(m.role),
                })
                .collect(),
        }
    }
}

impl From<&MemberAdded> for MembershipChange {
    fn from(e: &MemberAdded) -> Self {
        Self {
            conversation_id: e.conversation_id.clone(),
            version: e.version,
            direct: direct(e.kind),
            members: e
                .members
                .iter()
                .map(|m| MemberState {
                    user_id: m.user_id.clone(),
                    member: true,
                    role: Some(m.role),
                })
                .collect(),
        }
    }
}

impl From<&MemberRemoved> for MembershipChange {
    fn from(e: &MemberRemoved) -> Self {
        Self {
            conversation_id: e.conversation_id.clone(),
            version: e.version,
            direct: None,
            members: vec![MemberState {
                user_id: e.user_id.clone(),
                member: false,
                role: None,
            }],
        }
    }
}

/// A conversation id from a client: 1..128 characters.
pub fn conversation_id(raw: &str) -> Result<&str, minute_kit::error::ApiError> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 128 {
        return Err(minute_kit::error::ApiError::bad_input(
            "conversationId must be 1..128 characters",
        ));
    }
    Ok(t)
}
