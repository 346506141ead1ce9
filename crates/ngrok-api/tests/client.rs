//! The client against the emulator, on event destinations: every operation, paging, each
//! error class, where retries happen, the rate limiter and the unknown outcome of a lost
//! create. Event subscriptions are in `subscriptions.rs`.

use std::time::{Duration, Instant};

use ngrok_api::types::*;
use ngrok_api::{CLIENT_USER_AGENT, Client, Error, ErrorClass, Secret};
use ngrok_api_emulator::{Emulator, EmulatorHandle, FaultsUpdate, codes};
use serde_json::json;

mod common;

use common::{KEY, client, retrying_config as config};

async fn emulator() -> EmulatorHandle {
    common::emulator(KEY).await
}

fn role() -> AwsAuth {
    AwsAuth::Role(AwsRole {
        role_arn: "arn:aws:iam::123456789012:role/example".into(),
    })
}

fn kinesis() -> EventTarget {
    EventTarget::Kinesis(EventTargetKinesis {
        auth: role(),
        stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/s".into(),
    })
}

fn every_target() -> Vec<EventTarget> {
    let creds = AwsAuth::Creds(AwsCredentials {
        aws_access_key_id: "AKIAEXAMPLE".into(),
        aws_secret_access_key: Some(Secret::new("aws-secret")),
    });
    vec![
        kinesis(),
        EventTarget::Firehose(EventTargetFirehose {
            auth: creds.clone(),
            delivery_stream_arn: "arn:aws:firehose:us-east-2:1:deliverystream/d".into(),
        }),
        EventTarget::CloudwatchLogs(EventTargetCloudwatchLogs {
            auth: creds,
            log_group_arn: "arn:aws:logs:us-east-2:1:log-group:g".into(),
        }),
        EventTarget::Datadog(EventTargetDatadog {
            api_key: Some(Secret::new("dd-secret")),
            ddtags: Some("env:dev".into()),
            service: None,
            ddsite: Some("datadoghq.eu".into()),
        }),
        EventTarget::AzureLogsIngestion(EventTargetAzureLogsIngestion {
            tenant_id: "tenant".into(),
            client_id: "client".into(),
            client_secret: Some(Secret::new("az-secret")),
            logs_ingestion_uri: "https://x.ingest.monitor.azure.com".into(),
            data_collection_rule_id: "dcr-1".into(),
            data_collection_stream_name: "Custom-s".into(),
        }),
    ]
}

#[tokio::test]
async fn every_operation_on_every_target() {
    let emulator = emulator().await;
    let client = client(&emulator);
    for target in every_target() {
        let mut create = EventDestinationCreate::new(target.clone());
        create.description = Some("first".into());
        create.metadata = Some(r#"{"owner":"test"}"#.into());
        let created = client.create::<EventDestination>(&create).await.unwrap();
        assert!(created.id.starts_with("ed_"));
        assert_eq!(
            created.uri,
            format!("{}/event_destinations/{}", emulator.base_url(), created.id)
        );
        assert_eq!(created.format, "json");
        assert_eq!(created.target, target.without_secrets());

        let fetched = client.get::<EventDestination>(&created.id).await.unwrap();
        assert_eq!(fetched, created);

        let update = EventDestinationUpdate {
            description: Some("second".into()),
            ..Default::default()
        };
        let updated = client
            .update::<EventDestination>(&created.id, &update)
            .await
            .unwrap();
        assert_eq!(updated.description, "second");
        assert_eq!(updated.metadata, created.metadata);

        client
            .delete::<EventDestination>(&created.id)
            .await
            .unwrap();
        let gone = client
            .get::<EventDestination>(&created.id)
            .await
            .unwrap_err();
        assert!(gone.is_not_found(), "{gone:?}");
    }

    // What went over the wire: exact bodies, no nulls, the headers ngrok asks for.
    let requests = emulator.requests();
    let post = requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        post.body,
        Some(json!({
            "description": "first", "metadata": "{\"owner\":\"test\"}", "format": "json",
            "target": {"kinesis": {"auth": {"role": {"role_arn": "arn:aws:iam::123456789012:role/example"}},
                                    "stream_arn": "arn:aws:kinesis:us-east-2:123456789012:stream/s"}}
        }))
    );
    let patch = requests.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(patch.body, Some(json!({"description": "second"})));
    for request in &requests {
        assert!(request.authorized);
        assert_eq!(request.ngrok_version.as_deref(), Some("2"));
        assert_eq!(request.user_agent.as_deref(), Some(CLIENT_USER_AGENT));
        if request.body.is_some() {
            assert_eq!(request.content_type.as_deref(), Some("application/json"));
        }
    }
    assert!(CLIENT_USER_AGENT.starts_with("ngrok-api/"));
}

/// A program using the client names itself first, as ngrok's SDKs do.
#[tokio::test]
async fn the_product_comes_first_in_the_user_agent() {
    let emulator = emulator().await;
    let client =
        Client::new(config(&emulator).with_product("ngrok-events-operator/1.2.3")).unwrap();
    client.list::<EventDestination>().await.unwrap();
    assert_eq!(
        emulator.requests()[0].user_agent.as_deref(),
        Some(format!("ngrok-events-operator/1.2.3 {CLIENT_USER_AGENT}").as_str())
    );
}

#[tokio::test]
async fn list_follows_next_page_uri_over_250_objects() {
    let emulator = emulator().await;
    let client = client(&emulator);
    for i in 0..260 {
        let mut create = EventDestinationCreate::new(kinesis());
        create.description = Some(format!("d{i}"));
        client.create::<EventDestination>(&create).await.unwrap();
    }
    emulator.clear_requests();
    let all = client.list::<EventDestination>().await.unwrap().items;
    assert_eq!(all.len(), 260);
    let mut expected = emulator.destination_ids();
    expected.reverse(); // newest first
    assert_eq!(
        all.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        expected
    );
    let pages = emulator.requests();
    assert_eq!(pages.len(), 3);
    assert!(
        pages
            .iter()
            .all(|r| r.query.as_deref().is_some_and(|q| q.contains("limit=100")))
    );

    let page = client
        .list_page::<EventDestination>(None, 10)
        .await
        .unwrap();
    assert_eq!(page.listed.items.len(), 10);
    assert!(page.next_page_uri.is_some());
}

#[tokio::test]
async fn each_error_class_keeps_status_code_message_and_operation() {
    let emulator = emulator().await;
    let client = client(&emulator);

    // Terminal: the request is wrong.
    let mut create = EventDestinationCreate::new(kinesis());
    create.description = Some("x".repeat(256));
    let error = client
        .create::<EventDestination>(&create)
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert_eq!(error.reason(), "Rejected");
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.error_code(), Some(codes::DESCRIPTION_TOO_LONG));
    let operation_id = error.operation_id().unwrap().to_owned();
    assert!(operation_id.starts_with("op_"));
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "ngrok rejected the destination: {}: ",
            codes::DESCRIPTION_TOO_LONG
        )) && text.ends_with(&format!("(operation {operation_id})")),
        "{text}"
    );

    // Terminal: the key is wrong.
    let mut wrong_key = config(&emulator);
    wrong_key.api_key = Secret::new("wrong");
    let error = Client::new(wrong_key)
        .unwrap()
        .get::<EventDestination>("ed_x")
        .await
        .unwrap_err();
    assert_eq!(
        (error.class(), error.status(), error.reason()),
        (ErrorClass::Terminal, Some(401), "Unauthorized")
    );

    // Not found.
    let error = client
        .get::<EventDestination>("ed_doesnotexist")
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(error.error_code(), Some(codes::NOT_FOUND));

    // Retryable: 5xx.
    common::fail_every_request(&emulator);
    let error = client.get::<EventDestination>("ed_x").await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(error.reason(), "ServerError");

    // Retryable: 429 ERR_NGROK_226.
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(0.0),
            rate_limit_per_minute: Some(1),
            ..Default::default()
        })
        .unwrap();
    let mut no_retry = config(&emulator);
    no_retry.max_retries = 0;
    let impatient = Client::new(no_retry).unwrap();
    let _ = impatient.list_page::<EventDestination>(None, 1).await;
    let error = impatient
        .list_page::<EventDestination>(None, 1)
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(
        (error.status(), error.error_code(), error.reason()),
        (Some(429), Some("ERR_NGROK_226"), "RateLimited")
    );
    assert!(error.retry_after().is_some_and(|d| d > Duration::ZERO));

    // Retryable: nothing listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut unreachable = config(&emulator);
    unreachable.base_url = format!("http://{closed}").parse().unwrap();
    unreachable.max_retries = 1;
    let error = Client::new(unreachable)
        .unwrap()
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());

    // Retryable: a read that timed out.
    emulator
        .set_faults(&FaultsUpdate {
            rate_limit_per_minute: Some(0),
            latency_ms: Some(400),
            ..Default::default()
        })
        .unwrap();
    let mut hasty = config(&emulator);
    hasty.timeout = Duration::from_millis(100);
    hasty.max_retries = 0;
    let error = Client::new(hasty)
        .unwrap()
        .get::<EventDestination>("ed_x")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn retries_only_where_allowed() {
    let emulator = emulator().await;
    let client = client(&emulator); // max_retries = 3
    let created = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap();
    common::fail_every_request(&emulator);
    emulator.clear_requests();

    assert!(
        client
            .get::<EventDestination>(&created.id)
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert!(
        client
            .update::<EventDestination>(
                &created.id,
                &EventDestinationUpdate {
                    description: Some("x".into()),
                    ..Default::default()
                }
            )
            .await
            .is_err()
    );
    assert!(
        client
            .delete::<EventDestination>(&created.id)
            .await
            .is_err()
    );
    assert!(client.list::<EventDestination>().await.is_err());
    let error = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert!(
        error.is_retryable(),
        "a 5xx is retryable for the caller, but not retried by the client"
    );

    let route = "/event_destinations/{id}";
    assert_eq!(emulator.count("GET", route), 4, "GET: 1 + 3 retries");
    assert_eq!(emulator.count("PATCH", route), 4, "PATCH: 1 + 3 retries");
    assert_eq!(emulator.count("DELETE", route), 4, "DELETE: 1 + 3 retries");
    assert_eq!(
        emulator.count("GET", "/event_destinations"),
        4,
        "list: 1 + 3 retries"
    );
    assert_eq!(
        emulator.count("POST", "/event_destinations"),
        1,
        "POST: never retried after sending"
    );

    // Terminal errors are not retried either.
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(0.0),
            ..Default::default()
        })
        .unwrap();
    emulator.clear_requests();
    assert!(
        client
            .get::<EventDestination>("ed_doesnotexist")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(emulator.count("GET", route), 1);

    // A 429 says nothing was done, so even a create is retried, honouring Retry-After; a
    // Retry-After beyond `max_retry_after` ends the retries at once.
    emulator
        .set_faults(&FaultsUpdate {
            rate_limit_per_minute: Some(1),
            ..Default::default()
        })
        .unwrap();
    emulator.clear_requests();
    let mut config = config(&emulator);
    config.max_retry_after = Duration::from_secs(1);
    let client = Client::new(config).unwrap();
    client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap();
    let error = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert_eq!(emulator.count("POST", "/event_destinations"), 2);
}

#[tokio::test]
async fn a_lost_create_answer_is_an_unknown_outcome_and_not_retried() {
    let emulator = emulator().await;
    let client = client(&emulator);
    emulator
        .set_faults(&FaultsUpdate {
            drop_after_create_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    let error = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::UnknownOutcome { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::UnknownOutcome);
    assert_eq!(error.reason(), "UnknownOutcome");
    assert!(!error.is_retryable());
    assert_eq!(emulator.count("POST", "/event_destinations"), 1);
    // It was created: the reconciler finds it instead of creating a twin.
    emulator
        .set_faults(&FaultsUpdate {
            drop_after_create_rate: Some(0.0),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        client.list::<EventDestination>().await.unwrap().items.len(),
        1
    );

    // A create that times out is just as unknown.
    emulator
        .set_faults(&FaultsUpdate {
            latency_ms: Some(400),
            ..Default::default()
        })
        .unwrap();
    let mut hasty = config(&emulator);
    hasty.timeout = Duration::from_millis(100);
    let error = Client::new(hasty)
        .unwrap()
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap_err();
    assert!(error.is_unknown_outcome(), "{error:?}");
    assert_eq!(emulator.count("POST", "/event_destinations"), 2);
}

#[tokio::test]
async fn out_of_band_changes_are_seen() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let created = client
        .create::<EventDestination>(&EventDestinationCreate::new(kinesis()))
        .await
        .unwrap();
    emulator
        .patch_object(
            &created.id,
            &json!({"description": "edited in the dashboard"}),
        )
        .unwrap();
    assert_eq!(
        client
            .get::<EventDestination>(&created.id)
            .await
            .unwrap()
            .description,
        "edited in the dashboard"
    );
    assert!(emulator.delete_object(&created.id));
    assert!(
        client
            .get::<EventDestination>(&created.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// 300 creates at once. The emulator enforces 1200 per rolling minute; the client limiter
/// allows 1000 per minute with a burst of 10, so at most 1010 in any minute: no 429, and the
/// calls take at least (300 - 10) × 60 ms = 17.4 s. (ngrok's real numbers are 120 and
/// 100 + 10, the same ratio; at those the test would take 3 minutes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_300_stays_inside_the_limiter_budget() {
    let emulator = Emulator::builder()
        .api_key(KEY)
        .rate_limit_per_minute(1200)
        .spawn()
        .await
        .unwrap();
    let mut config = config(&emulator);
    config.rate_limit_per_minute = 1000;
    config.rate_limit_burst = 10;
    config.max_retries = 0; // a 429 would surface as an error
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..300)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut create = EventDestinationCreate::new(kinesis());
                create.description = Some(format!("burst {i}"));
                client.create::<EventDestination>(&create).await
            })
        })
        .collect();
    for call in calls {
        tokio::time::timeout(Duration::from_secs(120), call)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let elapsed = started.elapsed();
    let posts = emulator.count("POST", "/event_destinations");
    let rate_limited = emulator
        .requests()
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    println!("300-call burst: {posts} requests, {rate_limited} answered 429, {elapsed:?}");
    assert_eq!(posts, 300);
    assert_eq!(rate_limited, 0);
    assert_eq!(emulator.destination_ids().len(), 300);
    assert!(
        elapsed >= Duration::from_millis(17_000),
        "the limiter spread the calls: {elapsed:?}"
    );
}
