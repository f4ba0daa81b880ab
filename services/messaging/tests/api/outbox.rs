//! The outbox: with the broker unreachable sends still succeed; once an instance with a
//! broker runs, every event is published exactly once per id, none lost.

use std::collections::HashMap;
use std::time::Duration;

use minute_bus::{DELIVERY_EXCHANGE, EVENTS_EXCHANGE};
use serde_json::json;

use super::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_while_the_broker_is_unreachable_are_published_once_later() {
    let stub = ConversationsStub::default();
    let stub_url = stub.serve().await;
    let backend = Backend::mongo();
    // An instance whose bus points at a dead port (the shared RabbitMQ stays up for others).
    let mut dead = Spawn::new(backend.clone());
    dead.amqp_url = DEAD_AMQP.to_owned();
    dead.conversations_url = Some(stub_url.clone());
    let namespace = dead.namespace.clone();
    let offline = spawn_app(dead).await;
    let (alice, bob) = (offline.user(), offline.user());
    let conv = minute_testkit::unique("c");
    // No events can arrive on a dead bus: membership comes from the synchronous fallback.
    stub.set(&conv, &alice.id, "OWNER", 1);
    stub.set(&conv, &bob.id, "MEMBER", 1);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            alice.send(&conv, &format!("offline {i}")).await["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let r = alice
        .message_op("editMessage", json!({"m": ids[0], "b": "edited offline"}))
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = bob
        .message_op("addReaction", json!({"m": ids[1], "e": "👍"}))
        .await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = bob.mark_read_raw(&conv, 5).await;
    assert!(r.get("errors").is_none(), "{r}");
    offline.stop().await;

    // The broker is back: a new instance on the same database relays what is pending.
    let mut live = Spawn::new(backend);
    live.namespace = namespace;
    live.conversations_url = Some(stub_url);
    let (tap_bus, tap_stop) = bus(&live.namespace);
    let tap = EventTap::start(
        &tap_bus,
        &[
            (EVENTS_EXCHANGE, "messaging.#"),
            (DELIVERY_EXCHANGE, "conv.#"),
        ],
    )
    .await;
    let online = spawn_app(live).await;
    let expected = 5 + 1 + 1 + 1;
    let seen = tap.wait_for(2 * expected, Duration::from_secs(30)).await;
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen_final = tap.snapshot();
    assert_eq!(
        seen.len(),
        seen_final.len(),
        "late duplicates: {seen_final:?}"
    );
    let mut per_id: HashMap<(bool, String), usize> = HashMap::new();
    for (key, id, _) in &seen_final {
        *per_id
            .entry((key.starts_with("conv."), id.clone()))
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), 2 * expected, "events: {seen_final:?}");
    assert!(
        per_id.values().all(|n| *n == 1),
        "each id exactly once per exchange: {per_id:?}"
    );
    let created = seen_final
        .iter()
        .filter(|(k, _, t)| !k.starts_with("conv.") && t == "messaging.message.created")
        .count();
    assert_eq!(created, 5);
    online.stop().await;
    tap_stop.cancel();
}
