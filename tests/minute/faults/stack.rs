//! The split deployment on the test's own infrastructure: auth, users, conversations,
//! messaging, two realtime replicas and the gateway, each a `minute <role>` process that a
//! fault can kill, freeze or restart on the same port.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::infra::{Mongo, Proc, Rabbit, Redis, port_open};

pub(crate) const SECRET: &str = "fault-tests-secret-of-at-least-32-bytes";

/// The processes of the deployment, by name (`realtime-a`/`realtime-b` for the replicas).
pub(crate) const ROLES: [(&str, &str); 7] = [
    ("auth", "auth"),
    ("users", "users"),
    ("conversations", "conversations"),
    ("messaging", "messaging"),
    ("realtime-a", "realtime"),
    ("realtime-b", "realtime"),
    ("gateway", "gateway"),
];

pub(crate) struct Service {
    pub(crate) port: u16,
    role: &'static str,
    pub(crate) proc: Proc,
}

pub(crate) struct Stack {
    pub(crate) dir: PathBuf,
    pub(crate) services: BTreeMap<&'static str, Service>,
    env: Vec<(String, String)>,
    // Dropped after the services.
    pub(crate) redis: Redis,
    pub(crate) mongo: Mongo,
    pub(crate) rabbit: Rabbit,
}

impl Stack {
    /// Starts the infrastructure and every role; `armed` adds `MINUTE_FAILPOINTS` to the
    /// named processes' first start.
    pub(crate) async fn start(test: &str, armed: &[(&str, &str)]) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/faults")
            .join(minute_testkit::unique(&slug(test)));
        std::fs::create_dir_all(&dir).expect("test dir");
        // A link to the binary as built now: a concurrent build without the `failpoints`
        // feature may replace target/debug/minute while the test runs.
        let bin = dir.join("minute");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_minute"), &bin).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_minute"), &bin).expect("a copy of the binary");
        }
        if !armed.is_empty() {
            assert!(
                has_crash_points(&bin),
                "this test arms crash points: build with `--features failpoints`"
            );
        }
        let (rabbit, redis, mongo) =
            tokio::join!(Rabbit::start(&dir), Redis::start(&dir), Mongo::start(&dir));
        let ports: BTreeMap<&str, u16> = ROLES
            .iter()
            .map(|(n, _)| (*n, minute_testkit::free_port()))
            .collect();
        let mut env: Vec<(String, String)> = vec![
            ("JWT_SECRET".into(), SECRET.into()),
            ("AMQP_URL".into(), rabbit.url()),
            ("REDIS_URL".into(), redis.url()),
            ("DATABASE_URL".into(), mongo.url()),
            ("HOST".into(), "127.0.0.1".into()),
            ("LOG_LEVEL".into(), "warn".into()),
            ("MONGODB_TIMEOUT_SECS".into(), "3".into()),
            ("REALTIME_PRESENCE_TTL_SECS".into(), "9".into()),
            ("REALTIME_MAX_FRAMES_PER_SEC".into(), "1000".into()),
        ];
        for (name, var) in [
            ("auth", "AUTH_URL"),
            ("users", "USERS_URL"),
            ("conversations", "CONVERSATIONS_URL"),
            ("messaging", "MESSAGING_URL"),
        ] {
            env.push((var.into(), format!("http://127.0.0.1:{}", ports[name])));
        }
        let mut stack = Self {
            dir,
            services: BTreeMap::new(),
            env,
            redis,
            mongo,
            rabbit,
        };
        for (name, role) in ROLES {
            let mut proc = stack.proc(name, role, ports[name]);
            if let Some((_, spec)) = armed.iter().find(|(n, _)| *n == name) {
                proc = proc.env("MINUTE_FAILPOINTS", *spec);
            }
            stack.services.insert(
                name,
                Service {
                    port: ports[name],
                    role,
                    proc,
                },
            );
            if name == "gateway" {
                // The gateway composes the subgraphs it finds at start.
                for other in [
                    "auth",
                    "users",
                    "conversations",
                    "messaging",
                    "realtime-a",
                    "realtime-b",
                ] {
                    stack.wait_ready(other).await;
                }
            }
            stack.services.get_mut(name).expect("added").proc.spawn();
        }
        stack.wait_ready("gateway").await;
        stack
    }

    fn proc(&self, name: &str, role: &str, port: u16) -> Proc {
        let mut p = Proc::new(name, self.dir.join("minute"), &[role], &self.dir)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("REPLICA_ID", minute_testkit::unique(name));
        for db in ["AUTH", "USERS", "CONVERSATIONS", "MESSAGING", "REALTIME"] {
            let var = format!("{db}_DATABASE_NAME");
            p = p.env(&var, format!("minute_{}", db.to_lowercase()));
        }
        for (k, v) in &self.env {
            p = p.env(k, v.clone());
        }
        p
    }

    pub(crate) fn port(&self, name: &str) -> u16 {
        self.services[name].port
    }

    pub(crate) fn service(&mut self, name: &str) -> &mut Service {
        self.services.get_mut(name).expect("a service of the stack")
    }

    /// Waits for `/readyz` 200 (up to 60 s), failing fast when the process exits.
    pub(crate) async fn wait_ready(&mut self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let port = self.port(name);
            if let Some((200, _)) = minute_testkit::http_get(port, "/readyz").await {
                return;
            }
            let svc = self.service(name);
            if let Some(status) = svc.proc.exited() {
                panic!("{name} exited ({status}):\n{}", svc.proc.log_tail());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} not ready within 60 s: {:?}\n{}",
                minute_testkit::http_get(port, "/readyz").await,
                svc.proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `name` again on its port (a fresh process, no failpoints armed).
    pub(crate) async fn restart(&mut self, name: &str) {
        let (role, port) = (self.services[name].role, self.services[name].port);
        let mut fresh = self.proc(name, role, port);
        let svc = self.service(name);
        svc.proc.stop(Duration::from_secs(5));
        // The port is free once the old process is gone (SO_REUSEADDR covers TIME_WAIT).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while port_open(port) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        fresh.spawn();
        svc.proc = fresh;
        self.wait_ready(name).await;
    }

    /// Waits until `name` exits by itself (a failpoint), up to `within`.
    pub(crate) async fn wait_exit(&mut self, name: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.service(name).proc.exited() {
                return Some(status.to_string());
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// True when the binary at `path` was built with the `failpoints` feature (it then names
/// the variable that arms them).
pub(crate) fn has_crash_points(path: &std::path::Path) -> bool {
    std::process::Command::new("grep")
        .args(["-qaF", "MINUTE_FAILPOINTS"])
        .arg(path)
        .status()
        .expect("grep runs")
        .success()
}

/// `RabbitMQ stop_app / start_app` -> `rabbitmq-stop-app-start-app`.
fn slug(label: &str) -> String {
    let s: String = label
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("-")
}

impl Drop for Stack {
    fn drop(&mut self) {
        for svc in self.services.values_mut() {
            svc.proc.stop(Duration::from_secs(3));
        }
        self.rabbit.shutdown();
        self.redis.proc.stop(Duration::from_secs(3));
        self.mongo.proc.stop(Duration::from_secs(5));
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
