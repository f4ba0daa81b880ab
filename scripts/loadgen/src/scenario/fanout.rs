//! `fanout`: one message to a 1,000-member group with every member online over `/ws`;
//! for each message, the time from the send until the last member has it. Baseline: a
//! bare WebSocket server broadcasting one frame to the same number of sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{Outcome, Row, RunArgs, Table};
use crate::api::{Api, run_tag};
use crate::bare::BareServer;
use crate::stats::{Latency, Recorder, fmt_ms};
use crate::ws::{self, Ws};

/// Arrivals per message: how many sockets have it, and the latest arrival.
struct Tracker {
    base: Instant,
    count: Vec<AtomicU64>,
    last_us: Vec<AtomicU64>,
    each: Recorder,
}

impl Tracker {
    fn new(messages: usize) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            count: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            last_us: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            each: Recorder::new(),
        })
    }

    /// `id` is `<k>.<sent offset us>`.
    fn arrived(&self, id: &str, at: Instant) {
        let Some((k, sent)) = id.split_once('.') else {
            return;
        };
        let (Ok(k), Ok(sent)) = (k.parse::<usize>(), sent.parse::<u64>()) else {
            return;
        };
        if k >= self.count.len() {
            return;
        }
        let at_us = at.saturating_duration_since(self.base).as_micros() as u64;
        self.each
            .record(Duration::from_micros(at_us.saturating_sub(sent)));
        self.last_us[k].fetch_max(at_us, Ordering::Relaxed);
        self.count[k].fetch_add(1, Ordering::Relaxed);
    }

    fn id(&self, k: usize) -> (String, u64) {
        let sent = Instant::now()
            .saturating_duration_since(self.base)
            .as_micros() as u64;
        (format!("{k}.{sent}"), sent)
    }

    /// Waits until `members` sockets have message `k`; the time from `sent` to the last.
    async fn last(&self, k: usize, sent: u64, members: u64) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.count[k].load(Ordering::Relaxed) < members {
            if Instant::now() > deadline {
                bail!(
                    "message {k}: only {} of {members} sockets received it within 15 s",
                    self.count[k].load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        Ok(Duration::from_micros(
            self.last_us[k].load(Ordering::Relaxed).saturating_sub(sent),
        ))
    }
}

#[derive(Debug, serde::Serialize)]
struct Result {
    path: &'static str,
    members_online: usize,
    messages: usize,
    last_member: Latency,
    each_delivery: Latency,
}

pub(super) async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let members = args.pick(1000, 50);
    let messages = args.pick(50, 3);
    let api = Api::new(args.graphql_url());
    let tag = run_tag();
    eprintln!("[loadgen] fanout: registering {members} users");
    let t = Instant::now();
    let users = api.register_many(&format!("f{tag}_"), members, 8).await?;
    let register_s = t.elapsed().as_secs_f64();
    let owner = users[0].clone();
    let others: Vec<String> = users[1..].iter().map(|u| u.id.clone()).collect();
    let conversation = api
        .create_group(&owner.token, "fanout bench", &others)
        .await?;
    eprintln!("[loadgen] fanout: {members} members connecting to /ws");
    let ws_urls = args.ws_urls();
    let sockets: Vec<Ws> = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let url = ws_urls[i % ws_urls.len()].clone();
            let token = u.token.clone();
            async move {
                let mut s = ws::connect(&url, &token).await?;
                ws::subscribe(&mut s, "m", ws::MESSAGES).await?;
                ws::sync(&mut s).await?;
                anyhow::Ok(s)
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;

    // Minute: the owner sends over HTTP; every member's socket (the owner's too) receives.
    let tracker = Tracker::new(messages + 1);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|s| tokio::spawn(read_minute(s, tracker.clone())))
        .collect();
    let last = Recorder::new();
    // Message 0 warms up (not recorded).
    for k in 0..=messages {
        let (id, sent) = tracker.id(k);
        api.send_message(&owner.token, &conversation, &id, "fan-out benchmark")
            .await
            .context("sendMessage to the group")?;
        let d = tracker.last(k, sent, members as u64).await?;
        if k > 0 {
            last.record(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in readers {
        r.abort();
    }
    let minute = Result {
        path: "minute",
        members_online: members,
        messages,
        last_member: last.summary(),
        each_delivery: tracker.each.summary(),
    };

    // Baseline: a bare server broadcasting to the same number of sockets.
    eprintln!("[loadgen] fanout: bare broadcast to {members} sockets");
    let bare = BareServer::start()?;
    let btracker = Tracker::new(messages + 1);
    let mut trigger = None;
    let mut breaders = Vec::new();
    for i in 0..members {
        let (sink, mut stream) = ws::open(&bare.url()).await?.split();
        if i == 0 {
            trigger = Some(sink);
        }
        let tr = btracker.clone();
        breaders.push(tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m
                    && let Some(id) = t.as_str().strip_prefix('B')
                {
                    tr.arrived(id, Instant::now());
                }
            }
        }));
    }
    let mut trigger = trigger.context("no socket")?;
    // Let the server register every socket before the first broadcast.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let blast = Recorder::new();
    for k in 0..=messages {
        let (id, sent) = btracker.id(k);
        trigger.send(Message::text(format!("B{id}"))).await?;
        let d = btracker.last(k, sent, members as u64).await?;
        if k > 0 {
            blast.record(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in breaders {
        r.abort();
    }
    drop(bare);
    let baseline = Result {
        path: "bare WebSocket broadcast",
        members_online: members,
        messages,
        last_member: blast.summary(),
        each_delivery: btracker.each.summary(),
    };

    let row = |r: &Result| {
        vec![
            r.path.to_owned(),
            r.members_online.to_string(),
            r.messages.to_string(),
            fmt_ms(r.last_member.p50_ms),
            fmt_ms(r.last_member.p99_ms),
            fmt_ms(r.last_member.max_ms),
            fmt_ms(r.each_delivery.p50_ms),
            fmt_ms(r.each_delivery.p99_ms),
        ]
    };
    Ok(Outcome {
        baseline: format!(
            "a bare WebSocket server broadcasting one frame to {members} sockets on loopback"
        ),
        summary: vec![Row::p50_p99(
            format!("fanout: last of {members} members has it, p50 / p99"),
            &minute.last_member,
            &baseline.last_member,
            "broadcast",
        )],
        tables: vec![Table {
            title: format!(
                "Fan-out: {messages} messages, one at a time, to a group of {members} with every member online"
            ),
            columns: [
                "path",
                "sockets",
                "messages",
                "last member p50",
                "last member p99",
                "last member max",
                "each delivery p50",
                "each delivery p99",
            ]
            .map(String::from)
            .to_vec(),
            rows: vec![row(&minute), row(&baseline)],
        }],
        notes: vec![
            format!(
                "The owner sends with sendMessage over HTTP; the time runs from just before the request until the last of the {members} sockets (owner included) has the MessageCreated. Registering the {members} accounts took {register_s:.1} s (argon2id each)."
            ),
            format!(
                "With {messages} messages, p99 is the slowest but one at most; treat it as an upper bound."
            ),
        ],
        data: json!({"minute": minute, "baseline": baseline, "register_seconds": register_s}),
    })
}

async fn read_minute(mut socket: Ws, tracker: Arc<Tracker>) {
    while let Some((id, at)) = ws::next_message_id(&mut socket).await {
        tracker.arrived(&id, at);
    }
}
