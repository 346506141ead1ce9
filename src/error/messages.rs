//! The messages of the variants whose wording depends on their data (who still uses a
//! destination, which fields would be dropped, which label a namespace needs), kept out of the
//! enum's attributes so that the variants stay readable. Each is called from a variant's
//! `#[error(...)]`.

/// The message of [`Error::DestinationInUse`](super::Error::DestinationInUse): who still names
/// the destination, when this namespace knows.
pub(super) fn in_use_message(subscriptions: &[String]) -> String {
    if subscriptions.is_empty() {
        return "ngrok refuses to delete the destination: an ngrok event subscription still names it (one this resource's namespace does not manage, or a subscription that was just changed); the deletion is retried and completes once no subscription names the destination".into();
    }
    format!(
        "still used by EventSubscription {}: the destination is deleted once they no longer name it (remove it from their destinationRefs or delete them)",
        subscriptions.join(", ")
    )
}

/// What to do about [`Error::RemoteFieldNotModeled`](super::Error::RemoteFieldNotModeled): a
/// filter can be named in the spec; a field the operator does not model can only be removed in
/// ngrok.
pub(super) fn remote_field_hint(fields: &[String]) -> &'static str {
    let filters_only = fields.iter().all(|f| f.ends_with("].filter"));
    let no_filter = !fields.iter().any(|f| f.ends_with("].filter"));
    if filters_only {
        "name it in the spec (spec.sources[].filter, as `ngrok-events-operator import` or observe mode shows it), or set filter: \"\" to remove it"
    } else if no_filter {
        "this operator does not model it: remove it in ngrok (dashboard or API), or keep the spec's sources as ngrok has them"
    } else {
        "name the filters in the spec (spec.sources[].filter, or filter: \"\" to remove one); the operator does not model the other fields: remove them in ngrok (dashboard or API)"
    }
}

/// The message of [`Error::AdoptionNotAllowed`](super::Error::AdoptionNotAllowed): which label
/// the namespace needs, from the selector (a `kubectl label` command when the selector is one
/// `key=value`).
pub(super) fn adoption_not_allowed(selector: Option<&str>, namespace: &str) -> String {
    let own_key = "or set spec.apiKeyRef to a Secret with your team's own ngrok API key (a team may always adopt from its own account)";
    let Some(selector) = selector else {
        return format!(
            "annotation {ADOPT}: no namespace may adopt ngrok objects with the operator's ngrok API key (the operator's --adoption-namespace-selector is not set): ask the platform team to select this namespace, {own_key}",
            ADOPT = crate::crd::ADOPT_ID_ANNOTATION
        );
    };
    let equality = selector
        .split_once("==")
        .or_else(|| selector.split_once('='))
        .filter(|(key, value)| {
            !key.is_empty() && !selector.contains([',', '!', '(', ' ']) && !value.contains('=')
        });
    let label = match equality {
        Some((key, value)) => format!(" (kubectl label namespace {namespace} {key}={value})"),
        None => String::new(),
    };
    format!(
        "annotation {ADOPT}: this namespace may not adopt ngrok objects with the operator's ngrok API key: ask the platform team to label the namespace to match --adoption-namespace-selector={selector}{label}, {own_key}",
        ADOPT = crate::crd::ADOPT_ID_ANNOTATION
    )
}
