//! The published CEL, evaluated offline, against the webhook's own review of the same
//! requests: hand-written edge cases here, generated ones in `generated`.

mod generated;
mod harness;
mod objects;

use serde_json::{Value, json};

use super::{Plan, Scope, plan as plan_for};
use crate::admission::Verdict;
use crate::policy::{Mode, Policy};
use harness::{Evaluated, Request, interpreter, policy, published, secret, snapshot, webhook};

/// Runs both sides and asserts they agree: the published objects never deny what the
/// webhook admits, and where the governing policy is valid, asked about (not an excluded
/// namespace) and wholly published, they find a violation exactly when the webhook
/// finds one (Enforce: the same denial; Warn and Audit: a report).
fn agree(policies: Vec<Policy>, request: &Request, scope: &Scope) -> (Verdict, Evaluated) {
    let snapshot = snapshot(policies, request);
    let plan = plan_for(&snapshot, scope);
    let (verdict, findings) = webhook(&snapshot, request);
    let vap = published(&interpreter(), &plan, request);
    let excluded = scope.excluded_namespaces.contains(&request.namespace);
    if !vap.denied.is_empty() {
        assert!(
            verdict == Verdict::Denied && !excluded,
            "published objects deny what the webhook admits: {vap:?} {request:?}"
        );
    }
    let governing = snapshot.for_namespace(&request.namespace);
    let whole = plan
        .published
        .iter()
        .find(|p| p.policy == *governing.name)
        .is_none_or(|p| p.webhook_only.is_empty());
    if governing.broken.is_none() && !excluded && whole {
        match governing.spec.mode {
            Mode::Enforce => assert_eq!(
                !vap.denied.is_empty(),
                verdict == Verdict::Denied,
                "{vap:?} {request:?}"
            ),
            Mode::Warn | Mode::Audit => assert_eq!(
                !vap.reported.is_empty(),
                findings > 0,
                "{vap:?} {request:?}"
            ),
        }
    }
    (verdict, vap)
}

fn strict(mode: &str) -> Policy {
    policy(
        "team",
        json!({"namespaces": ["ns"], "mode": mode,
            "secrets": {
                "name": {"prefix": "team-", "pattern": "[a-z0-9-]+-(db|api)",
                         "maxLength": 12, "forbidDots": true},
                "allowedTypes": ["Opaque", "example.com/allowed"],
                "allowCustomTypes": false,
                "requiredLabels": ["app"],
                "requiredAnnotations": ["secretgate.io/display-name"]},
            "exemptions": {"usernames": ["admin"], "groups": ["platform"],
                           "serviceAccounts": ["cert-manager/cert-manager"]}}),
    )
}

/// A secret that keeps every rule of `strict`, with `name` and `ty`.
fn good(name: &str, ty: Option<&str>) -> Value {
    secret(
        Some(name),
        None,
        ty,
        &[("app", "web")],
        &[("secretgate.io/display-name", "Orders")],
    )
}

/// How many validations deny `request` under `strict("Enforce")`.
fn denials(request: &Request) -> usize {
    agree(vec![strict("Enforce")], request, &Scope::default())
        .1
        .denied
        .len()
}

#[test]
fn name_rules_at_their_edges() {
    let cases: &[(&str, usize)] = &[
        ("team-x-db", 0),
        ("teamx-db", 1),
        ("team-abcd-db", 0),  // exactly 12
        ("team-abcde-db", 1), // 13
        ("team-a.b-db", 2),   // a dot, and the pattern has none
        ("team-orders", 1),   // the pattern
        ("x.y", 3),
    ];
    for (name, want) in cases {
        assert_eq!(denials(&Request::create(good(name, None))), *want, "{name}");
    }
}

#[test]
fn generate_name_is_held_to_the_prefix_and_dots_only() {
    let make = |prefix: &str| {
        let mut s = good("x", None);
        s["metadata"].as_object_mut().map(|m| m.remove("name"));
        s["metadata"]["generateName"] = prefix.into();
        s
    };
    assert_eq!(denials(&Request::create(make("team-a-very-long-"))), 0);
    assert_eq!(denials(&Request::create(make("batch-"))), 1);
    assert_eq!(denials(&Request::create(make("team-a.b-"))), 1);
}

#[test]
fn types_and_custom_types() {
    let cases: &[(Option<&str>, usize)] = &[
        (None, 0),
        (Some(""), 0),
        (Some("Opaque"), 0),
        (Some("example.com/allowed"), 0),
        (Some("example.com/other"), 1),
        (Some("kubernetes.io/basic-auth"), 1),
        (Some("kubernetes.io/service-account-token"), 1),
    ];
    for (ty, want) in cases {
        assert_eq!(
            denials(&Request::create(good("team-x-db", *ty))),
            *want,
            "{ty:?}"
        );
    }
}

#[test]
fn labels_and_annotations_missing_or_blank() {
    type Pairs = &'static [(&'static str, &'static str)];
    let cases: &[(Pairs, Pairs, usize)] = &[
        (&[], &[], 2),
        (&[("app", "")], &[("secretgate.io/display-name", "x")], 1),
        (
            &[("app", "web")],
            &[("secretgate.io/display-name", " \t")],
            1,
        ),
        (
            &[("app", "web")],
            &[("secretgate.io/display-name", "\u{a0}\u{3000}")],
            1,
        ),
        (&[("App", "web")], &[("secretgate.io/display-name", "x")], 1),
        (
            &[("app", "web")],
            &[("secretgate.io/display-name", " x ")],
            0,
        ),
    ];
    for (labels, annotations, want) in cases {
        let s = secret(Some("team-x-db"), None, None, labels, annotations);
        assert_eq!(
            denials(&Request::create(s)),
            *want,
            "{labels:?} {annotations:?}"
        );
    }
}

#[test]
fn exempt_requesters_are_not_matched() {
    let bad = secret(Some("x"), None, Some("example.com/other"), &[], &[]);
    for (user, groups, denied) in [
        ("admin", vec![], false),
        (
            "system:serviceaccount:cert-manager:cert-manager",
            vec![],
            false,
        ),
        ("bob", vec!["platform".to_owned()], false),
        ("admin2", vec!["platform2".to_owned()], true),
        ("system:serviceaccount:cert-manager:other", vec![], true),
    ] {
        let request = Request {
            username: user.to_owned(),
            groups,
            ..Request::create(bad.clone())
        };
        let (verdict, vap) = agree(vec![strict("Enforce")], &request, &Scope::default());
        assert_eq!(!vap.denied.is_empty(), denied, "{user}");
        if !denied {
            assert_eq!(verdict, Verdict::Warned, "the webhook warns the exempt");
        }
    }
}

#[test]
fn updates_are_refused_only_for_what_they_make_worse() {
    let no_label = |name: &str| {
        secret(
            Some(name),
            None,
            None,
            &[],
            &[("secretgate.io/display-name", "x")],
        )
    };
    // Already missing before: the webhook warns, the policy lets it through.
    let (verdict, vap) = agree(
        vec![strict("Enforce")],
        &Request::update(no_label("team-x-db"), no_label("team-x-db")),
        &Scope::default(),
    );
    assert_eq!((verdict, vap.denied.len()), (Verdict::Warned, 0));
    // Removed by this update: denied.
    let request = Request::update(good("team-x-db", None), no_label("team-x-db"));
    assert_eq!(denials(&request), 1);
    // A legacy name that breaks the name rules, relabelled: allowed.
    let request = Request::update(no_label("legacy.db"), good("legacy.db", None));
    assert_eq!(denials(&request), 0);
}

#[test]
fn warn_and_audit_report_instead_of_denying() {
    let bad = Request::create(secret(Some("x"), None, None, &[], &[]));
    for (mode, verdict) in [("Warn", Verdict::Warned), ("Audit", Verdict::Allowed)] {
        let (got, vap) = agree(vec![strict(mode)], &bad, &Scope::default());
        assert_eq!(got, verdict);
        assert!(vap.denied.is_empty() && vap.reported.len() == 4, "{vap:?}");
        // An exempt requester changes nothing outside Enforce, in either.
        let exempt = Request {
            username: "admin".to_owned(),
            ..bad.clone()
        };
        let (got, vap) = agree(vec![strict(mode)], &exempt, &Scope::default());
        assert_eq!((got, vap.reported.len()), (verdict, 4));
    }
}

#[test]
fn where_policies_overlap_only_the_first_by_name_applies() {
    let lenient = policy(
        "a-first",
        json!({"namespaceSelector": {"matchLabels": {"team": "a"}}}),
    );
    let mut labelled = Request::create(secret(Some("x"), None, None, &[], &[]));
    labelled.namespace_labels = [("team".to_owned(), "a".to_owned())].into();
    let (verdict, vap) = agree(
        vec![lenient.clone(), strict("Enforce")],
        &labelled,
        &Scope::default(),
    );
    assert_eq!((verdict, vap.denied.len()), (Verdict::Allowed, 0));
    // Where the first does not select, the second governs.
    let plain = Request::create(secret(Some("x"), None, None, &[], &[]));
    let (verdict, vap) = agree(vec![lenient, strict("Enforce")], &plain, &Scope::default());
    assert_eq!((verdict, vap.denied.len()), (Verdict::Denied, 4));
}

#[test]
fn a_broken_policy_publishes_nothing_and_shadows_later_ones() {
    let spec = json!({"namespaces": ["ns"], "mode": "Warn", "bogus": true});
    let broken = Policy::broken("a-broken", "spec.bogus: unknown field", Some(&spec));
    let request = Request::create(secret(Some("x"), None, None, &[], &[]));
    let (verdict, vap) = agree(vec![broken, strict("Enforce")], &request, &Scope::default());
    assert_eq!((verdict, vap.denied.len()), (Verdict::Denied, 0));
    let plan = plan_for(
        &snapshot(vec![Policy::broken("a-broken", "x", Some(&spec))], &request),
        &Scope::default(),
    );
    assert_eq!(
        (plan.kept, plan.published.len()),
        (vec!["a-broken".to_owned()], 0)
    );
}

#[test]
fn excluded_namespaces_are_left_out_of_the_binding() {
    let scope = Scope {
        excluded_namespaces: vec!["ns".to_owned()],
    };
    let request = Request::create(secret(Some("x"), None, None, &[], &[]));
    let (_, vap) = agree(vec![strict("Enforce")], &request, &scope);
    assert_eq!(vap, Evaluated::default());
}

#[test]
fn a_pattern_rust_reads_otherwise_stays_with_the_webhook() {
    let p = policy(
        "team",
        json!({"namespaces": ["ns"], "secrets": {"name": {"pattern": "[a-z&&[^q]]+"}}}),
    );
    let request = Request::create(secret(Some("x"), None, None, &[], &[]));
    let plan = plan_for(&snapshot(vec![p], &request), &Scope::default());
    assert!(
        plan.published.is_empty(),
        "no other rule: nothing published"
    );
    let p = policy(
        "team",
        json!({"namespaces": ["ns"], "secrets": {"name": {"pattern": "[a-z&&[^q]]+", "prefix": "a"}}}),
    );
    let plan = plan_for(&snapshot(vec![p], &request), &Scope::default());
    let notes = &plan.published[0].webhook_only;
    assert!(notes[0].contains("class set operation"), "{notes:?}");
    assert_eq!(denials_in(&plan, "qq"), 1, "only the prefix");
}

fn denials_in(plan: &Plan, name: &str) -> usize {
    let request = Request::create(secret(Some(name), None, None, &[], &[]));
    published(&interpreter(), plan, &request).denied.len()
}
