//! What the users service says and hears on the bus.
//!
//! - Publishes `users.user.updated.v1` ([`UserUpdated`]) whenever a profile is created or
//!   changes, through the outbox: the event is stored with the write, and [`run_relay`]
//!   publishes it (confirmed, a batch at a time) and marks it sent. The relay runs at start, every
//!   `outbox_interval`, and as soon as a write wakes it.
//! - Consumes `auth.account.registered.v1` from the durable queue `users.accounts`
//!   ([`run_consumer`]), creating the profile; idempotent by event id (see
//!   `domain::profile`).

use std::sync::Arc;
use std::time::Duration;

use minute_bus::{EventBus, HandlerError, Message, QueueSpec, handle_events};
use minute_events::{
    AccountRegistered, EVENTS_EXCHANGE, Envelope, Event, RawEnvelope, UserUpdated,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{Profile, Registration, UserId, Users, UsersError};
use crate::store::{OutboxEntry, UserStore};

/// The durable queue of registrations.
pub const ACCOUNTS_QUEUE: &str = "users.accounts";

/// Events the relay publishes per round before looking again.
const RELAY_BATCH: usize = 100;

/// The `users.user.updated.v1` outbox entry for `profile`'s current state.
pub fn user_updated(profile: &Profile, traceparent: Option<String>) -> OutboxEntry {
    let envelope = Envelope::new(UserUpdated {
        user_id: profile.id.as_str().to_owned(),
        username: profile.username.clone(),
        display_name: profile.display_name.clone(),
        avatar_url: profile.avatar_url.clone(),
    })
    .with_traceparent(traceparent);
    OutboxEntry {
        id: envelope.id.to_string(),
        routing_key: envelope.routing_key(),
        body: String::from_utf8(envelope.to_bytes()).unwrap_or_default(),
    }
}

/// Declares `users.accounts` bound to the registration event.
pub async fn declare_queues(bus: &dyn EventBus, expires: Option<Duration>) -> anyhow::Result<()> {
    bus.declare_queue(
        QueueSpec::durable(ACCOUNTS_QUEUE)
            .bind(EVENTS_EXCHANGE, AccountRegistered::routing_key())
            .expires(expires),
    )
    .await?;
    Ok(())
}

/// Publishes pending outbox entries until `stop` fires.
pub async fn run_relay(
    store: Arc<dyn UserStore>,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = relay_once(store.as_ref(), bus.as_ref()).await {
            tracing::warn!(error = %e, "outbox relay round failed; retrying later");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One relay pass: publish everything pending (in batches); stops at the first failure so
/// order per profile is kept.
pub async fn relay_once(store: &dyn UserStore, bus: &dyn EventBus) -> anyhow::Result<usize> {
    let mut sent = 0;
    loop {
        let batch = store.pending(RELAY_BATCH).await?;
        let oldest = batch
            .iter()
            .filter_map(|p| minute_bus::EnvelopeMeta::of(p.entry.body.as_bytes()).occurred_at)
            .min();
        minute_bus::record_outbox("users", batch.len(), oldest);
        if batch.is_empty() {
            return Ok(sent);
        }
        let messages = batch
            .iter()
            .map(|p| {
                let message = Message {
                    routing_key: p.entry.routing_key.clone(),
                    body: p.entry.body.clone().into_bytes(),
                    message_id: Some(p.entry.id.clone()),
                    headers: minute_bus::EnvelopeMeta::of(p.entry.body.as_bytes()).headers(),
                };
                (EVENTS_EXCHANGE.to_owned(), message)
            })
            .collect();
        // One batch, its confirms awaited together; only its confirmed head is marked sent.
        let published = minute_bus::trace::publish_batch_traced(bus, messages).await;
        let confirmed = published
            .as_ref()
            .map_or_else(|e| e.confirmed, |()| batch.len());
        for p in &batch[..confirmed] {
            store.mark_sent(&p.user_id, &p.entry.id).await?;
            sent += 1;
        }
        published?;
        if batch.len() < RELAY_BATCH {
            return Ok(sent);
        }
    }
}

/// Consumes registrations until `stop` fires. The bus resumes a subscription across
/// broker reconnects by itself; this loop only covers a subscription that could not start
/// or ended, retrying with a capped backoff.
pub async fn run_consumer(users: Arc<Users>, bus: Arc<dyn EventBus>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match bus.consume(ACCOUNTS_QUEUE, 16).await {
            Ok(subscription) => {
                backoff = Duration::from_millis(200);
                let users = users.clone();
                handle_events(subscription, stop.clone(), move |envelope| {
                    let users = users.clone();
                    async move { on_event(&users, envelope).await }
                })
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, queue = ACCOUNTS_QUEUE, "cannot consume; retrying")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn on_event(users: &Users, envelope: RawEnvelope) -> Result<(), HandlerError> {
    let envelope = envelope
        .decode::<AccountRegistered>()
        .map_err(|e| HandlerError::Poison(e.to_string()))?;
    let registration = registration(envelope).map_err(HandlerError::Poison)?;
    match users.on_registered(&registration).await {
        Ok(()) => Ok(()),
        Err(UsersError::Store(e)) => Err(HandlerError::Retry(e.to_string())),
        Err(other) => Err(HandlerError::Poison(format!("{other:?}"))),
    }
}

fn registration(envelope: Envelope<AccountRegistered>) -> Result<Registration, String> {
    let data = envelope.data;
    let user_id = UserId::parse(&data.user_id).map_err(|e| format!("user_id: {e}"))?;
    if data.username.trim().is_empty() {
        return Err("empty username".into());
    }
    // Auth validates display names with its own rules; one that breaks ours falls back to
    // the username rather than blocking the profile.
    let display_name = data
        .display_name
        .as_deref()
        .and_then(|n| crate::domain::DisplayName::parse(n).ok())
        .map(|n| n.into_inner());
    Ok(Registration {
        event_id: envelope.id.to_string(),
        user_id,
        username: data.username,
        display_name,
        created_at: data.created_at,
    })
}
