//! `peer-matrix`: the `delivery` scenario against a peer, a Matrix homeserver (Conduit,
//! Synapse, ...) running on this machine, so Minute and a server a team would compare it
//! with are measured side by side in one `scripts/bench` run.
//!
//! The same measurement as `delivery`, through the Matrix client-server API (v3): 1:1
//! pairs, each a direct room; senders `PUT .../send/m.room.message/{txnId}` on the same
//! open-loop schedule, receivers hold a `/sync` long poll (what a Matrix client does; the
//! client API has no push socket), and latency runs from the message's *due* time to the
//! moment the `/sync` response carrying it arrived. A `/sync` whose timeline is `limited`
//! (more new events than the server puts in one response) is followed, as a client would,
//! by `/messages` back-pagination; those messages count when that page arrives. Then the
//! closed loop for the max rate, and the same bare WebSocket echo baseline as `delivery`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::delivery::{self, BODY, Level, MAX_IN_FLIGHT, Phases, Target};
use super::{Outcome, Scenario, Started, Table};

/// The content field that carries the bench's message id (custom fields are kept as sent).
const ID_FIELD: &str = "net.minute.bench_id";
/// A send still not started this long after its due time is abandoned (counted, not sent):
/// a peer that cannot keep up with a rate would otherwise stretch a 10 s level to minutes.
const BACKLOG_LIMIT: Duration = Duration::from_secs(30);
/// How long a receiver's `/sync` long poll may wait for news.
const SYNC_TIMEOUT_MS: u64 = 30_000;
/// The filter every receiver syncs with: only the timeline's messages, a large timeline
/// (servers that honour it need no back-pagination), no presence or ephemeral events.
const SYNC_FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"timeline":{"limit":1000,"types":["m.room.message"]},"state":{"lazy_load_members":true},"ephemeral":{"types":[]},"account_data":{"types":[]}}}"#;

/// `minute-loadgen peer-matrix`.
#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// The homeserver's client API base URL (on loopback).
    #[arg(long, env = "PEER_MATRIX_URL")]
    pub(crate) url: String,
    /// The peer's name and build, for the report (e.g. `conduit 0.10 (SQLite)`).
    #[arg(long, default_value = "matrix homeserver")]
    pub(crate) name: String,
    /// What runs (one line for the report).
    #[arg(long, default_value = "a Matrix homeserver on loopback")]
    pub(crate) system: String,
    /// Open-loop rates in msg/s, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "200,1000")]
    pub(crate) rates: Vec<f64>,
    /// Seconds per load level.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// 1:1 pairs (as `delivery`: 16).
    #[arg(long, default_value_t = 16)]
    pub(crate) pairs: usize,
    /// Senders of the closed loop (as `delivery`: 32); 0 skips it.
    #[arg(long, default_value_t = 32)]
    pub(crate) closed_workers: usize,
    /// Leave out the bare WebSocket echo baseline (e.g. when `delivery` ran it just before).
    #[arg(long)]
    pub(crate) no_baseline: bool,
    /// Seconds instead of minutes; numbers are not judged.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Where to write this part of the report.
    #[arg(long)]
    pub(crate) out: std::path::PathBuf,
}

impl PeerArgs {
    fn pick<T>(&self, full: T, smoke: T) -> T {
        if self.smoke { smoke } else { full }
    }
}

/// A Matrix client-server API endpoint.
#[derive(Clone)]
struct Matrix {
    http: reqwest::Client,
    base: String,
}

#[derive(Debug, Clone)]
struct MatrixUser {
    user_id: String,
    token: String,
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Matrix {
    fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(SYNC_TIMEOUT_MS / 1000 + 60))
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client");
        Self {
            http,
            base: format!("{}/_matrix/client/v3", url.trim_end_matches('/')),
        }
    }

    /// One request; the JSON body of a 2xx answer, else an error with the Matrix errcode.
    /// `M_LIMIT_EXCEEDED` is waited out and retried during setup (`retry_limited`).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        retry_limited: bool,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        for _ in 0..20 {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let response = req
                .send()
                .await
                .with_context(|| format!("{method} {url}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(v);
            }
            if retry_limited && status.as_u16() == 429 {
                let ms = v["retry_after_ms"].as_u64().unwrap_or(500).min(10_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            bail!(
                "{method} {url}: HTTP {status} {}: {}",
                v["errcode"].as_str().unwrap_or("?"),
                v["error"]
                    .as_str()
                    .unwrap_or_else(|| text.get(..200).unwrap_or(&text))
            );
        }
        bail!("{method} {url}: still rate limited after 20 tries")
    }

    /// Registers `username` through the dummy user-interactive-auth stage.
    async fn register(&self, username: &str) -> anyhow::Result<MatrixUser> {
        let mut body = json!({
            "username": username,
            "password": crate::api::PASSWORD,
            "initial_device_display_name": "minute-loadgen",
        });
        let url = format!("{}/register", self.base);
        let mut answer = Value::Null;
        for _ in 0..20 {
            let response = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            let status = response.status().as_u16();
            answer = response.json().await.unwrap_or(Value::Null);
            match status {
                200 => {
                    return Ok(MatrixUser {
                        user_id: crate::api::str_at(&answer, "/user_id")?,
                        token: crate::api::str_at(&answer, "/access_token")?,
                    });
                }
                // The user-interactive auth: answer its dummy stage in its session.
                401 if answer.get("flows").is_some() => {
                    body["auth"] = json!({"type": "m.login.dummy", "session": answer["session"]});
                }
                429 => {
                    let ms = answer["retry_after_ms"].as_u64().unwrap_or(500).min(10_000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => bail!("POST {url} ({username}): HTTP {status}: {answer}"),
            }
        }
        bail!("POST {url} ({username}): no account after 20 tries: {answer}")
    }

    /// A direct room of `a` with `b` (invited, then joined).
    async fn direct_room(&self, a: &MatrixUser, b: &MatrixUser) -> anyhow::Result<String> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/createRoom",
                Some(&a.token),
                Some(&json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [b.user_id]})),
                true,
            )
            .await?;
        let room = crate::api::str_at(&created, "/room_id")?;
        self.call(
            reqwest::Method::POST,
            &format!("/join/{}", enc(&room)),
            Some(&b.token),
            Some(&json!({})),
            true,
        )
        .await?;
        Ok(room)
    }

    async fn send(&self, token: &str, room: &str, id: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::PUT,
            &format!("/rooms/{}/send/m.room.message/{}", enc(room), enc(id)),
            Some(token),
            Some(&json!({"msgtype": "m.text", "body": BODY, ID_FIELD: id})),
            false,
        )
        .await
        .map(|_| ())
    }

    async fn sync(
        &self,
        token: &str,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> anyhow::Result<Value> {
        let mut path = format!("/sync?timeout={timeout_ms}&filter={}", enc(SYNC_FILTER));
        if let Some(s) = since {
            path.push_str(&format!("&since={}", enc(s)));
        }
        self.call(reqwest::Method::GET, &path, Some(token), None, false)
            .await
    }
}

struct Pair {
    sender: MatrixUser,
    room: String,
}

/// The peer: `PUT .../send/m.room.message/{txnId}`.
struct Peer {
    m: Matrix,
    pairs: Vec<Pair>,
}

impl Target for Peer {
    const PATH: &'static str = "peer";
    const SEND: &'static str = "peer: send";
    const BACKLOG_LIMIT: Option<Duration> = Some(BACKLOG_LIMIT);

    async fn send(&self, i: usize, id: &str) -> anyhow::Result<()> {
        let pair = &self.pairs[i % self.pairs.len()];
        self.m.send(&pair.sender.token, &pair.room, id).await
    }
}

/// What the receivers saw besides the messages.
#[derive(Default)]
struct ReceiverStats {
    syncs: AtomicU64,
    limited: AtomicU64,
    back_pages: AtomicU64,
    errors: AtomicU64,
}

/// One receiver: `/sync` long polls from `since` until aborted; each bench message is
/// recorded once, when the response (or back-pagination page) carrying it arrived.
async fn receive(
    m: Matrix,
    user: MatrixUser,
    mut since: String,
    phases: Arc<Phases>,
    counts: Arc<ReceiverStats>,
) {
    let mut seen = HashSet::new();
    loop {
        let v = match m.sync(&user.token, Some(&since), SYNC_TIMEOUT_MS).await {
            Ok(v) => v,
            Err(e) => {
                if counts.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("[loadgen] peer: /sync failed: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let at = Instant::now();
        counts.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(rooms) = v.pointer("/rooms/join").and_then(Value::as_object) {
            for (room, r) in rooms {
                let timeline = &r["timeline"];
                for event in timeline["events"].as_array().into_iter().flatten() {
                    arrived(&phases, &mut seen, event, at).await;
                }
                if timeline["limited"].as_bool() == Some(true) {
                    counts.limited.fetch_add(1, Ordering::Relaxed);
                    if let Some(from) = timeline["prev_batch"].as_str() {
                        back_paginate(&m, &user, room, from, &phases, &mut seen, &counts).await;
                    }
                }
            }
        }
        if let Some(next) = v["next_batch"].as_str() {
            since = next.to_owned();
        }
    }
}

async fn arrived(phases: &Phases, seen: &mut HashSet<String>, event: &Value, at: Instant) -> bool {
    let Some(id) = event
        .pointer(&format!("/content/{ID_FIELD}"))
        .and_then(Value::as_str)
    else {
        return false;
    };
    if !seen.insert(id.to_owned()) {
        return false;
    }
    phases.arrived(id, at).await;
    true
}

/// Pages back from `from` (newest first) until a page brings nothing new: the events a
/// `limited` timeline left out.
async fn back_paginate(
    m: &Matrix,
    user: &MatrixUser,
    room: &str,
    from: &str,
    phases: &Phases,
    seen: &mut HashSet<String>,
    counts: &ReceiverStats,
) {
    let mut from = from.to_owned();
    for _ in 0..50 {
        let path = format!(
            "/rooms/{}/messages?dir=b&limit=100&from={}",
            enc(room),
            enc(&from)
        );
        let Ok(v) = m
            .call(reqwest::Method::GET, &path, Some(&user.token), None, false)
            .await
        else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let at = Instant::now();
        counts.back_pages.fetch_add(1, Ordering::Relaxed);
        let mut new = 0;
        let mut old = 0;
        for event in v["chunk"].as_array().into_iter().flatten() {
            if arrived(phases, seen, event, at).await {
                new += 1;
            } else if event.pointer(&format!("/content/{ID_FIELD}")).is_some() {
                old += 1;
            }
        }
        // Reached what earlier syncs delivered (or the room's start): done.
        if old > 0 || new == 0 {
            return;
        }
        match v["end"].as_str() {
            Some(end) if end != from => from = end.to_owned(),
            _ => return,
        }
    }
}

pub(crate) async fn run(args: PeerArgs) -> anyhow::Result<()> {
    let started = Started::now();
    eprintln!(
        "[loadgen] peer-matrix{} against {} ({})",
        if args.smoke { " (smoke)" } else { "" },
        args.url,
        args.name
    );
    let outcome = measure(&args).await.context("peer-matrix")?;
    started
        .part(
            Scenario::Peer,
            Some(args.name.clone()),
            args.system.clone(),
            args.smoke,
            outcome,
        )
        .write(&args.out)
}

async fn measure(args: &PeerArgs) -> anyhow::Result<Outcome> {
    let pairs_n = args.pick(args.pairs, 4).max(1);
    let duration = Duration::from_secs_f64(args.pick(args.seconds, 1.0));
    // Smoke: the delivery scenario's smoke rates.
    let rates: Vec<f64> = if args.smoke {
        vec![20.0, 50.0]
    } else {
        args.rates.clone()
    };
    let closed_workers = args.pick(args.closed_workers, 4.min(args.closed_workers));
    let m = Matrix::new(&args.url);

    let tag = crate::api::run_tag();
    eprintln!("[loadgen] peer: registering {} users", pairs_n * 2 + 1);
    // Some servers make the first account an admin with rooms of its own: a throwaway
    // account takes that place, so every pair is an ordinary user.
    m.register(&format!("p{tag}_first")).await?;
    let users: Vec<MatrixUser> = futures_util::stream::iter(0..pairs_n * 2)
        .map(|i| {
            let m = m.clone();
            let name = format!("p{tag}_{i}");
            async move { m.register(&name).await }
        })
        .buffered(4)
        .try_collect()
        .await?;
    let mut pairs = Vec::new();
    let mut receivers = Vec::new();
    for two in users.chunks(2) {
        let room = m.direct_room(&two[0], &two[1]).await?;
        // The receiver's starting point: everything up to now (the join) is old news.
        let first = m.sync(&two[1].token, None, 0).await?;
        let since = crate::api::str_at(&first, "/next_batch")?;
        receivers.push((two[1].clone(), since));
        pairs.push(Pair {
            sender: two[0].clone(),
            room,
        });
    }
    let peer = Arc::new(Peer {
        m: m.clone(),
        pairs,
    });
    let phases = Phases::new(rates.len() + 2);
    let counts = Arc::new(ReceiverStats::default());
    let mut readers = Vec::new();
    for (user, since) in receivers {
        readers.push(tokio::spawn(receive(
            m.clone(),
            user,
            since,
            phases.clone(),
            counts.clone(),
        )));
    }

    let mut levels = Vec::new();
    // Warm-up (not reported), as in `delivery`.
    let warm_up = Duration::from_secs_f64(args.pick(2.0, 0.3));
    delivery::open_loop(&peer, &phases, 0, 50.0, warm_up).await?;
    for (i, rate) in rates.iter().enumerate() {
        eprintln!("[loadgen] peer: {} at {rate} msg/s", args.name);
        levels.push(delivery::open_loop(&peer, &phases, i + 1, *rate, duration).await?);
    }
    if closed_workers > 0 {
        eprintln!(
            "[loadgen] peer: {} closed loop, {closed_workers} senders",
            args.name
        );
        let max_phase = rates.len() + 1;
        levels.push(
            delivery::closed_loop(&peer, &phases, max_phase, closed_workers, duration).await?,
        );
    }
    for r in readers {
        r.abort();
    }
    let receiver_counts = json!({
        "syncs": counts.syncs.load(Ordering::Relaxed),
        "limited_timelines": counts.limited.load(Ordering::Relaxed),
        "back_pages": counts.back_pages.load(Ordering::Relaxed),
        "sync_errors": counts.errors.load(Ordering::Relaxed),
    });

    let echo = if args.no_baseline {
        Vec::new()
    } else {
        let mut echo_rates = rates.clone();
        echo_rates.truncate(levels.len());
        let mut e = delivery::echo_baseline(
            pairs_n,
            &echo_rates,
            Duration::from_secs_f64(args.pick(1.0, 0.2)),
            duration,
            closed_workers.max(1),
        )
        .await?;
        if closed_workers == 0 {
            e.pop();
        }
        e
    };
    Ok(outcome(
        args,
        &levels,
        &echo,
        pairs_n,
        closed_workers,
        receiver_counts,
    ))
}

fn outcome(
    args: &PeerArgs,
    levels: &[Level],
    echo: &[Level],
    pairs: usize,
    workers: usize,
    receiver_counts: Value,
) -> Outcome {
    let name = &args.name;
    let rows = levels
        .iter()
        .chain(echo)
        .map(|l| {
            let path = if l.path == "peer" {
                name.clone()
            } else {
                l.path.to_owned()
            };
            delivery::level_row(l, path)
        })
        .collect();
    Outcome {
        baseline: if echo.is_empty() {
            "none in this part (--no-baseline): see the delivery scenario's bare echo".into()
        } else {
            "the same schedule through a bare WebSocket echo server on loopback (one hop, no application)".into()
        },
        summary: delivery::summary("peer delivery", levels, echo, workers, true),
        tables: vec![Table {
            title: format!(
                "Send-to-receive latency through {name}, {pairs} 1:1 pairs ({} s per level; open loop: latency from the due time)",
                args.pick(args.seconds, 1.0)
            ),
            columns: delivery::level_columns("send (PUT) ack p50 / p99"),
            rows,
        }],
        notes: vec![
            format!(
                "The peer is a Matrix homeserver ({name}) built and run beside Minute for this comparison; none of its code is in this repository. Same schedule, pairs and counting as the delivery scenario: each pair is a direct room; senders PUT /_matrix/client/v3/rooms/{{room}}/send/m.room.message/{{txnId}}; each receiver holds a /sync long poll ({SYNC_TIMEOUT_MS} ms timeout, filter: m.room.message timeline only, limit 1000)."
            ),
            format!(
                "A message counts when the /sync response carrying it arrived; a 'limited' timeline (the server returned fewer events than were new) is back-paginated with /messages as a client would, and its messages count when that page arrived. Receivers: {receiver_counts}."
            ),
            format!(
                "Open-loop latency runs from the due time, at most {MAX_IN_FLIGHT} sends in flight (a send waiting for a slot still counts from its due time); the closed loop's from the actual send. A send not started {} s after its due time is abandoned and named in the load column: the latencies of such a level cover only the messages sent, so they understate what the peer's users would wait. The generator runs on the same 2 cores as the server.",
                BACKLOG_LIMIT.as_secs()
            ),
        ],
        data: json!({"peer": name, "levels": levels, "baseline": echo, "pairs": pairs, "receivers": receiver_counts}),
    }
}
