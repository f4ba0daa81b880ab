//! The users service's settings, read once at start. The only module that reads the
//! environment.

use std::time::Duration;

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute users`.
pub const DEFAULT_PORT: u16 = 8083;

pub use minute_kit::storage::Storage;

/// Settings of the users service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
    /// The store.
    pub storage: Storage,
    /// How often the outbox relay looks for unsent events when nothing woke it
    /// (`USERS_OUTBOX_INTERVAL_MS`, default 1000).
    pub outbox_interval: Duration,
    /// Idle expiry of the consumer queue. `None` in production (the queue is durable);
    /// tests set it so their uniquely named queues do not pile up in the broker.
    pub queue_expiry: Option<Duration>,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let storage = Storage::from_env(env, "users")?;
        let interval_ms: u64 = env.or(
            "USERS_OUTBOX_INTERVAL_MS",
            1000,
            "a positive number of milliseconds",
        )?;
        if interval_ms == 0 {
            return Err(ConfigError {
                var: "USERS_OUTBOX_INTERVAL_MS".into(),
                expected: "a positive number of milliseconds".into(),
                found: Some("0".into()),
            });
        }
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            storage,
            outbox_interval: Duration::from_millis(interval_ms),
            queue_expiry: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_follows_database_url() {
        let s = Settings::from_env(&Env::from_pairs([("MINUTE_DATA_DIR", "/tmp/x")])).unwrap();
        assert!(matches!(&s.storage, Storage::Embedded(path) if path.ends_with("users.sqlite3")));
        let s = Settings::from_env(&Env::from_pairs([(
            "USERS_DATABASE_URL",
            "mongodb://h:27017",
        )]))
        .unwrap();
        assert!(matches!(&s.storage, Storage::Mongo(m) if m.database == "minute_users"));
        let e =
            Settings::from_env(&Env::from_pairs([("USERS_OUTBOX_INTERVAL_MS", "0")])).unwrap_err();
        assert_eq!(e.var, "USERS_OUTBOX_INTERVAL_MS");
    }
}
