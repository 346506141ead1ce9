//! The `ngrok-events-operator` binary as users run it: flags, environment, the HTTP endpoint,
//! JSON logs, signals, `kubectl wait`, and leader election between two replicas.

mod common;

use std::time::{Duration, Instant};

use common::process::{self, OperatorProcess, Spec};
use common::{API_KEY, Kind, destination, kinesis_role};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use ngrok_api_emulator::{Emulator, EmulatorHandle};
use ngrok_events_operator::crd::EventDestination;
use serde_json::Value;
use test_support::metrics::{label_names, sample};

/// Bound on one step that takes a few API calls (start-up, a create, a reconcile).
const STEP: Duration = Duration::from_secs(30);
/// Bound on a graceful stop after SIGTERM.
const STOP: Duration = Duration::from_secs(10);

const POSTS_2XX: &str =
    r#"ngrok_events_operator_ngrok_requests_total{method="POST",status_class="2xx"}"#;
const READY_RESOURCES: &str =
    r#"ngrok_events_operator_resources{kind="EventDestination",state="ready"}"#;
const LEADER: &str = "ngrok_events_operator_leader";
const LEASE: &str = "ngrok-events-operator";

/// A namespace of the test's own, an emulator, and what a process needs to reach both.
struct Bed {
    client: kube::Client,
    namespace: String,
    emulator: EmulatorHandle,
    kubeconfig: std::path::PathBuf,
    log_dir: std::path::PathBuf,
}

impl Bed {
    async fn new(test: &str, prefix: &str) -> Bed {
        let (client, namespace) = common::cluster_with_namespace(prefix)
            .await
            .expect("test bed");
        let emulator = Emulator::builder()
            .api_key(API_KEY)
            .rate_limit_per_minute(0)
            .spawn()
            .await
            .expect("emulator");
        Bed {
            client,
            namespace,
            emulator,
            kubeconfig: process::kubeconfig().await,
            log_dir: process::log_dir(test),
        }
    }

    fn spec(&self, label: &str, extra_args: &[&str]) -> Spec {
        Spec {
            label: label.into(),
            log_dir: self.log_dir.clone(),
            kubeconfig: self.kubeconfig.clone(),
            api_url: self.emulator.base_url(),
            api_key: API_KEY.into(),
            namespace: self.namespace.clone(),
            metrics_addr: process::free_addr(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn destinations(&self) -> Api<EventDestination> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create(&self, name: &str, stream: &str) {
        self.destinations()
            .create(
                &PostParams::default(),
                &destination(name, serde_json::json!({"target": kinesis_role(stream)})),
            )
            .await
            .expect("create EventDestination");
    }

    /// Waits until the resource is Ready for its current generation; `logs` go into the
    /// failure message.
    async fn wait_ready(&self, name: &str, logs: &[&OperatorProcess]) -> EventDestination {
        match testbed::wait_for(&self.destinations(), name, is_ready, STEP).await {
            Ok(ready) => ready,
            Err(e) => panic!("{e:#}\n{}", tails(logs)),
        }
    }

    async fn lease_holder(&self) -> Option<String> {
        self.leases()
            .get_opt(LEASE)
            .await
            .expect("read the Lease")?
            .spec?
            .holder_identity
            .filter(|holder| !holder.is_empty())
    }
}

fn is_ready(d: Option<&EventDestination>) -> bool {
    d.is_some_and(Kind::is_ready)
}

fn tails(processes: &[&OperatorProcess]) -> String {
    processes
        .iter()
        .map(|p| p.log_tail(40))
        .collect::<Vec<_>>()
        .join("\n")
}

fn id_of(destination: &EventDestination) -> String {
    destination
        .status
        .as_ref()
        .and_then(|s| s.common.id.clone())
        .expect("a Ready resource has an id")
}

/// Polls the process's `/metrics` until `check` accepts it.
async fn wait_metrics(
    operator: &OperatorProcess,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let result = testbed::eventually(what, STEP, || async {
        let text = operator.metrics().await;
        check(&text).then_some(text)
    })
    .await;
    match result {
        Ok(text) => text,
        Err(e) => panic!(
            "{e:#}\nlast /metrics:\n{}\n{}",
            operator.metrics().await,
            operator.log_tail(40)
        ),
    }
}

/// The identity a replica logged when it acquired the leader lease, if it did.
fn acquired_identity(operator: &OperatorProcess) -> Option<String> {
    operator.json_logs().into_iter().flatten().find_map(|line| {
        (line.get("message")? == "acquired the leader lease, starting work")
            .then(|| line.get("identity")?.as_str().map(str::to_string))
            .flatten()
    })
}

/// Sum of every `ngrok_requests_total` sample: the ngrok calls a replica made.
fn ngrok_calls(metrics: &str) -> f64 {
    test_support::metrics::sum(metrics, "ngrok_events_operator_ngrok_requests_total")
}

#[tokio::test]
async fn run_serves_metrics_health_and_stops_cleanly_on_sigterm() {
    let bed = Bed::new("run-sigterm", "proc-run").await;
    // Debug for the operator's own crates, so that the log check below sees every line a
    // reconcile writes, not only the few at info.
    let spec = bed.spec(
        "operator",
        &[
            "--log-level",
            "info,ngrok_events_operator=debug,ngrok_api=debug",
        ],
    );
    let mut operator = OperatorProcess::spawn(&spec).unwrap();

    operator.wait_http_ok("/healthz", STEP).await.unwrap();
    operator.wait_http_ok("/readyz", STEP).await.unwrap();

    // `kubectl wait` starts as soon as the resource exists, normally before it is Ready.
    bed.create("audit", "audit-stream").await;
    let kubectl_wait = tokio::process::Command::new("kubectl")
        .args(["wait", "--for=condition=Ready", "ned/audit"])
        .args(["-n", &bed.namespace, "--timeout=30s"])
        .env("KUBECONFIG", &bed.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start kubectl");
    let ready = bed.wait_ready("audit", &[&operator]).await;
    let id = id_of(&ready);
    assert!(id.starts_with("ed_"), "{id}");
    assert!(bed.emulator.object(&id).is_some(), "{id} exists in ngrok");
    // ngrok, and its audit log, can tell the operator made the requests.
    let user_agent = format!(
        "ngrok-events-operator/{0} ngrok-api/{0}",
        env!("CARGO_PKG_VERSION")
    );
    for request in bed.emulator.requests() {
        assert_eq!(request.user_agent.as_deref(), Some(user_agent.as_str()));
    }

    let kubectl_wait = kubectl_wait.wait_with_output().await.expect("run kubectl");
    let stdout = String::from_utf8_lossy(&kubectl_wait.stdout);
    assert!(
        kubectl_wait.status.success(),
        "kubectl wait failed ({}): {stdout}{}",
        kubectl_wait.status,
        String::from_utf8_lossy(&kubectl_wait.stderr)
    );
    assert!(stdout.contains("condition met"), "{stdout}");

    // Metrics: one successful POST, one ready resource (computed from the cache at scrape
    // time, so it may lag the status write by a watch event).
    let metrics = wait_metrics(&operator, "one ready resource in /metrics", |text| {
        sample(text, READY_RESOURCES) == Some(1.0)
    })
    .await;
    assert_eq!(sample(&metrics, POSTS_2XX), Some(1.0), "{metrics}");
    assert_eq!(
        ngrok_calls(&metrics),
        1.0,
        "creating costs one POST: {metrics}"
    );
    let labels = label_names(&metrics);
    assert!(
        !labels.iter().any(|l| l == "name" || l == "namespace"),
        "a metric label names a single object: {labels:?}"
    );
    assert!(
        labels.iter().any(|l| l == "status_class") && labels.iter().any(|l| l == "state"),
        "{labels:?}"
    );

    // Logs: every line is a JSON object, and every line written for a reconcile carries the
    // resource's namespace and name.
    let mut reconcile_lines = Vec::new();
    for line in operator.json_logs() {
        let line = line.unwrap_or_else(|text| panic!("a log line is not a JSON object: {text}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.contains_key(field), "no {field}: {line:?}");
        }
        let target = line["target"].as_str().unwrap_or_default();
        let of_reconcile = line.get("span").and_then(Value::as_str) == Some("reconcile")
            || target.starts_with("ngrok_events_operator::reconcile")
            || line["message"] == "reconciled";
        if of_reconcile {
            reconcile_lines.push(line);
        }
    }
    assert!(
        reconcile_lines
            .iter()
            .any(|l| l["message"] == "created destination" && l["id"] == id.as_str()),
        "no `created destination` line for {id}: {reconcile_lines:#?}"
    );
    assert!(
        reconcile_lines.iter().any(|l| l["message"] == "reconciled"),
        "no `reconciled` line: {reconcile_lines:#?}"
    );
    for line in &reconcile_lines {
        assert_eq!(
            line.get("namespace").and_then(Value::as_str),
            Some(bed.namespace.as_str()),
            "{line:?}"
        );
        assert_eq!(
            line.get("name").and_then(Value::as_str),
            Some("audit"),
            "{line:?}"
        );
    }

    let term = Instant::now();
    operator.sigterm().unwrap();
    let status = operator.wait_exit(STOP).await.unwrap();
    let stop = term.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}\n{}",
        operator.log_tail(40)
    );
    assert!(
        operator
            .json_logs()
            .iter()
            .flatten()
            .any(|l| l["message"] == "stopped"),
        "{}",
        operator.log_tail(20)
    );
    println!(
        "{} reconcile log lines checked; stopped {stop:?} after SIGTERM",
        reconcile_lines.len()
    );
    testbed::delete_namespace(&bed.client, &bed.namespace).await;
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_standby_takes_over() {
    const LEASE_DURATION: Duration = Duration::from_secs(4);
    let bed = Bed::new("leader-takeover", "proc-leader").await;
    let args = [
        "--leader-elect",
        "--leader-election-namespace",
        &bed.namespace,
        "--leader-election-lease-duration",
        "4s",
    ];
    let mut replicas = [
        OperatorProcess::spawn(&bed.spec("replica-a", &args)).unwrap(),
        OperatorProcess::spawn(&bed.spec("replica-b", &args)).unwrap(),
    ];
    for replica in &mut replicas {
        replica.wait_http_ok("/healthz", STEP).await.unwrap();
    }

    // Exactly one holds the Lease: the one that says it acquired it, under the identity the
    // Lease names, with the flag's duration.
    let holder = testbed::eventually("a leader", STEP, || async {
        let holder = bed.lease_holder().await?;
        let leaders: Vec<usize> = (0..2)
            .filter(|&i| acquired_identity(&replicas[i]).as_deref() == Some(holder.as_str()))
            .collect();
        (leaders.len() == 1).then(|| (leaders[0], holder))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tails(&[&replicas[0], &replicas[1]])));
    let (leader, identity) = holder;
    let standby = 1 - leader;
    let lease = bed.leases().get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(lease.lease_duration_seconds, Some(4), "{lease:?}");
    assert_eq!(acquired_identity(&replicas[standby]), None);

    bed.create("first", "first-stream").await;
    let first = bed.wait_ready("first", &[&replicas[0], &replicas[1]]).await;
    let first_id = id_of(&first);

    let leader_metrics = wait_metrics(&replicas[leader], "the leader's create", |text| {
        sample(text, POSTS_2XX) == Some(1.0) && sample(text, LEADER) == Some(1.0)
    })
    .await;
    assert_eq!(ngrok_calls(&leader_metrics), 1.0, "{leader_metrics}");
    let standby_metrics = replicas[standby].metrics().await;
    assert_eq!(
        sample(&standby_metrics, LEADER),
        Some(0.0),
        "{standby_metrics}"
    );
    assert_eq!(
        ngrok_calls(&standby_metrics),
        0.0,
        "the standby called ngrok: {standby_metrics}"
    );
    assert_eq!(bed.emulator.count("POST", "/event_destinations"), 1);
    assert_eq!(bed.lease_holder().await.as_deref(), Some(identity.as_str()));

    // The leader crashes: it cannot release the Lease, so the standby takes it once it
    // expires.
    let killed = Instant::now();
    replicas[leader].sigkill().await.unwrap();
    let new_identity = testbed::eventually("the standby to take the Lease", STEP, || async {
        let holder = bed.lease_holder().await?;
        (holder != identity).then_some(holder)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", replicas[standby].log_tail(40)));
    let takeover = killed.elapsed();
    // The standby logs its acquisition just after the Lease shows it.
    testbed::eventually("the standby to log its acquisition", STEP, || async {
        acquired_identity(&replicas[standby]).map(|_| ())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", replicas[standby].log_tail(40)));
    assert_eq!(
        acquired_identity(&replicas[standby]).as_deref(),
        Some(new_identity.as_str()),
        "the Lease names someone other than the standby"
    );
    // The lease was renewed at most two thirds of a duration before the kill: a standby
    // that respects it waits at least the remaining third, and takes it soon after expiry.
    assert!(
        takeover > LEASE_DURATION / 4 && takeover < LEASE_DURATION + Duration::from_secs(6),
        "takeover took {takeover:?} with a lease of {LEASE_DURATION:?}"
    );
    wait_metrics(
        &replicas[standby],
        "leader gauge 1 on the new leader",
        |text| sample(text, LEADER) == Some(1.0),
    )
    .await;

    bed.create("second", "second-stream").await;
    let second = bed.wait_ready("second", &[&replicas[standby]]).await;
    let second_id = id_of(&second);
    assert_ne!(first_id, second_id);
    let first = bed.destinations().get("first").await.unwrap();
    assert_eq!(id_of(&first), first_id, "the first resource kept its id");
    let mut ids = bed.emulator.destination_ids();
    ids.sort();
    let mut expected = vec![first_id, second_id];
    expected.sort();
    assert_eq!(ids, expected, "one destination per resource in ngrok");
    assert_eq!(bed.emulator.count("POST", "/event_destinations"), 2);
    let new_leader_metrics = wait_metrics(&replicas[standby], "the new leader's create", |text| {
        sample(text, POSTS_2XX) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&new_leader_metrics, READY_RESOURCES),
        Some(2.0),
        "{new_leader_metrics}"
    );

    // A graceful stop releases the Lease at once rather than letting it expire.
    let term = Instant::now();
    replicas[standby].sigterm().unwrap();
    let status = replicas[standby].wait_exit(STOP).await.unwrap();
    let exited = term.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}\n{}",
        replicas[standby].log_tail(40)
    );
    let lease = bed.leases().get(LEASE).await.unwrap();
    let released = term.elapsed();
    assert_eq!(
        lease.spec.as_ref().and_then(|s| s.holder_identity.clone()),
        None,
        "the Lease is still held after the leader exited: {lease:?}"
    );
    assert!(
        released < LEASE_DURATION / 2,
        "releasing took {released:?}, not well before the lease duration {LEASE_DURATION:?}"
    );
    println!(
        "takeover after SIGKILL: {takeover:?} (lease {LEASE_DURATION:?}); \
         exit after SIGTERM: {exited:?}; Lease observed released {released:?} after SIGTERM"
    );
    testbed::delete_namespace(&bed.client, &bed.namespace).await;
}
