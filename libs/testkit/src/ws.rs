//! A graphql-transport-ws client as a real client uses it, for tests of `/ws` (realtime,
//! the gateway, all-in-one): connect with the subprotocol, `connection_init` with a bearer
//! token, subscribe to `events`, run mutations over the socket, and observe close codes.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A subscription selecting every field of every member of api.md's `Event` union.
pub const EVENTS_SUBSCRIPTION: &str = "subscription { events { __typename
  ... on MessageCreated { conversationId seq messageId senderId clientMessageId body replyToId createdAt }
  ... on MessageEdited { conversationId seq messageId body editedAt }
  ... on MessageDeleted { conversationId seq messageId deletedAt }
  ... on ReactionChanged { conversationId messageId emoji count userId added }
  ... on ReadMarkerUpdated { conversationId userId seq }
  ... on DeliveredMarkerUpdated { conversationId userId seq }
  ... on ConversationUpdated { conversationId title }
  ... on MemberAdded { conversationId userId role }
  ... on MemberRemoved { conversationId userId }
  ... on TypingStarted { conversationId userId }
  ... on PresenceChanged { userId online lastSeenAt }
  ... on SessionRevoked { reason } } }";

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code and reason.
    Code(u16, String),
    /// The connection ended without a close frame.
    Dropped,
}

/// One `/ws` connection.
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    pending: VecDeque<Value>,
    next_id: u64,
}

/// Default wait for something expected.
pub const WAIT: Duration = Duration::from_secs(10);

impl WsClient {
    /// Opens `ws://127.0.0.1:<port>/ws` with the `graphql-transport-ws` subprotocol; no init.
    pub async fn open(port: u16) -> Self {
        Self::open_url(&format!("ws://127.0.0.1:{port}/ws"), None).await
    }

    /// Opens `url` (`ws://host:port/path`); `recv_buffer` shrinks the socket's kernel receive
    /// buffer (slow-consumer tests).
    pub async fn open_url(url: &str, recv_buffer: Option<u32>) -> Self {
        let mut request = url.into_client_request().expect("a ws:// URL");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header value"),
        );
        let host = request.uri().host().expect("a host").to_owned();
        let port = request.uri().port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .expect("resolvable host")
            .next()
            .expect("an address");
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("a socket");
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        }
        let stream = socket.connect(addr).await.expect("the server accepts TCP");
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .expect("the WebSocket handshake succeeds");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("graphql-transport-ws"),
            "the server selects the graphql-transport-ws subprotocol"
        );
        Self {
            ws,
            pending: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Opens and initialises with `token`; panics unless `connection_ack` comes back.
    pub async fn connect(port: u16, token: &str) -> Self {
        let mut c = Self::open(port).await;
        c.init(token).await;
        c
    }

    /// Sends `connection_init` with `authorization: Bearer <token>` and waits for the ack.
    pub async fn init(&mut self, token: &str) {
        self.send_json(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}))
            .await;
        let ack = self.next_message(WAIT).await;
        assert_eq!(
            ack.as_ref().and_then(|m| m["type"].as_str()),
            Some("connection_ack"),
            "expected connection_ack, got {ack:?}"
        );
    }

    /// Sends a JSON protocol message.
    pub async fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string())).await;
    }

    /// Sends any frame (ignores a failure: the server may have closed already).
    pub async fn send(&mut self, message: Message) {
        let _ = self.ws.send(message).await;
    }

    /// Sends a raw, possibly invalid, text frame body as a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text.to_owned())).await;
    }

    /// The next protocol message (WebSocket ping/pong skipped), or `None` on timeout/close.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        self.read(wait).await
    }

    async fn read(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match m.ok()? {
                Message::Text(t) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sends JSON"));
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    self.pending
                        .push_back(json!({"type": "__closed", "code": code, "reason": reason}));
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// Subscribes to `events` with every field selected; returns the operation id.
    pub async fn subscribe_events(&mut self) -> String {
        self.subscribe(EVENTS_SUBSCRIPTION, json!({})).await
    }

    /// Sends a `subscribe` with a fresh id and returns it.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> String {
        self.next_id += 1;
        let id = format!("op{}", self.next_id);
        self.subscribe_with_id(&id, query, variables).await;
        id
    }

    /// Sends a `subscribe` with the given id.
    pub async fn subscribe_with_id(&mut self, id: &str, query: &str, variables: Value) {
        self.send_json(json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// Runs a query or mutation over the socket and returns its `next` payload (or the
    /// `error` payload as `{"errors": [...]}`), after its `complete`; other messages are kept
    /// for later reads.
    pub async fn execute(&mut self, query: &str, variables: Value) -> Value {
        let id = self.subscribe(query, variables).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut kept = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(m) = self.read(left).await else {
                break Value::Null;
            };
            if m["id"] == id.as_str() {
                match m["type"].as_str() {
                    Some("next") => break m["payload"].clone(),
                    Some("error") => break json!({"errors": m["payload"]}),
                    _ => continue,
                }
            }
            kept.push(m);
        };
        // A query or mutation completes right after its result; consume that too.
        if !result.is_null()
            && result
                .get("errors")
                .is_none_or(|_| result.get("data").is_some())
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            while let Some(m) = self.read(left.min(Duration::from_secs(2))).await {
                if m["id"] == id.as_str() && m["type"] == "complete" {
                    break;
                }
                kept.push(m);
            }
        }
        self.pending.extend(kept);
        result
    }

    /// The next event of any `events` subscription (`payload.data.events`), skipping other
    /// messages; `None` when nothing comes within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next_message(left).await?;
            if m["type"] == "__closed" {
                self.pending.push_front(m);
                return None;
            }
            let event = &m["payload"]["data"]["events"];
            if m["type"] == "next" && !event.is_null() {
                return Some(event.clone());
            }
        }
    }

    /// Events received within `wait` (stops early after `max`).
    pub async fn events_for(&mut self, wait: Duration, max: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }

    /// Reads until the socket closes (within `wait`), discarding messages.
    pub async fn closed(&mut self, wait: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(m) = self.pending.pop_front() {
                if m["type"] == "__closed" {
                    return Closed::Code(
                        m["code"].as_u64().unwrap_or(0) as u16,
                        m["reason"].as_str().unwrap_or("").to_owned(),
                    );
                }
                continue;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!("the socket did not close within {wait:?}");
            }
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => panic!("the socket did not close within {wait:?}"),
                Ok(None) | Ok(Some(Err(_))) => return Closed::Dropped,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame
                        .map(|f| Closed::Code(u16::from(f.code), f.reason.to_string()))
                        .unwrap_or(Closed::Code(1005, String::new()));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The close code (panics when the connection dropped without a close frame).
    pub async fn close_code(&mut self, wait: Duration) -> u16 {
        match self.closed(wait).await {
            Closed::Code(c, _) => c,
            Closed::Dropped => panic!("the connection dropped without a close frame"),
        }
    }

    /// Closes normally.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The underlying stream (raw frame tests).
    pub fn raw(&mut self) -> &mut WebSocketStream<TcpStream> {
        &mut self.ws
    }
}
