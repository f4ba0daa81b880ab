//! `spawn_app`, users with tokens, a stub of the users service's internal endpoint (for the
//! read-your-writes fallback only) and an observer of published events.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minute_bus::{DELIVERY_EXCHANGE, EVENTS_EXCHANGE, Message, QueueSpec, Subscription};
use minute_conversations::{App, Settings};
use minute_events::{Envelope, RawEnvelope};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_testkit::GraphqlClient;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Fields every test reads of a conversation.
pub(crate) const CONV: &str = "id kind title createdAt memberCount myRole \
    members(first: 50) { edges { user { id } role joinedAt } endCursor hasNextPage }";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Db {
    Mongo,
    Sqlite,
}

pub(crate) struct Options {
    pub(crate) db: Db,
    pub(crate) max_members: Option<usize>,
    /// MongoDB database name (default: a fresh one).
    pub(crate) database: Option<String>,
    /// The in-process bus instead of RabbitMQ (only for tests about something else that
    /// would otherwise push thousands of deliveries through the shared broker).
    pub(crate) in_process_bus: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            db: Db::Mongo,
            max_members: None,
            database: None,
            in_process_bus: false,
        }
    }
}

/// What the stubbed users service knows.
#[derive(Clone, Default)]
pub(crate) struct UsersStub {
    known: Arc<Mutex<HashSet<String>>>,
    accept_all: Arc<Mutex<bool>>,
}

impl UsersStub {
    pub(crate) fn add(&self, id: &str) {
        self.known.lock().unwrap().insert(id.to_owned());
    }
    pub(crate) fn accept_all(&self) {
        *self.accept_all.lock().unwrap() = true;
    }
    fn knows(&self, id: &str) -> bool {
        *self.accept_all.lock().unwrap() || self.known.lock().unwrap().contains(id)
    }
}

async fn spawn_users_stub(stub: UsersStub, stop: CancellationToken) -> u16 {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    async fn user(State(s): State<UsersStub>, Path(id): Path<String>) -> axum::response::Response {
        if s.knows(&id) {
            axum::Json(json!({"id": id, "username": format!("u{}", &id[..6.min(id.len())]), "displayName": "x"}))
                .into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    }
    let router = axum::Router::new()
        .route("/internal/users/{id}", axum::routing::get(user))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .ok();
    });
    port
}

pub(crate) struct TestApp {
    pub(crate) port: u16,
    pub(crate) infra: Infra,
    pub(crate) stop: CancellationToken,
    pub(crate) users: UsersStub,
    anonymous: GraphqlClient,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) struct TestUser {
    pub(crate) id: String,
    pub(crate) gql: GraphqlClient,
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub(crate) async fn spawn_with(options: Options) -> TestApp {
    let stop = CancellationToken::new();
    let jwt = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", "conversations-test-secret-0123456789")]),
        None,
    )
    .unwrap();
    let infra = Infra::connect(
        InfraOptions {
            amqp_url: (!options.in_process_bus).then(minute_testkit::amqp_url),
            redis_url: Some(minute_testkit::redis_url()),
            bus_namespace: minute_testkit::unique_namespace(),
            redis_prefix: format!("{}:", minute_testkit::unique("t")),
            replica_id: minute_testkit::unique("conv"),
        },
        jwt,
        stop.clone(),
    )
    .await
    .unwrap();
    let users = UsersStub::default();
    let stub_port = spawn_users_stub(users.clone(), stop.clone()).await;
    let mut env = Env::from_pairs([
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("USERS_URL", format!("http://127.0.0.1:{stub_port}")),
        ("CONVERSATIONS_OUTBOX_INTERVAL_MS", "200".to_owned()),
        ("CONVERSATIONS_QUEUE_EXPIRES_SECS", "60".to_owned()),
    ]);
    match options.db {
        Db::Mongo => {
            env.set("DATABASE_URL", minute_testkit::mongodb_uri());
            let db = options
                .database
                .clone()
                .unwrap_or_else(|| minute_testkit::unique_database("conversations"));
            env.set("CONVERSATIONS_DATABASE_NAME", db);
        }
        Db::Sqlite => {
            let dir = std::env::temp_dir().join(minute_testkit::unique("conv-app"));
            env.set("MINUTE_DATA_DIR", dir.display().to_string());
        }
    }
    if let Some(m) = options.max_members {
        env.set("CONVERSATIONS_MAX_GROUP_MEMBERS", m.to_string());
    }
    let settings = Settings::from_env(&env).unwrap();
    let app = App::build(settings, infra.clone()).await.unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    TestApp {
        port,
        infra,
        stop,
        users,
        anonymous: GraphqlClient::new(port),
    }
}

impl TestApp {
    /// A user the users service knows (through the read-your-writes fallback).
    pub(crate) fn user(&self, name: &str) -> TestUser {
        let u = self.stranger(name);
        self.users.add(&u.id);
        u
    }

    /// A user with a valid token whom the users service does not know.
    pub(crate) fn stranger(&self, name: &str) -> TestUser {
        let id = uuid::Uuid::now_v7().to_string();
        let token =
            self.infra
                .auth
                .keys()
                .issue(&id, &uuid::Uuid::new_v4().to_string(), Some(name));
        TestUser {
            id,
            gql: self.anonymous.with_token(token),
        }
    }

    pub(crate) fn anonymous(&self) -> &GraphqlClient {
        &self.anonymous
    }

    /// Publishes an event to `minute.events` as another service would.
    pub(crate) async fn publish<T: minute_events::Event>(&self, data: T) {
        let env = Envelope::new(data);
        self.infra
            .bus
            .publish(EVENTS_EXCHANGE, Message::from_envelope(&env))
            .await
            .unwrap();
    }

    /// `GET` an internal endpoint: status and JSON body.
    pub(crate) async fn internal(&self, path: &str) -> (u16, Value) {
        let (status, body) = minute_testkit::http_get(self.port, path).await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The conversation's version (internal endpoint), to prove refused calls wrote nothing.
    pub(crate) async fn version(&self, conversation: &str) -> u64 {
        let (status, body) = self
            .internal(&format!("/internal/conversations/{conversation}/members/x"))
            .await;
        assert_eq!(status, 200);
        body["version"].as_u64().unwrap()
    }

    /// Starts observing what the service publishes (events and deliveries).
    pub(crate) async fn observe(&self) -> Observer {
        let name = minute_testkit::unique("test.observer");
        self.infra
            .bus
            .declare_queue(
                QueueSpec::durable(&name)
                    .bind(EVENTS_EXCHANGE, "conversations.#")
                    .bind(DELIVERY_EXCHANGE, "#")
                    .expires(Some(Duration::from_secs(60))),
            )
            .await
            .unwrap();
        Observer {
            sub: self.infra.bus.consume(&name, 500).await.unwrap(),
        }
    }
}

/// One observed publish.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) routing_key: String,
    pub(crate) envelope: RawEnvelope,
}

pub(crate) struct Observer {
    sub: Subscription,
}

impl Observer {
    /// The next publish matching `pred`, within 10 s.
    pub(crate) async fn next(&mut self, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let d = tokio::time::timeout_at(deadline, self.sub.next())
                .await
                .expect("an event within 10 s")
                .expect("subscription open");
            let seen = Seen {
                routing_key: d.routing_key.clone(),
                envelope: RawEnvelope::parse(&d.body).unwrap(),
            };
            d.ack().await.unwrap();
            if pred(&seen) {
                return seen;
            }
        }
    }

    /// Every publish within `window`.
    pub(crate) async fn drain(&mut self, window: Duration) -> Vec<Seen> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(d)) = tokio::time::timeout_at(deadline, self.sub.next()).await {
            out.push(Seen {
                routing_key: d.routing_key.clone(),
                envelope: RawEnvelope::parse(&d.body).unwrap(),
            });
            d.ack().await.unwrap();
        }
        out
    }
}

impl TestUser {
    pub(crate) async fn create_group(&self, title: &str, members: &[&TestUser]) -> Value {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        self.gql
            .ok(
                &format!("mutation($t: String!, $m: [ID!]!) {{ createGroup(title: $t, memberIds: $m) {{ {CONV} }} }}"),
                json!({"t": title, "m": ids}),
            )
            .await["createGroup"]
            .clone()
    }

    pub(crate) async fn direct(&self, other: &str) -> Value {
        self.gql
            .ok(
                &format!(
                    "mutation($u: ID!) {{ createDirectConversation(userId: $u) {{ {CONV} }} }}"
                ),
                json!({"u": other}),
            )
            .await["createDirectConversation"]
            .clone()
    }

    pub(crate) async fn conversation(&self, id: &str) -> Value {
        self.gql
            .ok(
                &format!("query($id: ID!) {{ conversation(id: $id) {{ {CONV} }} }}"),
                json!({"id": id}),
            )
            .await["conversation"]
            .clone()
    }

    /// Ids of `conversations(first)` in order, with the page info.
    pub(crate) async fn list(&self, first: i32, after: Option<&str>) -> (Vec<String>, Value) {
        let data = self
            .gql
            .ok(
                "query($f: Int, $a: String) { conversations(first: $f, after: $a) { nodes { id } endCursor hasNextPage } }",
                json!({"f": first, "a": after}),
            )
            .await;
        let c = data["conversations"].clone();
        let ids = c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, c)
    }

    /// Runs a mutation given as `name(args)`, returning the raw response.
    pub(crate) async fn mutation(&self, call: &str, vars: Value) -> Value {
        self.gql.raw(call, vars).await
    }
}

/// The error code of a response, or "OK".
pub(crate) fn outcome(resp: &Value) -> String {
    match resp["errors"][0]["extensions"]["code"].as_str() {
        Some(c) => c.to_owned(),
        None => {
            assert!(resp.get("errors").is_none(), "{resp}");
            "OK".to_owned()
        }
    }
}

pub(crate) const ADD: &str = "mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id memberCount } }";
pub(crate) const REMOVE: &str = "mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id memberCount } }";
pub(crate) const LEAVE: &str = "mutation($c: ID!) { leaveConversation(conversationId: $c) }";
pub(crate) const RENAME: &str = "mutation($c: ID!, $t: String!) { updateConversation(conversationId: $c, title: $t) { id title } }";
pub(crate) const SET_ROLE: &str = "mutation($c: ID!, $u: ID!, $r: MemberRole!) { setMemberRole(conversationId: $c, userId: $u, role: $r) { id myRole } }";
