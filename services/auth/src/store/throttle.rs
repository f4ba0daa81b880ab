//! Fixed-window attempt counters for login throttling. With Redis every replica shares
//! them (`<prefix>auth:throttle:<key>`, counted by one atomic script); without it (`minute
//! all` on a laptop) an in-process map does the same job for the one process there is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use super::StoreError;

/// A counted attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Attempts in the current window, this one included.
    pub count: u64,
    /// Seconds until the window ends.
    pub resets_in_secs: u64,
}

/// Attempt counters.
#[async_trait]
pub trait Throttle: Send + Sync + 'static {
    /// Counts an attempt against `key` in a window of `window` that starts with the
    /// first attempt.
    async fn hit(&self, key: &str, window: Duration) -> Result<Hit, StoreError>;
    /// Takes one attempt back (it succeeded, so it was not a failure).
    async fn forgive(&self, key: &str) -> Result<(), StoreError>;
}

/// Counters in Redis.
pub struct RedisThrottle {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisThrottle {
    /// Keys are prefixed with `prefix` (`minute:` in production, unique per test).
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}auth:throttle:{key}", self.prefix)
    }
}

// INCR and EXPIRE in one script so a crash between them cannot leave a counter that
// never expires (which would lock an account forever).
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

// DECR only an existing counter: after expiry it would create one without a TTL.
const FORGIVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

#[async_trait]
impl Throttle for RedisThrottle {
    async fn hit(&self, key: &str, window: Duration) -> Result<Hit, StoreError> {
        let mut conn = self.conn.clone();
        let (count, ttl): (i64, i64) = redis::cmd("EVAL")
            .arg(HIT)
            .arg(1)
            .arg(self.key(key))
            .arg(window.as_secs().max(1))
            .query_async(&mut conn)
            .await
            .map_err(StoreError::backend)?;
        Ok(Hit {
            count: u64::try_from(count).unwrap_or(0),
            resets_in_secs: u64::try_from(ttl).unwrap_or(1).max(1),
        })
    }

    async fn forgive(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("EVAL")
            .arg(FORGIVE)
            .arg(1)
            .arg(self.key(key))
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(StoreError::backend)
    }
}

/// Counters in this process.
#[derive(Default)]
pub struct MemoryThrottle {
    windows: Mutex<HashMap<String, (u64, Instant)>>,
}

/// Expired windows are swept once the map grows past this, keeping memory bounded by the
/// number of keys active within one window.
const SWEEP_AT: usize = 10_000;

#[async_trait]
impl Throttle for MemoryThrottle {
    async fn hit(&self, key: &str, window: Duration) -> Result<Hit, StoreError> {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, ends)| *ends > now);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        Ok(Hit {
            count: entry.0,
            resets_in_secs: entry.1.saturating_duration_since(now).as_secs().max(1),
        })
    }

    async fn forgive(&self, key: &str) -> Result<(), StoreError> {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_windows_count_forgive_and_reset() {
        let t = MemoryThrottle::default();
        let w = Duration::from_millis(200);
        assert_eq!(t.hit("a", w).await.expect("hit").count, 1);
        assert_eq!(t.hit("a", w).await.expect("hit").count, 2);
        assert_eq!(t.hit("b", w).await.expect("hit").count, 1, "keys are apart");
        t.forgive("a").await.expect("forgive");
        assert_eq!(t.hit("a", w).await.expect("hit").count, 2);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(t.hit("a", w).await.expect("hit").count, 1, "new window");
    }
}
