//! The decisions of a pass that applies: what to read from ngrok ([`read`]), then what to do
//! ([`plan`]): create, adopt, take the outcome of a lost create, update what differs, create
//! again, move to another account, wait, or stall with a reason. With them, the rules that
//! keep a create from leaving a twin: whether a create may start now ([`turn_wanted`],
//! [`create_queued`], with the queue of `queue.rs`), and what a create whose outcome was lost
//! became ([`lost_create`], [`lost_create_candidates`]), the one rule of creation and of
//! deletion.

use std::collections::HashSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::queue::{create_must_wait, intent_holds_others};

use super::{Cause, Elsewhere, Facts, Mode, Outcome, Plan, Read, Seen, Step, TurnWanted};
use crate::crd::{ADOPT_ID_ANNOTATION, MANAGEMENT_ANNOTATION, PendingCreate};
use crate::drift::{FieldDifference, SecretState};
use crate::error::{Error, PreviousAccount};
use crate::reconcile::managed::{Managed, ManagedStatus, RemoteObject};

/// The plan's view of a kind: how the request it would send compares with the object ngrok
/// holds. Pure; each kind's module (`destination.rs`, `subscription.rs`) implements it with
/// `crate::desired`.
pub trait Compare {
    /// The body of a create.
    type Desired: Send + Sync;
    /// The object as ngrok returns it.
    type Remote: Clone + RemoteObject;
    /// The body of an update: only what differs.
    type Update: Send + Sync;

    /// What makes `remote` match `desired` (`None` when nothing differs), and its field names.
    fn changes(
        desired: &Self::Desired,
        remote: &Self::Remote,
        resend_secrets: bool,
    ) -> Option<(Self::Update, String)>;
    /// Refuses `update` of `remote` when it would drop what ngrok holds outside what the spec
    /// names (see `desired::subscription::unnamed_remote_fields`).
    fn check_update(
        _desired: &Self::Desired,
        _remote: &Self::Remote,
        _update: &Self::Update,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// What a listing shows of an object's content: a lost create's object shows its
    /// intent's fingerprint (see `desired::fingerprint`).
    fn observed_fingerprint(remote: &Self::Remote) -> String;
    /// Observe mode's report: each field a managing reconcile would change.
    fn drift(
        desired: &Self::Desired,
        remote: &Self::Remote,
        secrets: SecretState,
    ) -> Vec<FieldDifference>;
}

/// How far ngrok's clock may be behind ours when matching a lost create by its creation time.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(2);

impl<K: Managed> Facts<'_, K> {
    fn id(&self) -> Option<&str> {
        self.status.common().id.as_deref()
    }

    /// The spec, its inputs and ngrok matched at the last pass, which was a success.
    fn in_sync(&self) -> bool {
        let common = self.status.common();
        common.observed_generation == self.generation
            && K::recorded_inputs(self.status).as_deref() == Some(&self.prepared.inputs_hash)
            && crate::conditions::is_true(&common.conditions, crate::conditions::READY)
    }
}

impl<K: Managed> Plan<K> {
    fn just(outcome: Outcome) -> Self {
        Self {
            steps: Vec::new(),
            outcome,
        }
    }

    fn ready(steps: Vec<Step<K>>) -> Self {
        Self {
            steps,
            outcome: Outcome::Ready,
        }
    }
}

/// The outcome while the request waits for other resources (`others`, each named with why:
/// a subscription's destinations that do not exist or are not Ready): nothing is read or sent,
/// and the resource shows why it waits (Reconciling); their changes trigger it.
pub fn awaiting(others: Vec<String>) -> Outcome {
    Outcome::Failed(Error::DestinationNotReady { waiting: others })
}

/// What must be read from ngrok to decide.
pub fn read<K: Managed>(facts: &Facts<'_, K>) -> Read {
    if facts.refused_before || adoption_refused(facts).is_some() {
        return Read::Nothing;
    }
    match (facts.mode, facts.id(), facts.adopt_id) {
        (Mode::Paused, _, _) => Read::Nothing,
        (Mode::Observe, Some(id), _) | (_, None, Some(id)) => Read::Object(id.to_string()),
        (Mode::Observe, None, None) => Read::Nothing,
        (Mode::Manage, None, None) => match (
            &facts.status.common().pending_create,
            facts.created_unrecorded,
        ) {
            (Some(pending), None) => Read::LostCreate(pending.clone()),
            _ => Read::Nothing,
        },
        (Mode::Manage, Some(_), _) if facts.in_sync() && facts.verified_recently => Read::Nothing,
        (Mode::Manage, Some(id), _) if facts.in_sync() && facts.own_drift_schedule => {
            Read::OwnDriftCheck(id.to_string())
        }
        (Mode::Manage, Some(id), _) if facts.in_sync() => Read::Listing(id.to_string()),
        (Mode::Manage, Some(id), _) => Read::Object(id.to_string()),
    }
}

/// What to do, given the facts and what [`read`] asked ngrok.
pub fn plan<K: Managed>(facts: &Facts<'_, K>, seen: Seen<K::Remote>) -> Plan<K> {
    if facts.refused_before {
        return Plan::just(Outcome::Unchanged);
    }
    if let Some(error) = adoption_refused(facts) {
        return Plan::just(Outcome::Failed(error));
    }
    match facts.mode {
        Mode::Paused => Plan::just(Outcome::Paused),
        Mode::Observe => observe_only(facts, seen),
        Mode::Manage => manage(facts, seen),
    }
}

fn manage<K: Managed>(facts: &Facts<'_, K>, seen: Seen<K::Remote>) -> Plan<K> {
    let Some(id) = facts.id() else {
        return first_object(facts, seen);
    };
    match seen {
        // In sync and checked a moment ago (`read` asks for candidates only without an id).
        Seen::NotRead | Seen::Candidates { .. } => Plan::just(Outcome::Ready),
        Seen::Found(remote) => {
            // A move's object left in the previous account goes first.
            let leftover = facts.leftover.map(|(id, key)| Step::DeleteFromOldAccount {
                id: id.to_string(),
                key: key.to_string(),
            });
            converge(facts, remote, leftover.into_iter().collect())
        }
        Seen::Unreadable(detail) => Plan::just(Outcome::Failed(Error::RemoteUnreadable {
            id: id.to_string(),
            detail,
        })),
        Seen::Gone { elsewhere } => gone(facts, id, elsewhere),
    }
}

/// A resource without an id: take the object a failed status write left behind, the outcome
/// of a lost create, the object to adopt, or create one.
fn first_object<K: Managed>(facts: &Facts<'_, K>, seen: Seen<K::Remote>) -> Plan<K> {
    if let Some(created) = facts.created_unrecorded {
        return Plan::ready(vec![Step::RecordCreated(created.clone())]);
    }
    match (facts.adopt_id, seen) {
        (Some(_), Seen::Found(remote)) => {
            converge(facts, remote.clone(), vec![Step::Adopt(remote)])
        }
        (Some(id), Seen::Gone { .. }) => Plan::just(Outcome::Failed(Error::AdoptTargetNotFound {
            id: id.to_string(),
        })),
        (Some(id), Seen::Unreadable(detail)) => {
            Plan::just(Outcome::Failed(Error::RemoteUnreadable {
                id: id.to_string(),
                detail,
            }))
        }
        (
            None,
            Seen::Candidates {
                listing,
                claimed,
                complete,
                alike,
            },
        ) => match lost_create_in::<K>(
            facts.status.common().pending_create.as_ref(),
            &listing,
            &claimed,
            complete,
            alike,
        ) {
            Ok(None) => create_after(facts, Vec::new()),
            Ok(Some(remote)) => {
                let pending = facts.status.common().pending_create.as_ref();
                let fingerprint = K::fingerprint(&facts.prepared.desired);
                let content_changed = pending.is_none_or(|p| p.fingerprint != fingerprint);
                Plan::ready(vec![Step::RecordLostCreate {
                    remote,
                    content_changed,
                }])
            }
            Err(error) => Plan::just(Outcome::Failed(error)),
        },
        // No lost create to look for, or its search waits for its turn like a create.
        _ => create_after(facts, Vec::new()),
    }
}

/// The object is not where the resource's key looks.
fn gone<K: Managed>(
    facts: &Facts<'_, K>,
    id: &str,
    elsewhere: Option<Elsewhere<K::Remote>>,
) -> Plan<K> {
    let recreate = || create_after(facts, vec![Step::ForgetGone(id.to_string())]);
    match elsewhere {
        // Deleted in ngrok behind our back: create it again.
        None | Some(Elsewhere::SameAccount) | Some(Elsewhere::GoneFromBoth) => recreate(),
        // Moved to another account: take the object along.
        Some(Elsewhere::InOldAccount(_)) => match facts.previous_key {
            Some(_) if create_queued(facts) => Plan::just(Outcome::Failed(Error::CreateQueued)),
            Some(key) => Plan::ready(vec![
                Step::ForgetGone(id.to_string()),
                Step::Create,
                Step::DeleteFromOldAccount {
                    id: id.to_string(),
                    key: key.to_string(),
                },
            ]),
            None => Plan::just(Outcome::Failed(Error::AccountChanged {
                old_id: id.to_string(),
                cause: PreviousAccount::Forgotten,
            })),
        },
        Some(Elsewhere::CannotTell(cause)) => Plan::just(Outcome::Failed(Error::AccountChanged {
            old_id: id.to_string(),
            cause,
        })),
    }
}

/// Makes the object match the spec: nothing, or one update of what differs; none at all if
/// it would drop what ngrok holds outside what the spec names (the steps before still run).
fn converge<K: Managed>(
    facts: &Facts<'_, K>,
    remote: K::Remote,
    mut steps: Vec<Step<K>>,
) -> Plan<K> {
    let recorded = K::recorded_inputs(facts.status);
    let adopting = matches!(steps.first(), Some(Step::Adopt(_)));
    let inputs_changed = recorded.as_deref() != Some(facts.prepared.inputs_hash.as_str());
    // ngrok never shows secrets: they are sent again whenever they (may) have changed.
    let resend = facts.prepared.has_secrets && (inputs_changed || adopting);
    if let Some((update, fields)) = K::changes(&facts.prepared.desired, &remote, resend) {
        if let Err(error) = K::check_update(&facts.prepared.desired, &remote, &update) {
            return Plan {
                steps,
                outcome: Outcome::Failed(error),
            };
        }
        let cause = if facts.in_sync() && !adopting {
            Cause::Drift
        } else {
            Cause::Spec
        };
        steps.push(Step::Update {
            id: remote.id().to_string(),
            update,
            fields,
            cause,
        });
    }
    steps.push(Step::Record(remote));
    Plan::ready(steps)
}

/// Observe mode: report what managing would change, write nothing to ngrok.
fn observe_only<K: Managed>(facts: &Facts<'_, K>, seen: Seen<K::Remote>) -> Plan<K> {
    let drift = match seen {
        Seen::Found(remote) => {
            let secrets = match K::recorded_inputs(facts.status) {
                _ if !facts.prepared.has_secrets => SecretState::Sent,
                Some(sent) if sent == facts.prepared.inputs_hash => SecretState::Sent,
                Some(_) => SecretState::Changed,
                None => SecretState::Unknown,
            };
            let drift = K::drift(&facts.prepared.desired, &remote, secrets);
            // Records the id (no write to ngrok), so that switching to manage updates this
            // object in place and a subscription can name it.
            let steps = match facts.id() {
                Some(_) => Vec::new(),
                None => vec![Step::Adopt(remote)],
            };
            return Plan {
                steps,
                outcome: Outcome::Observing(drift),
            };
        }
        Seen::Gone { .. } => match (facts.id(), facts.adopt_id) {
            // Deleted in ngrok: managing would create it again.
            (Some(id), _) => vec![FieldDifference {
                path: "id".into(),
                wanted: Some(id.to_string()),
                actual: None,
                secret: None,
            }],
            (None, id) => {
                return Plan::just(Outcome::Failed(Error::AdoptTargetNotFound {
                    id: id.unwrap_or_default().to_string(),
                }));
            }
        },
        Seen::Unreadable(detail) => {
            return Plan::just(Outcome::Failed(Error::RemoteUnreadable {
                id: facts
                    .id()
                    .or(facts.adopt_id)
                    .unwrap_or_default()
                    .to_string(),
                detail,
            }));
        }
        Seen::NotRead | Seen::Candidates { .. } => {
            return Plan::just(Outcome::Failed(Error::InvalidAnnotation {
                annotation: MANAGEMENT_ANNOTATION,
                problem: format!(
                    "observe needs an ngrok object to observe: set {ADOPT_ID_ANNOTATION} (ngrok-events-operator import --observe does)"
                ),
            }));
        }
    };
    Plan::just(Outcome::Observing(drift))
}

/// Why the resource may not adopt (or keep) what its `adopt-id` names, if it may not:
/// - an `adopt-id` other than the id the resource manages is a mistake (a copied manifest,
///   `import` applied over an existing resource), never silently ignored;
/// - with the operator-wide key, only namespaces the platform team selected may adopt, and
///   never an id that another namespace's subscription names (taking it would redirect that
///   subscription's events); a team's own `apiKeyRef` account is theirs to adopt from;
/// - no one adopts what another resource manages.
///
/// Paused resources do nothing, so nothing is refused.
fn adoption_refused<K: Managed>(facts: &Facts<'_, K>) -> Option<Error> {
    let adopt_id = facts.adopt_id.filter(|_| facts.mode != Mode::Paused)?;
    let rights = &facts.adoption;
    match facts.id() {
        Some(id) if id != adopt_id => Some(Error::InvalidAnnotation {
            annotation: ADOPT_ID_ANNOTATION,
            problem: format!(
                "names {adopt_id}, but this resource manages {id} (status.id): remove the annotation, or set it to {id}"
            ),
        }),
        Some(_) => None,
        None if rights.operator_key && !rights.namespace_selected => {
            Some(Error::AdoptionNotAllowed {
                selector: rights.selector.clone(),
                namespace: rights.namespace.clone(),
            })
        }
        None => match &facts.adopt_owner {
            Some(owner) => Some(Error::AdoptTargetInUse {
                id: adopt_id.to_string(),
                owner: owner.clone(),
            }),
            None if rights.operator_key && rights.named_by_another_namespace => {
                Some(Error::AdoptTargetNamedElsewhere {
                    id: adopt_id.to_string(),
                })
            }
            None => None,
        },
    }
}

/// When observe must take the resource's turn to create ([`Facts::create_turn`](super::Facts::create_turn),
/// `observe::create_turn`) before the plan decides: when the plan may create. A managed
/// resource without an id creates; one with an id creates again only if its object is gone.
pub fn turn_wanted<K: Managed>(facts: &Facts<'_, K>) -> TurnWanted {
    let managing =
        facts.mode == Mode::Manage && !facts.refused_before && adoption_refused(facts).is_none();
    let first =
        facts.id().is_none() && facts.adopt_id.is_none() && facts.created_unrecorded.is_none();
    match (managing, first) {
        (false, _) => TurnWanted::Never,
        (true, true) => TurnWanted::Always,
        (true, false) => TurnWanted::IfGone,
    }
}

/// Whether a create of the resource's content must wait for its turn: another reconcile
/// creates or searches for the same content now, or an intent alike is ahead of it
/// ([`create_must_wait`]). A turn that was not observed is no turn.
pub(super) fn create_queued<K: Managed>(facts: &Facts<'_, K>) -> bool {
    let Some(turn) = &facts.create_turn else {
        return true;
    };
    let fingerprint = K::fingerprint(&facts.prepared.desired);
    let own = facts.status.common().pending_create.as_ref();
    let holding: Vec<(PendingCreate, String)> = turn
        .others_pending
        .iter()
        .filter(|other| intent_holds_others(&other.pending, other.managed, turn.now))
        .map(|other| (other.pending.clone(), other.uid.clone()))
        .collect();
    turn.guard_held_elsewhere
        || create_must_wait(&fingerprint, own.map(|p| (p, turn.uid.as_str())), &holding)
}

/// `steps`, then a create, on the resource's turn; otherwise nothing yet: the create waits
/// (`CreateQueued`, retried soon).
pub(super) fn create_after<K: Managed>(facts: &Facts<'_, K>, mut steps: Vec<Step<K>>) -> Plan<K> {
    if create_queued(facts) {
        return Plan::just(Outcome::Failed(Error::CreateQueued));
    }
    steps.push(Step::Create);
    Plan::ready(steps)
}

/// The outcome of a lost create, from the candidates a search found
/// ([`lost_create_candidates`]): the one rule of creation and of deletion ([`super::deletion::cleanup`]).
/// Exactly one candidate is it; none means it did not happen (`None`), unless the listing was
/// not `complete` (it may be among the objects that cannot be read: retried). Several are the
/// creates of `alike` resources of identical content (twins whose creates were in flight
/// together) when there are no more of them than of those: this resource takes the oldest, and
/// each twin's search takes the next (they search one at a time). More candidates than that,
/// and a person decides.
pub fn lost_create<R: RemoteObject>(
    mut candidates: Vec<R>,
    complete: bool,
    alike: usize,
) -> Result<Option<R>, Error> {
    candidates.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
    match candidates.len() {
        0 if !complete => Err(Error::RemoteUnreadable {
            id: "the outcome of a lost create".into(),
            detail: "the account holds objects that cannot be read, and it may be one of them"
                .into(),
        }),
        0 => Ok(None),
        n if n == 1 || n <= alike => Ok(Some(candidates.remove(0))),
        _ => Err(Error::AmbiguousCreate {
            candidates: candidates.iter().map(|o| o.id().to_string()).collect(),
        }),
    }
}

/// The outcome of the lost create `pending` in what its search read (`listing`, the ids
/// `claimed` by other resources, whether the listing was `complete`, how many resources have
/// an intent `alike`): its candidates, then the one rule ([`lost_create`]). No intent, no
/// candidate.
pub fn lost_create_in<K: Compare>(
    pending: Option<&PendingCreate>,
    listing: &[K::Remote],
    claimed: &HashSet<String>,
    complete: bool,
    alike: usize,
) -> Result<Option<K::Remote>, Error> {
    let candidates = match pending {
        Some(pending) => lost_create_candidates::<K>(listing.iter(), pending, claimed),
        None => Vec::new(),
    };
    lost_create(candidates, complete, alike)
}

/// The objects of a listing that may be the outcome of the lost create `pending`: the same
/// content, created after the intent (less clock skew), and not any other resource's.
pub fn lost_create_candidates<'r, K: Compare>(
    objects: impl Iterator<Item = &'r K::Remote>,
    pending: &PendingCreate,
    claimed_by_others: &HashSet<String>,
) -> Vec<K::Remote> {
    let since = pending
        .started_at
        .parse::<Timestamp>()
        .ok()
        .map(|t| t - CLOCK_SKEW);
    objects
        .filter(|o| K::observed_fingerprint(o) == pending.fingerprint)
        .filter(|o| !claimed_by_others.contains(o.id()))
        .filter(|o| match (since, o.created_at().parse::<Timestamp>()) {
            (Some(since), Ok(created)) => created >= since,
            _ => true,
        })
        .cloned()
        .collect()
}
