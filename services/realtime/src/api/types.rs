//! The `Event` union of api.md, exactly: clients select fields with `... on MessageCreated`.

use async_graphql::{Enum, ID, SimpleObject, Union};
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Times as the GraphQL `DateTime` scalar writes them, so both execution paths agree.
fn time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time(t, s),
        None => s.serialize_none(),
    }
}

/// `MemberRole`.
#[derive(Enum, Serialize, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "MemberRole")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Created the conversation.
    Owner,
    /// Manages members.
    Admin,
    /// Reads and writes.
    Member,
}

impl From<minute_events::MemberRole> for Role {
    fn from(r: minute_events::MemberRole) -> Self {
        match r {
            minute_events::MemberRole::Owner => Self::Owner,
            minute_events::MemberRole::Admin => Self::Admin,
            minute_events::MemberRole::Member => Self::Member,
        }
    }
}

/// A new message.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MessageCreated {
    pub conversation_id: ID,
    pub seq: i64,
    pub message_id: ID,
    pub sender_id: ID,
    pub client_message_id: Option<String>,
    pub body: String,
    pub reply_to_id: Option<ID>,
    #[serde(serialize_with = "time")]
    pub created_at: DateTime<Utc>,
}

/// An edited message.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MessageEdited {
    pub conversation_id: ID,
    pub seq: i64,
    pub message_id: ID,
    pub body: String,
    #[serde(serialize_with = "time")]
    pub edited_at: DateTime<Utc>,
}

/// A deleted message.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    pub conversation_id: ID,
    pub seq: i64,
    pub message_id: ID,
    #[serde(serialize_with = "time")]
    pub deleted_at: DateTime<Utc>,
}

/// A reaction added or removed.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ReactionChanged {
    pub conversation_id: ID,
    pub message_id: ID,
    pub emoji: String,
    pub count: i64,
    pub user_id: ID,
    pub added: bool,
}

/// A member read up to `seq` (also reaches the reader's other devices).
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ReadMarkerUpdated {
    pub conversation_id: ID,
    pub user_id: ID,
    pub seq: i64,
}

/// A member's devices received up to `seq`.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredMarkerUpdated {
    pub conversation_id: ID,
    pub user_id: ID,
    pub seq: i64,
}

/// Title changed.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ConversationUpdated {
    pub conversation_id: ID,
    pub title: Option<String>,
}

/// A member joined (or changed role).
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MemberAdded {
    pub conversation_id: ID,
    pub user_id: ID,
    pub role: Role,
}

/// A member left or was removed; the removed user gets it, then nothing more.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MemberRemoved {
    pub conversation_id: ID,
    pub user_id: ID,
}

/// Someone types (expires after 5 s unless repeated).
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TypingStarted {
    pub conversation_id: ID,
    pub user_id: ID,
}

/// A direct-conversation peer came online or went offline.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChanged {
    pub user_id: ID,
    pub online: bool,
    #[serde(serialize_with = "opt_time")]
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// This socket's session was revoked; the socket closes with 4401 next.
#[derive(SimpleObject, Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SessionRevoked {
    pub reason: String,
}

/// `union Event` of api.md.
#[derive(Union, Clone, Debug)]
#[graphql(name = "Event")]
pub enum Event {
    MessageCreated(MessageCreated),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeleted),
    ReactionChanged(ReactionChanged),
    ReadMarkerUpdated(ReadMarkerUpdated),
    DeliveredMarkerUpdated(DeliveredMarkerUpdated),
    ConversationUpdated(ConversationUpdated),
    MemberAdded(MemberAdded),
    MemberRemoved(MemberRemoved),
    TypingStarted(TypingStarted),
    PresenceChanged(PresenceChanged),
    SessionRevoked(SessionRevoked),
}

/// An event ready for sockets: the typed value (for the general executor) and its fields
/// as JSON (for projections), computed once per event rather than once per socket.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) event: Event,
    pub(crate) typename: &'static str,
    pub(crate) fields: Map<String, Value>,
    /// The trace context of the delivery that produced it (only while traces are exported).
    traceparent: Option<Box<str>>,
}

fn fields_of<T: Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl Outgoing {
    pub(crate) fn new(event: Event) -> Self {
        let (typename, fields) = match &event {
            Event::MessageCreated(e) => ("MessageCreated", fields_of(e)),
            Event::MessageEdited(e) => ("MessageEdited", fields_of(e)),
            Event::MessageDeleted(e) => ("MessageDeleted", fields_of(e)),
            Event::ReactionChanged(e) => ("ReactionChanged", fields_of(e)),
            Event::ReadMarkerUpdated(e) => ("ReadMarkerUpdated", fields_of(e)),
            Event::DeliveredMarkerUpdated(e) => ("DeliveredMarkerUpdated", fields_of(e)),
            Event::ConversationUpdated(e) => ("ConversationUpdated", fields_of(e)),
            Event::MemberAdded(e) => ("MemberAdded", fields_of(e)),
            Event::MemberRemoved(e) => ("MemberRemoved", fields_of(e)),
            Event::TypingStarted(e) => ("TypingStarted", fields_of(e)),
            Event::PresenceChanged(e) => ("PresenceChanged", fields_of(e)),
            Event::SessionRevoked(e) => ("SessionRevoked", fields_of(e)),
        };
        // Built inside the delivery's consumer span: its context is the socket write's parent.
        let traceparent =
            minute_kit::trace::traceparent_of(&tracing::Span::current(), None).map(Into::into);
        Self {
            event,
            typename,
            fields,
            traceparent,
        }
    }

    /// A span for writing this event to one socket, child of the delivery that produced
    /// it; `None` when traces are not exported.
    pub(crate) fn write_span(&self) -> Option<tracing::Span> {
        let parent = self.traceparent.as_deref()?;
        let span = tracing::info_span!(
            "ws.send",
            otel.kind = "producer",
            graphql.event = self.typename,
            trace_id = tracing::field::Empty,
        );
        minute_kit::trace::continue_trace(&span, Some(parent));
        Some(span)
    }

    /// Counts `frames` pushed to one socket (`minute_realtime_events_pushed_total`) and, for
    /// a new message, the time from its creation to this push
    /// (`minute_realtime_send_to_push_seconds`).
    pub(crate) fn pushed(&self, frames: usize) {
        if frames == 0 {
            return;
        }
        metrics::counter!("minute_realtime_events_pushed_total", "event" => self.typename)
            .increment(frames as u64);
        if let Event::MessageCreated(m) = &self.event {
            let micros = (Utc::now() - m.created_at).num_microseconds().unwrap_or(0);
            metrics::histogram!("minute_realtime_send_to_push_seconds")
                .record(micros.max(0) as f64 / 1e6);
        }
    }
}
