//! Bad input through the real binary, end to end: every one answered with a clear error
//! (api.md's codes, or graphql-transport-ws close codes on `/ws`) and nothing half-written.
//! GraphQL bombs, huge and batched bodies, wrong types, malformed JSON and content types
//! at the gateway; forged tokens of every kind at every subgraph through the gateway and at
//! `/ws`; wrong frames of every kind at `/ws`; bad configuration values for every role.
//!
//! Per-crate suites already try the same inputs against one service in-process (see the
//! report's coverage list); here they travel the whole path a client's request travels.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minute_testkit::ws::{Closed, WsMessage};
use minute_testkit::{GraphqlClient, WsClient};
use serde_json::{Value, json};

use crate::all_in_one::Minute;

const SECRET: &str = "bad-input-secret-of-at-least-32-bytes!!";

struct App {
    _server: Minute,
    port: u16,
    api: GraphqlClient,
    alice: GraphqlClient,
    alice_id: String,
    alice_refresh: String,
    bob_id: String,
    conv: String,
    data: std::path::PathBuf,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn register(api: &GraphqlClient, name: &str) -> (GraphqlClient, String, String) {
    let d = api
        .ok(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken user { id } } }",
            json!({"i": {"username": name, "password": "correct horse battery"}}),
        )
        .await;
    let p = &d["register"];
    (
        api.with_token(p["accessToken"].as_str().expect("token")),
        p["user"]["id"].as_str().expect("id").to_owned(),
        p["refreshToken"].as_str().expect("refresh").to_owned(),
    )
}

/// `minute` (all roles) on embedded storage with a known secret; alice and bob share a
/// direct conversation holding one message.
async fn app() -> App {
    let port = minute_testkit::free_port();
    let data = std::env::temp_dir().join(minute_testkit::unique("minute-bad"));
    let server = Minute::start(
        port,
        &[
            ("MINUTE_DATA_DIR", data.display().to_string()),
            ("JWT_SECRET", SECRET.to_owned()),
            ("GRAPHQL_INTROSPECTION", "false".to_owned()),
        ],
    )
    .await;
    let api = GraphqlClient::new(port);
    let suffix = &minute_testkit::unique("u")[2..12];
    let (alice, alice_id, alice_refresh) = register(&api, &format!("alice{suffix}")).await;
    let (_bob, bob_id, _) = register(&api, &format!("bob{suffix}")).await;
    let d = alice
        .ok(
            "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
            json!({"u": bob_id}),
        )
        .await;
    let conv = d["createDirectConversation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    alice
        .ok(
            r#"mutation($c: ID!) { sendMessage(input: {conversationId: $c, clientMessageId: "first", body: "first"}) { seq } }"#,
            json!({"c": conv}),
        )
        .await;
    App {
        _server: server,
        port,
        api,
        alice,
        alice_id,
        alice_refresh,
        bob_id,
        conv,
        data,
    }
}

impl App {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    /// POSTs raw bytes; returns the status and the body parsed as JSON (panics if not JSON:
    /// every answer of the API is a GraphQL response).
    async fn post(&self, content_type: Option<&str>, body: Vec<u8>, token: bool) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(self.url())
            .timeout(Duration::from_secs(30))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if token {
            req = req.bearer_auth(self.alice.token().expect("token"));
        }
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        // Every answer of the API is a GraphQL response; anything else shows as a failure.
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({"not JSON": text}));
        (status, body)
    }

    /// The conversation's last seq as alice sees it.
    async fn last_seq(&self) -> i64 {
        let d = self
            .alice
            .ok(
                "query($c: ID!) { conversation(id: $c) { lastSeq } }",
                json!({"c": self.conv}),
            )
            .await;
        d["conversation"]["lastSeq"].as_i64().expect("lastSeq")
    }
}

fn first_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error with extensions.code: {body}"))
        .to_owned()
}

fn message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn send_op(conv: &str, cmid: &str, body: &str) -> Value {
    json!({
        "query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }",
        "variables": {"i": {"conversationId": conv, "clientMessageId": cmid, "body": body}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_bombs_and_malformed_requests_get_bad_user_input_and_write_nothing() {
    let app = app().await;
    let seq = app.last_seq().await;
    let q = |query: String| json!({"query": query, "variables": {"c": app.conv}});

    let mut nested = String::from("id");
    for _ in 0..40 {
        nested = format!("replyTo {{ {nested} }}");
    }
    let depth = format!(
        "query($c: ID!) {{ conversation(id: $c) {{ messages {{ nodes {{ {nested} }} }} }} }}"
    );
    let aliases: String = (0..1000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    // Billion laughs: each fragment spreads the previous one twice (2^40 fields if expanded).
    let mut laughs = String::from("query { ...F40 }\nfragment F0 on Query { me { id } }\n");
    for i in 1..=40 {
        laughs.push_str(&format!(
            "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    let wide_fragments: String = (0..300)
        .map(|i| format!("fragment W{i} on Query {{ me {{ id }} }}\n"))
        .collect();
    let wide = format!(
        "query {{ {} }}\n{wide_fragments}",
        (0..300).map(|i| format!("...W{i} ")).collect::<String>()
    );
    let cases: Vec<(&str, Value)> = vec![
        ("depth bomb", q(depth)),
        ("alias bomb", q(format!("{{ {aliases} }}"))),
        ("fragment bomb (billion laughs)", q(laughs)),
        ("many fragments", q(wide)),
        (
            "cyclic fragments",
            q("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }".into()),
        ),
        (
            "self-recursive fragment",
            q("query { me { ...U } } fragment U on User { id ...U }".into()),
        ),
        (
            "cyclic fragments inside a mutation",
            json!({"query": "mutation { ...M } fragment M on Mutation { logout ...N } fragment N on Mutation { ...M }"}),
        ),
        (
            "fragment on an unknown type",
            q("query { ...X } fragment X on Nope { id }".into()),
        ),
        ("syntax error", q("{ me { id ".into())),
        ("empty query", json!({"query": ""})),
        ("no query", json!({"variables": {}})),
        ("query is not a string", json!({"query": 42})),
        (
            "variables are not an object",
            json!({"query": "{ me { id } }", "variables": [1, 2]}),
        ),
        (
            "unknown operationName",
            json!({"query": "query A { me { id } }", "operationName": "B"}),
        ),
        (
            "two operations without operationName",
            json!({"query": format!(
                r#"query A {{ me {{ id }} }} mutation B {{ sendMessage(input: {{conversationId: "{}", clientMessageId: "two-ops", body: "unnamed"}}) {{ seq }} }}"#,
                app.conv
            )}),
        ),
        (
            "wrong type: input is a string",
            json!({"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }", "variables": {"i": "hello"}}),
        ),
        (
            "wrong type: conversationId is an object",
            json!({"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }",
                   "variables": {"i": {"conversationId": {"$ne": null}, "clientMessageId": "x1", "body": "x"}}}),
        ),
        (
            "wrong type: body is a number",
            json!({"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }",
                   "variables": {"i": {"conversationId": app.conv, "clientMessageId": "x2", "body": 12}}}),
        ),
        (
            "missing required field",
            json!({"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }",
                   "variables": {"i": {"conversationId": app.conv, "body": "x"}}}),
        ),
        (
            "unknown input field",
            json!({"query": "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }",
                   "variables": {"i": {"conversationId": app.conv, "clientMessageId": "x3", "body": "x", "seq": 1}}}),
        ),
        (
            "wrong type: limit is a string",
            json!({"query": "query($c: ID!, $l: Int) { conversation(id: $c) { messages(limit: $l) { hasMore } } }",
                   "variables": {"c": app.conv, "l": "all"}}),
        ),
        (
            "Int out of range",
            json!({"query": "query($c: ID!) { conversation(id: $c) { messages(limit: 99999999999) { hasMore } } }",
                   "variables": {"c": app.conv}}),
        ),
        (
            "variable declared with the wrong type",
            json!({"query": "mutation($i: String!) { sendMessage(input: $i) { seq } }", "variables": {"i": "x"}}),
        ),
        (
            "null for a non-null variable",
            json!({"query": "query($c: ID!) { conversation(id: $c) { id } }", "variables": {"c": null}}),
        ),
        (
            "introspection (off outside dev mode)",
            json!({"query": "{ __schema { types { name } } }"}),
        ),
    ];
    let mut failures = Vec::new();
    for (what, body) in cases {
        let started = Instant::now();
        let (status, r) = app
            .post(
                Some("application/json"),
                serde_json::to_vec(&body).expect("json"),
                true,
            )
            .await;
        if started.elapsed() > Duration::from_secs(5) {
            failures.push(format!("{what}: answered after {:?}", started.elapsed()));
        }
        if r["errors"][0]["extensions"]["code"] != "BAD_USER_INPUT"
            || message(&r).is_empty()
            || !r["data"].is_null()
        {
            failures.push(format!("{what} ({status}): {r}"));
        }
    }

    // Bodies that are not one JSON GraphQL request.
    let send = serde_json::to_vec(&send_op(&app.conv, "ct", "wrong content type")).expect("json");
    let raw_cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            br#"{"query": "{ me { id } }""#.to_vec(),
        ),
        (
            "JSON that is a string",
            Some("application/json"),
            br#""{ me { id } }""#.to_vec(),
        ),
        ("JSON null", Some("application/json"), b"null".to_vec()),
        ("empty body", Some("application/json"), Vec::new()),
        (
            "invalid UTF-8",
            Some("application/json"),
            vec![b'{', 0xff, 0xfe, b'}'],
        ),
        ("text/plain", Some("text/plain"), send.clone()),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            b"query=mutation%7Blogout%7D".to_vec(),
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            b"--x\r\n\r\n--x--".to_vec(),
        ),
        ("xml", Some("application/xml"), b"<query/>".to_vec()),
        ("no content type", None, send.clone()),
    ];
    for (what, ct, body) in raw_cases {
        let (status, r) = app.post(ct, body, true).await;
        if !(400..500).contains(&status)
            || r["errors"][0]["extensions"]["code"] != "BAD_USER_INPUT"
            || message(&r).is_empty()
        {
            failures.push(format!("{what} ({status}): {r}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // 10 MB: a message body of 10 MB, and 10 MB of padding around a valid mutation. The
    // edge answers 413 as soon as the limit is crossed, while the client is still sending:
    // read the answer as a client that reads while it writes does.
    let huge = "x".repeat(10 << 20);
    let small = send_op(&app.conv, "huge2", "small");
    for (what, body) in [
        ("10 MB message", send_op(&app.conv, "huge1", &huge)),
        (
            "10 MB of padding",
            json!({"query": small["query"], "variables": small["variables"], "pad": huge}),
        ),
    ] {
        let (status, r) = post_streaming(
            app.port,
            app.alice.token().expect("token"),
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
        assert_eq!(status, 413, "{what}: {r}");
        assert_eq!(first_code(&r), "BAD_USER_INPUT", "{what}: {r}");
        assert!(
            message(&r).contains("GRAPHQL_MAX_BODY_BYTES"),
            "{what}: {r}"
        );
    }

    // 1,000 batched mutations: refused as a whole, none executed.
    let batch: Vec<Value> = (0..1000)
        .map(|i| send_op(&app.conv, &format!("batch{i}"), "batched"))
        .collect();
    let (status, r) = app
        .post(
            Some("application/json"),
            serde_json::to_vec(&batch).expect("json"),
            true,
        )
        .await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(first_code(&r), "BAD_USER_INPUT", "{r}");
    assert!(message(&r).contains("batched"), "{r}");

    // A mutation over GET must not run (GraphQL over HTTP: GET is for queries only).
    let resp = reqwest::Client::new()
        .get(format!(
            "{}?query={}",
            app.url(),
            url_encode(&format!(
                r#"mutation {{ sendMessage(input: {{conversationId: "{}", clientMessageId: "get", body: "via GET"}}) {{ seq }} }}"#,
                app.conv
            ))
        ))
        .bearer_auth(app.alice.token().expect("token"))
        .send()
        .await
        .expect("answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        (400..500).contains(&status),
        "GET mutation refused, got {status}: {text}"
    );

    assert_eq!(app.last_seq().await, seq, "nothing above wrote a message");
    // Register with wrong types writes no account: the name stays free.
    let name = format!("ghost{}", &minute_testkit::unique("g")[2..10]);
    let r = app
        .api
        .raw(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({"i": {"username": name, "password": 12345678}}),
        )
        .await;
    assert_eq!(first_code(&r), "BAD_USER_INPUT", "{r}");
    let (_, id, _) = register(&app.api, &name).await;
    assert!(
        !id.is_empty(),
        "the name was not taken by the refused attempt"
    );
}

/// POSTs `body` over a raw HTTP/1.1 connection, writing and reading at once; returns the
/// status and the JSON body of the answer.
async fn post_streaming(port: u16, token: &str, body: Vec<u8>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let writer = tokio::spawn(async move {
        // The server may close before the whole body is sent: that is its answer.
        let _ = write.write_all(head.as_bytes()).await;
        let _ = write.write_all(&body).await;
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body.trim())
        .unwrap_or_else(|_| json!({"not JSON": text.chars().take(500).collect::<String>()}));
    (status, json)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A protected operation of each subgraph, through the gateway.
const PROTECTED: [(&str, &str); 4] = [
    ("users", "{ me { id } }"),
    ("conversations", "{ conversations { nodes { id } } }"),
    ("messaging", r#"{ searchMessages(query: "first") { id } }"#),
    ("auth", "mutation { logout }"),
];

async fn refused_everywhere(app: &App, what: &str, header: &str) {
    for (subgraph, query) in PROTECTED {
        let resp = reqwest::Client::new()
            .post(app.url())
            .header("authorization", header)
            .json(&json!({"query": query}))
            .send()
            .await
            .expect("answers");
        let r: Value = resp.json().await.expect("json");
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{what} at {subgraph}: {r}"
        );
        assert!(
            r["data"].is_null()
                || r["data"]
                    .as_object()
                    .is_some_and(|o| o.values().all(Value::is_null)),
            "{what} at {subgraph}: no data: {r}"
        );
    }
    let mut ws = WsClient::open(app.port).await;
    ws.send_json(json!({"type": "connection_init", "payload": {"authorization": header}}))
        .await;
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        4403,
        "{what} at /ws"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused_by_every_subgraph_and_by_ws() {
    let app = app().await;
    let genuine = app.alice.token().expect("token").to_owned();
    for (what, token) in minute_testkit::jwt::forgeries(&genuine, &app.alice_refresh, SECRET) {
        refused_everywhere(&app, what, &format!("Bearer {token}")).await;
    }
    for (what, header) in [
        ("no scheme", genuine.clone()),
        ("Basic scheme", format!("Basic {genuine}")),
        ("empty bearer", "Bearer ".to_owned()),
        ("two tokens", format!("Bearer {genuine} {genuine}")),
    ] {
        refused_everywhere(&app, what, &header).await;
    }
    // None of the forgeries did anything: the genuine token still works everywhere...
    for (subgraph, query) in PROTECTED.iter().take(3) {
        let r = app.alice.raw(query, json!({})).await;
        assert!(r.get("errors").is_none(), "genuine at {subgraph}: {r}");
    }
    let ws = WsClient::connect(app.port, &genuine).await;
    ws.close().await;
    // ...until its session is revoked: then it is refused everywhere within 2 s (api.md).
    app.alice.ok("mutation { logout }", json!({})).await;
    let refused = minute_testkit::eventually(Duration::from_secs(2), || async {
        let r = app.alice.raw("{ me { id } }", json!({})).await;
        r["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    })
    .await;
    assert!(refused, "a revoked session is refused within 2 s");
    refused_everywhere(&app, "revoked session", &format!("Bearer {genuine}")).await;
    let r = app
        .api
        .raw(
            "mutation($r: String!) { refresh(refreshToken: $r) { accessToken } }",
            json!({"r": app.alice_refresh}),
        )
        .await;
    assert_eq!(
        first_code(&r),
        "UNAUTHENTICATED",
        "the revoked session's refresh token: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_frame_at_ws_gets_its_close_code_and_other_sockets_carry_on() {
    let app = app().await;
    let token = app.alice.token().expect("token").to_owned();
    let port = app.port;
    let mut observer = WsClient::connect(port, &token).await;
    observer.subscribe_events().await;
    let r = observer.execute("query { serverTime }", json!({})).await;
    assert!(r["data"]["serverTime"].is_string(), "{r}");
    let init =
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});

    // (what, authenticate first?, frames to send, expected close code)
    let big = format!(r#"{{"type":"ping","payload":"{}"}}"#, "x".repeat(65 * 1024));
    let cases: Vec<(&str, bool, Vec<WsMessage>, u16)> = vec![
        ("binary frame before init", false, vec![WsMessage::binary(b"{\"type\":\"connection_init\"}".to_vec())], 4400),
        ("binary frame", true, vec![WsMessage::binary(vec![0u8, 1, 2])], 4400),
        ("not JSON", true, vec![WsMessage::text("hello")], 4400),
        ("JSON array", true, vec![WsMessage::text("[1,2]")], 4400),
        ("no type", true, vec![WsMessage::text(r#"{"id":"1"}"#)], 4400),
        ("unknown type", true, vec![WsMessage::text(r#"{"type":"start","id":"1"}"#)], 4400),
        ("type is a number", true, vec![WsMessage::text(r#"{"type":7}"#)], 4400),
        ("subscribe without id", true, vec![WsMessage::text(r#"{"type":"subscribe","payload":{"query":"{ serverTime }"}}"#)], 4400),
        ("subscribe without payload", true, vec![WsMessage::text(r#"{"type":"subscribe","id":"1"}"#)], 4400),
        ("subscribe with a non-string query", true, vec![WsMessage::text(r#"{"type":"subscribe","id":"1","payload":{"query":5}}"#)], 4400),
        ("subscribe before connection_init", false, vec![WsMessage::text(r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { events { __typename } }"}}"#)], 4401),
        ("connection_init twice", true, vec![WsMessage::text(init.to_string())], 4429),
        ("duplicate subscription id", true, vec![
            WsMessage::text(json!({"type":"subscribe","id":"d","payload":{"query": minute_testkit::ws::EVENTS_SUBSCRIPTION}}).to_string()),
            WsMessage::text(json!({"type":"subscribe","id":"d","payload":{"query": minute_testkit::ws::EVENTS_SUBSCRIPTION}}).to_string()),
        ], 4409),
        ("65 KiB frame", true, vec![WsMessage::text(big.clone())], 1009),
        ("65 KiB frame before init", false, vec![WsMessage::text(big)], 1009),
        ("connection_init without payload", false, vec![WsMessage::text(r#"{"type":"connection_init"}"#)], 4403),
        ("connection_init with a payload that is a string", false, vec![WsMessage::text(r#"{"type":"connection_init","payload":"Bearer x"}"#)], 4400),
        ("authorization that is a number", false, vec![WsMessage::text(r#"{"type":"connection_init","payload":{"authorization":5}}"#)], 4403),
        ("a forged token", false, vec![WsMessage::text(json!({"type":"connection_init","payload":{"authorization": format!("Bearer {}", &token[..token.len() - 4])}}).to_string())], 4403),
    ];
    let mut failures = Vec::new();
    for (what, authenticated, frames, expected) in cases {
        let mut s = if authenticated {
            WsClient::connect(port, &token).await
        } else {
            WsClient::open(port).await
        };
        for f in frames {
            s.send(f).await;
        }
        match s.closed(Duration::from_secs(5)).await {
            Closed::Code(code, _) if code == expected => {}
            other => failures.push(format!("{what}: expected {expected}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Operations outside realtime's schema get an `error` message; the socket stays open.
    let mut s = WsClient::connect(port, &token).await;
    for (what, query) in [
        (
            "another subgraph's mutation",
            "mutation { logout }".to_owned(),
        ),
        (
            "a subscription outside the contract",
            "subscription { messages { id } }".to_owned(),
        ),
        ("syntax error", "subscription { events { ".to_owned()),
        (
            "typing in an unknown conversation",
            "mutation { typing(conversationId: \"nope\") }".to_owned(),
        ),
        (
            "typing with a wrong type",
            "mutation { typing(conversationId: [1]) }".to_owned(),
        ),
    ] {
        let r = s.execute(&query, json!({})).await;
        assert!(r["errors"][0]["message"].is_string(), "{what}: {r}");
        assert!(
            r["data"].is_null()
                || r.get("data").is_none()
                || r["data"]
                    .as_object()
                    .is_some_and(|o| o.values().all(Value::is_null)),
            "{what}: {r}"
        );
    }
    let r = s.execute("query { serverTime }", json!({})).await;
    assert!(
        r["data"]["serverTime"].is_string(),
        "the socket is still open: {r}"
    );

    // The observer connected all along still gets its events.
    app.alice
        .ok(
            r#"mutation($c: ID!) { sendMessage(input: {conversationId: $c, clientMessageId: "after", body: "after the bad frames"}) { seq } }"#,
            json!({"c": app.conv}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = observer
            .next_event(Duration::from_secs(10))
            .await
            .expect("the observer still receives events");
        if e["__typename"] == "MessageCreated" && e["body"] == "after the bad frames" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the message reached the observer"
        );
    }
    let _ = (&app.alice_id, &app.bob_id);
}

/// Runs `minute <role>` with `env`; returns its exit status and stderr.
fn start_and_fail(role: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minute"));
    let data = std::env::temp_dir().join(minute_testkit::unique("minute-cfg"));
    cmd.arg(role)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn")
        .env("MINUTE_DATA_DIR", data.display().to_string())
        .env("PORT", minute_testkit::free_port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the minute binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("minute {role} {env:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let _ = std::fs::remove_dir_all(data);
    (status, err)
}

#[test]
fn every_role_refuses_bad_configuration_naming_the_variable_and_no_secret() {
    const PASSWORD: &str = "hunter2-super-secret";
    const SHORT_SECRET: &str = "short-secret-value";
    let good_secret = ("JWT_SECRET", "config-test-secret-of-at-least-32-bytes");
    let amqp = format!("http://guest:{PASSWORD}@127.0.0.1:5672/");
    let redis = format!("http://:{PASSWORD}@127.0.0.1:6379");
    let mongo = format!("postgres://admin:{PASSWORD}@db/minute");
    let otel = format!("ftp://u:{PASSWORD}@collector");
    // (role, variable, value)
    let mut cases: Vec<(&str, &str, String)> = Vec::new();
    for role in crate::ROLES {
        cases.extend([
            (role, "PORT", "70000".to_owned()),
            (role, "LOG_LEVEL", "info,[[[".to_owned()),
            (role, "LOG_FORMAT", "xml".to_owned()),
            (role, "AMQP_URL", amqp.clone()),
            (role, "REDIS_URL", redis.clone()),
            (role, "OTEL_EXPORTER_OTLP_ENDPOINT", otel.clone()),
            (role, "JWT_SECRET", SHORT_SECRET.to_owned()),
            (role, "JWT_SECRET_PREVIOUS", SHORT_SECRET.to_owned()),
            (role, "ACCESS_TOKEN_TTL_SECS", "-5".to_owned()),
        ]);
    }
    for role in ["auth", "users", "conversations", "messaging", "realtime"] {
        cases.push((role, "DATABASE_URL", mongo.clone()));
    }
    cases.extend([
        ("auth", "REFRESH_TOKEN_TTL_SECS", "soon".to_owned()),
        ("auth", "AUTH_LOGIN_FAILURES_PER_ACCOUNT", "0".to_owned()),
        ("auth", "AUTH_HASH_CONCURRENCY", "many".to_owned()),
        ("auth", "AUTH_DATABASE_URL", mongo.clone()),
        ("users", "USERS_OUTBOX_INTERVAL_MS", "0".to_owned()),
        ("users", "USERS_DATABASE_URL", mongo.clone()),
        (
            "conversations",
            "CONVERSATIONS_MAX_GROUP_MEMBERS",
            "1".to_owned(),
        ),
        ("conversations", "USERS_URL", "ftp://users".to_owned()),
        (
            "messaging",
            "MESSAGING_RELAY_INTERVAL_MS",
            "fast".to_owned(),
        ),
        (
            "messaging",
            "CONVERSATIONS_URL",
            "conversations:8080".to_owned(),
        ),
        (
            "realtime",
            "REALTIME_MAX_CONNECTIONS_PER_USER",
            "lots".to_owned(),
        ),
        ("realtime", "REALTIME_INIT_TIMEOUT_SECS", "3s".to_owned()),
        ("realtime", "REALTIME_MAX_FRAMES_PER_SEC", "-1".to_owned()),
        ("gateway", "AUTH_URL", "ftp://auth".to_owned()),
        ("gateway", "GRAPHQL_MAX_DEPTH", "0".to_owned()),
        ("gateway", "GRAPHQL_BATCHING", "maybe".to_owned()),
        ("gateway", "GRAPHQL_MAX_BODY_BYTES", "1MB".to_owned()),
        ("gateway", "SUBGRAPH_TIMEOUT_SECS", "never".to_owned()),
        ("all", "GRAPHQL_INTROSPECTION", "perhaps".to_owned()),
    ]);
    let mut failures = Vec::new();
    for (role, var, value) in &cases {
        let mut env: Vec<(&str, &str)> = vec![(var, value.as_str())];
        if *var != "JWT_SECRET" {
            env.push(good_secret);
        }
        let (status, err) = start_and_fail(role, &env);
        let problem = if status.success() || status.code().is_none() {
            Some(format!("exits non-zero, got {status}"))
        } else if !err.contains(var) {
            Some("names the variable".to_owned())
        } else if err.contains(PASSWORD) || err.contains(SHORT_SECRET) {
            Some("prints no secret".to_owned())
        } else if err.lines().count() > 10 {
            Some("says it in a few lines".to_owned())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!(
                "minute {role} with {var}={value:?}: {p}; stderr: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
