//! The snapshot builder over reflector stores filled by hand (no HTTP): add, modify,
//! an invalid edit that keeps the last good version, delete, and namespace labels.

use super::*;
use crate::policy::{DEFAULT_POLICY_NAME, Mode, ProjectPolicy};
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

struct Cluster {
    policies: Writer<DynamicObject>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
    secrets: Writer<PartialObjectMeta<Secret>>,
    builder: Builder,
}

impl Cluster {
    fn new() -> Self {
        Self {
            policies: Writer::new(ApiResource::erase::<ProjectPolicy>(&())),
            namespaces: reflector::store().1,
            secrets: reflector::store().1,
            builder: Builder::default(),
        }
    }

    fn rebuild(&mut self) -> (Snapshot, Vec<StatusUpdate>) {
        self.builder.rebuild(
            &self.policies.as_reader().state(),
            &self.namespaces.as_reader().state(),
            &self.secrets.as_reader().state(),
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
            "spec.secrets.ssh.minRsaBits: 8 is outside 1024..16384"
        )]
    );
    assert_eq!(updates[0].status.conditions[0].reason, "Invalid");
    assert_eq!(updates[0].status.observed_generation, Some(3));

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
fn a_policy_invalid_from_the_start_is_not_in_force() {
    let mut c = Cluster::new();
    let p = policy(
        "p",
        1,
        serde_json::json!({"namespaces": ["x"], "secrets": {"allowedTypes": [""]}}),
    );
    c.policies.apply_watcher_event(&Event::Apply(p));
    let (snap, updates) = c.rebuild();
    assert_eq!(snap.policy_count(), 0);
    assert_eq!(&*snap.for_namespace("x").name, DEFAULT_POLICY_NAME);
    assert_eq!(ready(&updates[0]).1, "False");
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
