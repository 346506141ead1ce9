//! `drain`: the step before uninstalling, so that no namespace deletion ever waits on a
//! finalizer that no operator will remove (the chart runs it as a pre-delete hook).
//!
//! - **Retain**: the operator is stopped first (its Deployment scaled to 0, its pods gone:
//!   a running operator would add the finalizer back at once), then the finalizer
//!   `events.ngrok.io/cleanup` is removed from every resource. Every ngrok object stays, and
//!   so do the resources; a later install takes them over as they are.
//! - **Delete**: every resource is deleted while the operator still runs, subscriptions first,
//!   and the drain waits until all are gone: the operator deletes each ngrok object as the
//!   resource's deletion policy in effect says, then removes its finalizer.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::info;

use crate::crd::{DeletionPolicy, EventDestination, EventSubscription};
use crate::reconcile::FINALIZER;

/// How often the drain looks again while it waits (for pods to stop, resources to go).
const POLL: Duration = Duration::from_millis(500);

/// What to drain, and how.
#[derive(Debug, Clone)]
pub struct Drain {
    pub policy: DeletionPolicy,
    /// Only this namespace's resources (the operator's `watchNamespace`); all when `None`.
    pub namespace: Option<String>,
    /// The operator's Deployment, `(namespace, name)`, stopped before finalizers are removed.
    pub operator: Option<(String, String)>,
    /// How long to wait for the operator to stop, or for the resources to go.
    pub timeout: Duration,
}

/// Drains every EventSubscription and EventDestination in scope.
pub async fn drain(client: &Client, drain: &Drain) -> anyhow::Result<()> {
    match drain.policy {
        DeletionPolicy::Retain => {
            if let Some((namespace, name)) = &drain.operator {
                stop_operator(client, namespace, name, drain.timeout).await?;
            }
            let subscriptions = release::<EventSubscription>(client, drain).await?;
            let destinations = release::<EventDestination>(client, drain).await?;
            info!(
                subscriptions,
                destinations, "finalizers removed; every ngrok object stays"
            );
        }
        DeletionPolicy::Delete => {
            delete_all::<EventSubscription>(client, drain).await?;
            delete_all::<EventDestination>(client, drain).await?;
            info!("every resource deleted by the operator");
        }
    }
    Ok(())
}

fn scoped<K>(client: &Client, drain: &Drain) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match &drain.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Scales the operator's Deployment to 0 and waits until none of its pods remain.
async fn stop_operator(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace);
    let Some(deployment) = deployments
        .get_opt(name)
        .await
        .context("reading the operator's Deployment")?
    else {
        info!(namespace, name, "the operator's Deployment is already gone");
        return Ok(());
    };
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|selector| !selector.is_empty())
        .context("the operator's Deployment has no matchLabels selector")?;
    deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .context("scaling the operator's Deployment to 0")?;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let stopped = async {
        loop {
            let running = pods.list(&ListParams::default().labels(&selector)).await?;
            if running.items.is_empty() {
                return anyhow::Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::time::timeout(timeout, stopped)
        .await
        .with_context(|| {
            format!("the operator's pods ({selector}) did not stop within {timeout:?}")
        })??;
    info!(namespace, name, "the operator is stopped");
    Ok(())
}

/// Removes the operator's finalizer from every resource of kind `K`; returns how many.
async fn release<K>(client: &Client, drain: &Drain) -> anyhow::Result<usize>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let mut released = 0;
    for resource in scoped::<K>(client, drain)
        .list(&ListParams::default())
        .await?
        .items
    {
        if !resource.finalizers().iter().any(|f| f == FINALIZER) {
            continue;
        }
        let api = Api::<K>::namespaced(client.clone(), &resource.namespace().unwrap_or_default());
        let others: Vec<_> = resource
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .collect();
        // The test makes the patch fail, rather than drop a finalizer someone added meanwhile.
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": resource.finalizers()},
            {"op": "replace", "path": "/metadata/finalizers", "value": others},
        ]);
        api.patch(
            &resource.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(patch)?),
        )
        .await
        .with_context(|| {
            format!(
                "removing the finalizer of {} {}/{}",
                K::kind(&()),
                resource.namespace().unwrap_or_default(),
                resource.name_any()
            )
        })?;
        released += 1;
    }
    Ok(released)
}

/// Deletes every resource of kind `K` and waits until the operator has let all of them go.
async fn delete_all<K>(client: &Client, drain: &Drain) -> anyhow::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api = scoped::<K>(client, drain);
    for resource in api.list(&ListParams::default()).await?.items {
        if resource.meta().deletion_timestamp.is_none() {
            Api::<K>::namespaced(client.clone(), &resource.namespace().unwrap_or_default())
                .delete(&resource.name_any(), &DeleteParams::default())
                .await?;
        }
    }
    let gone = async {
        loop {
            let left = api.list(&ListParams::default()).await?.items;
            if left.is_empty() {
                return anyhow::Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    };
    if tokio::time::timeout(drain.timeout, gone).await.is_err() {
        let left: Vec<String> = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
            .collect();
        bail!(
            "{} {} not deleted within {:?} (is the operator running? `kubectl describe` says why): {}",
            left.len(),
            K::plural(&()),
            drain.timeout,
            left.join(", ")
        );
    }
    Ok(())
}
