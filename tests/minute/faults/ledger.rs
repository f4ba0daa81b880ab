//! The workload and its ledger (Jepsen's total-queue check): users on both realtime
//! replicas, direct and group conversations, a steady stream of `sendMessage` (retried with
//! the same `clientMessageId` as a real client does), every acknowledged send recorded;
//! at the end the history and what each member received are checked against the record.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::client::{Member, Seen, Via, gql};

/// One acknowledged send.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) id: String,
    pub(crate) conv: usize,
    pub(crate) seq: i64,
    pub(crate) first_try: Instant,
    pub(crate) acked: Instant,
}

pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) token: String,
}

pub(crate) struct Conv {
    pub(crate) id: String,
    pub(crate) members: Vec<usize>,
}

/// The users, conversations, clients and the record of a run.
pub(crate) struct World {
    pub(crate) api: String,
    pub(crate) http: reqwest::Client,
    pub(crate) users: Vec<User>,
    pub(crate) convs: Vec<Conv>,
    pub(crate) seen: Arc<Seen>,
    pub(crate) sent: Arc<Mutex<Vec<Sent>>>,
    /// Sends given up after retrying for a minute (never acknowledged: not in the ledger).
    pub(crate) unacked: Arc<Mutex<Vec<String>>>,
    stop_clients: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    stop_stream: Arc<AtomicBool>,
    stream: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) fault: Option<(Instant, Instant)>,
}

/// Registers `username` through the gateway (retried while the stack settles).
pub(crate) async fn register(http: &reqwest::Client, api: &str, username: &str) -> User {
    let d = retry(Duration::from_secs(30), || {
        gql(
            http,
            api,
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }",
            json!({"i": {"username": username, "password": "correct horse battery"}}),
        )
    })
    .await;
    User {
        id: d["register"]["user"]["id"].as_str().expect("id").to_owned(),
        token: d["register"]["accessToken"]
            .as_str()
            .expect("token")
            .to_owned(),
    }
}

/// Retries `f` for up to `within` (setup calls, history reads).
pub(crate) async fn retry<F, Fut>(within: Duration, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("still failing after {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

impl World {
    /// Six users (even ones on replica a, odd ones on b), two direct conversations and
    /// two groups, every user connected.
    pub(crate) async fn setup(gateway: u16, replicas: [u16; 2]) -> Self {
        let api = format!("http://127.0.0.1:{gateway}/graphql");
        let http = reqwest::Client::new();
        let mut users = Vec::new();
        let tag = &minute_testkit::unique("f")[2..10];
        for i in 0..6 {
            users.push(register(&http, &api, &format!("f{tag}u{i}")).await);
        }
        let mut world = Self {
            api,
            http,
            users,
            convs: Vec::new(),
            seen: Arc::default(),
            sent: Arc::default(),
            unacked: Arc::default(),
            stop_clients: Arc::default(),
            clients: Vec::new(),
            stop_stream: Arc::default(),
            stream: Vec::new(),
            fault: None,
        };
        world.direct(0, 1).await;
        world.direct(2, 3).await;
        world.group("all", &[0, 1, 2, 3, 4, 5]).await;
        world.group("some", &[1, 2, 4, 5]).await;
        // Let the membership replicas take the new conversations before sockets open.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..world.users.len() {
            let convs = world
                .convs
                .iter()
                .filter(|c| c.members.contains(&i))
                .map(|c| c.id.clone())
                .collect();
            let ports = if i % 2 == 0 {
                replicas
            } else {
                [replicas[1], replicas[0]]
            };
            let m = Member::new(
                i,
                world.users[i].token.clone(),
                ports,
                convs,
                world.api.clone(),
                world.http.clone(),
                world.seen.clone(),
                world.stop_clients.clone(),
            );
            world.clients.push(m.run().await);
        }
        world
    }

    async fn direct(&mut self, a: usize, b: usize) {
        let (token, peer) = (self.users[a].token.clone(), self.users[b].id.clone());
        let d = retry(Duration::from_secs(30), || {
            gql(
                &self.http,
                &self.api,
                Some(&token),
                "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
                json!({"u": peer}),
            )
        })
        .await;
        self.convs.push(Conv {
            id: d["createDirectConversation"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
            members: vec![a, b],
        });
    }

    async fn group(&mut self, title: &str, members: &[usize]) {
        let token = self.users[members[0]].token.clone();
        let ids: Vec<String> = members[1..]
            .iter()
            .map(|m| self.users[*m].id.clone())
            .collect();
        let d = retry(Duration::from_secs(30), || {
            gql(&self.http, &self.api, Some(&token),
                "mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id } }",
                json!({"t": title, "m": ids}))
        })
        .await;
        self.convs.push(Conv {
            id: d["createGroup"]["id"].as_str().expect("id").to_owned(),
            members: members.to_vec(),
        });
    }

    /// Starts one sender per conversation, `per_conv` sends a second each, senders taking
    /// turns among the members.
    pub(crate) fn start_stream(&mut self, per_conv: f64) {
        for (ci, conv) in self.convs.iter().enumerate() {
            let (http, api) = (self.http.clone(), self.api.clone());
            let (sent, unacked, stop) = (
                self.sent.clone(),
                self.unacked.clone(),
                self.stop_stream.clone(),
            );
            let conv_id = conv.id.clone();
            let senders: Vec<(usize, String)> = conv
                .members
                .iter()
                .map(|m| (*m, self.users[*m].token.clone()))
                .collect();
            let every = Duration::from_secs_f64(1.0 / per_conv);
            self.stream.push(tokio::spawn(async move {
                let mut n = 0usize;
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let (who, token) = &senders[n % senders.len()];
                    n += 1;
                    let cmid = format!("c{ci}-u{who}-{n}");
                    let first_try = Instant::now();
                    let deadline = first_try + Duration::from_secs(60);
                    loop {
                        let r = gql(&http, &api, Some(token),
                            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id seq } }",
                            json!({"i": {"conversationId": conv_id, "clientMessageId": cmid, "body": format!("m {cmid}")}})).await;
                        match r {
                            Ok(d) => {
                                let m = &d["sendMessage"];
                                sent.lock().expect("ledger").push(Sent {
                                    id: m["id"].as_str().expect("id").to_owned(),
                                    conv: ci,
                                    seq: m["seq"].as_i64().expect("seq"),
                                    first_try,
                                    acked: Instant::now(),
                                });
                                break;
                            }
                            Err(_) if Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                            Err(e) => {
                                unacked.lock().expect("unacked").push(format!("{cmid}: {e}"));
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }

    /// Sends acknowledged between `from` and `to`.
    pub(crate) fn acked_between(&self, from: Instant, to: Instant) -> usize {
        let sent = self.sent.lock().expect("ledger");
        sent.iter()
            .filter(|s| s.acked >= from && s.acked <= to)
            .count()
    }

    /// Waits until every member received every message recorded so far (up to `within`).
    pub(crate) async fn wait_delivered(&self, within: Duration) -> bool {
        let upto = self.sent.lock().expect("ledger").len();
        minute_testkit::eventually(within, || async { self.missing(upto).is_empty() }).await
    }

    /// (member, message) pairs of the first `upto` recorded messages not received yet.
    fn missing(&self, upto: usize) -> Vec<(usize, String)> {
        let sent = self.sent.lock().expect("ledger").clone();
        let first = self.seen.first.lock().expect("seen");
        let mut out = Vec::new();
        for s in sent.iter().take(upto) {
            for m in &self.convs[s.conv].members {
                if !first.contains_key(&(*m, s.id.clone())) {
                    out.push((*m, s.id.clone()));
                }
            }
        }
        out
    }

    /// Stops the senders (each finishes the send it is in), waits for the stragglers'
    /// deliveries, stops the clients and checks the ledger against the history.
    pub(crate) async fn finish(mut self, fault: &str, note: &str) -> Report {
        self.stop_stream.store(true, Ordering::Relaxed);
        for h in self.stream.drain(..) {
            let _ = h.await;
        }
        self.wait_delivered(Duration::from_secs(30)).await;
        self.stop_clients.store(true, Ordering::Relaxed);
        for h in self.clients.drain(..) {
            h.abort();
        }
        let sent = self.sent.lock().expect("ledger").clone();
        let mut report = Report {
            fault: fault.to_owned(),
            note: note.to_owned(),
            sent: sent.len(),
            unacked: self.unacked.lock().expect("unacked").len(),
            ..Report::default()
        };
        // The history of every conversation, in pages, as one member reads it.
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut by_cmid: HashMap<String, usize> = HashMap::new();
        let mut history_seq: HashMap<String, i64> = HashMap::new();
        for conv in &self.convs {
            let token = self.users[conv.members[0]].token.clone();
            let mut after = 0i64;
            let mut seqs = Vec::new();
            loop {
                let d = retry(Duration::from_secs(30), || {
                    gql(&self.http, &self.api, Some(&token),
                        "query($c: ID!, $a: Int!) { conversation(id: $c) { lastSeq messages(after: $a, limit: 200) { nodes { id seq clientMessageId } hasMore } } }",
                        json!({"c": conv.id, "a": after}))
                })
                .await;
                let page = &d["conversation"]["messages"];
                let nodes = page["nodes"].as_array().cloned().unwrap_or_default();
                for n in &nodes {
                    let id = n["id"].as_str().unwrap_or_default().to_owned();
                    let seq = n["seq"].as_i64().unwrap_or_default();
                    *by_id.entry(id.clone()).or_default() += 1;
                    *by_cmid
                        .entry(n["clientMessageId"].as_str().unwrap_or_default().to_owned())
                        .or_default() += 1;
                    history_seq.insert(id, seq);
                    seqs.push(seq);
                    after = after.max(seq);
                }
                if page["hasMore"] != true || nodes.is_empty() {
                    let last = d["conversation"]["lastSeq"].as_i64().unwrap_or(after);
                    let held: HashSet<i64> = seqs.iter().copied().collect();
                    report.gaps += (1..=last.max(after)).filter(|s| !held.contains(s)).count();
                    report.duplicated += seqs.len() - held.len();
                    report.history += seqs.len();
                    break;
                }
            }
        }
        report.duplicated += by_id
            .values()
            .filter(|n| **n > 1)
            .map(|n| n - 1)
            .sum::<usize>();
        report.duplicated += by_cmid
            .values()
            .filter(|n| **n > 1)
            .map(|n| n - 1)
            .sum::<usize>();
        for s in &sent {
            match history_seq.get(&s.id) {
                Some(seq) if *seq == s.seq => {}
                _ => report.lost += 1,
            }
        }
        let first = self.seen.first.lock().expect("seen");
        let window = self.fault;
        for s in &sent {
            for m in &self.convs[s.conv].members {
                match first.get(&(*m, s.id.clone())) {
                    None => report.never_delivered += 1,
                    Some((at, via)) => {
                        match via {
                            Via::Live => report.live += 1,
                            Via::CatchUp => report.caught_up += 1,
                        }
                        let delay = at.saturating_duration_since(s.first_try);
                        report.max_delay = report.max_delay.max(delay);
                        if let Some((a, b)) = window
                            && s.first_try >= a - Duration::from_secs(1)
                            && s.first_try <= b
                        {
                            report.max_delay_fault = report.max_delay_fault.max(delay);
                        }
                    }
                }
            }
        }
        report.reconnects = self.seen.reconnects.load(Ordering::Relaxed);
        report
    }
}

/// The numbers of one fault run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) fault: String,
    pub(crate) note: String,
    pub(crate) sent: usize,
    pub(crate) unacked: usize,
    pub(crate) history: usize,
    pub(crate) lost: usize,
    pub(crate) duplicated: usize,
    pub(crate) gaps: usize,
    pub(crate) never_delivered: usize,
    pub(crate) live: usize,
    pub(crate) caught_up: usize,
    pub(crate) reconnects: u64,
    pub(crate) max_delay: Duration,
    pub(crate) max_delay_fault: Duration,
}

impl Report {
    pub(crate) fn header() -> &'static str {
        "Fault injection (tests/minute/faults.rs). Sent = sendMessage calls acknowledged (the ledger); \
         lost = acknowledged but absent from the history or at another seq; duplicated = a message \
         twice in the history (by id, seq or clientMessageId); never delivered = (member, message) \
         pairs a connected member never got, live or by catching up; delay = first send attempt to \
         a member's first receipt, for messages first attempted during the fault.\n\n\
         | fault | sent (acked) | lost | duplicated | seq gaps | never delivered | deliveries live / caught up | max delivery delay during the fault | notes |\n|---|---|---|---|---|---|---|---|---|"
    }

    pub(crate) fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} | {:.1} s | {}{}{} |",
            self.fault,
            self.sent,
            self.lost,
            self.duplicated,
            self.gaps,
            self.never_delivered,
            self.live,
            self.caught_up,
            self.max_delay_fault.as_secs_f64(),
            self.note,
            if self.unacked > 0 {
                format!(
                    "; {} sends never acknowledged (not in the ledger)",
                    self.unacked
                )
            } else {
                String::new()
            },
            format_args!("; {} reconnects", self.reconnects),
        )
    }

    /// Prints the line, appends it to `target/faults/report.md`, and asserts the ledger.
    pub(crate) fn check(&self) {
        let line = self.line();
        println!("{line}");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/faults/report.md");
        let _ = std::fs::create_dir_all(path.parent().expect("dir"));
        let fresh = !path.exists();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            use std::io::Write;
            if fresh {
                let _ = writeln!(f, "{}", Self::header());
            }
            let _ = writeln!(f, "{line}");
        }
        assert!(self.sent >= 100, "a steady stream ran: {line}");
        assert_eq!(
            (self.lost, self.duplicated, self.gaps, self.never_delivered),
            (0, 0, 0, 0),
            "lost, duplicated, seq gaps, never delivered: {line}"
        );
    }
}
