//! Leader fencing with real processes: a leader cut off from the API server (its renewals
//! hang) while its creates are still queued stops writing to ngrok before its successor
//! starts, so that no resource is created twice.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::process::{self, OperatorProcess, Spec};
use common::proxy::ApiServerProxy;
use common::{API_KEY, destination, kinesis_role};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ListParams, PostParams};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::EventDestination;

const LEASE: &str = "ngrok-events-operator";
/// Bound on one step that takes a few API calls (start-up, the creates, a takeover).
const STEP: Duration = Duration::from_secs(60);
/// Resources: more than the leader's limiter lets through at once (a burst of 10).
const RESOURCES: usize = 12;

fn stream(i: usize) -> String {
    format!("fenced-stream-{i}")
}

/// The identity a replica logged when it acquired the leader lease, if it did.
fn acquired_identity(operator: &OperatorProcess) -> Option<String> {
    operator.json_logs().into_iter().flatten().find_map(|line| {
        (line.get("message")? == "acquired the leader lease, starting work")
            .then(|| line.get("identity")?.as_str().map(str::to_string))
            .flatten()
    })
}

fn is_ready(d: &EventDestination) -> bool {
    d.status.as_ref().is_some_and(|s| {
        s.common.id.is_some()
            && s.common.observed_generation == d.metadata.generation
            && s.common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Creates queued in the old leader (its own rate limiter holds them back, and ngrok answers
/// slowly) when its connection to the API server hangs: its renewals hang with it. The
/// standby takes over once the lease expires and creates what is left. The old leader's fence
/// ran out before that, so the creates it still had queued never go out: every resource is
/// created exactly once.
#[tokio::test]
async fn a_leader_whose_renewals_hang_stops_writing_to_ngrok_before_its_successor_starts() {
    let (client, namespace) = common::cluster_with_namespace("fencing")
        .await
        .expect("test bed");
    let emulator = Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .latency_ms(300)
        .spawn()
        .await
        .expect("emulator");
    let log_dir = process::log_dir("fencing");
    let proxy = ApiServerProxy::start(&log_dir).await;
    let spec = |label: &str, kubeconfig, extra: &[&str]| Spec {
        label: label.into(),
        log_dir: log_dir.clone(),
        kubeconfig,
        api_url: emulator.base_url(),
        api_key: API_KEY.into(),
        namespace: namespace.clone(),
        metrics_addr: process::free_addr(),
        extra_args: [
            "--leader-elect",
            "--leader-election-namespace",
            &namespace,
            "--leader-election-lease-duration",
            "6s",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect(),
    };

    // The first leader reaches the API server through the proxy; 6 ngrok calls a minute
    // after a burst of 10, so that creates queue in it.
    let mut old = OperatorProcess::spawn(&spec(
        "old-leader",
        proxy.kubeconfig.clone(),
        &["--api-rate-limit", "6"],
    ))
    .unwrap();
    let old_identity = testbed::eventually("the first replica to lead", STEP, || async {
        acquired_identity(&old)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", old.log_tail(40)));
    let mut new =
        OperatorProcess::spawn(&spec("new-leader", process::kubeconfig().await, &[])).unwrap();
    new.wait_http_ok("/readyz", STEP).await.unwrap();
    let logs = |processes: &[&OperatorProcess]| {
        processes
            .iter()
            .map(|p| p.log_tail(40))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let destinations = Api::<EventDestination>::namespaced(client.clone(), &namespace);
    for i in 0..RESOURCES {
        let resource = destination(
            &format!("d{i}"),
            serde_json::json!({"target": kinesis_role(&stream(i))}),
        );
        destinations
            .create(&PostParams::default(), &resource)
            .await
            .unwrap();
    }
    // The old leader took every resource in hand (each create is recorded as pending before
    // it is sent); some creates are still queued in its limiter.
    testbed::eventually("the old leader to start every create", STEP, || async {
        let list = destinations.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .all(|d| {
                d.status
                    .as_ref()
                    .is_some_and(|s| s.common.pending_create.is_some() || s.common.id.is_some())
            })
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", old.log_tail(40)));
    let posted = emulator.count("POST", "/event_destinations");
    assert!(
        posted < RESOURCES,
        "every create went out before the partition ({posted}): the test proves nothing"
    );

    // The old leader's connection to the API server hangs: renewals, watches, status writes.
    proxy.pause();
    let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
    testbed::eventually("the standby to take the lease", STEP, || async {
        let holder = leases.get(LEASE).await.ok()?.spec?.holder_identity?;
        (holder != old_identity).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&[&old, &new])));
    testbed::eventually("every resource Ready", STEP, || async {
        let list = destinations.list(&ListParams::default()).await.ok()?;
        (list.items.len() == RESOURCES && list.items.iter().all(is_ready)).then_some(list.items)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&[&old, &new])));

    // The old leader's calls can no longer reach the API server: it winds down and exits,
    // having lost the lease. Whatever it still had queued was either sent by now or never.
    proxy.cut();
    let status = old.wait_exit(STEP).await.unwrap();
    assert!(!status.success(), "{status}\n{}", old.log_tail(40));
    let old_logs = old.log_lines().join("\n");
    assert!(
        old_logs.contains("lost the leader lease"),
        "{}",
        old.log_tail(40)
    );

    // Exactly one create per resource, and one object per resource in ngrok.
    let mut posts: BTreeMap<String, usize> = BTreeMap::new();
    for request in emulator.requests() {
        if request.method == "POST" && request.route == "/event_destinations" {
            let body = request.body.map(|b| b.to_string()).unwrap_or_default();
            let stream = (0..RESOURCES)
                .map(stream)
                .find(|s| body.contains(&format!("stream/{s}\"")))
                .unwrap_or_else(|| format!("unknown: {body}"));
            *posts.entry(stream).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = (0..RESOURCES).map(|i| (stream(i), 1)).collect();
    assert_eq!(posts, expected, "POSTs per stream\n{}", logs(&[&old, &new]));
    let resources = destinations
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let mut ids: Vec<String> = resources
        .iter()
        .filter_map(|d| d.status.as_ref()?.common.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RESOURCES, "one id per resource");
    let mut in_ngrok = emulator.destination_ids();
    in_ngrok.sort();
    assert_eq!(in_ngrok, ids, "one object per resource in ngrok");

    // The old leader was stopped by its fence, not by chance.
    assert!(
        old_logs.contains("LeaseExpiring") || old_logs.contains("NotLeader"),
        "the old leader never reported a fenced call\n{}",
        old.log_tail(40)
    );
    println!(
        "creates sent by the old leader before the partition: {posted} of {RESOURCES}; \
         POSTs in all: {}",
        posts.values().sum::<usize>()
    );
    drop(new);
    testbed::delete_namespace(&client, &namespace).await;
}
