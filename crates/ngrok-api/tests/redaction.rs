//! Secrets (`api_key`, `aws_secret_access_key`, `client_secret`, the account API key) never
//! appear in Debug or Display output, errors, or log lines at any level.

use std::time::Duration;

use ngrok_api::types::*;
use ngrok_api::{Client, ClientConfig, Error, Secret};
use ngrok_api_emulator::{Emulator, EmulatorHandle, FaultsUpdate};
use test_support::Captured;

const ACCOUNT_KEY: &str = "account-key-SECRET-1";
const AWS_SECRET: &str = "aws-SECRET-2";
const DATADOG_KEY: &str = "datadog-SECRET-3";
const AZURE_SECRET: &str = "azure-SECRET-4";
const SECRETS: [&str; 4] = [ACCOUNT_KEY, AWS_SECRET, DATADOG_KEY, AZURE_SECRET];

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked into: {text}"
        );
    }
}

fn targets() -> Vec<EventTarget> {
    vec![
        EventTarget::Kinesis(EventTargetKinesis {
            auth: AwsAuth::Creds(AwsCredentials {
                aws_access_key_id: "AKIAEXAMPLE".into(),
                aws_secret_access_key: Some(Secret::new(AWS_SECRET)),
            }),
            stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
        }),
        EventTarget::Datadog(EventTargetDatadog {
            api_key: Some(Secret::new(DATADOG_KEY)),
            ddtags: None,
            service: None,
            ddsite: None,
        }),
        EventTarget::AzureLogsIngestion(EventTargetAzureLogsIngestion {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Some(Secret::new(AZURE_SECRET)),
            logs_ingestion_uri: "https://x.ingest.monitor.azure.com".into(),
            data_collection_rule_id: "dcr".into(),
            data_collection_stream_name: "Custom-s".into(),
        }),
    ]
}

fn client_for(emulator: &EmulatorHandle, key: &str) -> Client {
    let mut config = ClientConfig::new(Secret::new(key))
        .with_base_url(&emulator.base_url())
        .unwrap();
    config.rate_limit_per_minute = 0;
    config.max_retries = 1;
    config.min_backoff = Duration::from_millis(1);
    config.timeout = Duration::from_millis(300);
    Client::new(config).unwrap()
}

#[test]
fn debug_of_every_secret_bearing_type_is_redacted() {
    let config = ClientConfig::new(Secret::new(ACCOUNT_KEY));
    assert_no_secret(&format!("{config:?} {config:#?}"));
    assert_no_secret(&format!("{:?}", Client::new(config).unwrap()));
    for target in targets() {
        let create = EventDestinationCreate::new(target.clone());
        let update = EventDestinationUpdate {
            target: Some(target.clone()),
            ..Default::default()
        };
        assert_no_secret(&format!(
            "{target:?} {target:#?} {create:?} {create:#?} {update:?} {update:#?}"
        ));
        // The wire body does carry the secret: ngrok needs it.
        assert!(
            SECRETS
                .iter()
                .any(|s| serde_json::to_string(&create).unwrap().contains(s))
        );
    }
}

/// Every error a failing call can produce, formatted every way, with its source chain.
#[tokio::test]
async fn errors_of_failing_calls_carry_no_secret() {
    let emulator = Emulator::builder()
        .api_key(ACCOUNT_KEY)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap();
    let good = client_for(&emulator, ACCOUNT_KEY);
    let mut errors: Vec<Error> = Vec::new();

    // 401 with a wrong key that is itself a secret-looking value.
    errors.push(
        client_for(&emulator, AWS_SECRET)
            .get::<EventDestination>("ed_x")
            .await
            .unwrap_err(),
    );
    for target in targets() {
        // 400: invalid create carrying secrets.
        let mut create = EventDestinationCreate::new(target.clone());
        create.description = Some("d".repeat(300));
        errors.push(good.create::<EventDestination>(&create).await.unwrap_err());
        // 404: update of an unknown id carrying secrets.
        let update = EventDestinationUpdate {
            target: Some(target.clone()),
            ..Default::default()
        };
        errors.push(
            good.update::<EventDestination>("ed_missing", &update)
                .await
                .unwrap_err(),
        );
    }
    // 5xx, unknown outcome and timeout with secrets in the body.
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    errors.push(
        good.create::<EventDestination>(&EventDestinationCreate::new(targets()[0].clone()))
            .await
            .unwrap_err(),
    );
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(0.0),
            drop_after_create_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    errors.push(
        good.create::<EventDestination>(&EventDestinationCreate::new(targets()[1].clone()))
            .await
            .unwrap_err(),
    );
    emulator
        .set_faults(&FaultsUpdate {
            drop_after_create_rate: Some(0.0),
            latency_ms: Some(1000),
            ..Default::default()
        })
        .unwrap();
    errors.push(
        good.create::<EventDestination>(&EventDestinationCreate::new(targets()[2].clone()))
            .await
            .unwrap_err(),
    );
    errors.push(
        good.update::<EventDestination>(
            "ed_x",
            &EventDestinationUpdate {
                target: Some(targets()[2].clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );

    let reasons: Vec<&str> = errors.iter().map(Error::reason).collect();
    for expected in [
        "Unauthorized",
        "Rejected",
        "NotFound",
        "ServerError",
        "UnknownOutcome",
        "Timeout",
    ] {
        assert!(
            reasons.contains(&expected),
            "no {expected} among {reasons:?}"
        );
    }
    for error in &errors {
        let mut text = format!("{error} | {error:?} | {error:#?}");
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            text.push_str(&format!(" | {inner} | {inner:?}"));
            source = inner.source();
        }
        assert_no_secret(&text);
    }
}

/// Everything logged at TRACE, by the client, reqwest, hyper and the in-process emulator,
/// during creates with secrets, a retried failure and a rejected key.
#[tokio::test(flavor = "current_thread")]
async fn trace_logs_carry_no_secret() {
    let captured = Captured::new();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emulator = Emulator::builder()
        .api_key(ACCOUNT_KEY)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap();
    let client = client_for(&emulator, ACCOUNT_KEY);
    for target in targets() {
        let created = client
            .create::<EventDestination>(&EventDestinationCreate::new(target.clone()))
            .await
            .unwrap();
        let update = EventDestinationUpdate {
            target: Some(target),
            ..Default::default()
        };
        client
            .update::<EventDestination>(&created.id, &update)
            .await
            .unwrap();
    }
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    let _ = client
        .update::<EventDestination>(
            "ed_x",
            &EventDestinationUpdate {
                target: Some(targets()[0].clone()),
                ..Default::default()
            },
        )
        .await;
    let _ = client_for(&emulator, DATADOG_KEY)
        .get::<EventDestination>("ed_x")
        .await;

    let logs = captured.text();
    assert!(
        logs.contains("ngrok API request"),
        "the client did log: {logs}"
    );
    assert!(logs.contains("retrying ngrok API request"));
    assert_no_secret(&logs);
}
