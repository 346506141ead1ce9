//! The annotations a tenant sets on a resource, parsed and bounded. Pure: a value out of bounds
//! is an error naming the annotation (the resource is Stalled with reason `InvalidSpec`), never a
//! silent clamp and never a panic.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::crd::{
    ADOPT_ID_ANNOTATION, DRIFT_INTERVAL_ANNOTATION, MANAGEMENT_ANNOTATION, PAUSED_ANNOTATION,
};
use crate::error::{Error, Result};

/// The shortest per-resource drift interval: below it one resource could spend its account's
/// whole ngrok budget (120 requests a minute) on reads.
pub const MIN_DRIFT_INTERVAL: Duration = Duration::from_secs(30);
/// The longest per-resource drift interval: drift is still repaired within a week.
pub const MAX_DRIFT_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The annotations the operator reads: the only ones its caches keep.
pub const OPERATOR_ANNOTATIONS: [&str; 4] = [
    ADOPT_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    MANAGEMENT_ANNOTATION,
    DRIFT_INTERVAL_ANNOTATION,
];
/// The longest value of an operator annotation the caches keep; every valid value is far
/// shorter (an id of 68 characters, a duration, `true`, `observe`).
pub const MAX_ANNOTATION_VALUE_BYTES: usize = 256;
/// What the caches keep in place of a longer value: no valid value, so the annotation is
/// refused by name (`InvalidSpec`), and never `true`, so it pauses nothing. Never dropped
/// outright: a missing `adopt-id` would create a new object instead of adopting one.
pub const OVERSIZED_VALUE: &str = "<value over 256 bytes, not read>";

/// Reduces a resource's metadata to what the operator reads, as it enters a cache: no labels,
/// no managedFields, no annotation but [`OPERATOR_ANNOTATIONS`], each value at most
/// [`MAX_ANNOTATION_VALUE_BYTES`]. What a tenant puts in metadata (a 200 KiB annotation,
/// `kubectl.kubernetes.io/last-applied-configuration`, thousands of labels) then costs the
/// shared process nothing. Nothing the operator writes depends on what is dropped: statuses
/// are written to the status subresource, and the finalizer (in `finalizers`, kept) by a JSON
/// patch of that list alone.
pub fn keep_what_the_operator_reads(meta: &mut ObjectMeta) {
    meta.labels = None;
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.retain(|key, _| OPERATOR_ANNOTATIONS.contains(&key.as_str()));
        for value in annotations.values_mut() {
            if value.len() > MAX_ANNOTATION_VALUE_BYTES {
                *value = OVERSIZED_VALUE.to_string();
            }
        }
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// How much of a rejected value an error message quotes.
const QUOTED_CHARS: usize = 64;

/// The resource's drift interval: its annotation, else `default` (the operator's
/// `--drift-interval`).
pub fn drift_interval(
    annotations: &BTreeMap<String, String>,
    default: Duration,
) -> Result<Duration> {
    let Some(value) = annotations.get(DRIFT_INTERVAL_ANNOTATION) else {
        return Ok(default);
    };
    let invalid = |problem: String| Error::InvalidAnnotation {
        annotation: DRIFT_INTERVAL_ANNOTATION,
        problem,
    };
    let interval = humantime::parse_duration(value.trim()).map_err(|_| {
        invalid(format!(
            "{:?} is not a duration (write it like 30s, 10m, 1h)",
            quoted(value)
        ))
    })?;
    if !(MIN_DRIFT_INTERVAL..=MAX_DRIFT_INTERVAL).contains(&interval) {
        return Err(invalid(format!(
            "{:?} is out of range: it must be between {} and {}",
            quoted(value),
            humantime::format_duration(MIN_DRIFT_INTERVAL),
            humantime::format_duration(MAX_DRIFT_INTERVAL),
        )));
    }
    Ok(interval)
}

/// The ngrok id to adopt, if the annotation is set: `prefix` (`ed_`, `esb_`) and up to 64
/// letters and digits, as ngrok's ids are.
pub fn adopt_id<'a>(
    annotations: &'a BTreeMap<String, String>,
    prefix: &str,
) -> Result<Option<&'a str>> {
    let Some(id) = annotations.get(ADOPT_ID_ANNOTATION) else {
        return Ok(None);
    };
    let rest = id.strip_prefix(prefix).unwrap_or_default();
    if rest.is_empty() || rest.len() > 64 || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::InvalidAnnotation {
            annotation: ADOPT_ID_ANNOTATION,
            problem: format!("{:?} is not an ngrok id of the form {prefix}…", quoted(id)),
        });
    }
    Ok(Some(id))
}

/// Whether the resource only observes its ngrok object (`observe`) rather than managing it
/// (`manage`, the default). Any other value is refused rather than guessed: a typo must not
/// start writing to ngrok.
pub fn is_observing(annotations: &BTreeMap<String, String>) -> Result<bool> {
    match annotations.get(MANAGEMENT_ANNOTATION).map(String::as_str) {
        None | Some("manage") => Ok(false),
        Some("observe") => Ok(true),
        Some(other) => Err(Error::InvalidAnnotation {
            annotation: MANAGEMENT_ANNOTATION,
            problem: format!("{:?} is neither \"observe\" nor \"manage\"", quoted(other)),
        }),
    }
}

/// Whether writes to ngrok are paused (`"true"`; any other value is not paused).
pub fn is_paused(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// What the annotations ask of the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Make ngrok match the spec (the default).
    Manage,
    /// Read and report what managing would change; never write to ngrok.
    Observe,
    /// Change nothing in ngrok.
    Paused,
}

/// What a resource's annotations ask for. Read first: a bad one stalls the resource before
/// anything is read or sent.
pub struct Asked {
    /// How long until the next drift check.
    pub interval: Duration,
    pub adopt_id: Option<String>,
    pub mode: Mode,
}

/// Reads every annotation a pass acts on: `default_interval` is the operator's drift
/// interval, `id_prefix` how the kind's ngrok ids begin.
pub fn asked(
    annotations: &BTreeMap<String, String>,
    id_prefix: &str,
    default_interval: Duration,
) -> Result<Asked> {
    let interval = drift_interval(annotations, default_interval)?;
    let adopt_id = adopt_id(annotations, id_prefix)?;
    let mode = if is_observing(annotations)? {
        Mode::Observe
    } else if is_paused(annotations) {
        Mode::Paused
    } else {
        Mode::Manage
    };
    Ok(Asked {
        interval,
        adopt_id: adopt_id.map(String::from),
        mode,
    })
}

/// A tenant's value as an error message may quote it: one line, bounded.
fn quoted(value: &str) -> String {
    ngrok_api::text::one_line(value, QUOTED_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(key: &str, value: &str) -> BTreeMap<String, String> {
        [(key.to_string(), value.to_string())].into()
    }

    #[test]
    fn drift_interval_defaults_parses_and_is_bounded() {
        let default = Duration::from_secs(600);
        assert_eq!(drift_interval(&BTreeMap::new(), default).unwrap(), default);
        let parsed = |v| drift_interval(&with(DRIFT_INTERVAL_ANNOTATION, v), default);
        assert_eq!(parsed("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parsed("30s").unwrap(), MIN_DRIFT_INTERVAL);
        assert_eq!(parsed("7d").unwrap(), MAX_DRIFT_INTERVAL);
        for bad in [
            "0s",
            "29s",
            "8d",
            "18446744073709551615s",
            "abc",
            "",
            "-1s",
            "NaN",
        ] {
            let error = parsed(bad).unwrap_err();
            assert_eq!(error.reason(), "InvalidSpec", "{bad}");
            assert!(error.is_stalled());
            assert!(
                error.to_string().contains(DRIFT_INTERVAL_ANNOTATION),
                "{error}"
            );
        }
        let long = parsed(&format!("{}\nforged log line", "9".repeat(10_000))).unwrap_err();
        assert!(!long.to_string().contains('\n'));
        assert!(long.to_string().len() < 300, "{long}");
    }

    #[test]
    fn adopt_ids_must_look_like_ngrok_ids() {
        assert_eq!(adopt_id(&BTreeMap::new(), "ed_").unwrap(), None);
        let id = |v| adopt_id(&with(ADOPT_ID_ANNOTATION, v), "ed_").map(|o| o.map(String::from));
        assert_eq!(id("ed_2abc").unwrap().as_deref(), Some("ed_2abc"));
        for bad in [
            "ed_",
            "esb_1",
            "ed_1/../x",
            "ed_1\n",
            &format!("ed_{}", "1".repeat(65)),
        ] {
            assert_eq!(id(bad).unwrap_err().reason(), "InvalidSpec", "{bad:?}");
        }
    }

    /// The caches keep the operator's annotations (their valid values untouched) and the
    /// metadata its writes depend on, nothing else.
    #[test]
    fn caches_keep_only_what_the_operator_reads() {
        let huge = "x".repeat(200 * 1024);
        let mut meta = ObjectMeta {
            name: Some("audit".into()),
            namespace: Some("team-a".into()),
            uid: Some("u-1".into()),
            resource_version: Some("7".into()),
            generation: Some(3),
            finalizers: Some(vec!["events.ngrok.io/cleanup".into()]),
            labels: Some([("team".to_string(), huge.clone())].into()),
            annotations: Some(
                [
                    (ADOPT_ID_ANNOTATION, "ed_2abc"),
                    (PAUSED_ANNOTATION, "true"),
                    (MANAGEMENT_ANNOTATION, "observe"),
                    (DRIFT_INTERVAL_ANNOTATION, "5m"),
                    ("kubectl.kubernetes.io/last-applied-configuration", &huge),
                    ("events.ngrok.io/not-read", "x"),
                    ("team.example/notes", &huge),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ),
            managed_fields: Some(vec![Default::default()]),
            ..Default::default()
        };
        let mut expected = meta.clone();
        keep_what_the_operator_reads(&mut meta);
        expected.labels = None;
        expected.managed_fields = None;
        expected.annotations = Some(
            [
                (ADOPT_ID_ANNOTATION, "ed_2abc"),
                (PAUSED_ANNOTATION, "true"),
                (MANAGEMENT_ANNOTATION, "observe"),
                (DRIFT_INTERVAL_ANNOTATION, "5m"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        );
        assert_eq!(meta, expected);

        // Nothing but foreign annotations: none left.
        let mut foreign = ObjectMeta {
            annotations: Some([("a".to_string(), huge.clone())].into()),
            ..Default::default()
        };
        keep_what_the_operator_reads(&mut foreign);
        assert_eq!(foreign.annotations, None);
    }

    /// An operator annotation with a value over the bound is kept as a value that is refused
    /// by name, never dropped (a dropped adopt-id would create) and never read as paused.
    #[test]
    fn oversized_operator_annotations_are_refused_by_name() {
        let huge = format!("ed_{}", "1".repeat(MAX_ANNOTATION_VALUE_BYTES));
        let cached = |key: &str, value: &str| {
            let mut meta = ObjectMeta {
                annotations: Some(with(key, value)),
                ..Default::default()
            };
            keep_what_the_operator_reads(&mut meta);
            meta.annotations.unwrap()
        };
        let adopt = cached(ADOPT_ID_ANNOTATION, &huge);
        assert_eq!(adopt[ADOPT_ID_ANNOTATION], OVERSIZED_VALUE);
        let error = adopt_id(&adopt, "ed_").unwrap_err();
        assert_eq!(error.reason(), "InvalidSpec");
        assert!(error.to_string().contains(ADOPT_ID_ANNOTATION), "{error}");
        assert!(error.to_string().contains("over 256 bytes"), "{error}");
        let interval = cached(DRIFT_INTERVAL_ANNOTATION, &"9".repeat(300));
        assert_eq!(
            drift_interval(&interval, Duration::from_secs(600))
                .unwrap_err()
                .reason(),
            "InvalidSpec"
        );
        let management = cached(MANAGEMENT_ANNOTATION, &"o".repeat(300));
        assert!(is_observing(&management).is_err());
        assert!(!is_paused(&cached(PAUSED_ANNOTATION, &"true".repeat(100))));
        // At the bound, a value is kept as it is.
        let at_bound = "7".repeat(MAX_ANNOTATION_VALUE_BYTES);
        assert_eq!(
            cached(DRIFT_INTERVAL_ANNOTATION, &at_bound)[DRIFT_INTERVAL_ANNOTATION],
            at_bound
        );
    }

    #[test]
    fn only_true_pauses() {
        assert!(is_paused(&with(PAUSED_ANNOTATION, "true")));
        assert!(!is_paused(&with(PAUSED_ANNOTATION, "yes")));
        assert!(!is_paused(&BTreeMap::new()));
    }
}
