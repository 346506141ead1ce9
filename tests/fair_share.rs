//! Fair share (issue 19, item 1 and 2): one namespace's flood of work cannot starve another
//! namespace, whether it shares the flooding namespace's ngrok account or has its own; and a
//! resource with a drift interval of its own checks its object with one GET, not the
//! account's listing.
//!
//! Ordering assertions only, no timings: the operator runs with 2 work slots per kind and
//! 30 ngrok requests a minute (one every 2 s), and namespace A applies 40 destinations before
//! namespace B applies one. Before the fix, A's reconciles held both slots while they waited
//! for ngrok's budget, and B's destination was Ready only after nearly all of A's.

mod common;

use std::time::Duration;

use common::{CREDENTIALS_LABEL, Operator, Options, PrivateCluster, destination, kinesis_role};
use kube::Api;
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::conditions;
use ngrok_events_operator::crd::EventDestination;
use serde_json::json;

const FLOOD: usize = 40;
const B_KEY: &str = "team-b-own-account-key-0123456789";

async fn start(cluster: &PrivateCluster) -> Operator {
    Operator::start_with(
        "fair-a",
        Options {
            all_namespaces_of: Some(cluster.client.clone()),
            concurrency: 2,
            api_rate_limit: (30, 1),
            emulator: Emulator::builder()
                .api_key(common::API_KEY)
                .account_key(B_KEY)
                .rate_limit_per_minute(0),
            ..Default::default()
        },
    )
    .await
}

fn is_ready(destination: &EventDestination) -> bool {
    destination.status.as_ref().is_some_and(|status| {
        conditions::is_true(&status.common.conditions, conditions::READY)
            && status.common.id.is_some()
    })
}

async fn ready_count(api: &Api<EventDestination>) -> usize {
    api.list(&Default::default())
        .await
        .map(|list| list.items.iter().filter(|d| is_ready(d)).count())
        .unwrap_or(0)
}

/// A floods its namespace with creates; once the flood is under way B applies one
/// destination, with `spec`; returns how many of A's were Ready when B's was.
async fn a_ready_when_b_is(op: &Operator, b: &str, spec: serde_json::Value) -> usize {
    let a = op.api::<EventDestination>();
    for i in 0..FLOOD {
        op.create(&destination(
            &format!("flood-{i}"),
            json!({"target": kinesis_role(&format!("flood-{i}"))}),
        ))
        .await;
    }
    testbed::eventually("A's flood under way", Duration::from_secs(60), || async {
        (ready_count(&a).await >= 1).then_some(())
    })
    .await
    .unwrap();
    let b_api = Api::<EventDestination>::namespaced(op.client.clone(), b);
    b_api
        .create(&Default::default(), &destination("first", spec))
        .await
        .unwrap();
    testbed::eventually(
        "B's destination Ready",
        Duration::from_secs(180),
        || async {
            let first = b_api.get("first").await.ok()?;
            is_ready(&first).then_some(())
        },
    )
    .await
    .unwrap();
    ready_count(&a).await
}

#[tokio::test]
async fn a_flood_in_one_namespace_does_not_starve_another_on_the_same_account() {
    let cluster = PrivateCluster::start().await;
    let op = start(&cluster).await;
    let b = testbed::namespace(&cluster.client, "fair-b").await.unwrap();
    let a_ready = a_ready_when_b_is(&op, &b, json!({"target": kinesis_role("b-first")})).await;
    assert!(
        a_ready <= FLOOD / 2,
        "B's destination waited for {a_ready} of A's {FLOOD}: tokens go round-robin across namespaces"
    );
}

#[tokio::test]
async fn a_flood_in_one_namespace_does_not_starve_another_with_its_own_account() {
    let cluster = PrivateCluster::start().await;
    let op = start(&cluster).await;
    let b = testbed::namespace(&cluster.client, "fair-b").await.unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(cluster.client.clone(), &b)
        .create(
            &Default::default(),
            &common::secret("ngrok", &[("key", B_KEY)], &[(CREDENTIALS_LABEL, "true")]),
        )
        .await
        .unwrap();
    let spec = json!({
        "apiKeyRef": {"name": "ngrok", "key": "key"},
        "target": kinesis_role("b-first"),
    });
    let a_ready = a_ready_when_b_is(&op, &b, spec).await;
    assert!(
        a_ready <= FLOOD / 2,
        "B's destination, on its own account, waited for {a_ready} of A's {FLOOD}: a reconcile waiting for A's budget held the work slots"
    );
}

/// 250 objects in the account, one resource with `drift-interval: 30s` while the operator's
/// is 10 minutes: its checks run off the account's shared pass, and each is one GET. Before
/// the fix each needed a listing newer than its last check: 3 list pages at every check.
#[tokio::test]
async fn a_drift_interval_of_its_own_costs_one_get_per_check_not_a_listing() {
    let op = Operator::start("fair-drift").await;
    let ngrok = op.ngrok();
    for i in 0..250 {
        let create = ngrok_api::types::EventDestinationCreate::new(
            ngrok_api::types::EventTarget::Kinesis(ngrok_api::types::EventTargetKinesis {
                auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                    role_arn: "arn:aws:iam::123456789012:role/other".into(),
                }),
                stream_arn: format!("arn:aws:kinesis:us-east-2:123456789012:stream/other-{i}"),
            }),
        );
        ngrok
            .create::<ngrok_api::types::EventDestination>(&create)
            .await
            .unwrap();
    }
    let mut own = destination("own-schedule", json!({"target": kinesis_role("own")}));
    own.metadata.annotations = Some(
        [(
            "events.ngrok.io/drift-interval".to_string(),
            "30s".to_string(),
        )]
        .into(),
    );
    op.create(&own).await;
    let id = op.wait_ready_id::<EventDestination>("own-schedule").await;
    let lists = || op.requests("GET", "/event_destinations").len();
    let gets = || {
        op.requests("GET", "/event_destinations/{id}")
            .into_iter()
            .filter(|r| r.path.ends_with(&id))
            .count()
    };
    let (lists_before, gets_before) = (lists(), gets());
    let checks = op.drift_checks::<EventDestination>();
    // Two checks, 30 s ±10% apart.
    testbed::eventually("two drift checks", Duration::from_secs(120), || async {
        (op.drift_checks::<EventDestination>() >= checks + 2.0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        lists() - lists_before,
        0,
        "a check off the shared pass listed the account"
    );
    assert!(gets() - gets_before >= 2, "each check reads its object");
    op.stop().await;
}
