//! `Mutation`: creating conversations and changing members, roles and titles.

use async_graphql::{Context, ID, Object};
use minute_kit::{ApiError, GqlResultExt};

use super::types::{ConversationObj, GqlRole};
use crate::domain::service::Op;
use crate::domain::{Title, UserId, UserIds};

/// The subgraph's mutations.
pub struct Mutation;

fn user_id(raw: &str) -> async_graphql::Result<UserId> {
    UserId::parse(raw).ok_or_else(|| ApiError::bad_input("not a user id").into_graphql())
}

async fn mutate(
    ctx: &Context<'_>,
    conversation_id: &str,
    op: Op,
) -> async_graphql::Result<ConversationObj> {
    let me = super::viewer(ctx)?;
    let tp = minute_kit::graphql::traceparent(ctx);
    super::service(ctx)
        .mutate(&me, conversation_id, op, tp.as_deref())
        .await
        .gql()?
        .map(ConversationObj)
        .ok_or_else(|| ApiError::not_found("conversation not found").into_graphql())
}

#[Object(name = "Mutation")]
impl Mutation {
    /// Idempotent: the same pair of users always gets the same conversation.
    async fn create_direct_conversation(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<ConversationObj> {
        let me = super::viewer(ctx)?;
        let other = self::user_id(&user_id)?;
        let tp = minute_kit::graphql::traceparent(ctx);
        let view = super::service(ctx)
            .create_direct(&me, other, tp.as_deref())
            .await
            .gql()?;
        Ok(ConversationObj(view))
    }

    /// The caller becomes OWNER; `memberIds` become MEMBERs.
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        title: String,
        member_ids: Vec<ID>,
    ) -> async_graphql::Result<ConversationObj> {
        let me = super::viewer(ctx)?;
        let service = super::service(ctx);
        let title = Title::parse(&title).gql()?;
        let raw: Vec<String> = member_ids.into_iter().map(|i| i.0).collect();
        let ids = UserIds::parse(&raw, service.max_group_members()).gql()?;
        let tp = minute_kit::graphql::traceparent(ctx);
        let view = service
            .create_group(&me, title, ids, tp.as_deref())
            .await
            .gql()?;
        Ok(ConversationObj(view))
    }

    /// OWNER/ADMIN.
    async fn add_members(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        user_ids: Vec<ID>,
    ) -> async_graphql::Result<ConversationObj> {
        let raw: Vec<String> = user_ids.into_iter().map(|i| i.0).collect();
        let ids = UserIds::parse(&raw, super::service(ctx).max_group_members()).gql()?;
        mutate(ctx, &conversation_id, Op::Add(ids)).await
    }

    /// OWNER/ADMIN.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<ConversationObj> {
        let user = self::user_id(&user_id)?;
        mutate(ctx, &conversation_id, Op::Remove(user)).await
    }

    /// The last OWNER must hand over first.
    async fn leave_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> async_graphql::Result<bool> {
        let me = super::viewer(ctx)?;
        let tp = minute_kit::graphql::traceparent(ctx);
        super::service(ctx)
            .mutate(&me, &conversation_id, Op::Leave, tp.as_deref())
            .await
            .gql()?;
        Ok(true)
    }

    /// OWNER/ADMIN.
    async fn update_conversation(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        title: String,
    ) -> async_graphql::Result<ConversationObj> {
        let title = Title::parse(&title).gql()?;
        mutate(ctx, &conversation_id, Op::Rename(title)).await
    }

    /// OWNER.
    async fn set_member_role(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        user_id: ID,
        role: GqlRole,
    ) -> async_graphql::Result<ConversationObj> {
        let user = self::user_id(&user_id)?;
        mutate(ctx, &conversation_id, Op::SetRole(user, role.into())).await
    }
}
