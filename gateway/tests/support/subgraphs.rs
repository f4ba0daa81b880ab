//! Two small federated subgraphs served over real HTTP, shared by the gateway's tests and
//! its benchmark: "accounts" owns `User`, "posts" owns `Post` and references `User`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::{
    ComplexObject, Context, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
};
use tokio_util::sync::CancellationToken;

// ---- the "accounts" subgraph: owns User ----

#[derive(SimpleObject, Clone)]
pub struct User {
    id: ID,
    name: String,
}

#[derive(Clone, Default)]
pub struct Seen {
    pub entity_calls: Arc<AtomicUsize>,
    pub headers: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

pub struct AccountsQuery;

#[Object(name = "Query")]
impl AccountsQuery {
    async fn me(&self) -> User {
        User {
            id: "u1".into(),
            name: "Alice".into(),
        }
    }
    /// What the subgraph received (header propagation).
    async fn seen_headers(&self, ctx: &Context<'_>) -> Vec<String> {
        let seen = ctx.data_unchecked::<Seen>();
        seen.headers
            .lock()
            .map(|h| h.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default()
    }
    async fn slow(&self) -> Option<String> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Some("late".into())
    }
    async fn broken(&self) -> async_graphql::Result<String> {
        Err(async_graphql::Error::new("db password=hunter2 leaked"))
    }
    async fn denied(&self) -> async_graphql::Result<String> {
        use async_graphql::ErrorExtensions;
        Err(async_graphql::Error::new("not yours").extend_with(|_, e| e.set("code", "FORBIDDEN")))
    }
    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> User {
        ctx.data_unchecked::<Seen>()
            .entity_calls
            .fetch_add(1, Ordering::SeqCst);
        User {
            name: format!("name-{}", id.as_str()),
            id,
        }
    }
}

// ---- the "posts" subgraph: owns Post, references User ----

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Post {
    id: ID,
    title: String,
    #[graphql(skip)]
    author_id: String,
}

#[ComplexObject]
impl Post {
    async fn author(&self) -> UserRef {
        UserRef {
            id: self.author_id.clone().into(),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "User")]
pub struct UserRef {
    id: ID,
}

pub struct PostsQuery;

#[Object(name = "Query")]
impl PostsQuery {
    async fn posts(&self, first: Option<i32>) -> Vec<Post> {
        (0..first.unwrap_or(3).clamp(0, 100))
            .map(|i| Post {
                id: format!("p{i}").into(),
                title: format!("post {i}"),
                author_id: format!("u{i}"),
            })
            .collect()
    }
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> UserRef {
        UserRef { id }
    }
}

/// Serves `schema` at `http://127.0.0.1:<port>/graphql` on a runtime of its own, so that
/// cancelling `stop` kills it like a crashed process: listener and connections gone at once.
pub async fn serve<Q>(
    schema: Schema<Q, EmptyMutation, EmptySubscription>,
    seen: Seen,
    stop: CancellationToken,
) -> u16
where
    Q: async_graphql::ObjectType + 'static,
{
    let handler = move |headers: axum::http::HeaderMap, req: async_graphql_axum::GraphQLRequest| {
        let schema = schema.clone();
        let seen = seen.clone();
        async move {
            if let Ok(mut h) = seen.headers.lock() {
                h.clear();
                for (k, v) in &headers {
                    h.push((k.to_string(), v.to_str().unwrap_or("").to_owned()));
                }
            }
            async_graphql_axum::GraphQLResponse::from(
                schema.execute(req.into_inner().data(seen)).await,
            )
        }
    };
    let app = axum::Router::new().route("/graphql", axum::routing::post(handler));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            tokio::select! {
                _ = axum::serve(listener, app) => {}
                _ = stop.cancelled() => {}
            }
        });
        rt.shutdown_background();
    });
    port
}

/// Both subgraphs with federation enabled.
pub fn schemas() -> (
    Schema<AccountsQuery, EmptyMutation, EmptySubscription>,
    Schema<PostsQuery, EmptyMutation, EmptySubscription>,
) {
    (
        Schema::build(AccountsQuery, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish(),
        Schema::build(PostsQuery, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish(),
    )
}

/// The real gateway over `vars` (subgraph URLs...) on a free port; runs until `stop`.
pub async fn start_gateway(vars: Vec<(&'static str, String)>, stop: CancellationToken) -> u16 {
    let mut env = minute_kit::config::Env::from_pairs([
        ("PORT", "0".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
    ]);
    for (k, v) in vars {
        env.set(k, v);
    }
    let settings = minute_gateway::Settings::from_env(&env).expect("settings");
    let jwt = minute_kit::config::JwtSettings::from_env(
        &minute_kit::config::Env::from_pairs([(
            "JWT_SECRET",
            "gateway-test-secret-0123456789abcdef",
        )]),
        None,
    )
    .expect("jwt");
    let infra = minute_kit::infra::Infra::connect(
        minute_kit::infra::InfraOptions::default(),
        jwt,
        stop.clone(),
    )
    .await
    .expect("infra");
    let app = minute_gateway::App::build(settings, infra)
        .await
        .expect("gateway");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop));
    port
}
