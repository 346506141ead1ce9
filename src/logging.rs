//! Logging of the operator.
//!
//! Logs go to stderr (stdout stays clean for `ngrok-events-operator crd | kubectl apply -f -`),
//! either as one JSON object per line or as human-readable text.
//!
//! A JSON line has `timestamp`, `level`, `target`, `span` (the innermost span's name, inside a
//! span), the event's fields (`message` among them), and the fields of every enclosing span, all
//! at the top level: a line logged inside `reconcile{kind, namespace, name}` can be filtered by
//! `namespace`/`name` without digging into nested span objects. Each key appears once: inner
//! spans win over outer ones, event fields over span fields, and the four fixed keys over both.
//!
//! The line is json-subscriber's [`JsonLayer`]. Its own span flattening stores each span's name
//! under `name`, over a span field of that name (json-subscriber issue #3), and `name` is the
//! field users filter on, so span fields reach the line through [`SpanFields`] instead.
//!
//! Secret values stay out of both formats because the types that hold them (`ngrok_api::Secret`)
//! only ever show a redacted `Debug`, and fields are recorded through `Debug`/`Display`, never
//! serialised.

use std::io::IsTerminal;

use json_subscriber::{FieldWriter, JsonLayer};
use serde_json::{Map, Value};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_serde::fields::AsMap;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Output format of the logs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line; the fields of the enclosing spans are flattened into it.
    Json,
    /// Human-readable text.
    Text,
}

/// Targets that are chatty at `info`/`debug` and rarely useful to an operator's user.
const NOISY_TARGETS: &[&str] = &["hyper", "h2", "rustls", "tower"];

/// Installs the global tracing subscriber.
///
/// `level` is either a bare level (`info`, `debug`, ...) or full `EnvFilter` directives
/// (`info,kube=warn`). A bare level below `trace` also quiets the HTTP/TLS stack
/// (`hyper`, `h2`, `rustls`, `tower` at `warn`); full directives are taken as given.
pub fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let ansi = std::io::stderr().is_terminal();
    tracing::subscriber::set_global_default(subscriber(format, level, std::io::stderr, ansi)?)
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// The subscriber [`init_logging`] installs, writing to `writer` (tests capture it).
fn subscriber<W>(
    format: LogFormat,
    level: &str,
    writer: W,
    ansi: bool,
) -> anyhow::Result<Box<dyn Subscriber + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .parse(filter_directives(level))
        .map_err(|e| anyhow::anyhow!("invalid log level {level:?}: {e}"))?;
    Ok(match format {
        LogFormat::Json => Box::new(
            tracing_subscriber::registry()
                .with(filter)
                .with(SpanFields)
                .with(json_layer(writer)),
        ),
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .with_ansi(ansi)
                .finish(),
        ),
    })
}

/// Keys every JSON line has (`span` inside a span); no field overwrites them.
const FIXED_KEYS: [&str; 4] = ["timestamp", "level", "target", "span"];

/// The JSON layer: the fixed keys, the enclosing spans' fields, then the event's fields. Needs
/// [`SpanFields`] below it.
fn json_layer<S, W>(writer: W) -> JsonLayer<S, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    let mut layer = JsonLayer::new(writer);
    layer
        .with_timer("timestamp", SystemTime)
        .with_level("level")
        .with_target("target")
        .with_flattened_event();
    layer.add_from_span("span", |span| Some(span.name()));
    layer.add_multiple_dynamic_fields(write_span_fields);
    layer
}

/// Keeps each span's own fields as JSON values, for [`write_span_fields`].
struct SpanFields;

/// The fields of one span, as recorded so far.
struct OwnFields(Map<String, Value>);

/// The fields of a span (`Attributes` or a later `Record`) as a JSON object.
fn fields_of(fields: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(fields) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

impl<S> Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let fields = OwnFields(fields_of(attrs.field_map()));
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(OwnFields(fields)) = span.extensions_mut().get_mut::<OwnFields>()
        {
            fields.extend(fields_of(values.field_map()));
        }
    }
}

/// Writes the fields of the event's spans at the top level of its line, inner spans over outer
/// ones, leaving out the keys the event itself or the fixed keys already give the line.
fn write_span_fields<S>(event: &Event<'_>, ctx: &Context<'_, S>, writer: &mut FieldWriter<'_>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(scope) = ctx.event_scope(event) else {
        return;
    };
    let mut merged = Map::new();
    for span in scope.from_root() {
        if let Some(OwnFields(fields)) = span.extensions().get::<OwnFields>() {
            merged.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let event_fields = event.metadata().fields();
    for (key, value) in &merged {
        if !FIXED_KEYS.contains(&key.as_str()) && event_fields.field(key).is_none() {
            // Fails only for a value serde cannot write; the writer then rolls back the field.
            let _ = writer.write_field(key, value);
        }
    }
}

/// `EnvFilter` directives for `level`, adding the noise control of a bare level.
fn filter_directives(level: &str) -> String {
    let level = level.trim();
    match level.parse::<LevelFilter>() {
        // `info`/`debug` would let the HTTP stack log every connection; `warn` and quieter
        // levels are already at least as strict, and `trace` means "everything".
        Ok(bare) if bare > LevelFilter::WARN && bare < LevelFilter::TRACE => {
            let mut directives = level.to_string();
            for target in NOISY_TARGETS {
                directives.push_str(&format!(",{target}=warn"));
            }
            directives
        }
        _ => level.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::Captured;

    #[test]
    fn a_bare_level_quiets_the_http_stack_unless_tracing() {
        assert_eq!(
            filter_directives("info"),
            "info,hyper=warn,h2=warn,rustls=warn,tower=warn"
        );
        assert_eq!(
            filter_directives("DEBUG"),
            "DEBUG,hyper=warn,h2=warn,rustls=warn,tower=warn"
        );
        assert_eq!(filter_directives("trace"), "trace");
        assert_eq!(filter_directives("warn"), "warn");
        assert_eq!(filter_directives("error"), "error");
        assert_eq!(filter_directives("info,kube=warn"), "info,kube=warn");
        assert!(subscriber(LogFormat::Text, "info,kube=warn", std::io::sink, false).is_ok());
        assert!(subscriber(LogFormat::Json, "info,kube=loud", std::io::sink, false).is_err());
    }

    /// What `log` writes through the subscriber of `format` at `level`.
    fn capture(format: LogFormat, level: &str, log: impl FnOnce()) -> String {
        let out = Captured::default();
        let subscriber = subscriber(format, level, out.clone(), false).unwrap();
        tracing::subscriber::with_default(subscriber, log);
        out.text()
    }

    fn log_reconcile_lines(format: LogFormat, level: &str) -> String {
        capture(format, level, || {
            let span = tracing::info_span!("reconcile", namespace = "team-a", name = "audit");
            let _entered = span.enter();
            tracing::info!(generation = 3, ready = true, "reconciled");
            tracing::debug!("hidden at info");
            tracing::warn!(target: "hyper::proto", "shown: warn passes the noise filter");
            tracing::info!(target: "hyper::proto", "hidden: hyper below warn");
        })
    }

    /// The JSON objects of `text`, one per line, each checked to name every key once (a
    /// duplicate would be silently dropped by a parser).
    fn json_lines(text: &str) -> Vec<Map<String, Value>> {
        text.lines()
            .map(|line| {
                let Value::Object(object) = serde_json::from_str(line).unwrap() else {
                    panic!("not a JSON object: {line}")
                };
                for key in object.keys() {
                    assert_eq!(
                        line.matches(&format!("\"{key}\":")).count(),
                        1,
                        "{key} repeated in {line}"
                    );
                }
                object
            })
            .collect()
    }

    #[test]
    fn json_lines_carry_the_span_fields_at_the_top_level() {
        let text = log_reconcile_lines(LogFormat::Json, "info");
        let lines = json_lines(&text);
        assert_eq!(lines.len(), 2, "{text}");
        let line = &lines[0];
        assert_eq!(line["message"], "reconciled");
        assert_eq!(line["namespace"], "team-a");
        assert_eq!(line["name"], "audit");
        assert_eq!(line["span"], "reconcile");
        assert_eq!(line["generation"], 3);
        assert_eq!(line["ready"], true);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.contains('T')));
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["target"], "hyper::proto");
        assert_eq!(lines[1]["namespace"], "team-a");
    }

    /// The shape of a line the reconciler writes, key for key: nothing nested, nothing else.
    #[test]
    fn a_json_line_from_the_layer_has_exactly_the_flattened_fields() {
        let text = capture(LogFormat::Json, "info", || {
            let outer = tracing::info_span!(
                "controller",
                kind = "Outer",
                shard = 1,
                timestamp = "spoofed",
                attempt = 1
            );
            let _outer = outer.enter();
            let span = tracing::info_span!(
                "reconcile",
                kind = "EventDestination",
                namespace = %"team-a",
                name = %"audit",
                generation = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("generation", 4);
            let error = std::io::Error::other("ngrok said no");
            tracing::info!(
                id = "ed_1",
                attempt = 2,
                error = &error as &(dyn std::error::Error + 'static),
                "created destination"
            );
        });
        let lines = json_lines(&text);
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        let mut keys: Vec<&str> = line.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "attempt",
                "error",
                "generation",
                "id",
                "kind",
                "level",
                "message",
                "name",
                "namespace",
                "shard",
                "span",
                "target",
                "timestamp"
            ],
            "{text}"
        );
        // The inner span's `kind` wins over the outer one's, the event's `attempt` over a span's,
        // and a span's `timestamp` does not replace the line's; `Display` fields are plain text,
        // and a field recorded after the span began is there.
        assert_eq!(line["kind"], "EventDestination");
        assert_eq!(line["attempt"], 2);
        assert_ne!(line["timestamp"], "spoofed");
        assert_eq!(line["shard"], 1);
        assert_eq!(line["generation"], 4);
        assert_eq!(line["namespace"], "team-a");
        assert_eq!(line["name"], "audit");
        assert_eq!(line["span"], "reconcile");
        assert_eq!(line["error"], "ngrok said no");
        assert_eq!(line["target"], module_path!());

        // Outside any span: no `span` key, only the event.
        let text = capture(LogFormat::Json, "info", || tracing::info!("stopped"));
        let lines = json_lines(&text);
        let mut keys: Vec<&str> = lines[0].keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["level", "message", "target", "timestamp"], "{text}");
    }

    #[test]
    fn json_lines_show_a_secret_only_redacted() {
        let secret = ngrok_api::Secret::new("sk-value-that-must-not-appear");
        let text = capture(LogFormat::Json, "trace", || {
            let span = tracing::info_span!("reconcile", key = ?secret);
            let _entered = span.enter();
            tracing::info!(secret = ?secret, "rotated");
        });
        assert!(text.contains("Secret(<redacted>)"), "{text}");
        assert!(!text.contains(secret.expose()), "{text}");
    }

    #[test]
    fn text_lines_are_human_readable() {
        let text = log_reconcile_lines(LogFormat::Text, "info");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains(r#"reconcile{namespace="team-a" name="audit"}"#)
                && lines[0].contains("reconciled")
                && lines[0].contains("generation=3"),
            "{text}"
        );
        let debug = log_reconcile_lines(LogFormat::Text, "debug");
        assert!(debug.contains("hidden at info"), "{debug}");
    }
}
