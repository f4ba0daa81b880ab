//! `Query`: `conversation`, `conversations` and the `Conversation` entity resolver.

use async_graphql::{Context, ID, Object};
use minute_kit::GqlResultExt;

use super::types::{ConversationConnection, ConversationObj};
use crate::domain::{ActivityCursor, PageSize};

/// The subgraph's queries.
pub struct Query;

#[Object(name = "Query")]
impl Query {
    /// `null` unless the caller is a member.
    async fn conversation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ConversationObj>> {
        visible(ctx, &id).await
    }

    /// The caller's conversations, most recently active first; `first` 1..=100.
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ConversationConnection> {
        let me = super::viewer(ctx)?;
        let first = PageSize::parse(first.unwrap_or(50)).gql()?;
        let after = after
            .as_deref()
            .map(ActivityCursor::decode)
            .transpose()
            .gql()?;
        let page = super::service(ctx)
            .list(&me, first, after.as_ref())
            .await
            .gql()?;
        Ok(page.into())
    }

    /// Federation `_entities` for `Conversation`: same visibility as `conversation(id)`.
    #[graphql(entity)]
    async fn find_conversation_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ConversationObj>> {
        visible(ctx, &id).await
    }
}

/// The conversation if the caller is a member, else `None`.
async fn visible(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<ConversationObj>> {
    let me = super::viewer(ctx)?;
    let view = super::service(ctx).get(&me, id).await.gql()?;
    Ok(view.map(ConversationObj))
}
