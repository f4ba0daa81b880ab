//! Concurrent senders get gap-free, distinct seqs; every retry returns the original.

use std::collections::HashSet;

use minute_events::MemberRole;

use super::helpers::*;

const TASKS: usize = 20;
const SENDS: usize = 50;

async fn concurrent_sends(backend: Backend) {
    let app = spawn_app(Spawn::new(backend)).await;
    let users: Vec<User> = (0..TASKS).map(|_| app.user()).collect();
    let members: Vec<(&User, MemberRole)> = users.iter().map(|u| (u, MemberRole::Member)).collect();
    let conv = app.group(&members).await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for u in users.clone() {
        let conv = conv.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..SENDS {
                let key = format!("{}-{i}", u.id);
                let first = u.send_raw(&conv, &key, &format!("message {i}"), None).await;
                let retry = u.send_raw(&conv, &key, &format!("message {i}"), None).await;
                let (a, b) = (&first["data"]["sendMessage"], &retry["data"]["sendMessage"]);
                assert!(a["id"].is_string(), "send failed: {first}");
                assert_eq!(a["id"], b["id"], "retry returned another message: {retry}");
                assert_eq!(a["seq"], b["seq"]);
                got.push(a["seq"].as_i64().unwrap_or(-1));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    eprintln!(
        "{} sends + {} retries in {:?}",
        TASKS * SENDS,
        TASKS * SENDS,
        started.elapsed()
    );
    all.sort_unstable();
    let want: Vec<i64> = (1..=(TASKS * SENDS) as i64).collect();
    assert_eq!(all, want, "seqs must be exactly 1..=1000");
    // The stored history agrees: 5 pages of 200, no gap, no duplicate.
    let reader = &users[0];
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let (page, more) = reader
            .seqs(&conv, &format!("(after: {after}, limit: 200)"))
            .await;
        after = *page.last().unwrap_or(&after);
        stored.extend(page);
        if !more {
            break;
        }
    }
    assert_eq!(stored, want);
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), TASKS * SENDS);
    let c = reader.conversation(&conv, "lastSeq").await;
    assert_eq!(c["lastSeq"], (TASKS * SENDS) as i64);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tasks_times_fifty_sends_on_mongodb() {
    concurrent_sends(Backend::mongo()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tasks_times_fifty_sends_embedded() {
    concurrent_sends(Backend::sqlite()).await;
}
