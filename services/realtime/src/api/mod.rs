//! The GraphQL schema executed over `/ws` (api.md "Realtime"): `Subscription.events`
//! streams the `Event` union; `typing` and `setPresence` are mutations sent over the socket.
//! The socket protocol itself is in [`ws`].

pub mod types;
pub(crate) mod ws;

use std::sync::{Arc, Mutex};

use async_graphql::{Context, ID, Object, Schema, Subscription};
use futures_util::Stream;
use minute_kit::error::{ApiError, GqlResultExt};
use minute_kit::graphql::viewer;
use tokio::sync::mpsc;

use crate::hub::{Hub, SocketHandle};
use types::Event;

/// The realtime schema.
pub type RealtimeSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// The socket an operation runs on.
pub(crate) struct SocketCtx(pub(crate) Arc<SocketHandle>);

/// The events of one `events` subscription, handed to the resolver once.
pub(crate) struct EventFeed(
    pub(crate) Mutex<Option<mpsc::UnboundedReceiver<Arc<types::Outgoing>>>>,
);

/// Builds the schema.
pub(crate) fn schema(hub: Option<Arc<Hub>>) -> RealtimeSchema {
    let builder = Schema::build(Query, Mutation, SubscriptionRoot);
    let builder = match hub {
        Some(h) => builder.data(h),
        None => builder,
    };
    minute_kit::graphql::limits(builder).finish()
}

/// The SDL (committed as `schema.graphql`).
pub fn sdl() -> String {
    schema(None).sdl()
}

/// `Query`: the socket is for subscriptions; one field keeps the schema valid.
pub struct Query;

#[Object(name = "Query")]
impl Query {
    /// The server's clock (lets a client measure its skew).
    async fn server_time(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// `Mutation`: sent as `subscribe` messages over the socket.
pub struct Mutation;

fn socket<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a SocketCtx> {
    ctx.data_opt::<SocketCtx>()
        .ok_or_else(|| ApiError::bad_input("only available over /ws").into_graphql())
}

#[Object(name = "Mutation")]
impl Mutation {
    /// Tells the conversation's members that the caller types (at most once per 2 s).
    async fn typing(&self, ctx: &Context<'_>, conversation_id: ID) -> async_graphql::Result<bool> {
        let v = viewer(ctx)?;
        let conv = crate::domain::membership::conversation_id(&conversation_id).gql()?;
        let hub = ctx.data::<Arc<Hub>>()?;
        socket(ctx)?;
        hub.typing(&v.user_id, conv).await.gql()?;
        Ok(true)
    }

    /// Marks this socket present or not; the user is online while any socket is present.
    async fn set_presence(&self, ctx: &Context<'_>, online: bool) -> async_graphql::Result<bool> {
        viewer(ctx)?;
        let hub = ctx.data::<Arc<Hub>>()?;
        hub.set_present(&socket(ctx)?.0, online).await;
        Ok(true)
    }
}

/// `Subscription`.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Everything the caller must see, as it happens.
    async fn events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Event> + use<>> {
        viewer(ctx)?;
        let feed = ctx
            .data_opt::<EventFeed>()
            .and_then(|f| f.0.lock().unwrap_or_else(|p| p.into_inner()).take())
            .ok_or_else(|| ApiError::bad_input("only available over /ws").into_graphql())?;
        Ok(futures_util::stream::unfold(feed, |mut rx| async move {
            rx.recv().await.map(|e| (e.event.clone(), rx))
        }))
    }
}
