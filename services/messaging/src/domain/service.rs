//! The operations of messaging: each checks membership, applies the rule, writes the change
//! with its events (outbox) and wakes the relay. Resolvers call these and nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use minute_events::{
    MessageCreated, MessageDeleted, MessageEdited, ReactionChanged, ReceiptKind, ReceiptUpdated,
};
use tokio::sync::Notify;

use super::membership::{Access, Membership};
use super::{
    ClientMessageId, DomainError, Emoji, MAX_REACTIONS_PER_MESSAGE, MarkerKind, Markers, Message,
    MessageBody, Page, ReactionEntry, SearchTerms, new_message_id, now_ms,
};
use crate::events::outbox_event;
use crate::store::{MessageStore, NewMessage, OutboxEvent};

/// Who acts, and the trace context their events carry.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The caller's user id.
    pub user_id: String,
    /// W3C trace context of the request.
    pub traceparent: Option<String>,
}

/// A conversation's counters from one member's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Last assigned seq.
    pub last_seq: i64,
    /// The member's read marker.
    pub read_seq: i64,
    /// Others' messages after the read marker.
    pub unread: i64,
    /// The message at `last_seq`.
    pub last_message: Option<Message>,
}

/// The messaging operations.
#[derive(Clone)]
pub struct Messaging {
    store: Arc<dyn MessageStore>,
    members: Membership,
    wake: Arc<Notify>,
}

/// Compare-and-set attempts before giving up on a hot message.
const CAS_ATTEMPTS: usize = 16;

impl Messaging {
    /// Operations over `store` and `members`; `wake` nudges the outbox relay.
    pub fn new(store: Arc<dyn MessageStore>, members: Membership, wake: Arc<Notify>) -> Self {
        Self {
            store,
            members,
            wake,
        }
    }

    /// The store (loaders read through it).
    pub fn store(&self) -> &Arc<dyn MessageStore> {
        &self.store
    }

    /// Membership checks.
    pub fn members(&self) -> &Membership {
        &self.members
    }

    /// Sends (or, for a repeated `clientMessageId`, returns the original).
    pub async fn send(
        &self,
        actor: &Actor,
        conversation_id: &str,
        client_message_id: ClientMessageId,
        body: MessageBody,
        reply_to_id: Option<String>,
    ) -> Result<Message, DomainError> {
        self.members
            .access(conversation_id, &actor.user_id)
            .await?
            .for_write()?;
        if let Some(r) = &reply_to_id {
            let target = self.store.get(std::slice::from_ref(r)).await?;
            if !target.iter().any(|m| m.conversation_id == conversation_id) {
                return Err(DomainError::Invalid(
                    "replyToId must name a message of the same conversation".into(),
                ));
            }
        }
        let new = NewMessage {
            id: new_message_id(),
            conversation_id: conversation_id.to_owned(),
            sender_id: actor.user_id.clone(),
            client_message_id: client_message_id.as_str().to_owned(),
            body: body.as_str().to_owned(),
            reply_to_id,
            created_at: now_ms(),
        };
        let tp = actor.traceparent.clone();
        let events = move |m: &Message| {
            vec![outbox_event(
                MessageCreated {
                    conversation_id: m.conversation_id.clone(),
                    message_id: m.id.clone(),
                    seq: m.seq,
                    sender_id: m.sender_id.clone(),
                    client_message_id: m.client_message_id.clone(),
                    body: m.body.clone().unwrap_or_default(),
                    reply_to_id: m.reply_to_id.clone(),
                    created_at: m.created_at,
                },
                &m.conversation_id,
                tp.clone(),
            )]
        };
        let outcome = self.store.create(new, &events).await?;
        self.wake.notify_one();
        Ok(outcome.message().clone())
    }

    /// A message the actor may see, for a write: `NOT_FOUND` if absent or unknown
    /// conversation, `FORBIDDEN` for outsiders.
    async fn writable(
        &self,
        actor: &Actor,
        message_id: &str,
    ) -> Result<(Message, super::Role), DomainError> {
        let m = self
            .store
            .get(&[message_id.to_owned()])
            .await?
            .pop()
            .ok_or(DomainError::NotFound("message"))?;
        let role = self
            .members
            .access(&m.conversation_id, &actor.user_id)
            .await?
            .for_write()?;
        Ok((m, role))
    }

    /// Applies `change` to the message with compare-and-set retries; `change` returns the new
    /// state and its events, or `None` for "nothing to do".
    async fn update<F>(&self, mut current: Message, change: F) -> Result<Message, DomainError>
    where
        F: Fn(&Message) -> Result<Option<(Message, Vec<OutboxEvent>)>, DomainError>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let Some((next, events)) = change(&current)? else {
                return Ok(current);
            };
            if self.store.replace(&current, &next, events).await? {
                self.wake.notify_one();
                return Ok(Message {
                    rev: current.rev + 1,
                    ..next
                });
            }
            current = self
                .store
                .get(std::slice::from_ref(&current.id))
                .await?
                .pop()
                .ok_or(DomainError::NotFound("message"))?;
        }
        Err(DomainError::Internal(
            "message changed too often; retry".into(),
        ))
    }

    /// Edits the text (sender only); the seq stays.
    pub async fn edit(
        &self,
        actor: &Actor,
        message_id: &str,
        body: MessageBody,
    ) -> Result<Message, DomainError> {
        let (m, _) = self.writable(actor, message_id).await?;
        if m.sender_id != actor.user_id {
            return Err(DomainError::Forbidden("only the sender may edit a message"));
        }
        self.update(m, |cur| {
            if cur.deleted_at.is_some() {
                return Err(DomainError::Invalid("the message is deleted".into()));
            }
            let at = now_ms();
            let next = Message {
                body: Some(body.as_str().to_owned()),
                edited_at: Some(at),
                ..cur.clone()
            };
            let ev = outbox_event(
                MessageEdited {
                    conversation_id: cur.conversation_id.clone(),
                    message_id: cur.id.clone(),
                    seq: cur.seq,
                    body: body.as_str().to_owned(),
                    edited_at: at,
                },
                &cur.conversation_id,
                actor.traceparent.clone(),
            );
            Ok(Some((next, vec![ev])))
        })
        .await
    }

    /// Deletes (sender, or OWNER/ADMIN): a tombstone keeping seq; body and reactions go.
    pub async fn delete(&self, actor: &Actor, message_id: &str) -> Result<Message, DomainError> {
        let (m, role) = self.writable(actor, message_id).await?;
        if m.sender_id != actor.user_id && !role.moderates() {
            return Err(DomainError::Forbidden(
                "only the sender or an OWNER/ADMIN may delete a message",
            ));
        }
        self.update(m, |cur| {
            if cur.deleted_at.is_some() {
                return Ok(None);
            }
            let at = now_ms();
            let next = Message {
                body: None,
                deleted_at: Some(at),
                reactions: Vec::new(),
                ..cur.clone()
            };
            let ev = outbox_event(
                MessageDeleted {
                    conversation_id: cur.conversation_id.clone(),
                    message_id: cur.id.clone(),
                    seq: cur.seq,
                    deleted_at: at,
                },
                &cur.conversation_id,
                actor.traceparent.clone(),
            );
            Ok(Some((next, vec![ev])))
        })
        .await
    }

    /// Adds (`add`) or removes the actor's `emoji`; one per user per emoji.
    pub async fn react(
        &self,
        actor: &Actor,
        message_id: &str,
        emoji: Emoji,
        add: bool,
    ) -> Result<Message, DomainError> {
        let (m, _) = self.writable(actor, message_id).await?;
        let user = actor.user_id.as_str();
        self.update(m, |cur| {
            if cur.deleted_at.is_some() {
                return Err(DomainError::Invalid("the message is deleted".into()));
            }
            if cur.has_reaction(user, emoji.as_str()) == add {
                return Ok(None);
            }
            let mut next = cur.clone();
            if add {
                if next.reactions.len() >= MAX_REACTIONS_PER_MESSAGE {
                    return Err(DomainError::Invalid(
                        "too many reactions on this message".into(),
                    ));
                }
                next.reactions.push(ReactionEntry {
                    emoji: emoji.as_str().to_owned(),
                    user_id: user.to_owned(),
                });
            } else {
                next.reactions
                    .retain(|r| !(r.user_id == user && r.emoji == emoji.as_str()));
            }
            let ev = outbox_event(
                ReactionChanged {
                    conversation_id: cur.conversation_id.clone(),
                    message_id: cur.id.clone(),
                    emoji: emoji.as_str().to_owned(),
                    count: next.count_of(emoji.as_str()),
                    user_id: user.to_owned(),
                    added: add,
                },
                &cur.conversation_id,
                actor.traceparent.clone(),
            );
            Ok(Some((next, vec![ev])))
        })
        .await
    }

    /// Moves the actor's read or delivered marker forward (never backwards). True if moved.
    pub async fn mark(
        &self,
        actor: &Actor,
        conversation_id: &str,
        kind: MarkerKind,
        seq: i64,
    ) -> Result<bool, DomainError> {
        self.members
            .access(conversation_id, &actor.user_id)
            .await?
            .for_write()?;
        let last = self
            .store
            .last_seqs(&[conversation_id.to_owned()])
            .await?
            .get(conversation_id)
            .copied()
            .unwrap_or(0);
        if !(0..=last).contains(&seq) {
            return Err(DomainError::Invalid(format!(
                "seq must be between 0 and the conversation's last seq ({last})"
            )));
        }
        let ev = outbox_event(
            ReceiptUpdated {
                conversation_id: conversation_id.to_owned(),
                user_id: actor.user_id.clone(),
                kind: match kind {
                    MarkerKind::Read => ReceiptKind::Read,
                    MarkerKind::Delivered => ReceiptKind::Delivered,
                },
                seq,
            },
            conversation_id,
            actor.traceparent.clone(),
        );
        let moved = self
            .store
            .mark(conversation_id, &actor.user_id, kind, seq, now_ms(), ev)
            .await?;
        if moved {
            self.wake.notify_one();
        }
        Ok(moved)
    }

    /// A page of history (members only; others get `NOT_FOUND`).
    pub async fn history(
        &self,
        actor: &Actor,
        conversation_id: &str,
        page: Page,
    ) -> Result<(Vec<Message>, bool), DomainError> {
        self.members
            .access(conversation_id, &actor.user_id)
            .await?
            .for_read()?;
        Ok(self.store.history(conversation_id, page).await?)
    }

    /// Messages by id that the actor may see (others are left out).
    pub async fn visible(
        &self,
        actor: &Actor,
        ids: &[String],
    ) -> Result<Vec<Message>, DomainError> {
        let found = self.store.get(ids).await?;
        let mut allowed: HashMap<String, bool> = HashMap::new();
        let mut out = Vec::with_capacity(found.len());
        for m in found {
            let ok = match allowed.get(&m.conversation_id) {
                Some(ok) => *ok,
                None => {
                    let access = self
                        .members
                        .access(&m.conversation_id, &actor.user_id)
                        .await?;
                    let ok = matches!(access, Access::Member(_));
                    allowed.insert(m.conversation_id.clone(), ok);
                    ok
                }
            };
            if ok {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Newest matching messages in the actor's current conversations (or one of them).
    pub async fn search(
        &self,
        actor: &Actor,
        terms: &SearchTerms,
        conversation_id: Option<&str>,
        first: i64,
    ) -> Result<Vec<Message>, DomainError> {
        if !(1..=100).contains(&first) {
            return Err(DomainError::Invalid(
                "first must be between 1 and 100".into(),
            ));
        }
        let scope = match conversation_id {
            Some(c) => match self.members.access(c, &actor.user_id).await? {
                Access::Member(_) => vec![c.to_owned()],
                _ => return Ok(Vec::new()),
            },
            // Bounded: a user's first 1,000 conversations.
            None => {
                self.members
                    .replica()
                    .conversations_of(&actor.user_id, 1_000)
                    .await?
            }
        };
        Ok(self.store.search(&scope, terms, first).await?)
    }

    /// The conversations among `conversations` that `user` is a member of: one replica
    /// call for all, the owner asked only about those the replica cannot confirm.
    async fn readable(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<Vec<String>, DomainError> {
        let known = self
            .members
            .replica()
            .memberships(user, conversations)
            .await?;
        let mut readable: Vec<String> = Vec::with_capacity(conversations.len());
        for c in conversations {
            if readable.contains(c) {
                continue;
            }
            let member = known.get(c).is_some_and(|r| r.role.is_some())
                || matches!(self.members.access(c, user).await?, Access::Member(_));
            if member {
                readable.push(c.clone());
            }
        }
        Ok(readable)
    }

    /// History pages of many conversations for one member: membership checked in one batch,
    /// the pages read concurrently; pages of conversations the user may not read are left out.
    pub async fn histories(
        &self,
        user: &str,
        requests: &[(String, Page)],
    ) -> Result<HashMap<(String, Page), (Vec<Message>, bool)>, DomainError> {
        let convs: Vec<String> = requests.iter().map(|(c, _)| c.clone()).collect();
        let readable = self.readable(user, &convs).await?;
        let wanted: Vec<&(String, Page)> = requests
            .iter()
            .filter(|(c, _)| readable.contains(c))
            .collect();
        let pages = futures_util::future::try_join_all(
            wanted.iter().map(|(c, p)| self.store.history(c, *p)),
        )
        .await?;
        Ok(wanted.into_iter().cloned().zip(pages).collect())
    }

    /// Summaries of many conversations for one member, in a fixed number of store calls;
    /// conversations the user may not read are left out.
    pub async fn summaries(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, Summary>, DomainError> {
        let readable = self.readable(user, conversations).await?;
        let last = self.store.last_seqs(&readable).await?;
        let markers = self.store.markers_of(user, &readable).await?;
        let read_of = |c: &String| markers.get(c).map_or(0, |m: &Markers| m.read_seq);
        let tips: Vec<(String, i64)> = readable
            .iter()
            .filter_map(|c| last.get(c).filter(|s| **s > 0).map(|s| (c.clone(), *s)))
            .collect();
        let from: Vec<(String, i64)> = readable.iter().map(|c| (c.clone(), read_of(c))).collect();
        let (tip_messages, own) = futures_util::future::try_join(
            self.store.at_seqs(&tips),
            self.store.own_after(user, &from),
        )
        .await?;
        let mut by_conv: HashMap<String, Message> = tip_messages
            .into_iter()
            .map(|m| (m.conversation_id.clone(), m))
            .collect();
        Ok(readable
            .iter()
            .map(|c| {
                let last_seq = last.get(c).copied().unwrap_or(0);
                let read_seq = read_of(c).min(last_seq);
                let unread = (last_seq - read_seq - own.get(c).copied().unwrap_or(0)).max(0);
                let summary = Summary {
                    last_seq,
                    read_seq,
                    unread,
                    last_message: by_conv.remove(c),
                };
                (c.clone(), summary)
            })
            .collect())
    }
}
