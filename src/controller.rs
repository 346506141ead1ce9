//! Wiring: the kube-runtime controllers for EventDestinations and EventSubscriptions, the
//! watches that trigger them, and the context every reconcile shares. The caller brings the
//! Kubernetes client.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
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
use triggers::{Triggers, follow_operator_key, namespace_defaults, selected_namespaces};

mod triggers;

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
    ctx.destinations.gate = gate::<EventDestination>(concurrency, &metrics);
    ctx.subscriptions.gate = gate::<EventSubscription>(concurrency, &metrics);
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
            ctx.destinations.gate.close();
            ctx.subscriptions.gate.close();
        }
    });
    let rotations = tokio::spawn(follow_operator_key(ctx.clone(), triggers));

    // Each cache is filled before the event reaches the other controller, so that controller
    // reads the new state. The caches keep only the metadata the operator reads (see `watch`).
    let destination_events = reflector(destination_writer, watch(destinations)).inspect({
        let (subscriptions, triggers) = (subscription_store.clone(), subscription_triggers.clone());
        let ctx = ctx.clone();
        move |event| {
            forget_deleted(&ctx.destinations.memory, event);
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
            forget_deleted(&ctx.subscriptions.memory, event);
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
                        .destinations
                        .memory
                        .secrets
                        .referencing(&namespace, &name)
                    {
                        destination_triggers.unbounded_send(destination).ok();
                    }
                    for subscription in ctx
                        .subscriptions
                        .memory
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
    let destinations_synced = destination_store.clone();
    let destination_controller = kind_controller(
        destination_events.applied_objects(),
        destination_store,
        destination_requests,
        ctx.clone(),
        shutdown.clone(),
    );
    let stopping = shutdown.clone();
    let subscription_controller = kind_controller(
        subscription_events.applied_objects(),
        subscription_store,
        subscription_requests,
        ctx,
        shutdown,
    );
    // A subscription finds its destinations' ids in the destination cache: before that cache
    // holds every destination, it would report DestinationNotReady for destinations that are
    // Ready (and flap its conditions at every start of the operator).
    let subscription_controller = async move {
        if wait_until_ready(&destinations_synced).await && !stopping.is_cancelled() {
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

/// The work slots of kind `K`: `concurrency` at once, shared fairly across namespaces.
fn gate<K: Managed>(concurrency: usize, metrics: &Metrics) -> crate::fairness::Gate {
    crate::fairness::Gate::new(concurrency, metrics.admission_waiters(K::KIND))
}

/// The controller of kind `K`: reconciles what `objects` brings and what `requests` asks for.
/// Every reconcile starts at once: the work is bounded by the kind's fair gate
/// (`reconcile::reconcile`, `--concurrency`), which a reconcile waiting for ngrok's budget
/// leaves.
fn kind_controller<K: Managed>(
    objects: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    store: Store<K>,
    requests: mpsc::UnboundedReceiver<ObjectRef<K>>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> {
    let synced = store.clone();
    let controller = Controller::for_stream(objects, store)
        .reconcile_on(requests)
        .with_config(controller::Config::default().concurrency(0))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile::reconcile::<K>, reconcile::error_policy::<K>, ctx)
        .for_each(log_result);
    async move {
        let mut controller = std::pin::pin!(controller);
        tokio::select! {
            () = &mut controller => return,
            () = shutdown.cancelled() => {}
        }
        // kube-runtime's runner starts once the store holds its first full listing, and a
        // graceful shutdown before that waits for ever (the watch is no longer read). Nothing
        // has been reconciled then: the controller is dropped. Otherwise the reconciles at
        // work finish first.
        if matches!(synced.wait_until_ready().now_or_never(), Some(Ok(()))) {
            controller.await;
        }
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
