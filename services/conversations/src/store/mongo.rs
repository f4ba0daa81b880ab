//! The MongoDB adapter. Collections: `conversations`, `direct_pairs` (`_id` = the sorted
//! pair: the unique key that makes `createDirectConversation` idempotent under races),
//! `members` (`_id` = `<conversation>|<user>`, with the user's copy of the conversation's
//! activity so a user's list is one index range), `outbox`, `known_users`,
//! `processed_events` (TTL 7 days). Multi-document writes run in transactions, retried on
//! `TransientTransactionError`.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::IndexOptions;
use mongodb::{ClientSession, Collection, Database, IndexModel};

use super::{ConversationStore, Created, Membership, OutboxEvent, StoreError, UserReplica};
use crate::domain::{
    ActivityCursor, Change, Conversation, ConversationId, Kind, KnownUser, Member, NewConversation,
    Role, UserId,
};

/// The MongoDB store.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
}

/// Why a transaction body stopped.
enum TxError {
    Mongo(mongodb::error::Error),
    Store(StoreError),
}

impl From<mongodb::error::Error> for TxError {
    fn from(e: mongodb::error::Error) -> Self {
        Self::Mongo(e)
    }
}

fn be(e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(e)
}

const ATTEMPTS: u32 = 10;

/// Runs `$body` (an async expression using `$s: &mut ClientSession`, returning
/// `Result<T, TxError>`) in a transaction; retries the whole transaction on transient errors
/// and the commit on unknown commit results.
macro_rules! in_transaction {
    ($store:expr, $s:ident => $body:expr) => {{
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            let mut session = $store.db.client().start_session().await.map_err(be)?;
            session.start_transaction().await.map_err(be)?;
            let outcome: Result<_, TxError> = {
                let $s = &mut session;
                $body.await
            };
            let outcome = match outcome {
                Ok(v) => commit(&mut session)
                    .await
                    .map(|()| v)
                    .map_err(TxError::Mongo),
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
            };
            match outcome {
                Ok(v) => break Ok(v),
                Err(TxError::Store(e)) => break Err(e),
                Err(TxError::Mongo(e))
                    if attempt < ATTEMPTS && e.contains_label(TRANSIENT_TRANSACTION_ERROR) =>
                {
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Err(TxError::Mongo(e)) => break Err(be(e)),
            }
        }
    }};
}

async fn commit(s: &mut ClientSession) -> Result<(), mongodb::error::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match s.commit_transaction().await {
            Err(e) if attempt < 3 && e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => {}
            other => return other,
        }
    }
}

impl MongoStore {
    /// Uses `db` and creates the indexes (idempotent).
    pub async fn new(db: Database) -> anyhow::Result<Self> {
        let unique = || IndexOptions::builder().unique(true).build();
        minute_kit::mongo::ensure_indexes(
            &db,
            "members",
            vec![
                IndexModel::builder()
                    .keys(doc! {"c": 1, "u": 1})
                    .options(unique())
                    .build(),
                IndexModel::builder()
                    .keys(doc! {"u": 1, "a": -1, "c": -1})
                    .build(),
            ],
        )
        .await?;
        minute_kit::mongo::ensure_indexes(
            &db,
            "processed_events",
            vec![
                IndexModel::builder()
                    .keys(doc! {"at": 1})
                    .options(
                        IndexOptions::builder()
                            .expire_after(Duration::from_secs(7 * 24 * 3600))
                            .build(),
                    )
                    .build(),
            ],
        )
        .await?;
        Ok(Self { db })
    }

    /// The database (readiness checks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn col(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }
}

fn member_key(c: &ConversationId, u: &UserId) -> String {
    format!("{c}|{u}")
}

fn member_doc(m: &Member, activity_ms: i64) -> Document {
    doc! {
        "_id": member_key(&m.conversation_id, &m.user_id),
        "c": m.conversation_id.as_str(),
        "u": m.user_id.as_str(),
        "role": m.role.as_str(),
        "joined": m.joined_at.timestamp_millis(),
        "a": activity_ms,
    }
}

fn outbox_doc(e: &OutboxEvent) -> Document {
    doc! {
        "_id": &e.id,
        "rk": &e.routing_key,
        "dk": e.delivery_keys.clone(),
        "body": &e.body,
        "tp": e.traceparent.clone().map_or(Bson::Null, Bson::String),
    }
}

fn int(d: &Document, k: &str) -> i64 {
    match d.get(k) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

fn string(d: &Document, k: &str) -> String {
    d.get_str(k).unwrap_or_default().to_owned()
}

fn time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn conversation_from(d: &Document) -> Conversation {
    Conversation {
        id: ConversationId::trusted(string(d, "_id")),
        kind: Kind::from_str_opt(d.get_str("kind").unwrap_or_default()).unwrap_or(Kind::Group),
        title: d.get_str("title").ok().map(str::to_owned),
        created_at: time(int(d, "created")),
        member_count: int(d, "members").max(0) as u64,
        owner_count: int(d, "owners").max(0) as u64,
        version: int(d, "version").max(0) as u64,
        last_activity_ms: int(d, "a"),
    }
}

fn member_from(d: &Document) -> Member {
    Member {
        conversation_id: ConversationId::trusted(string(d, "c")),
        user_id: UserId::trusted(string(d, "u")),
        role: Role::from_str_opt(d.get_str("role").unwrap_or_default()).unwrap_or(Role::Member),
        joined_at: time(int(d, "joined")),
    }
}

/// Runs a find and reads every document of its (limited) result.
async fn all(find: mongodb::action::Find<'_, Document>) -> Result<Vec<Document>, StoreError> {
    find.await.map_err(be)?.try_collect().await.map_err(be)
}

fn ids_bson<T: AsRef<str>>(ids: impl Iterator<Item = T>) -> Vec<Bson> {
    ids.map(|i| Bson::String(i.as_ref().to_owned())).collect()
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ConversationId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl MongoStore {
    async fn create_in(
        &self,
        s: &mut ClientSession,
        new: &NewConversation,
        outbox: &[OutboxEvent],
    ) -> Result<Created, TxError> {
        let c = &new.conversation;
        if let Some(key) = &new.direct_key {
            let r = self
                .col("direct_pairs")
                .insert_one(doc! {"_id": key, "conversation_id": c.id.as_str()})
                .session(&mut *s)
                .await;
            if let Err(e) = r {
                return Err(if minute_kit::mongo::is_duplicate_key(&e) {
                    TxError::Store(StoreError::VersionConflict)
                } else {
                    TxError::Mongo(e)
                });
            }
        }
        let mut d = doc! {
            "_id": c.id.as_str(),
            "kind": c.kind.as_str(),
            "created": c.created_at.timestamp_millis(),
            "members": c.member_count as i64,
            "owners": c.owner_count as i64,
            "version": c.version as i64,
            "a": c.last_activity_ms,
        };
        if let Some(t) = &c.title {
            d.insert("title", t);
        }
        self.col("conversations")
            .insert_one(d)
            .session(&mut *s)
            .await?;
        let members: Vec<Document> = new
            .members
            .iter()
            .map(|m| member_doc(m, c.last_activity_ms))
            .collect();
        self.col("members")
            .insert_many(members)
            .session(&mut *s)
            .await?;
        self.insert_outbox(s, outbox).await?;
        Ok(Created::Inserted)
    }

    async fn insert_outbox(
        &self,
        s: &mut ClientSession,
        outbox: &[OutboxEvent],
    ) -> Result<(), TxError> {
        if !outbox.is_empty() {
            self.col("outbox")
                .insert_many(outbox.iter().map(outbox_doc))
                .session(&mut *s)
                .await?;
        }
        Ok(())
    }

    async fn apply_in(
        &self,
        s: &mut ClientSession,
        change: &Change,
        cid: &ConversationId,
        outbox: &[OutboxEvent],
    ) -> Result<(), TxError> {
        let mut set = doc! {
            "version": change.new_version() as i64,
            "members": change.member_count as i64,
            "owners": change.owner_count as i64,
        };
        if let Some(t) = &change.title {
            set.insert("title", t.as_str());
        }
        let r = self
            .col("conversations")
            .update_one(
                doc! {"_id": cid.as_str(), "version": change.expected_version as i64},
                doc! {"$set": set},
            )
            .session(&mut *s)
            .await?;
        if r.matched_count != 1 {
            return Err(TxError::Store(StoreError::VersionConflict));
        }
        let members = self.col("members");
        if !change.add.is_empty() {
            let docs = change.add.iter().map(|m| member_doc(m, change.activity_ms));
            members.insert_many(docs).session(&mut *s).await?;
        }
        if !change.remove.is_empty() {
            members
                .delete_many(doc! {"c": cid.as_str(), "u": {"$in": ids_bson(change.remove.iter())}})
                .session(&mut *s)
                .await?;
        }
        for (u, role) in &change.set_roles {
            members
                .update_one(
                    doc! {"_id": member_key(cid, u)},
                    doc! {"$set": {"role": role.as_str()}},
                )
                .session(&mut *s)
                .await?;
        }
        self.insert_outbox(s, outbox).await
    }

    /// Inserts the processed-event marker; false when it was there already.
    async fn mark_processed(&self, s: &mut ClientSession, event_id: &str) -> Result<bool, TxError> {
        let r = self
            .col("processed_events")
            .insert_one(doc! {"_id": event_id, "at": mongodb::bson::DateTime::now()})
            .session(&mut *s)
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if minute_kit::mongo::is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(TxError::Mongo(e)),
        }
    }

    async fn activity_in(
        &self,
        s: &mut ClientSession,
        event_id: &str,
        cid: &ConversationId,
        at_ms: i64,
    ) -> Result<bool, TxError> {
        if !self.mark_processed(s, event_id).await? {
            return Err(TxError::Store(StoreError::VersionConflict));
        }
        self.col("conversations")
            .update_one(
                doc! {"_id": cid.as_str(), "a": {"$lt": at_ms}},
                doc! {"$set": {"a": at_ms}},
            )
            .session(&mut *s)
            .await?;
        self.col("members")
            .update_many(
                doc! {"c": cid.as_str(), "a": {"$lt": at_ms}},
                doc! {"$set": {"a": at_ms}},
            )
            .session(&mut *s)
            .await?;
        Ok(true)
    }

    async fn registered_in(
        &self,
        s: &mut ClientSession,
        event_id: &str,
        user: &KnownUser,
    ) -> Result<bool, TxError> {
        if !self.mark_processed(s, event_id).await? {
            return Err(TxError::Store(StoreError::VersionConflict));
        }
        self.col("known_users")
            .update_one(
                doc! {"_id": user.id.as_str()},
                doc! {"$set": {"username": user.username.clone().map_or(Bson::Null, Bson::String)}},
            )
            .upsert(true)
            .session(&mut *s)
            .await?;
        Ok(true)
    }
}

#[async_trait]
impl ConversationStore for MongoStore {
    async fn create(
        &self,
        new: &NewConversation,
        outbox: &[OutboxEvent],
    ) -> Result<Created, StoreError> {
        let r = in_transaction!(self, s => self.create_in(s, new, outbox));
        match (r, &new.direct_key) {
            (Err(StoreError::VersionConflict), Some(key)) => {
                let d = self
                    .col("direct_pairs")
                    .find_one(doc! {"_id": key})
                    .await
                    .map_err(be)?
                    .ok_or(StoreError::VersionConflict)?;
                Ok(Created::ExistingDirect(ConversationId::trusted(string(
                    &d,
                    "conversation_id",
                ))))
            }
            (r, _) => r,
        }
    }

    async fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        let d = self
            .col("conversations")
            .find_one(doc! {"_id": id.as_str()})
            .await
            .map_err(be)?;
        Ok(d.as_ref().map(conversation_from))
    }

    async fn conversations(&self, ids: &[ConversationId]) -> Result<Vec<Conversation>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let docs = all(self
            .col("conversations")
            .find(doc! {"_id": {"$in": ids_bson(ids.iter())}}))
        .await?;
        Ok(docs.iter().map(conversation_from).collect())
    }

    async fn member(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        let d = self
            .col("members")
            .find_one(doc! {"_id": member_key(conversation, user)})
            .await
            .map_err(be)?;
        Ok(d.as_ref().map(member_from))
    }

    async fn members_among(
        &self,
        conversation: &ConversationId,
        users: &[UserId],
    ) -> Result<Vec<Member>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let keys = users.iter().map(|u| member_key(conversation, u));
        let docs = all(self
            .col("members")
            .find(doc! {"_id": {"$in": ids_bson(keys)}}))
        .await?;
        Ok(docs.iter().map(member_from).collect())
    }

    async fn members_page(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let mut filter = doc! {"c": conversation.as_str()};
        if let Some(a) = after {
            filter.insert("u", doc! {"$gt": a.as_str()});
        }
        let docs = all(self
            .col("members")
            .find(filter)
            .sort(doc! {"u": 1})
            .limit(limit as i64))
        .await?;
        Ok(docs.iter().map(member_from).collect())
    }

    async fn apply(&self, change: &Change, outbox: &[OutboxEvent]) -> Result<(), StoreError> {
        let cid = change
            .conversation_id
            .clone()
            .ok_or(StoreError::VersionConflict)?;
        in_transaction!(self, s => self.apply_in(s, change, &cid, outbox))
    }

    async fn memberships(
        &self,
        user: &UserId,
        after: Option<&ActivityCursor>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError> {
        let mut filter = doc! {"u": user.as_str()};
        if let Some(a) = after {
            filter.insert(
                "$or",
                vec![
                    doc! {"a": {"$lt": a.activity_ms}},
                    doc! {"a": a.activity_ms, "c": {"$lt": a.conversation_id.as_str()}},
                ],
            );
        }
        let docs = all(self
            .col("members")
            .find(filter)
            .sort(doc! {"a": -1, "c": -1})
            .limit(limit as i64))
        .await?;
        Ok(docs
            .iter()
            .map(|d| Membership {
                member: member_from(d),
                activity_ms: int(d, "a"),
            })
            .collect())
    }

    async fn conversation_ids_of(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError> {
        let docs = all(self
            .col("members")
            .find(doc! {"u": user.as_str()})
            .projection(doc! {"c": 1}))
        .await?;
        Ok(docs
            .iter()
            .map(|d| ConversationId::trusted(string(d, "c")))
            .collect())
    }

    async fn record_activity(
        &self,
        event_id: &str,
        conversation: &ConversationId,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        match in_transaction!(self, s => self.activity_in(s, event_id, conversation, at_ms)) {
            Err(StoreError::VersionConflict) => Ok(false),
            other => other,
        }
    }

    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let docs = all(self
            .col("outbox")
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .limit(limit as i64))
        .await?;
        Ok(docs
            .iter()
            .map(|d| OutboxEvent {
                id: string(d, "_id"),
                routing_key: string(d, "rk"),
                delivery_keys: d
                    .get_array("dk")
                    .map(|a| {
                        a.iter()
                            .filter_map(|b| b.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                body: string(d, "body"),
                traceparent: d.get_str("tp").ok().map(str::to_owned),
            })
            .collect())
    }

    async fn delete_outbox(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.col("outbox")
            .delete_many(doc! {"_id": {"$in": ids_bson(ids.iter())}})
            .await
            .map_err(be)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(be)
    }
}

#[async_trait]
impl UserReplica for MongoStore {
    async fn known(&self, ids: &[UserId]) -> Result<HashSet<UserId>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let docs = all(self
            .col("known_users")
            .find(doc! {"_id": {"$in": ids_bson(ids.iter())}})
            .projection(doc! {"_id": 1}))
        .await?;
        Ok(docs
            .iter()
            .map(|d| UserId::trusted(string(d, "_id")))
            .collect())
    }

    async fn remember(&self, users: &[KnownUser]) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let docs = users.iter().map(|u| {
            doc! {"_id": u.id.as_str(), "username": u.username.clone().map_or(Bson::Null, Bson::String)}
        });
        // One unordered bulk insert; a duplicate only means the user was known already.
        match self
            .col("known_users")
            .insert_many(docs)
            .ordered(false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if only_duplicates(&e) => Ok(()),
            Err(e) => Err(be(e)),
        }
    }

    async fn record_registered(
        &self,
        event_id: &str,
        user: &KnownUser,
    ) -> Result<bool, StoreError> {
        match in_transaction!(self, s => self.registered_in(s, event_id, user)) {
            Err(StoreError::VersionConflict) => Ok(false),
            other => other,
        }
    }
}

fn only_duplicates(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|errs| errs.iter().all(|w| w.code == 11000))
        }
        _ => minute_kit::mongo::is_duplicate_key(e),
    }
}
