//! The conversations service's settings, read once at start (the only module that reads
//! the environment).

use std::time::Duration;

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute conversations`.
pub const DEFAULT_PORT: u16 = 8084;

/// Default upper bound of a group's members (`CONVERSATIONS_MAX_GROUP_MEMBERS`).
pub const DEFAULT_MAX_GROUP_MEMBERS: usize = 10_000;

pub use minute_kit::storage::Storage;

/// Settings of the conversations service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
    /// The store.
    pub storage: Storage,
    /// `USERS_URL`: the users service, asked when the local users replica does not know an
    /// id yet (read-your-writes). `None`: the replica is the only source.
    pub users_url: Option<String>,
    /// `CONVERSATIONS_MAX_GROUP_MEMBERS` (default 10,000), owner included.
    pub max_group_members: usize,
    /// `CONVERSATIONS_OUTBOX_INTERVAL_MS` (default 1,000): how often the outbox relay looks
    /// for unsent events besides being woken after each write.
    pub outbox_interval: Duration,
    /// `CONVERSATIONS_QUEUE_EXPIRES_SECS`: delete the consumers' queues after this long
    /// unused. Unset (production): never. Tests set it, since each test's bus namespace
    /// leaves its own durable queues behind on the shared broker.
    pub queue_expires: Option<Duration>,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let storage = Storage::from_env(env, "conversations")?;
        let max_group_members: usize = env.or(
            "CONVERSATIONS_MAX_GROUP_MEMBERS",
            DEFAULT_MAX_GROUP_MEMBERS,
            "a number of members >= 2",
        )?;
        if max_group_members < 2 {
            return Err(ConfigError {
                var: "CONVERSATIONS_MAX_GROUP_MEMBERS".into(),
                expected: "a number of members >= 2".into(),
                found: Some(max_group_members.to_string()),
            });
        }
        let interval_ms: u64 = env.or(
            "CONVERSATIONS_OUTBOX_INTERVAL_MS",
            1_000,
            "a number of milliseconds",
        )?;
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            storage,
            users_url: env
                .url("USERS_URL", &["http", "https"])?
                .map(|u| u.trim_end_matches('/').to_owned()),
            max_group_members,
            outbox_interval: Duration::from_millis(interval_ms.max(10)),
            queue_expires: env
                .optional::<u64>(
                    "CONVERSATIONS_QUEUE_EXPIRES_SECS",
                    "a whole number of seconds",
                )?
                .map(Duration::from_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let s = Settings::from_env(&Env::from_pairs([("MINUTE_DATA_DIR", "/tmp/x")])).unwrap();
        assert_eq!(s.max_group_members, DEFAULT_MAX_GROUP_MEMBERS);
        assert!(
            matches!(s.storage, Storage::Embedded(ref p) if p.ends_with("conversations.sqlite3"))
        );
        assert!(s.users_url.is_none());
        let e = Settings::from_env(&Env::from_pairs([("CONVERSATIONS_MAX_GROUP_MEMBERS", "1")]))
            .unwrap_err();
        assert_eq!(e.var, "CONVERSATIONS_MAX_GROUP_MEMBERS");
        let e = Settings::from_env(&Env::from_pairs([("USERS_URL", "ftp://x")])).unwrap_err();
        assert_eq!(e.var, "USERS_URL");
    }
}
