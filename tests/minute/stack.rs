//! The split deployment as containers run it, for end-to-end tests: one `minute <role>`
//! process per service plus `minute gateway`, on real RabbitMQ (a vhost of its own, deleted
//! afterwards), Redis and the MongoDB-wire server (databases of their own). Tests reach the
//! gateway's `/graphql`, realtime's `/ws` and each subgraph's own `/graphql` directly.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use minute_testkit::GraphqlClient;
use serde_json::{Value, json};

/// The JWT secret every role of a stack shares (tests forge tokens with it).
pub(crate) const SECRET: &str = "stack-test-secret-of-at-least-32-bytes!";

/// The services of a split deployment, in start order, with the variable that names each.
const SERVICES: [(&str, &str); 5] = [
    ("auth", "AUTH_URL"),
    ("users", "USERS_URL"),
    ("conversations", "CONVERSATIONS_URL"),
    ("messaging", "MESSAGING_URL"),
    ("realtime", "REALTIME_URL"),
];

struct Role {
    name: &'static str,
    port: u16,
    child: Child,
}

/// A running split deployment; dropping it kills the processes and deletes the vhost and
/// the roles' logs.
pub(crate) struct Stack {
    roles: Vec<Role>,
    /// Each role's output, `<role>.log`.
    dir: PathBuf,
    /// The RabbitMQ vhost of this stack.
    pub(crate) vhost: String,
    /// `AMQP_URL` of this stack.
    pub(crate) amqp_url: String,
    /// The gateway's `/graphql`, anonymous.
    pub(crate) api: GraphqlClient,
}

impl Stack {
    /// Starts every role and waits until each one (and the gateway) is ready.
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Stack::start`] with `extra` variables set on every role after the defaults (so
    /// they may override `LOG_LEVEL`, say).
    pub(crate) async fn start_with(extra: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join(minute_testkit::unique("minute-stack"));
        std::fs::create_dir_all(&dir).expect("a temp dir for the roles' logs");
        let vhost = minute_testkit::unique("t-vhost");
        minute_testkit::rabbitmqctl(&["add_vhost", &vhost]);
        minute_testkit::rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        let amqp_url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
        let database = minute_testkit::unique_database("stack");
        let ports: Vec<u16> = SERVICES
            .iter()
            .map(|_| minute_testkit::free_port())
            .collect();
        let mut env: Vec<(String, String)> = vec![
            ("JWT_SECRET".into(), SECRET.into()),
            ("AMQP_URL".into(), amqp_url.clone()),
            ("REDIS_URL".into(), minute_testkit::redis_url()),
            ("DATABASE_URL".into(), minute_testkit::mongodb_uri()),
            ("HOST".into(), "127.0.0.1".into()),
            ("LOG_LEVEL".into(), "warn".into()),
        ];
        for ((name, var), port) in SERVICES.iter().zip(&ports) {
            env.push((
                format!("{}_DATABASE_NAME", name.to_uppercase()),
                format!("{database}_{name}"),
            ));
            // Realtime has no HTTP subgraph: the gateway must not compose it.
            if *name != "realtime" {
                env.push(((*var).into(), format!("http://127.0.0.1:{port}")));
            }
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut stack = Self {
            roles: Vec::new(),
            dir,
            vhost,
            amqp_url,
            api: GraphqlClient::new(0),
        };
        for ((name, _), port) in SERVICES.iter().zip(&ports) {
            stack.spawn(name, *port, &env);
        }
        for role in &stack.roles {
            stack.wait_ready(role.name, role.port).await;
        }
        let gateway = minute_testkit::free_port();
        stack.spawn("gateway", gateway, &env);
        stack.wait_ready("gateway", gateway).await;
        stack.api = GraphqlClient::new(gateway);
        stack
    }

    fn spawn(&mut self, name: &'static str, port: u16, env: &[(String, String)]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("a log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_minute"));
        cmd.arg(name)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("REPLICA_ID", minute_testkit::unique(name))
            .stdout(log.try_clone().expect("a log"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the minute binary starts");
        self.roles.push(Role { name, port, child });
    }

    async fn wait_ready(&self, name: &str, port: u16) {
        let ready = minute_testkit::until_ready(port, Duration::from_secs(120)).await;
        assert!(
            ready.is_ok(),
            "{name} not ready: {ready:?}\n{}",
            self.output()
        );
    }

    /// What one role wrote so far.
    pub(crate) fn log(&self, role: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{role}.log"))).unwrap_or_default()
    }

    /// What every role wrote so far.
    pub(crate) fn output(&self) -> String {
        self.roles
            .iter()
            .map(|r| self.log(r.name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The port of a role (`auth`, ..., `realtime`, `gateway`).
    pub(crate) fn port(&self, role: &str) -> u16 {
        self.roles
            .iter()
            .find(|r| r.name == role)
            .unwrap_or_else(|| panic!("no role {role}"))
            .port
    }

    /// A client of one subgraph's own `/graphql`, bypassing the gateway.
    pub(crate) fn subgraph(&self, role: &str) -> GraphqlClient {
        GraphqlClient::new(self.port(role))
    }

    /// Registers a user through the gateway.
    pub(crate) async fn register(&self, name: &str) -> User {
        let username = format!("{name}{}", &minute_testkit::unique("u")[2..12]);
        let data = self
            .api
            .ok(
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }",
                json!({"i": {"username": username, "password": "correct horse battery"}}),
            )
            .await;
        let p = &data["register"];
        User {
            api: self
                .api
                .with_token(p["accessToken"].as_str().expect("accessToken")),
            id: p["user"]["id"].as_str().expect("user id").to_owned(),
            username,
        }
    }

    /// Messages ready and unacknowledged in `queue` of this stack's vhost.
    pub(crate) fn queue_depth(&self, queue: &str) -> Option<(u64, u64)> {
        let out = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_queues",
                "-p",
                &self.vhost,
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ])
            .output()
            .expect("rabbitmqctl runs");
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.as_slice() {
                [name, ready, unacked] if *name == queue => {
                    Some((ready.parse().ok()?, unacked.parse().ok()?))
                }
                _ => None,
            }
        })
    }

    /// Sends SIGTERM to every role (the gateway first) and waits for them to exit 0 (a
    /// graceful exit also flushes telemetry). The logs stay readable until the drop.
    pub(crate) fn stop(&mut self) {
        let mut failures = Vec::new();
        for role in self.roles.iter_mut().rev() {
            minute_testkit::signal(role.child.id(), "TERM");
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = role.child.try_wait().expect("wait") {
                    if !status.success() {
                        failures.push(format!("{}: SIGTERM exits 0, got {status}", role.name));
                    }
                    break;
                }
                if std::time::Instant::now() > deadline {
                    failures.push(format!("{} exits within 15 s", role.name));
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        assert!(failures.is_empty(), "{failures:?}\n{}", self.output());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for role in &mut self.roles {
            let _ = role.child.kill();
            let _ = role.child.wait();
        }
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.vhost])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A registered user acting through the gateway.
#[derive(Clone)]
pub(crate) struct User {
    /// The gateway with this user's access token.
    pub(crate) api: GraphqlClient,
    /// The user's id.
    pub(crate) id: String,
    /// The user's username.
    #[allow(dead_code)]
    pub(crate) username: String,
}

impl User {
    /// The access token.
    pub(crate) fn token(&self) -> &str {
        self.api.token().expect("a logged-in user")
    }

    /// Creates a group with `members` (this user is its owner); returns its id.
    pub(crate) async fn group(&self, title: &str, members: &[&User]) -> String {
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let d = self
            .api
            .ok(
                "mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id } }",
                json!({"t": title, "m": ids}),
            )
            .await;
        d["createGroup"]["id"].as_str().expect("id").to_owned()
    }

    /// The direct conversation with `other`.
    pub(crate) async fn direct(&self, other: &User) -> String {
        let d = self
            .api
            .ok(
                "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
                json!({"u": other.id}),
            )
            .await;
        d["createDirectConversation"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// `sendMessage` as sent; the whole response.
    pub(crate) async fn send_raw(&self, conv: &str, body: &str, reply_to: Option<&str>) -> Value {
        self.api
            .raw(
                "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id seq body conversationId replyTo { id body } } }",
                json!({"i": {
                    "conversationId": conv,
                    "clientMessageId": minute_testkit::unique("c"),
                    "body": body,
                    "replyToId": reply_to,
                }}),
            )
            .await
    }

    /// Sends a message that must be accepted; returns it.
    pub(crate) async fn send(&self, conv: &str, body: &str) -> Value {
        let r = self.send_raw(conv, body, None).await;
        assert!(r.get("errors").is_none(), "sendMessage: {r}");
        r["data"]["sendMessage"].clone()
    }

    /// `conversation(id)` with `fields`, the whole response.
    pub(crate) async fn conversation(&self, conv: &str, fields: &str) -> Value {
        self.api
            .raw(
                &format!("query($c: ID!) {{ conversation(id: $c) {{ {fields} }} }}"),
                json!({"c": conv}),
            )
            .await
    }
}

/// The first error's `extensions.code` of a response, if any.
pub(crate) fn code(r: &Value) -> Option<String> {
    r["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}
