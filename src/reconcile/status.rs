//! Writing a resource's status and publishing its events: the one place where conditions are
//! computed from a [`Phase`] and sent to the API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::warn;

use super::{Context, Managed, ManagedStatus};
use crate::conditions::{self, Phase};
use crate::crd::DeletionPolicy;
use crate::error::{Error, Result};

/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "ngrok-events-operator";

/// The state one reconcile works on: the resource, its status as last written, and the
/// events to publish once the status is written.
pub struct Reconciliation<'a, K: Managed> {
    pub resource: &'a K,
    pub ctx: &'a Context,
    /// The status being built: what the next write sends.
    pub status: K::Status,
    /// The status as last written (by this process, or as the cache shows it).
    written: Option<K::Status>,
    events: Vec<(EventType, &'static str, String)>,
}

impl<'a, K: Managed> Reconciliation<'a, K> {
    pub fn new(resource: &'a K, ctx: &'a Context) -> Self {
        let written = K::state(ctx).memory.status_to_trust(resource);
        Self {
            resource,
            ctx,
            status: written.clone().unwrap_or_default(),
            written,
            events: Vec::new(),
        }
    }

    pub fn object_ref(&self) -> ObjectRef<K> {
        ObjectRef::from_obj(self.resource)
    }

    /// Queues an event, published after the status write. The note is bounded in bytes, as
    /// the API server counts it.
    pub fn event(&mut self, type_: EventType, reason: &'static str, note: String) {
        let note = ngrok_api::text::one_line_bytes(&note, crate::error::MAX_NOTE_BYTES);
        self.events.push((type_, reason, note));
    }

    /// Writes the status for `phase` with server-side apply, unless nothing changed.
    pub async fn write_status(&mut self, phase: &Phase<'_>) -> Result<()> {
        let previous = self.written.clone().unwrap_or_default();
        fill_status(
            self.resource,
            &mut self.status,
            &previous,
            phase,
            self.ctx.deletion_policy_of(self.resource).policy,
            &Time(whole_seconds(Timestamp::now())),
        );
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        if !self.ctx.may_write() {
            return Err(Error::NotLeader);
        }
        self.note_transition(&previous, phase);
        let api = Api::<K>::namespaced(
            self.ctx.client.clone(),
            &self.resource.namespace().unwrap_or_default(),
        );
        let patch = status_patch::<K>(&self.status);
        api.patch_status(
            &self.resource.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        self.written = Some(self.status.clone());
        K::state(self.ctx).memory.wrote(self.resource, &self.status);
        Ok(())
    }

    /// The first-Ready metric, and an event for each new reason of not being Ready (worth
    /// telling whoever runs `kubectl describe`).
    fn note_transition(&mut self, previous: &K::Status, phase: &Phase<'_>) {
        let (now, before) = (
            &self.status.common().conditions,
            &previous.common().conditions,
        );
        let became_ready = conditions::is_true(now, conditions::READY)
            && !conditions::is_true(before, conditions::READY);
        if became_ready
            && previous.common().id.is_none()
            && let Some(created) = &self.resource.meta().creation_timestamp
        {
            let seconds = Timestamp::now().duration_since(created.0).as_secs_f64();
            self.ctx.metrics.first_ready(K::KIND, seconds.max(0.0));
        }
        if let Phase::Failed(error) = phase
            && conditions::reason(before, conditions::READY) != Some(error.reason())
        {
            let type_ = if error.is_stalled() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(type_, error.reason(), error.message());
        }
    }

    pub async fn publish_events(&mut self) {
        let reference = self.resource.object_ref(&());
        for (type_, reason, note) in self.events.drain(..) {
            let event = KubeEvent {
                type_,
                reason: reason.to_string(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            match self.ctx.recorder.publish(&event, &reference).await {
                Ok(()) => self.ctx.metrics.event_published(K::KIND, reason),
                Err(e) => warn!(error = %e, reason, "could not publish an event"),
            }
        }
    }
}

/// Completes `status` for `phase` at `now`: what the resource's spec describes, the three
/// conditions (keeping `previous`'s transition times), the generation seen and the deletion
/// policy in effect.
pub fn fill_status<K: Managed>(
    resource: &K,
    status: &mut K::Status,
    previous: &K::Status,
    phase: &Phase<'_>,
    deletion_policy: DeletionPolicy,
    now: &Time,
) {
    let generation = resource.meta().generation;
    resource.describe(status);
    let common = status.common_mut();
    common.conditions = conditions::conditions(
        &previous.common().conditions,
        generation,
        phase,
        K::NOUN,
        now,
    );
    common.observed_generation = generation;
    common.deletion_policy = Some(deletion_policy);
}

/// The server-side-apply body of a status write (sent to the status subresource).
pub fn status_patch<K: Managed>(status: &K::Status) -> serde_json::Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::KIND,
        "status": status,
    })
}

/// `at` without its fraction of a second: the API server stores condition times in whole
/// seconds, and the status remembered in memory must equal what the cache reads back, or it is
/// never released (see `Memory::status_to_trust`).
fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}
