//! `conversations(first: 50)` latency for a user in 1,000 conversations, through HTTP.
//!
//! Runs the service on the embedded SQLite store, and on MongoDB too when
//! `TEST_MONGODB_URI` is set (the MongoDB-wire stand-in; numbers there measure it as much
//! as us). In-process bus, so the broker is not part of the measurement.
//! `cargo bench -p minute-conversations --bench conversations`

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use minute_conversations::{App, Settings};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_testkit::GraphqlClient;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CONVERSATIONS: usize = 1_000;
const SAMPLES: usize = 500;

const LIST: &str = "query($a: String) { conversations(first: 50, after: $a) { \
    nodes { id kind title memberCount myRole createdAt } endCursor hasNextPage } }";

async fn start(env: Env, stop: &CancellationToken) -> GraphqlClient {
    let jwt = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", "conversations-bench-secret-0123456789")]),
        None,
    )
    .expect("jwt settings");
    let infra = Infra::connect(
        InfraOptions {
            replica_id: "bench".into(),
            ..InfraOptions::default()
        },
        jwt,
        stop.clone(),
    )
    .await
    .expect("in-process infra");
    let token = infra.auth.keys().issue(
        &uuid::Uuid::now_v7().to_string(),
        "bench-session",
        Some("bench"),
    );
    let app = App::build(Settings::from_env(&env).expect("settings"), infra)
        .await
        .expect("app");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    GraphqlClient::new(port).with_token(token)
}

async fn seed(client: &GraphqlClient) -> Duration {
    let started = Instant::now();
    futures_util::stream::iter(0..CONVERSATIONS)
        .map(|i| {
            let c = client.clone();
            async move {
                c.ok(
                    "mutation($t: String!) { createGroup(title: $t, memberIds: []) { id } }",
                    json!({"t": format!("group {i}")}),
                )
                .await;
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn measure(name: &str, client: &GraphqlClient) {
    let seeding = seed(client).await;
    // Walk every page once: the cursor covers all 1,000.
    let (mut after, mut seen) = (None::<String>, 0);
    loop {
        let d = client.ok(LIST, json!({"a": after})).await;
        let page = &d["conversations"];
        seen += page["nodes"].as_array().map_or(0, Vec::len);
        if page["hasNextPage"] != true {
            break;
        }
        after = page["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, CONVERSATIONS, "pagination reaches every conversation");
    for _ in 0..20 {
        client.ok(LIST, json!({})).await;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let d = client.ok(LIST, json!({})).await;
        samples.push(t.elapsed());
        assert_eq!(
            d["conversations"]["nodes"].as_array().map(Vec::len),
            Some(50)
        );
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name}: conversations(first: 50), user in {CONVERSATIONS} conversations, {SAMPLES} sequential requests: \
         p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms (seeding {CONVERSATIONS} createGroup: {:.1} s)",
        ms(pct(&samples, 0.50)),
        ms(pct(&samples, 0.90)),
        ms(pct(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
        ms(mean),
        seeding.as_secs_f64(),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let stop = CancellationToken::new();
    let dir = std::env::temp_dir().join(minute_testkit::unique("conv-bench"));
    let sqlite = Env::from_pairs([
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("MINUTE_DATA_DIR", dir.display().to_string()),
    ]);
    measure("sqlite", &start(sqlite, &stop).await).await;
    if let Ok(uri) = std::env::var("TEST_MONGODB_URI") {
        let mongo = Env::from_pairs([
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("DATABASE_URL", uri),
            (
                "CONVERSATIONS_DATABASE_NAME",
                minute_testkit::unique_database("conversations_bench"),
            ),
        ]);
        measure("mongodb-wire", &start(mongo, &stop).await).await;
    } else {
        println!("mongodb-wire: skipped (TEST_MONGODB_URI unset)");
    }
    stop.cancel();
    let _ = std::fs::remove_dir_all(dir);
}
