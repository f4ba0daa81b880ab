//! `me` and `user`: the profile from the registration event, read-your-writes before
//! it, idempotent redelivery.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{ME, code, spawn_app};

#[tokio::test]
async fn the_registration_event_creates_the_profile() {
    let app = spawn_app().await;
    let mut updates = app.watch_updates().await;
    let (id, alice) = app.user("alice");
    app.registered(&id, "alice", Some("Alice A.")).await;
    let p = app
        .wait_for_profile(&id, |p| p["displayName"] == "Alice A.")
        .await;
    assert_eq!(p["username"], "alice");
    let me = alice.ok(ME, json!({})).await;
    assert_eq!(me["me"]["displayName"], "Alice A.");
    assert_eq!(me["me"]["avatarUrl"], serde_json::Value::Null);
    let ev = updates.next_for(&id).await.expect("users.user.updated.v1");
    assert_eq!(ev.data.display_name, "Alice A.");
}

#[tokio::test]
async fn display_name_defaults_to_the_username() {
    let app = spawn_app().await;
    let (id, _) = app.user("bob");
    app.registered(&id, "bob", None).await;
    app.wait_for_profile(&id, |p| p["displayName"] == "bob")
        .await;
}

#[tokio::test]
async fn me_before_the_event_then_the_event_fills_the_name() {
    let app = spawn_app().await;
    let (id, carol) = app.user("carol");
    // The event has not been published: `me` answers from the token's claims.
    let me = carol.ok(ME, json!({})).await["me"].clone();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["username"], "carol");
    assert_eq!(me["displayName"], "carol");
    app.registered(&id, "carol", Some("Carol C.")).await;
    app.wait_for_profile(&id, |p| p["displayName"] == "Carol C.")
        .await;
}

#[tokio::test]
async fn the_late_event_does_not_overwrite_a_chosen_name() {
    let app = spawn_app().await;
    let (id, dave) = app.user("dave");
    dave.ok(
        "mutation { updateProfile(input: {displayName: \"Dave!\"}) { displayName } }",
        json!({}),
    )
    .await;
    app.registered(&id, "dave", Some("From Signup")).await;
    // Give the consumer time to see the event, then check nothing moved.
    let probe = app.registered("probe-dave", "probe", None).await;
    app.wait_for_profile(&probe.data.user_id, |_| true).await;
    let me = dave.ok(ME, json!({})).await;
    assert_eq!(me["me"]["displayName"], "Dave!");
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let app = spawn_app().await;
    let mut updates = app.watch_updates().await;
    let (id, erin) = app.user("erin");
    let env = app.registered(&id, "erin", Some("Erin")).await;
    app.wait_for_profile(&id, |_| true).await;
    updates.next_for(&id).await.expect("first event publishes");
    erin.ok(
        "mutation { updateProfile(input: {bio: \"hello\"}) { bio } }",
        json!({}),
    )
    .await;
    updates.next_for(&id).await.expect("the edit publishes");
    let before = erin.ok(ME, json!({})).await;
    app.publish(&env).await;
    app.publish(&env).await;
    updates.none_for(&id, Duration::from_millis(1500)).await;
    assert_eq!(erin.ok(ME, json!({})).await, before);
}

#[tokio::test]
async fn me_needs_a_valid_token() {
    let app = spawn_app().await;
    assert_eq!(
        code(&app.anonymous().raw(ME, json!({})).await),
        "UNAUTHENTICATED"
    );
    let forged = app.anonymous().with_token("not-a-jwt");
    assert_eq!(code(&forged.raw(ME, json!({})).await), "UNAUTHENTICATED");
    // A token without the username claim cannot create a profile; nothing is written.
    let id = uuid::Uuid::new_v4().to_string();
    let nameless = app.as_user(&id, None);
    assert_eq!(code(&nameless.raw(ME, json!({})).await), "NOT_FOUND");
    assert!(
        app.store
            .get(&minute_users::domain::UserId::parse(&id).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn user_by_id() {
    let app = spawn_app().await;
    let (id, frank) = app.user("frank");
    frank.ok(ME, json!({})).await;
    let q = "query($id: ID!) { user(id: $id) { id username displayName createdAt } }";
    let (_, gina) = app.user("gina");
    let u = gina.ok(q, json!({"id": id})).await;
    assert_eq!(u["user"]["username"], "frank");
    assert!(
        u["user"]["createdAt"]
            .as_str()
            .is_some_and(|s| s.contains('T'))
    );
    assert_eq!(
        gina.ok(q, json!({"id": "no-such-user"})).await["user"],
        serde_json::Value::Null
    );
    assert_eq!(
        gina.ok(q, json!({"id": ""})).await["user"],
        serde_json::Value::Null
    );
    assert_eq!(
        code(&app.anonymous().raw(q, json!({"id": id})).await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn concurrent_first_requests_and_the_event_make_one_profile() {
    let app = spawn_app().await;
    let (id, gus) = app.user("gus");
    let mut calls = Vec::new();
    for _ in 0..10 {
        let c = gus.clone();
        calls.push(tokio::spawn(async move { c.ok(ME, json!({})).await }));
    }
    app.registered(&id, "gus", Some("Gus G.")).await;
    for c in calls {
        let me = c.await.expect("task");
        assert_eq!(me["me"]["id"], id.as_str());
        assert_eq!(me["me"]["username"], "gus");
    }
    app.wait_for_profile(&id, |p| p["displayName"] == "Gus G.")
        .await;
    let uid = minute_users::domain::UserId::parse(&id).unwrap();
    assert_eq!(app.store.get_many(&[uid]).await.unwrap().len(), 1);
}
