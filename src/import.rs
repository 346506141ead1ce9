//! `ngrok-events-operator import`: the destinations and subscriptions of an account as
//! `EventDestination` and `EventSubscription` YAML, each adopting its ngrok object, for teams
//! moving from the dashboard or Terraform.

use std::collections::{HashMap, HashSet};

use kube::api::ObjectMeta;
use ngrok_api::types::{EventDestination as Remote, EventSubscription as RemoteSubscription};

use crate::crd::{ADOPT_ID_ANNOTATION, EventDestination, EventSubscription};
use crate::desired;

/// YAML for every destination and subscription of the account, newest first, in `namespace`.
pub async fn import(client: &ngrok_api::Client, namespace: &str) -> ngrok_api::Result<String> {
    let destinations = client.list_event_destinations().await?;
    let subscriptions = client.list_event_subscriptions().await?;
    Ok(render(&destinations, &subscriptions, namespace))
}

/// The YAML stream for `remotes` and `subscriptions` (pure, for tests). A subscription names
/// the destinations imported with it by `destinationRefs`.
pub fn render(remotes: &[Remote], subscriptions: &[RemoteSubscription], namespace: &str) -> String {
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
        resource.metadata = adopting(&name, namespace, &remote.id);
        out.push_str("---\n");
        out.push_str(&format!(
            "# {} (created {})\n",
            remote.id, remote.created_at
        ));
        if !keys.is_empty() {
            let literals: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "--from-literal={}={}",
                        k.key,
                        k.known_value.as_deref().unwrap_or("<fill in>")
                    )
                })
                .collect();
            out.push_str(&format!(
                "# kubectl create secret generic {secret_name} -n {namespace} {}\n",
                literals.join(" ")
            ));
        }
        out.push_str(&serde_yaml::to_string(&resource).expect("a resource always serializes"));
    }
    let mut taken = HashSet::new();
    for remote in subscriptions {
        let name = unique_name(&remote.description, &remote.id, &mut taken);
        let mut resource = EventSubscription::new(
            &name,
            desired::subscription::spec_from_remote(remote, &names),
        );
        resource.metadata = adopting(&name, namespace, &remote.id);
        out.push_str("---\n");
        out.push_str(&format!(
            "# {} (created {})\n",
            remote.id, remote.created_at
        ));
        out.push_str(&serde_yaml::to_string(&resource).expect("a resource always serializes"));
    }
    out
}

/// The metadata of a resource that adopts ngrok object `id`.
fn adopting(name: &str, namespace: &str, id: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        annotations: Some([(ADOPT_ID_ANNOTATION.to_string(), id.to_string())].into()),
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

#[cfg(test)]
mod tests {
    use ngrok_api::types::{AwsAuth, AwsCredentials, EventTarget, EventTargetKinesis};

    use super::*;

    fn remote(id: &str, description: &str) -> Remote {
        Remote {
            id: id.into(),
            uri: format!("https://api.ngrok.com/event_destinations/{id}"),
            created_at: "2024-08-02T07:15:39Z".into(),
            metadata: String::new(),
            description: description.into(),
            format: "json".into(),
            target: EventTarget::Kinesis(EventTargetKinesis {
                stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
                auth: AwsAuth::Creds(AwsCredentials {
                    aws_access_key_id: "AKIAEXAMPLE".into(),
                    aws_secret_access_key: None,
                }),
            }),
        }
    }

    #[test]
    fn names_are_valid_unique_and_resources_adopt_their_destination() {
        let yaml = render(
            &[
                remote("ed_1", "Audit → Kinesis (prod)"),
                remote("ed_2", "Audit → Kinesis (prod)"),
                remote("ed_3", ""),
            ],
            &[],
            "platform",
        );
        let resources: Vec<EventDestination> = yaml
            .split("\n---\n")
            .skip(1)
            .map(|doc| serde_yaml::from_str(doc).unwrap())
            .collect();
        let names: Vec<_> = resources
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["audit-kinesis-prod", "audit-kinesis-prod-2", "ed-3"]
        );
        assert_eq!(
            resources[0].metadata.annotations.as_ref().unwrap()[ADOPT_ID_ANNOTATION],
            "ed_1"
        );
        assert_eq!(resources[0].metadata.namespace.as_deref(), Some("platform"));
        assert!(yaml.contains(
            "# kubectl create secret generic audit-kinesis-prod-credentials -n platform --from-literal=aws-access-key-id=AKIAEXAMPLE --from-literal=aws-secret-access-key=<fill in>"
        ));
        assert!(!yaml.contains("status"));
    }

    #[test]
    fn subscriptions_name_imported_destinations_by_reference() {
        let subscription: RemoteSubscription = serde_json::from_value(serde_json::json!({
            "id": "esb_1",
            "uri": "https://api.ngrok.com/event_subscriptions/esb_1",
            "created_at": "2024-08-02T07:15:39Z",
            "description": "HTTP traffic",
            "sources": [{"type": "http_request_complete.v0"}],
            "destinations": [{"id": "ed_1"}, {"id": "ed_elsewhere"}]
        }))
        .unwrap();
        let yaml = render(&[remote("ed_1", "audit")], &[subscription], "platform");
        let documents: Vec<serde_yaml::Value> = yaml
            .split("\n---\n")
            .skip(1)
            .map(|doc| serde_yaml::from_str(doc).unwrap())
            .collect();
        let imported: EventSubscription = serde_yaml::from_value(documents[1].clone()).unwrap();
        assert_eq!(imported.metadata.name.as_deref(), Some("http-traffic"));
        assert_eq!(
            imported.metadata.annotations.as_ref().unwrap()[ADOPT_ID_ANNOTATION],
            "esb_1"
        );
        assert_eq!(
            imported.spec.destination_names().collect::<Vec<_>>(),
            ["audit"]
        );
        assert_eq!(imported.spec.destination_ids, ["ed_elsewhere"]);
        assert!(yaml.starts_with("# 1 ngrok event destination(s) and 1 subscription(s)"));
    }
}
