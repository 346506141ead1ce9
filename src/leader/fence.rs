//! The leader's fence: until when this replica is sure to hold the lease, so that nothing it
//! sends to ngrok can overlap with a successor's writes.
//!
//! Another replica may take the lease once `renewTime + D` has passed by its own clock (D: the
//! lease duration). `renewTime` is what this replica's clock said just before it sent the
//! renewal; so this replica is sure to hold the lease until `T + D`, where T is when (on its
//! own monotonic clock) it sent the last renewal the API server confirmed. The fence ends a
//! margin M before that: `T + D − M`.
//!
//! The margin covers what cannot be measured here: clock skew between the nodes, and how
//! late ngrok may still act on a request cut off at the fence. Each renewal is sent half a
//! lease duration after the previous one, so a renewal that fails or hangs leaves `D/2 − M`
//! for retries before the fence runs out.
//!
//! T is taken from the Lease API requests themselves ([`stamping_client`]): a `PATCH` of the
//! Lease counts as a renewal once its answer shows this replica as holder with a `renewTime`
//! it had not confirmed before. Watching the Lease would see renewals late, by however long
//! the watch takes; and the lease's `renewTime` is a wall clock, which may jump.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;

/// The share of the lease duration the fence ends before the lease could expire.
const MARGIN_DIVISOR: u32 = 3;
/// A write is started only with at least this share of the lease duration left before the
/// fence, so that it can be answered before it.
const WRITE_WINDOW_DIVISOR: u32 = 10;

/// A cheap, cloneable handle on the fence of one [`LeaderElection`](super::LeaderElection).
/// It says "not held" until the election made this replica leader, and for good once it
/// stopped leading.
#[derive(Clone)]
pub struct LeaseFence {
    shared: Arc<Mutex<State>>,
    /// Wakes [`LeaseFence::lost`] when leading ends before the fence would run out.
    closed: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct State {
    lease_duration: Duration,
    /// Leading: set once the lease is acquired, cleared when leading stops (for good).
    leading: bool,
    ended: bool,
    /// When the last confirmed renewal (or acquisition) was sent.
    confirmed_sent_at: Option<Instant>,
    /// Its `renewTime`, so that a later answer showing the same renewal does not count again.
    confirmed_renew_time: Option<String>,
}

impl std::fmt::Debug for LeaseFence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseFence")
            .field("valid_until", &self.valid_until())
            .finish()
    }
}

impl LeaseFence {
    pub(crate) fn new(lease_duration: Duration) -> Self {
        LeaseFence {
            shared: Arc::new(Mutex::new(State {
                lease_duration,
                leading: false,
                ended: false,
                confirmed_sent_at: None,
                confirmed_renew_time: None,
            })),
            closed: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock().expect("lease fence lock")
    }

    /// Until when this replica is sure to hold the lease: the send time of the last confirmed
    /// renewal, plus the lease duration, less the [margin](Self::margin). `None` when it is not
    /// leading. May be in the past: then the lease is no longer sure.
    pub fn valid_until(&self) -> Option<Instant> {
        let state = self.state();
        if !state.leading {
            return None;
        }
        Some(state.confirmed_sent_at? + state.lease_duration - margin(state.lease_duration))
    }

    /// Whether this replica is sure to hold the lease now.
    pub fn is_held(&self) -> bool {
        self.valid_until()
            .is_some_and(|until| until > Instant::now())
    }

    /// Resolves once this replica is no longer sure to hold the lease: at once when it is not
    /// leading, when leading ends, or when the fence runs out (renewals confirmed meanwhile
    /// move that moment on).
    pub async fn lost(&self) {
        loop {
            // Registered before the state is read, so that a close in between is not missed.
            let closed = self.closed.notified();
            let Some(until) = self.valid_until().filter(|until| *until > Instant::now()) else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(until.into()) => {}
                () = closed => {}
            }
        }
    }

    /// How long before the lease could expire the fence ends: a third of the lease duration.
    pub fn margin(&self) -> Duration {
        margin(self.state().lease_duration)
    }

    /// How much of the fence a write needs left to be started: a tenth of the lease duration.
    pub fn write_window(&self) -> Duration {
        self.state().lease_duration / WRITE_WINDOW_DIVISOR
    }

    pub(crate) fn set_lease_duration(&self, lease_duration: Duration) {
        self.state().lease_duration = lease_duration;
    }

    /// Leading starts (the lease was acquired): the fence follows the confirmed renewals.
    pub(crate) fn open(&self) {
        let mut state = self.state();
        state.leading = !state.ended;
    }

    /// Leading ended: the fence stays closed for the life of the process.
    pub(crate) fn close(&self) {
        {
            let mut state = self.state();
            state.leading = false;
            state.ended = true;
        }
        self.closed.notify_waiters();
    }

    /// The Lease, as the API server answered a `PATCH` sent at `sent_at`.
    fn answered(&self, sent_at: Instant, lease: &Lease, identity: &str) {
        let Some(spec) = &lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(identity) {
            return;
        }
        let Some(renew_time) = spec.renew_time.as_ref().map(|t| t.0.to_string()) else {
            return;
        };
        let mut state = self.state();
        if state.confirmed_renew_time.as_ref() == Some(&renew_time) {
            return;
        }
        state.confirmed_renew_time = Some(renew_time);
        state.confirmed_sent_at = state.confirmed_sent_at.max(Some(sent_at));
    }
}

fn margin(lease_duration: Duration) -> Duration {
    lease_duration / MARGIN_DIVISOR
}

impl ngrok_api::Fence for LeaseFence {
    fn deadline(&self) -> Option<Instant> {
        self.valid_until()
    }

    fn write_window(&self) -> Duration {
        LeaseFence::write_window(self)
    }
}

/// A client that sends everything through `client`, and tells `fence` when each `PATCH` of the
/// Lease at `lease_path` was sent and what the API server answered.
pub(crate) fn stamping_client(
    client: kube::Client,
    lease_path: String,
    identity: String,
    fence: LeaseFence,
) -> kube::Client {
    let default_namespace = client.default_namespace().to_string();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        stamp(
            client.clone(),
            lease_path.clone(),
            identity.clone(),
            fence.clone(),
            request,
        )
    });
    kube::Client::new(service, default_namespace)
}

fn stamp(
    client: kube::Client,
    lease_path: String,
    identity: String,
    fence: LeaseFence,
    request: http::Request<Body>,
) -> BoxFuture<'static, Result<http::Response<Body>, kube::Error>> {
    async move {
        let is_lease_patch =
            request.method() == http::Method::PATCH && request.uri().path() == lease_path;
        let sent_at = Instant::now();
        let response = client.send(request).await?;
        if !is_lease_patch || !response.status().is_success() {
            return Ok(response);
        }
        // A Lease is small: read it whole, then hand the same bytes on.
        let (parts, body) = response.into_parts();
        let bytes = body.collect_bytes().await?;
        if let Ok(lease) = serde_json::from_slice::<Lease>(&bytes) {
            fence.answered(sent_at, &lease, &identity);
        }
        Ok(http::Response::from_parts(parts, Body::from(bytes)))
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;

    fn lease(holder: &str, renew_time: Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renew_time)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn held_from_acquisition_until_the_margin_before_the_lease_could_expire() {
        let fence = LeaseFence::new(Duration::from_secs(15));
        let sent_at = Instant::now();
        fence.answered(sent_at, &lease("me", Timestamp::now()), "me");
        assert_eq!(fence.valid_until(), None, "not leading yet");
        fence.open();
        assert_eq!(fence.valid_until(), Some(sent_at + Duration::from_secs(10)));
        assert!(fence.is_held());
        assert_eq!(fence.margin(), Duration::from_secs(5));
        assert_eq!(fence.write_window(), Duration::from_millis(1500));
        fence.close();
        assert!(!fence.is_held());
        fence.open();
        assert!(!fence.is_held(), "closed for good");
    }

    #[tokio::test]
    async fn lost_resolves_when_not_leading_when_leading_ends_and_when_the_fence_runs_out() {
        let bound = Duration::from_secs(10);
        let fence = LeaseFence::new(Duration::from_secs(60));
        tokio::time::timeout(bound, fence.lost())
            .await
            .expect("not leading: lost at once");

        fence.open();
        fence.answered(Instant::now(), &lease("me", Timestamp::now()), "me");
        let lost = tokio::spawn({
            let fence = fence.clone();
            async move { fence.lost().await }
        });
        tokio::task::yield_now().await;
        assert!(!lost.is_finished(), "held for 40 s more");
        fence.close();
        tokio::time::timeout(bound, lost)
            .await
            .expect("leading ended: lost long before the fence would run out")
            .unwrap();

        // 300 ms of lease: the fence runs out 200 ms after the renewal was sent.
        let short = LeaseFence::new(Duration::from_millis(300));
        short.open();
        short.answered(Instant::now(), &lease("me", Timestamp::now()), "me");
        assert!(short.is_held());
        tokio::time::timeout(bound, short.lost())
            .await
            .expect("the fence ran out");
        assert!(!short.is_held());
    }

    #[test]
    fn only_a_new_renewal_of_ours_extends_it() {
        let fence = LeaseFence::new(Duration::from_secs(6));
        fence.open();
        let first = Instant::now();
        let renewed = Timestamp::now();
        fence.answered(first, &lease("me", renewed), "me");
        let until = fence.valid_until().unwrap();
        let later = first + Duration::from_secs(1);
        // The same renewal seen again (a patch that did not renew), another holder's lease.
        fence.answered(later, &lease("me", renewed), "me");
        fence.answered(later, &lease("other", Timestamp::now()), "me");
        assert_eq!(fence.valid_until(), Some(until));
        fence.answered(
            later,
            &lease("me", renewed + std::time::Duration::from_secs(1)),
            "me",
        );
        assert_eq!(fence.valid_until(), Some(later + Duration::from_secs(4)));
    }
}
