//! Logging set-up: `LOG_LEVEL` as a tracing filter, text or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::config::{CommonSettings, LogFormat};

/// Installs the global subscriber once; later calls are no-ops (tests start many apps).
pub fn init(settings: &CommonSettings) {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
