//! The committed SDL is the code's SDL (set UPDATE_SCHEMA=1 to rewrite the file).

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = minute_conversations::api::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "services/conversations/schema.graphql is stale; run UPDATE_SCHEMA=1 cargo test -p minute-conversations --test api schema"
    );
}

#[test]
fn schema_has_the_contract_names() {
    let sdl = minute_conversations::api::sdl();
    for needle in [
        "type Conversation @key(fields: \"id\")",
        "memberCount: Int!",
        "members(first: Int = 50, after: String): MemberConnection!",
        "myRole: MemberRole!",
        "conversation(id: ID!): Conversation",
        "conversations(first: Int = 50, after: String): ConversationConnection!",
        "createDirectConversation(userId: ID!): Conversation!",
        "createGroup(title: String!, memberIds: [ID!]!): Conversation!",
        "addMembers(conversationId: ID!, userIds: [ID!]!): Conversation!",
        "removeMember(conversationId: ID!, userId: ID!): Conversation!",
        "leaveConversation(conversationId: ID!): Boolean!",
        "updateConversation(conversationId: ID!, title: String!): Conversation!",
        "setMemberRole(conversationId: ID!, userId: ID!, role: MemberRole!): Conversation!",
        "type User @key(fields: \"id\", resolvable: false)",
        "enum ConversationKind",
        "enum MemberRole",
        "endCursor: String",
        "hasNextPage: Boolean!",
    ] {
        assert!(sdl.contains(needle), "SDL lacks {needle}:\n{sdl}");
    }
}
