//! The published objects themselves: names, labels, modes, the YAML, the literals.

use serde_json::json;

use super::harness::{self, Request, interpreter, policy, snapshot};
use super::{good, strict};
use crate::admission_policy::{Scope, object_name, plan as plan_for, to_yaml};

#[test]
fn policies_listing_different_namespaces_do_not_read_each_other() {
    let request = Request::create(good("team-x-db", None));
    let other = policy(
        "a-other",
        json!({"namespaces": ["elsewhere"],
        "secrets": {"requiredLabels": ["x"]}}),
    );
    let plan = plan_for(
        &snapshot(vec![other, strict("Enforce")], &request),
        &Scope::default(),
    );
    let governed = |i: usize| {
        plan.published[i]
            .policy_object
            .spec
            .as_ref()
            .expect("spec")
            .variables
            .as_ref()
            .expect("variables")[0]
            .expression
            .clone()
    };
    assert_eq!(
        governed(0),
        r#"(namespaceObject.metadata.name in ["elsewhere"])"#
    );
    assert_eq!(governed(1), r#"(namespaceObject.metadata.name in ["ns"])"#);
}

#[test]
fn the_objects_are_named_labelled_and_bound_by_mode() {
    let request = Request::create(good("team-x-db", None));
    for (mode, action) in [("Enforce", "Deny"), ("Warn", "Warn"), ("Audit", "Audit")] {
        let plan = plan_for(&snapshot(vec![strict(mode)], &request), &Scope::default());
        let pair = &plan.published[0];
        let spec = pair.policy_object.spec.as_ref().expect("spec");
        let binding = pair.binding.spec.as_ref().expect("spec");
        assert_eq!(
            pair.policy_object.metadata.name.as_deref(),
            Some("secretgate-team")
        );
        assert_eq!(binding.policy_name.as_deref(), Some("secretgate-team"));
        assert_eq!(binding.validation_actions, Some(vec![action.to_owned()]));
        assert_eq!(spec.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(spec.match_conditions.is_some(), mode == "Enforce");
        let meta = &pair.binding.metadata;
        assert_eq!(
            meta.labels.as_ref().expect("labels")["app.kubernetes.io/managed-by"],
            "secretgate"
        );
        assert_eq!(
            meta.annotations.as_ref().expect("annotations")["secretgate.io/policy"],
            "team"
        );
        for v in spec.validations.iter().flatten() {
            let message = v.message.as_deref().unwrap_or_default();
            assert!(
                message.contains("policy \"team\"") && !message.contains('\n'),
                "{message}"
            );
        }
    }
}

#[test]
fn names_too_long_or_invalid_are_cut_and_hashed() {
    let long = "a".repeat(253);
    let name = object_name(&long);
    assert!(
        name.len() <= 253 && name.starts_with("secretgate-aaa"),
        "{name}"
    );
    assert_ne!(
        object_name(&format!("{long}b")),
        object_name(&format!("{long}c"))
    );
    let odd = object_name("Team_A");
    assert!(
        odd.starts_with("secretgate-team-a-") && odd.len() == "secretgate-team-a-".len() + 10,
        "{odd}"
    );
    assert_eq!(object_name("team.a"), "secretgate-team.a");
}

#[test]
fn the_yaml_holds_both_kinds_per_policy_and_reads_back() {
    let request = Request::create(good("team-x-db", None));
    let plan = plan_for(
        &snapshot(vec![strict("Enforce")], &request),
        &Scope::default(),
    );
    let yaml = to_yaml(&plan).expect("yaml");
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    assert_eq!(docs.len(), 2, "{yaml}");
    let vap: k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy =
        serde_saphyr::from_str(docs[0].trim_start_matches("---\n")).expect("policy reads back");
    assert_eq!(vap, plan.published[0].policy_object);
    assert!(
        docs[1].contains("kind: ValidatingAdmissionPolicyBinding"),
        "{yaml}"
    );
}

#[test]
fn policy_strings_are_cel_literals_that_read_back_as_themselves() {
    let env = interpreter();
    for text in [
        "plain",
        "q\"uote",
        "back\\slash",
        "line\nbreak",
        "é",
        "😀",
        "' || true || '",
    ] {
        let literal = crate::admission_policy::cel::string(text);
        match harness::eval(&env, &literal, &[]) {
            cel::Value::String(s) => assert_eq!(s.as_str(), text, "{literal}"),
            other => panic!("{literal}: {other:?}"),
        }
    }
}
