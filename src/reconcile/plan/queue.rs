//! The create queue: of the intents to create the same content in one account, which hold a
//! create up ([`intent_holds_others`]) and in what order they go ([`create_must_wait`]), so
//! that a lost create's search never takes another resource's object and two intents alike
//! never wait for each other.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::PendingCreate;

/// Whether a create of `fingerprint` must wait: another resource of the same account has a
/// create of the same content whose outcome is not known yet (its lost-create search could
/// take this create's object). `others`: the intents to create of other resources of the
/// same account that still hold others ([`intent_holds_others`]) and their uids; resources of
/// other accounts, or not reconciled by this process, do not hold a create up. `own`: this
/// resource's pending create and uid, if it has one: then it waits only for those ahead of it
/// ([`queue_place`]), so that two intents of the same content (both in flight when a process
/// was killed) never wait for each other.
pub fn create_must_wait(
    fingerprint: &str,
    own: Option<(&PendingCreate, &str)>,
    others: &[(PendingCreate, String)],
) -> bool {
    let own = own
        .filter(|(pending, _)| pending.fingerprint == fingerprint)
        .map(|(pending, uid)| queue_place(pending, uid));
    others.iter().any(|(pending, uid)| {
        pending.fingerprint == fingerprint && own.is_none_or(|own| queue_place(pending, uid) < own)
    })
}

/// How long an intent to create can hold up another resource's create of the same content
/// ([`intent_holds_others`]): longer than a create's whole life in the client (5 attempts of
/// at most 30 s with backoff between them, and a wait for the rate limiter), so that only an
/// intent whose resource stopped pursuing it lapses.
pub const INTENT_HOLDS_OTHERS_FOR: SignedDuration = SignedDuration::from_mins(10);

/// Whether another resource's intent to create, `pending`, can make a create of the same
/// content wait ([`create_must_wait`]) at `now`: only the intent of a resource being managed
/// (`managed`: not paused, not observing, not being deleted), and only for
/// [`INTENT_HOLDS_OTHERS_FOR`] after it was written (an unreadable time holds nothing). A
/// paused resource's intent would otherwise hold every identical resource of its account, in
/// every namespace, for as long as it stays paused; it still runs its own lost-create search
/// when it is managed again (the claimed set keeps the others' objects out of it).
pub fn intent_holds_others(pending: &PendingCreate, managed: bool, now: Timestamp) -> bool {
    managed
        && pending
            .started_at
            .parse::<Timestamp>()
            .is_ok_and(|started| now.duration_since(started) < INTENT_HOLDS_OTHERS_FOR)
}

/// A pending create's place among those of the same content: the older intent first, then
/// the smaller uid. A total order (an unreadable time goes first).
fn queue_place<'a>(pending: &'a PendingCreate, uid: &'a str) -> (Option<Timestamp>, &'a str) {
    (pending.started_at.parse().ok(), uid)
}
