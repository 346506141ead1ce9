//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several replicas exactly
//! one reconciles while the others wait as hot standbys, and a fence ([`LeaseFence`]) that
//! keeps the leader's ngrok calls inside the time it is sure to hold the lease.
//!
//! Acquiring, renewing and releasing the lease is done by [`kube_lease_manager`]'s
//! [`LeaseManager::watch`] (server-side apply with a field manager per identity, so two
//! candidates can never both acquire it; the leader renews every half lease duration). This
//! module adds what a controller needs around it:
//!
//! - **Prompt takeover.** A standby of `kube_lease_manager` sleeps until the lease it last saw
//!   expires, even when the holder released it right away. Standbys here also watch the Lease
//!   and start over as soon as it has no holder, so a rolling update hands over in well under
//!   a second instead of a lease duration.
//! - **Fencing and loss detection on this replica's own clock.** The leader counts as such
//!   only until its fence runs out (see [`fence`]): if `kube_lease_manager` reports another
//!   holder, or no renewal was confirmed in time (API server unreachable, renewals failing or
//!   hanging), the lease is lost.
//!
//! Needs RBAC on `leases` in the lease's namespace: `get`, `list`, `watch`, `create`, `patch`.

pub mod fence;

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use self::fence::LeaseFence;
use crate::metrics::Metrics;

/// Default lease duration: how long a crashed leader blocks its successor.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Upper bounds on the time spent releasing the lease when stopping: after working, and on a
/// shutdown while standing by (where there is rarely anything to release).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
const STANDBY_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Retry delays after failing to read the Lease while standing by.
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
    fence: LeaseFence,
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

/// The lease manager's background task while it runs: `held` says whether this candidate
/// holds the lease.
struct Manager {
    held: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Manager {
    /// Stops the manager; it releases the lease if this candidate holds it. Waits `within`
    /// at most. `Ok(())` once released or nothing to release.
    async fn stop(self, within: Duration) -> anyhow::Result<()> {
        let Manager { held, mut task } = self;
        // Closing the channel is what tells the manager's task to release and end.
        drop(held);
        match tokio::time::timeout(within, &mut task).await {
            Ok(Ok(Ok(_manager))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                task.abort();
                anyhow::bail!("releasing the leader lease timed out")
            }
        }
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
            fence: LeaseFence::new(DEFAULT_LEASE_DURATION),
        }
    }

    /// How long the lease stays valid after the last renewal, in whole seconds, at least 2 s.
    /// The leader renews it every half of it; its fence ends a third of it before the lease
    /// could expire.
    pub fn with_lease_duration(mut self, lease_duration: Duration) -> Self {
        self.lease_duration = lease_duration;
        self.fence
            .set_lease_duration(Duration::from_secs(lease_duration.as_secs()));
        self
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The fence of this candidate: closed until it leads, then open as long as it is sure to
    /// hold the lease. Hand it to every ngrok client ([`ngrok_api::ClientConfig::fence`]).
    pub fn fence(&self) -> LeaseFence {
        self.fence.clone()
    }

    /// Waits as a standby until this candidate holds the lease, then runs `work` and returns
    /// its result once it finished.
    ///
    /// - `work` gets a token that is cancelled when `shutdown` is, or when the lease is lost;
    ///   it must then wind down and return. The [fence](Self::fence) is open while `work` may
    ///   act, and closes for good when the lease is lost or `work` returns.
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
        anyhow::ensure!(
            self.lease_duration.as_secs() >= 2,
            "the lease duration must be at least 2 s, got {:?}",
            self.lease_duration
        );
        let set_leader = |leader: bool| {
            if let Some(metrics) = &metrics {
                metrics.set_leader(leader);
            }
        };
        set_leader(false);

        let api = Api::<Lease>::namespaced(self.client.clone(), &self.namespace);
        let mut lease_events: LeaseEvents = watcher::watch_object(api, &self.lease_name)
            .default_backoff()
            .boxed();
        // The lease manager's requests go through a client that tells the fence when each
        // renewal was sent.
        let lease_path = format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
            self.namespace, self.lease_name
        );
        let client = fence::stamping_client(
            self.client.clone(),
            lease_path,
            self.identity.clone(),
            self.fence.clone(),
        );

        let Some(mut manager) = self.acquire(&client, &shutdown, &mut lease_events).await else {
            return Ok(());
        };
        drop(lease_events);
        info!(
            lease = %self.lease_name, identity = %self.identity,
            "acquired the leader lease, starting work"
        );
        self.fence.open();
        set_leader(true);

        let token = shutdown.child_token();
        let (result, lost) = self.lead(&mut manager, token.clone(), work(token)).await;
        self.fence.close();
        set_leader(false);

        match lost {
            None => {
                match manager.stop(RELEASE_TIMEOUT).await {
                    Ok(()) => info!(lease = %self.lease_name, "released the leader lease"),
                    Err(e) => warn!(
                        lease = %self.lease_name, error = %format!("{e:#}"),
                        "cannot release the leader lease; a successor takes over once it expires"
                    ),
                }
                result
            }
            Some(reason) => {
                // Not the holder any more, or not sure to be: nothing to release.
                manager.task.abort();
                let lost = anyhow::anyhow!(
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
        client: &kube::Client,
        shutdown: &CancellationToken,
        lease_events: &mut LeaseEvents,
    ) -> Option<Manager> {
        let retry = ExponentialBuilder::default()
            .with_min_delay(MIN_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .without_max_times()
            .with_jitter();
        loop {
            // A fresh manager reads the Lease anew; an existing one would keep sleeping until
            // the lease it last saw expires.
            let build = (|| self.lease_manager(client))
                .retry(retry)
                .notify(|e, delay| {
                    warn!(
                        lease = %self.lease_name, error = %e, delay_ms = delay.as_millis() as u64,
                        "cannot read the leader lease, retrying"
                    )
                });
            let manager = tokio::select! {
                _ = shutdown.cancelled() => return None,
                manager = build => manager,
            };
            let manager = match manager {
                Ok(manager) => manager,
                // Retried without limit, so this does not happen.
                Err(e) => {
                    warn!(lease = %self.lease_name, error = %e, "cannot read the leader lease");
                    continue;
                }
            };
            let (held, task) = manager.watch().await;
            let mut manager = Manager { held, task };
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
            enum Standby {
                Shutdown,
                Acquired,
                ManagerStopped,
                Released,
            }
            let outcome = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Standby::Shutdown,
                acquired = manager.held.wait_for(|held| *held) => match acquired {
                    Ok(_) => Standby::Acquired,
                    Err(_) => Standby::ManagerStopped,
                },
                () = released => Standby::Released,
            };
            match outcome {
                Standby::Acquired => return Some(manager),
                Standby::Shutdown => {
                    // An acquisition may have been in flight; don't leave the lease to expire.
                    if let Err(e) = manager.stop(STANDBY_RELEASE_TIMEOUT).await {
                        debug!(error = %format!("{e:#}"), "releasing the leader lease on shutdown failed");
                    }
                    return None;
                }
                // The manager's task retries errors itself, so it ended by panicking.
                Standby::ManagerStopped => {
                    warn!(lease = %self.lease_name, "the lease manager stopped, starting over")
                }
                Standby::Released => {
                    debug!(lease = %self.lease_name, "leader lease has no holder, trying to take it");
                    if let Err(e) = manager.stop(STANDBY_RELEASE_TIMEOUT).await {
                        debug!(error = %format!("{e:#}"), "stopping the standby's lease manager failed");
                    }
                }
            }
        }
    }

    /// Runs `work` while the lease manager keeps the lease renewed. Returns `work`'s result
    /// and, if the lease was lost on the way, why. On losing it, the fence closes and `token`
    /// is cancelled at once.
    async fn lead<Fut>(
        &self,
        manager: &mut Manager,
        token: CancellationToken,
        work: Fut,
    ) -> (anyhow::Result<()>, Option<String>)
    where
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let mut work = pin!(work);
        let mut lost: Option<String> = None;
        let lose = |reason: String| {
            warn!(lease = %self.lease_name, %reason, "lost the leader lease, stopping work");
            self.fence.close();
            token.cancel();
            Some(reason)
        };
        loop {
            // Renewals move the fence on without waking this loop: it is read again when the
            // instant it said has come.
            let fence_ends = self.fence.valid_until().unwrap_or_else(Instant::now);
            tokio::select! {
                result = &mut work => return (result, lost),
                changed = manager.held.changed(), if lost.is_none() => {
                    let held = changed.is_ok() && *manager.held.borrow_and_update();
                    if !held {
                        let reason = match changed {
                            Ok(()) => "another candidate holds it",
                            Err(_) => "the lease manager stopped",
                        };
                        lost = lose(reason.to_string());
                    }
                }
                () = tokio::time::sleep_until(fence_ends.into()), if lost.is_none() => {
                    if !self.fence.is_held() {
                        lost = lose(format!(
                            "no renewal confirmed within {:?}",
                            self.lease_duration - self.fence.margin()
                        ));
                    }
                }
            }
        }
    }

    async fn lease_manager(
        &self,
        client: &kube::Client,
    ) -> kube_lease_manager::Result<LeaseManager> {
        let duration = self.lease_duration.as_secs();
        LeaseManagerBuilder::new(client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            // Field manager stays the crate's per-identity default: acquisition relies on
            // server-side apply conflicts between distinct field managers.
            .with_duration(duration)
            // Renew every half lease duration: the fence (D − D/3) then leaves D/6 for a
            // renewal's retries.
            .with_grace((duration / 2).max(1))
            .build()
            .await
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
}
