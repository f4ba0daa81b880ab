//! `Mutation`: `updateProfile`.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, Result};
use minute_kit::GqlResultExt;
use minute_kit::graphql::traceparent;

use super::query::viewer_id;
use super::user::User;
use crate::domain::{ProfileChanges, Users, UsersError};

/// What to change; an omitted (or null) field stays as it is, an empty `avatarUrl` or
/// `bio` clears it.
#[derive(Debug, InputObject)]
pub(crate) struct UpdateProfileInput {
    /// 1..=64 characters after trimming.
    pub(crate) display_name: Option<String>,
    /// An https URL of at most 2,048 bytes.
    pub(crate) avatar_url: Option<String>,
    /// At most 500 characters.
    pub(crate) bio: Option<String>,
}

/// The users subgraph's mutations.
pub struct Mutation;

#[Object(name = "Mutation")]
impl Mutation {
    /// Changes the caller's profile; any invalid field refuses the whole change.
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let (id, username) = viewer_id(ctx)?;
        let changes = ProfileChanges::parse(
            input.display_name.as_deref(),
            input.avatar_url.as_deref(),
            input.bio.as_deref(),
        )
        .map_err(UsersError::from)
        .gql()?;
        let p = ctx
            .data_unchecked::<Arc<Users>>()
            .update_profile(&id, username.as_deref(), &changes, traceparent(ctx))
            .await
            .gql()?;
        Ok(p.into())
    }
}
