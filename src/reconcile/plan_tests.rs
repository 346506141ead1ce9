//! The engine's decisions, row by row: every row of the README's conditions table (what the
//! three conditions say for each reason), and every hard case met so far (`defect N` refers to
//! the numbered defects of issue 13).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use ngrok_api::Secret;
use ngrok_api::types::{EventDestination as Remote, EventDestinationCreate};
use serde_json::json;

use super::*;
use crate::accounts::{Account, Accounts};
use crate::conditions::{self, Phase};
use crate::crd::{EventDestination, EventDestinationStatus};
use crate::secrets::SecretValues;

const NOW: &str = "2026-11-29T12:00:00Z";

fn prepared(description: &str) -> Prepared<EventDestinationCreate> {
    let spec = serde_json::from_value(json!({
        "description": description,
        "target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}
    }))
    .unwrap();
    Prepared {
        desired: crate::desired::destination(&spec, &SecretValues::from_pairs([])).unwrap(),
        inputs_hash: "inputs-1".into(),
        has_secrets: false,
    }
}

fn remote(id: &str, description: &str, created_at: &str) -> Remote {
    let desired = prepared(description).desired;
    Remote {
        id: id.into(),
        uri: format!("https://api.ngrok.com/event_destinations/{id}"),
        created_at: created_at.into(),
        metadata: String::new(),
        description: description.into(),
        format: desired.format.clone(),
        target: desired.target.without_secrets(),
    }
}

fn ready() -> Vec<Condition> {
    vec![Condition {
        type_: conditions::READY.into(),
        status: "True".into(),
        reason: conditions::SYNCED.into(),
        message: String::new(),
        observed_generation: Some(1),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }]
}

/// A status: `id`, Ready or not, and the inputs last sent.
fn status(id: Option<&str>, is_ready: bool, inputs: Option<&str>) -> EventDestinationStatus {
    EventDestinationStatus {
        common: CommonStatus {
            id: id.map(String::from),
            observed_generation: Some(1),
            conditions: if is_ready { ready() } else { Vec::new() },
            ..Default::default()
        },
        secrets_hash: inputs.map(String::from),
        ..Default::default()
    }
}

fn pending(fingerprint: String) -> PendingCreate {
    PendingCreate {
        started_at: "2026-11-29T11:59:00Z".into(),
        fingerprint,
    }
}

/// The facts of a resource at generation 1, managed, nothing remembered.
fn facts<'a>(
    status: &'a EventDestinationStatus,
    prepared: &'a Prepared<EventDestinationCreate>,
) -> Facts<'a, EventDestination> {
    Facts {
        generation: Some(1),
        status,
        mode: Mode::Manage,
        adopt_id: None,
        adopt_owner: None,
        adoption: AdoptionRights::default(),
        prepared,
        refused_before: false,
        verified_recently: false,
        own_drift_schedule: false,
        created_unrecorded: None,
        leftover: None,
        previous_account: None,
    }
}

fn account(key: &str) -> Arc<Account> {
    let accounts = Accounts::new(None, Arc::new(ngrok_api::ClientConfig::new));
    accounts.get(&Secret::new(key)).unwrap()
}

/// The steps of a plan, by name, for comparison.
fn steps(plan: &Plan<EventDestination>) -> Vec<String> {
    plan.steps
        .iter()
        .map(|step| match step {
            Step::Adopt(r) => format!("Adopt {}", r.id),
            Step::RecordLostCreate {
                remote,
                content_changed,
            } => {
                format!("RecordLostCreate {} changed={content_changed}", remote.id)
            }
            Step::RecordCreated(r) => format!("RecordCreated {}", r.id),
            Step::ForgetGone(id) => format!("ForgetGone {id}"),
            Step::Create => "Create".into(),
            Step::DeleteFromOldAccount { id, .. } => format!("DeleteFromOldAccount {id}"),
            Step::Update {
                id, fields, cause, ..
            } => format!("Update {id} {fields} {cause:?}"),
            Step::Record(r) => format!("Record {}", r.id),
        })
        .collect()
}

/// (Ready, Reconciling, Stalled, reason) as the status would show them.
fn shown(phase: &Phase<'_>) -> (String, String, String, String) {
    let list = conditions::conditions(
        &[],
        Some(1),
        phase,
        "destination",
        &Time(Timestamp::UNIX_EPOCH),
    );
    let of = |type_: &str| {
        list.iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    };
    let reason = list
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    (
        of(conditions::READY),
        of(conditions::RECONCILING),
        of(conditions::STALLED),
        reason,
    )
}

fn outcome_shown(outcome: &Outcome) -> (String, String, String, String) {
    match outcome {
        Outcome::Ready => shown(&Phase::Ready),
        Outcome::Paused => shown(&Phase::Paused),
        Outcome::Observing(drift) => shown(&Phase::Observing {
            differences: drift.iter().map(|d| d.path.clone()).collect(),
        }),
        Outcome::Failed(error) => shown(&Phase::Failed(error)),
        Outcome::Unchanged => Default::default(),
    }
}

fn row(
    ready: &str,
    reconciling: &str,
    stalled: &str,
    reason: &str,
) -> (String, String, String, String) {
    (
        ready.into(),
        reconciling.into(),
        stalled.into(),
        reason.into(),
    )
}

/// The outcome of a pass that reads nothing from ngrok and changes nothing there.
fn quiet_outcome(f: &Facts<'_, EventDestination>) -> (String, String, String, String) {
    assert_eq!(read(f), Read::Nothing);
    let plan = plan(f, Seen::NotRead);
    assert!(plan.steps.is_empty(), "{:?}", steps(&plan));
    outcome_shown(&plan.outcome)
}

// --- The conditions table, row by row ------------------------------------------------------

/// Issue 19, item 2: a drift check off the account's shared pass (its own drift-interval)
/// reads its one object; a listing would cost ceil(N/100) calls at each of its checks.
#[test]
fn a_drift_check_on_its_own_schedule_reads_one_object_not_the_listing() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let mut f = facts(&s, &p);
    f.own_drift_schedule = true;
    assert_eq!(read(&f), Read::OwnDriftCheck("ed_1".into()));
    let plan = plan(&f, Seen::Found(remote("ed_1", "audit", NOW)));
    assert_eq!(steps(&plan), ["Record ed_1"]);
    // Checked a moment ago: no read, on either schedule.
    f.verified_recently = true;
    assert_eq!(read(&f), Read::Nothing);
    // Out of sync (the inputs changed): the object, as on the shared schedule.
    let s = status(Some("ed_1"), true, Some("old-inputs"));
    let f = Facts {
        own_drift_schedule: true,
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Object("ed_1".into()));
}

#[test]
fn synced_when_ngrok_matches_the_spec() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = facts(&s, &p);
    assert_eq!(
        read(&f),
        Read::Listing("ed_1".into()),
        "a drift check reads the shared listing"
    );
    let plan = plan(&f, Seen::Found(remote("ed_1", "audit", NOW)));
    assert_eq!(steps(&plan), ["Record ed_1"]);
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("True", "False", "False", "Synced")
    );
}

#[test]
fn synced_and_checked_a_moment_ago_reads_nothing() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = Facts {
        verified_recently: true,
        ..facts(&s, &p)
    };
    assert_eq!(quiet_outcome(&f), row("True", "False", "False", "Synced"));
}

#[test]
fn paused_changes_nothing() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("old-inputs"));
    let f = Facts {
        mode: Mode::Paused,
        ..facts(&s, &p)
    };
    assert_eq!(quiet_outcome(&f), row("False", "False", "False", "Paused"));
}

#[test]
fn observing_reports_differences_and_writes_nothing() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = Facts {
        mode: Mode::Observe,
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Object("ed_1".into()));
    let same = plan(&f, Seen::Found(remote("ed_1", "audit", NOW)));
    assert!(same.steps.is_empty());
    assert_eq!(
        outcome_shown(&same.outcome),
        row("True", "False", "False", "Observing")
    );
    let edited = plan(
        &f,
        Seen::Found(remote("ed_1", "edited in the dashboard", NOW)),
    );
    assert!(
        edited.steps.is_empty(),
        "observe mode never writes to ngrok"
    );
    assert_eq!(
        outcome_shown(&edited.outcome),
        row("False", "False", "False", "Observing")
    );
}

#[test]
fn observing_without_an_object_is_invalid() {
    let p = prepared("audit");
    let s = status(None, false, None);
    let f = Facts {
        mode: Mode::Observe,
        ..facts(&s, &p)
    };
    assert_eq!(
        quiet_outcome(&f),
        row("False", "False", "True", "InvalidSpec")
    );
}

#[test]
fn creating_when_there_is_no_object_yet() {
    let p = prepared("audit");
    let s = status(None, false, None);
    let f = facts(&s, &p);
    assert_eq!(
        read(&f),
        Read::Nothing,
        "a first create reads nothing from ngrok"
    );
    let plan = plan(&f, Seen::NotRead);
    assert_eq!(steps(&plan), ["Create"]);
    // Written before the POST, by `act::create`.
    let creating = Phase::Progressing {
        reason: "Creating",
        message: String::new(),
    };
    assert_eq!(shown(&creating), row("False", "True", "False", "Creating"));
}

#[test]
fn create_queued_only_behind_a_pending_create_of_the_same_account() {
    let fingerprint = "fp";
    let other = CommonStatus {
        pending_create: Some(pending(fingerprint.into())),
        ..Default::default()
    };
    let wait = |others: &[(&CommonStatus, bool)]| {
        create_must_wait(
            fingerprint,
            None,
            others
                .iter()
                .map(|(status, same)| (*status, "uid-other", *same)),
        )
    };
    assert!(wait(&[(&other, true)]));
    // Defect 5: a stale intent of another account (or of a resource this process has not
    // reconciled) held up every resource with the same content.
    assert!(!wait(&[(&other, false)]));
    assert!(!create_must_wait(
        "other content",
        None,
        [(&other, "uid-other", true)].into_iter()
    ));
    let created = CommonStatus {
        id: Some("ed_9".into()),
        ..other.clone()
    };
    assert!(!wait(&[(&created, true)]));
    assert_eq!(
        shown(&Phase::Failed(&Error::CreateQueued)),
        row("False", "True", "False", "CreateQueued")
    );
}

#[test]
fn unknown_outcome_looks_for_the_lost_create_before_creating_again() {
    let p = prepared("audit");
    let fingerprint = <EventDestination as Managed>::fingerprint(&p.desired);
    let mut s = status(None, false, None);
    s.common.pending_create = Some(pending(fingerprint.clone()));
    let f = facts(&s, &p);
    assert_eq!(read(&f), Read::LostCreate(pending(fingerprint.clone())));
    // None: the create did not happen.
    assert_eq!(
        steps(&plan(
            &f,
            Seen::Candidates {
                found: vec![],
                complete: true,
                alike: 1,
            }
        )),
        ["Create"]
    );
    // One: it did.
    let found = plan(
        &f,
        Seen::Candidates {
            found: vec![remote("ed_7", "audit", NOW)],
            complete: true,
            alike: 1,
        },
    );
    assert_eq!(steps(&found), ["RecordLostCreate ed_7 changed=false"]);
    assert_eq!(
        outcome_shown(&found.outcome),
        row("True", "False", "False", "Synced")
    );
    let error = Error::NgrokUnknownOutcome(ngrok_api::Error::Config("timeout".into()));
    assert_eq!(
        shown(&Phase::Failed(&error)),
        row("False", "True", "False", "NgrokUnknownOutcome")
    );
}

#[test]
fn ambiguous_create_stalls_naming_the_candidates() {
    let p = prepared("audit");
    let mut s = status(None, false, None);
    s.common.pending_create = Some(pending(<EventDestination as Managed>::fingerprint(
        &p.desired,
    )));
    let f = facts(&s, &p);
    let plan = plan(
        &f,
        Seen::Candidates {
            found: vec![remote("ed_b", "audit", NOW), remote("ed_a", "audit", NOW)],
            complete: true,
            alike: 1,
        },
    );
    assert!(plan.steps.is_empty());
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("False", "False", "True", "AmbiguousCreate")
    );
    let Outcome::Failed(error) = &plan.outcome else {
        panic!()
    };
    assert!(
        error.message().contains("ed_a, ed_b"),
        "{}",
        error.message()
    );
}

/// Twins (identical content) whose creates were both in flight when a process was killed:
/// two candidates and two intents. The first to search takes the oldest object; the other
/// (searching after, with that one claimed) finds the rest. A third candidate is a look-alike
/// nobody can place: a person decides.
#[test]
fn twins_lost_creates_are_shared_out_oldest_first() {
    let p = prepared("audit");
    let mut s = status(None, false, None);
    s.common.pending_create = Some(pending(<EventDestination as Managed>::fingerprint(
        &p.desired,
    )));
    let f = facts(&s, &p);
    let later = "2030-01-01T00:00:05Z";
    let twins = || vec![remote("ed_a", "audit", later), remote("ed_b", "audit", NOW)];
    let candidates = |found, alike| Seen::Candidates {
        found,
        complete: true,
        alike,
    };
    let taken = plan(&f, candidates(twins(), 2));
    assert_eq!(steps(&taken), ["RecordLostCreate ed_b changed=false"]);
    let mut three = twins();
    three.push(remote("ed_c", "audit", NOW));
    assert_eq!(
        outcome_shown(&plan(&f, candidates(three, 2)).outcome),
        row("False", "False", "True", "AmbiguousCreate")
    );
}

/// Defect 3: a lost create is not sent again while the account holds objects that cannot be
/// read: it may be one of them.
#[test]
fn defect_3_no_create_again_while_the_listing_is_incomplete() {
    let p = prepared("audit");
    let mut s = status(None, false, None);
    s.common.pending_create = Some(pending(<EventDestination as Managed>::fingerprint(
        &p.desired,
    )));
    let f = facts(&s, &p);
    let plan = plan(
        &f,
        Seen::Candidates {
            found: vec![],
            complete: false,
            alike: 1,
        },
    );
    assert!(plan.steps.is_empty());
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("False", "True", "False", "RemoteUnreadable")
    );
}

#[test]
fn lost_create_candidates_are_same_content_created_after_the_intent_and_unclaimed() {
    let p = prepared("audit");
    let fingerprint = <EventDestination as Managed>::fingerprint(&p.desired);
    let objects = [
        remote("ed_mine", "audit", NOW),
        remote("ed_other_content", "other", NOW),
        remote("ed_before", "audit", "2026-11-29T11:00:00Z"),
        remote("ed_claimed", "audit", NOW),
    ];
    let claimed = ["ed_claimed".to_string()].into();
    let found =
        lost_create_candidates::<EventDestination>(objects.iter(), &pending(fingerprint), &claimed);
    assert_eq!(
        found.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["ed_mine"]
    );
}

#[test]
fn ngrok_unavailable_and_kubernetes_errors_retry() {
    let unavailable = Error::NgrokUnavailable(ngrok_api::Error::Config("503".into()));
    assert_eq!(
        shown(&Phase::Failed(&unavailable)),
        row("False", "True", "False", "NgrokUnavailable")
    );
    let kube = Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded);
    assert_eq!(
        shown(&Phase::Failed(&kube)),
        row("False", "True", "False", "KubernetesError")
    );
}

#[test]
fn waiting_for_other_resources_is_reconciling() {
    let waiting = Error::DestinationNotReady {
        waiting: vec!["EventDestination \"a\"".into()],
    };
    assert_eq!(
        shown(&Phase::Failed(&waiting)),
        row("False", "True", "False", "DestinationNotReady")
    );
    let in_use = Error::DestinationInUse {
        subscriptions: vec!["ns/s".into()],
    };
    assert_eq!(
        shown(&Phase::Failed(&in_use)),
        row("False", "True", "False", "DestinationInUse")
    );
}

#[test]
fn what_a_person_must_fix_stalls() {
    let rejected = || ngrok_api::Error::Config("400".into());
    let rows = [
        (Error::SecretNotFound { name: "s".into() }, "SecretNotFound"),
        (
            Error::SecretNotLabeled {
                name: "s".into(),
                namespace: "n".into(),
            },
            "SecretNotLabeled",
        ),
        (
            Error::SecretKeyNotFound {
                name: "s".into(),
                key: "k".into(),
            },
            "SecretKeyNotFound",
        ),
        (
            Error::SecretValueInvalid {
                name: "s".into(),
                key: "k".into(),
                problem: "is empty",
            },
            "SecretValueInvalid",
        ),
        (Error::ApiKeyMissing, "ApiKeyMissing"),
        (
            Error::InvalidSpec {
                field: "description",
                problem: "too long".into(),
            },
            "InvalidSpec",
        ),
        (Error::NgrokRejected(rejected()), "NgrokRejected"),
        (
            Error::NgrokAuthentication(rejected()),
            "NgrokAuthenticationFailed",
        ),
        (
            Error::DestinationOfAnotherNamespace { id: "ed_1".into() },
            "DestinationOfAnotherNamespace",
        ),
        (Error::OperatorKeyNotAllowed, "OperatorKeyNotAllowed"),
        (
            Error::AccountMismatch {
                destination: "d".into(),
            },
            "AccountMismatch",
        ),
    ];
    for (error, reason) in rows {
        assert_eq!(
            shown(&Phase::Failed(&error)),
            row("False", "False", "True", reason),
            "{reason}"
        );
    }
}

#[test]
fn refused_inputs_are_not_sent_again() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), false, Some("inputs-1"));
    let f = Facts {
        refused_before: true,
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Nothing);
    let plan = plan(&f, Seen::NotRead);
    assert!(plan.steps.is_empty());
    assert!(
        matches!(plan.outcome, Outcome::Unchanged),
        "the Stalled status stays as written"
    );
}

#[test]
fn adoption_takes_the_object_and_sends_what_differs() {
    let p = prepared("audit");
    let s = status(None, false, None);
    let f = Facts {
        adopt_id: Some("ed_5"),
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Object("ed_5".into()));
    let plan = plan(&f, Seen::Found(remote("ed_5", "made by hand", NOW)));
    assert_eq!(
        steps(&plan),
        ["Adopt ed_5", "Update ed_5 description Spec", "Record ed_5"]
    );
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("True", "False", "False", "Synced")
    );
}

#[test]
fn adopt_target_not_found_or_in_use_stalls() {
    let p = prepared("audit");
    let s = status(None, false, None);
    let f = Facts {
        adopt_id: Some("ed_5"),
        ..facts(&s, &p)
    };
    let plan_gone = plan(&f, Seen::Gone { elsewhere: None });
    assert_eq!(
        outcome_shown(&plan_gone.outcome),
        row("False", "False", "True", "AdoptTargetNotFound")
    );
    let owned = Facts {
        adopt_owner: Some("EventDestination other".into()),
        ..facts(&s, &p)
    };
    let owned = Facts {
        adopt_id: Some("ed_5"),
        ..owned
    };
    assert_eq!(
        read(&owned),
        Read::Nothing,
        "no call for an id another resource manages"
    );
    let plan_owned = plan(&owned, Seen::NotRead);
    assert_eq!(
        outcome_shown(&plan_owned.outcome),
        row("False", "False", "True", "AdoptTargetInUse")
    );
}

/// Issue 19, item 4: with the operator-wide key, adoption is the platform team's to allow.
fn operator_key_rights(selected: bool, selector: Option<&str>) -> AdoptionRights {
    AdoptionRights {
        operator_key: true,
        namespace_selected: selected,
        selector: selector.map(String::from),
        namespace: "team-a".into(),
        named_by_another_namespace: false,
    }
}

/// The outcome and message of a pass refused before any call to ngrok.
fn refused(f: &Facts<'_, EventDestination>) -> ((String, String, String, String), String) {
    assert_eq!(read(f), Read::Nothing, "no call to ngrok");
    let plan = plan(f, Seen::NotRead);
    assert!(plan.steps.is_empty(), "{:?}", steps(&plan));
    let Outcome::Failed(error) = &plan.outcome else {
        panic!("not refused: {:?}", plan.outcome);
    };
    (outcome_shown(&plan.outcome), error.message())
}

#[test]
fn adoption_with_the_operator_key_is_for_selected_namespaces_only() {
    let p = prepared("audit");
    let s = status(None, false, None);
    for mode in [Mode::Manage, Mode::Observe] {
        let f = Facts {
            adopt_id: Some("ed_5"),
            mode,
            adoption: operator_key_rights(false, Some("team.example/adopt=true")),
            ..facts(&s, &p)
        };
        let (shown, message) = refused(&f);
        assert_eq!(shown, row("False", "False", "True", "AdoptionNotAllowed"));
        assert!(
            message.contains(
                "label the namespace to match --adoption-namespace-selector=team.example/adopt=true (kubectl label namespace team-a team.example/adopt=true)"
            ),
            "{message}"
        );
        assert!(message.contains("spec.apiKeyRef"), "{message}");
    }
    // No selector: no namespace may; a selector that is not one key=value is quoted as is.
    let f = Facts {
        adopt_id: Some("ed_5"),
        adoption: operator_key_rights(false, None),
        ..facts(&s, &p)
    };
    let (shown, message) = refused(&f);
    assert_eq!(shown, row("False", "False", "True", "AdoptionNotAllowed"));
    assert!(
        message.contains("--adoption-namespace-selector is not set"),
        "{message}"
    );
    let f = Facts {
        adopt_id: Some("ed_5"),
        adoption: operator_key_rights(false, Some("tier in (a,b)")),
        ..facts(&s, &p)
    };
    let (_, message) = refused(&f);
    assert!(
        message.contains("--adoption-namespace-selector=tier in (a,b),")
            && !message.contains("kubectl label"),
        "{message}"
    );
    // Paused: nothing is done, nothing refused.
    let f = Facts {
        adopt_id: Some("ed_5"),
        mode: Mode::Paused,
        adoption: operator_key_rights(false, None),
        ..facts(&s, &p)
    };
    assert_eq!(quiet_outcome(&f), row("False", "False", "False", "Paused"));
    // A selected namespace adopts.
    let f = Facts {
        adopt_id: Some("ed_5"),
        adoption: operator_key_rights(true, Some("team.example/adopt=true")),
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Object("ed_5".into()));
    let plan = plan(&f, Seen::Found(remote("ed_5", "audit", NOW)));
    assert_eq!(steps(&plan), ["Adopt ed_5", "Record ed_5"]);
}

#[test]
fn a_teams_own_account_is_theirs_to_adopt_from() {
    let p = prepared("audit");
    let s = status(None, false, None);
    let f = Facts {
        adopt_id: Some("ed_5"),
        adoption: AdoptionRights {
            operator_key: false,
            named_by_another_namespace: true,
            ..operator_key_rights(false, None)
        },
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Object("ed_5".into()));
    let plan = plan(&f, Seen::Found(remote("ed_5", "audit", NOW)));
    assert_eq!(steps(&plan), ["Adopt ed_5", "Record ed_5"]);
}

#[test]
fn an_id_another_namespaces_subscription_names_is_not_adopted_with_the_operator_key() {
    let p = prepared("audit");
    let s = status(None, false, None);
    let f = Facts {
        adopt_id: Some("ed_5"),
        adoption: AdoptionRights {
            named_by_another_namespace: true,
            ..operator_key_rights(true, Some("team.example/adopt=true"))
        },
        ..facts(&s, &p)
    };
    let (shown, message) = refused(&f);
    assert_eq!(shown, row("False", "False", "True", "AdoptTargetInUse"));
    assert!(
        message.contains("ed_5 is named by a subscription in another namespace"),
        "{message}"
    );
}

#[test]
fn an_adopt_id_other_than_the_managed_id_is_invalid() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    for mode in [Mode::Manage, Mode::Observe] {
        let f = Facts {
            adopt_id: Some("ed_2"),
            mode,
            ..facts(&s, &p)
        };
        let (shown, message) = refused(&f);
        assert_eq!(shown, row("False", "False", "True", "InvalidSpec"));
        assert!(
            message.contains("names ed_2, but this resource manages ed_1 (status.id): remove the annotation, or set it to ed_1"),
            "{message}"
        );
    }
    // The id it adopted: nothing to refuse, even where adopting is no longer allowed (it was
    // adopted before).
    let f = Facts {
        adopt_id: Some("ed_1"),
        adoption: operator_key_rights(false, None),
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Listing("ed_1".into()));
    let plan = plan(&f, Seen::Found(remote("ed_1", "audit", NOW)));
    assert_eq!(steps(&plan), ["Record ed_1"]);
}

#[test]
fn a_spec_change_reads_the_object_and_patches_what_differs() {
    let p = prepared("new description");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = Facts {
        generation: Some(2),
        ..facts(&s, &p)
    };
    assert_eq!(
        read(&f),
        Read::Object("ed_1".into()),
        "not in sync: one GET"
    );
    let plan = plan(&f, Seen::Found(remote("ed_1", "old", NOW)));
    assert_eq!(
        steps(&plan),
        ["Update ed_1 description Spec", "Record ed_1"]
    );
}

#[test]
fn a_dashboard_edit_is_reverted() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = facts(&s, &p);
    let plan = plan(&f, Seen::Found(remote("ed_1", "edited", NOW)));
    assert_eq!(
        steps(&plan),
        ["Update ed_1 description Drift", "Record ed_1"]
    );
}

#[test]
fn a_dashboard_delete_is_created_again() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = facts(&s, &p);
    let plan = plan(&f, Seen::Gone { elsewhere: None });
    assert_eq!(steps(&plan), ["ForgetGone ed_1", "Create"]);
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("True", "False", "False", "Synced")
    );
}

// --- Defects --------------------------------------------------------------------------------

/// Defect 1: the API server failed the status write that records a new id. The next pass
/// takes the object this process created, and never creates a twin.
#[test]
fn defect_1_a_failed_write_of_a_new_id_is_not_a_lost_object() {
    let p = prepared("audit");
    let fingerprint = <EventDestination as Managed>::fingerprint(&p.desired);
    let mut s = status(None, false, None);
    s.common.pending_create = Some(pending(fingerprint.clone()));
    let created = remote("ed_1", "audit", NOW);
    let f = Facts {
        created_unrecorded: Some(&created),
        ..facts(&s, &p)
    };
    assert_eq!(read(&f), Read::Nothing, "no listing: the id is known");
    assert_eq!(steps(&plan(&f, Seen::NotRead)), ["RecordCreated ed_1"]);
    // After a restart the memory is gone: the listing finds the resource's own object, as it
    // is not claimed by any other.
    let found = lost_create_candidates::<EventDestination>(
        [created.clone()].iter(),
        &pending(fingerprint),
        &Default::default(),
    );
    assert_eq!(found.len(), 1);
}

/// Defect 2: a change of API key to another account is not a dashboard delete.
#[test]
fn defect_2_a_move_to_another_account_takes_the_object_along() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let old = account("old-account-key");
    let f = Facts {
        previous_account: Some(&old),
        ..facts(&s, &p)
    };
    let moved = plan(
        &f,
        Seen::Gone {
            elsewhere: Some(Elsewhere::InOldAccount(remote("ed_1", "audit", NOW))),
        },
    );
    assert_eq!(
        steps(&moved),
        ["ForgetGone ed_1", "Create", "DeleteFromOldAccount ed_1"]
    );
    // The old key no longer works and the accounts cannot be told the same: a person decides.
    let stalled = plan(
        &f,
        Seen::Gone {
            elsewhere: Some(Elsewhere::CannotTell(
                crate::error::PreviousAccount::KeyRefused,
            )),
        },
    );
    assert!(stalled.steps.is_empty());
    assert_eq!(
        outcome_shown(&stalled.outcome),
        row("False", "False", "True", "AccountChanged")
    );
    let Outcome::Failed(error) = &stalled.outcome else {
        panic!()
    };
    assert!(
        error.message().contains("ed_1"),
        "names the old id: {}",
        error.message()
    );
    // A rotation within the account: the object is seen with the new key, nothing is created.
    let rotated = plan(&f, Seen::Found(remote("ed_1", "audit", NOW)));
    assert_eq!(steps(&rotated), ["Record ed_1"]);
    // Same account, and the object is really gone: created again.
    let deleted = plan(
        &f,
        Seen::Gone {
            elsewhere: Some(Elsewhere::SameAccount),
        },
    );
    assert_eq!(steps(&deleted), ["ForgetGone ed_1", "Create"]);
    let both = plan(
        &f,
        Seen::Gone {
            elsewhere: Some(Elsewhere::GoneFromBoth),
        },
    );
    assert_eq!(steps(&both), ["ForgetGone ed_1", "Create"]);
}

/// Defect 2: a move whose delete in the old account failed finishes it on the next pass.
#[test]
fn defect_2_a_leftover_of_a_move_is_deleted_next() {
    let p = prepared("audit");
    let s = status(Some("ed_2"), true, Some("inputs-1"));
    let leftover = ("ed_1".to_string(), account("old-account-key"));
    let f = Facts {
        leftover: Some(&leftover),
        ..facts(&s, &p)
    };
    let plan = plan(&f, Seen::Found(remote("ed_2", "audit", NOW)));
    assert_eq!(steps(&plan), ["DeleteFromOldAccount ed_1", "Record ed_2"]);
}

/// Defect 3: an object the client cannot read is not compared, not re-created, and only it
/// is affected; it is retried, not stalled.
#[test]
fn defect_3_an_unreadable_object_is_left_alone() {
    let p = prepared("audit");
    let s = status(Some("ed_1"), true, Some("inputs-1"));
    let f = facts(&s, &p);
    let plan = plan(&f, Seen::Unreadable("unknown target type splunk".into()));
    assert!(plan.steps.is_empty(), "neither updated nor created again");
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("False", "True", "False", "RemoteUnreadable")
    );
}

/// Defect 6: a reconcile that starts from the status this process wrote (not a stale cache)
/// sees the id and creates nothing.
#[test]
fn defect_6_a_resource_with_an_id_is_never_created_again_without_a_look() {
    let p = prepared("audit");
    for s in [
        status(Some("ed_1"), true, Some("inputs-1")),
        status(Some("ed_1"), false, None),
    ] {
        let f = facts(&s, &p);
        assert_ne!(read(&f), Read::Nothing);
        assert_eq!(
            steps(&plan(&f, Seen::Found(remote("ed_1", "audit", NOW))))
                .last()
                .unwrap(),
            "Record ed_1"
        );
    }
}

/// Two resources of the same content whose creates were both in flight when a process was
/// killed: the older intent goes first (then the smaller uid), the other waits for it, and
/// never the two for each other (they did, for ever, in a CI run of `tests/kill.rs`).
#[test]
fn two_pending_creates_of_the_same_content_queue_by_age_then_uid() {
    let at = |started_at: &str| PendingCreate {
        started_at: started_at.into(),
        fingerprint: "fp".into(),
    };
    let (older, newer) = (at("2026-11-30T02:23:28.4Z"), at("2026-11-30T02:23:38.085Z"));
    let status = |p: &PendingCreate| CommonStatus {
        pending_create: Some(p.clone()),
        ..Default::default()
    };
    let must_wait = |own: &PendingCreate, uid: &str, other: &PendingCreate, other_uid: &str| {
        let other = status(other);
        create_must_wait(
            "fp",
            Some((own, uid)),
            [(&other, other_uid, true)].into_iter(),
        )
    };
    assert!(must_wait(&newer, "b", &older, "a"), "the newer waits");
    assert!(!must_wait(&older, "a", &newer, "b"), "the older goes");
    // The same moment: the smaller uid goes.
    assert!(must_wait(&older, "b", &older, "a"));
    assert!(!must_wait(&older, "a", &older, "b"));
    // An intent of other content (the spec changed since) keeps no place in this queue.
    let stale = PendingCreate {
        fingerprint: "before".into(),
        ..older.clone()
    };
    assert!(must_wait(&stale, "a", &newer, "b"));
}

/// Issue 19: a paused (or observing, or deleted) resource's intent held every identical create
/// of its account for ever (`CreateQueued`); an intent holds others only while its resource is
/// managed, and only for a bounded age.
#[test]
fn an_intent_holds_others_only_while_managed_and_young() {
    let now: Timestamp = NOW.parse().unwrap();
    let at = |started_at: &str| PendingCreate {
        started_at: started_at.into(),
        fingerprint: "fp".into(),
    };
    let young = at("2026-11-29T11:59:00Z");
    assert!(intent_holds_others(&young, true, now));
    assert!(
        !intent_holds_others(&young, false, now),
        "paused: held for ever"
    );
    let old = at("2026-11-29T11:49:59Z");
    assert!(
        !intent_holds_others(&old, true, now),
        "older than any create"
    );
    assert!(!intent_holds_others(&at("not a time"), true, now));
}

fn cleanup_facts<'a>(
    id: Option<&'a str>,
    pending: Option<&'a PendingCreate>,
    kept: Option<&'static str>,
) -> CleanupFacts<'a> {
    CleanupFacts { id, pending, kept }
}

/// A deletion's plan, by name.
fn deletion(d: &Deletion) -> String {
    match d {
        Deletion::Release => "Release".into(),
        Deletion::Retain { id, why } => format!("Retain {id} ({why})"),
        Deletion::Delete(id) => format!("Delete {id}"),
        Deletion::Unconfirmed { what, .. } => format!("Unconfirmed {what}"),
        Deletion::Failed(e) => format!("Failed {} stalled={}", e.reason(), e.is_stalled()),
    }
}

#[test]
fn deletion_deletes_retains_or_releases() {
    let p = pending("fp".into());
    let plan = |f: &CleanupFacts<'_>| deletion(&cleanup::<Remote>(f, Seen::NotRead));
    // Retained (Retain, paused, observing): released without the account.
    let kept = cleanup_facts(Some("ed_1"), None, Some("deletionPolicy is Retain"));
    assert!(!cleanup_needs_account(&kept));
    assert_eq!(plan(&kept), "Retain ed_1 (deletionPolicy is Retain)");
    let kept_intent = cleanup_facts(None, Some(&p), Some("the resource is paused"));
    assert_eq!(cleanup_read(&kept_intent), Read::Nothing);
    assert_eq!(plan(&kept_intent), "Release");
    // Never created: nothing to read, nothing to delete.
    let never = cleanup_facts(None, None, None);
    assert!(!cleanup_needs_account(&never));
    assert_eq!(plan(&never), "Release");
    // An id: deleted, nothing read first.
    let with_id = cleanup_facts(Some("ed_1"), Some(&p), None);
    assert_eq!(cleanup_read(&with_id), Read::Nothing);
    assert_eq!(plan(&with_id), "Delete ed_1");
}

/// Cleanup's lost-create search is creation's: the same candidates (claimed ids excluded),
/// the twin rule, and an incomplete listing with no match is not "nothing was created".
#[test]
fn deletion_of_a_lost_create_follows_creations_rule() {
    let p = prepared("audit");
    let fingerprint = <EventDestination as Managed>::fingerprint(&p.desired);
    let intent = pending(fingerprint);
    let facts = cleanup_facts(None, Some(&intent), None);
    assert!(cleanup_needs_account(&facts));
    assert_eq!(cleanup_read(&facts), Read::LostCreate(intent.clone()));
    let seen = |found: Vec<Remote>, complete: bool, alike: usize| Seen::Candidates {
        found,
        complete,
        alike,
    };
    let plan = |s| deletion(&cleanup(&facts, s));
    assert_eq!(plan(seen(vec![], true, 1)), "Release");
    // Defect (issue 19): an incomplete listing without a match released the resource, and the
    // object among the unreadable ones stayed in ngrok, unowned.
    assert_eq!(
        plan(seen(vec![], false, 1)),
        "Failed RemoteUnreadable stalled=false"
    );
    let mine = remote("ed_mine", "audit", NOW);
    assert_eq!(plan(seen(vec![mine.clone()], true, 1)), "Delete ed_mine");
    // Twins: the oldest, as creation takes it; more than the twins, a person decides.
    let twin = remote("ed_twin", "audit", "2026-11-29T12:00:01Z");
    assert_eq!(
        plan(seen(vec![twin.clone(), mine.clone()], true, 2)),
        "Delete ed_mine"
    );
    assert_eq!(
        plan(seen(vec![twin.clone(), mine.clone()], true, 1)),
        "Failed AmbiguousCreate stalled=true"
    );
    // Claimed ids (another resource's status, or created by this process and not yet
    // recorded) are never candidates: defect (issue 19), cleanup deleted another resource's
    // object created a moment earlier.
    let claimed = std::collections::HashSet::from(["ed_twin".to_string()]);
    let found = lost_create_candidates::<EventDestination>(
        [mine.clone(), twin.clone()].iter(),
        &intent,
        &claimed,
    );
    assert_eq!(plan(seen(found, true, 1)), "Delete ed_mine");
}

/// Deletion always ends: an account that cannot be reached is retried a bounded number of
/// times (with its cause's reason, not Stalled), then the resource goes with a Warning.
#[test]
fn deletion_of_an_unreachable_account_ends() {
    let facts = cleanup_facts(Some("ed_1"), None, None);
    let cause = || Error::SecretNotFound {
        name: "ngrok".into(),
    };
    for attempt in 1..UNREACHABLE_DELETE_ATTEMPTS {
        let planned = unreachable(&facts, attempt, cause());
        assert_eq!(
            deletion(&planned),
            "Failed SecretNotFound stalled=false",
            "{attempt}"
        );
        let Deletion::Failed(error) = planned else {
            unreachable!()
        };
        let message = error.message();
        assert!(message.contains("ed_1"), "{message}");
        assert_eq!(
            shown(&Phase::Failed(&error)),
            row("False", "True", "False", "SecretNotFound")
        );
    }
    assert_eq!(
        deletion(&unreachable(&facts, UNREACHABLE_DELETE_ATTEMPTS, cause())),
        "Unconfirmed ed_1"
    );
    let intent = pending("fp".into());
    let lost = cleanup_facts(None, Some(&intent), None);
    let Deletion::Unconfirmed { what, cause } =
        unreachable(&lost, UNREACHABLE_DELETE_ATTEMPTS, cause())
    else {
        panic!("released")
    };
    assert!(what.contains("lost"), "{what}");
    assert!(cause.contains("ngrok"), "{cause}");
}

/// ngrok's refusal to delete a destination a subscription names is `DestinationInUse`:
/// retried, and naming no one when only ngrok knows who names it.
#[test]
fn destination_in_use_by_ngrok_is_retried_naming_no_one() {
    let error = Error::DestinationInUse {
        subscriptions: Vec::new(),
    };
    assert_eq!(
        shown(&Phase::Failed(&error)),
        row("False", "True", "False", "DestinationInUse")
    );
    let message = error.message();
    assert!(!message.contains("EventSubscription "), "{message}");
    assert!(message.contains("retried"), "{message}");
}

// --- A subscription whose update would drop what ngrok holds outside the spec (issue 21) -----

/// An adopted subscription with a filter set in ngrok's dashboard that the spec does not name:
/// no update is sent (`RemoteFieldNotModeled`, Stalled), the adoption is still recorded; once
/// the spec names the filter, it is Synced without an update.
#[test]
fn remote_field_not_modeled_when_an_update_would_drop_a_dashboard_filter() {
    use crate::crd::{CommonStatus, EventSubscription, EventSubscriptionStatus};
    use ngrok_api::types::{EventSource, EventSubscription as RemoteSubscription, Ref};

    const DASHBOARD_FILTER: &str = "ev.conn.server_port == 443";
    let prepared = |filter: Option<&str>| {
        let spec = serde_json::from_value(json!({
            "sources": [{"type": "http_request_complete.v0", "filter": filter}],
            "destinationIds": ["ed_1"]
        }))
        .unwrap();
        Prepared {
            desired: crate::desired::subscription::desired(&spec, &[]).unwrap(),
            inputs_hash: "ed_1".into(),
            has_secrets: false,
        }
    };
    let remote = RemoteSubscription {
        id: "esb_1".into(),
        uri: String::new(),
        created_at: NOW.into(),
        metadata: String::new(),
        description: String::new(),
        sources: vec![EventSource {
            filter: DASHBOARD_FILTER.into(),
            ..EventSource::new("http_request_complete.v0")
        }],
        destinations: vec![Ref {
            id: "ed_1".into(),
            uri: String::new(),
        }],
    };
    let status = EventSubscriptionStatus {
        common: CommonStatus {
            observed_generation: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let (unnamed, named) = (prepared(None), prepared(Some(DASHBOARD_FILTER)));
    let replacements = [
        prepared(Some("ev.conn.server_port == 80")),
        prepared(Some("")),
    ];
    let facts = |prepared| Facts::<'_, EventSubscription> {
        generation: Some(1),
        status: &status,
        mode: Mode::Manage,
        adopt_id: Some("esb_1"),
        adopt_owner: None,
        adoption: AdoptionRights::default(),
        prepared,
        refused_before: false,
        verified_recently: false,
        own_drift_schedule: false,
        created_unrecorded: None,
        leftover: None,
        previous_account: None,
    };
    let names = |plan: &Plan<EventSubscription>| -> Vec<String> {
        plan.steps
            .iter()
            .map(|step| match step {
                Step::Adopt(r) => format!("Adopt {}", r.id),
                Step::Update { id, fields, .. } => format!("Update {id} {fields}"),
                Step::Record(r) => format!("Record {}", r.id),
                _ => "other".into(),
            })
            .collect()
    };

    let plan = plan(&facts(&unnamed), Seen::Found(remote.clone()));
    assert_eq!(names(&plan), ["Adopt esb_1"], "adopted, nothing sent");
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("False", "False", "True", "RemoteFieldNotModeled")
    );
    let Outcome::Failed(error) = &plan.outcome else {
        unreachable!()
    };
    let message = error.message();
    assert!(
        message.contains("sources[http_request_complete.v0].filter")
            && message.contains("name it in the spec")
            && !message.contains(DASHBOARD_FILTER),
        "{message}"
    );

    let plan = super::plan(&facts(&named), Seen::Found(remote.clone()));
    assert_eq!(names(&plan), ["Adopt esb_1", "Record esb_1"]);
    assert_eq!(
        outcome_shown(&plan.outcome),
        row("True", "False", "False", "Synced")
    );

    // Another filter, or `""`, replaces it on purpose: one update of the sources.
    for replaced in &replacements {
        let plan = super::plan(&facts(replaced), Seen::Found(remote.clone()));
        assert_eq!(
            names(&plan),
            ["Adopt esb_1", "Update esb_1 sources", "Record esb_1"]
        );
    }
}

/// The policy in effect, row by row: the resource's own, else the namespace's annotation, else
/// the operator's; an unreadable annotation keeps.
#[test]
fn the_deletion_policy_in_effect_comes_from_the_resource_the_namespace_or_the_operator() {
    use crate::crd::DeletionPolicy::{self, Delete, Retain};
    use PolicySource::*;
    // (own, the namespace's annotation, the operator's) → (policy in effect, source)
    type Row<'a> = (
        Option<DeletionPolicy>,
        Option<&'a str>,
        DeletionPolicy,
        DeletionPolicy,
        PolicySource,
    );
    let rows: [Row; 8] = [
        (Some(Delete), Some("Retain"), Retain, Delete, Resource),
        (Some(Retain), Some("Delete"), Delete, Retain, Resource),
        (Some(Delete), Some("typo"), Retain, Delete, Resource),
        (None, Some("Retain"), Delete, Retain, Namespace),
        (None, Some("Delete"), Retain, Delete, Namespace),
        (None, Some("retain"), Delete, Retain, UnreadableNamespace),
        (None, Some(""), Delete, Retain, UnreadableNamespace),
        (None, None, Retain, Retain, Operator),
    ];
    for (own, namespace, operator, policy, source) in rows {
        assert_eq!(
            policy_in_effect(own, namespace, operator),
            PolicyInEffect { policy, source },
            "{own:?} {namespace:?} {operator:?}"
        );
    }
    assert_eq!(
        policy_in_effect(None, None, Delete),
        PolicyInEffect {
            policy: Delete,
            source: Operator
        }
    );
}

#[test]
fn what_keeps_an_object_says_where_the_policy_came_from() {
    use crate::crd::DeletionPolicy::{Delete, Retain};
    let effect = |policy, source| PolicyInEffect { policy, source };
    let kept =
        |policy, source, paused, observing| kept_because(effect(policy, source), paused, observing);
    assert_eq!(
        kept(Retain, PolicySource::Resource, false, Some(false)),
        Some("deletionPolicy is Retain")
    );
    assert_eq!(
        kept(Retain, PolicySource::Namespace, false, Some(false)),
        Some("the namespace's default deletion policy is Retain")
    );
    assert!(
        kept(
            Retain,
            PolicySource::UnreadableNamespace,
            false,
            Some(false)
        )
        .unwrap()
        .contains("neither Delete nor Retain")
    );
    assert_eq!(
        kept(Retain, PolicySource::Operator, false, Some(false)),
        Some("the operator's --default-deletion-policy is Retain")
    );
    assert_eq!(
        kept(Delete, PolicySource::Operator, true, Some(false)),
        Some("the resource is paused")
    );
    assert_eq!(
        kept(Delete, PolicySource::Namespace, false, Some(true)),
        Some("the resource only observes")
    );
    assert_eq!(
        kept(Delete, PolicySource::Resource, false, None),
        Some("the resource only observes")
    );
    assert_eq!(
        kept(Delete, PolicySource::Namespace, false, Some(false)),
        None
    );
}
