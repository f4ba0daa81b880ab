//! The messaging subgraph: `Message` (entity), the `Conversation` entity extension
//! (`lastSeq readSeq unreadCount lastMessage messages`), `searchMessages` and the message
//! mutations of api.md. Thin: parse input into domain values, call
//! [`crate::domain::service::Messaging`], map errors. Per-conversation counters, receipts and
//! replied-to messages load through DataLoaders, so a page of conversations costs a fixed
//! number of store calls.

mod loaders;
mod root;
pub mod types;

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptySubscription, SDLExportOptions, Schema};

use crate::domain::service::Messaging;
pub use root::{Mutation, Query};

/// The subgraph schema type.
pub type MessagingSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the executable schema over `service`.
pub fn schema(service: Messaging) -> MessagingSchema {
    let builder = Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(DataLoader::new(
            loaders::SummaryLoader(service.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            loaders::MarkersLoader(service.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            loaders::MessageLoader(service.clone()),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            loaders::HistoryLoader(service.clone()),
            tokio::spawn,
        ))
        .data(service);
    minute_kit::graphql::limits(builder).finish()
}

/// The subgraph SDL (federation form), as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}
