//! Wiring: the kube-runtime controllers for EventDestinations and EventSubscriptions, the
//! watches that trigger them, and the context every reconcile shares. The caller brings the
//! Kubernetes client.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::accounts::Accounts;
use crate::conditions;
use crate::crd::{EventDestination, EventSubscription, PAUSED_ANNOTATION};
use crate::http::Health;
use crate::reconcile::{self, Context, Managed, ManagedStatus};
use crate::references;
use crate::secrets;
use crate::telemetry::Metrics;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// How often each resource is compared with ngrok when nothing changed.
    pub drift_interval: Duration,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Name of this replica, in the events it publishes.
    pub instance: String,
    /// Resources may only read Secrets labelled `events.ngrok.io/credentials=true`; only those
    /// are watched.
    pub require_credentials_label: bool,
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
            client,
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
    let ctx = Arc::new(ctx);
    let (destination_triggers, destination_requests) = mpsc::unbounded();
    let (subscription_triggers, subscription_requests) = mpsc::unbounded();

    // Each cache is filled before the event reaches the other controller, so that controller
    // reads the new state. The caches drop managedFields, which the operator never reads and
    // which can be as large as the rest of an object: at 10,000 resources that is most of the
    // controller's memory.
    let destination_events = reflector(destination_writer, watch(destinations)).inspect({
        let (subscriptions, triggers) = (subscription_store.clone(), subscription_triggers.clone());
        move |event| {
            if let Some(destination) = changed(event) {
                for subscription in
                    references::subscriptions_using(&subscriptions.state(), destination)
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
        move |event| {
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
    let config = controller::Config::default().concurrency(settings.concurrency);
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
    futures::join!(destination_controller, subscription_controller);
    secret_router.abort();
    health.set_ready(false);
    info!("controllers stopped");
    Ok(())
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

/// A watch of every `K`, without managedFields.
fn watch<K: Managed>(
    api: Api<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|resource: &mut K| resource.managed_fields_mut().clear())
}

/// The objects a watch event adds, changes or deletes.
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
        Err(error) => debug!(kind = K::KIND, %error, "controller event"),
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
async fn wait_until_ready<K: Managed>(store: &Store<K>) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Counts of resources by state, for the `resources` gauge (computed at scrape time).
fn resource_states<K: Managed>(resources: &[Arc<K>]) -> Vec<(String, i64)> {
    let mut counts = [
        ("ready", 0),
        ("reconciling", 0),
        ("stalled", 0),
        ("paused", 0),
    ];
    for resource in resources {
        let conditions = resource
            .status()
            .map(|s| s.conditions())
            .unwrap_or_default();
        let state = if resource
            .annotations()
            .get(PAUSED_ANNOTATION)
            .is_some_and(|v| v == "true")
        {
            3
        } else if conditions::is_true(conditions, conditions::STALLED) {
            2
        } else if conditions::is_true(conditions, conditions::READY) {
            0
        } else {
            1
        };
        counts[state].1 += 1;
    }
    counts
        .iter()
        .map(|(state, n)| (state.to_string(), *n))
        .collect()
}
