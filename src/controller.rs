//! Wiring: the kube-runtime controllers for EventDestinations and EventSubscriptions, the
//! watches that trigger them, and the context every reconcile shares. The caller brings the
//! Kubernetes client.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret as KubeSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::accounts::Accounts;
use crate::annotations;
use crate::conditions;
use crate::crd::{EventDestination, EventSubscription};
use crate::http::Health;
use crate::metrics::{Metrics, ResourceState};
use crate::reconcile::{self, Context, Managed, ManagedStatus};
use crate::references;
use crate::secrets;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// How often each resource is compared with ngrok when nothing changed.
    pub drift_interval: Duration,
    /// Reconciles working at once, per kind, shared fairly across namespaces (0: no bound).
    pub concurrency: u16,
    /// Name of this replica, in the events it publishes.
    pub instance: String,
    /// A label selector of the namespaces whose resources may use the operator-wide API key;
    /// every namespace when `None`.
    pub operator_key_namespace_selector: Option<String>,
    /// A label selector of the namespaces whose resources may adopt ngrok objects
    /// (`events.ngrok.io/adopt-id`) with the operator-wide key; none when `None`. A resource
    /// with its own `spec.apiKeyRef` may adopt from its account anywhere.
    pub adoption_namespace_selector: Option<String>,
    /// Resources may only read Secrets labelled `events.ngrok.io/credentials=true`; only those
    /// are watched.
    pub require_credentials_label: bool,
    /// The deletion policy of resources that set none, in namespaces without the annotation
    /// `events.ngrok.io/default-deletion-policy`.
    pub default_deletion_policy: crate::crd::DeletionPolicy,
    /// Leader election's fence: no write, to ngrok or to Kubernetes, unless the lease is
    /// surely held. `None` without leader election.
    pub fence: Option<crate::leader::LeaseFence>,
}

/// Runs the controllers until `shutdown` is cancelled; in-flight reconciles finish first.
///
/// One controller per kind. They share one cache per kind and trigger each other: a changed
/// EventDestination triggers the subscriptions that use it, a changed subscription the
/// destinations it uses (see [`crate::references`]), and a changed Secret every resource that
/// reads it.
pub async fn run(
    client: Client,
    accounts: Accounts,
    metrics: Metrics,
    health: Health,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let destinations: Api<EventDestination> = scoped(&client, &settings);
    let subscriptions: Api<EventSubscription> = scoped(&client, &settings);
    let secrets: Api<PartialObjectMeta<KubeSecret>> = scoped(&client, &settings);
    destinations
        .list(&ListParams::default().limit(1))
        .await
        .context("cannot list EventDestinations: are the CRDs installed (ngrok-events-operator crd | kubectl apply -f -) and may the operator list them?")?;
    subscriptions
        .list(&ListParams::default().limit(1))
        .await
        .context("cannot list EventSubscriptions: are the CRDs installed (ngrok-events-operator crd | kubectl apply -f -) and may the operator list them?")?;

    let (destination_store, destination_writer) = reflector::store();
    let (subscription_store, subscription_writer) = reflector::store();
    let mut ctx = Context::new(
        client.clone(),
        accounts,
        Recorder::new(
            client.clone(),
            Reporter {
                controller: "ngrok-events-operator".into(),
                instance: Some(settings.instance.clone()),
            },
        ),
        metrics.clone(),
        settings.drift_interval,
        destination_store.clone(),
        subscription_store.clone(),
    );
    ctx.require_credentials_label = settings.require_credentials_label;
    ctx.default_deletion_policy = settings.default_deletion_policy;
    let concurrency = usize::from(settings.concurrency);
    ctx.destination_gate = crate::fairness::Gate::new(
        concurrency,
        metrics.admission_waiters(EventDestination::KIND),
    );
    ctx.subscription_gate = crate::fairness::Gate::new(
        concurrency,
        metrics.admission_waiters(EventSubscription::KIND),
    );
    ctx.fence = settings.fence.clone();
    let (destination_triggers, destination_requests) = mpsc::unbounded();
    let (subscription_triggers, subscription_requests) = mpsc::unbounded();
    let triggers = Triggers {
        destinations: (destination_store.clone(), destination_triggers.clone()),
        subscriptions: (subscription_store.clone(), subscription_triggers.clone()),
    };
    let mut namespace_watches = Vec::new();
    if let Some(selector) = &settings.operator_key_namespace_selector {
        let (store, watch) = selected_namespaces(
            &client,
            "--operator-key-namespace-selector",
            selector,
            triggers.clone(),
        )
        .await?;
        namespace_watches.push(watch);
        ctx.operator_key_namespaces = Some(store);
    }
    if let Some(selector) = &settings.adoption_namespace_selector {
        let (namespaces, watch) = selected_namespaces(
            &client,
            "--adoption-namespace-selector",
            selector,
            triggers.clone(),
        )
        .await?;
        namespace_watches.push(watch);
        ctx.adoption_namespaces = Some(reconcile::SelectedNamespaces {
            selector: selector.clone(),
            namespaces,
        });
    }
    // One namespace's Role cannot read its Namespace object: watching one namespace, the
    // operator's default applies there (`--default-deletion-policy`).
    if settings.namespace.is_none() {
        let (store, watch) = namespace_defaults(&client, triggers.clone()).await?;
        namespace_watches.push(watch);
        ctx.namespace_defaults = Some(store);
    }
    let ctx = Arc::new(ctx);
    // Stopping waits for the reconciles at work, not for those queued for a slot or for
    // ngrok's budget (see `fairness::admitted`).
    let close_gates = tokio::spawn({
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            ctx.destination_gate.close();
            ctx.subscription_gate.close();
        }
    });
    let rotations = tokio::spawn(follow_operator_key(ctx.clone(), triggers));

    // Each cache is filled before the event reaches the other controller, so that controller
    // reads the new state. The caches keep only the metadata the operator reads (see `watch`).
    let destination_events = reflector(destination_writer, watch(destinations)).inspect({
        let (subscriptions, triggers) = (subscription_store.clone(), subscription_triggers.clone());
        let ctx = ctx.clone();
        move |event| {
            forget_deleted(&ctx.destination_memory, event);
            if let Some(destination) = changed(event) {
                for subscription in
                    references::subscriptions_to_notify(&subscriptions.state(), destination)
                {
                    triggers
                        .unbounded_send(ObjectRef::from_obj(subscription.as_ref()))
                        .ok();
                }
            }
        }
    });
    let subscription_events = reflector(subscription_writer, watch(subscriptions)).inspect({
        let (destinations, triggers) = (destination_store.clone(), destination_triggers.clone());
        let ctx = ctx.clone();
        move |event| {
            forget_deleted(&ctx.subscription_memory, event);
            if let Some(subscription) = changed(event) {
                for destination in
                    references::destinations_to_notify(&destinations.state(), subscription)
                {
                    triggers.unbounded_send(destination).ok();
                }
            }
        }
    });

    // Secrets are watched for their metadata only (kube 5 asks for `PartialObjectMetadata` on an
    // `Api<PartialObjectMeta<_>>`, what its deprecated `metadata_watcher` did: the API server
    // sends no data), and only the labelled ones when the label is required: annotations are
    // metadata, and `kubectl.kubernetes.io/last-applied-configuration` holds the whole data of
    // a Secret made with `kubectl apply`. A changed Secret triggers the resources that reference
    // it; nothing but its namespace and name is used, and annotations and managedFields are
    // dropped on arrival all the same.
    let secret_watch = watcher::Config::default().any_semantic();
    let secret_watch = if settings.require_credentials_label {
        secret_watch.labels(&secrets::credentials_selector())
    } else {
        secret_watch
    };
    let secret_router = tokio::spawn({
        let ctx = ctx.clone();
        watcher(secrets, secret_watch)
            .default_backoff()
            .modify(|secret| {
                secret.metadata.annotations = None;
                secret.metadata.managed_fields = None;
            })
            .touched_objects()
            .for_each(move |secret| {
                if let Ok(secret) = secret {
                    let (namespace, name) =
                        (secret.namespace().unwrap_or_default(), secret.name_any());
                    for destination in ctx
                        .destination_memory
                        .secrets
                        .referencing(&namespace, &name)
                    {
                        destination_triggers.unbounded_send(destination).ok();
                    }
                    for subscription in ctx
                        .subscription_memory
                        .secrets
                        .referencing(&namespace, &name)
                    {
                        subscription_triggers.unbounded_send(subscription).ok();
                    }
                }
                std::future::ready(())
            })
    });

    let states = destination_store.clone();
    metrics.register_resource_states(EventDestination::KIND, move || {
        resource_states(&states.state())
    });
    let states = subscription_store.clone();
    metrics.register_resource_states(EventSubscription::KIND, move || {
        resource_states(&states.state())
    });
    tokio::spawn(mark_ready_when_synced(
        destination_store.clone(),
        subscription_store.clone(),
        health.clone(),
    ));

    info!(namespace = settings.namespace.as_deref().unwrap_or("<all>"), drift_interval = ?settings.drift_interval, concurrency = settings.concurrency, require_credentials_label = settings.require_credentials_label, "starting the EventDestination and EventSubscription controllers");
    // Every reconcile starts at once: the work is bounded by each kind's fair gate
    // (`reconcile::reconcile`, `--concurrency`), which a reconcile waiting for ngrok's budget
    // leaves.
    let config = controller::Config::default().concurrency(0);
    let destinations_synced = destination_store.clone();
    let destination_controller =
        Controller::for_stream(destination_events.applied_objects(), destination_store)
            .reconcile_on(destination_requests)
            .with_config(config.clone())
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(
                reconcile::reconcile::<EventDestination>,
                reconcile::error_policy::<EventDestination>,
                ctx.clone(),
            )
            .for_each(log_result);
    let subscription_controller =
        Controller::for_stream(subscription_events.applied_objects(), subscription_store)
            .reconcile_on(subscription_requests)
            .with_config(config)
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(
                reconcile::reconcile::<EventSubscription>,
                reconcile::error_policy::<EventSubscription>,
                ctx,
            )
            .for_each(log_result);
    // A subscription finds its destinations' ids in the destination cache: before that cache
    // holds every destination, it would report DestinationNotReady for destinations that are
    // Ready (and flap its conditions at every start of the operator).
    let subscription_controller = async move {
        if wait_until_ready(&destinations_synced).await {
            subscription_controller.await;
        }
    };
    futures::join!(destination_controller, subscription_controller);
    secret_router.abort();
    rotations.abort();
    close_gates.abort();
    for watch in namespace_watches {
        watch.abort();
    }
    health.set_ready(false);
    info!("controllers stopped");
    Ok(())
}

/// Where to send a reconcile request for each kind, and the caches to find resources in.
#[derive(Clone)]
struct Triggers {
    destinations: (
        Store<EventDestination>,
        mpsc::UnboundedSender<ObjectRef<EventDestination>>,
    ),
    subscriptions: (
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
async fn selected_namespaces(
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
async fn namespace_defaults(client: &Client, triggers: Triggers) -> anyhow::Result<NamespaceCache> {
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
async fn follow_operator_key(ctx: Arc<Context>, triggers: Triggers) {
    let mut rotations = ctx.accounts.rotations();
    while rotations.changed().await.is_ok() {
        info!("the operator-wide API key changed; reconciling the resources that use it");
        ctx.forget_operator_key_refusals();
        triggers.every(|resource| resource.uses_operator_key());
    }
}

/// An API for `K` in the watched namespace, or in all namespaces.
fn scoped<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &settings.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// A watch of every `K`, each object reduced to what the operator reads
/// ([`annotations::keep_what_the_operator_reads`]): managedFields, labels and foreign
/// annotations are as large as a tenant makes them (managedFields alone can be as large as the
/// rest of an object, most of the memory at 10,000 resources), and the operator reads none.
/// Resources per page of a watch's (re)listing. Each page is held whole twice, as the response
/// body and decoded, before [`annotations::keep_what_the_operator_reads`] strips what tenants
/// put in metadata: pages of 10 bound that to 10 objects (a few MiB at the 256 KiB that
/// Kubernetes allows for annotations), where one unpaged listing would hold every resource of
/// the cluster at once. Pages need the most recent resourceVersion (a consistent read):
/// the API server's watch cache (resourceVersion 0) ignores the limit.
const LIST_PAGE_SIZE: u32 = 10;

fn watch<K: Managed>(
    api: Api<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    watcher(api, watcher::Config::default().page_size(LIST_PAGE_SIZE))
        .default_backoff()
        .modify(|resource: &mut K| annotations::keep_what_the_operator_reads(resource.meta_mut()))
}

/// The objects a watch event adds, changes or deletes.
/// A resource gone from Kubernetes is gone from the operator's memory too, whichever way it
/// went (its finalizer removed by hand, its namespace no longer watched).
fn forget_deleted<K: Managed>(
    memory: &reconcile::Memory<K>,
    event: &Result<watcher::Event<K>, watcher::Error>,
) {
    if let Ok(watcher::Event::Delete(object)) = event {
        memory.forget(&ObjectRef::from_obj(object));
    }
}

fn changed<K>(event: &Result<watcher::Event<K>, watcher::Error>) -> Option<&K> {
    match event {
        Ok(
            watcher::Event::Apply(object)
            | watcher::Event::InitApply(object)
            | watcher::Event::Delete(object),
        ) => Some(object),
        _ => None,
    }
}

async fn log_result<K: Managed, E: std::fmt::Display>(
    result: Result<(ObjectRef<K>, kube::runtime::controller::Action), E>,
) {
    match result {
        Ok((object, _)) => {
            debug!(kind = K::KIND, namespace = object.namespace.as_deref().unwrap_or_default(), name = %object.name, "reconciled")
        }
        // Failures are logged with their context by the error policy.
        Err(error) => {
            debug!(kind = K::KIND, error = %ngrok_api::text::one_line(&error.to_string(), crate::error::MAX_MESSAGE_CHARS), "controller event")
        }
    }
}

/// Sets readiness once both caches hold every resource.
async fn mark_ready_when_synced(
    destinations: Store<EventDestination>,
    subscriptions: Store<EventSubscription>,
    health: Health,
) {
    if wait_until_ready(&destinations).await && wait_until_ready(&subscriptions).await {
        info!("caches are in sync; ready");
        health.set_ready(true);
    }
}

/// Waits for a store's first full listing; false if its writer went away first.
///
/// The store's readiness future keeps only the waker of whoever polled it last, and the
/// controller's own runner waits on it too; waiting in short slices re-registers ours.
async fn wait_until_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Counts of resources by state, for the `resources` gauge (computed at scrape time).
fn resource_states<K: Managed>(resources: &[Arc<K>]) -> Vec<(ResourceState, i64)> {
    let state_of = |resource: &K| {
        let conditions = resource
            .status()
            .map(|s| s.common().conditions.as_slice())
            .unwrap_or_default();
        if annotations::is_paused(resource.annotations()) {
            ResourceState::Paused
        } else if conditions::is_true(conditions, conditions::STALLED) {
            ResourceState::Stalled
        } else if conditions::is_true(conditions, conditions::READY) {
            ResourceState::Ready
        } else {
            ResourceState::Reconciling
        }
    };
    let mut counts = ResourceState::ALL.map(|state| (state, 0));
    for resource in resources {
        let state = state_of(resource);
        if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == state) {
            *n += 1;
        }
    }
    counts.to_vec()
}
