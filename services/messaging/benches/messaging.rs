//! `cargo bench -p minute-messaging --bench messaging`: `sendMessage` throughput and
//! latency on the service itself (HTTP on loopback, real RabbitMQ and Redis, outbox relay
//! running), on the embedded SQLite store and on the MongoDB-wire server, and the p99 of
//! `messages(limit: 50)` in a large conversation.
//!
//! Sizes (env): `BENCH_SENDS_EMBEDDED` (5000), `BENCH_SENDS_MONGO` (400),
//! `BENCH_CONCURRENCY` (16), `BENCH_LARGE_EMBEDDED` (100000), `BENCH_LARGE_MONGO` (3000),
//! `BENCH_QUERIES` (1000). MongoDB: `BENCH_MONGODB_URI`, else `TEST_MONGODB_URI`, else
//! `mongodb://127.0.0.1:27018/?retryWrites=false`. The large conversation is seeded through
//! the store API (same documents/rows as sends make, without outbox events).
//! `BENCH_ONLY=embedded|mongo` runs one backend. `BENCH_OTLP_ENDPOINT=http://host:4318`
//! exports traces there (as `OTEL_EXPORTER_OTLP_ENDPOINT` does), for the tracing on/off
//! overhead; unset, telemetry is installed without an exporter (logs at `warn`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_messaging::domain::{Role, new_message_id, now_ms};
use minute_messaging::store::{MemberChange, NewMessage, Stores};
use minute_messaging::{App, Settings};
use minute_testkit::GraphqlClient;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn join_members(stores: &Stores, conv: &str, users: &[String]) {
    for u in users {
        stores
            .members
            .apply(&MemberChange {
                conversation_id: conv.into(),
                user_id: u.clone(),
                role: Some(Role::Member),
                version: 1,
            })
            .await
            .expect("membership");
    }
}

async fn seed(stores: &Stores, conv: &str, sender: &str, n: usize, parallel: usize) {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (stores, next) = (stores.clone(), next.clone());
        let (conv, sender) = (conv.to_owned(), sender.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let new = NewMessage {
                    id: new_message_id(),
                    conversation_id: conv.clone(),
                    sender_id: sender.clone(),
                    client_message_id: format!("seed-{i}"),
                    body: format!("seeded message number {i} with a few words of text"),
                    reply_to_id: None,
                    created_at: now_ms(),
                };
                stores
                    .messages
                    .create(new, &|_| Vec::new())
                    .await
                    .expect("seed");
            }
        }));
    }
    for t in tasks {
        t.await.expect("seed task");
    }
    eprintln!(
        "  seeded {n} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn run(
    label: &str,
    env: Vec<(String, String)>,
    sends: usize,
    large: usize,
    seed_parallel: usize,
) {
    println!("== {label}");
    let settings = Settings::from_env(&Env::from_pairs(env)).expect("settings");
    let (stores, _) = minute_messaging::open_stores(&settings.storage)
        .await
        .expect("stores");
    let concurrency = env_num("BENCH_CONCURRENCY", 16);
    let senders: Vec<String> = (0..concurrency).map(|i| format!("sender-{i}")).collect();
    join_members(&stores, "bench-send", &senders).await;
    join_members(&stores, "bench-large", &senders[..1]).await;
    seed(&stores, "bench-large", &senders[0], large, seed_parallel).await;
    drop(stores);

    let stop = CancellationToken::new();
    let jwt = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", "bench-secret-bench-secret-bench-secret-1234")]),
        None,
    )
    .expect("jwt");
    let infra = Infra::connect(
        InfraOptions {
            amqp_url: Some(minute_testkit::amqp_url()),
            redis_url: Some(minute_testkit::redis_url()),
            bus_namespace: minute_testkit::unique_namespace(),
            redis_prefix: format!("{}:", minute_testkit::unique("bench")),
            replica_id: "bench".into(),
        },
        jwt,
        stop.clone(),
    )
    .await
    .expect("infra");
    let app = App::build(settings, infra.clone()).await.expect("app");
    let port = app.port();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    let clients: Vec<GraphqlClient> = senders
        .iter()
        .map(|u| GraphqlClient::new(port).with_token(infra.auth.keys().issue(u, "bench", Some(u))))
        .collect();
    let send_q = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id seq } }";

    // Warm-up (connections, caches).
    for (i, c) in clients.iter().enumerate() {
        let v = json!({"i": {"conversationId": "bench-send", "clientMessageId": format!("warm-{i}"), "body": "warm"}});
        c.ok(send_q, v).await;
    }

    let per_task = sends / concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (t, c) in clients.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let v = json!({"i": {"conversationId": "bench-send", "clientMessageId": format!("b-{t}-{i}"), "body": format!("bench message {i}")}});
                let t0 = Instant::now();
                let r = c.raw(send_q, v).await;
                lat.push(t0.elapsed());
                assert!(r["data"]["sendMessage"]["seq"].is_i64(), "send failed: {r}");
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("send task"));
    }
    let elapsed = started.elapsed();
    let n = lat.len();
    let p = percentiles(lat);
    println!(
        "sendMessage: {n} sends, concurrency {concurrency}: {:.0} sends/s, p50 {}, p99 {}",
        n as f64 / elapsed.as_secs_f64(),
        ms(p.p50),
        ms(p.p99)
    );

    let queries = env_num("BENCH_QUERIES", 1000);
    let reader = &clients[0];
    let hist_q = "query($r: [_Any!]!, $b: Int) { _entities(representations: $r) { ... on Conversation { messages(before: $b, limit: 50) { hasMore nodes { id seq body sender { id } createdAt reactions { emoji count } } } } } }";
    let mut seed_rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lat = Vec::with_capacity(queries);
    for i in 0..queries {
        seed_rng = seed_rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Half the reads are "latest page", half jump to a random point in history.
        let before = (i % 2 == 1).then(|| 51 + (seed_rng >> 33) as usize % large.max(52));
        let v = json!({"r": [{"__typename": "Conversation", "id": "bench-large"}], "b": before});
        let t0 = Instant::now();
        let r = reader.raw(hist_q, v).await;
        lat.push(t0.elapsed());
        let nodes = r["data"]["_entities"][0]["messages"]["nodes"]
            .as_array()
            .map(Vec::len);
        assert_eq!(nodes, Some(50), "history failed: {r}");
    }
    let p = percentiles(lat);
    println!(
        "messages(limit: 50) in a conversation of {large} messages: {queries} queries, p50 {}, p99 {}",
        ms(p.p50),
        ms(p.p99)
    );
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut telemetry_env = vec![
            ("LOG_LEVEL", "warn".to_owned()),
            ("REPLICA_ID", "bench".into()),
        ];
        if let Ok(endpoint) = std::env::var("BENCH_OTLP_ENDPOINT") {
            telemetry_env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint));
        }
        let common =
            minute_kit::config::CommonSettings::from_env(&Env::from_pairs(telemetry_env), 0)
                .expect("telemetry settings");
        let telemetry = minute_kit::telemetry::init(&common, "messaging");
        println!(
            "tracing: {}",
            common
                .otel_endpoint
                .as_deref()
                .map_or("off".to_owned(), |e| format!("exported over OTLP to {e}"))
        );
        bench().await;
        telemetry.shutdown().await;
    });
}

async fn bench() {
    {
        let base = vec![
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
            ("PORT".to_owned(), "0".to_owned()),
        ];
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        if only.is_empty() || only == "embedded" {
            let dir = std::env::temp_dir().join(minute_testkit::unique("minute-messaging-bench"));
            let mut embedded = base.clone();
            embedded.push(("MINUTE_DATA_DIR".into(), dir.display().to_string()));
            run(
                "embedded SQLite",
                embedded,
                env_num("BENCH_SENDS_EMBEDDED", 5000),
                env_num("BENCH_LARGE_EMBEDDED", 100_000),
                1,
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        if !(only.is_empty() || only == "mongo") {
            return;
        }
        let uri = std::env::var("BENCH_MONGODB_URI")
            .or_else(|_| std::env::var("TEST_MONGODB_URI"))
            .unwrap_or_else(|_| "mongodb://127.0.0.1:27018/?retryWrites=false".into());
        let mut mongo = base;
        mongo.push(("DATABASE_URL".into(), uri));
        mongo.push((
            "MESSAGING_DATABASE_NAME".into(),
            minute_testkit::unique_database("bench"),
        ));
        run(
            "MongoDB-wire server",
            mongo,
            env_num("BENCH_SENDS_MONGO", 400),
            env_num("BENCH_LARGE_MONGO", 3000),
            8,
        )
        .await;
    }
}
