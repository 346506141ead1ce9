//! What triggers reconciles besides a resource's own changes: a namespace entering or leaving
//! a selector of the operator's, a namespace's default deletion policy changing, the
//! operator-wide key rotating. Each finds the resources it concerns in the kinds' caches.

use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::info;

use super::{changed, wait_until_ready};
use crate::crd::{EventDestination, EventSubscription};
use crate::reconcile::{Context, Managed};

/// Where to send a reconcile request for each kind, and the caches to find resources in.
#[derive(Clone)]
pub(super) struct Triggers {
    pub destinations: (
        Store<EventDestination>,
        mpsc::UnboundedSender<ObjectRef<EventDestination>>,
    ),
    pub subscriptions: (
        Store<EventSubscription>,
        mpsc::UnboundedSender<ObjectRef<EventSubscription>>,
    ),
}

impl Triggers {
    /// Requests a reconcile of every resource, of both kinds, that `select` picks.
    fn every(&self, select: impl Fn(&dyn ResourceView) -> bool) {
        fn send<K: Managed>(
            (store, triggers): &(Store<K>, mpsc::UnboundedSender<ObjectRef<K>>),
            select: &dyn Fn(&dyn ResourceView) -> bool,
        ) {
            for resource in store.state() {
                if select(resource.as_ref()) {
                    triggers
                        .unbounded_send(ObjectRef::from_obj(resource.as_ref()))
                        .ok();
                }
            }
        }
        send(&self.destinations, &select);
        send(&self.subscriptions, &select);
    }
}

/// What a trigger selects resources by.
trait ResourceView {
    fn namespace(&self) -> Option<String>;
    fn uses_operator_key(&self) -> bool;
}

impl<K: Managed> ResourceView for K {
    fn namespace(&self) -> Option<String> {
        ResourceExt::namespace(self)
    }
    fn uses_operator_key(&self) -> bool {
        self.api_key_ref().is_none()
    }
}

/// A cache of namespaces and the task that keeps it, its first listing complete.
type NamespaceCache = (
    Store<PartialObjectMeta<Namespace>>,
    tokio::task::JoinHandle<()>,
);
type NamespaceEvent = Result<watcher::Event<PartialObjectMeta<Namespace>>, watcher::Error>;

/// The namespaces a selector flag (`flag`) selects, such as those that may use the
/// operator-wide key: the API server evaluates the selector, so any selector kubectl takes
/// works. A namespace entering or leaving the selection triggers its resources.
pub(super) async fn selected_namespaces(
    client: &Client,
    flag: &str,
    selector: &str,
    triggers: Triggers,
) -> anyhow::Result<NamespaceCache> {
    let cannot_list = format!(
        "cannot list namespaces with {flag} {selector:?}: is it a valid label selector, and may the operator list namespaces?"
    );
    let keep_name_only = |meta: &mut ObjectMeta| {
        meta.annotations = None;
    };
    watch_namespaces(
        client,
        Some(selector),
        cannot_list,
        keep_name_only,
        move |event| {
            if let Some(namespace) = changed(event) {
                let name = namespace.name_any();
                triggers.every(|resource| resource.namespace().as_deref() == Some(name.as_str()));
            }
        },
    )
    .await
}

/// Every namespace with its annotation `events.ngrok.io/default-deletion-policy` alone (its
/// resources' default deletion policy). Nothing else of a namespace is kept, and a value longer
/// than any policy is kept as an unreadable one, so the cache stays small whatever namespaces
/// carry. A namespace whose annotation changes triggers its resources, whose status shows the
/// policy in effect.
pub(super) async fn namespace_defaults(
    client: &Client,
    triggers: Triggers,
) -> anyhow::Result<NamespaceCache> {
    use crate::crd::DEFAULT_DELETION_POLICY_ANNOTATION as KEY;
    let cannot_list = "cannot list namespaces (their events.ngrok.io/default-deletion-policy annotation): may the operator list and watch namespaces?".to_string();
    let keep_policy_only = |meta: &mut ObjectMeta| {
        let policy = meta.annotations.take().and_then(|mut a| a.remove(KEY));
        let policy = policy.map(|p| if p.len() > 16 { String::new() } else { p });
        meta.annotations = policy.map(|p| [(KEY.to_string(), p)].into());
        meta.labels = None;
    };
    let mut seen: std::collections::HashMap<String, Option<String>> = Default::default();
    watch_namespaces(client, None, cannot_list, keep_policy_only, move |event| {
        if let Some(namespace) = changed(event) {
            let name = namespace.name_any();
            let policy = match event {
                Ok(watcher::Event::Delete(_)) => None,
                _ => namespace.annotations().get(KEY).cloned(),
            };
            if seen.get(&name).cloned().flatten() != policy {
                triggers.every(|resource| resource.namespace().as_deref() == Some(name.as_str()));
            }
            match policy {
                Some(_) => seen.insert(name, policy),
                None => seen.remove(&name),
            };
        }
    })
    .await
}

/// A metadata-only watch of the namespaces (matching `selector`, if any), running once this
/// returns, its first listing complete so that no resource is decided for want of one. `keep`
/// strips each namespace to what the caller reads (managedFields always go); `on_event` sees
/// every event once the cache holds it. A first small listing fails early, with `cannot_list`,
/// when the selector is invalid or the operator may not list namespaces.
async fn watch_namespaces(
    client: &Client,
    selector: Option<&str>,
    cannot_list: String,
    keep: impl Fn(&mut ObjectMeta) + Send + Sync + 'static,
    mut on_event: impl FnMut(&NamespaceEvent) + Send + 'static,
) -> anyhow::Result<NamespaceCache> {
    // kube 5 asks for metadata only (PartialObjectMetadata) on an Api of PartialObjectMeta.
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let (mut list, mut watch) = (ListParams::default().limit(1), watcher::Config::default());
    if let Some(selector) = selector {
        list = list.labels(selector);
        watch = watch.labels(selector);
    }
    api.list(&list).await.context(cannot_list)?;
    let (store, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(api, watch.any_semantic())
            .default_backoff()
            .modify(move |namespace| {
                namespace.metadata.managed_fields = None;
                keep(&mut namespace.metadata);
            }),
    );
    let watch = tokio::spawn(events.for_each(move |event| {
        on_event(&event);
        std::future::ready(())
    }));
    wait_until_ready(&store).await;
    Ok((store, watch))
}

/// When the operator-wide key changes (its file was rotated), the resources that use it are
/// reconciled with the new key, refusals of the old one forgotten.
pub(super) async fn follow_operator_key(ctx: Arc<Context>, triggers: Triggers) {
    let mut rotations = ctx.accounts.rotations();
    while rotations.changed().await.is_ok() {
        info!("the operator-wide API key changed; reconciling the resources that use it");
        ctx.forget_operator_key_refusals();
        triggers.every(|resource| resource.uses_operator_key());
    }
}
