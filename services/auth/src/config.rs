//! The auth service's settings, read once at start.

use std::time::Duration;

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute auth`.
pub const DEFAULT_PORT: u16 = 8082;

pub use minute_kit::storage::Storage;

/// Login throttling (per fixed window, shared through Redis when configured).
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    /// `AUTH_LOGIN_FAILURES_PER_ACCOUNT` (default 100).
    pub account_failures: u64,
    /// `AUTH_LOGIN_FAILURES_PER_IP` (default 1000).
    pub ip_failures: u64,
    /// `AUTH_THROTTLE_WINDOW_SECS` (default 3600).
    pub window: Duration,
}

/// The password-hashing pool.
#[derive(Debug, Clone, Copy)]
pub struct HashingSettings {
    /// `AUTH_HASH_CONCURRENCY`: hashes computed at once (default: the number of cores).
    pub concurrency: usize,
    /// `AUTH_HASH_QUEUE`: hashes waiting or running before new ones are refused with
    /// `RATE_LIMITED` (default 256).
    pub max_queue: usize,
}

/// Settings of the auth service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
    /// Database.
    pub storage: Storage,
    /// `REFRESH_TOKEN_TTL_SECS` (default 30 days): lifetime of each refresh token.
    pub refresh_ttl: Duration,
    /// Login throttling.
    pub throttle: ThrottleSettings,
    /// Password hashing.
    pub hashing: HashingSettings,
    /// `AUTH_OUTBOX_INTERVAL_MS` (default 1000): how often the relay looks for unsent events.
    pub outbox_interval: Duration,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let storage = Storage::from_env(env, "auth")?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let refresh_ttl = env.seconds("REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?;
        positive("REFRESH_TOKEN_TTL_SECS", refresh_ttl.as_secs())?;
        let throttle = ThrottleSettings {
            account_failures: env.or(
                "AUTH_LOGIN_FAILURES_PER_ACCOUNT",
                100,
                "a positive number",
            )?,
            ip_failures: env.or("AUTH_LOGIN_FAILURES_PER_IP", 1000, "a positive number")?,
            window: env.seconds("AUTH_THROTTLE_WINDOW_SECS", 3600)?,
        };
        positive("AUTH_LOGIN_FAILURES_PER_ACCOUNT", throttle.account_failures)?;
        positive("AUTH_LOGIN_FAILURES_PER_IP", throttle.ip_failures)?;
        positive("AUTH_THROTTLE_WINDOW_SECS", throttle.window.as_secs())?;
        let hashing = HashingSettings {
            concurrency: env.or("AUTH_HASH_CONCURRENCY", cores, "a positive number")?,
            max_queue: env.or("AUTH_HASH_QUEUE", 256, "a positive number")?,
        };
        positive("AUTH_HASH_CONCURRENCY", hashing.concurrency as u64)?;
        positive("AUTH_HASH_QUEUE", hashing.max_queue as u64)?;
        let outbox_ms: u64 = env.or("AUTH_OUTBOX_INTERVAL_MS", 1000, "milliseconds")?;
        positive("AUTH_OUTBOX_INTERVAL_MS", outbox_ms)?;
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            storage,
            refresh_ttl,
            throttle,
            hashing,
            outbox_interval: Duration::from_millis(outbox_ms),
        })
    }
}

fn positive(var: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError {
            var: var.into(),
            expected: "a positive number".into(),
            found: Some("0".into()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_embedded_storage() {
        let s = Settings::from_env(&Env::from_pairs([("MINUTE_DATA_DIR", "/tmp/x")]))
            .expect("defaults");
        assert!(matches!(&s.storage, Storage::Embedded(path) if path.ends_with("auth.sqlite3")));
        assert_eq!(s.throttle.account_failures, 100);
        assert_eq!(s.throttle.window, Duration::from_secs(3600));
    }

    #[test]
    fn zero_limits_are_refused() {
        let e = Settings::from_env(&Env::from_pairs([("AUTH_LOGIN_FAILURES_PER_IP", "0")]))
            .unwrap_err();
        assert_eq!(e.var, "AUTH_LOGIN_FAILURES_PER_IP");
    }
}
