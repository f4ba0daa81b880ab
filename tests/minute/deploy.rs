//! The deployment files cannot drift from the code: every role they run is a real
//! `minute` role, every port they use is the role's port, and every environment variable
//! they set is one some `config.rs` reads.

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every upper-case string literal in the configuration code: the variables the code reads.
fn variables_read_by_the_code() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("libs/kit/src/config.rs"),
        root.join("libs/kit/src/mongo.rs"),
    ];
    for dir in ["services", "gateway"] {
        for entry in walk(&root.join(dir)) {
            if entry.file_name().is_some_and(|n| n == "config.rs") {
                files.push(entry);
            }
        }
    }
    let mut vars = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for piece in text.split('"').skip(1).step_by(2) {
            if piece.len() > 2
                && piece
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                vars.insert(piece.to_owned());
            }
        }
    }
    // `<SERVICE>_DATABASE_URL` / `<SERVICE>_DATABASE_NAME` are built from the service name.
    for s in ["AUTH", "USERS", "CONVERSATIONS", "MESSAGING", "REALTIME"] {
        vars.insert(format!("{s}_DATABASE_URL"));
        vars.insert(format!("{s}_DATABASE_NAME"));
    }
    vars
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("target") {
                    out.extend(walk(&p));
                }
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn roles() -> Vec<&'static str> {
    crate::ROLES.to_vec()
}

fn default_port(role: &str) -> u16 {
    match role {
        "gateway" | "all" => 8080,
        "realtime" => 8081,
        "auth" => 8082,
        "users" => 8083,
        "conversations" => 8084,
        "messaging" => 8085,
        other => panic!("unknown role {other}"),
    }
}

/// `(role, env names, PORT value)` per minute service in the compose file.
fn compose_services(text: &str) -> Vec<(String, Vec<String>, Option<u16>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>, Option<u16>)> = None;
    let mut in_env = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("command: [\"") {
            let role = rest.split('"').next().unwrap_or("").to_owned();
            if let Some(c) = current.as_mut() {
                c.0 = role;
            }
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && trimmed.ends_with(':') && !trimmed.starts_with('#') {
            if let Some(c) = current.take()
                && !c.0.is_empty()
            {
                out.push(c);
            }
            current = Some((String::new(), Vec::new(), None));
            in_env = false;
        }
        if indent == 4 {
            in_env = trimmed == "environment:";
        } else if in_env
            && indent == 6
            && !trimmed.starts_with("<<")
            && let Some((k, v)) = trimmed.split_once(':')
            && let Some(c) = current.as_mut()
        {
            c.1.push(k.trim().to_owned());
            if k.trim() == "PORT" {
                c.2 = v.trim().trim_matches('"').parse().ok();
            }
        }
    }
    if let Some(c) = current
        && !c.0.is_empty()
    {
        out.push(c);
    }
    out
}

#[test]
fn compose_runs_real_roles_on_their_ports_with_real_variables() {
    let text = read("docker-compose.yml");
    let known = variables_read_by_the_code();
    let services = compose_services(&text);
    let minute: Vec<_> = services
        .iter()
        .filter(|s| roles().contains(&s.0.as_str()))
        .collect();
    assert_eq!(minute.len(), 6, "every role runs in compose: {services:?}");
    for (role, _env, port) in &minute {
        assert_eq!(
            *port,
            Some(default_port(role)),
            "{role} listens on its own port"
        );
    }
    // The shared `x-env` block is merged into every service.
    let mut names: Vec<String> = minute.iter().flat_map(|s| s.1.clone()).collect();
    let shared = text.split("x-env: &env").nth(1).expect("x-env block");
    for line in shared.lines().skip(1).take_while(|l| l.starts_with("  ")) {
        if let Some((k, _)) = line.trim().split_once(':') {
            names.push(k.to_owned());
        }
    }
    for name in names {
        assert!(
            known.contains(&name),
            "compose sets {name}, which no config.rs reads"
        );
    }
}

#[test]
fn kubernetes_manifests_run_real_roles_on_their_ports_with_real_variables() {
    let known = variables_read_by_the_code();
    for role in [
        "gateway",
        "auth",
        "users",
        "conversations",
        "messaging",
        "realtime",
    ] {
        let text = read(&format!("k8s/base/{role}.yaml"));
        assert!(
            text.contains(&format!("args: [\"{role}\"]")),
            "{role} runs its role"
        );
        let port = default_port(role);
        assert!(
            text.contains(&format!("containerPort: {port}")),
            "{role} port {port}"
        );
        assert!(
            text.contains(&format!("value: \"{port}\"")),
            "{role} PORT={port}"
        );
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("- name: ")
                && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            {
                assert!(
                    known.contains(name),
                    "{role} sets {name}, which no config.rs reads"
                );
            }
        }
    }
    let config = read("k8s/base/config.yaml");
    for line in config
        .lines()
        .skip_while(|l| !l.starts_with("data:"))
        .skip(1)
    {
        if let Some((k, _)) = line.trim().split_once(':') {
            assert!(
                known.contains(k),
                "the ConfigMap sets {k}, which no config.rs reads"
            );
        }
    }
    let dev = read("k8s/overlays/dev/kustomization.yaml");
    for line in dev.lines() {
        if let Some(lit) = line.trim().strip_prefix("- ")
            && let Some((k, _)) = lit.split_once('=')
        {
            assert!(
                known.contains(k),
                "the dev secret sets {k}, which no config.rs reads"
            );
        }
    }
}

#[test]
fn the_roles_the_files_name_are_the_binarys_roles() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minute"))
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for role in roles() {
        assert!(
            help.contains(&format!("  {role} ")),
            "minute --help lists {role}"
        );
    }
    assert!(read("Dockerfile").contains("ENTRYPOINT [\"minute\"]"));
}
