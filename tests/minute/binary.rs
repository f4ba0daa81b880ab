//! The `minute` binary as an operator runs it: roles, health, configuration errors and a
//! graceful exit on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn minute(args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minute"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the minute binary starts")
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("minute did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn healthy(port: u16) -> bool {
    minute_testkit::eventually(Duration::from_secs(20), || async move {
        matches!(
            minute_testkit::http_get(port, "/healthz").await,
            Some((200, _))
        )
    })
    .await
}

#[test]
fn help_lists_every_role() {
    let out = Command::new(env!("CARGO_BIN_EXE_minute"))
        .arg("--help")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for role in crate::ROLES {
        assert!(text.contains(role), "--help lists {role}:\n{text}");
    }
}

#[tokio::test]
async fn every_role_serves_healthz_and_exits_zero_on_sigterm() {
    for role in crate::ROLES {
        let port = minute_testkit::free_port();
        let data = std::env::temp_dir().join(minute_testkit::unique("minute-data"));
        let mut child = minute(
            &[role],
            &[
                ("PORT", port.to_string()),
                (
                    "JWT_SECRET",
                    "binary-test-secret-of-at-least-32-bytes".into(),
                ),
                ("MINUTE_DATA_DIR", data.display().to_string()),
            ],
        );
        assert!(healthy(port).await, "{role}: /healthz answers 200");
        minute_testkit::signal(child.id(), "TERM");
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert!(status.success(), "{role}: SIGTERM exits 0, got {status}");
    }
}

#[test]
fn a_bad_value_stops_the_process_naming_the_variable() {
    for (var, value) in [
        ("PORT", "eighty"),
        ("LOG_LEVEL", "[[["),
        ("AMQP_URL", "http://x"),
        ("JWT_SECRET", "too-short"),
    ] {
        let mut child = minute(&["auth"], &[(var, value.to_owned())]);
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert!(!status.success(), "{var}={value} must fail");
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read");
        assert!(err.contains(var), "the message names {var}: {err}");
    }
}
