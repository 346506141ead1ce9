//! Adopting (`events.ngrok.io/adopt-id`): taking an existing object, and who may
//! (`AdoptTargetNotFound`, `AdoptTargetInUse`, `AdoptionNotAllowed`, `InvalidSpec`).

use super::*;

both_kinds!(
    adoption_takes_the_object_and_sends_what_differs,
    adopt_target_not_found_or_in_use_stalls,
    adoption_with_the_operator_key_is_for_selected_namespaces_only,
    a_teams_own_account_is_theirs_to_adopt_from,
    an_adopt_id_other_than_the_managed_id_is_invalid,
);

/// Issue 19, item 4: with the operator-wide key, adoption is the platform team's to allow.
fn operator_key_rights(selected: bool, selector: Option<&str>) -> AdoptionRights {
    AdoptionRights {
        operator_key: true,
        namespace_selected: selected,
        selector: selector.map(String::from),
        namespace: "team-a".into(),
        named_by_another_namespace: false,
    }
}

fn adoption_takes_the_object_and_sends_what_differs<K: Fixture>() {
    let (given, five) = (Given::<K>::new(), id_of::<K>("#5"));
    let f = given.adopting(&five);
    assert_eq!(reads(&f), "Object #5");
    let plan = plan(&f, Seen::Found(K::remote("#5", "made by hand", NOW)));
    assert_eq!(
        steps(&plan),
        ["Adopt #5", "Update #5 description Spec", "Record #5"]
    );
    assert_eq!(
        outcome_shown::<K>(&plan.outcome),
        row("True", "False", "False", "Synced")
    );
}

fn adopt_target_not_found_or_in_use_stalls<K: Fixture>() {
    let (given, five) = (Given::<K>::new(), id_of::<K>("#5"));
    let plan_gone = plan(&given.adopting(&five), Seen::Gone { elsewhere: None });
    assert_eq!(
        outcome_shown::<K>(&plan_gone.outcome),
        row("False", "False", "True", "AdoptTargetNotFound")
    );
    let owned = Facts {
        adopt_owner: Some(format!("{} other", K::KIND)),
        ..given.adopting(&five)
    };
    assert_eq!(
        reads(&owned),
        "Nothing",
        "no call for an id another resource manages"
    );
    let plan_owned = plan(&owned, Seen::NotRead);
    assert_eq!(
        outcome_shown::<K>(&plan_owned.outcome),
        row("False", "False", "True", "AdoptTargetInUse")
    );
}

fn adoption_with_the_operator_key_is_for_selected_namespaces_only<K: Fixture>() {
    let (given, five) = (Given::<K>::new(), id_of::<K>("#5"));
    let with = |rights: AdoptionRights, mode: Mode| Facts {
        mode,
        adoption: rights,
        ..given.adopting(&five)
    };
    for mode in [Mode::Manage, Mode::Observe] {
        let f = with(
            operator_key_rights(false, Some("team.example/adopt=true")),
            mode,
        );
        let (shown, message) = refused(&f);
        assert_eq!(shown, row("False", "False", "True", "AdoptionNotAllowed"));
        assert!(
            message.contains(
                "label the namespace to match --adoption-namespace-selector=team.example/adopt=true (kubectl label namespace team-a team.example/adopt=true)"
            ),
            "{message}"
        );
        assert!(message.contains("spec.apiKeyRef"), "{message}");
    }
    // No selector: no namespace may; a selector that is not one key=value is quoted as is.
    let (shown, message) = refused(&with(operator_key_rights(false, None), Mode::Manage));
    assert_eq!(shown, row("False", "False", "True", "AdoptionNotAllowed"));
    assert!(
        message.contains("--adoption-namespace-selector is not set"),
        "{message}"
    );
    let f = with(
        operator_key_rights(false, Some("tier in (a,b)")),
        Mode::Manage,
    );
    let (_, message) = refused(&f);
    assert!(
        message.contains("--adoption-namespace-selector=tier in (a,b),")
            && !message.contains("kubectl label"),
        "{message}"
    );
    // Paused: nothing is done, nothing refused.
    let f = with(operator_key_rights(false, None), Mode::Paused);
    assert_eq!(quiet_outcome(&f), row("False", "False", "False", "Paused"));
    // A selected namespace adopts.
    let f = with(
        operator_key_rights(true, Some("team.example/adopt=true")),
        Mode::Manage,
    );
    assert_eq!(reads(&f), "Object #5");
    let plan = plan(&f, Seen::Found(K::remote("#5", "audit", NOW)));
    assert_eq!(steps(&plan), ["Adopt #5", "Record #5"]);
}

fn a_teams_own_account_is_theirs_to_adopt_from<K: Fixture>() {
    let (given, five) = (Given::<K>::new(), id_of::<K>("#5"));
    let f = Facts {
        adoption: AdoptionRights {
            operator_key: false,
            named_by_another_namespace: true,
            ..operator_key_rights(false, None)
        },
        ..given.adopting(&five)
    };
    assert_eq!(reads(&f), "Object #5");
    let plan = plan(&f, Seen::Found(K::remote("#5", "audit", NOW)));
    assert_eq!(steps(&plan), ["Adopt #5", "Record #5"]);
}

/// Destination only: what another namespace's subscription names (in `spec.destinationIds`,
/// or in what it last sent) is a destination; a subscription's `esb_` id is named by no one.
#[test]
fn an_id_another_namespaces_subscription_names_is_not_adopted_with_the_operator_key() {
    let given = Given::<EventDestination>::new();
    let f = Facts {
        adoption: AdoptionRights {
            named_by_another_namespace: true,
            ..operator_key_rights(true, Some("team.example/adopt=true"))
        },
        ..given.adopting("ed_5")
    };
    let (shown, message) = refused(&f);
    assert_eq!(shown, row("False", "False", "True", "AdoptTargetInUse"));
    assert!(
        message.contains("ed_5 is named by a subscription in another namespace"),
        "{message}"
    );
}

fn an_adopt_id_other_than_the_managed_id_is_invalid<K: Fixture>() {
    let given = Given::<K>::synced("#1");
    let (one, two) = (id_of::<K>("#1"), id_of::<K>("#2"));
    for mode in [Mode::Manage, Mode::Observe] {
        let f = Facts {
            mode,
            ..given.adopting(&two)
        };
        let (shown, message) = refused(&f);
        assert_eq!(shown, row("False", "False", "True", "InvalidSpec"));
        let expected = format!(
            "names {two}, but this resource manages {one} (status.id): remove the annotation, or set it to {one}"
        );
        assert!(message.contains(&expected), "{message}");
    }
    // The id it adopted: nothing to refuse, even where adopting is no longer allowed (it was
    // adopted before).
    let f = Facts {
        adoption: operator_key_rights(false, None),
        ..given.adopting(&one)
    };
    assert_eq!(reads(&f), "Listing #1");
    let plan = plan(&f, Seen::Found(K::remote("#1", "audit", NOW)));
    assert_eq!(steps(&plan), ["Record #1"]);
}
