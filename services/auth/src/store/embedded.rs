//! The embedded SQLite adapter for all-in-one mode (`$MINUTE_DATA_DIR/auth.sqlite3`, WAL).
//! One connection behind a mutex, used from the blocking pool: auth's writes are few and
//! short, and SQLite serialises writers anyway. Times are stored as Unix milliseconds.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    Account, AuthStore, Counts, NewSession, RevocationEvent, RevokeScope, Rotation, SessionRef,
    StoreError,
};
use crate::events::OutboxEvent;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  username TEXT NOT NULL,
  device_name TEXT,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER,
  revoke_reason TEXT,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  hash TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  rotated_at INTEGER
);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_session ON refresh_tokens (session_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  routing_key TEXT NOT NULL,
  body TEXT NOT NULL,
  traceparent TEXT,
  created_at INTEGER NOT NULL
);
";

/// Auth's SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating the directory and tables) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(StoreError::backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(StoreError::backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StoreError::backend)?;
        conn.execute_batch(SCHEMA).map_err(StoreError::backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` in a transaction on the blocking pool.
    async fn with_tx<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction().map_err(sql)?;
            let value = f(&tx)?;
            tx.commit().map_err(sql)?;
            Ok(value)
        })
        .await
        .map_err(StoreError::backend)?
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Duplicate
        }
        _ => StoreError::backend(e),
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn insert_outbox(tx: &Transaction<'_>, e: &OutboxEvent) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO outbox (id, routing_key, body, traceparent, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![e.id, e.routing_key, e.body, e.traceparent, millis(e.created_at)],
    )
    .map_err(sql)?;
    Ok(())
}

/// [`RevokeScope`] owned, to cross into the blocking pool.
enum Scope {
    Session(String),
    All,
    AllExcept(String),
}

impl Scope {
    fn from(scope: RevokeScope<'_>) -> Self {
        match scope {
            RevokeScope::Session(s) => Self::Session(s.to_owned()),
            RevokeScope::All => Self::All,
            RevokeScope::AllExcept(s) => Self::AllExcept(s.to_owned()),
        }
    }

    fn borrowed(&self) -> RevokeScope<'_> {
        match self {
            Self::Session(s) => RevokeScope::Session(s),
            Self::All => RevokeScope::All,
            Self::AllExcept(s) => RevokeScope::AllExcept(s),
        }
    }
}

fn revoke_in(
    tx: &Transaction<'_>,
    user_id: &str,
    scope: RevokeScope<'_>,
    reason: &str,
    now: DateTime<Utc>,
    event: &RevocationEvent,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx
        .prepare("SELECT id FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL")
        .map_err(sql)?;
    let ids: Vec<String> = stmt
        .query_map(params![user_id], |r| r.get::<_, String>(0))
        .map_err(sql)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql)?
        .into_iter()
        .filter(|id| scope.includes(id))
        .collect();
    for id in &ids {
        tx.execute(
            "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3 WHERE id = ?1",
            params![id, millis(now), reason],
        )
        .map_err(sql)?;
    }
    if !ids.is_empty() {
        insert_outbox(tx, &event(&ids))?;
    }
    Ok(ids)
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: time(r.get(3)?),
    })
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn create_account(
        &self,
        account: &Account,
        event: &OutboxEvent,
    ) -> Result<(), StoreError> {
        let (a, e) = (account.clone(), event.clone());
        self.with_tx(move |tx| {
            tx.execute(
                "INSERT INTO accounts (id, username, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![a.id, a.username, a.password_hash, millis(a.created_at)],
            )
            .map_err(sql)?;
            insert_outbox(tx, &e)
        })
        .await
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let username = username.to_owned();
        self.with_tx(move |tx| {
            tx.query_row(
                "SELECT id, username, password_hash, created_at FROM accounts WHERE username = ?1",
                params![username],
                account_row,
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    async fn account_by_id(&self, user_id: &str) -> Result<Option<Account>, StoreError> {
        let user_id = user_id.to_owned();
        self.with_tx(move |tx| {
            tx.query_row(
                "SELECT id, username, password_hash, created_at FROM accounts WHERE id = ?1",
                params![user_id],
                account_row,
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError> {
        let s = session.clone();
        self.with_tx(move |tx| {
            tx.execute(
                "INSERT INTO sessions (id, user_id, username, device_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.id, s.user_id, s.username, s.device_name, millis(s.created_at), millis(s.expires_at)],
            )
            .map_err(sql)?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.token_hash, s.id, s.user_id, millis(s.created_at), millis(s.expires_at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let (old, new) = (old_hash.to_owned(), new_hash.to_owned());
        self.with_tx(move |tx| {
            let row = tx
                .query_row(
                    "SELECT t.session_id, s.user_id, s.username, s.revoked_at, t.rotated_at, t.expires_at
                     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = ?1",
                    params![old],
                    |r| {
                        Ok((
                            SessionRef {
                                session_id: r.get(0)?,
                                user_id: r.get(1)?,
                                username: r.get(2)?,
                            },
                            r.get::<_, Option<i64>>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, i64>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql)?;
            let Some((found, revoked_at, rotated_at, token_expires)) = row else {
                return Ok(Rotation::Invalid);
            };
            if revoked_at.is_some() {
                return Ok(Rotation::Invalid);
            }
            if rotated_at.is_some() {
                return Ok(Rotation::Reused(found));
            }
            if token_expires <= millis(now) {
                return Ok(Rotation::Invalid);
            }
            tx.execute(
                "UPDATE refresh_tokens SET rotated_at = ?2 WHERE hash = ?1 AND rotated_at IS NULL",
                params![old, millis(now)],
            )
            .map_err(sql)?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![new, found.session_id, found.user_id, millis(now), millis(expires_at)],
            )
            .map_err(sql)?;
            tx.execute(
                "UPDATE sessions SET expires_at = ?2 WHERE id = ?1",
                params![found.session_id, millis(expires_at)],
            )
            .map_err(sql)?;
            Ok(Rotation::Rotated(found))
        })
        .await
    }

    async fn revoke_sessions(
        &self,
        user_id: &str,
        scope: RevokeScope<'_>,
        reason: &str,
        now: DateTime<Utc>,
        event: RevocationEvent,
    ) -> Result<Vec<String>, StoreError> {
        let (user_id, reason, scope) = (user_id.to_owned(), reason.to_owned(), Scope::from(scope));
        self.with_tx(move |tx| revoke_in(tx, &user_id, scope.borrowed(), &reason, now, &event))
            .await
    }

    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: &str,
        now: DateTime<Utc>,
        event: RevocationEvent,
    ) -> Result<Vec<String>, StoreError> {
        let (user_id, hash, keep) = (
            user_id.to_owned(),
            password_hash.to_owned(),
            keep_session.to_owned(),
        );
        self.with_tx(move |tx| {
            tx.execute(
                "UPDATE accounts SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                params![user_id, hash, millis(now)],
            )
            .map_err(sql)?;
            let reason = crate::domain::service::reason::PASSWORD_CHANGED;
            let scope = RevokeScope::AllExcept(&keep);
            revoke_in(tx, &user_id, scope, reason, now, &event)
        })
        .await
    }

    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        self.with_tx(move |tx| {
            let mut stmt = tx
                .prepare("SELECT id, routing_key, body, traceparent, created_at FROM outbox ORDER BY seq LIMIT ?1")
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![limit], |r| {
                    Ok(OutboxEvent {
                        id: r.get(0)?,
                        routing_key: r.get(1)?,
                        body: r.get(2)?,
                        traceparent: r.get(3)?,
                        created_at: time(r.get(4)?),
                    })
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            Ok(rows)
        })
        .await
    }

    async fn mark_sent(&self, event_id: &str) -> Result<(), StoreError> {
        let id = event_id.to_owned();
        self.with_tx(move |tx| {
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])
                .map(|_| ())
                .map_err(sql)
        })
        .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with_tx(move |tx| {
            let tokens = tx
                .execute(
                    "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                    params![millis(now)],
                )
                .map_err(sql)?;
            let sessions = tx
                .execute(
                    "DELETE FROM sessions WHERE expires_at < ?1",
                    params![millis(now)],
                )
                .map_err(sql)?;
            Ok(u64::try_from(tokens + sessions).unwrap_or(0))
        })
        .await
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        self.with_tx(|tx| {
            let count = |table: &str| -> Result<u64, StoreError> {
                tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(sql)
            };
            Ok(Counts {
                accounts: count("accounts")?,
                sessions: count("sessions")?,
                refresh_tokens: count("refresh_tokens")?,
                outbox: count("outbox")?,
            })
        })
        .await
    }
}
