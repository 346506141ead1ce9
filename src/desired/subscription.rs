//! The `EventSubscription` resource as ngrok's request, and the difference from what ngrok has.
//!
//! Sources and destinations are sets to ngrok: compared without order or repeats, sent in the
//! spec's order.
//!
//! The check that an update would not drop what ngrok holds and the spec does not name is in
//! `unnamed_fields`: it is a guard on the update, not part of the mapping, and the one place
//! that reads the fields this operator does not model.

#[cfg(test)]
mod tests;
mod unnamed_fields;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ngrok_api::types::{
    EventSourceReplace, EventSubscription as Observed, EventSubscriptionCreate as Desired,
    EventSubscriptionUpdate,
};
use ngrok_api::unmodeled::UnmodeledFields;

use super::{check_chars, hash};
use crate::crd::{self, DestinationRef, EventSource, EventSubscriptionSpec};
use crate::error::Result;
use unnamed_fields::safe_name;
pub use unnamed_fields::unnamed_remote_fields;

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
