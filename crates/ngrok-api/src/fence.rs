//! Fencing: bounds every call of a [`Client`](crate::Client) in time, for a caller that may
//! act on ngrok only while it holds a lease (one of several replicas, by leader election).
//!
//! ngrok has no fencing token: nothing on its side refuses a write from a replica whose lease
//! ran out. So the client itself keeps each call inside the time the caller is sure to hold
//! the lease:
//!
//! - No request is started without a deadline ahead ([`Fence::deadline`]); a write only if
//!   at least [`Fence::write_window`] is left, so that it can be answered before the deadline.
//! - Waits end at the deadline: the rate limiter's, a backoff delay, a `Retry-After`. The
//!   request after them is refused ([`FenceReason::LeaseExpiring`]).
//! - A request still running at the deadline is cut off. A create cut off this way has an
//!   unknown outcome.
//!
//! The deadline is read again whenever it is reached, so a renewal of the lease meanwhile
//! (a later deadline) lets the wait or the request go on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Until when a caller may act on ngrok.
pub trait Fence: Send + Sync {
    /// The instant by which every call must have ended; `None` when no call may start at all.
    /// May move later (a renewal) or become `None` (the lease is lost) at any time.
    fn deadline(&self) -> Option<Instant>;

    /// How much time before the deadline a write (`POST`, `PATCH`, `DELETE`) needs to be
    /// started.
    fn write_window(&self) -> Duration {
        Duration::ZERO
    }
}

/// Why a fenced call did not run, or was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceReason {
    /// The caller does not hold the lease.
    NotLeader,
    /// The lease may run out before the call could finish.
    LeaseExpiring,
}

impl FenceReason {
    /// PascalCase, for conditions and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FenceReason::NotLeader => "NotLeader",
            FenceReason::LeaseExpiring => "LeaseExpiring",
        }
    }
}

/// Whether a request may be sent now: `Err` says why not.
pub(crate) fn admits(fence: &dyn Fence, is_write: bool) -> Result<(), FenceReason> {
    let deadline = fence.deadline().ok_or(FenceReason::NotLeader)?;
    let needed = match is_write {
        true => fence.write_window(),
        false => Duration::ZERO,
    };
    match Instant::now().checked_add(needed) {
        Some(start_by) if start_by < deadline => Ok(()),
        _ => Err(FenceReason::LeaseExpiring),
    }
}

/// Sleeps between retries: the delay, or less if the fence lapses first.
pub(crate) struct Sleep(pub(crate) Option<Arc<dyn Fence>>);

impl backon::Sleeper for Sleep {
    type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn sleep(&self, delay: Duration) -> Self::Sleep {
        let fence = self.0.clone();
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = lapsed(fence) => {}
            }
        })
    }
}

/// Resolves once the fence's deadline has passed without being extended, or it closed.
pub(crate) async fn lapsed(fence: Option<Arc<dyn Fence>>) -> FenceReason {
    let Some(fence) = fence else {
        return std::future::pending().await;
    };
    loop {
        match fence.deadline() {
            None => return FenceReason::NotLeader,
            Some(deadline) if deadline <= Instant::now() => return FenceReason::LeaseExpiring,
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Until(Option<Instant>, Duration);

    impl Fence for Until {
        fn deadline(&self) -> Option<Instant> {
            self.0
        }
        fn write_window(&self) -> Duration {
            self.1
        }
    }

    #[test]
    fn admits_reads_before_the_deadline_and_writes_with_their_window_left() {
        let soon = Until(
            Some(Instant::now() + Duration::from_millis(500)),
            Duration::from_secs(1),
        );
        assert_eq!(admits(&soon, false), Ok(()));
        assert_eq!(admits(&soon, true), Err(FenceReason::LeaseExpiring));
        let later = Until(
            Some(Instant::now() + Duration::from_secs(2)),
            Duration::from_secs(1),
        );
        assert_eq!(admits(&later, true), Ok(()));
        let past = Until(Some(Instant::now()), Duration::ZERO);
        assert_eq!(admits(&past, false), Err(FenceReason::LeaseExpiring));
        let closed = Until(None, Duration::ZERO);
        assert_eq!(admits(&closed, false), Err(FenceReason::NotLeader));
    }

    #[tokio::test]
    async fn lapses_at_the_deadline_or_at_once_when_closed() {
        let closed: Arc<dyn Fence> = Arc::new(Until(None, Duration::ZERO));
        assert_eq!(lapsed(Some(closed)).await, FenceReason::NotLeader);
        let started = Instant::now();
        let soon: Arc<dyn Fence> = Arc::new(Until(
            Some(Instant::now() + Duration::from_millis(50)),
            Duration::ZERO,
        ));
        assert_eq!(lapsed(Some(soon)).await, FenceReason::LeaseExpiring);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
