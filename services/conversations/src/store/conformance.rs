//! One behaviour for both adapters: every test here runs against SQLite (temp file) and
//! the MongoDB-wire server (`TEST_MONGODB_URI`, unique database).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::embedded::EmbeddedStore;
use super::mongo::MongoStore;
use super::{Created, OutboxEvent, Store, StoreError};
use crate::domain::{
    ActivityCursor, ConversationId, KnownUser, Role, Title, UserId, UserIds, rules,
};

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

fn event(id: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.to_owned(),
        routing_key: "conversations.test.v1".into(),
        delivery_keys: vec!["conv.x".into(), "user.y".into()],
        body: "{}".into(),
        traceparent: Some("00-abc-def-01".into()),
    }
}

async fn embedded() -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(minute_testkit::unique("conv-store"));
    Arc::new(EmbeddedStore::open(&dir.join("c.sqlite3")).expect("sqlite"))
}

async fn mongo() -> Arc<dyn Store> {
    let db = minute_testkit::mongodb_database("conversations").await;
    Arc::new(MongoStore::new(db).await.expect("mongo store"))
}

async fn create_and_read(store: Arc<dyn Store>) {
    let ids = UserIds::parse(&["b".to_owned(), "c".to_owned()], 10).unwrap();
    let g = rules::create_group(&uid("a"), Title::parse("T").unwrap(), ids, 10, now()).unwrap();
    assert_eq!(
        store.create(&g, &[event("e1")]).await.unwrap(),
        Created::Inserted
    );
    let c = g.conversation.clone();
    assert_eq!(store.conversation(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(
        store
            .conversations(std::slice::from_ref(&c.id))
            .await
            .unwrap(),
        vec![c.clone()]
    );
    let a = store.member(&c.id, &uid("a")).await.unwrap().unwrap();
    assert_eq!(a.role, Role::Owner);
    assert_eq!(a, g.members[0]);
    assert!(store.member(&c.id, &uid("z")).await.unwrap().is_none());
    let among = store
        .members_among(&c.id, &[uid("b"), uid("z")])
        .await
        .unwrap();
    assert_eq!(among.len(), 1);
    let p1 = store.members_page(&c.id, None, 2).await.unwrap();
    assert_eq!(
        p1.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let p2 = store.members_page(&c.id, Some(&uid("b")), 2).await.unwrap();
    assert_eq!(p2.len(), 1);
    assert_eq!(p2[0].user_id.as_str(), "c");
    assert_eq!(
        store.conversation_ids_of(&uid("b")).await.unwrap(),
        vec![c.id.clone()]
    );
    let pending = store.pending_outbox(10).await.unwrap();
    assert_eq!(pending, vec![event("e1")]);
    store.delete_outbox(&["e1".to_owned()]).await.unwrap();
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

async fn direct_pairs_are_unique(store: Arc<dyn Store>) {
    let first = rules::create_direct(&uid("p"), &uid("q"), now()).unwrap();
    assert_eq!(store.create(&first, &[]).await.unwrap(), Created::Inserted);
    let again = rules::create_direct(&uid("q"), &uid("p"), now()).unwrap();
    assert_eq!(
        store.create(&again, &[event("never")]).await.unwrap(),
        Created::ExistingDirect(first.conversation.id.clone())
    );
    assert!(
        store
            .conversation(&again.conversation.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store.pending_outbox(10).await.unwrap().is_empty(),
        "nothing half-written"
    );
}

async fn changes_are_optimistic(store: Arc<dyn Store>) {
    let g = rules::create_group(
        &uid("a"),
        Title::parse("T").unwrap(),
        UserIds::parse(&["b".to_owned()], 10).unwrap(),
        10,
        now(),
    )
    .unwrap();
    store.create(&g, &[]).await.unwrap();
    let c = g.conversation.clone();
    let (owner, b) = (&g.members[0], &g.members[1]);
    let ids = UserIds::parse(&["x".to_owned(), "y".to_owned()], 10).unwrap();
    let add = rules::add_members(&c, owner, &ids, &[], 10, now()).unwrap();
    store.apply(&add, &[event("add")]).await.unwrap();
    // The same decision again is stale: refused, and nothing of it is written.
    let rename = rules::rename(&c, owner, Title::parse("New").unwrap()).unwrap();
    assert!(matches!(
        store.apply(&rename, &[event("stale")]).await,
        Err(StoreError::VersionConflict)
    ));
    let c2 = store.conversation(&c.id).await.unwrap().unwrap();
    assert_eq!(
        (c2.version, c2.member_count, c2.title.as_deref()),
        (2, 4, Some("T"))
    );
    let promote = rules::set_role(&c2, owner, Some(b), Role::Admin).unwrap();
    store.apply(&promote, &[]).await.unwrap();
    assert_eq!(
        store.member(&c.id, &uid("b")).await.unwrap().unwrap().role,
        Role::Admin
    );
    let c3 = store.conversation(&c.id).await.unwrap().unwrap();
    let x = store.member(&c.id, &uid("x")).await.unwrap().unwrap();
    let remove = rules::remove_member(&c3, owner, Some(&x)).unwrap();
    store.apply(&remove, &[]).await.unwrap();
    let rename = rules::rename(&c3, owner, Title::parse("New").unwrap()).unwrap();
    assert!(
        store.apply(&rename, &[]).await.is_err(),
        "stale after remove"
    );
    let c4 = store.conversation(&c.id).await.unwrap().unwrap();
    store
        .apply(
            &rules::rename(&c4, owner, Title::parse("New").unwrap()).unwrap(),
            &[],
        )
        .await
        .unwrap();
    let c5 = store.conversation(&c.id).await.unwrap().unwrap();
    assert_eq!(
        (c5.version, c5.member_count, c5.title.as_deref()),
        (5, 3, Some("New"))
    );
    assert!(store.member(&c.id, &uid("x")).await.unwrap().is_none());
    let ids: Vec<String> = store
        .pending_outbox(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["add"]);
}

async fn activity_orders_and_pages(store: Arc<dyn Store>) {
    let me = uid("me");
    let mut convs = Vec::new();
    for i in 0..3 {
        let g = rules::create_group(
            &me,
            Title::parse(&format!("g{i}")).unwrap(),
            UserIds::parse(&[], 10).unwrap(),
            10,
            now(),
        )
        .unwrap();
        store.create(&g, &[]).await.unwrap();
        convs.push(g.conversation.id);
    }
    let base = now().timestamp_millis() + 10_000;
    assert!(
        store
            .record_activity("m1", &convs[0], base + 3)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_activity("m1", &convs[0], base + 3)
            .await
            .unwrap(),
        "once per event"
    );
    assert!(
        store
            .record_activity("m2", &convs[2], base + 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_activity("m3", &convs[0], base + 1)
            .await
            .unwrap(),
        "older: no move"
    );
    let order = |rows: &[super::Membership]| -> Vec<ConversationId> {
        rows.iter()
            .map(|r| r.member.conversation_id.clone())
            .collect()
    };
    let all = store.memberships(&me, None, 10).await.unwrap();
    assert_eq!(
        order(&all),
        [convs[0].clone(), convs[2].clone(), convs[1].clone()]
    );
    assert_eq!(all[0].activity_ms, base + 3);
    let first = store.memberships(&me, None, 1).await.unwrap();
    let cursor = ActivityCursor {
        activity_ms: first[0].activity_ms,
        conversation_id: first[0].member.conversation_id.clone(),
    };
    let rest = store.memberships(&me, Some(&cursor), 10).await.unwrap();
    assert_eq!(order(&rest), [convs[2].clone(), convs[1].clone()]);
    let c0 = store.conversation(&convs[0]).await.unwrap().unwrap();
    assert_eq!(c0.last_activity_ms, base + 3);
}

async fn users_replica(store: Arc<dyn Store>) {
    let u = KnownUser {
        id: uid("u1"),
        username: Some("alice".into()),
    };
    assert!(store.record_registered("r1", &u).await.unwrap());
    assert!(!store.record_registered("r1", &u).await.unwrap());
    store
        .remember(&[
            u.clone(),
            KnownUser {
                id: uid("u2"),
                username: None,
            },
        ])
        .await
        .unwrap();
    let known = store
        .known(&[uid("u1"), uid("u2"), uid("u3")])
        .await
        .unwrap();
    assert_eq!(known.len(), 2);
    assert!(!known.contains(&uid("u3")));
}

macro_rules! suite {
    ($adapter:ident: $($test:ident),*) => {
        mod $adapter {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::$adapter().await).await;
                }
            )*
        }
    };
}

suite!(embedded: create_and_read, direct_pairs_are_unique, changes_are_optimistic, activity_orders_and_pages, users_replica);
suite!(mongo: create_and_read, direct_pairs_are_unique, changes_are_optimistic, activity_orders_and_pages, users_replica);
