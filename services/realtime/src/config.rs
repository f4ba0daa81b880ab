//! The realtime service's settings, read once at start.

use std::time::Duration;

use minute_kit::config::{CommonSettings, ConfigError, Env};

/// Default port of `minute realtime`.
pub const DEFAULT_PORT: u16 = 8081;

pub use minute_kit::storage::Storage;

/// Per-socket and per-user limits (design.md §6).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `REALTIME_MAX_CONNECTIONS_PER_USER` (default 20), per replica.
    pub connections_per_user: usize,
    /// `REALTIME_OUTBOUND_QUEUE` (default 256 events): a socket whose queue is full is closed with 4050.
    pub outbound_queue: usize,
    /// Largest frame or message accepted (64 KiB).
    pub max_frame_bytes: usize,
    /// `REALTIME_INIT_TIMEOUT_SECS` (default 3).
    pub init_timeout: Duration,
    /// `REALTIME_PING_INTERVAL_MS` (default 25,000): WebSocket ping period; a peer that has not
    /// answered the previous ping by the next one is dropped.
    pub ping_interval: Duration,
    /// `REALTIME_MAX_FRAMES_PER_SEC` (default 50, burst twice that) from one client.
    pub frames_per_sec: u32,
    /// `REALTIME_READ_BUFFER_BYTES` (default 512 bytes): the WebSocket read buffer (tungstenite's
    /// default is 128 KiB per socket); it grows for a large frame and shrinks back.
    pub read_buffer: usize,
}

/// Presence timing.
#[derive(Debug, Clone)]
pub struct PresenceSettings {
    /// `REALTIME_PRESENCE_TTL_SECS` (default 45): a replica that stops heartbeating loses its
    /// users after this long (plus one sweep).
    pub ttl: Duration,
    /// How often expired entries are swept (ttl / 9, at least 200 ms).
    pub sweep_every: Duration,
}

/// Settings of the realtime service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port, log level, URLs.
    pub common: CommonSettings,
    /// Membership replica storage.
    pub storage: Storage,
    /// `CONVERSATIONS_URL`: fallback for users the replica does not know yet.
    pub conversations_url: Option<String>,
    /// Socket limits.
    pub limits: Limits,
    /// Presence timing.
    pub presence: PresenceSettings,
}

impl Settings {
    /// Reads the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let storage = Storage::from_env(env, "realtime")?;
        let ttl = env.seconds("REALTIME_PRESENCE_TTL_SECS", 45)?;
        Ok(Self {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            storage,
            conversations_url: env
                .url("CONVERSATIONS_URL", &["http", "https"])?
                .map(|u| u.trim_end_matches('/').to_owned()),
            limits: Limits {
                connections_per_user: env.or(
                    "REALTIME_MAX_CONNECTIONS_PER_USER",
                    20,
                    "a positive number of connections",
                )?,
                outbound_queue: env.or("REALTIME_OUTBOUND_QUEUE", 256, "a queue length")?,
                max_frame_bytes: 64 * 1024,
                init_timeout: env.seconds("REALTIME_INIT_TIMEOUT_SECS", 3)?,
                ping_interval: Duration::from_millis(env.or(
                    "REALTIME_PING_INTERVAL_MS",
                    25_000,
                    "milliseconds",
                )?),
                frames_per_sec: env.or("REALTIME_MAX_FRAMES_PER_SEC", 50, "frames per second")?,
                read_buffer: env.or("REALTIME_READ_BUFFER_BYTES", 512, "a number of bytes")?,
            },
            presence: PresenceSettings {
                ttl,
                sweep_every: (ttl / 9).max(Duration::from_millis(200)),
            },
        })
    }
}
