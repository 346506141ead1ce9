//! `ngrok-events-operator import`: the destinations and subscriptions of an account as
//! `EventDestination` and `EventSubscription` YAML, each adopting its ngrok object, for teams
//! moving from the dashboard or Terraform.
//!
//! This file lists the account's objects and selects which to import (leaving out those the
//! cluster already manages, or that this version cannot read, each named in a closing comment);
//! `manifests` turns the selected objects into the YAML stream, which is pure and tested apart.

mod manifests;

use std::collections::HashSet;

use manifests::comment_safe;
pub use manifests::render;

use crate::crd::{EventDestination, EventSubscription};

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
    let mut destinations = client.list::<ngrok_api::types::EventDestination>().await?;
    let mut subscriptions = client.list::<ngrok_api::types::EventSubscription>().await?;
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
#[cfg(test)]
mod tests {
    use super::*;

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
