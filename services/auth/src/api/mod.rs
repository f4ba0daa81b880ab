//! The auth subgraph: thin resolvers that parse input into domain types, call
//! [`AuthService`], and map errors to `api.md`'s codes. `AuthPayload.user` is a reference
//! to the users subgraph's `User` entity; auth only knows its id.

mod http;

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, ID, InputObject, Object, Schema, SimpleObject};
use minute_kit::GqlResultExt;
use minute_kit::graphql::{traceparent, viewer};

use crate::domain::credentials::{LoginAttempt, NewPassword, PresentedPassword, Registration};
use crate::domain::service::{AuthService, Issued};

pub use http::router;

/// The executable subgraph.
pub type AuthSchema = Schema<Query, Mutation, EmptySubscription>;

/// The subgraph over `service`.
pub fn schema(service: Arc<AuthService>) -> AuthSchema {
    minute_kit::graphql::limits(Schema::build(Query, Mutation, EmptySubscription))
        .enable_federation()
        .data(service)
        .finish()
}

/// The federation SDL (committed as `services/auth/schema.graphql`).
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// The client address used for throttling (first `X-Forwarded-For` entry, else the peer).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

fn service<'a>(ctx: &'a Context<'_>) -> &'a Arc<AuthService> {
    // Inserted by `schema()`; a schema built without it is a programming error caught by
    // every test.
    ctx.data_unchecked::<Arc<AuthService>>()
}

/// Auth has no queries of its own (federation adds `_service`). async-graphql needs one
/// field per object, so this one exists, marked `@inaccessible`: the gateway composes it
/// but never exposes it to clients.
pub struct Query;

#[Object(name = "Query")]
impl Query {
    #[graphql(name = "_auth", inaccessible, visible = false)]
    async fn placeholder(&self) -> bool {
        true
    }
}

/// A user, owned by the users subgraph.
#[derive(SimpleObject)]
#[graphql(unresolvable = "id")]
pub struct User {
    /// The user id.
    pub id: ID,
}

/// Tokens for a session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; exchange it with `refresh` before the access token expires. Single use.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: i32,
    /// The account's user.
    pub user: User,
}

impl From<Issued> for AuthPayload {
    fn from(i: Issued) -> Self {
        Self {
            access_token: i.access_token,
            refresh_token: i.refresh_token,
            expires_in: i32::try_from(i.expires_in).unwrap_or(i32::MAX),
            user: User { id: ID(i.user_id) },
        }
    }
}

/// `register` input.
#[derive(InputObject)]
pub struct RegisterInput {
    /// 3-32 characters of `[a-z0-9_.]` (upper case is lowered).
    pub username: String,
    /// 8-128 characters.
    pub password: String,
    /// Shown to others; up to 64 characters.
    pub display_name: Option<String>,
}

/// `login` input.
#[derive(InputObject)]
pub struct LoginInput {
    /// Username (case-insensitive).
    pub username: String,
    /// Password.
    pub password: String,
    /// Label of this device's session.
    pub device_name: Option<String>,
}

/// Auth mutations.
pub struct Mutation;

#[Object(name = "Mutation")]
impl Mutation {
    /// Creates an account and logs it in.
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> async_graphql::Result<AuthPayload> {
        let registration = Registration::parse(
            &input.username,
            input.password,
            input.display_name.as_deref(),
        )
        .gql()?;
        let issued = service(ctx)
            .register(registration, traceparent(ctx))
            .await
            .gql()?;
        Ok(issued.into())
    }

    /// Logs in; unknown user and wrong password give the same error.
    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        let attempt = LoginAttempt::parse(
            &input.username,
            input.password,
            input.device_name.as_deref(),
        )
        .gql()?;
        let client = ctx.data_opt::<ClientIp>().map(|c| c.0);
        let issued = service(ctx).login(attempt, client).await.gql()?;
        Ok(issued.into())
    }

    /// Exchanges a refresh token for new tokens; reusing an old one revokes the session.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let issued = service(ctx)
            .refresh(&refresh_token, traceparent(ctx))
            .await
            .gql()?;
        Ok(issued.into())
    }

    /// Revokes this session; its sockets close.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let v = viewer(ctx)?;
        service(ctx).logout(v, traceparent(ctx)).await.gql()?;
        Ok(true)
    }

    /// Revokes every session of the user.
    async fn logout_all(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let v = viewer(ctx)?;
        service(ctx).logout_all(v, traceparent(ctx)).await.gql()?;
        Ok(true)
    }

    /// Changes the password and revokes every other session.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> async_graphql::Result<bool> {
        let v = viewer(ctx)?;
        let current = PresentedPassword::parse(current_password).gql()?;
        let new = NewPassword::parse(new_password).gql()?;
        service(ctx)
            .change_password(v, current, new, traceparent(ctx))
            .await
            .gql()?;
        Ok(true)
    }
}
