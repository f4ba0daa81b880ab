//! What the conversations service publishes and consumes.
//!
//! Publishes, through the outbox (written with the change, relayed by [`Relay`]):
//! `conversations.conversation.created.v1` (all initial members),
//! `conversations.conversation.updated.v1` (title), `conversations.member.added.v1` (new
//! members, and role changes) and `conversations.member.removed.v1` (one per removed
//! user). Each carries the conversation's `version` after the change. Every event goes to
//! `minute.events` (its routing key) and to `minute.delivery` with `conv.<id>`, plus
//! `user.<id>` for every added or removed user (so a removed user still hears of it).
//!
//! Consumes (durable queues, idempotent by event id through a processed-events record
//! written in the same transaction as the effect):
//! - `conversations.activity` <- `messaging.message.created.v1`: last activity, which
//!   orders `conversations`.
//! - `conversations.users` <- `auth.account.registered.v1`: the local replica of which
//!   users exist, used to refuse unknown ids.

use std::sync::Arc;
use std::time::Duration;

use minute_bus::{
    DELIVERY_EXCHANGE, EVENTS_EXCHANGE, EventBus, HandlerError, Message, QueueSpec, handle_events,
};
use minute_events::{
    AccountRegistered, ConversationCreated, ConversationUpdated, Envelope, Event, MemberAdded,
    MemberRef, MemberRemoved, MessageCreated, RawEnvelope, conversation_delivery_key,
    user_delivery_key,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{
    Change, Conversation, ConversationId, Kind, KnownUser, Member, NewConversation, Role, UserId,
};
use crate::store::{OutboxEvent, Store};

/// Queue fed by `messaging.message.created.v1`.
pub const ACTIVITY_QUEUE: &str = "conversations.activity";
/// Queue fed by `auth.account.registered.v1`.
pub const USERS_QUEUE: &str = "conversations.users";

/// Bus messages in one relay publish at most: an event is one message per delivery key
/// plus one, so a burst of events on large groups is sent in several confirmed batches
/// rather than one of unbounded size.
const MAX_BUS_BATCH: usize = 1000;

fn kind(k: Kind) -> minute_events::ConversationKind {
    match k {
        Kind::Direct => minute_events::ConversationKind::Direct,
        Kind::Group => minute_events::ConversationKind::Group,
    }
}

fn role(r: Role) -> minute_events::MemberRole {
    match r {
        Role::Owner => minute_events::MemberRole::Owner,
        Role::Admin => minute_events::MemberRole::Admin,
        Role::Member => minute_events::MemberRole::Member,
    }
}

fn member_ref(m: &Member) -> MemberRef {
    MemberRef {
        user_id: m.user_id.to_string(),
        role: role(m.role),
    }
}

fn outbox<T: Event>(
    data: T,
    conversation: &ConversationId,
    users: impl Iterator<Item = String>,
    traceparent: Option<&str>,
) -> OutboxEvent {
    let env = Envelope::new(data).with_traceparent(traceparent.map(str::to_owned));
    let mut delivery_keys = vec![conversation_delivery_key(conversation.as_str())];
    delivery_keys.extend(users.map(|u| user_delivery_key(&u)));
    OutboxEvent {
        id: env.id.to_string(),
        routing_key: env.routing_key(),
        delivery_keys,
        body: String::from_utf8(env.to_bytes()).unwrap_or_default(),
        traceparent: env.traceparent.clone(),
    }
}

/// The event of a new conversation.
pub fn created(new: &NewConversation, traceparent: Option<&str>) -> Vec<OutboxEvent> {
    let c = &new.conversation;
    let data = ConversationCreated {
        conversation_id: c.id.to_string(),
        kind: kind(c.kind),
        title: c.title.clone(),
        members: new.members.iter().map(member_ref).collect(),
        version: c.version,
        created_at: c.created_at,
    };
    let users = new.members.iter().map(|m| m.user_id.to_string());
    vec![outbox(data, &c.id, users, traceparent)]
}

/// The events of a change to `conv`.
pub fn changed(
    conv: &Conversation,
    change: &Change,
    traceparent: Option<&str>,
) -> Vec<OutboxEvent> {
    let version = change.new_version();
    let mut out = Vec::new();
    if let Some(t) = &change.title {
        let data = ConversationUpdated {
            conversation_id: conv.id.to_string(),
            title: Some(t.as_str().to_owned()),
            version,
        };
        out.push(outbox(data, &conv.id, std::iter::empty(), traceparent));
    }
    let mut added: Vec<MemberRef> = change.add.iter().map(member_ref).collect();
    added.extend(change.set_roles.iter().map(|(u, r)| MemberRef {
        user_id: u.to_string(),
        role: role(*r),
    }));
    if !added.is_empty() {
        let users: Vec<String> = added.iter().map(|m| m.user_id.clone()).collect();
        let data = MemberAdded {
            conversation_id: conv.id.to_string(),
            kind: kind(conv.kind),
            members: added,
            version,
        };
        out.push(outbox(data, &conv.id, users.into_iter(), traceparent));
    }
    for u in &change.remove {
        let data = MemberRemoved {
            conversation_id: conv.id.to_string(),
            user_id: u.to_string(),
            version,
        };
        out.push(outbox(
            data,
            &conv.id,
            std::iter::once(u.to_string()),
            traceparent,
        ));
    }
    out
}

/// Publishes the outbox: at start, every `interval`, and whenever [`Relay::waker`] is
/// notified after a write. At-least-once: an event is deleted only after every publish of
/// it was confirmed; two replicas may both publish one (consumers dedupe by event id).
pub struct Relay {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    interval: Duration,
}

impl Relay {
    /// A relay over `store` and `bus`.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, interval: Duration) -> Self {
        Self {
            store,
            bus,
            wake: Arc::new(Notify::new()),
            interval,
        }
    }

    /// Notify it after writing to the outbox.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.drain().await {
                tracing::warn!(error = %e, "outbox relay: publishing failed; will retry");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let batch = self.store.pending_outbox(100).await?;
            let oldest = batch
                .iter()
                .filter_map(|e| minute_bus::EnvelopeMeta::of(e.body.as_bytes()).occurred_at)
                .min();
            minute_bus::record_outbox("conversations", batch.len(), oldest);
            if batch.is_empty() {
                return Ok(());
            }
            let mut rest = &batch[..];
            while !rest.is_empty() {
                let taken = self.publish_head(rest).await?;
                rest = &rest[taken..];
            }
        }
    }

    /// Publishes the head of `events` as one bus batch (its confirms awaited together) of
    /// at most [`MAX_BUS_BATCH`] messages — always at least one event, however many
    /// members it names — and deletes the events whose every publish is in the confirmed
    /// head. Returns how many events it took.
    async fn publish_head(&self, events: &[OutboxEvent]) -> anyhow::Result<usize> {
        let mut messages = Vec::new();
        let mut ends = Vec::new();
        for event in events {
            let size = 1 + event.delivery_keys.len();
            if !ends.is_empty() && messages.len() + size > MAX_BUS_BATCH {
                break;
            }
            messages.extend(Self::messages(event));
            ends.push(messages.len());
        }
        let taken = ends.len();
        let published = minute_bus::trace::publish_batch_traced(self.bus.as_ref(), messages).await;
        let confirmed = match &published {
            Ok(()) => taken,
            Err(e) => ends.iter().take_while(|&&end| end <= e.confirmed).count(),
        };
        let sent: Vec<String> = events[..confirmed].iter().map(|e| e.id.clone()).collect();
        self.store.delete_outbox(&sent).await?;
        published?;
        Ok(taken)
    }

    /// An event's publishes: to `minute.events` with its routing key, then to
    /// `minute.delivery` with each of its delivery keys.
    fn messages(event: &OutboxEvent) -> impl Iterator<Item = (String, Message)> + '_ {
        let mut headers = std::collections::BTreeMap::new();
        if let Some(tp) = &event.traceparent {
            headers.insert("traceparent".to_owned(), tp.clone());
        }
        let message = move |exchange: &str, routing_key: &str| {
            let m = Message {
                routing_key: routing_key.to_owned(),
                body: event.body.clone().into_bytes(),
                message_id: Some(event.id.clone()),
                headers: headers.clone(),
            };
            (exchange.to_owned(), m)
        };
        std::iter::once(message(EVENTS_EXCHANGE, &event.routing_key)).chain(
            event
                .delivery_keys
                .iter()
                .map(move |k| message(DELIVERY_EXCHANGE, k)),
        )
    }
}

/// Declares the consumers' queues and runs them until `stop`.
pub async fn start_consumers(
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    queue_expires: Option<Duration>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    bus.declare_queue(
        QueueSpec::durable(ACTIVITY_QUEUE)
            .bind(EVENTS_EXCHANGE, MessageCreated::routing_key())
            .expires(queue_expires),
    )
    .await?;
    bus.declare_queue(
        QueueSpec::durable(USERS_QUEUE)
            .bind(EVENTS_EXCHANGE, AccountRegistered::routing_key())
            .expires(queue_expires),
    )
    .await?;
    let activity = bus.consume(ACTIVITY_QUEUE, 32).await?;
    let users = bus.consume(USERS_QUEUE, 32).await?;
    let s = store.clone();
    tokio::spawn(handle_events(activity, stop.clone(), move |env| {
        let s = s.clone();
        async move { on_message_created(s.as_ref(), env).await }
    }));
    tokio::spawn(handle_events(users, stop, move |env| {
        let s = store.clone();
        async move { on_account_registered(s.as_ref(), env).await }
    }));
    Ok(())
}

async fn on_message_created(store: &dyn Store, env: RawEnvelope) -> Result<(), HandlerError> {
    let env = env
        .decode::<MessageCreated>()
        .map_err(|e| HandlerError::Poison(e.to_string()))?;
    let conv = ConversationId::parse(&env.data.conversation_id)
        .ok_or_else(|| HandlerError::Poison("bad conversation id".into()))?;
    store
        .record_activity(
            &env.id.to_string(),
            &conv,
            env.data.created_at.timestamp_millis(),
        )
        .await
        .map(|_| ())
        .map_err(|e| HandlerError::Retry(e.to_string()))
}

async fn on_account_registered(store: &dyn Store, env: RawEnvelope) -> Result<(), HandlerError> {
    let env = env
        .decode::<AccountRegistered>()
        .map_err(|e| HandlerError::Poison(e.to_string()))?;
    let id = UserId::parse(&env.data.user_id)
        .ok_or_else(|| HandlerError::Poison("bad user id".into()))?;
    let user = KnownUser {
        id,
        username: Some(env.data.username),
    };
    store
        .record_registered(&env.id.to_string(), &user)
        .await
        .map(|_| ())
        .map_err(|e| HandlerError::Retry(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Title, UserId, UserIds, rules};
    use crate::store::embedded::EmbeddedStore;
    use minute_bus::{
        BatchError, Binding, BusError, MemoryBus, Message, Namespace, RabbitBus, RabbitSettings,
        Subscription,
    };
    use std::sync::Mutex;

    /// A real bus, recording the size of every batch published through it.
    struct Recording {
        inner: Arc<dyn EventBus>,
        batches: Mutex<Vec<usize>>,
    }

    #[async_trait::async_trait]
    impl EventBus for Recording {
        async fn publish(&self, exchange: &str, message: Message) -> Result<(), BusError> {
            self.inner.publish(exchange, message).await
        }
        async fn publish_batch(&self, batch: Vec<(String, Message)>) -> Result<(), BatchError> {
            self.batches.lock().expect("lock").push(batch.len());
            self.inner.publish_batch(batch).await
        }
        async fn declare_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
            self.inner.declare_queue(spec).await
        }
        async fn bind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
            self.inner.bind(queue, binding).await
        }
        async fn unbind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
            self.inner.unbind(queue, binding).await
        }
        async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError> {
            self.inner.consume(queue, prefetch).await
        }
        async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
            self.inner.delete_queue(queue).await
        }
        fn is_ready(&self) -> bool {
            self.inner.is_ready()
        }
    }

    #[tokio::test]
    async fn a_burst_larger_than_one_bus_batch_is_relayed_whole_and_in_order_in_process() {
        burst_relayed_in_capped_batches(Arc::new(MemoryBus::new())).await;
    }

    #[tokio::test]
    async fn a_burst_larger_than_one_bus_batch_is_relayed_whole_and_in_order_on_rabbitmq() {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut settings = RabbitSettings::new(minute_testkit::amqp_url());
        settings.namespace = Namespace(minute_testkit::unique_namespace());
        let bus = RabbitBus::connect(settings, stop.clone(), Duration::from_secs(10))
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (scripts/test starts it)");
        burst_relayed_in_capped_batches(Arc::new(bus.clone())).await;
        bus.delete_queue("seen")
            .await
            .expect("delete the test queue");
        stop.cancel();
    }

    /// Events on large groups overflow one bus batch: the relay sends them in several,
    /// in outbox order, and clears the outbox.
    async fn burst_relayed_in_capped_batches(inner: Arc<dyn EventBus>) {
        let dir = std::env::temp_dir().join(minute_testkit::unique("conv-relay"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.join("c.db")).expect("sqlite store"));
        let recording = Arc::new(Recording {
            inner,
            batches: Mutex::new(Vec::new()),
        });
        let bus: Arc<dyn EventBus> = recording.clone();
        bus.declare_queue(
            QueueSpec::durable("seen")
                .bind(EVENTS_EXCHANGE, "#")
                .bind(DELIVERY_EXCHANGE, "#"),
        )
        .await
        .expect("declare");
        let owner = UserId::parse("owner").expect("id");
        let new = rules::create_group(
            &owner,
            Title::parse("big").expect("title"),
            UserIds::parse(&[], 10).expect("ids"),
            10,
            chrono::Utc::now(),
        )
        .expect("group");
        // 5 events of 1 + 400 messages each: 2,005 messages, more than two bus batches.
        let base = created(&new, None).remove(0);
        let events: Vec<OutboxEvent> = (0..5)
            .map(|i| OutboxEvent {
                id: format!("{}-{i}", base.id),
                delivery_keys: (0..400).map(|u| format!("user.{i}-{u}")).collect(),
                ..base.clone()
            })
            .collect();
        store.create(&new, &events).await.expect("stored");
        let mut sub = bus.consume("seen", 4000).await.expect("consume");
        Relay::new(store.clone(), bus.clone(), Duration::from_secs(60))
            .drain()
            .await
            .expect("relayed");
        assert!(store.pending_outbox(10).await.expect("outbox").is_empty());
        let mut ids = Vec::new();
        while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
            ids.push(d.message_id.clone().expect("an id"));
            d.ack().await.expect("ack");
            if ids.len() == 5 * 401 {
                // Nothing more may follow (no event published twice).
                if let Ok(Some(extra)) =
                    tokio::time::timeout(Duration::from_millis(300), sub.next()).await
                {
                    ids.extend(extra.message_id);
                }
                break;
            }
        }
        assert_eq!(ids.len(), 5 * 401);
        // Whole events per batch, never over the cap: 2 + 2 + 1 events.
        assert_eq!(*recording.batches.lock().expect("lock"), [802, 802, 401]);
        let order: Vec<&String> = events.iter().map(|e| &e.id).collect();
        let mut seen: Vec<&String> = Vec::new();
        for id in &ids {
            if seen.last() != Some(&id) {
                seen.push(id);
            }
        }
        assert_eq!(
            seen, order,
            "each event's messages together, events in outbox order"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
