//! The authorization matrix: owner / admin / member / non-member x each mutation, and
//! refused calls write nothing (the conversation's version does not move).

use serde_json::json;

use super::helpers::*;

#[derive(Debug, Clone, Copy)]
enum Actor {
    Owner,
    Admin,
    Member,
    Outsider,
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    Add,
    Remove,
    Rename,
    SetRole,
    Leave,
}

async fn attempt(app: &TestApp, mutation: Mutation, actor: Actor) -> String {
    let (owner, admin, member, target, outsider, newcomer) = (
        app.user("owner"),
        app.user("admin"),
        app.user("member"),
        app.user("target"),
        app.user("outsider"),
        app.user("newcomer"),
    );
    let g = owner
        .create_group("matrix", &[&admin, &member, &target])
        .await;
    let c = g["id"].as_str().unwrap().to_owned();
    let r = owner
        .mutation(SET_ROLE, json!({"c": c, "u": admin.id, "r": "ADMIN"}))
        .await;
    assert_eq!(outcome(&r), "OK");
    let who = match actor {
        Actor::Owner => &owner,
        Actor::Admin => &admin,
        Actor::Member => &member,
        Actor::Outsider => &outsider,
    };
    let before = app.version(&c).await;
    let r = match mutation {
        Mutation::Add => who.mutation(ADD, json!({"c": c, "u": [newcomer.id]})).await,
        Mutation::Remove => who.mutation(REMOVE, json!({"c": c, "u": target.id})).await,
        Mutation::Rename => who.mutation(RENAME, json!({"c": c, "t": "new"})).await,
        Mutation::SetRole => {
            who.mutation(SET_ROLE, json!({"c": c, "u": target.id, "r": "ADMIN"}))
                .await
        }
        Mutation::Leave => who.mutation(LEAVE, json!({"c": c})).await,
    };
    let code = outcome(&r);
    let after = app.version(&c).await;
    if code == "OK" {
        assert_eq!(
            after,
            before + 1,
            "{mutation:?} by {actor:?} moves the version once"
        );
    } else {
        assert_eq!(
            after, before,
            "{mutation:?} by {actor:?} refused and wrote nothing"
        );
    }
    code
}

#[tokio::test]
async fn every_role_against_every_mutation() {
    use Actor::*;
    use Mutation::*;
    let app = spawn_app().await;
    let matrix = [
        (Add, [Owner, Admin], [Member], [Outsider]),
        (Remove, [Owner, Admin], [Member], [Outsider]),
        (Rename, [Owner, Admin], [Member], [Outsider]),
    ];
    let mut cases: Vec<(Mutation, Actor, &str)> = Vec::new();
    for (m, ok, forbidden, hidden) in matrix {
        cases.extend(ok.iter().map(|a| (m, *a, "OK")));
        cases.extend(forbidden.iter().map(|a| (m, *a, "FORBIDDEN")));
        cases.extend(hidden.iter().map(|a| (m, *a, "NOT_FOUND")));
    }
    cases.extend([
        (SetRole, Owner, "OK"),
        (SetRole, Admin, "FORBIDDEN"),
        (SetRole, Member, "FORBIDDEN"),
        (SetRole, Outsider, "NOT_FOUND"),
        // The only OWNER cannot leave while others remain.
        (Leave, Owner, "FORBIDDEN"),
        (Leave, Admin, "OK"),
        (Leave, Member, "OK"),
        (Leave, Outsider, "NOT_FOUND"),
    ]);
    let mut failures = Vec::new();
    for (m, a, want) in cases {
        let got = attempt(&app, m, a).await;
        if got != want {
            failures.push(format!("{m:?} by {a:?}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn admins_cannot_touch_owners_and_the_last_owner_stays() {
    let app = spawn_app().await;
    let (owner, admin, other) = (app.user("o"), app.user("a"), app.user("x"));
    let g = owner.create_group("g", &[&admin, &other]).await;
    let c = g["id"].as_str().unwrap();
    owner
        .gql
        .ok(SET_ROLE, json!({"c": c, "u": admin.id, "r": "ADMIN"}))
        .await;
    let r = admin.mutation(REMOVE, json!({"c": c, "u": owner.id})).await;
    assert_eq!(outcome(&r), "FORBIDDEN");
    let r = owner
        .mutation(SET_ROLE, json!({"c": c, "u": owner.id, "r": "MEMBER"}))
        .await;
    assert_eq!(
        outcome(&r),
        "FORBIDDEN",
        "the last OWNER cannot demote themself"
    );
    let r = owner.mutation(REMOVE, json!({"c": c, "u": owner.id})).await;
    assert_eq!(
        outcome(&r),
        "BAD_USER_INPUT",
        "leaving goes through leaveConversation"
    );
    let r = owner
        .mutation(REMOVE, json!({"c": c, "u": app.user("n").id}))
        .await;
    assert_eq!(outcome(&r), "BAD_USER_INPUT", "not a member");
    // Two owners: either may leave.
    owner
        .gql
        .ok(SET_ROLE, json!({"c": c, "u": admin.id, "r": "OWNER"}))
        .await;
    assert_eq!(outcome(&owner.mutation(LEAVE, json!({"c": c})).await), "OK");
    assert_eq!(admin.conversation(c).await["myRole"], "OWNER");
}

#[tokio::test]
async fn unknown_conversations_look_like_hidden_ones() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for id in ["0193a5b2-7c1d-7e2f-8a9b-0c1d2e3f4a5b", "not a valid id"] {
        assert!(alice.conversation(id).await.is_null());
        let r = alice.mutation(RENAME, json!({"c": id, "t": "x"})).await;
        assert_eq!(outcome(&r), "NOT_FOUND");
    }
}
