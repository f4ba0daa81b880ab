//! `cargo bench -p minute-auth`: argon2id hash time and login throughput on this machine.
//!
//! Logins go through HTTP to a real `App` on the embedded SQLite store and in-process bus
//! and revocations (so the numbers are auth's own, not a test database's); each login is
//! one password verification plus a session insert and a JWT. Optional arguments:
//! `<seconds per run>` (default 5).

use std::time::{Duration, Instant};

use minute_auth::config::HashingSettings;
use minute_auth::domain::hasher::Hasher;
use minute_auth::{App, Settings};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LOGIN: &str = "mutation($u: String!, $p: String!) {
  login(input: {username: $u, password: $p}) { accessToken } }";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("auth bench: {cores} cores, argon2id m=19 MiB t=2 p=1");
    hash_times().await?;
    let (port, stop) = start_app().await?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let register = "mutation { register(input: {username: \"bench\", password: \"bench password\"}) { accessToken } }";
    client
        .post(&url)
        .json(&json!({"query": register}))
        .send()
        .await?;
    for concurrency in [1, cores, cores * 4] {
        logins(&client, &url, concurrency, Duration::from_secs(seconds)).await?;
    }
    stop.cancel();
    Ok(())
}

async fn hash_times() -> anyhow::Result<()> {
    let hasher = Hasher::new(HashingSettings {
        concurrency: 1,
        max_queue: 16,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rounds = 20;
    let started = Instant::now();
    let mut phc = String::new();
    for _ in 0..rounds {
        phc = hasher
            .hash("bench password")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let hash_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        hasher
            .verify("bench password", Some(&phc))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let verify_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    println!("hash:   {hash_ms:.1} ms per argon2id hash   (mean of {rounds}, one at a time)");
    println!("verify: {verify_ms:.1} ms per verification (mean of {rounds})");
    Ok(())
}

async fn start_app() -> anyhow::Result<(u16, CancellationToken)> {
    let dir = std::env::temp_dir().join(format!("minute-auth-bench-{}", std::process::id()));
    let settings = Settings::from_env(&Env::from_pairs([
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
        (
            "MINUTE_DATA_DIR",
            dir.to_str().unwrap_or("/tmp/minute-auth-bench"),
        ),
        ("AUTH_HASH_QUEUE", "1024"),
    ]))?;
    let jwt = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", "bench-secret-bench-secret-bench-secret")]),
        None,
    )?;
    let stop = CancellationToken::new();
    let infra = Infra::connect(InfraOptions::default(), jwt, stop.clone()).await?;
    let app = App::build(settings, infra).await?;
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    Ok((port, stop))
}

async fn logins(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), url.to_owned());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let body: serde_json::Value = client
                    .post(&url)
                    .json(&json!({"query": LOGIN, "variables": {"u": "bench", "p": "bench password"}}))
                    .send()
                    .await?
                    .json()
                    .await?;
                anyhow::ensure!(body["errors"].is_null(), "login failed: {body}");
                latencies.push(started.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1));
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "logins: {:>6.1}/s at concurrency {concurrency:>2} ({} logins in {elapsed:.1} s; p50 {:.1} ms, p99 {:.1} ms)",
        all.len() as f64 / elapsed,
        all.len(),
        pct(0.50),
        pct(0.99),
    );
    Ok(())
}
