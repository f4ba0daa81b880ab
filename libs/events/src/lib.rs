#![warn(missing_docs)]
//! Minute's event contracts: what services say to each other over the bus.
//!
//! Every event travels in an [`Envelope`] (`id`, `type`, `version`, `occurred_at`,
//! `traceparent`, `data`) and is published with the routing key
//! `<context>.<aggregate>.<event>.v<N>` (design.md §4). The payload types in
//! [`payloads`] are the only shapes services may rely on; a new field is additive (mark it
//! `#[serde(default)]`), a breaking change is a new version with a new type.
//!
//! Start with [`Event`] (what a payload declares about itself) and [`Envelope`].
//! This crate owns no business rules and does no I/O.

pub mod payloads;
#[cfg(test)]
mod proptests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use payloads::*;

/// The durable topic exchange all domain events go to.
pub const EVENTS_EXCHANGE: &str = "minute.events";
/// The topic exchange realtime replicas bind their delivery queues to (`conv.<id>`, `user.<id>`).
pub const DELIVERY_EXCHANGE: &str = "minute.delivery";
/// The dead-letter exchange; `<queue>.dlq` is bound to it with the queue's name as key.
pub const DEAD_LETTER_EXCHANGE: &str = "minute.dlx";

/// A payload type that can travel on the bus.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The bounded context that publishes it, e.g. `messaging`.
    const CONTEXT: &'static str;
    /// The aggregate it is about, e.g. `message`.
    const AGGREGATE: &'static str;
    /// What happened, e.g. `created`.
    const NAME: &'static str;
    /// The payload's version; a breaking change is a new version.
    const VERSION: u32;

    /// The event's type without version: `<context>.<aggregate>.<event>`.
    fn event_type() -> String {
        format!("{}.{}.{}", Self::CONTEXT, Self::AGGREGATE, Self::NAME)
    }

    /// The routing key: `<context>.<aggregate>.<event>.v<N>`.
    fn routing_key() -> String {
        routing_key(&Self::event_type(), Self::VERSION)
    }
}

/// Builds a routing key from an event type and version.
pub fn routing_key(event_type: &str, version: u32) -> String {
    format!("{event_type}.v{version}")
}

/// Routing key on [`DELIVERY_EXCHANGE`] for everything a conversation's members must see.
pub fn conversation_delivery_key(conversation_id: &str) -> String {
    format!("conv.{conversation_id}")
}

/// Routing key on [`DELIVERY_EXCHANGE`] for everything one user's devices must see.
pub fn user_delivery_key(user_id: &str) -> String {
    format!("user.{user_id}")
}

/// The wire form of every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Unique event id; consumers are idempotent by it.
    pub id: Uuid,
    /// `<context>.<aggregate>.<event>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload version.
    pub version: u32,
    /// When the fact happened (not when it was published).
    pub occurred_at: DateTime<Utc>,
    /// W3C trace context of the operation that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The payload.
    pub data: T,
}

impl<T: Event> Envelope<T> {
    /// Wraps a payload in a fresh envelope (new id, now).
    pub fn new(data: T) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: T::event_type(),
            version: T::VERSION,
            occurred_at: Utc::now(),
            traceparent: None,
            data,
        }
    }

    /// Sets the trace context.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// Routing key of this envelope.
    pub fn routing_key(&self) -> String {
        T::routing_key()
    }

    /// Serialises to JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a payload could not be decoded; such a message belongs in the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not an envelope.
    #[error("not an event envelope: {0}")]
    Malformed(String),
    /// An envelope of another type or version than expected.
    #[error("expected {expected} v{expected_version}, got {got} v{got_version}")]
    WrongType {
        /// Expected type.
        expected: String,
        /// Expected version.
        expected_version: u32,
        /// Type found.
        got: String,
        /// Version found.
        got_version: u32,
    },
}

/// An envelope whose payload is not decoded yet: read the type, then decode.
pub type RawEnvelope = Envelope<serde_json::Value>;

impl RawEnvelope {
    /// Parses bytes into an envelope with an undecoded payload.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// True when this envelope carries `T`.
    pub fn is<T: Event>(&self) -> bool {
        self.event_type == T::event_type() && self.version == T::VERSION
    }

    /// True when this envelope is `T`'s type in another version than the one this build
    /// knows. A consumer must not drop such an event as if it were about something else:
    /// it is poison here (dead-lettered, kept for a consumer that knows the version).
    pub fn is_other_version_of<T: Event>(&self) -> bool {
        self.event_type == T::event_type() && self.version != T::VERSION
    }

    /// Decodes the payload as `T`, checking type and version.
    pub fn decode<T: Event>(self) -> Result<Envelope<T>, DecodeError> {
        if !self.is::<T>() {
            return Err(DecodeError::WrongType {
                expected: T::event_type(),
                expected_version: T::VERSION,
                got: self.event_type,
                got_version: self.version,
            });
        }
        let data = serde_json::from_value(self.data)
            .map_err(|e| DecodeError::Malformed(format!("{}: {e}", T::event_type())))?;
        Ok(Envelope {
            id: self.id,
            event_type: self.event_type,
            version: self.version,
            occurred_at: self.occurred_at,
            traceparent: self.traceparent,
            data,
        })
    }
}

/// Decodes bytes straight into a typed envelope.
pub fn decode<T: Event>(bytes: &[u8]) -> Result<Envelope<T>, DecodeError> {
    RawEnvelope::parse(bytes)?.decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_follow_the_convention() {
        assert_eq!(
            MessageCreated::routing_key(),
            "messaging.message.created.v1"
        );
        assert_eq!(
            AccountRegistered::routing_key(),
            "auth.account.registered.v1"
        );
        assert_eq!(conversation_delivery_key("c1"), "conv.c1");
    }

    #[test]
    fn round_trip_and_wrong_type() {
        let env = Envelope::new(SessionRevoked {
            user_id: "u".into(),
            session_ids: vec!["s".into()],
            reason: "logout".into(),
        });
        let bytes = env.to_bytes();
        let back: Envelope<SessionRevoked> = decode(&bytes).expect("decodes");
        assert_eq!(back, env);
        let wrong = decode::<AccountRegistered>(&bytes);
        assert!(matches!(wrong, Err(DecodeError::WrongType { .. })));
        assert!(matches!(
            decode::<SessionRevoked>(b"{not json"),
            Err(DecodeError::Malformed(_))
        ));
        let mut raw: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        raw["data"] = serde_json::json!({"user_id": 5});
        let bytes = serde_json::to_vec(&raw).expect("json");
        assert!(matches!(
            decode::<SessionRevoked>(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }
}
