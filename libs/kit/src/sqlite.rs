//! Embedded storage for `minute all` without MongoDB: one SQLite file per service under
//! `MINUTE_DATA_DIR`, in WAL mode, behind one connection that is only used from the
//! blocking pool, so the runtime's worker threads never wait on the disk.
//!
//! Services keep their own schema and queries; this module owns only the mechanism every
//! embedded store shares (open, pragmas, hop to the blocking pool).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

/// What running a statement can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// SQLite refused or failed the statement.
    #[error("sqlite: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The blocking task did not complete (panicked or was cancelled).
    #[error("sqlite task: {0}")]
    Task(String),
}

/// A SQLite database file shared by one service's store. Cheap to clone.
#[derive(Clone)]
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
}

impl Sqlite {
    /// Opens (creating it and its directory) `path` in WAL mode and applies `schema`
    /// (`CREATE ... IF NOT EXISTS` statements, so opening is idempotent).
    pub fn open(path: &Path, schema: &str) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("MINUTE_DATA_DIR {} cannot be created: {e}", dir.display())
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL + NORMAL: a commit survives a process crash; only an OS crash may lose the
        // last transactions, which is the trade-off of the embedded mode.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(schema)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| SqliteError::Task(e.to_string()))?
        .map_err(SqliteError::from)
    }

    /// Runs `f` in one transaction on the blocking pool: committed when `f` returns `Ok`,
    /// rolled back otherwise.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(move |c| {
            let tx = c.transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_in_wal_mode_and_rolls_back_failed_transactions() {
        let dir = std::env::temp_dir().join(format!("kit-sqlite-{}", uuid::Uuid::new_v4()));
        let db = Sqlite::open(
            &dir.join("a").join("x.sqlite3"),
            "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);",
        )
        .expect("opens");
        let mode: String = db
            .run(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");
        let failed = db
            .transaction(|tx| {
                tx.execute("INSERT INTO t (k) VALUES ('a')", [])?;
                tx.execute("INSERT INTO t (k) VALUES ('a')", [])
            })
            .await;
        assert!(matches!(failed, Err(SqliteError::Sql(_))));
        let n: i64 = db
            .run(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("count");
        assert_eq!(n, 0, "the whole transaction rolled back");
        std::fs::remove_dir_all(dir).ok();
    }
}
