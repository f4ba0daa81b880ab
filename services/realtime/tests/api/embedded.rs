//! All-in-one mode: in-process bus, no Redis, embedded SQLite membership replica.

use std::time::Duration;

use minute_bus::{DELIVERY_EXCHANGE, EVENTS_EXCHANGE, Message};
use minute_events::{
    ConversationCreated, ConversationKind, Envelope, MemberRef, MemberRole, MessageCreated,
    conversation_delivery_key,
};
use minute_kit::config::Env;
use minute_kit::infra::{Infra, InfraOptions};
use minute_realtime::{App, Settings};
use minute_testkit::WsClient;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::helpers::{expect_event, jwt};

#[tokio::test]
async fn works_in_process_with_sqlite_and_without_redis() {
    let stop = CancellationToken::new();
    let infra = Infra::connect(
        InfraOptions {
            replica_id: "solo".into(),
            ..Default::default()
        },
        jwt(),
        stop.clone(),
    )
    .await
    .expect("infra");
    let dir = std::env::temp_dir().join(minute_testkit::unique("realtime-embedded"));
    let env = Env::from_pairs([
        ("PORT", "0".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("MINUTE_DATA_DIR", dir.display().to_string()),
    ]);
    let app = App::build(Settings::from_env(&env).expect("settings"), infra.clone())
        .await
        .expect("app");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    assert!(dir.join("realtime.sqlite3").exists());

    let conv = Envelope::new(ConversationCreated {
        conversation_id: "c1".into(),
        kind: ConversationKind::Direct,
        title: None,
        members: ["alice", "bob"]
            .into_iter()
            .map(|u| MemberRef {
                user_id: u.into(),
                role: MemberRole::Member,
            })
            .collect(),
        version: 1,
        created_at: chrono::Utc::now(),
    });
    infra
        .bus
        .publish(EVENTS_EXCHANGE, Message::from_envelope(&conv))
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let token = |u: &str| infra.auth.keys().issue(u, &format!("{u}-s"), Some(u));
    let mut alice = WsClient::connect(port, &token("alice")).await;
    alice.subscribe_events().await;
    alice.execute("query { serverTime }", json!({})).await;
    let mut bob = WsClient::connect(port, &token("bob")).await;
    bob.subscribe_events().await;
    bob.execute("query { serverTime }", json!({})).await;
    expect_event(&mut alice, "Bob online", |e| {
        e["__typename"] == "PresenceChanged" && e["userId"] == "bob"
    })
    .await;

    let msg = Envelope::new(MessageCreated {
        conversation_id: "c1".into(),
        message_id: "m1".into(),
        seq: 1,
        sender_id: "alice".into(),
        client_message_id: None,
        body: "in process".into(),
        reply_to_id: None,
        created_at: chrono::Utc::now(),
    });
    let mut m = Message::from_envelope(&msg);
    m.routing_key = conversation_delivery_key("c1");
    infra
        .bus
        .publish(DELIVERY_EXCHANGE, m)
        .await
        .expect("publish");
    let e = expect_event(&mut bob, "message", |e| e["__typename"] == "MessageCreated").await;
    assert_eq!(e["body"], "in process");
    let r = bob
        .execute("mutation { typing(conversationId: \"c1\") }", json!({}))
        .await;
    assert_eq!(r["data"]["typing"], true, "{r}");
    expect_event(&mut alice, "typing", |e| e["__typename"] == "TypingStarted").await;
    stop.cancel();
    let _ = std::fs::remove_dir_all(dir);
}
