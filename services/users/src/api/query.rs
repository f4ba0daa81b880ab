//! `Query`: `me`, `user`, `searchUsers`, and the federation entity resolver.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, ID, Object, Result};
use minute_kit::graphql::{traceparent, viewer};
use minute_kit::{ApiError, GqlResultExt};

use super::loader::{EntityLoader, UserLoader};
use super::user::User;
use crate::domain::{SearchLimit, SearchQuery, UserId, Users, UsersError};

const DEFAULT_SEARCH_FIRST: i32 = 20;

/// The users subgraph's queries.
pub struct Query;

fn users<'a>(ctx: &'a Context<'_>) -> &'a Arc<Users> {
    ctx.data_unchecked::<Arc<Users>>()
}

/// An id from the caller's token (auth signed it, so it is well-formed unless forged
/// with the key, which is a bug worth refusing loudly).
pub(super) fn viewer_id(ctx: &Context<'_>) -> Result<(UserId, Option<String>)> {
    let v = viewer(ctx)?;
    let id = UserId::parse(&v.user_id)
        .map_err(|_| ApiError::unauthenticated("token subject is not a user id").into_graphql())?;
    Ok((id, v.username.clone()))
}

#[Object(name = "Query")]
impl Query {
    /// The caller's profile.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (id, username) = viewer_id(ctx)?;
        let p = users(ctx)
            .me(&id, username.as_deref(), traceparent(ctx))
            .await
            .gql()?;
        Ok(p.into())
    }

    /// A user by id; null when there is no such user.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        viewer(ctx)?;
        let Ok(id) = UserId::parse(&id) else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DataLoader<UserLoader>>();
        let p = loader
            .load_one(id)
            .await
            .map_err(|e| ApiError::internal(e).into_graphql())?;
        Ok(p.map(User::from))
    }

    /// Users whose username or display name starts with `query` (case-insensitive):
    /// username matches first. `first` is 1..=50.
    async fn search_users(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> Result<Vec<User>> {
        viewer(ctx)?;
        let q = SearchQuery::parse(&query).map_err(UsersError::from).gql()?;
        // An explicit `null` means the default, as an omitted argument does.
        let limit = SearchLimit::parse(first.unwrap_or(DEFAULT_SEARCH_FIRST))
            .map_err(UsersError::from)
            .gql()?;
        let found = users(ctx).search(&q, limit).await.gql()?;
        Ok(found.into_iter().map(User::from).collect())
    }

    /// Federation: resolves `User` references in batches (one store query per batch).
    /// No token needed: the gateway calls it for fields of other subgraphs' answers,
    /// `register`'s among them.
    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        let Ok(id) = UserId::parse(&id) else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DataLoader<EntityLoader>>();
        let p = loader
            .load_one(id)
            .await
            .map_err(|e| ApiError::internal(e).into_graphql())?;
        Ok(p.map(User::from))
    }
}
