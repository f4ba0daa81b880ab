//! `minute` (all roles in one process) end to end, as a newcomer runs it: two users,
//! messages over `/graphql` received over `/ws`, a restart, and everything still there —
//! first on embedded storage with no external server, then on MongoDB, RabbitMQ and Redis.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use minute_testkit::{GraphqlClient, WsClient};
use serde_json::{Value, json};

pub(crate) struct Minute {
    child: Child,
}

impl Minute {
    pub(crate) async fn start(port: u16, env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_minute"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("minute starts");
        let ready = minute_testkit::until_ready(port, Duration::from_secs(90)).await;
        assert!(ready.is_ok(), "/readyz: {ready:?}");
        Self { child }
    }

    /// SIGTERM, then waits up to 15 s for exit code 0.
    pub(crate) fn stop(mut self) {
        minute_testkit::signal(self.child.id(), "TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "SIGTERM exits 0, got {status}");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "exits within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Minute {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const AUTH: &str = "accessToken refreshToken user { id username }";

async fn register(api: &GraphqlClient, name: &str) -> (GraphqlClient, String, String) {
    let data = api
        .ok(
            &format!("mutation($i: RegisterInput!) {{ register(input: $i) {{ {AUTH} }} }}"),
            json!({"i": {"username": name, "password": "correct horse battery"}}),
        )
        .await;
    let p = &data["register"];
    (
        api.with_token(p["accessToken"].as_str().expect("token")),
        p["user"]["id"].as_str().expect("id").to_owned(),
        p["refreshToken"].as_str().expect("refresh").to_owned(),
    )
}

async fn scenario(env: Vec<(&str, String)>) {
    let port = minute_testkit::free_port();
    let server = Minute::start(port, &env).await;
    let api = GraphqlClient::new(port);
    let suffix = &minute_testkit::unique("u")[2..10];
    let (alice, _alice_id, alice_refresh) = register(&api, &format!("alice{suffix}")).await;
    let (bob, bob_id, _) = register(&api, &format!("bob{suffix}")).await;

    let me = alice.ok("{ me { username displayName } }", json!({})).await;
    assert_eq!(
        me["me"]["username"],
        format!("alice{suffix}"),
        "me right after register"
    );

    let conv = alice
        .ok(
            "mutation($u: ID!) { createDirectConversation(userId: $u) { id kind } }",
            json!({"u": bob_id}),
        )
        .await;
    let conv_id = conv["createDirectConversation"]["id"]
        .as_str()
        .expect("conv")
        .to_owned();

    let mut bob_ws = WsClient::connect(port, bob.token().expect("token")).await;
    bob_ws.subscribe_events().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut sent = Vec::new();
    for i in 1..=3 {
        let m = alice
            .ok(
                "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id seq body } }",
                json!({"i": {"conversationId": conv_id, "clientMessageId": format!("c{i}"), "body": format!("hello {i}")}}),
            )
            .await;
        assert_eq!(m["sendMessage"]["seq"], i);
        sent.push(m["sendMessage"]["id"].as_str().expect("id").to_owned());
    }
    let mut received: Vec<Value> = Vec::new();
    while received.len() < 3 {
        let e = bob_ws
            .next_event(Duration::from_secs(10))
            .await
            .expect("bob receives the messages over /ws");
        if e["__typename"] == "MessageCreated" {
            received.push(e);
        }
    }
    assert_eq!(received[0]["body"], "hello 1");
    assert_eq!(received[2]["seq"], 3);

    bob.ok(
        "mutation($c: ID!) { markRead(conversationId: $c, seq: 2) { readSeq } }",
        json!({"c": conv_id}),
    )
    .await;
    drop(bob_ws);
    server.stop();

    // Restart on the same data: history, markers and sessions are intact.
    let server = Minute::start(port, &env).await;
    let history = alice
        .ok(
            "query($c: ID!) { conversation(id: $c) { messages(limit: 50) { nodes { id seq body } hasMore } } }",
            json!({"c": conv_id}),
        )
        .await;
    let nodes = history["conversation"]["messages"]["nodes"]
        .as_array()
        .expect("nodes")
        .clone();
    let ids: Vec<&str> = nodes
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        sent.iter().map(String::as_str).collect::<Vec<_>>(),
        "history survives"
    );
    let marker = bob
        .ok(
            "query($c: ID!) { conversation(id: $c) { readSeq unreadCount lastSeq } }",
            json!({"c": conv_id}),
        )
        .await;
    assert_eq!(marker["conversation"]["readSeq"], 2, "read marker survives");
    assert_eq!(marker["conversation"]["unreadCount"], 1);
    let refreshed = api
        .ok(
            &format!("mutation($r: String!) {{ refresh(refreshToken: $r) {{ {AUTH} }} }}"),
            json!({"r": alice_refresh}),
        )
        .await;
    assert!(
        refreshed["refresh"]["accessToken"].is_string(),
        "the session survives"
    );
    server.stop();
}

#[tokio::test]
async fn all_in_one_on_embedded_storage_survives_a_restart() {
    let data = std::env::temp_dir().join(minute_testkit::unique("minute-e2e"));
    scenario(vec![("MINUTE_DATA_DIR", data.display().to_string())]).await;
    assert!(
        data.join("jwt_secret").exists(),
        "the generated dev secret is kept in the data dir"
    );
    let _ = std::fs::remove_dir_all(data);
}

#[tokio::test]
async fn all_in_one_on_mongodb_rabbitmq_and_redis_survives_a_restart() {
    let data = std::env::temp_dir().join(minute_testkit::unique("minute-e2e"));
    let uri = minute_testkit::mongodb_uri();
    let db = minute_testkit::unique_database("e2e");
    let mut env = vec![
        ("MINUTE_DATA_DIR", data.display().to_string()),
        ("DATABASE_URL", uri),
        ("AMQP_URL", minute_testkit::amqp_url()),
        ("REDIS_URL", minute_testkit::redis_url()),
        (
            "JWT_SECRET",
            "e2e-secret-of-at-least-thirty-two-bytes".to_owned(),
        ),
    ];
    for s in ["AUTH", "USERS", "CONVERSATIONS", "MESSAGING", "REALTIME"] {
        let name: &'static str = Box::leak(format!("{s}_DATABASE_NAME").into_boxed_str());
        env.push((name, format!("{db}_{}", s.to_lowercase())));
    }
    scenario(env).await;
    let _ = std::fs::remove_dir_all(data);
}
