//! The real parts under test, each a child process of the test so a fault touches no one
//! else on the machine: a RabbitMQ node of its own (own node name, ports, data and cookie),
//! a Redis and a MongoDB-wire server (SecantusDB) on free ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process that can be stopped and started again with the same command.
pub(crate) struct Proc {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    dir: PathBuf,
    pub(crate) child: Option<Child>,
}

impl Proc {
    pub(crate) fn new(name: &str, program: impl Into<PathBuf>, args: &[&str], dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            log: dir.join(format!("{name}.log")),
            dir: dir.to_owned(),
            child: None,
        }
    }

    pub(crate) fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_owned(), v.into()));
        self
    }

    pub(crate) fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let mut cmd = Command::new(&self.program);
        // Crash dumps and the like land in the test's directory.
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{} ({}) starts: {e}", self.name, self.program.display()));
        self.child = Some(child);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn signal(&self, sig: &str) {
        minute_testkit::signal(self.pid(), sig);
    }

    /// The exit status once the process ended by itself.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + grace;
            while child.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.wait();
    }

    /// The last lines of the process's log (for failure messages).
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Waits until `port` accepts TCP, failing fast when `proc` exits.
pub(crate) async fn wait_port(proc: &mut Proc, port: u16, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !port_open(port) {
        if let Some(status) = proc.exited() {
            panic!("{} exited ({status}):\n{}", proc.name, proc.log_tail());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} not listening on {port} within {within:?}:\n{}",
            proc.name,
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis of this test: no persistence, so a restart starts empty (as a cache would).
pub(crate) struct Redis {
    pub(crate) port: u16,
    pub(crate) proc: Proc,
}

impl Redis {
    pub(crate) async fn start(dir: &Path) -> Self {
        let port = minute_testkit::free_port();
        let p = port.to_string();
        let args = [
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ];
        let mut proc = Proc::new("redis", "redis-server", &args, dir);
        proc.spawn();
        wait_port(&mut proc, port, Duration::from_secs(20)).await;
        Self { port, proc }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The MongoDB-wire server of this test, on a data dir that survives its restarts.
pub(crate) struct Mongo {
    pub(crate) port: u16,
    pub(crate) proc: Proc,
}

/// `secantusd-py`: `TEST_SECANTUSD`, or the copy `scripts/test` installs into
/// `target/standin`.
fn secantusd() -> PathBuf {
    if let Ok(p) = std::env::var("TEST_SECANTUSD") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/standin/venv/bin/secantusd-py");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test once (it installs the MongoDB-wire server there) \
         or set TEST_SECANTUSD to a secantusd-py",
        p.display()
    );
    p
}

impl Mongo {
    pub(crate) async fn start(dir: &Path) -> Self {
        let port = minute_testkit::free_port();
        let data = dir.join("mongo-data");
        std::fs::create_dir_all(&data).expect("data dir");
        let (p, d) = (port.to_string(), data.display().to_string());
        let args = ["--host", "127.0.0.1", "--port", &p, "--storage-path", &d];
        let mut proc = Proc::new("mongo", secantusd(), &args, dir);
        proc.spawn();
        wait_port(&mut proc, port, Duration::from_secs(30)).await;
        Self { port, proc }
    }

    pub(crate) fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?retryWrites=false", self.port)
    }

    pub(crate) async fn restart(&mut self) {
        self.proc.spawn();
        wait_port(&mut self.proc, self.port, Duration::from_secs(30)).await;
    }
}

/// A RabbitMQ node of this test: its own node name, AMQP and distribution ports, data dir,
/// log dir and Erlang cookie (its own `HOME`), no plugins.
pub(crate) struct Rabbit {
    pub(crate) port: u16,
    node: String,
    home: PathBuf,
    pub(crate) proc: Proc,
}

const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";

impl Rabbit {
    pub(crate) async fn start(dir: &Path) -> Self {
        let port = minute_testkit::free_port();
        let dist = minute_testkit::free_port();
        let node = format!("{}@localhost", minute_testkit::unique("minute-faults"));
        let home = dir.join("rabbit-home");
        for d in ["rabbit-home", "rabbit-mnesia", "rabbit-log"] {
            std::fs::create_dir_all(dir.join(d)).expect("rabbit dirs");
        }
        let plugins = dir.join("rabbit-plugins");
        std::fs::write(&plugins, "[].\n").expect("plugins file");
        let s = |p: PathBuf| p.display().to_string();
        let mut proc = Proc::new(
            "rabbitmq",
            format!("{RABBIT_BIN}/rabbitmq-server"),
            &[],
            dir,
        )
        .env("HOME", s(home.clone()))
        .env("RABBITMQ_NODENAME", &node)
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", port.to_string())
        .env("RABBITMQ_DIST_PORT", dist.to_string())
        .env("RABBITMQ_MNESIA_BASE", s(dir.join("rabbit-mnesia")))
        .env("RABBITMQ_LOG_BASE", s(dir.join("rabbit-log")))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", s(plugins))
        // Not the machine's /etc/rabbitmq files (they pin the shared node's listener).
        .env("RABBITMQ_CONFIG_FILE", s(dir.join("rabbit-none")))
        .env(
            "RABBITMQ_ADVANCED_CONFIG_FILE",
            s(dir.join("rabbit-none.config")),
        )
        .env("RABBITMQ_CONF_ENV_FILE", s(dir.join("rabbit-none.env")));
        proc.spawn();
        wait_port(&mut proc, port, Duration::from_secs(60)).await;
        let rabbit = Self {
            port,
            node,
            home,
            proc,
        };
        rabbit.ctl(&["await_startup"]);
        rabbit
    }

    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `rabbitmqctl -n <node> <args>` on this node; the output, or the error.
    pub(crate) fn try_ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(format!("{RABBIT_BIN}/rabbitmqctl"))
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .env("HOME", &self.home)
            .current_dir(&self.home)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    pub(crate) fn ctl(&self, args: &[&str]) -> String {
        self.try_ctl(args)
            .unwrap_or_else(|e| panic!("rabbitmqctl {args:?}: {e}"))
    }

    /// `start_app`, retried while the old listener is still being released.
    pub(crate) async fn start_app(&self) {
        for _ in 0..50 {
            if self.try_ctl(&["start_app"]).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.ctl(&["start_app"]);
    }

    /// `(ready, unacked)` of every queue of the node.
    pub(crate) fn queues(&self) -> Vec<(String, u64, u64)> {
        self.ctl(&[
            "-q",
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_owned();
            Some((name, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
    }
}

impl Rabbit {
    /// Stops the node (before its directories go).
    pub(crate) fn shutdown(&mut self) {
        if self.proc.child.is_some() {
            let _ = self.try_ctl(&["stop"]);
            self.proc.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.shutdown();
    }
}
