//! The embedded SQLite adapter (`minute all` without `DATABASE_URL`) on
//! [`minute_kit::sqlite::Sqlite`] (one WAL file, one connection used from the blocking
//! pool; SQLite serialises writers anyway). Each writing trait method is one transaction.

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use chrono::DateTime;
use minute_kit::sqlite::{Sqlite, SqliteError};
use rusqlite::{OptionalExtension, Transaction, params, params_from_iter};

use super::{ConversationStore, Created, Membership, OutboxEvent, StoreError, UserReplica};
use crate::domain::{
    ActivityCursor, Change, Conversation, ConversationId, Kind, KnownUser, Member, NewConversation,
    Role, UserId,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT, created_at_ms INTEGER NOT NULL,
  member_count INTEGER NOT NULL, owner_count INTEGER NOT NULL, version INTEGER NOT NULL,
  last_activity_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS direct_pairs (pair TEXT PRIMARY KEY, conversation_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
  conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL,
  joined_at_ms INTEGER NOT NULL, activity_ms INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user
  ON members (user_id, activity_ms DESC, conversation_id DESC);
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, routing_key TEXT NOT NULL,
  delivery_keys TEXT NOT NULL, body TEXT NOT NULL, traceparent TEXT);
CREATE TABLE IF NOT EXISTS known_users (id TEXT PRIMARY KEY, username TEXT);
CREATE TABLE IF NOT EXISTS processed_events (id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS processed_events_by_age ON processed_events (at_ms);
";

/// How long an event id is remembered (as the MongoDB adapter's TTL index): far longer
/// than any redelivery, so the table stays bounded.
const PROCESSED_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// The SQLite store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Sqlite,
}

impl EmbeddedStore {
    /// Opens (creating the directory and schema) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            db: Sqlite::open(path, SCHEMA)?,
        })
    }
}

fn be(e: SqliteError) -> StoreError {
    StoreError::backend(e)
}

fn time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

const CONV_COLS: &str =
    "id, kind, title, created_at_ms, member_count, owner_count, version, last_activity_ms";

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    let kind: String = r.get(1)?;
    Ok(Conversation {
        id: ConversationId::trusted(r.get(0)?),
        kind: Kind::from_str_opt(&kind).unwrap_or(Kind::Group),
        title: r.get(2)?,
        created_at: time(r.get(3)?),
        member_count: r.get::<_, i64>(4)?.max(0) as u64,
        owner_count: r.get::<_, i64>(5)?.max(0) as u64,
        version: r.get::<_, i64>(6)?.max(0) as u64,
        last_activity_ms: r.get(7)?,
    })
}

const MEMBER_COLS: &str = "conversation_id, user_id, role, joined_at_ms, activity_ms";

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Member> {
    let role: String = r.get(2)?;
    Ok(Member {
        conversation_id: ConversationId::trusted(r.get(0)?),
        user_id: UserId::trusted(r.get(1)?),
        role: Role::from_str_opt(&role).unwrap_or(Role::Member),
        joined_at: time(r.get(3)?),
    })
}

fn insert_members(
    tx: &Transaction<'_>,
    members: &[Member],
    activity_ms: i64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO members (conversation_id, user_id, role, joined_at_ms, activity_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for m in members {
        stmt.execute(params![
            m.conversation_id.as_str(),
            m.user_id.as_str(),
            m.role.as_str(),
            m.joined_at.timestamp_millis(),
            activity_ms
        ])?;
    }
    Ok(())
}

fn insert_outbox(tx: &Transaction<'_>, events: &[OutboxEvent]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (id, routing_key, delivery_keys, body, traceparent) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in events {
        let keys = serde_json::to_string(&e.delivery_keys).unwrap_or_else(|_| "[]".to_owned());
        stmt.execute(params![e.id, e.routing_key, keys, e.body, e.traceparent])?;
    }
    Ok(())
}

#[async_trait]
impl ConversationStore for EmbeddedStore {
    async fn create(
        &self,
        new: &NewConversation,
        outbox: &[OutboxEvent],
    ) -> Result<Created, StoreError> {
        let new = new.clone();
        let outbox = outbox.to_vec();
        self.db
            .transaction(move |tx| {
                let c = &new.conversation;
                if let Some(key) = &new.direct_key {
                    let existing: Option<String> = tx
                        .query_row(
                            "SELECT conversation_id FROM direct_pairs WHERE pair = ?1",
                            [key],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(id) = existing {
                        return Ok(Created::ExistingDirect(ConversationId::trusted(id)));
                    }
                    // The pair is the primary key: the unique key that decides races (here the
                    // single connection already serialises them, so the lookup above wins).
                    tx.execute(
                        "INSERT INTO direct_pairs (pair, conversation_id) VALUES (?1, ?2)",
                        params![key, c.id.as_str()],
                    )?;
                }
                tx.execute(
                    &format!(
                        "INSERT INTO conversations ({CONV_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"
                    ),
                    params![
                        c.id.as_str(),
                        c.kind.as_str(),
                        c.title,
                        c.created_at.timestamp_millis(),
                        c.member_count as i64,
                        c.owner_count as i64,
                        c.version as i64,
                        c.last_activity_ms
                    ],
                )?;
                insert_members(tx, &new.members, c.last_activity_ms)?;
                insert_outbox(tx, &outbox)?;
                Ok(Created::Inserted)
            })
            .await
            .map_err(be)
    }

    async fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .run(move |c| {
                c.query_row(
                    &format!("SELECT {CONV_COLS} FROM conversations WHERE id = ?1"),
                    [id],
                    conversation_row,
                )
                .optional()
            })
            .await
            .map_err(be)
    }

    async fn conversations(&self, ids: &[ConversationId]) -> Result<Vec<Conversation>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
        self.db
            .run(move |c| {
                let sql = format!(
                    "SELECT {CONV_COLS} FROM conversations WHERE id IN ({})",
                    placeholders(ids.len())
                );
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map(params_from_iter(ids.iter()), conversation_row)?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(be)
    }

    async fn member(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        let (cid, uid) = (conversation.as_str().to_owned(), user.as_str().to_owned());
        self.db
            .run(move |c| {
                c.query_row(
                &format!(
                    "SELECT {MEMBER_COLS} FROM members WHERE conversation_id = ?1 AND user_id = ?2"
                ),
                [cid, uid],
                member_row,
            )
            .optional()
            })
            .await
            .map_err(be)
    }

    async fn members_among(
        &self,
        conversation: &ConversationId,
        users: &[UserId],
    ) -> Result<Vec<Member>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let cid = conversation.as_str().to_owned();
        let uids: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
        self.db.run(move |c| {
            let mut out = Vec::new();
            // SQLite limits bound parameters; 500 per query is far below every limit.
            for chunk in uids.chunks(500) {
                let sql = format!(
                    "SELECT {MEMBER_COLS} FROM members WHERE conversation_id = ? AND user_id IN ({})",
                    placeholders(chunk.len())
                );
                let mut stmt = c.prepare(&sql)?;
                let params = std::iter::once(cid.as_str()).chain(chunk.iter().map(String::as_str));
                let rows = stmt.query_map(params_from_iter(params), member_row)?;
                for r in rows {
                    out.push(r?);
                }
            }
            Ok(out)
        })
        .await
        .map_err(be)
    }

    async fn members_page(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>, StoreError> {
        let cid = conversation.as_str().to_owned();
        let after = after.map(|a| a.as_str().to_owned()).unwrap_or_default();
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {MEMBER_COLS} FROM members WHERE conversation_id = ?1 AND user_id > ?2 \
                     ORDER BY user_id LIMIT ?3"
                ))?;
                let rows = stmt.query_map(params![cid, after, limit as i64], member_row)?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(be)
    }

    async fn apply(&self, change: &Change, outbox: &[OutboxEvent]) -> Result<(), StoreError> {
        let cid = change
            .conversation_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .ok_or(StoreError::VersionConflict)?;
        let change = change.clone();
        let outbox = outbox.to_vec();
        let applied = self
            .db
            .transaction(move |tx| {
                let updated = tx.execute(
                    "UPDATE conversations SET version = ?1, member_count = ?2, owner_count = ?3, \
                     title = COALESCE(?4, title) WHERE id = ?5 AND version = ?6",
                    params![
                        change.new_version() as i64,
                        change.member_count as i64,
                        change.owner_count as i64,
                        change.title.as_ref().map(|t| t.as_str().to_owned()),
                        cid,
                        change.expected_version as i64
                    ],
                )?;
                if updated != 1 {
                    // Nothing written yet: the (empty) transaction commits harmlessly.
                    return Ok(false);
                }
                insert_members(tx, &change.add, change.activity_ms)?;
                for u in &change.remove {
                    tx.execute(
                        "DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2",
                        params![cid, u.as_str()],
                    )?;
                }
                for (u, role) in &change.set_roles {
                    tx.execute(
                        "UPDATE members SET role = ?1 WHERE conversation_id = ?2 AND user_id = ?3",
                        params![role.as_str(), cid, u.as_str()],
                    )?;
                }
                insert_outbox(tx, &outbox)?;
                Ok(true)
            })
            .await
            .map_err(be)?;
        if applied {
            Ok(())
        } else {
            Err(StoreError::VersionConflict)
        }
    }

    async fn memberships(
        &self,
        user: &UserId,
        after: Option<&ActivityCursor>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError> {
        let uid = user.as_str().to_owned();
        let (a_ms, a_id) = match after {
            Some(a) => (a.activity_ms, a.conversation_id.as_str().to_owned()),
            None => (i64::MAX, String::new()),
        };
        let has_after = after.is_some();
        self.db
            .run(move |c| {
                let sql = format!(
                    "SELECT {MEMBER_COLS} FROM members WHERE user_id = ?1 AND \
                 (?2 = 0 OR activity_ms < ?3 OR (activity_ms = ?3 AND conversation_id < ?4)) \
                 ORDER BY activity_ms DESC, conversation_id DESC LIMIT ?5"
                );
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map(
                    params![uid, has_after as i64, a_ms, a_id, limit as i64],
                    |r| {
                        Ok(Membership {
                            member: member_row(r)?,
                            activity_ms: r.get(4)?,
                        })
                    },
                )?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(be)
    }

    async fn conversation_ids_of(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError> {
        let uid = user.as_str().to_owned();
        self.db
            .run(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT conversation_id FROM members WHERE user_id = ?1")?;
                let rows = stmt.query_map([uid], |r| {
                    r.get::<_, String>(0).map(ConversationId::trusted)
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(be)
    }

    async fn record_activity(
        &self,
        event_id: &str,
        conversation: &ConversationId,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let (eid, cid) = (event_id.to_owned(), conversation.as_str().to_owned());
        self.db.transaction(move |tx| {
            if !mark_processed(tx, &eid)? {
                return Ok(false);
            }
            tx.execute(
                "UPDATE conversations SET last_activity_ms = ?1 WHERE id = ?2 AND last_activity_ms < ?1",
                params![at_ms, cid],
            )
            ?;
            tx.execute(
                "UPDATE members SET activity_ms = ?1 WHERE conversation_id = ?2 AND activity_ms < ?1",
                params![at_ms, cid],
            )
            ?;
            Ok(true)
        })
        .await
        .map_err(be)
    }

    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        self.db
            .run(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, routing_key, delivery_keys, body, traceparent FROM outbox \
                     ORDER BY seq LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit as i64], |r| {
                    let keys: String = r.get(2)?;
                    Ok(OutboxEvent {
                        id: r.get(0)?,
                        routing_key: r.get(1)?,
                        delivery_keys: serde_json::from_str(&keys).unwrap_or_default(),
                        body: r.get(3)?,
                        traceparent: r.get(4)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(be)
    }

    async fn delete_outbox(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.db
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
                for id in &ids {
                    stmt.execute([id])?;
                }
                Ok(())
            })
            .await
            .map_err(be)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await
            .map_err(be)
    }
}

fn mark_processed(tx: &Transaction<'_>, event_id: &str) -> rusqlite::Result<bool> {
    let now = chrono::Utc::now().timestamp_millis();
    let n = tx.execute(
        "INSERT OR IGNORE INTO processed_events (id, at_ms) VALUES (?1, ?2)",
        params![event_id, now],
    )?;
    // An indexed range delete; usually nothing is old enough.
    tx.execute(
        "DELETE FROM processed_events WHERE at_ms < ?1",
        [now - PROCESSED_RETENTION_MS],
    )?;
    Ok(n == 1)
}

fn upsert_user(tx: &Transaction<'_>, u: &KnownUser) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO known_users (id, username) VALUES (?1, ?2) \
         ON CONFLICT(id) DO UPDATE SET username = COALESCE(excluded.username, username)",
        params![u.id.as_str(), u.username],
    )?;
    Ok(())
}

#[async_trait]
impl UserReplica for EmbeddedStore {
    async fn known(&self, ids: &[UserId]) -> Result<HashSet<UserId>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|u| u.as_str().to_owned()).collect();
        self.db
            .run(move |c| {
                let mut out = HashSet::new();
                for chunk in ids.chunks(500) {
                    let sql = format!(
                        "SELECT id FROM known_users WHERE id IN ({})",
                        placeholders(chunk.len())
                    );
                    let mut stmt = c.prepare(&sql)?;
                    let rows =
                        stmt.query_map(params_from_iter(chunk.iter()), |r| r.get::<_, String>(0))?;
                    for r in rows {
                        out.insert(UserId::trusted(r?));
                    }
                }
                Ok(out)
            })
            .await
            .map_err(be)
    }

    async fn remember(&self, users: &[KnownUser]) -> Result<(), StoreError> {
        let users = users.to_vec();
        self.db
            .transaction(move |tx| users.iter().try_for_each(|u| upsert_user(tx, u)))
            .await
            .map_err(be)
    }

    async fn record_registered(
        &self,
        event_id: &str,
        user: &KnownUser,
    ) -> Result<bool, StoreError> {
        let (eid, user) = (event_id.to_owned(), user.clone());
        self.db
            .transaction(move |tx| {
                if !mark_processed(tx, &eid)? {
                    return Ok(false);
                }
                upsert_user(tx, &user)?;
                Ok(true)
            })
            .await
            .map_err(be)
    }
}
