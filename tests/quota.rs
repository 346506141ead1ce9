//! The README's ResourceQuota example ("Quotas: how many resources a team may create") on the
//! real API server: the block is read from the README, applied to a namespace of the test's own
//! with smaller numbers, and the create over it is refused by the API server.

mod common;

use common::{destination, kinesis_role};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::Api;
use kube::api::PostParams;
use ngrok_events_operator::crd::EventDestination;

/// The YAML block of the README's quota section.
fn readme_quota() -> ResourceQuota {
    let readme = std::fs::read_to_string(common::repo_path("README.md")).unwrap();
    let section = &readme[readme
        .find("### Quotas: how many resources a team may create")
        .expect("the README's quota section")..];
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block in the quota section");
    serde_yaml::from_str(block).expect("a ResourceQuota")
}

#[tokio::test]
async fn the_readme_quota_refuses_a_destination_over_it() {
    let (client, namespace) = common::cluster_with_namespace("quota").await.unwrap();
    let mut quota = readme_quota();
    let hard = quota.spec.as_mut().unwrap().hard.as_mut().unwrap();
    assert!(hard.contains_key("count/eventdestinations.events.ngrok.io"));
    assert!(hard.contains_key("count/eventsubscriptions.events.ngrok.io"));
    // Two instead of twenty: the same rule, fewer objects.
    hard.insert(
        "count/eventdestinations.events.ngrok.io".into(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
    );
    quota.metadata.namespace = Some(namespace.clone());
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &namespace);
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    // The quota is enforced once its controller has counted the namespace. A CRD installed
    // just before is counted from the controller's next discovery, every 30 s.
    let name = quota.metadata.name.clone().unwrap();
    testbed::wait_for(
        &quotas,
        &name,
        |q: Option<&ResourceQuota>| {
            q.and_then(|q| q.status.as_ref()?.used.as_ref())
                .is_some_and(|used| used.contains_key("count/eventdestinations.events.ngrok.io"))
        },
        std::time::Duration::from_secs(90),
    )
    .await
    .unwrap();
    let destinations = Api::<EventDestination>::namespaced(client, &namespace);
    for name in ["one", "two"] {
        destinations
            .create(
                &PostParams::default(),
                &destination(name, serde_json::json!({"target": kinesis_role(name)})),
            )
            .await
            .unwrap();
    }
    let refused = destinations
        .create(
            &PostParams::default(),
            &destination(
                "three",
                serde_json::json!({"target": kinesis_role("three")}),
            ),
        )
        .await
        .expect_err("a third destination is over the quota");
    let message = refused.to_string();
    assert!(
        message.contains("exceeded quota: ngrok-events")
            && message.contains("count/eventdestinations.events.ngrok.io"),
        "{message}"
    );
}
