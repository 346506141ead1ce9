//! Deletion: the ngrok object goes (or stays, as the resource says) before the finalizer is
//! released.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{debug, info, warn};

use super::managed::{Managed, ManagedStatus, RemoteObject};
use super::observe::account_for;
use super::{Context, Reconciliation, plan};
use crate::accounts::Account;
use crate::annotations;
use crate::conditions::Phase;
use crate::crd::DeletionPolicy;
use crate::error::{Error, Result};

pub async fn cleanup<K: Managed>(resource: &K, ctx: &Context) -> Result<Action> {
    let mut r = Reconciliation::new(resource, ctx);
    let result = delete_remote(&mut r).await;
    if let Err(error) = &result {
        r.write_status(&Phase::Failed(error)).await.ok();
    }
    r.publish_events().await;
    if result.is_ok() {
        K::memory(ctx).forget(&r.object_ref());
    }
    result.map(|()| Action::await_change())
}

/// Why the ngrok object stays when the resource goes, if it does.
fn kept_because<K: Managed>(resource: &K) -> Option<&'static str> {
    let paused = annotations::is_paused(resource.annotations());
    match resource.deletion_policy() {
        DeletionPolicy::Retain => Some("deletionPolicy is Retain"),
        DeletionPolicy::Delete if paused => Some("the resource is paused"),
        // A resource that only observes (or whose annotation is unreadable) never deletes.
        _ if annotations::is_observing(resource.annotations()).unwrap_or(true) => {
            Some("the resource only observes")
        }
        DeletionPolicy::Delete => None,
    }
}

async fn delete_remote<K: Managed>(r: &mut Reconciliation<'_, K>) -> Result<()> {
    let resource = r.resource;
    let id = r.status.common().id.clone();
    if let Some(why) = kept_because(resource) {
        if let Some(id) = &id {
            info!(%id, why, "leaving the {} in ngrok", K::NOUN);
            // No longer this operator's to check.
            let account = K::memory(r.ctx)
                .get(&r.object_ref(), |entry| entry.account.clone())
                .flatten();
            if let Some(account) = account {
                account.forget(id);
            }
            r.event(
                EventType::Normal,
                "Retained",
                format!("left {id} in ngrok: {why}"),
            );
        }
        return Ok(());
    }
    let pending = r.status.common().pending_create.clone();
    if id.is_none() && pending.is_none() {
        return Ok(());
    }
    resource.check_deletable(r.ctx)?;

    let secrets_api = Api::<KubeSecret>::namespaced(
        r.ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let memory = K::memory(r.ctx);
    let (remembered, leftover) = memory
        .get(&r.object_ref(), |entry| {
            (entry.account.clone(), entry.leftover.clone())
        })
        .unwrap_or_default();
    // The account that holds the object: the one this process last used for it, else the
    // key's (which may have gone first, as when a whole namespace is deleted).
    let current = account_for(r.ctx, resource, &secrets_api).await;
    let mut accounts: Vec<Arc<Account>> = remembered.into_iter().collect();
    match current {
        Ok(current) if !accounts.iter().any(|a| Arc::ptr_eq(a, &current)) => accounts.push(current),
        Ok(_) => {}
        Err(e) if accounts.is_empty() => return Err(e),
        Err(_) => {}
    }
    if let Some((old, from)) = leftover {
        delete_in::<K>(&from, &old).await?;
    }
    let account = accounts[0].clone();
    let id = match (id, pending) {
        (Some(id), _) => id,
        (None, Some(pending)) => {
            let snapshot = K::listing(&account, Some(std::time::Instant::now())).await?;
            let claimed: HashSet<String> = K::store(r.ctx)
                .state()
                .iter()
                .filter(|other| other.uid() != resource.uid())
                .filter_map(|other| other.status().and_then(|s| s.common().id.clone()))
                .collect();
            let mut found =
                plan::lost_create_candidates::<K>(snapshot.objects.values(), &pending, &claimed);
            match found.len() {
                0 => return Ok(()),
                1 => found.remove(0).id().to_string(),
                _ => {
                    return Err(Error::AmbiguousCreate {
                        candidates: found.iter().map(|o| o.id().to_string()).collect(),
                    });
                }
            }
        }
        (None, None) => return Ok(()),
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
    // `accounts` is never empty (see above).
    let mut result = Err(Error::ApiKeyMissing);
    for account in &accounts {
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
        Err(e) => return Err(e.into()),
    };
    account.forget(id);
    Ok(deleted)
}
