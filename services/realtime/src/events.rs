//! What the realtime service consumes and publishes.
//!
//! Consumes, on this replica's exclusive queue `realtime.<replica-id>`:
//! - `minute.delivery` with `conv.<id>` / `user.<id>` (bound at run time by the hub): every
//!   event a client must see, as published by messaging, conversations and realtime itself;
//! - `minute.events` with `conversations.#` (membership changes, applied to the replica and
//!   the routing table) and `auth.session.revoked.v1` (closes the session's sockets).
//!
//! Also keeps the membership replica from the durable queue `realtime.memberships`
//! (`conversations.#`), so changes made while no replica runs are not lost.
//!
//! Publishes to `minute.delivery`: `realtime.typing.started.v1` with `conv.<id>` and
//! `realtime.presence.changed.v1` with `user.<id>` (see [`crate::hub`]).

use std::sync::Arc;

use async_graphql::ID;
use minute_bus::{EVENTS_EXCHANGE, EventBus, HandlerError, QueueSpec, SeenIds, handle_events};
use minute_events as ev;
use minute_events::{Event as _, RawEnvelope};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::types::{self as gql, Event};
use crate::domain::membership::MembershipChange;
use crate::hub::Hub;
use crate::store::MembershipStore;

/// The durable queue keeping the membership replica.
pub const MEMBERSHIP_QUEUE: &str = "realtime.memberships";

/// This replica's delivery queue.
pub fn replica_queue(replica_id: &str) -> String {
    format!("realtime.{replica_id}")
}

/// Declares the queues and starts both consumers.
pub(crate) async fn start(
    hub: Arc<Hub>,
    bus: Arc<dyn EventBus>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let queue = hub.deps.queue.clone();
    bus.declare_queue(
        QueueSpec::exclusive(queue.clone())
            .bind(EVENTS_EXCHANGE, "conversations.#")
            .bind(EVENTS_EXCHANGE, ev::SessionRevoked::routing_key()),
    )
    .await?;
    bus.declare_queue(
        QueueSpec::durable(MEMBERSHIP_QUEUE).bind(EVENTS_EXCHANGE, "conversations.#"),
    )
    .await?;
    let deliveries = bus.consume(&queue, 512).await?;
    tokio::spawn(consume_deliveries(hub.clone(), deliveries, stop.clone()));
    let memberships = bus.consume(MEMBERSHIP_QUEUE, 32).await?;
    let store = hub.deps.store.clone();
    tokio::spawn(handle_events(memberships, stop, move |raw| {
        let store = store.clone();
        async move { keep_replica(store.as_ref(), raw).await }
    }));
    Ok(())
}

async fn keep_replica(store: &dyn MembershipStore, raw: RawEnvelope) -> Result<(), HandlerError> {
    let Some(change) = membership_change(&raw)? else {
        return Ok(());
    };
    store
        .apply(&change)
        .await
        .map_err(|e| HandlerError::Retry(e.to_string()))
}

fn poison(e: ev::DecodeError) -> HandlerError {
    HandlerError::Poison(e.to_string())
}

fn membership_change(raw: &RawEnvelope) -> Result<Option<MembershipChange>, HandlerError> {
    let raw = raw.clone();
    Ok(Some(if raw.is::<ev::ConversationCreated>() {
        (&raw
            .decode::<ev::ConversationCreated>()
            .map_err(poison)?
            .data)
            .into()
    } else if raw.is::<ev::MemberAdded>() {
        (&raw.decode::<ev::MemberAdded>().map_err(poison)?.data).into()
    } else if raw.is::<ev::MemberRemoved>() {
        (&raw.decode::<ev::MemberRemoved>().map_err(poison)?.data).into()
    } else if raw.is_other_version_of::<ev::ConversationCreated>()
        || raw.is_other_version_of::<ev::MemberAdded>()
        || raw.is_other_version_of::<ev::MemberRemoved>()
    {
        return Err(HandlerError::Poison(format!(
            "{} v{} is not a version this service knows",
            raw.event_type, raw.version
        )));
    } else {
        return Ok(None);
    }))
}

/// The queue label of this replica's delivery metrics and spans (the real queue name holds
/// the replica id, which would make a new series per pod).
const DELIVERY_METRICS_QUEUE: &str = "realtime.delivery";

/// The replica's delivery loop. Deliveries are acked at once: a socket has no redelivery,
/// and a client detects gaps by `seq` and fetches them (design.md §5).
async fn consume_deliveries(
    hub: Arc<Hub>,
    mut subscription: minute_bus::Subscription,
    stop: CancellationToken,
) {
    // The same event arrives once per matching binding (conv.<id>, user.<id>, conversations.#).
    let mut seen = SeenIds::new(50_000);
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return,
            d = subscription.next() => match d { Some(d) => d, None => return },
        };
        if let Ok(raw) = RawEnvelope::parse(&delivery.body) {
            // Presence goes out once per recipient with one event id: the key tells them apart.
            let key = if raw.is::<ev::PresenceChanged>() {
                format!("{}/{}", raw.id, delivery.routing_key)
            } else {
                raw.id.to_string()
            };
            if seen.first_time(&key) {
                minute_bus::record_lag(DELIVERY_METRICS_QUEUE, raw.occurred_at);
                let span = minute_bus::consumer_span(DELIVERY_METRICS_QUEUE, &delivery.routing_key);
                let parent = delivery
                    .headers
                    .get(minute_bus::trace::TRACEPARENT)
                    .or(raw.traceparent.as_ref())
                    .cloned();
                minute_bus::trace::continue_trace(&span, parent.as_deref());
                dispatch(&hub, &delivery.routing_key, raw)
                    .instrument(span)
                    .await;
            }
        }
        if let Err(e) = delivery.ack().await {
            tracing::debug!(error = %e, "ack failed");
        }
    }
}

fn id(s: &str) -> ID {
    ID(s.to_owned())
}

async fn dispatch(hub: &Hub, routing_key: &str, raw: RawEnvelope) {
    if let Err(e) = try_dispatch(hub, routing_key, raw).await {
        tracing::warn!(routing_key, error = %e, "undeliverable event dropped");
    }
}

async fn try_dispatch(
    hub: &Hub,
    routing_key: &str,
    raw: RawEnvelope,
) -> Result<(), ev::DecodeError> {
    if raw.is::<ev::MessageCreated>() {
        let e = raw.decode::<ev::MessageCreated>()?.data;
        hub.deliver_conv(
            &e.conversation_id,
            Event::MessageCreated(gql::MessageCreated {
                conversation_id: id(&e.conversation_id),
                seq: e.seq,
                message_id: id(&e.message_id),
                sender_id: id(&e.sender_id),
                client_message_id: e.client_message_id,
                body: e.body,
                reply_to_id: e.reply_to_id.map(ID),
                created_at: e.created_at,
            }),
        );
    } else if raw.is::<ev::MessageEdited>() {
        let e = raw.decode::<ev::MessageEdited>()?.data;
        hub.deliver_conv(
            &e.conversation_id,
            Event::MessageEdited(gql::MessageEdited {
                conversation_id: id(&e.conversation_id),
                seq: e.seq,
                message_id: id(&e.message_id),
                body: e.body,
                edited_at: e.edited_at,
            }),
        );
    } else if raw.is::<ev::MessageDeleted>() {
        let e = raw.decode::<ev::MessageDeleted>()?.data;
        hub.deliver_conv(
            &e.conversation_id,
            Event::MessageDeleted(gql::MessageDeleted {
                conversation_id: id(&e.conversation_id),
                seq: e.seq,
                message_id: id(&e.message_id),
                deleted_at: e.deleted_at,
            }),
        );
    } else if raw.is::<ev::ReactionChanged>() {
        let e = raw.decode::<ev::ReactionChanged>()?.data;
        hub.deliver_conv(
            &e.conversation_id,
            Event::ReactionChanged(gql::ReactionChanged {
                conversation_id: id(&e.conversation_id),
                message_id: id(&e.message_id),
                emoji: e.emoji,
                count: e.count,
                user_id: id(&e.user_id),
                added: e.added,
            }),
        );
    } else if raw.is::<ev::ReceiptUpdated>() {
        let e = raw.decode::<ev::ReceiptUpdated>()?.data;
        let (conversation_id, user_id) = (id(&e.conversation_id), id(&e.user_id));
        let event = match e.kind {
            ev::ReceiptKind::Read => Event::ReadMarkerUpdated(gql::ReadMarkerUpdated {
                conversation_id,
                user_id,
                seq: e.seq,
            }),
            ev::ReceiptKind::Delivered => {
                Event::DeliveredMarkerUpdated(gql::DeliveredMarkerUpdated {
                    conversation_id,
                    user_id,
                    seq: e.seq,
                })
            }
        };
        hub.deliver_conv(&e.conversation_id, event);
    } else if raw.is::<ev::TypingStarted>() {
        let e = raw.decode::<ev::TypingStarted>()?.data;
        hub.deliver_conv(
            &e.conversation_id,
            Event::TypingStarted(gql::TypingStarted {
                conversation_id: id(&e.conversation_id),
                user_id: id(&e.user_id),
            }),
        );
    } else if raw.is::<ev::PresenceChanged>() {
        let e = raw.decode::<ev::PresenceChanged>()?.data;
        if let Some(target) = routing_key.strip_prefix("user.") {
            hub.deliver_user(
                target,
                Event::PresenceChanged(gql::PresenceChanged {
                    user_id: id(&e.user_id),
                    online: e.online,
                    last_seen_at: e.last_seen_at,
                }),
            );
        }
    } else if raw.is::<ev::SessionRevoked>() {
        let e = raw.decode::<ev::SessionRevoked>()?.data;
        hub.revoke(&e.user_id, &e.session_ids, &e.reason);
    } else if raw.is::<ev::ConversationUpdated>() {
        let e = raw.decode::<ev::ConversationUpdated>()?.data;
        hub.deliver_conv(
            &e.conversation_id,
            Event::ConversationUpdated(gql::ConversationUpdated {
                conversation_id: id(&e.conversation_id),
                title: e.title,
            }),
        );
    } else {
        membership(hub, raw).await?;
    }
    Ok(())
}

/// Membership events: the replica first (so a user connecting now loads the change), then
/// the routing table and the clients.
async fn membership(hub: &Hub, raw: RawEnvelope) -> Result<(), ev::DecodeError> {
    let change = match membership_change(&raw) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(()),
        Err(_) => return Err(ev::DecodeError::Malformed(raw.event_type)),
    };
    if let Err(e) = hub.deps.store.apply(&change).await {
        tracing::error!(error = %e, "membership replica not updated; routing from the event");
    }
    if raw.is::<ev::MemberRemoved>() {
        let e = raw.decode::<ev::MemberRemoved>()?.data;
        let event = Event::MemberRemoved(gql::MemberRemoved {
            conversation_id: id(&e.conversation_id),
            user_id: id(&e.user_id),
        });
        hub.member_removed(&e.conversation_id, e.version, &e.user_id, event);
        return Ok(());
    }
    let created = raw.is::<ev::ConversationCreated>();
    let users: Vec<String> = change.members.iter().map(|m| m.user_id.clone()).collect();
    let events = change
        .members
        .iter()
        .map(|m| {
            let event = Event::MemberAdded(gql::MemberAdded {
                conversation_id: id(&change.conversation_id),
                user_id: id(&m.user_id),
                role: m.role.unwrap_or(ev::MemberRole::Member).into(),
            });
            // A new conversation tells each member about themselves only: a 1,000-member
            // group must not push 1,000 events into every member's queue.
            (created.then(|| m.user_id.clone()), event)
        })
        .collect();
    hub.members_added(&change.conversation_id, change.version, &users, events)
        .await;
    Ok(())
}
