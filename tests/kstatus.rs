//! kstatus (what Flux's health checks, `kpt live status` and cli-utils' status poller use)
//! computes Current / InProgress / Failed / Terminating from the status the operator writes.
//! The rules below are those of `sigs.k8s.io/cli-utils/pkg/kstatus/status` (`Compute`) for a
//! resource without built-in rules, in their order:
//!
//! 1. `metadata.deletionTimestamp` set → Terminating;
//! 2. `status.observedGeneration` present and ≠ `metadata.generation` → InProgress;
//! 3. a condition `Reconciling=True` → InProgress; `Stalled=True` → Failed;
//! 4. a `Ready` condition: True → Current, False or Unknown → InProgress;
//! 5. otherwise Current.
//!
//! The inputs are the status fixtures recorded from real runs by `tests/deploy_fixtures.rs`.

use serde_json::Value;

#[derive(Debug, PartialEq, Eq)]
enum Status {
    Current,
    InProgress,
    Failed,
    Terminating,
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn compute(object: &Value) -> Status {
    if object["metadata"]["deletionTimestamp"].is_string() {
        return Status::Terminating;
    }
    if let (Some(generation), Some(observed)) = (
        object["metadata"]["generation"].as_i64(),
        object["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return Status::InProgress;
    }
    for c in object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if c["type"] == "Reconciling" && c["status"] == "True" {
            return Status::InProgress;
        }
        if c["type"] == "Stalled" && c["status"] == "True" {
            return Status::Failed;
        }
    }
    match condition(object, "Ready").map(|c| c["status"].as_str()) {
        Some(Some("True")) => Status::Current,
        Some(_) => Status::InProgress,
        None => Status::Current,
    }
}

/// The fixtures of both kinds: EventDestination's in `tests/fixtures/status`, EventSubscription's
/// in its `subscription` folder.
const FIXTURE_DIRS: [&str; 2] = [
    "tests/fixtures/status",
    "tests/fixtures/status/subscription",
];

fn fixture(dir: &str, name: &str) -> Option<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(dir)
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

#[test]
fn operator_status_maps_to_the_kstatus_states() {
    let expected = [
        ("ready", Status::Current),
        ("stalled", Status::Failed),
        ("creating", Status::InProgress),
        ("ngrok-unavailable", Status::InProgress),
        ("generation-behind", Status::InProgress),
        ("deleting", Status::Terminating),
        // Paused is Ready=False with neither Reconciling nor Stalled: kstatus falls through to
        // its Ready rule and reports InProgress. A Flux Kustomization with `wait: true` or a
        // health check on a paused resource therefore waits until its timeout (README).
        ("paused", Status::InProgress),
        // Observe mode with differences is the same: Ready=False, nothing under way.
        ("observing", Status::InProgress),
        // A subscription waiting for its destination.
        ("reconciling", Status::InProgress),
    ];
    let mut seen = 0;
    for dir in FIXTURE_DIRS {
        for (name, status) in &expected {
            if let Some(object) = fixture(dir, name) {
                assert_eq!(&compute(&object), status, "fixture {dir}/{name}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 15, "8 destination and 7 subscription fixtures");
}

#[test]
fn every_fixture_has_the_three_conditions_with_observed_generation() {
    let paths = FIXTURE_DIRS.iter().flat_map(|dir| {
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
    });
    for path in paths {
        let object: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for type_ in ["Ready", "Reconciling", "Stalled"] {
            let c = condition(&object, type_).unwrap_or_else(|| panic!("{type_} in {path:?}"));
            assert!(c["observedGeneration"].is_i64(), "{path:?}");
            assert!(
                c["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{path:?}"
            );
        }
        // Never both: kstatus would pick whichever comes first.
        let is_true = |t| condition(&object, t).is_some_and(|c| c["status"] == "True");
        assert!(!(is_true("Reconciling") && is_true("Stalled")), "{path:?}");
    }
}
