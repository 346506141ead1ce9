//! The first step of a reconcile: gather everything a decision needs. Reads the annotations,
//! the account, the Secrets and referenced resources the request depends on, what this
//! process remembers, and then from ngrok exactly what [`plan::read`](super::plan::read) asks for.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::managed::{Inputs, Managed, ManagedStatus, Prepared};
use super::plan::{
    AdoptionRights, CreateTurn, Elsewhere, Facts, Mode, OtherIntent, Read, Seen, TurnWanted,
};
use super::{Context, Reconciliation};
use crate::accounts::{Account, AccountChange, CreateGuard, KnownIdentity, Lookup, account_change};
use crate::annotations;
use crate::crd::PendingCreate;
use crate::error::{Error, PreviousAccount, Result};
use crate::references;

/// What a reconcile knows before it reads ngrok.
pub struct Observation<K: Managed> {
    pub account: Arc<Account>,
    pub prepared: Prepared<K::Desired>,
    /// How long until the next drift check.
    pub interval: Duration,
    pub mode: Mode,
    pub adopt_id: Option<String>,
    pub adopt_owner: Option<String>,
    pub adoption: AdoptionRights,
    pub refused_before: bool,
    pub verified_recently: bool,
    /// See [`Facts::own_drift_schedule`].
    pub own_drift_schedule: bool,
    pub created_unrecorded: Option<K::Remote>,
    pub leftover: Option<(String, Arc<Account>)>,
    /// The account that holds the object, when the resource's key has changed since.
    pub previous_account: Option<Arc<Account>>,
}

impl<K: Managed> Observation<K> {
    pub fn facts<'a>(&'a self, resource: &K, status: &'a K::Status) -> Facts<'a, K> {
        Facts {
            generation: resource.meta().generation,
            status,
            mode: self.mode,
            adopt_id: self.adopt_id.as_deref(),
            adopt_owner: self.adopt_owner.clone(),
            adoption: self.adoption.clone(),
            prepared: &self.prepared,
            refused_before: self.refused_before,
            verified_recently: self.verified_recently,
            own_drift_schedule: self.own_drift_schedule,
            created_unrecorded: self.created_unrecorded.as_ref(),
            leftover: self
                .leftover
                .as_ref()
                .map(|(id, account)| (id.as_str(), account.key_fingerprint())),
            previous_key: self.previous_account.as_ref().map(|a| a.key_fingerprint()),
            // Observed once ngrok has been read, if a create may follow (`create_turn`).
            create_turn: None,
        }
    }
}

/// A paused resource reads nothing (no Secret, no account, nothing of ngrok) and lets go of
/// the account this process remembered for it, so that an account no managed resource uses
/// goes with its client. Its deletion needs none: a paused resource's object stays in ngrok
/// (see `cleanup`). Unpaused, it finds its account again from its key.
pub fn paused<K: Managed>(r: &Reconciliation<'_, K>) {
    let memory = &K::state(r.ctx).memory;
    memory.secrets.record(r.resource, r.resource.secret_refs());
    memory.with(&r.object_ref(), |entry| entry.account = None);
}

/// What [`inputs`] found: everything a plan needs besides ngrok, or other resources the
/// request waits for.
pub enum Observed<K: Managed> {
    Inputs(Observation<K>),
    Awaiting(Vec<String>),
}

/// Reads everything but ngrok. An error here is the outcome of the reconcile (a missing
/// Secret, a bad reference …).
pub async fn inputs<K: Managed>(
    r: &Reconciliation<'_, K>,
    asked: annotations::Asked,
) -> Result<Observed<K>> {
    let (resource, ctx) = (r.resource, r.ctx);
    let memory = &K::state(ctx).memory;
    let object_ref = r.object_ref();
    memory.secrets.record(resource, resource.secret_refs());
    let annotations::Asked {
        interval,
        adopt_id,
        mode,
    } = asked;
    let namespace = resource.namespace().unwrap_or_default();
    // Cleanup may still use the operator's key for what was created with it; new work may not.
    if resource.api_key_ref().is_none() && !ctx.operator_key_allowed(&namespace) {
        return Err(Error::OperatorKeyNotAllowed);
    }
    let secrets_api = Api::<KubeSecret>::namespaced(ctx.client.clone(), &namespace);
    let account = ctx.account_for(resource, &secrets_api).await?;
    let previous_account = memory
        .get(&object_ref, |entry| entry.account.clone())
        .flatten()
        .filter(|previous| !Arc::ptr_eq(previous, &account));
    if memory
        .get(&object_ref, |e| e.account.is_none())
        .unwrap_or(true)
    {
        // The first account this process sees the resource with (kept until the object is
        // known to be elsewhere; see `act`).
        memory.with(&object_ref, |entry| entry.account = Some(account.clone()));
    }
    let prepared = match resource.prepare(ctx, &account, &secrets_api).await? {
        Inputs::Prepared(prepared) => prepared,
        Inputs::Awaiting(others) => return Ok(Observed::Awaiting(others)),
    };
    let refused_before = memory
        .get(&object_ref, |entry| {
            entry.refused.as_ref()
                == Some(&(resource.meta().generation, prepared.inputs_hash.clone()))
        })
        .unwrap_or(false);
    let status = &r.status;
    let verified_recently = status
        .common()
        .id
        .as_deref()
        .and_then(|id| account.verified_at(id))
        // Checked recently: this reconcile comes from a status write or a label change, not
        // from the drift schedule, which is an interval ±10% after the last check.
        .is_some_and(|at| at.elapsed() < interval / 2);
    let created_unrecorded = match status.common().id {
        Some(_) => None,
        None => memory.get(&object_ref, |e| e.created.clone()).flatten(),
    };
    let leftover = memory.get(&object_ref, |e| e.leftover.clone()).flatten();
    let adopt_owner = adopt_id
        .as_deref()
        .and_then(|id| owner_of(ctx, resource, id));
    let adoption = adoption_rights(ctx, resource, adopt_id.as_deref());
    Ok(Observed::Inputs(Observation {
        account,
        prepared,
        interval,
        mode,
        adopt_id,
        adopt_owner,
        adoption,
        refused_before,
        verified_recently,
        own_drift_schedule: interval != ctx.drift_interval,
        created_unrecorded,
        leftover,
        previous_account,
    }))
}

/// Whether the resource may create now, and the account's create guards it holds for that
/// (held until the plan is carried out; see [`create_turn`]).
pub struct Turn {
    pub facts: CreateTurn,
    guards: Vec<CreateGuard>,
}

impl Turn {
    /// Whether this turn holds the right to create `fingerprint` in `account`.
    pub fn covers(&self, account: &Arc<Account>, fingerprint: &str) -> bool {
        self.guards.iter().any(|g| g.covers(account, fingerprint))
    }
}

/// Reads from ngrok what `read` asks for, then takes the resource's [`Turn`] to create when
/// the plan wants it (`turn`). A lost-create search is made on that turn (see
/// [`search_lost_create`]).
pub async fn remote<K: Managed>(
    r: &Reconciliation<'_, K>,
    observation: &Observation<K>,
    read: Read,
    turn: TurnWanted,
) -> Result<(Seen<K::Remote>, Option<Turn>)> {
    let account = &observation.account;
    let seen = match read {
        Read::Nothing => Seen::NotRead,
        Read::Object(id) | Read::OwnDriftCheck(id) => match K::get(account, &id).await {
            Ok(remote) => Seen::Found(remote),
            Err(e) if e.is_not_found() => Seen::Gone { elsewhere: None },
            // The object is there, in a shape this client cannot read.
            Err(ngrok_api::Error::InvalidResponse { detail, .. }) => Seen::Unreadable(detail),
            Err(e) => return Err(e.into()),
        },
        Read::Listing(id) => {
            // A listing shared by the whole account, newer than the last time this object was
            // written or checked.
            let snapshot = K::listing(account, account.verified_at(&id)).await?;
            match snapshot.lookup(&id) {
                Lookup::Found(remote) => Seen::Found(remote.clone()),
                Lookup::Uncomparable { reason } => Seen::Unreadable(reason.to_string()),
                Lookup::Absent => Seen::Gone { elsewhere: None },
            }
        }
        Read::LostCreate(pending) => {
            return Ok(match search_lost_create(r, account, &pending).await? {
                Some((seen, guard)) => (seen, Some(create_turn(r, observation, vec![guard]))),
                // Not searched: the search waits for its turn, as a create would.
                None => (Seen::NotRead, Some(create_turn(r, observation, Vec::new()))),
            });
        }
    };
    let seen = match (seen, r.status.common().id.as_deref()) {
        (Seen::Gone { .. }, Some(id)) => Seen::Gone {
            elsewhere: elsewhere::<K>(r, observation, id).await?,
        },
        (seen, _) => seen,
    };
    let wanted = match turn {
        TurnWanted::Always => true,
        TurnWanted::IfGone => matches!(seen, Seen::Gone { .. }),
        TurnWanted::Never => false,
    };
    Ok((
        seen,
        wanted.then(|| create_turn(r, observation, Vec::new())),
    ))
}

/// Looks in `account` for the outcome of the resource's lost create `pending`: the search of
/// creation and of deletion alike. Searching while another resource creates the same content,
/// or takes the outcome of its own search, could take its object: the search is made only
/// with the account's create guard for the content, which is returned and held until what it
/// found is acted on; `None` (nothing read) when another reconcile holds it (the plan then
/// waits). The listing is newer than the search; the objects other resources claim are left
/// out.
pub async fn search_lost_create<K: Managed>(
    r: &Reconciliation<'_, K>,
    account: &Arc<Account>,
    pending: &PendingCreate,
) -> Result<Option<(Seen<K::Remote>, CreateGuard)>> {
    let Some(guard) = account.begin_create(&pending.fingerprint) else {
        return Ok(None);
    };
    let snapshot = K::listing(account, Some(std::time::Instant::now())).await?;
    // Copied for the plan to choose from (a search is rare, and one at a time per content).
    let seen = Seen::Candidates {
        listing: snapshot.objects.values().cloned().collect(),
        claimed: claimed_by_others(r),
        complete: snapshot.is_complete(),
        alike: intents_alike(r, &pending.fingerprint, account),
    };
    Ok(Some((seen, guard)))
}

/// Whether the resource may create its content now ([`plan::CreateTurn`](super::plan::CreateTurn)): the account's
/// create guard for the content (one create of a given content at a time per account, so
/// that a lost create is recognisable by its content alone, however alike the resources
/// are), kept in the returned [`Turn`] along with `held` (a search's), and the other
/// resources' intents alike that the plan may have to wait for.
pub fn create_turn<K: Managed>(
    r: &Reconciliation<'_, K>,
    observation: &Observation<K>,
    mut held: Vec<CreateGuard>,
) -> Turn {
    let account = &observation.account;
    let fingerprint = K::fingerprint(&observation.prepared.desired);
    let mut guard_held_elsewhere = false;
    if !held.iter().any(|guard| guard.covers(account, &fingerprint)) {
        match account.begin_create(&fingerprint) {
            Some(guard) => held.push(guard),
            None => guard_held_elsewhere = true,
        }
    }
    Turn {
        facts: CreateTurn {
            guard_held_elsewhere,
            others_pending: others_pending(r, account, &fingerprint),
            uid: r.resource.uid().unwrap_or_default(),
            now: Timestamp::now(),
        },
        guards: held,
    }
}

/// The intents to create `fingerprint` of the other resources without an id that this
/// process last reconciled with `account`, each with whether its resource is being managed:
/// what [`plan::create_must_wait`](super::plan::create_must_wait) orders this resource's create among, those that still
/// hold others ([`plan::intent_holds_others`](super::plan::intent_holds_others)).
fn others_pending<K: Managed>(
    r: &Reconciliation<'_, K>,
    account: &Arc<Account>,
    fingerprint: &str,
) -> Vec<OtherIntent> {
    let uid = r.resource.uid().unwrap_or_default();
    let state = K::state(r.ctx);
    state
        .store
        .state()
        .iter()
        .filter_map(|other| {
            let other_uid = other.meta().uid.as_deref()?;
            let status = other.status()?.common();
            let pending = status.pending_create.as_ref()?;
            let counts = other_uid != uid
                && status.id.is_none()
                && pending.fingerprint == fingerprint
                && state
                    .memory
                    .uses_account(&ObjectRef::from_obj(other.as_ref()), account);
            counts.then(|| OtherIntent {
                pending: pending.clone(),
                uid: other_uid.to_string(),
                managed: is_managed(other.as_ref()),
            })
        })
        .collect()
}

/// Whether `resource` is being managed: not paused, not observing (nor with an unreadable
/// management annotation), not being deleted.
fn is_managed<K: Managed>(resource: &K) -> bool {
    let annotations = resource.annotations();
    resource.meta().deletion_timestamp.is_none()
        && !annotations::is_paused(annotations)
        && matches!(annotations::is_observing(annotations), Ok(false))
}

/// How many resources have a create of this content whose outcome is not known, this one
/// included: its twins (identical content) whose creates were in flight with it when a process
/// was killed. Resources known to use another account do not count.
fn intents_alike<K: Managed>(
    r: &Reconciliation<'_, K>,
    fingerprint: &str,
    account: &Arc<Account>,
) -> usize {
    let uid = r.resource.uid();
    let memory = &K::state(r.ctx).memory;
    let others = K::state(r.ctx).store.state();
    1 + others
        .iter()
        .filter(|other| other.uid() != uid)
        .filter(|other| {
            other.status().is_some_and(|s| {
                let s = s.common();
                s.id.is_none()
                    && s.pending_create
                        .as_ref()
                        .is_some_and(|p| p.fingerprint == fingerprint)
            })
        })
        .filter(|other| {
            let other = ObjectRef::from_obj(other.as_ref());
            memory
                .get(&other, |e| e.account.clone())
                .flatten()
                .is_none_or(|theirs| Arc::ptr_eq(&theirs, account))
        })
        .count()
}

/// Where an object the resource's key does not see is, when that key is not the one the
/// object was last seen with: still in the previous account (a move), deleted, or a person
/// must tell. A status without a fingerprint (written by an older version) counts as the
/// same key.
async fn elsewhere<K: Managed>(
    r: &Reconciliation<'_, K>,
    observation: &Observation<K>,
    id: &str,
) -> Result<Option<Elsewhere<K::Remote>>> {
    let current = &observation.account;
    let recorded = r.status.common().key_fingerprint.as_deref();
    if recorded.is_none_or(|recorded| recorded == current.key_fingerprint()) {
        return Ok(None);
    }
    let previous = match &observation.previous_account {
        Some(previous) => match K::get(previous, id).await {
            Ok(remote) => return Ok(Some(Elsewhere::InOldAccount(remote))),
            Err(e) if e.is_not_found() => return Ok(Some(Elsewhere::GoneFromBoth)),
            // The previous key no longer works: its account's identity tells the rest.
            Err(e) if e.is_refusal() => {
                Some(KnownIdentity::from_result(previous.identity().await)?)
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let current = KnownIdentity::from_result(current.identity().await)?;
    Ok(Some(match account_change(previous.as_ref(), &current) {
        // A rotation within the account: the object really was deleted.
        AccountChange::SameAccount => Elsewhere::SameAccount,
        // The previous key lists its account but may not read the object: no one can tell.
        AccountChange::OtherAccount => Elsewhere::CannotTell(PreviousAccount::KeyRefused),
        AccountChange::CannotTell(cause) => Elsewhere::CannotTell(cause),
    }))
}

/// The ids other resources of this kind hold: in their statuses, or created by this process
/// and not yet recorded. Never this resource's own, so that the outcome of its own lost
/// create (a failed status write) is found, not created again.
fn claimed_by_others<K: Managed>(r: &Reconciliation<'_, K>) -> HashSet<String> {
    let uid = r.resource.uid();
    let mut claimed = K::state(r.ctx).memory.created_by_others(&r.object_ref());
    claimed.extend(
        K::state(r.ctx)
            .store
            .state()
            .iter()
            .filter(|other| other.uid() != uid)
            .filter_map(|other| other.status().and_then(|s| s.common().id.clone())),
    );
    claimed
}

/// Which other resource already manages `id`, as a message may name it: another namespace's
/// resources are never named to this one.
fn owner_of<K: Managed>(ctx: &Context, resource: &K, id: &str) -> Option<String> {
    let (uid, namespace) = (resource.uid(), resource.namespace());
    K::state(ctx).store.state().iter().find_map(|other| {
        let claims =
            other.uid() != uid && other.status().and_then(|s| s.common().id.as_deref()) == Some(id);
        claims.then(|| match other.namespace() == namespace {
            true => format!("{} {}", K::KIND, other.name_any()),
            false => format!("an {} in another namespace", K::KIND),
        })
    })
}

/// Who may adopt `adopt_id` here: the facts [`plan`] decides by. A subscription of another
/// namespace that names the id is looked for among every subscription this process watches.
fn adoption_rights<K: Managed>(
    ctx: &Context,
    resource: &K,
    adopt_id: Option<&str>,
) -> AdoptionRights {
    let namespace = resource.namespace().unwrap_or_default();
    AdoptionRights {
        operator_key: resource.api_key_ref().is_none(),
        namespace_selected: ctx.adoption_allowed(&namespace),
        selector: ctx
            .adoption_namespaces
            .as_ref()
            .map(|selected| selected.selector.clone()),
        named_by_another_namespace: adopt_id.is_some_and(|id| {
            references::named_in_another_namespace(&ctx.subscriptions.store.state(), &namespace, id)
        }),
        namespace,
    }
}
