//! Event subscriptions against the emulator: every operation, updates that send only what is
//! set, paging, a destination in use, where retries happen, and the `sources` fields ngrok
//! keeps beyond what this client models. (The client's pipeline itself — error classes,
//! retries, the limiter, lost creates — is tested on destinations, in `client.rs`.)

use ngrok_api::types::*;
use ngrok_api::{Client, ErrorClass};
use ngrok_api_emulator::{EmulatorHandle, FaultsUpdate, codes};
use serde_json::json;

mod common;

use common::{KEY, client};

async fn emulator() -> EmulatorHandle {
    common::emulator(KEY).await
}

fn kinesis() -> EventTarget {
    EventTarget::Kinesis(EventTargetKinesis {
        auth: AwsAuth::Role(AwsRole {
            role_arn: "arn:aws:iam::123456789012:role/example".into(),
        }),
        stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/s".into(),
    })
}

const SOURCE_CREATED: &str = "ip_policy_created.v0";
const SOURCE_DELETED: &str = "ip_policy_deleted.v0";

async fn destination(client: &Client) -> String {
    client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap()
        .id
}

fn subscription_create(source_types: &[&str], destination_ids: &[&str]) -> EventSubscriptionCreate {
    EventSubscriptionCreate::new(
        source_types
            .iter()
            .map(|t| EventSourceReplace::new(*t))
            .collect(),
        destination_ids.iter().map(|id| (*id).to_owned()).collect(),
    )
}

#[tokio::test]
async fn every_subscription_operation() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let (first, second) = (destination(&client).await, destination(&client).await);

    let mut create = subscription_create(&[SOURCE_CREATED, SOURCE_DELETED], &[&first]);
    create.description = Some("first".into());
    create.metadata = Some(r#"{"owner":"test"}"#.into());
    let created = client.create::<EventSubscription>(&create).await.unwrap();
    assert!(created.id.starts_with("esb_"), "{}", created.id);
    assert_eq!(
        created.uri,
        format!("{}/event_subscriptions/{}", emulator.base_url(), created.id)
    );
    assert!(!created.created_at.is_empty());
    assert_eq!(created.description, "first");
    assert_eq!(created.metadata, r#"{"owner":"test"}"#);
    assert_eq!(created.source_types(), [SOURCE_CREATED, SOURCE_DELETED]);
    assert_eq!(created.destination_ids(), [first.as_str()]);
    assert_eq!(
        created.destinations[0].uri,
        format!("{}/event_destinations/{first}", emulator.base_url())
    );

    let fetched = client.get::<EventSubscription>(&created.id).await.unwrap();
    assert_eq!(fetched, created);

    let update = EventSubscriptionUpdate {
        description: Some("second".into()),
        sources: Some(vec![EventSourceReplace::new(SOURCE_DELETED)]),
        destination_ids: Some(vec![first.clone(), second.clone()]),
        ..Default::default()
    };
    let updated = client
        .update::<EventSubscription>(&created.id, &update)
        .await
        .unwrap();
    assert_eq!(updated.description, "second");
    assert_eq!(updated.metadata, created.metadata);
    assert_eq!(updated.source_types(), [SOURCE_DELETED]);
    assert_eq!(updated.destination_ids(), [first.clone(), second.clone()]);
    assert_eq!(
        client.get::<EventSubscription>(&created.id).await.unwrap(),
        updated
    );

    client
        .delete::<EventSubscription>(&created.id)
        .await
        .unwrap();
    let gone = client
        .get::<EventSubscription>(&created.id)
        .await
        .unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    let gone = client
        .delete::<EventSubscription>(&created.id)
        .await
        .unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
    assert_eq!(gone.api_error().unwrap().operation.resource, "subscription");

    // What went over the wire: exact bodies, no nulls.
    let requests = emulator.requests();
    let post = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/event_subscriptions")
        .unwrap();
    assert_eq!(
        post.body,
        Some(json!({
            "description": "first", "metadata": "{\"owner\":\"test\"}",
            "sources": [{"type": SOURCE_CREATED}, {"type": SOURCE_DELETED}],
            "destination_ids": [first],
        }))
    );
    let patch = requests.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(
        patch.body,
        Some(json!({
            "description": "second", "sources": [{"type": SOURCE_DELETED}],
            "destination_ids": [first, second],
        }))
    );
    for request in &requests {
        assert!(request.authorized);
        assert_eq!(request.ngrok_version.as_deref(), Some("2"));
        if request.body.is_some() {
            assert_eq!(request.content_type.as_deref(), Some("application/json"));
        }
    }
}

#[tokio::test]
async fn subscription_update_sends_only_set_fields() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let (first, second) = (destination(&client).await, destination(&client).await);
    let mut create = subscription_create(&[SOURCE_CREATED], &[&first]);
    create.description = Some("kept".into());
    create.metadata = Some("kept too".into());
    let created = client.create::<EventSubscription>(&create).await.unwrap();
    emulator.clear_requests();

    let updated = client
        .update::<EventSubscription>(
            &created.id,
            &EventSubscriptionUpdate {
                destination_ids: Some(vec![second.clone()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.destination_ids(), [second.as_str()]);
    assert_eq!(updated.description, "kept");
    assert_eq!(updated.metadata, "kept too");
    assert_eq!(updated.source_types(), [SOURCE_CREATED]);
    let requests = emulator.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, Some(json!({"destination_ids": [second]})));

    // An empty update changes nothing and sends `{}`.
    let unchanged = client
        .update::<EventSubscription>(&created.id, &EventSubscriptionUpdate::default())
        .await
        .unwrap();
    assert_eq!(unchanged, updated);
    assert_eq!(emulator.requests()[1].body, Some(json!({})));
}

#[tokio::test]
async fn subscription_list_follows_next_page_uri_over_200_objects() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let dest = destination(&client).await;
    let mut created = Vec::new();
    for i in 0..205 {
        let mut create = subscription_create(&[SOURCE_CREATED], &[&dest]);
        create.description = Some(format!("s{i}"));
        created.push(
            client
                .create::<EventSubscription>(&create)
                .await
                .unwrap()
                .id,
        );
    }
    emulator.clear_requests();
    let all = client.list::<EventSubscription>().await.unwrap().items;
    created.reverse(); // newest first
    assert_eq!(
        all.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        created
    );
    assert!(all.iter().all(|s| s.destination_ids() == [dest.clone()]));
    let pages = emulator.requests();
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|r| r.path == "/event_subscriptions"
        && r.query.as_deref().is_some_and(|q| q.contains("limit=100"))));

    let page = client
        .list_page::<EventSubscription>(None, 10)
        .await
        .unwrap();
    assert_eq!(page.listed.items.len(), 10);
    assert_eq!(
        page.uri,
        format!("{}/event_subscriptions", emulator.base_url())
    );
    assert!(page.next_page_uri.is_some());
    let last = page.listed.items.last().unwrap().id.clone();
    let older = client
        .list_page::<EventSubscription>(Some(&last), 100)
        .await
        .unwrap();
    assert_eq!(older.listed.items[0].id, created[10]);
    let tail = client
        .list_page::<EventSubscription>(Some(&created[200]), 100)
        .await
        .unwrap();
    assert_eq!(tail.listed.items.len(), 4);
    assert_eq!(tail.next_page_uri, None);
}

#[tokio::test]
async fn a_destination_in_use_is_deleted_only_after_its_subscription() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let dest = destination(&client).await;
    let subscription = client
        .create::<EventSubscription>(&subscription_create(&[SOURCE_CREATED], &[&dest]))
        .await
        .unwrap();

    let error = client.delete::<EventDestination>(&dest).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.error_code(), Some("ERR_NGROK_7802"));
    assert_eq!(error.error_code(), Some(codes::DESTINATION_IN_USE));
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert!(
        error
            .to_string()
            .starts_with("ngrok rejected the destination: ERR_NGROK_7802: "),
        "{error}"
    );
    assert_eq!(
        emulator.count("DELETE", "/event_destinations/{id}"),
        1,
        "400 is not retried"
    );
    client.get::<EventDestination>(&dest).await.unwrap();

    client
        .delete::<EventSubscription>(&subscription.id)
        .await
        .unwrap();
    client.delete::<EventDestination>(&dest).await.unwrap();
    assert!(
        client
            .get::<EventDestination>(&dest)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // A subscription may only name existing destinations.
    let error = client
        .create::<EventSubscription>(&subscription_create(&[SOURCE_CREATED], &[&dest]))
        .await
        .unwrap_err();
    assert_eq!(
        (error.status(), error.error_code()),
        (Some(400), Some(codes::UNKNOWN_DESTINATION))
    );
    assert!(
        error
            .to_string()
            .starts_with("ngrok rejected the subscription: "),
        "{error}"
    );
}

#[tokio::test]
async fn subscription_calls_retry_only_where_allowed() {
    let emulator = emulator().await;
    let client = client(&emulator); // max_retries = 3
    let dest = destination(&client).await;
    let created = client
        .create::<EventSubscription>(&subscription_create(&[SOURCE_CREATED], &[&dest]))
        .await
        .unwrap();
    common::fail_every_request(&emulator);
    emulator.clear_requests();

    assert!(
        client
            .get::<EventSubscription>(&created.id)
            .await
            .unwrap_err()
            .is_retryable()
    );
    let update = EventSubscriptionUpdate {
        description: Some("x".into()),
        ..Default::default()
    };
    assert!(
        client
            .update::<EventSubscription>(&created.id, &update)
            .await
            .is_err()
    );
    assert!(
        client
            .delete::<EventSubscription>(&created.id)
            .await
            .is_err()
    );
    assert!(client.list::<EventSubscription>().await.is_err());
    let error = client
        .create::<EventSubscription>(&subscription_create(&[SOURCE_CREATED], &[&dest]))
        .await
        .unwrap_err();
    assert!(
        error.is_retryable(),
        "retryable for the caller, not retried by the client"
    );

    let route = "/event_subscriptions/{id}";
    assert_eq!(emulator.count("GET", route), 4, "GET: 1 + 3 retries");
    assert_eq!(emulator.count("PATCH", route), 4, "PATCH: 1 + 3 retries");
    assert_eq!(emulator.count("DELETE", route), 4, "DELETE: 1 + 3 retries");
    assert_eq!(emulator.count("GET", "/event_subscriptions"), 4);
    assert_eq!(
        emulator.count("POST", "/event_subscriptions"),
        1,
        "POST: never retried after sending"
    );

    // A lost create answer is an unknown outcome; the subscription exists.
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(0.0),
            drop_after_create_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    let error = client
        .create::<EventSubscription>(&subscription_create(&[SOURCE_CREATED], &[&dest]))
        .await
        .unwrap_err();
    assert!(error.is_unknown_outcome(), "{error:?}");
    assert!(
        error.to_string().contains("the subscription may exist"),
        "{error}"
    );
    emulator
        .set_faults(&FaultsUpdate {
            drop_after_create_rate: Some(0.0),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        client
            .list::<EventSubscription>()
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

/// `sources[].filter` round trip: sent as set (never empty), read back by get and list, and
/// ngrok's refusal on an event type it does not filter reaches the caller with its code.
#[tokio::test]
async fn source_filters_round_trip() {
    const FILTER: &str = "ev.http.response.status_code >= 500";
    let emulator = emulator().await;
    let client = client(&emulator);
    let first = destination(&client).await;
    let create = EventSubscriptionCreate::new(
        vec![
            EventSourceReplace {
                fields: vec!["conn.client_ip".into()],
                filter: Some(FILTER.into()),
                ..EventSourceReplace::new("http_request_complete.v0")
            },
            EventSourceReplace {
                filter: Some(String::new()),
                ..EventSourceReplace::new(SOURCE_CREATED)
            },
        ],
        vec![first.clone()],
    );
    let created = client.create::<EventSubscription>(&create).await.unwrap();
    assert_eq!(created.sources[0].filter, FILTER);
    assert_eq!(created.sources[1].filter, "");
    assert!(created.sources.iter().all(|s| s.unmodeled.is_empty()));
    assert_eq!(
        client.get::<EventSubscription>(&created.id).await.unwrap(),
        created
    );
    let listed = client.list::<EventSubscription>().await.unwrap();
    assert_eq!(listed.items, std::slice::from_ref(&created));
    let post = emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/event_subscriptions")
        .unwrap();
    assert_eq!(
        post.body.unwrap()["sources"],
        json!([
            {"type": "http_request_complete.v0", "fields": ["conn.client_ip"], "filter": FILTER},
            {"type": SOURCE_CREATED}
        ])
    );

    let refused = client
        .update::<EventSubscription>(
            &created.id,
            &EventSubscriptionUpdate {
                sources: Some(vec![EventSourceReplace {
                    filter: Some(FILTER.into()),
                    ..EventSourceReplace::new(SOURCE_CREATED)
                }]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.error_code(), Some(codes::SOURCE_FILTER_NOT_ALLOWED));
    assert_eq!(refused.class(), ErrorClass::Terminal, "{refused:?}");
}

/// A source field this client does not model is kept on read (get and list), not dropped.
#[tokio::test]
async fn unknown_source_fields_are_kept_on_read() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let first = destination(&client).await;
    let created = client
        .create::<EventSubscription>(&subscription_create(&[SOURCE_CREATED], &[&first]))
        .await
        .unwrap();
    let mut raw = emulator.object(&created.id).unwrap();
    raw["uri"] = json!(created.uri);
    raw["destinations"] = json!([{"id": first, "uri": ""}]);
    raw["sources"] =
        json!([{"type": SOURCE_CREATED, "uri": "", "sampling_rate": 0.25, "future": null}]);
    let serde_json::Value::Object(raw) = raw else {
        unreachable!()
    };
    assert!(emulator.set_raw_object(&created.id, raw));
    let fetched = client.get::<EventSubscription>(&created.id).await.unwrap();
    let kept: Vec<_> = fetched.sources[0].unmodeled.iter().collect();
    assert_eq!(kept, [("sampling_rate", &json!(0.25))]);
    let listed = client.list::<EventSubscription>().await.unwrap();
    assert_eq!(listed.items, [fetched]);
}
