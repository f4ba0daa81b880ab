//! Who may do what, and bad inputs: refused calls get api.md's codes and write nothing.

use minute_events::MemberRole;
use serde_json::{Value, json};

use super::helpers::*;

async fn attempt(u: &User, action: &str, conv: &str, msg: &str) -> Value {
    match action {
        "send" => {
            u.send_raw(conv, &minute_testkit::unique("k"), "intrusion", None)
                .await
        }
        "read" => u.history_raw(conv, "").await,
        "edit" => {
            u.message_op("editMessage", json!({"m": msg, "b": "changed"}))
                .await
        }
        "delete" => u.message_op("deleteMessage", json!({"m": msg})).await,
        "react" => {
            u.message_op("addReaction", json!({"m": msg, "e": "🔥"}))
                .await
        }
        "markRead" => u.mark_read_raw(conv, 1).await,
        _ => unreachable!(),
    }
}

fn outcome(r: &Value) -> String {
    match r.get("errors") {
        None => "ok".into(),
        Some(_) => code(r),
    }
}

#[tokio::test]
async fn the_authorization_matrix_holds_and_refusals_write_nothing() {
    let app = spawn_app(Spawn::new(Backend::mongo())).await;
    let (alice, bob, carol, dave) = (app.user(), app.user(), app.user(), app.user());
    let conv = app
        .group(&[
            (&alice, MemberRole::Owner),
            (&bob, MemberRole::Member),
            (&carol, MemberRole::Member),
        ])
        .await;
    let m = alice.send(&conv, "alice's words").await;
    let msg = m["id"].as_str().unwrap_or_default().to_owned();
    app.remove_member(&conv, &carol, 2).await;

    let actions = ["send", "read", "edit", "delete", "react", "markRead"];
    let expected = [
        (
            &bob,
            "member",
            ["ok", "ok", "FORBIDDEN", "FORBIDDEN", "ok", "ok"],
        ),
        (
            &carol,
            "removed",
            [
                "FORBIDDEN",
                "NOT_FOUND",
                "FORBIDDEN",
                "FORBIDDEN",
                "FORBIDDEN",
                "FORBIDDEN",
            ],
        ),
        (
            &dave,
            "non-member",
            [
                "FORBIDDEN",
                "NOT_FOUND",
                "FORBIDDEN",
                "FORBIDDEN",
                "FORBIDDEN",
                "FORBIDDEN",
            ],
        ),
    ];
    for (user, who, want) in expected {
        for (action, want) in actions.iter().zip(want) {
            let r = attempt(user, action, &conv, &msg).await;
            assert_eq!(outcome(&r), want, "{who} {action}: {r}");
        }
    }
    // Outsiders cannot see the message either.
    for u in [&carol, &dave] {
        let r = u
            .gql
            .raw(
                "query($r: [_Any!]!) { _entities(representations: $r) { ... on Message { id } } }",
                json!({"r": [{"__typename": "Message", "id": msg}]}),
            )
            .await;
        assert_eq!(r["data"]["_entities"], json!([null]), "{r}");
    }
    let anon = app.anonymous();
    let r = anon
        .raw("{ searchMessages(query: \"x\") { id } }", json!({}))
        .await;
    assert_eq!(code(&r), "UNAUTHENTICATED");

    // Nothing written by the refusals: only bob's send (seq 2), bob's reaction and read marker.
    let after = alice.message(&msg).await;
    assert_eq!(after["body"], "alice's words");
    assert_eq!(
        after["reactions"],
        json!([{"emoji": "🔥", "count": 1, "reactedByMe": false}])
    );
    let readers: Vec<&str> = after["readBy"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["user"]["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(readers, vec![bob.id.as_str()]);
    assert_eq!(alice.seqs(&conv, "").await, (vec![1, 2], false));

    // An ADMIN may delete others' messages; a MEMBER may delete their own.
    let erin = app.user();
    app.add_member(&conv, &erin, MemberRole::Admin, 3).await;
    assert!(erin.sees(&conv).await);
    let r = erin.message_op("deleteMessage", json!({"m": msg})).await;
    assert_eq!(outcome(&r), "ok", "{r}");
    let own = bob.send(&conv, "mine").await;
    let r = bob
        .message_op("deleteMessage", json!({"m": own["id"]}))
        .await;
    assert_eq!(outcome(&r), "ok", "{r}");
    app.stop().await;
}

#[tokio::test]
async fn bad_inputs_are_refused_and_write_nothing() {
    let app = spawn_app(Spawn::new(Backend::mongo())).await;
    let alice = app.user();
    let conv = app.group(&[(&alice, MemberRole::Owner)]).await;
    let other = app.group(&[(&alice, MemberRole::Owner)]).await;
    let m = alice.send(&conv, "first").await;
    let foreign = alice.send(&other, "elsewhere").await;
    let msg = m["id"].as_str().unwrap_or_default();

    let long = "x".repeat(10_001);
    let k65 = "k".repeat(65);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "empty body",
            alice.send_raw(&conv, "a", "", None).await,
            "BAD_USER_INPUT",
        ),
        (
            "blank body",
            alice.send_raw(&conv, "b", "  \n\t ", None).await,
            "BAD_USER_INPUT",
        ),
        (
            "10,001 chars",
            alice.send_raw(&conv, "c", &long, None).await,
            "BAD_USER_INPUT",
        ),
        (
            "empty clientMessageId",
            alice.send_raw(&conv, "", "hi", None).await,
            "BAD_USER_INPUT",
        ),
        (
            "65-char clientMessageId",
            alice.send_raw(&conv, &k65, "hi", None).await,
            "BAD_USER_INPUT",
        ),
        (
            "unknown conversation",
            alice.send_raw("no-such-conv", "d", "hi", None).await,
            "NOT_FOUND",
        ),
        (
            "cross-conversation reply",
            alice
                .send_raw(&conv, "e", "hi", foreign["id"].as_str())
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "reply to unknown",
            alice
                .send_raw(&conv, "f", "hi", Some("no-such-message"))
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "edit unknown",
            alice
                .message_op("editMessage", json!({"m": "nope", "b": "x"}))
                .await,
            "NOT_FOUND",
        ),
        (
            "edit to empty",
            alice
                .message_op("editMessage", json!({"m": msg, "b": " "}))
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "delete unknown",
            alice
                .message_op("deleteMessage", json!({"m": "nope"}))
                .await,
            "NOT_FOUND",
        ),
        (
            "react unknown",
            alice
                .message_op("addReaction", json!({"m": "nope", "e": "x"}))
                .await,
            "NOT_FOUND",
        ),
        (
            "empty emoji",
            alice
                .message_op("addReaction", json!({"m": msg, "e": ""}))
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "emoji with space",
            alice
                .message_op("addReaction", json!({"m": msg, "e": "a b"}))
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "17-char emoji",
            alice
                .message_op("addReaction", json!({"m": msg, "e": "x".repeat(17)}))
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "limit 0",
            alice.history_raw(&conv, "(limit: 0)").await,
            "BAD_USER_INPUT",
        ),
        (
            "limit 10000",
            alice.history_raw(&conv, "(limit: 10000)").await,
            "BAD_USER_INPUT",
        ),
        (
            "markRead beyond lastSeq",
            alice.mark_read_raw(&conv, 99).await,
            "BAD_USER_INPUT",
        ),
        (
            "markRead negative",
            alice.mark_read_raw(&conv, -1).await,
            "BAD_USER_INPUT",
        ),
        (
            "empty search",
            alice
                .gql
                .raw("{ searchMessages(query: \" \") { id } }", json!({}))
                .await,
            "BAD_USER_INPUT",
        ),
        (
            "search first 0",
            alice
                .gql
                .raw(
                    "{ searchMessages(query: \"a\", first: 0) { id } }",
                    json!({}),
                )
                .await,
            "BAD_USER_INPUT",
        ),
    ];
    for (what, r, want) in cases {
        assert_eq!(code(&r), want, "{what}: {r}");
    }
    // markRead backwards changes nothing (no error).
    alice.send(&conv, "second").await;
    let r = alice.mark_read_raw(&conv, 2).await;
    assert_eq!(r["data"]["markRead"]["readSeq"], 2);
    let r = alice.mark_read_raw(&conv, 1).await;
    assert_eq!(r["data"]["markRead"]["readSeq"], 2);

    // Nothing was written by the refused calls.
    assert_eq!(alice.seqs(&conv, "").await, (vec![1, 2], false));
    let after = alice.message(msg).await;
    assert_eq!(
        (
            after["body"].clone(),
            after["reactions"].clone(),
            after["editedAt"].clone()
        ),
        (json!("first"), json!([]), Value::Null)
    );
    // The clientMessageIds of refused sends are still free.
    let r = alice.send_raw(&conv, "a", "now valid", None).await;
    assert_eq!(r["data"]["sendMessage"]["seq"], 3, "{r}");
    app.stop().await;
}
