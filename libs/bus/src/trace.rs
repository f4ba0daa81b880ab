//! W3C trace context (`traceparent`, <https://www.w3.org/TR/trace-context/>) across hops:
//! HTTP requests, outbox rows and RabbitMQ message headers all carry the same header value.
//!
//! A span that starts a unit of work (a request, a consumed event, a relay publish) is
//! given its parent with [`continue_trace`], and what it sends on is [`traceparent_of`]
//! that span. When traces are exported (the `tracing-opentelemetry` layer is installed by
//! `minute_kit::telemetry`), both go through the span's OpenTelemetry context, so a
//! consumer's span is a child of the publisher's span across the broker. When they are not,
//! nothing is recorded and the incoming value is passed on unchanged, so log lines of every
//! hop still share the trace id (the `trace_id` field every unit-of-work span declares).

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{BatchError, BusError, EventBus, Message};

/// The header (HTTP and AMQP) that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent`: version 00, non-zero ids.
fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// The trace id (32 hex digits) of a valid `traceparent`.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    parse(traceparent).map(|c| c.trace_id().to_string())
}

/// A fresh, random trace id (for log correlation when no trace context came in).
pub fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh `traceparent` for a request that came without one while traces are not
/// exported: the trace id ties the log lines of every hop together.
pub fn new_traceparent() -> String {
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{}-{}-01", new_trace_id(), &span[..16])
}

/// Makes `span` a child of `traceparent` (when traces are exported) and records the
/// span's `trace_id` field (declared `trace_id = tracing::field::Empty`).
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(parse) {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        let _ = span.set_parent(cx);
    }
    let exported = span.context().span().span_context().clone();
    let trace_id = if exported.is_valid() {
        exported.trace_id().to_string()
    } else {
        traceparent
            .and_then(trace_id_of)
            .unwrap_or_else(new_trace_id)
    };
    span.record("trace_id", trace_id.as_str());
}

/// The `traceparent` to send on from `span`: its own context when traces are exported,
/// otherwise `incoming` unchanged.
pub fn traceparent_of(span: &Span, incoming: Option<&str>) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        Some(format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ))
    } else {
        incoming.map(str::to_owned)
    }
}

/// Publishes `message` inside a producer span that continues the message's `traceparent`
/// header and replaces it with the span's own, so the consumer's span is the child of this
/// publish.
pub async fn publish_traced(
    bus: &dyn EventBus,
    exchange: &str,
    mut message: Message,
) -> Result<(), BusError> {
    use tracing::Instrument;
    let span = producer_span(exchange, &mut message);
    bus.publish(exchange, message).instrument(span).await
}

/// [`EventBus::publish_batch`] with one producer span per message, as [`publish_traced`]
/// gives a single one: each message's consumer span is the child of its own publish. The
/// spans stay open until the batch is confirmed, so each lasts as long as its message
/// waited. Every outbox relay publishes through here.
pub async fn publish_batch_traced(
    bus: &dyn EventBus,
    mut batch: Vec<(String, Message)>,
) -> Result<(), BatchError> {
    let spans: Vec<Span> = batch
        .iter_mut()
        .map(|(exchange, message)| producer_span(exchange, message))
        .collect();
    let ids: Vec<Option<String>> = batch.iter().map(|(_, m)| m.message_id.clone()).collect();
    let result = bus.publish_batch(batch).await;
    let confirmed = result
        .as_ref()
        .map_or_else(|e| e.confirmed, |()| spans.len());
    // One line per message inside its own span, so the log carries each message's trace id.
    for (i, (span, id)) in spans.iter().zip(&ids).enumerate() {
        let id = id.as_deref().unwrap_or("");
        match &result {
            Err(e) if i >= confirmed => span.in_scope(
                || tracing::debug!(message_id = id, error = %e.error, "publish not confirmed"),
            ),
            _ => span.in_scope(|| tracing::debug!(message_id = id, "published")),
        }
    }
    drop(spans);
    result
}

/// The producer span of one publish, continuing the message's `traceparent` header, which
/// it replaces with its own.
fn producer_span(exchange: &str, message: &mut Message) -> Span {
    let span = tracing::error_span!(
        "publish",
        otel.name = %format!("{} publish", exchange),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = %message.routing_key,
        trace_id = tracing::field::Empty,
    );
    let incoming = message.headers.get(TRACEPARENT).cloned();
    continue_trace(&span, incoming.as_deref());
    if let Some(tp) = traceparent_of(&span, incoming.as_deref()) {
        message.headers.insert(TRACEPARENT.to_owned(), tp);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_valid_traceparents() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            trace_id_of(tp).as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
            "00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(trace_id_of(bad).is_none(), "{bad}");
        }
        assert!(trace_id_of(&new_traceparent()).is_some());
    }

    #[test]
    fn without_an_exporter_the_incoming_context_passes_through() {
        let span = tracing::Span::none();
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        continue_trace(&span, Some(tp));
        assert_eq!(traceparent_of(&span, Some(tp)).as_deref(), Some(tp));
        assert_eq!(traceparent_of(&span, None), None);
    }
}
