//! A resource with an object: in sync (`Synced`), a change of its spec, and the modes that
//! write nothing to ngrok (`Paused`, `Observing`).

use super::*;

both_kinds!(
    synced_when_ngrok_matches_the_spec,
    synced_and_checked_a_moment_ago_reads_nothing,
    a_drift_check_on_its_own_schedule_reads_one_object_not_the_listing,
    a_spec_change_reads_the_object_and_patches_what_differs,
    paused_changes_nothing,
    observing_reports_differences_and_writes_nothing,
    observing_without_an_object_is_invalid,
);

fn synced_when_ngrok_matches_the_spec<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let f = given.facts();
    assert_eq!(
        reads(&f),
        "Listing #1",
        "a drift check reads the shared listing"
    );
    let plan = plan(&f, Seen::Found(K::remote("#1", "audit", NOW)));
    assert_eq!(steps(&plan), ["Record #1"]);
    assert_eq!(
        outcome_shown::<K>(&plan.outcome),
        row("True", "False", "False", "Synced")
    );
}

fn synced_and_checked_a_moment_ago_reads_nothing<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let f = Facts {
        verified_recently: true,
        ..given.facts()
    };
    assert_eq!(quiet_outcome(&f), row("True", "False", "False", "Synced"));
}

/// Issue 19, item 2: a drift check off the account's shared pass (its own drift-interval)
/// reads its one object; a listing would cost ceil(N/100) calls at each of its checks.
fn a_drift_check_on_its_own_schedule_reads_one_object_not_the_listing<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let mut f = Facts {
        own_drift_schedule: true,
        ..given.facts()
    };
    assert_eq!(reads(&f), "OwnDriftCheck #1");
    let plan = plan(&f, Seen::Found(K::remote("#1", "audit", NOW)));
    assert_eq!(steps(&plan), ["Record #1"]);
    // Checked a moment ago: no read, on either schedule.
    f.verified_recently = true;
    assert_eq!(reads(&f), "Nothing");
    // Out of sync (the inputs changed): the object, as on the shared schedule.
    let changed = Given::<K>::status(Some("#1"), true, Some("old-inputs"));
    let f = Facts {
        own_drift_schedule: true,
        ..changed.facts()
    };
    assert_eq!(reads(&f), "Object #1");
}

fn a_spec_change_reads_the_object_and_patches_what_differs<K: Fixture>() {
    let given = Given::<K>::synced("#1").describing("new description");
    let f = Facts {
        generation: Some(2),
        ..given.facts()
    };
    assert_eq!(reads(&f), "Object #1", "not in sync: one GET");
    let plan = plan(&f, Seen::Found(K::remote("#1", "old", NOW)));
    assert_eq!(steps(&plan), ["Update #1 description Spec", "Record #1"]);
}

fn paused_changes_nothing<K: Fixture>() {
    let given = Given::<K>::status(Some("#1"), true, Some("old-inputs"));
    let f = Facts {
        mode: Mode::Paused,
        ..given.facts()
    };
    assert!(!needs_create_turn(
        &f,
        &Seen::<K::Remote>::Gone { elsewhere: None }
    ));
    assert_eq!(quiet_outcome(&f), row("False", "False", "False", "Paused"));
}

fn observing_reports_differences_and_writes_nothing<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let f = Facts {
        mode: Mode::Observe,
        ..given.facts()
    };
    assert_eq!(reads(&f), "Object #1");
    let same = plan(&f, Seen::Found(K::remote("#1", "audit", NOW)));
    assert!(same.steps.is_empty());
    assert_eq!(
        outcome_shown::<K>(&same.outcome),
        row("True", "False", "False", "Observing")
    );
    let edited = plan(
        &f,
        Seen::Found(K::remote("#1", "edited in the dashboard", NOW)),
    );
    assert!(
        edited.steps.is_empty(),
        "observe mode never writes to ngrok"
    );
    assert_eq!(
        outcome_shown::<K>(&edited.outcome),
        row("False", "False", "False", "Observing")
    );
    let Outcome::Observing(drift) = &edited.outcome else {
        unreachable!()
    };
    assert_eq!(
        drift.iter().map(|d| d.path.as_str()).collect::<Vec<_>>(),
        ["description"]
    );
    // Deleted in ngrok: managing would create it again.
    let gone = plan(&f, Seen::Gone { elsewhere: None });
    assert!(gone.steps.is_empty(), "{:?}", steps(&gone));
    assert_eq!(
        outcome_shown::<K>(&gone.outcome),
        row("False", "False", "False", "Observing")
    );
}

fn observing_without_an_object_is_invalid<K: Fixture>() {
    let given = Given::<K>::new();
    let f = Facts {
        mode: Mode::Observe,
        ..given.facts()
    };
    assert_eq!(
        quiet_outcome(&f),
        row("False", "False", "True", "InvalidSpec")
    );
}
