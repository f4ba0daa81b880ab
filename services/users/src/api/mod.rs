//! The users subgraph (api.md, "users subgraph") and the internal HTTP endpoint. Thin:
//! parse the input into domain types, call [`Users`], map errors to api.md's codes.

mod internal;
mod loader;
mod mutation;
mod query;
mod user;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptySubscription, Schema};

use crate::domain::Users;

pub use internal::routes as internal_routes;
pub use loader::{EntityLoader, UserLoader};
pub use mutation::Mutation;
pub use query::Query;
pub use user::User;

/// The subgraph's schema type.
pub type UsersSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the subgraph with federation, Minute's limits and the batching `User` loader.
pub fn schema(users: Arc<Users>) -> UsersSchema {
    let loader = DataLoader::new(UserLoader::new(users.store().clone()), tokio::spawn);
    let entities = DataLoader::new(EntityLoader::new(users.store().clone()), tokio::spawn);
    minute_kit::graphql::limits(Schema::build(Query, Mutation, EmptySubscription))
        .enable_federation()
        .data(users)
        .data(loader)
        .data(entities)
        .finish()
}

/// The SDL to commit as `schema.graphql` (federation form).
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}
