//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`): what `kubectl wait`, Argo CD and
//! Flux read. Pure functions: the same inputs give an equal list, so an unchanged state causes
//! no status write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::error::Error;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Reason of `Ready=True`.
pub const SYNCED: &str = "Synced";
/// Reason of `Ready=False` while paused by annotation.
pub const PAUSED: &str = "Paused";
/// Reason of `Ready` in observe mode (annotation `events.ngrok.io/management: observe`):
/// True when ngrok matches the spec, False while a managing reconcile would change something.
pub const OBSERVING: &str = "Observing";

/// Where a resource stands after a reconcile.
#[derive(Debug)]
pub enum Phase<'a> {
    /// ngrok matches the spec.
    Ready,
    /// Work is under way (`Creating`, `Updating`, `Deleting`, `CreateQueued`…).
    Progressing {
        reason: &'static str,
        message: String,
    },
    /// A reconcile failed; [`Error::is_stalled`] decides between Stalled and retrying.
    Failed(&'a Error),
    /// Paused by annotation: nothing is written to ngrok.
    Paused,
    /// Observe mode: nothing is written to ngrok; `differences` are the paths of the fields a
    /// managing reconcile would change (`status.drift`).
    Observing { differences: Vec<String> },
}

/// What a [`Phase`] says: the value of each condition, and their common reason and message.
struct Shown {
    ready: bool,
    reconciling: bool,
    stalled: bool,
    reason: &'static str,
    message: String,
}

impl Shown {
    fn ready(reason: &'static str, message: String) -> Self {
        Shown {
            ready: true,
            reconciling: false,
            stalled: false,
            reason,
            message,
        }
    }
    fn reconciling(reason: &'static str, message: String) -> Self {
        Shown {
            ready: false,
            reconciling: true,
            stalled: false,
            reason,
            message,
        }
    }
    fn stalled(reason: &'static str, message: String) -> Self {
        Shown {
            ready: false,
            reconciling: false,
            stalled: true,
            reason,
            message,
        }
    }
    /// Neither ready nor at work: paused, or observing a difference.
    fn idle(reason: &'static str, message: String) -> Self {
        Shown {
            ready: false,
            reconciling: false,
            stalled: false,
            reason,
            message,
        }
    }
}

impl Phase<'_> {
    /// `noun` names the ngrok object in messages: `destination`, `subscription`.
    fn shown(&self, noun: &str) -> Shown {
        match self {
            Phase::Ready => Shown::ready(SYNCED, format!("The {noun} in ngrok matches the spec")),
            Phase::Progressing { reason, message } => Shown::reconciling(reason, message.clone()),
            Phase::Failed(error) if error.is_stalled() => Shown::stalled(error.reason(), error.message()),
            Phase::Failed(error) => Shown::reconciling(error.reason(), error.message()),
            Phase::Paused => Shown::idle(
                PAUSED,
                "Paused by annotation events.ngrok.io/paused: nothing is changed in ngrok until it is removed".into(),
            ),
            Phase::Observing { differences } if differences.is_empty() => Shown::ready(
                OBSERVING,
                format!("Observe mode (events.ngrok.io/management: observe): the {noun} in ngrok matches the spec; nothing is written to ngrok"),
            ),
            Phase::Observing { differences } => Shown::idle(
                OBSERVING,
                format!(
                    "Observe mode (events.ngrok.io/management: observe): managing would change {} field(s) of the {noun} in ngrok: {} (see status.drift); nothing is written to ngrok until the annotation is removed",
                    differences.len(),
                    differences.join(", ")
                ),
            ),
        }
    }
}

/// The three conditions for `phase` at `generation`, for a resource whose ngrok object is a
/// `noun`. A condition keeps its previous `lastTransitionTime` unless its status changes.
pub fn conditions(
    previous: &[Condition],
    generation: Option<i64>,
    phase: &Phase,
    noun: &str,
    now: &Time,
) -> Vec<Condition> {
    let Shown {
        ready,
        reconciling,
        stalled,
        reason,
        message,
    } = phase.shown(noun);
    [
        (READY, ready),
        (RECONCILING, reconciling),
        (STALLED, stalled),
    ]
    .into_iter()
    .map(|(type_, value)| {
        let status = if value { "True" } else { "False" }.to_string();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.clone(),
            observed_generation: generation,
            last_transition_time,
        }
    })
    .collect()
}

/// Whether a condition of this type is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The reason of a condition, if present.
pub fn reason<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn ready_sets_all_three_and_unchanged_state_is_identical() {
        let first = conditions(&[], Some(3), &Phase::Ready, "destination", &time(10));
        let summary: Vec<_> = first
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.observed_generation))
            .collect();
        assert_eq!(
            summary,
            [
                ("Ready", "True", Some(3)),
                ("Reconciling", "False", Some(3)),
                ("Stalled", "False", Some(3))
            ]
        );
        // A later pass with the same outcome yields the same list: no status write.
        assert_eq!(
            conditions(&first, Some(3), &Phase::Ready, "destination", &time(99)),
            first
        );
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let ready = conditions(&[], Some(1), &Phase::Ready, "destination", &time(10));
        let error = Error::SecretNotFound { name: "aws".into() };
        let stalled = conditions(
            &ready,
            Some(2),
            &Phase::Failed(&error),
            "destination",
            &time(20),
        );
        let get = |cs: &[Condition], t: &str| cs.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(get(&stalled, STALLED).status, "True");
        assert_eq!(get(&stalled, STALLED).reason, "SecretNotFound");
        assert_eq!(
            get(&stalled, STALLED).message,
            r#"Secret "aws" does not exist in this namespace"#
        );
        assert_eq!(get(&stalled, STALLED).last_transition_time, time(20));
        assert_eq!(get(&stalled, READY).last_transition_time, time(20));
        // Reconciling stayed False: its time is kept.
        assert_eq!(get(&stalled, RECONCILING).last_transition_time, time(10));
    }

    #[test]
    fn observing_is_ready_only_without_differences() {
        let none = Phase::Observing {
            differences: vec![],
        };
        let cs = conditions(&[], Some(1), &none, "destination", &time(1));
        assert!(is_true(&cs, READY));
        assert_eq!(reason(&cs, READY), Some(OBSERVING));
        let some = Phase::Observing {
            differences: vec!["description".into(), "target.kinesis.stream_arn".into()],
        };
        let cs = conditions(&[], Some(1), &some, "destination", &time(1));
        assert!(!is_true(&cs, READY) && !is_true(&cs, RECONCILING) && !is_true(&cs, STALLED));
        assert_eq!(reason(&cs, READY), Some(OBSERVING));
        let message = &cs[0].message;
        assert!(
            message.contains("2 field(s)")
                && message.contains("description, target.kinesis.stream_arn"),
            "{message}"
        );
    }

    #[test]
    fn transient_errors_reconcile_rather_than_stall() {
        let error = Error::CreateQueued;
        let cs = conditions(
            &[],
            Some(1),
            &Phase::Failed(&error),
            "destination",
            &time(1),
        );
        assert!(is_true(&cs, RECONCILING));
        assert!(!is_true(&cs, STALLED));
        assert!(!is_true(&cs, READY));
        assert_eq!(reason(&cs, READY), Some("CreateQueued"));
    }
}
