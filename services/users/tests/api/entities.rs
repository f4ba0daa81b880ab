//! The `User` federation entity: batched resolution (one store query for 50
//! representations), `_service { sdl }` and the committed SDL.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::helpers::{CountingStore, mongo_store, spawn_app_on};

const ENTITIES: &str = "query($r: [_Any!]!) { _entities(representations: $r) { \
                        ... on User { id username displayName } } }";

#[tokio::test]
async fn fifty_representations_cost_one_store_query() {
    let counting = CountingStore::new(mongo_store().await);
    let app = spawn_app_on(counting.clone()).await;
    let users: Vec<_> = (0..50)
        .map(|i| {
            let id = uuid::Uuid::now_v7().to_string();
            (id, format!("sender{i:02}"), Some(format!("Sender {i}")))
        })
        .collect();
    app.register_many(&users).await;

    let before = counting.reads();
    let reps: Vec<Value> = users
        .iter()
        .map(|(id, _, _)| json!({"__typename": "User", "id": id}))
        .collect();
    // The gateway calls `_entities` with the end user's token, or none (e.g. after
    // `register`); entity resolution does not need one.
    let data = app.anonymous().ok(ENTITIES, json!({"r": reps})).await;
    let got = data["_entities"].as_array().expect("list");
    assert_eq!(got.len(), 50);
    for (u, (id, name, _)) in got.iter().zip(&users) {
        assert_eq!(u["id"], id.as_str(), "order follows the representations");
        assert_eq!(u["username"], name.as_str());
    }
    let after = counting.reads();
    assert_eq!(after.1 - before.1, 1, "one batched query for 50 users");
    assert_eq!(after.0, before.0, "no single-user reads");
    assert!(counting.get_many_keys.load(Ordering::SeqCst) >= 50);
}

#[tokio::test]
async fn an_unknown_entity_is_null_not_a_wrong_user() {
    let app = spawn_app_on(mongo_store().await).await;
    let (id, u) = app.user("known");
    u.ok("{ me { id } }", json!({})).await;
    let reps = json!([
        {"__typename": "User", "id": "no-such-user"},
        {"__typename": "User", "id": id},
        {"__typename": "User", "id": ""}
    ]);
    let data = app.anonymous().ok(ENTITIES, json!({"r": reps})).await;
    assert_eq!(data["_entities"][0], Value::Null);
    assert_eq!(data["_entities"][1]["username"], "known");
    assert_eq!(data["_entities"][2], Value::Null);
}

/// `register { user { displayName } }`: the gateway asks for the new user at once, before
/// the registration event has been consumed; the reference resolves once it lands.
#[tokio::test]
async fn a_reference_right_after_register_resolves() {
    let app = spawn_app_on(mongo_store().await).await;
    let id = uuid::Uuid::now_v7().to_string();
    let client = app.anonymous();
    let reps = json!([{"__typename": "User", "id": id}]);
    let ask = tokio::spawn(async move { client.ok(ENTITIES, json!({"r": reps})).await });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    app.registered(&id, "newcomer", Some("New Comer")).await;
    let data = ask.await.expect("task");
    assert_eq!(data["_entities"][0]["displayName"], "New Comer");
}

#[tokio::test]
async fn service_sdl_matches_the_committed_schema() {
    let app = spawn_app_on(mongo_store().await).await;
    let data = app.anonymous().ok("{ _service { sdl } }", json!({})).await;
    let sdl = data["_service"]["sdl"].as_str().expect("sdl");
    for needle in [
        "type User @key(fields: \"id\")",
        "searchUsers(query: String!, first: Int = 20): [User!]!",
        "updateProfile(input: UpdateProfileInput!): User!",
    ] {
        assert!(sdl.contains(needle), "{needle} in {sdl}");
    }
    assert!(sdl.contains("me: User!"));
    assert!(sdl.contains("user(id: ID!): User"));
}

/// Fails when the code's SDL differs from `schema.graphql`; regenerate with
/// `UPDATE_SCHEMA=1 cargo test -p minute-users schema_file` and review the diff.
#[test]
fn schema_file_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = minute_users::api::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "services/users/schema.graphql is out of date; run UPDATE_SCHEMA=1 cargo test -p \
         minute-users schema_file and commit it"
    );
}
