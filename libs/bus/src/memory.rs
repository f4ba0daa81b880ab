//! The in-process bus for `minute all` without a broker. Same semantics as RabbitMQ here:
//! topic routing, at-least-once delivery with manual acks and prefetch, unacked messages
//! returned when a consumer goes away, dead-lettering after the redelivery limit.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{
    Acker, BatchError, Binding, BusError, Delivery, EventBus, Message, Namespace, Outcome,
    QueueKind, QueueSpec, Subscription, topic::topic_matches,
};

/// In-process [`EventBus`].
#[derive(Clone)]
pub struct MemoryBus {
    ns: Namespace,
    broker: Arc<Mutex<Broker>>,
}

struct Broker {
    me: Weak<Mutex<Broker>>,
    queues: HashMap<String, Queue>,
    next_tag: u64,
    next_consumer: u64,
}

struct Stored {
    message: Message,
    returns: u32,
}

struct Queue {
    kind: QueueKind,
    bindings: Vec<Binding>,
    ready: VecDeque<Stored>,
    consumers: Vec<Consumer>,
    /// tag -> (message, consumer id)
    unacked: BTreeMap<u64, (Stored, u64)>,
    round_robin: usize,
}

struct Consumer {
    id: u64,
    prefetch: usize,
    tx: mpsc::Sender<Delivery>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::with_namespace(Namespace::default())
    }

    /// A bus whose names carry `ns` as prefix.
    pub fn with_namespace(ns: Namespace) -> Self {
        let broker = Arc::new_cyclic(|me| {
            Mutex::new(Broker {
                me: me.clone(),
                queues: HashMap::new(),
                next_tag: 0,
                next_consumer: 0,
            })
        });
        Self { ns, broker }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Broker> {
        // A panic while holding the lock would be a bug in this module; keep serving.
        self.broker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock(broker: &Mutex<Broker>) -> std::sync::MutexGuard<'_, Broker> {
    broker.lock().unwrap_or_else(|p| p.into_inner())
}

impl Broker {
    fn route(&mut self, exchange: &str, message: &Message) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| {
                q.bindings.iter().any(|b| {
                    b.exchange == exchange && topic_matches(&b.routing_key, &message.routing_key)
                })
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Routes `message` (physical exchange name) to its queues' tails.
    fn publish(&mut self, exchange: &str, message: Message) {
        for queue in self.route(exchange, &message) {
            if let Some(q) = self.queues.get_mut(&queue) {
                q.ready.push_back(Stored {
                    message: message.clone(),
                    returns: 0,
                });
            }
            self.dispatch(&queue);
        }
    }

    fn dead_letter(&mut self, queue: &str, stored: Stored) {
        let dlq = format!("{queue}.dlq");
        if let Some(q) = self.queues.get_mut(&dlq) {
            q.ready.push_back(Stored {
                message: stored.message,
                returns: 0,
            });
            metrics::gauge!("minute_bus_dlq_depth", "queue" => queue.to_owned())
                .set(q.ready.len() as f64);
        }
        self.dispatch(&dlq);
    }

    /// Puts a returned message back at the head, or dead-letters it past the limit.
    fn give_back(&mut self, queue: &str, mut stored: Stored) {
        stored.returns += 1;
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        match q.kind {
            QueueKind::Durable { max_redeliveries } if stored.returns > max_redeliveries => {
                self.dead_letter(queue, stored)
            }
            _ => q.ready.push_front(stored),
        }
    }

    fn dispatch(&mut self, queue: &str) {
        let me = self.me.clone();
        let mut next_tag = self.next_tag;
        let Some(q) = self.queues.get_mut(queue) else {
            return;
        };
        q.consumers.retain(|c| !c.tx.is_closed());
        while !q.ready.is_empty() && !q.consumers.is_empty() {
            let n = q.consumers.len();
            let mut chosen = None;
            for i in 0..n {
                let idx = (q.round_robin + i) % n;
                let c = &q.consumers[idx];
                let in_flight = q.unacked.values().filter(|(_, cid)| *cid == c.id).count();
                if in_flight < c.prefetch {
                    chosen = Some(idx);
                    break;
                }
            }
            let Some(idx) = chosen else { break };
            q.round_robin = idx + 1;
            let Some(stored) = q.ready.pop_front() else {
                break;
            };
            next_tag += 1;
            let tag = next_tag;
            let c = &q.consumers[idx];
            let delivery = Delivery {
                routing_key: stored.message.routing_key.clone(),
                body: stored.message.body.clone(),
                message_id: stored.message.message_id.clone(),
                headers: stored.message.headers.clone(),
                redelivered: stored.returns > 0,
                acker: Box::new(MemoryAcker {
                    broker: me.clone(),
                    queue: queue.to_owned(),
                    tag,
                }),
            };
            let consumer_id = c.id;
            let tx = c.tx.clone();
            q.unacked.insert(tag, (stored, consumer_id));
            // The channel holds at least `prefetch` slots, so this never blocks.
            if tx.try_send(delivery).is_err() {
                if let Some((stored, _)) = q.unacked.remove(&tag) {
                    q.ready.push_front(stored);
                }
                q.consumers.retain(|c| c.id != consumer_id);
            }
        }
        self.next_tag = next_tag;
    }
}

struct MemoryAcker {
    broker: Weak<Mutex<Broker>>,
    queue: String,
    tag: u64,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn settle(&self, outcome: Outcome) -> Result<(), BusError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| BusError::Unavailable("bus dropped".into()))?;
        let mut b = lock(&broker);
        let stored = b
            .queues
            .get_mut(&self.queue)
            .and_then(|q| q.unacked.remove(&self.tag))
            .map(|(s, _)| s)
            .ok_or_else(|| BusError::Broker("unknown delivery tag".into()))?;
        match outcome {
            Outcome::Ack => {}
            Outcome::Requeue => b.give_back(&self.queue, stored),
            Outcome::DeadLetter => b.dead_letter(&self.queue, stored),
        }
        b.dispatch(&self.queue);
        Ok(())
    }
}

/// Returns a dropped consumer's unacked messages to its queue.
struct ConsumerGuard {
    broker: Weak<Mutex<Broker>>,
    queue: String,
    id: u64,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut b = lock(&broker);
        let Some(q) = b.queues.get_mut(&self.queue) else {
            return;
        };
        q.consumers.retain(|c| c.id != self.id);
        let tags: Vec<u64> = q
            .unacked
            .iter()
            .filter(|(_, (_, cid))| *cid == self.id)
            .map(|(t, _)| *t)
            .collect();
        let mut returned = Vec::new();
        for t in tags {
            if let Some((s, _)) = q.unacked.remove(&t) {
                returned.push(s);
            }
        }
        // Give back newest first so the oldest ends up at the head: order is kept.
        for s in returned.into_iter().rev() {
            b.give_back(&self.queue, s);
        }
        b.dispatch(&self.queue);
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, exchange: &str, message: Message) -> Result<(), BusError> {
        self.lock().publish(&self.ns.apply(exchange), message);
        Ok(())
    }

    /// The whole batch under one lock, in order: stored (confirmed) all at once.
    async fn publish_batch(&self, batch: Vec<(String, Message)>) -> Result<(), BatchError> {
        let mut b = self.lock();
        for (exchange, message) in batch {
            b.publish(&self.ns.apply(&exchange), message);
        }
        Ok(())
    }

    async fn declare_queue(&self, spec: QueueSpec) -> Result<(), BusError> {
        let name = self.ns.apply(&spec.name);
        let bindings: Vec<Binding> = spec
            .bindings
            .iter()
            .map(|b| Binding::new(self.ns.apply(&b.exchange), b.routing_key.clone()))
            .collect();
        let mut b = self.lock();
        if matches!(spec.kind, QueueKind::Durable { .. }) {
            let dlq = format!("{name}.dlq");
            b.queues
                .entry(dlq)
                .or_insert_with(|| Queue::new(QueueKind::Exclusive, Vec::new()));
        }
        let q = b
            .queues
            .entry(name)
            .or_insert_with(|| Queue::new(spec.kind, Vec::new()));
        for binding in bindings {
            if !q.bindings.contains(&binding) {
                q.bindings.push(binding);
            }
        }
        Ok(())
    }

    async fn bind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
        let binding = Binding::new(self.ns.apply(&binding.exchange), binding.routing_key);
        let mut b = self.lock();
        let q = b
            .queues
            .get_mut(&self.ns.apply(queue))
            .ok_or_else(|| BusError::Broker(format!("no queue {queue}")))?;
        if !q.bindings.contains(&binding) {
            q.bindings.push(binding);
        }
        Ok(())
    }

    async fn unbind(&self, queue: &str, binding: Binding) -> Result<(), BusError> {
        let binding = Binding::new(self.ns.apply(&binding.exchange), binding.routing_key);
        let mut b = self.lock();
        if let Some(q) = b.queues.get_mut(&self.ns.apply(queue)) {
            q.bindings.retain(|x| *x != binding);
        }
        Ok(())
    }

    async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError> {
        let name = self.ns.apply(queue);
        let prefetch = usize::from(prefetch.max(1));
        let (tx, rx) = mpsc::channel(prefetch);
        let id = {
            let mut b = self.lock();
            b.next_consumer += 1;
            let id = b.next_consumer;
            let q = b
                .queues
                .get_mut(&name)
                .ok_or_else(|| BusError::Broker(format!("no queue {queue}")))?;
            q.consumers.push(Consumer { id, prefetch, tx });
            b.dispatch(&name);
            id
        };
        let guard = ConsumerGuard {
            broker: Arc::downgrade(&self.broker),
            queue: name,
            id,
        };
        Ok(Subscription {
            rx,
            queue: queue.to_owned(),
            _guard: Some(Box::new(guard)),
        })
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        let name = self.ns.apply(queue);
        let mut b = self.lock();
        b.queues.remove(&name);
        b.queues.remove(&format!("{name}.dlq"));
        Ok(())
    }

    fn is_ready(&self) -> bool {
        true
    }
}

impl Queue {
    fn new(kind: QueueKind, bindings: Vec<Binding>) -> Self {
        Self {
            kind,
            bindings,
            ready: VecDeque::new(),
            consumers: Vec::new(),
            unacked: BTreeMap::new(),
            round_robin: 0,
        }
    }
}
