//! The conversations subgraph (async-graphql, federation): thin resolvers that parse
//! input into domain types, call [`crate::domain::service::Service`] and map errors to
//! api.md's codes; plus the internal HTTP endpoints other services call ([`internal`]).
//!
//! Federation: `Conversation @key(fields: "id")` is resolved by `_entities` with the same
//! visibility as `conversation(id)`: the gateway forwards the caller's token, and a
//! representation the caller is not a member of resolves to `null`. That is the only
//! answer that does not leak existence, and `myRole` (non-null) can always be answered
//! because every resolved `Conversation` carries the caller's membership. `Member.user` is
//! a `User` reference (`@key(fields: "id", resolvable: false)`) the users subgraph resolves.

pub mod internal;
mod mutation;
mod query;
pub mod types;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema};

use crate::domain::UserId;
use crate::domain::service::Service;

pub use mutation::Mutation;
pub use query::Query;

/// The subgraph schema type.
pub type ConversationsSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over `service`.
pub fn schema(service: Service) -> ConversationsSchema {
    minute_kit::graphql::limits(Schema::build(Query, Mutation, EmptySubscription))
        .enable_federation()
        .data(service)
        .finish()
}

/// The subgraph SDL as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}

fn service<'a>(ctx: &async_graphql::Context<'a>) -> &'a Service {
    ctx.data_unchecked::<Service>()
}

/// The caller as a user id.
fn viewer(ctx: &async_graphql::Context<'_>) -> async_graphql::Result<UserId> {
    let v = minute_kit::graphql::viewer(ctx)?;
    UserId::parse(&v.user_id).ok_or_else(|| {
        minute_kit::ApiError::unauthenticated("token subject is not a user id").into_graphql()
    })
}
