//! The snapshot builder over reflector stores filled by hand (no HTTP): add, modify,
//! an invalid edit that keeps the last good version, delete, namespace labels, what
//! secret-use rules read of secrets and service accounts, and what each cache keeps.

use super::*;
use crate::policy::secret_use::ALLOWED_SERVICE_ACCOUNTS_ANNOTATION;
use crate::policy::{DEFAULT_POLICY_NAME, Mode, ProjectPolicy, ProjectPolicyStatus};
use k8s_openapi::api::core::v1::{LocalObjectReference, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::ApiResource;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;

fn policy(name: &str, generation: i64, spec: serde_json::Value) -> DynamicObject {
    let resource = ApiResource::erase::<ProjectPolicy>(&());
    let mut obj = DynamicObject::new(name, &resource).data(serde_json::json!({ "spec": spec }));
    obj.metadata.generation = Some(generation);
    obj
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
    let mut meta = PartialObjectMeta::<Namespace>::default();
    meta.metadata.name = Some(name.to_owned());
    meta.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    meta
}

fn secret(ns: &str, name: &str) -> PartialObjectMeta<Secret> {
    let mut meta = PartialObjectMeta::<Secret>::default();
    meta.metadata.name = Some(name.to_owned());
    meta.metadata.namespace = Some(ns.to_owned());
    meta
}

fn pairs(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A secret with labels and annotations.
fn labelled_secret(
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> PartialObjectMeta<Secret> {
    let mut meta = secret(ns, name);
    meta.metadata.labels = Some(pairs(labels));
    meta.metadata.annotations = Some(pairs(annotations));
    meta
}

fn service_account(ns: &str, name: &str, pull_secrets: &[&str]) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        image_pull_secrets: Some(
            pull_secrets
                .iter()
                .map(|n| LocalObjectReference {
                    name: (*n).to_owned(),
                })
                .collect(),
        ),
        ..ServiceAccount::default()
    }
}

struct Cluster {
    policies: Writer<DynamicObject>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
    secrets: Writer<PartialObjectMeta<Secret>>,
    service_accounts: Writer<ServiceAccount>,
    builder: Builder,
}

impl Cluster {
    fn new() -> Self {
        Self {
            policies: Writer::new(ApiResource::erase::<ProjectPolicy>(&())),
            namespaces: reflector::store().1,
            secrets: reflector::store().1,
            service_accounts: reflector::store().1,
            builder: Builder::default(),
        }
    }

    fn rebuild(&mut self) -> (Snapshot, Vec<StatusUpdate>) {
        self.builder.rebuild(
            &self.policies.as_reader().state(),
            &self.namespaces.as_reader().state(),
            &self.secrets.as_reader().state(),
            &self.service_accounts.as_reader().state(),
        )
    }
}

fn ready(update: &StatusUpdate) -> (&str, &str, &str) {
    let c = &update.status.conditions[0];
    (update.name.as_str(), c.status.as_str(), c.message.as_str())
}

#[test]
fn add_modify_invalid_edit_and_delete() {
    let mut c = Cluster::new();
    c.namespaces
        .apply_watcher_event(&Event::Apply(namespace("a-dev", &[("project", "a")])));
    c.secrets
        .apply_watcher_event(&Event::Apply(secret("a-dev", "pull")));
    let selector = serde_json::json!({"matchLabels": {"project": "a"}});

    // Added: governs the labelled namespace; status Ready=True.
    let p1 = policy(
        "team-a",
        1,
        serde_json::json!({"namespaceSelector": selector, "mode": "Warn"}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p1));
    let (snap, updates) = c.rebuild();
    assert_eq!(&*snap.for_namespace("a-dev").name, "team-a");
    assert_eq!(snap.for_namespace("a-dev").spec.mode, Mode::Warn);
    assert!(snap.secrets.contains("a-dev", "pull"));
    assert_eq!(
        updates.iter().map(ready).collect::<Vec<_>>(),
        [("team-a", "True", "the policy is in force")]
    );

    // Modified: the new version is in force.
    let p2 = policy(
        "team-a",
        2,
        serde_json::json!({"namespaceSelector": selector, "mode": "Audit"}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p2));
    let (snap, _) = c.rebuild();
    assert_eq!(snap.for_namespace("a-dev").spec.mode, Mode::Audit);

    // An invalid edit: refused in its status, the last good version (Audit) stays.
    let p3 = policy(
        "team-a",
        3,
        serde_json::json!({"namespaceSelector": selector, "mode": "Enforce", "secrets": {"ssh": {"minRsaBits": 8}}}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p3));
    let (snap, updates) = c.rebuild();
    assert_eq!(snap.for_namespace("a-dev").spec.mode, Mode::Audit);
    assert_eq!(
        updates.iter().map(ready).collect::<Vec<_>>(),
        [(
            "team-a",
            "False",
            "spec.secrets.ssh.minRsaBits: 8 is outside 1024..16384 (the last good version, \
             generation 2, stays in force)"
        )]
    );
    assert_eq!(updates[0].status.conditions[0].reason, "Invalid");
    assert_eq!(updates[0].status.observed_generation, Some(3));
    // The status keeps the version in force, for a replica that restarts.
    assert_eq!(updates[0].status.last_good_generation, Some(2));
    assert_eq!(
        updates[0]
            .status
            .last_good_spec
            .as_ref()
            .map(|s| &s["mode"]),
        Some(&serde_json::json!("Audit"))
    );

    // A spec that does not even parse is refused the same way.
    let p4 = policy("team-a", 4, serde_json::json!({"mode": "Sometimes"}));
    c.policies.apply_watcher_event(&Event::Apply(p4.clone()));
    let (snap, updates) = c.rebuild();
    assert_eq!(snap.for_namespace("a-dev").spec.mode, Mode::Audit);
    assert!(
        ready(&updates[0])
            .2
            .starts_with("spec does not parse: unknown variant `Sometimes`")
    );

    // Deleted: the default governs again, and no last good version lingers.
    c.policies.apply_watcher_event(&Event::Delete(p4));
    let (snap, updates) = c.rebuild();
    assert_eq!(&*snap.for_namespace("a-dev").name, DEFAULT_POLICY_NAME);
    assert!(updates.is_empty());
}

#[test]
fn a_written_status_is_not_written_again() {
    let mut c = Cluster::new();
    let mut p = policy("p", 1, serde_json::json!({"namespaces": ["x"]}));
    c.policies.apply_watcher_event(&Event::Apply(p.clone()));
    let (_, updates) = c.rebuild();
    assert_eq!(updates.len(), 1);
    // The status comes back through the watch: nothing more to write.
    p.data["status"] = serde_json::to_value(&updates[0].status).expect("status JSON");
    c.policies.apply_watcher_event(&Event::Apply(p));
    assert!(c.rebuild().1.is_empty());
}

#[test]
fn an_accepted_spec_is_written_as_the_last_good_one() {
    let mut c = Cluster::new();
    let spec = serde_json::json!({"namespaces": ["x"], "mode": "Warn"});
    c.policies
        .apply_watcher_event(&Event::Apply(policy("p", 4, spec.clone())));
    let (_, updates) = c.rebuild();
    assert_eq!(ready(&updates[0]).1, "True");
    assert_eq!(updates[0].status.last_good_spec, Some(spec));
    assert_eq!(updates[0].status.last_good_generation, Some(4));
}

/// A policy as a restarted replica lists it: an invalid spec, and the status another
/// replica wrote when it accepted generation `good_generation`.
fn restarted(
    name: &str,
    spec: serde_json::Value,
    good: Option<(i64, serde_json::Value)>,
) -> DynamicObject {
    let mut p = policy(name, 5, spec);
    if let Some((generation, last_good)) = good {
        let status = ProjectPolicyStatus {
            last_good_spec: Some(last_good),
            last_good_generation: Some(generation),
            ..ProjectPolicyStatus::default()
        };
        p.data["status"] = serde_json::to_value(status).expect("status JSON");
    }
    p
}

#[test]
fn a_restart_with_an_invalid_spec_enforces_the_last_good_one_from_the_status() {
    let mut c = Cluster::new();
    let invalid = serde_json::json!({"namespaces": ["x"], "secrets": {"ssh": {"minRsaBits": 1}}});
    let good = serde_json::json!({"namespaces": ["x"], "mode": "Audit"});
    c.policies.apply_watcher_event(&Event::Apply(restarted(
        "p",
        invalid,
        Some((3, good.clone())),
    )));
    let (snap, updates) = c.rebuild();
    let resolved = snap.for_namespace("x");
    assert_eq!(&*resolved.name, "p");
    assert_eq!(resolved.spec.mode, Mode::Audit, "generation 3 is in force");
    assert!(resolved.broken.is_none());
    assert_eq!(snap.policy_count(), 1);
    assert!(snap.broken_policies().is_empty());
    assert_eq!(
        ready(&updates[0]).2,
        "spec.secrets.ssh.minRsaBits: 1 is outside 1024..16384 (the last good version, \
         generation 3, stays in force)"
    );
    assert_eq!(updates[0].status.last_good_spec, Some(good));
}

#[test]
fn a_newer_last_good_version_in_the_status_wins_over_memory() {
    let mut c = Cluster::new();
    let v1 = serde_json::json!({"namespaces": ["x"], "mode": "Warn"});
    c.policies
        .apply_watcher_event(&Event::Apply(policy("p", 1, v1)));
    c.rebuild();
    // Generation 3 was accepted by another replica while this one missed it; generation
    // 5 is invalid.
    let v3 = serde_json::json!({"namespaces": ["x"], "mode": "Audit"});
    let invalid = serde_json::json!({"namespaces": ["x"], "secrets": {"allowedTypes": [""]}});
    c.policies
        .apply_watcher_event(&Event::Apply(restarted("p", invalid, Some((3, v3)))));
    assert_eq!(c.rebuild().0.for_namespace("x").spec.mode, Mode::Audit);
}

#[test]
fn a_last_good_version_does_not_outlive_its_object() {
    let mut c = Cluster::new();
    let mut p = policy(
        "p",
        1,
        serde_json::json!({"namespaces": ["x"], "mode": "Warn"}),
    );
    p.metadata.uid = Some("uid-1".to_owned());
    c.policies.apply_watcher_event(&Event::Apply(p));
    c.rebuild();
    // Deleted and created again under the same name between two rebuilds, invalid.
    let mut again = policy(
        "p",
        1,
        serde_json::json!({"namespaces": ["x"], "mode": "Sometimes"}),
    );
    again.metadata.uid = Some("uid-2".to_owned());
    c.policies.apply_watcher_event(&Event::Apply(again));
    let (snap, _) = c.rebuild();
    assert_eq!(
        snap.broken_policies().len(),
        1,
        "not the old object's version"
    );
}

#[test]
fn a_policy_with_no_good_version_governs_its_namespaces_broken() {
    let mut c = Cluster::new();
    c.namespaces
        .apply_watcher_event(&Event::Apply(namespace("a-dev", &[("project", "a")])));
    c.namespaces
        .apply_watcher_event(&Event::Apply(namespace("other", &[])));
    let p = policy(
        "p",
        1,
        serde_json::json!({"namespaces": ["x"], "namespaceSelector": {"matchLabels": {"project": "a"}},
                           "mode": "Sometimes"}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p));
    let (snap, updates) = c.rebuild();
    assert_eq!(snap.policy_count(), 0);
    for ns in ["x", "a-dev"] {
        let resolved = snap.for_namespace(ns);
        assert_eq!(
            &*resolved.name, "p",
            "{ns} is not downgraded to the default"
        );
        let problems = resolved.broken.as_deref().expect("broken");
        assert!(problems.starts_with("spec does not parse: unknown variant `Sometimes`"));
        let denial = resolved.secret_denial().expect("denial");
        assert!(denial.contains("policy \"p\" governs this namespace but is invalid"));
        assert!(
            resolved
                .pod_warning()
                .expect("warning")
                .contains("policy \"p\"")
        );
    }
    assert_eq!(&*snap.for_namespace("other").name, DEFAULT_POLICY_NAME);
    assert!(snap.for_namespace("other").secret_denial().is_none());
    assert_eq!(
        snap.broken_policies()
            .iter()
            .map(|b| &*b.name)
            .collect::<Vec<_>>(),
        ["p"]
    );
    assert!(snap.readiness().contains("broken policies: \"p\""));
    let (_, status, message) = ready(&updates[0]);
    assert_eq!(status, "False");
    assert!(message.ends_with("(no good version is known: Secret writes in the namespaces it selects are denied until it is fixed)"), "{message}");
    assert_eq!(updates[0].status.last_good_spec, None);
}

#[test]
fn a_broken_policy_with_an_unreadable_selector_governs_only_the_namespaces_it_names() {
    let mut c = Cluster::new();
    c.namespaces
        .apply_watcher_event(&Event::Apply(namespace("a-dev", &[("project", "a")])));
    let p = policy(
        "p",
        1,
        serde_json::json!({"namespaces": ["x"],
                           "namespaceSelector": {"matchExpressions": [{"key": "project", "operator": "Matches"}]}}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p));
    let (snap, _) = c.rebuild();
    assert_eq!(&*snap.for_namespace("x").name, "p");
    assert_eq!(&*snap.for_namespace("a-dev").name, DEFAULT_POLICY_NAME);
    assert_eq!(snap.broken_policies().len(), 1);
}

#[test]
fn an_invalid_last_good_spec_in_the_status_is_not_used() {
    let mut c = Cluster::new();
    let invalid = serde_json::json!({"namespaces": ["x"], "secrets": {"allowedTypes": [""]}});
    c.policies.apply_watcher_event(&Event::Apply(restarted(
        "p",
        invalid.clone(),
        Some((2, invalid)),
    )));
    let (snap, updates) = c.rebuild();
    assert!(snap.for_namespace("x").broken.is_some());
    assert_eq!(updates[0].status.last_good_spec, None);
}

#[test]
fn namespace_label_changes_move_a_namespace_between_policies() {
    let mut c = Cluster::new();
    let p = policy(
        "team-b",
        1,
        serde_json::json!({"namespaceSelector": {"matchLabels": {"project": "b"}}}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p));
    c.namespaces
        .apply_watcher_event(&Event::Apply(namespace("ns", &[("project", "a")])));
    assert_eq!(
        &*c.rebuild().0.for_namespace("ns").name,
        DEFAULT_POLICY_NAME
    );
    c.namespaces
        .apply_watcher_event(&Event::Apply(namespace("ns", &[("project", "b")])));
    assert_eq!(&*c.rebuild().0.for_namespace("ns").name, "team-b");
}

#[test]
fn the_index_holds_each_secrets_labels_and_owner_annotation() {
    let mut c = Cluster::new();
    c.secrets.apply_watcher_event(&Event::Apply(labelled_secret(
        "a-dev",
        "deploy-key",
        &[("tier", "ci")],
        &[(ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, "ci-runner, deployer")],
    )));
    c.secrets
        .apply_watcher_event(&Event::Apply(secret("a-dev", "plain")));
    let (snap, _) = c.rebuild();
    let key = snap.secrets.get("a-dev", "deploy-key").expect("indexed");
    assert_eq!(key.labels, pairs(&[("tier", "ci")]));
    assert_eq!(
        key.allowed_service_accounts.as_deref(),
        Some("ci-runner, deployer")
    );
    assert_eq!(
        snap.secrets.get("a-dev", "plain"),
        Some(&SecretMeta::default())
    );

    // A label change reaches the next snapshot; the annotation removed, nothing narrows.
    c.secrets.apply_watcher_event(&Event::Apply(labelled_secret(
        "a-dev",
        "deploy-key",
        &[("tier", "prod")],
        &[],
    )));
    let (snap, _) = c.rebuild();
    let key = snap.secrets.get("a-dev", "deploy-key").expect("indexed");
    assert_eq!(key.labels, pairs(&[("tier", "prod")]));
    assert_eq!(key.allowed_service_accounts, None);
}

#[test]
fn service_accounts_pull_secrets_reach_the_snapshot() {
    let mut c = Cluster::new();
    assert!(c.rebuild().0.service_accounts.is_empty());
    c.service_accounts
        .apply_watcher_event(&Event::Apply(service_account(
            "a-dev",
            "builder",
            &["regcred", "", "mirror"],
        )));
    let mut none = service_account("a-dev", "default", &[]);
    none.image_pull_secrets = None;
    c.service_accounts
        .apply_watcher_event(&Event::Apply(none.clone()));
    let (snap, _) = c.rebuild();
    let accounts = &snap.service_accounts;
    assert_eq!(accounts.len(), 2);
    assert_eq!(
        accounts.pull_secrets("a-dev", "builder"),
        Some(&["regcred".to_owned(), "mirror".to_owned()][..]),
        "an empty name refers to nothing"
    );
    assert_eq!(
        accounts.pull_secrets("a-dev", "default"),
        Some(&[][..]),
        "known, with none"
    );
    assert_eq!(accounts.pull_secrets("b-dev", "builder"), None);

    c.service_accounts.apply_watcher_event(&Event::Delete(none));
    let (snap, _) = c.rebuild();
    assert_eq!(snap.service_accounts.pull_secrets("a-dev", "default"), None);
}

fn managed_fields() -> Option<Vec<ManagedFieldsEntry>> {
    Some(vec![ManagedFieldsEntry {
        manager: Some("kubectl".to_owned()),
        ..ManagedFieldsEntry::default()
    }])
}

#[test]
fn the_secret_cache_keeps_only_what_rules_read() {
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    let mut s = labelled_secret(
        "a-dev",
        "deploy-key",
        &[("tier", "ci")],
        &[
            (ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, "ci-runner"),
            (LAST_APPLIED, r#"{"data":{"key":"UExBTlRFRA=="}}"#),
        ],
    );
    s.metadata.managed_fields = managed_fields();
    s.metadata.uid = Some("u".to_owned());
    slim_secret(&mut s);
    assert_eq!(
        s.metadata,
        ObjectMeta {
            name: Some("deploy-key".to_owned()),
            namespace: Some("a-dev".to_owned()),
            labels: Some(pairs(&[("tier", "ci")])),
            annotations: Some(pairs(&[(ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, "ci-runner")])),
            // For the instance-secret controller's conditional writes.
            uid: Some("u".to_owned()),
            ..ObjectMeta::default()
        }
    );

    // No owner annotation: no annotations map at all.
    let mut s = labelled_secret("a-dev", "x", &[], &[(LAST_APPLIED, "{}")]);
    slim_secret(&mut s);
    assert_eq!(s.metadata.annotations, None);
}

#[test]
fn the_namespace_and_service_account_caches_keep_only_what_the_snapshot_reads() {
    let mut ns = namespace("a-dev", &[("project", "a")]);
    ns.metadata.managed_fields = managed_fields();
    ns.metadata.annotations = Some(pairs(&[("note", "x")]));
    slim_namespace(&mut ns);
    assert_eq!(
        ns.metadata,
        ObjectMeta {
            name: Some("a-dev".to_owned()),
            labels: Some(pairs(&[("project", "a")])),
            ..ObjectMeta::default()
        }
    );

    let mut account = service_account("a-dev", "builder", &["regcred"]);
    account.metadata.managed_fields = managed_fields();
    account.metadata.labels = Some(pairs(&[("team", "a")]));
    account.automount_service_account_token = Some(false);
    account.secrets = Some(vec![ObjectReference {
        name: Some("builder-token".to_owned()),
        ..ObjectReference::default()
    }]);
    slim_service_account(&mut account);
    assert_eq!(account, service_account("a-dev", "builder", &["regcred"]));
}
