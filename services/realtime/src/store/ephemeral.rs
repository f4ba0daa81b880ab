//! Typing throttles and presence: short-lived state shared by every replica through Redis,
//! or kept in-process in `minute all` without Redis.
//!
//! Presence is counted per replica, not per socket: a replica says "user U is here until T"
//! when U's first socket opens and refreshes T with a heartbeat; the user is online while
//! any replica's entry for them is unexpired. A killed replica stops refreshing, so its
//! entries expire and the sweeper of any surviving replica announces those users offline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::store::StoreError;

/// Typing throttle window: at most one `TypingStarted` per user per conversation per 2 s.
pub const TYPING_THROTTLE: Duration = Duration::from_secs(2);
/// How long a typing indicator lasts.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

/// Short-lived shared state.
#[async_trait]
pub trait Ephemeral: Send + Sync {
    /// Records that `user` types in `conv`; true when a `TypingStarted` should go out
    /// (the first in its 2 s window).
    async fn typing(&self, conv: &str, user: &str) -> Result<bool, StoreError>;
    /// `user` is present on `replica` for `ttl`; true when they were offline everywhere before.
    async fn online(&self, user: &str, replica: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// `user` left `replica`; true when they are now offline everywhere.
    async fn offline(&self, user: &str, replica: &str) -> Result<bool, StoreError>;
    /// Refreshes `users`' presence on `replica`.
    async fn heartbeat(
        &self,
        users: &[String],
        replica: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Removes expired entries (of any replica) and returns the users now offline everywhere.
    async fn sweep(&self) -> Result<Vec<String>, StoreError>;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Redis keys under the infra prefix:
/// `typing:<conv>:<user>` (throttle, PX 2000), `typing-live:<conv>:<user>` (EX 5),
/// `presence:u:<user>` (ZSET replica -> expiry ms), `presence:all` (ZSET `<user>\n<replica>` -> expiry ms).
pub struct RedisEphemeral {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisEphemeral {
    /// Uses `conn` with key `prefix`.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }
    fn user_key(&self, user: &str) -> String {
        format!("{}presence:u:{user}", self.prefix)
    }
    fn all_key(&self) -> String {
        format!("{}presence:all", self.prefix)
    }
}

fn rerr(e: redis::RedisError) -> StoreError {
    StoreError::from_display(e)
}

#[async_trait]
impl Ephemeral for RedisEphemeral {
    async fn typing(&self, conv: &str, user: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let (first,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(format!("{}typing:{conv}:{user}", self.prefix))
            .arg(1)
            .arg("PX")
            .arg(ms(TYPING_THROTTLE))
            .arg("NX")
            .cmd("SET")
            .arg(format!("{}typing-live:{conv}:{user}", self.prefix))
            .arg(1)
            .arg("PX")
            .arg(ms(TYPING_TTL))
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(rerr)?;
        Ok(first.is_some())
    }

    async fn online(&self, user: &str, replica: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let now = now_ms();
        let until = now + ms(ttl);
        let (before,): (i64,) = redis::pipe()
            .atomic()
            .cmd("ZCOUNT")
            .arg(self.user_key(user))
            .arg(now)
            .arg("+inf")
            .cmd("ZADD")
            .arg(self.user_key(user))
            .arg(until)
            .arg(replica)
            .ignore()
            .cmd("ZADD")
            .arg(self.all_key())
            .arg(until)
            .arg(format!("{user}\n{replica}"))
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(rerr)?;
        Ok(before == 0)
    }

    async fn offline(&self, user: &str, replica: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let (_, _, left): (i64, i64, i64) = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(self.user_key(user))
            .arg(replica)
            .cmd("ZREM")
            .arg(self.all_key())
            .arg(format!("{user}\n{replica}"))
            .cmd("ZCOUNT")
            .arg(self.user_key(user))
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut c)
            .await
            .map_err(rerr)?;
        Ok(left == 0)
    }

    async fn heartbeat(
        &self,
        users: &[String],
        replica: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let until = now_ms() + ms(ttl);
        for chunk in users.chunks(500) {
            let mut p = redis::pipe();
            for u in chunk {
                p.cmd("ZADD")
                    .arg(self.user_key(u))
                    .arg(until)
                    .arg(replica)
                    .ignore();
                p.cmd("ZADD")
                    .arg(self.all_key())
                    .arg(until)
                    .arg(format!("{u}\n{replica}"))
                    .ignore();
            }
            let mut c = self.conn.clone();
            p.query_async::<()>(&mut c).await.map_err(rerr)?;
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let now = now_ms();
        let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.all_key())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(1000)
            .query_async(&mut c)
            .await
            .map_err(rerr)?;
        let mut offline = Vec::new();
        for entry in expired {
            let Some((user, replica)) = entry.split_once('\n') else {
                continue;
            };
            // Whoever removes the entry announces the user; other sweepers skip it.
            let removed: i64 = redis::cmd("ZREM")
                .arg(self.all_key())
                .arg(&entry)
                .query_async(&mut c)
                .await
                .map_err(rerr)?;
            if removed == 0 {
                continue;
            }
            let (_, left): (i64, i64) = redis::pipe()
                .cmd("ZREM")
                .arg(self.user_key(user))
                .arg(replica)
                .cmd("ZCOUNT")
                .arg(self.user_key(user))
                .arg(now)
                .arg("+inf")
                .query_async(&mut c)
                .await
                .map_err(rerr)?;
            if left == 0 {
                offline.push(user.to_owned());
            }
        }
        Ok(offline)
    }
}

/// In-process variant: one process is the only replica.
#[derive(Default)]
pub struct MemoryEphemeral {
    typing: Mutex<HashMap<(String, String), std::time::Instant>>,
    present: Mutex<HashMap<String, HashMap<String, std::time::Instant>>>,
}

#[async_trait]
impl Ephemeral for MemoryEphemeral {
    async fn typing(&self, conv: &str, user: &str) -> Result<bool, StoreError> {
        let now = std::time::Instant::now();
        let mut t = self.typing.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|_, until| *until > now);
        let key = (conv.to_owned(), user.to_owned());
        if t.contains_key(&key) {
            return Ok(false);
        }
        t.insert(key, now + TYPING_THROTTLE);
        Ok(true)
    }

    async fn online(&self, user: &str, replica: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = std::time::Instant::now();
        let mut p = self.present.lock().unwrap_or_else(|p| p.into_inner());
        let entry = p.entry(user.to_owned()).or_default();
        let before = entry.values().any(|u| *u > now);
        entry.insert(replica.to_owned(), now + ttl);
        Ok(!before)
    }

    async fn offline(&self, user: &str, replica: &str) -> Result<bool, StoreError> {
        let now = std::time::Instant::now();
        let mut p = self.present.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = p.get_mut(user) else {
            return Ok(true);
        };
        entry.remove(replica);
        let gone = !entry.values().any(|u| *u > now);
        if entry.is_empty() {
            p.remove(user);
        }
        Ok(gone)
    }

    async fn heartbeat(
        &self,
        users: &[String],
        replica: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let until = std::time::Instant::now() + ttl;
        let mut p = self.present.lock().unwrap_or_else(|p| p.into_inner());
        for u in users {
            p.entry(u.clone())
                .or_default()
                .insert(replica.to_owned(), until);
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<Vec<String>, StoreError> {
        let now = std::time::Instant::now();
        let mut p = self.present.lock().unwrap_or_else(|p| p.into_inner());
        let mut offline = Vec::new();
        p.retain(|user, replicas| {
            let had = !replicas.is_empty();
            replicas.retain(|_, until| *until > now);
            if had && replicas.is_empty() {
                offline.push(user.clone());
            }
            !replicas.is_empty()
        });
        Ok(offline)
    }
}
