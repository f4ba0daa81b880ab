//! `cargo bench -p minute-bus --bench publish`: confirmed publishes per second on the real
//! RabbitMQ broker (`TEST_AMQP_URL`, default 127.0.0.1:5672), one at a time (`publish`:
//! each waits for its confirm) against `publish_batch` at several batch sizes (the confirms
//! of a batch awaited together), as the outbox relays use it. Each event is two messages,
//! as messaging's relay sends it (events and delivery exchanges). `BENCH_EVENTS` (1000)
//! events per run; the messages go to a queue of their own, deleted afterwards.

use std::time::{Duration, Instant};

use minute_bus::{
    DELIVERY_EXCHANGE, EVENTS_EXCHANGE, EventBus, Message, Namespace, QueueSpec, RabbitBus,
    RabbitSettings,
};
use tokio_util::sync::CancellationToken;

fn message(i: usize, routing_key: &str) -> Message {
    Message {
        routing_key: routing_key.to_owned(),
        body: format!(r#"{{"id":"bench-{i}","data":{{"body":"hello"}}}}"#).into_bytes(),
        message_id: Some(format!("bench-{i}")),
        ..Message::default()
    }
}

fn events(n: usize) -> Vec<(String, Message)> {
    (0..n)
        .flat_map(|i| {
            [
                (EVENTS_EXCHANGE.to_owned(), message(i, "bench.event")),
                (DELIVERY_EXCHANGE.to_owned(), message(i, "bench.delivery")),
            ]
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let stop = CancellationToken::new();
    let mut settings = RabbitSettings::new(minute_testkit::amqp_url());
    settings.namespace = Namespace(minute_testkit::unique_namespace());
    settings.publish_timeout = Duration::from_secs(60);
    let bus = RabbitBus::connect(settings, stop.clone(), Duration::from_secs(10))
        .await
        .expect("RabbitMQ (scripts/test starts it)");
    bus.declare_queue(
        QueueSpec::durable("bench")
            .bind(EVENTS_EXCHANGE, "bench.#")
            .bind(DELIVERY_EXCHANGE, "bench.#"),
    )
    .await
    .expect("declare");
    println!(
        "confirmed publishes to RabbitMQ, {n} events = {} messages per run",
        2 * n
    );
    let start = Instant::now();
    for (exchange, m) in events(n) {
        bus.publish(&exchange, m).await.expect("publish");
    }
    report("one at a time", n, start.elapsed());
    for batch in [20, 200] {
        let all = events(n);
        let start = Instant::now();
        for chunk in all.chunks(batch) {
            bus.publish_batch(chunk.to_vec())
                .await
                .expect("publish_batch");
        }
        report(&format!("batches of {batch} messages"), n, start.elapsed());
    }
    bus.delete_queue("bench").await.expect("delete the queue");
    stop.cancel();
}

fn report(what: &str, events: usize, took: Duration) {
    println!(
        "  {what:<26} {:>8.0} events/s  ({:.0} ms)",
        events as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1000.0
    );
}
