//! Leader election against a real kube-apiserver: handover on release, standby shutdown, and
//! lease loss.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use ngrok_events_operator::leader::{LeaderElection, LeaseFence};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const LEASE: &str = "ngrok-events-operator-leader";
/// Short, so that the test sees renewals; long enough that a takeover bounded well below it
/// can only come from the prompt release, not from the lease expiring.
const LEASE_DURATION: Duration = Duration::from_secs(6);
/// Bound on the handover after the leader stopped: a third of the lease duration.
const HANDOVER: Duration = Duration::from_secs(2);
/// Bound on single steps that take a few API calls.
const STEP: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Eq)]
enum Work {
    Started(&'static str),
    Stopped(&'static str),
}

struct Candidate {
    shutdown: CancellationToken,
    fence: LeaseFence,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Starts a candidate whose work reports on `report` when it starts and when its token is
/// cancelled.
fn candidate(
    client: &kube::Client,
    namespace: &str,
    identity: &'static str,
    report: &mpsc::UnboundedSender<Work>,
) -> Candidate {
    let shutdown = CancellationToken::new();
    let report = report.clone();
    let election = LeaderElection::new(client.clone(), namespace, LEASE, identity)
        .with_lease_duration(LEASE_DURATION);
    let fence = election.fence();
    let task =
        tokio::spawn(
            election.run_as_leader(shutdown.clone(), None, move |token| async move {
                report.send(Work::Started(identity)).unwrap();
                token.cancelled().await;
                report.send(Work::Stopped(identity)).unwrap();
                Ok(())
            }),
        );
    Candidate {
        shutdown,
        fence,
        task,
    }
}

async fn next(reports: &mut mpsc::UnboundedReceiver<Work>, within: Duration) -> Work {
    timeout(within, reports.recv())
        .await
        .expect("no work report in time")
        .expect("report channel open")
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get(LEASE).await.unwrap().spec?.holder_identity
}

async fn finished(task: JoinHandle<anyhow::Result<()>>, within: Duration) -> anyhow::Result<()> {
    timeout(within, task)
        .await
        .expect("run_as_leader returns in time")
        .expect("run_as_leader does not panic")
}

#[tokio::test]
async fn a_standby_takes_over_as_soon_as_the_leader_stops() {
    let client = testbed::client().await.unwrap();
    let namespace = testbed::namespace(&client, "leader-handover")
        .await
        .unwrap();
    let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
    let (report, mut reports) = mpsc::unbounded_channel();

    let first = candidate(&client, &namespace, "first", &report);
    assert_eq!(next(&mut reports, STEP).await, Work::Started("first"));
    assert_eq!(holder(&leases).await.as_deref(), Some("first"));
    assert!(first.fence.is_held(), "the leader's fence is open");

    // Two standbys. For longer than a lease duration, neither starts and the leader keeps
    // working: the leader renews, and the standbys respect the renewed lease.
    let second = candidate(&client, &namespace, "second", &report);
    let third = candidate(&client, &namespace, "third", &report);
    let quiet = timeout(LEASE_DURATION + Duration::from_secs(1), reports.recv()).await;
    assert!(
        quiet.is_err(),
        "unexpected report {quiet:?} while the leader holds the lease"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("first"));
    // The fence follows the renewals: after more than a lease duration it is still open, and
    // never further ahead than the lease duration less the margin.
    let until = first.fence.valid_until().expect("leading");
    assert!(until > std::time::Instant::now());
    assert!(until <= std::time::Instant::now() + LEASE_DURATION - first.fence.margin());
    assert!(!second.fence.is_held() && !third.fence.is_held());

    // A standby asked to shut down returns at once, without working.
    third.shutdown.cancel();
    finished(third.task, Duration::from_secs(3)).await.unwrap();

    // The leader stops: its work ends, it releases the lease, the standby starts promptly.
    let stopped_at = Instant::now();
    first.shutdown.cancel();
    assert_eq!(next(&mut reports, STEP).await, Work::Stopped("first"));
    finished(first.task, STEP).await.unwrap();
    assert!(!first.fence.is_held(), "closed once the work stopped");
    assert_eq!(next(&mut reports, STEP).await, Work::Started("second"));
    assert!(second.fence.is_held());
    let handover = stopped_at.elapsed();
    assert!(
        handover < HANDOVER,
        "handover took {handover:?}, the lease was not released promptly"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("second"));
    println!("handover after the leader stopped: {handover:?}");

    second.shutdown.cancel();
    assert_eq!(next(&mut reports, STEP).await, Work::Stopped("second"));
    finished(second.task, STEP).await.unwrap();
    assert_eq!(holder(&leases).await, None, "released on exit");
    assert!(
        reports.try_recv().is_err(),
        "the stopped standby never worked"
    );

    testbed::delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn losing_the_lease_cancels_the_work_and_fails() {
    let client = testbed::client().await.unwrap();
    let namespace = testbed::namespace(&client, "leader-loss").await.unwrap();
    let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
    let (report, mut reports) = mpsc::unbounded_channel();

    let leader = candidate(&client, &namespace, "leader", &report);
    assert_eq!(next(&mut reports, STEP).await, Work::Started("leader"));
    assert!(leader.fence.is_held());

    // Someone else takes the lease over, as a replica would after the leader's lease expired
    // during a network partition.
    let now = serde_json::to_value(MicroTime(Timestamp::now())).unwrap();
    let takeover = serde_json::json!({
        "spec": {
            "holderIdentity": "intruder",
            "acquireTime": now,
            "renewTime": now,
            "leaseDurationSeconds": 60,
        }
    });
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&takeover))
        .await
        .unwrap();

    // The leader notices at its next renewal at the latest, stops working and fails.
    let within = LEASE_DURATION + STEP;
    assert_eq!(next(&mut reports, within).await, Work::Stopped("leader"));
    assert!(
        !leader.fence.is_held(),
        "the fence closed when the lease was lost"
    );
    let error = finished(leader.task, STEP).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("lost the leader lease"),
        "{error:#}"
    );
    // Not the holder any more, so it did not release the lease.
    assert_eq!(holder(&leases).await.as_deref(), Some("intruder"));
    drop(leader.shutdown);

    testbed::delete_namespace(&client, &namespace).await;
}
