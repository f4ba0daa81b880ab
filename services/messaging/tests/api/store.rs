//! One conformance suite for both store adapters: the embedded SQLite store (temp dir) and
//! the MongoDB store (MongoDB-wire server).

use std::sync::Arc;

use chrono::Utc;
use minute_messaging::domain::{MarkerKind, Message, Page, Role, SearchTerms};
use minute_messaging::store::embedded::SqliteStore;
use minute_messaging::store::mongo::MongoStore;
use minute_messaging::store::{MemberChange, NewMessage, OutboxEvent, SendOutcome, Stores};

fn ev(id: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.into(),
        routing_key: "messaging.test.v1".into(),
        delivery_key: "conv.x".into(),
        body: "{}".into(),
    }
}

fn new(conv: &str, sender: &str, cmid: &str, body: &str) -> NewMessage {
    NewMessage {
        id: minute_messaging::domain::new_message_id(),
        conversation_id: conv.into(),
        sender_id: sender.into(),
        client_message_id: cmid.into(),
        body: body.into(),
        reply_to_id: None,
        created_at: minute_messaging::domain::now_ms(),
    }
}

fn created_event(m: &Message) -> Vec<OutboxEvent> {
    vec![ev(&format!("created-{}", m.id))]
}

async fn send(s: &Stores, conv: &str, sender: &str, cmid: &str, body: &str) -> SendOutcome {
    s.messages
        .create(new(conv, sender, cmid, body), &created_event)
        .await
        .expect("create")
}

fn page(before: Option<i64>, after: Option<i64>, limit: i64) -> Page {
    Page::parse(before, after, limit).expect("page")
}

async fn conformance(s: Stores) {
    let m = &s.messages;
    // Seqs and idempotency.
    let a = send(&s, "c1", "alice", "k1", "hello brave world").await;
    let SendOutcome::Created(a) = a else {
        panic!("first send creates")
    };
    assert_eq!(a.seq, 1);
    let again = send(&s, "c1", "alice", "k1", "other").await;
    assert_eq!(again, SendOutcome::Existing(a.clone()));
    let b = send(&s, "c1", "bob", "k1", "Hello again")
        .await
        .message()
        .clone();
    assert_eq!(
        b.seq, 2,
        "a retry takes no seq; another sender's same key is a new message"
    );
    let c = send(&s, "c2", "bob", "k2", "elsewhere hello")
        .await
        .message()
        .clone();
    assert_eq!(c.seq, 1, "seqs are per conversation");
    for i in 3..=6 {
        send(&s, "c1", "alice", &format!("k{i}"), &format!("n{i}")).await;
    }
    // Reads.
    let got = m.get(&[a.id.clone(), "missing".into()]).await.expect("get");
    assert_eq!(got, vec![a.clone()]);
    let seqs = |v: &(Vec<Message>, bool)| (v.0.iter().map(|m| m.seq).collect::<Vec<_>>(), v.1);
    assert_eq!(
        seqs(&m.history("c1", page(None, None, 2)).await.expect("h")),
        (vec![5, 6], true)
    );
    assert_eq!(
        seqs(&m.history("c1", page(Some(3), None, 5)).await.expect("h")),
        (vec![1, 2], false)
    );
    assert_eq!(
        seqs(&m.history("c1", page(None, Some(4), 1)).await.expect("h")),
        (vec![5], true)
    );
    assert_eq!(
        seqs(&m.history("c1", page(Some(5), Some(1), 9)).await.expect("h")),
        (vec![2, 3, 4], false)
    );
    assert_eq!(
        seqs(&m.history("c1", page(None, None, 10)).await.expect("h")),
        (vec![1, 2, 3, 4, 5, 6], false)
    );
    assert_eq!(
        seqs(&m.history("c1", page(Some(100), None, 2)).await.expect("h")),
        (vec![5, 6], true)
    );
    assert_eq!(
        seqs(&m.history("c1", page(None, Some(6), 3)).await.expect("h")),
        (vec![], false)
    );
    assert_eq!(
        seqs(&m.history("c1", page(None, Some(5), 1)).await.expect("h")),
        (vec![6], false)
    );
    assert_eq!(
        seqs(&m.history("c1", page(None, Some(3), 3)).await.expect("h")),
        (vec![4, 5, 6], false)
    );
    assert_eq!(
        seqs(&m.history("c9", page(None, None, 3)).await.expect("h")),
        (vec![], false)
    );
    let last = m
        .last_seqs(&["c1".into(), "c2".into(), "c3".into()])
        .await
        .expect("last");
    assert_eq!(
        (last.get("c1"), last.get("c2"), last.get("c3")),
        (Some(&6), Some(&1), None)
    );
    let tips = m
        .at_seqs(&[("c1".into(), 6), ("c2".into(), 1)])
        .await
        .expect("at");
    assert_eq!(tips.len(), 2);
    let own = m
        .own_after("alice", &[("c1".into(), 2), ("c2".into(), 0)])
        .await
        .expect("own");
    assert_eq!(own.get("c1").copied().unwrap_or(0), 4);
    assert_eq!(own.get("c2").copied().unwrap_or(0), 0);

    // Compare-and-set replace, with events.
    let edited = Message {
        body: Some("goodbye world".into()),
        edited_at: Some(Utc::now()),
        ..a.clone()
    };
    assert!(
        m.replace(&a, &edited, vec![ev("e1")])
            .await
            .expect("replace")
    );
    assert!(
        !m.replace(&a, &edited, vec![ev("e2")]).await.expect("stale"),
        "stale rev refused"
    );
    let now = m
        .get(std::slice::from_ref(&a.id))
        .await
        .expect("get")
        .pop()
        .expect("there");
    assert_eq!(
        (now.body.as_deref(), now.rev, now.seq),
        (Some("goodbye world"), a.rev + 1, 1)
    );

    // Search: every word, newest first, not deleted, in scope only.
    let terms = |q: &str| SearchTerms::parse(q).expect("terms");
    let scope = vec!["c1".to_owned(), "c2".to_owned()];
    let hits = m.search(&scope, &terms("hello"), 10).await.expect("search");
    assert_eq!(
        hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
        vec![c.id.clone(), b.id.clone()]
    );
    assert!(
        m.search(&scope, &terms("brave"), 10)
            .await
            .expect("s")
            .is_empty(),
        "edited away"
    );
    assert_eq!(
        m.search(&scope, &terms("WORLD goodbye"), 10)
            .await
            .expect("s")
            .len(),
        1
    );
    assert_eq!(
        m.search(&["c1".to_owned()], &terms("elsewhere"), 10)
            .await
            .expect("s")
            .len(),
        0
    );
    let deleted = Message {
        body: None,
        deleted_at: Some(Utc::now()),
        ..now.clone()
    };
    assert!(m.replace(&now, &deleted, vec![]).await.expect("delete"));
    assert!(
        m.search(&scope, &terms("goodbye"), 10)
            .await
            .expect("s")
            .is_empty()
    );

    // Markers: monotonic.
    let at = Utc::now();
    assert!(
        m.mark("c1", "bob", MarkerKind::Read, 3, at, ev("r1"))
            .await
            .expect("mark")
    );
    assert!(
        !m.mark("c1", "bob", MarkerKind::Read, 2, at, ev("r2"))
            .await
            .expect("back")
    );
    assert!(
        m.mark("c1", "carol", MarkerKind::Read, 5, at, ev("r3"))
            .await
            .expect("mark")
    );
    assert!(
        m.mark("c1", "bob", MarkerKind::Delivered, 6, at, ev("d1"))
            .await
            .expect("mark")
    );
    let mine = m.markers_of("bob", &scope).await.expect("markers");
    assert_eq!((mine["c1"].read_seq, mine["c1"].delivered_seq), (3, 6));
    let top = m
        .top_markers("c1", MarkerKind::Read, 10)
        .await
        .expect("top");
    assert_eq!(
        top.iter().map(|t| t.user_id.as_str()).collect::<Vec<_>>(),
        vec!["carol", "bob"]
    );

    // Outbox: everything written is pending once; events added meanwhile stay pending.
    let pending = m.pending(1_000).await.expect("pending");
    let ids: Vec<String> = pending
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.id.clone()))
        .collect();
    for want in ["e1", "r1", "r3", "d1"] {
        assert!(ids.contains(&want.to_owned()), "{want} pending: {ids:?}");
    }
    assert!(
        !ids.contains(&"r2".to_owned()) && !ids.contains(&"e2".to_owned()),
        "refused writes add no events"
    );
    assert_eq!(ids.iter().filter(|i| i.starts_with("created-")).count(), 7);
    let b_now = m
        .get(std::slice::from_ref(&b.id))
        .await
        .expect("g")
        .pop()
        .expect("b");
    let late = Message {
        body: Some("late edit".into()),
        ..b_now.clone()
    };
    assert!(
        m.replace(&b_now, &late, vec![ev("late")])
            .await
            .expect("late")
    );
    // All at once (one write where the adapter can), one of them changed since it was read.
    m.mark_sent_many(&[]).await.expect("nothing to mark");
    m.mark_sent_many(&pending).await.expect("sent");
    let rest = m.pending(1_000).await.expect("pending");
    let rest_ids: Vec<String> = rest
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.id.clone()))
        .collect();
    assert_eq!(rest_ids, vec!["late".to_owned()]);
    for p in &rest {
        m.mark_sent(p).await.expect("sent");
    }
    assert!(m.pending(1_000).await.expect("pending").is_empty());
    // Unchanged items of both kinds of record, marked together.
    send(&s, "c-outbox", "alice", "k9", "one more").await;
    assert!(
        m.mark("c-outbox", "alice", MarkerKind::Read, 1, at, ev("r9"))
            .await
            .expect("mark")
    );
    let more = m.pending(1_000).await.expect("pending");
    assert_eq!(more.iter().map(|p| p.events.len()).sum::<usize>(), 2);
    m.mark_sent_many(&more).await.expect("sent");
    assert!(m.pending(1_000).await.expect("pending").is_empty());

    // Membership replica: newest version wins whatever the order; idempotent.
    let r = &s.members;
    let ch = |user: &str, role: Option<Role>, version: u64| MemberChange {
        conversation_id: "c1".into(),
        user_id: user.into(),
        role,
        version,
    };
    assert!(!r.knows_conversation("c1").await.expect("knows"));
    assert!(r.apply(&ch("dave", None, 3)).await.expect("apply"));
    assert!(
        !r.apply(&ch("dave", Some(Role::Member), 2))
            .await
            .expect("stale")
    );
    assert!(
        r.apply(&ch("erin", Some(Role::Admin), 2))
            .await
            .expect("apply")
    );
    assert!(
        !r.apply(&ch("erin", Some(Role::Admin), 2))
            .await
            .expect("again")
    );
    assert!(
        r.apply(&ch("erin", Some(Role::Owner), 4))
            .await
            .expect("newer")
    );
    assert_eq!(
        r.member("c1", "dave").await.expect("m").map(|m| m.role),
        Some(None)
    );
    assert_eq!(
        r.member("c1", "erin")
            .await
            .expect("m")
            .map(|m| (m.role, m.version)),
        Some((Some(Role::Owner), 4))
    );
    assert_eq!(r.member("c1", "zed").await.expect("m"), None);
    assert!(r.knows_conversation("c1").await.expect("knows"));
    assert_eq!(
        r.conversations_of("erin", 10).await.expect("of"),
        vec!["c1".to_owned()]
    );
    assert!(r.conversations_of("dave", 10).await.expect("of").is_empty());
    let ms = r.memberships("erin", &scope).await.expect("ms");
    assert_eq!(ms.len(), 1);
}

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = std::env::temp_dir().join(minute_testkit::unique("minute-messaging-store"));
    let s = Arc::new(SqliteStore::open(&dir.join("messaging.sqlite3")).expect("open"));
    conformance(Stores {
        messages: s.clone(),
        members: s,
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn mongo_store_conforms() {
    let db = minute_testkit::mongodb_database("messaging").await;
    let s = Arc::new(MongoStore::open(db.clone()).await.expect("open"));
    conformance(Stores {
        messages: s.clone(),
        members: s,
    })
    .await;
    let _ = db.drop().await;
}

/// Two replicas sending to one conversation at once: their seqs collide on the unique
/// `(conv, seq)` index and the loser moves on, so every send gets its own seq, with no gap,
/// and `lastSeq` follows.
#[tokio::test]
async fn mongo_replicas_sending_to_one_conversation_get_distinct_dense_seqs() {
    use minute_messaging::store::MessageStore;
    let db = minute_testkit::mongodb_database("messaging").await;
    let replicas = [
        Arc::new(MongoStore::open(db.clone()).await.expect("open")),
        Arc::new(MongoStore::open(db.clone()).await.expect("open")),
    ];
    let mut tasks = Vec::new();
    for (r, store) in replicas.iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..15 {
                    let m = store
                        .create(
                            new("hot", &format!("u{r}{t}"), &format!("k{i}"), "hi"),
                            &created_event,
                        )
                        .await
                        .expect("create");
                    seqs.push(m.message().seq);
                }
                seqs
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(all, (1..=120).collect::<Vec<i64>>());
    let last = replicas[0]
        .last_seqs(&["hot".to_owned()])
        .await
        .expect("last seqs");
    assert_eq!(last.get("hot"), Some(&120));
    let _ = db.drop().await;
}
