use super::*;
use crate::instance::SOURCE_HASH_ANNOTATION;
use crate::policy::{InstanceSecret, ProjectPolicySpec};

fn policy(name: &str, secrets: &[(&str, &str, Option<&str>)]) -> Resolved {
    let spec = ProjectPolicySpec {
        instance_secrets: secrets
            .iter()
            .map(|(ns, n, target)| InstanceSecret {
                source: SecretReference {
                    namespace: (*ns).into(),
                    name: (*n).into(),
                },
                target_name: target.map(str::to_owned),
            })
            .collect(),
        ..ProjectPolicySpec::default()
    };
    Resolved::new(Arc::from(name), Arc::new(spec), None)
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

fn source(version: &str) -> SecretState {
    SecretState {
        uid: Some("src-uid".into()),
        resource_version: Some(version.into()),
        managed: None,
    }
}

fn copy_of(policy: &str, version: &str) -> SecretState {
    let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
    let annotations = BTreeMap::from([
        (POLICY_ANNOTATION.to_owned(), policy.to_owned()),
        (
            SOURCE_ANNOTATION.to_owned(),
            "secretgate/regcred".to_owned(),
        ),
        (SOURCE_VERSION_ANNOTATION.to_owned(), version.to_owned()),
        (SOURCE_HASH_ANNOTATION.to_owned(), "sha256:00".to_owned()),
    ]);
    SecretState::from_metadata(
        Some(format!("uid-{policy}")),
        Some("77".into()),
        Some(&labels),
        Some(&annotations),
    )
}

fn allowed() -> BTreeSet<String> {
    BTreeSet::from(["secretgate".to_owned()])
}

#[test]
fn a_copy_is_created_in_each_namespace_and_left_alone_once_current() {
    let team = policy("team-a", &[("secretgate", "regcred", None)]);
    let mut secrets = HashMap::from([(key("secretgate", "regcred"), source("10"))]);
    let namespaces = [("team-a", &team), ("team-a-dev", &team)];
    let p = plan(namespaces, &secrets, &allowed());
    assert_eq!(p.actions.len(), 2);
    assert!(
        matches!(&p.actions[0], Action::Create(c) if c.namespace == "team-a"
        && c.name == "regcred" && c.source_version.as_deref() == Some("10"))
    );
    assert!(p.wanted.contains(&key("team-a-dev", "regcred")));

    secrets.insert(key("team-a", "regcred"), copy_of("team-a", "10"));
    secrets.insert(key("team-a-dev", "regcred"), copy_of("team-a", "10"));
    let p = plan(namespaces, &secrets, &allowed());
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.in_sync, 2);
}

#[test]
fn a_rotated_source_updates_every_copy() {
    let team = policy("team-a", &[("secretgate", "regcred", None)]);
    let secrets = HashMap::from([
        (key("secretgate", "regcred"), source("11")),
        (key("team-a", "regcred"), copy_of("team-a", "10")),
    ]);
    let p = plan([("team-a", &team)], &secrets, &allowed());
    assert!(
        matches!(&p.actions[..], [Action::Update { copy, resource_version }]
        if copy.source_version.as_deref() == Some("11") && resource_version.as_deref() == Some("77"))
    );
}

#[test]
fn copies_no_longer_wanted_are_deleted_and_unmanaged_secrets_never_touched() {
    let team = policy("team-a", &[("secretgate", "regcred", None)]);
    let default = Resolved::new(
        Arc::from("default"),
        Arc::new(ProjectPolicySpec::default()),
        None,
    );
    let secrets = HashMap::from([
        (key("secretgate", "regcred"), source("10")),
        // team-a-dev left the project: its copy goes.
        (key("team-a-dev", "regcred"), copy_of("team-a", "10")),
        // A hand-made regcred in team-a: a conflict, left alone.
        (key("team-a", "regcred"), SecretState::default()),
    ]);
    let p = plan(
        [("team-a", &team), ("team-a-dev", &default)],
        &secrets,
        &allowed(),
    );
    assert_eq!(
        p.actions,
        vec![Action::Delete {
            namespace: "team-a-dev".into(),
            name: "regcred".into(),
            uid: Some("uid-team-a".into()),
        }]
    );
    assert_eq!(p.problems.len(), 1);
    assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
    assert_eq!(p.problems[0].namespace, "team-a");
    assert!(!p.wanted.contains(&key("team-a", "regcred")));
}

#[test]
fn a_label_alone_does_not_make_a_secret_managed() {
    let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
    let state = SecretState::from_metadata(None, None, Some(&labels), None);
    assert_eq!(state.managed, None);
    let annotations = BTreeMap::from([(SOURCE_ANNOTATION.to_owned(), "a/b".to_owned())]);
    let state = SecretState::from_metadata(None, None, None, Some(&annotations));
    assert_eq!(state.managed, None);
}

#[test]
fn a_broken_policy_freezes_its_copies_and_sources_are_checked() {
    let broken = Resolved::new(
        Arc::from("team-a"),
        Arc::new(ProjectPolicySpec::default()),
        Some(Arc::from("spec: does not parse")),
    );
    let secrets = HashMap::from([
        (key("secretgate", "regcred"), source("10")),
        (key("team-a", "regcred"), copy_of("team-a", "10")),
    ]);
    let p = plan([("team-a", &broken)], &secrets, &allowed());
    assert_eq!(
        p.actions,
        vec![],
        "nothing deleted while the policy is broken"
    );

    let team = policy(
        "team-a",
        &[
            ("kube-system", "admin-token", None),
            ("secretgate", "missing", None),
            ("secretgate", "regcred", Some("pull")),
        ],
    );
    let p = plan([("team-a", &team)], &secrets, &allowed());
    let kinds: Vec<ProblemKind> = p.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::SourceNotAllowed), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::SourceMissing), "{kinds:?}");
    // The old copy under the source's name goes; the renamed one is created.
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::Create(c) if c.name == "pull"))
    );
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::Delete { name, .. } if name == "regcred"))
    );
}

#[test]
fn the_source_is_never_its_own_copy() {
    let platform = policy("platform", &[("secretgate", "regcred", None)]);
    let secrets = HashMap::from([(key("secretgate", "regcred"), source("10"))]);
    let p = plan([("secretgate", &platform)], &secrets, &allowed());
    assert_eq!(p.actions, vec![]);
}
