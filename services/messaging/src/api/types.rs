//! The GraphQL types of the messaging subgraph.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minute_kit::{ApiError, GqlResultExt};

use super::loaders::{HistoryLoader, MarkersLoader, MessageLoader, RECEIPTS_SHOWN, SummaryLoader};
use crate::domain::service::Summary;
use crate::domain::{Markers, Message, Page};

/// A user, owned by the users subgraph (a reference only here).
#[derive(SimpleObject, Clone)]
#[graphql(unresolvable = "id")]
pub struct User {
    /// The user's id.
    pub id: ID,
}

/// Someone who read (or received) a message, and when.
#[derive(SimpleObject, Clone)]
pub struct Receipt {
    /// The member.
    pub user: User,
    /// When their marker reached the message.
    pub at: DateTime<Utc>,
}

/// An emoji's tally on a message.
#[derive(SimpleObject, Clone)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// How many users reacted with it.
    pub count: i64,
    /// Whether the caller did.
    pub reacted_by_me: bool,
}

/// A page of history, ascending by seq.
#[derive(SimpleObject)]
pub struct MessageConnection {
    /// The messages.
    pub nodes: Vec<MessageNode>,
    /// More messages beyond this page.
    pub has_more: bool,
}

/// `sendMessage` input.
#[derive(InputObject)]
pub struct SendMessageInput {
    /// The conversation.
    pub conversation_id: ID,
    /// Client-generated idempotency key (1..64 chars).
    pub client_message_id: String,
    /// Text (1..10,000 chars after trimming).
    pub body: String,
    /// A message of the same conversation this replies to.
    pub reply_to_id: Option<ID>,
}

/// A message.
pub struct MessageNode(pub Message);

fn viewer_id(ctx: &Context<'_>) -> async_graphql::Result<String> {
    Ok(minute_kit::graphql::viewer(ctx)?.user_id.clone())
}

fn receipts(markers: &[Markers], m: &Message, read: bool) -> Vec<Receipt> {
    markers
        .iter()
        .filter(|k| k.user_id != m.sender_id)
        .filter_map(|k| {
            let (seq, at) = if read {
                (k.read_seq, k.read_at)
            } else {
                (k.delivered_seq, k.delivered_at)
            };
            (seq >= m.seq).then_some(at).flatten().map(|at| Receipt {
                user: User {
                    id: ID(k.user_id.clone()),
                },
                at,
            })
        })
        .take(RECEIPTS_SHOWN)
        .collect()
}

impl MessageNode {
    async fn markers(&self, ctx: &Context<'_>, kind: u8) -> async_graphql::Result<Vec<Markers>> {
        let loader = ctx.data::<DataLoader<MarkersLoader>>()?;
        Ok(loader
            .load_one((self.0.conversation_id.clone(), kind))
            .await
            .map_err(ApiError::internal)
            .gql()?
            .unwrap_or_default())
    }
}

#[Object(name = "Message")]
impl MessageNode {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn conversation_id(&self) -> ID {
        ID(self.0.conversation_id.clone())
    }
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    async fn sender(&self) -> User {
        User {
            id: ID(self.0.sender_id.clone()),
        }
    }
    async fn client_message_id(&self) -> Option<&str> {
        self.0.client_message_id.as_deref()
    }
    /// Null once deleted.
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    async fn reply_to(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<MessageNode>> {
        let Some(id) = &self.0.reply_to_id else {
            return Ok(None);
        };
        let loader = ctx.data::<DataLoader<MessageLoader>>()?;
        let m = loader
            .load_one(id.clone())
            .await
            .map_err(ApiError::internal)
            .gql()?;
        Ok(m.map(MessageNode))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        self.0.edited_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn reactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Reaction>> {
        let me = viewer_id(ctx)?;
        Ok(self
            .0
            .reaction_counts(&me)
            .into_iter()
            .map(|c| Reaction {
                emoji: c.emoji,
                count: c.count,
                reacted_by_me: c.reacted_by_me,
            })
            .collect())
    }
    /// Members whose readSeq >= seq (at most 50, most advanced first).
    async fn read_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Receipt>> {
        Ok(receipts(&self.markers(ctx, 0).await?, &self.0, true))
    }
    /// Members whose deliveredSeq >= seq (at most 50).
    async fn delivered_to(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Receipt>> {
        Ok(receipts(&self.markers(ctx, 1).await?, &self.0, false))
    }
}

/// The messaging fields of a conversation (the entity is owned by conversations).
#[derive(SimpleObject)]
#[graphql(name = "Conversation", extends, complex)]
pub struct ConversationNode {
    /// The conversation's id.
    pub id: ID,
}

impl ConversationNode {
    async fn summary(&self, ctx: &Context<'_>) -> async_graphql::Result<Summary> {
        let me = viewer_id(ctx)?;
        let loader = ctx.data::<DataLoader<SummaryLoader>>()?;
        loader
            .load_one((me, self.id.to_string()))
            .await
            .map_err(ApiError::internal)
            .gql()?
            .ok_or_else(|| ApiError::not_found("conversation not found").into_graphql())
    }
}

#[ComplexObject]
impl ConversationNode {
    /// Last assigned seq (0 when empty).
    async fn last_seq(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.last_seq)
    }
    /// The caller's read marker.
    async fn read_seq(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.read_seq)
    }
    /// Others' messages after the caller's read marker.
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.summary(ctx).await?.unread)
    }
    /// The latest message.
    async fn last_message(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<MessageNode>> {
        Ok(self.summary(ctx).await?.last_message.map(MessageNode))
    }
    /// limit 1..200; before: N -> the `limit` messages just before seq N; after: N -> just
    /// after; neither -> the latest. Always ascending by seq.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        before: Option<i64>,
        after: Option<i64>,
        #[graphql(default_with = "Some(50)")] limit: Option<i64>,
    ) -> async_graphql::Result<MessageConnection> {
        let page = Page::parse(before, after, limit.unwrap_or(50)).gql()?;
        let me = viewer_id(ctx)?;
        let loader = ctx.data::<DataLoader<HistoryLoader>>()?;
        let (nodes, has_more) = loader
            .load_one((me, self.id.to_string(), page))
            .await
            .map_err(ApiError::internal)
            .gql()?
            .ok_or_else(|| ApiError::not_found("conversation not found").into_graphql())?;
        Ok(MessageConnection {
            nodes: nodes.into_iter().map(MessageNode).collect(),
            has_more,
        })
    }
}
