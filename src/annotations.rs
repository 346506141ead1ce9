//! The annotations a tenant sets on a resource, parsed and bounded. Pure: a value out of bounds
//! is an error naming the annotation (the resource is Stalled with reason `InvalidSpec`), never a
//! silent clamp and never a panic.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::crd::{
    ADOPT_ID_ANNOTATION, DRIFT_INTERVAL_ANNOTATION, MANAGEMENT_ANNOTATION, PAUSED_ANNOTATION,
};
use crate::error::{Error, Result};

/// The shortest per-resource drift interval: below it one resource could spend its account's
/// whole ngrok budget (120 requests a minute) on reads.
pub const MIN_DRIFT_INTERVAL: Duration = Duration::from_secs(30);
/// The longest per-resource drift interval: drift is still repaired within a week.
pub const MAX_DRIFT_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
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

    #[test]
    fn only_true_pauses() {
        assert!(is_paused(&with(PAUSED_ANNOTATION, "true")));
        assert!(!is_paused(&with(PAUSED_ANNOTATION, "yes")));
        assert!(!is_paused(&BTreeMap::new()));
    }
}
