//! The real gateway (composition + hive-router + edge) over two real async-graphql
//! subgraphs served over HTTP: cross-subgraph plans with batched entity fetches, header
//! propagation, every limit, error mapping, readiness, and a subgraph dying mid-run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_graphql::{EmptyMutation, EmptySubscription, Schema};
use minute_testkit::GraphqlClient;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[path = "support/subgraphs.rs"]
mod subgraphs;

use subgraphs::{AccountsQuery, PostsQuery, Seen, serve, start_gateway};

struct Stack {
    gateway: GraphqlClient,
    port: u16,
    seen: Seen,
    accounts_stop: CancellationToken,
    stop: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
        self.accounts_stop.cancel();
    }
}

async fn stack(extra: Vec<(&'static str, String)>) -> Stack {
    let seen = Seen::default();
    let accounts_stop = CancellationToken::new();
    let accounts = Schema::build(AccountsQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish();
    let posts = Schema::build(PostsQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish();
    let stop = CancellationToken::new();
    let a = serve(accounts, seen.clone(), accounts_stop.clone()).await;
    let p = serve(posts, Seen::default(), stop.clone()).await;
    let mut vars = vec![
        ("AUTH_URL", format!("http://127.0.0.1:{a}")),
        ("USERS_URL", format!("http://127.0.0.1:{p}")),
        ("SUBGRAPH_TIMEOUT_SECS", "1".into()),
    ];
    vars.extend(extra);
    let port = start_gateway(vars, stop.clone()).await;
    let ready = minute_testkit::until_ready(port, Duration::from_secs(30)).await;
    assert!(ready.is_ok(), "gateway ready: {ready:?}");
    Stack {
        gateway: GraphqlClient::new(port),
        port,
        seen,
        accounts_stop,
        stop,
    }
}

#[tokio::test]
async fn cross_subgraph_query_batches_entity_fetches() {
    let s = stack(vec![]).await;
    let data = s
        .gateway
        .ok(
            "{ posts(first: 50) { title author { id name } } me { name } }",
            json!({}),
        )
        .await;
    let posts = data["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 50);
    assert_eq!(posts[7]["author"]["name"], "name-u7");
    assert_eq!(data["me"]["name"], "Alice");
    // async-graphql resolves each representation with the entity resolver; the engine sent
    // them in one `_entities` request: 50 resolver calls, one HTTP request (checked below).
    assert_eq!(s.seen.entity_calls.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn authorization_traceparent_and_request_id_reach_subgraphs_cookies_do_not() {
    let s = stack(vec![]).await;
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/graphql", s.port))
        .header("authorization", "Bearer abc")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("x-request-id", "req-42")
        .header("cookie", "session=secret")
        .json(&json!({"query": "{ seenHeaders }"}))
        .send()
        .await
        .expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    let seen: Vec<String> =
        serde_json::from_value(body["data"]["seenHeaders"].clone()).expect("list");
    let has = |p: &str| seen.iter().any(|h| h.starts_with(p));
    assert!(has("authorization=Bearer abc"), "{seen:?}");
    assert!(
        has("traceparent=00-0af7651916cd43dd8448eb211c80319c"),
        "{seen:?}"
    );
    assert!(has("x-request-id=req-42"), "{seen:?}");
    assert!(!has("cookie"), "cookies never forwarded: {seen:?}");
}

async fn refused(s: &Stack, query: &str) -> (String, String) {
    let body = s.gateway.raw(query, json!({})).await;
    (
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase(),
    )
}

#[tokio::test]
async fn every_limit_refuses_its_bomb_with_bad_user_input() {
    let s = stack(vec![]).await;
    let mut nested = String::from("id");
    for _ in 0..20 {
        nested = format!("author {{ {nested} }}");
    }
    let (code, _) = refused(&s, &format!("{{ posts {{ {nested} }} }}")).await;
    assert_eq!(code, "BAD_USER_INPUT", "depth / validation bomb");

    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (code, msg) = refused(&s, &format!("{{ {aliases} }}")).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(msg.contains("alias"), "names the limit: {msg}");

    let tokens: String = (0..1100).map(|_| "__typename ").collect();
    let (code, msg) = refused(&s, &format!("{{ {tokens} }}")).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(msg.contains("token"), "names the limit: {msg}");

    let (code, _) = refused(&s, "{ posts(first: 100) { author { name } } ").await;
    assert_eq!(code, "BAD_USER_INPUT", "syntax error");
    let (code, _) = refused(&s, "{ nope }").await;
    assert_eq!(code, "BAD_USER_INPUT", "unknown field");
    let (code, _) = refused(&s, "{ __schema { types { name } } }").await;
    assert_eq!(code, "BAD_USER_INPUT", "introspection off by default");

    let big = "x".repeat((1 << 20) + 1);
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/graphql", s.port))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"query\":\"{{ me {{ id }} }}\",\"pad\":\"{big}\"}}"
        ))
        .send()
        .await
        .expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("GRAPHQL_MAX_BODY_BYTES")
    );

    let batch: Vec<serde_json::Value> = (0..1000)
        .map(|_| json!({"query": "{ me { id } }"}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/graphql", s.port))
        .json(&batch)
        .send()
        .await
        .expect("send");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("batched")
    );
}

#[tokio::test]
async fn subgraph_errors_keep_contract_codes_and_internal_ones_are_masked() {
    let s = stack(vec![]).await;
    let body = s.gateway.raw("{ denied }", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let body = s.gateway.raw("{ broken }", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INTERNAL",
        "{body}"
    );
    assert!(
        !body.to_string().contains("hunter2"),
        "internal details masked: {body}"
    );
}

#[tokio::test]
async fn a_dead_or_slow_subgraph_gives_a_partial_result_not_a_hang() {
    let s = stack(vec![]).await;
    let started = std::time::Instant::now();
    let body = s
        .gateway
        .raw("{ posts(first: 2) { title } slow }", json!({}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the subgraph timeout"
    );
    assert_eq!(
        body["data"]["posts"][1]["title"], "post 1",
        "the healthy part answers: {body}"
    );
    assert!(
        body["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    s.accounts_stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let body = s
        .gateway
        .raw("{ posts(first: 2) { title } me { name } }", json!({}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead subgraph fails fast"
    );
    // hive-router 0.2.19 answers `data: null` when a subgraph refuses the connection (it
    // keeps the healthy part on a timeout, above); the error names the subgraph, masked.
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors[0]["extensions"]["code"], "INTERNAL", "{body}");
    assert_eq!(errors[0]["extensions"]["service"], "auth", "{body}");
    let data = s
        .gateway
        .ok("{ posts(first: 1) { title } }", json!({}))
        .await;
    assert_eq!(
        data["posts"][0]["title"], "post 0",
        "queries that avoid it still work"
    );
}

#[tokio::test]
async fn not_ready_until_every_subgraph_answers() {
    let stop = CancellationToken::new();
    let dead = minute_testkit::free_port();
    let port = start_gateway(
        vec![("AUTH_URL", format!("http://127.0.0.1:{dead}"))],
        stop.clone(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = minute_testkit::http_get(port, "/readyz")
        .await
        .expect("answers");
    assert_eq!(status, 503);
    assert!(body.contains("supergraph"), "{body}");
    let (status, _) = minute_testkit::http_get(port, "/healthz")
        .await
        .expect("answers");
    assert_eq!(status, 200, "alive while waiting");
    let code = GraphqlClient::new(port)
        .error_code("{ me { id } }", json!({}))
        .await;
    assert_eq!(code, "INTERNAL");
    stop.cancel();
}

#[tokio::test]
async fn introspection_can_be_enabled() {
    let s = stack(vec![("GRAPHQL_INTROSPECTION", "true".into())]).await;
    let data = s
        .gateway
        .ok("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
}

#[test]
fn the_two_subgraphs_compose_into_a_plannable_supergraph() {
    use minute_gateway::compose::compose_supergraph;
    use minute_gateway::config::Subgraph;
    let opts = async_graphql::SDLExportOptions::new()
        .federation()
        .compose_directive();
    let accounts = Schema::build(AccountsQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(opts);
    let posts = Schema::build(PostsQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(opts);
    let sg = |name: &str| Subgraph {
        name: name.into(),
        url: format!("http://{name}/graphql"),
    };
    let supergraph =
        compose_supergraph(&[(sg("accounts"), accounts.clone()), (sg("posts"), posts)])
            .unwrap_or_else(|e| panic!("{e}\n{accounts}"));
    assert!(
        supergraph.contains("@join__type(graph: ACCOUNTS)"),
        "{supergraph}"
    );
    let query_line = supergraph
        .lines()
        .find(|l| l.starts_with("type Query"))
        .expect("Query");
    assert!(
        query_line.contains("@join__type(graph: ACCOUNTS)")
            && query_line.contains("@join__type(graph: POSTS)"),
        "{query_line}"
    );
}
