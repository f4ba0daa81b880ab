//! `idle`: RSS of the server process per idle authenticated `/ws` connection (each
//! `connection_init` with its own user's access token and subscribed to `events`), at
//! 10,000 connections and then at as many as the process's file-descriptor limit allows.
//! Baseline: RSS per idle connection of a bare WebSocket server with the same read buffer.
//!
//! 10,000 registrations would cost 10,000 argon2id hashes (minutes on 2 cores), so the
//! tokens are issued here with the server's `JWT_SECRET`, issuer and audience: the same
//! HS256 access tokens `login` returns, for 10,000 distinct user ids. One real account's
//! token from `register` is checked first, to show both are accepted the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use minute_kit::auth::JwtKeys;
use minute_kit::config::{Env, JwtSettings};
use serde_json::json;
use tokio::task::JoinHandle;

use super::{Outcome, Row, RunArgs, Table, ratio};
use crate::api::{Api, run_tag};
use crate::bare::{BareServer, READ_BUFFER};
use crate::stats::{open_fds, open_files_limit, rss_kib};
use crate::ws::{self, Ws};

/// Goal of issue 6: RSS per idle authenticated connection.
const GOAL_BYTES: f64 = 8.0 * 1024.0;

/// Sockets held open; each task reads (answering pings) until the socket ends.
struct Held {
    tasks: Vec<JoinHandle<()>>,
    closed: Arc<AtomicU64>,
}

impl Held {
    fn new() -> Self {
        Self {
            tasks: Vec::new(),
            closed: Arc::new(AtomicU64::new(0)),
        }
    }

    fn hold(&mut self, mut socket: Ws) {
        let closed = self.closed.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(Ok(_)) = socket.next().await {}
            closed.fetch_add(1, Ordering::Relaxed);
        }));
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    async fn release(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Opens `n` sockets (authenticated with tokens from `token(i)` when given), `64` at a
/// time; stops at the first failure and returns its message.
async fn open_many(
    held: &mut Held,
    url: &str,
    first: usize,
    n: usize,
    token: Option<&(dyn Fn(usize) -> String + Sync)>,
) -> Option<String> {
    let mut opening = futures_util::stream::iter(first..first + n)
        .map(|i| {
            let t = token.map(|f| f(i));
            async move {
                match t {
                    Some(t) => {
                        let mut s = ws::connect(url, &t).await?;
                        ws::subscribe(&mut s, "events", ws::EVENTS).await?;
                        ws::sync(&mut s).await?;
                        anyhow::Ok(s)
                    }
                    None => ws::open(url).await,
                }
            }
        })
        .buffer_unordered(64);
    while let Some(r) = opening.next().await {
        match r {
            Ok(s) => held.hold(s),
            Err(e) => return Some(format!("{e:#}")),
        }
    }
    None
}

#[derive(Debug, serde::Serialize)]
struct Measure {
    path: &'static str,
    connections: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    bytes_per_connection: f64,
    open_seconds: f64,
    closed_by_server: u64,
}

/// Lets the server finish what the last sockets started (3 s; 0.3 s in a smoke run).
async fn settle(smoke: bool) {
    let secs = if smoke { 0.3 } else { 3.0 };
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    smoke: bool,
    path: &'static str,
    pid: u32,
    held: &mut Held,
    url: &str,
    n: usize,
    before: u64,
    token: Option<&(dyn Fn(usize) -> String + Sync)>,
) -> anyhow::Result<(Measure, Option<String>)> {
    let start = std::time::Instant::now();
    let first = held.len();
    let error = open_many(held, url, first, n, token).await;
    let open_seconds = start.elapsed().as_secs_f64();
    settle(smoke).await;
    let after = rss_kib(pid)?;
    let connections = held.len();
    Ok((
        Measure {
            path,
            connections,
            rss_before_kib: before,
            rss_after_kib: after,
            bytes_per_connection: after.saturating_sub(before) as f64 * 1024.0
                / connections.max(1) as f64,
            open_seconds,
            closed_by_server: held.closed.load(Ordering::Relaxed),
        },
        error,
    ))
}

pub(super) async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let pid = args
        .server_pid
        .context("idle needs --server-pid (the process holding /ws)")?;
    let secret = args
        .jwt_secret
        .clone()
        .context("idle needs the server's JWT secret (BENCH_JWT_SECRET)")?;
    let jwt = JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", secret)]), None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = JwtKeys::new(&jwt);
    let url = args.ws_urls()[0].clone();
    let smoke = args.smoke;
    let target = args.pick(10_000, 300);
    let tag = run_tag();

    // A real account's token and an issued one are accepted alike.
    let api = Api::new(args.graphql_url());
    let real = api.register(&format!("i{tag}_real")).await?;
    let mut s = ws::connect(&url, &real.token)
        .await
        .context("the registered account's token")?;
    ws::sync(&mut s).await?;
    drop(s);
    let token =
        move |i: usize| keys.issue(&format!("idle-{tag}-{i}"), &format!("s-{tag}-{i}"), None);

    // Warm up allocator arenas and lazily built state, then let go.
    let mut warm = Held::new();
    if let Some(e) = open_many(&mut warm, &url, 1_000_000, 100, Some(&token)).await {
        anyhow::bail!("warm-up connections failed: {e}");
    }
    settle(smoke).await;
    warm.release().await;
    settle(smoke).await;

    eprintln!("[loadgen] idle: opening {target} authenticated connections");
    let mut held = Held::new();
    let before = rss_kib(pid)?;
    let (at_target, error) = measure(
        args.smoke,
        "minute",
        pid,
        &mut held,
        &url,
        target,
        before,
        Some(&token),
    )
    .await?;
    if let Some(e) = error {
        anyhow::bail!(
            "only {} of {target} connections opened: {e}",
            at_target.connections
        );
    }

    // As many more as the server's file-descriptor limit allows (with room for its own files).
    let server_limit = open_files_limit(pid).unwrap_or(1024) as usize;
    let own_limit = open_files_limit(std::process::id()).unwrap_or(1024) as usize;
    let server_fds = open_fds(pid).unwrap_or(held.len());
    let own_fds = open_fds(std::process::id()).unwrap_or(held.len());
    let headroom = 200;
    let more = args.pick(
        server_limit
            .saturating_sub(server_fds + headroom)
            .min(own_limit.saturating_sub(own_fds + headroom)),
        100,
    );
    eprintln!(
        "[loadgen] idle: {more} more (server fd limit {server_limit}, {server_fds} open; ours {own_limit}, {own_fds} open)"
    );
    let (at_most, more_error) = measure(
        args.smoke,
        "minute",
        pid,
        &mut held,
        &url,
        more,
        before,
        Some(&token),
    )
    .await?;
    let server_fds_at_most = open_fds(pid);
    held.release().await;

    // Baseline: the bare server, same count, no application.
    eprintln!("[loadgen] idle: bare WebSocket server, {target} connections");
    let bare = BareServer::start()?;
    let mut warm = Held::new();
    open_many(&mut warm, &bare.url(), 0, 100, None).await;
    settle(smoke).await;
    warm.release().await;
    settle(smoke).await;
    let mut bheld = Held::new();
    let bbefore = rss_kib(bare.pid())?;
    let (baseline, berror) = measure(
        smoke,
        "bare WebSocket",
        bare.pid(),
        &mut bheld,
        &bare.url(),
        target,
        bbefore,
        None,
    )
    .await?;
    bheld.release().await;
    drop(bare);
    if let Some(e) = berror {
        anyhow::bail!(
            "bare server: only {} connections: {e}",
            baseline.connections
        );
    }

    let kib = |b: f64| format!("{:.2} KiB", b / 1024.0);
    let stop_reason = match &more_error {
        Some(e) => format!("stopped by an error: {e}"),
        None => format!(
            "stopped {headroom} short of the server's open-files limit ({server_limit}; ulimit -n hard limit here)"
        ),
    };
    let row = |m: &Measure| {
        vec![
            m.path.to_owned(),
            m.connections.to_string(),
            format!("{:.1} MiB", m.rss_before_kib as f64 / 1024.0),
            format!("{:.1} MiB", m.rss_after_kib as f64 / 1024.0),
            kib(m.bytes_per_connection),
            format!("{:.1} s", m.open_seconds),
            m.closed_by_server.to_string(),
        ]
    };
    Ok(Outcome {
        baseline: format!(
            "a bare tokio-tungstenite server holding plain idle WebSocket connections (read buffer {READ_BUFFER} bytes, one task per socket)"
        ),
        summary: vec![
            Row {
                metric: format!(
                    "idle: RSS per authenticated /ws connection at {}",
                    at_target.connections
                ),
                goal: Some("<= 8 KiB (issue 6)".into()),
                measured: kib(at_target.bytes_per_connection),
                baseline: Some(format!("{} bare", kib(baseline.bytes_per_connection))),
                ratio: ratio(
                    at_target.bytes_per_connection,
                    baseline.bytes_per_connection,
                ),
                goal_met: Some(at_target.bytes_per_connection <= GOAL_BYTES),
            },
            Row {
                metric: "idle: most connections held by one process".into(),
                goal: None,
                measured: format!(
                    "{} ({} each)",
                    at_most.connections,
                    kib(at_most.bytes_per_connection)
                ),
                baseline: None,
                ratio: None,
                goal_met: None,
            },
        ],
        tables: vec![Table {
            title: format!(
                "Idle connections: server RSS (VmRSS) before and after opening them, read after a {} s pause",
                if smoke { 0.3 } else { 3.0 }
            ),
            columns: [
                "server",
                "connections",
                "RSS before",
                "RSS after",
                "per connection",
                "time to open",
                "closed by server",
            ]
            .map(String::from)
            .to_vec(),
            rows: vec![row(&at_target), row(&at_most), row(&baseline)],
        }],
        notes: vec![
            format!(
                "Each Minute connection: connection_init with its own user's access token, a subscription to every event type, a serverTime round trip. The tokens are issued with the server's JWT_SECRET for {target} distinct user ids (registering 10,000 accounts would cost 10,000 argon2id hashes); a registered account's token was checked on the same socket path first."
            ),
            format!(
                "Beyond {target}: {stop_reason}; the server had {} file descriptors open at the most.",
                server_fds_at_most.map_or("?".into(), |n| n.to_string())
            ),
        ],
        data: json!({"at_target": at_target, "at_most": at_most, "baseline": baseline,
            "more_error": more_error, "server_open_files_limit": server_limit}),
    })
}
