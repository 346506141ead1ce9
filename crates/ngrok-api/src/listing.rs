//! What a list call returns (all pages, [`Listed`], or one, [`Page`]): every object that
//! parses, and for the others, which they are and why they do not parse. Items are parsed one by one, so that one object the client cannot
//! read (a target type ngrok added after this client was written, a `null` where the types
//! expect a value) costs that object only, never the whole listing.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::text::one_line;

/// The longest reason kept for an object that does not parse.
pub const MAX_REASON_CHARS: usize = 200;
/// The longest id accepted from an object that does not parse (ngrok's are ~30 characters).
const MAX_ID_CHARS: usize = 100;

/// Every object of a list call, across all pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The objects that parse, in ngrok's order (newest first).
    pub items: Vec<T>,
    /// The objects that do not parse but whose id can be read: they exist and cannot be
    /// compared.
    pub unreadable: Vec<Unreadable>,
    /// Objects that do not parse and whose id cannot be read either (not even a string).
    pub without_id: usize,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            unreadable: Vec::new(),
            without_id: 0,
        }
    }
}

impl<T> Listed<T> {
    /// Adds `other`'s objects after these (the next page's, which are older).
    pub(crate) fn append(&mut self, other: Listed<T>) {
        self.items.extend(other.items);
        self.unreadable.extend(other.unreadable);
        self.without_id += other.without_id;
    }
}

/// One page of a list call ([`Client::list_page`](crate::Client::list_page)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The page's objects, newest first, each parsed on its own.
    pub listed: Listed<T>,
    /// The page's own URI, as ngrok gives it; empty when missing.
    pub uri: String,
    /// Absolute URI of the next (older) page; `None` on the last page.
    pub next_page_uri: Option<String>,
}

/// An object of a listing that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The object's id.
    pub id: String,
    /// Where and why it does not parse, one line, at most [`MAX_REASON_CHARS`] characters,
    /// quoting no value: e.g. `target: unknown target type splunk`.
    pub reason: String,
}

impl<T: DeserializeOwned> Listed<T> {
    /// Parses one item of a page and files it.
    pub(crate) fn push(&mut self, item: Value) {
        let id = readable_id(&item);
        match serde_path_to_error::deserialize::<_, T>(item) {
            Ok(parsed) => self.items.push(parsed),
            Err(error) => match id {
                Some(id) => self.unreadable.push(Unreadable {
                    id,
                    reason: reason(&error),
                }),
                None => self.without_id += 1,
            },
        }
    }
}

/// The `id` of an item, when it is a plausible id (a short string without spaces or controls).
fn readable_id(item: &Value) -> Option<String> {
    item.get("id")
        .and_then(Value::as_str)
        .filter(|id| {
            !id.is_empty()
                && id.chars().count() <= MAX_ID_CHARS
                && !id.chars().any(|c| c.is_whitespace() || c.is_control())
        })
        .map(str::to_owned)
}

/// `path: message`, with every double-quoted part of serde's message (which can be a value of
/// the object) replaced by `"…"`, on one bounded line.
pub(crate) fn reason(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    let message = redact_quoted(&error.inner().to_string());
    one_line(&format!("{path}: {message}"), MAX_REASON_CHARS)
}

fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Thing {
        id: String,
        size: u32,
    }

    #[test]
    fn each_item_is_parsed_on_its_own() {
        let mut listed = Listed::<Thing>::default();
        listed.push(json!({"id": "t_1", "size": 1}));
        listed.push(json!({"id": "t_2", "size": "secret-looking value"}));
        listed.push(json!({"id": 3, "size": "x"}));
        listed.push(json!(null));
        listed.push(json!({"id": "has space", "size": null}));
        assert_eq!(
            listed.items,
            [Thing {
                id: "t_1".into(),
                size: 1
            }]
        );
        assert_eq!(listed.unreadable.len(), 1);
        assert_eq!(listed.unreadable[0].id, "t_2");
        let reason = &listed.unreadable[0].reason;
        assert!(reason.starts_with("size: invalid type: string"), "{reason}");
        assert!(!reason.contains("secret-looking"), "{reason}");
        assert_eq!(listed.without_id, 3);
    }

    #[test]
    fn reasons_quote_no_value_and_are_bounded() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "abc", expected u32"#),
            r#"invalid type: string "…", expected u32"#
        );
        let mut listed = Listed::<Thing>::default();
        listed.push(json!({"id": "t_1", "size": "x".repeat(10_000)}));
        assert!(listed.unreadable[0].reason.chars().count() <= MAX_REASON_CHARS + 1);
    }
}
