//! `spawn_cluster`: realtime replicas sharing a bus namespace, a Redis prefix and a database,
//! plus a publisher that plays messaging, conversations and auth.

use std::sync::Arc;
use std::time::Duration;

use minute_bus::{DELIVERY_EXCHANGE, EVENTS_EXCHANGE, EventBus, Message};
use minute_events::{
    ConversationCreated, ConversationKind, Envelope, Event, MemberAdded, MemberRef, MemberRemoved,
    MemberRole, MessageCreated, ReceiptKind, ReceiptUpdated, SessionRevoked,
    conversation_delivery_key, user_delivery_key,
};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_realtime::{App, Settings};
use minute_testkit::WsClient;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "realtime-tests-secret-0123456789abcdef";

pub fn jwt() -> JwtSettings {
    JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), None).expect("jwt")
}

/// One running replica.
pub struct Replica {
    pub port: u16,
    pub stop: CancellationToken,
}

/// Replicas plus the test's publisher.
pub struct Cluster {
    pub namespace: String,
    pub redis_prefix: String,
    pub database: String,
    pub replicas: Vec<Replica>,
    pub publisher: Infra,
    pub extra_env: Vec<(String, String)>,
}

pub async fn infra(namespace: &str, redis_prefix: &str, replica_id: &str) -> Infra {
    Infra::connect(
        InfraOptions {
            amqp_url: Some(minute_testkit::amqp_url()),
            redis_url: Some(minute_testkit::redis_url()),
            bus_namespace: namespace.to_owned(),
            redis_prefix: redis_prefix.to_owned(),
            replica_id: replica_id.to_owned(),
        },
        jwt(),
        CancellationToken::new(),
    )
    .await
    .expect("infra")
}

impl Cluster {
    /// `n` replicas on the MongoDB-wire server, with `env` added to each one's settings.
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Self {
        let namespace = minute_testkit::unique_namespace();
        let redis_prefix = format!("{}:", minute_testkit::unique("t"));
        let publisher = infra(&namespace, &redis_prefix, "publisher").await;
        let mut cluster = Self {
            namespace,
            redis_prefix,
            database: minute_testkit::unique_database("realtime"),
            replicas: Vec::new(),
            publisher,
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        for _ in 0..n {
            cluster.add_replica().await;
        }
        cluster
    }

    pub async fn add_replica(&mut self) -> u16 {
        let id = minute_testkit::unique("r");
        let infra = infra(&self.namespace, &self.redis_prefix, &id).await;
        let mut env = Env::from_pairs([
            ("PORT", "0".to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("DATABASE_URL", minute_testkit::mongodb_uri()),
            ("REALTIME_DATABASE_NAME", self.database.clone()),
        ]);
        for (k, v) in &self.extra_env {
            env.set(k, v.clone());
        }
        let settings = Settings::from_env(&env).expect("settings");
        let stop = infra.stop.clone();
        let app = App::build(settings, infra.clone())
            .await
            .expect("app builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        self.replicas.push(Replica { port, stop });
        port
    }

    /// Starts a replica in a child process (this test binary re-run as
    /// [`replica_process`]) so it can be killed with SIGKILL; returns it and its port.
    pub async fn spawn_process_replica(&self) -> (std::process::Child, u16) {
        let port = minute_testkit::free_port();
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "api::helpers::replica_process",
                "--nocapture",
            ])
            .env("RT_CHILD_PORT", port.to_string())
            .env("RT_CHILD_NAMESPACE", &self.namespace)
            .env("RT_CHILD_REDIS_PREFIX", &self.redis_prefix)
            .env("RT_CHILD_DATABASE", &self.database)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn the replica process");
        let up = minute_testkit::eventually(Duration::from_secs(20), || async {
            minute_testkit::http_get(port, "/healthz").await.is_some()
        })
        .await;
        assert!(up, "the replica process did not start");
        (child, port)
    }

    pub fn port(&self, i: usize) -> u16 {
        self.replicas[i].port
    }

    pub fn token(&self, user: &str, session: &str) -> String {
        self.publisher.auth.keys().issue(user, session, Some(user))
    }

    /// A socket of `user` (session `<user>-s`) on replica `i`, subscribed to `events`.
    pub async fn connect(&self, i: usize, user: &str) -> WsClient {
        self.connect_session(i, user, &format!("{user}-s")).await
    }

    pub async fn connect_session(&self, i: usize, user: &str, session: &str) -> WsClient {
        let mut c = WsClient::connect(self.port(i), &self.token(user, session)).await;
        c.subscribe_events().await;
        // The subscription is live once a round trip over the socket completed.
        let pong = c
            .execute("query { serverTime }", serde_json::json!({}))
            .await;
        assert!(pong["data"]["serverTime"].is_string(), "{pong}");
        c
    }

    fn bus(&self) -> &Arc<dyn EventBus> {
        &self.publisher.bus
    }

    async fn publish<T: Event>(&self, env: &Envelope<T>, delivery_keys: &[String]) {
        self.bus()
            .publish(EVENTS_EXCHANGE, Message::from_envelope(env))
            .await
            .expect("publish event");
        for key in delivery_keys {
            let mut m = Message::from_envelope(env);
            m.routing_key = key.clone();
            self.bus()
                .publish(DELIVERY_EXCHANGE, m)
                .await
                .expect("publish delivery");
        }
    }

    /// Publishes any event to `minute.delivery` with `conv.<conv>` (as messaging does).
    pub async fn to_conversation<T: Event>(&self, conv: &str, data: T) {
        self.publish_delivery(&Envelope::new(data), &[conversation_delivery_key(conv)])
            .await;
    }

    async fn publish_delivery<T: Event>(&self, env: &Envelope<T>, keys: &[String]) {
        for key in keys {
            let mut m = Message::from_envelope(env);
            m.routing_key = key.clone();
            self.bus()
                .publish(DELIVERY_EXCHANGE, m)
                .await
                .expect("publish delivery");
        }
    }

    /// As conversations publishes a new conversation.
    pub async fn create(&self, conv: &str, kind: ConversationKind, members: &[&str], version: u64) {
        let env = Envelope::new(ConversationCreated {
            conversation_id: conv.into(),
            kind,
            title: None,
            members: members
                .iter()
                .enumerate()
                .map(|(i, u)| MemberRef {
                    user_id: (*u).into(),
                    role: if i == 0 {
                        MemberRole::Owner
                    } else {
                        MemberRole::Member
                    },
                })
                .collect(),
            version,
            created_at: chrono::Utc::now(),
        });
        let mut keys = vec![conversation_delivery_key(conv)];
        keys.extend(members.iter().map(|u| user_delivery_key(u)));
        self.publish(&env, &keys).await;
    }

    pub async fn add(&self, conv: &str, user: &str, version: u64) {
        let env = Envelope::new(MemberAdded {
            conversation_id: conv.into(),
            kind: ConversationKind::Group,
            members: vec![MemberRef {
                user_id: user.into(),
                role: MemberRole::Member,
            }],
            version,
        });
        self.publish(
            &env,
            &[conversation_delivery_key(conv), user_delivery_key(user)],
        )
        .await;
    }

    pub async fn remove(&self, conv: &str, user: &str, version: u64) {
        let env = Envelope::new(MemberRemoved {
            conversation_id: conv.into(),
            user_id: user.into(),
            version,
        });
        self.publish(
            &env,
            &[conversation_delivery_key(conv), user_delivery_key(user)],
        )
        .await;
    }

    /// As messaging publishes a message.
    pub async fn message(&self, conv: &str, seq: i64, sender: &str, body: &str) {
        let env = Envelope::new(MessageCreated {
            conversation_id: conv.into(),
            message_id: format!("{conv}-m{seq}"),
            seq,
            sender_id: sender.into(),
            client_message_id: Some(format!("c{seq}")),
            body: body.into(),
            reply_to_id: None,
            created_at: chrono::Utc::now(),
        });
        self.publish(&env, &[conversation_delivery_key(conv)]).await;
    }

    pub async fn read(&self, conv: &str, user: &str, seq: i64) {
        let env = Envelope::new(ReceiptUpdated {
            conversation_id: conv.into(),
            user_id: user.into(),
            kind: ReceiptKind::Read,
            seq,
        });
        self.publish(&env, &[conversation_delivery_key(conv)]).await;
    }

    /// As auth publishes a revocation (events exchange only).
    pub async fn revoke(&self, user: &str, sessions: &[&str]) {
        let env = Envelope::new(SessionRevoked {
            user_id: user.into(),
            session_ids: sessions.iter().map(|s| (*s).to_owned()).collect(),
            reason: "logout".into(),
        });
        self.publish(&env, &[]).await;
    }
}

/// Unique user / conversation ids per test.
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| minute_testkit::unique(&format!("{prefix}{i}")))
        .collect()
}

/// Waits until `client` received an event matching `pred`; returns it.
pub async fn expect_event(
    client: &mut WsClient,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event(left).await {
            Some(e) if pred(&e) => return e,
            Some(_) => {}
            None => panic!("no {what} within 10 s"),
        }
    }
}

/// Entry point of a replica process (see [`Cluster::spawn_process_replica`]); does nothing
/// when run as an ordinary test.
#[tokio::test]
#[ignore = "started by spawn_process_replica"]
async fn replica_process() {
    let Ok(port) = std::env::var("RT_CHILD_PORT") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let infra = infra(
        &var("RT_CHILD_NAMESPACE"),
        &var("RT_CHILD_REDIS_PREFIX"),
        &minute_testkit::unique("child"),
    )
    .await;
    let env = Env::from_pairs([
        ("PORT", port),
        ("HOST", "127.0.0.1".to_owned()),
        ("DATABASE_URL", minute_testkit::mongodb_uri()),
        ("REALTIME_DATABASE_NAME", var("RT_CHILD_DATABASE")),
    ]);
    let stop = infra.stop.clone();
    let app = App::build(Settings::from_env(&env).expect("settings"), infra)
        .await
        .expect("app");
    app.run_until_stopped(stop).await.expect("serve");
}
