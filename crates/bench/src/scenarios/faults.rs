//! Reliability under faults: N creates against an emulator answering 30% of calls with 5xx and
//! dropping 5% of create responses after creating; every resource must end Ready with exactly
//! one remote object, for at most twice the fault-free ngrok calls.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::Config;
use crate::counting::{KubeRequests, NgrokCalls};
use crate::environment::{Env, emulator, operator_args};
use crate::report::{Check, check};
use crate::watch::{snapshot, wait_all};
use crate::workload::{
    create_destinations, create_secrets, good_destinations, make_namespaces_and_noise,
};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultsReport {
    pub n: usize,
    pub error_rate: f64,
    pub drop_after_create_rate: f64,
    pub all_ready_s: f64,
    pub remote_count: usize,
    pub distinct_ids: usize,
    pub ids_match_remote: bool,
    pub ngrok: NgrokCalls,
    /// Calls of the same N without faults (exactly N POSTs, measured by the standard run).
    pub fault_free_calls: u64,
    pub kube: KubeRequests,
    pub checks: Vec<Check>,
}

pub async fn run_faults(
    config: &Config,
    n: usize,
    fault_free_calls: Option<u64>,
) -> Result<FaultsReport> {
    let (error_rate, drop_rate) = (0.3, 0.05);
    config.say(format!(
        "=== faults: N = {n}, {error_rate} 5xx, {drop_rate} dropped creates"
    ));
    let env = Env::start(
        config,
        emulator(config, 0)
            .error_rate(error_rate)
            .drop_after_create_rate(drop_rate),
    )
    .await?;
    let result = async {
        let (namespaces, planned, keys) = good_destinations("faults", config.namespaces, n);
        make_namespaces_and_noise(&env, &namespaces, 0).await?;
        create_secrets(&env, &planned).await?;
        let operator = env
            .start_operator(
                &format!("faults-{n}"),
                &operator_args(config, Duration::from_secs(600)),
            )
            .await?;
        let (ngrok_mark, audit_mark) = (env.ngrok_mark(), env.audit.len());
        let start = Instant::now();
        create_destinations(&env, &planned).await?;
        wait_all(&env.seen, &keys, "Ready", Duration::from_secs(600), |o| {
            o.ready
        })
        .await?;
        let all_ready_s = start.elapsed().as_secs_f64();
        env.wait_idle(
            &operator,
            n as f64,
            Duration::from_secs(3),
            Duration::from_secs(300),
        )
        .await?;
        let seen = snapshot(&env.seen);
        let ids: HashSet<String> = keys
            .iter()
            .filter_map(|k| seen.get(k)?.id.clone())
            .collect();
        let remote: HashSet<String> = env.emulator.destination_ids().into_iter().collect();
        let ngrok = env.ngrok_since(ngrok_mark);
        let kube = env.audit.since(audit_mark)?;
        operator.stop().await?;
        let fault_free = fault_free_calls.unwrap_or(n as u64);
        let checks = vec![
            check(
                "faults: all Ready",
                n,
                keys.iter()
                    .filter(|k| seen.get(*k).is_some_and(|o| o.ready))
                    .count(),
                true,
            ),
            check(
                "faults: remote count = N",
                n,
                remote.len(),
                remote.len() == n,
            ),
            check(
                "faults: no duplicate ids (distinct status ids = N = remote ids)",
                n,
                ids.len(),
                ids.len() == n && ids == remote,
            ),
            check(
                "faults: ngrok calls ≤ 2 × fault-free",
                format!("≤ {}", 2 * fault_free),
                ngrok.total,
                ngrok.total <= 2 * fault_free,
            ),
        ];
        Ok(FaultsReport {
            n,
            error_rate,
            drop_after_create_rate: drop_rate,
            all_ready_s,
            remote_count: remote.len(),
            distinct_ids: ids.len(),
            ids_match_remote: ids == remote,
            ngrok,
            fault_free_calls: fault_free,
            kube,
            checks,
        })
    }
    .await;
    env.stop().await;
    result
}
