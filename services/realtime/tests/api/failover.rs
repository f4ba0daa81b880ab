//! A replica killed with SIGKILL during traffic: its clients reconnect to another replica,
//! catch up from the last seq they saw, and end with every message exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use minute_events::ConversationKind;
use minute_testkit::WsClient;

use super::helpers::Cluster;

#[tokio::test]
async fn clients_of_a_killed_replica_reconnect_and_miss_nothing() {
    let c = Cluster::start(1, &[]).await;
    let (alice, bob) = (
        minute_testkit::unique("alice"),
        minute_testkit::unique("bob"),
    );
    let conv = minute_testkit::unique("g");
    c.create(&conv, ConversationKind::Group, &[&alice, &bob], 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut child, child_port) = c.spawn_process_replica().await;

    // Alice on the replica that will die.
    let token = c.token(&alice, "alice-s");
    let mut ws = WsClient::connect(child_port, &token).await;
    ws.subscribe_events().await;
    ws.execute("query { serverTime }", serde_json::json!({}))
        .await;

    const TOTAL: i64 = 150;
    // The messages as messaging stored them: what `messages(after:)` answers.
    let log: Mutex<BTreeMap<i64, String>> = Mutex::default();
    let publisher = async {
        for seq in 1..=TOTAL {
            c.message(&conv, seq, &bob, &format!("m{seq}")).await;
            log.lock().unwrap().insert(seq, format!("{conv}-m{seq}"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let client = async {
        // Deliveries per message id on the stream, and the client's deduplicated view.
        let mut received: BTreeMap<String, usize> = BTreeMap::new();
        let mut have: BTreeSet<String> = BTreeSet::new();
        let mut last_seq = 0;
        let mut killed = false;
        loop {
            match ws.next_event(Duration::from_secs(3)).await {
                Some(e) if e["__typename"] == "MessageCreated" => {
                    let id = e["messageId"].as_str().unwrap_or_default().to_owned();
                    *received.entry(id.clone()).or_default() += 1;
                    have.insert(id);
                    last_seq = last_seq.max(e["seq"].as_i64().unwrap_or(0));
                    if last_seq == 40 && !killed {
                        minute_testkit::signal(child.id(), "KILL");
                        killed = true;
                    }
                }
                Some(_) => {}
                None if killed => {
                    // Reconnect elsewhere, subscribe, then fill the gap with messages(after:).
                    ws = WsClient::connect(c.port(0), &token).await;
                    ws.subscribe_events().await;
                    ws.execute("query { serverTime }", serde_json::json!({}))
                        .await;
                    let missed: Vec<String> = log
                        .lock()
                        .unwrap()
                        .range(last_seq + 1..)
                        .map(|(_, id)| id.clone())
                        .collect();
                    have.extend(missed);
                    killed = false;
                }
                None => break (received, have),
            }
        }
    };
    let (_, (received, have)) = tokio::join!(publisher, client);
    let _ = child.wait();
    assert_eq!(
        have.len(),
        TOTAL as usize,
        "every message, once, after dedupe by id"
    );
    assert!(
        received.values().all(|n| *n == 1),
        "the stream never delivered a message twice: {received:?}"
    );
    assert!(
        received.len() > 40,
        "the reconnected stream carried the rest: {}",
        received.len()
    );
}
