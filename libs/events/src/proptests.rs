//! Property tests of the wire form: every payload survives a round trip through its
//! envelope's bytes, and no input — arbitrary bytes, arbitrary JSON, an envelope with a
//! mangled payload — makes decoding panic; each is either decoded or refused with a
//! [`DecodeError`] (which consumers dead-letter).

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // Any instant between year 1 and 9999 with nanoseconds (RFC 3339 keeps them all).
    (-62_135_596_800_i64..253_402_300_799, 0_u32..1_000_000_000)
        .prop_map(|(s, n)| Utc.timestamp_opt(s, n).single().unwrap_or_default())
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn kind() -> impl Strategy<Value = ConversationKind> {
    prop_oneof![
        Just(ConversationKind::Direct),
        Just(ConversationKind::Group)
    ]
}

fn role() -> impl Strategy<Value = MemberRole> {
    prop_oneof![
        Just(MemberRole::Owner),
        Just(MemberRole::Admin),
        Just(MemberRole::Member)
    ]
}

fn members() -> impl Strategy<Value = Vec<MemberRef>> {
    prop::collection::vec(
        (text(), role()).prop_map(|(user_id, role)| MemberRef { user_id, role }),
        0..8,
    )
}

/// The envelope of `data` with an arbitrary id, time and trace context.
fn envelope<T: Event + Clone + std::fmt::Debug>(
    data: impl Strategy<Value = T>,
) -> impl Strategy<Value = Envelope<T>> {
    (
        data,
        any::<u128>(),
        time(),
        prop::option::of("[0-9a-f-]{0,60}"),
    )
        .prop_map(|(data, id, at, traceparent)| Envelope {
            id: uuid::Uuid::from_u128(id),
            event_type: T::event_type(),
            version: T::VERSION,
            occurred_at: at,
            traceparent,
            data,
        })
}

fn round_trips<T: Event + Clone + PartialEq + std::fmt::Debug>(
    env: Envelope<T>,
) -> Result<(), TestCaseError> {
    let bytes = env.to_bytes();
    prop_assert!(!bytes.is_empty(), "serialises");
    let back = decode::<T>(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, &env);
    // Through the raw form too, as consumers do (parse, look at the type, decode).
    let raw = RawEnvelope::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(raw.is::<T>());
    prop_assert_eq!(
        raw.decode::<T>()
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        env
    );
    Ok(())
}

/// Decodes `bytes` as every payload type: refused or decoded, never a panic.
fn decode_as_everything(bytes: &[u8]) {
    let _ = RawEnvelope::parse(bytes);
    let _ = decode::<AccountRegistered>(bytes);
    let _ = decode::<SessionRevoked>(bytes);
    let _ = decode::<UserUpdated>(bytes);
    let _ = decode::<ConversationCreated>(bytes);
    let _ = decode::<ConversationUpdated>(bytes);
    let _ = decode::<MemberAdded>(bytes);
    let _ = decode::<MemberRemoved>(bytes);
    let _ = decode::<MessageCreated>(bytes);
    let _ = decode::<MessageEdited>(bytes);
    let _ = decode::<MessageDeleted>(bytes);
    let _ = decode::<ReactionChanged>(bytes);
    let _ = decode::<ReceiptUpdated>(bytes);
    let _ = decode::<PresenceChanged>(bytes);
    let _ = decode::<TypingStarted>(bytes);
}

/// Arbitrary JSON, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("version".to_owned()),
                    Just("data".to_owned()),
                    Just("occurred_at".to_owned()),
                    Just("user_id".to_owned()),
                    Just("conversation_id".to_owned()),
                    Just("seq".to_owned()),
                    text(),
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_as_everything(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json()) {
        decode_as_everything(&serde_json::to_vec(&value).unwrap_or_default());
    }

    /// A well-formed envelope whose payload is arbitrary JSON: decoded only as the type it
    /// names, and refused (not panicking) as every other.
    #[test]
    fn envelopes_with_arbitrary_payloads_never_panic(
        data in json(),
        version in any::<u32>(),
        ty in prop_oneof![
            Just(MessageCreated::event_type()),
            Just(MemberAdded::event_type()),
            Just(AccountRegistered::event_type()),
            text(),
        ],
    ) {
        let raw = serde_json::json!({
            "id": uuid::Uuid::nil(), "type": ty, "version": version,
            "occurred_at": "2026-12-04T00:00:00Z", "data": data,
        });
        let bytes = serde_json::to_vec(&raw).unwrap_or_default();
        decode_as_everything(&bytes);
        if version != 1 {
            let refused = decode::<MessageCreated>(&bytes);
            prop_assert!(matches!(refused, Err(DecodeError::WrongType { .. })), "an unknown version is refused by type, not guessed");
            let parsed = RawEnvelope::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.is_other_version_of::<MessageCreated>(), ty == MessageCreated::event_type());
        }
    }

    /// Cutting a valid envelope anywhere gives an error, never a panic or a wrong event.
    #[test]
    fn truncated_envelopes_are_refused(env in envelope((text(), text(), any::<i64>(), text(), time()).prop_map(
        |(conversation_id, message_id, seq, body, created_at)| MessageCreated {
            conversation_id, message_id, seq, sender_id: "s".into(), client_message_id: None,
            body, reply_to_id: None, created_at,
        })), cut in any::<prop::sample::Index>()) {
        let bytes = env.to_bytes();
        let at = cut.index(bytes.len());
        prop_assert!(decode::<MessageCreated>(&bytes[..at]).is_err());
    }

    #[test]
    fn account_registered_round_trips(env in envelope(
        (text(), text(), prop::option::of(text()), time()).prop_map(|(user_id, username, display_name, created_at)|
            AccountRegistered { user_id, username, display_name, created_at }))) {
        round_trips(env)?;
    }

    #[test]
    fn session_revoked_round_trips(env in envelope(
        (text(), prop::collection::vec(text(), 0..8), text()).prop_map(|(user_id, session_ids, reason)|
            SessionRevoked { user_id, session_ids, reason }))) {
        round_trips(env)?;
    }

    #[test]
    fn user_updated_round_trips(env in envelope(
        (text(), text(), text(), prop::option::of(text())).prop_map(|(user_id, username, display_name, avatar_url)|
            UserUpdated { user_id, username, display_name, avatar_url }))) {
        round_trips(env)?;
    }

    #[test]
    fn conversation_created_round_trips(env in envelope(
        (text(), kind(), prop::option::of(text()), members(), any::<u64>(), time()).prop_map(
            |(conversation_id, kind, title, members, version, created_at)|
            ConversationCreated { conversation_id, kind, title, members, version, created_at }))) {
        round_trips(env)?;
    }

    #[test]
    fn conversation_updated_round_trips(env in envelope(
        (text(), prop::option::of(text()), any::<u64>()).prop_map(|(conversation_id, title, version)|
            ConversationUpdated { conversation_id, title, version }))) {
        round_trips(env)?;
    }

    #[test]
    fn member_added_round_trips(env in envelope(
        (text(), kind(), members(), any::<u64>()).prop_map(|(conversation_id, kind, members, version)|
            MemberAdded { conversation_id, kind, members, version }))) {
        round_trips(env)?;
    }

    #[test]
    fn member_removed_round_trips(env in envelope(
        (text(), text(), any::<u64>()).prop_map(|(conversation_id, user_id, version)|
            MemberRemoved { conversation_id, user_id, version }))) {
        round_trips(env)?;
    }

    #[test]
    fn message_created_round_trips(env in envelope(
        (text(), text(), any::<i64>(), text(), prop::option::of(text()), text(), prop::option::of(text()), time()).prop_map(
            |(conversation_id, message_id, seq, sender_id, client_message_id, body, reply_to_id, created_at)|
            MessageCreated { conversation_id, message_id, seq, sender_id, client_message_id, body, reply_to_id, created_at }))) {
        round_trips(env)?;
    }

    #[test]
    fn message_edited_round_trips(env in envelope(
        (text(), text(), any::<i64>(), text(), time()).prop_map(|(conversation_id, message_id, seq, body, edited_at)|
            MessageEdited { conversation_id, message_id, seq, body, edited_at }))) {
        round_trips(env)?;
    }

    #[test]
    fn message_deleted_round_trips(env in envelope(
        (text(), text(), any::<i64>(), time()).prop_map(|(conversation_id, message_id, seq, deleted_at)|
            MessageDeleted { conversation_id, message_id, seq, deleted_at }))) {
        round_trips(env)?;
    }

    #[test]
    fn reaction_changed_round_trips(env in envelope(
        (text(), text(), text(), any::<i64>(), text(), any::<bool>()).prop_map(
            |(conversation_id, message_id, emoji, count, user_id, added)|
            ReactionChanged { conversation_id, message_id, emoji, count, user_id, added }))) {
        round_trips(env)?;
    }

    #[test]
    fn receipt_updated_round_trips(env in envelope(
        (text(), text(), prop_oneof![Just(ReceiptKind::Read), Just(ReceiptKind::Delivered)], any::<i64>()).prop_map(
            |(conversation_id, user_id, kind, seq)| ReceiptUpdated { conversation_id, user_id, kind, seq }))) {
        round_trips(env)?;
    }

    #[test]
    fn presence_changed_round_trips(env in envelope(
        (text(), any::<bool>(), prop::option::of(time())).prop_map(|(user_id, online, last_seen_at)|
            PresenceChanged { user_id, online, last_seen_at }))) {
        round_trips(env)?;
    }

    #[test]
    fn typing_started_round_trips(env in envelope(
        (text(), text()).prop_map(|(conversation_id, user_id)| TypingStarted { conversation_id, user_id }))) {
        round_trips(env)?;
    }
}
