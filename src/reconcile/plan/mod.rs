//! The decisions of a reconcile, as pure functions: given what [`super::observe`] saw, what
//! to read from ngrok ([`read`](apply::read)), and then what to do ([`plan`](apply::plan)).
//! Nothing here does I/O. This file holds what the decisions take and give (the facts, what
//! ngrok showed, the steps, the outcome); `apply.rs` the decisions of a pass that applies,
//! with the rules that keep a create from leaving a twin (its turn, the lost-create rule);
//! `queue.rs` the create queue; `deletion.rs` deletion's. The tables of `tests/` test every
//! row of the README's conditions table, for both kinds, and every hard case the engine has
//! met.

use std::collections::HashSet;

use k8s_openapi::jiff::Timestamp;

use super::managed::{Managed, Prepared, RemoteObject};
pub use crate::annotations::Mode;
use crate::crd::PendingCreate;
use crate::drift::FieldDifference;
use crate::error::{Error, PreviousAccount};

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
    /// Who may adopt here (see `apply::adoption_refused`).
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
    /// An object a move left in the previous account (its delete there failed): its id, and
    /// the fingerprint of the key that holds it.
    pub leftover: Option<(&'a str, &'a str)>,
    /// The fingerprint of the key of the resource's previous reconcile, when the key has
    /// changed since.
    pub previous_key: Option<&'a str>,
    /// Whether a create may start now; `None` when it was not observed (then no create is
    /// planned). See [`turn_wanted`](apply::turn_wanted).
    pub create_turn: Option<CreateTurn>,
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
    /// What a lost-create search read: the account's listing, newer than the search (which of
    /// its objects may be the outcome is the plan's rule, [`lost_create_candidates`](apply::lost_create_candidates)), and the
    /// ids other resources claim; `complete`: every object of the account could be read
    /// (otherwise it may be among the unreadable ones).
    Candidates {
        listing: Vec<R>,
        claimed: HashSet<String>,
        complete: bool,
        /// Resources with a create of the same content whose outcome is not known, this one
        /// included.
        alike: usize,
    },
}

/// When observe takes the resource's turn to create ([`CreateTurn`]) for the plan: the
/// plan's answer ([`turn_wanted`](apply::turn_wanted)), given before ngrok is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnWanted {
    /// The plan will not create: not managing, or the object is known.
    Never,
    /// A first create.
    Always,
    /// Only if ngrok no longer holds the object (it is created again).
    IfGone,
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
    /// After a move: delete the old object from the old account, the one whose key has the
    /// fingerprint `key`.
    DeleteFromOldAccount { id: String, key: String },
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

/// What decides whether a create (or a lost-create search) of this resource's content may
/// start now, in its account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateTurn {
    /// Another reconcile creates, or searches for, the same content in the account right now
    /// (the account's create guard is held elsewhere).
    pub guard_held_elsewhere: bool,
    /// The intents to create the same content of the account's other resources without an
    /// id; which of them hold this create up is the plan's rule ([`intent_holds_others`](queue::intent_holds_others)).
    pub others_pending: Vec<OtherIntent>,
    /// This resource's uid (its place among intents alike, [`create_must_wait`](queue::create_must_wait)).
    pub uid: String,
    /// When the turn was observed: what the intents' ages are measured against.
    pub now: Timestamp,
}

/// Another resource's intent to create the same content, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherIntent {
    pub pending: PendingCreate,
    pub uid: String,
    /// Its resource is being managed: not paused, not observing, not being deleted.
    pub managed: bool,
}

pub mod apply;
pub mod deletion;
pub mod queue;
#[cfg(test)]
mod tests;
