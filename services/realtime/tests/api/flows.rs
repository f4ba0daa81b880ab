//! Routing across replicas: messages, typing, read markers, multi-device, removal,
//! revocation, and the conversations fallback for users the replica does not know.

use std::time::Duration;

use minute_events::ConversationKind;
use minute_testkit::WsClient;
use minute_testkit::ws::Closed;
use serde_json::{Value, json};

use super::helpers::{Cluster, expect_event, ids};

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["__typename"] == kind
}

#[tokio::test]
async fn alice_and_bob_on_two_replicas_exchange_messages_typing_and_read_markers() {
    let c = Cluster::start(2, &[]).await;
    let u = ids("u", 2);
    let (alice, bob) = (u[0].as_str(), u[1].as_str());
    let conv = minute_testkit::unique("d");
    c.create(&conv, ConversationKind::Direct, &[alice, bob], 1)
        .await;
    // The replica knows the conversation before anyone connects (the main path: events).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut a1 = c.connect(0, alice).await;
    let mut b = c.connect(1, bob).await;
    let mut a2 = c.connect_session(1, alice, "alice-phone").await;

    c.message(&conv, 1, alice, "hi Bob").await;
    c.message(&conv, 2, bob, "hi Alice").await;
    for client in [&mut a1, &mut b, &mut a2] {
        let first = expect_event(client, "MessageCreated 1", is("MessageCreated")).await;
        assert_eq!(first["seq"], 1);
        assert_eq!(first["body"], "hi Bob");
        assert_eq!(first["senderId"], alice);
        assert_eq!(first["conversationId"], conv.as_str());
        assert_eq!(first["clientMessageId"], "c1");
        let second = expect_event(client, "MessageCreated 2", is("MessageCreated")).await;
        assert_eq!(second["seq"], 2, "in order, with seq for gap detection");
    }

    // Typing over the socket: everyone in the conversation sees it; a repeat within 2 s is dropped.
    let r = a1
        .execute(
            "mutation($c: ID!) { typing(conversationId: $c) }",
            json!({"c": conv}),
        )
        .await;
    assert_eq!(r["data"]["typing"], true, "{r}");
    let t = expect_event(&mut b, "TypingStarted", is("TypingStarted")).await;
    assert_eq!(t["userId"], alice);
    let r = a1
        .execute(
            "mutation($c: ID!) { typing(conversationId: $c) }",
            json!({"c": conv}),
        )
        .await;
    assert_eq!(r["data"]["typing"], true);

    // Read marker from Bob reaches Alice's devices and Bob's own.
    c.read(&conv, bob, 2).await;
    for client in [&mut a1, &mut a2, &mut b] {
        let m = expect_event(client, "ReadMarkerUpdated", is("ReadMarkerUpdated")).await;
        assert_eq!(
            (m["userId"].as_str(), m["seq"].as_i64()),
            (Some(bob), Some(2))
        );
    }
    // Exactly one TypingStarted reached Bob (the second was throttled).
    let rest = b.events_for(Duration::from_millis(500), 10).await;
    assert!(
        rest.iter().all(|e| e["__typename"] != "TypingStarted"),
        "{rest:?}"
    );

    // Typing in a conversation one is not in is NOT_FOUND; a blank id is BAD_USER_INPUT.
    let r = b
        .execute("mutation { typing(conversationId: \"nope\") }", json!({}))
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "NOT_FOUND", "{r}");
    let r = b
        .execute("mutation { typing(conversationId: \"  \") }", json!({}))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
}

#[tokio::test]
async fn a_removed_member_gets_member_removed_and_then_nothing_more() {
    let c = Cluster::start(2, &[]).await;
    let u = ids("u", 3);
    let (alice, bob, carol) = (u[0].as_str(), u[1].as_str(), u[2].as_str());
    let conv = minute_testkit::unique("g");
    c.create(&conv, ConversationKind::Group, &[alice, bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut a = c.connect(0, alice).await;
    let mut b = c.connect(1, bob).await;
    // Carol connects before being added: the addition binds her conversation at run time.
    let mut carol_ws = c.connect(1, carol).await;
    c.add(&conv, carol, 2).await;
    let added = expect_event(&mut carol_ws, "MemberAdded", is("MemberAdded")).await;
    assert_eq!(
        (added["userId"].as_str(), added["role"].as_str()),
        (Some(carol), Some("MEMBER"))
    );
    c.message(&conv, 1, alice, "welcome carol").await;
    expect_event(&mut carol_ws, "message 1", is("MessageCreated")).await;

    c.remove(&conv, carol, 3).await;
    let removed = expect_event(&mut carol_ws, "MemberRemoved", is("MemberRemoved")).await;
    assert_eq!(removed["userId"], carol);
    expect_event(&mut b, "MemberRemoved (Bob)", is("MemberRemoved")).await;

    for seq in 2..102 {
        c.message(&conv, seq, alice, &format!("m{seq}")).await;
    }
    let mut seen = 0;
    while seen < 100 {
        let e = expect_event(&mut b, "the 100 messages", is("MessageCreated")).await;
        assert_eq!(e["seq"], seen + 2, "in order");
        seen += 1;
    }
    let mut alice_seen = 0;
    while alice_seen < 101 {
        expect_event(&mut a, "Alice's messages", is("MessageCreated")).await;
        alice_seen += 1;
    }
    let leaked = carol_ws.events_for(Duration::from_millis(800), 200).await;
    assert!(
        leaked.is_empty(),
        "Carol received after removal: {leaked:?}"
    );
}

#[tokio::test]
async fn revoked_sessions_close_with_session_revoked_and_4401_on_any_replica() {
    let c = Cluster::start(2, &[]).await;
    let alice = minute_testkit::unique("alice");
    let mut laptop = c.connect_session(1, &alice, "laptop").await;
    let mut phone = c.connect_session(0, &alice, "phone").await;
    let started = std::time::Instant::now();
    c.revoke(&alice, &["laptop"]).await;
    let e = expect_event(&mut laptop, "SessionRevoked", is("SessionRevoked")).await;
    assert_eq!(e["reason"], "logout");
    assert_eq!(
        laptop.closed(Duration::from_secs(2)).await,
        Closed::Code(4401, "session revoked".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    // The other session stays open and working.
    let r = phone.execute("query { serverTime }", json!({})).await;
    assert!(r["data"]["serverTime"].is_string());
    // A revoked token is refused at init (revocation is checked in Redis).
    c.publisher
        .auth
        .revocations()
        .revoke("laptop", Duration::from_secs(60))
        .await
        .expect("revoke");
    let mut again = WsClient::open(c.port(0)).await;
    again
        .send_json(json!({"type":"connection_init","payload":{"authorization": format!("Bearer {}", c.token(&alice, "laptop"))}}))
        .await;
    assert_eq!(again.close_code(Duration::from_secs(5)).await, 4403);
}

/// Serves `GET /internal/users/{id}/conversations` answering `conversations` for anyone.
async fn conversations_stub(conversations: Vec<String>) -> u16 {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/internal/users/{id}/conversations",
        get(move || {
            let convs = conversations.clone();
            async move { axum::Json(json!({ "conversationIds": convs })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
async fn a_user_the_replica_does_not_know_is_routed_from_the_conversations_service() {
    let conv = minute_testkit::unique("g");
    let stub = conversations_stub(vec![conv.clone()]).await;
    let url = format!("http://127.0.0.1:{stub}");
    let c = Cluster::start(1, &[("CONVERSATIONS_URL", url.as_str())]).await;
    let dave = minute_testkit::unique("dave");
    // No membership event was ever published for Dave: only the fallback knows.
    let mut d = c.connect(0, &dave).await;
    c.message(&conv, 1, "someone", "hello dave").await;
    let e = expect_event(&mut d, "MessageCreated", is("MessageCreated")).await;
    assert_eq!(e["body"], "hello dave");
}

#[tokio::test]
async fn shutdown_closes_open_sockets_with_1001() {
    let c = Cluster::start(1, &[]).await;
    let mut s = c.connect(0, &minute_testkit::unique("alice")).await;
    c.replicas[0].stop.cancel();
    assert_eq!(s.close_code(Duration::from_secs(5)).await, 1001);
}

#[tokio::test]
async fn every_event_type_arrives_with_the_contracts_fields() {
    use minute_events as ev;
    let c = Cluster::start(1, &[]).await;
    let (alice, bob) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("bob"),
    );
    let conv = minute_testkit::unique("g");
    c.create(&conv, ConversationKind::Group, &[&alice, &bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = c.connect(0, &bob).await;
    let now = chrono::Utc::now();
    c.to_conversation(
        &conv,
        ev::MessageEdited {
            conversation_id: conv.clone(),
            message_id: "m1".into(),
            seq: 1,
            body: "edited".into(),
            edited_at: now,
        },
    )
    .await;
    c.to_conversation(
        &conv,
        ev::MessageDeleted {
            conversation_id: conv.clone(),
            message_id: "m1".into(),
            seq: 1,
            deleted_at: now,
        },
    )
    .await;
    c.to_conversation(
        &conv,
        ev::ReactionChanged {
            conversation_id: conv.clone(),
            message_id: "m1".into(),
            emoji: "👍".into(),
            count: 2,
            user_id: alice.clone(),
            added: true,
        },
    )
    .await;
    c.to_conversation(
        &conv,
        ev::ReceiptUpdated {
            conversation_id: conv.clone(),
            user_id: alice.clone(),
            kind: ev::ReceiptKind::Delivered,
            seq: 1,
        },
    )
    .await;
    c.to_conversation(
        &conv,
        ev::ConversationUpdated {
            conversation_id: conv.clone(),
            title: Some("New title".into()),
            version: 2,
        },
    )
    .await;
    let e = expect_event(&mut b, "MessageEdited", is("MessageEdited")).await;
    assert_eq!(
        (e["body"].as_str(), e["seq"].as_i64()),
        (Some("edited"), Some(1))
    );
    assert!(e["editedAt"].is_string());
    let e = expect_event(&mut b, "MessageDeleted", is("MessageDeleted")).await;
    assert_eq!(e["messageId"], "m1");
    assert!(e["deletedAt"].is_string());
    let e = expect_event(&mut b, "ReactionChanged", is("ReactionChanged")).await;
    assert_eq!(
        (
            e["emoji"].as_str(),
            e["count"].as_i64(),
            e["added"].as_bool()
        ),
        (Some("👍"), Some(2), Some(true))
    );
    let e = expect_event(
        &mut b,
        "DeliveredMarkerUpdated",
        is("DeliveredMarkerUpdated"),
    )
    .await;
    assert_eq!(
        (e["userId"].as_str(), e["seq"].as_i64()),
        (Some(alice.as_str()), Some(1))
    );
    let e = expect_event(&mut b, "ConversationUpdated", is("ConversationUpdated")).await;
    assert_eq!(e["title"], "New title");
}

#[tokio::test]
async fn operations_can_be_completed_and_executed_subscriptions_stream_too() {
    let c = Cluster::start(1, &[]).await;
    let (alice, bob) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("bob"),
    );
    let conv = minute_testkit::unique("g");
    c.create(&conv, ConversationKind::Group, &[&alice, &bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = WsClient::connect(c.port(0), &c.token(&bob, "bob-s")).await;
    // Aliased field, named operation, fragments and directives.
    let id = b
        .subscribe(
            "subscription Feed { feed: events { kind: __typename @include(if: true) ...M } }
             fragment M on MessageCreated { n: seq body @skip(if: false) }",
            json!({}),
        )
        .await;
    b.execute("query { serverTime }", json!({})).await;
    c.message(&conv, 1, &alice, "one").await;
    let m = loop {
        let m = b.next_message(Duration::from_secs(10)).await.expect("next");
        assert_eq!(m["id"], id.as_str(), "{m}");
        // Bob's own PresenceChanged may come first: it selects `kind` only.
        if m["payload"]["data"]["feed"]["kind"] != "PresenceChanged" {
            break m;
        }
    };
    assert_eq!(
        m["payload"]["data"]["feed"],
        json!({"kind": "MessageCreated", "n": 1, "body": "one"})
    );
    // After `complete`, nothing more for that operation.
    b.send_json(json!({"id": id, "type": "complete"})).await;
    b.execute("query { serverTime }", json!({})).await;
    c.message(&conv, 2, &alice, "two").await;
    let after = b.next_message(Duration::from_millis(700)).await;
    assert!(after.is_none(), "{after:?}");
}
