//! The account's budget: N creates with the operator's default client rate limit against an
//! emulator enforcing 120 requests a minute; no 429 answers, and all Ready within the time the
//! client's budget allows.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::counting::NgrokCalls;
use crate::environment::{Env, emulator};
use crate::report::{Check, check};
use crate::watch::wait_all;
use crate::workload::{
    create_destinations, create_secrets, good_destinations, make_namespaces_and_noise,
};
use crate::{Config, DEFAULT_RATE_LIMIT_BURST, DEFAULT_RATE_LIMIT_PER_MINUTE};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RateLimitedReport {
    pub n: usize,
    pub emulator_limit_per_minute: u32,
    pub client_limit_per_minute: u32,
    pub client_burst: u32,
    pub all_ready_s: f64,
    /// The time the client's budget allows for N calls: (N − burst) / rate.
    pub budget_s: f64,
    /// The time the account's own limit would allow: (N − 120) / 120 per minute.
    pub account_limit_s: f64,
    pub ngrok: NgrokCalls,
    pub checks: Vec<Check>,
}

pub async fn run_rate_limited(config: &Config, n: usize) -> Result<RateLimitedReport> {
    config.say(format!(
        "=== rate limited: N = {n}, emulator 120/min, default client limit"
    ));
    let env = Env::start(config, emulator(config, 120)).await?;
    let result = async {
        let (namespaces, planned, keys) = good_destinations("ratelimited", config.namespaces, n);
        make_namespaces_and_noise(&env, &namespaces, 0).await?;
        create_secrets(&env, &planned).await?;
        let mut args = vec!["--drift-interval".to_string(), "10m".to_string()];
        if let Some(c) = config.concurrency {
            args.extend(["--concurrency".into(), c.to_string()]);
        }
        let operator = env
            .start_operator(&format!("ratelimited-{n}"), &args)
            .await?;
        let ngrok_mark = env.ngrok_mark();
        let start = Instant::now();
        create_destinations(&env, &planned).await?;
        wait_all(&env.seen, &keys, "Ready", Duration::from_secs(900), |o| {
            o.ready
        })
        .await?;
        let all_ready_s = start.elapsed().as_secs_f64();
        let ngrok = env.ngrok_since(ngrok_mark);
        operator.stop().await?;
        let rate = DEFAULT_RATE_LIMIT_PER_MINUTE as f64;
        let budget_s = (n as f64 - DEFAULT_RATE_LIMIT_BURST as f64).max(0.0) / rate * 60.0;
        let account_limit_s = (n as f64 - 120.0).max(0.0) / 120.0 * 60.0;
        let checks = vec![
            check(
                "rate limited: 429 responses",
                0,
                ngrok.status_429,
                ngrok.status_429 == 0,
            ),
            check(
                "rate limited: all Ready within 1.15 × the client budget",
                format!("≤ {:.1} s", 1.15 * budget_s),
                format!("{all_ready_s:.1} s"),
                all_ready_s <= 1.15 * budget_s,
            ),
        ];
        Ok(RateLimitedReport {
            n,
            emulator_limit_per_minute: 120,
            client_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            client_burst: DEFAULT_RATE_LIMIT_BURST,
            all_ready_s,
            budget_s,
            account_limit_s,
            ngrok,
            checks,
        })
    }
    .await;
    env.stop().await;
    result
}
