//! The store conformance suite, run on both adapters: MongoDB (the wire server) and
//! SQLite (a temp dir).

use std::sync::Arc;

use chrono::Utc;
use minute_users::domain::{Profile, SearchQuery, UserId};
use minute_users::store::{OutboxEntry, SqliteStore, UserStore};

fn profile(id: &str, username: &str, display: &str) -> Profile {
    let mut p = Profile::provisional(UserId::parse(id).unwrap(), username, Utc::now());
    p.display_name = display.to_owned();
    p.provisional = false;
    p
}

fn event(n: &str) -> OutboxEntry {
    OutboxEntry {
        id: format!("{n}-{}", uuid::Uuid::new_v4()),
        routing_key: "users.user.updated.v1".into(),
        body: format!("{{\"n\":\"{n}\"}}"),
    }
}

fn names(v: &[Profile]) -> Vec<&str> {
    v.iter().map(|p| p.username.as_str()).collect()
}

fn q(s: &str) -> SearchQuery {
    SearchQuery::parse(s).unwrap()
}

async fn insert_get_replace(s: Arc<dyn UserStore>) {
    let mut p = profile("u1", "ada", "Ada");
    p.avatar_url = Some("https://x.example/a.png".into());
    p.bio = Some("bio".into());
    p.registered_event = Some("e1".into());
    assert!(s.insert(&p, &event("a")).await.unwrap());
    let got = s.get(&p.id).await.unwrap().expect("stored");
    assert_eq!(got.id, p.id);
    assert_eq!(
        (
            got.username.as_str(),
            got.display_name.as_str(),
            got.version
        ),
        ("ada", "Ada", 1)
    );
    assert_eq!(got.avatar_url, p.avatar_url);
    assert_eq!(got.bio, p.bio);
    assert_eq!(got.registered_event.as_deref(), Some("e1"));
    assert_eq!(
        got.created_at.timestamp_millis(),
        p.created_at.timestamp_millis()
    );

    // A second insert of the same id writes nothing (not even its event).
    let other = profile("u1", "mallory", "Mallory");
    assert!(!s.insert(&other, &event("dup")).await.unwrap());
    assert_eq!(s.get(&p.id).await.unwrap().unwrap().username, "ada");

    // Versioned replace: the right version wins once; a stale one writes nothing.
    let mut next = got.clone();
    next.display_name = "Ada L.".into();
    next.avatar_url = None;
    next.version = 2;
    assert!(s.replace(&next, &event("b")).await.unwrap());
    assert!(!s.replace(&next, &event("stale")).await.unwrap());
    let got = s.get(&p.id).await.unwrap().unwrap();
    assert_eq!((got.display_name.as_str(), got.version), ("Ada L.", 2));
    assert_eq!(got.avatar_url, None);
    let ghost = profile("ghost", "ghost", "Ghost");
    assert!(
        !s.replace(
            &Profile {
                version: 2,
                ..ghost
            },
            &event("g")
        )
        .await
        .unwrap()
    );
    assert!(
        s.get(&UserId::parse("nobody").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let pending = s.pending(100).await.unwrap();
    let bodies: Vec<&str> = pending.iter().map(|p| p.entry.body.as_str()).collect();
    assert_eq!(
        bodies,
        vec!["{\"n\":\"a\"}", "{\"n\":\"b\"}"],
        "only written events, in order"
    );
}

async fn get_many(s: Arc<dyn UserStore>) {
    for i in 0..5 {
        let p = profile(&format!("m{i}"), &format!("m{i}"), "M");
        s.insert(&p, &event("x")).await.unwrap();
    }
    let ids: Vec<UserId> = ["m0", "m3", "nope", "m4"]
        .iter()
        .map(|i| UserId::parse(i).unwrap())
        .collect();
    let mut got = names(&s.get_many(&ids).await.unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    got.sort();
    assert_eq!(got, vec!["m0", "m3", "m4"]);
    assert!(s.get_many(&[]).await.unwrap().is_empty());
}

async fn search(s: Arc<dyn UserStore>) {
    for (id, u, d) in [
        ("s1", "alice", "Zed"),
        ("s2", "alfred", "Alfred Q"),
        ("s3", "bob", "Alpha Bob"),
        ("s4", "carl", "ÅSA Öberg"),
        ("s5", "al", "Plain"),
        ("s6", "dan", "al%_.*"),
        ("s7", "ak", "Ak"),
        ("s8", "am", "Am"),
    ] {
        s.insert(&profile(id, u, d), &event("x")).await.unwrap();
    }
    assert_eq!(
        names(&s.search(&q("AL"), 10).await.unwrap()),
        vec!["al", "alfred", "alice", "dan", "bob"],
        "usernames first (by username), then display names (by display name), no duplicates"
    );
    assert_eq!(
        names(&s.search(&q("al"), 2).await.unwrap()),
        vec!["al", "alfred"]
    );
    assert_eq!(
        names(&s.search(&q("al"), 4).await.unwrap()),
        vec!["al", "alfred", "alice", "dan"]
    );
    assert_eq!(
        names(&s.search(&q("åsa ö"), 10).await.unwrap()),
        vec!["carl"]
    );
    assert_eq!(names(&s.search(&q("al%_"), 10).await.unwrap()), vec!["dan"]);
    assert!(s.search(&q("a%"), 10).await.unwrap().is_empty());
    assert!(
        s.search(&q("lice"), 10).await.unwrap().is_empty(),
        "prefix only"
    );
    assert!(s.search(&q("alicea"), 10).await.unwrap().is_empty());
    assert!(s.search(&q("zz"), 10).await.unwrap().is_empty());
    // A display name edit moves the profile in the index.
    let mut p = s.get(&UserId::parse("s1").unwrap()).await.unwrap().unwrap();
    p.display_name = "Quinn".into();
    p.version += 1;
    assert!(s.replace(&p, &event("y")).await.unwrap());
    assert_eq!(names(&s.search(&q("qu"), 10).await.unwrap()), vec!["alice"]);
    assert!(s.search(&q("zed"), 10).await.unwrap().is_empty());
}

async fn outbox(s: Arc<dyn UserStore>) {
    let a = profile("o1", "o1", "O1");
    let b = profile("o2", "o2", "O2");
    let (e1, e2, e3) = (event("1"), event("2"), event("3"));
    s.insert(&a, &e1).await.unwrap();
    s.insert(&b, &e2).await.unwrap();
    let mut a2 = a.clone();
    a2.version = 2;
    a2.bio = Some("x".into());
    s.replace(&a2, &e3).await.unwrap();
    let ids = |v: Vec<minute_users::store::Pending>| {
        let mut ids: Vec<String> = v.into_iter().map(|p| p.entry.id).collect();
        ids.sort();
        ids
    };
    let mut all = vec![e1.id.clone(), e2.id.clone(), e3.id.clone()];
    all.sort();
    assert_eq!(ids(s.pending(10).await.unwrap()), all);
    let first = s.pending(10).await.unwrap();
    let pos = |id: &str| first.iter().position(|p| p.entry.id == id).unwrap();
    assert!(pos(&e1.id) < pos(&e3.id), "per-profile order kept");
    assert_eq!(first[pos(&e1.id)].user_id.as_str(), "o1");
    assert_eq!(
        first[pos(&e1.id)].entry.routing_key,
        "users.user.updated.v1"
    );

    s.mark_sent(&a.id, &e1.id).await.unwrap();
    let mut rest = vec![e2.id.clone(), e3.id.clone()];
    rest.sort();
    assert_eq!(ids(s.pending(10).await.unwrap()), rest);
    s.mark_sent(&a.id, &e3.id).await.unwrap();
    s.mark_sent(&b.id, &e2.id).await.unwrap();
    assert!(s.pending(10).await.unwrap().is_empty());
    // Marking twice is harmless; a later write is pending again.
    s.mark_sent(&b.id, &e2.id).await.unwrap();
    let mut b2 = b.clone();
    b2.version = 2;
    b2.bio = Some("y".into());
    let e4 = event("4");
    s.replace(&b2, &e4).await.unwrap();
    assert_eq!(ids(s.pending(10).await.unwrap()), vec![e4.id.clone()]);
    s.ping().await.unwrap();
}

fn sqlite() -> Arc<dyn UserStore> {
    let dir = std::env::temp_dir().join(minute_testkit::unique("users-store"));
    Arc::new(SqliteStore::open(&dir.join("nested").join("users.sqlite3")).unwrap())
}

macro_rules! conformance {
    ($($case:ident),*) => {
        mod mongo {
            $(#[tokio::test] async fn $case() { super::$case(crate::helpers::mongo_store().await).await; })*
        }
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::$case(super::sqlite()).await; })*
        }
    };
}

conformance!(insert_get_replace, get_many, search, outbox);

/// The prefix search on MongoDB is an index range scan: the server's own `explain`
/// shows an `IXSCAN` on our index, and only the matching keys are examined.
#[tokio::test]
async fn mongo_search_is_index_served() {
    use mongodb::bson::doc;
    let db = minute_kit::mongo::connect(&crate::helpers::mongo_settings())
        .await
        .unwrap();
    let s = minute_users::store::MongoStore::open(db.clone())
        .await
        .unwrap();
    for i in 0..30 {
        let u = if i < 3 {
            format!("zed{i}")
        } else {
            format!("user{i}")
        };
        s.insert(
            &profile(&format!("x{i}"), &u, &format!("Name {i}")),
            &event("x"),
        )
        .await
        .unwrap();
    }
    let query = q("ZED");
    for (field, index) in [
        ("username_lc", "username_lc"),
        ("display_name_lc", "display_name_lc"),
    ] {
        let explain = db
            .run_command(doc! {
                "explain": {
                    "find": "profiles",
                    "filter": {field: {"$gte": query.prefix(), "$lt": query.upper_bound()}},
                    "sort": {field: 1, "_id": 1},
                    "limit": 20,
                },
                "verbosity": "executionStats",
            })
            .await
            .unwrap();
        let text = explain.to_string();
        assert!(text.contains("IXSCAN"), "{text}");
        assert!(
            text.contains(&format!("\"indexName\": \"{index}\"")),
            "{text}"
        );
        let stats = explain.get_document("executionStats").unwrap();
        let examined = |k: &str| {
            stats
                .get_i64(k)
                .or_else(|_| stats.get_i32(k).map(i64::from))
                .unwrap()
        };
        let expected = if field == "username_lc" { 3 } else { 0 };
        assert!(examined("totalDocsExamined") <= expected, "{text}");
        assert!(examined("totalKeysExamined") <= expected + 1, "{text}");
    }
}
