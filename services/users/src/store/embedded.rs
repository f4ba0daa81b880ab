//! The embedded adapter: SQLite (bundled, WAL) in one file, for `minute all` without
//! MongoDB, through `minute_kit::sqlite` (one connection, used from the blocking pool).

use std::path::Path;

use async_trait::async_trait;
use minute_kit::sqlite::Sqlite;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{OutboxEntry, Pending, StoreError, UserStore, merge_search};
use crate::domain::input::fold_case;
use crate::domain::{Profile, SearchQuery, UserId};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_lc TEXT NOT NULL,
    display_name TEXT NOT NULL,
    display_name_lc TEXT NOT NULL,
    avatar_url TEXT,
    bio TEXT,
    created_at TEXT NOT NULL,
    provisional INTEGER NOT NULL,
    registered_event TEXT,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS profiles_username_lc ON profiles (username_lc, id);
CREATE INDEX IF NOT EXISTS profiles_display_name_lc ON profiles (display_name_lc, id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body TEXT NOT NULL
);
";

const COLUMNS: &str = "id, username, display_name, avatar_url, bio, created_at, provisional, \
                       registered_event, version";

/// Profiles in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Sqlite,
}

impl SqliteStore {
    /// Opens (creating) the file and its directory, in WAL mode.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            db: Sqlite::open(path, SCHEMA)?,
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db.run(f).await.map_err(StoreError::from_display)
    }

    async fn tx<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.db
            .transaction(f)
            .await
            .map_err(StoreError::from_display)
    }
}

fn row_to_profile(r: &Row<'_>) -> rusqlite::Result<Profile> {
    let id: String = r.get(0)?;
    let created: String = r.get(5)?;
    let conv = |e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    };
    Ok(Profile {
        id: UserId::parse(&id).map_err(|e| conv(e.0))?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        avatar_url: r.get(3)?,
        bio: r.get(4)?,
        created_at: chrono::DateTime::parse_from_rfc3339(&created)
            .map_err(|e| conv(e.to_string()))?
            .with_timezone(&chrono::Utc),
        provisional: r.get(6)?,
        registered_event: r.get(7)?,
        version: r.get(8)?,
    })
}

fn query_profiles(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Profile>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row_to_profile)?;
    rows.collect()
}

/// A prefix range on one of the lower-cased columns, in that column's index order, so
/// SQLite walks the index and stops at the limit.
fn search_sql(column: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM profiles WHERE {column} >= ?1 AND {column} < ?2 \
         ORDER BY {column}, id LIMIT ?3"
    )
}

/// Columns in the order of [`profile_values`].
const PROFILE_FIELDS: &str = "id, username, username_lc, display_name, display_name_lc, \
                              avatar_url, bio, created_at, provisional, registered_event, version";

/// `?1..?11` of a profile row.
fn profile_values(p: &Profile) -> Vec<Value> {
    vec![
        Value::from(p.id.as_str().to_owned()),
        Value::from(p.username.clone()),
        Value::from(fold_case(&p.username)),
        Value::from(p.display_name.clone()),
        Value::from(fold_case(&p.display_name)),
        Value::from(p.avatar_url.clone()),
        Value::from(p.bio.clone()),
        Value::from(millis_rfc3339(&p.created_at)),
        Value::from(p.provisional),
        Value::from(p.registered_event.clone()),
        Value::from(p.version),
    ]
}

fn push_outbox(conn: &Connection, user: &Value, e: &OutboxEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO outbox (id, user_id, routing_key, body) VALUES (?1, ?2, ?3, ?4)",
        params![e.id, user, e.routing_key, e.body],
    )
    .map(|_| ())
}

fn millis_rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn get(&self, id: &UserId) -> Result<Option<Profile>, StoreError> {
        let id = id.as_str().to_owned();
        self.with(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM profiles WHERE id = ?1"))?
                .query_row([id], row_to_profile)
                .optional()
        })
        .await
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<Profile>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
        self.with(move |c| {
            let marks = vec!["?"; ids.len()].join(",");
            let sql = format!("SELECT {COLUMNS} FROM profiles WHERE id IN ({marks}) ORDER BY id");
            query_profiles(c, &sql, rusqlite::params_from_iter(ids.iter()))
        })
        .await
    }

    async fn search(&self, query: &SearchQuery, limit: usize) -> Result<Vec<Profile>, StoreError> {
        let (lo, hi) = (query.prefix().to_owned(), query.upper_bound());
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        let (by_username, by_name) = self
            .with(move |c| {
                let u = query_profiles(c, &search_sql("username_lc"), params![lo, hi, n])?;
                let d = query_profiles(c, &search_sql("display_name_lc"), params![lo, hi, n])?;
                Ok((u, d))
            })
            .await?;
        Ok(merge_search(by_username, by_name, limit))
    }

    async fn insert(&self, profile: &Profile, event: &OutboxEntry) -> Result<bool, StoreError> {
        let (values, e) = (profile_values(profile), event.clone());
        self.tx(move |tx| {
            let n = tx.execute(
                &format!(
                    "INSERT INTO profiles ({PROFILE_FIELDS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING"
                ),
                params_from_iter(&values),
            )?;
            if n == 1 {
                push_outbox(tx, &values[0], &e)?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn replace(&self, profile: &Profile, event: &OutboxEntry) -> Result<bool, StoreError> {
        let (mut values, e) = (profile_values(profile), event.clone());
        values.push(Value::Integer(profile.version - 1));
        self.tx(move |tx| {
            let n = tx.execute(
                "UPDATE profiles SET username = ?2, username_lc = ?3, display_name = ?4, \
                 display_name_lc = ?5, avatar_url = ?6, bio = ?7, created_at = ?8, provisional = ?9, \
                 registered_event = ?10, version = ?11 WHERE id = ?1 AND version = ?12",
                params_from_iter(&values),
            )?;
            if n == 1 {
                push_outbox(tx, &values[0], &e)?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_id, id, routing_key, body FROM outbox ORDER BY seq LIMIT ?1",
            )?;
            let rows = stmt.query_map([n], |r| {
                let user: String = r.get(0)?;
                Ok((user, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (user, id, routing_key, body): (String, String, String, String) = row?;
                if let Ok(user_id) = UserId::parse(&user) {
                    out.push(Pending {
                        user_id,
                        entry: OutboxEntry {
                            id,
                            routing_key,
                            body,
                        },
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn mark_sent(&self, _user_id: &UserId, event_id: &str) -> Result<(), StoreError> {
        let id = event_id.to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM outbox WHERE id = ?1", [id])
                .map(|_| ())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_walks_the_indexes() {
        let dir = std::env::temp_dir().join(format!("users-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("plan.sqlite3")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for (column, index) in [
            ("username_lc", "profiles_username_lc"),
            ("display_name_lc", "profiles_display_name_lc"),
        ] {
            let sql = format!("EXPLAIN QUERY PLAN {}", search_sql(column));
            let mut stmt = conn.prepare(&sql).unwrap();
            let plan: Vec<String> = stmt
                .query_map(params!["a", "a\u{10FFFF}", 20], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join(" | ");
            assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
        }
    }
}
