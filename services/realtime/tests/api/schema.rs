//! The committed SDL is the code's SDL.

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let code = minute_realtime::api::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &code).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        committed, code,
        "services/realtime/schema.graphql differs from the code; run with UPDATE_SCHEMA=1 and review the diff"
    );
}

#[test]
fn the_event_union_is_exactly_the_contract() {
    let sdl = minute_realtime::api::sdl();
    assert!(sdl.contains(
        "union Event = MessageCreated | MessageEdited | MessageDeleted | ReactionChanged | ReadMarkerUpdated | DeliveredMarkerUpdated | ConversationUpdated | MemberAdded | MemberRemoved | TypingStarted | PresenceChanged | SessionRevoked"
    ), "{sdl}");
    for field in [
        "typing(conversationId: ID!): Boolean!",
        "setPresence(online: Boolean!): Boolean!",
        "events: Event!",
    ] {
        assert!(sdl.contains(field), "{field} missing in {sdl}");
    }
}
