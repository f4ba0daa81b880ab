//! What users do: groups, direct conversations, lists, internal endpoints.

use serde_json::json;

use super::helpers::*;

fn member_ids(conv: &serde_json::Value) -> Vec<String> {
    conv["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_group_lives_through_its_members() {
    let app = spawn_app().await;
    let (alice, bob, carol, dave) = (
        app.user("alice"),
        app.user("bob"),
        app.user("carol"),
        app.user("dave"),
    );
    let g = alice.create_group("  Team  ", &[&bob, &carol]).await;
    let id = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["kind"], "GROUP");
    assert_eq!(g["title"], "Team");
    assert_eq!(g["myRole"], "OWNER");
    assert_eq!(g["memberCount"], 3);
    let mut expected = vec![alice.id.clone(), bob.id.clone(), carol.id.clone()];
    expected.sort();
    assert_eq!(member_ids(&g), expected);

    assert_eq!(bob.conversation(&id).await["myRole"], "MEMBER");
    assert!(
        dave.conversation(&id).await.is_null(),
        "non-members see null"
    );

    // Member pages.
    let page = |after: Option<String>| {
        let bob = &bob;
        let id = id.clone();
        async move {
            bob.gql
                .ok(
                    "query($id: ID!, $a: String) { conversation(id: $id) { members(first: 2, after: $a) { edges { user { id } role } endCursor hasNextPage } } }",
                    json!({"id": id, "a": after}),
                )
                .await["conversation"]["members"]
                .clone()
        }
    };
    let p1 = page(None).await;
    assert_eq!(p1["edges"].as_array().unwrap().len(), 2);
    assert_eq!(p1["hasNextPage"], true);
    let p2 = page(p1["endCursor"].as_str().map(str::to_owned)).await;
    assert_eq!(p2["edges"].as_array().unwrap().len(), 1);
    assert_eq!(p2["hasNextPage"], false);
    assert_eq!(p2["edges"][0]["user"]["id"], expected[2].as_str());

    // Roles, rename, removal, hand-over, leave.
    let r = alice.mutation(ADD, json!({"c": id, "u": [dave.id]})).await;
    assert_eq!(r["data"]["addMembers"]["memberCount"], 4);
    let r = alice
        .mutation(SET_ROLE, json!({"c": id, "u": bob.id, "r": "ADMIN"}))
        .await;
    assert_eq!(outcome(&r), "OK");
    assert_eq!(bob.conversation(&id).await["myRole"], "ADMIN");
    let r = bob.mutation(RENAME, json!({"c": id, "t": "Renamed"})).await;
    assert_eq!(r["data"]["updateConversation"]["title"], "Renamed");
    let r = bob.mutation(REMOVE, json!({"c": id, "u": carol.id})).await;
    assert_eq!(r["data"]["removeMember"]["memberCount"], 3);
    assert!(carol.conversation(&id).await.is_null());
    assert_eq!(
        outcome(&alice.mutation(LEAVE, json!({"c": id})).await),
        "FORBIDDEN"
    );
    let r = alice
        .mutation(SET_ROLE, json!({"c": id, "u": bob.id, "r": "OWNER"}))
        .await;
    assert_eq!(outcome(&r), "OK");
    let r = alice.mutation(LEAVE, json!({"c": id})).await;
    assert_eq!(r["data"]["leaveConversation"], true);
    assert!(alice.conversation(&id).await.is_null());
    let seen_by_bob = bob.conversation(&id).await;
    assert_eq!(seen_by_bob["myRole"], "OWNER");
    assert_eq!(seen_by_bob["memberCount"], 2);
    assert_eq!(seen_by_bob["title"], "Renamed");
}

#[tokio::test]
async fn a_direct_conversation_is_one_per_pair() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice"), app.user("bob"));
    let a = alice.direct(&bob.id).await;
    let b = bob.direct(&alice.id).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["kind"], "DIRECT");
    assert!(a["title"].is_null());
    assert_eq!(a["memberCount"], 2);
    assert_eq!(a["myRole"], "MEMBER");
    assert_eq!(b["myRole"], "MEMBER");
    let again = alice.direct(&bob.id).await;
    assert_eq!(again["id"], a["id"]);
    assert_eq!(alice.list(50, None).await.0.len(), 1);

    // Self-DM policy: refused.
    let r = alice
        .mutation(
            "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
            json!({"u": alice.id}),
        )
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT");
    // A direct conversation's membership is fixed.
    let id = a["id"].as_str().unwrap();
    let carol = app.user("carol");
    let r = alice.mutation(ADD, json!({"c": id, "u": [carol.id]})).await;
    assert_eq!(outcome(&r), "FORBIDDEN");
    assert_eq!(
        outcome(&alice.mutation(LEAVE, json!({"c": id})).await),
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn conversations_are_ordered_by_last_activity_and_paginate() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice"), app.user("bob"));
    let mut ids = Vec::new();
    for t in ["one", "two", "three"] {
        ids.push(
            alice.create_group(t, &[&bob]).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (order, _) = alice.list(50, None).await;
    assert_eq!(order, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    // A message in "one" moves it to the top.
    app.publish(minute_events::MessageCreated {
        conversation_id: ids[0].clone(),
        message_id: "m1".into(),
        seq: 1,
        sender_id: bob.id.clone(),
        client_message_id: None,
        body: "hi".into(),
        reply_to_id: None,
        created_at: chrono::Utc::now() + chrono::Duration::seconds(1),
    })
    .await;
    let moved = minute_testkit::eventually(std::time::Duration::from_secs(10), || async {
        alice.list(50, None).await.0.first() == Some(&ids[0])
    })
    .await;
    assert!(moved, "the active conversation comes first");

    let (p1, info) = alice.list(2, None).await;
    assert_eq!(p1, [ids[0].clone(), ids[2].clone()]);
    assert_eq!(info["hasNextPage"], true);
    let (p2, info) = alice.list(2, info["endCursor"].as_str()).await;
    assert_eq!(p2, [ids[1].clone()]);
    assert_eq!(info["hasNextPage"], false);
    // Bob's order is the same, kept on his memberships.
    assert_eq!(bob.list(1, None).await.0, [ids[0].clone()]);
}

#[tokio::test]
async fn internal_endpoints_answer_other_services() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (app.user("alice"), app.user("bob"), app.user("carol"));
    let g = alice.create_group("g", &[&bob]).await;
    let id = g["id"].as_str().unwrap();
    let d = alice.direct(&carol.id).await;
    let (s, body) = app
        .internal(&format!(
            "/internal/conversations/{id}/members/{}",
            alice.id
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"member": true, "role": "OWNER", "kind": "GROUP", "version": 1})
    );
    let (s, body) = app
        .internal(&format!(
            "/internal/conversations/{id}/members/{}",
            carol.id
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"member": false, "role": null, "kind": "GROUP", "version": 1})
    );
    let (s, _) = app
        .internal(&format!(
            "/internal/conversations/nope/members/{}",
            carol.id
        ))
        .await;
    assert_eq!(s, 404);
    let (s, body) = app
        .internal(&format!("/internal/users/{}/conversations", alice.id))
        .await;
    assert_eq!(s, 200);
    let mut got: Vec<String> = serde_json::from_value(body["conversationIds"].clone()).unwrap();
    got.sort();
    let mut want = vec![id.to_owned(), d["id"].as_str().unwrap().to_owned()];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn unauthenticated_callers_are_refused() {
    let app = spawn_app().await;
    let code = app
        .anonymous()
        .error_code("{ conversations { nodes { id } } }", json!({}))
        .await;
    assert_eq!(code, "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_embedded_store_serves_the_same_api() {
    let app = spawn_with(Options {
        db: Db::Sqlite,
        ..Options::default()
    })
    .await;
    let (alice, bob) = (app.user("alice"), app.user("bob"));
    let g = alice.create_group("g", &[&bob]).await;
    assert_eq!(
        bob.conversation(g["id"].as_str().unwrap()).await["memberCount"],
        2
    );
    assert_eq!(
        alice.direct(&bob.id).await["id"],
        bob.direct(&alice.id).await["id"]
    );
}

#[tokio::test]
async fn the_entity_resolver_has_the_visibility_of_conversation() {
    let app = spawn_app().await;
    let (alice, bob, eve) = (app.user("alice"), app.user("bob"), app.user("eve"));
    let g = alice.create_group("g", &[&bob]).await;
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Conversation { id myRole memberCount } } }";
    let reps = json!({"r": [{"__typename": "Conversation", "id": g["id"]}]});
    let as_bob = bob.gql.ok(query, reps.clone()).await;
    assert_eq!(as_bob["_entities"][0]["myRole"], "MEMBER");
    assert_eq!(as_bob["_entities"][0]["memberCount"], 2);
    let as_eve = eve.gql.ok(query, reps).await;
    assert!(
        as_eve["_entities"][0].is_null(),
        "a non-member resolves to null"
    );
}
