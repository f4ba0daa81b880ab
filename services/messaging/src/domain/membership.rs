//! Who is a member: the local replica first (kept from conversations' events), then, when
//! the replica cannot say yes, the conversations service itself (read-your-writes: a member
//! added 5 ms ago is not refused). A positive answer is written into the replica at the
//! version the owner reported, so it is cached until the event arrives (the event with the
//! same version then changes nothing; newer ones win).

use std::sync::Arc;

use async_trait::async_trait;

use super::{DomainError, Role};
use crate::store::{MemberChange, MembershipStore};

/// What the owner of memberships says about one user in one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerAnswer {
    /// No such conversation.
    NoConversation,
    /// A member with this role at this membership version.
    Member(Role, u64),
    /// The conversation exists; the user is not in it.
    NotMember,
}

/// The synchronous fallback: the conversations service's internal API.
#[async_trait]
pub trait MembershipOwner: Send + Sync + 'static {
    /// Asks about `user` in `conversation_id`.
    async fn ask(&self, conversation_id: &str, user: &str) -> Result<OwnerAnswer, String>;
}

/// The caller's standing in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A current member.
    Member(Role),
    /// The conversation exists but the caller is not (or no longer) in it.
    Outsider,
    /// No conversation by that id, as far as anyone knows.
    Unknown,
}

impl Access {
    /// The role for a write: outsiders are `FORBIDDEN`, unknown conversations `NOT_FOUND`.
    pub fn for_write(self) -> Result<Role, DomainError> {
        match self {
            Self::Member(r) => Ok(r),
            Self::Outsider => Err(DomainError::Forbidden(
                "only members of the conversation may do this",
            )),
            Self::Unknown => Err(DomainError::NotFound("conversation")),
        }
    }

    /// The role for a read: anything but membership is `NOT_FOUND`.
    pub fn for_read(self) -> Result<Role, DomainError> {
        match self {
            Self::Member(r) => Ok(r),
            _ => Err(DomainError::NotFound("conversation")),
        }
    }
}

/// Membership checks over the replica and the owner.
#[derive(Clone)]
pub struct Membership {
    replica: Arc<dyn MembershipStore>,
    owner: Option<Arc<dyn MembershipOwner>>,
}

impl Membership {
    /// Checks against `replica`, falling back to `owner` when given.
    pub fn new(replica: Arc<dyn MembershipStore>, owner: Option<Arc<dyn MembershipOwner>>) -> Self {
        Self { replica, owner }
    }

    /// The replica.
    pub fn replica(&self) -> &Arc<dyn MembershipStore> {
        &self.replica
    }

    /// `user`'s access to `conversation_id`.
    pub async fn access(&self, conversation_id: &str, user: &str) -> Result<Access, DomainError> {
        let known = self.replica.member(conversation_id, user).await?;
        if let Some(role) = known.and_then(|r| r.role) {
            return Ok(Access::Member(role));
        }
        let Some(owner) = &self.owner else {
            let exists =
                known.is_some() || self.replica.knows_conversation(conversation_id).await?;
            return Ok(if exists {
                Access::Outsider
            } else {
                Access::Unknown
            });
        };
        match owner.ask(conversation_id, user).await {
            Ok(OwnerAnswer::Member(role, version)) => {
                self.replica
                    .apply(&MemberChange {
                        conversation_id: conversation_id.to_owned(),
                        user_id: user.to_owned(),
                        role: Some(role),
                        version,
                    })
                    .await?;
                Ok(Access::Member(role))
            }
            Ok(OwnerAnswer::NotMember) => Ok(Access::Outsider),
            Ok(OwnerAnswer::NoConversation) => Ok(Access::Unknown),
            // The replica already says "removed": that answer stands without the owner.
            Err(_) if known.is_some() => Ok(Access::Outsider),
            Err(e) => Err(DomainError::Internal(format!(
                "conversations service unavailable: {e}"
            ))),
        }
    }
}
