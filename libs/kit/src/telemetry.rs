//! Telemetry: logs, traces and the metrics recorder, installed once per process.
//!
//! - Logs: `LOG_LEVEL` is a tracing filter; `LOG_FORMAT=text` (default, for people) or
//!   `json` (one object per line with `timestamp`, `level`, `target`, `trace_id`, `span`
//!   and the event's fields). Every line logged inside a request or a consumed event
//!   carries the `trace_id` of its unit of work (see [`minute_bus::trace`]).
//! - Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans at INFO and above (whatever
//!   `LOG_LEVEL` says) go to that OTLP/HTTP (protobuf) endpoint's `/v1/traces` in batches,
//!   as `service.name` = the role, with `service.version` and `service.instance.id` = the
//!   replica id. Unset, no OpenTelemetry layer is installed at all: nothing is recorded,
//!   nothing is sent, trace context is passed through unchanged.
//! - Metrics: the Prometheus recorder behind `/metrics` (see [`crate::metrics`]).
//!
//! [`Telemetry::shutdown`] flushes the spans still buffered; roles call it last.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter::LevelFilter};

use crate::config::{CommonSettings, LogFormat};

/// What [`init`] installed; [`Telemetry::shutdown`] flushes it.
#[must_use = "call shutdown() before exiting so buffered spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered and stops the exporter (bounded by the exporter timeout).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The batch processor blocks while it flushes: keep it off the async workers.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                eprintln!("minute: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs logging, tracing and the metrics recorder for `role`. The first call in a
/// process wins; later calls (tests start many apps) install nothing and return a
/// [`Telemetry`] with nothing to flush.
pub fn init(settings: &CommonSettings, role: &str) -> Telemetry {
    crate::metrics::install();
    let filter = log_filter(&settings.log_level);
    let fmt = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(JsonLines)
            .boxed(),
    };
    let provider = settings.otel_endpoint.as_deref().and_then(|endpoint| {
        match tracer_provider(endpoint, role, settings) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("minute: OTEL_EXPORTER_OTLP_ENDPOINT: cannot export traces: {e}");
                None
            }
        }
    });
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("minute"))
            .with_filter(LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        // Units of work are ERROR-level spans (enabled whatever LOG_LEVEL says), and that is
        // all this layer needs to see: an unfiltered layer would enable every callsite.
        .with(TraceIds.with_filter(LevelFilter::ERROR))
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    match (installed, provider) {
        (true, provider) => Telemetry { provider },
        (false, Some(p)) => {
            let _ = p.shutdown();
            Telemetry { provider: None }
        }
        (false, None) => Telemetry { provider: None },
    }
}

/// Log targets of the federation engine (hive-router and its crates). At DEBUG they log
/// request variables, passwords included, so they never log below INFO.
const ENGINE_TARGETS: [&str; 5] = [
    "router",
    "hive_router",
    "hive-router",
    "hive_router_plan_executor",
    "hive_router_query_planner",
];

/// `LOG_LEVEL`, with the engine's targets capped at INFO (or less, if `LOG_LEVEL` is less).
fn log_filter(log_level: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = filter
        .max_level_hint()
        .map_or(LevelFilter::INFO, |max| max.min(LevelFilter::INFO));
    for target in ENGINE_TARGETS {
        if let Ok(directive) = format!("{target}={cap}").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// An OTLP/HTTP protobuf exporter behind the standard batch span processor.
fn tracer_provider(
    endpoint: &str,
    role: &str,
    settings: &CommonSettings,
) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(TokioHttpClient::new()?)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()?;
    let resource = Resource::builder_empty()
        .with_service_name(role.to_owned())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", settings.replica_id.clone()),
            KeyValue::new("service.namespace", "minute"),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build())
}

/// The exporter's HTTP client: the process's reqwest, run on the tokio runtime that was
/// current at start. The batch processor exports from its own thread, outside any runtime,
/// so each request is handed to the runtime and awaited through its join handle.
#[derive(Debug)]
struct TokioHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl TokioHttpClient {
    fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("telemetry must start inside the tokio runtime"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let request = reqwest::Request::try_from(request)?;
        let response = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        let (status, body) = response;
        Ok(http::Response::builder().status(status).body(body)?)
    }
}

/// The trace id of a span that declared and recorded a `trace_id` field.
struct TraceId(Arc<str>);

/// Keeps each span's `trace_id` field where the log formatter finds it.
struct TraceIds;

struct FindTraceId(Option<String>);

impl Visit for FindTraceId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut found = FindTraceId(None);
        attrs.record(&mut found);
        if let (Some(t), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(TraceId(t.into()));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let mut found = FindTraceId(None);
        values.record(&mut found);
        if let (Some(t), Some(span)) = (found.0, ctx.span(id)) {
            let mut ext = span.extensions_mut();
            ext.remove::<TraceId>();
            ext.insert(TraceId(t.into()));
        }
    }
}

/// One JSON object per line, with the `trace_id` of the innermost unit of work.
struct JsonLines;

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope {
                innermost.get_or_insert_with(|| span.name());
                if let Some(t) = span.extensions().get::<TraceId>() {
                    line.insert("trace_id".into(), t.0.as_ref().into());
                    break;
                }
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        event.record(&mut JsonFields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_engine_never_logs_below_info() {
        use tracing::level_filters::LevelFilter;
        let debug = log_filter("debug");
        assert_eq!(debug.max_level_hint(), Some(LevelFilter::DEBUG));
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_filter(log_filter("trace,router=trace")),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "router::coerce_variables", "variables: secret");
            tracing::debug!(target: "minute_auth", "ours");
        });
        let out = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf8");
        assert!(out.contains("ours"), "{out}");
        assert!(!out.contains("secret"), "{out}");
    }

    #[test]
    fn json_lines_carry_the_trace_id_of_their_unit_of_work() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(TraceIds).with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::error_span!("request", trace_id = tracing::field::Empty);
            minute_bus::trace::continue_trace(
                &span,
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            );
            let _g = span.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            tracing::info!(user = "u1", n = 3, "inside");
        });
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLines)
                    .with_writer(std::io::sink),
            ),
            || tracing::info!("outside"),
        );
        let out = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf8");
        let line: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
        assert_eq!(line["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(line["message"], "inside");
        assert_eq!(line["user"], "u1");
        assert_eq!(line["n"], 3);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"], "inner");
    }
}
