//! The `EventSubscription` resource as ngrok's request, and the difference from what ngrok has.
//!
//! Sources and destinations are sets to ngrok: compared without order or repeats, sent in the
//! spec's order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ngrok_api::types::{
    EventSourceReplace, EventSubscription as Observed, EventSubscriptionCreate as Desired,
    EventSubscriptionUpdate,
};
use ngrok_api::unmodeled::UnmodeledFields;

use super::{check_chars, hash};
use crate::crd::{self, DestinationRef, EventSource, EventSubscriptionSpec};
use crate::error::Result;

/// The create request for a spec, given the ids its `destinationRefs` resolved to (in order).
pub fn desired(spec: &EventSubscriptionSpec, resolved_refs: &[String]) -> Result<Desired> {
    check_chars(
        "description",
        spec.description.as_deref(),
        crd::MAX_SUBSCRIPTION_DESCRIPTION_CHARS,
    )?;
    check_chars(
        "metadata",
        spec.metadata.as_deref(),
        crd::MAX_SUBSCRIPTION_METADATA_CHARS,
    )?;
    // ngrok documents no limit; the schema's counts characters, this one bytes.
    for source in &spec.sources {
        let bytes = source.filter.as_deref().map_or(0, str::len);
        if bytes > crd::MAX_SOURCE_FILTER_BYTES {
            return Err(crate::error::Error::InvalidSpec {
                field: "sources[].filter",
                problem: format!(
                    "of {} is {bytes} bytes long; the operator sends at most {} bytes",
                    source.type_,
                    crd::MAX_SOURCE_FILTER_BYTES
                ),
            });
        }
    }
    // In spec order without repeats; a set keeps this linear in the number of ids.
    let mut seen = std::collections::HashSet::new();
    let destination_ids: Vec<String> = resolved_refs
        .iter()
        .chain(&spec.destination_ids)
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect();
    Ok(Desired {
        description: spec.description.clone(),
        metadata: spec.metadata.clone(),
        sources: spec
            .sources
            .iter()
            .map(|s| EventSourceReplace {
                fields: s.fields.clone(),
                filter: s.filter.clone(),
                ..EventSourceReplace::new(s.type_.clone())
            })
            .collect(),
        destination_ids,
    })
}

/// What ngrok shows of a subscription, normalised as for destinations: unset and empty strings
/// alike, and sets as sets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct Visible {
    description: String,
    metadata: String,
    sources: BTreeSet<String>,
    /// The fields of each source that has some, as sets. Left out of the fingerprint when no
    /// source has fields, so fingerprints recorded before fields existed still match.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    fields: BTreeMap<String, BTreeSet<String>>,
    /// The filter of each source that has one. Left out of the fingerprint when no source has
    /// one, so fingerprints recorded before filters existed still match.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    filters: BTreeMap<String, String>,
    destination_ids: BTreeSet<String>,
}

/// Each source type with fields, and its fields as a set.
fn fields_of<'a>(
    sources: impl Iterator<Item = (&'a String, &'a Vec<String>)>,
) -> BTreeMap<String, BTreeSet<String>> {
    sources
        .filter(|(_, fields)| !fields.is_empty())
        .map(|(type_, fields)| (type_.clone(), fields.iter().cloned().collect()))
        .collect()
}

/// Each source type with a filter, and its filter (unset and empty alike: no filter).
fn filters_of<'a>(
    sources: impl Iterator<Item = (&'a String, &'a str)>,
) -> BTreeMap<String, String> {
    sources
        .filter(|(_, filter)| !filter.is_empty())
        .map(|(type_, filter)| (type_.clone(), filter.to_string()))
        .collect()
}

impl Visible {
    fn of_desired(desired: &Desired) -> Self {
        Self {
            description: desired.description.clone().unwrap_or_default(),
            metadata: desired.metadata.clone().unwrap_or_default(),
            sources: desired.sources.iter().map(|s| s.type_.clone()).collect(),
            fields: fields_of(desired.sources.iter().map(|s| (&s.type_, &s.fields))),
            filters: filters_of(
                desired
                    .sources
                    .iter()
                    .map(|s| (&s.type_, s.filter.as_deref().unwrap_or_default())),
            ),
            destination_ids: desired.destination_ids.iter().cloned().collect(),
        }
    }

    fn of_observed(observed: &Observed) -> Self {
        Self {
            description: observed.description.clone(),
            metadata: observed.metadata.clone(),
            sources: observed.source_types().into_iter().collect(),
            fields: fields_of(observed.sources.iter().map(|s| (&s.type_, &s.fields))),
            filters: filters_of(
                observed
                    .sources
                    .iter()
                    .map(|s| (&s.type_, s.filter.as_str())),
            ),
            destination_ids: observed.destination_ids().into_iter().collect(),
        }
    }

    /// Observe mode's view: the top-level fields as ngrok names them, then each source's
    /// `fields`, `filter` and (observed only) unmodelled fields under `sources[<type>]`.
    fn report(&self, unmodeled: &[(&String, &UnmodeledFields)]) -> serde_json::Value {
        let mut view = serde_json::json!({
            "description": self.description,
            "metadata": self.metadata,
            "sources": self.sources,
            "destination_ids": self.destination_ids,
        });
        let mut source = |type_: &str, key: &str, value: serde_json::Value| {
            view[format!("sources[{type_}]")][key] = value;
        };
        for (type_, fields) in &self.fields {
            source(type_, "fields", serde_json::json!(fields));
        }
        for (type_, filter) in &self.filters {
            source(type_, "filter", serde_json::json!(filter));
        }
        for (type_, fields) in unmodeled {
            for (name, value) in fields.iter() {
                source(type_, &safe_name(name), value.clone());
            }
        }
        view
    }
}

/// A field name from ngrok fit for a path in a message, status or comment: letters, digits,
/// `_`, `-` and `.`; anything else becomes `_`.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The fields of ngrok's sources that an update of `sources` would drop although the spec does
/// not name them, as `sources[<type>].<field>`: a filter set in ngrok on a source whose spec
/// leaves `filter` unset, and any field of a source this operator does not model. A source the
/// spec removes goes with all its fields, as asked.
pub fn unnamed_remote_fields(desired: &Desired, observed: &Observed) -> Vec<String> {
    let mut dropped = Vec::new();
    for have in &observed.sources {
        let Some(want) = desired.sources.iter().find(|s| s.type_ == have.type_) else {
            continue;
        };
        let type_ = safe_name(&have.type_);
        if !have.filter.is_empty() && want.filter.is_none() {
            dropped.push(format!("sources[{type_}].filter"));
        }
        for name in have.unmodeled.names() {
            dropped.push(format!("sources[{type_}].{}", safe_name(name)));
        }
    }
    dropped
}

/// The update that makes `observed` match `desired`: only the fields that differ, each list
/// whole (ngrok replaces lists).
pub fn changes(desired: &Desired, observed: &Observed) -> EventSubscriptionUpdate {
    let (want, have) = (Visible::of_desired(desired), Visible::of_observed(observed));
    EventSubscriptionUpdate {
        description: (want.description != have.description).then(|| want.description.clone()),
        metadata: (want.metadata != have.metadata).then(|| want.metadata.clone()),
        sources: (want.sources != have.sources
            || want.fields != have.fields
            || want.filters != have.filters)
            .then(|| desired.sources.clone()),
        destination_ids: (want.destination_ids != have.destination_ids)
            .then(|| desired.destination_ids.clone()),
    }
}

/// What a managing reconcile would change in `observed` to match `desired`, field by field
/// (observe mode). A subscription has no secrets.
/// ngrok's fields that the operator does not model are reported too (wanted: none), since a
/// managing reconcile refuses to drop them.
pub fn drift(desired: &Desired, observed: &Observed) -> Vec<crate::drift::FieldDifference> {
    let unmodeled: Vec<(&String, &UnmodeledFields)> = observed
        .sources
        .iter()
        .filter(|s| !s.unmodeled.is_empty())
        .map(|s| (&s.type_, &s.unmodeled))
        .collect();
    crate::drift::differences(
        &Visible::of_desired(desired).report(&[]),
        &Visible::of_observed(observed).report(&unmodeled),
        &[],
        crate::drift::SecretState::Sent,
    )
}

/// Hash of what a listing shows of a subscription, to recognise one whose create response was
/// lost. Equal for desired and observed exactly when [`changes`] would be empty.
pub fn fingerprint(desired: &Desired) -> String {
    hash(&Visible::of_desired(desired))
}

/// [`fingerprint`] of a subscription as ngrok shows it.
pub fn observed_fingerprint(observed: &Observed) -> String {
    hash(&Visible::of_observed(observed))
}

/// The spec that describes an existing subscription, for `import`. A destination that is
/// imported too (`names` maps its id to its resource name) becomes a `destinationRef`; any
/// other stays a raw id.
pub fn spec_from_remote(
    remote: &Observed,
    names: &HashMap<String, String>,
) -> EventSubscriptionSpec {
    let (mut refs, mut ids) = (Vec::new(), Vec::new());
    for id in remote.destination_ids() {
        match names.get(&id) {
            Some(name) => refs.push(DestinationRef { name: name.clone() }),
            None => ids.push(id),
        }
    }
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    EventSubscriptionSpec {
        description: non_empty(&remote.description),
        metadata: non_empty(&remote.metadata),
        sources: remote
            .sources
            .iter()
            .map(|s| EventSource {
                type_: s.type_.clone(),
                fields: s.fields.clone(),
                filter: (!s.filter.is_empty()).then(|| s.filter.clone()),
            })
            .collect(),
        destination_refs: refs,
        destination_ids: ids,
        deletion_policy: Default::default(),
        api_key_ref: None,
    }
}

#[cfg(test)]
mod tests {
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
}
