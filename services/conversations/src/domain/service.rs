//! The operations: load what a rule needs, decide with [`super::rules`], store the change
//! with its events (outbox) only if the conversation did not move meanwhile, and wake the
//! relay. Visibility: a conversation exists for a caller only if they are a member
//! (`None` / [`Error::NotFound`] otherwise, never a hint).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{
    ActivityCursor, Change, Conversation, ConversationId, Error, Member, MemberCursor, PageSize,
    Role, Title, UserId, UserIds, rules,
};
use crate::directory::Directory;
use crate::events;
use crate::store::{Created, Store, StoreError};

/// Decisions retried when the conversation moved between load and write.
const ATTEMPTS: usize = 16;

/// A conversation as one member sees it.
#[derive(Debug, Clone)]
pub struct View {
    /// The conversation.
    pub conversation: Conversation,
    /// The viewer's membership.
    pub me: Member,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor after the last item.
    pub end_cursor: Option<String>,
    /// More after this page.
    pub has_next_page: bool,
}

/// A change to an existing conversation, before its rule runs.
#[derive(Debug, Clone)]
pub enum Op {
    /// `addMembers`.
    Add(UserIds),
    /// `removeMember`.
    Remove(UserId),
    /// `leaveConversation`.
    Leave,
    /// `updateConversation`.
    Rename(Title),
    /// `setMemberRole`.
    SetRole(UserId, Role),
}

/// The conversations service's operations.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    directory: Directory,
    max_group_members: usize,
    relay: Arc<Notify>,
}

/// Now, at the stores' precision (ms), so what is returned equals what is read back.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

impl Service {
    /// The service over its store, directory and relay waker.
    pub fn new(
        store: Arc<dyn Store>,
        directory: Directory,
        max_group_members: usize,
        relay: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            directory,
            max_group_members,
            relay,
        }
    }

    /// Largest group.
    pub fn max_group_members(&self) -> usize {
        self.max_group_members
    }

    /// `conversation(id)`: `None` unless `viewer` is a member.
    pub async fn get(&self, viewer: &UserId, id: &str) -> Result<Option<View>, Error> {
        let Some(id) = ConversationId::parse(id) else {
            return Ok(None);
        };
        let Some(me) = self.store.member(&id, viewer).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .conversation(&id)
            .await?
            .map(|conversation| View { conversation, me }))
    }

    async fn visible(&self, viewer: &UserId, id: &str) -> Result<View, Error> {
        self.get(viewer, id).await?.ok_or(Error::NotFound)
    }

    /// `conversations(first, after)`: most recently active first.
    pub async fn list(
        &self,
        viewer: &UserId,
        first: PageSize,
        after: Option<&ActivityCursor>,
    ) -> Result<Page<View>, Error> {
        let mut rows = self
            .store
            .memberships(viewer, after, first.get() + 1)
            .await?;
        let has_next_page = rows.len() > first.get();
        rows.truncate(first.get());
        let ids: Vec<ConversationId> = rows
            .iter()
            .map(|r| r.member.conversation_id.clone())
            .collect();
        let mut by_id: HashMap<ConversationId, Conversation> = self
            .store
            .conversations(&ids)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let end_cursor = rows.last().map(|r| {
            ActivityCursor {
                activity_ms: r.activity_ms,
                conversation_id: r.member.conversation_id.clone(),
            }
            .encode()
        });
        let items = rows
            .into_iter()
            .filter_map(|r| {
                let conversation = by_id.remove(&r.member.conversation_id)?;
                Some(View {
                    conversation,
                    me: r.member,
                })
            })
            .collect();
        Ok(Page {
            items,
            end_cursor,
            has_next_page,
        })
    }

    /// A page of a conversation's members (the caller checked visibility).
    pub async fn members(
        &self,
        conversation: &ConversationId,
        first: PageSize,
        after: Option<&MemberCursor>,
    ) -> Result<Page<Member>, Error> {
        let mut items = self
            .store
            .members_page(conversation, after.map(|a| &a.0), first.get() + 1)
            .await?;
        let has_next_page = items.len() > first.get();
        items.truncate(first.get());
        let end_cursor = items
            .last()
            .map(|m| MemberCursor(m.user_id.clone()).encode());
        Ok(Page {
            items,
            end_cursor,
            has_next_page,
        })
    }

    async fn require_known(&self, ids: &[UserId]) -> Result<(), Error> {
        let unknown = self.directory.unknown(ids).await?;
        match unknown.first() {
            None => Ok(()),
            Some(u) => Err(Error::bad_input(format!("unknown user: {u}"))),
        }
    }

    /// `createDirectConversation`: one conversation per unordered pair, also under races.
    pub async fn create_direct(
        &self,
        viewer: &UserId,
        other: UserId,
        traceparent: Option<&str>,
    ) -> Result<View, Error> {
        let new = rules::create_direct(viewer, &other, now())?;
        self.require_known(std::slice::from_ref(&other)).await?;
        let outbox = events::created(&new, traceparent);
        let id = match self.store.create(&new, &outbox).await? {
            Created::Inserted => {
                self.relay.notify_one();
                new.conversation.id
            }
            Created::ExistingDirect(id) => id,
        };
        self.visible(viewer, id.as_str()).await
    }

    /// `createGroup`: the creator is OWNER.
    pub async fn create_group(
        &self,
        viewer: &UserId,
        title: Title,
        others: UserIds,
        traceparent: Option<&str>,
    ) -> Result<View, Error> {
        let new = rules::create_group(viewer, title, others, self.max_group_members, now())?;
        let others: Vec<UserId> = new.members[1..].iter().map(|m| m.user_id.clone()).collect();
        self.require_known(&others).await?;
        let outbox = events::created(&new, traceparent);
        self.store.create(&new, &outbox).await?;
        self.relay.notify_one();
        let me = new.members[0].clone();
        Ok(View {
            conversation: new.conversation,
            me,
        })
    }

    /// Every mutation of an existing conversation. Returns the caller's view afterwards
    /// (`None` when the caller is no longer a member).
    pub async fn mutate(
        &self,
        viewer: &UserId,
        id: &str,
        op: Op,
        traceparent: Option<&str>,
    ) -> Result<Option<View>, Error> {
        for _ in 0..ATTEMPTS {
            let view = self.visible(viewer, id).await?;
            let change = self.decide(&view, &op).await?;
            if change.is_empty() {
                return Ok(Some(view));
            }
            let outbox = events::changed(&view.conversation, &change, traceparent);
            match self.store.apply(&change, &outbox).await {
                Ok(()) => {
                    self.relay.notify_one();
                    return self.get(viewer, id).await;
                }
                Err(StoreError::VersionConflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Backend("too much contention on one conversation".into()).into())
    }

    async fn decide(&self, view: &View, op: &Op) -> Result<Change, Error> {
        let (conv, me) = (&view.conversation, &view.me);
        match op {
            Op::Add(ids) => {
                rules::may_add_members(conv, me)?;
                let already = self.store.members_among(&conv.id, ids.as_slice()).await?;
                let change =
                    rules::add_members(conv, me, ids, &already, self.max_group_members, now())?;
                self.require_known(ids.as_slice()).await?;
                Ok(change)
            }
            Op::Remove(user) => {
                let target = self.store.member(&conv.id, user).await?;
                rules::remove_member(conv, me, target.as_ref())
            }
            Op::Leave => rules::leave(conv, me),
            Op::Rename(title) => rules::rename(conv, me, title.clone()),
            Op::SetRole(user, role) => {
                let target = self.store.member(&conv.id, user).await?;
                rules::set_role(conv, me, target.as_ref(), *role)
            }
        }
    }

    /// For `GET /internal/conversations/{id}/members/{userId}`: the conversation and the
    /// user's membership, or `None` when the conversation does not exist.
    pub async fn membership(
        &self,
        conversation: &str,
        user: &str,
    ) -> Result<Option<(Conversation, Option<Member>)>, Error> {
        let Some(cid) = ConversationId::parse(conversation) else {
            return Ok(None);
        };
        let Some(conv) = self.store.conversation(&cid).await? else {
            return Ok(None);
        };
        let member = match UserId::parse(user) {
            Some(u) => self.store.member(&cid, &u).await?,
            None => None,
        };
        Ok(Some((conv, member)))
    }

    /// For `GET /internal/users/{userId}/conversations`.
    pub async fn conversation_ids(&self, user: &str) -> Result<Vec<ConversationId>, Error> {
        match UserId::parse(user) {
            Some(u) => Ok(self.store.conversation_ids_of(&u).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Readiness.
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }
}
