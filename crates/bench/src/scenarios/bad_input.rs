//! Reliability under bad input: resources of six kinds the API server accepts but the operator
//! cannot make Ready (a missing Secret, wrong keys, an unknown adopt id, a target ngrok refuses,
//! an over-long description, a wrong API key), next to good ones; each bad one must stall with a
//! reason and a message, the good ones be Ready, and the bad ones' ngrok calls stay bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use serde_json::{Value, json};

use crate::counting::NgrokCalls;
use crate::environment::{Env, emulator, operator_args};
use crate::report::{Check, check};
use crate::watch::{snapshot, wait_all};
use crate::workload::{
    Planned, create_destinations, create_secrets, credentials_secret, destination_object, good,
    make_namespaces_and_noise, namespaces,
};
use crate::{Config, REFUSE_MARKER};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadOutcome {
    pub kind: String,
    pub count: usize,
    pub stalled: usize,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadInputReport {
    pub bad: usize,
    pub good: usize,
    pub good_ready: usize,
    pub outcomes: Vec<BadOutcome>,
    /// ngrok calls answered 4xx (the bad resources' calls) until all settled.
    pub bad_calls_first_pass: u64,
    /// Every ngrok call until all settled (good creates included).
    pub calls_first_pass: NgrokCalls,
    pub window_s: f64,
    /// ngrok calls answered 4xx in the window after they settled.
    pub bad_calls_in_window: u64,
    pub calls_in_window: NgrokCalls,
    /// first pass + window calls scaled to an hour.
    pub bad_calls_per_hour_bound: f64,
    pub checks: Vec<Check>,
}

/// Bad resources of six kinds (the API server accepts all of them).
fn bad(namespace: &str, i: usize) -> (String, Planned, Option<Secret>) {
    let name = format!("bad-{i:03}");
    let kinesis = |auth: Value| {
        json!({"kinesis": {
            "streamArn": format!("arn:aws:kinesis:us-east-2:123456789012:stream/bad-{i}"),
            "auth": auth,
        }})
    };
    let role = json!({"role": {"roleArn": "arn:aws:iam::123456789012:role/bench"}});
    let creds = |secret: &str| {
        json!({"creds": {
            "accessKeyIdRef": {"name": secret, "key": "AWS_ACCESS_KEY_ID"},
            "secretAccessKeyRef": {"name": secret, "key": "AWS_SECRET_ACCESS_KEY"},
        }})
    };
    let description = format!("bad {namespace}/{name}");
    let (kind, spec, annotations, extra_secret) = match i % 6 {
        0 => (
            "missing Secret",
            json!({"description": description, "target": kinesis(creds(&format!("{name}-absent")))}),
            json!({}),
            None,
        ),
        1 => (
            "wrong keys in Secret",
            json!({"description": description, "target": kinesis(creds(&format!("{name}-creds")))}),
            json!({}),
            Some(credentials_secret(
                namespace,
                &format!("{name}-creds"),
                BTreeMap::from([
                    ("access-key".into(), "x".into()),
                    ("secret".into(), "y".into()),
                ]),
            )),
        ),
        2 => (
            "non-existent adopt id",
            json!({"description": description, "target": kinesis(role)}),
            json!({"events.ngrok.io/adopt-id": format!("ed_{:0>27}", format!("benchmissing{i}"))}),
            None,
        ),
        3 => (
            "ngrok refuses the target",
            json!({"description": format!("{description} {REFUSE_MARKER}"), "target": kinesis(role)}),
            json!({}),
            None,
        ),
        4 => (
            "description over 255 bytes (multi-byte, within maxLength)",
            json!({"description": "é".repeat(200), "target": kinesis(role)}),
            json!({}),
            None,
        ),
        _ => (
            "wrong ngrok API key in apiKeyRef",
            json!({"description": description, "target": kinesis(role),
                   "apiKeyRef": {"name": format!("{name}-key"), "key": "api-key"}}),
            json!({}),
            Some(credentials_secret(
                namespace,
                &format!("{name}-key"),
                BTreeMap::from([("api-key".into(), "not-the-right-key".into())]),
            )),
        ),
    };
    (
        kind.to_string(),
        Planned {
            namespace: namespace.into(),
            object: destination_object(namespace, &name, spec, annotations),
            secret: extra_secret.clone(),
            name,
        },
        extra_secret,
    )
}

pub async fn run_bad_input(
    config: &Config,
    bad_count: usize,
    good_count: usize,
) -> Result<BadInputReport> {
    config.say(format!("=== bad input: {bad_count} bad, {good_count} good"));
    let env = Env::start(config, emulator(config, 0).refuse_marker(REFUSE_MARKER)).await?;
    let result = async {
        let namespaces = namespaces("badinput", 1);
        let namespace = &namespaces[0];
        make_namespaces_and_noise(&env, &namespaces, 0).await?;
        let bads: Vec<(String, Planned, Option<Secret>)> =
            (0..bad_count).map(|i| bad(namespace, i)).collect();
        let goods: Vec<Planned> = (0..good_count)
            .map(|i| good(namespace, "good", i))
            .collect();
        let mut all: Vec<Planned> = Vec::new();
        for (i, g) in goods.into_iter().enumerate() {
            all.push(g);
            if let Some((_, b, _)) = bads.get(i) {
                all.push(Planned {
                    namespace: b.namespace.clone(),
                    name: b.name.clone(),
                    object: b.object.clone(),
                    secret: b.secret.clone(),
                });
            }
        }
        for (_, b, _) in bads.iter().skip(good_count) {
            all.push(Planned {
                namespace: b.namespace.clone(),
                name: b.name.clone(),
                object: b.object.clone(),
                secret: b.secret.clone(),
            });
        }
        create_secrets(&env, &all).await?;
        let operator = env
            .start_operator("bad-input", &operator_args(config, config.drift_interval))
            .await?;
        let ngrok_mark = env.ngrok_mark();
        create_destinations(&env, &all).await?;
        let good_keys: Vec<String> = (0..good_count)
            .map(|i| format!("{namespace}/good-{i:05}"))
            .collect();
        let bad_keys: Vec<String> = bads.iter().map(|(_, b, _)| b.key()).collect();
        wait_all(
            &env.seen,
            &good_keys,
            "good resources Ready",
            Duration::from_secs(120),
            |o| o.ready,
        )
        .await?;
        wait_all(
            &env.seen,
            &bad_keys,
            "bad resources Stalled",
            Duration::from_secs(120),
            |o| o.stalled,
        )
        .await?;
        env.wait_idle(
            &operator,
            all.len() as f64,
            Duration::from_secs(3),
            Duration::from_secs(120),
        )
        .await?;
        let calls_first_pass = env.ngrok_since(ngrok_mark);
        let window_mark = env.ngrok_mark();
        let start = Instant::now();
        config.say(format!(
            "all settled; watching for {:?}",
            config.bad_input_window
        ));
        tokio::time::sleep(config.bad_input_window).await;
        let window_s = start.elapsed().as_secs_f64();
        let calls_in_window = env.ngrok_since(window_mark);
        operator.stop().await?;
        let seen = snapshot(&env.seen);
        let mut outcomes: Vec<BadOutcome> = Vec::new();
        for (kind, b, _) in &bads {
            let o = seen.get(&b.key()).cloned().unwrap_or_default();
            match outcomes.iter_mut().find(|x| &x.kind == kind) {
                Some(x) => {
                    x.count += 1;
                    x.stalled += o.stalled as usize;
                }
                None => outcomes.push(BadOutcome {
                    kind: kind.clone(),
                    count: 1,
                    stalled: o.stalled as usize,
                    reason: o.reason.unwrap_or_default(),
                    message: o.message.unwrap_or_default(),
                }),
            }
        }
        let good_ready = good_keys
            .iter()
            .filter(|k| seen.get(*k).is_some_and(|o| o.ready))
            .count();
        let bad_first = calls_first_pass.status_4xx;
        let bad_window = calls_in_window.status_4xx;
        let per_hour = bad_first as f64 + bad_window as f64 * 3600.0 / window_s;
        let all_stalled_with_reason = bad_keys.iter().all(|k| {
            seen.get(k).is_some_and(|o| {
                o.stalled
                    && o.reason.as_deref().is_some_and(|r| !r.is_empty())
                    && o.message.as_deref().is_some_and(|m| m.len() > 10)
            })
        });
        let checks = vec![
            check(
                "bad input: at least 25 bad resources",
                "≥ 25",
                bad_count,
                bad_count >= 25,
            ),
            check(
                "bad input: every bad resource Stalled with a reason and a message",
                bad_count,
                bad_keys
                    .iter()
                    .filter(|k| seen.get(*k).is_some_and(|o| o.stalled))
                    .count(),
                all_stalled_with_reason,
            ),
            check(
                "bad input: the good ones Ready",
                good_count,
                good_ready,
                good_ready == good_count,
            ),
            check(
                "bad input: ngrok calls by bad resources, per hour (bounded)",
                format!("≤ {} (2 per resource)", 2 * bad_count),
                format!("{per_hour:.0}"),
                per_hour <= 2.0 * bad_count as f64,
            ),
        ];
        Ok(BadInputReport {
            bad: bad_count,
            good: good_count,
            good_ready,
            outcomes,
            bad_calls_first_pass: bad_first,
            calls_first_pass,
            window_s,
            bad_calls_in_window: bad_window,
            calls_in_window,
            bad_calls_per_hour_bound: per_hour,
            checks,
        })
    }
    .await;
    env.stop().await;
    result
}
