//! The `graphql-transport-ws` protocol
//! (<https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>): what a client may send,
//! parsed once at the edge, and the close codes of the protocol and of Minute (api.md).

use serde::Deserialize;
use serde_json::{Map, Value};

/// The subprotocol name clients must request.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// A close code with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// WebSocket close code.
    pub code: u16,
    /// Human-readable reason (at most 123 bytes on the wire).
    pub reason: String,
}

impl Close {
    /// A close frame.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        // Control frames carry at most 125 bytes, two of them the code.
        while reason.len() > 123 {
            reason.pop();
        }
        Self { code, reason }
    }
    /// 4400: the message is not one of the protocol's.
    pub fn bad_message(why: impl std::fmt::Display) -> Self {
        Self::new(
            codes::BAD_MESSAGE,
            format!("Invalid message received: {why}"),
        )
    }
}

/// Close codes used on `/ws`.
pub mod codes {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Invalid payload data (a text frame that is not UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation (frame flood, too many connections).
    pub const POLICY: u16 = 1008;
    /// A frame or message over 64 KiB.
    pub const TOO_BIG: u16 = 1009;
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Slow consumer: the outbound queue is full.
    pub const SLOW_CONSUMER: u16 = 4050;
    /// Invalid message.
    pub const BAD_MESSAGE: u16 = 4400;
    /// Subscribe before `connection_ack`, or session revoked.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Bad token.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// A subscription id already in use.
    pub const DUPLICATE_ID: u16 = 4409;
    /// More than one `connection_init`.
    pub const TOO_MANY_INITS: u16 = 4429;
}

/// The operation of a `subscribe` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribePayload {
    /// GraphQL document.
    pub query: String,
    /// Variables.
    #[serde(default)]
    pub variables: Option<Value>,
    /// Operation to run.
    #[serde(default)]
    pub operation_name: Option<String>,
}

/// A message a client may send.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `connection_init` with its payload.
    ConnectionInit(Map<String, Value>),
    /// `ping`.
    Ping(Option<Value>),
    /// `pong`.
    Pong,
    /// `subscribe`.
    Subscribe {
        /// Client-chosen, unique among the socket's active operations.
        id: String,
        /// The operation.
        payload: SubscribePayload,
    },
    /// `complete`: stop operation `id`.
    Complete {
        /// The operation.
        id: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    Complete {
        id: String,
    },
}

impl ClientMessage {
    /// Parses one text frame; the error is the 4400 close to send.
    pub fn parse(text: &str) -> Result<Self, Close> {
        let wire: Wire = serde_json::from_str(text).map_err(Close::bad_message)?;
        Ok(match wire {
            Wire::ConnectionInit { payload } => match payload {
                None | Some(Value::Null) => Self::ConnectionInit(Map::new()),
                Some(Value::Object(m)) => Self::ConnectionInit(m),
                Some(_) => return Err(Close::bad_message("payload must be an object")),
            },
            Wire::Ping { payload } => Self::Ping(payload),
            Wire::Pong { .. } => Self::Pong,
            Wire::Subscribe { id, payload } => Self::Subscribe {
                id: operation_id(id)?,
                payload,
            },
            Wire::Complete { id } => Self::Complete {
                id: operation_id(id)?,
            },
        })
    }
}

fn operation_id(id: String) -> Result<String, Close> {
    if id.is_empty() || id.len() > 128 {
        return Err(Close::bad_message("id must be 1..128 characters"));
    }
    Ok(id)
}

/// The bearer token of a `connection_init` payload (`authorization: "Bearer <token>"`).
pub fn authorization(payload: &Map<String, Value>) -> Option<&str> {
    payload
        .get("authorization")
        .or_else(|| payload.get("Authorization"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol_messages() {
        let init = ClientMessage::parse(
            r#"{"type":"connection_init","payload":{"authorization":"Bearer t"}}"#,
        )
        .expect("init");
        let ClientMessage::ConnectionInit(p) = init else {
            panic!("init")
        };
        assert_eq!(authorization(&p), Some("Bearer t"));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"subscribe","id":"1","payload":{"query":"x"}}"#),
            Ok(ClientMessage::Subscribe { .. })
        ));
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping(None))
        );
    }

    #[test]
    fn refuses_anything_else_with_4400() {
        for bad in [
            "not json",
            r#"{"type":"nope"}"#,
            r#"{"type":"subscribe","id":"","payload":{"query":"x"}}"#,
            r#"{"type":"subscribe","id":"1"}"#,
            r#"{"type":"connection_init","payload":5}"#,
            "[]",
        ] {
            assert_eq!(
                ClientMessage::parse(bad).map_err(|c| c.code),
                Err(codes::BAD_MESSAGE),
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Arbitrary JSON with the protocol's keys likely.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("connection_init".to_owned()),
                Just("subscribe".to_owned()),
                Just("complete".to_owned()),
                Just("ping".to_owned()),
                Just("pong".to_owned()),
                any::<String>(),
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("id".to_owned()),
                        Just("payload".to_owned()),
                        Just("query".to_owned()),
                        Just("variables".to_owned()),
                        Just("authorization".to_owned()),
                        any::<String>(),
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any text frame is a message or a 4400 close with a reason — never a panic.
        #[test]
        fn any_text_is_a_message_or_a_4400(text in any::<String>()) {
            if let Err(close) = ClientMessage::parse(&text) {
                prop_assert_eq!(close.code, codes::BAD_MESSAGE);
                prop_assert!(!close.reason.is_empty());
            }
        }

        #[test]
        fn any_json_is_a_message_or_a_4400(value in json_value()) {
            match ClientMessage::parse(&value.to_string()) {
                Err(close) => prop_assert_eq!(close.code, codes::BAD_MESSAGE),
                Ok(ClientMessage::Subscribe { id, .. } | ClientMessage::Complete { id }) => {
                    prop_assert!((1..=128).contains(&id.len()));
                }
                Ok(ClientMessage::ConnectionInit(payload)) => {
                    let _ = authorization(&payload);
                }
                Ok(_) => {}
            }
        }

        #[test]
        fn subscribe_messages_round_trip(id in "[^\u{0}]{1,40}", query in any::<String>(), op in prop::option::of(any::<String>())) {
            let text = json!({"type": "subscribe", "id": id, "payload": {"query": query, "operationName": op}}).to_string();
            match ClientMessage::parse(&text) {
                Ok(ClientMessage::Subscribe { id: got, payload }) => {
                    prop_assert_eq!(got, id);
                    prop_assert_eq!(payload.query, query);
                    prop_assert_eq!(payload.operation_name, op);
                }
                other => prop_assert!(id.len() > 128, "{other:?}"),
            }
        }
    }
}
