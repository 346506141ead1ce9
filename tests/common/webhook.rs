//! A validating admission webhook served by the test itself, so that the API server fails chosen
//! writes of the operator: a real Kubernetes-side fault, not a stub of the operator's code.
//!
//! How it works:
//! - [`FaultWebhook::start`] makes a CA and a serving certificate for 127.0.0.1 (rcgen), serves
//!   HTTPS on a free loopback port (rustls, axum), and registers a
//!   `ValidatingWebhookConfiguration` whose `caBundle` is that CA and whose `url` is that port.
//!   It is asked about UPDATEs of both kinds (the finalizer patches) and of their `status`, in
//!   the test's namespace only (`namespaceSelector` on `kubernetes.io/metadata.name`, a label
//!   the API server sets itself from 1.21 on and this module sets on 1.20), so that the other
//!   tests sharing the test bed never reach it.
//! - It returns once the API server calls it: the configuration also covers ConfigMap CREATEs,
//!   and a dry-run create is repeated until the webhook has seen one.
//! - Every write is allowed except by an armed fault: [`FaultWebhook::fail_once`] denies the
//!   first request its predicate matches, then disarms and records it. One request may reach
//!   the webhook twice: when a write fails on the API server's cached copy of the object,
//!   kube-apiserver 1.20 re-reads etcd and validates again (measured: same write, a second
//!   review). So the next review that repeats the denied write (same resource, same new object
//!   but for `resourceVersion` and `managedFields`) is denied too, and only that one; without
//!   this the retry passes and the write succeeds. The denial carries HTTP 500, as when etcd
//!   fails a write: kube's client hands it to the operator, where a 429, 503 or 504 would be
//!   retried by the client itself and never reach the reconcile.
//! - `failurePolicy: Fail`: a webhook that cannot be reached fails writes loudly instead of
//!   silently injecting nothing. So [`FaultWebhook::remove`] the configuration before the
//!   namespace is deleted, or its finalizer removals would wait for a webhook that is gone.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The label the webhook selects the test's namespace by.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The ConfigMap whose dry-run create proves the API server calls the webhook.
const PROBE: &str = "fault-webhook-probe";

/// One write the API server asks the webhook about, with the objects as JSON (the API's field
/// names): what a fault's predicate looks at.
#[derive(Debug)]
pub struct Write {
    pub operation: Operation,
    /// The plural resource: `eventdestinations`, `eventsubscriptions`, `configmaps`.
    pub resource: String,
    /// `Some("status")` for a status write.
    pub sub_resource: Option<String>,
    pub name: String,
    /// The stored object (`Null` on a create).
    pub old: Value,
    /// The object as it would be after the write.
    pub new: Value,
}

impl Write {
    fn from_request(request: &AdmissionRequest<DynamicObject>) -> Self {
        let json = |object: &Option<DynamicObject>| {
            object
                .as_ref()
                .and_then(|o| serde_json::to_value(o).ok())
                .unwrap_or(Value::Null)
        };
        Self {
            operation: request.operation.clone(),
            resource: request.resource.resource.clone(),
            sub_resource: request.sub_resource.clone(),
            name: request.name.clone(),
            old: json(&request.old_object),
            new: json(&request.object),
        }
    }

    /// `UPDATE eventdestinations/r/status`.
    fn describe(&self) -> String {
        let operation = format!("{:?}", self.operation).to_uppercase();
        let what = format!("{operation} {}/{}", self.resource, self.name);
        match &self.sub_resource {
            Some(sub) => format!("{what}/{sub}"),
            None => what,
        }
    }

    /// The new object without what the API server sets on every attempt.
    fn stored(&self) -> Value {
        let mut new = self.new.clone();
        if let Some(metadata) = new["metadata"].as_object_mut() {
            metadata.remove("resourceVersion");
            metadata.remove("managedFields");
        }
        new
    }

    /// Whether the write is to a resource of kind `K`.
    pub fn is<K: Resource<DynamicType = ()>>(&self) -> bool {
        self.resource == K::plural(&())
    }

    fn is_status(&self) -> bool {
        self.sub_resource.as_deref() == Some("status")
    }

    /// A status write that records an id where there was none: the outcome of a create.
    pub fn records_new_id(&self) -> bool {
        self.is_status()
            && self.old["status"]["id"].is_null()
            && self.new["status"]["id"].is_string()
    }

    /// A status write that keeps the id and observes a newer generation: the outcome of an
    /// update of the spec.
    pub fn records_update(&self) -> bool {
        let observed = |object: &Value| object["status"]["observedGeneration"].as_i64();
        self.is_status()
            && self.old["status"]["id"].is_string()
            && self.new["status"]["id"] == self.old["status"]["id"]
            && observed(&self.new) > observed(&self.old)
    }

    /// A write of the resource itself (not its status) that removes `finalizer`.
    pub fn removes_finalizer(&self, finalizer: &str) -> bool {
        let has = |object: &Value| {
            object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|all| all.iter().any(|f| f == finalizer))
        };
        self.sub_resource.is_none() && has(&self.old) && !has(&self.new)
    }
}

type Predicate = Box<dyn Fn(&Write) -> bool + Send + Sync>;

/// A fault armed with [`FaultWebhook::fail_once`].
struct Fault {
    name: &'static str,
    matches: Predicate,
    /// The request it denied, once it did.
    denied: Option<Denied>,
}

/// One denied request.
struct Denied {
    /// `UPDATE eventdestinations/r/status`.
    what: String,
    /// What the write would have stored, to recognise the API server's repeat of it.
    new: Value,
    /// When it was denied: the repeat comes within the same request, before the API server
    /// answers; a retry of the operator's own comes a backoff (≥ 1 s) later.
    at: std::time::Instant,
    /// Whether the repeat came (and was denied too).
    repeated: bool,
}

/// What the server shares with the test.
#[derive(Default)]
struct Faults {
    armed: Vec<Fault>,
    /// Whether the API server has sent the probe: the configuration is in effect.
    probed: bool,
}

impl Faults {
    /// The name of the fault that denies `write`, if one does.
    fn deny(&mut self, write: &Write) -> Option<&'static str> {
        if write.resource == "configmaps" && write.name == PROBE {
            self.probed = true;
            return None;
        }
        let (what, new) = (write.describe(), write.stored());
        // The API server validates a write again when it failed on its cached copy of the old
        // object (1.20's GuaranteedUpdate re-reads etcd and retries once): the same request.
        let repeat = self.armed.iter_mut().find_map(|fault| {
            let denied = fault.denied.as_mut()?;
            // The same object, or the same write within the request (the repeat starts from
            // etcd's copy, whose metadata or status the cached copy may not have had yet).
            let soon = denied.at.elapsed() < Duration::from_millis(500);
            let repeats = !denied.repeated && denied.what == what && (denied.new == new || soon);
            repeats.then(|| {
                denied.repeated = true;
                fault.name
            })
        });
        if repeat.is_some() {
            return repeat;
        }
        let fault = self
            .armed
            .iter_mut()
            .find(|f| f.denied.is_none() && (f.matches)(write))?;
        fault.denied = Some(Denied {
            what,
            new,
            at: std::time::Instant::now(),
            repeated: false,
        });
        Some(fault.name)
    }
}

/// The webhook of one test: see the module's documentation.
pub struct FaultWebhook {
    client: Client,
    /// The `ValidatingWebhookConfiguration`'s name.
    name: String,
    faults: Arc<Mutex<Faults>>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultWebhook {
    /// Serves the webhook, registers it for `namespace` and waits until the API server calls it.
    pub async fn start(client: &Client, namespace: &str) -> Result<Self> {
        let (ca_pem, tls) = certificates()?;
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = tcp.local_addr()?.port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let app = Router::new()
            .route("/review", post(review))
            .with_state(faults.clone());
        let listener = TlsListener {
            tcp,
            tls: TlsAcceptor::from(Arc::new(tls)),
        };
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });

        let namespaces = Api::<Namespace>::all(client.clone());
        namespaces
            .patch(
                namespace,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {NAMESPACE_NAME_LABEL: namespace}}})),
            )
            .await
            .context("label the namespace")?;
        let name = format!("fault-webhook-{namespace}");
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(
                &PostParams::default(),
                &configuration(&name, namespace, port, &ca_pem),
            )
            .await
            .context("register the webhook")?;
        let webhook = Self {
            client: client.clone(),
            name,
            faults,
            server,
        };
        if let Err(e) = webhook.wait_called(namespace).await {
            webhook.remove().await.ok();
            return Err(e.context(
                "the API server never called the webhook on 127.0.0.1: it must run on this \
                 machine (the test bed does; a remote or containerised cluster does not)",
            ));
        }
        Ok(webhook)
    }

    /// Repeats a dry-run ConfigMap create until the webhook has been asked about one.
    async fn wait_called(&self, namespace: &str) -> Result<()> {
        let config_maps = Api::<ConfigMap>::namespaced(self.client.clone(), namespace);
        let probe = ConfigMap {
            metadata: ObjectMeta {
                name: Some(PROBE.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        testbed::eventually("the API server calls the webhook", super::WAIT, || async {
            // Until the configuration is in effect the create succeeds without the webhook.
            config_maps.create(&dry_run, &probe).await.ok();
            self.faults.lock().unwrap().probed.then_some(())
        })
        .await
    }

    /// Arms a fault: the next write that `matches` is denied, once. `name` counts it.
    pub fn fail_once(
        &self,
        name: &'static str,
        matches: impl Fn(&Write) -> bool + Send + Sync + 'static,
    ) {
        self.faults.lock().unwrap().armed.push(Fault {
            name,
            matches: Box::new(matches),
            denied: None,
        });
    }

    /// The requests the faults called `name` denied (`"UPDATE eventdestinations/d/status"`).
    pub fn denied(&self, name: &str) -> Vec<String> {
        let faults = self.faults.lock().unwrap();
        let named = faults.armed.iter().filter(|f| f.name == name);
        named
            .filter_map(|f| Some(f.denied.as_ref()?.what.clone()))
            .collect()
    }

    /// Unregisters the webhook (the server answers until the webhook is dropped).
    pub async fn remove(&self) -> Result<()> {
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.name, &Default::default())
            .await
            .context("unregister the webhook")?;
        Ok(())
    }
}

impl Drop for FaultWebhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The webhook's one route: allow, or deny with a 500 what an armed fault matches.
async fn review(
    State(faults): State<Arc<Mutex<Faults>>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let write = Write::from_request(&request);
    let denied_by = faults.lock().unwrap().deny(&write);
    let mut response = AdmissionResponse::from(&request);
    if let Some(fault) = denied_by {
        response = response.deny(format!("fault injected by the test: {fault}"));
        response.result.code = 500;
    }
    Json(response.into_review())
}

/// The registration: the test namespace's writes of both kinds and their status, and the probe.
fn configuration(
    name: &str,
    namespace: &str,
    port: u16,
    ca_pem: &str,
) -> ValidatingWebhookConfiguration {
    let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
    let rule = |group: &str, operation: &str, resources: &[&str]| RuleWithOperations {
        api_groups: strings(&[group]),
        api_versions: strings(&["*"]),
        operations: strings(&[operation]),
        resources: strings(resources),
        scope: Some("Namespaced".into()),
    };
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "faults.test.events.ngrok.io".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(10),
            client_config: WebhookClientConfig {
                url: Some(format!("https://127.0.0.1:{port}/review")),
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: None,
            },
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    namespace.to_string(),
                )])),
                ..Default::default()
            }),
            rules: Some(vec![
                rule(
                    "events.ngrok.io",
                    "UPDATE",
                    &[
                        "eventdestinations",
                        "eventdestinations/status",
                        "eventsubscriptions",
                        "eventsubscriptions/status",
                    ],
                ),
                rule("", "CREATE", &["configmaps"]),
            ]),
            ..Default::default()
        }]),
    }
}

/// A CA (its PEM, for `caBundle`) and the server's TLS configuration with a certificate it
/// signed for 127.0.0.1: the API server checks the IP address against the certificate's SANs.
fn certificates() -> Result<(String, rustls::ServerConfig)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ngrok-events-operator test webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec![Ipv4Addr::LOCALHOST.to_string()])?;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = server.signed_by(&key, &issuer)?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )?;
    Ok((ca_pem, tls))
}

/// A TCP listener that hands axum only connections whose TLS handshake succeeded.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, address)) = self.tcp.accept().await else {
                continue;
            };
            // Bounded, so that one stuck client cannot hold up the others.
            let handshake = tokio::time::timeout(Duration::from_secs(5), self.tls.accept(tcp));
            if let Ok(Ok(tls)) = handshake.await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
