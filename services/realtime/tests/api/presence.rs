//! Presence across replicas: online while any socket is open anywhere, `setPresence`, and a
//! dead replica's users going offline when its heartbeat stops.

use std::time::Duration;

use minute_events::ConversationKind;
use minute_realtime::store::Ephemeral;
use minute_realtime::store::ephemeral::RedisEphemeral;
use serde_json::{Value, json};

use super::helpers::{Cluster, expect_event};

fn presence_of(user: &str, online: bool) -> impl Fn(&Value) -> bool + '_ {
    move |e: &Value| {
        e["__typename"] == "PresenceChanged" && e["userId"] == user && e["online"] == online
    }
}

#[tokio::test]
async fn direct_peers_see_presence_across_replicas() {
    let c = Cluster::start(2, &[]).await;
    let (alice, bob) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("bob"),
    );
    let conv = minute_testkit::unique("d");
    c.create(&conv, ConversationKind::Direct, &[&alice, &bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut a = c.connect(0, &alice).await;
    let b1 = c.connect(1, &bob).await;
    expect_event(&mut a, "Bob online", presence_of(&bob, true)).await;

    // A second device elsewhere, then the first goes: Bob stays online.
    let b2 = c.connect_session(0, &bob, "bob-phone").await;
    b1.close().await;
    let quiet = a.events_for(Duration::from_millis(700), 10).await;
    assert!(
        !quiet.iter().any(presence_of(&bob, false)),
        "Bob is still connected on another replica: {quiet:?}"
    );
    b2.close().await;
    let off = expect_event(&mut a, "Bob offline", presence_of(&bob, false)).await;
    assert!(off["lastSeenAt"].is_string(), "{off}");

    // setPresence over the socket.
    let mut b = c.connect(1, &bob).await;
    expect_event(&mut a, "Bob online again", presence_of(&bob, true)).await;
    let r = b
        .execute("mutation { setPresence(online: false) }", json!({}))
        .await;
    assert_eq!(r["data"]["setPresence"], true, "{r}");
    expect_event(&mut a, "Bob away", presence_of(&bob, false)).await;
    b.execute("mutation { setPresence(online: true) }", json!({}))
        .await;
    expect_event(&mut a, "Bob back", presence_of(&bob, true)).await;
}

#[tokio::test]
async fn users_of_a_replica_that_stopped_heartbeating_go_offline() {
    let c = Cluster::start(1, &[("REALTIME_PRESENCE_TTL_SECS", "1")]).await;
    let (alice, carol) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("carol"),
    );
    let conv = minute_testkit::unique("d");
    c.create(&conv, ConversationKind::Direct, &[&alice, &carol], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut a = c.connect(0, &alice).await;

    // Carol is online on a replica that then dies: it registered her, and never heartbeats
    // or unregisters again (what SIGKILL leaves behind).
    let redis = c.publisher.redis.clone().expect("redis");
    let dead = RedisEphemeral::new(redis, c.redis_prefix.clone());
    assert!(
        dead.online(&carol, "killed-replica", Duration::from_secs(1))
            .await
            .expect("online")
    );
    let started = std::time::Instant::now();
    let off = expect_event(&mut a, "Carol offline", presence_of(&carol, false)).await;
    assert!(off["lastSeenAt"].is_string());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
