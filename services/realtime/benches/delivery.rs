//! Send-to-receive latency across two replicas and fan-out to a large group, on real
//! RabbitMQ and Redis: `cargo bench -p minute-realtime --bench delivery`.
//!
//! Two realtime replicas run in this process; the bench publishes `MessageCreated` exactly as
//! messaging does (to `minute.delivery` with `conv.<id>`), and real graphql-transport-ws
//! clients measure when each message arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use minute_bus::{DELIVERY_EXCHANGE, EVENTS_EXCHANGE, EventBus, Message};
use minute_events::{
    ConversationCreated, ConversationKind, Envelope, MemberRef, MemberRole, MessageCreated,
    conversation_delivery_key,
};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_realtime::{App, Settings};
use minute_testkit::WsClient;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn jwt() -> JwtSettings {
    JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), None).expect("jwt settings")
}

async fn infra(ns: &str, prefix: &str, id: &str, stop: &CancellationToken) -> Infra {
    Infra::connect(
        InfraOptions {
            amqp_url: Some(minute_testkit::amqp_url()),
            redis_url: Some(minute_testkit::redis_url()),
            bus_namespace: ns.to_owned(),
            redis_prefix: prefix.to_owned(),
            replica_id: id.to_owned(),
        },
        jwt(),
        stop.clone(),
    )
    .await
    .expect("infra (RabbitMQ and Redis must run)")
}

fn micros_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Bench {
    bus: Arc<dyn EventBus>,
    ports: Vec<u16>,
    keys: minute_kit::auth::JwtKeys,
}

impl Bench {
    async fn create(&self, conv: &str, members: &[String]) {
        let env = Envelope::new(ConversationCreated {
            conversation_id: conv.into(),
            kind: ConversationKind::Group,
            title: None,
            members: members
                .iter()
                .map(|u| MemberRef {
                    user_id: u.clone(),
                    role: MemberRole::Member,
                })
                .collect(),
            version: 1,
            created_at: chrono::Utc::now(),
        });
        self.bus
            .publish(EVENTS_EXCHANGE, Message::from_envelope(&env))
            .await
            .expect("publish");
    }

    async fn message(&self, conv: &str, seq: i64) {
        let env = Envelope::new(MessageCreated {
            conversation_id: conv.into(),
            message_id: format!("m{seq}"),
            seq,
            sender_id: "sender".into(),
            client_message_id: None,
            body: micros_now().to_string(),
            reply_to_id: None,
            created_at: chrono::Utc::now(),
        });
        let mut m = Message::from_envelope(&env);
        m.routing_key = conversation_delivery_key(conv);
        self.bus
            .publish(DELIVERY_EXCHANGE, m)
            .await
            .expect("publish");
    }

    async fn client(&self, replica: usize, user: &str) -> WsClient {
        let token = self.keys.issue(user, &format!("{user}-s"), None);
        let mut c = WsClient::connect(self.ports[replica], &token).await;
        c.subscribe(
            "subscription { events { ... on MessageCreated { seq body } } }",
            serde_json::json!({}),
        )
        .await;
        c.execute("query { serverTime }", serde_json::json!({}))
            .await;
        c
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let stop = CancellationToken::new();
    let ns = minute_testkit::unique_namespace();
    let prefix = format!("{}:", minute_testkit::unique("bench"));
    let mut ports = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..2 {
        let dir = std::env::temp_dir().join(minute_testkit::unique("realtime-bench"));
        let env = Env::from_pairs([
            ("PORT", "0".to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("MINUTE_DATA_DIR", dir.display().to_string()),
        ]);
        let infra = infra(&ns, &prefix, &format!("bench-r{i}"), &stop).await;
        let app = App::build(Settings::from_env(&env).expect("settings"), infra)
            .await
            .expect("app");
        ports.push(app.port());
        tokio::spawn(app.run_until_stopped(stop.clone()));
        dirs.push(dir);
    }
    let publisher = infra(&ns, &prefix, "bench-publisher", &stop).await;
    let bench = Arc::new(Bench {
        bus: publisher.bus.clone(),
        ports,
        keys: minute_kit::auth::JwtKeys::new(&jwt()),
    });
    latency(&bench).await;
    fan_out(&bench, 1000).await;
    stop.cancel();
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// 1,000 msg/s for 5 s from the publisher; Bob on replica 2 receives (Alice on replica 1
/// is in the conversation too, so both replicas carry it).
async fn latency(bench: &Arc<Bench>) {
    let conv = minute_testkit::unique("lat");
    let (alice, bob) = ("lat-alice".to_owned(), "lat-bob".to_owned());
    bench.create(&conv, &[alice.clone(), bob.clone()]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _a = bench.client(0, &alice).await;
    let mut b = bench.client(1, &bob).await;
    let total: i64 = 5_000;
    let sender = {
        let bench = bench.clone();
        let conv = conv.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut inflight = Vec::new();
            for seq in 1..=total {
                tick.tick().await;
                let bench = bench.clone();
                let conv = conv.clone();
                inflight.push(tokio::spawn(async move { bench.message(&conv, seq).await }));
            }
            for h in inflight {
                let _ = h.await;
            }
        })
    };
    let started = Instant::now();
    let mut lat = Vec::with_capacity(total as usize);
    while (lat.len() as i64) < total {
        let Some(e) = b.next_event(Duration::from_secs(10)).await else {
            break;
        };
        // Other events (presence) select no fields here.
        let Some(sent) = e["body"].as_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        lat.push((micros_now() - sent) as f64 / 1000.0);
    }
    let _ = sender.await;
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "send-to-receive across two replicas, {} msgs at ~{:.0} msg/s: received {}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total,
        lat.len() as f64 / elapsed,
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
}

/// One message to a group of `n` members, all online, half on each replica: time until the
/// last member has it.
async fn fan_out(bench: &Arc<Bench>, n: usize) {
    let conv = minute_testkit::unique("fan");
    let users: Vec<String> = (0..n).map(|i| format!("fan-{i}-{conv}")).collect();
    bench.create(&conv, &users).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut clients = Vec::with_capacity(n);
    for chunk in users.chunks(50) {
        let batch = chunk.iter().enumerate().map(|(i, u)| {
            let bench = bench.clone();
            let u = u.clone();
            async move { bench.client(i % 2, &u).await }
        });
        clients.extend(futures_util::future::join_all(batch).await);
    }
    let mut results = Vec::new();
    for round in 1..=5i64 {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for mut c in std::mem::take(&mut clients) {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(e) = c.next_event(Duration::from_secs(20)).await {
                    if e["seq"] == round {
                        let _ = tx.send(Instant::now());
                        break;
                    }
                }
                c
            }));
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = Instant::now();
        bench.message(&conv, round).await;
        let mut got = 0;
        let mut last = sent;
        while let Some(t) = rx.recv().await {
            got += 1;
            last = last.max(t);
        }
        for t in tasks {
            if let Ok(c) = t.await {
                clients.push(c);
            }
        }
        results.push((got, (last - sent).as_secs_f64() * 1000.0));
    }
    for (i, (got, ms)) in results.iter().enumerate() {
        println!(
            "fan-out round {}: {got}/{n} members received, last after {ms:.1} ms",
            i + 1
        );
    }
    let mut times: Vec<f64> = results.iter().map(|r| r.1).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "fan-out to a {n}-member group (two replicas): median time until the last member has it {:.1} ms",
        percentile(&times, 0.5)
    );
}
