//! The README's quickstart, executed: its commands run against a fresh `minute`, so the
//! README cannot rot.

use std::process::Command;
use std::time::Duration;

fn quickstart_commands() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let section = readme
        .split("## Quickstart")
        .nth(1)
        .expect("a Quickstart section");
    let block = section
        .split("```sh")
        .nth(1)
        .expect("a sh block")
        .split("```")
        .next()
        .expect("closed");
    block.to_owned()
}

#[tokio::test]
async fn the_readme_quickstart_works_as_written() {
    let port = minute_testkit::free_port();
    let data = std::env::temp_dir().join(minute_testkit::unique("minute-readme"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_minute"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("MINUTE_DATA_DIR", &data)
        .env("LOG_LEVEL", "warn")
        .spawn()
        .expect("minute starts");
    let ready = minute_testkit::eventually(Duration::from_secs(90), || async move {
        matches!(
            minute_testkit::http_get(port, "/readyz").await,
            Some((200, _))
        )
    })
    .await;
    assert!(ready, "minute ready");
    let script = quickstart_commands().replace("localhost:8080", &format!("127.0.0.1:{port}"));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    minute_testkit::signal(child.id(), "TERM");
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    assert!(
        out.status.success(),
        "the quickstart exits 0: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("\"errors\""),
        "no GraphQL errors: {stdout}"
    );
    assert!(
        stdout.contains(r#"{"seq":1,"body":"Hello Bob!","sender":{"username":"alice"}}"#),
        "the history shows the message: {stdout}"
    );
}
