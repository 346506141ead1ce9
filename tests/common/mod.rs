//! Shared set-up of the integration tests: the cluster, the CRDs, a namespace per test.
#![allow(dead_code)] // each test binary uses a different part of this module
pub mod kind;
pub mod process;
pub mod proxy;
pub mod webhook;

use std::path::PathBuf;

use anyhow::Result;
pub use kind::Kind;
use kube::Client;
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
pub use ngrok_events_operator::secrets::CREDENTIALS_LABEL;
use tokio::sync::OnceCell;

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A client, with the committed CRDs installed (once per process), and a fresh namespace.
/// Installing the committed files, not the in-memory types, tests what users install.
pub async fn cluster_with_namespace(prefix: &str) -> Result<(Client, String)> {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = testbed::client().await?;
    CRDS.get_or_try_init(|| async {
        for (file, _) in ngrok_events_operator::crd::files() {
            let yaml = std::fs::read_to_string(repo_path("crds").join(file))?;
            testbed::install_crds(&client, &yaml).await?;
        }
        anyhow::Ok(())
    })
    .await?;
    let namespace = testbed::namespace(&client, prefix).await?;
    Ok((client, namespace))
}

/// An operator running in this test process against the test bed and its own emulator,
/// watching one namespace of its own: tests run in parallel without seeing each other.
pub struct Operator {
    pub client: Client,
    pub namespace: String,
    pub emulator: ngrok_api_emulator::EmulatorHandle,
    pub registry: prometheus_client::registry::Registry,
    /// The running controller's ngrok accounts (how many are alive, for tests of what holds
    /// one).
    pub accounts: ngrok_events_operator::accounts::Accounts,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Starts the controller afresh (nothing remembered), with the same settings.
    launch: Box<dyn Fn() -> Launched + Send + Sync>,
}

/// A running controller: its metrics, and how to stop it.
struct Launched {
    registry: prometheus_client::registry::Registry,
    accounts: ngrok_events_operator::accounts::Accounts,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// How a test wants its operator.
pub struct Options {
    pub drift_interval: std::time::Duration,
    /// The operator-wide API key; `None` starts it without one.
    pub operator_api_key: Option<String>,
    pub emulator: ngrok_api_emulator::EmulatorBuilder,
    /// Watch every namespace of this cluster (a [`PrivateCluster`]'s, so that no other test's
    /// resources are seen) instead of one namespace of the shared test bed.
    pub all_namespaces_of: Option<Client>,
    /// `--operator-key-namespace-selector`.
    pub operator_key_namespace_selector: Option<String>,
    /// `--adoption-namespace-selector` (none by default, as in the binary: no namespace may
    /// adopt with the operator-wide key); [`EVERY_NAMESPACE`] selects all.
    pub adoption_namespace_selector: Option<String>,
    /// `--require-credentials-label` (on by default, as in the binary).
    pub require_credentials_label: bool,
    /// `--concurrency`.
    pub concurrency: u16,
    /// `--api-rate-limit` and the burst (0: no limit, the default of the tests).
    pub api_rate_limit: (u32, u32),
    /// `--default-deletion-policy` (`Delete`, as in the binary).
    pub default_deletion_policy: ngrok_events_operator::crd::DeletionPolicy,
}

/// A label selector of every test namespace ([`testbed::namespace`] labels each; the test
/// bed's API server may be older than 1.21's `kubernetes.io/metadata.name`).
pub const EVERY_NAMESPACE: &str = "testbed.ngrok.io/test";

/// The API key the emulator accepts.
pub const API_KEY: &str = "test-api-key-0123456789";

impl Options {
    /// The defaults, but every namespace may adopt with the operator-wide key.
    pub fn adopting() -> Self {
        Self {
            adoption_namespace_selector: Some(EVERY_NAMESPACE.into()),
            ..Default::default()
        }
    }

    /// The defaults, with drift checked every `interval`.
    pub fn with_drift_interval(interval: std::time::Duration) -> Self {
        Self {
            drift_interval: interval,
            ..Default::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            drift_interval: std::time::Duration::from_secs(600),
            operator_api_key: Some(API_KEY.into()),
            emulator: ngrok_api_emulator::Emulator::builder()
                .api_key(API_KEY)
                .rate_limit_per_minute(0),
            all_namespaces_of: None,
            operator_key_namespace_selector: None,
            adoption_namespace_selector: None,
            require_credentials_label: true,
            concurrency: 4,
            api_rate_limit: (0, 1),
            default_deletion_policy: Default::default(),
        }
    }
}

impl Operator {
    pub async fn start(prefix: &str) -> Self {
        Self::start_with(prefix, Options::default()).await
    }

    pub async fn start_with(prefix: &str, options: Options) -> Self {
        // The operator's logs, when a person asks for them with RUST_LOG.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_test_writer()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .try_init();
        }
        let (client, namespace) = match &options.all_namespaces_of {
            Some(client) => {
                let namespace = testbed::namespace(client, prefix).await.expect("namespace");
                (client.clone(), namespace)
            }
            None => cluster_with_namespace(prefix).await.expect("test bed"),
        };
        let emulator = options.emulator.spawn().await.expect("emulator");
        let base_url = emulator.base_url();
        let operator_api_key = options.operator_api_key;
        let settings = ngrok_events_operator::controller::Settings {
            namespace: options
                .all_namespaces_of
                .is_none()
                .then(|| namespace.clone()),
            drift_interval: options.drift_interval,
            concurrency: options.concurrency,
            instance: format!("test-{namespace}"),
            operator_key_namespace_selector: options.operator_key_namespace_selector,
            adoption_namespace_selector: options.adoption_namespace_selector,
            require_credentials_label: options.require_credentials_label,
            default_deletion_policy: options.default_deletion_policy,
            fence: None,
        };
        let (rate, burst) = options.api_rate_limit;
        let launch = {
            let client = client.clone();
            move || {
                let base_url = base_url.clone();
                let accounts = ngrok_events_operator::accounts::Accounts::new(
                    operator_api_key.clone().map(ngrok_api::Secret::new),
                    std::sync::Arc::new(move |key| {
                        let mut config = ngrok_api::ClientConfig::new(key)
                            .with_base_url(&base_url)
                            .unwrap();
                        config.rate_limit_per_minute = rate;
                        config.rate_limit_burst = burst;
                        config.min_backoff = std::time::Duration::from_millis(20);
                        config
                    }),
                );
                let (metrics, registry) = ngrok_events_operator::metrics::Metrics::new();
                let shutdown = tokio_util::sync::CancellationToken::new();
                let task = tokio::spawn(ngrok_events_operator::controller::run(
                    client.clone(),
                    accounts.clone(),
                    metrics,
                    ngrok_events_operator::http::Health::new(),
                    settings.clone(),
                    shutdown.clone(),
                ));
                Launched {
                    registry,
                    accounts,
                    shutdown,
                    task,
                }
            }
        };
        let Launched {
            registry,
            accounts,
            shutdown,
            task,
        } = launch();
        Self {
            client,
            namespace,
            emulator,
            registry,
            accounts,
            shutdown,
            task,
            launch: Box::new(launch),
        }
    }

    /// Stops the controller (finishing in-flight reconciles) and keeps the rest running: the
    /// test bed and the emulator, for changes made while no operator runs.
    pub async fn stop_controller(&mut self) {
        self.shutdown.cancel();
        (&mut self.task)
            .await
            .expect("operator task")
            .expect("operator result");
    }

    /// [`stop_controller`](Self::stop_controller), or `Err` if it takes longer than `bound`.
    #[allow(dead_code)]
    pub async fn stop_controller_within(
        &mut self,
        bound: std::time::Duration,
    ) -> Result<(), tokio::time::error::Elapsed> {
        tokio::time::timeout(bound, self.stop_controller()).await
    }

    /// Starts a new controller with the same settings that remembers nothing, as after a
    /// restart of the process. Its metrics start at 0.
    pub fn start_controller(&mut self) {
        let launched = (self.launch)();
        self.registry = launched.registry;
        self.accounts = launched.accounts;
        self.shutdown = launched.shutdown;
        self.task = launched.task;
    }

    /// The resources of kind `K` in the test's namespace.
    pub fn api<K: Kind>(&self) -> kube::Api<K> {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A client of the emulator with the operator's API key, to act in ngrok as a person would.
    pub fn ngrok(&self) -> ngrok_api::Client {
        let config = ngrok_api::ClientConfig::new(API_KEY)
            .with_base_url(&self.emulator.base_url())
            .unwrap();
        ngrok_api::Client::new(config).unwrap()
    }

    /// Deletes a resource of kind `K` and waits until it is gone (its finalizer removed).
    pub async fn delete_and_wait<K: Kind>(&self, name: &str) {
        self.api::<K>()
            .delete(name, &Default::default())
            .await
            .expect("delete resource");
        self.wait_deleted::<K>(name).await;
    }

    /// Waits until a resource of kind `K` is gone (its finalizer removed).
    pub async fn wait_deleted<K: Kind>(&self, name: &str) {
        testbed::wait_deleted(&self.api::<K>(), name, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{} {name} is not gone: {e}", K::kind_name()));
    }

    pub fn secrets(&self) -> kube::Api<k8s_openapi::api::core::v1::Secret> {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Creates a resource of kind `K`.
    pub async fn create<K: Kind>(&self, resource: &K) -> K {
        self.api::<K>()
            .create(&Default::default(), resource)
            .await
            .unwrap_or_else(|e| panic!("create {} {}: {e}", K::kind_name(), resource.name()))
    }

    /// Creates a Secret that resources may use (labelled `events.ngrok.io/credentials=true`).
    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) {
        self.create_secret_labelled(name, data, &[(CREDENTIALS_LABEL, "true")])
            .await
    }

    /// Creates a Secret with exactly these labels.
    pub async fn create_secret_labelled(
        &self,
        name: &str,
        data: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) {
        self.secrets()
            .create(&Default::default(), &secret(name, data, labels))
            .await
            .expect("create Secret");
    }

    /// Waits until the resource's Ready condition has `status` and `reason` for its current
    /// generation.
    pub async fn wait_ready_status<K: Kind>(&self, name: &str, status: &str, reason: &str) -> K {
        wait_ready_reason(&self.api::<K>(), name, status, reason).await
    }

    /// Waits until the resource is Ready (`Synced`) at its current generation.
    pub async fn wait_ready<K: Kind>(&self, name: &str) -> K {
        self.wait_ready_status(name, "True", "Synced").await
    }

    /// Waits until the resource is Ready (`Synced`) and returns its `status.id`.
    pub async fn wait_ready_id<K: Kind>(&self, name: &str) -> String {
        let ready = self.wait_ready::<K>(name).await;
        ready
            .status_id()
            .expect("a Ready resource has an id")
            .to_string()
    }

    /// Waits until a condition of `type_` is True with `reason`.
    pub async fn wait_condition<K: Kind>(&self, name: &str, type_: &str, reason: &str) -> K {
        let (type_, reason) = (type_.to_string(), reason.to_string());
        testbed::wait_for(
            &self.api::<K>(),
            name,
            move |d: Option<&K>| d.is_some_and(|d| d.has_condition(&type_, "True", &reason)),
            WAIT,
        )
        .await
        .unwrap()
    }

    /// Merge-patches a resource of kind `K`.
    pub async fn patch<K: Kind>(&self, name: &str, patch: serde_json::Value) {
        self.api::<K>()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .expect("patch resource");
    }

    /// Merge-patches a Secret (`{"stringData": {...}}` changes values).
    pub async fn patch_secret(&self, name: &str, patch: serde_json::Value) {
        self.secrets()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .expect("patch Secret");
    }

    /// Triggers a reconcile without changing the spec (a label change) and waits until one
    /// more reconcile of kind `K` succeeded.
    pub async fn touch<K: Kind>(&self, name: &str) {
        let reconciles = self.successful_reconciles::<K>();
        let label = format!("{:x}", rand::random::<u32>());
        self.patch::<K>(
            name,
            serde_json::json!({"metadata": {"labels": {"touched": label}}}),
        )
        .await;
        self.wait_reconciles::<K>(reconciles, 1.0).await;
    }

    /// Waits until an Event with `reason` about the named resource exists, and returns its note.
    pub async fn wait_event(&self, name: &str, reason: &str) -> String {
        let events = kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(
            self.client.clone(),
            &self.namespace,
        );
        testbed::eventually(&format!("event {reason} for {name}"), WAIT, || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                let about = e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name);
                (about && e.reason.as_deref() == Some(reason)).then(|| e.note.unwrap_or_default())
            })
        })
        .await
        .unwrap()
    }

    /// Requests the emulator received with `method` on `route` (e.g. `/event_destinations`).
    pub fn requests(&self, method: &str, route: &str) -> Vec<ngrok_api_emulator::RecordedRequest> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.route == route)
            .collect()
    }

    /// Writes (POST, PATCH, DELETE) the emulator received.
    pub fn writes(&self) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    }

    /// The value of a metric sample, e.g.
    /// `ngrok_events_operator_reconciles_total{kind="EventDestination",result="success"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        test_support::metrics::parse(&text)
            .get(sample)
            .unwrap_or(0.0)
    }

    /// Reconciles of kind `K` so far that ended with `result` (`success` or a reason).
    pub fn reconciles<K: Kind>(&self, result: &str) -> f64 {
        self.metric(&format!(
            r#"ngrok_events_operator_reconciles_total{{kind="{}",result="{result}"}}"#,
            K::kind_name()
        ))
    }

    /// Resources of kind `K` compared with their account's listing by drift passes so far.
    pub fn drift_checks<K: Kind>(&self) -> f64 {
        self.metric(&format!(
            r#"ngrok_events_operator_drift_checks_total{{kind="{}"}}"#,
            K::kind_name()
        ))
    }

    /// Waits until drift passes compared `n` more resources of kind `K` with their listings
    /// than `since`.
    pub async fn wait_drift_checks<K: Kind>(&self, since: f64, n: f64) {
        testbed::eventually("drift passes", WAIT, || async {
            (self.drift_checks::<K>() >= since + n).then_some(())
        })
        .await
        .unwrap();
    }

    /// Successful reconciles of kind `K` so far.
    pub fn successful_reconciles<K: Kind>(&self) -> f64 {
        self.reconciles::<K>("success")
    }

    /// Waits until the operator has completed `n` more successful reconciles of kind `K` than
    /// `since`.
    pub async fn wait_reconciles<K: Kind>(&self, since: f64, n: f64) {
        testbed::eventually("more successful reconciles", WAIT, || async {
            (self.successful_reconciles::<K>() >= since + n).then_some(())
        })
        .await
        .unwrap();
    }

    /// Stops the operator (finishing in-flight reconciles) and returns the emulator.
    pub async fn stop(self) -> ngrok_api_emulator::EmulatorHandle {
        self.shutdown.cancel();
        self.task
            .await
            .expect("operator task")
            .expect("operator result");
        testbed::delete_namespace(&self.client, &self.namespace).await;
        self.emulator
    }
}

/// A test bed of one test's own (about 4 s to start), for an operator that watches every
/// namespace without seeing other tests' resources. Dropping it stops the servers.
pub struct PrivateCluster {
    pub client: Client,
    pub servers: testbed::Servers,
}

impl PrivateCluster {
    pub async fn start() -> Self {
        let servers = tokio::task::spawn_blocking(|| {
            testbed::Binaries::locate().and_then(|b| testbed::Servers::start(&b))
        })
        .await
        .expect("test bed thread")
        .expect("a private test bed");
        let client = testbed::client_from_kubeconfig(servers.kubeconfig())
            .await
            .expect("client of the private test bed");
        for (file, _) in ngrok_events_operator::crd::files() {
            let yaml = std::fs::read_to_string(repo_path("crds").join(file)).expect("CRD file");
            testbed::install_crds(&client, &yaml)
                .await
                .expect("install CRDs");
        }
        Self { client, servers }
    }
}

/// Waits until the resource's Ready condition has `status` and `reason` for its current
/// generation.
pub async fn wait_ready_reason<K: Kind>(
    api: &kube::Api<K>,
    name: &str,
    status: &str,
    reason: &str,
) -> K {
    let (status, reason) = (status.to_string(), reason.to_string());
    testbed::wait_for(
        api,
        name,
        move |d: Option<&K>| {
            d.is_some_and(|d| d.generation_observed() && d.has_condition("Ready", &status, &reason))
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The message of the resource's Ready condition.
pub fn ready_message<K: Kind>(resource: &K) -> String {
    resource
        .condition("Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// A Secret with `data` (as `stringData`) and exactly `labels`.
pub fn secret(
    name: &str,
    data: &[(&str, &str)],
    labels: &[(&str, &str)],
) -> k8s_openapi::api::core::v1::Secret {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(map(labels)),
            ..Default::default()
        },
        string_data: Some(map(data)),
        ..Default::default()
    }
}

/// How long a test waits for the operator to get somewhere.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An EventDestination from a JSON spec.
pub fn destination(name: &str, spec: serde_json::Value) -> EventDestination {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "events.ngrok.io/v1alpha1",
        "kind": "EventDestination",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid EventDestination")
}

/// An EventSubscription from a JSON spec.
pub fn subscription(name: &str, spec: serde_json::Value) -> EventSubscription {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "events.ngrok.io/v1alpha1",
        "kind": "EventSubscription",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid EventSubscription")
}

/// A Kinesis target authenticating with a role.
pub fn kinesis_role(stream: &str) -> serde_json::Value {
    serde_json::json!({"kinesis": {
        "streamArn": format!("arn:aws:kinesis:us-east-2:123456789012:stream/{stream}"),
        "auth": {"role": {"roleArn": "arn:aws:iam::123456789012:role/ngrok"}}
    }})
}
