//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one reconciles while the others wait as hot standbys.
//!
//! Acquiring and renewing the lease is done by [`kube_lease_manager`] (server-side apply with a
//! field manager per identity, so two candidates can never both acquire it). This module adds
//! what a controller needs around it:
//!
//! - **Prompt takeover.** A standby of `kube_lease_manager` sleeps until the lease it last saw
//!   expires, even when the holder released it right away. Standbys here also watch the Lease
//!   and start over as soon as it has no holder, so a rolling update hands over in well under
//!   a second instead of a lease duration.
//! - **Loss detection independent of the API server's answers.** The leader counts as such only
//!   while it observes its own renewals: if `kube_lease_manager` reports another holder, or no
//!   renewal of ours has been seen for a whole lease duration (API server unreachable, renewals
//!   failing or hanging), the lease is considered lost, since another replica may take it from
//!   then on.
//! - **Release on exit** with an optimistic-concurrency precondition, so releasing never
//!   clears a lease someone else already took.
//!
//! Needs RBAC on `leases` in the lease's namespace: `get`, `list`, `watch`, `create`, `patch`.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Default lease duration: how long a crashed leader blocks its successor.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Field manager of the release patch (acquisition and renewal use one per identity).
const RELEASE_FIELD_MANAGER: &str = "ngrok-events-operator-leader-election";

/// Upper bounds on the time spent releasing the lease when stopping: after working, and on a
/// shutdown while standing by (where there is rarely anything to release).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
const STANDBY_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Retry delays after failing API calls while waiting or renewing.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

type LeaseEvents = BoxStream<'static, Result<Option<Lease>, watcher::Error>>;

/// One candidate for leadership on one Lease.
#[derive(Clone)]
pub struct LeaderElection {
    client: kube::Client,
    namespace: String,
    lease_name: String,
    identity: String,
    lease_duration: Duration,
}

impl std::fmt::Debug for LeaderElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElection")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

impl LeaderElection {
    /// A candidate named `identity` (unique per process, see [`default_identity`]) for the
    /// Lease `namespace/lease_name`, created if missing, with [`DEFAULT_LEASE_DURATION`].
    pub fn new(
        client: kube::Client,
        namespace: impl Into<String>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaderElection {
            client,
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
        }
    }

    /// How long the lease stays valid after the last renewal, in whole seconds, at least 2 s.
    /// The leader renews it when a third of it (at least 1 s) is left.
    pub fn with_lease_duration(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits as a standby until this candidate holds the lease, then runs `work` and returns
    /// its result once it finished.
    ///
    /// - `work` gets a token that is cancelled when `shutdown` is, or when the lease is lost;
    ///   it must then wind down and return.
    /// - When `work` returns, the lease is released at once, so a standby takes over
    ///   immediately rather than after the lease expires.
    /// - `shutdown` while standing by returns `Ok(())` promptly, without running `work`.
    /// - Losing the lease while working returns an error after `work` finished, whatever
    ///   `work` returned. The binary should then exit non-zero: Kubernetes restarts it as a
    ///   fresh standby, which is simpler and safer than re-entering the election with caches
    ///   and in-flight state from a term in which another replica may already have acted.
    ///
    /// `metrics`, when given, gets `leader` set to 1 while this candidate holds the lease.
    pub async fn run_as_leader<F, Fut>(
        self,
        shutdown: CancellationToken,
        metrics: Option<Metrics>,
        work: F,
    ) -> anyhow::Result<()>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let duration_secs = self.lease_duration.as_secs();
        anyhow::ensure!(
            duration_secs >= 2,
            "the lease duration must be at least 2 s, got {:?}",
            self.lease_duration
        );
        let lease_duration = Duration::from_secs(duration_secs);
        let set_leader = |leader: bool| {
            if let Some(metrics) = &metrics {
                metrics.set_leader(leader);
            }
        };
        set_leader(false);

        let api = Api::<Lease>::namespaced(self.client.clone(), &self.namespace);
        let mut lease_events: LeaseEvents = watcher::watch_object(api.clone(), &self.lease_name)
            .default_backoff()
            .boxed();

        let Some(manager) = self.acquire(&shutdown, &mut lease_events).await else {
            // An acquisition may have been in flight when shutdown came; don't leave the
            // lease to expire in that case.
            if let Err(e) = self.release(&api, STANDBY_RELEASE_TIMEOUT).await {
                debug!(error = %format!("{e:#}"), "releasing the leader lease on shutdown failed");
            }
            return Ok(());
        };
        info!(
            lease = %self.lease_name, identity = %self.identity,
            "acquired the leader lease, starting work"
        );
        set_leader(true);

        let token = shutdown.child_token();
        let (result, lost) = self
            .lead(
                &manager,
                &mut lease_events,
                lease_duration,
                token.clone(),
                work(token),
            )
            .await;
        set_leader(false);
        drop(manager);

        match lost {
            None => {
                match self.release(&api, RELEASE_TIMEOUT).await {
                    Ok(true) => info!(lease = %self.lease_name, "released the leader lease"),
                    Ok(false) => {}
                    Err(e) => warn!(
                        lease = %self.lease_name, error = %format!("{e:#}"),
                        "cannot release the leader lease; a successor takes over once it expires"
                    ),
                }
                result
            }
            Some(reason) => {
                let lost = anyhow!(
                    "lost the leader lease {}/{}: {reason}",
                    self.namespace,
                    self.lease_name
                );
                match result {
                    Ok(()) => Err(lost),
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "work failed after the leader lease was lost");
                        Err(lost)
                    }
                }
            }
        }
    }

    /// Stands by until this candidate holds the lease (`Some`) or `shutdown` fires (`None`).
    async fn acquire(
        &self,
        shutdown: &CancellationToken,
        lease_events: &mut LeaseEvents,
    ) -> Option<LeaseManager> {
        let mut retry = RetryDelay::default();
        loop {
            // A fresh manager reads the Lease anew; an existing one would keep sleeping until
            // the lease it last saw expires.
            let manager = tokio::select! {
                _ = shutdown.cancelled() => return None,
                manager = self.lease_manager() => manager,
            };
            let manager = match manager {
                Ok(manager) => manager,
                Err(e) => {
                    warn!(
                        lease = %self.lease_name, error = %e,
                        "cannot read the leader lease, retrying"
                    );
                    if retry.wait(shutdown).await.is_err() {
                        return None;
                    }
                    continue;
                }
            };
            let released = async {
                while let Some(event) = lease_events.next().await {
                    match event {
                        Ok(Some(lease)) if holder(&lease).is_none() => return,
                        Ok(_) => {}
                        Err(e) => {
                            debug!(error = %e, "watching the leader lease failed, retrying")
                        }
                    }
                }
                // The watch never ends; should it, fall back on the lease manager alone.
                std::future::pending::<()>().await
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                acquired = manager.changed() => match acquired {
                    Ok(true) => return Some(manager),
                    // Not a holder before, so "changed" can only mean acquired; start over.
                    Ok(false) => {}
                    Err(e) => {
                        warn!(
                            lease = %self.lease_name, error = %e,
                            "cannot acquire the leader lease, retrying"
                        );
                        if retry.wait(shutdown).await.is_err() {
                            return None;
                        }
                    }
                },
                () = released => {
                    debug!(lease = %self.lease_name, "leader lease has no holder, trying to take it");
                    retry.reset();
                }
            }
        }
    }

    /// Runs `work` while keeping the lease renewed. Returns `work`'s result and, if the lease
    /// was lost on the way, why.
    async fn lead<Fut>(
        &self,
        manager: &LeaseManager,
        lease_events: &mut LeaseEvents,
        lease_duration: Duration,
        token: CancellationToken,
        work: Fut,
    ) -> (anyhow::Result<()>, Option<String>)
    where
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut work = pin!(work);
        // `changed()` renews the lease in the background of its future and returns when this
        // candidate is no longer the holder; errors are retried (the deadline below bounds
        // how long that may go on).
        let mut renewal = pin!(async {
            let mut retry = RetryDelay::default();
            loop {
                match manager.changed().await {
                    Ok(true) => retry.reset(),
                    Ok(false) => return "another candidate holds it".to_string(),
                    Err(e) => {
                        warn!(lease = %self.lease_name, error = %e, "renewing the leader lease failed, retrying");
                        tokio::time::sleep(retry.next()).await;
                    }
                }
            }
        });
        // The lease was just acquired or renewed; each renewal we observe extends it.
        let mut valid_until = Instant::now() + lease_duration;
        let mut last_renewal: Option<Timestamp> = None;
        let mut lost: Option<String> = None;
        let mut events_open = true;
        loop {
            tokio::select! {
                result = &mut work => return (result, lost),
                reason = &mut renewal, if lost.is_none() => {
                    warn!(lease = %self.lease_name, %reason, "lost the leader lease, stopping work");
                    lost = Some(reason);
                    token.cancel();
                }
                event = lease_events.next(), if lost.is_none() && events_open => match event {
                    Some(Ok(Some(lease))) => {
                        let spec = lease.spec.unwrap_or_default();
                        let renewed = spec.renew_time.map(|t| t.0);
                        if spec.holder_identity.as_deref() == Some(self.identity.as_str())
                            && renewed.is_some()
                            && renewed > last_renewal
                        {
                            last_renewal = renewed;
                            valid_until = Instant::now() + lease_duration;
                        }
                    }
                    Some(Ok(None)) => {}
                    Some(Err(e)) => debug!(error = %e, "watching the leader lease failed, retrying"),
                    None => events_open = false,
                },
                () = tokio::time::sleep_until(valid_until), if lost.is_none() => {
                    let reason = format!("no renewal observed for {lease_duration:?}");
                    warn!(lease = %self.lease_name, %reason, "lost the leader lease, stopping work");
                    lost = Some(reason);
                    token.cancel();
                }
            }
        }
    }

    async fn lease_manager(&self) -> kube_lease_manager::Result<LeaseManager> {
        let duration = self.lease_duration.as_secs();
        LeaseManagerBuilder::new(self.client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            // Field manager stays the crate's per-identity default: acquisition relies on
            // server-side apply conflicts between distinct field managers.
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .build()
            .await
    }

    /// Clears the lease if this candidate holds it, conditional on the version read so that a
    /// lease taken by another candidate meanwhile is left alone. `Ok(true)` if released.
    async fn release(&self, api: &Api<Lease>, within: Duration) -> anyhow::Result<bool> {
        tokio::time::timeout(within, async {
            // A conflict means the lease changed between read and write: read it again.
            for _ in 0..3 {
                let Some(lease) = api.get_opt(&self.lease_name).await? else {
                    return Ok(false);
                };
                if holder(&lease) != Some(self.identity.as_str()) {
                    return Ok(false);
                }
                let patch = serde_json::json!({
                    "metadata": { "resourceVersion": lease.metadata.resource_version },
                    "spec": {
                        "holderIdentity": null,
                        "acquireTime": null,
                        "renewTime": null,
                        "leaseDurationSeconds": null,
                    },
                });
                let params = PatchParams {
                    field_manager: Some(RELEASE_FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match api
                    .patch(&self.lease_name, &params, &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => return Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(anyhow!("the lease kept changing while releasing it"))
        })
        .await
        .context("releasing the leader lease timed out")?
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// A unique identity for this process: the pod name (env `POD_NAME`, from the downward API),
/// else the hostname, plus a random suffix so that a restarted container never passes for
/// its predecessor.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| hostname::get().ok()?.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "ngrok-events-operator".to_string());
    // Bounded so the per-identity field manager stays within the API server's 128 bytes.
    let base: String = base.chars().take(63).collect();
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{base}-{suffix}")
}

/// Exponential delay between retries of failing API calls.
struct RetryDelay {
    next: Duration,
}

impl Default for RetryDelay {
    fn default() -> Self {
        RetryDelay {
            next: MIN_RETRY_DELAY,
        }
    }
}

impl RetryDelay {
    fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_RETRY_DELAY);
        delay
    }

    fn reset(&mut self) {
        self.next = MIN_RETRY_DELAY;
    }

    /// Sleeps for the next delay; `Err` if `shutdown` fired first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> Result<(), ()> {
        tokio::select! {
            _ = shutdown.cancelled() => Err(()),
            () = tokio::time::sleep(self.next()) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_identity_is_the_pod_or_host_name_with_a_random_suffix() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        let (base, suffix) = a.rsplit_once('-').unwrap();
        assert!(!base.is_empty());
        assert_eq!(suffix.len(), 6);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert!(a.len() <= 70);
    }

    #[test]
    fn retry_delay_grows_to_a_cap_and_resets() {
        let mut retry = RetryDelay::default();
        assert_eq!(retry.next(), MIN_RETRY_DELAY);
        assert_eq!(retry.next(), MIN_RETRY_DELAY * 2);
        for _ in 0..20 {
            retry.next();
        }
        assert_eq!(retry.next(), MAX_RETRY_DELAY);
        retry.reset();
        assert_eq!(retry.next(), MIN_RETRY_DELAY);
    }
}
