//! The engine's decisions, row by row, for both kinds: every row of the README's conditions
//! table (what the three conditions say for each reason: `conditions_table.rs`), and every
//! hard case met so far (`defect N` refers to the numbered defects of issue 13).
//!
//! Each behaviour is written once, generic over [`Fixture`] (what a test needs of a kind), and
//! [`both_kinds!`] runs it for `EventDestination` and `EventSubscription`: a module named as
//! the behaviour, with a `destination` and a `subscription` test. A behaviour of one kind only
//! is a plain `#[test]` beside them that says why; so is a decision that takes no kind (the
//! create queue, the deletion policy).
//!
//! In ids and in the renderings of plans, `#` stands for the kind's id prefix: `"Record #1"`
//! is `Record ed_1` for a destination and `Record esb_1` for a subscription.

/// Runs each generic behaviour `name::<K>()` for both kinds: a module `name` with the tests
/// `destination` and `subscription` (a module and a function may share a name).
macro_rules! both_kinds {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn destination() {
                super::$name::<crate::crd::EventDestination>();
            }
            #[test]
            fn subscription() {
                super::$name::<crate::crd::EventSubscription>();
            }
        }
    )+};
}

mod adoption;
mod conditions_table;
mod creation;
mod deletion;
mod drift_and_moves;
mod lost_create;
mod sync_and_modes;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use ngrok_api::types::{
    EventDestination as RemoteDestination, EventDestinationCreate, EventSource,
    EventSubscription as RemoteSubscription, EventSubscriptionCreate, Ref,
};
use serde_json::json;

use super::apply::*;
use super::deletion::*;
use super::queue::*;
use super::*;
use crate::conditions::{self, Phase};
use crate::crd::{ADOPT_ID_ANNOTATION, EventDestination, EventSubscription};
use crate::reconcile::managed::ManagedStatus;
use crate::secrets::SecretValues;

const NOW: &str = "2026-11-29T12:00:00Z";
/// The inputs of every [`Fixture::prepared`] request: recorded as sent, the resource is in sync.
const INPUTS: &str = "inputs-1";
/// The one event type of the subscription fixture.
const SOURCE: &str = "http_request_complete.v0";

/// What a test needs of a kind: the request and the ngrok object of a spec that differs only
/// by its description, and where the status records the inputs last sent.
trait Fixture: Managed {
    /// The request of a spec described `description` (the rest of its content fixed).
    fn request(description: &str) -> Self::Desired;
    /// The object ngrok holds for [`Fixture::request`]`(description)`; `#` in `id` is the
    /// kind's prefix.
    fn remote(id: &str, description: &str, created_at: &str) -> Self::Remote;
    /// Records in `status` that inputs `inputs` were sent.
    fn record_sent(status: &mut Self::Status, inputs: &str);

    /// A request of `description`, built from [`INPUTS`].
    fn prepared(description: &str) -> Prepared<Self::Desired> {
        Prepared {
            desired: Self::request(description),
            inputs_hash: Self::recorded_inputs(&Self::status_of(None, false, Some(INPUTS)))
                .expect("inputs recorded"),
            has_secrets: false,
        }
    }

    /// A status at generation 1: `id`, Ready (Synced) or not, and the inputs last sent.
    fn status_of(id: Option<&str>, ready: bool, inputs: Option<&str>) -> Self::Status {
        let mut status = Self::Status::default();
        let common = status.common_mut();
        common.id = id.map(id_of::<Self>);
        common.observed_generation = Some(1);
        if ready {
            common.conditions = vec![Condition {
                type_: conditions::READY.into(),
                status: "True".into(),
                reason: conditions::SYNCED.into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }];
        }
        if let Some(inputs) = inputs {
            Self::record_sent(&mut status, inputs);
        }
        status
    }

    /// An intent, written a minute before [`NOW`], to create the content of `"audit"`.
    fn pending() -> PendingCreate {
        pending(Self::fingerprint(&Self::request("audit")))
    }
}

impl Fixture for EventDestination {
    fn request(description: &str) -> EventDestinationCreate {
        let spec = serde_json::from_value(json!({
            "description": description,
            "target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}
        }))
        .unwrap();
        crate::desired::destination(&spec, &SecretValues::from_pairs([])).unwrap()
    }

    fn remote(id: &str, description: &str, created_at: &str) -> RemoteDestination {
        let desired = Self::request(description);
        let id = id_of::<Self>(id);
        RemoteDestination {
            uri: format!("https://api.ngrok.com/event_destinations/{id}"),
            id,
            created_at: created_at.into(),
            metadata: String::new(),
            description: description.into(),
            format: desired.format.clone(),
            target: desired.target.without_secrets(),
        }
    }

    fn record_sent(status: &mut Self::Status, inputs: &str) {
        status.secrets_hash = Some(inputs.into());
    }
}

impl Fixture for EventSubscription {
    /// A subscription of [`SOURCE`] to the destination its `destinationRefs` resolved to.
    fn request(description: &str) -> EventSubscriptionCreate {
        let spec = serde_json::from_value(json!({
            "description": description,
            "sources": [{"type": SOURCE}],
            "destinationRefs": [{"name": "audit"}]
        }))
        .unwrap();
        crate::desired::subscription::desired(&spec, &["ed_1".into()]).unwrap()
    }

    fn remote(id: &str, description: &str, created_at: &str) -> RemoteSubscription {
        let id = id_of::<Self>(id);
        RemoteSubscription {
            uri: format!("https://api.ngrok.com/event_subscriptions/{id}"),
            id,
            created_at: created_at.into(),
            metadata: String::new(),
            description: description.into(),
            sources: vec![EventSource::new(SOURCE)],
            destinations: vec![Ref {
                id: "ed_1".into(),
                uri: String::new(),
            }],
        }
    }

    /// A subscription's inputs are the destination ids sent and the key they were sent with.
    fn record_sent(status: &mut Self::Status, inputs: &str) {
        status.destination_ids = vec!["ed_1".into()];
        status.common.key_fingerprint = Some(inputs.into());
    }
}

/// `id` with `#` as the kind's prefix: `#1` is `ed_1`, `esb_1`.
fn id_of<K: Managed>(id: &str) -> String {
    id.replace('#', K::ID_PREFIX)
}

/// `id` as the renderings show it: the kind's prefix as `#` (another prefix is left, to show).
fn short<K: Managed>(id: &str) -> String {
    match id.strip_prefix(K::ID_PREFIX) {
        Some(rest) => format!("#{rest}"),
        None => id.to_string(),
    }
}

fn pending(fingerprint: String) -> PendingCreate {
    PendingCreate {
        started_at: "2026-11-29T11:59:00Z".into(),
        fingerprint,
    }
}

/// What the [`Facts`] of a resource borrow: its status and its request.
struct Given<K: Fixture> {
    status: K::Status,
    prepared: Prepared<K::Desired>,
}

impl<K: Fixture> Given<K> {
    /// A status (see [`Fixture::status_of`]) and the request of `"audit"`.
    fn status(id: Option<&str>, ready: bool, inputs: Option<&str>) -> Self {
        Self {
            status: K::status_of(id, ready, inputs),
            prepared: K::prepared("audit"),
        }
    }

    /// Never created: no id, nothing sent.
    fn new() -> Self {
        Self::status(None, false, None)
    }

    /// In sync: `id`, Ready, and the inputs of its request sent.
    fn synced(id: &str) -> Self {
        Self::status(Some(id), true, Some(INPUTS))
    }

    /// With an intent to create its content (see [`Fixture::pending`]).
    fn pending(mut self) -> Self {
        self.status.common_mut().pending_create = Some(K::pending());
        self
    }

    /// Its request describes `description` instead.
    fn describing(mut self, description: &str) -> Self {
        self.prepared = K::prepared(description);
        self
    }

    /// The facts of the resource at generation 1, managed, nothing remembered.
    fn facts(&self) -> Facts<'_, K> {
        Facts {
            generation: Some(1),
            status: &self.status,
            mode: Mode::Manage,
            adopt_id: None,
            adopt_owner: None,
            adoption: AdoptionRights::default(),
            prepared: &self.prepared,
            refused_before: false,
            verified_recently: false,
            own_drift_schedule: false,
            created_unrecorded: None,
            leftover: None,
            previous_key: None,
            create_turn: Some(CreateTurn::default()),
        }
    }

    /// [`Given::facts`] adopting `adopt_id` (an id in full: see [`id_of`]).
    fn adopting<'a>(&'a self, adopt_id: &'a str) -> Facts<'a, K> {
        Facts {
            adopt_id: Some(adopt_id),
            ..self.facts()
        }
    }
}

/// What [`read`] asks for, by name.
fn reads<K: Managed>(facts: &Facts<'_, K>) -> String {
    match read(facts) {
        Read::Nothing => "Nothing".into(),
        Read::Object(id) => format!("Object {}", short::<K>(&id)),
        Read::Listing(id) => format!("Listing {}", short::<K>(&id)),
        Read::OwnDriftCheck(id) => format!("OwnDriftCheck {}", short::<K>(&id)),
        Read::LostCreate(pending) => format!("LostCreate {}", pending.started_at),
    }
}

/// The steps of a plan, by name, for comparison.
fn steps<K: Managed>(plan: &Plan<K>) -> Vec<String> {
    let id = |id: &str| short::<K>(id);
    plan.steps
        .iter()
        .map(|step| match step {
            Step::Adopt(r) => format!("Adopt {}", id(r.id())),
            Step::RecordLostCreate {
                remote,
                content_changed,
            } => format!(
                "RecordLostCreate {} changed={content_changed}",
                id(remote.id())
            ),
            Step::RecordCreated(r) => format!("RecordCreated {}", id(r.id())),
            Step::ForgetGone(gone) => format!("ForgetGone {}", id(gone)),
            Step::Create => "Create".into(),
            Step::DeleteFromOldAccount { id: old, .. } => {
                format!("DeleteFromOldAccount {}", id(old))
            }
            Step::Update {
                id: updated,
                fields,
                cause,
                ..
            } => format!("Update {} {fields} {cause:?}", id(updated)),
            Step::Record(r) => format!("Record {}", id(r.id())),
        })
        .collect()
}

/// A deletion's plan, by name.
fn deletion_of<K: Managed>(d: &Deletion) -> String {
    match d {
        Deletion::Release => "Release".into(),
        Deletion::Retain { id, why } => format!("Retain {} ({why})", short::<K>(id)),
        Deletion::Delete(id) => format!("Delete {}", short::<K>(id)),
        Deletion::Unconfirmed { what, .. } => format!("Unconfirmed {}", short::<K>(what)),
        Deletion::Failed(e) => format!("Failed {} stalled={}", e.reason(), e.is_stalled()),
    }
}

/// (Ready, Reconciling, Stalled, reason) as a status shows them.
type Shown = (String, String, String, String);

/// What the status of a resource of kind `K` shows in `phase`.
fn shown<K: Managed>(phase: &Phase<'_>) -> Shown {
    let list = conditions::conditions(&[], Some(1), phase, K::NOUN, &Time(Timestamp::UNIX_EPOCH));
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

fn outcome_shown<K: Managed>(outcome: &Outcome) -> Shown {
    match outcome {
        Outcome::Ready => shown::<K>(&Phase::Ready),
        Outcome::Paused => shown::<K>(&Phase::Paused),
        Outcome::Observing(drift) => shown::<K>(&Phase::Observing {
            differences: drift.iter().map(|d| d.path.clone()).collect(),
        }),
        Outcome::Failed(error) => shown::<K>(&Phase::Failed(error)),
        Outcome::Unchanged => Default::default(),
    }
}

fn row(ready: &str, reconciling: &str, stalled: &str, reason: &str) -> Shown {
    (
        ready.into(),
        reconciling.into(),
        stalled.into(),
        reason.into(),
    )
}

/// The outcome of a pass that reads nothing from ngrok and changes nothing there.
fn quiet_outcome<K: Managed>(f: &Facts<'_, K>) -> Shown {
    assert_eq!(read(f), Read::Nothing);
    let plan = plan(f, Seen::NotRead);
    assert!(plan.steps.is_empty(), "{:?}", steps(&plan));
    outcome_shown::<K>(&plan.outcome)
}

/// The outcome and message of a pass refused before any call to ngrok.
fn refused<K: Managed>(f: &Facts<'_, K>) -> (Shown, String) {
    assert_eq!(read(f), Read::Nothing, "no call to ngrok");
    let plan = plan(f, Seen::NotRead);
    assert!(plan.steps.is_empty(), "{:?}", steps(&plan));
    let Outcome::Failed(error) = &plan.outcome else {
        panic!("not refused: {:?}", plan.outcome);
    };
    (outcome_shown::<K>(&plan.outcome), error.message())
}

/// Whether observe takes the create turn before this plan, given what it saw: the plan's
/// [`turn_wanted`], as `observe::remote` applies it.
fn needs_create_turn<K: Managed, R>(facts: &Facts<'_, K>, seen: &Seen<R>) -> bool {
    match turn_wanted(facts) {
        TurnWanted::Always => true,
        TurnWanted::IfGone => matches!(seen, Seen::Gone { .. }),
        TurnWanted::Never => false,
    }
}

/// The error a plan failed with.
fn failure<K: Managed>(plan: &Plan<K>) -> &Error {
    match &plan.outcome {
        Outcome::Failed(error) => error,
        other => panic!("not failed: {other:?}"),
    }
}

/// What a lost-create search read: a listing of every object (`listing`), none claimed.
fn candidates<R>(listing: Vec<R>, alike: usize) -> Seen<R> {
    Seen::Candidates {
        listing,
        claimed: HashSet::new(),
        complete: true,
        alike,
    }
}
