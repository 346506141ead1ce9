//! Source filters (`spec.sources[].filter`) against the real API server and the emulator: sent,
//! changed by one PATCH, refused by ngrok where it does not filter, carried by import and
//! observe mode; and a filter set in ngrok's dashboard that the spec does not name is never
//! dropped by a PATCH.

mod common;

use common::{Operator, Options, destination, kinesis_role, ready_message, subscription};
use ngrok_api::types::{
    AwsAuth, AwsRole, EventDestinationCreate, EventSourceReplace, EventSubscriptionCreate,
    EventTarget, EventTargetKinesis,
};
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use ngrok_events_operator::drift::FieldDifference;
use serde_json::json;

const SUBSCRIPTION: &str = "/event_subscriptions/{id}";
const HTTP: &str = "http_request_complete.v0";
const SERVER_ERRORS: &str = "ev.http.response.status_code >= 500";
const DASHBOARD_FILTER: &str = r#"ev.conn.server_name == "shop.example.com""#;

/// A destination made outside Kubernetes, and a subscription of `HTTP` (no filter) to it.
async fn made_by_hand(op: &Operator) -> (String, String) {
    let ngrok = op.ngrok();
    let destination = ngrok
        .create::<ngrok_api::types::EventDestination>(&EventDestinationCreate::new(
            EventTarget::Kinesis(EventTargetKinesis {
                stream_arn: "arn:aws:kinesis:us-east-2:1:stream/by-hand".into(),
                auth: AwsAuth::Role(AwsRole {
                    role_arn: "arn:aws:iam::1:role/r".into(),
                }),
            }),
        ))
        .await
        .unwrap()
        .id;
    let subscription = ngrok
        .create::<ngrok_api::types::EventSubscription>(&EventSubscriptionCreate {
            description: Some("by hand".into()),
            ..EventSubscriptionCreate::new(
                vec![EventSourceReplace::new(HTTP)],
                vec![destination.clone()],
            )
        })
        .await
        .unwrap()
        .id;
    (destination, subscription)
}

#[tokio::test]
async fn a_filter_is_sent_changed_by_one_patch_and_refused_where_ngrok_does_not_filter() {
    let op = Operator::start("filter-sent").await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    op.wait_ready_id::<EventDestination>("audit").await;
    op.create(&subscription(
        "errors",
        json!({
            "sources": [{"type": HTTP, "fields": ["conn.client_ip"], "filter": SERVER_ERRORS}],
            "destinationRefs": [{"name": "audit"}],
        }),
    ))
    .await;
    let ready = op.wait_ready::<EventSubscription>("errors").await;
    let id = ready.status.unwrap().common.id.unwrap();
    assert_eq!(
        op.emulator.object(&id).unwrap()["sources"],
        json!([{"type": HTTP, "fields": ["conn.client_ip"], "filter": SERVER_ERRORS}])
    );

    // A new filter: one PATCH of the sources, with it.
    let generation = ready.metadata.generation;
    op.patch::<EventSubscription>(
        "errors",
        json!({"spec": {"sources": [{"type": HTTP, "fields": ["conn.client_ip"], "filter": DASHBOARD_FILTER}]}}),
    )
    .await;
    op.wait_event("errors", "Updated").await;
    let updated = op.wait_ready::<EventSubscription>("errors").await;
    assert_ne!(updated.metadata.generation, generation);
    let patches = op.requests("PATCH", SUBSCRIPTION);
    assert_eq!(patches.len(), 1, "{patches:#?}");
    assert_eq!(
        patches[0].body,
        Some(
            json!({"sources": [{"type": HTTP, "fields": ["conn.client_ip"], "filter": DASHBOARD_FILTER}]})
        )
    );
    assert_eq!(
        op.emulator.object(&id).unwrap()["sources"][0]["filter"],
        DASHBOARD_FILTER
    );

    // On an event type ngrok does not filter: ngrok's refusal, Stalled.
    op.create(&subscription(
        "audit-log",
        json!({
            "sources": [{"type": "ip_policy_created.v0", "filter": "ev.id != \"\""}],
            "destinationRefs": [{"name": "audit"}],
        }),
    ))
    .await;
    let stalled = op
        .wait_condition::<EventSubscription>("audit-log", "Stalled", "NgrokRejected")
        .await;
    let message = ready_message(&stalled);
    assert!(
        message.contains("ERR_NGROK_5402") && message.contains("may not specify a filter"),
        "{message}"
    );
    op.stop().await;
}

/// `import --observe` carries a filter made outside Kubernetes; observe mode then reports a
/// filter that differs, and writes nothing.
#[tokio::test]
async fn import_and_observe_mode_carry_the_filter() {
    let op = Operator::start_with("filter-observe", Options::adopting()).await;
    let (_, id) = made_by_hand(&op).await;
    op.emulator
        .patch_object(
            &id,
            &json!({"sources": [{"type": HTTP, "filter": DASHBOARD_FILTER}]}),
        )
        .unwrap();
    let yaml = ngrok_events_operator::import::import(&op.ngrok(), &op.namespace, true, None)
        .await
        .unwrap();
    let documents = testbed::parse_documents::<serde_json::Value>(&yaml).unwrap();
    assert_eq!(documents.len(), 2, "{yaml}");
    let imported: EventSubscription = serde_json::from_value(documents[1].clone()).unwrap();
    assert_eq!(
        imported.spec.sources[0].filter.as_deref(),
        Some(DASHBOARD_FILTER)
    );
    let destination: EventDestination = serde_json::from_value(documents[0].clone()).unwrap();
    op.emulator.clear_requests();
    op.create(&destination).await;
    let name = imported.metadata.name.clone().unwrap();
    op.create(&imported).await;

    let observed = op
        .wait_ready_status::<EventSubscription>(&name, "True", "Observing")
        .await;
    assert!(observed.status.unwrap().common.drift.is_empty());

    op.patch::<EventSubscription>(
        &name,
        json!({"spec": {"sources": [{"type": HTTP, "filter": SERVER_ERRORS}]}}),
    )
    .await;
    let observed = op
        .wait_ready_status::<EventSubscription>(&name, "False", "Observing")
        .await;
    assert_eq!(
        observed.status.unwrap().common.drift,
        [FieldDifference {
            path: format!("sources[{HTTP}].filter"),
            wanted: Some(SERVER_ERRORS.into()),
            actual: Some(DASHBOARD_FILTER.into()),
            secret: None,
        }]
    );
    assert_eq!(op.writes(), 0, "{:#?}", op.emulator.requests());
    op.stop().await;
}

/// An adopted subscription whose source has a filter set in ngrok's dashboard that the spec
/// does not name: no PATCH drops it (Stalled, `RemoteFieldNotModeled`); once the spec names
/// it, Ready without a write. Then a field the operator does not model: kept the same way.
#[tokio::test]
async fn a_dashboard_filter_is_never_dropped_by_a_patch() {
    let op = Operator::start_with("filter-adopt", Options::adopting()).await;
    let (destination_id, id) = made_by_hand(&op).await;
    // As the dashboard would: set on ngrok's object directly.
    op.emulator
        .patch_object(
            &id,
            &json!({"sources": [{"type": HTTP, "filter": DASHBOARD_FILTER}]}),
        )
        .unwrap();
    op.emulator.clear_requests();
    let mut adopting = subscription(
        "adopted",
        json!({
            "description": "by hand",
            "sources": [{"type": HTTP}],
            "destinationIds": [destination_id],
        }),
    );
    adopting.metadata.annotations =
        Some([("events.ngrok.io/adopt-id".to_string(), id.clone())].into());
    op.create(&adopting).await;
    let stalled = op
        .wait_condition::<EventSubscription>("adopted", "Stalled", "RemoteFieldNotModeled")
        .await;
    let message = ready_message(&stalled);
    assert!(
        message.contains(&format!("sources[{HTTP}].filter"))
            && message.contains("name it in the spec")
            && !message.contains("shop.example.com"),
        "{message}"
    );
    assert_eq!(
        stalled.status.unwrap().common.id.as_deref(),
        Some(id.as_str()),
        "adopted"
    );
    assert!(op.requests("PATCH", SUBSCRIPTION).is_empty());
    assert_eq!(
        op.emulator.object(&id).unwrap()["sources"][0]["filter"],
        DASHBOARD_FILTER
    );

    // An edit of another field is not sent either: the update would carry the sources too.
    op.patch::<EventSubscription>("adopted", json!({"spec": {"description": "edited"}}))
        .await;
    testbed::wait_for(
        &op.api::<EventSubscription>(),
        "adopted",
        |s: Option<&EventSubscription>| {
            s.is_some_and(|s| {
                s.status.as_ref().is_some_and(|status| {
                    status.common.conditions.iter().any(|c| {
                        c.type_ == "Stalled"
                            && c.status == "True"
                            && c.reason == "RemoteFieldNotModeled"
                            && c.observed_generation == s.metadata.generation
                    })
                })
            })
        },
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(op.requests("PATCH", SUBSCRIPTION).is_empty());

    // The spec names it: Ready, one PATCH of the description only.
    op.patch::<EventSubscription>(
        "adopted",
        json!({"spec": {"sources": [{"type": HTTP, "filter": DASHBOARD_FILTER}]}}),
    )
    .await;
    op.wait_ready::<EventSubscription>("adopted").await;
    let patches = op.requests("PATCH", SUBSCRIPTION);
    assert_eq!(patches.len(), 1, "{patches:#?}");
    assert_eq!(patches[0].body, Some(json!({"description": "edited"})));
    assert_eq!(
        op.emulator.object(&id).unwrap()["sources"][0]["filter"],
        DASHBOARD_FILTER
    );

    // A field ngrok returns that the operator does not model, then a spec change of the
    // sources: refused, and the field stays.
    let mut raw = serde_json::Map::new();
    for (key, value) in [
        ("id", json!(id)),
        ("uri", json!("")),
        ("created_at", json!("2026-11-29T12:00:00Z")),
        ("metadata", json!("")),
        ("description", json!("edited")),
        (
            "sources",
            json!([{"type": HTTP, "uri": "", "filter": DASHBOARD_FILTER, "sampling_rate": 0.5}]),
        ),
        ("destinations", json!([{"id": destination_id, "uri": ""}])),
    ] {
        raw.insert(key.into(), value);
    }
    assert!(op.emulator.set_raw_object(&id, raw));
    op.patch::<EventSubscription>(
        "adopted",
        json!({"spec": {"sources": [{"type": HTTP, "filter": DASHBOARD_FILTER, "fields": ["conn.client_ip"]}]}}),
    )
    .await;
    let stalled = op
        .wait_condition::<EventSubscription>("adopted", "Stalled", "RemoteFieldNotModeled")
        .await;
    let message = ready_message(&stalled);
    assert!(
        message.contains(&format!("sources[{HTTP}].sampling_rate"))
            && message.contains("does not model"),
        "{message}"
    );
    assert_eq!(op.requests("PATCH", SUBSCRIPTION).len(), 1, "no new PATCH");
    assert_eq!(
        op.emulator.object(&id).unwrap()["sources"][0]["sampling_rate"],
        0.5
    );
    op.stop().await;
}
