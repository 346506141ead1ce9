//! Deletion: the ngrok object goes (or stays, as the resource says) before the finalizer is
//! released. What to do is [`deletion::cleanup`]'s decision (and [`deletion::unreachable`]'s, when
//! the account cannot be reached); this module reads what it needs and acts.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{debug, info, warn};

use super::managed::{Managed, ManagedStatus, RemoteObject};
use super::observe::search_lost_create;
use super::plan::deletion;
use super::plan::{Read, Seen};
use super::{Context, Reconciliation};
use crate::accounts::Account;
use crate::annotations;
use crate::conditions::Phase;
use crate::error::{Error, Result};

pub async fn cleanup<K: Managed>(resource: &K, ctx: &Context) -> Result<Action> {
    let mut r = Reconciliation::new(resource, ctx);
    let result = delete_remote(&mut r).await;
    if let Err(error) = &result {
        r.write_status(&Phase::Failed(error)).await.ok();
    }
    r.publish_events().await;
    if result.is_ok() {
        K::state(ctx).memory.forget(&r.object_ref());
    }
    result.map(|()| Action::await_change())
}

/// Why the ngrok object stays when the resource goes, if it does ([`deletion::kept_because`]).
fn kept_because<K: Managed>(resource: &K, ctx: &Context) -> Option<&'static str> {
    deletion::kept_because(
        ctx.deletion_policy_of(resource),
        annotations::is_paused(resource.annotations()),
        annotations::is_observing(resource.annotations()).ok(),
    )
}

async fn delete_remote<K: Managed>(r: &mut Reconciliation<'_, K>) -> Result<()> {
    let resource = r.resource;
    let memory = &K::state(r.ctx).memory;
    let status = r.status.common().clone();
    // An object this process created whose status write failed is the resource's too.
    let created = match &status.id {
        Some(_) => None,
        None => memory
            .get(&r.object_ref(), |e| {
                e.created.as_ref().map(|c| c.id().to_string())
            })
            .flatten(),
    };
    let mut facts = deletion::CleanupFacts {
        id: status.id.as_deref().or(created.as_deref()),
        pending: status.pending_create.as_ref(),
        kept: kept_because(resource, r.ctx),
        search_waits: false,
    };
    if !deletion::cleanup_needs_account(&facts) {
        let deletion = deletion::cleanup::<K>(&facts, Seen::NotRead);
        return carry_out(r, &[], deletion).await;
    }
    resource.check_deletable(r.ctx)?;

    let secrets_api = Api::<KubeSecret>::namespaced(
        r.ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let (remembered, leftover) = memory
        .get(&r.object_ref(), |entry| {
            (entry.account.clone(), entry.leftover.clone())
        })
        .unwrap_or_default();
    // The account that holds the object: the one this process last used for it, else the
    // key's (which may have gone first, as when a whole namespace is deleted).
    let current = r.ctx.account_for(resource, &secrets_api).await;
    let mut accounts: Vec<Arc<Account>> = remembered.into_iter().collect();
    match current {
        Ok(current) if !accounts.iter().any(|a| Arc::ptr_eq(a, &current)) => accounts.push(current),
        Ok(_) => {}
        Err(e) if accounts.is_empty() && e.is_account_unreachable() => {
            let deletion = unreachable(r, &facts, e);
            return carry_out(r, &accounts, deletion).await;
        }
        Err(e) if accounts.is_empty() => return Err(e),
        Err(_) => {}
    }
    if let Some((old, from)) = leftover {
        match delete_in::<K>(&from, &old).await {
            Ok(_) => {}
            // The previous account's key no longer works: nothing will delete it now.
            Err(e) if e.is_account_unreachable() => unconfirmed(r, &old, &e.message()),
            Err(e) => return Err(e),
        }
    }
    // The search is creation's (the claimed set, the create guard, a listing newer than the
    // search), in the account the resource last used; its guard is held until the delete.
    let (seen, _guard) = match deletion::cleanup_read(&facts) {
        Read::LostCreate(pending) => match search_lost_create(r, &accounts[0], &pending).await {
            Ok(Some((seen, guard))) => (seen, Some(guard)),
            Ok(None) => {
                facts.search_waits = true;
                (Seen::NotRead, None)
            }
            Err(e) if e.is_account_unreachable() => {
                let deletion = unreachable(r, &facts, e);
                return carry_out(r, &accounts, deletion).await;
            }
            Err(e) => return Err(e),
        },
        _ => (Seen::NotRead, None),
    };
    let deletion = deletion::cleanup::<K>(&facts, seen);
    match carry_out(r, &accounts, deletion).await {
        Err(e) if e.is_account_unreachable() => {
            let deletion = unreachable(r, &facts, e);
            carry_out(r, &accounts, deletion).await
        }
        result => result,
    }
}

/// Counts one more attempt that could not reach the account, and plans what follows.
fn unreachable<K: Managed>(
    r: &Reconciliation<'_, K>,
    facts: &deletion::CleanupFacts<'_>,
    cause: Error,
) -> deletion::Deletion {
    let attempt = K::state(r.ctx).memory.with(&r.object_ref(), |entry| {
        entry.unreachable_deletes = entry.unreachable_deletes.saturating_add(1);
        entry.unreachable_deletes
    });
    deletion::unreachable(facts, attempt, cause)
}

/// The Warning that a deletion ended without deleting `what` in ngrok.
fn unconfirmed<K: Managed>(r: &mut Reconciliation<'_, K>, what: &str, cause: &str) {
    warn!(
        what,
        cause,
        "{} not deleted: its ngrok account cannot be reached",
        K::NOUN
    );
    r.event(
        EventType::Warning,
        "DeleteUnconfirmed",
        format!(
            "{what} could not be deleted, the resource is released all the same: {cause}. If its ngrok account still holds {what}, delete it there"
        ),
    );
}

/// Carries out a deletion's plan. `accounts`: where the object may be, the account this
/// process last used for it first.
async fn carry_out<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    accounts: &[Arc<Account>],
    deletion: deletion::Deletion,
) -> Result<()> {
    let id = match deletion {
        deletion::Deletion::Release => return Ok(()),
        deletion::Deletion::Retain { id, why } => {
            info!(%id, why, "leaving the {} in ngrok", K::NOUN);
            // No longer this operator's to check.
            let account = K::state(r.ctx)
                .memory
                .get(&r.object_ref(), |entry| entry.account.clone())
                .flatten();
            if let Some(account) = account {
                account.forget(&id);
            }
            r.event(
                EventType::Normal,
                "Retained",
                format!("left {id} in ngrok: {why}"),
            );
            return Ok(());
        }
        deletion::Deletion::Unconfirmed { what, cause } => {
            unconfirmed(r, &what, &cause);
            return Ok(());
        }
        deletion::Deletion::Failed(error) => return Err(error),
        deletion::Deletion::Delete(id) => id,
    };
    // The remembered account's key may have been revoked since (a rotation): the current
    // key then answers for the same account.
    // A status written before fingerprints were recorded counts as the current key's.
    let recorded = r.status.common().key_fingerprint.clone();
    let last_saw_it = |account: &Account| {
        recorded
            .as_deref()
            .is_none_or(|f| f == account.key_fingerprint())
    };
    let mut result = Err(Error::ApiKeyMissing);
    for account in accounts {
        result = delete_in::<K>(account, &id)
            .await
            .map(|deleted| (deleted, last_saw_it(account)));
        match &result {
            Err(e) if e.is_ngrok_authentication() => continue,
            _ => break,
        }
    }
    match result? {
        // Not found by a key other than the one that last saw it (the key changed and this
        // process, restarted, no longer knows the previous one): the object may still be in
        // that key's account. The resource goes all the same (a namespace must not wait on an
        // account the operator cannot reach), but not silently.
        (Deleted::AlreadyGone, false) => {
            warn!(%id, "{} not found with the current API key, which is not the key that last saw it: it may remain in that key's account", K::NOUN);
            r.event(
                EventType::Warning,
                "DeleteUnconfirmed",
                format!(
                    "{id} was not found with the API key in use now, which is not the key that last saw it: if that key's ngrok account still holds {id}, delete it there"
                ),
            );
        }
        _ => r.event(
            EventType::Normal,
            "Deleted",
            format!("deleted {id} from ngrok"),
        ),
    }
    Ok(())
}

/// What a DELETE found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deleted {
    Now,
    AlreadyGone,
}

/// Deletes `id` in `account`; already gone counts as done.
async fn delete_in<K: Managed>(account: &Account, id: &str) -> Result<Deleted> {
    let deleted = match K::delete(account, id).await {
        Ok(()) => {
            info!(%id, "deleted {}", K::NOUN);
            Deleted::Now
        }
        Err(e) if e.is_not_found() => {
            debug!(%id, "{} was already gone", K::NOUN);
            Deleted::AlreadyGone
        }
        // A subscription ngrok knows of still names the destination (one of another namespace
        // that named its id, or one managed outside Kubernetes): retried, like an in-cluster
        // one, naming no one.
        Err(e) if e.is_destination_in_use() => {
            debug!(%id, "ngrok refuses to delete the {} while a subscription names it", K::NOUN);
            return Err(Error::DestinationInUse {
                subscriptions: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    account.forget(id);
    Ok(deleted)
}
