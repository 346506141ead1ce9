//! Creating: the first create (for a subscription, once its destinations are Ready), its turn
//! among creates of the same content, and what never creates again (a refusal, a failed status
//! write, an id already recorded).

use super::*;

both_kinds!(
    creating_when_there_is_no_object_yet,
    create_queued_only_behind_a_pending_create_of_the_same_account,
    refused_inputs_are_not_sent_again,
    defect_1_a_failed_write_of_a_new_id_is_not_a_lost_object,
    defect_6_a_resource_with_an_id_is_never_created_again_without_a_look,
);

fn creating_when_there_is_no_object_yet<K: Fixture>() {
    let given = Given::<K>::new();
    let f = given.facts();
    assert_eq!(
        reads(&f),
        "Nothing",
        "a first create reads nothing from ngrok"
    );
    assert!(needs_create_turn(&f, &Seen::<K::Remote>::NotRead));
    let plan = plan(&f, Seen::NotRead);
    assert_eq!(steps(&plan), ["Create"]);
    // Written before the POST, by `act::create`.
    let creating = Phase::Progressing {
        reason: "Creating",
        message: String::new(),
    };
    assert_eq!(
        shown::<K>(&creating),
        row("False", "True", "False", "Creating")
    );
}

fn create_queued_only_behind_a_pending_create_of_the_same_account<K: Fixture>() {
    let given = Given::<K>::new();
    let fingerprint = K::fingerprint(&given.prepared.desired);
    let other = OtherIntent {
        pending: pending(fingerprint.clone()),
        uid: "uid-other".to_string(),
        managed: true,
    };
    let intent = (other.pending.clone(), other.uid.clone());
    // `observe::create_turn` hands the plan only the intents of the same account (defect 5: a
    // stale intent of another account, or of a resource this process has not reconciled,
    // held up every resource with the same content) whose resources have no id yet.
    assert!(create_must_wait(
        &fingerprint,
        None,
        std::slice::from_ref(&intent)
    ));
    assert!(!create_must_wait(&fingerprint, None, &[]));
    let other_content = K::fingerprint(&K::request("other content"));
    assert!(!create_must_wait(
        &other_content,
        None,
        std::slice::from_ref(&intent)
    ));
    // The plan: a create behind such an intent waits, and so does one whose account's create
    // guard is held by another reconcile (a create or search of the same content).
    let now: Timestamp = NOW.parse().unwrap();
    let turn_behind = |other: OtherIntent| CreateTurn {
        others_pending: vec![other],
        now,
        ..Default::default()
    };
    let behind = Facts {
        create_turn: Some(turn_behind(other.clone())),
        ..given.facts()
    };
    // Issue 19, decided in the plan: the intent of a resource no longer managed (paused,
    // observing, being deleted), or older than any create, holds nothing up.
    for lapsed in [
        OtherIntent {
            managed: false,
            ..other.clone()
        },
        OtherIntent {
            pending: PendingCreate {
                started_at: "2026-11-29T11:49:59Z".into(),
                ..other.pending.clone()
            },
            ..other.clone()
        },
    ] {
        let f = Facts {
            create_turn: Some(turn_behind(lapsed)),
            ..given.facts()
        };
        assert_eq!(steps(&plan(&f, Seen::NotRead)), ["Create"]);
    }
    let held = Some(CreateTurn {
        guard_held_elsewhere: true,
        ..Default::default()
    });
    let guarded = Facts {
        create_turn: held.clone(),
        ..given.facts()
    };
    let unobserved = Facts {
        create_turn: None,
        ..given.facts()
    };
    for f in [&behind, &guarded, &unobserved] {
        let waits = plan(f, Seen::NotRead);
        assert!(waits.steps.is_empty(), "nothing is done while waiting");
        assert_eq!(
            outcome_shown::<K>(&waits.outcome),
            row("False", "True", "False", "CreateQueued")
        );
    }
    assert_eq!(steps(&plan(&given.facts(), Seen::NotRead)), ["Create"]);
    // A dashboard delete, re-created on the resource's turn only.
    let gone = Given::<K>::status(Some("#1"), false, Some(INPUTS));
    let f = Facts {
        create_turn: held,
        ..gone.facts()
    };
    assert!(needs_create_turn(
        &f,
        &Seen::<K::Remote>::Gone { elsewhere: None }
    ));
    assert!(!needs_create_turn(
        &f,
        &Seen::Found(K::remote("#1", "audit", NOW))
    ));
    let waits = plan(&f, Seen::Gone { elsewhere: None });
    assert!(waits.steps.is_empty(), "the id is kept until the create");
    assert!(matches!(
        waits.outcome,
        Outcome::Failed(Error::CreateQueued)
    ));
    assert_eq!(
        shown::<K>(&Phase::Failed(&Error::CreateQueued)),
        row("False", "True", "False", "CreateQueued")
    );
}

fn refused_inputs_are_not_sent_again<K: Fixture>() {
    let given = Given::<K>::status(Some("#1"), false, Some(INPUTS));
    let f = Facts {
        refused_before: true,
        ..given.facts()
    };
    assert_eq!(reads(&f), "Nothing");
    assert!(!needs_create_turn(&f, &Seen::<K::Remote>::NotRead));
    let plan = plan(&f, Seen::NotRead);
    assert!(plan.steps.is_empty());
    assert!(
        matches!(plan.outcome, Outcome::Unchanged),
        "the Stalled status stays as written"
    );
}

/// Defect 1: the API server failed the status write that records a new id. The next pass
/// takes the object this process created, and never creates a twin.
fn defect_1_a_failed_write_of_a_new_id_is_not_a_lost_object<K: Fixture>() {
    let given = Given::<K>::new().pending();
    let created = K::remote("#1", "audit", NOW);
    let f = Facts {
        created_unrecorded: Some(&created),
        ..given.facts()
    };
    assert_eq!(reads(&f), "Nothing", "no listing: the id is known");
    assert!(!needs_create_turn(&f, &Seen::<K::Remote>::NotRead));
    assert_eq!(steps(&plan(&f, Seen::NotRead)), ["RecordCreated #1"]);
    // After a restart the memory is gone: the listing finds the resource's own object, as it
    // is not claimed by any other.
    let found =
        lost_create_candidates::<K>([created.clone()].iter(), &K::pending(), &Default::default());
    assert_eq!(found.len(), 1);
}

/// Defect 6: a reconcile that starts from the status this process wrote (not a stale cache)
/// sees the id and creates nothing.
fn defect_6_a_resource_with_an_id_is_never_created_again_without_a_look<K: Fixture>() {
    for given in [
        Given::<K>::synced("#1"),
        Given::<K>::status(Some("#1"), false, None),
    ] {
        let f = given.facts();
        assert_ne!(reads(&f), "Nothing");
        assert!(!needs_create_turn(&f, &Seen::<K::Remote>::NotRead));
        assert_eq!(
            steps(&plan(&f, Seen::Found(K::remote("#1", "audit", NOW))))
                .last()
                .unwrap(),
            "Record #1"
        );
    }
}

/// Subscription only (a destination waits for no one): what `prepare` hands over when a
/// destination the subscription names is not Ready.
#[test]
fn waiting_for_other_resources_is_reconciling() {
    let waits = awaiting(vec![
        "EventDestination \"a\", which is not Ready yet".into(),
    ]);
    assert_eq!(
        outcome_shown::<EventSubscription>(&waits),
        row("False", "True", "False", "DestinationNotReady")
    );
    let Outcome::Failed(error) = &waits else {
        panic!()
    };
    let message = error.message();
    assert!(message.contains("EventDestination \"a\""), "{message}");
}

// --- The create queue: strings of content, whatever the kind ---------------------------------

/// Two resources of the same content whose creates were both in flight when a process was
/// killed: the older intent goes first (then the smaller uid), the other waits for it, and
/// never the two for each other (they did, for ever, in a CI run of `tests/kill.rs`).
/// `create_must_wait` compares fingerprints and times only: no kind to run it for.
#[test]
fn two_pending_creates_of_the_same_content_queue_by_age_then_uid() {
    let at = |started_at: &str| PendingCreate {
        started_at: started_at.into(),
        fingerprint: "fp".into(),
    };
    let (older, newer) = (at("2026-11-30T02:23:28.4Z"), at("2026-11-30T02:23:38.085Z"));
    let must_wait = |own: &PendingCreate, uid: &str, other: &PendingCreate, other_uid: &str| {
        create_must_wait(
            "fp",
            Some((own, uid)),
            &[(other.clone(), other_uid.to_string())],
        )
    };
    assert!(must_wait(&newer, "b", &older, "a"), "the newer waits");
    assert!(!must_wait(&older, "a", &newer, "b"), "the older goes");
    // The same moment: the smaller uid goes.
    assert!(must_wait(&older, "b", &older, "a"));
    assert!(!must_wait(&older, "a", &older, "b"));
    // An intent of other content (the spec changed since) keeps no place in this queue.
    let stale = PendingCreate {
        fingerprint: "before".into(),
        ..older.clone()
    };
    assert!(must_wait(&stale, "a", &newer, "b"));
}

/// Issue 19: a paused (or observing, or deleted) resource's intent held every identical create
/// of its account for ever (`CreateQueued`); an intent holds others only while its resource is
/// managed, and only for a bounded age. Of an intent alone: no kind to run it for.
#[test]
fn an_intent_holds_others_only_while_managed_and_young() {
    let now: Timestamp = NOW.parse().unwrap();
    let at = |started_at: &str| PendingCreate {
        started_at: started_at.into(),
        fingerprint: "fp".into(),
    };
    let young = at("2026-11-29T11:59:00Z");
    assert!(intent_holds_others(&young, true, now));
    assert!(
        !intent_holds_others(&young, false, now),
        "paused: held for ever"
    );
    let old = at("2026-11-29T11:49:59Z");
    assert!(
        !intent_holds_others(&old, true, now),
        "older than any create"
    );
    assert!(!intent_holds_others(&at("not a time"), true, now));
}
