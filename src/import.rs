//! `ngrok-events-operator import`: the destinations and subscriptions of an account as
//! `EventDestination` and `EventSubscription` YAML, each adopting its ngrok object, for teams
//! moving from the dashboard or Terraform.

use std::collections::{HashMap, HashSet};

use kube::api::ObjectMeta;
use ngrok_api::types::{EventDestination as Remote, EventSubscription as RemoteSubscription};

use crate::crd::{ADOPT_ID_ANNOTATION, EventDestination, EventSubscription, MANAGEMENT_ANNOTATION};
use crate::desired;
use crate::secrets::CREDENTIALS_LABEL;

/// YAML for every destination and subscription of the account, newest first, in `namespace`;
/// with `observe`, each resource is in observe mode (annotation
/// `events.ngrok.io/management: observe`). Objects in `managed` (ids a resource of the cluster
/// already manages, see [`managed_in_cluster`]) are left out, each named in a closing comment:
/// adopting them would be refused (`AdoptTargetInUse`), or take them from their owner. `None`:
/// the cluster could not be asked, which the output says.
pub async fn import(
    client: &ngrok_api::Client,
    namespace: &str,
    observe: bool,
    managed: Option<&HashSet<String>>,
) -> ngrok_api::Result<String> {
    let mut destinations = client.list_event_destinations().await?;
    let mut subscriptions = client.list_event_subscriptions().await?;
    let is_managed = |id: &str| managed.is_some_and(|managed| managed.contains(id));
    let mut skipped: Vec<String> = destinations
        .items
        .iter()
        .map(|d| d.id.clone())
        .chain(subscriptions.items.iter().map(|s| s.id.clone()))
        .filter(|id| is_managed(id))
        .collect();
    destinations.items.retain(|d| !is_managed(&d.id));
    subscriptions.items.retain(|s| !is_managed(&s.id));
    let mut out = render(
        &destinations.items,
        &subscriptions.items,
        namespace,
        observe,
    );
    out.push_str(&not_imported(&[
        (&destinations.unreadable, destinations.without_id),
        (&subscriptions.unreadable, subscriptions.without_id),
    ]));
    skipped.sort();
    out.push_str(&already_managed(managed.is_some(), &skipped));
    Ok(out)
}

/// The ids of every EventDestination and EventSubscription of `client`'s cluster (all
/// namespaces): the objects the operator already manages. An error says why the cluster could
/// not be asked (never a secret: the client's errors carry none).
pub async fn managed_in_cluster(client: &kube::Client) -> Result<HashSet<String>, String> {
    let mut ids = managed_ids::<EventDestination>(client).await?;
    ids.extend(managed_ids::<EventSubscription>(client).await?);
    Ok(ids)
}

/// The status ids of every `K` of the cluster.
async fn managed_ids<K>(client: &kube::Client) -> Result<HashSet<String>, String>
where
    K: crate::reconcile::Managed,
{
    let api = kube::Api::<K>::all(client.clone());
    let list = api.list(&Default::default()).await.map_err(|e| {
        format!(
            "cannot list the {} of every namespace, to leave out the ngrok objects the cluster already manages: {e}",
            K::KIND
        )
    })?;
    Ok(list
        .items
        .iter()
        .filter_map(|resource| {
            use crate::reconcile::ManagedStatus as _;
            resource.status().and_then(|s| s.common().id.clone())
        })
        .collect())
}

/// Closing comments: the objects left out because the cluster already manages them, or that
/// the cluster could not be asked (`checked` false).
fn already_managed(checked: bool, skipped: &[String]) -> String {
    if !checked {
        return "# not checked against the cluster (see the warning): objects that a resource already manages are included; the operator refuses to adopt those (AdoptTargetInUse)\n".into();
    }
    skipped
        .iter()
        .map(|id| {
            format!(
                "# not imported: {} is already managed by a resource in this cluster\n",
                comment_safe(id)
            )
        })
        .collect()
}

/// A closing comment naming the objects this version cannot read, which are left out.
fn not_imported(lists: &[(&Vec<ngrok_api::Unreadable>, usize)]) -> String {
    let mut out = String::new();
    for (unreadable, _) in lists {
        for object in unreadable.iter() {
            out.push_str(&format!(
                "# not imported: {} cannot be read by this version of the operator ({})\n",
                object.id, object.reason
            ));
        }
    }
    let without_id: usize = lists.iter().map(|(_, n)| n).sum();
    if without_id > 0 {
        out.push_str(&format!(
            "# not imported: {without_id} object(s) whose id cannot be read\n"
        ));
    }
    out
}

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
fn comment_safe(text: &str) -> String {
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
                    aws_access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
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
            false,
        );
        let resources: Vec<EventDestination> = typed(&yaml);
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
            "# kubectl create secret generic audit-kinesis-prod-credentials -n platform --from-literal=aws-access-key-id=AKIAIOSFODNN7EXAMPLE --from-literal=aws-secret-access-key=<fill in>"
        ));
        assert!(yaml.contains(
            "# kubectl label secret audit-kinesis-prod-credentials -n platform events.ngrok.io/credentials=true"
        ));
        assert!(!yaml.contains("status"));
    }

    /// Every document of a YAML stream, as plain values (comments alone are no document).
    fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .filter(|doc: &serde_yaml::Value| !doc.is_null())
            .collect()
    }

    /// The documents as resources, read as the API server reads them: enum variants are keys
    /// (serde_yaml would want YAML tags).
    fn typed<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<T> {
        documents(yaml)
            .into_iter()
            .map(|doc| serde_json::from_value(serde_json::to_value(doc).unwrap()).unwrap())
            .collect()
    }

    fn assert_untagged(value: &serde_yaml::Value) {
        match value {
            serde_yaml::Value::Tagged(tagged) => panic!("YAML tag {}", tagged.tag),
            serde_yaml::Value::Sequence(items) => items.iter().for_each(assert_untagged),
            serde_yaml::Value::Mapping(map) => map.values().for_each(assert_untagged),
            _ => {}
        }
    }

    /// kubectl and the API server know no YAML tags: enum variants must be plain keys.
    #[test]
    fn targets_are_plain_keys_not_yaml_tags() {
        let yaml = render(&[remote("ed_1", "audit")], &[], "platform", false);
        let docs = documents(&yaml);
        assert_eq!(docs.len(), 1);
        assert_untagged(&docs[0]);
        assert_eq!(
            docs[0]["spec"]["target"]["kinesis"]["auth"]["creds"]["accessKeyIdRef"]["name"],
            "audit-credentials"
        );
    }

    /// Whatever ngrok returns, the output parses to exactly the expected documents: no value
    /// ends a comment, opens a document or becomes a key; the shell hint stays harmless.
    #[test]
    fn output_is_safe_whatever_ngrok_returns() {
        let evil = "x\n---\napiVersion: v1\nkind: Secret # \"quoted\" 'single' $(id) `id`";
        let mut destination = remote(&format!("ed_1{evil}"), evil);
        destination.created_at = format!("2024-08-02T07:15:39Z{evil}");
        destination.metadata = evil.into();
        if let EventTarget::Kinesis(kinesis) = &mut destination.target {
            kinesis.auth = AwsAuth::Creds(AwsCredentials {
                aws_access_key_id: format!("AKIAIOSFODNN7EXAMPLE{evil}"),
                aws_secret_access_key: None,
            });
        }
        let subscription: RemoteSubscription = serde_json::from_value(serde_json::json!({
            "id": format!("esb_1{evil}"),
            "uri": "u",
            "created_at": evil,
            "description": evil,
            "metadata": evil,
            "sources": [{"type": "http_request_complete.v0"}],
            "destinations": [{"id": format!("ed_1{evil}")}, {"id": evil}]
        }))
        .unwrap();
        let yaml = render(
            std::slice::from_ref(&destination),
            std::slice::from_ref(&subscription),
            "platform",
            false,
        );

        let docs = documents(&yaml);
        let name = unique_name(evil, "", &mut HashSet::new());
        assert_eq!(name, "x-apiversion-v1-kind-secret-quoted-single-id-id");
        let (spec, _) = desired::spec_from_remote(&destination, &format!("{name}-credentials"));
        let mut expected_destination = EventDestination::new(&name, spec);
        expected_destination.metadata = adopting(&name, "platform", &destination.id, false);
        let mut expected_subscription = EventSubscription::new(
            &name,
            desired::subscription::spec_from_remote(
                &subscription,
                &[(destination.id.clone(), name.clone())].into(),
            ),
        );
        expected_subscription.metadata = adopting(&name, "platform", &subscription.id, false);
        let expected: Vec<serde_yaml::Value> = [
            serde_json::to_value(&expected_destination).unwrap(),
            serde_json::to_value(&expected_subscription).unwrap(),
        ]
        .iter()
        .map(|v| serde_yaml::to_value(v).unwrap())
        .collect();
        assert_eq!(docs, expected, "{yaml}");
        assert_eq!(docs[0]["spec"]["metadata"].as_str(), Some(evil));

        // Comments are single lines of harmless characters; the key id is not printed.
        let comments: Vec<&str> = yaml.lines().filter(|l| l.starts_with('#')).collect();
        // The header, one id line per resource, and the Secret hint (create, then label).
        assert_eq!(comments.len(), 4 + 1 + 1 + 2, "{yaml}");
        let hint = comments
            .iter()
            .find(|l| l.starts_with("# kubectl create secret"))
            .unwrap();
        assert!(hint.ends_with("--from-literal=aws-access-key-id=<fill in> --from-literal=aws-secret-access-key=<fill in>"), "{hint}");
        for comment in &comments[4..] {
            assert!(!comment.contains(['"', '\'', '$', '`']), "{comment}");
        }
        assert!(comments.contains(&"# ed_1x_---_apiVersion:_v1_kind:_Secret____quoted___single____id___id_ (created 2024-08-02T07:15:39Zx_---_apiVersion:_v1_kind:_Secret____quoted___single____id___id_)"), "{comments:#?}");
    }

    #[test]
    fn subscriptions_name_imported_destinations_by_reference() {
        let subscription: RemoteSubscription = serde_json::from_value(serde_json::json!({
            "id": "esb_1",
            "uri": "https://api.ngrok.com/event_subscriptions/esb_1",
            "created_at": "2024-08-02T07:15:39Z",
            "description": "HTTP traffic",
            "sources": [{"type": "http_request_complete.v0", "filter": "ev.conn.server_port == 443",
                         "sampling_rate": 0.5, "bad\nname": "x"}],
            "destinations": [{"id": "ed_1"}, {"id": "ed_elsewhere"}]
        }))
        .unwrap();
        let yaml = render(
            &[remote("ed_1", "audit")],
            &[subscription],
            "platform",
            true,
        );
        let documents = documents(&yaml);
        let imported: EventSubscription =
            serde_json::from_value(serde_json::to_value(&documents[1]).unwrap()).unwrap();
        assert_eq!(imported.metadata.name.as_deref(), Some("http-traffic"));
        assert_eq!(
            imported.metadata.annotations.as_ref().unwrap()[ADOPT_ID_ANNOTATION],
            "esb_1"
        );
        // Imported with --observe: every resource observes.
        for document in &documents {
            assert_eq!(
                document["metadata"]["annotations"][MANAGEMENT_ANNOTATION],
                "observe"
            );
        }
        assert_eq!(
            imported.spec.destination_names().collect::<Vec<_>>(),
            ["audit"]
        );
        assert_eq!(imported.spec.destination_ids, ["ed_elsewhere"]);
        // The filter is carried; a field the spec cannot hold is named in a comment.
        assert_eq!(
            imported.spec.sources[0].filter.as_deref(),
            Some("ev.conn.server_port == 443")
        );
        let comments: Vec<&str> = yaml
            .lines()
            .filter(|l| l.contains("not in the spec"))
            .collect();
        assert_eq!(comments.len(), 2, "{yaml}");
        assert!(
            comments[0].contains("source http_request_complete.v0 has field bad_name in ngrok")
        );
        assert!(comments[1].contains("has field sampling_rate in ngrok"));
        assert!(!yaml.contains("0.5"), "names only");
        assert!(yaml.starts_with("# 1 ngrok event destination(s) and 1 subscription(s)"));
    }

    #[test]
    fn objects_the_cluster_manages_are_named_not_imported() {
        assert_eq!(
            already_managed(true, &["ed_1".into(), "esb_2\n---".into()]),
            "# not imported: ed_1 is already managed by a resource in this cluster\n\
             # not imported: esb_2_--- is already managed by a resource in this cluster\n"
        );
        assert_eq!(already_managed(true, &[]), "");
        assert!(already_managed(false, &[]).starts_with("# not checked against the cluster"));
    }

    #[test]
    fn objects_that_cannot_be_read_are_named_not_imported() {
        let unreadable = vec![ngrok_api::Unreadable {
            id: "ed_future".into(),
            reason: "target: unknown target type splunk".into(),
        }];
        let comment = not_imported(&[(&unreadable, 0), (&Vec::new(), 2)]);
        assert_eq!(
            comment,
            "# not imported: ed_future cannot be read by this version of the operator (target: unknown target type splunk)\n\
             # not imported: 2 object(s) whose id cannot be read\n"
        );
        assert_eq!(not_imported(&[(&Vec::new(), 0)]), "");
    }
}
