//! ngrok-events-operator: ngrok Event Destinations as Kubernetes resources.
//!
//! Layout: [`crd`] (the resource types, no I/O) → [`secrets`] (reading Secret refs) →
//! [`desired`] (pure: spec + secret values → ngrok request, and the diff) → [`reconcile`]
//! (the effects) → [`controller`] (wiring). [`accounts`] holds one ngrok client per API key;
//! [`logging`], [`metrics`], [`http`] and [`leader`] are the operational surface.
/// This program's name and version, first in the `User-Agent` of every request to ngrok (the
/// client crate's own follows), so ngrok and its audit log show who made the request.
pub const PRODUCT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

pub mod accounts;
pub mod annotations;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod drain;
pub mod drift;
pub mod error;
pub mod fairness;
pub mod http;
pub mod import;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod reconcile;
pub mod references;
pub mod secrets;
