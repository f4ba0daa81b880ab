//! The MongoDB adapter. A message document carries its own pending events (`outbox`,
//! `pending`), so a message and its events are written in one single-document atomic step;
//! markers do the same. After the `(sender, clientMessageId)` claim is won (so a retry
//! never takes a seq), a send inserts its message at the conversation's next seq; the
//! unique `(conv, seq)` index lets exactly one sender have each seq, and a loser retries
//! after the highest seq written. Within a process, sends to one conversation take their
//! seqs one at a time (striped locks remembering the last seq), so only replicas collide.
//! The insert itself takes the seq, so a process or database failure at any point leaves
//! no gap (issue 12's fault test "messaging aborted between choosing a seq and the insert"
//! found one with the earlier counter-then-insert scheme).
//! The per-conversation counter only follows the inserts (it is never ahead of the
//! messages); a crash right after an insert leaves it, and `lastSeq`, one behind until that
//! conversation's next send, whose first try collides and moves on.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use minute_kit::mongo::{ensure_indexes, is_duplicate_key};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use super::{
    EventsFor, MemberChange, MemberRecord, MembershipStore, MessageStore, NewMessage, OutboxEvent,
    OutboxItem, SEP, SendOutcome, StoreError,
};
use crate::domain::values::tokens;
use crate::domain::{MarkerKind, Markers, Message, Page, ReactionEntry, Role, SearchTerms};

/// Seqs a send tries before giving up: each lost try means another sender of the same
/// conversation took that seq first.
const SEQ_ATTEMPTS: usize = 64;

/// How long a `(sender, clientMessageId)` claim is reserved for the request that made it;
/// after that a retry may finish the send (the first request is presumed dead).
const CLAIM_LEASE: Duration = Duration::from_secs(10);

/// The MongoDB store (database `minute_messaging`).
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    messages: Collection<Document>,
    counters: Collection<Document>,
    claims: Collection<Document>,
    receipts: Collection<Document>,
    members: Collection<Document>,
    seqs: std::sync::Arc<[SeqStripe]>,
}

/// Sends of the conversations hashing to one stripe take seqs one at a time in this
/// process, so its concurrent senders do not collide on `(conv, seq)` (only replicas do,
/// rarely); it remembers the last seq it wrote, saving the counter read.
type SeqStripe = tokio::sync::Mutex<Option<(String, i64)>>;

/// Stripes of [`SeqStripe`]: bounded memory, little false sharing.
const SEQ_STRIPES: usize = 64;

fn stripe_of(conversation_id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    conversation_id.hash(&mut h);
    (h.finish() % SEQ_STRIPES as u64) as usize
}

fn idx(keys: Document, unique: bool) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().unique(unique).build())
        .build()
}

impl MongoStore {
    /// Opens the collections and creates their indexes (idempotent).
    pub async fn open(db: Database) -> Result<Self, StoreError> {
        ensure_indexes(
            &db,
            "messages",
            vec![
                idx(doc! {"conv": 1, "seq": 1}, true),
                idx(doc! {"sender": 1, "cmid": 1}, true),
                idx(doc! {"conv": 1, "sender": 1, "seq": 1}, false),
                idx(doc! {"pending": 1}, false),
                idx(doc! {"tokens": 1}, false),
            ],
        )
        .await?;
        ensure_indexes(
            &db,
            "receipts",
            vec![
                idx(doc! {"conv": 1, "user": 1}, true),
                idx(doc! {"conv": 1, "read_seq": -1}, false),
                idx(doc! {"conv": 1, "delivered_seq": -1}, false),
                idx(doc! {"pending": 1}, false),
            ],
        )
        .await?;
        ensure_indexes(
            &db,
            "members",
            vec![
                idx(doc! {"user": 1, "conv": 1}, false),
                idx(doc! {"conv": 1}, false),
            ],
        )
        .await?;
        Ok(Self {
            messages: db.collection("messages"),
            counters: db.collection("counters"),
            claims: db.collection("claims"),
            receipts: db.collection("receipts"),
            members: db.collection("members"),
            seqs: (0..SEQ_STRIPES).map(|_| SeqStripe::default()).collect(),
            db,
        })
    }

    /// The database (readiness check).
    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn get_one(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let d = self
            .messages
            .find_one(doc! {"_id": id})
            .projection(message_projection())
            .await?;
        d.as_ref().map(message_from).transpose()
    }

    /// Inserts the message with its events at the conversation's next free seq (the claim
    /// is ours).
    async fn insert_new(
        &self,
        new: NewMessage,
        events: EventsFor<'_>,
    ) -> Result<SendOutcome, StoreError> {
        let mut stripe = self.seqs[stripe_of(&new.conversation_id)].lock().await;
        let seq = match &*stripe {
            Some((conv, last)) if *conv == new.conversation_id => *last + 1,
            _ => self.counter(&new.conversation_id).await? + 1,
        };
        let mut message = Message {
            id: new.id,
            conversation_id: new.conversation_id,
            seq,
            sender_id: new.sender_id,
            client_message_id: Some(new.client_message_id),
            body: Some(new.body),
            reply_to_id: new.reply_to_id,
            created_at: new.created_at,
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
            rev: 0,
        };
        for _ in 0..SEQ_ATTEMPTS {
            minute_bus::failpoint::hit("messaging.send.before_insert", &message.conversation_id);
            let outbox = events(&message);
            match self
                .messages
                .insert_one(message_doc(&message, &outbox))
                .await
            {
                Ok(_) => {
                    *stripe = Some((message.conversation_id.clone(), message.seq));
                    drop(stripe);
                    if let Err(e) = self
                        .advance_counter(&message.conversation_id, message.seq)
                        .await
                    {
                        // The message is stored; the conversation's next send moves it on.
                        tracing::warn!(error = %e, "seq counter not advanced");
                    }
                    return Ok(SendOutcome::Created(message));
                }
                Err(e) if is_duplicate_key(&e) => {
                    // Our id: a lease takeover raced the original request, which won.
                    if let Some(m) = self.get_one(&message.id).await? {
                        return Ok(SendOutcome::Existing(m));
                    }
                    // Another sender has this seq: try the one after the highest written.
                    message.seq = self
                        .highest_seq(&message.conversation_id)
                        .await?
                        .max(message.seq)
                        + 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Other(
            "too many concurrent sends in this conversation; retry".into(),
        ))
    }

    /// The conversation's counter: the highest seq written, or one behind it after a crash
    /// between an insert and its counter update (0 for a new conversation).
    async fn counter(&self, conversation_id: &str) -> Result<i64, StoreError> {
        let d = self
            .counters
            .find_one(doc! {"_id": conversation_id})
            .await?;
        Ok(d.as_ref().map_or(0, |d| int(d, "seq")))
    }

    /// The highest seq written in `conversation_id`, from the `(conv, seq)` index.
    async fn highest_seq(&self, conversation_id: &str) -> Result<i64, StoreError> {
        let d = self
            .messages
            .find_one(doc! {"conv": conversation_id})
            .sort(doc! {"conv": 1, "seq": -1})
            .projection(doc! {"seq": 1})
            .await?;
        Ok(d.as_ref().map_or(0, |d| int(d, "seq")))
    }

    /// Moves the conversation's counter (what `lastSeq` reads) up to `seq`, never down.
    async fn advance_counter(&self, conversation_id: &str, seq: i64) -> Result<(), StoreError> {
        for _ in 0..2 {
            let moved = self
                .counters
                .update_one(
                    doc! {"_id": conversation_id, "seq": {"$lt": seq}},
                    doc! {"$set": {"seq": seq}},
                )
                .await?;
            if moved.matched_count == 1 {
                return Ok(());
            }
            // Absent, or already at or past `seq`: create it with plain inserts (no
            // upserts, see `minute_kit::mongo::increment`).
            match self
                .counters
                .insert_one(doc! {"_id": conversation_id, "seq": seq})
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn marker_fields(kind: MarkerKind) -> (&'static str, &'static str) {
        match kind {
            MarkerKind::Read => ("read_seq", "read_at"),
            MarkerKind::Delivered => ("delivered_seq", "delivered_at"),
        }
    }

    async fn find_all(
        &self,
        coll: &Collection<Document>,
        filter: Document,
        sort: Option<Document>,
        limit: Option<i64>,
    ) -> Result<Vec<Document>, StoreError> {
        let mut f = coll.find(filter);
        if let Some(s) = sort {
            f = f.sort(s);
        }
        if let Some(l) = limit {
            f = f.limit(l);
        }
        if std::ptr::eq(coll, &self.messages) {
            f = f.projection(message_projection());
        }
        Ok(f.await?.try_collect().await?)
    }
}

fn message_projection() -> Document {
    doc! {"outbox": 0, "tokens": 0}
}

fn ms(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn opt_ms(t: Option<DateTime<Utc>>) -> Bson {
    t.map_or(Bson::Null, |t| Bson::DateTime(ms(t)))
}

fn time(d: &Document, key: &str) -> Option<DateTime<Utc>> {
    d.get_datetime(key)
        .ok()
        .and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis()))
}

fn opt_str(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
}

fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

fn outbox_docs(events: &[OutboxEvent]) -> Vec<Document> {
    events
        .iter()
        .map(|e| doc! {"id": &e.id, "rk": &e.routing_key, "dk": &e.delivery_key, "body": &e.body})
        .collect()
}

fn reaction_docs(reactions: &[ReactionEntry]) -> Vec<Document> {
    reactions
        .iter()
        .map(|r| doc! {"emoji": &r.emoji, "user": &r.user_id})
        .collect()
}

fn message_doc(m: &Message, outbox: &[OutboxEvent]) -> Document {
    doc! {
        "_id": &m.id,
        "conv": &m.conversation_id,
        "seq": m.seq,
        "sender": &m.sender_id,
        "cmid": m.client_message_id.as_deref().map_or(Bson::Null, |s| Bson::String(s.to_owned())),
        "body": m.body.as_deref().map_or(Bson::Null, |s| Bson::String(s.to_owned())),
        "reply_to": m.reply_to_id.as_deref().map_or(Bson::Null, |s| Bson::String(s.to_owned())),
        "created_at": ms(m.created_at),
        "edited_at": opt_ms(m.edited_at),
        "deleted_at": opt_ms(m.deleted_at),
        "reactions": reaction_docs(&m.reactions),
        "tokens": m.body.as_deref().map(tokens).unwrap_or_default(),
        "rev": m.rev,
        "outbox": outbox_docs(outbox),
        "pending": !outbox.is_empty(),
    }
}

fn message_from(d: &Document) -> Result<Message, StoreError> {
    let bad = |k: &str| StoreError::Other(format!("message document without {k}"));
    let reactions = d
        .get_array("reactions")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .filter_map(|r| {
                    Some(ReactionEntry {
                        emoji: r.get_str("emoji").ok()?.to_owned(),
                        user_id: r.get_str("user").ok()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Message {
        id: opt_str(d, "_id").ok_or_else(|| bad("_id"))?,
        conversation_id: opt_str(d, "conv").ok_or_else(|| bad("conv"))?,
        seq: int(d, "seq"),
        sender_id: opt_str(d, "sender").ok_or_else(|| bad("sender"))?,
        client_message_id: opt_str(d, "cmid"),
        body: opt_str(d, "body"),
        reply_to_id: opt_str(d, "reply_to"),
        created_at: time(d, "created_at").ok_or_else(|| bad("created_at"))?,
        edited_at: time(d, "edited_at"),
        deleted_at: time(d, "deleted_at"),
        reactions,
        rev: int(d, "rev"),
    })
}

/// Up to `limit` of `docs` ascending by seq, and whether there were more.
fn page_of(
    docs: &[Document],
    limit: i64,
    descending: bool,
) -> Result<(Vec<Message>, bool), StoreError> {
    let mut out = docs
        .iter()
        .map(message_from)
        .collect::<Result<Vec<_>, _>>()?;
    let more = out.len() as i64 > limit;
    out.truncate(usize::try_from(limit).unwrap_or(0));
    if descending {
        out.reverse();
    }
    Ok((out, more))
}

fn markers_from(d: &Document) -> Markers {
    Markers {
        user_id: opt_str(d, "user").unwrap_or_default(),
        read_seq: int(d, "read_seq"),
        read_at: time(d, "read_at"),
        delivered_seq: int(d, "delivered_seq"),
        delivered_at: time(d, "delivered_at"),
    }
}

fn outbox_from(d: &Document) -> Vec<OutboxEvent> {
    d.get_array("outbox")
        .map(|a| {
            a.iter()
                .filter_map(Bson::as_document)
                .filter_map(|e| {
                    Some(OutboxEvent {
                        id: e.get_str("id").ok()?.to_owned(),
                        routing_key: e.get_str("rk").ok()?.to_owned(),
                        delivery_key: e.get_str("dk").ok()?.to_owned(),
                        body: e.get_str("body").ok()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn member_from(d: &Document) -> MemberRecord {
    MemberRecord {
        role: d.get_str("role").ok().and_then(Role::parse),
        version: u64::try_from(int(d, "version")).unwrap_or(0),
    }
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn create(
        &self,
        new: NewMessage,
        events: EventsFor<'_>,
    ) -> Result<SendOutcome, StoreError> {
        let claim_id = format!("{}{SEP}{}", new.sender_id, new.client_message_id);
        let lease = chrono::Duration::from_std(CLAIM_LEASE).unwrap_or_default();
        let claim =
            doc! {"_id": &claim_id, "message_id": &new.id, "lease_until": ms(Utc::now() + lease)};
        match self.claims.insert_one(claim).await {
            Ok(_) => return self.insert_new(new, events).await,
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        // A retry (or a concurrent duplicate): wait for the original, or take over its
        // claim once its lease ran out, reusing its message id.
        let deadline = tokio::time::Instant::now() + CLAIM_LEASE + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            let Some(c) = self.claims.find_one(doc! {"_id": &claim_id}).await? else {
                return Err(StoreError::Other("claim vanished".into()));
            };
            let message_id = opt_str(&c, "message_id").unwrap_or_default();
            if let Some(m) = self.get_one(&message_id).await? {
                return Ok(SendOutcome::Existing(m));
            }
            let until = c.get_datetime("lease_until").ok().copied();
            if until.is_some_and(|u| u.timestamp_millis() < Utc::now().timestamp_millis()) {
                let took = self
                    .claims
                    .update_one(
                        doc! {"_id": &claim_id, "lease_until": until.map_or(Bson::Null, Bson::DateTime)},
                        doc! {"$set": {"lease_until": ms(Utc::now() + lease)}},
                    )
                    .await?;
                if took.matched_count == 1 {
                    let new = NewMessage {
                        id: message_id,
                        ..new
                    };
                    return self.insert_new(new, events).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(StoreError::Other(
            "the original send of this clientMessageId is still in progress".into(),
        ))
    }

    async fn get(&self, ids: &[String]) -> Result<Vec<Message>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let docs = self
            .find_all(&self.messages, doc! {"_id": {"$in": ids}}, None, None)
            .await?;
        docs.iter().map(message_from).collect()
    }

    async fn replace(
        &self,
        before: &Message,
        after: &Message,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let mut set = doc! {
            "body": after.body.as_deref().map_or(Bson::Null, |s| Bson::String(s.to_owned())),
            "edited_at": opt_ms(after.edited_at),
            "deleted_at": opt_ms(after.deleted_at),
            "reactions": reaction_docs(&after.reactions),
            "tokens": after.body.as_deref().map(tokens).unwrap_or_default(),
        };
        if !events.is_empty() {
            set.insert("pending", true);
        }
        let r = self
            .messages
            .update_one(
                doc! {"_id": &before.id, "rev": before.rev},
                doc! {"$set": set, "$inc": {"rev": 1_i64}, "$push": {"outbox": {"$each": outbox_docs(&events)}}},
            )
            .await?;
        Ok(r.matched_count == 1)
    }

    async fn history(
        &self,
        conversation_id: &str,
        page: Page,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let limit = page.limit();
        // Seqs are dense (gap-free, tombstones keep theirs), so the page is a known seq
        // window: a bounded index range instead of a sorted open range, which some servers
        // answer by sorting everything after the bound. If the window comes back short (a
        // gap, or the end of the conversation), the open-range query below decides.
        let last = match page {
            Page::Latest(_) => self
                .last_seqs(&[conversation_id.to_owned()])
                .await?
                .get(conversation_id)
                .copied()
                .unwrap_or(0),
            _ => 0,
        };
        let window = page.seq_window(last);
        let descending = matches!(page, Page::Latest(_) | Page::Before(..));
        let sort = doc! {"conv": 1, "seq": if descending { -1 } else { 1 }};
        let (lo, hi) = window;
        if lo <= hi {
            let filter = doc! {"conv": conversation_id, "seq": {"$gte": lo, "$lte": hi}};
            let docs = self
                .find_all(&self.messages, filter, Some(sort.clone()), Some(limit + 1))
                .await?;
            if docs.len() as i64 == hi - lo + 1 {
                return page_of(&docs, limit, descending);
            }
        }
        let filter = match page {
            Page::Latest(_) => doc! {"conv": conversation_id},
            Page::Before(b, _) => doc! {"conv": conversation_id, "seq": {"$lt": b}},
            Page::After(a, _) => doc! {"conv": conversation_id, "seq": {"$gt": a}},
            Page::Between(a, b, _) => doc! {"conv": conversation_id, "seq": {"$gt": a, "$lt": b}},
        };
        let docs = self
            .find_all(&self.messages, filter, Some(sort), Some(limit + 1))
            .await?;
        page_of(&docs, limit, descending)
    }

    async fn at_seqs(&self, positions: &[(String, i64)]) -> Result<Vec<Message>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let or: Vec<Document> = positions
            .iter()
            .map(|(c, s)| doc! {"conv": c, "seq": s})
            .collect();
        let docs = self
            .find_all(&self.messages, doc! {"$or": or}, None, None)
            .await?;
        docs.iter().map(message_from).collect()
    }

    async fn last_seqs(
        &self,
        conversations: &[String],
    ) -> Result<HashMap<String, i64>, StoreError> {
        if conversations.is_empty() {
            return Ok(HashMap::new());
        }
        let docs = self
            .find_all(
                &self.counters,
                doc! {"_id": {"$in": conversations}},
                None,
                None,
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| Some((opt_str(d, "_id")?, int(d, "seq"))))
            .collect())
    }

    async fn own_after(
        &self,
        user: &str,
        from: &[(String, i64)],
    ) -> Result<HashMap<String, i64>, StoreError> {
        if from.is_empty() {
            return Ok(HashMap::new());
        }
        let or: Vec<Document> = from
            .iter()
            .map(|(c, s)| doc! {"conv": c, "sender": user, "seq": {"$gt": s}})
            .collect();
        let pipeline = vec![
            doc! {"$match": {"$or": or}},
            doc! {"$group": {"_id": "$conv", "n": {"$sum": 1}}},
        ];
        let docs: Vec<Document> = self
            .messages
            .aggregate(pipeline)
            .await?
            .try_collect()
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| Some((opt_str(d, "_id")?, int(d, "n"))))
            .collect())
    }

    async fn search(
        &self,
        conversations: &[String],
        terms: &SearchTerms,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let filter = doc! {
            "tokens": {"$all": terms.words()},
            "conv": {"$in": conversations},
            "deleted_at": Bson::Null,
        };
        let docs = self
            .find_all(&self.messages, filter, Some(doc! {"_id": -1}), Some(limit))
            .await?;
        docs.iter().map(message_from).collect()
    }

    async fn mark(
        &self,
        conversation_id: &str,
        user: &str,
        kind: MarkerKind,
        seq: i64,
        at: DateTime<Utc>,
        event: OutboxEvent,
    ) -> Result<bool, StoreError> {
        let id = format!("{conversation_id}{SEP}{user}");
        let (seq_field, at_field) = Self::marker_fields(kind);
        let filter = doc! {"_id": &id, seq_field: {"$lt": seq}};
        let update = doc! {
            "$set": {seq_field: seq, at_field: ms(at), "pending": true},
            "$inc": {"rev": 1_i64},
            "$push": {"outbox": {"$each": outbox_docs(std::slice::from_ref(&event))}},
        };
        for _ in 0..2 {
            let r = self
                .receipts
                .update_one(filter.clone(), update.clone())
                .await?;
            if r.matched_count == 1 {
                return Ok(true);
            }
            // Create the record with plain inserts (see `increment` on racing upserts).
            let fresh = doc! {
                "_id": &id, "conv": conversation_id, "user": user, "read_seq": 0_i64,
                "delivered_seq": 0_i64, "rev": 0_i64, "outbox": [], "pending": false,
            };
            match self.receipts.insert_one(fresh).await {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    async fn markers_of(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, Markers>, StoreError> {
        if conversations.is_empty() {
            return Ok(HashMap::new());
        }
        let docs = self
            .find_all(
                &self.receipts,
                doc! {"conv": {"$in": conversations}, "user": user},
                None,
                None,
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| Some((opt_str(d, "conv")?, markers_from(d))))
            .collect())
    }

    async fn top_markers(
        &self,
        conversation_id: &str,
        kind: MarkerKind,
        limit: i64,
    ) -> Result<Vec<Markers>, StoreError> {
        let (seq_field, _) = Self::marker_fields(kind);
        let docs = self
            .find_all(
                &self.receipts,
                doc! {"conv": conversation_id, seq_field: {"$gt": 0_i64}},
                Some(doc! {"conv": 1, seq_field: -1}),
                Some(limit),
            )
            .await?;
        Ok(docs.iter().map(markers_from).collect())
    }

    async fn pending(&self, limit: i64) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for (tag, coll) in [("m", &self.messages), ("r", &self.receipts)] {
            let docs: Vec<Document> = coll
                .find(doc! {"pending": true})
                .projection(doc! {"outbox": 1, "rev": 1})
                .limit(limit)
                .await?
                .try_collect()
                .await?;
            for d in docs {
                let events = outbox_from(&d);
                let Some(id) = opt_str(&d, "_id") else {
                    continue;
                };
                out.push(OutboxItem {
                    source: format!("{tag}{SEP}{id}"),
                    rev: int(&d, "rev"),
                    events,
                });
            }
        }
        Ok(out)
    }

    async fn mark_sent(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let (coll, id) = self.outbox_holder(item)?;
        let done = coll
            .update_one(
                doc! {"_id": id, "rev": item.rev},
                doc! {"$set": {"outbox": [], "pending": false}},
            )
            .await?;
        if done.matched_count == 0 {
            // Changed since it was read: drop only what was published; the rest stays pending.
            let ids: Vec<&str> = item.events.iter().map(|e| e.id.as_str()).collect();
            coll.update_one(
                doc! {"_id": id},
                doc! {"$pull": {"outbox": {"id": {"$in": ids}}}},
            )
            .await?;
        }
        Ok(())
    }

    /// One `update_many` per collection for the items unchanged since they were read (the
    /// usual case); when some changed, each item of that collection goes through
    /// [`MessageStore::mark_sent`] (repeating it for the others is harmless: same result).
    async fn mark_sent_many(&self, items: &[OutboxItem]) -> Result<(), StoreError> {
        let mut by_coll: Vec<(&Collection<Document>, Vec<&OutboxItem>, Vec<Document>)> = Vec::new();
        for item in items {
            let (coll, id) = self.outbox_holder(item)?;
            let unchanged = doc! {"_id": id, "rev": item.rev};
            match by_coll.iter_mut().find(|(c, _, _)| std::ptr::eq(*c, coll)) {
                Some((_, its, filters)) => {
                    its.push(item);
                    filters.push(unchanged);
                }
                None => by_coll.push((coll, vec![item], vec![unchanged])),
            }
        }
        for (coll, its, filters) in by_coll {
            let done = coll
                .update_many(
                    doc! {"$or": filters},
                    doc! {"$set": {"outbox": [], "pending": false}},
                )
                .await?;
            if done.matched_count < its.len() as u64 {
                for item in its {
                    self.mark_sent(item).await?;
                }
            }
        }
        Ok(())
    }
}

impl MongoStore {
    /// The collection and document id an outbox item was read from.
    fn outbox_holder<'a>(
        &self,
        item: &'a OutboxItem,
    ) -> Result<(&Collection<Document>, &'a str), StoreError> {
        let (tag, id) = item
            .source
            .split_once(SEP)
            .ok_or_else(|| StoreError::Other(format!("bad outbox source {}", item.source)))?;
        let coll = if tag == "m" {
            &self.messages
        } else {
            &self.receipts
        };
        Ok((coll, id))
    }
}

#[async_trait]
impl MembershipStore for MongoStore {
    async fn apply(&self, change: &MemberChange) -> Result<bool, StoreError> {
        let id = format!("{}{SEP}{}", change.conversation_id, change.user_id);
        let version = i64::try_from(change.version).unwrap_or(i64::MAX);
        let role = change
            .role
            .map_or(Bson::Null, |r| Bson::String(r.as_str().into()));
        let update = doc! {"$set": {"role": role.clone(), "version": version}};
        for _ in 0..2 {
            let r = self
                .members
                .update_one(
                    doc! {"_id": &id, "version": {"$lt": version}},
                    update.clone(),
                )
                .await?;
            if r.matched_count == 1 {
                return Ok(true);
            }
            let fresh = doc! {
                "_id": &id, "conv": &change.conversation_id, "user": &change.user_id,
                "role": role.clone(), "version": version,
            };
            match self.members.insert_one(fresh).await {
                Ok(_) => return Ok(true),
                // It exists: either as new or newer (then the update above matches nothing
                // again) or it was just created by a racer with an older version.
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    async fn member(
        &self,
        conversation_id: &str,
        user: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let id = format!("{conversation_id}{SEP}{user}");
        Ok(self
            .members
            .find_one(doc! {"_id": id})
            .await?
            .as_ref()
            .map(member_from))
    }

    async fn memberships(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, MemberRecord>, StoreError> {
        if conversations.is_empty() {
            return Ok(HashMap::new());
        }
        let docs = self
            .find_all(
                &self.members,
                doc! {"user": user, "conv": {"$in": conversations}},
                None,
                None,
            )
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| Some((opt_str(d, "conv")?, member_from(d))))
            .collect())
    }

    async fn knows_conversation(&self, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .members
            .find_one(doc! {"conv": conversation_id})
            .projection(doc! {"_id": 1})
            .await?
            .is_some())
    }

    async fn conversations_of(&self, user: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        let docs = self
            .find_all(
                &self.members,
                doc! {"user": user, "role": {"$ne": Bson::Null}},
                None,
                Some(limit),
            )
            .await?;
        Ok(docs.iter().filter_map(|d| opt_str(d, "conv")).collect())
    }
}
