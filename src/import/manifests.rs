//! The YAML stream of `import`: one `EventDestination` or `EventSubscription` per selected
//! ngrok object, each adopting it, with comments that say which Secrets to create and what the
//! spec cannot hold. Pure: a function of what ngrok returned.

use std::collections::{HashMap, HashSet};

use kube::api::ObjectMeta;
use ngrok_api::types::{EventDestination as Remote, EventSubscription as RemoteSubscription};

use crate::crd::{ADOPT_ID_ANNOTATION, EventDestination, EventSubscription, MANAGEMENT_ANNOTATION};
use crate::desired;
use crate::secrets::CREDENTIALS_LABEL;

#[cfg(test)]
mod tests;

/// The YAML stream for `remotes` and `subscriptions` (pure, for tests). A subscription names
/// the destinations imported with it by `destinationRefs`.
pub fn render(
    remotes: &[Remote],
    subscriptions: &[RemoteSubscription],
    namespace: &str,
    observe: bool,
) -> String {
    let mut taken = HashSet::new();
    let mut names = HashMap::new();
    let mut out = format!(
        "# {} ngrok event destination(s) and {} subscription(s), imported by ngrok-events-operator.\n\
         # Each resource adopts its ngrok object (annotation {ADOPT_ID_ANNOTATION}): applying them\n\
         # creates nothing in ngrok. ngrok never returns secret values: create the Secrets named\n\
         # in the comments before applying, or the resources wait with reason SecretNotFound.\n",
        remotes.len(),
        subscriptions.len()
    );
    for remote in remotes {
        let name = unique_name(&remote.description, &remote.id, &mut taken);
        names.insert(remote.id.clone(), name.clone());
        let secret_name = format!("{name}-credentials");
        let (spec, keys) = desired::spec_from_remote(remote, &secret_name);
        let mut resource = EventDestination::new(&name, spec);
        resource.metadata = adopting(&name, namespace, &remote.id, observe);
        out.push_str("---\n");
        out.push_str(&origin_comment(&remote.id, &remote.created_at));
        if !keys.is_empty() {
            let literals: Vec<String> = keys
                .iter()
                .map(|k| {
                    let value = k
                        .known_value
                        .as_deref()
                        .filter(|v| is_access_key_id(v))
                        .unwrap_or("<fill in>");
                    format!("--from-literal={}={value}", k.key)
                })
                .collect();
            out.push_str(&format!(
                "# kubectl create secret generic {secret_name} -n {ns} {}\n\
                 # kubectl label secret {secret_name} -n {ns} {CREDENTIALS_LABEL}=true\n",
                literals.join(" "),
                ns = comment_safe(namespace),
            ));
        }
        out.push_str(&to_yaml(&resource));
    }
    let mut taken = HashSet::new();
    for remote in subscriptions {
        let name = unique_name(&remote.description, &remote.id, &mut taken);
        let mut resource = EventSubscription::new(
            &name,
            desired::subscription::spec_from_remote(remote, &names),
        );
        resource.metadata = adopting(&name, namespace, &remote.id, observe);
        out.push_str("---\n");
        out.push_str(&origin_comment(&remote.id, &remote.created_at));
        out.push_str(&unmodeled_comment(remote));
        out.push_str(&to_yaml(&resource));
    }
    out
}

/// One comment line per field of the subscription's sources that the spec cannot hold (the
/// operator does not model it): the resource will not drop it, so it refuses to update the
/// sources while it is there. Names only, never values.
fn unmodeled_comment(remote: &RemoteSubscription) -> String {
    let mut out = String::new();
    for source in &remote.sources {
        for name in source.unmodeled.names() {
            out.push_str(&format!(
                "# not in the spec: source {} has field {} in ngrok, which this operator does not model; it is kept, and an update of the sources that would drop it is refused (RemoteFieldNotModeled)\n",
                comment_safe(&source.type_),
                comment_safe(name),
            ));
        }
    }
    out
}

/// A resource as plain YAML: maps, lists and quoted scalars only. Serialized through JSON so
/// that enum variants become keys (`target: {kinesis: …}`), as the API server and kubectl read
/// them; serde_yaml would write them as YAML tags (`!kinesis`), which kubectl refuses.
fn to_yaml(resource: &impl serde::Serialize) -> String {
    serde_json::to_value(resource)
        .and_then(|value| serde_yaml::to_string(&value).map_err(serde::ser::Error::custom))
        .expect("a resource of plain strings, lists and maps always serializes")
}

/// `# <id> (created <time>)`, from what ngrok returned, kept to one harmless comment line.
fn origin_comment(id: &str, created_at: &str) -> String {
    format!(
        "# {} (created {})\n",
        comment_safe(id),
        comment_safe(created_at)
    )
}

/// Text from ngrok (or the command line) fit for a comment line that a person may also paste
/// into a shell: only characters of ids, timestamps and names survive; anything else (a line
/// break that would end the comment, quotes, `$`, spaces) becomes `_`.
pub(super) fn comment_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An AWS access key id as AWS issues them (`AKIA…`: 16 to 128 letters and digits), the only
/// value ngrok shows that `import` copies into the `kubectl create secret` hint. Anything else
/// is left for the user to fill in rather than printed into a shell command.
fn is_access_key_id(value: &str) -> bool {
    (16..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The metadata of a resource that adopts ngrok object `id` (only observes it with `observe`).
fn adopting(name: &str, namespace: &str, id: &str, observe: bool) -> ObjectMeta {
    let mut annotations =
        std::collections::BTreeMap::from([(ADOPT_ID_ANNOTATION.to_string(), id.to_string())]);
    if observe {
        annotations.insert(MANAGEMENT_ANNOTATION.to_string(), "observe".to_string());
    }
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        annotations: Some(annotations),
        ..Default::default()
    }
}

/// A valid, unique resource name: the description as a DNS label, else the id.
fn unique_name(description: &str, id: &str, taken: &mut HashSet<String>) -> String {
    let slug = |text: &str| {
        let mut slug = String::new();
        for c in text.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        slug.trim_matches('-')
            .chars()
            .take(50)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string()
    };
    let base = Some(slug(description))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| slug(id));
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}
