//! The last step of a reconcile: carry out a plan's steps, in order, recording in the status
//! what each did and queueing the events that tell it.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use tracing::{debug, info};

use super::Reconciliation;
use super::managed::{Managed, ManagedStatus, RemoteObject};
use super::observe::{Observation, Turn};
use super::plan::{Cause, Step};
use crate::accounts::Account;
use crate::conditions::Phase;
use crate::crd::{CommonStatus, PendingCreate};
use crate::error::{Error, Result};

/// `turn`: the resource's turn to create ([`Turn`]), held until every step is done.
pub async fn act<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    observation: &Observation<K>,
    steps: Vec<Step<K>>,
    turn: Option<Turn>,
) -> Result<()> {
    let moving = steps
        .iter()
        .any(|step| matches!(step, Step::DeleteFromOldAccount { .. }));
    let mut replaced: Option<String> = None;
    for step in steps {
        match step {
            Step::Adopt(remote) => {
                record_remote(r.status.common_mut(), Some(&remote));
                // What it was created from is unknown: the update that follows sends what
                // differs.
                K::forget_inputs(&mut r.status);
                let id = remote.id().to_string();
                r.event(
                    EventType::Normal,
                    "Adopted",
                    format!("took over {id} from ngrok"),
                );
            }
            Step::RecordLostCreate {
                remote,
                content_changed,
            } => {
                info!(id = %remote.id(), "found the {} of an earlier create whose outcome was lost", K::NOUN);
                record_created(r, &observation.account, &remote);
                // It was created from the intent's content; the next pass updates any change.
                if content_changed {
                    K::forget_inputs(&mut r.status);
                }
            }
            Step::RecordCreated(remote) => {
                info!(id = %remote.id(), "recording the {} created by an earlier pass", K::NOUN);
                K::record_inputs(&mut r.status, &observation.prepared);
                record_created(r, &observation.account, &remote);
            }
            Step::ForgetGone(id) => {
                if !moving {
                    info!(old_id = %id, "{} is gone from ngrok; creating it again", K::NOUN);
                }
                observation.account.forget(&id);
                record_remote(r.status.common_mut(), None);
                replaced = Some(id);
            }
            Step::Create => {
                create(r, observation, turn.as_ref()).await?;
                if let (Some(old), false) = (&replaced, moving) {
                    let new = r.status.common().id.clone().unwrap_or_default();
                    r.event(
                        EventType::Normal,
                        "DriftCorrected",
                        format!("{old} was deleted in ngrok; created {new}"),
                    );
                }
            }
            Step::DeleteFromOldAccount { id, key } => {
                delete_from_old_account(r, &id, old_account(observation, &key)).await?;
            }
            Step::Update {
                id,
                update,
                fields,
                cause,
            } => {
                K::update(&observation.account, &id, &update).await?;
                let (reason, note) = match cause {
                    Cause::Drift => {
                        info!(%id, fields, "reverted changes made outside Kubernetes");
                        (
                            "DriftCorrected",
                            format!("reverted changes to {fields} made outside Kubernetes in {id}"),
                        )
                    }
                    Cause::Spec => {
                        info!(%id, fields, "updated {}", K::NOUN);
                        ("Updated", format!("updated {fields} of {id}"))
                    }
                };
                r.event(EventType::Normal, reason, note);
            }
            Step::Record(remote) => {
                K::record_inputs(&mut r.status, &observation.prepared);
                record_remote(r.status.common_mut(), Some(&remote));
                observation.account.mark_verified(remote.id());
            }
        }
    }
    // The account now holds the resource's object, seen with this key.
    if r.status.common().id.is_some() {
        r.status.common_mut().key_fingerprint =
            Some(observation.account.key_fingerprint().to_string());
    }
    K::state(r.ctx).memory.with(&r.object_ref(), |entry| {
        entry.account = Some(observation.account.clone());
    });
    Ok(())
}

/// Creates the ngrok object without ever leaving a twin: the intent is recorded in the status
/// before the POST, so that a create whose outcome was lost is looked for in a listing before
/// another is sent (see `plan::lost_create`).
async fn create<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    observation: &Observation<K>,
    turn: Option<&Turn>,
) -> Result<()> {
    let (account, prepared) = (&observation.account, &observation.prepared);
    let fingerprint = K::fingerprint(&prepared.desired);
    // The plan creates only on the resource's turn (`plan::turn_wanted`): this holds
    // by construction, and is checked because a create without it could leave a twin.
    if !turn.is_some_and(|turn| turn.covers(account, &fingerprint)) {
        return Err(Error::CreateQueued);
    }
    r.status.common_mut().pending_create = Some(PendingCreate {
        started_at: Timestamp::now().to_string(),
        fingerprint,
    });
    K::record_inputs(&mut r.status, prepared);
    r.write_status(&Phase::Progressing {
        reason: "Creating",
        message: format!("Creating the {} in ngrok", K::NOUN),
    })
    .await?;

    match K::create(account, &prepared.desired).await {
        Ok(created) => {
            info!(id = %created.id(), "created {}", K::NOUN);
            record_created(r, account, &created);
            r.event(
                EventType::Normal,
                "Created",
                format!("created {} in ngrok", created.id()),
            );
            Ok(())
        }
        Err(e) => {
            // After anything but a refusal the create may have happened, and the intent stays
            // for the next pass to look for it.
            if e.proves_nothing_created() {
                r.status.common_mut().pending_create = None;
            }
            Err(e.into())
        }
    }
}

/// The account a [`Step::DeleteFromOldAccount`] names by its key's fingerprint: the
/// previous account of a move, or the one holding a move's leftover.
fn old_account<'o, K: Managed>(
    observation: &'o Observation<K>,
    key: &str,
) -> Option<&'o Arc<Account>> {
    let leftover = observation.leftover.as_ref().map(|(_, account)| account);
    [observation.previous_account.as_ref(), leftover]
        .into_iter()
        .flatten()
        .find(|account| account.key_fingerprint() == key)
}

/// Takes `created` (made by this pass or an earlier one) as the resource's object. It is also
/// remembered until a status records it: if that write fails, the next pass takes it rather
/// than look for it or make another, and no other resource's search takes it meanwhile.
fn record_created<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    account: &Account,
    created: &K::Remote,
) {
    K::state(r.ctx).memory.with(&r.object_ref(), |entry| {
        entry.created = Some(created.clone())
    });
    let common = r.status.common_mut();
    record_remote(common, Some(created));
    common.pending_create = None;
    common.key_fingerprint = Some(account.key_fingerprint().to_string());
    account.mark_verified(created.id());
}

/// The second half of a move to another account: the old object goes, with the old key.
async fn delete_from_old_account<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    id: &str,
    from: Option<&Arc<Account>>,
) -> Result<()> {
    // The plan names only an account the observation holds.
    let Some(from) = from else {
        return Err(Error::AccountChanged {
            old_id: id.to_string(),
            cause: crate::error::PreviousAccount::Forgotten,
        });
    };
    let memory = &K::state(r.ctx).memory;
    match K::delete(from, id).await {
        Ok(()) => info!(%id, "deleted the {} from the previous ngrok account", K::NOUN),
        Err(e) if e.is_not_found() => debug!(%id, "{} was already gone", K::NOUN),
        Err(e) => {
            // Kept until a later pass deletes it (the object in the new account is recorded).
            memory.with(&r.object_ref(), |entry| {
                entry.leftover = Some((id.to_string(), from.clone()));
            });
            return Err(e.into());
        }
    }
    memory.with(&r.object_ref(), |entry| entry.leftover = None);
    from.forget(id);
    let new = r.status.common().id.clone().unwrap_or_default();
    r.event(
        EventType::Normal,
        "Moved",
        format!("the API key now belongs to another ngrok account: created {new} there and deleted {id} from the previous account"),
    );
    Ok(())
}

/// Records `remote`'s id, URI and creation time in `status` (or clears them).
fn record_remote(status: &mut CommonStatus, remote: Option<&dyn RemoteObject>) {
    status.id = remote.map(|r| r.id().to_string());
    status.uri = remote.map(|r| r.uri().to_string());
    status.created_at = remote.map(|r| r.created_at().to_string());
}
