//! The `/ws` client side of `graphql-transport-ws` (api.md "Realtime"), kept small so
//! the generator can hold tens of thousands of sockets.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub(crate) type Ws = WebSocketStream<TcpStream>;

/// How long a handshake, ack or round trip may take before the scenario gives up.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The subscription the delivery and fan-out scenarios listen with.
pub(crate) const MESSAGES: &str = "subscription { events { __typename ... on MessageCreated { conversationId seq clientMessageId } } }";

/// Every member of api.md's `Event` union, as a full client subscribes (idle sockets).
pub(crate) const EVENTS: &str = "subscription { events { __typename
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

fn config() -> WebSocketConfig {
    // Small buffers: the generator holds up to ~20,000 sockets in one process.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
}

/// Opens `url` (`ws://127.0.0.1:<port>/ws`) asking for the `graphql-transport-ws`
/// subprotocol.
pub(crate) async fn open(url: &str) -> anyhow::Result<Ws> {
    let mut request = url
        .into_client_request()
        .with_context(|| format!("not a ws:// URL: {url}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header value"),
    );
    let authority = request
        .uri()
        .authority()
        .context("URL without host:port")?
        .to_string();
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(&authority))
        .await
        .with_context(|| format!("connect {authority}: timed out"))?
        .with_context(|| format!("connect {authority}"))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async_with_config(request, stream, Some(config())),
    )
    .await
    .context("WebSocket handshake: timed out")?
    .context("WebSocket handshake")?;
    Ok(ws)
}

/// Opens, sends `connection_init` with the bearer token and waits for `connection_ack`.
pub(crate) async fn connect(url: &str, token: &str) -> anyhow::Result<Ws> {
    let mut ws = open(url).await?;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}),
    )
    .await?;
    let ack = next_json(&mut ws, WAIT).await?;
    if ack["type"] != "connection_ack" {
        bail!("expected connection_ack, got {ack}");
    }
    Ok(ws)
}

pub(crate) async fn send(ws: &mut Ws, v: Value) -> anyhow::Result<()> {
    ws.send(Message::text(v.to_string()))
        .await
        .context("WebSocket send")
}

/// Subscribes with id `id`.
pub(crate) async fn subscribe(ws: &mut Ws, id: &str, query: &str) -> anyhow::Result<()> {
    send(
        ws,
        json!({"id": id, "type": "subscribe", "payload": {"query": query}}),
    )
    .await
}

/// Runs `query { serverTime }` over the socket and waits for its `complete`: the server has
/// handled every frame sent before (so an earlier `subscribe` is active).
pub(crate) async fn sync(ws: &mut Ws) -> anyhow::Result<()> {
    subscribe(ws, "sync", "query { serverTime }").await?;
    loop {
        let m = next_json(ws, WAIT).await?;
        if m["id"] == "sync" {
            match m["type"].as_str() {
                Some("complete") => return Ok(()),
                Some("error") => bail!("serverTime failed: {m}"),
                _ => {}
            }
        }
    }
}

/// The next JSON text frame (control frames skipped); an error on close or timeout.
pub(crate) async fn next_json(ws: &mut Ws, wait: Duration) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .context("no frame in time")?
            .context("socket closed")?
            .context("socket error")?;
        match m {
            Message::Text(t) => {
                return serde_json::from_str(t.as_str()).context("frame is not JSON");
            }
            Message::Close(f) => bail!("socket closed by the server: {f:?}"),
            _ => {}
        }
    }
}

/// The `clientMessageId` of the next event on a socket subscribed with [`MESSAGES`], and
/// when its frame arrived (taken before parsing); other frames are skipped. `None` when
/// the socket ends.
pub(crate) async fn next_message_id(ws: &mut Ws) -> Option<(String, tokio::time::Instant)> {
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let at = tokio::time::Instant::now();
        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        if let Some(id) = v
            .pointer("/payload/data/events/clientMessageId")
            .and_then(Value::as_str)
        {
            return Some((id.to_owned(), at));
        }
    }
    None
}
