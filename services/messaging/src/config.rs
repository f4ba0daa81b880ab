//! The messaging service's settings, read once at start (the only place that reads the
//! environment).

use std::time::Duration;

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute messaging`.
pub const DEFAULT_PORT: u16 = 8085;

pub use minute_kit::storage::Storage;

/// Settings of the messaging service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
    /// Store choice.
    pub storage: Storage,
    /// Base URL of the conversations service (`CONVERSATIONS_URL`), asked when the
    /// membership replica does not know a member yet (read-your-writes).
    pub conversations_url: Option<String>,
    /// How often the outbox relay looks for unpublished events
    /// (`MESSAGING_RELAY_INTERVAL_MS`, default 1000).
    pub relay_interval: Duration,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let storage = Storage::from_env(env, "messaging")?;
        let conversations_url = env
            .url("CONVERSATIONS_URL", &["http", "https"])?
            .map(|u| u.trim_end_matches('/').to_owned());
        let interval_ms: u64 = env.or(
            "MESSAGING_RELAY_INTERVAL_MS",
            1000,
            "a number of milliseconds",
        )?;
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            storage,
            conversations_url,
            relay_interval: Duration::from_millis(interval_ms.max(10)),
        })
    }
}
