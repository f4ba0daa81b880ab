//! What is published (outbox -> minute.events + minute.delivery) and what is consumed.

use std::time::Duration;

use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn membership_changes_are_published_with_versions_and_routes() {
    let app = spawn_app().await;
    let mut watch = app.observe().await;
    let (alice, bob, carol) = (app.user("alice"), app.user("bob"), app.user("carol"));
    let g = alice.create_group("g", &[&bob]).await;
    let c = g["id"].as_str().unwrap().to_owned();
    alice.gql.ok(ADD, json!({"c": c, "u": [carol.id]})).await;
    alice
        .gql
        .ok(SET_ROLE, json!({"c": c, "u": bob.id, "r": "ADMIN"}))
        .await;
    alice.gql.ok(RENAME, json!({"c": c, "t": "g2"})).await;
    alice.gql.ok(REMOVE, json!({"c": c, "u": carol.id})).await;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // 5 events, each on minute.events, conv.<id>, and user.<id> for members concerned.
    while seen.len() < 5 + 5 + 2 + 1 + 1 + 1 && tokio::time::Instant::now() < deadline {
        seen.extend(watch.drain(Duration::from_millis(300)).await);
    }
    let on = |key: &str| -> Vec<serde_json::Value> {
        seen.iter()
            .filter(|s| s.routing_key == key)
            .map(|s| {
                let mut d = s.envelope.data.clone();
                d["type"] = json!(s.envelope.event_type);
                d
            })
            .collect()
    };
    let events = [
        on("conversations.conversation.created.v1"),
        on("conversations.member.added.v1"),
        on("conversations.conversation.updated.v1"),
        on("conversations.member.removed.v1"),
    ];
    assert_eq!(events[0].len(), 1);
    assert_eq!(events[0][0]["version"], 1);
    assert_eq!(events[0][0]["members"].as_array().unwrap().len(), 2);
    assert_eq!(events[0][0]["kind"], "GROUP");
    let added: Vec<u64> = events[1]
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(added, [2, 3], "addMembers then the role change");
    assert_eq!(events[1][1]["members"][0]["role"], "ADMIN");
    assert_eq!(events[2][0]["version"], 4);
    assert_eq!(events[2][0]["title"], "g2");
    assert_eq!(events[3][0]["version"], 5);
    assert_eq!(events[3][0]["user_id"], carol.id.as_str());

    let conv_key = format!("conv.{c}");
    assert_eq!(seen.iter().filter(|s| s.routing_key == conv_key).count(), 5);
    let to_carol: Vec<&str> = seen
        .iter()
        .filter(|s| s.routing_key == format!("user.{}", carol.id))
        .map(|s| s.envelope.event_type.as_str())
        .collect();
    assert_eq!(
        to_carol,
        ["conversations.member.added", "conversations.member.removed"],
        "the removed user hears of it on user.<id>"
    );
    let to_alice = seen
        .iter()
        .filter(|s| s.routing_key == format!("user.{}", alice.id))
        .count();
    assert_eq!(to_alice, 1, "the creation reaches every initial member");
}

#[tokio::test]
async fn registered_users_are_known_from_events() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let newcomer = app.stranger("newcomer");
    let create = "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }";
    let r = alice.mutation(create, json!({"u": newcomer.id})).await;
    assert_eq!(
        outcome(&r),
        "BAD_USER_INPUT",
        "neither the replica nor users know them"
    );
    let event = minute_events::AccountRegistered {
        user_id: newcomer.id.clone(),
        username: "newcomer".into(),
        display_name: None,
        created_at: chrono::Utc::now(),
    };
    app.publish(event.clone()).await;
    app.publish(event).await;
    let known = minute_testkit::eventually(Duration::from_secs(10), || async {
        outcome(&alice.mutation(create, json!({"u": newcomer.id})).await) == "OK"
    })
    .await;
    assert!(
        known,
        "the replica learnt the user from auth.account.registered.v1"
    );
}

#[tokio::test]
async fn read_your_writes_falls_back_to_the_users_service() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    // Registered a moment ago: the event has not arrived, the users service knows them.
    let fresh = app.user("fresh");
    assert_eq!(alice.direct(&fresh.id).await["memberCount"], 2);
}

/// An event stored with its change but not yet published (the process died in between)
/// is published when the service starts again.
#[tokio::test]
async fn the_outbox_is_relayed_at_start() {
    use minute_conversations::domain::{Title, UserId, UserIds, rules};
    use minute_conversations::store::ConversationStore;
    use minute_conversations::store::mongo::MongoStore;

    let name = minute_testkit::unique_database("conversations");
    let client = mongodb::Client::with_uri_str(minute_testkit::mongodb_uri())
        .await
        .unwrap();
    let store = MongoStore::new(client.database(&name)).await.unwrap();
    let owner = UserId::parse("crashed-owner").unwrap();
    let new = rules::create_group(
        &owner,
        Title::parse("left behind").unwrap(),
        UserIds::parse(&[], 10).unwrap(),
        10,
        chrono::Utc::now(),
    )
    .unwrap();
    let outbox = minute_conversations::events::created(&new, None);
    store.create(&new, &outbox).await.unwrap();

    assert_eq!(store.pending_outbox(10).await.unwrap().len(), 1);
    // The relay deletes an event only after the broker confirmed every publish of it.
    let _app = spawn_with(Options {
        database: Some(name),
        ..Options::default()
    })
    .await;
    let drained = minute_testkit::eventually(Duration::from_secs(10), || async {
        store.pending_outbox(10).await.unwrap().is_empty()
    })
    .await;
    assert!(drained, "the relay published and cleared the stored event");
}
