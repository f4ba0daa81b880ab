//! Minute's event bus: one [`EventBus`] trait and two implementations with the same
//! semantics (design.md §4):
//!
//! - [`RabbitBus`] on RabbitMQ (lapin): publisher confirms, quorum queues with a delivery
//!   limit and a dead-letter queue, and its own reconnect loop that re-declares the topology,
//!   re-binds and resumes consumers after the broker comes back.
//! - [`MemoryBus`] in-process, for `minute all` without `AMQP_URL`: the same at-least-once
//!   delivery, acks, redelivery and dead-lettering.
//!
//! Both are proven by one conformance suite (`tests/bus.rs`). Start with [`EventBus`], then
//! [`Delivery`] (ack / requeue / dead-letter) and [`handle_events`], the consume loop every
//! service uses. Names passed to the trait are logical (`minute.events`, `users.registered`);
//! each bus prefixes them with its [`Namespace`] so tests run side by side.
#![warn(missing_docs)]

mod dedupe;
pub mod failpoint;
mod memory;
mod rabbit;
mod topic;
pub mod trace;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use minute_events::{Event, RawEnvelope};
use tokio::sync::mpsc;

pub use dedupe::SeenIds;
pub use memory::MemoryBus;
pub use minute_events::{DEAD_LETTER_EXCHANGE, DELIVERY_EXCHANGE, EVENTS_EXCHANGE};
pub use rabbit::{RabbitBus, RabbitSettings};
pub use topic::topic_matches;

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No broker connection within the allowed time; nothing was confirmed.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (negative confirm).
    #[error("broker refused the message")]
    Nacked,
    /// The broker refused an operation (unknown queue, bad arguments...).
    #[error("broker error: {0}")]
    Broker(String),
}

/// A batch publish that stopped part-way: the first `confirmed` messages of the batch are
/// confirmed by the broker; the others may or may not have been stored, so the caller keeps
/// them and publishes them again (consumers dedupe by message id).
#[derive(Debug, thiserror::Error)]
#[error("{confirmed} message(s) of the batch confirmed, then: {error}")]
pub struct BatchError {
    /// How many messages at the head of the batch the broker confirmed.
    pub confirmed: usize,
    /// Why the rest is not confirmed.
    #[source]
    pub error: BusError,
}

/// A message to publish.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// Topic routing key.
    pub routing_key: String,
    /// Payload (JSON for events).
    pub body: Vec<u8>,
    /// Message id (the event id), used by consumers to dedupe.
    pub message_id: Option<String>,
    /// String headers (e.g. `traceparent`).
    pub headers: BTreeMap<String, String>,
}

impl Message {
    /// A message from an event envelope: routing key, JSON body, id and trace context.
    pub fn from_envelope<T: Event>(envelope: &minute_events::Envelope<T>) -> Self {
        let mut headers = BTreeMap::new();
        if let Some(tp) = &envelope.traceparent {
            headers.insert("traceparent".to_owned(), tp.clone());
        }
        Self {
            routing_key: envelope.routing_key(),
            body: envelope.to_bytes(),
            message_id: Some(envelope.id.to_string()),
            headers,
        }
    }
}

/// An exchange binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    /// Logical exchange name.
    pub exchange: String,
    /// Topic pattern (`*` one word, `#` any words).
    pub routing_key: String,
}

impl Binding {
    /// A binding to `exchange` with `routing_key`.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
        }
    }
}

/// How a queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Survives restarts; a message returned more than `max_redeliveries` times, or
    /// dead-lettered explicitly, goes to `<queue>.dlq`.
    Durable {
        /// Returns (nack/requeue or consumer loss) allowed before dead-lettering.
        max_redeliveries: u32,
    },
    /// One per process (e.g. `realtime.<replica-id>`): deleted when its connection goes;
    /// re-declared and re-bound after a reconnect. No dead-letter queue.
    Exclusive,
}

/// A queue and its bindings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Logical name, `<service>.<purpose>`.
    pub name: String,
    /// Durable or exclusive.
    pub kind: QueueKind,
    /// Bindings declared with the queue.
    pub bindings: Vec<Binding>,
    /// Delete the queue after it has been unused this long (tests).
    pub expires: Option<Duration>,
}

impl QueueSpec {
    /// A durable queue with dead-lettering after 5 redeliveries.
    pub fn durable(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: QueueKind::Durable {
                max_redeliveries: 5,
            },
            bindings: Vec::new(),
            expires: None,
        }
    }

    /// An exclusive, auto-delete queue.
    pub fn exclusive(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: QueueKind::Exclusive,
            bindings: Vec::new(),
            expires: None,
        }
    }

    /// Adds a binding.
    pub fn bind(mut self, exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        self.bindings.push(Binding::new(exchange, routing_key));
        self
    }

    /// Sets the redelivery limit (durable queues).
    pub fn max_redeliveries(mut self, n: u32) -> Self {
        if let QueueKind::Durable { max_redeliveries } = &mut self.kind {
            *max_redeliveries = n;
        }
        self
    }

    /// Sets an idle expiry.
    pub fn expires(mut self, after: Option<Duration>) -> Self {
        self.expires = after;
        self
    }

    /// Name of this queue's dead-letter queue.
    pub fn dlq_name(&self) -> String {
        format!("{}.dlq", self.name)
    }
}

/// Prefix applied to every exchange and queue name, so tests (or tenants) stay apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(pub String);

impl Namespace {
    /// The physical name of a logical one.
    pub fn apply(&self, name: &str) -> String {
        format!("{}{}", self.0, name)
    }
}

/// The bus every service talks through.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes and returns once the broker confirmed it; an error means it may not have
    /// been stored (the caller keeps it and retries: the outbox).
    async fn publish(&self, exchange: &str, message: Message) -> Result<(), BusError>;
    /// Publishes `(exchange, message)` pairs in order (a consumer sees messages of one
    /// routing key in batch order) and returns once the broker confirmed all of them. On an
    /// error only the first [`BatchError::confirmed`] messages are known to be stored: the
    /// caller marks those done and retries the rest. This default publishes one at a time;
    /// a bus that can keep many confirms in flight does better.
    async fn publish_batch(&self, batch: Vec<(String, Message)>) -> Result<(), BatchError> {
        for (confirmed, (exchange, message)) in batch.into_iter().enumerate() {
            self.publish(&exchange, message)
                .await
                .map_err(|error| BatchError { confirmed, error })?;
        }
        Ok(())
    }
    /// Declares a queue with its bindings (idempotent); kept and re-declared after reconnects.
    async fn declare_queue(&self, spec: QueueSpec) -> Result<(), BusError>;
    /// Adds a binding at run time; kept across reconnects.
    async fn bind(&self, queue: &str, binding: Binding) -> Result<(), BusError>;
    /// Removes a binding at run time.
    async fn unbind(&self, queue: &str, binding: Binding) -> Result<(), BusError>;
    /// Starts consuming with at most `prefetch` unacked deliveries. Dropping the
    /// subscription stops it; its unacked deliveries go back to the queue.
    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError>;
    /// Deletes a queue (tests, tear-down).
    async fn delete_queue(&self, queue: &str) -> Result<(), BusError>;
    /// True while connected with the topology declared (for `/readyz`).
    fn is_ready(&self) -> bool;
}

/// Acknowledges one delivery to the implementation it came from.
#[async_trait]
trait Acker: Send + Sync {
    async fn settle(&self, outcome: Outcome) -> Result<(), BusError>;
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ack,
    Requeue,
    DeadLetter,
}

/// One message taken from a queue; settle it with exactly one of the methods.
pub struct Delivery {
    /// Routing key it was published with.
    pub routing_key: String,
    /// Payload.
    pub body: Vec<u8>,
    /// Message id, if the publisher set one.
    pub message_id: Option<String>,
    /// String headers.
    pub headers: BTreeMap<String, String>,
    /// True when this message was delivered before.
    pub redelivered: bool,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("routing_key", &self.routing_key)
            .field("message_id", &self.message_id)
            .field("redelivered", &self.redelivered)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl Delivery {
    /// Done: the effect is durable.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.settle(Outcome::Ack).await
    }
    /// Failed for now: back to the queue (counts towards the redelivery limit).
    pub async fn requeue(self) -> Result<(), BusError> {
        self.acker.settle(Outcome::Requeue).await
    }
    /// Can never succeed (poison): straight to the dead-letter queue.
    pub async fn dead_letter(self) -> Result<(), BusError> {
        self.acker.settle(Outcome::DeadLetter).await
    }
}

/// A running consumer; yields deliveries until dropped or the bus shuts down.
pub struct Subscription {
    rx: mpsc::Receiver<Delivery>,
    queue: String,
    _guard: Option<Box<dyn Send + Sync>>,
}

impl Subscription {
    /// The logical name of the queue this consumes.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The next delivery; `None` once the bus is shut down.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

/// What a handler says about one event.
#[derive(Debug)]
pub enum HandlerError {
    /// Try again later (database down...): requeue.
    Retry(String),
    /// Can never succeed: dead-letter.
    Poison(String),
}

/// The consume loop every service uses: decode the envelope, call `handler`, then ack,
/// requeue or dead-letter. Undecodable payloads go to the dead-letter queue without
/// blocking the queue. Returns when the subscription ends or `stop` fires.
///
/// Each delivery is handled inside a consumer span that continues the publisher's trace
/// (the `traceparent` header, else the envelope's), and feeds the consumer metrics:
/// `minute_bus_consumer_lag_seconds` (from the event's `occurred_at`),
/// `minute_bus_redeliveries_total` and `minute_bus_deliveries_total{outcome}`.
pub async fn handle_events<F, Fut>(
    mut subscription: Subscription,
    stop: tokio_util::sync::CancellationToken,
    mut handler: F,
) where
    F: FnMut(RawEnvelope) -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send,
{
    use tracing::Instrument;
    let queue = subscription.queue.clone();
    metrics::counter!("minute_bus_redeliveries_total", "queue" => queue.clone()).increment(0);
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return,
            d = subscription.next() => match d { Some(d) => d, None => return },
        };
        if delivery.redelivered {
            metrics::counter!("minute_bus_redeliveries_total", "queue" => queue.clone())
                .increment(1);
        }
        // Taken, neither handled nor acked: fault tests crash here (feature `failpoints`).
        failpoint::hit("bus.consumer.before_handle", &delivery.routing_key);
        let span = consumer_span(&queue, &delivery.routing_key);
        let parsed = RawEnvelope::parse(&delivery.body);
        let traceparent = delivery
            .headers
            .get(trace::TRACEPARENT)
            .cloned()
            .or_else(|| parsed.as_ref().ok().and_then(|e| e.traceparent.clone()));
        trace::continue_trace(&span, traceparent.as_deref());
        let (outcome, settled) = async {
            match parsed {
                Err(e) => {
                    tracing::warn!(routing_key = %delivery.routing_key, error = %e, "poison message dead-lettered");
                    ("dead_letter", delivery.dead_letter().await)
                }
                Ok(envelope) => {
                    record_lag(&queue, envelope.occurred_at);
                    match handler(envelope).await {
                        Ok(()) => ("ack", delivery.ack().await),
                        Err(HandlerError::Retry(e)) => {
                            tracing::warn!(routing_key = %delivery.routing_key, error = %e, "event handling failed; requeued");
                            // Back off a little so a failing dependency is not hammered.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            ("requeue", delivery.requeue().await)
                        }
                        Err(HandlerError::Poison(e)) => {
                            tracing::warn!(routing_key = %delivery.routing_key, error = %e, "event rejected; dead-lettered");
                            ("dead_letter", delivery.dead_letter().await)
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await;
        metrics::counter!("minute_bus_deliveries_total", "queue" => queue.clone(), "outcome" => outcome)
            .increment(1);
        if let Err(e) = settled {
            // The broker will redeliver what was not settled; nothing is lost.
            tracing::debug!(error = %e, "settling a delivery failed");
        }
    }
}

/// The span one consumed message is handled in (continue it with [`trace::continue_trace`]).
pub fn consumer_span(queue: &str, routing_key: &str) -> tracing::Span {
    tracing::error_span!(
        "consume",
        otel.name = %format!("{queue} process"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.destination.name = %queue,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        trace_id = tracing::field::Empty,
    )
}

/// Records how long after it happened an event reached a consumer of `queue`.
pub fn record_lag(queue: &str, occurred_at: chrono::DateTime<chrono::Utc>) {
    let lag = (chrono::Utc::now() - occurred_at)
        .num_microseconds()
        .unwrap_or(0);
    metrics::histogram!("minute_bus_consumer_lag_seconds", "queue" => queue.to_owned())
        .record(lag.max(0) as f64 / 1e6);
}

/// What the outbox relays and the metrics need from an event's JSON, read without decoding
/// its payload.
#[derive(Debug, Default, serde::Deserialize)]
pub struct EnvelopeMeta {
    /// The trace context stored with the write.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// When the fact happened.
    #[serde(default)]
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl EnvelopeMeta {
    /// Reads the meta fields of an envelope's JSON (all `None` when it is not one).
    pub fn of(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// The message headers carrying this event's trace context.
    pub fn headers(&self) -> BTreeMap<String, String> {
        self.traceparent
            .iter()
            .map(|tp| (trace::TRACEPARENT.to_owned(), tp.clone()))
            .collect()
    }
}

/// Records what a relay found in `service`'s outbox: `minute_outbox_pending_events` (events
/// in the batch it read, so at most the batch size) and `minute_outbox_oldest_age_seconds`
/// (age of the oldest of them, 0 when empty).
pub fn record_outbox(
    service: &'static str,
    pending: usize,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
) {
    metrics::gauge!("minute_outbox_pending_events", "service" => service).set(pending as f64);
    let age = oldest
        .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1e3)
        .unwrap_or(0.0);
    metrics::gauge!("minute_outbox_oldest_age_seconds", "service" => service).set(age);
}
