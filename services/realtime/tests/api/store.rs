//! The membership store conformance suite on both adapters.

use minute_realtime::store::conformance;
use minute_realtime::store::embedded::SqliteMemberships;
use minute_realtime::store::mongo::MongoMemberships;

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = std::env::temp_dir().join(minute_testkit::unique("realtime-store"));
    let store = SqliteMemberships::open(&dir.join("realtime.sqlite3")).expect("open");
    conformance::run(&store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn mongo_store_conforms() {
    let db = minute_testkit::mongodb_database("realtime").await;
    let store = MongoMemberships::new(db.clone()).await.expect("store");
    conformance::run(&store).await;
    let _ = db.drop().await;
}
