//! The embedded SQLite adapter (`minute all` without `DATABASE_URL`): one WAL-mode file,
//! one connection used from blocking threads. Every write that produces events inserts them
//! into the `outbox` table in the same transaction; seqs come from a counter row updated in
//! that transaction, so they are gap-free. Search uses an FTS5 table.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    EventsFor, MemberChange, MemberRecord, MembershipStore, MessageStore, NewMessage, OutboxEvent,
    OutboxItem, SendOutcome, StoreError,
};
use crate::domain::{MarkerKind, Markers, Message, Page, ReactionEntry, Role, SearchTerms};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS messages (
  id TEXT NOT NULL UNIQUE,
  conv TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sender TEXT NOT NULL,
  cmid TEXT,
  body TEXT,
  reply_to TEXT,
  created_at INTEGER NOT NULL,
  edited_at INTEGER,
  deleted_at INTEGER,
  reactions TEXT NOT NULL DEFAULT '[]',
  rev INTEGER NOT NULL DEFAULT 0,
  UNIQUE (conv, seq),
  UNIQUE (sender, cmid)
);
CREATE INDEX IF NOT EXISTS messages_own ON messages (conv, sender, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5 (body, tokenize = 'unicode61 remove_diacritics 0');
CREATE TABLE IF NOT EXISTS counters (conv TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
  conv TEXT NOT NULL,
  user TEXT NOT NULL,
  read_seq INTEGER NOT NULL DEFAULT 0,
  read_at INTEGER,
  delivered_seq INTEGER NOT NULL DEFAULT 0,
  delivered_at INTEGER,
  PRIMARY KEY (conv, user)
);
CREATE INDEX IF NOT EXISTS receipts_read ON receipts (conv, read_seq DESC);
CREATE INDEX IF NOT EXISTS receipts_delivered ON receipts (conv, delivered_seq DESC);
CREATE TABLE IF NOT EXISTS outbox (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  rk TEXT NOT NULL,
  dk TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
  conv TEXT NOT NULL,
  user TEXT NOT NULL,
  role TEXT,
  version INTEGER NOT NULL,
  PRIMARY KEY (conv, user)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user, conv);
";

const COLS: &str = "m.id, m.conv, m.seq, m.sender, m.cmid, m.body, m.reply_to, m.created_at, \
                    m.edited_at, m.deleted_at, m.reactions, m.rev";

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating the directory and schema) the file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Other(format!("sqlite task: {e}")))?
        .map_err(StoreError::from)
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(DateTime::from_timestamp_millis)
}

fn reactions_json(r: &[ReactionEntry]) -> String {
    let pairs: Vec<(&str, &str)> = r
        .iter()
        .map(|e| (e.emoji.as_str(), e.user_id.as_str()))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

fn message_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    let reactions: String = r.get(10)?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&reactions).unwrap_or_default();
    Ok(Message {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        seq: r.get(2)?,
        sender_id: r.get(3)?,
        client_message_id: r.get(4)?,
        body: r.get(5)?,
        reply_to_id: r.get(6)?,
        created_at: from_ms(r.get(7)?).unwrap_or_default(),
        edited_at: from_ms(r.get(8)?),
        deleted_at: from_ms(r.get(9)?),
        reactions: pairs
            .into_iter()
            .map(|(emoji, user_id)| ReactionEntry { emoji, user_id })
            .collect(),
        rev: r.get(11)?,
    })
}

fn markers_row(r: &Row<'_>) -> rusqlite::Result<(String, Markers)> {
    Ok((
        r.get(0)?,
        Markers {
            user_id: r.get(1)?,
            read_seq: r.get(2)?,
            read_at: from_ms(r.get(3)?),
            delivered_seq: r.get(4)?,
            delivered_at: from_ms(r.get(5)?),
        },
    ))
}

fn insert_outbox(tx: &rusqlite::Transaction<'_>, events: &[OutboxEvent]) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT INTO outbox (id, rk, dk, body) VALUES (?1, ?2, ?3, ?4)")?;
    for e in events {
        stmt.execute(params![e.id, e.routing_key, e.delivery_key, e.body])?;
    }
    Ok(())
}

fn by_client_id(
    tx: &rusqlite::Transaction<'_>,
    sender: &str,
    cmid: &str,
) -> rusqlite::Result<Option<Message>> {
    tx.query_row(
        &format!("SELECT {COLS} FROM messages m WHERE m.sender = ?1 AND m.cmid = ?2"),
        params![sender, cmid],
        message_row,
    )
    .optional()
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn create(
        &self,
        new: NewMessage,
        events: EventsFor<'_>,
    ) -> Result<SendOutcome, StoreError> {
        // `events` borrows from the caller, so this runs on the calling thread rather than a
        // blocking one; it holds the lock for one short transaction and never awaits.
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(m) = by_client_id(&tx, &new.sender_id, &new.client_message_id)? {
            return Ok(SendOutcome::Existing(m));
        }
        tx.execute(
            "INSERT OR IGNORE INTO counters (conv, seq) VALUES (?1, 0)",
            params![new.conversation_id],
        )?;
        let seq: i64 = tx.query_row(
            "UPDATE counters SET seq = seq + 1 WHERE conv = ?1 RETURNING seq",
            params![new.conversation_id],
            |r| r.get(0),
        )?;
        let m = Message {
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
        tx.execute(
            "INSERT INTO messages (id, conv, seq, sender, cmid, body, reply_to, created_at, reactions, rev) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '[]', 0)",
            params![
                m.id,
                m.conversation_id,
                m.seq,
                m.sender_id,
                m.client_message_id,
                m.body,
                m.reply_to_id,
                ms(m.created_at)
            ],
        )?;
        tx.execute(
            "INSERT INTO messages_fts (rowid, body) VALUES (?1, ?2)",
            params![tx.last_insert_rowid(), m.body],
        )?;
        insert_outbox(&tx, &events(&m))?;
        tx.commit()?;
        Ok(SendOutcome::Created(m))
    }

    async fn get(&self, ids: &[String]) -> Result<Vec<Message>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = json_list(ids);
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLS} FROM messages m WHERE m.id IN (SELECT value FROM json_each(?1))"
            ))?;
            s.query_map(params![list], message_row)?.collect()
        })
        .await
    }

    async fn replace(
        &self,
        before: &Message,
        after: &Message,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let (id, rev) = (before.id.clone(), before.rev);
        let after = after.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE messages SET body = ?1, edited_at = ?2, deleted_at = ?3, reactions = ?4, \
                 rev = rev + 1 WHERE id = ?5 AND rev = ?6",
                params![
                    after.body,
                    after.edited_at.map(ms),
                    after.deleted_at.map(ms),
                    reactions_json(&after.reactions),
                    id,
                    rev
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let rowid: i64 = tx.query_row(
                "SELECT rowid FROM messages WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM messages_fts WHERE rowid = ?1", params![rowid])?;
            if after.deleted_at.is_none() && after.body.is_some() {
                tx.execute(
                    "INSERT INTO messages_fts (rowid, body) VALUES (?1, ?2)",
                    params![rowid, after.body],
                )?;
            }
            insert_outbox(&tx, &events)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn history(
        &self,
        conversation_id: &str,
        page: Page,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let conv = conversation_id.to_owned();
        let limit = page.limit();
        let (cond, order, lo, hi) = match page {
            Page::Latest(_) => ("1", "DESC", 0, 0),
            Page::Before(b, _) => ("m.seq < ?3", "DESC", 0, b),
            Page::After(a, _) => ("m.seq > ?2", "ASC", a, 0),
            Page::Between(a, b, _) => ("m.seq > ?2 AND m.seq < ?3", "ASC", a, b),
        };
        let sql = format!(
            "SELECT {COLS} FROM messages m WHERE m.conv = ?1 AND {cond} \
             ORDER BY m.seq {order} LIMIT ?4"
        );
        let mut out: Vec<Message> = self
            .run(move |c| {
                let mut s = c.prepare_cached(&sql)?;
                s.query_map(params![conv, lo, hi, limit + 1], message_row)?
                    .collect()
            })
            .await?;
        let more = out.len() as i64 > limit;
        out.truncate(usize::try_from(limit).unwrap_or(0));
        if order == "DESC" {
            out.reverse();
        }
        Ok((out, more))
    }

    async fn at_seqs(&self, positions: &[(String, i64)]) -> Result<Vec<Message>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(positions).unwrap_or_else(|_| "[]".into());
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLS} FROM json_each(?1) j JOIN messages m \
                 ON m.conv = json_extract(j.value, '$[0]') AND m.seq = json_extract(j.value, '$[1]')"
            ))?;
            s.query_map(params![list], message_row)?.collect()
        })
        .await
    }

    async fn last_seqs(
        &self,
        conversations: &[String],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let list = json_list(conversations);
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT conv, seq FROM counters WHERE conv IN (SELECT value FROM json_each(?1))",
            )?;
            s.query_map(params![list], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    async fn own_after(
        &self,
        user: &str,
        from: &[(String, i64)],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let list = serde_json::to_string(from).unwrap_or_else(|_| "[]".into());
        let user = user.to_owned();
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT json_extract(j.value, '$[0]') AS cv, \
                 (SELECT COUNT(*) FROM messages m WHERE m.conv = json_extract(j.value, '$[0]') \
                  AND m.sender = ?2 AND m.seq > json_extract(j.value, '$[1]')) \
                 FROM json_each(?1) j",
            )?;
            s.query_map(params![list, user], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
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
        let list = json_list(conversations);
        let query = terms
            .words()
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ");
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {COLS} FROM messages_fts f JOIN messages m ON m.rowid = f.rowid \
                 WHERE messages_fts MATCH ?1 AND m.deleted_at IS NULL \
                 AND m.conv IN (SELECT value FROM json_each(?2)) ORDER BY m.id DESC LIMIT ?3"
            ))?;
            s.query_map(params![query, list, limit], message_row)?
                .collect()
        })
        .await
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
        let (conv, user) = (conversation_id.to_owned(), user.to_owned());
        let sql = match kind {
            MarkerKind::Read => {
                "UPDATE receipts SET read_seq = ?3, read_at = ?4 WHERE conv = ?1 AND user = ?2 AND read_seq < ?3"
            }
            MarkerKind::Delivered => {
                "UPDATE receipts SET delivered_seq = ?3, delivered_at = ?4 WHERE conv = ?1 AND user = ?2 AND delivered_seq < ?3"
            }
        };
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO receipts (conv, user) VALUES (?1, ?2)",
                params![conv, user],
            )?;
            let n = tx.execute(sql, params![conv, user, seq, ms(at)])?;
            if n == 1 {
                insert_outbox(&tx, std::slice::from_ref(&event))?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn markers_of(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, Markers>, StoreError> {
        let list = json_list(conversations);
        let user = user.to_owned();
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT conv, user, read_seq, read_at, delivered_seq, delivered_at FROM receipts \
                 WHERE user = ?2 AND conv IN (SELECT value FROM json_each(?1))",
            )?;
            s.query_map(params![list, user], markers_row)?.collect()
        })
        .await
    }

    async fn top_markers(
        &self,
        conversation_id: &str,
        kind: MarkerKind,
        limit: i64,
    ) -> Result<Vec<Markers>, StoreError> {
        let conv = conversation_id.to_owned();
        let col = match kind {
            MarkerKind::Read => "read_seq",
            MarkerKind::Delivered => "delivered_seq",
        };
        self.run(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT conv, user, read_seq, read_at, delivered_seq, delivered_at FROM receipts \
                 WHERE conv = ?1 AND {col} > 0 ORDER BY {col} DESC LIMIT ?2"
            ))?;
            s.query_map(params![conv, limit], |r| markers_row(r).map(|(_, m)| m))?
                .collect()
        })
        .await
    }

    async fn pending(&self, limit: i64) -> Result<Vec<OutboxItem>, StoreError> {
        self.run(move |c| {
            let mut s =
                c.prepare_cached("SELECT n, id, rk, dk, body FROM outbox ORDER BY n LIMIT ?1")?;
            s.query_map(params![limit], |r| {
                Ok(OutboxItem {
                    source: r.get::<_, i64>(0)?.to_string(),
                    rev: 0,
                    events: vec![OutboxEvent {
                        id: r.get(1)?,
                        routing_key: r.get(2)?,
                        delivery_key: r.get(3)?,
                        body: r.get(4)?,
                    }],
                })
            })?
            .collect()
        })
        .await
    }

    async fn mark_sent(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let n: i64 = item
            .source
            .parse()
            .map_err(|_| StoreError::Other(format!("bad outbox source {}", item.source)))?;
        self.run(move |c| {
            c.execute("DELETE FROM outbox WHERE n = ?1", params![n])
                .map(|_| ())
        })
        .await
    }

    async fn mark_sent_many(&self, items: &[OutboxItem]) -> Result<(), StoreError> {
        let ns = items
            .iter()
            .map(|item| {
                item.source
                    .parse::<i64>()
                    .map_err(|_| StoreError::Other(format!("bad outbox source {}", item.source)))
            })
            .collect::<Result<Vec<i64>, _>>()?;
        // One transaction: one commit for the whole batch.
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM outbox WHERE n = ?1")?;
                for n in ns {
                    delete.execute(params![n])?;
                }
            }
            tx.commit()
        })
        .await
    }
}

#[async_trait]
impl MembershipStore for SqliteStore {
    async fn apply(&self, change: &MemberChange) -> Result<bool, StoreError> {
        let ch = change.clone();
        let version = i64::try_from(ch.version).unwrap_or(i64::MAX);
        self.run(move |c| {
            let n = c.execute(
                "INSERT INTO members (conv, user, role, version) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (conv, user) DO UPDATE SET role = excluded.role, version = excluded.version \
                 WHERE excluded.version > members.version",
                params![ch.conversation_id, ch.user_id, ch.role.map(Role::as_str), version],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn member(
        &self,
        conversation_id: &str,
        user: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let (conv, user) = (conversation_id.to_owned(), user.to_owned());
        self.run(move |c| {
            c.query_row(
                "SELECT role, version FROM members WHERE conv = ?1 AND user = ?2",
                params![conv, user],
                member_row,
            )
            .optional()
        })
        .await
    }

    async fn memberships(
        &self,
        user: &str,
        conversations: &[String],
    ) -> Result<HashMap<String, MemberRecord>, StoreError> {
        let list = json_list(conversations);
        let user = user.to_owned();
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT role, version, conv FROM members WHERE user = ?2 \
                 AND conv IN (SELECT value FROM json_each(?1))",
            )?;
            s.query_map(params![list, user], |r| Ok((r.get(2)?, member_row(r)?)))?
                .collect()
        })
        .await
    }

    async fn knows_conversation(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let conv = conversation_id.to_owned();
        self.run(move |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM members WHERE conv = ?1)",
                params![conv],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn conversations_of(&self, user: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        let user = user.to_owned();
        self.run(move |c| {
            let mut s = c.prepare_cached(
                "SELECT conv FROM members WHERE user = ?1 AND role IS NOT NULL LIMIT ?2",
            )?;
            s.query_map(params![user, limit], |r| r.get(0))?.collect()
        })
        .await
    }
}

fn member_row(r: &Row<'_>) -> rusqlite::Result<MemberRecord> {
    let role: Option<String> = r.get(0)?;
    let version: i64 = r.get(1)?;
    Ok(MemberRecord {
        role: role.as_deref().and_then(Role::parse),
        version: u64::try_from(version).unwrap_or(0),
    })
}
