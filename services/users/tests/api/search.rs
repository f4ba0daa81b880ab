//! `searchUsers`: case-insensitive prefix on username and display name, bounded.

use serde_json::{Value, json};

use crate::helpers::{code, spawn_app};

const SEARCH: &str = "query($q: String!, $first: Int) { searchUsers(query: $q, first: $first) { \
                      id username displayName } }";

fn usernames(v: &Value) -> Vec<String> {
    v["searchUsers"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u["username"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn prefix_search_on_username_and_display_name() {
    let app = spawn_app().await;
    let p = minute_testkit::unique("s").replace('-', "");
    let users: Vec<(String, String, Option<String>)> = [
        (format!("{p}alpha"), Some("Alpha One".to_owned())),
        (format!("{p}alpine"), None),
        (
            format!("{p}beta"),
            Some(format!("{}Zeta Ålpha", p.to_uppercase())),
        ),
        (format!("zz{p}gamma"), Some(format!("{p}ALfred"))),
        (format!("zz{p}delta"), Some(format!("Not {p}al"))),
    ]
    .into_iter()
    .map(|(u, d)| (uuid::Uuid::now_v7().to_string(), u, d))
    .collect();
    app.register_many(&users).await;
    let (_, me) = app.user("searcher");

    // Username matches first (by username), then display-name matches.
    let r = me
        .ok(SEARCH, json!({"q": format!("{}AL", p.to_uppercase())}))
        .await;
    assert_eq!(
        usernames(&r),
        vec![
            format!("{p}alpha"),
            format!("{p}alpine"),
            format!("zz{p}gamma")
        ]
    );
    // Display name prefix, case-insensitively and beyond ASCII.
    let r = me.ok(SEARCH, json!({"q": format!("{p}zeta å")})).await;
    assert_eq!(usernames(&r), vec![format!("{p}beta")]);
    // Prefix only: a match in the middle is not a match.
    let r = me.ok(SEARCH, json!({"q": "pha one"})).await;
    assert!(usernames(&r).is_empty());
    let r = me
        .ok(SEARCH, json!({"q": format!("{p}al"), "first": 2}))
        .await;
    assert_eq!(usernames(&r).len(), 2);
    // Characters with meaning in regexes or LIKE are plain characters.
    for q in [".*", "%", "_", "(", "\\"] {
        let r = me.ok(SEARCH, json!({"q": format!("{p}{q}")})).await;
        assert!(usernames(&r).is_empty(), "{q}");
    }
}

#[tokio::test]
async fn first_is_bounded_and_queries_validated() {
    let app = spawn_app().await;
    let (_, me) = app.user("searcher");
    for first in [0, -1, 51, 1000] {
        let body = me.raw(SEARCH, json!({"q": "a", "first": first})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "first = {first}");
    }
    for q in ["", "   ", &"a".repeat(65)] {
        let body = me.raw(SEARCH, json!({"q": q})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "query {q:?}");
    }
    let ok = me.ok(SEARCH, json!({"q": "a", "first": 50})).await;
    assert!(ok["searchUsers"].as_array().is_some_and(|a| a.len() <= 50));
    let body = app.anonymous().raw(SEARCH, json!({"q": "a"})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn first_defaults_to_20_and_never_exceeds_50() {
    let app = spawn_app().await;
    let p = minute_testkit::unique("m").replace('-', "");
    let users: Vec<_> = (0..55)
        .map(|i| (uuid::Uuid::now_v7().to_string(), format!("{p}{i:02}"), None))
        .collect();
    app.register_many(&users).await;
    let (_, me) = app.user("searcher");
    let r = me.ok(SEARCH, json!({"q": p})).await;
    assert_eq!(usernames(&r).len(), 20);
    let r = me.ok(SEARCH, json!({"q": p, "first": 50})).await;
    let names = usernames(&r);
    assert_eq!(names.len(), 50);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ordered by username");
}
