//! `updateProfile`: the change, its event, and every bad input refused with nothing
//! written and nothing published.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ME, code, spawn_app};

const UPDATE: &str = "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { \
                      id username displayName avatarUrl bio } }";

#[tokio::test]
async fn update_changes_the_profile_and_publishes() {
    let app = spawn_app().await;
    let (id, ann) = app.user("ann");
    let mut updates = app.watch_updates().await;
    let out = ann
        .ok(
            UPDATE,
            json!({"input": {
                "displayName": "  Ann Z  ",
                "avatarUrl": "https://cdn.example.com/ann.png",
                "bio": "I test things.\nOften."
            }}),
        )
        .await["updateProfile"]
        .clone();
    assert_eq!(out["displayName"], "Ann Z");
    assert_eq!(out["avatarUrl"], "https://cdn.example.com/ann.png");
    assert_eq!(out["bio"], "I test things.\nOften.");
    let me = ann.ok(ME, json!({})).await["me"].clone();
    for field in ["id", "username", "displayName", "avatarUrl", "bio"] {
        assert_eq!(me[field], out[field], "{field}");
    }
    // The provisional profile `updateProfile` created first publishes too; the last event
    // carries the edit.
    let mut last = None;
    while let Some(ev) = updates.next_for(&id).await {
        let done = ev.data.display_name == "Ann Z";
        last = Some(ev);
        if done {
            break;
        }
    }
    let ev = last.expect("users.user.updated.v1");
    assert_eq!(ev.data.display_name, "Ann Z");
    assert_eq!(
        ev.data.avatar_url.as_deref(),
        Some("https://cdn.example.com/ann.png")
    );
    assert_eq!(ev.data.username, "ann");

    // Partial update keeps the other fields; empty strings clear avatar and bio.
    let out = ann
        .ok(UPDATE, json!({"input": {"avatarUrl": "", "bio": ""}}))
        .await["updateProfile"]
        .clone();
    assert_eq!(out["displayName"], "Ann Z");
    assert_eq!(out["avatarUrl"], Value::Null);
    assert_eq!(out["bio"], Value::Null);
    let ev = updates.next_for(&id).await.expect("second event");
    assert_eq!(ev.data.avatar_url, None);
}

#[tokio::test]
async fn bad_inputs_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let (id, ben) = app.user("ben");
    let mut updates = app.watch_updates().await;
    ben.ok(
        UPDATE,
        json!({"input": {"displayName": "Ben", "bio": "original"}}),
    )
    .await;
    let before = ben.ok(ME, json!({})).await;
    // Drain the events of the set-up (the provisional profile, then the edit).
    while let Some(ev) = updates.next_for(&id).await {
        if ev.data.display_name == "Ben" {
            break;
        }
    }
    let long_url = format!("https://example.com/{}", "a".repeat(2030));
    let bad: Vec<Value> = vec![
        json!({"displayName": ""}),
        json!({"displayName": "   "}),
        json!({"displayName": "x".repeat(65)}),
        json!({"displayName": "tab\u{0007}bell"}),
        json!({"bio": "b".repeat(501)}),
        json!({"avatarUrl": "http://example.com/a.png"}),
        json!({"avatarUrl": "ftp://example.com/a.png"}),
        json!({"avatarUrl": "javascript:alert(1)"}),
        json!({"avatarUrl": "https://"}),
        json!({"avatarUrl": "not a url"}),
        json!({"avatarUrl": long_url}),
        json!({"avatarUrl": format!("https://example.com/{}", "a".repeat(1 << 20))}),
        // One bad field refuses the valid ones with it.
        json!({"displayName": "Valid Name", "bio": "b".repeat(501)}),
        json!({"displayName": "Valid Name", "avatarUrl": "http://insecure.example.com"}),
    ];
    for input in bad {
        let body = ben.raw(UPDATE, json!({"input": input})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}");
        assert_eq!(body["data"], Value::Null, "{input}");
    }
    // Wrong types are refused by GraphQL validation, before any resolver runs.
    let body = ben.raw(UPDATE, json!({"input": {"displayName": 5}})).await;
    assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(ben.ok(ME, json!({})).await, before);
    updates.none_for(&id, Duration::from_millis(800)).await;
}

#[tokio::test]
async fn a_refused_first_call_creates_no_profile() {
    let app = spawn_app().await;
    let (id, newbie) = app.user("newbie");
    let body = newbie
        .raw(UPDATE, json!({"input": {"displayName": "x".repeat(65)}}))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let id = minute_users::domain::UserId::parse(&id).unwrap();
    assert!(app.store.get(&id).await.unwrap().is_none());
    assert!(app.store.pending(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn boundaries_are_accepted() {
    let app = spawn_app().await;
    let (_, cleo) = app.user("cleo");
    let name = "é".repeat(64);
    let url = format!("https://example.com/{}", "a".repeat(2048 - 20));
    let out = cleo
        .ok(
            UPDATE,
            json!({"input": {"displayName": name, "bio": "b".repeat(500), "avatarUrl": url}}),
        )
        .await;
    assert_eq!(out["updateProfile"]["displayName"], name.as_str());
    assert_eq!(out["updateProfile"]["avatarUrl"], url.as_str());
}

#[tokio::test]
async fn update_needs_a_token() {
    let app = spawn_app().await;
    let body = app
        .anonymous()
        .raw(UPDATE, json!({"input": {"displayName": "x"}}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn concurrent_updates_all_land_in_order_of_versions() {
    let app = spawn_app().await;
    let (_, dora) = app.user("dora");
    dora.ok(ME, json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        let c = dora.clone();
        tasks.push(tokio::spawn(async move {
            c.ok(UPDATE, json!({"input": {"bio": format!("bio {i}")}}))
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let bio = dora.ok(ME, json!({})).await["me"]["bio"].clone();
    assert!(bio.as_str().is_some_and(|b| b.starts_with("bio ")));
}
