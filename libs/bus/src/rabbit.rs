//! The RabbitMQ bus (lapin). lapin does not recover channels reliably on its own, so this
//! module owns the recovery: one supervisor task connects with backoff, declares the
//! exchanges and every queue and binding registered so far, then publishes the live
//! connection on a watch channel. Consumers and publishers wait on that channel; when the
//! connection dies the supervisor starts over and consumers resume on the new one.
//!
//! Guarantee: `publish` returns `Ok` only for a message the broker confirmed, and
//! `publish_batch` reports as confirmed only a head of the batch the broker confirmed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    Acker, BatchError, Binding, BusError, DEAD_LETTER_EXCHANGE, DELIVERY_EXCHANGE, Delivery,
    EVENTS_EXCHANGE, EventBus, Message, Namespace, Outcome, QueueKind, QueueSpec, Subscription,
};

/// Settings of the RabbitMQ bus.
#[derive(Debug, Clone)]
pub struct RabbitSettings {
    /// `amqp://user:pass@host:port/vhost`.
    pub url: String,
    /// Name prefix (empty in production).
    pub namespace: Namespace,
    /// How long a publish waits for a connection before failing.
    pub publish_timeout: Duration,
    /// Name shown in the broker's management UI.
    pub connection_name: String,
}

impl RabbitSettings {
    /// Defaults for `url`: no prefix, 10 s publish timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: Namespace::default(),
            publish_timeout: Duration::from_secs(10),
            connection_name: "minute".into(),
        }
    }
}

/// [`EventBus`] on RabbitMQ with its own reconnect loop. Cheap to clone.
#[derive(Clone)]
pub struct RabbitBus {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RabbitSettings,
    live: watch::Sender<Option<Arc<Live>>>,
    topology: Mutex<Topology>,
    stop: CancellationToken,
}

#[derive(Default)]
struct Topology {
    queues: BTreeMap<String, QueueSpec>,
    bindings: BTreeSet<(String, Binding)>,
}

struct Live {
    conn: Connection,
    publisher: tokio::sync::Mutex<Channel>,
    admin: tokio::sync::Mutex<Channel>,
    dead: AtomicBool,
}

fn ss(s: &str) -> ShortString {
    s.into()
}

fn err(e: lapin::Error) -> BusError {
    BusError::Broker(e.to_string())
}

impl RabbitBus {
    /// Starts the supervisor and returns at once; the bus becomes ready when the broker
    /// answers. Use [`RabbitBus::connect`] to wait for the first connection.
    pub fn start(settings: RabbitSettings, stop: CancellationToken) -> Self {
        let (live, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            settings,
            live,
            topology: Mutex::default(),
            stop,
        });
        tokio::spawn(supervise(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Starts and waits up to `timeout` for the first connection.
    pub async fn connect(
        settings: RabbitSettings,
        stop: CancellationToken,
        timeout: Duration,
    ) -> Result<Self, BusError> {
        let bus = Self::start(settings, stop);
        bus.live(timeout).await?;
        Ok(bus)
    }

    fn name(&self, logical: &str) -> String {
        self.inner.settings.namespace.apply(logical)
    }

    fn topology(&self) -> std::sync::MutexGuard<'_, Topology> {
        self.inner
            .topology
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn live(&self, timeout: Duration) -> Result<Arc<Live>, BusError> {
        wait_live(&self.inner.live.subscribe(), timeout).await
    }

    async fn admin<F, Fut, T>(&self, op: F) -> Result<T, BusError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, lapin::Error>>,
    {
        let live = self.live(self.inner.settings.publish_timeout).await?;
        let channel = live.channel(&live.admin, false).await?;
        op(channel).await.map_err(err)
    }
}

async fn wait_live(
    rx: &watch::Receiver<Option<Arc<Live>>>,
    timeout: Duration,
) -> Result<Arc<Live>, BusError> {
    let mut rx = rx.clone();
    let found = tokio::time::timeout(timeout, async {
        loop {
            if let Some(live) = rx.borrow_and_update().clone()
                && !live.dead.load(Ordering::Acquire)
            {
                return Some(live);
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    match found {
        Ok(Some(live)) => Ok(live),
        Ok(None) => Err(BusError::Unavailable("bus shut down".into())),
        Err(_) => Err(BusError::Unavailable(format!(
            "no broker connection within {timeout:?}"
        ))),
    }
}

impl Live {
    /// The channel in `slot`, re-opened if a channel-level error closed it.
    async fn channel(
        &self,
        slot: &tokio::sync::Mutex<Channel>,
        confirms: bool,
    ) -> Result<Channel, BusError> {
        let mut guard = slot.lock().await;
        if !guard.status().connected() {
            let fresh = self.conn.create_channel().await.map_err(err)?;
            if confirms {
                fresh
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(err)?;
            }
            *guard = fresh;
        }
        Ok(guard.clone())
    }
}

fn queue_arguments(ns: &Namespace, spec: &QueueSpec) -> FieldTable {
    let mut args = BTreeMap::new();
    if let QueueKind::Durable { max_redeliveries } = spec.kind {
        args.insert(ss("x-queue-type"), AMQPValue::LongString("quorum".into()));
        args.insert(
            ss("x-delivery-limit"),
            AMQPValue::LongLongInt(i64::from(max_redeliveries)),
        );
        args.insert(
            ss("x-dead-letter-exchange"),
            AMQPValue::LongString(ns.apply(DEAD_LETTER_EXCHANGE).into()),
        );
        args.insert(
            ss("x-dead-letter-routing-key"),
            AMQPValue::LongString(ns.apply(&spec.name).into()),
        );
    }
    if let Some(expires) = spec.expires {
        let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
        args.insert(ss("x-expires"), AMQPValue::LongLongInt(ms));
    }
    FieldTable::from(args)
}

async fn declare_queue_on(
    channel: &Channel,
    ns: &Namespace,
    spec: &QueueSpec,
) -> Result<(), lapin::Error> {
    let name = ns.apply(&spec.name);
    let options = match spec.kind {
        QueueKind::Durable { .. } => QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        QueueKind::Exclusive => QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        },
    };
    channel
        .queue_declare(ss(&name), options, queue_arguments(ns, spec))
        .await?;
    if matches!(spec.kind, QueueKind::Durable { .. }) {
        let dlq = ns.apply(&spec.dlq_name());
        let mut args = BTreeMap::new();
        if let Some(expires) = spec.expires {
            let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
            args.insert(ss("x-expires"), AMQPValue::LongLongInt(ms));
        }
        channel
            .queue_declare(
                ss(&dlq),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::from(args),
            )
            .await?;
        channel
            .queue_bind(
                ss(&dlq),
                ss(&ns.apply(DEAD_LETTER_EXCHANGE)),
                ss(&name),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    for b in &spec.bindings {
        bind_on(channel, ns, &spec.name, b).await?;
    }
    Ok(())
}

async fn bind_on(
    channel: &Channel,
    ns: &Namespace,
    queue: &str,
    b: &Binding,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            ss(&ns.apply(queue)),
            ss(&ns.apply(&b.exchange)),
            ss(&b.routing_key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Connects, declares everything registered, and returns the live connection.
async fn establish(inner: &Inner) -> Result<Arc<Live>, lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(inner.settings.connection_name.clone().into());
    let conn = Connection::connect(&inner.settings.url, props).await?;
    let admin = conn.create_channel().await?;
    let ns = &inner.settings.namespace;
    for exchange in [EVENTS_EXCHANGE, DELIVERY_EXCHANGE, DEAD_LETTER_EXCHANGE] {
        admin
            .exchange_declare(
                ss(&ns.apply(exchange)),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    let (queues, bindings) = {
        let t = inner.topology.lock().unwrap_or_else(|p| p.into_inner());
        (
            t.queues.values().cloned().collect::<Vec<_>>(),
            t.bindings.iter().cloned().collect::<Vec<_>>(),
        )
    };
    for spec in &queues {
        declare_queue_on(&admin, ns, spec).await?;
    }
    for (queue, b) in &bindings {
        bind_on(&admin, ns, queue, b).await?;
    }
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Arc::new(Live {
        conn,
        publisher: tokio::sync::Mutex::new(publisher),
        admin: tokio::sync::Mutex::new(admin),
        dead: AtomicBool::new(false),
    }))
}

async fn supervise(inner: std::sync::Weak<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let stop = strong.stop.clone();
        if stop.is_cancelled() {
            strong.live.send_replace(None);
            return;
        }
        // A broker that accepts TCP but never answers must not hang the supervisor.
        let attempt = tokio::time::timeout(Duration::from_secs(20), establish(&strong)).await;
        let attempt = attempt.unwrap_or_else(|_| {
            Err(lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer from the broker within 20 s",
            )))
        });
        match attempt {
            Ok(live) => {
                backoff = Duration::from_millis(100);
                tracing::info!("event bus connected");
                strong.live.send_replace(Some(live.clone()));
                drop(strong);
                let mut events = live.conn.events_listener();
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                let mut sample = tokio::time::interval(DEPTH_SAMPLE_INTERVAL);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = sample.tick() => {
                            if let Some(strong) = inner.upgrade() {
                                tokio::spawn(sample_depths(strong, live.clone()));
                            }
                        }
                        e = events.next() => match e {
                            // lapin also reports here a channel the broker closed (a
                            // soft error such as a passive declare of a missing queue);
                            // that channel's owner re-opens it. Reconnecting for it
                            // would re-declare exclusive queues still held by this
                            // connection and fail with RESOURCE_LOCKED.
                            Some(lapin::Event::Error(e)) if live.conn.status().connected() => {
                                tracing::debug!(error = %e, "event bus channel closed by the broker");
                            }
                            Some(lapin::Event::Error(e)) => {
                                tracing::warn!(error = %e, "event bus connection lost");
                                break;
                            }
                            Some(_) => {}
                            None => break,
                        },
                        _ = tick.tick() => {
                            if !live.conn.status().connected() || inner.strong_count() == 0 {
                                break;
                            }
                        }
                    }
                }
                live.dead.store(true, Ordering::Release);
                if let Some(strong) = inner.upgrade() {
                    strong.live.send_replace(None);
                }
                if stop.is_cancelled() {
                    let _ = live.conn.close(200, ss("shutdown")).await;
                    return;
                }
                // A connection given up on while still open (a broker gone silent) is
                // closed before the next one, so it releases its exclusive queues and
                // consumers instead of holding them against the new connection.
                if live.conn.status().connected() {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        live.conn.close(320, ss("reconnecting")),
                    )
                    .await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "event bus connection failed");
                drop(strong);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How often the depth of every durable queue and its dead-letter queue is sampled.
const DEPTH_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// Sets `minute_bus_queue_depth` and `minute_bus_dlq_depth` for every durable queue this
/// process declared (passive declares on a channel of their own: an unknown queue closes it).
async fn sample_depths(inner: Arc<Inner>, live: Arc<Live>) {
    let queues: Vec<QueueSpec> = {
        let t = inner.topology.lock().unwrap_or_else(|p| p.into_inner());
        t.queues
            .values()
            .filter(|q| matches!(q.kind, QueueKind::Durable { .. }))
            .cloned()
            .collect()
    };
    if queues.is_empty() {
        return;
    }
    let sampled = async {
        let channel = live.conn.create_channel().await?;
        let ns = &inner.settings.namespace;
        for spec in &queues {
            for (name, metric) in [
                (spec.name.clone(), "minute_bus_queue_depth"),
                (spec.dlq_name(), "minute_bus_dlq_depth"),
            ] {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let q = channel
                    .queue_declare(ss(&ns.apply(&name)), passive, FieldTable::default())
                    .await?;
                metrics::gauge!(metric, "queue" => spec.name.clone())
                    .set(f64::from(q.message_count()));
            }
        }
        let _ = channel.close(200, ss("sampled")).await;
        Ok::<(), lapin::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), sampled).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "sampling queue depths failed"),
        Err(_) => tracing::debug!("sampling queue depths timed out"),
    }
}

/// One message of a batch, ready for `basic_publish`.
struct Outgoing<'a> {
    /// Physical exchange name.
    exchange: String,
    message: &'a Message,
    properties: BasicProperties,
}

fn properties_of(message: &Message) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ss("application/json"))
        .with_headers(headers_to_table(message));
    match &message.message_id {
        Some(id) => properties.with_message_id(ss(id)),
        None => properties,
    }
}

/// Publishes `batch` in order on the confirm channel, then awaits the confirms in order,
/// counting in `acked` the confirmed head of the batch. A send that fails (the channel was
/// closed, e.g. by a publish to a missing exchange) stops the sending; what was sent before
/// it still counts once confirmed. The first negative or failed confirm ends the count:
/// later messages may be stored too, but only an unbroken head is reported.
async fn publish_confirmed(
    live: &Live,
    batch: &[Outgoing<'_>],
    acked: &mut usize,
) -> Result<(), BusError> {
    let channel = live.channel(&live.publisher, true).await?;
    let mut confirms = Vec::with_capacity(batch.len());
    let mut send_error = None;
    for out in batch {
        let sent = channel
            .basic_publish(
                ss(&out.exchange),
                ss(&out.message.routing_key),
                BasicPublishOptions::default(),
                &out.message.body,
                out.properties.clone(),
            )
            .await;
        match sent {
            Ok(confirm) => confirms.push(confirm),
            Err(e) => {
                send_error = Some(err(e));
                break;
            }
        }
    }
    for confirm in confirms {
        match confirm.await.map_err(err)? {
            Confirmation::Ack(_) => *acked += 1,
            Confirmation::Nack(_) => return Err(BusError::Nacked),
            Confirmation::NotRequested => {
                return Err(BusError::Broker(
                    "publisher confirms are off on this channel".into(),
                ));
            }
        }
    }
    send_error.map_or(Ok(()), Err)
}

fn headers_to_table(message: &Message) -> FieldTable {
    let mut t = BTreeMap::new();
    for (k, v) in &message.headers {
        t.insert(ss(k), AMQPValue::LongString(LongString::from(v.as_str())));
    }
    FieldTable::from(t)
}

fn table_to_headers(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(t) = table {
        for (k, v) in t.inner() {
            let text = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_owned(),
                _ => continue,
            };
            out.insert(k.as_str().to_owned(), text);
        }
    }
    out
}

#[async_trait]
impl EventBus for RabbitBus {
    async fn publish(&self, exchange: &str, message: Message) -> Result<(), BusError> {
        self.publish_batch(vec![(exchange.to_owned(), message)])
            .await
            .map_err(|e| e.error)
    }

    /// Sends the whole batch on the one confirm channel, then awaits the confirms together:
    /// one broker round trip for the batch instead of one per message. One channel keeps
    /// the publish order, so per routing key consumers see batch order.
    async fn publish_batch(&self, batch: Vec<(String, Message)>) -> Result<(), BatchError> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.publish_timeout;
        let batch: Vec<Outgoing<'_>> = batch
            .iter()
            .map(|(exchange, message)| Outgoing {
                exchange: self.name(exchange),
                message,
                properties: properties_of(message),
            })
            .collect();
        let mut confirmed = 0;
        let mut last_error = String::from("no attempt");
        // Retry what is not confirmed across reconnects until the deadline: a duplicate after
        // an unconfirmed attempt is fine (consumers dedupe by id); a lost confirmed message
        // is not.
        while confirmed < batch.len() && tokio::time::Instant::now() < deadline {
            let remaining = deadline - tokio::time::Instant::now();
            let live = match self.live(remaining).await {
                Ok(l) => l,
                Err(e) => {
                    last_error = e.to_string();
                    break;
                }
            };
            let mut acked = 0;
            let attempt = tokio::time::timeout(
                remaining,
                publish_confirmed(&live, &batch[confirmed..], &mut acked),
            )
            .await;
            confirmed += acked;
            match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "confirm timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if confirmed == batch.len() {
            return Ok(());
        }
        Err(BatchError {
            confirmed,
            error: BusError::Unavailable(last_error),
        })
    }

    async fn declare_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
        self.topology()
            .queues
            .insert(spec.name.clone(), spec.clone());
        let ns = self.inner.settings.namespace.clone();
        let result = self
            .admin(|ch| async move { declare_queue_on(&ch, &ns, &spec).await })
            .await;
        if let Err(BusError::Broker(_)) = &result {
            // Refused by the broker (bad arguments): do not re-declare it after reconnects.
            return result;
        }
        // Unavailable: declared on reconnect.
        Ok(())
    }

    async fn bind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
        self.topology()
            .bindings
            .insert((queue.to_owned(), binding.clone()));
        let ns = self.inner.settings.namespace.clone();
        let b2 = binding.clone();
        match self
            .admin(|ch| async move { bind_on(&ch, &ns, queue, &b2).await })
            .await
        {
            Err(BusError::Broker(e)) => {
                self.topology()
                    .bindings
                    .remove(&(queue.to_owned(), binding));
                Err(BusError::Broker(e))
            }
            _ => Ok(()),
        }
    }

    async fn unbind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
        self.topology()
            .bindings
            .remove(&(queue.to_owned(), binding.clone()));
        let (q, ex) = (self.name(queue), self.name(&binding.exchange));
        match self
            .admin(|ch| async move {
                ch.queue_unbind(
                    ss(&q),
                    ss(&ex),
                    ss(&binding.routing_key),
                    FieldTable::default(),
                )
                .await
            })
            .await
        {
            // Not connected: the binding is gone with the connection or not re-made.
            Err(BusError::Unavailable(_)) => Ok(()),
            other => other,
        }
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let stop = self.inner.stop.child_token();
        tokio::spawn(consume_loop(
            self.inner.live.subscribe(),
            self.name(queue),
            prefetch.max(1),
            tx,
            stop.clone(),
        ));
        Ok(Subscription {
            rx,
            queue: queue.to_owned(),
            _guard: Some(Box::new(stop.drop_guard())),
        })
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        let spec = self.topology().queues.remove(queue);
        self.topology().bindings.retain(|(q, _)| q != queue);
        let name = self.name(queue);
        let dlq = spec
            .filter(|s| matches!(s.kind, QueueKind::Durable { .. }))
            .map(|s| self.name(&s.dlq_name()));
        self.admin(|ch| async move {
            ch.queue_delete(ss(&name), QueueDeleteOptions::default())
                .await?;
            if let Some(dlq) = dlq {
                ch.queue_delete(ss(&dlq), QueueDeleteOptions::default())
                    .await?;
            }
            Ok(())
        })
        .await
    }

    fn is_ready(&self) -> bool {
        self.inner
            .live
            .borrow()
            .as_ref()
            .is_some_and(|l| !l.dead.load(Ordering::Acquire))
    }
}

/// One consumer across reconnects: consume on each live connection until it dies, then
/// wait for the next. Unacked deliveries of a dead channel are redelivered by the broker.
async fn consume_loop(
    live_rx: watch::Receiver<Option<Arc<Live>>>,
    queue: String,
    prefetch: u16,
    tx: mpsc::Sender<Delivery>,
    stop: CancellationToken,
) {
    loop {
        let live = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            l = wait_live(&live_rx, Duration::from_secs(3600)) => match l {
                Ok(l) => l,
                Err(BusError::Unavailable(m)) if m == "bus shut down" => return,
                Err(_) => continue,
            },
        };
        match consume_on(&live, &queue, prefetch, &tx, &stop).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(queue = %queue, error = %e, "consumer interrupted"),
        }
        if stop.is_cancelled() || tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn consume_on(
    live: &Live,
    queue: &str,
    prefetch: u16,
    tx: &mpsc::Sender<Delivery>,
    stop: &CancellationToken,
) -> Result<(), lapin::Error> {
    let channel = live.conn.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            ss(queue),
            ss(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let result = loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = tx.closed() => break Ok(()),
            n = consumer.next() => n,
        };
        let d = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        };
        let headers = table_to_headers(d.properties.headers().as_ref());
        let delivery = Delivery {
            routing_key: d.routing_key.as_str().to_owned(),
            message_id: d
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            redelivered: d.redelivered || headers.contains_key("x-delivery-count"),
            headers,
            body: d.data,
            acker: Box::new(RabbitAcker(d.acker)),
        };
        if tx.send(delivery).await.is_err() {
            break Ok(());
        }
    };
    // Closing the channel returns its unacked deliveries to the queue.
    let _ = channel.close(200, ss("consumer stopped")).await;
    result
}

struct RabbitAcker(lapin::Acker);

#[async_trait]
impl Acker for RabbitAcker {
    async fn settle(&self, outcome: Outcome) -> Result<(), BusError> {
        let r = match outcome {
            Outcome::Ack => self.0.ack(BasicAckOptions::default()).await,
            Outcome::Requeue => {
                self.0
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
            }
            Outcome::DeadLetter => self.0.reject(BasicRejectOptions { requeue: false }).await,
        };
        r.map(|_| ()).map_err(err)
    }
}
