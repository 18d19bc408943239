//! Table-driven tests of which policy governs a namespace.

use super::*;
use crate::policy::{DEFAULT_POLICY_NAME, Mode, Snapshot};

fn policy(name: &str, yaml: &str) -> Policy {
    let spec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
    Policy::new(name, spec).unwrap_or_else(|e| panic!("{e}"))
}

fn namespaces(list: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, Labels> {
    list.iter()
        .map(|(name, labels)| {
            let mut l: Labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            l.insert(NAME_LABEL.to_owned(), (*name).to_owned());
            ((*name).to_owned(), l)
        })
        .collect()
}

fn policies() -> Vec<Policy> {
    vec![
        policy("team-a", "namespaces: [a-dev, a-prod]\nmode: Warn"),
        policy("by-label", "namespaceSelector: {matchLabels: {team: b}}"),
        policy(
            "prod",
            "namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}\nmode: Audit",
        ),
    ]
}

#[test]
fn governing_policy_per_namespace() {
    let known = namespaces(&[
        ("a-dev", &[]),
        ("a-prod", &[("env", "prod")]),
        ("b-dev", &[("team", "b")]),
        ("b-prod", &[("team", "b"), ("env", "prod")]),
        ("c-prod", &[("env", "prod")]),
        ("other", &[]),
    ]);
    let snap = Snapshot::build(policies(), &known, SecretIndex::default());
    let cases = [
        ("a-dev", "team-a", "listed by name"),
        (
            "a-prod",
            "prod",
            "name and selector both select: `prod` sorts before `team-a`",
        ),
        ("b-dev", "by-label", "matchLabels"),
        (
            "b-prod",
            "by-label",
            "two selectors: `by-label` sorts before `prod`",
        ),
        ("c-prod", "prod", "matchExpressions In"),
        (
            "other",
            DEFAULT_POLICY_NAME,
            "nothing selects: the embedded default",
        ),
        (
            "never-seen",
            DEFAULT_POLICY_NAME,
            "unknown namespace, no catch-all selector",
        ),
    ];
    for (ns, want, why) in cases {
        assert_eq!(&*snap.for_namespace(ns).name, want, "{ns}: {why}");
    }
    assert_eq!(snap.policy_count(), 3);
    assert_eq!(snap.for_namespace("a-dev").spec.mode, Mode::Warn);
}

#[test]
fn overlaps_are_recorded_first_name_governing() {
    let known = namespaces(&[
        ("a-prod", &[("env", "prod")]),
        ("b-prod", &[("team", "b"), ("env", "prod")]),
    ]);
    let snap = Snapshot::build(policies(), &known, SecretIndex::default());
    let found: Vec<(String, Vec<String>)> = snap
        .overlaps()
        .iter()
        .map(|o| {
            (
                o.namespace.clone(),
                o.policies.iter().map(|p| p.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "a-prod".to_owned(),
                vec!["prod".to_owned(), "team-a".to_owned()]
            ),
            (
                "b-prod".to_owned(),
                vec!["by-label".to_owned(), "prod".to_owned()]
            ),
        ]
    );
}

#[test]
fn names_listed_but_unseen_are_resolved_by_name() {
    let snap = Snapshot::build(policies(), &BTreeMap::new(), SecretIndex::default());
    assert_eq!(&*snap.for_namespace("a-prod").name, "team-a");
    assert_eq!(&*snap.for_namespace("zzz").name, DEFAULT_POLICY_NAME);
}

#[test]
fn catch_all_selectors_also_govern_unknown_namespaces() {
    let all = vec![
        policy("everyone", "namespaceSelector: {}"),
        policy(
            "not-system",
            "namespaceSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}",
        ),
    ];
    let known = namespaces(&[("sys", &[("tier", "system")])]);
    let snap = Snapshot::build(all, &known, SecretIndex::default());
    assert_eq!(&*snap.for_namespace("sys").name, "everyone");
    assert_eq!(&*snap.for_namespace("brand-new").name, "everyone");
}

#[test]
fn invalid_policies_are_refused_with_every_problem() {
    let spec = serde_saphyr::from_str(
        "namespaceSelector: {matchExpressions: [{key: env, operator: In}]}\nsecrets: {ssh: {minRsaBits: 10}}",
    )
    .expect("parses");
    let err = Policy::new("broken", spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy \"broken\" is invalid: spec.secrets.ssh.minRsaBits: 10 is outside 1024..16384; \
         spec.namespaceSelector.matchExpressions[0].values: operator In needs at least one value"
    );
}

#[test]
fn secret_index_is_keyed_by_namespace() {
    let mut idx = SecretIndex::default();
    idx.insert("a", "pull");
    assert!(idx.contains("a", "pull"));
    assert!(!idx.contains("b", "pull"));
    assert_eq!(idx.len(), 1);
}
