//! The MongoDB adapter. Collections: `accounts` (unique `username`), `sessions` (one per
//! refresh-token family), `refresh_tokens` (`_id` = SHA-256 of the token; a TTL index drops
//! expired ones), `outbox`. Writes that carry an event run in a transaction with it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use minute_kit::mongo::{ensure_indexes, is_duplicate_key};
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{Error as MongoError, TRANSIENT_TRANSACTION_ERROR};
use mongodb::options::IndexOptions;
use mongodb::{ClientSession, Collection, Database, IndexModel};

use super::{
    Account, AuthStore, Counts, NewSession, RevocationEvent, RevokeScope, Rotation, SessionRef,
    StoreError,
};
use crate::events::OutboxEvent;

/// Attempts of a transaction that hits a transient write conflict.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// Runs `$body` (which may use `?` on driver errors and `$s` as the session) in a
/// transaction, retrying it on transient conflicts (two registrations of one name race).
macro_rules! transaction {
    ($client:expr, $s:ident => $body:expr) => {{
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            let mut $s = $client.start_session().await.map_err(StoreError::backend)?;
            $s.start_transaction().await.map_err(StoreError::backend)?;
            let result: Result<_, MongoError> = async {
                let value = $body;
                $s.commit_transaction().await?;
                Ok(value)
            }
            .await;
            match result {
                Ok(v) => break Ok::<_, StoreError>(v),
                Err(e)
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && attempt < TRANSACTION_ATTEMPTS =>
                {
                    continue;
                }
                Err(e) if is_duplicate_key(&e) => break Err(StoreError::Duplicate),
                Err(e) => break Err(StoreError::backend(e)),
            }
        }
    }};
}

/// Auth's MongoDB store.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    accounts: Collection<Document>,
    sessions: Collection<Document>,
    tokens: Collection<Document>,
    outbox: Collection<Document>,
}

impl MongoStore {
    /// Uses `db`, creating the indexes (idempotent).
    pub async fn new(db: Database) -> Result<Self, StoreError> {
        let unique = IndexOptions::builder().unique(true).build();
        let ttl = IndexOptions::builder()
            .expire_after(std::time::Duration::from_secs(0))
            .build();
        ensure_indexes(
            &db,
            "accounts",
            vec![
                IndexModel::builder()
                    .keys(doc! {"username": 1})
                    .options(unique)
                    .build(),
            ],
        )
        .await
        .map_err(StoreError::backend)?;
        ensure_indexes(
            &db,
            "sessions",
            vec![
                IndexModel::builder().keys(doc! {"user_id": 1}).build(),
                IndexModel::builder()
                    .keys(doc! {"expires_at": 1})
                    .options(ttl.clone())
                    .build(),
            ],
        )
        .await
        .map_err(StoreError::backend)?;
        ensure_indexes(
            &db,
            "refresh_tokens",
            vec![
                IndexModel::builder().keys(doc! {"session_id": 1}).build(),
                IndexModel::builder()
                    .keys(doc! {"expires_at": 1})
                    .options(ttl)
                    .build(),
            ],
        )
        .await
        .map_err(StoreError::backend)?;
        Ok(Self {
            accounts: db.collection("accounts"),
            sessions: db.collection("sessions"),
            tokens: db.collection("refresh_tokens"),
            outbox: db.collection("outbox"),
            db,
        })
    }

    /// The database (readiness checks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Revokes within `s`; returns the ids revoked.
    async fn revoke_in(
        &self,
        s: &mut ClientSession,
        user_id: &str,
        scope: RevokeScope<'_>,
        reason: &str,
        now: DateTime<Utc>,
        event: &RevocationEvent,
    ) -> Result<Vec<String>, MongoError> {
        let mut filter = doc! {"user_id": user_id, "revoked_at": Bson::Null};
        match scope {
            RevokeScope::Session(sid) => {
                filter.insert("_id", sid);
            }
            RevokeScope::AllExcept(sid) => {
                filter.insert("_id", doc! {"$ne": sid});
            }
            RevokeScope::All => {}
        }
        let mut cursor = self.sessions.find(filter).session(&mut *s).await?;
        let mut ids = Vec::new();
        while let Some(d) = cursor.next(&mut *s).await {
            if let Ok(id) = d?.get_str("_id") {
                ids.push(id.to_owned());
            }
        }
        if ids.is_empty() {
            return Ok(ids);
        }
        self.sessions
            .update_many(
                doc! {"_id": {"$in": &ids}, "revoked_at": Bson::Null},
                doc! {"$set": {"revoked_at": bson_time(now), "revoke_reason": reason}},
            )
            .session(&mut *s)
            .await?;
        self.outbox
            .insert_one(outbox_doc(&event(&ids)))
            .session(&mut *s)
            .await?;
        Ok(ids)
    }
}

fn bson_time(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}

fn chrono_time(d: &Document, field: &str) -> DateTime<Utc> {
    d.get_datetime(field)
        .ok()
        .and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis()))
        .unwrap_or_default()
}

fn is_null(d: &Document, field: &str) -> bool {
    matches!(d.get(field), None | Some(Bson::Null))
}

fn text(d: &Document, field: &str) -> Result<String, StoreError> {
    d.get_str(field)
        .map(str::to_owned)
        .map_err(|e| StoreError::backend(format!("{field}: {e}")))
}

fn outbox_doc(e: &OutboxEvent) -> Document {
    doc! {
        "_id": &e.id,
        "routing_key": &e.routing_key,
        "body": &e.body,
        "traceparent": e.traceparent.as_deref().map_or(Bson::Null, |t| Bson::String(t.to_owned())),
        "created_at": bson_time(e.created_at),
    }
}

fn account_from(d: &Document) -> Result<Account, StoreError> {
    Ok(Account {
        id: text(d, "_id")?,
        username: text(d, "username")?,
        password_hash: text(d, "password_hash")?,
        created_at: chrono_time(d, "created_at"),
    })
}

#[async_trait]
impl AuthStore for MongoStore {
    async fn create_account(
        &self,
        account: &Account,
        event: &OutboxEvent,
    ) -> Result<(), StoreError> {
        let account_doc = doc! {
            "_id": &account.id,
            "username": &account.username,
            "password_hash": &account.password_hash,
            "created_at": bson_time(account.created_at),
            "updated_at": bson_time(account.created_at),
        };
        transaction!(self.db.client(), s => {
            self.accounts.insert_one(account_doc.clone()).session(&mut s).await?;
            self.outbox.insert_one(outbox_doc(event)).session(&mut s).await?;
        })
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let found = self
            .accounts
            .find_one(doc! {"username": username})
            .await
            .map_err(StoreError::backend)?;
        found.as_ref().map(account_from).transpose()
    }

    async fn account_by_id(&self, user_id: &str) -> Result<Option<Account>, StoreError> {
        let found = self
            .accounts
            .find_one(doc! {"_id": user_id})
            .await
            .map_err(StoreError::backend)?;
        found.as_ref().map(account_from).transpose()
    }

    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError> {
        // Session first: a token is never stored without its family.
        self.sessions
            .insert_one(doc! {
                "_id": &session.id,
                "user_id": &session.user_id,
                "username": &session.username,
                "device_name": session.device_name.as_deref().map_or(Bson::Null, |d| Bson::String(d.to_owned())),
                "created_at": bson_time(session.created_at),
                "expires_at": bson_time(session.expires_at),
                "revoked_at": Bson::Null,
            })
            .await
            .map_err(StoreError::backend)?;
        self.tokens
            .insert_one(doc! {
                "_id": &session.token_hash,
                "session_id": &session.id,
                "user_id": &session.user_id,
                "created_at": bson_time(session.created_at),
                "expires_at": bson_time(session.expires_at),
                "rotated_at": Bson::Null,
            })
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let be = StoreError::backend;
        let Some(token) = self
            .tokens
            .find_one(doc! {"_id": old_hash})
            .await
            .map_err(be)?
        else {
            return Ok(Rotation::Invalid);
        };
        let session_id = text(&token, "session_id")?;
        let Some(session) = self
            .sessions
            .find_one(doc! {"_id": &session_id})
            .await
            .map_err(be)?
        else {
            return Ok(Rotation::Invalid);
        };
        if !is_null(&session, "revoked_at") {
            return Ok(Rotation::Invalid);
        }
        let found = SessionRef {
            session_id: session_id.clone(),
            user_id: text(&session, "user_id")?,
            username: text(&session, "username")?,
        };
        if !is_null(&token, "rotated_at") {
            return Ok(Rotation::Reused(found));
        }
        if chrono_time(&token, "expires_at") <= now {
            return Ok(Rotation::Invalid);
        }
        // The conditional update is the single point that decides who rotates.
        let claimed = self
            .tokens
            .update_one(
                doc! {"_id": old_hash, "rotated_at": Bson::Null},
                doc! {"$set": {"rotated_at": bson_time(now)}},
            )
            .await
            .map_err(be)?;
        if claimed.modified_count == 0 {
            return Ok(Rotation::Reused(found));
        }
        self.tokens
            .insert_one(doc! {
                "_id": new_hash,
                "session_id": &session_id,
                "user_id": &found.user_id,
                "created_at": bson_time(now),
                "expires_at": bson_time(expires_at),
                "rotated_at": Bson::Null,
            })
            .await
            .map_err(be)?;
        // The session lives as long as its newest token.
        self.sessions
            .update_one(
                doc! {"_id": &session_id},
                doc! {"$set": {"expires_at": bson_time(expires_at)}},
            )
            .await
            .map_err(be)?;
        Ok(Rotation::Rotated(found))
    }

    async fn revoke_sessions(
        &self,
        user_id: &str,
        scope: RevokeScope<'_>,
        reason: &str,
        now: DateTime<Utc>,
        event: RevocationEvent,
    ) -> Result<Vec<String>, StoreError> {
        transaction!(self.db.client(), s => {
            self.revoke_in(&mut s, user_id, scope, reason, now, &event).await?
        })
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: DateTime<Utc>,
        event: RevocationEvent,
    ) -> Result<Vec<String>, StoreError> {
        let scope = RevokeScope::AllExcept(keep_session);
        let reason = crate::domain::service::reason::PASSWORD_CHANGED;
        transaction!(self.db.client(), s => {
            self.accounts
                .update_one(
                    doc! {"_id": user_id},
                    doc! {"$set": {"password_hash": password_hash, "updated_at": bson_time(now)}},
                )
                .session(&mut s)
                .await?;
            self.revoke_in(&mut s, user_id, scope, reason, now, &event).await?
        })
    }

    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut cursor = self
            .outbox
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .limit(i64::from(limit))
            .await
            .map_err(StoreError::backend)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(StoreError::backend)? {
            let d: Document = cursor.deserialize_current().map_err(StoreError::backend)?;
            out.push(OutboxEvent {
                id: text(&d, "_id")?,
                routing_key: text(&d, "routing_key")?,
                body: text(&d, "body")?,
                traceparent: d.get_str("traceparent").ok().map(str::to_owned),
                created_at: chrono_time(&d, "created_at"),
            });
        }
        Ok(out)
    }

    async fn mark_sent(&self, event_id: &str) -> Result<(), StoreError> {
        self.outbox
            .delete_one(doc! {"_id": event_id})
            .await
            .map(|_| ())
            .map_err(StoreError::backend)
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // The TTL indexes do this too; the explicit pass makes it prompt and testable.
        let expired = doc! {"expires_at": {"$lt": bson_time(now)}};
        let tokens = self
            .tokens
            .delete_many(expired.clone())
            .await
            .map_err(StoreError::backend)?;
        let sessions = self
            .sessions
            .delete_many(expired)
            .await
            .map_err(StoreError::backend)?;
        Ok(tokens.deleted_count + sessions.deleted_count)
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        let count = |c: &Collection<Document>| {
            let c = c.clone();
            async move {
                c.count_documents(doc! {})
                    .await
                    .map_err(StoreError::backend)
            }
        };
        Ok(Counts {
            accounts: count(&self.accounts).await?,
            sessions: count(&self.sessions).await?,
            refresh_tokens: count(&self.tokens).await?,
            outbox: count(&self.outbox).await?,
        })
    }
}
