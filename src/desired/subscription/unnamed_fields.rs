//! What an update of a subscription's sources would drop in ngrok although the spec does not
//! name it: a filter set outside Kubernetes, or a field this operator does not model. The
//! reconciler refuses such an update (`RemoteFieldNotModeled`) rather than lose it silently.

use ngrok_api::types::{EventSubscription as Observed, EventSubscriptionCreate as Desired};

/// A field name from ngrok fit for a path in a message, status or comment: letters, digits,
/// `_`, `-` and `.`; anything else becomes `_`.
pub(super) fn safe_name(name: &str) -> String {
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
