//! Validation of raw request bodies and rendering of responses, per resource.
//!
//! Request bodies are checked as raw JSON, independently of any client's types, and more
//! strictly than ngrok documents, so that client bugs surface here: unknown fields are
//! rejected, and a top-level field sent as `null` is rejected (a client should omit what it
//! does not set). Inside `target` and `auth`, `null` siblings are accepted, as the docs say
//! ("exactly one of the following objects, leaving the rest null").
//!
//! Objects are stored in a normalized form that keeps secrets; responses withhold them.
//!
//! The parts, each readable on its own:
//!
//! - `validation`: the checks of a create or update body and the normalized form stored;
//! - `sources`: the checks of a subscription's event sources (`fields` and CEL `filter`),
//!   where ngrok's error catalogue, not its spec, says what is refused;
//! - `rendering`: a stored object as the API answers it, secrets withheld.
//!
//! [`Kind`] and the shape of a target live here because all three need them.

mod rendering;
mod sources;
mod validation;

pub(crate) use rendering::{render_destination, render_subscription};
pub(crate) use validation::{destination_fields, parse_object, subscription_fields};

/// ngrok's limits: bytes for a destination, characters for a subscription (see [`Kind::length`]).
pub(crate) const MAX_METADATA_LENGTH: usize = 4096;
pub(crate) const MAX_DESCRIPTION_LENGTH: usize = 255;

/// The two collections the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Destination,
    Subscription,
}

impl Kind {
    pub fn collection(self) -> &'static str {
        match self {
            Self::Destination => "event_destinations",
            Self::Subscription => "event_subscriptions",
        }
    }

    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Destination => "ed_",
            Self::Subscription => "esb_",
        }
    }

    /// The length of a description or metadata as ngrok's spec counts it for this kind: a
    /// destination's in bytes, a subscription's in characters.
    pub fn length(self, text: &str) -> (usize, &'static str) {
        match self {
            Self::Destination => (text.len(), "bytes"),
            Self::Subscription => (text.chars().count(), "characters"),
        }
    }

    pub fn of_collection(collection: &str) -> Option<Self> {
        [Self::Destination, Self::Subscription]
            .into_iter()
            .find(|kind| kind.collection() == collection)
    }

    pub fn of_id(id: &str) -> Option<Self> {
        [Self::Destination, Self::Subscription]
            .into_iter()
            .find(|kind| id.starts_with(kind.id_prefix()))
    }
}

const AWS_TARGETS: [(&str, &str); 3] = [
    ("firehose", "delivery_stream_arn"),
    ("kinesis", "stream_arn"),
    ("cloudwatch_logs", "log_group_arn"),
];
const TARGET_KINDS: [&str; 5] = [
    "firehose",
    "kinesis",
    "cloudwatch_logs",
    "datadog",
    "azure_logs_ingestion",
];
const DATADOG_FIELDS: [&str; 4] = ["api_key", "ddtags", "service", "ddsite"];
const AZURE_FIELDS: [&str; 6] = [
    "tenant_id",
    "client_id",
    "client_secret",
    "logs_ingestion_uri",
    "data_collection_rule_id",
    "data_collection_stream_name",
];
