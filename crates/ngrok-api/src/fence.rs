//! Fencing: bounds every call of a [`Client`](crate::Client) in time, for a caller that may
//! act on ngrok only while it holds a lease (one of several replicas, by leader election).
//!
//! ngrok has no fencing token: nothing on its side refuses a write from a replica whose lease
//! ran out. So the client itself keeps each call inside the time the caller is sure to hold
//! the lease:
//!
//! - No request is started without a deadline ahead ([`Fence::deadline`]); a write only if
//!   at least [`Fence::write_window`] is left, so that it can be answered before the deadline.
//! - Waits are refused, not sat out, when they would end past the deadline: the rate
//!   limiter's, a backoff delay, a `Retry-After`. The call then fails at once.
//! - A request still running at the deadline is cut off (the deadline is read again then: a
//!   renewal meanwhile extends it). A create cut off this way has an unknown outcome.

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

/// Whether a call may start now and then wait `wait` before its request: `Err` says why not.
pub(crate) fn admits(fence: &dyn Fence, wait: Duration, is_write: bool) -> Result<(), FenceReason> {
    let deadline = fence.deadline().ok_or(FenceReason::NotLeader)?;
    let needed = if is_write {
        wait + fence.write_window()
    } else {
        wait
    };
    match Instant::now().checked_add(needed) {
        Some(start_by) if start_by < deadline => Ok(()),
        _ => Err(FenceReason::LeaseExpiring),
    }
}

/// Resolves once the fence's deadline has passed without being extended, or it closed.
pub(crate) async fn lapsed(fence: Option<&dyn Fence>) -> FenceReason {
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
    fn admits_only_what_fits_before_the_deadline() {
        let soon = Until(
            Some(Instant::now() + Duration::from_secs(2)),
            Duration::from_secs(1),
        );
        assert_eq!(admits(&soon, Duration::ZERO, true), Ok(()));
        assert_eq!(admits(&soon, Duration::from_millis(1500), false), Ok(()));
        assert_eq!(
            admits(&soon, Duration::from_millis(1500), true),
            Err(FenceReason::LeaseExpiring)
        );
        assert_eq!(
            admits(&soon, Duration::from_secs(3), false),
            Err(FenceReason::LeaseExpiring)
        );
        let past = Until(Some(Instant::now()), Duration::ZERO);
        assert_eq!(
            admits(&past, Duration::ZERO, false),
            Err(FenceReason::LeaseExpiring)
        );
        let closed = Until(None, Duration::ZERO);
        assert_eq!(
            admits(&closed, Duration::ZERO, false),
            Err(FenceReason::NotLeader)
        );
    }

    #[tokio::test]
    async fn lapses_at_the_deadline_or_at_once_when_closed() {
        let closed = Until(None, Duration::ZERO);
        assert_eq!(lapsed(Some(&closed)).await, FenceReason::NotLeader);
        let started = Instant::now();
        let soon = Until(
            Some(Instant::now() + Duration::from_millis(50)),
            Duration::ZERO,
        );
        assert_eq!(lapsed(Some(&soon)).await, FenceReason::LeaseExpiring);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
