//! ngrok-events-operator: ngrok Event Destinations as Kubernetes resources.
//!
//! Layout: [`crd`] (the resource types, no I/O) → [`secrets`] (reading Secret refs) →
//! [`desired`] (pure: spec + secret values → ngrok request, and the diff) → [`reconcile`]
//! (the effects) → [`controller`] (wiring). [`accounts`] holds one ngrok client per API key;
//! [`telemetry`], [`http`] and [`leader`] are the operational surface.
pub mod accounts;
pub mod annotations;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod error;
pub mod http;
pub mod import;
pub mod leader;
pub mod reconcile;
pub mod references;
pub mod secrets;
pub mod telemetry;
