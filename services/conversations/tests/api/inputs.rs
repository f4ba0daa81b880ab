//! Bad inputs are BAD_USER_INPUT and leave nothing half-written.

use serde_json::json;

use super::helpers::*;

const CREATE: &str = "mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id memberCount } }";

#[tokio::test]
async fn bad_group_creations_write_nothing() {
    let app = spawn_app().await;
    let mut watch = app.observe().await;
    let (alice, bob) = (app.user("alice"), app.user("bob"));
    let stranger = app.stranger("ghost");
    let huge = "x".repeat(1 << 20);
    let long = "é".repeat(201);
    let cases = [
        ("", vec![bob.id.clone()]),
        ("   ", vec![bob.id.clone()]),
        ("line\nbreak", vec![bob.id.clone()]),
        (huge.as_str(), vec![bob.id.clone()]),
        (long.as_str(), vec![bob.id.clone()]),
        ("dup", vec![bob.id.clone(), bob.id.clone()]),
        ("unknown", vec![bob.id.clone(), stranger.id.clone()]),
        ("garbage id", vec!["not an id!".to_owned()]),
    ];
    for (title, members) in cases {
        let r = alice
            .mutation(CREATE, json!({"t": title, "m": members}))
            .await;
        assert_eq!(
            outcome(&r),
            "BAD_USER_INPUT",
            "title {:.20?} members {members:?}",
            title
        );
    }
    assert!(
        alice.list(50, None).await.0.is_empty(),
        "no conversation was created"
    );
    assert!(bob.list(50, None).await.0.is_empty());
    let published = watch.drain(std::time::Duration::from_millis(800)).await;
    assert!(
        published.is_empty(),
        "no event was published: {published:?}"
    );
    // 200 characters is the longest title.
    let ok = alice
        .mutation(CREATE, json!({"t": "é".repeat(200), "m": [bob.id]}))
        .await;
    assert_eq!(outcome(&ok), "OK");
}

#[tokio::test]
async fn bad_member_changes_write_nothing() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (app.user("alice"), app.user("bob"), app.user("carol"));
    let stranger = app.stranger("ghost");
    let g = alice.create_group("g", &[&bob]).await;
    let c = g["id"].as_str().unwrap();
    let v = app.version(c).await;
    let cases = [
        json!([bob.id]),                // already a member
        json!([carol.id, carol.id]),    // duplicate
        json!([carol.id, stranger.id]), // one unknown among known
        json!([]),                      // nothing to add
    ];
    for ids in cases {
        let r = alice.mutation(ADD, json!({"c": c, "u": ids})).await;
        assert_eq!(outcome(&r), "BAD_USER_INPUT", "{ids}");
    }
    for title in ["", "  ", &"t".repeat(1 << 20)] {
        let r = alice.mutation(RENAME, json!({"c": c, "t": title})).await;
        assert_eq!(outcome(&r), "BAD_USER_INPUT");
    }
    let r = alice
        .mutation(SET_ROLE, json!({"c": c, "u": carol.id, "r": "ADMIN"}))
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT", "role of a non-member");
    assert_eq!(app.version(c).await, v, "nothing was written");
    let now = alice.conversation(c).await;
    assert_eq!(now["memberCount"], 2);
    assert_eq!(now["title"], "g");
    assert!(carol.conversation(c).await.is_null());
    let r = alice
        .mutation(
            "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
            json!({"u": stranger.id}),
        )
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT", "unknown user");
    assert_eq!(alice.list(50, None).await.0.len(), 1);
}

#[tokio::test]
async fn bad_pages_and_cursors_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let g = alice.create_group("g", &[]).await;
    for (first, after) in [(0, None), (101, None), (10, Some("bogus"))] {
        let r = alice
            .gql
            .raw(
                "query($f: Int, $a: String) { conversations(first: $f, after: $a) { nodes { id } } }",
                json!({"f": first, "a": after}),
            )
            .await;
        assert_eq!(outcome(&r), "BAD_USER_INPUT");
    }
    let r = alice
        .gql
        .raw(
            "query($id: ID!) { conversation(id: $id) { members(first: 5, after: \"zz\") { hasNextPage } } }",
            json!({"id": g["id"]}),
        )
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT");
}

#[tokio::test]
async fn groups_are_bounded_by_the_configured_size() {
    let app = spawn_with(Options {
        max_members: Some(4),
        ..Options::default()
    })
    .await;
    let users: Vec<TestUser> = (0..5).map(|i| app.user(&format!("u{i}"))).collect();
    let owner = &users[0];
    let r = owner
        .mutation(
            CREATE,
            json!({"t": "big", "m": users[1..].iter().map(|u| &u.id).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT", "5 members > 4");
    let g = owner
        .create_group("g", &[&users[1], &users[2], &users[3]])
        .await;
    let c = g["id"].as_str().unwrap();
    let v = app.version(c).await;
    let r = owner
        .mutation(ADD, json!({"c": c, "u": [users[4].id]}))
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT", "the 5th member");
    assert_eq!(app.version(c).await, v);
    assert_eq!(owner.conversation(c).await["memberCount"], 4);
}

/// The default limit (10,000), on the embedded store so the 10,000 inserts stay quick,
/// and on the in-process bus so 10,000 `user.<id>` deliveries stay off the shared broker.
#[tokio::test]
async fn the_10001st_member_is_refused() {
    let app = spawn_with(Options {
        db: Db::Sqlite,
        in_process_bus: true,
        ..Options::default()
    })
    .await;
    app.users.accept_all();
    let owner = app.user("owner");
    let ids = |from: usize, n: usize| -> Vec<String> {
        (from..from + n).map(|i| format!("member-{i:05}")).collect()
    };
    let g = owner
        .gql
        .ok(CREATE, json!({"t": "huge", "m": ids(0, 999)}))
        .await;
    let c = g["createGroup"]["id"].as_str().unwrap().to_owned();
    for batch in 0..9 {
        let r = owner
            .gql
            .ok(ADD, json!({"c": c, "u": ids(999 + batch * 1000, 1000)}))
            .await;
        assert_eq!(
            r["addMembers"]["memberCount"],
            1000 + (batch as u64 + 1) * 1000
        );
    }
    let r = owner
        .mutation(ADD, json!({"c": c, "u": ["one-too-many"]}))
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT");
    assert_eq!(owner.conversation(&c).await["memberCount"], 10_000);
}

/// 1,000 ids at once on MongoDB: one bulk insert, one event carrying all of them.
#[tokio::test]
async fn a_thousand_members_at_once() {
    let app = spawn_app().await;
    app.users.accept_all();
    let mut watch = app.observe().await;
    let owner = app.user("owner");
    let g = owner.create_group("g", &[]).await;
    let c = g["id"].as_str().unwrap();
    let ids: Vec<String> = (0..1000).map(|i| format!("bulk-{i:04}")).collect();
    let started = std::time::Instant::now();
    let r = owner.gql.ok(ADD, json!({"c": c, "u": ids})).await;
    eprintln!("addMembers(1,000) took {:?}", started.elapsed());
    assert_eq!(r["addMembers"]["memberCount"], 1001);
    let added = watch
        .next(|s| s.routing_key == "conversations.member.added.v1")
        .await;
    assert_eq!(
        added.envelope.data["members"].as_array().unwrap().len(),
        1000
    );
    assert_eq!(added.envelope.data["version"], 2);
    let page = owner
        .gql
        .ok(
            "query($id: ID!) { conversation(id: $id) { members(first: 100) { edges { role } hasNextPage } } }",
            json!({"id": c}),
        )
        .await;
    assert_eq!(
        page["conversation"]["members"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}
