//! `GET /ws`: one task per socket speaking graphql-transport-ws
//! (<https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>).
//!
//! The task owns the socket and everything about it: the `connection_init` deadline, the
//! client's operations (each an async-graphql stream), the bounded queue the hub fills
//! (full -> 4050), the frame budget and the ping clock. Writes can be interrupted by the hub
//! (slow consumer, revoked session), so one stuck client never holds anything else up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{Request, Response, Variables};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response as HttpResponse;
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, StreamExt};
use minute_kit::auth::{Authenticator, Viewer};
use minute_kit::graphql::Caller;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::types::{Event, Outgoing, SessionRevoked};
use crate::api::{EventFeed, RealtimeSchema, SocketCtx};
use crate::config::Limits;
use crate::domain::projection::Projection;
use crate::domain::protocol::{
    ClientMessage, Close, SUBPROTOCOL, SubscribePayload, authorization, codes,
};
use crate::domain::rate::FrameBudget;
use crate::hub::{Hub, Kill, SocketHandle};

/// How long a close frame may take to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every socket task shares.
pub(crate) struct WsState {
    pub(crate) hub: Arc<Hub>,
    pub(crate) schema: RealtimeSchema,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) limits: Limits,
    pub(crate) stop: CancellationToken,
    /// Validated `events` subscriptions by (document, operation, variables), shared by
    /// every socket that sends the same one.
    pub(crate) projections: Mutex<Projections>,
}

/// (document, operation name, variables) -> projection.
pub(crate) type Projections = HashMap<(String, Option<String>, String), Arc<Projection>>;

/// Distinct subscription documents remembered (clients send a handful).
const MAX_PROJECTIONS: usize = 1024;

/// Upgrades with small buffers: most sockets are idle, and tungstenite's default read
/// buffer alone is 128 KiB per socket.
pub(crate) async fn handler(
    State(st): State<Arc<WsState>>,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    let max = st.limits.max_frame_bytes;
    upgrade
        .protocols([SUBPROTOCOL])
        .read_buffer_size(st.limits.read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * max)
        .max_frame_size(max)
        .max_message_size(max)
        .on_upgrade(move |ws| serve(ws, st))
}

async fn serve(mut ws: WebSocket, st: Arc<WsState>) {
    // Rare, large futures are boxed so they do not enlarge every idle socket's task.
    let viewer = match Box::pin(init(&mut ws, &st)).await {
        Ok(v) => v,
        Err(close) => return Box::pin(finish(ws, close)).await,
    };
    let (handle, rx) = match Box::pin(st.hub.connect(&viewer)).await {
        Ok(x) => x,
        Err(close) => return Box::pin(finish(ws, Some(close))).await,
    };
    metrics::gauge!("minute_realtime_ws_connections").increment(1.0);
    let close = if ws
        .send(Message::text(r#"{"type":"connection_ack"}"#))
        .await
        .is_ok()
    {
        let mut session = Session::new(&st, viewer, handle.clone());
        session.run(&mut ws, rx).await.err().flatten()
    } else {
        None
    };
    metrics::gauge!("minute_realtime_ws_connections").decrement(1.0);
    Box::pin(st.hub.disconnect(&handle)).await;
    Box::pin(finish(ws, close)).await;
}

/// Sends the close frame (if any) and gives the peer a moment to answer it, so unread
/// bytes on our side do not turn the close into a reset that loses the frame.
async fn finish(mut ws: WebSocket, close: Option<Close>) {
    let Some(close) = close else {
        return;
    };
    let frame = CloseFrame {
        code: close.code,
        reason: close.reason.into(),
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Close(Some(frame))))
        .await
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    for _ in 0..64 {
        match tokio::time::timeout_at(deadline, ws.recv()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => return,
            Ok(Some(_)) => {}
        }
    }
}

/// A read error as the close the client gets (`None`: the peer is gone).
fn read_error(e: axum::Error) -> Option<Close> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = e.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => Some(Close::new(codes::TOO_BIG, "frame larger than 64 KiB")),
        Some(WsError::Utf8(_)) => Some(Close::new(
            codes::INVALID_PAYLOAD,
            "text frame is not UTF-8",
        )),
        Some(WsError::Protocol(p)) => Some(Close::new(1002, p.to_string())),
        _ => None,
    }
}

/// Waits for `connection_init` and authenticates it.
async fn init(ws: &mut WebSocket, st: &WsState) -> Result<Viewer, Option<Close>> {
    let deadline = Instant::now() + st.limits.init_timeout;
    let mut budget = FrameBudget::new(st.limits.frames_per_sec);
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.recv()).await {
            Err(_) => {
                return Err(Some(Close::new(
                    codes::INIT_TIMEOUT,
                    "Connection initialisation timeout",
                )));
            }
            Ok(None) => return Err(None),
            Ok(Some(Err(e))) => return Err(read_error(e)),
            Ok(Some(Ok(m))) => m,
        };
        if !budget.spend() {
            metrics::counter!("minute_rate_limit_hits_total", "limit" => "ws_frames").increment(1);
            return Err(Some(Close::new(codes::POLICY, "too many frames")));
        }
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                return Err(Some(Close::bad_message("binary frames are not supported")));
            }
            Message::Close(_) => return Err(None),
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match ClientMessage::parse(text.as_str()).map_err(Some)? {
            ClientMessage::ConnectionInit(payload) => {
                let forbidden = || Some(Close::new(codes::FORBIDDEN, "Forbidden"));
                let header = authorization(&payload).ok_or_else(forbidden)?;
                return st.auth.header(header).await.map_err(|_| forbidden());
            }
            ClientMessage::Ping(_) => {
                let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            ClientMessage::Subscribe { .. } => {
                return Err(Some(Close::new(codes::UNAUTHORIZED, "Unauthorized")));
            }
            ClientMessage::Pong | ClientMessage::Complete { .. } => {}
        }
    }
}

/// One client operation.
enum Operation {
    /// Run by async-graphql (queries, mutations, and subscriptions it must execute).
    Executed {
        /// The `events` feed (sends fail harmlessly for non-subscriptions).
        feed: mpsc::UnboundedSender<Arc<Outgoing>>,
        /// Dropping it ends the operation's stream.
        _cancel: oneshot::Sender<()>,
        first: bool,
    },
    /// An `events` subscription rendered by its shared projection.
    Projected(Arc<Projection>),
}

enum Output {
    Next(String, Box<Response>),
    Done(String),
}

/// Why the loop stopped: `None` = peer gone (nothing to send), else the close to send.
type Stop = Option<Close>;

struct Session<'a> {
    st: &'a WsState,
    viewer: Viewer,
    handle: Arc<SocketHandle>,
    ops: HashMap<String, Operation>,
    /// Executed operations' streams; created on first use (most sockets only have a
    /// projected subscription, and an empty `SelectAll` still allocates).
    outputs: Option<SelectAll<BoxStream<'static, Output>>>,
    budget: FrameBudget,
    awaiting_pong: bool,
}

impl<'a> Session<'a> {
    fn new(st: &'a WsState, viewer: Viewer, handle: Arc<SocketHandle>) -> Self {
        Self {
            st,
            viewer,
            handle,
            ops: HashMap::new(),
            outputs: None,
            budget: FrameBudget::new(st.limits.frames_per_sec),
            awaiting_pong: false,
        }
    }

    async fn run(
        &mut self,
        ws: &mut WebSocket,
        mut rx: mpsc::Receiver<Arc<Outgoing>>,
    ) -> Result<std::convert::Infallible, Stop> {
        let period = self.st.limits.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        let handle = self.handle.clone();
        loop {
            // Biased: finished outputs go out before more events are taken from the queue,
            // so per-operation feeds stay near-empty and back-pressure lands on the bounded
            // queue (-> 4050) instead of growing memory.
            tokio::select! {
                biased;
                kill = handle.killed() => return Err(Box::pin(self.on_kill(ws, kill)).await),
                _ = self.st.stop.cancelled() => {
                    return Err(Some(Close::new(codes::GOING_AWAY, "server shutting down")));
                }
                out = next_output(&mut self.outputs), if has_outputs(&self.outputs) => {
                    if let Some(out) = out {
                        Box::pin(self.send_output(ws, out)).await?;
                    }
                }
                event = rx.recv() => match event {
                    Some(e) => Box::pin(self.deliver(ws, &e)).await?,
                    None => return Err(None),
                },
                msg = ws.recv() => Box::pin(self.on_frame(ws, msg)).await?,
                _ = ping.tick() => {
                    if self.awaiting_pong {
                        tracing::debug!("peer missed a pong; dropping it");
                        return Err(None);
                    }
                    self.awaiting_pong = true;
                    Box::pin(self.send(ws, Message::Ping(Default::default()))).await?;
                }
            }
        }
    }

    /// Sends one frame unless the hub kills the socket meanwhile; a peer that accepts
    /// nothing for two ping periods is dead.
    async fn send(&mut self, ws: &mut WebSocket, msg: Message) -> Result<(), Stop> {
        let handle = self.handle.clone();
        let dead_after = self.st.limits.ping_interval * 2;
        tokio::select! {
            r = tokio::time::timeout(dead_after, ws.send(msg)) => match r {
                Ok(Ok(())) => Ok(()),
                _ => Err(None),
            },
            kill = handle.killed() => Err(Box::pin(self.on_kill(ws, kill)).await),
        }
    }

    async fn send_text(&mut self, ws: &mut WebSocket, text: String) -> Result<(), Stop> {
        self.send(ws, Message::text(text)).await
    }

    /// Hands an event to every operation: projections are rendered and sent here,
    /// executed subscriptions get it on their feed.
    async fn deliver(&mut self, ws: &mut WebSocket, event: &Arc<Outgoing>) -> Result<(), Stop> {
        match event.write_span() {
            // Only traced events pay for a span (an exporter is on and the event carried a
            // trace context): the socket write is the last hop of the message's trace.
            Some(span) => {
                use tracing::Instrument;
                Box::pin(self.deliver_untraced(ws, event).instrument(span)).await
            }
            None => self.deliver_untraced(ws, event).await,
        }
    }

    async fn deliver_untraced(
        &mut self,
        ws: &mut WebSocket,
        event: &Arc<Outgoing>,
    ) -> Result<(), Stop> {
        let mut rendered = Vec::new();
        for (id, op) in &self.ops {
            match op {
                Operation::Executed { feed, .. } => {
                    let _ = feed.send(event.clone());
                }
                Operation::Projected(p) => {
                    let payload = p.render(event.typename, &event.fields);
                    rendered.push(format!(
                        r#"{{"id":{},"type":"next","payload":{payload}}}"#,
                        json_string(id)
                    ));
                }
            }
        }
        let pushed = rendered.len();
        for text in rendered {
            self.send_text(ws, text).await?;
        }
        event.pushed(pushed);
        Ok(())
    }

    async fn on_kill(&mut self, ws: &mut WebSocket, kill: Kill) -> Stop {
        match kill {
            Kill::Close(c) => Some(c),
            Kill::Revoked(reason) => {
                let event = Outgoing::new(Event::SessionRevoked(SessionRevoked { reason }));
                let _ = self.deliver_now(ws, &Arc::new(event)).await;
                self.drain(ws).await;
                Some(Close::new(codes::UNAUTHORIZED, "session revoked"))
            }
        }
    }

    /// [`Self::deliver`] without being interruptible by the kill that caused it.
    async fn deliver_now(&mut self, ws: &mut WebSocket, event: &Arc<Outgoing>) -> Result<(), ()> {
        let mut rendered = Vec::new();
        for (id, op) in &self.ops {
            match op {
                Operation::Executed { feed, .. } => {
                    let _ = feed.send(event.clone());
                }
                Operation::Projected(p) => rendered.push(format!(
                    r#"{{"id":{},"type":"next","payload":{}}}"#,
                    json_string(id),
                    p.render(event.typename, &event.fields)
                )),
            }
        }
        for text in rendered {
            tokio::time::timeout(Duration::from_millis(500), ws.send(Message::text(text)))
                .await
                .map_err(|_| ())?
                .map_err(|_| ())?;
        }
        Ok(())
    }

    /// Sends what the operations still produce (bounded in time).
    async fn drain(&mut self, ws: &mut WebSocket) {
        let deadline = Instant::now() + Duration::from_millis(500);
        while has_outputs(&self.outputs) {
            let next = tokio::time::timeout_at(deadline, next_output(&mut self.outputs)).await;
            let Ok(Some(out)) = next else { return };
            let Some(text) = self.render(out) else {
                continue;
            };
            if tokio::time::timeout_at(deadline, ws.send(Message::text(text)))
                .await
                .map_or(true, |r| r.is_err())
            {
                return;
            }
            // Stop once the streams have nothing ready.
            if next_output(&mut self.outputs).now_or_never().is_none() {
                return;
            }
        }
    }

    /// The protocol message for an output, or `None` when nothing is sent.
    fn render(&mut self, out: Output) -> Option<String> {
        match out {
            Output::Next(id, resp) => {
                let Operation::Executed { first, .. } = self.ops.get_mut(&id)? else {
                    return None;
                };
                let first = std::mem::replace(first, false);
                if first && resp.is_err() && resp.data == async_graphql::Value::Null {
                    // A refused operation (validation, auth) is an `error` and ends it.
                    self.ops.remove(&id);
                    let errors = serde_json::to_string(&resp.errors).ok()?;
                    return Some(format!(
                        r#"{{"id":{},"type":"error","payload":{errors}}}"#,
                        json_string(&id)
                    ));
                }
                let payload = serde_json::to_string(&resp).ok()?;
                Some(format!(
                    r#"{{"id":{},"type":"next","payload":{payload}}}"#,
                    json_string(&id)
                ))
            }
            Output::Done(id) => {
                self.ops.remove(&id)?;
                Some(format!(
                    r#"{{"id":{},"type":"complete"}}"#,
                    json_string(&id)
                ))
            }
        }
    }

    async fn send_output(&mut self, ws: &mut WebSocket, out: Output) -> Result<(), Stop> {
        match self.render(out) {
            Some(text) => self.send_text(ws, text).await,
            None => Ok(()),
        }
    }

    async fn on_frame(
        &mut self,
        ws: &mut WebSocket,
        msg: Option<Result<Message, axum::Error>>,
    ) -> Result<(), Stop> {
        let msg = match msg {
            None => return Err(None),
            Some(Err(e)) => return Err(read_error(e)),
            Some(Ok(m)) => m,
        };
        self.awaiting_pong = false;
        if !self.budget.spend() {
            metrics::counter!("minute_rate_limit_hits_total", "limit" => "ws_frames").increment(1);
            return Err(Some(Close::new(codes::POLICY, "too many frames")));
        }
        match msg {
            Message::Text(t) => self.on_text(ws, t.as_str()).await,
            Message::Binary(_) => Err(Some(Close::bad_message("binary frames are not supported"))),
            Message::Close(_) => Err(None),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    async fn on_text(&mut self, ws: &mut WebSocket, text: &str) -> Result<(), Stop> {
        match ClientMessage::parse(text).map_err(Some)? {
            ClientMessage::ConnectionInit(_) => Err(Some(Close::new(
                codes::TOO_MANY_INITS,
                "Too many initialisation requests",
            ))),
            ClientMessage::Ping(_) => self.send_text(ws, r#"{"type":"pong"}"#.into()).await,
            ClientMessage::Pong => Ok(()),
            ClientMessage::Complete { id } => {
                self.ops.remove(&id);
                Ok(())
            }
            ClientMessage::Subscribe { id, payload } => {
                if self.ops.contains_key(&id) {
                    return Err(Some(Close::new(
                        codes::DUPLICATE_ID,
                        format!("Subscriber for {id} already exists"),
                    )));
                }
                match self.start(id, payload).await {
                    Some(text) => self.send_text(ws, text).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Starts an operation; returns a message to send at once (an `error`), if any.
    async fn start(&mut self, id: String, payload: SubscribePayload) -> Option<String> {
        let projection = projection(self.st, &self.viewer, &self.handle, &payload).await;
        if let Some(projection) = projection {
            return match projection {
                Ok(p) => {
                    self.ops.insert(id, Operation::Projected(p));
                    None
                }
                Err(errors) => Some(format!(
                    r#"{{"id":{},"type":"error","payload":{errors}}}"#,
                    json_string(&id)
                )),
            };
        }
        self.execute(id, payload);
        None
    }

    fn execute(&mut self, id: String, payload: SubscribePayload) {
        let (cancel, cancelled) = oneshot::channel::<()>();
        let (request, feed) = request(&self.viewer, &self.handle, payload);
        let (next_id, done_id) = (id.clone(), id.clone());
        let stream = self
            .st
            .schema
            .execute_stream(request)
            .map(move |r| Output::Next(next_id.clone(), Box::new(r)))
            .chain(futures_util::stream::once(
                async move { Output::Done(done_id) },
            ))
            .take_until(cancelled)
            .boxed();
        self.outputs.get_or_insert_with(SelectAll::new).push(stream);
        self.ops.insert(
            id,
            Operation::Executed {
                feed,
                _cancel: cancel,
                first: true,
            },
        );
    }
}

fn request(
    viewer: &Viewer,
    handle: &Arc<SocketHandle>,
    payload: SubscribePayload,
) -> (Request, mpsc::UnboundedSender<Arc<Outgoing>>) {
    let (feed, feed_rx) = mpsc::unbounded_channel();
    let mut request = Request::new(payload.query)
        .variables(Variables::from_json(
            payload.variables.unwrap_or(serde_json::Value::Null),
        ))
        .data(Caller(Ok(viewer.clone())))
        .data(SocketCtx(handle.clone()))
        .data(EventFeed(Mutex::new(Some(feed_rx))));
    if let Some(name) = payload.operation_name {
        request = request.operation_name(name);
    }
    (request, feed)
}

/// For a subscription to `events`: its shared projection once async-graphql validated
/// the document (`Err` = the `error` payload), or `None` for any other operation.
async fn projection(
    st: &WsState,
    viewer: &Viewer,
    handle: &Arc<SocketHandle>,
    payload: &SubscribePayload,
) -> Option<Result<Arc<Projection>, String>> {
    let vars = payload
        .variables
        .as_ref()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let key = (
        payload.query.clone(),
        payload.operation_name.clone(),
        serde_json::Value::Object(vars.clone()).to_string(),
    );
    if let Some(p) = cache(st).get(&key) {
        return Some(Ok(p.clone()));
    }
    let doc = async_graphql::parser::parse_query(&payload.query).ok()?;
    let projection = Projection::build(&doc, payload.operation_name.as_deref(), &vars)?;
    // Validate with the real executor: an empty feed ends the stream right after.
    let (request, feed) = request(viewer, handle, payload.clone());
    drop(feed);
    let responses: Vec<Response> = st.schema.execute_stream(request).collect().await;
    if let Some(bad) = responses.into_iter().find(|r| r.is_err()) {
        return Some(Err(
            serde_json::to_string(&bad.errors).unwrap_or_else(|_| "[]".into())
        ));
    }
    let projection = Arc::new(projection);
    let mut cache = cache(st);
    if cache.len() < MAX_PROJECTIONS {
        cache.insert(key, projection.clone());
    }
    Some(Ok(projection))
}

fn cache(st: &WsState) -> std::sync::MutexGuard<'_, Projections> {
    st.projections.lock().unwrap_or_else(|p| p.into_inner())
}

fn has_outputs(outputs: &Option<SelectAll<BoxStream<'static, Output>>>) -> bool {
    outputs.as_ref().is_some_and(|o| !o.is_empty())
}

async fn next_output(
    outputs: &mut Option<SelectAll<BoxStream<'static, Output>>>,
) -> Option<Output> {
    match outputs {
        Some(o) => o.next().await,
        None => None,
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Closes every socket with 1001 on shutdown (each task also watches the stop token).
pub(crate) fn close_all(hub: &Hub) {
    hub.close_all(Close::new(codes::GOING_AWAY, "server shutting down"));
}
