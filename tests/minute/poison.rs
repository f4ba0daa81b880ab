//! Poison AMQP payloads published straight into every consuming service's queue on the
//! split deployment (real RabbitMQ, Redis, MongoDB-wire): not JSON, not an envelope, an
//! unknown version, missing fields, wrong types, absurd nesting. Each one ends in the
//! queue's dead-letter queue without blocking it — a good message published behind them
//! is still processed — and no role crashes.

use std::time::{Duration, Instant};

use minute_bus::{EventBus, Message, RabbitBus, RabbitSettings};
use minute_testkit::WsClient;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::stack::{Stack, code};

/// Every durable consumer queue of the services, with the event type and version it takes.
const QUEUES: [(&str, &str); 5] = [
    ("users.accounts", "auth.account.registered"),
    ("conversations.users", "auth.account.registered"),
    ("conversations.activity", "messaging.message.created"),
    ("messaging.memberships", "conversations.member.added"),
    ("realtime.memberships", "conversations.member.added"),
];

fn envelope(event_type: &str, version: u32, data: Value) -> Value {
    json!({
        "id": uuid::Uuid::now_v7(),
        "type": event_type,
        "version": version,
        "occurred_at": "2026-12-04T12:00:00Z",
        "data": data,
    })
}

/// A valid payload of `event_type` (for the poison variants to mangle).
fn good_data(event_type: &str) -> Value {
    match event_type {
        "auth.account.registered" => json!({
            "user_id": uuid::Uuid::now_v7(), "username": format!("good{}", &minute_testkit::unique("g")[2..12]),
            "created_at": "2026-12-04T12:00:00Z",
        }),
        "messaging.message.created" => json!({
            "conversation_id": uuid::Uuid::now_v7(), "message_id": uuid::Uuid::now_v7(), "seq": 1,
            "sender_id": uuid::Uuid::now_v7(), "body": "hi", "created_at": "2026-12-04T12:00:00Z",
        }),
        _ => json!({
            "conversation_id": uuid::Uuid::now_v7(), "kind": "GROUP",
            "members": [{"user_id": uuid::Uuid::now_v7(), "role": "MEMBER"}], "version": 1000,
        }),
    }
}

/// The poison payloads for a queue taking `event_type`.
fn poison(event_type: &str) -> Vec<(&'static str, Vec<u8>)> {
    let good = good_data(event_type);
    let mut missing = good.clone();
    let first_key = missing
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("a field");
    missing.as_object_mut().expect("object").remove(&first_key);
    let wrong_types: Value = good
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| {
            let w = match v {
                Value::String(_) => json!(42),
                Value::Number(_) => json!("forty-two"),
                _ => json!({"nested": true}),
            };
            (k.clone(), w)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let as_bytes = |v: Value| serde_json::to_vec(&v).expect("json");
    let mut bad_id = envelope(event_type, 1, good.clone());
    bad_id["id"] = json!("not-a-uuid");
    vec![
        ("not JSON", b"this is not json".to_vec()),
        ("empty", Vec::new()),
        ("invalid UTF-8", vec![0xff, 0xfe, 0x7b]),
        ("a JSON array", b"[1,2,3]".to_vec()),
        ("100,000 nested arrays", deep.into_bytes()),
        (
            "unknown version",
            as_bytes(envelope(event_type, 99, good.clone())),
        ),
        ("no data", {
            let mut e = envelope(event_type, 1, good.clone());
            e.as_object_mut().expect("object").remove("data");
            as_bytes(e)
        }),
        (
            "a missing field",
            as_bytes(envelope(event_type, 1, missing)),
        ),
        (
            "wrong field types",
            as_bytes(envelope(event_type, 1, wrong_types)),
        ),
        (
            "data is a string",
            as_bytes(envelope(event_type, 1, json!("data"))),
        ),
        ("an id that is not a UUID", as_bytes(bad_id)),
    ]
}

async fn publish(bus: &RabbitBus, exchange: &str, routing_key: &str, body: Vec<u8>) {
    bus.publish(
        exchange,
        Message {
            routing_key: routing_key.to_owned(),
            body,
            ..Message::default()
        },
    )
    .await
    .expect("published with a confirm");
}

/// Waits until `check` holds for the queue depths, polling rabbitmqctl.
async fn settle(stack: &Stack, what: &str, check: impl Fn(&Stack) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(stack) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_payloads_are_dead_lettered_in_every_queue_and_good_messages_flow_behind_them() {
    let mut stack = Stack::start().await;
    let stop = CancellationToken::new();
    let bus = RabbitBus::start(RabbitSettings::new(stack.amqp_url.clone()), stop.clone());
    let alice = stack.register("alice").await;
    let bob = stack.register("bob").await;
    let conv = alice.direct(&bob).await;
    let group = alice.group("newer", &[&bob]).await;
    let order = |r: Value| -> Vec<String> {
        r["data"]["conversations"]["nodes"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    const LIST: &str = "{ conversations(first: 2) { nodes { id } } }";
    assert_eq!(
        order(alice.api.raw(LIST, json!({})).await),
        [group.clone(), conv.clone()],
        "most recent first"
    );
    let mut alice_ws = WsClient::connect(stack.port("realtime"), alice.token()).await;
    alice_ws.subscribe_events().await;
    let r = alice_ws.execute("query { serverTime }", json!({})).await;
    assert!(r["data"]["serverTime"].is_string(), "{r}");

    // Straight into each durable queue (the default exchange routes by queue name), then a
    // good message of the queue's type behind the poison.
    let mut goods = Vec::new();
    for (queue, event_type) in QUEUES {
        let dlq = format!("{queue}.dlq");
        let dead_before = stack.queue_depth(&dlq).map_or(0, |(r, _)| r);
        let payloads = poison(event_type);
        for (_, body) in &payloads {
            publish(&bus, "", queue, body.clone()).await;
        }
        let good = if queue == "conversations.activity" {
            // Activity in the older conversation, later than anything: it moves to the top.
            envelope(
                event_type,
                1,
                json!({
                    "conversation_id": conv, "message_id": uuid::Uuid::now_v7(), "seq": 1,
                    "sender_id": bob.id, "body": "x", "created_at": "2030-01-01T00:00:00Z",
                }),
            )
        } else {
            envelope(event_type, 1, good_data(event_type))
        };
        publish(&bus, "", queue, serde_json::to_vec(&good).expect("json")).await;
        goods.push((queue, good));
        let n = payloads.len() as u64;
        settle(
            &stack,
            &format!(
                "{queue}: {n} poison messages dead-lettered ({:?} in {dlq}) and the queue drained ({:?})",
                stack.queue_depth(&dlq),
                stack.queue_depth(queue)
            ),
            |s| {
                s.queue_depth(&dlq).map(|(r, _)| r) == Some(dead_before + n)
                    && s.queue_depth(queue) == Some((0, 0))
            },
        )
        .await;
    }

    // The good registration behind the poison in users.accounts made a profile (auth never
    // heard of this user, so only the consumer can have written it).
    let (_, registered) = &goods[0];
    let id = registered["data"]["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let username = registered["data"]["username"]
        .as_str()
        .expect("name")
        .to_owned();
    let found = minute_testkit::eventually(Duration::from_secs(10), || async {
        let r = alice
            .api
            .raw(
                "query($u: ID!) { user(id: $u) { username } }",
                json!({"u": id}),
            )
            .await;
        r["data"]["user"]["username"] == username.as_str()
    })
    .await;
    assert!(
        found,
        "the good registration behind the poison was processed"
    );

    // The good activity event behind the poison in conversations.activity was applied.
    let moved = minute_testkit::eventually(Duration::from_secs(10), || async {
        order(alice.api.raw(LIST, json!({})).await) == [conv.clone(), group.clone()]
    })
    .await;
    assert!(
        moved,
        "the good activity event behind the poison was processed"
    );

    // Realtime's delivery queue: poison routed to alice's binding, then a real message.
    let key = format!("user.{}", alice.id);
    for (_, body) in poison("messaging.message.created") {
        publish(&bus, "minute.delivery", &key, body).await;
    }
    let sent = bob.send(&conv, "behind the poison").await;
    let got = loop {
        let e = alice_ws
            .next_event(Duration::from_secs(10))
            .await
            .expect("alice's socket survives the poison and gets the message");
        if e["__typename"] == "MessageCreated" {
            break e;
        }
    };
    assert_eq!(got["messageId"], sent["id"]);

    // Every role is still up and ready.
    for role in crate::SPLIT_ROLES {
        let ready = minute_testkit::until_ready(stack.port(role), Duration::ZERO).await;
        assert!(ready.is_ok(), "{role} still ready: {ready:?}");
    }
    let me = alice.api.raw("{ me { id } }", json!({})).await;
    assert!(code(&me).is_none(), "{me}");
    stop.cancel();
    stack.stop();
}
