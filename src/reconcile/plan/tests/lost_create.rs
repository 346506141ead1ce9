//! A create whose answer was lost (`NgrokUnknownOutcome`): the search for its outcome before
//! creating again, twins, and a listing that could not read every object.

use super::*;

both_kinds!(
    unknown_outcome_looks_for_the_lost_create_before_creating_again,
    ambiguous_create_stalls_naming_the_candidates,
    twins_lost_creates_are_shared_out_oldest_first,
    defect_3_no_create_again_while_the_listing_is_incomplete,
    lost_create_candidates_are_same_content_created_after_the_intent_and_unclaimed,
    a_lost_create_search_waits_for_its_turn_like_a_create,
);

fn unknown_outcome_looks_for_the_lost_create_before_creating_again<K: Fixture>() {
    let given = Given::<K>::new().pending();
    let f = given.facts();
    assert_eq!(read(&f), Read::LostCreate(K::pending()));
    // None: the create did not happen.
    assert_eq!(steps(&plan(&f, candidates(vec![], 1))), ["Create"]);
    // One: it did.
    let found = plan(&f, candidates(vec![K::remote("#7", "audit", NOW)], 1));
    assert_eq!(steps(&found), ["RecordLostCreate #7 changed=false"]);
    assert_eq!(
        outcome_shown::<K>(&found.outcome),
        row("True", "False", "False", "Synced")
    );
    // The spec changed since the intent: what was sent is forgotten, the next pass updates it.
    let changed = Given::<K>::new().pending().describing("changed since");
    let found = plan(
        &changed.facts(),
        candidates(vec![K::remote("#7", "audit", NOW)], 1),
    );
    assert_eq!(steps(&found), ["RecordLostCreate #7 changed=true"]);
    let error = Error::NgrokUnknownOutcome(ngrok_api::Error::Config("timeout".into()));
    assert_eq!(
        shown::<K>(&Phase::Failed(&error)),
        row("False", "True", "False", "NgrokUnknownOutcome")
    );
}

fn ambiguous_create_stalls_naming_the_candidates<K: Fixture>() {
    let given = Given::<K>::new().pending();
    let found = vec![K::remote("#b", "audit", NOW), K::remote("#a", "audit", NOW)];
    let plan = plan(&given.facts(), candidates(found, 1));
    assert!(plan.steps.is_empty());
    assert_eq!(
        outcome_shown::<K>(&plan.outcome),
        row("False", "False", "True", "AmbiguousCreate")
    );
    let message = failure(&plan).message();
    let named = format!("{}, {}", id_of::<K>("#a"), id_of::<K>("#b"));
    assert!(message.contains(&named), "{message}");
}

/// Twins (identical content) whose creates were both in flight when a process was killed:
/// two candidates and two intents. The first to search takes the oldest object; the other
/// (searching after, with that one claimed) finds the rest. A third candidate is a look-alike
/// nobody can place: a person decides.
fn twins_lost_creates_are_shared_out_oldest_first<K: Fixture>() {
    let given = Given::<K>::new().pending();
    let f = given.facts();
    let later = "2030-01-01T00:00:05Z";
    let twins = || {
        vec![
            K::remote("#a", "audit", later),
            K::remote("#b", "audit", NOW),
        ]
    };
    let taken = plan(&f, candidates(twins(), 2));
    assert_eq!(steps(&taken), ["RecordLostCreate #b changed=false"]);
    let mut three = twins();
    three.push(K::remote("#c", "audit", NOW));
    assert_eq!(
        outcome_shown::<K>(&plan(&f, candidates(three, 2)).outcome),
        row("False", "False", "True", "AmbiguousCreate")
    );
}

/// Defect 3: a lost create is not sent again while the account holds objects that cannot be
/// read: it may be one of them.
fn defect_3_no_create_again_while_the_listing_is_incomplete<K: Fixture>() {
    let given = Given::<K>::new().pending();
    let plan = plan(
        &given.facts(),
        Seen::Candidates {
            listing: vec![],
            claimed: HashSet::new(),
            complete: false,
            alike: 1,
        },
    );
    assert!(plan.steps.is_empty());
    assert_eq!(
        outcome_shown::<K>(&plan.outcome),
        row("False", "True", "False", "RemoteUnreadable")
    );
}

fn lost_create_candidates_are_same_content_created_after_the_intent_and_unclaimed<K: Fixture>() {
    let objects = [
        K::remote("#mine", "audit", NOW),
        K::remote("#other_content", "other", NOW),
        K::remote("#before", "audit", "2026-11-29T11:00:00Z"),
        K::remote("#claimed", "audit", NOW),
    ];
    let claimed = [id_of::<K>("#claimed")].into();
    let found = lost_create_candidates::<K>(objects.iter(), &K::pending(), &claimed);
    assert_eq!(
        found.iter().map(|o| short::<K>(o.id())).collect::<Vec<_>>(),
        ["#mine"]
    );
}

/// The search for a lost create takes the account's create guard as a create does: while
/// another reconcile creates or searches for the same content, it is not made, and nothing is
/// created meanwhile.
fn a_lost_create_search_waits_for_its_turn_like_a_create<K: Fixture>() {
    let given = Given::<K>::new().pending();
    let f = Facts {
        create_turn: Some(CreateTurn {
            guard_held_elsewhere: true,
            ..Default::default()
        }),
        ..given.facts()
    };
    assert!(needs_create_turn(&f, &Seen::<K::Remote>::NotRead));
    let waits = plan(&f, Seen::NotRead);
    assert!(waits.steps.is_empty(), "{:?}", steps(&waits));
    assert!(matches!(
        waits.outcome,
        Outcome::Failed(Error::CreateQueued)
    ));
}
