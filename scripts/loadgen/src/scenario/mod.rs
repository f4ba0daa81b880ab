//! The scenarios of issue 11. Each measures Minute and a baseline in the same run and
//! returns a [`Part`] of the report.

mod auth;
mod delivery;
mod fanout;
mod gateway;
mod history;
mod idle;
pub(crate) mod peer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats;

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scenario {
    /// Send-to-receive latency between 1:1 pairs at 200, 1,000 and max msg/s.
    Delivery,
    /// One message to a 1,000-member group, all online: time until the last has it.
    Fanout,
    /// RSS per idle authenticated `/ws` connection at 10,000 and as many as allowed.
    Idle,
    /// The same query through the gateway and directly to the subgraph.
    Gateway,
    /// Logins/s and login latency under load.
    Auth,
    /// `messages(limit: 50)` in a 100,000-message conversation.
    History,
    /// `delivery` against a peer (a Matrix homeserver): `minute-loadgen peer-matrix`.
    #[value(skip)]
    Peer,
}

/// `minute-loadgen run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The scenario.
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,
    /// Minute's public base URL (`/graphql` and `/ws` are appended).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// `/ws` endpoints to spread sockets over (default: `<url>/ws`); split roles pass
    /// each realtime replica.
    #[arg(long = "ws-url")]
    pub(crate) ws_urls: Vec<String>,
    /// Pid of the process holding the sockets (RSS in the idle scenario).
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Minute's JSON log (the gateway scenario reads the subgraph ports from it).
    #[arg(long)]
    pub(crate) log: Option<PathBuf>,
    /// The server's `JWT_SECRET` (idle: tokens for 10,000 distinct users).
    #[arg(long, env = "BENCH_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// What runs (one line for the report).
    #[arg(long, default_value = "minute all-in-one")]
    pub(crate) system: String,
    /// A label for a second deployment of the same scenario (e.g. `split roles`): it goes
    /// into the metric names and the heading.
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// Seconds instead of minutes; numbers are not judged.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Where to write this scenario's part of the report.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

impl RunArgs {
    pub(crate) fn graphql_url(&self) -> String {
        format!("{}/graphql", self.url.trim_end_matches('/'))
    }

    pub(crate) fn ws_urls(&self) -> Vec<String> {
        if self.ws_urls.is_empty() {
            let base = self.url.trim_end_matches('/');
            let ws = base
                .strip_prefix("http://")
                .map(|rest| format!("ws://{rest}/ws"))
                .unwrap_or_else(|| format!("{base}/ws"));
            vec![ws]
        } else {
            self.ws_urls.clone()
        }
    }

    /// `full` in a full run, `smoke` in a smoke run.
    pub(crate) fn pick<T>(&self, full: T, smoke: T) -> T {
        if self.smoke { smoke } else { full }
    }

    pub(crate) fn secs(&self, full: f64, smoke: f64) -> Duration {
        Duration::from_secs_f64(self.pick(full, smoke))
    }
}

/// One line of the summary table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) metric: String,
    /// The goal and where it comes from, if an issue or design.md sets one.
    pub(crate) goal: Option<String>,
    pub(crate) measured: String,
    pub(crate) baseline: Option<String>,
    /// measured / baseline (for latencies and memory: how many times the floor).
    pub(crate) ratio: Option<f64>,
    pub(crate) goal_met: Option<bool>,
}

impl Row {
    /// p50 / p99 against the baseline's (named `baseline_what`), no goal; the ratio is of
    /// the p99s.
    pub(crate) fn p50_p99(
        metric: String,
        measured: &stats::Latency,
        baseline: &stats::Latency,
        baseline_what: &str,
    ) -> Self {
        Self {
            metric,
            goal: None,
            measured: measured.p50_p99(),
            baseline: Some(format!("{} {baseline_what}", baseline.p50_p99())),
            ratio: ratio(measured.p99_ms, baseline.p99_ms),
            goal_met: None,
        }
    }
}

/// A detail table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Table {
    pub(crate) title: String,
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

/// What a scenario found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) baseline: String,
    pub(crate) summary: Vec<Row>,
    pub(crate) tables: Vec<Table>,
    pub(crate) notes: Vec<String>,
    /// Every number, machine-readable.
    pub(crate) data: Value,
}

/// One scenario's part of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Part {
    pub(crate) scenario: Scenario,
    #[serde(default)]
    pub(crate) variant: Option<String>,
    pub(crate) system: String,
    pub(crate) smoke: bool,
    pub(crate) started_at: String,
    pub(crate) seconds: f64,
    pub(crate) load_before: [f64; 3],
    pub(crate) load_after: [f64; 3],
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Started::now();
    eprintln!(
        "[loadgen] {:?}{} against {}",
        args.scenario,
        if args.smoke { " (smoke)" } else { "" },
        args.url
    );
    let outcome = match args.scenario {
        Scenario::Delivery => delivery::run(&args).await,
        Scenario::Fanout => fanout::run(&args).await,
        Scenario::Idle => idle::run(&args).await,
        Scenario::Gateway => gateway::run(&args).await,
        Scenario::Auth => auth::run(&args).await,
        Scenario::History => history::run(&args).await,
        Scenario::Peer => Err(anyhow::anyhow!(
            "the peer scenario runs as `minute-loadgen peer-matrix`"
        )),
    }
    .with_context(|| format!("scenario {:?}", args.scenario))?;
    let mut outcome = outcome;
    if let Some(v) = &args.variant {
        for row in &mut outcome.summary {
            row.metric = row.metric.replacen(':', &format!(" ({v}):"), 1);
        }
    }
    started
        .part(
            args.scenario,
            args.variant.clone(),
            args.system.clone(),
            args.smoke,
            outcome,
        )
        .write(&args.out)
}

/// When a part's measurement started: the start of its [`Part`].
pub(crate) struct Started {
    at: String,
    load: [f64; 3],
    clock: std::time::Instant,
}

impl Started {
    pub(crate) fn now() -> Self {
        Self {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            load: stats::load_average(),
            clock: std::time::Instant::now(),
        }
    }

    /// The part for `outcome`, its time and load taken now.
    pub(crate) fn part(
        self,
        scenario: Scenario,
        variant: Option<String>,
        system: String,
        smoke: bool,
        outcome: Outcome,
    ) -> Part {
        Part {
            scenario,
            variant,
            system,
            smoke,
            started_at: self.at,
            seconds: self.clock.elapsed().as_secs_f64(),
            load_before: self.load,
            load_after: stats::load_average(),
            outcome,
        }
    }
}

impl Part {
    /// Logs the summary rows and writes the part (JSON) to `out` for `report`.
    pub(crate) fn write(&self, out: &Path) -> anyhow::Result<()> {
        for row in &self.outcome.summary {
            eprintln!(
                "[loadgen]   {}: {}{}",
                row.metric,
                row.measured,
                row.baseline
                    .as_ref()
                    .map(|b| format!(" (baseline {b})"))
                    .unwrap_or_default()
            );
        }
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("write {}", out.display()))?;
        Ok(())
    }
}

/// `a / b`, or `None` when `b` is not positive.
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// What a closed loop did.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Loop {
    pub(crate) concurrency: usize,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) per_second: f64,
    pub(crate) latency: stats::Latency,
}

impl Loop {
    /// The detail-table columns of [`Loop::cells`].
    pub(crate) const COLUMNS: [&str; 6] = ["concurrency", "p50", "p99", "p99.9", "req/s", "errors"];

    /// This loop's cells of a detail table, under [`Loop::COLUMNS`].
    pub(crate) fn cells(&self) -> [String; 6] {
        [
            self.concurrency.to_string(),
            stats::fmt_ms(self.latency.p50_ms),
            stats::fmt_ms(self.latency.p99_ms),
            stats::fmt_ms(self.latency.p999_ms),
            format!("{:.0}", self.per_second),
            self.errors.to_string(),
        ]
    }
}

/// `concurrency` workers each call `op(i)` back to back for `duration`; latency per call.
/// (A closed loop: use it for throughput; its latency is measured from the actual call.)
pub(crate) async fn closed_loop<F, Fut>(
    concurrency: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Loop>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let recorder = stats::Recorder::new();
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = tokio::time::Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, recorder, counter, errors, first_error) = (
            op.clone(),
            recorder.clone(),
            counter.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = tokio::time::Instant::now();
                match op(i).await {
                    Ok(()) => recorder.record_since(t),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .expect("lock")
                            .get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let latency = recorder.summary();
    let errors = errors.load(Ordering::Relaxed);
    if let Some(e) = first_error.lock().expect("lock").take() {
        eprintln!("[loadgen] {errors} failed calls; first: {e}");
    }
    Ok(Loop {
        concurrency,
        requests: latency.count,
        errors,
        seconds,
        per_second: latency.count as f64 / seconds.max(1e-9),
        latency,
    })
}

/// An open loop at `rate` per second for `duration`: call `k` starts at its due time (or
/// as soon after as a slot of `max_in_flight` is free) and its latency runs from the due
/// time, so a slow server cannot hide behind a slowed-down generator.
pub(crate) async fn open_loop<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    op: F,
) -> anyhow::Result<Loop>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let recorder = stats::Recorder::new();
    let errors = Arc::new(AtomicU64::new(0));
    let schedule = stats::Schedule::new(rate);
    let n = schedule.count(duration);
    let (r, e) = (recorder.clone(), errors.clone());
    stats::paced(schedule, n, max_in_flight, move |k, due| {
        let (recorder, errors) = (r.clone(), e.clone());
        let call = op(k);
        async move {
            match call.await {
                Ok(()) => recorder.record_since(due),
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("[loadgen] open loop: first failure: {e:#}");
                    }
                }
            }
        }
    })
    .await?;
    let seconds = tokio::time::Instant::now()
        .saturating_duration_since(schedule.start)
        .as_secs_f64();
    let latency = recorder.summary();
    Ok(Loop {
        concurrency: max_in_flight,
        requests: latency.count,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        per_second: latency.count as f64 / seconds.max(1e-9),
        latency,
    })
}
