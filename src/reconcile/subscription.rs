//! What reconciling an `EventSubscription` reads, sends and forbids: it reads the ids of the
//! EventDestinations it names (waiting until they have one), and they must be in its account.

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use ngrok_api::types::{
    EventSubscription as Remote, EventSubscriptionCreate, EventSubscriptionUpdate,
};

use super::plan::apply::Compare;
use super::{Context, Inputs, KindState, Managed, Prepared};
use crate::accounts::Account;
use crate::conditions;
use crate::crd::{
    DeletionPolicy, EventDestination, EventSubscription, EventSubscriptionStatus, SecretKeyRef,
};
use crate::desired::subscription as desired;
use crate::error::{Error, Result};

impl Compare for EventSubscription {
    type Remote = Remote;
    type Desired = EventSubscriptionCreate;
    type Update = EventSubscriptionUpdate;

    fn changes(
        desired: &Self::Desired,
        remote: &Remote,
        _resend_secrets: bool,
    ) -> Option<(Self::Update, String)> {
        let update = desired::changes(desired, remote);
        (!update.is_empty()).then(|| {
            let fields = [
                ("description", update.description.is_some()),
                ("metadata", update.metadata.is_some()),
                ("sources", update.sources.is_some()),
                ("destinations", update.destination_ids.is_some()),
            ]
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
            (update, fields)
        })
    }

    fn check_update(desired: &Self::Desired, remote: &Remote, update: &Self::Update) -> Result<()> {
        if update.sources.is_none() {
            return Ok(());
        }
        let fields = desired::unnamed_remote_fields(desired, remote);
        if fields.is_empty() {
            return Ok(());
        }
        Err(Error::RemoteFieldNotModeled {
            id: remote.id.clone(),
            fields,
        })
    }

    fn drift(
        desired: &Self::Desired,
        remote: &Remote,
        _secrets: crate::drift::SecretState,
    ) -> Vec<crate::drift::FieldDifference> {
        desired::drift(desired, remote)
    }

    fn observed_fingerprint(remote: &Remote) -> String {
        desired::observed_fingerprint(remote)
    }
}

impl Managed for EventSubscription {
    type Status = EventSubscriptionStatus;

    const KIND: &'static str = "EventSubscription";

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn api_key_ref(&self) -> Option<&SecretKeyRef> {
        self.spec.api_key_ref.as_ref()
    }

    fn deletion_policy(&self) -> Option<DeletionPolicy> {
        self.spec.deletion_policy
    }

    fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        self.spec.api_key_ref.iter().collect()
    }

    fn state(ctx: &Context) -> &KindState<Self> {
        &ctx.subscriptions
    }

    fn describe(&self, status: &mut Self::Status) {
        let count = |n: usize| Some(i32::try_from(n).unwrap_or(i32::MAX));
        status.source_count = count(self.spec.sources.len());
        status.destination_count =
            count(self.spec.destination_refs.len() + self.spec.destination_ids.len());
    }

    async fn prepare(
        &self,
        ctx: &Context,
        account: &Account,
        secrets_api: &Api<KubeSecret>,
    ) -> Result<Inputs<Self::Desired>> {
        let namespace = self.namespace().unwrap_or_default();
        if let Some(id) = foreign_destination_id(&self.spec.destination_ids, &namespace, ctx) {
            return Err(Error::DestinationOfAnotherNamespace { id });
        }
        let sent = self
            .status
            .as_ref()
            .map(|s| s.destination_ids.as_slice())
            .unwrap_or_default();
        let (mut resolved, mut waiting) = (Vec::new(), Vec::new());
        for name in self.spec.destination_names() {
            let destination = ctx
                .destinations
                .store
                .get(&ObjectRef::new(name).within(&namespace));
            match usable_id(name, destination.as_deref(), sent) {
                Ok(id) => resolved.push((destination.expect("usable"), id)),
                Err(why) => waiting.push(why),
            }
        }
        if !waiting.is_empty() {
            return Ok(Inputs::Awaiting(waiting));
        }
        for (destination, id) in &resolved {
            check_same_account(self, destination, id, ctx, account, secrets_api).await?;
        }
        let ids: Vec<String> = resolved.into_iter().map(|(_, id)| id).collect();
        let desired = desired::desired(&self.spec, &ids)?;
        Ok(Inputs::Prepared(Prepared {
            inputs_hash: inputs_hash(&desired.destination_ids, account.key_fingerprint()),
            desired,
            has_secrets: false,
        }))
    }

    fn record_inputs(status: &mut Self::Status, prepared: &Prepared<Self::Desired>) {
        status.destination_ids = prepared.desired.destination_ids.clone();
    }

    /// The key's fingerprint is the status's `keyFingerprint`, which every pass that records
    /// what was sent also sets.
    fn recorded_inputs(status: &Self::Status) -> Option<String> {
        let fingerprint = status.common.key_fingerprint.as_deref()?;
        Some(inputs_hash(&status.destination_ids, fingerprint))
    }

    fn forget_inputs(status: &mut Self::Status) {
        status.destination_ids.clear();
    }

    fn fingerprint(desired: &Self::Desired) -> String {
        desired::fingerprint(desired)
    }
}

/// What a subscription's request depends on besides its spec: the destination ids, and the
/// API key (by its fingerprint), so that a refusal remembered for one key (a 401) is not kept
/// once the key is fixed.
fn inputs_hash(destination_ids: &[String], key_fingerprint: &str) -> String {
    format!("{}@{key_fingerprint}", destination_ids.join(","))
}

/// The id to send for the EventDestination `name`, or why there is none yet. A destination is
/// used once it is Ready; one already sent stays in use while it is not (a passing problem of
/// the destination should not take it out of the subscription).
fn usable_id(
    name: &str,
    destination: Option<&EventDestination>,
    sent: &[String],
) -> std::result::Result<String, String> {
    let Some(destination) = destination else {
        return Err(format!("EventDestination {name:?}, which does not exist"));
    };
    let status = destination.status.as_ref();
    let conditions = status
        .map(|s| s.common.conditions.as_slice())
        .unwrap_or_default();
    let not_ready = || match conditions::reason(conditions, conditions::READY) {
        Some(reason) => format!("EventDestination {name:?}, which is not Ready ({reason})"),
        None => format!("EventDestination {name:?}, which is not Ready yet"),
    };
    match status.and_then(|s| s.common.id.clone()) {
        Some(id) if conditions::is_true(conditions, conditions::READY) || sent.contains(&id) => {
            Ok(id)
        }
        _ => Err(not_ready()),
    }
}

/// The first of `ids` that an EventDestination of another namespace manages. Namespaces do not
/// trust each other: a subscription naming another team's destination would send events into
/// that team's sink, and hold up its deletion.
fn foreign_destination_id(ids: &[String], namespace: &str, ctx: &Context) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    ctx.destinations
        .store
        .state()
        .iter()
        .find_map(|destination| {
            let id = destination.status.as_ref()?.common.id.as_deref()?;
            (ids.contains(id) && destination.namespace().as_deref() != Some(namespace))
                .then(|| id.to_string())
        })
}

/// A subscription can only name destinations of its own ngrok account. The same `apiKeyRef`
/// (or none on both) is the same account; different keys may still be one account, which only
/// ngrok can tell: the destination is visible with the subscription's key exactly when it is.
async fn check_same_account(
    subscription: &EventSubscription,
    destination: &EventDestination,
    id: &str,
    ctx: &Context,
    account: &Account,
    secrets_api: &Api<KubeSecret>,
) -> Result<()> {
    if destination.spec.api_key_ref == subscription.spec.api_key_ref {
        return Ok(());
    }
    let destination_account = ctx.account_for(destination, secrets_api).await?;
    if std::ptr::eq(destination_account.as_ref(), account) {
        return Ok(());
    }
    match account
        .client
        .get::<ngrok_api::types::EventDestination>(id)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Err(Error::AccountMismatch {
            destination: destination.name_any(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EventDestinationStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn destination(id: Option<&str>, ready: Option<(&str, &str)>) -> EventDestination {
        let mut destination: EventDestination = serde_json::from_value(serde_json::json!({
            "apiVersion": "events.ngrok.io/v1alpha1",
            "kind": "EventDestination",
            "metadata": {"name": "audit", "namespace": "team-a"},
            "spec": {"target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}}
        }))
        .unwrap();
        destination.status = Some(EventDestinationStatus {
            common: crate::crd::CommonStatus {
                id: id.map(String::from),
                conditions: ready
                    .map(|(status, reason)| Condition {
                        type_: "Ready".into(),
                        status: status.into(),
                        reason: reason.into(),
                        message: String::new(),
                        observed_generation: None,
                        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        });
        destination
    }

    #[test]
    fn the_inputs_change_with_the_key() {
        let ids = ["ed_1".to_string()];
        assert_ne!(inputs_hash(&ids, "aaaa"), inputs_hash(&ids, "bbbb"));
        assert_ne!(inputs_hash(&ids, "aaaa"), inputs_hash(&[], "aaaa"));
        let mut status = EventSubscriptionStatus::default();
        assert_eq!(EventSubscription::recorded_inputs(&status), None);
        status.destination_ids = ids.to_vec();
        status.common.key_fingerprint = Some("aaaa".into());
        assert_eq!(
            EventSubscription::recorded_inputs(&status),
            Some(inputs_hash(&ids, "aaaa"))
        );
    }

    #[test]
    fn a_destination_is_used_once_it_is_ready() {
        assert_eq!(
            usable_id("audit", None, &[]).unwrap_err(),
            r#"EventDestination "audit", which does not exist"#
        );
        assert_eq!(
            usable_id("audit", Some(&destination(None, None)), &[]).unwrap_err(),
            r#"EventDestination "audit", which is not Ready yet"#
        );
        assert_eq!(
            usable_id(
                "audit",
                Some(&destination(None, Some(("False", "SecretNotFound")))),
                &[]
            )
            .unwrap_err(),
            r#"EventDestination "audit", which is not Ready (SecretNotFound)"#
        );
        let ready = destination(Some("ed_1"), Some(("True", "Synced")));
        assert_eq!(usable_id("audit", Some(&ready), &[]).unwrap(), "ed_1");
    }

    #[test]
    fn a_destination_already_sent_stays_while_it_is_not_ready() {
        let failing = destination(Some("ed_1"), Some(("False", "NgrokUnavailable")));
        assert!(usable_id("audit", Some(&failing), &[]).is_err());
        assert_eq!(
            usable_id("audit", Some(&failing), &["ed_1".into()]).unwrap(),
            "ed_1"
        );
    }
}
