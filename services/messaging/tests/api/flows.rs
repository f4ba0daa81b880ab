//! What members do, end to end over HTTP, on the MongoDB store with real RabbitMQ.

use std::time::Duration;

use minute_bus::{DELIVERY_EXCHANGE, EVENTS_EXCHANGE};
use minute_events::MemberRole;
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn a_conversation_lives_through_every_operation() {
    let app = spawn_app(Spawn::new(Backend::mongo())).await;
    let tap = EventTap::start(
        &app.bus,
        &[
            (EVENTS_EXCHANGE, "messaging.#"),
            (DELIVERY_EXCHANGE, "conv.#"),
        ],
    )
    .await;
    let (alice, bob) = (app.user(), app.user());
    let conv = app
        .group(&[(&alice, MemberRole::Owner), (&bob, MemberRole::Member)])
        .await;

    let m1 = alice.send(&conv, "  hello world  ").await;
    assert_eq!(m1["seq"], 1);
    assert_eq!(m1["body"], "hello world", "trimmed");
    assert_eq!(m1["sender"]["id"], alice.id.as_str());
    let r = bob
        .send_raw(&conv, "bob-1", "hi alice", m1["id"].as_str())
        .await;
    let m2 = r["data"]["sendMessage"].clone();
    assert_eq!(m2["seq"], 2);
    assert_eq!(m2["replyTo"]["id"], m1["id"]);
    // A retry returns the original.
    let again = bob.send_raw(&conv, "bob-1", "different text", None).await;
    assert_eq!(again["data"]["sendMessage"]["id"], m2["id"]);
    assert_eq!(again["data"]["sendMessage"]["body"], "hi alice");

    // Edit keeps seq.
    let e = alice
        .message_op("editMessage", json!({"m": m1["id"], "b": "hello there"}))
        .await;
    assert_eq!(e["data"]["editMessage"]["seq"], 1);
    assert_eq!(e["data"]["editMessage"]["body"], "hello there");
    assert!(e["data"]["editMessage"]["editedAt"].is_string());

    // Reactions: one per user per emoji.
    for _ in 0..2 {
        let r = bob
            .message_op("addReaction", json!({"m": m1["id"], "e": "👍"}))
            .await;
        assert_eq!(
            r["data"]["addReaction"]["reactions"],
            json!([{"emoji": "👍", "count": 1, "reactedByMe": true}])
        );
    }
    let r = alice
        .message_op("addReaction", json!({"m": m1["id"], "e": "👍"}))
        .await;
    assert_eq!(r["data"]["addReaction"]["reactions"][0]["count"], 2);
    let r = alice
        .message_op("removeReaction", json!({"m": m1["id"], "e": "👍"}))
        .await;
    assert_eq!(r["data"]["addReaction"], serde_json::Value::Null);
    assert_eq!(
        r["data"]["removeReaction"]["reactions"],
        json!([{"emoji": "👍", "count": 1, "reactedByMe": false}])
    );

    // Counters, unread (own messages excluded), read markers, receipts.
    let c = bob
        .conversation(&conv, "lastSeq readSeq unreadCount lastMessage { seq }")
        .await;
    assert_eq!(
        c,
        json!({"lastSeq": 2, "readSeq": 0, "unreadCount": 1, "lastMessage": {"seq": 2}})
    );
    let r = bob.mark_read_raw(&conv, 2).await;
    assert_eq!(
        r["data"]["markRead"],
        json!({"id": conv, "lastSeq": 2, "readSeq": 2, "unreadCount": 0})
    );
    let r = bob.mark_read_raw(&conv, 1).await;
    assert_eq!(r["data"]["markRead"]["readSeq"], 2, "never backwards");
    let d = bob
        .gql
        .ok(
            "mutation($c: ID!) { markDelivered(conversationId: $c, seq: 2) }",
            json!({"c": conv}),
        )
        .await;
    assert_eq!(d["markDelivered"], true);
    let seen = alice.message(m1["id"].as_str().unwrap_or_default()).await;
    assert_eq!(seen["readBy"][0]["user"]["id"], bob.id.as_str());
    assert_eq!(seen["deliveredTo"][0]["user"]["id"], bob.id.as_str());

    // Search within the caller's conversations.
    let found = bob
        .gql
        .ok("{ searchMessages(query: \"HELLO\") { id } }", json!({}))
        .await;
    assert_eq!(found["searchMessages"], json!([{"id": m1["id"]}]));
    let outsider = app.user();
    let none = outsider
        .gql
        .ok("{ searchMessages(query: \"hello\") { id } }", json!({}))
        .await;
    assert_eq!(none["searchMessages"], json!([]));

    // Delete by an OWNER (not the sender) leaves a tombstone.
    let d = alice
        .message_op("deleteMessage", json!({"m": m2["id"]}))
        .await;
    let t = &d["data"]["deleteMessage"];
    assert_eq!(
        (t["seq"].clone(), t["body"].clone()),
        (json!(2), serde_json::Value::Null)
    );
    assert!(t["deletedAt"].is_string());
    let (seqs, more) = alice.seqs(&conv, "").await;
    assert_eq!((seqs, more), (vec![1, 2], false));

    // Every event reached both exchanges once.
    let events = tap.wait_for(2 * 9, Duration::from_secs(15)).await;
    let types: Vec<&str> = events
        .iter()
        .filter(|(k, _, _)| k.starts_with("messaging."))
        .map(|(_, _, t)| t.as_str())
        .collect();
    for t in [
        "messaging.message.created",
        "messaging.message.edited",
        "messaging.message.deleted",
        "messaging.reaction.changed",
        "messaging.receipt.updated",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert_eq!(
        types.len(),
        9,
        "2 created, 1 edited, 3 reactions, 2 receipts, 1 deleted: {types:?}"
    );
    let delivery: Vec<_> = events
        .iter()
        .filter(|(k, _, _)| k == &format!("conv.{conv}"))
        .collect();
    assert_eq!(delivery.len(), 9, "each also on minute.delivery conv.<id>");
    app.stop().await;
}

#[tokio::test]
async fn history_pages_are_ascending_and_bounded() {
    let app = spawn_app(Spawn::new(Backend::sqlite())).await;
    let alice = app.user();
    let conv = app.group(&[(&alice, MemberRole::Owner)]).await;
    for i in 1..=7 {
        alice.send(&conv, &format!("m{i}")).await;
    }
    assert_eq!(alice.seqs(&conv, "(limit: 3)").await, (vec![5, 6, 7], true));
    assert_eq!(
        alice.seqs(&conv, "(before: 5, limit: 3)").await,
        (vec![2, 3, 4], true)
    );
    assert_eq!(
        alice.seqs(&conv, "(before: 3, limit: 3)").await,
        (vec![1, 2], false)
    );
    assert_eq!(
        alice.seqs(&conv, "(after: 2, limit: 3)").await,
        (vec![3, 4, 5], true)
    );
    assert_eq!(alice.seqs(&conv, "(after: 5)").await, (vec![6, 7], false));
    assert_eq!(
        alice.seqs(&conv, "(after: 1, before: 4)").await,
        (vec![2, 3], false)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_member_added_moments_ago_can_send_before_the_event_arrives() {
    let stub = ConversationsStub::default();
    let mut spawn = Spawn::new(Backend::mongo());
    spawn.conversations_url = Some(stub.serve().await);
    let app = spawn_app(spawn).await;
    let (alice, carol) = (app.user(), app.user());
    let conv = app.group(&[(&alice, MemberRole::Owner)]).await;
    // conversations knows carol (version 2); its event has not reached messaging yet.
    stub.set(&conv, &alice.id, "OWNER", 1);
    stub.set(&conv, &carol.id, "MEMBER", 2);
    let m = carol.send(&conv, "just joined").await;
    assert_eq!(m["seq"], 1);
    // The late event with the same version changes nothing; a removal (v3) wins.
    app.add_member(&conv, &carol, MemberRole::Member, 2).await;
    stub.members
        .lock()
        .expect("lock")
        .remove(&(conv.clone(), carol.id.clone()));
    app.remove_member(&conv, &carol, 3).await;
    let r = carol.send_raw(&conv, "k2", "still here?", None).await;
    assert_eq!(code(&r), "FORBIDDEN");
    app.stop().await;
}

#[tokio::test]
async fn membership_events_apply_in_version_order_whatever_the_arrival_order() {
    let app = spawn_app(Spawn::new(Backend::sqlite())).await;
    let (alice, dave) = (app.user(), app.user());
    let conv = app.group(&[(&alice, MemberRole::Owner)]).await;
    // Removal (v3) arrives before the addition (v2) it follows.
    app.publish_removed_unchecked(&conv, &dave, 3).await;
    app.add_member(&conv, &dave, MemberRole::Member, 2).await;
    // A marker event after both, so we know both were processed.
    let erin = app.user();
    app.add_member(&conv, &erin, MemberRole::Member, 4).await;
    assert!(erin.sees(&conv).await);
    assert!(
        !dave.sees_now(&conv).await,
        "the stale addition must not resurrect dave"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_page_of_conversations_resolves_in_one_request() {
    let app = spawn_app(Spawn::new(Backend::sqlite())).await;
    let (alice, bob) = (app.user(), app.user());
    let c1 = app
        .group(&[(&alice, MemberRole::Owner), (&bob, MemberRole::Member)])
        .await;
    let c2 = app
        .group(&[(&alice, MemberRole::Owner), (&bob, MemberRole::Member)])
        .await;
    let hidden = app.group(&[(&bob, MemberRole::Owner)]).await;
    bob.send(&c1, "one").await;
    bob.send(&c1, "two").await;
    alice.send(&c2, "mine").await;
    let q = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Conversation { id lastSeq unreadCount lastMessage { body } messages(limit: 1) { hasMore nodes { seq } } } } }";
    let reps: Vec<_> = [&c1, &c2]
        .iter()
        .map(|c| json!({"__typename": "Conversation", "id": c}))
        .collect();
    let page = alice.gql.ok(q, json!({"r": reps})).await;
    assert_eq!(
        page["_entities"],
        json!([
            {"id": c1, "lastSeq": 2, "unreadCount": 2, "lastMessage": {"body": "two"}, "messages": {"hasMore": true, "nodes": [{"seq": 2}]}},
            {"id": c2, "lastSeq": 1, "unreadCount": 0, "lastMessage": {"body": "mine"}, "messages": {"hasMore": false, "nodes": [{"seq": 1}]}},
        ])
    );
    let r = alice
        .gql
        .raw(
            q,
            json!({"r": [{"__typename": "Conversation", "id": hidden}]}),
        )
        .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    app.stop().await;
}
