//! Which subscriptions use which destinations: the relation that orders their reconciles.
//! Pure functions of the controllers' caches.
//!
//! - A subscription waits for the destinations it names (it needs their ids), so a change to a
//!   destination triggers the subscriptions that use it.
//! - A destination's deletion waits for the subscriptions that use it (ngrok refuses to delete
//!   a destination a subscription names), so a change to a subscription triggers the
//!   destinations it uses, and those being deleted that may have been waiting for it.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::{EventDestination, EventSubscription};

/// Whether `subscription` names `destination`: by name, or by id in `spec.destinationIds` or
/// in what it last sent to ngrok. Only within one namespace: another namespace's subscription
/// never holds up a destination (it is refused for naming it; see
/// `Error::DestinationOfAnotherNamespace`).
pub fn uses(subscription: &EventSubscription, destination: &EventDestination) -> bool {
    if subscription.namespace() != destination.namespace() {
        return false;
    }
    let by_name = subscription
        .spec
        .destination_names()
        .any(|name| name == destination.name_any());
    let by_id = destination
        .status
        .as_ref()
        .and_then(|s| s.common.id.as_ref())
        .is_some_and(|id| {
            subscription.spec.destination_ids.contains(id)
                || subscription
                    .status
                    .as_ref()
                    .is_some_and(|s| s.destination_ids.contains(id))
        });
    by_name || by_id
}

/// The subscriptions that use `destination`.
pub fn subscriptions_using<'a>(
    subscriptions: &'a [Arc<EventSubscription>],
    destination: &EventDestination,
) -> Vec<&'a Arc<EventSubscription>> {
    let mut users: Vec<_> = subscriptions
        .iter()
        .filter(|s| uses(s, destination))
        .collect();
    users.sort_by_key(|s| (s.namespace(), s.name_any()));
    users
}

/// Whether `id` is named by a subscription of a namespace other than `namespace`, in
/// `spec.destinationIds` or in what it last sent to ngrok.
pub fn named_in_another_namespace(
    subscriptions: &[Arc<EventSubscription>],
    namespace: &str,
    id: &str,
) -> bool {
    subscriptions
        .iter()
        .any(|s| s.namespace().as_deref() != Some(namespace) && names_id(s, id))
}

/// Whether `subscription` names destination `id` by id: in `spec.destinationIds`, or in what
/// it last sent to ngrok.
fn names_id(subscription: &EventSubscription, id: &str) -> bool {
    subscription.spec.destination_ids.iter().any(|i| i == id)
        || subscription
            .status
            .as_ref()
            .is_some_and(|s| s.destination_ids.iter().any(|i| i == id))
}

/// The subscriptions to reconcile when `destination` changed: those that use it, and those of
/// any namespace that name its id. A subscription of another namespace that named the id
/// before the destination adopted it is then refused (`DestinationOfAnotherNamespace`) rather
/// than left showing Ready.
pub fn subscriptions_to_notify<'a>(
    subscriptions: &'a [Arc<EventSubscription>],
    destination: &EventDestination,
) -> Vec<&'a Arc<EventSubscription>> {
    let id = destination
        .status
        .as_ref()
        .and_then(|s| s.common.id.as_deref());
    let mut notified: Vec<_> = subscriptions
        .iter()
        .filter(|s| uses(s, destination) || id.is_some_and(|id| names_id(s, id)))
        .collect();
    notified.sort_by_key(|s| (s.namespace(), s.name_any()));
    notified
}

/// The destinations to reconcile when `subscription` changed: those it uses, and those of its
/// namespace being deleted, which may have been waiting for it to let go.
pub fn destinations_to_notify(
    destinations: &[Arc<EventDestination>],
    subscription: &EventSubscription,
) -> Vec<ObjectRef<EventDestination>> {
    destinations
        .iter()
        .filter(|d| {
            let deleting_here = d.metadata.deletion_timestamp.is_some()
                && d.namespace() == subscription.namespace();
            deleting_here || uses(subscription, d)
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        DestinationRef, EventDestinationStatus, EventSource, EventSubscriptionSpec,
        EventSubscriptionStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn destination(namespace: &str, name: &str, id: Option<&str>) -> EventDestination {
        let mut destination: EventDestination = serde_json::from_value(serde_json::json!({
            "apiVersion": "events.ngrok.io/v1alpha1",
            "kind": "EventDestination",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}}
        }))
        .unwrap();
        destination.status = Some(EventDestinationStatus {
            common: crate::crd::CommonStatus {
                id: id.map(String::from),
                ..Default::default()
            },
            ..Default::default()
        });
        destination
    }

    fn subscription(
        namespace: &str,
        refs: &[&str],
        ids: &[&str],
        sent: &[&str],
    ) -> Arc<EventSubscription> {
        let mut subscription = EventSubscription::new(
            "sub",
            EventSubscriptionSpec {
                description: None,
                metadata: None,
                sources: vec![EventSource {
                    type_: "http_request_complete.v0".into(),
                    fields: Vec::new(),
                    filter: None,
                }],
                destination_refs: refs
                    .iter()
                    .map(|name| DestinationRef {
                        name: name.to_string(),
                    })
                    .collect(),
                destination_ids: ids.iter().map(|s| s.to_string()).collect(),
                deletion_policy: Default::default(),
                api_key_ref: None,
            },
        );
        subscription.metadata.namespace = Some(namespace.into());
        subscription.status = Some(EventSubscriptionStatus {
            destination_ids: sent.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        Arc::new(subscription)
    }

    #[test]
    fn a_subscription_uses_destinations_by_name_in_its_namespace_or_by_id() {
        let audit = destination("team-a", "audit", Some("ed_1"));
        assert!(uses(&subscription("team-a", &["audit"], &[], &[]), &audit));
        // The same name in another namespace is another destination.
        assert!(!uses(&subscription("team-b", &["audit"], &[], &[]), &audit));
        assert!(uses(&subscription("team-a", &[], &["ed_1"], &[]), &audit));
        // Another namespace's subscription never holds up a destination, by id either.
        assert!(!uses(&subscription("team-b", &[], &["ed_1"], &[]), &audit));
        assert!(!uses(&subscription("team-b", &[], &[], &["ed_1"]), &audit));
        // Still named in ngrok until the subscription's next update.
        assert!(uses(
            &subscription("team-a", &["other"], &[], &["ed_1"]),
            &audit
        ));
        assert!(!uses(
            &subscription("team-a", &["other"], &["ed_2"], &["ed_2"]),
            &audit
        ));
        // Not created yet: only the name can match.
        let new = destination("team-a", "new", None);
        assert!(!uses(&subscription("team-a", &["audit"], &[], &[]), &new));
    }

    #[test]
    fn a_changed_subscription_notifies_its_destinations_and_those_being_deleted() {
        let mut leaving = destination("team-a", "leaving", Some("ed_9"));
        leaving.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let destinations = vec![
            Arc::new(destination("team-a", "audit", Some("ed_1"))),
            Arc::new(destination("team-a", "unrelated", Some("ed_2"))),
            Arc::new(leaving),
        ];
        let names: Vec<String> =
            destinations_to_notify(&destinations, &subscription("team-a", &["audit"], &[], &[]))
                .into_iter()
                .map(|r| r.name)
                .collect();
        assert_eq!(names, ["audit", "leaving"]);
    }

    /// Issue 19: a subscription of another namespace that named an id before a destination
    /// adopted it is reconciled (and then refused) when the destination changes.
    #[test]
    fn a_changed_destination_notifies_every_subscription_naming_its_id() {
        let audit = destination("team-a", "audit", Some("ed_1"));
        let subscriptions = vec![
            subscription("team-a", &["audit"], &[], &[]),
            subscription("team-b", &[], &["ed_1"], &[]),
            subscription("team-c", &[], &[], &["ed_1"]),
            subscription("team-d", &["audit"], &["ed_2"], &["ed_2"]),
        ];
        let notified: Vec<String> = subscriptions_to_notify(&subscriptions, &audit)
            .iter()
            .map(|s| s.namespace().unwrap())
            .collect();
        assert_eq!(notified, ["team-a", "team-b", "team-c"]);
        // Without an id, only by name.
        let new = destination("team-a", "audit", None);
        assert_eq!(subscriptions_to_notify(&subscriptions, &new).len(), 1);
    }

    #[test]
    fn an_id_is_named_in_another_namespace_by_spec_or_by_what_was_sent() {
        let subscriptions = vec![
            subscription("team-a", &[], &["ed_1"], &[]),
            subscription("team-b", &[], &[], &["ed_2"]),
        ];
        assert!(!named_in_another_namespace(
            &subscriptions,
            "team-a",
            "ed_1"
        ));
        assert!(named_in_another_namespace(&subscriptions, "team-b", "ed_1"));
        assert!(named_in_another_namespace(&subscriptions, "team-a", "ed_2"));
        assert!(!named_in_another_namespace(
            &subscriptions,
            "team-a",
            "ed_3"
        ));
    }

    #[test]
    fn users_are_listed_in_a_stable_order() {
        let audit = destination("team-a", "audit", Some("ed_1"));
        let mut second = (*subscription("team-a", &["audit"], &[], &[])).clone();
        second.metadata.name = Some("a-first".into());
        let subscriptions = vec![
            subscription("team-a", &["audit"], &[], &[]),
            Arc::new(second),
        ];
        let names: Vec<String> = subscriptions_using(&subscriptions, &audit)
            .iter()
            .map(|s| s.name_any())
            .collect();
        assert_eq!(names, ["a-first", "sub"]);
    }
}
