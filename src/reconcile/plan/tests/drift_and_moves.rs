//! What happens to an object behind the operator's back: a dashboard edit or delete, a move to
//! another account (`AccountChanged`), an object this version cannot read (`RemoteUnreadable`),
//! and, for subscriptions, what ngrok holds that the spec does not name (`RemoteFieldNotModeled`).

use super::*;

both_kinds!(
    a_dashboard_edit_is_reverted,
    a_dashboard_delete_is_created_again,
    defect_2_a_move_to_another_account_takes_the_object_along,
    defect_2_a_leftover_of_a_move_is_deleted_next,
    defect_3_an_unreadable_object_is_left_alone,
);

fn a_dashboard_edit_is_reverted<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let plan = plan(&given.facts(), Seen::Found(K::remote("#1", "edited", NOW)));
    assert_eq!(steps(&plan), ["Update #1 description Drift", "Record #1"]);
}

fn a_dashboard_delete_is_created_again<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let f = given.facts();
    assert!(needs_create_turn(
        &f,
        &Seen::<K::Remote>::Gone { elsewhere: None }
    ));
    let plan = plan(&f, Seen::Gone { elsewhere: None });
    assert_eq!(steps(&plan), ["ForgetGone #1", "Create"]);
    assert_eq!(
        outcome_shown::<K>(&plan.outcome),
        row("True", "False", "False", "Synced")
    );
}

/// Defect 2: a change of API key to another account is not a dashboard delete.
fn defect_2_a_move_to_another_account_takes_the_object_along<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let f = Facts {
        previous_key: Some("old-key-fingerprint"),
        ..given.facts()
    };
    let elsewhere = |where_: Elsewhere<K::Remote>| {
        plan(
            &f,
            Seen::Gone {
                elsewhere: Some(where_),
            },
        )
    };
    let moved = elsewhere(Elsewhere::InOldAccount(K::remote("#1", "audit", NOW)));
    assert_eq!(
        steps(&moved),
        ["ForgetGone #1", "Create", "DeleteFromOldAccount #1"]
    );
    // The old key no longer works and the accounts cannot be told the same: a person decides.
    let stalled = elsewhere(Elsewhere::CannotTell(PreviousAccount::KeyRefused));
    assert!(stalled.steps.is_empty());
    assert_eq!(
        outcome_shown::<K>(&stalled.outcome),
        row("False", "False", "True", "AccountChanged")
    );
    let message = failure(&stalled).message();
    assert!(
        message.contains(&id_of::<K>("#1")),
        "names the old id: {message}"
    );
    // The previous key forgotten (a restart since the change): the same.
    let forgotten = Facts {
        previous_key: None,
        ..given.facts()
    };
    let stalled = plan(
        &forgotten,
        Seen::Gone {
            elsewhere: Some(Elsewhere::InOldAccount(K::remote("#1", "audit", NOW))),
        },
    );
    assert_eq!(failure(&stalled).reason(), "AccountChanged");
    // A rotation within the account: the object is seen with the new key, nothing is created.
    let rotated = plan(&f, Seen::Found(K::remote("#1", "audit", NOW)));
    assert_eq!(steps(&rotated), ["Record #1"]);
    // Same account, and the object is really gone: created again.
    let deleted = elsewhere(Elsewhere::SameAccount);
    assert_eq!(steps(&deleted), ["ForgetGone #1", "Create"]);
    let both = elsewhere(Elsewhere::GoneFromBoth);
    assert_eq!(steps(&both), ["ForgetGone #1", "Create"]);
}

/// Defect 2: a move whose delete in the old account failed finishes it on the next pass.
fn defect_2_a_leftover_of_a_move_is_deleted_next<K: Fixture>() {
    let given = Given::<K>::synced("#2");
    let one = id_of::<K>("#1");
    let f = Facts {
        leftover: Some((&one, "old-key-fingerprint")),
        ..given.facts()
    };
    let plan = plan(&f, Seen::Found(K::remote("#2", "audit", NOW)));
    assert_eq!(steps(&plan), ["DeleteFromOldAccount #1", "Record #2"]);
    let Step::DeleteFromOldAccount { key, .. } = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(
        key, "old-key-fingerprint",
        "names the account by its key's fingerprint"
    );
}

/// Defect 3: an object the client cannot read is not compared, not re-created, and only it
/// is affected; it is retried, not stalled.
fn defect_3_an_unreadable_object_is_left_alone<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let plan = plan(
        &given.facts(),
        Seen::Unreadable("unknown target type splunk".into()),
    );
    assert!(plan.steps.is_empty(), "neither updated nor created again");
    assert_eq!(
        outcome_shown::<K>(&plan.outcome),
        row("False", "True", "False", "RemoteUnreadable")
    );
}

// --- A subscription whose update would drop what ngrok holds outside the spec (issue 21) -----

/// Subscription only: a destination's update drops nothing (its `check_update` is the
/// default), while a subscription's sources hold filters (and fields this operator does not
/// model) that can be set in ngrok's dashboard.
///
/// An adopted subscription with a filter set in ngrok's dashboard that the spec does not name:
/// no update is sent (`RemoteFieldNotModeled`, Stalled), the adoption is still recorded; once
/// the spec names the filter, it is Synced without an update.
#[test]
fn remote_field_not_modeled_when_an_update_would_drop_a_dashboard_filter() {
    const DASHBOARD_FILTER: &str = "ev.conn.server_port == 443";
    let with_filter = |filter: Option<&str>| {
        let spec = serde_json::from_value(json!({
            "sources": [{"type": SOURCE, "filter": filter}],
            "destinationIds": ["ed_1"]
        }))
        .unwrap();
        let mut given = Given::<EventSubscription>::new();
        given.prepared.desired = crate::desired::subscription::desired(&spec, &[]).unwrap();
        given
    };
    let mut remote = EventSubscription::remote("esb_1", "", NOW);
    remote.sources[0].filter = DASHBOARD_FILTER.into();
    let adopting = |given: &Given<EventSubscription>| {
        plan(&given.adopting("esb_1"), Seen::Found(remote.clone()))
    };

    let unnamed = adopting(&with_filter(None));
    assert_eq!(steps(&unnamed), ["Adopt #1"], "adopted, nothing sent");
    assert_eq!(
        outcome_shown::<EventSubscription>(&unnamed.outcome),
        row("False", "False", "True", "RemoteFieldNotModeled")
    );
    let message = failure(&unnamed).message();
    assert!(
        message.contains("sources[http_request_complete.v0].filter")
            && message.contains("name it in the spec")
            && !message.contains(DASHBOARD_FILTER),
        "{message}"
    );

    let named = adopting(&with_filter(Some(DASHBOARD_FILTER)));
    assert_eq!(steps(&named), ["Adopt #1", "Record #1"]);
    assert_eq!(
        outcome_shown::<EventSubscription>(&named.outcome),
        row("True", "False", "False", "Synced")
    );

    // Another filter, or `""`, replaces it on purpose: one update of the sources.
    for replaced in [Some("ev.conn.server_port == 80"), Some("")] {
        assert_eq!(
            steps(&adopting(&with_filter(replaced))),
            ["Adopt #1", "Update #1 sources Spec", "Record #1"]
        );
    }
}
