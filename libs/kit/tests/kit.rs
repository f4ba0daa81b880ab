//! The kit against real servers: the MongoDB helper on the MongoDB-wire server, revocation
//! on Redis, and `/healthz` + `/readyz` over HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use minute_kit::auth::{Authenticator, JwtKeys, RedisRevocations};
use minute_kit::config::{Env, JwtSettings};
use minute_kit::http::{FnCheck, Readiness};
use minute_kit::mongo::{self, MongoSettings};
use mongodb::IndexModel;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;

async fn database() -> mongodb::Database {
    let env = Env::from_pairs([
        ("DATABASE_URL", minute_testkit::mongodb_uri()),
        (
            "USERS_DATABASE_NAME",
            minute_testkit::unique_database("kit"),
        ),
    ]);
    let settings = MongoSettings::from_env(&env, "users")
        .expect("valid")
        .expect("set");
    mongo::connect(&settings).await.expect("client")
}

#[tokio::test]
async fn mongo_insert_find_sort_limit() {
    let db = database().await;
    let c = db.collection::<Document>("items");
    let docs: Vec<Document> = (0..10).map(|i| doc! {"n": i, "even": i % 2 == 0}).collect();
    c.insert_many(docs).await.expect("insert");
    let found: Vec<Document> = c
        .find(doc! {"even": true})
        .sort(doc! {"n": -1})
        .limit(3)
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("cursor");
    let ns: Vec<i32> = found.iter().map(|d| d.get_i32("n").expect("n")).collect();
    assert_eq!(ns, [8, 6, 4]);
    db.drop().await.ok();
}

#[tokio::test]
async fn mongo_unique_index_rejects_a_duplicate() {
    let db = database().await;
    let unique = IndexModel::builder()
        .keys(doc! {"username": 1})
        .options(IndexOptions::builder().unique(true).build())
        .build();
    mongo::ensure_indexes(&db, "accounts", vec![unique.clone()])
        .await
        .expect("index");
    // Idempotent: creating it again is fine.
    mongo::ensure_indexes(&db, "accounts", vec![unique])
        .await
        .expect("again");
    let c = db.collection::<Document>("accounts");
    c.insert_one(doc! {"username": "alice"})
        .await
        .expect("first");
    let e = c
        .insert_one(doc! {"username": "alice"})
        .await
        .expect_err("duplicate refused");
    assert!(mongo::is_duplicate_key(&e), "E11000 recognised: {e}");
    db.drop().await.ok();
}

#[tokio::test]
async fn mongo_atomic_counter_under_50_concurrent_tasks() {
    let db = database().await;
    let c = db.collection::<Document>("counters");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            mongo::increment(&c, "conv-1", "seq", 1)
                .await
                .expect("findOneAndUpdate $inc")
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.expect("task"));
    }
    got.sort_unstable();
    assert_eq!(got, (1..=50).collect::<Vec<i64>>(), "no duplicate, no gap");
    db.drop().await.ok();
}

#[tokio::test]
async fn mongo_readiness_reports_an_unreachable_server() {
    let settings = MongoSettings {
        url: "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300".into(),
        database: "x".into(),
        max_pool_size: 1,
        timeout: Duration::from_millis(300),
    };
    let db = mongo::connect(&settings).await.expect("lazy client");
    let r = Readiness::new().with(Arc::new(mongo::MongoCheck(db)));
    let (ok, body) = r.report().await;
    assert!(!ok);
    assert_eq!(body["checks"]["database"]["ready"], false);
}

#[tokio::test]
async fn redis_revocation_is_seen_by_another_replica() {
    let url = minute_testkit::redis_url();
    let prefix = format!("{}:", minute_testkit::unique("kit"));
    let a = minute_kit::redis::connect(&url).await.expect("redis");
    let b = minute_kit::redis::connect(&url).await.expect("redis");
    let settings = JwtSettings::from_env(
        &Env::from_pairs([("JWT_SECRET", "0123456789abcdef0123456789abcdef")]),
        None,
    )
    .expect("jwt");
    let replica_a = Authenticator::new(
        JwtKeys::new(&settings),
        Arc::new(RedisRevocations::new(a, prefix.clone())),
    );
    let replica_b = Authenticator::new(
        JwtKeys::new(&settings),
        Arc::new(RedisRevocations::new(b, prefix)),
    );
    let token = replica_a.keys().issue("u1", "sess-1", None);
    let bearer = format!("Bearer {token}");
    assert!(replica_b.header(&bearer).await.is_ok());
    replica_a
        .revocations()
        .revoke("sess-1", Duration::from_secs(60))
        .await
        .expect("revoke");
    let e = replica_b
        .header(&bearer)
        .await
        .expect_err("revoked everywhere");
    assert_eq!(e.code, minute_kit::ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn healthz_and_readyz_over_http() {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = flag.clone();
    let readiness = Readiness::new().with(FnCheck::new("broker", move || {
        let ready = f2.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if ready {
                Ok(())
            } else {
                Err("connecting".to_owned())
            }
        }
    }));
    let listener = minute_kit::http::bind("127.0.0.1", 0).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(minute_kit::http::serve(
        listener,
        minute_kit::http::health_routes(readiness),
        stop.clone(),
    ));
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    let not_ready = get("/readyz").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    let body: serde_json::Value =
        serde_json::from_str(not_ready.split("\r\n\r\n").nth(1).expect("body")).expect("JSON body");
    assert_eq!(body["checks"]["broker"]["ready"], false);
    assert_eq!(body["checks"]["broker"]["error"], "connecting");
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("graceful stop")
        .expect("join")
        .expect("serve");
}
