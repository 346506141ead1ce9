//! `resources{kind, state}`: resources counted by state at scrape time, from functions each
//! controller registers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// The state a resource is counted in by `resources{kind, state}`, its `state` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceState {
    Ready,
    Reconciling,
    Stalled,
    Paused,
}

impl ResourceState {
    /// Every state, in the order the series are written.
    pub const ALL: [ResourceState; 4] = [
        ResourceState::Ready,
        ResourceState::Reconciling,
        ResourceState::Stalled,
        ResourceState::Paused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ResourceState::Ready => "ready",
            ResourceState::Reconciling => "reconciling",
            ResourceState::Stalled => "stalled",
            ResourceState::Paused => "paused",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    kind: &'static str,
    state: &'static str,
}

type StatesFn = Box<dyn Fn() -> Vec<(ResourceState, i64)> + Send + Sync>;

/// The per-kind functions behind `resources{kind, state}`.
#[derive(Default)]
pub(super) struct ResourceStates {
    pub(super) sources: RwLock<HashMap<&'static str, StatesFn>>,
}

/// Encodes `resources{kind, state}` on each scrape from the registered functions.
pub(super) struct ResourceStatesCollector(pub(super) Arc<ResourceStates>);

impl fmt::Debug for ResourceStatesCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceStatesCollector")
            .finish_non_exhaustive()
    }
}

impl Collector for ResourceStatesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sources = self
            .0
            .sources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut family = encoder.encode_descriptor(
            "resources",
            "Resources by kind and state, counted at scrape time",
            None,
            MetricType::Gauge,
        )?;
        // Sorted so that consecutive scrapes list the series in the same order.
        let mut kinds: Vec<_> = sources.iter().collect();
        kinds.sort_by_key(|(kind, _)| **kind);
        for (kind, states) in kinds {
            for (state, count) in states() {
                let state = state.label();
                let labels = ResourceLabels { kind, state };
                ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
