//! `delivery`: send-to-receive latency between 1:1 pairs. Senders call `sendMessage` over
//! HTTP on an open-loop schedule (200 and 1,000 msg/s), receivers hold `/ws` with an
//! `events` subscription; latency runs from the message's *due* time to its arrival at the
//! receiver. Then a closed loop finds the max rate. Baseline: the same schedule through a
//! bare WebSocket echo server on loopback (the physical floor of one hop).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Outcome, Row, RunArgs, Table, ratio};
use crate::api::{Api, User, run_tag};
use crate::bare::BareServer;
use crate::stats::{Latency, Recorder, Schedule, fmt_ms, paced};
use crate::ws::{self, Ws};

pub(super) const BODY: &str =
    "benchmark message: the quick brown fox jumps over the lazy dog 0123456789";
/// Requests in flight at most (a client tier's connection pool); when all are busy the
/// next send waits, and its latency still counts from its due time.
pub(super) const MAX_IN_FLIGHT: usize = 64;

/// How one load level went.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Level {
    pub(super) load: String,
    pub(super) path: &'static str,
    pub(super) sent: u64,
    pub(super) received: u64,
    pub(super) errors: u64,
    pub(super) seconds: f64,
    /// Sends per second accepted.
    pub(super) rate: f64,
    /// Receipts per second, until the last arrival.
    pub(super) delivered_rate: f64,
    /// From the due time.
    pub(super) latency: Latency,
    /// From the actual send.
    pub(super) from_send: Latency,
    /// `sendMessage` HTTP round trip (Minute only), from the due time.
    pub(super) send_ack: Option<Latency>,
}

impl Level {
    /// What `phase`'s receivers recorded, for `sent` messages in `seconds`; no errors and
    /// no send acks (set those with struct update syntax).
    pub(super) fn of_phase(
        load: String,
        path: &'static str,
        phases: &Phases,
        phase: usize,
        sent: u64,
        seconds: f64,
    ) -> Self {
        Self {
            load,
            path,
            sent,
            received: phases.received[phase].load(Ordering::Relaxed),
            errors: 0,
            seconds,
            rate: sent as f64 / seconds.max(1e-9),
            delivered_rate: phases.delivered_rate(phase),
            latency: phases.recorders[phase].summary(),
            from_send: phases.from_send[phase].summary(),
            send_ack: None,
        }
    }
}

/// Where a delivery run's messages go: Minute's `sendMessage` here, a Matrix homeserver's
/// send in `peer`. Both go through the same [`open_loop`] and [`closed_loop`], so they are
/// paced, timed and counted alike.
pub(super) trait Target: Send + Sync + 'static {
    /// The `path` of its levels, and its name in log lines.
    const PATH: &'static str;
    /// The send, as its failure is logged.
    const SEND: &'static str;
    /// A send not started this long after its due time is abandoned (counted, not sent);
    /// `None`: every send goes out, however late.
    const BACKLOG_LIMIT: Option<Duration>;

    /// Sends the message `id` from the sender of pair `i % pairs`.
    fn send(&self, i: usize, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Per-phase slots the receivers record into: a message id `<phase>.<k>.<offset us>`
/// names its phase and its due time relative to the phase's base instant.
pub(super) struct Phases {
    pub(super) base: Vec<Mutex<Instant>>,
    /// From the due time (what a user waits: coordinated-omission safe).
    pub(super) recorders: Vec<Recorder>,
    /// From the moment the request or frame actually left (service time).
    pub(super) from_send: Vec<Recorder>,
    pub(super) received: Vec<AtomicU64>,
    /// Latest arrival, in us after the phase's base instant.
    last_us: Vec<AtomicU64>,
}

impl Phases {
    pub(super) fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            base: (0..n).map(|_| Mutex::new(Instant::now())).collect(),
            recorders: (0..n).map(|_| Recorder::new()).collect(),
            from_send: (0..n).map(|_| Recorder::new()).collect(),
            received: (0..n).map(|_| AtomicU64::new(0)).collect(),
            last_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub(super) async fn arrived(&self, id: &str, at: Instant) {
        let mut it = id.split('.');
        let (Some(phase), Some(_k), Some(due), Some(sent)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return;
        };
        let (Ok(phase), Ok(due), Ok(sent)) = (
            phase.parse::<usize>(),
            due.parse::<u64>(),
            sent.parse::<u64>(),
        ) else {
            return;
        };
        let Some(base) = self.base.get(phase) else {
            return;
        };
        let base = *base.lock().await;
        self.recorders[phase]
            .record(at.saturating_duration_since(base + Duration::from_micros(due)));
        self.from_send[phase]
            .record(at.saturating_duration_since(base + Duration::from_micros(sent)));
        self.last_us[phase].fetch_max(
            at.saturating_duration_since(base).as_micros() as u64,
            Ordering::Relaxed,
        );
        self.received[phase].fetch_add(1, Ordering::Relaxed);
    }

    /// An open-loop schedule at `rate` that `phase`'s arrivals are timed against, and how
    /// many sends it has in `duration`.
    pub(super) async fn schedule(
        &self,
        phase: usize,
        rate: f64,
        duration: Duration,
    ) -> (Schedule, u64) {
        let schedule = Schedule::new(rate);
        *self.base[phase].lock().await = schedule.start;
        (schedule, schedule.count(duration))
    }

    /// Messages received per second, from the phase's start to the last arrival.
    pub(super) fn delivered_rate(&self, phase: usize) -> f64 {
        let span = self.last_us[phase].load(Ordering::Relaxed) as f64 / 1e6;
        self.received[phase].load(Ordering::Relaxed) as f64 / span.max(1e-9)
    }
}

/// `<phase>.<k>.<due offset us>.<actual send offset us>` (at most ~40 chars).
pub(super) fn message_id(phase: usize, k: u64, base: Instant, due: Instant) -> String {
    let now = Instant::now();
    format!(
        "{phase}.{k}.{}.{}",
        due.saturating_duration_since(base).as_micros(),
        now.saturating_duration_since(base).as_micros()
    )
}

struct Pair {
    sender: User,
    conversation: String,
}

/// Minute: `sendMessage` over HTTP.
struct Minute {
    api: Api,
    pairs: Vec<Pair>,
}

impl Target for Minute {
    const PATH: &'static str = "minute";
    const SEND: &'static str = "sendMessage";
    const BACKLOG_LIMIT: Option<Duration> = None;

    async fn send(&self, i: usize, id: &str) -> anyhow::Result<()> {
        let pair = &self.pairs[i % self.pairs.len()];
        self.api
            .send_message(&pair.sender.token, &pair.conversation, id, BODY)
            .await
            .map(drop)
    }
}

pub(super) async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let pairs_n = args.pick(16, 4);
    let duration = args.secs(10.0, 1.0);
    let rates: Vec<f64> = args.pick(vec![200.0, 1000.0], vec![20.0, 50.0]);
    let closed_workers = args.pick(32, 4);

    let api = Api::new(args.graphql_url());
    let tag = run_tag();
    eprintln!("[loadgen] delivery: registering {} users", pairs_n * 2);
    let users = api
        .register_many(&format!("d{tag}_"), pairs_n * 2, 4)
        .await?;
    let mut pairs = Vec::new();
    let mut receivers = Vec::new();
    let ws_urls = args.ws_urls();
    for (i, two) in users.chunks(2).enumerate() {
        let conversation = api.create_direct(&two[0].token, &two[1].id).await?;
        let mut socket = ws::connect(&ws_urls[i % ws_urls.len()], &two[1].token).await?;
        ws::subscribe(&mut socket, "m", ws::MESSAGES).await?;
        ws::sync(&mut socket).await?;
        receivers.push(socket);
        pairs.push(Pair {
            sender: two[0].clone(),
            conversation,
        });
    }
    let minute = Arc::new(Minute { api, pairs });
    // Phase 0 is the warm-up; then each rate; then the closed loop.
    let phases = Phases::new(rates.len() + 2);
    let mut readers = Vec::new();
    for socket in receivers {
        let phases = phases.clone();
        readers.push(tokio::spawn(read_minute(socket, phases)));
    }

    let mut levels = Vec::new();
    // Warm-up (not reported): every pair once, then a short burst.
    open_loop(&minute, &phases, 0, 50.0, args.secs(2.0, 0.3)).await?;
    for (i, rate) in rates.iter().enumerate() {
        eprintln!("[loadgen] delivery: minute at {rate} msg/s");
        let l = open_loop(&minute, &phases, i + 1, *rate, duration).await?;
        levels.push(l);
    }
    eprintln!("[loadgen] delivery: minute closed loop, {closed_workers} senders");
    let max_phase = rates.len() + 1;
    levels.push(closed_loop(&minute, &phases, max_phase, closed_workers, duration).await?);
    for r in readers {
        r.abort();
    }

    // Baseline: the same schedules through a bare echo server.
    let echo_levels = echo_baseline(
        pairs_n,
        &rates,
        args.secs(1.0, 0.2),
        duration,
        closed_workers,
    )
    .await?;

    Ok(outcome(
        args,
        &levels,
        &echo_levels,
        pairs_n,
        closed_workers,
    ))
}

/// The physical floor: `rates` (after a warm-up) through a bare WebSocket echo server on
/// loopback over `sockets` sockets, then a closed loop of `closed_workers` round trips.
pub(super) async fn echo_baseline(
    sockets: usize,
    rates: &[f64],
    warm_up: Duration,
    duration: Duration,
    closed_workers: usize,
) -> anyhow::Result<Vec<Level>> {
    let bare = BareServer::start()?;
    let echo_phases = Phases::new(rates.len() + 2);
    let mut sinks = Vec::new();
    let mut echo_readers = Vec::new();
    for _ in 0..sockets {
        let socket = ws::open(&bare.url()).await?;
        let (sink, stream) = socket.split();
        sinks.push(Mutex::new(sink));
        echo_readers.push(tokio::spawn(read_echo(stream, echo_phases.clone())));
    }
    let sinks = Arc::new(sinks);
    open_loop_echo(&sinks, &echo_phases, 0, 50.0, warm_up).await?;
    let mut echo_levels = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        eprintln!("[loadgen] bare echo at {rate} msg/s");
        echo_levels.push(open_loop_echo(&sinks, &echo_phases, i + 1, *rate, duration).await?);
    }
    for r in echo_readers {
        r.abort();
    }
    echo_levels.push(closed_loop_echo(&bare.url(), closed_workers, duration).await?);
    drop(bare);
    Ok(echo_levels)
}

async fn read_minute(mut socket: Ws, phases: Arc<Phases>) {
    while let Some((id, at)) = ws::next_message_id(&mut socket).await {
        phases.arrived(&id, at).await;
    }
}

async fn read_echo(mut stream: SplitStream<Ws>, phases: Arc<Phases>) {
    while let Some(Ok(m)) = stream.next().await {
        if let Message::Text(t) = m {
            phases.arrived(t.as_str(), Instant::now()).await;
        }
    }
}

/// Waits until `phase` received `expected` messages or 10 s passed since the last send.
pub(super) async fn drain(phases: &Phases, phase: usize, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while phases.received[phase].load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `target` at `rate` msg/s for `duration` on an open-loop schedule, at most
/// [`MAX_IN_FLIGHT`] sends at once; message `k` goes from pair `k`. Receivers record into
/// `phase`, from each message's due time.
pub(super) async fn open_loop<T: Target>(
    target: &Arc<T>,
    phases: &Arc<Phases>,
    phase: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Level> {
    let (schedule, n) = phases.schedule(phase, rate, duration).await;
    let acks = Recorder::new();
    let errors = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let abandoned = Arc::new(AtomicU64::new(0));
    let base = schedule.start;
    let (target, acks2, errors2, ok2, abandoned2) = (
        target.clone(),
        acks.clone(),
        errors.clone(),
        ok.clone(),
        abandoned.clone(),
    );
    paced(schedule, n, MAX_IN_FLIGHT, move |k, due| {
        let (target, acks, errors, ok, abandoned) = (
            target.clone(),
            acks2.clone(),
            errors2.clone(),
            ok2.clone(),
            abandoned2.clone(),
        );
        async move {
            if T::BACKLOG_LIMIT
                .is_some_and(|limit| Instant::now().saturating_duration_since(due) > limit)
            {
                abandoned.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let id = message_id(phase, k, base, due);
            let sent = target.send(k as usize, &id).await;
            if acked::<T>(sent, due, &acks, &errors) {
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await?;
    let seconds = Instant::now()
        .saturating_duration_since(schedule.start)
        .as_secs_f64();
    let sent = ok.load(Ordering::Relaxed);
    drain(phases, phase, sent).await;
    let load = match abandoned.load(Ordering::Relaxed) {
        0 => format!("{rate:.0} msg/s"),
        a => {
            let limit = T::BACKLOG_LIMIT.unwrap_or_default().as_secs();
            eprintln!(
                "[loadgen] {}: {a} of {n} sends abandoned at {rate} msg/s (over {limit} s behind schedule)",
                T::PATH
            );
            format!("{rate:.0} msg/s ({a} of {n} sends abandoned, over {limit} s behind schedule)")
        }
    };
    Ok(Level {
        errors: errors.load(Ordering::Relaxed),
        send_ack: Some(acks.summary()),
        ..Level::of_phase(load, T::PATH, phases, phase, sent, seconds)
    })
}

/// `workers` senders to `target` for `duration`, each sending its next message when the
/// previous send returned; worker `w` sends from pair `w`. Receivers record into `phase`,
/// from each actual send.
pub(super) async fn closed_loop<T: Target>(
    target: &Arc<T>,
    phases: &Arc<Phases>,
    phase: usize,
    workers: usize,
    duration: Duration,
) -> anyhow::Result<Level> {
    let base = Instant::now();
    *phases.base[phase].lock().await = base;
    let end = base + duration;
    let acks = Recorder::new();
    let errors = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (target, acks, errors, counter) = (
            target.clone(),
            acks.clone(),
            errors.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ok = 0_u64;
            while Instant::now() < end {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let start = Instant::now();
                let id = message_id(phase, k, base, start);
                let sent = target.send(w, &id).await;
                if acked::<T>(sent, start, &acks, &errors) {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await?;
    }
    let seconds = base.elapsed().as_secs_f64();
    drain(phases, phase, sent).await;
    Ok(Level {
        errors: errors.load(Ordering::Relaxed),
        send_ack: Some(acks.summary()),
        ..Level::of_phase(
            format!("max (closed loop, {workers} senders)"),
            T::PATH,
            phases,
            phase,
            sent,
            seconds,
        )
    })
}

/// Counts a send that just returned: its ack time from `from` when it succeeded (true),
/// else an error (the first one logged).
fn acked<T: Target>(
    sent: anyhow::Result<()>,
    from: Instant,
    acks: &Recorder,
    errors: &AtomicU64,
) -> bool {
    match sent {
        Ok(()) => {
            acks.record_since(from);
            true
        }
        Err(e) => {
            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("[loadgen] {} failed: {e:#}", T::SEND);
            }
            false
        }
    }
}

type Sink = SplitSink<Ws, Message>;

async fn open_loop_echo(
    sinks: &Arc<Vec<Mutex<Sink>>>,
    phases: &Arc<Phases>,
    phase: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Level> {
    let (schedule, n) = phases.schedule(phase, rate, duration).await;
    let sent = Arc::new(AtomicU64::new(0));
    let (sinks, counter, base) = (sinks.clone(), sent.clone(), schedule.start);
    paced(schedule, n, MAX_IN_FLIGHT, move |k, due| {
        let (sinks, counter) = (sinks.clone(), counter.clone());
        async move {
            let mut sink = sinks[(k as usize) % sinks.len()].lock().await;
            let id = message_id(phase, k, base, due);
            if sink.send(Message::text(id)).await.is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await?;
    let sent = sent.load(Ordering::Relaxed);
    let seconds = Instant::now()
        .saturating_duration_since(schedule.start)
        .as_secs_f64();
    drain(phases, phase, sent).await;
    Ok(Level::of_phase(
        format!("{rate:.0} msg/s"),
        "bare WebSocket echo",
        phases,
        phase,
        sent,
        seconds,
    ))
}

async fn closed_loop_echo(url: &str, workers: usize, duration: Duration) -> anyhow::Result<Level> {
    let latency = Recorder::new();
    let mut sockets = Vec::new();
    for _ in 0..workers {
        sockets.push(ws::open(url).await?);
    }
    let base = Instant::now();
    let end = base + duration;
    let mut tasks = Vec::new();
    for mut socket in sockets {
        let latency = latency.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while Instant::now() < end {
                let start = Instant::now();
                ws::send(&mut socket, json!(n)).await?;
                ws::next_json(&mut socket, ws::WAIT).await?;
                latency.record_since(start);
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await??;
    }
    let seconds = base.elapsed().as_secs_f64();
    Ok(Level {
        load: format!("max (closed loop, {workers} senders)"),
        path: "bare WebSocket echo",
        sent,
        received: sent,
        errors: 0,
        seconds,
        rate: sent as f64 / seconds.max(1e-9),
        delivered_rate: sent as f64 / seconds.max(1e-9),
        latency: latency.summary(),
        from_send: latency.summary(),
        send_ack: None,
    })
}

fn outcome(
    args: &RunArgs,
    levels: &[Level],
    echo: &[Level],
    pairs: usize,
    workers: usize,
) -> Outcome {
    let rows = levels
        .iter()
        .chain(echo)
        .map(|l| level_row(l, l.path.to_owned()))
        .collect();
    Outcome {
        baseline: "the same schedule through a bare WebSocket echo server on loopback (one hop, no application)".into(),
        summary: summary("delivery", levels, echo, workers, false),
        tables: vec![Table {
            title: format!(
                "Send-to-receive latency, {pairs} 1:1 pairs ({} s per level; open loop: latency from the due time)",
                args.pick(10, 1)
            ),
            columns: level_columns("sendMessage ack p50 / p99"),
            rows,
        }],
        notes: vec![
            format!(
                "Senders call sendMessage over HTTP (/graphql); receivers hold {} /ws socket(s) subscribed to events. The generator runs on the same 2 cores as the server.",
                pairs
            ),
            "Open-loop latency runs from the due time; the pacing thread sleeps with the OS timer, so a send leaves a little after its due time (more on a loaded machine), in both paths alike; the column 'from actual send' leaves that out.".into(),
            format!("At most {MAX_IN_FLIGHT} sendMessage requests in flight (a client tier's pool); a send that waits for a slot still counts from its due time. 'delivered' msg/s: receipts per second until the last one arrived."),
            "Max: closed loop (each sender sends its next message when the previous sendMessage returned); its latency runs from the actual send.".into(),
        ],
        data: json!({"minute": levels, "baseline": echo, "pairs": pairs}),
    }
}

/// The summary rows of `levels` (metrics named `what`), each against the bare echo's
/// level at the same place where `echo` has one; `mark_missing`: a latency's measured
/// value says how many messages were not delivered.
pub(super) fn summary(
    what: &str,
    levels: &[Level],
    echo: &[Level],
    workers: usize,
    mark_missing: bool,
) -> Vec<Row> {
    let mut summary = Vec::new();
    for (i, l) in levels.iter().enumerate() {
        let e = echo.get(i);
        if l.load.starts_with("max") {
            summary.push(Row {
                metric: format!("{what}: max msg/s ({workers} senders, closed loop)"),
                goal: None,
                measured: format!(
                    "{:.0} msg/s sent, {:.0} delivered (p99 {})",
                    l.rate,
                    l.delivered_rate,
                    fmt_ms(l.latency.p99_ms)
                ),
                baseline: e.map(|e| format!("{:.0} msg/s echo", e.rate)),
                ratio: e.and_then(|e| ratio(l.delivered_rate.min(l.rate), e.rate)),
                goal_met: None,
            });
        } else {
            let missing = match l.sent.saturating_sub(l.received) {
                missing if mark_missing && missing > 0 => {
                    format!(" ({missing} of {} not delivered)", l.sent)
                }
                _ => String::new(),
            };
            summary.push(Row {
                metric: format!("{what}: send-to-receive p50 / p99 at {}", l.load),
                goal: None,
                measured: format!("{}{missing}", l.latency.p50_p99()),
                baseline: e.map(|e| format!("{} echo", e.latency.p50_p99())),
                ratio: e.and_then(|e| ratio(l.latency.p99_ms, e.latency.p99_ms)),
                goal_met: None,
            });
        }
    }
    summary
}

/// The detail table's columns for [`level_row`]; `ack` names the send-ack column.
pub(super) fn level_columns(ack: &str) -> Vec<String> {
    [
        "load",
        "path",
        "sent",
        "received",
        "msg/s sent / delivered",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "from actual send p50 / p99",
        ack,
        "errors",
    ]
    .map(String::from)
    .to_vec()
}

/// A level's row of the detail table, its path shown as `path`.
pub(super) fn level_row(l: &Level, path: String) -> Vec<String> {
    vec![
        l.load.clone(),
        path,
        l.sent.to_string(),
        match l.sent.saturating_sub(l.received) {
            0 => l.received.to_string(),
            missing => format!(
                "{} ({missing} not within 10 s of the last send)",
                l.received
            ),
        },
        format!("{:.0} / {:.0}", l.rate, l.delivered_rate),
        fmt_ms(l.latency.p50_ms),
        fmt_ms(l.latency.p90_ms),
        fmt_ms(l.latency.p99_ms),
        fmt_ms(l.latency.p999_ms),
        fmt_ms(l.latency.max_ms),
        l.from_send.p50_p99(),
        l.send_ack
            .map(|a| a.p50_p99())
            .unwrap_or_else(|| "-".into()),
        l.errors.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers every message to its receivers the moment it is sent (no server).
    struct Loopback {
        phases: Arc<Phases>,
        fail: bool,
    }

    impl Target for Loopback {
        const PATH: &'static str = "loopback";
        const SEND: &'static str = "loopback: send";
        const BACKLOG_LIMIT: Option<Duration> = None;

        async fn send(&self, _i: usize, id: &str) -> anyhow::Result<()> {
            if self.fail {
                anyhow::bail!("refused");
            }
            self.phases.arrived(id, Instant::now()).await;
            Ok(())
        }
    }

    fn loopback(fail: bool) -> (Arc<Loopback>, Arc<Phases>) {
        let phases = Phases::new(2);
        let target = Arc::new(Loopback {
            phases: phases.clone(),
            fail,
        });
        (target, phases)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_sends_the_schedule_and_counts_what_arrived() {
        let (target, phases) = loopback(false);
        let l = open_loop(&target, &phases, 1, 200.0, Duration::from_millis(100))
            .await
            .expect("open loop");
        assert_eq!((l.sent, l.received, l.errors), (20, 20, 0), "{l:?}");
        assert_eq!((l.load.as_str(), l.path), ("200 msg/s", "loopback"));
        assert_eq!(l.latency.count, 20);
        assert_eq!(l.send_ack.expect("acks").count, 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_sends_until_the_end_and_counts_failures() {
        let (target, phases) = loopback(false);
        let l = closed_loop(&target, &phases, 1, 2, Duration::from_millis(50))
            .await
            .expect("closed loop");
        assert!(l.sent > 0 && l.sent == l.received, "{l:?}");
        assert_eq!(l.load, "max (closed loop, 2 senders)");

        let (target, phases) = loopback(true);
        let l = closed_loop(&target, &phases, 1, 2, Duration::from_millis(20))
            .await
            .expect("closed loop");
        assert!(l.sent == 0 && l.errors > 0, "{l:?}");
    }

    fn level(load: &str, sent: u64, received: u64, p50_ms: f64, p99_ms: f64) -> Level {
        let latency = Latency {
            count: received,
            p50_ms,
            p99_ms,
            ..Latency::default()
        };
        Level {
            load: load.into(),
            path: "minute",
            sent,
            received,
            errors: 0,
            seconds: 1.0,
            rate: sent as f64,
            delivered_rate: received as f64,
            latency,
            from_send: latency,
            send_ack: None,
        }
    }

    #[test]
    fn summary_rows_compare_each_level_with_the_echo() {
        let levels = [
            level("20 msg/s", 20, 18, 2.0, 4.0),
            level("max (closed loop, 4 senders)", 100, 100, 5.0, 10.0),
        ];
        let echo = [
            level("20 msg/s", 20, 20, 0.5, 1.0),
            level("max (closed loop, 4 senders)", 1000, 1000, 0.1, 0.2),
        ];
        let rows = summary("delivery", &levels, &echo, 4, false);
        assert_eq!(
            rows[0].metric,
            "delivery: send-to-receive p50 / p99 at 20 msg/s"
        );
        assert_eq!(rows[0].measured, "2.00 ms / 4.00 ms");
        assert_eq!(rows[0].baseline.as_deref(), Some("0.500 ms / 1.00 ms echo"));
        assert_eq!(rows[0].ratio, Some(4.0));
        assert_eq!(
            rows[1].metric,
            "delivery: max msg/s (4 senders, closed loop)"
        );
        assert_eq!(
            rows[1].measured,
            "100 msg/s sent, 100 delivered (p99 10.00 ms)"
        );
        assert_eq!(rows[1].baseline.as_deref(), Some("1000 msg/s echo"));
        assert_eq!(rows[1].ratio, Some(0.1));

        let rows = summary("peer delivery", &levels, &[], 4, true);
        assert_eq!(
            rows[0].measured,
            "2.00 ms / 4.00 ms (2 of 20 not delivered)"
        );
        assert_eq!((rows[0].baseline.as_ref(), rows[0].ratio), (None, None));
    }

    #[test]
    fn a_level_row_names_what_did_not_arrive() {
        let row = level_row(&level("20 msg/s", 20, 18, 2.0, 4.0), "minute".into());
        assert_eq!(row.len(), level_columns("ack").len());
        assert_eq!(row[3], "18 (2 not within 10 s of the last send)");
        assert_eq!(row[10], "2.00 ms / 4.00 ms");
        assert_eq!(row[11], "-");
    }
}
