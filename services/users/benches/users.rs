//! `searchUsers` and `me` latency through HTTP: p50/p99 over a seeded store.
//!
//! `cargo bench -p minute-users` — on MongoDB when `TEST_MONGODB_URI` is set, else on
//! embedded SQLite in a temp dir; in-process bus and revocations (the service's own
//! latency, not the broker's). Prints one line per operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use minute_kit::config::{CommonSettings, Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_testkit::GraphqlClient;
use minute_users::config::Storage;
use minute_users::domain::{Profile, UserId};
use minute_users::store::{MongoStore, OutboxEntry, SqliteStore, UserStore};
use minute_users::{App, Settings};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const USERS: usize = 2_000;
const WARMUP: usize = 50;
const ITERATIONS: usize = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (store, backend): (Arc<dyn UserStore>, &str) = match std::env::var("TEST_MONGODB_URI") {
        Ok(uri) if !uri.is_empty() => {
            let client = mongodb::Client::with_uri_str(&uri).await?;
            let db = client.database(&minute_testkit::unique_database("users_bench"));
            (Arc::new(MongoStore::open(db).await?), "mongodb-wire")
        }
        _ => {
            let dir = std::env::temp_dir().join(minute_testkit::unique("users-bench"));
            (
                Arc::new(SqliteStore::open(&dir.join("users.sqlite3"))?),
                "sqlite",
            )
        }
    };
    let started = Instant::now();
    seed(store.as_ref()).await?;
    println!(
        "users bench: backend={backend} users={USERS} seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let stop = CancellationToken::new();
    let jwt = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", "bench-secret-0123456789abcdefghijkl")]),
        None,
    )?;
    let infra = Infra::connect(InfraOptions::default(), jwt, stop.clone()).await?;
    let env = Env::from_pairs([("HOST", "127.0.0.1"), ("PORT", "0")]);
    let settings = Settings {
        common: CommonSettings::from_env(&env, 0)?,
        storage: Storage::Embedded("unused".into()),
        outbox_interval: Duration::from_secs(1),
        queue_expiry: None,
    };
    let app = App::build_with_store(settings, infra.clone(), store).await?;
    let port = app.port();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));

    let token = infra
        .auth
        .keys()
        .issue("bench-user-7", "s1", Some("user0007"));
    let client = GraphqlClient::new(port).with_token(token);
    let search =
        "query($q: String!) { searchUsers(query: $q, first: 20) { id username displayName } }";
    let mut i = 0usize;
    report("searchUsers(first: 20)", || {
        i += 1;
        // Prefixes of varying selectivity: 'user01' matches 100 users, 'user0123' one.
        let q = match i % 3 {
            0 => format!("user{:02}", i % 20),
            1 => format!("user{:04}", i % USERS),
            _ => format!("Name {}", i % 10),
        };
        let c = client.clone();
        async move {
            let d = c.ok(search, json!({"q": q})).await;
            assert!(d["searchUsers"].is_array());
        }
    })
    .await;
    report("me", || {
        let c = client.clone();
        async move {
            let d = c.ok("{ me { id displayName } }", json!({})).await;
            assert_eq!(d["me"]["id"], "bench-user-7");
        }
    })
    .await;
    stop.cancel();
    let _ = server.await;
    Ok(())
}

async fn seed(store: &dyn UserStore) -> anyhow::Result<()> {
    for n in 0..USERS {
        let id = format!("bench-user-{n}");
        let mut p = Profile::provisional(UserId::parse(&id)?, &format!("user{n:04}"), Utc::now());
        p.display_name = format!("Name {} {n}", n % 10);
        p.provisional = false;
        let e = OutboxEntry {
            id: format!("seed-{n}"),
            routing_key: "users.user.updated.v1".into(),
            body: "{}".into(),
        };
        store.insert(&p, &e).await?;
        store.mark_sent(&p.id, &e.id).await?;
    }
    Ok(())
}

async fn report<F, Fut>(name: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        op().await;
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    let all = Instant::now();
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        op().await;
        samples.push(t.elapsed());
    }
    let total = all.elapsed();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{name:<24} n={ITERATIONS} p50={:>7.2} ms p99={:>7.2} ms max={:>7.2} ms ({:.0} req/s, concurrency 1, HTTP)",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
        ITERATIONS as f64 / total.as_secs_f64(),
    );
}
