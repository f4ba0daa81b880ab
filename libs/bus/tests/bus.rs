//! The bus conformance suite: every case runs against the in-process bus and against the
//! real RabbitMQ broker, so the two cannot drift apart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use minute_bus::{
    Binding, BusError, DELIVERY_EXCHANGE, EVENTS_EXCHANGE, EventBus, HandlerError, MemoryBus,
    Message, Namespace, QueueSpec, RabbitBus, RabbitSettings, Subscription, handle_events,
};
use minute_events::{Envelope, SessionRevoked};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// The broker-restart case takes the write side; every other RabbitMQ case the read side.
static BROKER: RwLock<()> = RwLock::const_new(());

const WAIT: Duration = Duration::from_secs(10);

fn msg(key: &str, body: &str) -> Message {
    Message {
        routing_key: key.into(),
        body: body.as_bytes().to_vec(),
        message_id: Some(body.into()),
        ..Default::default()
    }
}

async fn next_body(sub: &mut Subscription) -> (String, minute_bus::Delivery) {
    let d = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within 10 s")
        .expect("subscription open");
    (String::from_utf8_lossy(&d.body).into_owned(), d)
}

async fn nothing_within(sub: &mut Subscription, wait: Duration) -> bool {
    tokio::time::timeout(wait, sub.next()).await.is_err()
}

fn queue(name: &str) -> QueueSpec {
    QueueSpec::durable(name).expires(Some(Duration::from_secs(120)))
}

async fn publish_then_consume(bus: Arc<dyn EventBus>) {
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "a.*"))
        .await
        .expect("declare");
    bus.publish(EVENTS_EXCHANGE, msg("a.x", "one"))
        .await
        .expect("publish");
    bus.publish(EVENTS_EXCHANGE, msg("b.x", "not routed"))
        .await
        .expect("publish");
    let mut sub = bus.consume("svc.q", 10).await.expect("consume");
    let (body, d) = next_body(&mut sub).await;
    assert_eq!(body, "one");
    assert_eq!(d.message_id.as_deref(), Some("one"));
    assert!(!d.redelivered);
    d.ack().await.expect("ack");
    assert!(nothing_within(&mut sub, Duration::from_millis(300)).await);
}

async fn requeue_redelivers(bus: Arc<dyn EventBus>) {
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    bus.publish(EVENTS_EXCHANGE, msg("k", "m1"))
        .await
        .expect("publish");
    let mut sub = bus.consume("svc.q", 1).await.expect("consume");
    let (body, d) = next_body(&mut sub).await;
    assert_eq!(body, "m1");
    d.requeue().await.expect("requeue");
    let (body, d) = next_body(&mut sub).await;
    assert_eq!(body, "m1");
    assert!(d.redelivered);
    d.ack().await.expect("ack");
}

async fn dropped_consumer_redelivers(bus: Arc<dyn EventBus>) {
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    bus.publish(EVENTS_EXCHANGE, msg("k", "m1"))
        .await
        .expect("publish");
    bus.publish(EVENTS_EXCHANGE, msg("k", "m2"))
        .await
        .expect("publish");
    {
        let mut sub = bus.consume("svc.q", 10).await.expect("consume");
        let (body, _unacked) = next_body(&mut sub).await;
        assert_eq!(body, "m1");
        // Dropped without ack: a consumer that died mid-work.
    }
    let mut sub = bus.consume("svc.q", 10).await.expect("consume");
    let mut got = Vec::new();
    for _ in 0..2 {
        let (body, d) = next_body(&mut sub).await;
        got.push(body);
        d.ack().await.expect("ack");
    }
    got.sort();
    assert_eq!(got, ["m1", "m2"]);
}

async fn dead_letters_after_limit(bus: Arc<dyn EventBus>) {
    bus.declare_queue(
        queue("svc.q")
            .bind(EVENTS_EXCHANGE, "#")
            .max_redeliveries(2),
    )
    .await
    .expect("declare");
    bus.publish(EVENTS_EXCHANGE, msg("k", "bad"))
        .await
        .expect("publish");
    bus.publish(EVENTS_EXCHANGE, msg("k", "good"))
        .await
        .expect("publish");
    let mut sub = bus.consume("svc.q", 1).await.expect("consume");
    let mut bad_seen = 0;
    let mut good_seen = false;
    while !(good_seen && bad_seen == 3) {
        let (body, d) = next_body(&mut sub).await;
        if body == "bad" {
            bad_seen += 1;
            assert!(
                bad_seen <= 3,
                "delivered more than 1 + max_redeliveries times"
            );
            d.requeue().await.expect("requeue");
        } else {
            good_seen = true;
            d.ack().await.expect("ack");
        }
    }
    let mut dlq = bus.consume("svc.q.dlq", 1).await.expect("consume dlq");
    let (body, d) = next_body(&mut dlq).await;
    assert_eq!(body, "bad");
    d.ack().await.expect("ack");
    assert!(nothing_within(&mut sub, Duration::from_millis(300)).await);
}

async fn poison_goes_to_dlq_without_blocking(bus: Arc<dyn EventBus>) {
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    bus.publish(EVENTS_EXCHANGE, msg("k", "{not json"))
        .await
        .expect("publish");
    let good = Envelope::new(SessionRevoked {
        user_id: "u1".into(),
        session_ids: vec!["s1".into()],
        reason: "logout".into(),
    });
    bus.publish(EVENTS_EXCHANGE, Message::from_envelope(&good))
        .await
        .expect("publish");
    let sub = bus.consume("svc.q", 5).await.expect("consume");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task = tokio::spawn(handle_events(sub, stop.clone(), move |env| {
        let tx = tx.clone();
        async move {
            let e = env
                .decode::<SessionRevoked>()
                .map_err(|e| HandlerError::Poison(e.to_string()))?;
            let _ = tx.send(e.data.user_id);
            Ok(())
        }
    }));
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("handled");
    assert_eq!(got.as_deref(), Some("u1"));
    let mut dlq = bus.consume("svc.q.dlq", 1).await.expect("consume dlq");
    let (body, d) = next_body(&mut dlq).await;
    assert_eq!(body, "{not json");
    d.ack().await.expect("ack");
    stop.cancel();
    task.await.expect("loop ends");
}

async fn runtime_bind_and_unbind(bus: Arc<dyn EventBus>) {
    bus.declare_queue(QueueSpec::exclusive("realtime.r1"))
        .await
        .expect("declare");
    let mut sub = bus.consume("realtime.r1", 10).await.expect("consume");
    bus.publish("minute.delivery", msg("conv.c1", "before"))
        .await
        .expect("publish");
    let conv = Binding::new("minute.delivery", "conv.c1");
    bus.bind("realtime.r1", conv.clone()).await.expect("bind");
    bus.publish("minute.delivery", msg("conv.c1", "bound"))
        .await
        .expect("publish");
    let (body, d) = next_body(&mut sub).await;
    assert_eq!(body, "bound");
    d.ack().await.expect("ack");
    bus.unbind("realtime.r1", conv).await.expect("unbind");
    bus.publish("minute.delivery", msg("conv.c1", "after"))
        .await
        .expect("publish");
    assert!(nothing_within(&mut sub, Duration::from_millis(500)).await);
}

async fn order_per_key_with_one_consumer(bus: Arc<dyn EventBus>) {
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "k.#"))
        .await
        .expect("declare");
    for i in 0..200 {
        bus.publish(EVENTS_EXCHANGE, msg("k.1", &i.to_string()))
            .await
            .expect("publish");
    }
    let mut sub = bus.consume("svc.q", 50).await.expect("consume");
    for i in 0..200 {
        let (body, d) = next_body(&mut sub).await;
        assert_eq!(body, i.to_string(), "in publish order");
        d.ack().await.expect("ack");
    }
}

/// A batch is delivered in batch order, across exchanges, and confirmed as a whole.
async fn batch_keeps_order_and_confirms_all(bus: Arc<dyn EventBus>) {
    bus.declare_queue(
        queue("svc.q")
            .bind(EVENTS_EXCHANGE, "k.#")
            .bind(DELIVERY_EXCHANGE, "conv.#"),
    )
    .await
    .expect("declare");
    bus.publish_batch(Vec::new()).await.expect("an empty batch");
    let batch: Vec<(String, Message)> = (0..300)
        .map(|i| {
            if i % 2 == 0 {
                (EVENTS_EXCHANGE.to_owned(), msg("k.1", &i.to_string()))
            } else {
                (DELIVERY_EXCHANGE.to_owned(), msg("conv.c1", &i.to_string()))
            }
        })
        .collect();
    bus.publish_batch(batch).await.expect("all confirmed");
    let mut sub = bus.consume("svc.q", 50).await.expect("consume");
    for i in 0..300 {
        let (body, d) = next_body(&mut sub).await;
        assert_eq!(body, i.to_string(), "in batch order");
        d.ack().await.expect("ack");
    }
    assert!(nothing_within(&mut sub, Duration::from_millis(300)).await);
}

/// Traced batches carry one producer span's context per message.
async fn traced_batch_keeps_each_messages_trace(bus: Arc<dyn EventBus>) {
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "k.#"))
        .await
        .expect("declare");
    let tp = |i: u32| format!("00-{:032x}-b7ad6b7169203331-01", i + 1);
    let batch = (0..3)
        .map(|i| {
            let mut m = msg("k.1", &i.to_string());
            m.headers.insert("traceparent".into(), tp(i));
            (EVENTS_EXCHANGE.to_owned(), m)
        })
        .collect();
    minute_bus::trace::publish_batch_traced(bus.as_ref(), batch)
        .await
        .expect("confirmed");
    let mut sub = bus.consume("svc.q", 10).await.expect("consume");
    for i in 0..3 {
        let (_, d) = next_body(&mut sub).await;
        // No exporter in this test: each message keeps its own incoming context.
        assert_eq!(d.headers.get("traceparent"), Some(&tp(i)));
        d.ack().await.expect("ack");
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let bus = MemoryBus::with_namespace(Namespace(minute_testkit::unique_namespace()));
                    super::$case(Arc::new(bus)).await;
                }
            )*
        }
        mod rabbitmq {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let _shared = BROKER.read().await;
                    let stop = CancellationToken::new();
                    let bus = rabbit(stop.clone()).await;
                    super::$case(Arc::new(bus)).await;
                    stop.cancel();
                }
            )*
        }
    };
}

conformance!(
    publish_then_consume,
    requeue_redelivers,
    dropped_consumer_redelivers,
    dead_letters_after_limit,
    poison_goes_to_dlq_without_blocking,
    runtime_bind_and_unbind,
    order_per_key_with_one_consumer,
    batch_keeps_order_and_confirms_all,
    traced_batch_keeps_each_messages_trace,
);

async fn rabbit(stop: CancellationToken) -> RabbitBus {
    let mut settings = RabbitSettings::new(minute_testkit::amqp_url());
    settings.namespace = Namespace(minute_testkit::unique_namespace());
    settings.publish_timeout = Duration::from_secs(60);
    RabbitBus::connect(settings, stop, WAIT)
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (scripts/test starts it)")
}

/// A publish to a missing exchange makes RabbitMQ close the channel: the batch fails, and
/// nothing from the failing message on is claimed confirmed or ever delivered.
#[tokio::test]
async fn rabbitmq_batch_failure_claims_only_a_confirmed_head() {
    let _shared = BROKER.read().await;
    let stop = CancellationToken::new();
    let mut settings = RabbitSettings::new(minute_testkit::amqp_url());
    settings.namespace = Namespace(minute_testkit::unique_namespace());
    settings.publish_timeout = Duration::from_secs(2);
    let bus = RabbitBus::connect(settings, stop.clone(), WAIT)
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (scripts/test starts it)");
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    let batch = vec![
        (EVENTS_EXCHANGE.to_owned(), msg("k", "a")),
        (EVENTS_EXCHANGE.to_owned(), msg("k", "b")),
        ("minute.missing".to_owned(), msg("k", "lost")),
        (EVENTS_EXCHANGE.to_owned(), msg("k", "after")),
    ];
    let e = bus
        .publish_batch(batch)
        .await
        .expect_err("a missing exchange fails the batch");
    assert!(e.confirmed <= 2, "claimed past the failure: {e}");
    // What came before the failure is stored (at least once: retries may repeat it);
    // what came after it never is.
    let mut sub = bus.consume("svc.q", 50).await.expect("consume");
    let mut got = BTreeSet::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(700), sub.next()).await {
        got.insert(String::from_utf8_lossy(&d.body).into_owned());
        d.ack().await.expect("ack");
    }
    assert!(
        !got.contains("after"),
        "published after the failure: {got:?}"
    );
    if e.confirmed > 0 {
        assert!(got.contains("a"), "confirmed but not stored: {got:?}");
    }
    // The channel is re-opened for the next publish.
    bus.publish_batch(vec![(EVENTS_EXCHANGE.to_owned(), msg("k", "next"))])
        .await
        .expect("publishing works again");
    stop.cancel();
}

/// The trait's default `publish_batch` (one publish at a time) stops at the first failure
/// and counts only what came before it.
#[tokio::test]
async fn default_batch_stops_at_the_first_failure() {
    struct RefusesKey(MemoryBus, &'static str);
    #[async_trait::async_trait]
    impl EventBus for RefusesKey {
        async fn publish(&self, exchange: &str, message: Message) -> Result<(), BusError> {
            if message.routing_key == self.1 {
                return Err(BusError::Nacked);
            }
            self.0.publish(exchange, message).await
        }
        async fn declare_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
            self.0.declare_queue(spec).await
        }
        async fn bind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
            self.0.bind(queue, binding).await
        }
        async fn unbind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
            self.0.unbind(queue, binding).await
        }
        async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError> {
            self.0.consume(queue, prefetch).await
        }
        async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
            self.0.delete_queue(queue).await
        }
        fn is_ready(&self) -> bool {
            true
        }
    }
    let bus = RefusesKey(MemoryBus::new(), "bad");
    bus.declare_queue(queue("svc.q").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    let batch = ["a", "bad", "c"]
        .into_iter()
        .map(|k| (EVENTS_EXCHANGE.to_owned(), msg(k, k)))
        .collect();
    let e = bus.publish_batch(batch).await.expect_err("refused");
    assert_eq!(e.confirmed, 1);
    let mut sub = bus.consume("svc.q", 10).await.expect("consume");
    let (body, d) = next_body(&mut sub).await;
    assert_eq!(body, "a");
    d.ack().await.expect("ack");
    assert!(nothing_within(&mut sub, Duration::from_millis(300)).await);
}

#[tokio::test]
async fn rabbitmq_publish_fails_rather_than_lies_when_unreachable() {
    let mut settings = RabbitSettings::new("amqp://guest:guest@127.0.0.1:1/%2f");
    settings.publish_timeout = Duration::from_millis(500);
    let bus = RabbitBus::start(settings, CancellationToken::new());
    assert!(!bus.is_ready());
    let r = bus.publish(EVENTS_EXCHANGE, msg("k", "x")).await;
    assert!(r.is_err(), "no broker: the publish must not report success");
}

/// A channel the broker closes (here: a binding to a missing exchange) is that channel's
/// failure only: the connection, its exclusive queue and its consumer carry on. (Treating
/// it as a lost connection once re-declared the exclusive queue on a new connection while
/// the old one still held it: RESOURCE_LOCKED, and no publish for as long as it lasted.)
#[tokio::test]
async fn rabbitmq_a_closed_channel_keeps_the_connection() {
    let _shared = BROKER.read().await;
    let stop = CancellationToken::new();
    let bus = rabbit(stop.clone()).await;
    bus.declare_queue(QueueSpec::exclusive("watch").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    let mut sub = bus.consume("watch", 10).await.expect("consume");
    let refused = bus.bind("watch", Binding::new("minute.missing", "#")).await;
    assert!(refused.is_err(), "a missing exchange is refused");
    for i in 0..3 {
        let body = format!("after-{i}");
        tokio::time::timeout(
            Duration::from_secs(5),
            bus.publish(EVENTS_EXCHANGE, msg("k", &body)),
        )
        .await
        .expect("the publish is not held up by a reconnect")
        .expect("publish");
        let (got, d) = next_body(&mut sub).await;
        assert_eq!(got, body);
        d.ack().await.expect("ack");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(bus.is_ready());
    stop.cancel();
}

/// A broker restart in the middle of a stream of confirmed publishes: the bus reconnects,
/// re-declares its topology, resumes its consumer, and every confirmed message arrives.
#[tokio::test]
#[ignore = "restarts the shared broker: scripts/test runs it first, on an empty broker"]
async fn rabbitmq_survives_a_broker_restart() {
    let _exclusive = BROKER.write().await;
    let stop = CancellationToken::new();
    let bus = Arc::new(rabbit(stop.clone()).await);
    bus.declare_queue(queue("svc.restart").bind(EVENTS_EXCHANGE, "#"))
        .await
        .expect("declare");
    let mut sub = bus.consume("svc.restart", 100).await.expect("consume");

    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut confirmed = BTreeSet::new();
            for i in 0..300u32 {
                let id = format!("m{i}");
                if bus.publish(EVENTS_EXCHANGE, msg("k", &id)).await.is_ok() {
                    confirmed.insert(id);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            confirmed
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    minute_testkit::rabbitmqctl(&["stop_app"]);
    assert!(
        !bus.is_ready() || {
            tokio::time::sleep(Duration::from_secs(1)).await;
            !bus.is_ready()
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    minute_testkit::rabbitmqctl(&["start_app"]);
    let confirmed = publisher.await.expect("publisher");
    assert!(
        confirmed.len() >= 250,
        "most publishes confirmed: {}",
        confirmed.len()
    );

    let mut received = BTreeSet::new();
    while !confirmed.is_subset(&received) {
        let (body, d) = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .map(|d| {
                let d = d.expect("open");
                (String::from_utf8_lossy(&d.body).into_owned(), d)
            })
            .unwrap_or_else(|_| {
                let missing: Vec<_> = confirmed.difference(&received).collect();
                panic!("confirmed but never consumed: {missing:?}")
            });
        received.insert(body);
        d.ack().await.ok();
    }
    assert!(bus.is_ready());
    stop.cancel();
}
