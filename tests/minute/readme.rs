//! The README's quickstart, executed: its commands run against a fresh `minute`, so the
//! README cannot rot.

use std::process::Command;

use crate::all_in_one::Minute;

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
    let minute = Minute::start(port, &[("MINUTE_DATA_DIR", data.display().to_string())]).await;
    let script = quickstart_commands().replace("localhost:8080", &format!("127.0.0.1:{port}"));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    minute.stop();
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
