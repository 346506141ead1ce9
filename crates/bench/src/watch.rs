//! The bench's own watch of the EventDestinations: what it saw of each resource (when it was
//! first Ready, whether it is Stalled, the reason, the message, the ngrok id), keyed by
//! `namespace/name`, and waiting until a condition holds for every key of a set. Creation→Ready
//! latencies are measured against the instants this watch records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use backon::Retryable;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher;

/// What the bench's own watch saw of one resource.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub(crate) ready_at: Option<Instant>,
    pub(crate) ready: bool,
    pub(crate) stalled: bool,
    pub(crate) reason: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) id: Option<String>,
}

pub(crate) type Seen = Arc<Mutex<HashMap<String, Observed>>>;

pub(crate) async fn spawn_watch(
    client: kube::Client,
    resource: ApiResource,
) -> Result<(Seen, tokio::task::JoinHandle<()>)> {
    let seen: Seen = Arc::default();
    let api = Api::<DynamicObject>::all_with(client, &resource);
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let state = seen.clone();
    let task = tokio::spawn(async move {
        let mut synced = Some(synced_tx);
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            let object = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = synced.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                _ => continue,
            };
            let now = Instant::now();
            let key = format!(
                "{}/{}",
                object.metadata.namespace.as_deref().unwrap_or_default(),
                object.metadata.name.as_deref().unwrap_or_default()
            );
            let status = &object.data["status"];
            let condition = |type_: &str| {
                status["conditions"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
                    .cloned()
            };
            let ready = condition("Ready");
            let stalled = condition("Stalled");
            let mut all = state.lock().expect("seen lock");
            let entry = all.entry(key).or_default();
            entry.ready = ready.as_ref().is_some_and(|c| c["status"] == "True");
            if entry.ready && entry.ready_at.is_none() {
                entry.ready_at = Some(now);
            }
            entry.stalled = stalled.as_ref().is_some_and(|c| c["status"] == "True");
            let reason_of = stalled
                .as_ref()
                .filter(|_| entry.stalled)
                .or(ready.as_ref());
            entry.reason = reason_of.and_then(|c| c["reason"].as_str().map(String::from));
            entry.message = reason_of.and_then(|c| c["message"].as_str().map(String::from));
            entry.id = status["id"].as_str().map(String::from);
        }
    });
    tokio::time::timeout(Duration::from_secs(30), synced_rx)
        .await
        .context("the bench's watch did not sync")??;
    Ok((seen, task))
}

pub(crate) fn snapshot(seen: &Seen) -> HashMap<String, Observed> {
    seen.lock().expect("seen lock").clone()
}

/// Waits until `done` holds for every key, or fails naming some that do not.
pub(crate) async fn wait_all(
    seen: &Seen,
    keys: &[String],
    what: &str,
    timeout: Duration,
    done: impl Fn(&Observed) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    // Fails with some of the keys for which `done` does not hold yet.
    let all_done = || {
        let missing: Vec<String> = {
            let all = seen.lock().expect("seen lock");
            keys.iter()
                .filter(|k| !all.get(*k).is_some_and(&done))
                .take(5)
                .map(|k| format!("{k}: {:?}", all.get(k).map(|o| (&o.reason, &o.message))))
                .collect()
        };
        std::future::ready(if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        })
    };
    all_done
        .retry(testbed::every(Duration::from_millis(20)))
        .when(|_| Instant::now() <= deadline)
        .await
        .map_err(|missing| anyhow!("not all {what} within {timeout:?}, e.g. {missing:?}"))
}
