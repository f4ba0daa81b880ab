//! Minute's service kit: the mechanisms every role shares, never a business rule.
//!
//! - [`config`]: the environment (and `.env`) read once into typed values; a bad value stops
//!   the process with a message naming the variable ([`config::CommonSettings`]).
//! - [`telemetry`]: `LOG_LEVEL` as a tracing filter, human or JSON logs carrying the trace id,
//!   OTLP trace export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, flushed on shutdown.
//! - [`metrics`]: the Prometheus recorder and `/metrics`.
//! - [`http`]: serving an axum router with `/healthz`, `/readyz` ([`http::Readiness`]) and
//!   `/metrics`.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token that flows into every task.
//! - [`error`]: [`ApiError`] and its mapping to the GraphQL error codes of `api.md`.
//! - [`auth`]: JWT issue/verify (HS256 pinned, `iss`/`aud`/`exp`/`typ` checked), the
//!   [`auth::Viewer`] every subgraph resolves, and session revocation shared through Redis.
//! - [`graphql`]: the subgraph HTTP handler that authenticates the caller.
//! - [`infra`]: the bus, Redis and the authenticator, connected once per process and
//!   passed into every service (in-process fallbacks for `minute all`).
//! - [`mongo`] and [`redis`]: pooled connections, index helpers and readiness checks.
//! - [`sqlite`]: the embedded stores' shared mechanism (WAL file, blocking-pool access).
//!
//! Start at [`config::CommonSettings::from_env`] and [`http::serve`].
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod error;
pub mod graphql;
pub mod http;
pub mod infra;
pub mod metrics;
pub mod mongo;
pub mod redis;
pub mod shutdown;
pub mod sqlite;
pub mod storage;
pub mod telemetry;

pub use error::{ApiError, ErrorCode, GqlResultExt};
/// W3C trace context across hops (re-exported from the bus, which carries it in headers).
pub use minute_bus::trace;
