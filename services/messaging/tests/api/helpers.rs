//! Spawning the real service on port 0 and talking to it as clients do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minute_bus::{EVENTS_EXCHANGE, EventBus, Message as BusMessage};
use minute_events::{
    ConversationCreated, ConversationKind, Envelope, MemberAdded, MemberRef, MemberRemoved,
    MemberRole,
};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_messaging::{App, Settings};
use minute_testkit::GraphqlClient;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) const SECRET: &str = "messaging-tests-secret-at-least-32-bytes-long";
/// A broker address where nothing listens.
pub(crate) const DEAD_AMQP: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Mongo(String),
    Sqlite(std::path::PathBuf),
}

impl Backend {
    pub(crate) fn mongo() -> Self {
        Self::Mongo(minute_testkit::unique_database("messaging"))
    }
    pub(crate) fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(minute_testkit::unique("minute-messaging"));
        Self::Sqlite(dir)
    }
}

/// How to start one instance.
#[derive(Clone, Debug)]
pub(crate) struct Spawn {
    pub(crate) backend: Backend,
    pub(crate) namespace: String,
    pub(crate) amqp_url: String,
    pub(crate) conversations_url: Option<String>,
}

impl Spawn {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            backend,
            namespace: minute_testkit::unique_namespace(),
            amqp_url: minute_testkit::amqp_url(),
            conversations_url: None,
        }
    }
}

pub(crate) struct TestApp {
    pub(crate) port: u16,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) infra: Infra,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A bus of its own on the shared broker, in `namespace`.
pub(crate) fn bus(namespace: &str) -> (Arc<dyn EventBus>, CancellationToken) {
    let stop = CancellationToken::new();
    let mut settings = minute_bus::RabbitSettings::new(minute_testkit::amqp_url());
    settings.namespace = minute_bus::Namespace(namespace.to_owned());
    let bus = minute_bus::RabbitBus::start(settings, stop.clone());
    (Arc::new(bus), stop)
}

pub(crate) fn jwt() -> JwtSettings {
    JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), None).expect("jwt settings")
}

pub(crate) async fn spawn_app(spawn: Spawn) -> TestApp {
    let stop = CancellationToken::new();
    let infra = Infra::connect(
        InfraOptions {
            amqp_url: Some(spawn.amqp_url.clone()),
            redis_url: Some(minute_testkit::redis_url()),
            bus_namespace: spawn.namespace.clone(),
            redis_prefix: format!("{}:", minute_testkit::unique("t")),
            replica_id: minute_testkit::unique("messaging"),
        },
        jwt(),
        stop.clone(),
    )
    .await
    .expect("infra");
    let mut env = vec![
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), "0".to_owned()),
        ("MESSAGING_RELAY_INTERVAL_MS".to_owned(), "200".to_owned()),
    ];
    match &spawn.backend {
        Backend::Mongo(db) => {
            env.push(("DATABASE_URL".into(), minute_testkit::mongodb_uri()));
            env.push(("MESSAGING_DATABASE_NAME".into(), db.clone()));
        }
        Backend::Sqlite(dir) => env.push(("MINUTE_DATA_DIR".into(), dir.display().to_string())),
    }
    if let Some(u) = &spawn.conversations_url {
        env.push(("CONVERSATIONS_URL".into(), u.clone()));
    }
    let settings = Settings::from_env(&Env::from_pairs(env)).expect("settings");
    let app = App::build(settings, infra.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let handle = tokio::spawn(app.run_until_stopped(stop.clone()));
    TestApp {
        port,
        bus: infra.bus.clone(),
        infra,
        stop,
        handle: Some(handle),
    }
}

impl TestApp {
    /// Stops the instance and waits for it.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
        }
    }

    /// A client acting as a new user.
    pub(crate) fn user(&self) -> User {
        let id = minute_testkit::unique("u");
        let token = self
            .infra
            .auth
            .keys()
            .issue(&id, &minute_testkit::unique("s"), Some("tester"));
        User {
            id,
            gql: GraphqlClient::new(self.port).with_token(token),
        }
    }

    pub(crate) fn anonymous(&self) -> GraphqlClient {
        GraphqlClient::new(self.port)
    }

    async fn publish<T: minute_events::Event>(&self, data: T) {
        let env = Envelope::new(data);
        self.bus
            .publish(EVENTS_EXCHANGE, BusMessage::from_envelope(&env))
            .await
            .expect("publish");
    }

    /// Announces a group with `members` (first is OWNER) as conversations would, and waits
    /// until messaging knows it.
    pub(crate) async fn group(&self, members: &[(&User, MemberRole)]) -> String {
        let conv = minute_testkit::unique("c");
        self.publish(ConversationCreated {
            conversation_id: conv.clone(),
            kind: ConversationKind::Group,
            title: Some("g".into()),
            members: members
                .iter()
                .map(|(u, r)| MemberRef {
                    user_id: u.id.clone(),
                    role: *r,
                })
                .collect(),
            version: 1,
            created_at: chrono::Utc::now(),
        })
        .await;
        for (u, _) in members {
            assert!(u.sees(&conv).await, "member {} never saw {conv}", u.id);
        }
        conv
    }

    pub(crate) async fn add_member(&self, conv: &str, user: &User, role: MemberRole, version: u64) {
        self.publish(MemberAdded {
            conversation_id: conv.to_owned(),
            kind: ConversationKind::Group,
            members: vec![MemberRef {
                user_id: user.id.clone(),
                role,
            }],
            version,
        })
        .await;
    }

    pub(crate) async fn publish_removed_unchecked(&self, conv: &str, user: &User, version: u64) {
        self.publish(MemberRemoved {
            conversation_id: conv.to_owned(),
            user_id: user.id.clone(),
            version,
        })
        .await;
    }

    pub(crate) async fn remove_member(&self, conv: &str, user: &User, version: u64) {
        self.publish(MemberRemoved {
            conversation_id: conv.to_owned(),
            user_id: user.id.clone(),
            version,
        })
        .await;
        assert!(
            minute_testkit::eventually(Duration::from_secs(10), || async {
                !user.sees_now(conv).await
            })
            .await,
            "removal of {} never applied",
            user.id
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) gql: GraphqlClient,
}

pub(crate) const MESSAGE_FIELDS: &str = "id conversationId seq sender { id } clientMessageId body \
    replyTo { id seq } createdAt editedAt deletedAt reactions { emoji count reactedByMe } \
    readBy { user { id } at } deliveredTo { user { id } at }";

impl User {
    pub(crate) async fn sees_now(&self, conv: &str) -> bool {
        let r = self.conversation_raw(conv, "lastSeq").await;
        r.get("errors").is_none()
    }

    pub(crate) async fn sees(&self, conv: &str) -> bool {
        minute_testkit::eventually(Duration::from_secs(10), || self.sees_now(conv)).await
    }

    /// `_entities` for one Conversation with `fields` (raw response).
    pub(crate) async fn conversation_raw(&self, conv: &str, fields: &str) -> Value {
        let q = format!(
            "query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on Conversation {{ {fields} }} }} }}"
        );
        self.gql
            .raw(
                &q,
                json!({"r": [{"__typename": "Conversation", "id": conv}]}),
            )
            .await
    }

    pub(crate) async fn conversation(&self, conv: &str, fields: &str) -> Value {
        let r = self.conversation_raw(conv, fields).await;
        assert!(r.get("errors").is_none(), "errors: {r}");
        r["data"]["_entities"][0].clone()
    }

    pub(crate) async fn send_raw(
        &self,
        conv: &str,
        cmid: &str,
        body: &str,
        reply_to: Option<&str>,
    ) -> Value {
        let q = format!(
            "mutation($i: SendMessageInput!) {{ sendMessage(input: $i) {{ {MESSAGE_FIELDS} }} }}"
        );
        self.gql
            .raw(
                &q,
                json!({"i": {"conversationId": conv, "clientMessageId": cmid, "body": body, "replyToId": reply_to}}),
            )
            .await
    }

    pub(crate) async fn send(&self, conv: &str, body: &str) -> Value {
        let r = self
            .send_raw(conv, &minute_testkit::unique("k"), body, None)
            .await;
        assert!(r.get("errors").is_none(), "send failed: {r}");
        r["data"]["sendMessage"].clone()
    }

    /// `mutation { <op> { MESSAGE_FIELDS } }` style helper for message mutations.
    pub(crate) async fn message_op(&self, op: &str, args: Value) -> Value {
        let (sig, call) = match op {
            "editMessage" => (
                "$m: ID!, $b: String!",
                "editMessage(messageId: $m, body: $b)",
            ),
            "deleteMessage" => ("$m: ID!", "deleteMessage(messageId: $m)"),
            "addReaction" => (
                "$m: ID!, $e: String!",
                "addReaction(messageId: $m, emoji: $e)",
            ),
            "removeReaction" => (
                "$m: ID!, $e: String!",
                "removeReaction(messageId: $m, emoji: $e)",
            ),
            _ => panic!("unknown op {op}"),
        };
        let q = format!("mutation({sig}) {{ {call} {{ {MESSAGE_FIELDS} }} }}");
        self.gql.raw(&q, args).await
    }

    pub(crate) async fn history_raw(&self, conv: &str, args: &str) -> Value {
        self.conversation_raw(
            conv,
            &format!("messages{args} {{ hasMore nodes {{ seq id body }} }}"),
        )
        .await
    }

    pub(crate) async fn seqs(&self, conv: &str, args: &str) -> (Vec<i64>, bool) {
        let r = self.history_raw(conv, args).await;
        assert!(r.get("errors").is_none(), "history failed: {r}");
        let c = &r["data"]["_entities"][0]["messages"];
        let seqs = c["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["seq"].as_i64().expect("seq"))
            .collect();
        (seqs, c["hasMore"].as_bool().expect("hasMore"))
    }

    pub(crate) async fn mark_read_raw(&self, conv: &str, seq: i64) -> Value {
        self.gql
            .raw(
                "mutation($c: ID!, $s: Int!) { markRead(conversationId: $c, seq: $s) { id lastSeq readSeq unreadCount } }",
                json!({"c": conv, "s": seq}),
            )
            .await
    }

    pub(crate) async fn message(&self, id: &str) -> Value {
        let q = format!(
            "query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on Message {{ {MESSAGE_FIELDS} }} }} }}"
        );
        let r = self
            .gql
            .raw(&q, json!({"r": [{"__typename": "Message", "id": id}]}))
            .await;
        assert!(r.get("errors").is_none(), "errors: {r}");
        r["data"]["_entities"][0].clone()
    }
}

/// The first error code of a response.
pub(crate) fn code(r: &Value) -> String {
    r["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {r}"))
        .to_owned()
}

/// A stub of conversations' internal membership endpoint (only for the fallback path).
/// (conversation, user) -> (role, version).
type Members = Arc<Mutex<HashMap<(String, String), (String, u64)>>>;

#[derive(Clone, Default)]
pub(crate) struct ConversationsStub {
    pub(crate) members: Members,
}

impl ConversationsStub {
    pub(crate) fn set(&self, conv: &str, user: &str, role: &str, version: u64) {
        self.members.lock().expect("lock").insert(
            (conv.to_owned(), user.to_owned()),
            (role.to_owned(), version),
        );
    }

    /// Serves the stub; returns its base URL.
    pub(crate) async fn serve(&self) -> String {
        use axum::extract::{Path, State};
        use axum::routing::get;
        async fn member(
            State(m): State<Members>,
            Path((conv, user)): Path<(String, String)>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let m = m.lock().expect("lock");
            if !m.keys().any(|(c, _)| c == &conv) {
                return axum::http::StatusCode::NOT_FOUND.into_response();
            }
            let body = match m.get(&(conv, user)) {
                Some((role, v)) => {
                    json!({"member": true, "role": role, "kind": "GROUP", "version": v})
                }
                None => json!({"member": false, "role": null, "kind": "GROUP", "version": 1}),
            };
            axum::Json(body).into_response()
        }
        let router = axum::Router::new()
            .route("/internal/conversations/{id}/members/{user}", get(member))
            .with_state(self.members.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://127.0.0.1:{port}")
    }
}

/// Collects event envelopes from a queue bound to `minute.events` and `minute.delivery`.
pub(crate) struct EventTap {
    pub(crate) seen: Arc<Mutex<Vec<(String, String, String)>>>, // (exchange-ish key, id, type)
}

impl EventTap {
    pub(crate) async fn start(bus: &Arc<dyn EventBus>, bindings: &[(&str, &str)]) -> Self {
        let name = minute_testkit::unique("tap");
        let mut spec =
            minute_bus::QueueSpec::durable(name.clone()).expires(Some(Duration::from_secs(120)));
        for (ex, key) in bindings {
            spec = spec.bind(*ex, *key);
        }
        bus.declare_queue(spec).await.expect("declare tap");
        let mut sub = bus.consume(&name, 100).await.expect("consume tap");
        let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let s2 = seen.clone();
        tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                let env: Value = serde_json::from_slice(&d.body).unwrap_or(Value::Null);
                s2.lock().expect("lock").push((
                    d.routing_key.clone(),
                    env["id"].as_str().unwrap_or_default().to_owned(),
                    env["type"].as_str().unwrap_or_default().to_owned(),
                ));
                let _ = d.ack().await;
            }
        });
        Self { seen }
    }

    pub(crate) fn snapshot(&self) -> Vec<(String, String, String)> {
        self.seen.lock().expect("lock").clone()
    }

    pub(crate) async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<(String, String, String)> {
        minute_testkit::eventually(timeout, || async { self.snapshot().len() >= n }).await;
        self.snapshot()
    }
}
