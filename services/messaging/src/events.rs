//! What messaging publishes and consumes.
//!
//! Publishes (through the outbox, see [`Relay`]): `messaging.message.created/edited/deleted.v1`,
//! `messaging.reaction.changed.v1`, `messaging.receipt.updated.v1` — each to `minute.events`
//! with its routing key AND to `minute.delivery` with `conv.<conversationId>` (same envelope).
//!
//! Consumes (durable queue `messaging.memberships`): `conversations.conversation.created.v1`,
//! `conversations.member.added.v1`, `conversations.member.removed.v1` into the membership
//! replica, order-safe and idempotent by the per-member version (see
//! [`crate::store::MembershipStore`]).

use std::sync::Arc;
use std::time::Duration;

use minute_bus::{
    DELIVERY_EXCHANGE, EVENTS_EXCHANGE, EnvelopeMeta, EventBus, HandlerError,
    Message as BusMessage, QueueSpec,
};
use minute_events::{
    ConversationCreated, Envelope, Event, MemberAdded, MemberRemoved, RawEnvelope,
    conversation_delivery_key,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{MemberChange, MembershipStore, MessageStore, OutboxEvent, OutboxItem};

/// The queue of the membership replica.
pub const MEMBERSHIP_QUEUE: &str = "messaging.memberships";

/// Wraps a payload in an envelope bound for `conversation_id`'s members.
pub fn outbox_event<T: Event>(
    data: T,
    conversation_id: &str,
    traceparent: Option<String>,
) -> OutboxEvent {
    let env = Envelope::new(data).with_traceparent(traceparent);
    OutboxEvent {
        id: env.id.to_string(),
        routing_key: env.routing_key(),
        delivery_key: conversation_delivery_key(conversation_id),
        body: String::from_utf8_lossy(&env.to_bytes()).into_owned(),
    }
}

/// Publishes what the outbox holds, with confirms, then marks it sent. Runs at start, every
/// `interval`, and whenever a write wakes it. Each batch read from the outbox goes out as
/// one bus batch (all confirms awaited together) and what was confirmed is marked sent in
/// one store write. One relay per process, so an event is published twice only when a
/// batch failed part-way or marking it sent failed after a confirm (or two replicas raced):
/// consumers dedupe by event id.
pub struct Relay {
    /// The outbox.
    pub store: Arc<dyn MessageStore>,
    /// Where to publish.
    pub bus: Arc<dyn EventBus>,
    /// Woken after writes.
    pub wake: Arc<Notify>,
    /// Polling interval.
    pub interval: Duration,
}

/// Outbox records read (and published) per batch; two bus messages per event.
const RELAY_BATCH: i64 = 100;

impl Relay {
    /// Runs until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = self.drain() => if let Err(e) = r {
                    tracing::warn!(error = %e, "outbox relay: will retry");
                },
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Publishes everything pending; returns at the first failure (retried later), after
    /// marking sent the items confirmed before it.
    pub async fn drain(&self) -> Result<usize, String> {
        let mut published = 0;
        loop {
            let items = self
                .store
                .pending(RELAY_BATCH)
                .await
                .map_err(|e| e.to_string())?;
            record_outbox(&items);
            if items.is_empty() {
                return Ok(published);
            }
            let (confirmed, failure) = self.publish(&items).await;
            let sent = &items[..confirmed];
            if !sent.is_empty() {
                self.store
                    .mark_sent_many(sent)
                    .await
                    .map_err(|e| e.to_string())?;
                published += sent.iter().map(|i| i.events.len()).sum::<usize>();
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }

    /// Publishes `items` as one batch: how many items at the head were confirmed whole,
    /// and the error that stopped the rest.
    async fn publish(&self, items: &[OutboxItem]) -> (usize, Option<String>) {
        if cfg!(feature = "failpoints") {
            for item in items {
                let keys: Vec<&str> = item.events.iter().map(|e| &*e.routing_key).collect();
                minute_bus::failpoint::hit("messaging.relay.before_publish", &keys.join(" "));
            }
        }
        let mut batch = Vec::new();
        // Where each item's messages end in the batch.
        let mut ends = Vec::with_capacity(items.len());
        for item in items {
            for e in &item.events {
                let headers = EnvelopeMeta::of(e.body.as_bytes()).headers();
                for (exchange, key) in [
                    (EVENTS_EXCHANGE, &e.routing_key),
                    (DELIVERY_EXCHANGE, &e.delivery_key),
                ] {
                    let msg = BusMessage {
                        routing_key: key.clone(),
                        body: e.body.clone().into_bytes(),
                        message_id: Some(e.id.clone()),
                        headers: headers.clone(),
                    };
                    batch.push((exchange.to_owned(), msg));
                }
            }
            ends.push(batch.len());
        }
        match minute_bus::trace::publish_batch_traced(self.bus.as_ref(), batch).await {
            Ok(()) => (items.len(), None),
            Err(e) => {
                let whole = ends.iter().take_while(|&&end| end <= e.confirmed).count();
                (whole, Some(e.to_string()))
            }
        }
    }
}

/// Outbox metrics from the batch the relay just read.
fn record_outbox(items: &[OutboxItem]) {
    let events = items.iter().flat_map(|i| &i.events);
    let oldest = events
        .clone()
        .filter_map(|e| EnvelopeMeta::of(e.body.as_bytes()).occurred_at)
        .min();
    minute_bus::record_outbox("messaging", events.count(), oldest);
}

/// Declares `messaging.memberships` and starts applying membership events to `replica`.
/// Waits at most a few seconds for the broker: the queue is declared again on reconnect.
pub async fn start_membership_consumer(
    bus: Arc<dyn EventBus>,
    replica: Arc<dyn MembershipStore>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let spec = QueueSpec::durable(MEMBERSHIP_QUEUE)
        .bind(EVENTS_EXCHANGE, ConversationCreated::routing_key())
        .bind(EVENTS_EXCHANGE, MemberAdded::routing_key())
        .bind(EVENTS_EXCHANGE, MemberRemoved::routing_key());
    match tokio::time::timeout(Duration::from_secs(5), bus.declare_queue(spec)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("declaring {MEMBERSHIP_QUEUE}: {e}"),
        Err(_) => tracing::warn!("broker not reachable; {MEMBERSHIP_QUEUE} is declared on connect"),
    }
    let subscription = bus.consume(MEMBERSHIP_QUEUE, 32).await?;
    tokio::spawn(minute_bus::handle_events(subscription, stop, move |env| {
        let replica = replica.clone();
        async move { apply_membership_event(replica.as_ref(), env).await }
    }));
    Ok(())
}

/// The per-member changes an event carries (none for other events).
pub fn membership_changes(env: RawEnvelope) -> Result<Vec<MemberChange>, HandlerError> {
    let poison = |e: minute_events::DecodeError| HandlerError::Poison(e.to_string());
    let change =
        |conv: &str, user: &str, role: Option<minute_events::MemberRole>, v: u64| MemberChange {
            conversation_id: conv.to_owned(),
            user_id: user.to_owned(),
            role: role.map(Into::into),
            version: v,
        };
    if env.is::<ConversationCreated>() {
        let d = env.decode::<ConversationCreated>().map_err(poison)?.data;
        Ok(d.members
            .iter()
            .map(|m| change(&d.conversation_id, &m.user_id, Some(m.role), d.version))
            .collect())
    } else if env.is::<MemberAdded>() {
        let d = env.decode::<MemberAdded>().map_err(poison)?.data;
        Ok(d.members
            .iter()
            .map(|m| change(&d.conversation_id, &m.user_id, Some(m.role), d.version))
            .collect())
    } else if env.is::<MemberRemoved>() {
        let d = env.decode::<MemberRemoved>().map_err(poison)?.data;
        Ok(vec![change(
            &d.conversation_id,
            &d.user_id,
            None,
            d.version,
        )])
    } else if env.is_other_version_of::<ConversationCreated>()
        || env.is_other_version_of::<MemberAdded>()
        || env.is_other_version_of::<MemberRemoved>()
    {
        Err(HandlerError::Poison(format!(
            "{} v{} is not a version this service knows",
            env.event_type, env.version
        )))
    } else {
        Ok(Vec::new())
    }
}

async fn apply_membership_event(
    replica: &dyn MembershipStore,
    env: RawEnvelope,
) -> Result<(), HandlerError> {
    for change in membership_changes(env)? {
        replica
            .apply(&change)
            .await
            .map_err(|e| HandlerError::Retry(e.to_string()))?;
    }
    Ok(())
}
