//! What the tests read of either kind, so that one helper serves EventDestinations and
//! EventSubscriptions alike. It deliberately does not use the engine's own `Managed` trait: the
//! tests check the resources as a user sees them, whatever shape the engine takes.
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Resource, ResourceExt};
use ngrok_events_operator::crd::{CommonStatus, EventDestination, EventSubscription};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A kind the operator manages, as the tests see it: its name, `status.id`,
/// `status.conditions` and `status.observedGeneration`.
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// ngrok's collection of this kind's objects, as the emulator's request log names it.
    const COLLECTION: &'static str;

    /// The status fields every kind has (`status.id`, `conditions`, …).
    fn common(&self) -> Option<&CommonStatus>;

    fn status_id(&self) -> Option<&str> {
        self.common()?.id.as_deref()
    }

    fn conditions(&self) -> &[Condition] {
        self.common().map_or(&[], |s| &s.conditions)
    }

    fn observed_generation(&self) -> Option<i64> {
        self.common()?.observed_generation
    }

    /// The kind's name, as in metric labels and events: `EventDestination`.
    fn kind_name() -> String {
        Self::kind(&()).into_owned()
    }

    fn name(&self) -> String {
        self.name_any()
    }

    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition `type_` has `status` and `reason`.
    fn has_condition(&self, type_: &str, status: &str, reason: &str) -> bool {
        self.condition(type_)
            .is_some_and(|c| c.status == status && c.reason == reason)
    }

    /// Whether the resource is Ready (for any reason) at its current generation.
    fn is_ready(&self) -> bool {
        self.generation_observed() && self.condition("Ready").is_some_and(|c| c.status == "True")
    }

    /// Whether the status describes the current generation.
    fn generation_observed(&self) -> bool {
        self.observed_generation().is_some() && self.observed_generation() == self.meta().generation
    }
}

impl Kind for EventDestination {
    const COLLECTION: &'static str = "/event_destinations";

    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}

impl Kind for EventSubscription {
    const COLLECTION: &'static str = "/event_subscriptions";

    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}
