//! How much the gateway adds: the same single-subgraph query sent directly to the subgraph
//! and through the gateway (edge + hive-router), at concurrency 1 (latency) and 16
//! (throughput), plus a cross-subgraph query with an entity fetch. Loopback only; bounded.
//!
//! `cargo bench -p minute-gateway` prints one table.

#[path = "../tests/support/subgraphs.rs"]
mod subgraphs;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

const SINGLE: &str = "{ me { id name } }";
const CROSS: &str = "{ posts(first: 10) { title author { id name } } }";

struct Stats {
    p50: Duration,
    p99: Duration,
    rps: f64,
}

async fn measure(url: &str, query: &str, requests: usize, concurrency: usize) -> Stats {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let body = serde_json::to_vec(&json!({ "query": query })).expect("json");
    // Warm up connections and caches (query plans).
    for _ in 0..50 {
        send(&client, url, &body).await;
    }
    let started = Instant::now();
    let per_task = requests / concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                send(&client, &url, &body).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Stats {
        p50: pct(0.50),
        p99: pct(0.99),
        rps: all.len() as f64 / elapsed.as_secs_f64(),
    }
}

async fn send(client: &reqwest::Client, url: &str, body: &[u8]) {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("request");
    let text = r.text().await.expect("body");
    assert!(!text.contains("\"errors\""), "{text}");
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let stop = CancellationToken::new();
    let (accounts, posts) = subgraphs::schemas();
    let a = subgraphs::serve(accounts, subgraphs::Seen::default(), stop.clone()).await;
    let p = subgraphs::serve(posts, subgraphs::Seen::default(), stop.clone()).await;
    let port = subgraphs::start_gateway(
        vec![
            ("AUTH_URL", format!("http://127.0.0.1:{a}")),
            ("USERS_URL", format!("http://127.0.0.1:{p}")),
        ],
        stop.clone(),
    )
    .await;
    let ready = async {
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("gateway ready");

    let direct = format!("http://127.0.0.1:{a}/graphql");
    let gateway = format!("http://127.0.0.1:{port}/graphql");
    println!("| query | path | concurrency | p50 | p99 | req/s |");
    println!("|---|---|---|---|---|---|");
    for concurrency in [1, 16] {
        let n = if concurrency == 1 { 3_000 } else { 16_000 };
        let d = measure(&direct, SINGLE, n, concurrency).await;
        let g = measure(&gateway, SINGLE, n, concurrency).await;
        println!(
            "| single-subgraph | direct | {concurrency} | {} | {} | {:.0} |",
            ms(d.p50),
            ms(d.p99),
            d.rps
        );
        println!(
            "| single-subgraph | gateway | {concurrency} | {} | {} | {:.0} |",
            ms(g.p50),
            ms(g.p99),
            g.rps
        );
        println!(
            "| single-subgraph | gateway - direct | {concurrency} | +{} | +{} | x{:.2} |",
            ms(g.p50.saturating_sub(d.p50)),
            ms(g.p99.saturating_sub(d.p99)),
            d.rps / g.rps
        );
        let c = measure(&gateway, CROSS, n, concurrency).await;
        println!(
            "| cross-subgraph (10 entities) | gateway | {concurrency} | {} | {} | {:.0} |",
            ms(c.p50),
            ms(c.p99),
            c.rps
        );
    }
    stop.cancel();
}
