//! `auth`: logins/s (closed loop) and login latency under load (open loop at half the
//! closed loop's rate, latency from the due time). Baseline: raw argon2id verifications
//! with auth's own parameters (m = 19 MiB, t = 2, p = 1) on every core of this machine,
//! measured here before any login — the ceiling a login (one verification) cannot beat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use minute_auth::domain::hasher::{ITERATIONS, MEMORY_KIB, PARALLELISM};
use serde_json::json;

use super::{Loop, Outcome, Row, RunArgs, Table, closed_loop, open_loop, ratio};
use crate::api::{Api, PASSWORD, run_tag};
use crate::stats::fmt_ms;

#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Raw {
    threads: usize,
    verifies_per_second: f64,
    ms_per_verify_one_thread: f64,
}

/// Verifications per second on `threads` threads for `duration`, and one thread's time.
fn raw_argon2(threads: usize, duration: Duration) -> anyhow::Result<Raw> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"bench-salt-16byt").map_err(|e| anyhow::anyhow!("{e}"))?;
    let phc = argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let verify = |argon: &Argon2<'_>| -> anyhow::Result<()> {
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("{e}"))?;
        argon
            .verify_password(PASSWORD.as_bytes(), &parsed)
            .map_err(|e| anyhow::anyhow!("verify: {e}"))
    };
    // One thread alone.
    let t = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        verify(&argon)?;
    }
    let one = t.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    // Every core.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (stop, count, argon, verify) =
                (stop.clone(), count.clone(), argon.clone(), &verify);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if verify(&argon).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    Ok(Raw {
        threads,
        verifies_per_second: count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        ms_per_verify_one_thread: one,
    })
}

pub(super) async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let duration = args.secs(10.0, 1.0);
    eprintln!("[loadgen] auth: raw argon2id on {cores} threads");
    let raw_duration = args.secs(5.0, 0.5);
    let raw = tokio::task::spawn_blocking(move || raw_argon2(cores, raw_duration)).await??;

    let api = Api::new(args.graphql_url());
    let tag = run_tag();
    let n_users = 16;
    let users = api.register_many(&format!("a{tag}_"), n_users, 4).await?;
    let names: Arc<Vec<String>> = Arc::new(users.into_iter().map(|u| u.username).collect());
    let login = {
        let (api, names) = (api.clone(), names.clone());
        move |i: u64| {
            let (api, names) = (api.clone(), names.clone());
            async move {
                let name = &names[(i as usize) % names.len()];
                api.login(name).await.map(drop)
            }
        }
    };
    let concurrency = cores * 4;
    eprintln!("[loadgen] auth: closed loop, {concurrency} clients");
    closed_loop(concurrency, duration / 5, login.clone()).await?;
    let max = closed_loop(concurrency, duration, login.clone()).await?;
    let rate = (max.per_second / 2.0).max(1.0);
    eprintln!("[loadgen] auth: open loop at {rate:.0} logins/s");
    let under_load = open_loop(rate, duration, 256, login).await?;
    if max.requests == 0 {
        anyhow::bail!("no login succeeded");
    }

    let row = |load: String, l: &Loop| {
        vec![
            load,
            format!("{:.1}", l.per_second),
            fmt_ms(l.latency.p50_ms),
            fmt_ms(l.latency.p99_ms),
            fmt_ms(l.latency.max_ms),
            l.errors.to_string(),
        ]
    };
    let rows = vec![
        row(format!("max, closed loop, {concurrency} clients"), &max),
        row(
            format!("{rate:.0} logins/s, open loop (latency from due time)"),
            &under_load,
        ),
        vec![
            format!("raw argon2id verify, {cores} threads (baseline)"),
            format!("{:.1}", raw.verifies_per_second),
            fmt_ms(raw.ms_per_verify_one_thread),
            "-".into(),
            "-".into(),
            "0".into(),
        ],
    ];
    Ok(Outcome {
        baseline: format!(
            "raw argon2id verifications (m = {} KiB, t = {ITERATIONS}, p = {PARALLELISM}, auth's constants) on {cores} threads, no server",
            MEMORY_KIB
        ),
        summary: vec![
            Row {
                metric: format!("auth: logins/s ({concurrency} clients)"),
                goal: None,
                measured: format!("{:.1} logins/s (p99 {})", max.per_second, fmt_ms(max.latency.p99_ms)),
                baseline: Some(format!("{:.1} raw verifies/s", raw.verifies_per_second)),
                ratio: ratio(max.per_second, raw.verifies_per_second),
                goal_met: None,
            },
            Row {
                metric: format!("auth: login p50 / p99 at {rate:.0} logins/s (half of max)"),
                goal: None,
                measured: under_load.latency.p50_p99(),
                baseline: Some(format!(
                    "{} per raw verify",
                    fmt_ms(raw.ms_per_verify_one_thread)
                )),
                ratio: ratio(under_load.latency.p99_ms, raw.ms_per_verify_one_thread),
                goal_met: None,
            },
        ],
        tables: vec![Table {
            title: format!("Logins through /graphql, {n_users} accounts, {} s per run", duration.as_secs_f64()),
            columns: ["load", "per second", "p50", "p99", "max", "errors"]
                .map(String::from)
                .to_vec(),
            rows,
        }],
        notes: vec![
            "A login is one argon2id verification (on auth's bounded hashing pool, sized to the cores) plus a session write and a JWT. The generator shares the 2 cores with the server, so the raw rate is the ceiling, not a target.".into(),
        ],
        data: json!({"raw": raw, "max": max, "under_load": under_load, "under_load_rate": rate}),
    })
}
