//! Fields of an API object that this client does not model, kept as ngrok sent them.
//!
//! ngrok replaces a list (a subscription's `sources`) whole on update: a client that drops
//! the keys it does not know on read, then sends the list back, erases whatever ngrok (or its
//! dashboard) put there. Keeping them lets a caller see them and refuse such a write.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// At most this many unmodelled fields are kept per object: enough to name them and refuse a
/// write, and a hostile or broken answer cannot grow the operator's memory without bound.
pub const MAX_UNMODELED_FIELDS: usize = 16;
/// Longer names are cut to this many characters.
pub const MAX_UNMODELED_NAME_CHARS: usize = 128;
/// A value whose JSON is longer than this is kept as a string saying so, not as itself.
pub const MAX_UNMODELED_VALUE_BYTES: usize = 1024;

/// The keys of an object that no field of its type reads, by name, with their values
/// (bounded, see the constants). `null`, `""`, `[]` and `{}` are unset, as everywhere in
/// ngrok's answers, and are not kept. Use it as `#[serde(flatten, default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UnmodeledFields(BTreeMap<String, Value>);

impl UnmodeledFields {
    /// True when ngrok sent no field beyond the modelled ones.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The fields, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Adds a field as a read would keep it (bounded, unset values left out).
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        if is_unset(&value) || self.0.len() >= MAX_UNMODELED_FIELDS {
            return;
        }
        let name: String = name.into().chars().take(MAX_UNMODELED_NAME_CHARS).collect();
        let text = value.to_string();
        let value = if text.len() > MAX_UNMODELED_VALUE_BYTES {
            Value::String(format!("({} bytes of JSON, not kept)", text.len()))
        } else {
            value
        };
        self.0.insert(name, value);
    }
}

fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

impl<'de> Deserialize<'de> for UnmodeledFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = UnmodeledFields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the other fields of an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut kept = UnmodeledFields::default();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    kept.insert(name, value);
                }
                Ok(kept)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unset_values_are_not_kept_and_the_rest_is_bounded() {
        let mut object = serde_json::Map::new();
        object.insert("null".into(), Value::Null);
        object.insert("empty".into(), json!(""));
        object.insert("long".into(), json!("x".repeat(2000)));
        object.insert("n".repeat(200), json!(1));
        for i in 0..40 {
            object.insert(format!("f{i:02}"), json!(i));
        }
        let kept: UnmodeledFields = serde_json::from_value(Value::Object(object)).unwrap();
        assert_eq!(kept.names().count(), MAX_UNMODELED_FIELDS);
        assert!(kept.names().all(|n| n != "null" && n != "empty"));
        assert!(
            kept.names()
                .all(|n| n.chars().count() <= MAX_UNMODELED_NAME_CHARS)
        );
        let long: UnmodeledFields =
            serde_json::from_value(json!({"long": "x".repeat(2000)})).unwrap();
        assert_eq!(
            long.iter().collect::<Vec<_>>(),
            [("long", &json!("(2002 bytes of JSON, not kept)"))]
        );
    }
}
