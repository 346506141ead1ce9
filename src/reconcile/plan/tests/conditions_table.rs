//! The README's conditions table (section "Status and conditions") as data: for each reason,
//! what the three conditions say, the kinds it applies to, errors or phases that show it, and
//! the test in which the plan decides it (`None`: another part of the engine does, e.g.
//! `prepare`, `act` or the client). [`the_table_is_the_readmes`] keeps the two tables equal,
//! and [`every_plan_decided_reason_names_a_test`] that each named test exists and runs for
//! each kind of its row.
//!
//! Reasons of one kind only, and why:
//! - `DestinationNotReady`, `DestinationOfAnotherNamespace`, `AccountMismatch`: a subscription
//!   names destinations (waits for them, may not name another namespace's or another
//!   account's); a destination names nothing.
//! - `RemoteFieldNotModeled`: a subscription's sources hold what the spec may not name (a
//!   dashboard filter, a field this operator does not model); a destination's update drops
//!   nothing.
//! - `DestinationInUse`: a destination is what subscriptions name, so only its deletion waits
//!   for them.

use ngrok_api::{FenceReason, Operation};

use super::*;

both_kinds!(every_reason_shows_its_row);

const README: &str = include_str!("../../../../README.md");

/// The sources of these tests, where [`Row::decided_by`] names a test.
const SOURCES: [&str; 7] = [
    include_str!("adoption.rs"),
    include_str!("conditions_table.rs"),
    include_str!("creation.rs"),
    include_str!("deletion.rs"),
    include_str!("drift_and_moves.rs"),
    include_str!("lost_create.rs"),
    include_str!("sync_and_modes.rs"),
];

/// The kinds a reason applies to.
#[derive(Clone, Copy, Debug)]
enum Kinds {
    Both,
    /// One kind's only (the module's comment says why).
    Destination,
    Subscription,
}

impl Kinds {
    fn include<K: Managed>(self) -> bool {
        match self {
            Kinds::Both => true,
            Kinds::Destination => K::KIND == <EventDestination as Managed>::KIND,
            Kinds::Subscription => K::KIND == <EventSubscription as Managed>::KIND,
        }
    }
}

/// What shows a reason.
enum Example {
    Fails(Error),
    Is(Phase<'static>),
}

struct Row {
    reason: &'static str,
    /// Ready, Reconciling, Stalled, as the README writes them (`True / False`: either).
    conditions: [&'static str; 3],
    kinds: Kinds,
    examples: Vec<Example>,
    /// The test in which the plan decides the reason, if the plan does.
    decided_by: Option<&'static str>,
}

fn ngrok(text: &str) -> ngrok_api::Error {
    ngrok_api::Error::Config(text.into())
}

fn fenced(reason: FenceReason) -> Error {
    Error::LeaseNotHeld(ngrok_api::Error::Fenced {
        operation: Operation {
            method: "POST",
            path: "/event_destinations".into(),
            resource: "destination",
        },
        reason,
        sent: false,
    })
}

/// The README's table, row by row.
fn table() -> Vec<Row> {
    use Example::{Fails, Is};
    use Kinds::*;
    let (ready, paused, reconciling, stalled) = (
        ["True", "False", "False"],
        ["False", "False", "False"],
        ["False", "True", "False"],
        ["False", "False", "True"],
    );
    let row = |reason, conditions, kinds, examples, decided_by| Row {
        reason,
        conditions,
        kinds,
        examples,
        decided_by,
    };
    let unreachable = Some("deletion_of_an_unreachable_account_ends");
    let (name, key) = (|| "s".to_string(), || "k".to_string());
    vec![
        row(
            "Synced",
            ready,
            Both,
            vec![Is(Phase::Ready)],
            Some("synced_when_ngrok_matches_the_spec"),
        ),
        row(
            "Paused",
            paused,
            Both,
            vec![Is(Phase::Paused)],
            Some("paused_changes_nothing"),
        ),
        row(
            "Observing",
            ["True / False", "False", "False"],
            Both,
            vec![
                Is(Phase::Observing {
                    differences: vec![],
                }),
                Is(Phase::Observing {
                    differences: vec!["description".into()],
                }),
            ],
            Some("observing_reports_differences_and_writes_nothing"),
        ),
        row(
            "Creating",
            reconciling,
            Both,
            vec![Is(Phase::Progressing {
                reason: "Creating",
                message: String::new(),
            })],
            Some("creating_when_there_is_no_object_yet"),
        ),
        row(
            "CreateQueued",
            reconciling,
            Both,
            vec![Fails(Error::CreateQueued)],
            Some("create_queued_only_behind_a_pending_create_of_the_same_account"),
        ),
        row(
            "NgrokUnavailable",
            reconciling,
            Both,
            vec![Fails(Error::NgrokUnavailable(ngrok("503")))],
            None,
        ),
        row(
            "NgrokUnexpectedResponse",
            reconciling,
            Both,
            vec![Fails(Error::NgrokUnexpectedResponse(ngrok("a redirect")))],
            None,
        ),
        row(
            "NgrokUnknownOutcome",
            reconciling,
            Both,
            vec![Fails(Error::NgrokUnknownOutcome(ngrok("timeout")))],
            Some("unknown_outcome_looks_for_the_lost_create_before_creating_again"),
        ),
        row(
            "LeaseExpiring",
            reconciling,
            Both,
            vec![Fails(fenced(FenceReason::LeaseExpiring))],
            None,
        ),
        row(
            "NotLeader",
            reconciling,
            Both,
            vec![
                Fails(fenced(FenceReason::NotLeader)),
                Fails(Error::NotLeader),
            ],
            None,
        ),
        row(
            "DestinationNotReady",
            reconciling,
            Subscription,
            vec![Fails(Error::DestinationNotReady {
                waiting: vec!["EventDestination \"a\"".into()],
            })],
            Some("waiting_for_other_resources_is_reconciling"),
        ),
        row(
            "DestinationInUse",
            reconciling,
            Destination,
            vec![
                Fails(Error::DestinationInUse {
                    subscriptions: vec!["ns/s".into()],
                }),
                Fails(Error::DestinationInUse {
                    subscriptions: vec![],
                }),
            ],
            Some("destination_in_use_by_ngrok_is_retried_naming_no_one"),
        ),
        row(
            "KubernetesError",
            reconciling,
            Both,
            vec![Fails(Error::Kube(
                kube::Error::LinesCodecMaxLineLengthExceeded,
            ))],
            None,
        ),
        row(
            "SecretNotFound",
            stalled,
            Both,
            vec![Fails(Error::SecretNotFound { name: name() })],
            unreachable,
        ),
        row(
            "SecretNotLabeled",
            stalled,
            Both,
            vec![Fails(Error::SecretNotLabeled {
                name: name(),
                namespace: "n".into(),
            })],
            unreachable,
        ),
        row(
            "SecretKeyNotFound",
            stalled,
            Both,
            vec![Fails(Error::SecretKeyNotFound {
                name: name(),
                key: key(),
            })],
            unreachable,
        ),
        row(
            "SecretValueInvalid",
            stalled,
            Both,
            vec![Fails(Error::SecretValueInvalid {
                name: name(),
                key: key(),
                problem: "is empty",
            })],
            unreachable,
        ),
        row(
            "ApiKeyMissing",
            stalled,
            Both,
            vec![Fails(Error::ApiKeyMissing)],
            unreachable,
        ),
        row(
            "InvalidSpec",
            stalled,
            Both,
            vec![
                Fails(Error::InvalidSpec {
                    field: "description",
                    problem: "too long".into(),
                }),
                Fails(Error::InvalidAnnotation {
                    annotation: ADOPT_ID_ANNOTATION,
                    problem: "names".into(),
                }),
            ],
            Some("an_adopt_id_other_than_the_managed_id_is_invalid"),
        ),
        row(
            "NgrokRejected",
            stalled,
            Both,
            vec![Fails(Error::NgrokRejected(ngrok("400")))],
            None,
        ),
        row(
            "NgrokAuthenticationFailed",
            stalled,
            Both,
            vec![Fails(Error::NgrokAuthentication(ngrok("401")))],
            unreachable,
        ),
        row(
            "AmbiguousCreate",
            stalled,
            Both,
            vec![Fails(Error::AmbiguousCreate {
                candidates: vec!["a".into(), "b".into()],
            })],
            Some("ambiguous_create_stalls_naming_the_candidates"),
        ),
        row(
            "AdoptTargetNotFound",
            stalled,
            Both,
            vec![Fails(Error::AdoptTargetNotFound { id: "x_5".into() })],
            Some("adopt_target_not_found_or_in_use_stalls"),
        ),
        row(
            "AdoptTargetInUse",
            stalled,
            Both,
            vec![
                Fails(Error::AdoptTargetInUse {
                    id: "x_5".into(),
                    owner: "Kind other".into(),
                }),
                Fails(Error::AdoptTargetNamedElsewhere { id: "ed_5".into() }),
            ],
            Some("adopt_target_not_found_or_in_use_stalls"),
        ),
        row(
            "DestinationOfAnotherNamespace",
            stalled,
            Subscription,
            vec![Fails(Error::DestinationOfAnotherNamespace {
                id: "ed_1".into(),
            })],
            None,
        ),
        row(
            "OperatorKeyNotAllowed",
            stalled,
            Both,
            vec![Fails(Error::OperatorKeyNotAllowed)],
            None,
        ),
        row(
            "AdoptionNotAllowed",
            stalled,
            Both,
            vec![Fails(Error::AdoptionNotAllowed {
                selector: None,
                namespace: "team-a".into(),
            })],
            Some("adoption_with_the_operator_key_is_for_selected_namespaces_only"),
        ),
        row(
            "InvalidSecret",
            stalled,
            Both,
            vec![Fails(Error::InvalidSecret {
                name: name(),
                key: key(),
                problem: "is over 512 bytes".into(),
            })],
            None,
        ),
        row(
            "RemoteFieldNotModeled",
            stalled,
            Subscription,
            vec![Fails(Error::RemoteFieldNotModeled {
                id: "esb_1".into(),
                fields: vec!["sources[http_request_complete.v0].filter".into()],
            })],
            Some("remote_field_not_modeled_when_an_update_would_drop_a_dashboard_filter"),
        ),
        row(
            "AccountMismatch",
            stalled,
            Subscription,
            vec![Fails(Error::AccountMismatch {
                destination: "d".into(),
            })],
            None,
        ),
        row(
            "RemoteUnreadable",
            reconciling,
            Both,
            vec![Fails(Error::RemoteUnreadable {
                id: "x_1".into(),
                detail: "a null field".into(),
            })],
            Some("defect_3_an_unreadable_object_is_left_alone"),
        ),
        row(
            "AccountChanged",
            stalled,
            Both,
            vec![Fails(Error::AccountChanged {
                old_id: "x_1".into(),
                cause: PreviousAccount::KeyRefused,
            })],
            Some("defect_2_a_move_to_another_account_takes_the_object_along"),
        ),
    ]
}

/// Each example of each row of the kind shows the row's conditions and reason.
fn every_reason_shows_its_row<K: Fixture>() {
    for row in table().into_iter().filter(|row| row.kinds.include::<K>()) {
        let [ready, reconciling, stalled] = row.conditions;
        let mut readies = Vec::new();
        for example in &row.examples {
            let failed;
            let phase = match example {
                Example::Fails(error) => {
                    failed = Phase::Failed(error);
                    &failed
                }
                Example::Is(phase) => phase,
            };
            let (shown_ready, shown_reconciling, shown_stalled, reason) = shown::<K>(phase);
            assert_eq!(reason, row.reason);
            assert_eq!(
                (shown_reconciling.as_str(), shown_stalled.as_str()),
                (reconciling, stalled),
                "{reason}"
            );
            readies.push(shown_ready);
        }
        readies.sort();
        readies.dedup();
        let mut expected: Vec<&str> = ready.split(" / ").collect();
        expected.sort();
        assert_eq!(readies, expected, "{}: Ready", row.reason);
    }
}

/// Each reason of the README's table, and its conditions, as written there.
fn readme_rows() -> Vec<(String, [String; 3])> {
    let section = README
        .split("## Status and conditions")
        .nth(1)
        .expect("the README has a section \"Status and conditions\"");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|line| line.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells[1] == "Ready" {
            continue;
        }
        let conditions = [cells[1].into(), cells[2].into(), cells[3].into()];
        for reason in cells[4].split('`').skip(1).step_by(2) {
            rows.push((reason.to_string(), conditions.clone()));
        }
    }
    rows
}

#[test]
fn the_table_is_the_readmes() {
    let readme = readme_rows();
    let table = table();
    assert!(readme.len() >= 30, "{readme:?}");
    for (reason, conditions) in &readme {
        let row = table.iter().find(|row| row.reason == reason);
        let row = row.unwrap_or_else(|| panic!("{reason}: in the README, not in this table"));
        assert_eq!(row.conditions, *conditions, "{reason}");
    }
    for row in &table {
        assert!(
            readme.iter().any(|(reason, _)| reason == row.reason),
            "{}: in this table, not in the README",
            row.reason
        );
    }
}

/// A reason the plan decides names a test that exists: generic and run for both kinds when
/// the reason is of both, a plain test when it is of one kind.
#[test]
fn every_plan_decided_reason_names_a_test() {
    // The names each `both_kinds!(…)` runs for both kinds.
    let both: Vec<&str> = SOURCES
        .iter()
        .flat_map(|source| source.split("both_kinds!(").skip(1))
        .flat_map(|list| list.split(')').next().unwrap_or_default().split(','))
        .map(str::trim)
        .collect();
    for row in table() {
        let Some(test) = row.decided_by else {
            continue;
        };
        let defined = |text: String| SOURCES.iter().any(|source| source.contains(&text));
        let exists = match row.kinds {
            Kinds::Both => defined(format!("fn {test}<K: Fixture>()")) && both.contains(&test),
            Kinds::Destination | Kinds::Subscription => defined(format!("#[test]\nfn {test}()")),
        };
        assert!(exists, "{}: no test {test} for {:?}", row.reason, row.kinds);
    }
}
