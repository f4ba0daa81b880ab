//! `Query` and `Mutation` of the messaging subgraph.

use async_graphql::{Context, ID, Object};
use minute_kit::GqlResultExt;

use super::types::{ConversationNode, MessageNode, SendMessageInput};
use crate::domain::service::{Actor, Messaging};
use crate::domain::{ClientMessageId, Emoji, MarkerKind, MessageBody, SearchTerms};

/// The caller as the domain sees them.
pub(super) fn actor(ctx: &Context<'_>) -> async_graphql::Result<Actor> {
    let v = minute_kit::graphql::viewer(ctx)?;
    Ok(Actor {
        user_id: v.user_id.clone(),
        traceparent: minute_kit::graphql::traceparent(ctx),
    })
}

/// Messaging queries.
pub struct Query;

#[Object(name = "Query")]
impl Query {
    /// Newest messages matching every word of `query`, in the caller's current
    /// conversations only (or in `conversationId`). `first` 1..100.
    async fn search_messages(
        &self,
        ctx: &Context<'_>,
        query: String,
        conversation_id: Option<ID>,
        #[graphql(default_with = "Some(20)")] first: Option<i64>,
    ) -> async_graphql::Result<Vec<MessageNode>> {
        let actor = actor(ctx)?;
        let terms = SearchTerms::parse(&query).gql()?;
        let found = ctx
            .data::<Messaging>()?
            .search(
                &actor,
                &terms,
                conversation_id.as_ref().map(|c| c.as_str()),
                first.unwrap_or(20),
            )
            .await
            .gql()?;
        Ok(found.into_iter().map(MessageNode).collect())
    }

    /// Federation: a message by id, null unless the caller is a member of its conversation.
    #[graphql(entity)]
    async fn find_message_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<MessageNode>> {
        let actor = actor(ctx)?;
        let mut found = ctx
            .data::<Messaging>()?
            .visible(&actor, &[id.to_string()])
            .await
            .gql()?;
        Ok(found.pop().map(MessageNode))
    }

    /// Federation: the messaging fields of a conversation (checked per field).
    #[graphql(entity)]
    async fn find_conversation_by_id(&self, id: ID) -> ConversationNode {
        ConversationNode { id }
    }
}

/// Messaging mutations.
pub struct Mutation;

#[Object(name = "Mutation")]
impl Mutation {
    /// Idempotent per (sender, clientMessageId): a retry returns the original message.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<MessageNode> {
        let actor = actor(ctx)?;
        let body = MessageBody::parse(&input.body).gql()?;
        let cmid = ClientMessageId::parse(&input.client_message_id).gql()?;
        let m = ctx
            .data::<Messaging>()?
            .send(
                &actor,
                &input.conversation_id,
                cmid,
                body,
                input.reply_to_id.map(|r| r.to_string()),
            )
            .await
            .gql()?;
        Ok(MessageNode(m))
    }

    /// Sender only; the seq stays.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
        body: String,
    ) -> async_graphql::Result<MessageNode> {
        let actor = actor(ctx)?;
        let body = MessageBody::parse(&body).gql()?;
        let m = ctx
            .data::<Messaging>()?
            .edit(&actor, &message_id, body)
            .await
            .gql()?;
        Ok(MessageNode(m))
    }

    /// Sender, or conversation OWNER/ADMIN; leaves a tombstone (body null).
    async fn delete_message(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
    ) -> async_graphql::Result<MessageNode> {
        let actor = actor(ctx)?;
        let m = ctx
            .data::<Messaging>()?
            .delete(&actor, &message_id)
            .await
            .gql()?;
        Ok(MessageNode(m))
    }

    /// One per user per emoji.
    async fn add_reaction(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
        emoji: String,
    ) -> async_graphql::Result<MessageNode> {
        react(ctx, message_id, emoji, true).await
    }

    /// Removes the caller's reaction with `emoji`, if any.
    async fn remove_reaction(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
        emoji: String,
    ) -> async_graphql::Result<MessageNode> {
        react(ctx, message_id, emoji, false).await
    }

    /// Moves the caller's read marker forward; never backwards.
    async fn mark_read(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        seq: i64,
    ) -> async_graphql::Result<ConversationNode> {
        let actor = actor(ctx)?;
        ctx.data::<Messaging>()?
            .mark(&actor, &conversation_id, MarkerKind::Read, seq)
            .await
            .gql()?;
        Ok(ConversationNode {
            id: conversation_id,
        })
    }

    /// Moves the caller's delivered marker forward; true if it moved.
    async fn mark_delivered(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        seq: i64,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx)?;
        ctx.data::<Messaging>()?
            .mark(&actor, &conversation_id, MarkerKind::Delivered, seq)
            .await
            .gql()
    }
}

async fn react(
    ctx: &Context<'_>,
    message_id: ID,
    emoji: String,
    add: bool,
) -> async_graphql::Result<MessageNode> {
    let actor = actor(ctx)?;
    let emoji = Emoji::parse(&emoji).gql()?;
    let m = ctx
        .data::<Messaging>()?
        .react(&actor, &message_id, emoji, add)
        .await
        .gql()?;
    Ok(MessageNode(m))
}
