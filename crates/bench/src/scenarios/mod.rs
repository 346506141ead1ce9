//! The runs of the benchmark. Each starts its own [`Env`](crate::environment::Env), applies its
//! workload, measures, checks its targets and stops the environment: the standard run for one N
//! (burst, restart, drift pass, single resources), faults (5xx and dropped creates), bad input
//! (resources that must stall without costing ngrok calls), the account's rate limit, and the
//! shared cluster (one namespace flooding, another creating).

pub(crate) mod bad_input;
pub(crate) mod faults;
pub(crate) mod rate_limited;
pub mod shared_cluster;
pub(crate) mod standard;
