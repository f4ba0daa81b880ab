//! The outbox relay and the registration consumer on real RabbitMQ: nothing stored is
//! lost, and a poison message neither blocks the queue nor crashes the service.

use std::time::Duration;

use chrono::Utc;
use minute_bus::Message;
use minute_events::{AccountRegistered, EVENTS_EXCHANGE, Event};
use minute_users::domain::{Profile, UserId};
use serde_json::json;

use crate::helpers::{infra, mongo_store, spawn_app_with, watch_updates};

#[tokio::test]
async fn events_stored_before_a_crash_are_published_at_start() {
    let store = mongo_store().await;
    let id = uuid::Uuid::now_v7().to_string();
    // A write whose process died before the relay published its event.
    let p = Profile::provisional(UserId::parse(&id).unwrap(), "ivy", Utc::now());
    assert!(
        store
            .insert(&p, &minute_users::events::user_updated(&p, None))
            .await
            .unwrap()
    );
    let infra = infra().await;
    let mut updates = watch_updates(&infra).await;
    let _app = spawn_app_with(store.clone(), infra).await;
    let ev = updates.next_for(&id).await.expect("published at start");
    assert_eq!(ev.data.username, "ivy");
    assert!(
        minute_testkit::eventually(Duration::from_secs(5), || async {
            store.pending(10).await.unwrap().is_empty()
        })
        .await,
        "marked sent"
    );
}

#[tokio::test]
async fn poison_registrations_are_dead_lettered_and_the_queue_moves_on() {
    let infra = infra().await;
    let app = spawn_app_with(mongo_store().await, infra.clone()).await;
    let mut dlq = infra
        .bus
        .consume("users.accounts.dlq", 10)
        .await
        .expect("the dead-letter queue exists");
    let key = AccountRegistered::routing_key();
    for body in [
        b"not json".to_vec(),
        serde_json::to_vec(&json!({
            "id": uuid::Uuid::now_v7(), "type": "auth.account.registered", "version": 1,
            "occurred_at": Utc::now(), "data": {"username": "no-id"}
        }))
        .unwrap(),
        serde_json::to_vec(&json!({
            "id": uuid::Uuid::now_v7(), "type": "auth.account.registered", "version": 1,
            "occurred_at": Utc::now(),
            "data": {"user_id": "has space", "username": "x", "created_at": Utc::now()}
        }))
        .unwrap(),
    ] {
        infra
            .bus
            .publish(
                EVENTS_EXCHANGE,
                Message {
                    routing_key: key.clone(),
                    body,
                    ..Message::default()
                },
            )
            .await
            .unwrap();
    }
    for _ in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(5), dlq.next())
            .await
            .expect("dead-lettered in time")
            .expect("a delivery");
        d.ack().await.unwrap();
    }
    let id = uuid::Uuid::now_v7().to_string();
    app.registered(&id, "after_poison", None).await;
    app.wait_for_profile(&id, |p| p["username"] == "after_poison")
        .await;
}
