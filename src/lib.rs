//! ngrok-events-operator: ngrok Event Destinations as Kubernetes resources.
pub mod crd;
