//! Wiring: the kube-runtime controller for EventDestinations, the Secret watch that triggers
//! it, and the context every reconcile shares. The caller brings the Kubernetes client.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::accounts::Accounts;
use crate::conditions;
use crate::crd::{EventDestination, PAUSED_ANNOTATION};
use crate::http::Health;
use crate::reconcile::{self, Context, KIND};
use crate::secrets::SecretIndex;
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
}

/// Runs the controller until `shutdown` is cancelled; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    accounts: Accounts,
    metrics: Metrics,
    health: Health,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (destinations, secrets): (Api<EventDestination>, Api<PartialObjectMeta<KubeSecret>>) =
        match &settings.namespace {
            Some(namespace) => (
                Api::namespaced(client.clone(), namespace),
                Api::namespaced(client.clone(), namespace),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
    destinations
        .list(&ListParams::default().limit(1))
        .await
        .context("cannot list EventDestinations: is the CRD installed (ngrok-events-operator crd | kubectl apply -f -) and may the operator list them?")?;

    // The cache drops managedFields, which the operator never reads and which can be as large
    // as the rest of an object: at 10,000 resources that is most of the controller's memory.
    let (store, writer) = reflector::store();
    let destination_events = watcher(destinations, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|destination: &mut EventDestination| destination.managed_fields_mut().clear());
    let controller = Controller::for_stream(
        reflector(writer, destination_events).applied_objects(),
        store.clone(),
    );
    let secret_index = Arc::new(SecretIndex::default());

    // Secrets are watched for their metadata only: a changed Secret triggers the resources that
    // reference it, and no secret value is ever held in the controller's memory.
    let index = secret_index.clone();
    let secret_events =
        watcher(secrets, watcher::Config::default().any_semantic()).touched_objects();

    let states = store.clone();
    metrics.register_resource_states(KIND, move || resource_states(&states.state()));

    let ctx = Arc::new(Context {
        client: client.clone(),
        accounts,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "ngrok-events-operator".into(),
                instance: Some(settings.instance.clone()),
            },
        ),
        metrics,
        store: store.clone(),
        drift_interval: settings.drift_interval,
        failures: Default::default(),
        refused: Default::default(),
        last_account: Default::default(),
        statuses: Default::default(),
        secret_index,
    });

    tokio::spawn(mark_ready_when_synced(store.clone(), health.clone()));

    info!(namespace = settings.namespace.as_deref().unwrap_or("<all>"), drift_interval = ?settings.drift_interval, concurrency = settings.concurrency, "starting the EventDestination controller");
    controller
        .watches_stream(secret_events, move |secret| index.referencing(&secret.namespace().unwrap_or_default(), &secret.name_any()))
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(namespace = object.namespace.as_deref().unwrap_or_default(), name = %object.name, "reconciled"),
                // Failures are logged with their context by the error policy.
                Err(error) => debug!(%error, "controller event"),
            }
        })
        .await;
    health.set_ready(false);
    info!("controller stopped");
    Ok(())
}

/// Sets readiness once the controller's cache holds every EventDestination.
///
/// The store's readiness future keeps only the waker of whoever polled it last, and the
/// controller's own runner waits on it too; waiting in short slices re-registers ours.
async fn mark_ready_when_synced(store: Store<EventDestination>, health: Health) {
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(Ok(())) => {
                info!("caches are in sync; ready");
                health.set_ready(true);
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => continue,
        }
    }
}

/// Counts of resources by state, for the `resources` gauge (computed at scrape time).
fn resource_states(destinations: &[Arc<EventDestination>]) -> Vec<(String, i64)> {
    let mut counts = [
        ("ready", 0),
        ("reconciling", 0),
        ("stalled", 0),
        ("paused", 0),
    ];
    for destination in destinations {
        let conditions = destination
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let state = if destination
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
