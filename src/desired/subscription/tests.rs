use super::*;
use ngrok_api::types::{EventSource as ObservedSource, Ref};

fn spec(refs: &[&str], ids: &[&str]) -> EventSubscriptionSpec {
    EventSubscriptionSpec {
        description: Some("all HTTP traffic".into()),
        metadata: None,
        sources: ["http_request_complete.v0", "ip_policy_created.v0"]
            .iter()
            .map(|t| EventSource {
                type_: t.to_string(),
                fields: Vec::new(),
                filter: None,
            })
            .collect(),
        destination_refs: refs
            .iter()
            .map(|n| DestinationRef {
                name: n.to_string(),
            })
            .collect(),
        destination_ids: ids.iter().map(|s| s.to_string()).collect(),
        deletion_policy: Default::default(),
        api_key_ref: None,
    }
}

fn observed(desired: &Desired) -> Observed {
    Observed {
        id: "esb_1".into(),
        uri: String::new(),
        created_at: String::new(),
        metadata: desired.metadata.clone().unwrap_or_default(),
        description: desired.description.clone().unwrap_or_default(),
        // ngrok may answer in another order.
        sources: desired
            .sources
            .iter()
            .rev()
            .map(|s| ObservedSource {
                // ngrok may answer fields in another order too.
                fields: s.fields.iter().rev().cloned().collect(),
                filter: s.filter.clone().unwrap_or_default(),
                ..ObservedSource::new(s.type_.clone())
            })
            .collect(),
        destinations: desired
            .destination_ids
            .iter()
            .rev()
            .map(|id| Ref {
                id: id.clone(),
                uri: String::new(),
            })
            .collect(),
    }
}

#[test]
fn refs_come_first_then_ids_each_once() {
    let desired = desired(&spec(&["audit"], &["ed_b", "ed_a"]), &["ed_a".into()]).unwrap();
    assert_eq!(desired.destination_ids, ["ed_a", "ed_b"]);
    let body = serde_json::to_value(&desired).unwrap();
    assert_eq!(
        body["sources"],
        serde_json::json!([{"type": "http_request_complete.v0"}, {"type": "ip_policy_created.v0"}])
    );
    assert!(body.get("metadata").is_none());
}

#[test]
fn order_is_not_a_difference_and_fingerprints_agree() {
    let desired = desired(&spec(&["a", "b"], &[]), &["ed_1".into(), "ed_2".into()]).unwrap();
    let remote = observed(&desired);
    assert!(changes(&desired, &remote).is_empty());
    assert_eq!(fingerprint(&desired), observed_fingerprint(&remote));
}

#[test]
fn a_followed_destination_changes_only_destination_ids() {
    let before = desired(&spec(&["audit"], &[]), &["ed_old".into()]).unwrap();
    let after = desired(&spec(&["audit"], &[]), &["ed_new".into()]).unwrap();
    let update = changes(&after, &observed(&before));
    assert_eq!(
        update,
        EventSubscriptionUpdate {
            destination_ids: Some(vec!["ed_new".into()]),
            ..Default::default()
        }
    );
    assert_ne!(
        fingerprint(&after),
        observed_fingerprint(&observed(&before))
    );
}

/// ngrok's spec counts a subscription's limits in characters (a destination's in bytes).
#[test]
fn limits_are_counted_in_characters() {
    let mut at_limit = spec(&[], &["ed_1"]);
    at_limit.description = Some("é".repeat(255)); // 255 characters, 510 bytes
    at_limit.metadata = Some("€".repeat(4096)); // 4096 characters, 12288 bytes
    assert!(desired(&at_limit, &[]).is_ok());
    for (field, over) in [("description", 256), ("metadata", 4097)] {
        let mut long = spec(&[], &["ed_1"]);
        let text = Some("é".repeat(over));
        match field {
            "description" => long.description = text,
            _ => long.metadata = text,
        }
        let err = desired(&long, &[]).unwrap_err();
        assert_eq!(err.reason(), "InvalidSpec");
        assert_eq!(
            err.to_string(),
            format!(
                "spec.{field} is {over} characters long; ngrok allows at most {} characters",
                over - 1
            )
        );
    }
}

fn with_fields(fields: &[&str]) -> EventSubscriptionSpec {
    let mut spec = spec(&[], &["ed_1"]);
    spec.sources[0].fields = fields.iter().map(|f| f.to_string()).collect();
    spec
}

#[test]
fn fields_are_sent_as_written_and_compared_as_a_set() {
    let want = desired(
        &with_fields(&["conn.client_ip", "http.request.method"]),
        &[],
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&want).unwrap()["sources"],
        serde_json::json!([
            {"type": "http_request_complete.v0", "fields": ["conn.client_ip", "http.request.method"]},
            {"type": "ip_policy_created.v0"}
        ])
    );
    let remote = observed(&want);
    assert!(changes(&want, &remote).is_empty(), "order is no difference");
    assert_eq!(fingerprint(&want), observed_fingerprint(&remote));

    // A changed, a removed or a new field sends the sources again, fields included.
    for other in [
        &["conn.client_ip"][..],
        &[],
        &["conn.client_ip", "http.request.method", "conn.ts"],
    ] {
        let other = desired(&with_fields(other), &[]).unwrap();
        let update = changes(&other, &remote);
        assert_eq!(update.sources.as_ref(), Some(&other.sources), "{other:?}");
        assert_eq!(update.destination_ids, None);
        assert_ne!(fingerprint(&other), observed_fingerprint(&remote));
    }
    // Import and adoption carry them.
    let imported = spec_from_remote(&remote, &HashMap::new());
    assert_eq!(
        imported
            .sources
            .iter()
            .find(|s| !s.fields.is_empty())
            .unwrap()
            .fields,
        ["http.request.method", "conn.client_ip"]
    );
}

fn with_filter(filter: Option<&str>) -> EventSubscriptionSpec {
    let mut spec = spec(&[], &["ed_1"]);
    spec.sources[0].filter = filter.map(String::from);
    spec
}

const FILTER: &str = r#"ev.conn.server_name == "a.ngrok.dev""#;

#[test]
fn filters_are_sent_as_written_compared_and_imported() {
    let want = desired(&with_filter(Some(FILTER)), &[]).unwrap();
    assert_eq!(
        serde_json::to_value(&want).unwrap()["sources"],
        serde_json::json!([
            {"type": "http_request_complete.v0", "filter": FILTER},
            {"type": "ip_policy_created.v0"}
        ])
    );
    let remote = observed(&want);
    assert!(changes(&want, &remote).is_empty());
    assert!(drift(&want, &remote).is_empty());
    assert_eq!(fingerprint(&want), observed_fingerprint(&remote));
    assert!(unnamed_remote_fields(&want, &remote).is_empty());

    // A changed filter is one update of the sources, the new filter in it.
    let other = desired(&with_filter(Some("ev.conn.server_port == 80")), &[]).unwrap();
    let update = changes(&other, &remote);
    assert_eq!(
        update,
        EventSubscriptionUpdate {
            sources: Some(other.sources.clone()),
            ..Default::default()
        }
    );
    assert_ne!(fingerprint(&other), observed_fingerprint(&remote));
    assert!(unnamed_remote_fields(&other, &remote).is_empty(), "named");

    // Observe mode names the source and shows both filters.
    let report = drift(&other, &remote);
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0].path, "sources[http_request_complete.v0].filter");
    assert_eq!(
        report[0].wanted.as_deref(),
        Some("ev.conn.server_port == 80")
    );
    assert_eq!(report[0].actual.as_deref(), Some(FILTER));

    // `""` removes it, on purpose: no filter is sent, and nothing is unnamed.
    let remove = desired(&with_filter(Some("")), &[]).unwrap();
    assert_eq!(
        serde_json::to_value(changes(&remove, &remote)).unwrap()["sources"][0],
        serde_json::json!({"type": "http_request_complete.v0"})
    );
    assert!(unnamed_remote_fields(&remove, &remote).is_empty());

    // Import and adoption carry it.
    let imported = spec_from_remote(&remote, &HashMap::new());
    assert_eq!(imported.sources[1].filter.as_deref(), Some(FILTER));
    assert_eq!(imported.sources[0].filter, None);
    assert_eq!(desired(&imported, &[]).unwrap().sources, {
        let mut s = want.sources.clone();
        s.reverse();
        s
    });
}

/// A filter set in ngrok's dashboard that the spec does not name is a difference, but one
/// no update may make: it is named as unnamed, until the spec names it.
#[test]
fn a_remote_filter_the_spec_does_not_name_is_never_dropped_silently() {
    let unset = desired(&with_filter(None), &[]).unwrap();
    let remote = observed(&desired(&with_filter(Some(FILTER)), &[]).unwrap());
    assert!(changes(&unset, &remote).sources.is_some());
    assert_eq!(
        unnamed_remote_fields(&unset, &remote),
        ["sources[http_request_complete.v0].filter"]
    );
    // A source the spec removes goes with its filter, as asked.
    let mut without_source = with_filter(None);
    without_source.sources.remove(0);
    let without_source = desired(&without_source, &[]).unwrap();
    assert!(unnamed_remote_fields(&without_source, &remote).is_empty());
}

#[test]
fn unknown_source_fields_are_reported_and_never_dropped_silently() {
    let want = desired(&spec(&[], &["ed_1"]), &[]).unwrap();
    let mut remote = observed(&want);
    let http = remote
        .sources
        .iter_mut()
        .find(|s| s.type_ == "http_request_complete.v0")
        .unwrap();
    http.unmodeled
        .insert("sampling_rate", serde_json::json!(0.5));
    http.unmodeled
        .insert("we\nird\"key", serde_json::json!("x"));
    // Nothing the operator could change: no update, and no fingerprint change.
    assert!(changes(&want, &remote).is_empty());
    assert_eq!(fingerprint(&want), observed_fingerprint(&remote));
    // Observe mode reports them, names made safe.
    let report: Vec<(String, Option<String>, Option<String>)> = drift(&want, &remote)
        .into_iter()
        .map(|d| (d.path, d.wanted, d.actual))
        .collect();
    assert_eq!(
        report,
        [
            (
                "sources[http_request_complete.v0].sampling_rate".to_string(),
                None,
                Some("0.5".to_string())
            ),
            (
                "sources[http_request_complete.v0].we_ird_key".to_string(),
                None,
                Some("x".to_string())
            ),
        ]
    );
    // An update of the sources would drop them.
    assert_eq!(
        unnamed_remote_fields(&want, &remote),
        [
            "sources[http_request_complete.v0].sampling_rate",
            "sources[http_request_complete.v0].we_ird_key"
        ]
    );
}

#[test]
fn a_filter_longer_than_4096_bytes_is_refused_before_any_call() {
    assert!(desired(&with_filter(Some(&"é".repeat(2048))), &[]).is_ok());
    let err = desired(&with_filter(Some(&"é".repeat(2049))), &[]).unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert_eq!(
        err.to_string(),
        "spec.sources[].filter of http_request_complete.v0 is 4098 bytes long; the operator sends at most 4096 bytes"
    );
}

/// Subscriptions without fields keep the fingerprint they had before fields existed, so a
/// pending create recorded by an older operator is still recognised.
#[test]
fn fingerprints_without_fields_are_unchanged() {
    /// `Visible` as it was before fields existed.
    #[derive(serde::Serialize)]
    struct Before {
        description: &'static str,
        metadata: &'static str,
        sources: [&'static str; 2],
        destination_ids: [&'static str; 1],
    }
    let want = desired(&spec(&[], &["ed_1"]), &[]).unwrap();
    assert_eq!(
        fingerprint(&want),
        hash(&Before {
            description: "all HTTP traffic",
            metadata: "",
            sources: ["http_request_complete.v0", "ip_policy_created.v0"],
            destination_ids: ["ed_1"],
        })
    );
}

#[test]
fn import_names_imported_destinations_and_keeps_other_ids() {
    let remote = observed(&desired(&spec(&[], &["ed_1", "ed_2"]), &[]).unwrap());
    let names = HashMap::from([("ed_1".to_string(), "audit".to_string())]);
    let spec = spec_from_remote(&remote, &names);
    assert_eq!(
        spec.destination_refs,
        [DestinationRef {
            name: "audit".into()
        }]
    );
    assert_eq!(spec.destination_ids, ["ed_2"]);
    assert_eq!(spec.sources.len(), 2);
    assert_eq!(spec.description.as_deref(), Some("all HTTP traffic"));
    assert_eq!(spec.metadata, None);
}
