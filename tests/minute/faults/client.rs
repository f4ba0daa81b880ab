//! Clients as real clients behave: GraphQL over HTTP through the gateway that returns an
//! error instead of panicking while a part is down, and a `/ws` client that keeps itself
//! connected (protocol pings, fails over to the other replica, re-subscribes) and catches
//! up with `messages(after: <last contiguous seq>)` after a reconnect or a seq gap.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// `POST /graphql`: `data`, or the errors / transport failure as text.
pub(crate) async fn gql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let mut req = http
        .post(url)
        .timeout(Duration::from_secs(10))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    let body: Value =
        serde_json::from_str(&text).map_err(|_| format!("HTTP {status}: {text:.200}"))?;
    match body.get("errors") {
        Some(e) if e.as_array().is_some_and(|a| !a.is_empty()) => Err(e.to_string()),
        _ => Ok(body["data"].clone()),
    }
}

/// How a member first got a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Live,
    CatchUp,
}

/// What every client saw, shared with the ledger.
#[derive(Default)]
pub(crate) struct Seen {
    /// (user index, message id) -> first time and how.
    pub(crate) first: Mutex<HashMap<(usize, String), (Instant, Via)>>,
    /// Non-message events: (user index, event, when).
    pub(crate) other: Mutex<Vec<(usize, Value, Instant)>>,
    pub(crate) reconnects: AtomicU64,
    pub(crate) catch_ups: AtomicU64,
}

/// One user's `/ws` client.
pub(crate) struct Member {
    pub(crate) index: usize,
    pub(crate) token: String,
    /// Replica ports, the preferred one first.
    pub(crate) ports: [u16; 2],
    /// Conversations this member is in.
    pub(crate) convs: Vec<String>,
    pub(crate) api: String,
    pub(crate) http: reqwest::Client,
    pub(crate) seen: Arc<Seen>,
    pub(crate) stop: Arc<AtomicBool>,
    state: Mutex<Held>,
}

/// What a member holds per conversation.
#[derive(Default)]
struct Held {
    /// Seqs received (live or caught up).
    seqs: HashMap<String, BTreeSet<i64>>,
    /// Conversations with a catch-up running.
    catching: HashSet<String>,
}

const SUBSCRIPTION: &str = "subscription { events { __typename
  ... on MessageCreated { conversationId seq messageId }
  ... on TypingStarted { conversationId userId }
  ... on PresenceChanged { userId online } } }";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws`, initialises and subscribes to `events` within 3 s.
pub(crate) async fn open(port: u16, token: &str) -> Result<Ws, String> {
    let attempt = async {
        let mut req = format!("ws://127.0.0.1:{port}/ws")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| e.to_string())?;
        let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
        ws.send(Frame::text(init.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match ws.next().await {
                Some(Ok(Frame::Text(t))) if t.contains("connection_ack") => break,
                Some(Ok(Frame::Text(t))) => return Err(format!("before ack: {t}")),
                Some(Ok(_)) => continue,
                other => return Err(format!("closed before ack: {other:?}")),
            }
        }
        let sub = json!({"id": "events", "type": "subscribe", "payload": {"query": SUBSCRIPTION}});
        ws.send(Frame::text(sub.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(ws)
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| "no connection_ack within 3 s".to_owned())?
}

/// Runs `query` over an open socket and returns the `next` payload (or the error).
pub(crate) async fn execute(
    ws: &mut Ws,
    id: &str,
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let msg =
        json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}});
    ws.send(Frame::text(msg.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?;
        let Some(Ok(Frame::Text(t))) = f else {
            if let Some(Ok(_)) = f {
                continue;
            }
            return Err(format!("socket ended: {f:?}"));
        };
        let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
        if v["id"] == id {
            return match v["type"].as_str() {
                Some("next") => Ok(v["payload"].clone()),
                _ => Err(v.to_string()),
            };
        }
    }
}

/// Reads and drops whatever arrives until `until` (keeps a socket's queue moving).
pub(crate) async fn drain(ws: &mut Ws, until: Instant) {
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, ws.next()).await {}
}

/// The first event of `events` on `ws` for which `pred` holds, within `wait`.
pub(crate) async fn wait_event(
    ws: &mut Ws,
    wait: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let f = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        if let Ok(Frame::Text(t)) = f {
            let v: Value = serde_json::from_str(t.as_str()).ok()?;
            let e = &v["payload"]["data"]["events"];
            if v["type"] == "next" && pred(e) {
                return Some(e.clone());
            }
        } else if f.is_err() {
            return None;
        }
    }
}

impl Member {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        token: String,
        ports: [u16; 2],
        convs: Vec<String>,
        api: String,
        http: reqwest::Client,
        seen: Arc<Seen>,
        stop: Arc<AtomicBool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            index,
            token,
            ports,
            convs,
            api,
            http,
            seen,
            stop,
            state: Mutex::default(),
        })
    }

    /// Connects (failing over between the replicas) and reads until `stop`; returns once
    /// the first connection is subscribed.
    pub(crate) async fn run(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut attempt = 0usize;
            while !me.stop.load(Ordering::Relaxed) {
                let port = me.ports[attempt % 2];
                match open(port, &me.token).await {
                    Ok(ws) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        } else {
                            me.seen.reconnects.fetch_add(1, Ordering::Relaxed);
                            for c in &me.convs {
                                me.clone().catch_up(c.clone());
                            }
                        }
                        me.read(ws).await;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
                attempt += 1;
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(20), ready_rx).await;
        task
    }

    /// Reads events until the socket dies (no frame for 4 s despite pings) or `stop`.
    async fn read(self: &Arc<Self>, mut ws: Ws) {
        let mut last_rx = Instant::now();
        let mut ping = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                f = ws.next() => match f {
                    Some(Ok(Frame::Text(t))) => {
                        last_rx = Instant::now();
                        if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                            if v["type"] == "next" {
                                self.event(&v["payload"]["data"]["events"]);
                            } else if v["type"] == "error" || v["type"] == "complete" {
                                return;
                            }
                        }
                    }
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => last_rx = Instant::now(),
                },
                _ = ping.tick() => {
                    if self.stop.load(Ordering::Relaxed) || last_rx.elapsed() > Duration::from_secs(4) {
                        return;
                    }
                    if ws.send(Frame::text(r#"{"type":"ping"}"#)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn event(self: &Arc<Self>, e: &Value) {
        if e["__typename"] != "MessageCreated" {
            self.seen
                .other
                .lock()
                .expect("seen")
                .push((self.index, e.clone(), Instant::now()));
            return;
        }
        let (Some(conv), Some(seq), Some(id)) = (
            e["conversationId"].as_str(),
            e["seq"].as_i64(),
            e["messageId"].as_str(),
        ) else {
            return;
        };
        self.mark(id, Via::Live);
        let gap = {
            let mut st = self.state.lock().expect("state");
            let seqs = st.seqs.entry(conv.to_owned()).or_default();
            seqs.insert(seq);
            let gap = seq > 1 && !seqs.contains(&(seq - 1));
            gap && !st.catching.contains(conv)
        };
        if gap {
            self.clone().catch_up(conv.to_owned());
        }
    }

    fn mark(&self, id: &str, via: Via) {
        self.seen
            .first
            .lock()
            .expect("seen")
            .entry((self.index, id.to_owned()))
            .or_insert((Instant::now(), via));
    }

    /// The highest seq up to which this member holds every message of `conv`.
    fn contiguous(&self, conv: &str) -> i64 {
        let st = self.state.lock().expect("state");
        let mut n = 0;
        if let Some(seqs) = st.seqs.get(conv) {
            for s in seqs {
                if *s == n + 1 {
                    n = *s;
                } else if *s > n + 1 {
                    break;
                }
            }
        }
        n
    }

    /// Fetches `messages(after: <contiguous>)` until nothing more, retrying while the API is
    /// down; at most one per conversation at a time.
    fn catch_up(self: Arc<Self>, conv: String) {
        {
            let mut st = self.state.lock().expect("state");
            if !st.catching.insert(conv.clone()) {
                return;
            }
        }
        self.seen.catch_ups.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let q = "query($c: ID!, $a: Int!) { conversation(id: $c) { messages(after: $a, limit: 200) { nodes { id seq } hasMore } } }";
            let mut after = self.contiguous(&conv);
            loop {
                match gql(
                    &self.http,
                    &self.api,
                    Some(&self.token),
                    q,
                    json!({"c": conv, "a": after}),
                )
                .await
                {
                    Ok(d) => {
                        let page = &d["conversation"]["messages"];
                        let nodes = page["nodes"].as_array().cloned().unwrap_or_default();
                        {
                            let mut st = self.state.lock().expect("state");
                            let seqs = st.seqs.entry(conv.clone()).or_default();
                            for n in &nodes {
                                if let Some(s) = n["seq"].as_i64() {
                                    seqs.insert(s);
                                }
                            }
                        }
                        for n in &nodes {
                            if let Some(id) = n["id"].as_str() {
                                self.mark(id, Via::CatchUp);
                            }
                        }
                        if page["hasMore"] != true || nodes.is_empty() {
                            break;
                        }
                        after = nodes
                            .iter()
                            .filter_map(|n| n["seq"].as_i64())
                            .fold(after, i64::max);
                    }
                    Err(_) => {
                        if self.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
            self.state.lock().expect("state").catching.remove(&conv);
        });
    }
}
