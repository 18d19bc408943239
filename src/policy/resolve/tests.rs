//! Table-driven tests of which policy governs a namespace.

use super::*;
use crate::policy::SecretIndex;
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

fn listed(known: &BTreeMap<String, Labels>) -> Vec<(&str, &Labels)> {
    known.iter().map(|(n, l)| (n.as_str(), l)).collect()
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

/// Resolving one namespace at a time (what a namespace event does) ends where resolving
/// everything again would: every namespace's governing policy and every overlap, through
/// label changes, new namespaces, deletions and namespaces a policy lists by name.
#[test]
fn one_namespace_at_a_time_agrees_with_a_full_build() {
    let default = || Resolved::new(Arc::from(DEFAULT_POLICY_NAME), Arc::default(), None);
    let label_sets: [&[(&str, &str)]; 5] = [
        &[],
        &[("team", "b")],
        &[("env", "prod")],
        &[("team", "b"), ("env", "prod")],
        &[("other", "x")],
    ];
    let names = ["a-dev", "a-prod", "b-dev", "c", "d", "e"];
    let mut known = namespaces(&[("a-dev", &[]), ("b-dev", &[("team", "b")]), ("c", &[])]);
    let mut incremental = build(policies(), &listed(&known), default());
    // A fixed walk through every (namespace, labels or gone) pair, twice, in an order
    // that mixes them.
    for step in 0..(2 * names.len() * (label_sets.len() + 1)) {
        let name = names[(step * 7) % names.len()];
        let choice = (step * 5) % (label_sets.len() + 1);
        if choice == label_sets.len() {
            known.remove(name);
        } else {
            known.extend(namespaces(&[(name, label_sets[choice])]));
        }
        incremental.update_namespace(name, known.get(name));
        let full = build(policies(), &listed(&known), default());
        for ns in names.iter().chain(&["never-seen"]) {
            assert_eq!(
                incremental.for_namespace(ns).name,
                full.for_namespace(ns).name,
                "step {step}: {ns}"
            );
        }
        assert_eq!(incremental.overlaps, full.overlaps, "step {step}");
    }
}

/// Every namespace a policy governs shares one compiled `Resolved` (its secretUse rules
/// are compiled once per policy, not once per namespace).
#[test]
fn governed_namespaces_share_the_policy_s_compiled_rules() {
    let p = policy(
        "shared",
        "namespaceSelector: {matchLabels: {team: b}}\nsecretUse: {rules: [{name: r, secrets: {names: [db]}, serviceAccounts: [app]}]}",
    );
    let known = namespaces(&[("b1", &[("team", "b")]), ("b2", &[("team", "b")])]);
    let g = build(
        vec![p],
        &listed(&known),
        Resolved::new(Arc::from(DEFAULT_POLICY_NAME), Arc::default(), None),
    );
    let (one, two) = (g.for_namespace("b1"), g.for_namespace("b2"));
    assert!(Arc::ptr_eq(
        one.secret_use.as_ref().expect("compiled"),
        two.secret_use.as_ref().expect("compiled")
    ));
}

/// Swapping policies in (what a policy event does) ends where a full build would: added,
/// removed and edited policies, by name and by selector, and a policy that selects
/// unseen namespaces (the unknown answer changes).
#[test]
fn policy_changes_agree_with_a_full_build() {
    let default = || Resolved::new(Arc::from(DEFAULT_POLICY_NAME), Arc::default(), None);
    let known = namespaces(&[
        ("a-dev", &[]),
        ("a-prod", &[("env", "prod")]),
        ("b-dev", &[("team", "b")]),
        ("b-prod", &[("team", "b"), ("env", "prod")]),
        ("other", &[]),
    ]);
    let base = policies();
    let edited_prod = policy(
        "prod",
        "namespaceSelector: {matchLabels: {team: b}}\nmode: Warn",
    );
    let by_name = policy("listed", "namespaces: [other, not-yet]");
    let everything = policy("all", "namespaceSelector: {}");
    let sets: Vec<Vec<Policy>> = vec![
        base.clone(),
        vec![base[0].clone(), base[1].clone(), edited_prod.clone()],
        vec![base[0].clone(), edited_prod.clone()],
        vec![base[0].clone(), edited_prod, by_name.clone()],
        vec![by_name.clone()],
        vec![by_name.clone(), everything.clone()],
        vec![by_name],
        Vec::new(),
        vec![everything],
        base,
    ];
    let known = listed(&known);
    let mut current = build(Vec::new(), &known, default());
    for (i, set) in sets.into_iter().enumerate() {
        current = current.with_policies(set.clone(), &known);
        let full = build(set, &known, default());
        for ns in [
            "a-dev", "a-prod", "b-dev", "b-prod", "other", "not-yet", "unseen",
        ] {
            assert_eq!(
                current.for_namespace(ns).name,
                full.for_namespace(ns).name,
                "set {i}: {ns}"
            );
        }
        assert_eq!(current.overlaps, full.overlaps, "set {i}");
        assert_eq!(current.policies, full.policies, "set {i}");
    }
}
