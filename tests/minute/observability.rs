//! Observability as an operator sees it, on the real binary split into its roles (auth,
//! users, conversations, messaging, realtime, gateway) over RabbitMQ (a vhost of its own),
//! Redis and the MongoDB-wire server:
//!
//! - one `sendMessage` through the gateway is one trace, exported over OTLP to a real
//!   receiver (`scripts/otlp-receiver.py`), with spans from gateway, messaging and
//!   realtime, the consumer's span a child of the relay's publish across RabbitMQ, and the
//!   socket write at the end;
//! - `/metrics` on every role parses as Prometheus text and its metrics move;
//! - a whole auth flow logged as JSON at TRACE level (and exported as spans) leaks no
//!   password, token or `JWT_SECRET`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use minute_testkit::{GraphqlClient, WsClient};
use serde_json::{Value, json};

use crate::all_in_one::Minute;
use crate::stack::{SECRET as JWT_SECRET, Stack};

const PASSWORD: &str = "tr0ub4dor&3-correct-horse";
const NEW_PASSWORD: &str = "battery-staple-9-horse-correct";

/// The OTLP/HTTP receiver of `scripts/otlp-receiver.py`, writing spans as JSON lines.
struct Receiver {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Receiver {
    fn start(dir: &std::path::Path) -> Self {
        let python = std::env::var("OTLP_RECEIVER_PYTHON").unwrap_or_else(|_| {
            panic!(
                "OTLP_RECEIVER_PYTHON is not set: it must name a python with the \
                 opentelemetry-proto package. scripts/test installs one; by hand: \
                 python3 -m venv target/otlp/venv && target/otlp/venv/bin/pip install \
                 opentelemetry-proto==1.45.2 && export OTLP_RECEIVER_PYTHON=$PWD/target/otlp/venv/bin/python"
            )
        });
        let out = dir.join("spans.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/otlp-receiver.py");
        let mut child = Command::new(&python)
            .args([script, "--port", "0", "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("OTLP_RECEIVER_PYTHON={python} does not run: {e}"));
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the receiver says where it listens");
        let port = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the OTLP receiver did not start: {first:?}"));
        Self { child, out, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("the receiver writes JSON lines"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ROLES: [&str; 6] = crate::SPLIT_ROLES;

/// The split stack logging at INFO and exporting spans in small batches at once (not every
/// 5 s), with `extra` on top.
async fn start_stack(extra: &[(&str, String)]) -> Stack {
    let mut env = vec![
        ("LOG_LEVEL", "info".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    env.extend_from_slice(extra);
    Stack::start_with(&env).await
}

const AUTH: &str = "accessToken refreshToken user { id }";

struct User {
    api: GraphqlClient,
    id: String,
    refresh: String,
}

async fn register(api: &GraphqlClient, name: &str) -> User {
    let data = api
        .ok(
            &format!(
                "mutation Register($i: RegisterInput!) {{ register(input: $i) {{ {AUTH} }} }}"
            ),
            json!({"i": {"username": name, "password": PASSWORD}}),
        )
        .await;
    let p = &data["register"];
    User {
        api: api.with_token(p["accessToken"].as_str().expect("access token")),
        id: p["user"]["id"].as_str().expect("id").to_owned(),
        refresh: p["refreshToken"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}

fn suffix() -> String {
    minute_testkit::unique("u")[2..10].to_owned()
}

/// Alice and Bob in a direct conversation, Bob listening on `/ws`.
async fn conversation(stack: &Stack) -> (User, WsClient, String) {
    let api = stack.api.clone();
    let s = suffix();
    let alice = register(&api, &format!("alice{s}")).await;
    let bob = register(&api, &format!("bob{s}")).await;
    let conv = alice
        .api
        .ok(
            "mutation Create($u: ID!) { createDirectConversation(userId: $u) { id } }",
            json!({"u": bob.id}),
        )
        .await["createDirectConversation"]["id"]
        .as_str()
        .expect("conversation id")
        .to_owned();
    let mut ws = WsClient::connect(stack.port("realtime"), bob.api.token().expect("token")).await;
    ws.subscribe_events().await;
    // The replica binds the conversation's routing key after the subscription starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (alice, ws, conv)
}

/// The next `MessageCreated` on `ws` (other events, like presence, are skipped).
async fn message_created(ws: &mut WsClient) -> Value {
    loop {
        let event = ws
            .next_event(Duration::from_secs(10))
            .await
            .expect("a MessageCreated event within 10 s");
        if event["__typename"] == "MessageCreated" {
            return event;
        }
    }
}

const SEND: &str = "mutation SendMessage($i: SendMessageInput!) { sendMessage(input: $i) { id } }";

#[tokio::test]
async fn one_send_message_is_one_trace_across_gateway_messaging_and_realtime() {
    let dir = std::env::temp_dir().join(minute_testkit::unique("otlp"));
    std::fs::create_dir_all(&dir).expect("dir");
    let receiver = Receiver::start(&dir);
    let stack = start_stack(&[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())]).await;
    let (alice, mut bob_ws, conv) = conversation(&stack).await;

    // The client starts the trace: its span is the root's parent.
    let trace_id = format!("{:032x}", rand::random::<u128>());
    let client_span = format!("{:016x}", rand::random::<u64>());
    let response: Value = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/graphql",
            stack.port("gateway")
        ))
        .bearer_auth(alice.api.token().expect("token"))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({
            "query": SEND,
            "operationName": "SendMessage",
            "variables": {"i": {"conversationId": conv, "clientMessageId": "t1", "body": "traced"}},
        }))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("JSON");
    assert!(response["errors"].is_null(), "{response}");
    let event = message_created(&mut bob_ws).await;
    assert_eq!(event["body"], "traced");

    // The socket write ends after the push, and the outer spans (the edge's, the engine's,
    // its subgraph fetch) end after the response: they reach the receiver in a later export
    // batch. Wait for the whole tree, not only its first spans.
    let found = minute_testkit::eventually(Duration::from_secs(30), || {
        let spans = receiver.spans();
        let trace_id = trace_id.clone();
        let client_span = client_span.clone();
        async move {
            let of_trace: Vec<&Value> = spans
                .iter()
                .filter(|s| s["trace_id"] == trace_id.as_str())
                .collect();
            let ids: HashSet<&str> = of_trace
                .iter()
                .filter_map(|s| s["span_id"].as_str())
                .collect();
            let closed = of_trace.iter().all(|s| {
                let parent = s["parent_span_id"].as_str().unwrap_or("");
                ids.contains(parent) || parent == client_span
            });
            closed
                && of_trace.iter().any(|s| s["name"] == "ws.send")
                && ["gateway", "messaging", "realtime"]
                    .iter()
                    .all(|r| of_trace.iter().any(|s| s["service"] == *r))
        }
    })
    .await;
    let spans: Vec<Value> = receiver
        .spans()
        .into_iter()
        .filter(|s| s["trace_id"] == trace_id.as_str())
        .collect();
    let summary: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {} <- {}",
                s["service"], s["kind"], s["name"], s["span_id"], s["parent_span_id"]
            )
        })
        .collect();
    assert!(
        found,
        "no spans of gateway, messaging, realtime and ws.send in one trace:\n{}",
        summary.join("\n")
    );

    let services: HashSet<&str> = spans.iter().filter_map(|s| s["service"].as_str()).collect();
    for role in ["gateway", "messaging", "realtime"] {
        assert!(
            services.contains(role),
            "no {role} span:\n{}",
            summary.join("\n")
        );
    }
    // Resource attributes: the role, the version and the replica.
    let gateway = spans
        .iter()
        .find(|s| s["service"] == "gateway")
        .expect("gateway");
    assert!(
        gateway["resource"]["service.instance.id"]
            .as_str()
            .is_some_and(|id| id.starts_with("gateway-")),
        "{gateway}"
    );
    assert_eq!(
        gateway["resource"]["service.version"],
        env!("CARGO_PKG_VERSION")
    );

    // One tree: every span's parent is in the trace, except the root, whose parent is the
    // client's span.
    let ids: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["span_id"].as_str().expect("span id"), s))
        .collect();
    let parent_of = |s: &Value| s["parent_span_id"].as_str().unwrap_or("").to_owned();
    for s in &spans {
        let parent = parent_of(s);
        assert!(
            ids.contains_key(parent.as_str()) || parent == client_span,
            "span {} has a parent outside the trace:\n{}",
            s["name"],
            summary.join("\n")
        );
    }
    let root = spans
        .iter()
        .find(|s| parent_of(s) == client_span)
        .expect("a span continues the client's traceparent");
    assert_eq!(root["service"], "gateway", "the edge is the root");

    // Across the broker: realtime's consumer span is the child of messaging's publish.
    let consume = spans
        .iter()
        .find(|s| s["service"] == "realtime" && s["kind"] == "SPAN_KIND_CONSUMER")
        .unwrap_or_else(|| panic!("no realtime consumer span:\n{}", summary.join("\n")));
    let publish = ids[parent_of(consume).as_str()];
    assert_eq!(publish["service"], "messaging", "{}", summary.join("\n"));
    assert_eq!(publish["kind"], "SPAN_KIND_PRODUCER");
    // ... the publish continues the write made in messaging's request span ...
    let mut up = publish;
    let mut chain = vec![up["name"].to_string()];
    while let Some(parent) = ids.get(parent_of(up).as_str()) {
        up = parent;
        chain.push(format!("{}:{}", up["service"], up["name"]));
    }
    assert!(
        chain
            .iter()
            .any(|c| c.starts_with("\"messaging\":\"graphql")),
        "publish -> messaging request: {chain:?}"
    );
    assert!(
        chain.iter().any(|c| c.starts_with("\"gateway\"")),
        "{chain:?}"
    );
    // ... and the socket write is the consumer's child.
    let write = spans
        .iter()
        .find(|s| s["name"] == "ws.send")
        .expect("socket write span");
    assert_eq!(parent_of(write), consume["span_id"].as_str().unwrap_or(""));
    drop(stack);
}

/// Parses a `/metrics` body with a Prometheus text-format parser.
async fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (status, body) = minute_testkit::http_get(port, "/metrics")
        .await
        .expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text format: {e}\n{body}"))
}

/// The value of a counter or gauge, or the observation count of a histogram, of the first
/// sample named `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or_else(|| {
        let names: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
        panic!("no {name} {labels:?}; have {names:?}")
    })
}

#[tokio::test]
async fn every_role_serves_prometheus_metrics_that_move() {
    let stack = start_stack(&[("AUTH_LOGIN_FAILURES_PER_ACCOUNT", "2".to_owned())]).await;
    let before: HashMap<&str, prometheus_parse::Scrape> = {
        let mut m = HashMap::new();
        for r in ROLES {
            m.insert(r, scrape(stack.port(r)).await);
        }
        m
    };
    for r in ROLES {
        assert!(
            metric(&before[r], "process_resident_memory_bytes", &[]) > 1e6,
            "{r} reports its RSS"
        );
    }
    assert_eq!(
        metric(&before["realtime"], "minute_realtime_ws_connections", &[]),
        0.0
    );
    assert_eq!(
        metric(&before["auth"], "minute_auth_login_failures_total", &[]),
        0.0
    );

    let (alice, mut bob_ws, conv) = conversation(&stack).await;
    let connected = scrape(stack.port("realtime")).await;
    assert_eq!(
        metric(&connected, "minute_realtime_ws_connections", &[]),
        1.0
    );
    for i in 0..3 {
        alice
            .api
            .ok(
                SEND,
                json!({"i": {"conversationId": conv, "clientMessageId": format!("m{i}"), "body": "hi"}}),
            )
            .await;
        message_created(&mut bob_ws).await;
    }
    // Three wrong passwords: failures, then the per-account limit (2) refuses.
    let api = stack.api.clone();
    let login = "mutation Login($i: LoginInput!) { login(input: $i) { accessToken } }";
    let name = format!("nobody{}", suffix());
    for _ in 0..3 {
        api.raw(
            login,
            json!({"i": {"username": name, "password": "wrong-password-1"}}),
        )
        .await;
    }
    bob_ws.close().await;

    let after = |r| {
        let port = stack.port(r);
        async move { scrape(port).await }
    };
    let gateway = after("gateway").await;
    assert!(
        metric(
            &gateway,
            "minute_graphql_request_duration_seconds",
            &[
                ("tier", "gateway"),
                ("operation", "SendMessage"),
                ("outcome", "ok")
            ]
        ) >= 3.0
    );
    assert!(
        metric(
            &gateway,
            "minute_http_request_duration_seconds",
            &[("path", "/graphql"), ("status", "200")]
        ) >= 3.0
    );
    let messaging = after("messaging").await;
    // The planner's subgraph request is anonymous: it is named by its root field.
    assert!(
        metric(
            &messaging,
            "minute_graphql_request_duration_seconds",
            &[("tier", "subgraph"), ("operation", "sendMessage")]
        ) >= 3.0
    );
    metric(
        &messaging,
        "minute_outbox_pending_events",
        &[("service", "messaging")],
    );
    metric(
        &messaging,
        "minute_outbox_oldest_age_seconds",
        &[("service", "messaging")],
    );
    // The relay's publishes reached realtime's queue through the broker.
    let realtime = after("realtime").await;
    assert!(
        metric(
            &realtime,
            "minute_realtime_events_pushed_total",
            &[("event", "MessageCreated")]
        ) >= 3.0
    );
    assert!(metric(&realtime, "minute_realtime_send_to_push_seconds", &[]) >= 3.0);
    assert!(
        metric(
            &realtime,
            "minute_bus_consumer_lag_seconds",
            &[("queue", "realtime.delivery")]
        ) >= 3.0
    );
    metric(
        &realtime,
        "minute_realtime_slow_client_disconnects_total",
        &[],
    );
    metric(
        &realtime,
        "minute_rate_limit_hits_total",
        &[("limit", "ws_frames")],
    );
    let closed = minute_testkit::eventually(Duration::from_secs(5), || async {
        value(
            &after("realtime").await,
            "minute_realtime_ws_connections",
            &[],
        ) == Some(0.0)
    })
    .await;
    assert!(closed, "the connection gauge goes back to 0");
    // Durable consumer queues: redeliveries, and dead-letter depth sampled from the broker.
    let conversations = after("conversations").await;
    metric(
        &conversations,
        "minute_bus_redeliveries_total",
        &[("queue", "conversations.users")],
    );
    let sampled = minute_testkit::eventually(Duration::from_secs(15), || async {
        value(
            &after("messaging").await,
            "minute_bus_dlq_depth",
            &[("queue", "messaging.memberships")],
        ) == Some(0.0)
    })
    .await;
    assert!(sampled, "the DLQ depth of messaging.memberships is sampled");
    assert!(
        metric(
            &after("messaging").await,
            "minute_bus_consumer_lag_seconds",
            &[("queue", "messaging.memberships")]
        ) >= 1.0,
        "messaging consumed the conversation's creation"
    );
    let auth = after("auth").await;
    assert!(metric(&auth, "minute_auth_login_failures_total", &[]) >= 2.0);
    assert!(metric(&auth, "minute_rate_limit_hits_total", &[("limit", "login")]) >= 1.0);
    assert!(
        metric(
            &auth,
            "minute_outbox_pending_events",
            &[("service", "auth")]
        ) >= 0.0
    );
}

#[tokio::test]
async fn all_in_one_serves_metrics_on_its_port() {
    let port = minute_testkit::free_port();
    let data = std::env::temp_dir().join(minute_testkit::unique("minute-obs-all"));
    let minute = Minute::start(port, &[("MINUTE_DATA_DIR", data.display().to_string())]).await;
    let api = GraphqlClient::new(port);
    register(&api, &format!("carol{}", suffix())).await;
    let scrape = scrape(port).await;
    drop(minute);
    let _ = std::fs::remove_dir_all(data);
    assert!(metric(&scrape, "process_resident_memory_bytes", &[]) > 1e6);
    for (tier, operation) in [("gateway", "Register"), ("subgraph", "register")] {
        assert!(
            metric(
                &scrape,
                "minute_graphql_request_duration_seconds",
                &[("tier", tier), ("operation", operation)]
            ) >= 1.0
        );
    }
    metric(
        &scrape,
        "minute_outbox_pending_events",
        &[("service", "auth")],
    );
}

#[tokio::test]
async fn logs_and_spans_of_a_whole_auth_flow_hold_no_secret() {
    let dir = std::env::temp_dir().join(minute_testkit::unique("otlp"));
    std::fs::create_dir_all(&dir).expect("dir");
    let receiver = Receiver::start(&dir);
    let mut stack = start_stack(&[
        ("LOG_FORMAT", "json".to_owned()),
        ("LOG_LEVEL", "trace".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
    ])
    .await;
    let api = stack.api.clone();
    let name = format!("dave{}", suffix());
    let dave = register(&api, &name).await;
    let mut secrets = vec![
        PASSWORD.to_owned(),
        NEW_PASSWORD.to_owned(),
        JWT_SECRET.to_owned(),
        dave.api.token().expect("token").to_owned(),
        dave.refresh.clone(),
    ];
    let login = api
        .ok(
            &format!("mutation Login($i: LoginInput!) {{ login(input: $i) {{ {AUTH} }} }}"),
            json!({"i": {"username": name, "password": PASSWORD, "deviceName": "phone"}}),
        )
        .await;
    let session = api.with_token(login["login"]["accessToken"].as_str().expect("token"));
    secrets.push(session.token().expect("token").to_owned());
    secrets.push(
        login["login"]["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    );
    let refreshed = api
        .ok(
            &format!("mutation Refresh($r: String!) {{ refresh(refreshToken: $r) {{ {AUTH} }} }}"),
            json!({"r": login["login"]["refreshToken"]}),
        )
        .await;
    let refreshed_token = refreshed["refresh"]["accessToken"].as_str().expect("token");
    secrets.push(refreshed_token.to_owned());
    secrets.push(
        refreshed["refresh"]["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    );
    // A wrong password, then the right change, then logout.
    api.raw(
        "mutation Login($i: LoginInput!) { login(input: $i) { accessToken } }",
        json!({"i": {"username": name, "password": format!("{PASSWORD}-wrong")}}),
    )
    .await;
    secrets.push(format!("{PASSWORD}-wrong"));
    let me = dave
        .api
        .ok("query Me { me { id username } }", json!({}))
        .await;
    assert_eq!(me["me"]["username"], name.as_str());
    dave.api
        .ok(
            "mutation Change($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
            json!({"c": PASSWORD, "n": NEW_PASSWORD}),
        )
        .await;
    dave.api.ok("mutation Logout { logout }", json!({})).await;
    let relogin = api
        .ok(
            &format!("mutation Login($i: LoginInput!) {{ login(input: $i) {{ {AUTH} }} }}"),
            json!({"i": {"username": name, "password": NEW_PASSWORD}}),
        )
        .await;
    secrets.push(
        relogin["login"]["accessToken"]
            .as_str()
            .expect("token")
            .to_owned(),
    );
    secrets.push(
        relogin["login"]["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    );
    // SIGTERM flushes the last spans.
    stack.stop();

    let logs = stack.output();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 100, "TRACE logging produced output");
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "LOG_FORMAT=json writes JSON lines only: {line}"
        );
    }
    // Lines inside a unit of work (here the relay's publish of auth's events) carry its
    // trace id, the one exported with its spans.
    let auth_log = stack.log("auth");
    let traced: Vec<Value> = auth_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["trace_id"].is_string())
        .collect();
    assert!(
        !traced.is_empty(),
        "auth's log lines inside a unit of work carry trace_id"
    );
    let spans = std::fs::read_to_string(&receiver.out).unwrap_or_default();
    assert!(
        spans.contains("\"service\": \"auth\""),
        "auth exported spans"
    );
    let trace_id = traced[0]["trace_id"].as_str().expect("trace id");
    assert!(
        spans.contains(&format!("\"trace_id\": \"{trace_id}\"")),
        "the trace id in the logs is the exported trace's"
    );
    for secret in &secrets {
        // A JWT is also checked by its signature alone (the part that must never leak).
        let needles: Vec<&str> = std::iter::once(secret.as_str())
            .chain(
                secret
                    .rsplit('.')
                    .next()
                    .filter(|s| s.len() > 20 && secret.contains('.')),
            )
            .collect();
        for needle in needles {
            if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                panic!("a log line holds a secret ({}...): {line}", &needle[..8]);
            }
            if let Some(line) = spans.lines().find(|l| l.contains(needle)) {
                panic!("a span holds a secret ({}...): {line}", &needle[..8]);
            }
        }
    }
}
