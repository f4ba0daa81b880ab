//! `gateway`: the same query through the gateway (`/graphql` on the public port) and
//! directly to the subgraph(s) on their loopback ports, at concurrency 1 and 16.
//! Single-subgraph: `me` (users). Cross-subgraph: `conversations` with `unreadCount` and
//! `lastMessage { body sender { displayName } }` (conversations -> messaging -> users);
//! its direct baseline is the same three fetches made by hand, one after the other, as
//! the gateway's plan makes them.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{Loop, Outcome, Row, RunArgs, Table, closed_loop, ratio};
use crate::api::{Api, run_tag};
use crate::stats::fmt_ms;

const ME: &str = "query { me { id username displayName } }";
const CROSS: &str = "query { conversations(first: 10) { nodes { id title memberCount unreadCount lastMessage { body sender { displayName } } } } }";
const CONVERSATIONS: &str = "query { conversations(first: 10) { nodes { id title memberCount } } }";
const MESSAGING_ENTITIES: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Conversation { unreadCount lastMessage { body sender { id } } } } }";
const USERS_ENTITIES: &str =
    "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { displayName } } }";

/// The loopback port of each subgraph of `minute all`, from its JSON log
/// (`{"port":N,"message":"users listening",...}`).
fn subgraph_ports(log: &Path) -> anyhow::Result<std::collections::HashMap<String, u16>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    let mut ports = std::collections::HashMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(msg), Some(port)) = (v["message"].as_str(), v["port"].as_u64())
            && let Some(name) = msg.strip_suffix(" listening")
        {
            ports.insert(name.to_owned(), port as u16);
        }
    }
    for need in ["users", "conversations", "messaging"] {
        if !ports.contains_key(need) {
            bail!(
                "no \"{need} listening\" line with a port in {} (start minute with LOG_FORMAT=json)",
                log.display()
            );
        }
    }
    Ok(ports)
}

/// The cross-subgraph query made by hand: three fetches, each from the previous result.
async fn cross_by_hand(
    conversations: &Api,
    messaging: &Api,
    users: &Api,
    token: &str,
) -> anyhow::Result<Vec<String>> {
    let c = conversations
        .gql(Some(token), CONVERSATIONS, json!({}))
        .await?;
    let nodes = c["conversations"]["nodes"]
        .as_array()
        .context("conversations.nodes")?;
    let reps: Vec<Value> = nodes
        .iter()
        .map(|n| json!({"__typename": "Conversation", "id": n["id"]}))
        .collect();
    let m = messaging
        .gql(Some(token), MESSAGING_ENTITIES, json!({"r": reps}))
        .await?;
    let entities = m["_entities"].as_array().context("_entities")?;
    let senders: BTreeSet<&str> = entities
        .iter()
        .filter_map(|e| e["lastMessage"]["sender"]["id"].as_str())
        .collect();
    let reps: Vec<Value> = senders
        .iter()
        .map(|id| json!({"__typename": "User", "id": id}))
        .collect();
    let u = users
        .gql(Some(token), USERS_ENTITIES, json!({"r": reps}))
        .await?;
    let mut names: Vec<String> = u["_entities"]
        .as_array()
        .context("_entities")?
        .iter()
        .filter_map(|e| e["displayName"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

#[derive(Debug, Clone, serde::Serialize)]
struct Measured {
    query: &'static str,
    path: &'static str,
    run: Loop,
}

pub(super) async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let log = args
        .log
        .as_ref()
        .context("gateway needs --log (minute's JSON log)")?;
    let ports = subgraph_ports(log)?;
    let sub = |name: &str| Api::new(format!("http://127.0.0.1:{}/graphql", ports[name]));
    let (users_api, conv_api, msg_api) = (sub("users"), sub("conversations"), sub("messaging"));
    let gateway = Api::new(args.graphql_url());

    let tag = run_tag();
    let users = gateway.register_many(&format!("g{tag}_"), 11, 4).await?;
    let me = users[0].clone();
    for (i, other) in users[1..].iter().enumerate() {
        let conv = gateway.create_direct(&me.token, &other.id).await?;
        gateway
            .send_message(
                &other.token,
                &conv,
                &format!("g{i}"),
                "hello from the gateway bench",
            )
            .await?;
    }

    // The two paths give the same answer.
    let through = gateway.gql(Some(&me.token), CROSS, json!({})).await?;
    let mut names: Vec<String> = through["conversations"]["nodes"]
        .as_array()
        .context("nodes")?
        .iter()
        .filter_map(|n| {
            n["lastMessage"]["sender"]["displayName"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    let by_hand = cross_by_hand(&conv_api, &msg_api, &users_api, &me.token).await?;
    if names != by_hand || names.len() != 10 {
        bail!("gateway and direct fetches disagree: {names:?} vs {by_hand:?}");
    }
    let direct_me = users_api.gql(Some(&me.token), ME, json!({})).await?;
    let gw_me = gateway.gql(Some(&me.token), ME, json!({})).await?;
    if direct_me != gw_me {
        bail!("me differs: {direct_me} vs {gw_me}");
    }

    let duration = args.secs(5.0, 0.5);
    let mut results = Vec::new();
    for concurrency in [1, 16] {
        for (query, path) in [
            ("single-subgraph (me)", "direct"),
            ("single-subgraph (me)", "gateway"),
            ("cross-subgraph (10 conversations)", "direct, by hand"),
            ("cross-subgraph (10 conversations)", "gateway"),
        ] {
            eprintln!("[loadgen] gateway: {query} {path} c={concurrency}");
            let token = me.token.clone();
            let (g, u, c, m) = (
                gateway.clone(),
                users_api.clone(),
                conv_api.clone(),
                msg_api.clone(),
            );
            let cross = query.starts_with("cross");
            let through_gateway = path == "gateway";
            let op = move |_| {
                let (token, g, u, c, m) =
                    (token.clone(), g.clone(), u.clone(), c.clone(), m.clone());
                async move {
                    match (cross, through_gateway) {
                        (false, false) => u.gql(Some(&token), ME, json!({})).await.map(drop),
                        (false, true) => g.gql(Some(&token), ME, json!({})).await.map(drop),
                        (true, false) => cross_by_hand(&c, &m, &u, &token).await.map(drop),
                        (true, true) => g.gql(Some(&token), CROSS, json!({})).await.map(drop),
                    }
                }
            };
            // Warm-up, then the measured run.
            closed_loop(concurrency, duration / 5, op.clone()).await?;
            let run = closed_loop(concurrency, duration, op).await?;
            results.push(Measured { query, path, run });
        }
    }

    let find = |query: &str, path: &str, c: usize| {
        results
            .iter()
            .find(|m| {
                m.query.starts_with(query) && m.path.starts_with(path) && m.run.concurrency == c
            })
            .map(|m| m.run)
            .unwrap_or_default()
    };
    let (sd1, sg1) = (find("single", "direct", 1), find("single", "gateway", 1));
    let (cd1, cg1) = (find("cross", "direct", 1), find("cross", "gateway", 1));
    let (sd16, sg16) = (find("single", "direct", 16), find("single", "gateway", 16));
    let added = sg1.latency.p99_ms - sd1.latency.p99_ms;
    let summary = vec![
        Row {
            metric: "gateway: single-subgraph query, p99 added by the gateway (c=1)".into(),
            goal: Some("<= +1 ms p99 on loopback (issue 7)".into()),
            measured: format!(
                "{added:+.3} ms (p99 {} through the gateway)",
                fmt_ms(sg1.latency.p99_ms)
            ),
            baseline: Some(format!("p99 {} direct", fmt_ms(sd1.latency.p99_ms))),
            ratio: ratio(sg1.latency.p99_ms, sd1.latency.p99_ms),
            goal_met: Some(added <= 1.0),
        },
        Row {
            metric: "gateway: cross-subgraph query p99 (c=1)".into(),
            goal: None,
            measured: format!("{} through the gateway", fmt_ms(cg1.latency.p99_ms)),
            baseline: Some(format!(
                "{} by hand, 3 direct fetches",
                fmt_ms(cd1.latency.p99_ms)
            )),
            ratio: ratio(cg1.latency.p99_ms, cd1.latency.p99_ms),
            goal_met: None,
        },
        Row {
            metric: "gateway: single-subgraph req/s (c=16)".into(),
            goal: None,
            measured: format!("{:.0} req/s through the gateway", sg16.per_second),
            baseline: Some(format!("{:.0} req/s direct", sd16.per_second)),
            ratio: ratio(sg16.per_second, sd16.per_second),
            goal_met: None,
        },
    ];
    let rows = results
        .iter()
        .map(|m| {
            [m.query.to_owned(), m.path.to_owned()]
                .into_iter()
                .chain(m.run.cells())
                .collect()
        })
        .collect();
    Ok(Outcome {
        baseline: "the same query sent directly to the subgraph's loopback port (cross-subgraph: the plan's three fetches by hand)".into(),
        summary,
        tables: vec![Table {
            title: format!(
                "Gateway vs direct, closed loop, {} s each after a warm-up",
                duration.as_secs_f64()
            ),
            columns: ["query", "path"]
                .into_iter()
                .chain(Loop::COLUMNS)
                .map(String::from)
                .collect(),
            rows,
        }],
        notes: vec![
            "Both paths return the same data (checked before measuring). In minute all, the gateway's engine calls the subgraphs over loopback HTTP; that hop is in the gateway numbers.".into(),
        ],
        data: json!({"results": results}),
    })
}
