//! The storage conformance suite, run on the MongoDB adapter and on the SQLite one.

use std::sync::Arc;

use chrono::{Duration, Utc};
use minute_auth::events::{OutboxEvent, account_registered, session_revoked};
use minute_auth::store::embedded::SqliteStore;
use minute_auth::store::mongo::MongoStore;
use minute_auth::store::{
    Account, AuthStore, NewSession, RevocationEvent, RevokeScope, Rotation, SessionRef, StoreError,
};

fn account(id: &str, username: &str) -> Account {
    Account {
        id: id.into(),
        username: username.into(),
        password_hash: format!("hash-of-{id}"),
        created_at: Utc::now(),
    }
}

fn registered(a: &Account) -> OutboxEvent {
    account_registered(
        &a.id,
        &a.username,
        None,
        a.created_at,
        Some("00-trace-span-01".into()),
    )
}

fn session(id: &str, user: &Account, token_hash: &str, ttl: Duration) -> NewSession {
    let now = Utc::now();
    NewSession {
        id: id.into(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        device_name: Some("phone".into()),
        token_hash: token_hash.into(),
        created_at: now,
        expires_at: now + ttl,
    }
}

fn revoked_event(user: &str, reason: &'static str) -> RevocationEvent {
    let user = user.to_owned();
    Arc::new(move |ids: &[String]| session_revoked(&user, ids, reason, None))
}

async fn accounts_are_unique_and_carry_their_event(store: Arc<dyn AuthStore>) {
    let ada = account("u1", "ada");
    store
        .create_account(&ada, &registered(&ada))
        .await
        .expect("created");
    let clash = account("u2", "ada");
    assert!(matches!(
        store.create_account(&clash, &registered(&clash)).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(
        store
            .account_by_username("ada")
            .await
            .expect("read")
            .map(|a| a.id),
        Some("u1".into())
    );
    assert_eq!(
        store
            .account_by_id("u1")
            .await
            .expect("read")
            .map(|a| a.username),
        Some("ada".into())
    );
    assert_eq!(
        store.account_by_username("nobody").await.expect("read"),
        None
    );

    let (x, y) = (account("u3", "race"), account("u4", "race"));
    let (ex, ey) = (registered(&x), registered(&y));
    let (a, b) = tokio::join!(store.create_account(&x, &ex), store.create_account(&y, &ey));
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "{a:?} {b:?}"
    );

    let counts = store.counts().await.expect("counts");
    assert_eq!(
        (counts.accounts, counts.outbox),
        (2, 2),
        "a refused write stores no event"
    );
    let pending = store.pending_events(10).await.expect("pending");
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].routing_key, "auth.account.registered.v1");
    assert_eq!(pending[0].traceparent.as_deref(), Some("00-trace-span-01"));
    assert!(
        pending[0].body.contains("\"username\":\"ada\""),
        "oldest first"
    );
    for e in &pending {
        store.mark_sent(&e.id).await.expect("sent");
    }
    assert!(store.pending_events(10).await.expect("pending").is_empty());
}

async fn refresh_tokens_rotate_once(store: Arc<dyn AuthStore>) {
    let bo = account("u1", "bo");
    store
        .create_account(&bo, &registered(&bo))
        .await
        .expect("created");
    store
        .create_session(&session("s1", &bo, "h1", Duration::days(1)))
        .await
        .expect("session");
    let now = Utc::now();
    let later = now + Duration::days(1);
    let s1 = SessionRef {
        session_id: "s1".into(),
        user_id: "u1".into(),
        username: "bo".into(),
    };

    assert_eq!(
        store.rotate("h1", "h2", now, later).await.expect("rotate"),
        Rotation::Rotated(s1.clone())
    );
    assert_eq!(
        store.rotate("h1", "h3", now, later).await.expect("rotate"),
        Rotation::Reused(s1.clone())
    );
    assert_eq!(
        store
            .rotate("nope", "h4", now, later)
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    assert_eq!(
        store.rotate("h2", "h5", now, later).await.expect("rotate"),
        Rotation::Rotated(s1)
    );

    store
        .create_session(&session("s2", &bo, "old", Duration::seconds(-1)))
        .await
        .expect("session");
    assert_eq!(
        store
            .rotate("old", "h6", Utc::now(), later)
            .await
            .expect("rotate"),
        Rotation::Invalid,
        "expired"
    );

    store
        .create_session(&session("s3", &bo, "r1", Duration::days(1)))
        .await
        .expect("session");
    let (a, b) = tokio::join!(
        store.rotate("r1", "ra", now, later),
        store.rotate("r1", "rb", now, later)
    );
    let rotated = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(Rotation::Rotated(_))))
        .count();
    assert_eq!(rotated, 1, "one winner: {a:?} {b:?}");
}

async fn revocations_are_scoped_and_evented(store: Arc<dyn AuthStore>) {
    let cy = account("u1", "cy");
    let other = account("u2", "other");
    for a in [&cy, &other] {
        store
            .create_account(a, &registered(a))
            .await
            .expect("created");
    }
    for (sid, hash) in [("s1", "h1"), ("s2", "h2"), ("s3", "h3")] {
        store
            .create_session(&session(sid, &cy, hash, Duration::days(1)))
            .await
            .expect("session");
    }
    store
        .create_session(&session("o1", &other, "oh", Duration::days(1)))
        .await
        .expect("session");
    for e in store.pending_events(10).await.expect("pending") {
        store.mark_sent(&e.id).await.expect("sent");
    }
    let now = Utc::now();
    let event = revoked_event("u1", "logout");

    let one = store
        .revoke_sessions(
            "u1",
            RevokeScope::Session("s1"),
            "logout",
            now,
            event.clone(),
        )
        .await
        .expect("revoke");
    assert_eq!(one, ["s1"]);
    assert_eq!(
        store
            .rotate("h1", "x1", now, now + Duration::days(1))
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    let again = store
        .revoke_sessions(
            "u1",
            RevokeScope::Session("s1"),
            "logout",
            now,
            event.clone(),
        )
        .await
        .expect("revoke");
    assert!(again.is_empty());
    let foreign = store
        .revoke_sessions(
            "u1",
            RevokeScope::Session("o1"),
            "logout",
            now,
            event.clone(),
        )
        .await
        .expect("revoke");
    assert!(foreign.is_empty(), "only the user's own sessions");
    let pending = store.pending_events(10).await.expect("pending");
    assert_eq!(pending.len(), 1, "one event per effective revocation");
    assert!(
        pending[0].body.contains("\"session_ids\":[\"s1\"]"),
        "{}",
        pending[0].body
    );

    let changed = store
        .change_password(
            "u1",
            "new-hash",
            "s2",
            now,
            revoked_event("u1", "password_changed"),
        )
        .await
        .expect("change");
    assert_eq!(changed, ["s3"]);
    assert_eq!(
        store
            .account_by_id("u1")
            .await
            .expect("read")
            .map(|a| a.password_hash),
        Some("new-hash".into())
    );
    let all = store
        .revoke_sessions(
            "u1",
            RevokeScope::All,
            "logout_all",
            now,
            revoked_event("u1", "logout_all"),
        )
        .await
        .expect("revoke");
    assert_eq!(all, ["s2"]);
    assert_eq!(store.counts().await.expect("counts").outbox, 3);
    assert!(
        matches!(
            store.rotate("oh", "ox", now, now + Duration::days(1)).await,
            Ok(Rotation::Rotated(_))
        ),
        "other users untouched"
    );
}

async fn mongo() -> Arc<dyn AuthStore> {
    let db = minute_testkit::mongodb_database("auth").await;
    Arc::new(MongoStore::new(db).await.expect("mongo store"))
}

fn sqlite() -> Arc<dyn AuthStore> {
    let dir = std::env::temp_dir().join(minute_testkit::unique("auth-sqlite"));
    Arc::new(SqliteStore::open(&dir.join("auth.sqlite3")).expect("sqlite store"))
}

macro_rules! conformance {
    ($($case:ident),*) => {
        mod on_mongo {
            $( #[tokio::test] async fn $case() { super::$case(super::mongo().await).await } )*
        }
        mod on_sqlite {
            $( #[tokio::test] async fn $case() { super::$case(super::sqlite()).await } )*
        }
    };
}

async fn expired_sessions_and_tokens_are_purged(store: Arc<dyn AuthStore>) {
    let di = account("u1", "di");
    store
        .create_account(&di, &registered(&di))
        .await
        .expect("created");
    store
        .create_session(&session("live", &di, "h-live", Duration::days(1)))
        .await
        .expect("session");
    store
        .create_session(&session("gone", &di, "h-gone", Duration::seconds(-5)))
        .await
        .expect("session");
    let now = Utc::now();
    assert!(matches!(
        store
            .rotate("h-live", "h-live-2", now, now + Duration::days(1))
            .await,
        Ok(Rotation::Rotated(_))
    ));
    assert_eq!(store.purge_expired(Utc::now()).await.expect("purge"), 2);
    let counts = store.counts().await.expect("counts");
    assert_eq!((counts.sessions, counts.refresh_tokens), (1, 2));
    assert!(
        matches!(
            store
                .rotate("h-live-2", "h-live-3", now, now + Duration::days(1))
                .await,
            Ok(Rotation::Rotated(_))
        ),
        "the live session is untouched"
    );
}

conformance!(
    expired_sessions_and_tokens_are_purged,
    accounts_are_unique_and_carry_their_event,
    refresh_tokens_rotate_once,
    revocations_are_scoped_and_evented
);
