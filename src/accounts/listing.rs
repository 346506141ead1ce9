//! The shared listings of an account, one per kind of object, and what a resource looks up in
//! them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ngrok_api::{Kind, Listed};

/// How many unreadable ids one warning names.
const MAX_IDS_LOGGED: usize = 5;

/// All objects of one kind in an account at one moment, by id.
pub struct Snapshot<T> {
    /// When the listing started: it reflects every write that finished before this.
    pub started: Instant,
    /// The objects that parse.
    pub objects: HashMap<String, T>,
    /// Objects that exist but do not parse, by id, with the client's bounded reason (which
    /// quotes no value): they cannot be compared, and must not be taken for absent.
    pub uncomparable: HashMap<String, String>,
    /// Objects that do not parse and whose id cannot be read either: any id missing from the
    /// listing might be one of them.
    pub without_id: usize,
}

/// What a listing says about one id.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a, T> {
    Found(&'a T),
    /// The object exists (or may: see [`Snapshot::without_id`]) but cannot be read; `reason`
    /// is one bounded line for a condition (`RemoteUnreadable`).
    Uncomparable {
        reason: &'a str,
    },
    /// Not in the account.
    Absent,
}

const SOME_WITHOUT_ID: &str =
    "the listing holds objects whose id cannot be read, so this one may be among them";

impl<T> Snapshot<T> {
    pub fn new(started: Instant, listed: Listed<T>, id: impl Fn(&T) -> String) -> Self {
        Self {
            started,
            objects: listed.items.into_iter().map(|o| (id(&o), o)).collect(),
            uncomparable: listed
                .unreadable
                .into_iter()
                .map(|u| (u.id, u.reason))
                .collect(),
            without_id: listed.without_id,
        }
    }

    /// The object `id`, or why it cannot be compared, or that it is absent. Only `Absent`
    /// lets a caller conclude that the object is gone.
    pub fn lookup(&self, id: &str) -> Lookup<'_, T> {
        if let Some(object) = self.objects.get(id) {
            return Lookup::Found(object);
        }
        if let Some(reason) = self.uncomparable.get(id) {
            return Lookup::Uncomparable { reason };
        }
        if self.without_id > 0 {
            return Lookup::Uncomparable {
                reason: SOME_WITHOUT_ID,
            };
        }
        Lookup::Absent
    }

    /// True when every object of the account was read: a search over [`objects`](Self::objects)
    /// (the lost-create search) saw everything, so finding nothing means there is nothing.
    pub fn is_complete(&self) -> bool {
        self.uncomparable.is_empty() && self.without_id == 0
    }
}

/// The latest listing of each kind of object, found by the kind's type: a kind's listing is
/// made the first time it is asked for, so a kind needs nothing here to be listed.
#[derive(Default)]
pub(super) struct Listings(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Listings {
    /// The listing of kind `K`.
    pub(super) fn of<K: Kind>(&self) -> Arc<Listing<K>> {
        let mut by_kind = self.0.lock().expect("listings lock");
        let listing = by_kind
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Arc::new(Listing::<K>::default()))
            .clone();
        listing
            .downcast::<Listing<K>>()
            .expect("each listing is filed under its own kind's type")
    }
}

/// The latest listing of one kind. Single flight: concurrent callers wait for one listing
/// instead of each making one.
pub(super) struct Listing<T>(tokio::sync::Mutex<Option<Arc<Snapshot<T>>>>);

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Self(tokio::sync::Mutex::new(None))
    }
}

impl<T> Listing<T> {
    /// A listing that started after `after` (any listing when `None`), made with `list` now if
    /// the latest one is older.
    pub(super) async fn after<F>(
        &self,
        after: Option<Instant>,
        list: impl FnOnce() -> F,
        id: impl Fn(&T) -> String,
    ) -> ngrok_api::Result<Arc<Snapshot<T>>>
    where
        F: Future<Output = ngrok_api::Result<Listed<T>>>,
    {
        let mut latest = self.0.lock().await;
        if let Some(snapshot) = latest.as_ref()
            && after.is_none_or(|after| snapshot.started > after)
        {
            return Ok(snapshot.clone());
        }
        let started = Instant::now();
        let snapshot = Arc::new(Snapshot::new(started, list().await?, id));
        if !snapshot.is_complete() {
            let mut ids: Vec<&str> = snapshot.uncomparable.keys().map(String::as_str).collect();
            ids.sort_unstable();
            ids.truncate(MAX_IDS_LOGGED);
            tracing::warn!(
                unreadable = snapshot.uncomparable.len(),
                without_id = snapshot.without_id,
                ids = ids.join(","),
                "some ngrok objects of the account cannot be read; they are not compared"
            );
        }
        *latest = Some(snapshot.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use ngrok_api::Unreadable;

    use super::*;

    fn snapshot(items: &[&str], unreadable: &[&str], without_id: usize) -> Snapshot<String> {
        let listed = Listed {
            items: items.iter().map(|s| s.to_string()).collect(),
            unreadable: unreadable
                .iter()
                .map(|id| Unreadable {
                    id: id.to_string(),
                    reason: "target: unknown target type splunk".into(),
                })
                .collect(),
            without_id,
        };
        Snapshot::new(Instant::now(), listed, |s| s.clone())
    }

    #[test]
    fn an_unreadable_object_is_never_absent() {
        let s = snapshot(&["ed_1"], &["ed_2"], 0);
        assert_eq!(s.lookup("ed_1"), Lookup::Found(&"ed_1".to_string()));
        assert_eq!(
            s.lookup("ed_2"),
            Lookup::Uncomparable {
                reason: "target: unknown target type splunk"
            }
        );
        assert_eq!(s.lookup("ed_3"), Lookup::Absent);
        assert!(!s.is_complete());

        let s = snapshot(&["ed_1"], &[], 1);
        assert!(matches!(s.lookup("ed_3"), Lookup::Uncomparable { .. }));
        assert!(!s.is_complete());
        assert!(snapshot(&["ed_1"], &[], 0).is_complete());
    }
}
