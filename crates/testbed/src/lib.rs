//! A real Kubernetes API server for tests and the demo, envtest-style: etcd, kube-apiserver and
//! kube-controller-manager as processes on loopback, no cluster and no containers.
//!
//! Tests call [`client`]. By default the first call in a process starts a private test bed that
//! lives as long as the process. `USE_EXISTING_CLUSTER=1` uses `$KUBECONFIG` instead: a test bed
//! shared by a whole test run (`testbed up`, as `scripts/test.sh` does), kind, or a real cluster.
//! Every test works in its own namespace ([`namespace`]), so tests run in parallel on one server.

pub mod node;
pub mod servers;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use backon::{BlockingRetryable, ConstantBuilder, Retryable};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};

pub use servers::{Binaries, Servers};

/// Field manager of everything the harness applies.
const FIELD_MANAGER: &str = "testbed";

/// A kube client for a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// True when tests should use `$KUBECONFIG` rather than start their own servers.
pub fn use_existing_cluster() -> bool {
    std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The kubeconfig of the cluster tests run against (for `kubectl` and operator subprocesses).
pub fn kubeconfig() -> Result<PathBuf> {
    if use_existing_cluster() {
        let path = std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
            .context("USE_EXISTING_CLUSTER=1 but neither KUBECONFIG nor HOME is set")?;
        return Ok(path);
    }
    shared_servers().map_err(|e| anyhow!("{e}"))
}

/// A client of the cluster tests run against, starting the process's test bed if needed.
pub async fn client() -> Result<Client> {
    if use_existing_cluster() {
        return Ok(Client::try_default().await?);
    }
    // Starting servers blocks; keep it off the async runtime's worker.
    let path = tokio::task::spawn_blocking(kubeconfig).await??;
    client_from_kubeconfig(&path).await
}

/// Starts this process's servers once, on a thread that lives as long as the process: the
/// servers are started with "die with the parent thread", so they end when the process does.
fn shared_servers() -> Result<PathBuf, String> {
    static SHARED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("testbed".into())
                .spawn(move || {
                    servers::remove_stale_dirs();
                    match Binaries::locate().and_then(|b| Servers::start(&b)) {
                        Ok(servers) => {
                            let _ = tx.send(Ok(servers.kubeconfig().to_path_buf()));
                            // Hold the servers for the life of the process.
                            loop {
                                std::thread::park();
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e:#}")));
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            rx.recv().map_err(|e| e.to_string())?
        })
        .clone()
}

/// Creates a namespace of its own for one test: `<prefix>-<random>`.
pub async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    let name = format!("{prefix}-{:08x}", rand::random::<u32>());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("testbed.ngrok.io/test".to_string(), prefix.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(name)
}

/// Deletes a test's namespace, without waiting for it to go (best effort at the end of a test).
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &Default::default())
        .await;
}

/// Installs CRDs from YAML (one or more documents) by server-side apply, then waits until each
/// is Established.
///
/// On a server older than 1.23 (the 1.20 test bed) the CEL rules (`x-kubernetes-validations`)
/// are removed first, as the chart does for such a server: its server-side apply refuses a field
/// its CRD schema does not declare ("field not declared in schema"), and it could not run them.
pub async fn install_crds(client: &Client, yaml: &str) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let version = client.apiserver_version().await?;
    let minor: u32 = version
        .minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .with_context(|| format!("server minor version {:?}", version.minor))?;
    let without_cel = version.major == "1" && minor < 23;
    for mut document in parse_documents::<serde_json::Value>(yaml)? {
        if without_cel {
            remove_key(&mut document, "x-kubernetes-validations");
        }
        let crd: CustomResourceDefinition = serde_json::from_value(document)?;
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        wait_for(&api, &name, crd_established(), Duration::from_secs(30)).await?;
    }
    Ok(())
}

/// Removes `key` from every object in `value`, at any depth.
fn remove_key(value: &mut serde_json::Value, key: &str) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| remove_key(v, key));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| remove_key(v, key)),
        _ => {}
    }
}

/// Condition: a CRD's `Established` condition is True.
pub fn crd_established() -> impl Condition<CustomResourceDefinition> {
    |crd: Option<&CustomResourceDefinition>| {
        crd.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    }
}

/// Parses a multi-document YAML stream, skipping empty documents.
pub fn parse_documents<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<Vec<T>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        out.push(serde_yaml::from_value(value)?);
    }
    Ok(out)
}

/// Creates an arbitrary object (any kind the server knows) in `namespace`, as `kubectl create`
/// would. A rejection by the API server comes back as a [`kube::Error`] inside the error, so a
/// test can downcast it and assert on the server's message.
pub async fn create_dynamic(
    client: &Client,
    namespace: &str,
    object: &serde_json::Value,
) -> Result<DynamicObject> {
    let object: DynamicObject = serde_json::from_value(object.clone())?;
    let types = object
        .types
        .clone()
        .context("object without apiVersion/kind")?;
    let gvk = kube::api::GroupVersionKind::try_from(&types)?;
    let (resource, caps): (ApiResource, ApiCapabilities) =
        kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    Ok(api.create(&PostParams::default(), &object).await?)
}

/// Waits until `condition` holds for the named object, or fails after `timeout` with the
/// object's last state in the error.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    condition: impl Condition<K>,
    timeout: Duration,
) -> Result<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(object))) => Ok(object),
        Ok(Ok(None)) => Err(anyhow!("{name} does not exist")),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(anyhow!(
            "timed out after {timeout:?} waiting for {name}; last state: {:?}",
            api.get_opt(name).await.ok().flatten()
        )),
    }
}

/// Waits until the named object is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let gone = |obj: Option<&K>| obj.is_none();
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, gone)).await {
        Ok(result) => result.map(|_| ()).map_err(Into::into),
        Err(_) => Err(anyhow!(
            "timed out after {timeout:?} waiting for {name} to be deleted"
        )),
    }
}

/// Polls `check` until it returns `Some`, for conditions that live outside Kubernetes
/// (e.g. the ngrok emulator's state).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let attempt = || {
        let pending = check();
        async move { pending.await.ok_or(NotYet) }
    };
    attempt
        .retry(every(Duration::from_millis(50)))
        .when(|_| tokio::time::Instant::now() <= deadline)
        .await
        .map_err(|NotYet| anyhow!("timed out after {timeout:?} waiting for {what}"))
}

/// The blocking twin of [`eventually`], for the test bed's own start-up and shutdown: `check`
/// every `delay` until it returns `Some`, or `None` once `timeout` has passed.
pub(crate) fn poll_blocking<T>(
    delay: Duration,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    (|| check().ok_or(NotYet))
        .retry(every(delay))
        .when(|_| std::time::Instant::now() <= deadline)
        .call()
        .ok()
}

/// The pace of every wait loop of the test bed (and the benchmark): a fixed delay between checks,
/// for as long as the caller's deadline (its `when`) allows rather than a number of checks.
pub fn every(delay: Duration) -> ConstantBuilder {
    ConstantBuilder::new().with_delay(delay).without_max_times()
}

/// A polled condition does not hold yet: the error a wait loop retries on.
struct NotYet;
