//! Crash safety of creates (issue 5): at least 100 resources created while the operator is
//! SIGKILLed and restarted at least 50 times at random moments, with the emulator dropping 20%
//! of create responses: afterwards every resource is Ready, the number of remote destinations
//! equals the number of resources, and every `status.id` is distinct and exists remotely. Then
//! delete them all: zero remote destinations remain.
//!
//! Each of the 50 cycles starts the binary, applies its share of the resources (two, and in
//! one cycle five with identical content), lets it run a random 0–800 ms and SIGKILLs it. The
//! emulator answers after 100 ms, so kills often land between a create's intent and its answer
//! (or before it was stored), besides the 20% of answers dropped after storing. A last start
//! then converges and deletes everything, under the same faults.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::process::{self, OperatorProcess, Spec};
use common::{API_KEY, Kind, destination, kinesis_role};
use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::{EventDestination, EventSubscription};

/// Resources in all.
const RESOURCES: usize = 100;
/// Resources sharing one content, applied together in one cycle: their creates are
/// serialized (one at a time per content), across kills.
const TWINS: usize = 5;
/// The cycle that applies the twins.
const TWIN_CYCLE: usize = 3;
/// SIGKILLs, one per cycle. Each cycle also applies its share of the resources while its
/// process runs, so that creates are under way at (nearly) every kill.
const KILLS: usize = 50;
/// Delay of every emulated ngrok answer: a create then takes long enough that a kill at a
/// random moment often lands between the intent and the answer, not only between creates.
const LATENCY_MS: u64 = 100;
/// A process lives a random time below this before it is killed.
const MAX_LIFETIME_MS: u64 = 800;
/// Fraction of create responses the emulator drops (after storing the destination).
const DROP_RATE: f64 = 0.2;
/// Bound on convergence after the last restart, and on the deletes.
const CONVERGE: Duration = Duration::from_secs(120);

/// The resources each cycle applies, as (name, stream): two distinct ones per cycle, and the
/// twins, which share one stream, all in [`TWIN_CYCLE`].
fn waves() -> Vec<Vec<(String, String)>> {
    let mut waves = vec![Vec::new(); KILLS];
    let distinct = RESOURCES - TWINS;
    let per_cycle = distinct.div_ceil(KILLS);
    for j in 0..distinct {
        waves[j / per_cycle].push((format!("d-{j:03}"), format!("stream-{j:03}")));
    }
    for k in 0..TWINS {
        waves[TWIN_CYCLE].push((format!("twin-{k}"), "twin".to_string()));
    }
    waves
}

fn is_ready<K: Kind>(d: &K) -> bool {
    d.is_ready()
}

/// The name and the whole status, for a failure's message.
fn summary<K: Kind>(d: &K) -> String {
    let status = serde_json::to_value(d).unwrap_or_default()["status"].take();
    format!("{}: {status}", d.name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_survive_sigkills_at_random_moments_and_dropped_responses() {
    let started = Instant::now();
    let (client, namespace) = common::cluster_with_namespace("kill").await.unwrap();
    let emulator = Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .drop_after_create_rate(DROP_RATE)
        .latency_ms(LATENCY_MS)
        .spawn()
        .await
        .unwrap();
    let kubeconfig = process::kubeconfig().await;
    let log_dir = process::log_dir("kill");
    let spec = |label: String| Spec {
        label,
        log_dir: log_dir.clone(),
        kubeconfig: kubeconfig.clone(),
        api_url: emulator.base_url(),
        api_key: API_KEY.into(),
        namespace: namespace.clone(),
        metrics_addr: process::free_addr(),
        // Debug for the operator's own crate: the log then shows creates waiting for another
        // create of the same content.
        extra_args: vec![
            "--log-level".into(),
            "info,ngrok_events_operator=debug".into(),
        ],
    };
    let api = Api::<EventDestination>::namespaced(client.clone(), &namespace);

    let waves = waves();
    let streams: BTreeMap<String, String> = waves.iter().flatten().cloned().collect();
    assert_eq!(streams.len(), RESOURCES);
    let mut lifetimes = Vec::new();
    for (cycle, wave) in waves.into_iter().enumerate() {
        let mut operator = OperatorProcess::spawn(&spec(format!("run-{cycle:02}"))).unwrap();
        if !wave.is_empty() {
            futures::stream::iter(wave)
                .map(|(name, stream)| {
                    let api = api.clone();
                    async move {
                        let spec = serde_json::json!({"target": kinesis_role(&stream)});
                        api.create(&PostParams::default(), &destination(&name, spec))
                            .await
                            .expect("create EventDestination");
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<()>>()
                .await;
        }
        let lifetime = Duration::from_millis(rand::random_range(0..=MAX_LIFETIME_MS));
        tokio::time::sleep(lifetime).await;
        let status = operator.sigkill().await.unwrap();
        assert_eq!(
            status.code(),
            None,
            "run {cycle} exited by itself before its SIGKILL: {status}\n{}",
            operator.log_tail(40)
        );
        lifetimes.push(lifetime);
    }
    let killed_at = started.elapsed();
    let posts_while_killing = emulator.count("POST", "/event_destinations");
    let ready_while_killing = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|d| is_ready(*d))
        .count();

    // The last restart: everything converges.
    let mut operator = OperatorProcess::spawn(&spec("final".into())).unwrap();
    let converged = testbed::eventually("every resource Ready", CONVERGE, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        (list.items.len() == RESOURCES && list.items.iter().all(is_ready)).then_some(list.items)
    })
    .await;
    let items = match converged {
        Ok(items) => items,
        Err(e) => {
            let list = api.list(&ListParams::default()).await.unwrap();
            let stuck: Vec<String> = list
                .items
                .iter()
                .filter(|d| !is_ready(*d))
                .map(summary)
                .collect();
            panic!(
                "{e:#}: {} of {} not Ready:\n{}\nremote: {} destinations\n{}",
                stuck.len(),
                list.items.len(),
                stuck.join("\n"),
                emulator.destination_ids().len(),
                operator.log_tail(60)
            );
        }
    };
    let converged_at = started.elapsed();

    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for d in &items {
        let status = d.status.as_ref().unwrap();
        let id = status
            .common
            .id
            .clone()
            .unwrap_or_else(|| panic!("Ready without an id: {}", summary(d)));
        assert!(
            status.common.pending_create.is_none(),
            "Ready with an intent left: {}",
            summary(d)
        );
        let object = emulator
            .object(&id)
            .unwrap_or_else(|| panic!("{id} of {} does not exist remotely", summary(d)));
        let stream = &streams[d.metadata.name.as_deref().unwrap()];
        assert_eq!(
            object["target"]["kinesis"]["stream_arn"],
            format!("arn:aws:kinesis:us-east-2:123456789012:stream/{}", stream),
            "{id} is not {}'s destination",
            summary(d)
        );
        if let Some(other) = by_id.insert(id.clone(), summary(d)) {
            panic!("{id} is the id of two resources:\n{other}\n{}", summary(d));
        }
    }
    let remote: BTreeSet<String> = emulator.destination_ids().into_iter().collect();
    let claimed: BTreeSet<String> = by_id.keys().cloned().collect();
    let orphans: Vec<&String> = remote.difference(&claimed).collect();
    assert_eq!(
        remote.len(),
        RESOURCES,
        "remote destinations ≠ resources; not any resource's: {orphans:?}"
    );
    assert_eq!(remote, claimed);

    let requests = emulator.requests();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.route == "/event_destinations")
        .collect();
    let unanswered = posts.iter().filter(|r| r.status.is_none()).count();
    let answered = posts
        .iter()
        .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    let refused = posts
        .iter()
        .filter(|r| r.status.is_some_and(|s| s >= 300))
        .count();
    // Nothing was ever deleted so far, so every destination ever stored is still there: a
    // create without an answer either was stored (its response dropped by the fault, or the
    // process killed between storing and answering) or never reached the store (the process
    // killed during the emulator's latency).
    assert_eq!(
        emulator.count("DELETE", "/event_destinations/{id}"),
        0,
        "the operator had to delete a twin"
    );
    let stored_unanswered = remote.len() - answered;
    let cut_before_storing = unanswered - stored_unanswered;

    // Delete them all, still under the drop fault (it affects creates only).
    let deleting = Instant::now();
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    let deleted = testbed::eventually("every resource and destination gone", CONVERGE, || async {
        let left = api.list(&ListParams::default()).await.ok()?.items.len();
        (left == 0 && emulator.destination_ids().is_empty()).then_some(())
    })
    .await;
    if let Err(e) = deleted {
        let left: Vec<String> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(summary)
            .collect();
        panic!(
            "{e:#}: {} resources left:\n{}\nremote: {:?}\n{}",
            left.len(),
            left.join("\n"),
            emulator.destination_ids(),
            operator.log_tail(60)
        );
    }
    let deleted_in = deleting.elapsed();

    // The twins did go through the serialization of creates of equal content, which is a
    // short wait, not a failure.
    let lines: Vec<String> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .flat_map(|log| log.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let queued = lines
        .iter()
        .filter(|line| line.contains("waiting for another create of the same content"))
        .count();
    assert!(queued > 0, "no create ever waited for one of equal content");
    let queued_as_failure: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains(r#""reason":"CreateQueued""#) && line.contains("WARN"))
        .collect();
    assert!(
        queued_as_failure.is_empty(),
        "waiting for a create of equal content was handled as a failure: {:?}",
        queued_as_failure.first()
    );
    let deletes = emulator.count("DELETE", "/event_destinations/{id}");

    operator.sigterm().unwrap();
    let status = operator.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", operator.log_tail(40));

    let mean_lifetime = lifetimes.iter().sum::<Duration>() / lifetimes.len() as u32;
    println!(
        "kill test: {RESOURCES} resources ({TWINS} with equal content, applied together), \
         emulator latency {LATENCY_MS} ms; {KILLS} SIGKILLs (mean lifetime {mean_lifetime:?}), done at {killed_at:?} with \
         {ready_while_killing} Ready and {posts_while_killing} POSTs; converged at \
         {converged_at:?}; POSTs {} ({answered} answered, {refused} refused, {unanswered} \
         without an answer: {stored_unanswered} stored (response dropped), \
         {cut_before_storing} cut by a SIGKILL before storing); {queued} waits for a create of equal content; DELETEs {deletes}; deleted in {deleted_in:?}; \
         wall time {:?}",
        posts.len(),
        started.elapsed()
    );
    testbed::delete_namespace(&client, &namespace).await;
}

/// The same for subscriptions: 10 destinations and 40 subscriptions (each naming one of them,
/// and 5 with identical content) applied over 25 cycles of start, apply, SIGKILL, with 20% of
/// create responses dropped. Afterwards every subscription is Ready with its own id, ngrok holds
/// exactly one subscription per resource, each naming the right destination; then deleting
/// everything at once leaves nothing in ngrok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_creates_survive_sigkills_and_dropped_responses() {
    const DESTINATIONS: usize = 10;
    const SUBSCRIPTIONS: usize = 40;
    const TWINS: usize = 5;
    const CYCLES: usize = 25;
    let (client, namespace) = common::cluster_with_namespace("kill-sub").await.unwrap();
    let emulator = Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .drop_after_create_rate(DROP_RATE)
        .latency_ms(LATENCY_MS)
        .spawn()
        .await
        .unwrap();
    let kubeconfig = process::kubeconfig().await;
    let log_dir = process::log_dir("kill-sub");
    let spec = |label: String| Spec {
        label,
        log_dir: log_dir.clone(),
        kubeconfig: kubeconfig.clone(),
        api_url: emulator.base_url(),
        api_key: API_KEY.into(),
        namespace: namespace.clone(),
        metrics_addr: process::free_addr(),
        extra_args: vec![],
    };
    let destinations = Api::<EventDestination>::namespaced(client.clone(), &namespace);
    let subscriptions = Api::<EventSubscription>::namespaced(client.clone(), &namespace);
    // (name, the destination it names, its description: the twins share theirs).
    let wanted: Vec<(String, String, String)> = (0..SUBSCRIPTIONS)
        .map(|j| {
            let twin = j < TWINS;
            let description = if twin {
                "twin".to_string()
            } else {
                format!("s-{j:02}")
            };
            let target = if twin { 0 } else { j % DESTINATIONS };
            (format!("s-{j:02}"), format!("d-{target}"), description)
        })
        .collect();

    let per_cycle = SUBSCRIPTIONS.div_ceil(CYCLES);
    for cycle in 0..CYCLES {
        let mut operator = OperatorProcess::spawn(&spec(format!("run-{cycle:02}"))).unwrap();
        if cycle == 0 {
            for d in 0..DESTINATIONS {
                let spec = serde_json::json!({"target": kinesis_role(&format!("stream-{d}"))});
                destinations
                    .create(
                        &PostParams::default(),
                        &destination(&format!("d-{d}"), spec),
                    )
                    .await
                    .unwrap();
            }
        }
        for (name, target, description) in wanted.iter().skip(cycle * per_cycle).take(per_cycle) {
            let subscription = common::subscription(
                name,
                serde_json::json!({
                    "description": description,
                    "sources": [{"type": "http_request_complete.v0"}],
                    "destinationRefs": [{"name": target}],
                }),
            );
            subscriptions
                .create(&PostParams::default(), &subscription)
                .await
                .unwrap();
        }
        let lifetime = Duration::from_millis(rand::random_range(0..=MAX_LIFETIME_MS));
        tokio::time::sleep(lifetime).await;
        let status = operator.sigkill().await.unwrap();
        assert_eq!(
            status.code(),
            None,
            "run {cycle} exited by itself: {}",
            operator.log_tail(40)
        );
    }

    let mut operator = OperatorProcess::spawn(&spec("final".into())).unwrap();
    let converged = testbed::eventually("every subscription Ready", CONVERGE, || async {
        let list = subscriptions.list(&ListParams::default()).await.ok()?;
        (list.items.len() == SUBSCRIPTIONS && list.items.iter().all(is_ready)).then_some(list.items)
    })
    .await;
    let items = match converged {
        Ok(items) => items,
        Err(e) => {
            let list = subscriptions.list(&ListParams::default()).await.unwrap();
            let stuck: Vec<String> = list
                .items
                .iter()
                .filter(|s| !is_ready(*s))
                .map(summary)
                .collect();
            panic!(
                "{e:#}: not Ready:\n{}\n{}",
                stuck.join("\n"),
                operator.log_tail(60)
            );
        }
    };
    let destination_ids: BTreeMap<String, String> = destinations
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            (
                d.metadata.name.clone().unwrap(),
                d.status.unwrap().common.id.unwrap(),
            )
        })
        .collect();
    let targets: BTreeMap<&str, &str> = wanted
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    let mut claimed = BTreeSet::new();
    for s in &items {
        let name = s.metadata.name.as_deref().unwrap();
        let id = s
            .status
            .as_ref()
            .and_then(|st| st.common.id.clone())
            .unwrap();
        assert!(
            claimed.insert(id.clone()),
            "{id} is the id of two subscriptions"
        );
        let object = emulator
            .object(&id)
            .unwrap_or_else(|| panic!("{id} of {name} is not in ngrok"));
        assert_eq!(
            object["destination_ids"],
            serde_json::json!([destination_ids[targets[name]]]),
            "{name}"
        );
    }
    let remote: BTreeSet<String> = emulator.subscription_ids().into_iter().collect();
    assert_eq!(
        remote, claimed,
        "ngrok holds exactly the resources' subscriptions"
    );
    assert_eq!(
        emulator.count("DELETE", "/event_subscriptions/{id}"),
        0,
        "a twin was deleted"
    );
    let posts = emulator.count("POST", "/event_subscriptions");

    // Everything at once, destinations first: the subscriptions go, then the destinations.
    destinations
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    subscriptions
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    testbed::eventually("everything gone", CONVERGE, || async {
        let left = destinations
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len()
            + subscriptions
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len();
        (left == 0
            && emulator.destination_ids().is_empty()
            && emulator.subscription_ids().is_empty())
        .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail(60)));
    operator.sigterm().unwrap();
    operator.wait_exit(Duration::from_secs(10)).await.unwrap();
    println!(
        "subscription kill test: {SUBSCRIPTIONS} subscriptions ({TWINS} alike) over {DESTINATIONS} destinations, \
         {CYCLES} SIGKILLs; {posts} subscription POSTs for {SUBSCRIPTIONS} subscriptions"
    );
    testbed::delete_namespace(&client, &namespace).await;
}
