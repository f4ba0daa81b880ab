//! `history`: `messages(limit: 50)` through the gateway in a conversation of 100,000
//! messages (sent through `sendMessage` first), the latest page and pages at random
//! depths. Baseline: the same query in a conversation of 50 messages, same process, same
//! run — what the size of the conversation costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use super::{Loop, Outcome, Row, RunArgs, Table, closed_loop, ratio};
use crate::api::{Api, run_tag};
use crate::stats::fmt_ms;

const PAGE: &str = "query($c: ID!, $b: Int) { conversation(id: $c) { messages(before: $b, limit: 50) { nodes { id seq body createdAt sender { id } } hasMore } } }";
const LAST_SEQ: &str = "query($c: ID!) { conversation(id: $c) { lastSeq } }";

/// Sends `n` messages into `conversation` with `workers` concurrent senders (alternating
/// between the two members); stops early at `budget`. Returns how many and how long.
async fn seed(
    api: &Api,
    id_prefix: &'static str,
    tokens: [String; 2],
    conversation: &str,
    n: u64,
    workers: usize,
    budget: Duration,
) -> anyhow::Result<(u64, f64)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + budget;
    let tokens = Arc::new(tokens);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (api, next, tokens, conversation) = (
            api.clone(),
            next.clone(),
            tokens.clone(),
            conversation.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sent = 0_u64;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n || tokio::time::Instant::now() > deadline {
                    return anyhow::Ok(sent);
                }
                api.send_message(
                    &tokens[w % 2],
                    &conversation,
                    &format!("{id_prefix}{k}"),
                    &format!("history message {k}: some text of an ordinary length for a chat"),
                )
                .await?;
                sent += 1;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

#[derive(Debug, Clone, serde::Serialize)]
struct Measured {
    conversation: String,
    page: &'static str,
    run: Loop,
}

pub(super) async fn run(args: &RunArgs) -> anyhow::Result<Outcome> {
    let target = args.pick(100_000_u64, 500);
    let api = Api::new(args.graphql_url());
    let tag = run_tag();
    let users = api.register_many(&format!("h{tag}_"), 2, 2).await?;
    let (a, b) = (&users[0], &users[1]);
    let big = api
        .create_group(&a.token, "history bench", std::slice::from_ref(&b.id))
        .await?;
    let small = api
        .create_group(&a.token, "history bench (50)", std::slice::from_ref(&b.id))
        .await?;
    let tokens = [a.token.clone(), b.token.clone()];
    eprintln!("[loadgen] history: sending {target} messages");
    let budget = args.secs(180.0, 60.0);
    let (seeded, seed_s) = seed(&api, "big", tokens.clone(), &big, target, 32, budget).await?;
    seed(&api, "small", tokens, &small, 50, 4, budget).await?;
    let last_seq = |conv: String| {
        let api = api.clone();
        let token = a.token.clone();
        async move {
            let d = api.gql(Some(&token), LAST_SEQ, json!({"c": conv})).await?;
            d["conversation"]["lastSeq"].as_u64().context("lastSeq")
        }
    };
    let big_n = last_seq(big.clone()).await?;
    if big_n != seeded {
        bail!("the conversation has lastSeq {big_n}, {seeded} were sent");
    }
    let small_n = last_seq(small.clone()).await?;
    if small_n != 50 {
        bail!("the small conversation has lastSeq {small_n}, 50 were sent");
    }

    let duration = args.secs(5.0, 0.5);
    let mut results = Vec::new();
    for concurrency in [1, 8] {
        for (conversation, size, deep) in [
            (&small, small_n, false),
            (&big, big_n, false),
            (&big, big_n, true),
        ] {
            let (api, token, conversation_id) =
                (api.clone(), a.token.clone(), conversation.clone());
            let op = move |i: u64| {
                let (api, token, conversation_id) =
                    (api.clone(), token.clone(), conversation_id.clone());
                async move {
                    // A page ending at a pseudo-random depth (a multiplicative hash of i).
                    let before = deep.then(|| {
                        51 + (i.wrapping_mul(2_654_435_761) % size.saturating_sub(50).max(1))
                    });
                    let d = api
                        .gql(
                            Some(&token),
                            PAGE,
                            json!({"c": conversation_id, "b": before}),
                        )
                        .await?;
                    let nodes = d["conversation"]["messages"]["nodes"]
                        .as_array()
                        .map_or(0, Vec::len);
                    if nodes != 50 {
                        bail!("a page of {nodes} messages, expected 50");
                    }
                    Ok(())
                }
            };
            closed_loop(concurrency, duration / 5, op.clone()).await?;
            let run = closed_loop(concurrency, duration, op).await?;
            results.push(Measured {
                conversation: format!("{size} messages"),
                page: if deep { "before: random seq" } else { "latest" },
                run,
            });
        }
    }
    let find = |size: u64, deep: bool, c: usize| {
        results
            .iter()
            .find(|m| {
                m.conversation == format!("{size} messages")
                    && m.page.starts_with("before") == deep
                    && m.run.concurrency == c
            })
            .map(|m| m.run)
            .unwrap_or_default()
    };
    let (latest, base, deep) = (
        find(big_n, false, 1),
        find(small_n, false, 1),
        find(big_n, true, 1),
    );
    let summary = vec![
        Row {
            metric: format!(
                "history: messages(limit: 50) p99 in {big_n} messages (latest page, c=1)"
            ),
            goal: None,
            measured: fmt_ms(latest.latency.p99_ms),
            baseline: Some(format!(
                "{} in {small_n} messages",
                fmt_ms(base.latency.p99_ms)
            )),
            ratio: ratio(latest.latency.p99_ms, base.latency.p99_ms),
            goal_met: None,
        },
        Row {
            metric: format!(
                "history: messages(before: random, limit: 50) p99 in {big_n} messages (c=1)"
            ),
            goal: None,
            measured: fmt_ms(deep.latency.p99_ms),
            baseline: Some(format!(
                "{} in {small_n} messages",
                fmt_ms(base.latency.p99_ms)
            )),
            ratio: ratio(deep.latency.p99_ms, base.latency.p99_ms),
            goal_met: None,
        },
    ];
    let rows = results
        .iter()
        .map(|m| {
            [m.conversation.clone(), m.page.to_owned()]
                .into_iter()
                .chain(m.run.cells())
                .collect()
        })
        .collect();
    Ok(Outcome {
        baseline: "the same query in a conversation of 50 messages (same server, same run)".into(),
        summary,
        tables: vec![Table {
            title: format!(
                "messages(limit: 50) through the gateway (conversation -> messaging), closed loop, {} s each",
                duration.as_secs_f64()
            ),
            columns: ["conversation", "page"]
                .into_iter()
                .chain(Loop::COLUMNS)
                .map(String::from)
                .collect(),
            rows,
        }],
        notes: vec![format!(
            "The {seeded} messages were sent through sendMessage (32 concurrent senders, two members) in {seed_s:.1} s: {:.0} sendMessage/s sustained.",
            seeded as f64 / seed_s.max(1e-9)
        )],
        data: json!({"results": results, "seeded": seeded, "seed_seconds": seed_s}),
    })
}
