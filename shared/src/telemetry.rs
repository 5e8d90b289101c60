//! Logging: JSON lines on stdout (CloudWatch Logs in AWS), each written inside an invocation
//! carrying its request id, function, route and tenant id under `span`.
//!
//! Those come from the invocation's task-local record ([`crate::metrics`]), not from an
//! entered tracing span. A span is entered and left on every poll of every future under it,
//! sqlx's row streams included (each `fetch` runs `in_current_span`), and each enter and exit
//! goes through the registry and every layer's filter: on a 50-row contact list that was
//! about a tenth of the server's CPU. With no span entered those polls cost nothing, and a
//! line written anywhere in the invocation, by Herald or by sqlx, still names its request.
//!
//! Lines look like `tracing_subscriber`'s JSON format with a flattened event and the current
//! span: `{"timestamp":…,"level":"INFO","message":…,<fields>,"target":…,"span":{…}}`. Other
//! spans (the WebSocket handler's `connection_id`) still work: their fields join `span`.

use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::metrics;

/// Installs the global subscriber. Safe to call more than once (tests do): later calls are
/// no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::query=warn,hyper=warn,h2=warn"));
    let logs = log_layer(std::io::stdout).with_filter(filter);
    // sqlx reports every statement at DEBUG; the query counter needs those even though the
    // log lines stay at WARN.
    let queries = crate::metrics::QueryLayer
        .with_filter(Targets::new().with_target("sqlx::query", tracing::Level::DEBUG));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(queries)
        .try_init();
}

/// The log layer, writing its lines to `writer`: stdout in functions, a buffer in tests, so
/// that the tests check the layer as it is installed.
fn log_layer<S, W>(writer: W) -> tracing_subscriber::fmt::Layer<S, JsonFields, JsonLines, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines)
        .with_writer(writer)
}

/// The line format (see the module documentation).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .map(|span| {
                let fields = span
                    .extensions()
                    .get::<FormattedFields<N>>()
                    .and_then(|f| serde_json::from_str::<serde_json::Map<_, _>>(f).ok())
                    .unwrap_or_default();
                (span.name(), fields)
            });
        let mut line = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::new(&mut line);
        let result = (|| {
            let mut map = ser.serialize_map(None)?;
            map.serialize_entry("timestamp", &Timestamp(time::OffsetDateTime::now_utc()))?;
            map.serialize_entry("level", meta.level().as_str())?;
            let mut visitor = tracing_serde::SerdeMapVisitor::new(map);
            event.record(&mut visitor);
            let mut map = visitor.take_serializer()?;
            map.serialize_entry("target", meta.target())?;
            metrics::with_invocation_context(|invocation| {
                if invocation.is_some() || span.is_some() {
                    map.serialize_entry(
                        "span",
                        &SpanFields {
                            invocation,
                            span: &span,
                        },
                    )
                } else {
                    Ok(())
                }
            })?;
            map.end()
        })();
        result.map_err(|_| fmt::Error)?;
        let line = std::str::from_utf8(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

struct Timestamp(time::OffsetDateTime);

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::rfc3339::serialize(&self.0, serializer)
    }
}

/// `span`: the invocation's request id, function, route and tenant, and the fields of a
/// tracing span the line was written in, if any.
struct SpanFields<'a> {
    invocation: Option<metrics::InvocationContext<'a>>,
    span: &'a Option<(&'static str, serde_json::Map<String, serde_json::Value>)>,
}

impl serde::Serialize for SpanFields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some((_, fields)) = self.span {
            for (k, v) in fields {
                map.serialize_entry(k, v)?;
            }
        }
        if let Some(inv) = &self.invocation {
            map.serialize_entry("request_id", inv.request_id)?;
            map.serialize_entry("function", inv.function)?;
            map.serialize_entry("route", inv.route)?;
            if let Some(tenant) = inv.tenant_id {
                map.serialize_entry("tenant_id", &tenant)?;
            }
        }
        let name = match self.span {
            Some((name, _)) => name,
            None => "invocation",
        };
        map.serialize_entry("name", name)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        fn docs(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    #[tokio::test]
    async fn lines_carry_the_invocation_and_the_span_they_were_written_in() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(log_layer(lines.clone()));
        let _default = tracing::subscriber::set_default(subscriber);

        tracing::info!(answer = 42, "outside");
        let tenant = uuid::Uuid::now_v7();
        metrics::instrument("realtime", "$default", "req-1", async {
            tracing::warn!(quoted = "a \"b\"", "inside");
            let span = tracing::info_span!("websocket", connection_id = "conn-1");
            span.in_scope(|| tracing::error!("in a span"));
            metrics::note_tenant(tenant);
            tracing::info!("tenant known");
        })
        .await;

        let docs = lines.docs();
        let line = |message: &str| {
            docs.iter()
                .find(|d| d["message"] == message)
                .unwrap_or_else(|| panic!("no line {message:?} in {docs:?}"))
        };
        let outside = line("outside");
        assert_eq!(outside["level"], "INFO");
        assert_eq!(outside["answer"], 42);
        assert_eq!(outside["target"], module_path!());
        assert!(outside.get("span").is_none(), "{outside}");
        assert!(
            time::OffsetDateTime::parse(
                outside["timestamp"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );

        let inside = line("inside");
        assert_eq!(inside["level"], "WARN");
        assert_eq!(inside["quoted"], "a \"b\"");
        assert_eq!(
            inside["span"],
            serde_json::json!({
                "request_id": "req-1", "function": "realtime", "route": "$default",
                "name": "invocation"
            })
        );
        let in_span = &line("in a span")["span"];
        assert_eq!(in_span["connection_id"], "conn-1");
        assert_eq!(in_span["request_id"], "req-1");
        assert_eq!(in_span["name"], "websocket");
        assert_eq!(
            line("tenant known")["span"]["tenant_id"],
            tenant.to_string()
        );
        let finished = line("invocation finished");
        assert_eq!(finished["span"]["tenant_id"], tenant.to_string());
        assert_eq!(finished["span"]["request_id"], "req-1");
    }
}
