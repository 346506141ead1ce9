//! The decisions of a reconcile, as pure functions: given what [`super::observe`] saw, what
//! to read from ngrok ([`read`]), and then what to do ([`plan`]). Nothing here does I/O; the
//! table at the end of this file tests every row of the README's conditions table and every
//! hard case the engine has met.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::managed::{Managed, ManagedStatus, Prepared, RemoteObject};
use crate::accounts::Account;
use crate::crd::{ADOPT_ID_ANNOTATION, CommonStatus, MANAGEMENT_ANNOTATION, PendingCreate};
use crate::drift::{FieldDifference, SecretState};
use crate::error::{Error, PreviousAccount};

/// How far ngrok's clock may be behind ours when matching a lost create by its creation time.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(2);

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

/// Everything a decision needs besides what ngrok holds.
pub struct Facts<'a, K: Managed> {
    /// `metadata.generation` of the resource.
    pub generation: Option<i64>,
    /// The status as last written.
    pub status: &'a K::Status,
    pub mode: Mode,
    pub adopt_id: Option<&'a str>,
    /// Another resource that manages `adopt_id` already (`Kind name`, or a phrase that does
    /// not name another namespace's resource).
    pub adopt_owner: Option<String>,
    /// Who may adopt here (see [`adoption_refused`]).
    pub adoption: AdoptionRights,
    /// The request, and the inputs it was built from.
    pub prepared: &'a Prepared<K::Desired>,
    /// ngrok refused exactly these inputs at this generation before.
    pub refused_before: bool,
    /// The object was written or seen matching recently (less than half a drift interval
    /// ago): a reconcile caused by our own status write needs no look at ngrok.
    pub verified_recently: bool,
    /// The resource's drift checks run on a schedule of its own (an `events.ngrok.io/drift-interval`
    /// other than the operator's), off the account's shared pass: each reads its one object.
    pub own_drift_schedule: bool,
    /// An id this process created for the resource that the status does not record (its
    /// status write failed).
    pub created_unrecorded: Option<&'a K::Remote>,
    /// An object a move left in the previous account (its delete there failed).
    pub leftover: Option<&'a (String, Arc<Account>)>,
    /// The account of the resource's previous reconcile, when its API key has changed since.
    pub previous_account: Option<&'a Arc<Account>>,
}

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

/// What decides whether the resource may adopt the object its `adopt-id` names.
#[derive(Clone, Debug, Default)]
pub struct AdoptionRights {
    /// The resource uses the operator-wide key (no `spec.apiKeyRef`): its account is shared,
    /// and adoption from it is the platform team's to allow.
    pub operator_key: bool,
    /// Its namespace matches `--adoption-namespace-selector`.
    pub namespace_selected: bool,
    /// `--adoption-namespace-selector`, for the message; `None` when it is not set.
    pub selector: Option<String>,
    pub namespace: String,
    /// A subscription of another namespace names the id (in `spec.destinationIds` or in what
    /// it last sent to ngrok).
    pub named_by_another_namespace: bool,
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

/// What to read from ngrok before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    Nothing,
    /// GET the object by id.
    Object(String),
    /// The account's shared listing, newer than the last time the object was checked: a
    /// drift check that costs ceil(N/100) calls for all of the account's resources together.
    Listing(String),
    /// GET the object: a drift check on the resource's own schedule, which no shared pass
    /// serves (one call, whatever the size of the account).
    OwnDriftCheck(String),
    /// The account's listing, to look for the outcome of a create that was lost.
    LostCreate(PendingCreate),
}

/// What ngrok showed of the object.
pub enum Seen<R> {
    /// Nothing was read.
    NotRead,
    Found(R),
    /// The object is not in the account (a 404, or absent from a listing newer than its last
    /// write).
    Gone {
        /// When the key changed since the last pass: where the object is.
        elsewhere: Option<Elsewhere<R>>,
    },
    /// ngrok holds the object but the client cannot read it (a target type or field this
    /// version does not know): it cannot be compared.
    Unreadable(String),
    /// The objects of the account that may be the outcome of a lost create; `complete`: every
    /// object of the account could be read (otherwise it may be among the unreadable ones).
    Candidates {
        found: Vec<R>,
        complete: bool,
        /// Resources with a create of the same content whose outcome is not known, this one
        /// included.
        alike: usize,
    },
}

/// Where an object is after its resource's API key changed to one that does not see it.
pub enum Elsewhere<R> {
    /// The new key is of the same account (a rotation): the object was deleted.
    SameAccount,
    /// The old key still reads it: the resource moved to another account.
    InOldAccount(R),
    /// Another account, and the old one no longer shows it either.
    GoneFromBoth,
    /// Another account, or one that cannot be told, and the old object cannot be reached.
    CannotTell(PreviousAccount),
}

/// Why an update is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The spec or an input changed.
    Spec,
    /// Someone changed the object outside Kubernetes.
    Drift,
}

/// One effect, carried out in order by [`super::act`].
pub enum Step<K: Managed> {
    /// Record an existing object as the resource's (annotation adopt-id).
    Adopt(K::Remote),
    /// Record the outcome of a lost create; `content_changed`: the spec changed since the
    /// intent, so what was sent is forgotten and the next pass updates it.
    RecordLostCreate {
        remote: K::Remote,
        content_changed: bool,
    },
    /// Record an object this process created whose status write failed.
    RecordCreated(K::Remote),
    /// The object was deleted behind our back: forget its id (and create again).
    ForgetGone(String),
    /// Create the object, the crash-safe way.
    Create,
    /// After a move: delete the old object from the old account.
    DeleteFromOldAccount { id: String, from: Arc<Account> },
    Update {
        id: String,
        update: K::Update,
        fields: String,
        cause: Cause,
    },
    /// ngrok matches: record what was sent and what ngrok holds.
    Record(K::Remote),
}

/// Where the resource stands once the steps are done.
#[derive(Debug)]
pub enum Outcome {
    Ready,
    Paused,
    /// Observe mode: each field a managing reconcile would change.
    Observing(Vec<FieldDifference>),
    /// Leave the status as it is (ngrok refused exactly this before).
    Unchanged,
    /// Stalled or retried, as [`Error::is_stalled`] says.
    Failed(Error),
}

pub struct Plan<K: Managed> {
    pub steps: Vec<Step<K>>,
    pub outcome: Outcome,
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
            let leftover = facts.leftover.map(|(id, from)| Step::DeleteFromOldAccount {
                id: id.clone(),
                from: from.clone(),
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
                found,
                complete,
                alike,
            },
        ) => match lost_create(found, complete, alike) {
            Ok(None) => Plan::ready(vec![Step::Create]),
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
        _ => Plan::ready(vec![Step::Create]),
    }
}

/// The outcome of a lost create, from the candidates a search found
/// ([`lost_create_candidates`]): the one rule of creation and of deletion ([`cleanup`]).
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

/// The objects of a listing that may be the outcome of the lost create `pending`: the same
/// content, created after the intent (less clock skew), and not any other resource's.
pub fn lost_create_candidates<'r, K: Managed>(
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

/// Whether a create of `fingerprint` must wait: another resource of the same account has a
/// create of the same content whose outcome is not known yet (its lost-create search could
/// take this create's object). `others`: each other resource's status, uid, and whether its
/// last reconcile in this process used the same account; resources of other accounts, or not
/// reconciled by this process, do not hold a create up. `own`: this resource's pending create
/// and uid, if it has one: then it waits only for those ahead of it ([`queue_place`]), so
/// that two intents of the same content (both in flight when a process was killed) never wait
/// for each other.
pub fn create_must_wait<'s>(
    fingerprint: &str,
    own: Option<(&PendingCreate, &str)>,
    mut others: impl Iterator<Item = (&'s CommonStatus, &'s str, bool)>,
) -> bool {
    let own = own
        .filter(|(pending, _)| pending.fingerprint == fingerprint)
        .map(|(pending, uid)| queue_place(pending, uid));
    others.any(|(status, uid, same_account)| {
        same_account
            && status.id.is_none()
            && status.pending_create.as_ref().is_some_and(|p| {
                p.fingerprint == fingerprint && own.is_none_or(|own| queue_place(p, uid) < own)
            })
    })
}

/// How long an intent to create can hold up another resource's create of the same content
/// ([`intent_holds_others`]): longer than a create's whole life in the client (5 attempts of
/// at most 30 s with backoff between them, and a wait for the rate limiter), so that only an
/// intent whose resource stopped pursuing it lapses.
pub const INTENT_HOLDS_OTHERS_FOR: SignedDuration = SignedDuration::from_mins(10);

/// Whether another resource's intent to create, `pending`, can make a create of the same
/// content wait ([`create_must_wait`]) at `now`: only the intent of a resource being managed
/// (`managed`: not paused, not observing, not being deleted), and only for
/// [`INTENT_HOLDS_OTHERS_FOR`] after it was written (an unreadable time holds nothing). A
/// paused resource's intent would otherwise hold every identical resource of its account, in
/// every namespace, for as long as it stays paused; it still runs its own lost-create search
/// when it is managed again (the claimed set keeps the others' objects out of it).
pub fn intent_holds_others(pending: &PendingCreate, managed: bool, now: Timestamp) -> bool {
    managed
        && pending
            .started_at
            .parse::<Timestamp>()
            .is_ok_and(|started| now.duration_since(started) < INTENT_HOLDS_OTHERS_FOR)
}

/// A pending create's place among those of the same content: the older intent first, then
/// the smaller uid. A total order (an unreadable time goes first).
fn queue_place<'a>(pending: &'a PendingCreate, uid: &'a str) -> (Option<Timestamp>, &'a str) {
    (pending.started_at.parse().ok(), uid)
}

/// The object is not where the resource's key looks.
fn gone<K: Managed>(
    facts: &Facts<'_, K>,
    id: &str,
    elsewhere: Option<Elsewhere<K::Remote>>,
) -> Plan<K> {
    let recreate = || Plan::ready(vec![Step::ForgetGone(id.to_string()), Step::Create]);
    match elsewhere {
        // Deleted in ngrok behind our back: create it again.
        None | Some(Elsewhere::SameAccount) | Some(Elsewhere::GoneFromBoth) => recreate(),
        // Moved to another account: take the object along.
        Some(Elsewhere::InOldAccount(_)) => match facts.previous_account {
            Some(from) => Plan::ready(vec![
                Step::ForgetGone(id.to_string()),
                Step::Create,
                Step::DeleteFromOldAccount {
                    id: id.to_string(),
                    from: from.clone(),
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

#[path = "plan_deletion.rs"]
mod deletion;
pub use deletion::{
    CleanupFacts, Deletion, PolicyInEffect, PolicySource, UNREACHABLE_DELETE_ATTEMPTS, cleanup,
    cleanup_needs_account, cleanup_read, kept_because, policy_in_effect, unreachable,
};

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
