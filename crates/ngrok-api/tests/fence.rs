//! The fence against the emulator: what a fenced client refuses to send, which waits it
//! refuses to sit out, and what it cuts off at the deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ngrok_api::types::*;
use ngrok_api::{Client, ClientConfig, ErrorClass, Fence, FenceReason};
use ngrok_api_emulator::{EmulatorHandle, FaultsUpdate};

mod common;

const KEY: &str = "test-api-key";

/// A fence a test moves by hand: a deadline (or none) and a write window.
#[derive(Clone)]
struct Lease {
    deadline: Arc<Mutex<Option<Instant>>>,
    write_window: Duration,
}

impl Lease {
    fn held_for(duration: Duration) -> Self {
        Lease {
            deadline: Arc::new(Mutex::new(Some(Instant::now() + duration))),
            write_window: Duration::from_millis(500),
        }
    }

    fn set(&self, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap() = deadline;
    }
}

impl Fence for Lease {
    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap()
    }
    fn write_window(&self) -> Duration {
        self.write_window
    }
}

async fn emulator() -> EmulatorHandle {
    common::emulator(KEY).await
}

fn client(
    emulator: &EmulatorHandle,
    lease: &Lease,
    configure: impl FnOnce(&mut ClientConfig),
) -> Client {
    let mut config = common::quick_config(emulator, KEY);
    config.fence = Some(Arc::new(lease.clone()));
    configure(&mut config);
    Client::new(config).unwrap()
}

fn create() -> EventDestinationCreate {
    EventDestinationCreate::new(EventTarget::Kinesis(EventTargetKinesis {
        auth: AwsAuth::Role(AwsRole {
            role_arn: "arn:aws:iam::123456789012:role/example".into(),
        }),
        stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/s".into(),
    }))
}

#[tokio::test]
async fn nothing_is_sent_without_the_lease_and_no_write_without_its_window() {
    let emulator = emulator().await;
    let lease = Lease::held_for(Duration::from_secs(30));
    let client = client(&emulator, &lease, |_| {});
    let created = client.create::<EventDestination>(&create()).await.unwrap();

    lease.set(None);
    let error = client
        .get::<EventDestination>(&created.id)
        .await
        .unwrap_err();
    assert_eq!(error.fence_reason(), Some(FenceReason::NotLeader));
    assert_eq!(error.reason(), "NotLeader");
    assert_eq!(error.class(), ErrorClass::Retryable);

    // 200 ms left: enough for a read, not for a write (500 ms window).
    lease.set(Some(Instant::now() + Duration::from_millis(200)));
    client.get::<EventDestination>(&created.id).await.unwrap();
    let error = client
        .create::<EventDestination>(&create())
        .await
        .unwrap_err();
    assert_eq!(error.fence_reason(), Some(FenceReason::LeaseExpiring));
    assert_eq!(
        error.class(),
        ErrorClass::Retryable,
        "not sent: nothing to look for"
    );
    let error = client
        .delete::<EventDestination>(&created.id)
        .await
        .unwrap_err();
    assert_eq!(error.fence_reason(), Some(FenceReason::LeaseExpiring));

    assert_eq!(emulator.count("POST", "/event_destinations"), 1);
    assert_eq!(emulator.count("GET", "/event_destinations/{id}"), 1);
    assert_eq!(emulator.count("DELETE", "/event_destinations/{id}"), 0);
}

#[tokio::test]
async fn a_request_running_at_the_deadline_is_cut_off_unless_the_lease_was_renewed() {
    let emulator = emulator().await;
    let lease = Lease::held_for(Duration::from_secs(30));
    let client = client(&emulator, &lease, |_| {});
    let created = client.create::<EventDestination>(&create()).await.unwrap();
    emulator
        .set_faults(&FaultsUpdate {
            latency_ms: Some(1500),
            ..Default::default()
        })
        .unwrap();

    // The deadline comes while ngrok takes its time: a create's outcome is then unknown.
    lease.set(Some(Instant::now() + Duration::from_millis(700)));
    let started = Instant::now();
    let error = client
        .create::<EventDestination>(&create())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.class(), ErrorClass::UnknownOutcome, "{error}");
    assert_eq!(error.fence_reason(), Some(FenceReason::LeaseExpiring));
    lease.set(Some(Instant::now() + Duration::from_millis(700)));
    let error = client
        .get::<EventDestination>(&created.id)
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(error.fence_reason(), Some(FenceReason::LeaseExpiring));

    // A renewal while the request runs moves the deadline on: the answer is waited for.
    lease.set(Some(Instant::now() + Duration::from_millis(700)));
    let renewal = {
        let lease = lease.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            lease.set(Some(Instant::now() + Duration::from_secs(30)));
        })
    };
    client.get::<EventDestination>(&created.id).await.unwrap();
    renewal.await.unwrap();
}

#[tokio::test]
async fn waits_end_at_the_deadline_and_nothing_is_sent_after_them() {
    let emulator = emulator().await;

    // ngrok's Retry-After (about a minute once its rate limit is used up) is not sat out.
    let lease = Lease::held_for(Duration::from_secs(30));
    let rate_limited = client(&emulator, &lease, |_| {});
    emulator
        .set_faults(&FaultsUpdate {
            rate_limit_per_minute: Some(1),
            ..Default::default()
        })
        .unwrap();
    rate_limited.list::<EventDestination>().await.unwrap();
    lease.set(Some(Instant::now() + Duration::from_secs(1)));
    let started = Instant::now();
    let error = rate_limited.list::<EventDestination>().await.unwrap_err();
    assert_eq!(
        error.fence_reason(),
        Some(FenceReason::LeaseExpiring),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        emulator.count("GET", "/event_destinations"),
        2,
        "no retry after the deadline"
    );
    emulator.reset();

    // Nor is our own limiter's: 6 a minute, burst 1, so the create would wait 10 s.
    let limited = client(&emulator, &lease, |config| {
        config.rate_limit_per_minute = 6;
        config.rate_limit_burst = 1;
    });
    lease.set(Some(Instant::now() + Duration::from_secs(30)));
    limited.list::<EventDestination>().await.unwrap();
    lease.set(Some(Instant::now() + Duration::from_secs(1)));
    let started = Instant::now();
    let error = limited
        .create::<EventDestination>(&create())
        .await
        .unwrap_err();
    assert_eq!(error.fence_reason(), Some(FenceReason::LeaseExpiring));
    assert_eq!(
        error.class(),
        ErrorClass::Retryable,
        "not sent: nothing to look for"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emulator.count("POST", "/event_destinations"), 0);
}
