//! The membership replica in an embedded SQLite file (WAL), for `minute all` without MongoDB.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::membership::MembershipChange;
use crate::store::{MAX_CONVERSATIONS_PER_USER, MembershipStore, StoreError};

/// SQLite adapter. Queries are tiny, so they run on the blocking pool one at a time.
#[derive(Clone)]
pub struct SqliteMemberships {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS memberships (
    conversation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    member INTEGER NOT NULL,
    direct INTEGER,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user ON memberships (user_id, member);
";

impl SqliteMemberships {
    /// Opens (creating the directory and file) `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(StoreError::from_display)?;
        }
        let conn = Connection::open(path).map_err(StoreError::from_display)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::from_display)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::from_display)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::from_display)?;
        conn.execute_batch(SCHEMA)
            .map_err(StoreError::from_display)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(StoreError::from_display)?
        .map_err(StoreError::from_display)
    }
}

#[async_trait]
impl MembershipStore for SqliteMemberships {
    async fn apply(&self, change: &MembershipChange) -> Result<(), StoreError> {
        let change = change.clone();
        self.with(move |c| {
            let tx = c.transaction()?;
            let version = i64::try_from(change.version).unwrap_or(i64::MAX);
            for m in &change.members {
                tx.execute(
                    "INSERT INTO memberships (conversation_id, user_id, version, member, direct)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (conversation_id, user_id) DO UPDATE SET
                       version = excluded.version,
                       member = excluded.member,
                       direct = COALESCE(excluded.direct, memberships.direct)
                     WHERE excluded.version > memberships.version",
                    params![change.conversation_id, m.user_id, version, m.member, change.direct],
                )?;
            }
            if let Some(direct) = change.direct {
                // Rows created by a removal before the conversation's kind was known.
                tx.execute(
                    "UPDATE memberships SET direct = ?2 WHERE conversation_id = ?1 AND direct IS NULL",
                    params![change.conversation_id, direct],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn conversations_of(&self, user_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let user = user_id.to_owned();
        self.with(move |c| {
            let known: Option<i64> = c
                .query_row(
                    "SELECT 1 FROM memberships WHERE user_id = ?1 LIMIT 1",
                    params![user],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() {
                return Ok(None);
            }
            let mut st = c.prepare(
                "SELECT conversation_id FROM memberships WHERE user_id = ?1 AND member = 1 LIMIT ?2",
            )?;
            let rows = st.query_map(params![user, MAX_CONVERSATIONS_PER_USER], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>().map(Some)
        })
        .await
    }

    async fn direct_peers(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let user = user_id.to_owned();
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT DISTINCT p.user_id FROM memberships m
                 JOIN memberships p ON p.conversation_id = m.conversation_id
                 WHERE m.user_id = ?1 AND m.member = 1 AND m.direct = 1
                   AND p.member = 1 AND p.user_id <> ?1
                 LIMIT ?2",
            )?;
            let rows = st.query_map(params![user, MAX_CONVERSATIONS_PER_USER], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}
