//! The request budget: what a [`Client`](crate::Client) waits for before each attempt.
//!
//! By default each client has its own [`Gcra`] limiter built from
//! [`ClientConfig::rate_limit_per_minute`](crate::ClientConfig::rate_limit_per_minute) and
//! [`rate_limit_burst`](crate::ClientConfig::rate_limit_burst). A caller that shares one
//! account among several parties can plug in its own ([`ClientConfig::budget`](crate::ClientConfig::budget)),
//! e.g. one that hands tokens out fairly among them. The client keeps its fence around the
//! wait either way: a wait ends when the fence lapses.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A boxed future, as [`Budget::ready`] returns.
pub type BudgetWait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Decides when the next request of a client may go out.
pub trait Budget: Send + Sync {
    /// Completes when one request may be sent; the request spends what it waited for. A wait
    /// that is dropped before it completes spends nothing of its own (an implementation may
    /// lose at most the one token it was about to hand over).
    fn ready(&self) -> BudgetWait<'_>;
}

/// A GCRA limiter: `per_minute` requests a minute, `burst` of them back to back. Any
/// 60-second window holds at most `burst + per_minute` requests.
pub struct Gcra(DefaultDirectRateLimiter);

impl Gcra {
    /// `None` when `per_minute` is 0 (no limit). A `burst` of 0 counts as 1.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            Self(RateLimiter::direct(
                Quota::per_minute(rate).allow_burst(burst),
            ))
        })
    }

    /// Takes a token if one is free now, without waiting.
    pub fn try_take(&self) -> bool {
        self.0.check().is_ok()
    }

    /// Waits for a token and takes it.
    pub async fn take(&self) {
        self.0.until_ready().await
    }
}

impl Budget for Gcra {
    fn ready(&self) -> BudgetWait<'_> {
        Box::pin(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_no_limiter_and_burst_at_least_one() {
        assert!(Gcra::new(0, 10).is_none());
        let one = Gcra::new(60, 0).unwrap();
        assert!(one.try_take());
        assert!(!one.try_take(), "a burst of 0 is a burst of 1");
    }
}
