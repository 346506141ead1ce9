//! What reconciling an `EventDestination` reads, sends and forbids.

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::ResourceExt;
use kube::api::Api;
use ngrok_api::types::{
    EventDestination as Remote, EventDestinationCreate, EventDestinationUpdate,
};

use super::plan::apply::Compare;
use super::{Context, Inputs, KindState, Managed, Prepared};
use crate::accounts::Account;
use crate::crd::{DeletionPolicy, EventDestination, EventDestinationStatus, SecretKeyRef};
use crate::error::{Error, Result};
use crate::{desired, references, secrets};

impl Compare for EventDestination {
    type Remote = Remote;
    type Desired = EventDestinationCreate;
    type Update = EventDestinationUpdate;

    fn changes(
        desired: &Self::Desired,
        remote: &Remote,
        resend_secrets: bool,
    ) -> Option<(Self::Update, String)> {
        let update = desired::changes(desired, remote, resend_secrets);
        (!update.is_empty()).then(|| {
            let fields = changed_fields(&update);
            (update, fields)
        })
    }

    fn drift(
        desired: &Self::Desired,
        remote: &Remote,
        secrets: crate::drift::SecretState,
    ) -> Vec<crate::drift::FieldDifference> {
        desired::drift(desired, remote, secrets)
    }

    fn observed_fingerprint(remote: &Remote) -> String {
        desired::observed_fingerprint(remote)
    }
}

impl Managed for EventDestination {
    type Status = EventDestinationStatus;

    const KIND: &'static str = "EventDestination";

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
        let mut refs = self.spec.target.secret_refs();
        refs.extend(&self.spec.api_key_ref);
        refs
    }

    fn state(ctx: &Context) -> &KindState<Self> {
        &ctx.destinations
    }

    fn describe(&self, status: &mut Self::Status) {
        status.target = Some(self.spec.target.kind().to_string());
    }

    async fn prepare(
        &self,
        ctx: &Context,
        account: &Account,
        secrets_api: &Api<KubeSecret>,
    ) -> Result<Inputs<Self::Desired>> {
        let values = secrets::resolve(
            secrets_api,
            &secrets::target_refs(&self.spec.target),
            ctx.require_credentials_label,
        )
        .await?;
        Ok(Inputs::Prepared(Prepared {
            desired: desired::destination(&self.spec, &values)?,
            // Keyed: the hash is written into the status, where it must not reveal the values.
            inputs_hash: values.keyed_hash(account.api_key()),
            has_secrets: !values.is_empty(),
        }))
    }

    fn record_inputs(status: &mut Self::Status, prepared: &Prepared<Self::Desired>) {
        status.secrets_hash = Some(prepared.inputs_hash.clone());
    }

    fn recorded_inputs(status: &Self::Status) -> Option<String> {
        status.secrets_hash.clone()
    }

    fn forget_inputs(status: &mut Self::Status) {
        // ngrok does not show secrets: unknown ones are sent again.
        status.secrets_hash = None;
    }

    fn fingerprint(desired: &Self::Desired) -> String {
        desired::fingerprint(desired)
    }

    /// ngrok refuses to delete a destination a subscription still names; rather than retry
    /// that refusal, wait (with a condition naming them) until no subscription uses it.
    fn check_deletable(&self, ctx: &Context) -> Result<()> {
        let subscriptions = ctx.subscriptions.store.state();
        let users = references::subscriptions_using(&subscriptions, self);
        if users.is_empty() {
            return Ok(());
        }
        Err(Error::DestinationInUse {
            subscriptions: users
                .iter()
                .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
                .collect(),
        })
    }
}

/// The fields an update sets, for events and logs: `description, target`.
fn changed_fields(update: &EventDestinationUpdate) -> String {
    let fields = [
        ("description", update.description.is_some()),
        ("metadata", update.metadata.is_some()),
        ("format", update.format.is_some()),
        ("target", update.target.is_some()),
    ];
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}
