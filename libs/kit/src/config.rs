//! Typed settings from the environment, read once at start (twelve-factor). Only the
//! `config.rs` of each service and this module touch the environment.
//!
//! `.env` in the working directory is read first when present; real environment variables
//! win over it.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A bad or missing configuration value. Its message names the variable and what is
/// expected, never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub var: String,
    /// What it must be.
    pub expected: String,
    /// What was found (`None`: unset or a secret).
    pub found: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.found {
            Some(v) => write!(f, "{} must be {} (found {v:?})", self.var, self.expected),
            None => write!(f, "{} must be {}", self.var, self.expected),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A snapshot of the environment: process variables over `.env`.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads `.env` (if present) and the process environment.
    pub fn load() -> Self {
        let mut vars = HashMap::new();
        if let Ok(iter) = dotenvy::dotenv_iter() {
            for (k, v) in iter.flatten() {
                vars.insert(k, v);
            }
        }
        vars.extend(std::env::vars());
        Self { vars }
    }

    /// An environment made of these pairs only (tests, embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets one variable (used by `minute all` to derive per-role settings).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_owned(), value.into());
    }

    /// The raw value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Parses an optional value.
    pub fn optional<T: FromStr>(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw.trim().parse().map(Some).map_err(|_| ConfigError {
                var: name.into(),
                expected: expected.into(),
                found: Some(raw.into()),
            }),
        }
    }

    /// Parses a value with a default.
    pub fn or<T: FromStr>(&self, name: &str, default: T, expected: &str) -> Result<T, ConfigError> {
        Ok(self.optional(name, expected)?.unwrap_or(default))
    }

    /// Parses a required value.
    pub fn required<T: FromStr>(&self, name: &str, expected: &str) -> Result<T, ConfigError> {
        self.optional(name, expected)?.ok_or_else(|| ConfigError {
            var: name.into(),
            expected: expected.into(),
            found: None,
        })
    }

    /// A duration in seconds with a default.
    pub fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        self.or(name, default, "a whole number of seconds")
            .map(Duration::from_secs)
    }

    /// A boolean (`true/false/1/0/yes/no`) with a default.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError {
                var: name.into(),
                expected: "true or false".into(),
                found: Some(v),
            }),
        }
    }

    /// A URL with one of `schemes`.
    pub fn url(&self, name: &str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => {
                let ok = schemes
                    .iter()
                    .any(|s| raw.starts_with(&format!("{s}://")) && raw.len() > s.len() + 3);
                if ok {
                    Ok(Some(raw.trim().to_owned()))
                } else {
                    Err(ConfigError {
                        var: name.into(),
                        expected: format!("a URL starting with {}", schemes.join("://, ") + "://"),
                        found: Some(redact_url(raw)),
                    })
                }
            }
        }
    }
}

/// Hides the password of a URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Output format of logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

/// JWT settings shared by the issuer (auth) and every verifier.
#[derive(Clone)]
pub struct JwtSettings {
    /// HS256 signing and verification key.
    pub secret: Vec<u8>,
    /// Previous key, accepted for verification only (rotation).
    pub previous_secret: Option<Vec<u8>>,
    /// `iss` claim.
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish()
    }
}

/// Minimum length of `JWT_SECRET`.
pub const MIN_SECRET_BYTES: usize = 32;

impl JwtSettings {
    /// Reads `JWT_SECRET` (>= 32 bytes), `JWT_SECRET_PREVIOUS`, `JWT_ISSUER`, `JWT_AUDIENCE`,
    /// `ACCESS_TOKEN_TTL_SECS`. `fallback_secret` is used when `JWT_SECRET` is unset (dev mode).
    pub fn from_env(env: &Env, fallback_secret: Option<Vec<u8>>) -> Result<Self, ConfigError> {
        let secret = match (env.get("JWT_SECRET"), fallback_secret) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(f)) => f,
            (None, None) => {
                return Err(ConfigError {
                    var: "JWT_SECRET".into(),
                    expected: format!("set, at least {MIN_SECRET_BYTES} bytes"),
                    found: None,
                });
            }
        };
        let check = |name: &str, s: &[u8]| {
            if s.len() < MIN_SECRET_BYTES {
                Err(ConfigError {
                    var: name.into(),
                    expected: format!("at least {MIN_SECRET_BYTES} bytes"),
                    found: None,
                })
            } else {
                Ok(())
            }
        };
        check("JWT_SECRET", &secret)?;
        let previous_secret = env
            .get("JWT_SECRET_PREVIOUS")
            .map(|s| s.as_bytes().to_vec());
        if let Some(p) = &previous_secret {
            check("JWT_SECRET_PREVIOUS", p)?;
        }
        let access_ttl = env.seconds("ACCESS_TOKEN_TTL_SECS", 900)?;
        if access_ttl.is_zero() {
            return Err(ConfigError {
                var: "ACCESS_TOKEN_TTL_SECS".into(),
                expected: "a positive number of seconds".into(),
                found: Some("0".into()),
            });
        }
        Ok(Self {
            secret,
            previous_secret,
            issuer: env.get("JWT_ISSUER").unwrap_or("minute").to_owned(),
            audience: env.get("JWT_AUDIENCE").unwrap_or("minute").to_owned(),
            access_ttl,
        })
    }
}

/// Settings every role reads.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    /// `PORT` (default given by the role).
    pub port: u16,
    /// `HOST` to bind (default 0.0.0.0).
    pub host: String,
    /// `LOG_LEVEL`, a tracing filter (default `info`).
    pub log_level: String,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `DATABASE_URL` (`mongodb://...`).
    pub database_url: Option<String>,
    /// `AMQP_URL`.
    pub amqp_url: Option<String>,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otel_endpoint: Option<String>,
    /// `REPLICA_ID` (default: host name + random suffix).
    pub replica_id: String,
}

impl CommonSettings {
    /// Reads the common variables; `default_port` applies when `PORT` is unset.
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        let log_level = env.get("LOG_LEVEL").unwrap_or("info").to_owned();
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError {
                var: "LOG_LEVEL".into(),
                expected: "a tracing filter such as info, debug or minute=debug,info".into(),
                found: Some(log_level),
            });
        }
        let log_format = match env.get("LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError {
                    var: "LOG_FORMAT".into(),
                    expected: "text or json".into(),
                    found: Some(other.into()),
                });
            }
        };
        let replica_id = env.get("REPLICA_ID").map(str::to_owned).unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "minute".into());
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}-{}", &suffix[..8])
        });
        Ok(Self {
            port: env.or("PORT", default_port, "a TCP port number (0-65535)")?,
            host: env.get("HOST").unwrap_or("0.0.0.0").to_owned(),
            log_level,
            log_format,
            database_url: env.url("DATABASE_URL", &["mongodb", "mongodb+srv"])?,
            amqp_url: env.url("AMQP_URL", &["amqp", "amqps"])?,
            redis_url: env.url("REDIS_URL", &["redis", "rediss"])?,
            otel_endpoint: env.url("OTEL_EXPORTER_OTLP_ENDPOINT", &["http", "https"])?,
            replica_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_variable() {
        let env = Env::from_pairs([("PORT", "eighty"), ("LOG_LEVEL", "info")]);
        let e = CommonSettings::from_env(&env, 8080).unwrap_err();
        assert_eq!(e.var, "PORT");
        assert!(e.to_string().contains("PORT must be a TCP port number"));

        let env = Env::from_pairs([("DATABASE_URL", "postgres://x")]);
        assert_eq!(
            CommonSettings::from_env(&env, 1).unwrap_err().var,
            "DATABASE_URL"
        );

        let env = Env::from_pairs([("LOG_LEVEL", "[[[")]);
        assert_eq!(
            CommonSettings::from_env(&env, 1).unwrap_err().var,
            "LOG_LEVEL"
        );

        let env = Env::from_pairs([("LOG_FORMAT", "xml")]);
        assert_eq!(
            CommonSettings::from_env(&env, 1).unwrap_err().var,
            "LOG_FORMAT"
        );
    }

    #[test]
    fn defaults_apply() {
        let s = CommonSettings::from_env(&Env::default(), 8080).expect("defaults");
        assert_eq!(s.port, 8080);
        assert_eq!(s.log_level, "info");
        assert!(s.database_url.is_none());
    }

    #[test]
    fn jwt_secret_rules_and_no_leak() {
        let env = Env::from_pairs([("JWT_SECRET", "short-secret")]);
        let e = JwtSettings::from_env(&env, None).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET");
        assert!(
            !e.to_string().contains("short-secret"),
            "never print the secret"
        );
        assert_eq!(
            JwtSettings::from_env(&Env::default(), None)
                .unwrap_err()
                .var,
            "JWT_SECRET"
        );
        let ok = JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", "x".repeat(32))]), None)
            .expect("32 bytes is enough");
        assert_eq!(ok.access_ttl, Duration::from_secs(900));
        assert!(!format!("{ok:?}").contains("xxxx"));
    }

    #[test]
    fn urls_are_redacted_in_errors() {
        let env = Env::from_pairs([("AMQP_URL", "http://user:hunter2@host")]);
        let e = env.url("AMQP_URL", &["amqp"]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
