//! What one watch event costs the cluster-mode snapshot (issue 20), at the scale of a
//! large cluster: 10,000 namespaces, 50,000 secrets, 10,000 service accounts and 100
//! ProjectPolicies (each selecting 100 namespaces by label, with secretUse rules and
//! imagePullSecrets rules).
//!
//! Rows, measured in one run:
//! - `full_rebuild`: the whole build from the caches by a fresh builder (what every event
//!   cost before the indexes were kept incrementally, less the per-namespace compile of
//!   secretUse rules; still what `secretgate audit` does once);
//! - `secret_event`: one Secret Apply applied to the watched index, then the snapshot
//!   assembled (what the loop does per event, minus the debounce);
//! - `churn_pass_200_per_s`: one debounced pass of a 200 events/s secret churn (10
//!   creates and 10 deletes in 100 ms, one snapshot): × 10 per second gives the CPU share;
//! - `namespace_event`: one namespace's labels changed and resolved alone;
//! - `policy_event`: one policy's spec changed (the other 99 not parsed again, the
//!   namespaces it selects resolved again).
//!
//! `cargo bench --bench snapshot`. Under `cargo test` (a debug build, run once) the
//! scale is a tenth.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{LocalObjectReference, Namespace, Secret, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::watcher::Event;
use secretgate::policy::cluster::{Builder, account_pull_secrets, secret_meta};
use secretgate::policy::namespaced::WatchedIndex;
use secretgate::policy::{ProjectPolicy, SecretMeta, Snapshot};

/// Divides every count under `cargo test` (debug build).
const SCALE: usize = if cfg!(debug_assertions) { 10 } else { 1 };
const POLICIES: usize = 100 / SCALE;
const NAMESPACES: usize = 10_000 / SCALE;
const SECRETS: usize = 50_000 / SCALE;

fn policy(i: usize, generation: i64) -> Arc<DynamicObject> {
    let resource = ApiResource::erase::<ProjectPolicy>(&());
    let spec = serde_json::json!({
        "namespaceSelector": {"matchLabels": {"project": format!("p{i}")}},
        "mode": "Enforce",
        "secrets": {"imagePull": {"allowedRegistries": ["registry.example.com", "*.example.com"]}},
        "imagePullSecrets": [{"secretName": "regcred", "registries": ["registry.example.com"]}],
        "secretUse": {"rules": [
            {"name": "by-name", "secrets": {"names": ["db", "api-key"]}, "serviceAccounts": ["app"]},
            {"name": "by-pattern", "secrets": {"namePatterns": ["ci-[a-z0-9-]{1,40}"]}, "serviceAccounts": ["ci"]},
            {"name": "by-label", "secrets": {"selector": {"matchLabels": {"shared": "true"}}}, "serviceAccounts": ["app", "ci"]}
        ]}
    });
    let mut obj = DynamicObject::new(&format!("p{i:03}"), &resource)
        .data(serde_json::json!({ "spec": spec }));
    obj.metadata.uid = Some(format!("uid-{i}"));
    obj.metadata.generation = Some(generation);
    Arc::new(obj)
}

fn namespace(i: usize, label: &str) -> Arc<PartialObjectMeta<Namespace>> {
    let mut ns = PartialObjectMeta::<Namespace>::default();
    ns.metadata.name = Some(format!("ns-{i}"));
    ns.metadata.labels = Some(BTreeMap::from([
        ("project".to_owned(), label.to_owned()),
        ("kubernetes.io/metadata.name".to_owned(), format!("ns-{i}")),
    ]));
    Arc::new(ns)
}

fn secret(i: usize) -> PartialObjectMeta<Secret> {
    let mut s = PartialObjectMeta::<Secret>::default();
    s.metadata.namespace = Some(format!("ns-{}", i % NAMESPACES));
    s.metadata.name = Some(format!("secret-{i}"));
    s.metadata.labels = Some(BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        ("shared".to_owned(), (i % 2 == 0).to_string()),
    ]));
    s
}

fn account(i: usize) -> ServiceAccount {
    let mut a = ServiceAccount::default();
    a.metadata.namespace = Some(format!("ns-{i}"));
    a.metadata.name = Some("default".to_owned());
    a.image_pull_secrets = Some(vec![LocalObjectReference {
        name: "regcred".to_owned(),
    }]);
    a
}

struct Cluster {
    policies: Vec<Arc<DynamicObject>>,
    namespaces: Vec<Arc<PartialObjectMeta<Namespace>>>,
    secrets: Vec<Arc<PartialObjectMeta<Secret>>>,
    accounts: Vec<Arc<ServiceAccount>>,
}

fn cluster() -> Cluster {
    Cluster {
        policies: (0..POLICIES).map(|i| policy(i, 1)).collect(),
        namespaces: (0..NAMESPACES)
            .map(|i| namespace(i, &format!("p{}", i % POLICIES)))
            .collect(),
        secrets: (0..SECRETS).map(|i| Arc::new(secret(i))).collect(),
        accounts: (0..NAMESPACES).map(|i| Arc::new(account(i))).collect(),
    }
}

/// The watched indexes after the initial list, as the watch tasks leave them.
fn listed(c: &Cluster) -> (WatchedIndex<SecretMeta>, WatchedIndex<Arc<[String]>>) {
    let secrets = WatchedIndex::default();
    secrets.apply(&Event::Init, secret_meta);
    for s in &c.secrets {
        secrets.apply(&Event::InitApply((**s).clone()), secret_meta);
    }
    secrets.apply(&Event::InitDone, secret_meta);
    let accounts = WatchedIndex::default();
    accounts.apply(&Event::Init, account_pull_secrets);
    for a in &c.accounts {
        accounts.apply(&Event::InitApply((**a).clone()), account_pull_secrets);
    }
    accounts.apply(&Event::InitDone, account_pull_secrets);
    (secrets, accounts)
}

fn snapshot_events(c: &mut Criterion) {
    let cluster = cluster();
    let (secrets, accounts) = listed(&cluster);
    let mut builder = Builder::default();
    let (governance, _) = builder.govern(&cluster.policies, &cluster.namespaces, None);
    let governance = Arc::new(governance);
    let publish = |governance: &Arc<_>| {
        let mut snapshot = Snapshot::assemble(Arc::clone(governance), secrets.current().into());
        snapshot.service_accounts = accounts.current().into();
        snapshot
    };
    // The setup means what it says: every namespace governed, every secret indexed.
    let check = publish(&governance);
    assert_eq!(check.secrets.len(), SECRETS);
    assert_eq!(check.policy_count(), POLICIES);
    assert_eq!(&*check.for_namespace("ns-1").name, "p001");

    let mut group = c.benchmark_group("snapshot");
    group.sample_size(20);
    group.bench_function("full_rebuild", |b| {
        b.iter(|| {
            Builder::default().rebuild(
                &cluster.policies,
                &cluster.namespaces,
                &cluster.secrets,
                &cluster.accounts,
            )
        })
    });
    group.sample_size(100);
    let mut n = SECRETS;
    group.bench_function("secret_event", |b| {
        b.iter(|| {
            n += 1;
            secrets.apply(&Event::Apply(secret(n)), secret_meta);
            publish(&governance)
        })
    });
    group.bench_function("churn_pass_200_per_s", |b| {
        b.iter(|| {
            for _ in 0..10 {
                n += 1;
                // Creates and deletes in equal measure, so the index keeps its size.
                secrets.apply(&Event::Apply(secret(n)), secret_meta);
                secrets.apply(&Event::Delete(secret(n - 10_000 / SCALE)), secret_meta);
            }
            publish(&governance)
        })
    });
    let mut flip = false;
    group.bench_function("namespace_event", |b| {
        b.iter(|| {
            flip = !flip;
            let moved = namespace(7, if flip { "p8" } else { "p7" });
            let mut next = (*governance).clone();
            next.update_namespace("ns-7", moved.metadata.labels.as_ref());
            publish(&Arc::new(next))
        })
    });
    group.sample_size(20);
    let mut generation = 1;
    let mut policies = cluster.policies.clone();
    group.bench_function("policy_event", |b| {
        b.iter(|| {
            generation += 1;
            policies[5] = policy(5, generation);
            let (next, _) = builder.govern(&policies, &cluster.namespaces, Some(&governance));
            publish(&Arc::new(next))
        })
    });
    group.finish();
}

criterion_group!(benches, snapshot_events);
criterion_main!(benches);
