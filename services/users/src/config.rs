//! The users service's settings, read once at start.

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute users`.
pub const DEFAULT_PORT: u16 = 8083;

/// Settings of the users service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
        })
    }
}
