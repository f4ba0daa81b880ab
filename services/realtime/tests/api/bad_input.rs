//! Every bad input of the issue gets the protocol's answer or a close code, and the other
//! sockets of the replica keep working.

use std::time::Duration;

use minute_events::ConversationKind;
use minute_testkit::WsClient;
use minute_testkit::ws::{Closed, WsMessage};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::helpers::{Cluster, expect_event};

const WAIT: Duration = Duration::from_secs(5);

async fn code(c: &mut WsClient) -> u16 {
    c.close_code(WAIT).await
}

#[tokio::test]
async fn bad_inputs_get_the_protocols_answers_and_others_are_unaffected() {
    let c = Cluster::start(
        1,
        &[
            ("REALTIME_INIT_TIMEOUT_SECS", "1"),
            ("REALTIME_MAX_CONNECTIONS_PER_USER", "3"),
        ],
    )
    .await;
    let port = c.port(0);
    let (alice, bob) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("bob"),
    );
    let conv = minute_testkit::unique("g");
    c.create(&conv, ConversationKind::Group, &[&alice, &bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut observer = c.connect(0, &alice).await;
    let token = c.token(&bob, "bob-s");

    // No connection_init within the deadline: 4408.
    let mut s = WsClient::open(port).await;
    let started = std::time::Instant::now();
    assert_eq!(code(&mut s).await, 4408);
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Bad token, missing token: 4403.
    let mut s = WsClient::open(port).await;
    s.send_json(json!({"type":"connection_init","payload":{"authorization":"Bearer forged"}}))
        .await;
    assert_eq!(code(&mut s).await, 4403);
    let mut s = WsClient::open(port).await;
    s.send_json(json!({"type":"connection_init"})).await;
    assert_eq!(code(&mut s).await, 4403);

    // Bad JSON and unknown message types: 4400, before and after the ack.
    for bad in ["{not json", r#"{"type":"start","id":"1"}"#, r#"{"id":"1"}"#] {
        let mut s = WsClient::open(port).await;
        s.send_text(bad).await;
        assert_eq!(code(&mut s).await, 4400, "{bad} before init");
        let mut s = WsClient::connect(port, &token).await;
        s.send_text(bad).await;
        assert_eq!(code(&mut s).await, 4400, "{bad} after init");
    }

    // Subscribe before the ack: 4401.
    let mut s = WsClient::open(port).await;
    s.subscribe_events().await;
    assert_eq!(code(&mut s).await, 4401);

    // A second connection_init: 4429.
    let mut s = WsClient::connect(port, &token).await;
    s.send_json(
        json!({"type":"connection_init","payload":{"authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(code(&mut s).await, 4429);

    // A duplicate subscription id: 4409.
    let mut s = WsClient::connect(port, &token).await;
    let q = minute_testkit::ws::EVENTS_SUBSCRIPTION;
    s.subscribe_with_id("dup", q, json!({})).await;
    s.subscribe_with_id("dup", q, json!({})).await;
    assert_eq!(code(&mut s).await, 4409);

    // A 65 KiB frame: 1009.
    let mut s = WsClient::connect(port, &token).await;
    let big = format!(r#"{{"type":"ping","payload":"{}"}}"#, "x".repeat(65 * 1024));
    s.send_text(&big).await;
    assert_eq!(code(&mut s).await, 1009);

    // A binary frame: 4400.
    let mut s = WsClient::connect(port, &token).await;
    s.send(WsMessage::binary(vec![1u8, 2, 3])).await;
    assert_eq!(code(&mut s).await, 4400);

    // A text frame that is not UTF-8: 1007.
    let mut s = WsClient::connect(port, &token).await;
    s.send(WsMessage::Frame(Frame::message(
        vec![0xffu8, 0xfe, 0xfd],
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    assert_eq!(code(&mut s).await, 1007);

    // A subscription to something else than the contract: an `error` message; the socket stays.
    let mut s = WsClient::connect(port, &token).await;
    let r = s
        .execute("subscription { messages { id } }", json!({}))
        .await;
    assert!(r["errors"][0]["message"].is_string(), "{r}");
    let r = s.execute("query { serverTime }", json!({})).await;
    assert!(r["data"]["serverTime"].is_string(), "still open: {r}");
    // Protocol ping gets a pong.
    s.send_json(json!({"type":"ping"})).await;
    loop {
        let m = s.next_message(WAIT).await.expect("pong");
        if m["type"] == "pong" {
            break;
        }
        assert_eq!(
            m["type"], "complete",
            "only the query's completion comes first: {m}"
        );
    }
    s.close().await;

    // 10,000 frames as fast as possible: closed with 1008, the replica unaffected.
    let mut s = WsClient::connect(port, &token).await;
    let flood = async {
        for _ in 0..10_000 {
            s.send_text(r#"{"type":"ping"}"#).await;
        }
        s
    };
    let mut s = tokio::time::timeout(Duration::from_secs(20), flood)
        .await
        .expect("flood sent");
    match s.closed(WAIT).await {
        Closed::Code(code, _) => assert_eq!(code, 1008),
        // The server closed while frames were still arriving: the kernel may reset the
        // connection before the close frame is read. Either way this socket is gone.
        Closed::Dropped => {}
    }

    // Too many connections for one user: 1008 beyond the cap (3 here).
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(WsClient::connect(port, &token).await);
    }
    let mut s = WsClient::open(port).await;
    s.send_json(
        json!({"type":"connection_init","payload":{"authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(code(&mut s).await, 1008);
    drop(held);

    // The observer connected all along still receives events.
    c.message(&conv, 1, &bob, "still here").await;
    let e = expect_event(&mut observer, "a message", |e| {
        e["__typename"] == "MessageCreated"
    })
    .await;
    assert_eq!(e["body"], "still here");
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4050_and_nobody_else_waits() {
    let c = Cluster::start(1, &[("REALTIME_OUTBOUND_QUEUE", "8")]).await;
    let port = c.port(0);
    let (alice, bob) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("bob"),
    );
    let conv = minute_testkit::unique("g");
    c.create(&conv, ConversationKind::Group, &[&alice, &bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fast = c.connect(0, &alice).await;
    let mut slow = WsClient::open_url(&format!("ws://127.0.0.1:{port}/ws"), Some(4096)).await;
    slow.init(&c.token(&bob, "bob-s")).await;
    slow.subscribe_events().await;
    let r = slow.execute("query { serverTime }", json!({})).await;
    assert!(r["data"].is_object());

    let body = "y".repeat(9_000);
    let total = 700;
    let publish = async {
        for seq in 1..=total {
            c.message(&conv, seq, &alice, &body).await;
        }
    };
    let receive = async {
        for seq in 1..=total {
            let e = expect_event(&mut fast, "every message", |e| {
                e["__typename"] == "MessageCreated"
            })
            .await;
            assert_eq!(e["seq"], seq);
        }
    };
    tokio::join!(publish, receive);
    // The slow client now reads what reached it, then the 4050 close.
    match slow.closed(Duration::from_secs(15)).await {
        Closed::Code(code, reason) => {
            assert_eq!(code, 4050);
            assert!(reason.contains("slow consumer"), "{reason}");
        }
        Closed::Dropped => panic!("expected a 4050 close frame"),
    }
}

#[tokio::test]
async fn a_peer_that_misses_a_pong_is_dropped() {
    let c = Cluster::start(1, &[("REALTIME_PING_INTERVAL_MS", "300")]).await;
    let bob = minute_testkit::unique("bob");
    let mut lively = c.connect(0, &bob).await;
    let mut silent = c.connect_session(0, &bob, "other").await;
    // `silent` reads nothing, so its WebSocket stack never answers the pings.
    let keep_reading = async {
        let _ = lively.events_for(Duration::from_millis(1500), 1000).await;
        lively
    };
    let mut lively = keep_reading.await;
    let r = lively.execute("query { serverTime }", json!({})).await;
    assert!(
        r["data"]["serverTime"].is_string(),
        "a reading client stays: {r}"
    );
    assert_eq!(silent.closed(Duration::from_secs(3)).await, Closed::Dropped);
}
