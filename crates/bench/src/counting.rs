//! Counting what the operator did: ngrok calls by method and answer, from the emulator's request
//! log ([`NgrokCalls`]); the operator's Kubernetes requests by verb and written resource, from the
//! API server's audit log between two byte offsets ([`Audit`], [`KubeRequests`]); and samples of
//! the operator's Prometheus text (a metric family's sum, the `time_to_first_ready_seconds`
//! histogram).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::Result;
use ngrok_api_emulator::RecordedRequest;
use serde::Serialize;
use serde_json::Value;

/// ngrok calls by method (and list vs. single GET), from the emulator's request log.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NgrokCalls {
    pub total: u64,
    pub post: u64,
    pub patch: u64,
    pub delete: u64,
    /// `GET /event_destinations/{id}`.
    pub get: u64,
    /// `GET /event_destinations` (one per page).
    pub list: u64,
    pub other: u64,
    pub status_429: u64,
    pub status_5xx: u64,
    /// 4xx other than 429: refusals.
    pub status_4xx: u64,
    /// Connections closed without an answer (the emulator's dropped creates).
    pub dropped: u64,
}

impl NgrokCalls {
    pub(crate) fn of(requests: &[RecordedRequest]) -> Self {
        let mut calls = Self::default();
        for r in requests {
            calls.total += 1;
            match (r.method.as_str(), r.route.as_str()) {
                ("POST", _) => calls.post += 1,
                ("PATCH", _) => calls.patch += 1,
                ("DELETE", _) => calls.delete += 1,
                ("GET", "/event_destinations") => calls.list += 1,
                ("GET", route) if route.starts_with("/event_destinations/") => calls.get += 1,
                _ => calls.other += 1,
            }
            match r.status {
                Some(429) => calls.status_429 += 1,
                Some(s) if s >= 500 => calls.status_5xx += 1,
                Some(s) if s >= 400 => calls.status_4xx += 1,
                Some(_) => {}
                None => calls.dropped += 1,
            }
        }
        calls
    }

    /// Calls that change ngrok.
    pub fn writes(&self) -> u64 {
        self.post + self.patch + self.delete
    }

    /// Calls that read ngrok.
    pub fn reads(&self) -> u64 {
        self.get + self.list
    }
}

/// Kubernetes requests of the operator, from the audit log.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KubeRequests {
    pub total: u64,
    pub by_verb: BTreeMap<String, u64>,
    /// create/update/patch/delete, Events not counted.
    pub writes: u64,
    /// Writes by `resource[/subresource]`, Events not counted.
    pub writes_by_resource: BTreeMap<String, u64>,
    /// Writes of `eventdestinations/status`.
    pub status_writes: u64,
    /// Writes of `events` (not counted in `writes`).
    pub event_writes: u64,
}

/// The audit log of the `operator` user: counted between two byte offsets.
pub(crate) struct Audit {
    path: PathBuf,
}

impl Audit {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub(crate) fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Requests whose audit lines lie at or after `from` (a [`Audit::len`]); complete lines
    /// only.
    pub(crate) fn since(&self, from: u64) -> Result<KubeRequests> {
        let mut text = String::new();
        match std::fs::File::open(&self.path) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(from))?;
                file.read_to_string(&mut text)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut requests = KubeRequests::default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let verb = event["verb"].as_str().unwrap_or_default();
            let stage = event["stage"].as_str().unwrap_or_default();
            // A watch is logged when it starts and when it ends; anything else when answered.
            let counted = match verb {
                "watch" => stage == "ResponseStarted",
                _ => stage == "ResponseComplete",
            };
            if !counted || event["user"]["username"] != testbed::servers::OPERATOR_USER {
                continue;
            }
            requests.total += 1;
            *requests.by_verb.entry(verb.to_string()).or_default() += 1;
            if matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            ) {
                let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
                let subresource = event["objectRef"]["subresource"].as_str();
                if resource == "events" {
                    requests.event_writes += 1;
                    continue;
                }
                requests.writes += 1;
                let key = match subresource {
                    Some(sub) => format!("{resource}/{sub}"),
                    None => resource.to_string(),
                };
                if resource == "eventdestinations" && subresource == Some("status") {
                    requests.status_writes += 1;
                }
                *requests.writes_by_resource.entry(key).or_default() += 1;
            }
        }
        Ok(requests)
    }
}

/// The sum of every sample named `name` (all label sets).
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    test_support::metrics::sum(text, name)
}

/// The operator's own `time_to_first_ready_seconds` histogram (from `creationTimestamp`, which
/// has whole-second precision: a coarse cross-check of the watch's numbers).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FirstReadyHistogram {
    pub count: u64,
    pub mean_s: f64,
    /// Upper bound of the bucket holding the median / 99th percentile.
    pub p50_le_s: f64,
    pub p99_le_s: f64,
}

pub(crate) fn first_ready_histogram(text: &str) -> FirstReadyHistogram {
    let histogram = test_support::metrics::parse(text)
        .histogram("ngrok_events_operator_time_to_first_ready_seconds", &[]);
    FirstReadyHistogram {
        count: histogram.count as u64,
        mean_s: if histogram.count > 0.0 {
            histogram.sum / histogram.count
        } else {
            0.0
        },
        p50_le_s: histogram.quantile_bound(0.5).unwrap_or(0.0),
        p99_le_s: histogram.quantile_bound(0.99).unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_histograms() {
        let text = "# HELP ngrok_events_operator_reconciles x.\n\
# TYPE ngrok_events_operator_reconciles counter\n\
ngrok_events_operator_reconciles_total{kind=\"A\",result=\"success\"} 3\n\
ngrok_events_operator_reconciles_total{kind=\"A\",result=\"x\"} 2\n\
# TYPE ngrok_events_operator_time_to_first_ready_seconds histogram\n\
# UNIT ngrok_events_operator_time_to_first_ready_seconds seconds\n\
ngrok_events_operator_time_to_first_ready_seconds_sum{kind=\"A\"} 3.0\n\
ngrok_events_operator_time_to_first_ready_seconds_count{kind=\"A\"} 4\n\
ngrok_events_operator_time_to_first_ready_seconds_bucket{le=\"0.5\",kind=\"A\"} 1\n\
ngrok_events_operator_time_to_first_ready_seconds_bucket{le=\"1.0\",kind=\"A\"} 3\n\
ngrok_events_operator_time_to_first_ready_seconds_bucket{le=\"+Inf\",kind=\"A\"} 4\n\
# EOF\n";
        assert_eq!(
            metric_sum(text, "ngrok_events_operator_reconciles_total"),
            5.0
        );
        let h = first_ready_histogram(text);
        assert_eq!(h.count, 4);
        assert_eq!(h.p50_le_s, 1.0);
        assert!(h.p99_le_s.is_infinite());
    }
}
