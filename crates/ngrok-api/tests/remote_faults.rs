//! The client against what ngrok (or something in front of it) might answer outside its
//! contract: an object of a shape this client does not know, a malformed body, a redirect, a
//! proxy's error page. And the account identity read from `GET /api_keys`.

use ngrok_api::types::*;
use ngrok_api::{Client, ErrorClass};
use ngrok_api_emulator::{Emulator, EmulatorHandle, ScriptedAnswer, Spoiled};
use serde_json::json;

mod common;

const KEY: &str = "remote-faults-key";
const DESTINATIONS: &str = "event_destinations";
const SUBSCRIPTIONS: &str = "event_subscriptions";

async fn emulator() -> EmulatorHandle {
    common::emulator(KEY).await
}

fn client_with(emulator: &EmulatorHandle, key: &str) -> Client {
    let mut config = common::quick_config(emulator, key);
    config.max_retries = 2;
    Client::new(config).unwrap()
}

fn client(emulator: &EmulatorHandle) -> Client {
    client_with(emulator, KEY)
}

fn kinesis() -> EventTarget {
    EventTarget::Kinesis(EventTargetKinesis {
        auth: AwsAuth::Role(AwsRole {
            role_arn: "arn:aws:iam::123456789012:role/example".into(),
        }),
        stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/s".into(),
    })
}

async fn destinations(client: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let create = EventDestinationCreate::new(kinesis());
        ids.push(client.create::<EventDestination>(&create).await.unwrap().id);
    }
    ids
}

/// One object with a target type ngrok added after this client, one whose target has a `null`
/// where a string belongs, one without a readable id, among 150 good ones over two pages:
/// the listing succeeds, the good ones are parsed, the bad ones are named by id.
#[tokio::test]
async fn one_unreadable_object_costs_only_itself() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let good = destinations(&client, 150).await;
    let splunk = emulator
        .insert_raw_object(
            KEY,
            DESTINATIONS,
            json!({
                "id": "ed_splunk", "uri": "u", "created_at": "2030-01-01T00:00:00Z",
                "description": null, "metadata": null, "format": "json",
                "target": {"kinesis": null, "splunk": {"hec_url": "https://splunk.example"}}
            }),
        )
        .unwrap();
    // One of the good ones, as ngrok might answer it with a null stream ARN.
    let mut nulled = emulator.object(&good[10]).unwrap();
    nulled["target"]["kinesis"]["stream_arn"] = serde_json::Value::Null;
    assert!(emulator.set_raw_object(&good[10], nulled.as_object().unwrap().clone()));
    emulator
        .insert_raw_object(KEY, DESTINATIONS, json!({"id": 42, "target": {}}))
        .unwrap();

    let listed = client.list::<EventDestination>().await.unwrap();
    let mut parsed: Vec<String> = listed.items.iter().map(|d| d.id.clone()).collect();
    parsed.sort();
    let mut expected: Vec<String> = good.iter().filter(|id| **id != good[10]).cloned().collect();
    expected.sort();
    assert_eq!(parsed, expected);
    let unreadable: Vec<(&str, &str)> = listed
        .unreadable
        .iter()
        .map(|u| (u.id.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(unreadable.len(), 2, "{unreadable:?}");
    let reason_of = |id: &str| unreadable.iter().find(|(i, _)| *i == id).unwrap().1;
    assert_eq!(reason_of(&splunk), "target: unknown target type splunk");
    let null_arn = reason_of(&good[10]);
    assert!(
        null_arn.starts_with("target") && null_arn.contains("null"),
        "{null_arn}"
    );
    assert_eq!(listed.without_id, 1);

    // A GET of the unknown shape is a distinct, transient error, not a refusal.
    let error = client.get::<EventDestination>(&splunk).await.unwrap_err();
    assert!(
        matches!(error, ngrok_api::Error::InvalidResponse { .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(!error.is_refusal() && error.is_transient());
    assert_eq!(error.reason(), "InvalidResponse");
    // It says where, as the listing does, and quotes no value of the body.
    let detail = |error: ngrok_api::Error| match error {
        ngrok_api::Error::InvalidResponse { detail, .. } => detail,
        other => panic!("{other:?}"),
    };
    let unknown = detail(error);
    assert!(
        unknown.starts_with("target: unknown target type splunk"),
        "{unknown}"
    );
    let error = client.get::<EventDestination>(&good[10]).await.unwrap_err();
    let null_arn = detail(error);
    assert!(
        null_arn.starts_with("target.kinesis.stream_arn: ") && !null_arn.contains("arn:aws"),
        "{null_arn}"
    );
}

/// A subscription with a `null` destination id is unreadable; the others are read.
#[tokio::test]
async fn an_unreadable_subscription_costs_only_itself() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let destination = destinations(&client, 1).await.remove(0);
    let create = EventSubscriptionCreate::new(
        vec![EventSourceReplace::new("ip_policy_created.v0")],
        vec![destination],
    );
    let good = client
        .create::<EventSubscription>(&create)
        .await
        .unwrap()
        .id;
    let bad = emulator
        .insert_raw_object(
            KEY,
            SUBSCRIPTIONS,
            json!({"id": "esb_bad", "uri": null, "created_at": null,
                   "sources": [{"type": null}], "destinations": []}),
        )
        .unwrap();
    let listed = client.list::<EventSubscription>().await.unwrap();
    assert_eq!(
        listed.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        [&good]
    );
    assert_eq!(listed.unreadable.len(), 1);
    assert_eq!(listed.unreadable[0].id, bad);
    assert!(
        listed.unreadable[0].reason.starts_with("sources[0].type: "),
        "{}",
        listed.unreadable[0].reason
    );
}

fn spoil(emulator: &EmulatorHandle, method: &str, path: &str, times: u32, answer: Spoiled) {
    emulator
        .script_answer(ScriptedAnswer {
            method: Some(method.into()),
            path: path.into(),
            times,
            answer,
        })
        .unwrap();
}

/// Malformed bodies, redirects and error pages that are not ngrok's are transient: never
/// refusals, so a caller retries them later instead of remembering the spec as refused.
#[tokio::test]
async fn answers_outside_the_contract_are_transient() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let id = destinations(&client, 1).await.remove(0);
    let one = "/event_destinations/{id}";

    spoil(&emulator, "GET", one, 1, Spoiled::MalformedBody);
    let error = client.get::<EventDestination>(&id).await.unwrap_err();
    assert!(
        matches!(error, ngrok_api::Error::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(error.is_transient() && !error.is_refusal(), "{error:?}");

    spoil(&emulator, "GET", one, 1, Spoiled::Redirect);
    let error = client.get::<EventDestination>(&id).await.unwrap_err();
    assert_eq!(
        (error.status(), error.class(), error.reason()),
        (Some(302), ErrorClass::Transient, "Redirected")
    );
    assert!(!error.is_refusal());

    for status in [400, 403, 404] {
        spoil(&emulator, "PATCH", one, 1, Spoiled::ErrorPage { status });
        let update = EventDestinationUpdate {
            description: Some("x".into()),
            ..Default::default()
        };
        let error = client
            .update::<EventDestination>(&id, &update)
            .await
            .unwrap_err();
        assert_eq!(
            (error.status(), error.class(), error.reason()),
            (Some(status), ErrorClass::Transient, "UnexpectedAnswer"),
            "{error}"
        );
        // A proxy's 404 page never reads as "the object is gone".
        assert!(!error.is_not_found() && !error.is_refusal());
    }

    // A listing whose page does not parse fails as a whole, transiently.
    spoil(
        &emulator,
        "GET",
        "/event_destinations",
        1,
        Spoiled::MalformedBody,
    );
    let error = client.list::<EventDestination>().await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");

    // The scripted answers are used up: everything works again.
    assert_eq!(client.get::<EventDestination>(&id).await.unwrap().id, id);
    assert_eq!(
        client.list::<EventDestination>().await.unwrap().items.len(),
        1
    );
}

/// A create answered 2xx with a body that does not parse did happen: its outcome is unknown
/// (look for it before creating again), and the object exists.
#[tokio::test]
async fn a_create_with_an_unreadable_answer_has_an_unknown_outcome() {
    let emulator = emulator().await;
    let client = client(&emulator);
    spoil(
        &emulator,
        "POST",
        "/event_destinations",
        1,
        Spoiled::MalformedBody,
    );
    let error = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnknownOutcome, "{error:?}");
    assert!(error.is_unknown_outcome() && !error.is_refusal());
    assert_eq!(emulator.destination_ids().len(), 1);
    assert_eq!(
        emulator.count("POST", "/event_destinations"),
        1,
        "not retried"
    );

    // A redirected create was not handled: transient, nothing stored.
    spoil(
        &emulator,
        "POST",
        "/event_destinations",
        1,
        Spoiled::Redirect,
    );
    let error = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(emulator.destination_ids().len(), 1);
}

/// `GET /api_keys` lists the ids of the account's keys, never a token; two keys of one
/// account share them, another account's are disjoint, and a revoked key leaves the list.
#[tokio::test]
async fn api_key_ids_tell_accounts_apart() {
    let emulator = Emulator::builder()
        .api_key("a-1")
        .second_key("a-1", "a-2")
        .account_key("b-1")
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap();
    let id = |key: &str| emulator.api_key_id(key).unwrap();
    let mut a = client_with(&emulator, "a-1")
        .list_api_key_ids()
        .await
        .unwrap();
    a.sort();
    let mut expected = vec![id("a-1"), id("a-2")];
    expected.sort();
    assert_eq!(a, expected);
    assert!(a.iter().all(|id| id.starts_with("ak_")));
    let mut a2 = client_with(&emulator, "a-2")
        .list_api_key_ids()
        .await
        .unwrap();
    a2.sort();
    assert_eq!(a2, a);
    let b = client_with(&emulator, "b-1")
        .list_api_key_ids()
        .await
        .unwrap();
    assert_eq!(b, [id("b-1")]);

    let listing = emulator
        .requests()
        .into_iter()
        .find(|r| r.path == "/api_keys")
        .unwrap();
    assert_eq!(listing.status, Some(200));

    emulator.revoke_key("a-1");
    assert_eq!(
        client_with(&emulator, "a-2")
            .list_api_key_ids()
            .await
            .unwrap(),
        [id("a-2")]
    );
    let error = client_with(&emulator, "a-1")
        .list_api_key_ids()
        .await
        .unwrap_err();
    assert!(error.is_refusal(), "{error:?}");
    assert_eq!(error.status(), Some(401));
}
