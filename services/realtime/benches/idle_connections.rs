//! RSS per idle authenticated `/ws` connection.
//!
//! `cargo bench -p minute-realtime --bench idle_connections [-- N]` (default N = 10,000):
//! starts one realtime replica in this process (real RabbitMQ and Redis, embedded SQLite),
//! then re-runs itself as a child process that opens N connections, each `connection_init`
//! with its own user's token and subscribed to `events`, and holds them idle. This process
//! measures its own RSS before and after. Clients live in the child so their memory and file
//! descriptors are not counted.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_realtime::{App, Settings};
use minute_testkit::WsClient;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn jwt() -> JwtSettings {
    JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), None).expect("jwt settings")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.get(1).map(String::as_str) == Some("clients") {
        let port: u16 = args[2].parse().expect("port");
        let n: usize = args[3].parse().expect("count");
        rt.block_on(clients(port, n));
        return;
    }
    let n: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    rt.block_on(server(n));
}

async fn server(n: usize) {
    let stop = CancellationToken::new();
    // BENCH_IN_PROCESS=1: the in-process bus and presence instead of RabbitMQ and Redis.
    let real = std::env::var("BENCH_IN_PROCESS").is_err();
    println!(
        "infrastructure: {}",
        if real {
            "RabbitMQ + Redis"
        } else {
            "in-process bus and presence"
        }
    );
    let infra = Infra::connect(
        InfraOptions {
            amqp_url: real.then(minute_testkit::amqp_url),
            redis_url: real.then(minute_testkit::redis_url),
            bus_namespace: minute_testkit::unique_namespace(),
            redis_prefix: format!("{}:", minute_testkit::unique("bench")),
            replica_id: minute_testkit::unique("bench"),
        },
        jwt(),
        stop.clone(),
    )
    .await
    .expect("infra (RabbitMQ and Redis must run)");
    let dir = std::env::temp_dir().join(minute_testkit::unique("realtime-bench"));
    let env = Env::from_pairs([
        ("PORT", "0".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("MINUTE_DATA_DIR", dir.display().to_string()),
        // Clients in the child do not read, so they would not answer pings.
        ("REALTIME_PING_INTERVAL_MS", "3600000".to_owned()),
    ]);
    let app = App::build(Settings::from_env(&env).expect("settings"), infra)
        .await
        .expect("app");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));

    // Warm up allocator arenas and lazily created state with a few connections first.
    let child_warm = spawn_clients(port, 50);
    let (mut warm, _) = wait_ready(child_warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = warm.kill();
    let _ = warm.wait();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let before = rss_kib();
    let started = Instant::now();
    let child = spawn_clients(port, n);
    let (mut child, held) = wait_ready(child);
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    let per_conn = (after.saturating_sub(before) as f64 * 1024.0) / held.max(1) as f64;
    println!("idle authenticated connections held: {held} (each with an `events` subscription)");
    println!(
        "connect + init + subscribe of all: {:.1} s",
        connect_time.as_secs_f64()
    );
    println!("server RSS before: {before} KiB, after: {after} KiB");
    println!(
        "RSS per idle authenticated connection: {:.0} bytes ({:.2} KiB)",
        per_conn,
        per_conn / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    stop.cancel();
    let _ = std::fs::remove_dir_all(dir);
}

fn spawn_clients(port: u16, n: usize) -> std::process::Child {
    Command::new(std::env::current_exe().expect("bench binary"))
        .args(["clients", &port.to_string(), &n.to_string()])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn the client process")
}

fn wait_ready(mut child: std::process::Child) -> (std::process::Child, usize) {
    let stdout = child.stdout.take().expect("stdout");
    let mut held = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        if let Some(n) = line.strip_prefix("READY ") {
            held = n.trim().parse().unwrap_or(0);
            break;
        }
        eprintln!("{line}");
    }
    (child, held)
}

async fn clients(port: u16, n: usize) {
    let keys = minute_kit::auth::JwtKeys::new(&jwt());
    let mut held = Vec::with_capacity(n);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt;
    for i in 0..n {
        let token = keys.issue(&format!("bench-user-{i}"), &format!("s{i}"), None);
        pending.push(async move {
            let mut c = WsClient::open(port).await;
            c.send_json(serde_json::json!({"type":"connection_init","payload":{"authorization": format!("Bearer {token}")}})).await;
            let ack = c.next_message(Duration::from_secs(30)).await;
            if ack.as_ref().and_then(|m| m["type"].as_str()) != Some("connection_ack") {
                let closed = c.closed(Duration::from_secs(5)).await;
                panic!("no connection_ack: {ack:?} {closed:?}");
            }
            if std::env::var("BENCH_NO_SUBSCRIPTION").is_err() {
                c.subscribe_events().await;
            }
            c
        });
        if pending.len() >= 64
            && let Some(c) = pending.next().await
        {
            held.push(c);
        }
    }
    while let Some(c) = pending.next().await {
        held.push(c);
    }
    // One round trip per socket is not needed: the subscribe frames were sent; give the
    // server a moment to process them before reporting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("READY {}", held.len());
    let _ = std::io::stdout().flush();
    // Hold until the parent kills us.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(held);
}
