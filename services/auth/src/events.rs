//! What auth publishes (it consumes nothing):
//! - `auth.account.registered.v1` after `register`;
//! - `auth.session.revoked.v1` after `logout`, `logoutAll`, `changePassword` and a reused
//!   refresh token (realtime closes the sessions' sockets from it).
//!
//! Both go through the outbox: the event is stored in the same transaction as the change,
//! and [`Relay`] publishes it to `minute.events` with publisher confirms, then deletes it.
//! The relay runs at start, on an interval, and right after each write ([`RelayWaker`]);
//! several replicas may relay the same event, which consumers dedupe by event id.
//! Before publishing a `session.revoked` event the relay re-applies the revocation to the
//! shared revocation set, so a crash between the database write and the Redis write cannot
//! leave a revoked session usable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use minute_bus::{EVENTS_EXCHANGE, EventBus, Message};
use minute_events::{AccountRegistered, Envelope, Event, SessionRevoked};
use minute_kit::auth::Revocations;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::AuthStore;

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Event id (the envelope's).
    pub id: String,
    /// Routing key.
    pub routing_key: String,
    /// The envelope as JSON.
    pub body: String,
    /// Trace context of the operation that caused it.
    pub traceparent: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl OutboxEvent {
    /// From a typed envelope.
    pub fn from_envelope<T: Event>(envelope: &Envelope<T>) -> Self {
        Self {
            id: envelope.id.to_string(),
            routing_key: envelope.routing_key(),
            body: String::from_utf8_lossy(&envelope.to_bytes()).into_owned(),
            traceparent: envelope.traceparent.clone(),
            created_at: envelope.occurred_at,
        }
    }

    /// The bus message (what `Message::from_envelope` gives for the typed envelope).
    pub fn message(&self) -> Message {
        let mut headers = BTreeMap::new();
        if let Some(tp) = &self.traceparent {
            headers.insert("traceparent".to_owned(), tp.clone());
        }
        Message {
            routing_key: self.routing_key.clone(),
            body: self.body.clone().into_bytes(),
            message_id: Some(self.id.clone()),
            headers,
        }
    }
}

/// `auth.account.registered.v1`.
pub fn account_registered(
    user_id: &str,
    username: &str,
    display_name: Option<&str>,
    created_at: DateTime<Utc>,
    traceparent: Option<String>,
) -> OutboxEvent {
    OutboxEvent::from_envelope(
        &Envelope::new(AccountRegistered {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            display_name: display_name.map(str::to_owned),
            created_at,
        })
        .with_traceparent(traceparent),
    )
}

/// `auth.session.revoked.v1`.
pub fn session_revoked(
    user_id: &str,
    session_ids: &[String],
    reason: &str,
    traceparent: Option<String>,
) -> OutboxEvent {
    OutboxEvent::from_envelope(
        &Envelope::new(SessionRevoked {
            user_id: user_id.to_owned(),
            session_ids: session_ids.to_vec(),
            reason: reason.to_owned(),
        })
        .with_traceparent(traceparent),
    )
}

/// Wakes the relay right after a write.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Asks for a relay pass now (coalesces with one already pending).
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Publishes the outbox.
pub struct Relay {
    store: Arc<dyn AuthStore>,
    bus: Arc<dyn EventBus>,
    revocations: Arc<dyn Revocations>,
    access_ttl: Duration,
    interval: Duration,
    waker: RelayWaker,
}

/// Events read per pass.
const BATCH: u32 = 100;

impl Relay {
    /// A relay over `store` publishing to `bus`.
    pub fn new(
        store: Arc<dyn AuthStore>,
        bus: Arc<dyn EventBus>,
        revocations: Arc<dyn Revocations>,
        access_ttl: Duration,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            bus,
            revocations,
            access_ttl,
            interval,
            waker: RelayWaker::default(),
        }
    }

    /// The handle writers use to wake it.
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    /// Relays until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.drain().await {
                // The events stay in the outbox; the next pass retries them.
                tracing::warn!(error = %e, "outbox relay pass failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.waker.0.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Publishes everything pending; returns how many events were published.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut published = 0;
        loop {
            let batch = self.store.pending_events(BATCH).await?;
            let oldest = batch
                .iter()
                .filter_map(|e| minute_bus::EnvelopeMeta::of(e.body.as_bytes()).occurred_at)
                .min();
            minute_bus::record_outbox("auth", batch.len(), oldest);
            if batch.is_empty() {
                return Ok(published);
            }
            // Each revocation is re-applied before its event is published: a failure stops
            // the batch there.
            let mut blocked = None;
            let mut ready = batch.len();
            for (i, event) in batch.iter().enumerate() {
                if let Err(e) = self.reapply_revocation(event).await {
                    (ready, blocked) = (i, Some(e));
                    break;
                }
            }
            let batch = &batch[..ready];
            let messages = batch
                .iter()
                .map(|event| (EVENTS_EXCHANGE.to_owned(), event.message()))
                .collect();
            // One batch, its confirms awaited together; only its confirmed head is marked sent.
            let sent = minute_bus::trace::publish_batch_traced(self.bus.as_ref(), messages).await;
            let confirmed = sent.as_ref().map_or_else(|e| e.confirmed, |()| batch.len());
            for event in &batch[..confirmed] {
                self.store.mark_sent(&event.id).await?;
                published += 1;
            }
            sent?;
            if let Some(e) = blocked {
                return Err(e);
            }
        }
    }

    async fn reapply_revocation(&self, event: &OutboxEvent) -> anyhow::Result<()> {
        if event.routing_key != SessionRevoked::routing_key() {
            return Ok(());
        }
        let envelope = match minute_events::decode::<SessionRevoked>(event.body.as_bytes()) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Never block the outbox on one bad row; the event is still published.
                tracing::error!(event = %event.id, error = %e, "undecodable revocation in the outbox");
                return Ok(());
            }
        };
        for sid in &envelope.data.session_ids {
            self.revocations
                .revoke(sid, self.access_ttl)
                .await
                .map_err(|e| anyhow::anyhow!("revocation store: {}", e.message))?;
        }
        Ok(())
    }
}
