//! Cluster mode: reflectors keep ProjectPolicies, Namespaces, Secret *metadata* and
//! ServiceAccounts (their pull secrets' names) in memory; every change (debounced)
//! rebuilds the snapshot, which is swapped in whole.
//!
//! The admission path never calls the API server: if it becomes unreachable, reviews go
//! on with the last snapshot while the watchers retry with backoff.
//!
//! RBAC the service account needs (and nothing more):
//!
//! ```yaml
//! - apiGroups: ["secretgate.io"]
//!   resources: ["projectpolicies"]
//!   verbs: ["list", "watch"]
//! - apiGroups: ["secretgate.io"]
//!   resources: ["projectpolicies/status"]
//!   verbs: ["patch"]
//! - apiGroups: [""]
//!   resources: ["namespaces", "secrets", "serviceaccounts"]   # secrets: metadata-only
//!   verbs: ["list", "watch"]
//! ```
//!
//! Secrets are listed and watched as `PartialObjectMeta` (the API server sends
//! `metadata` only), so `data` never reaches this process through the watch. Each cache
//! keeps only what the snapshot reads ([`slim_secret`] and the others): for a Secret,
//! its name, labels and owner annotation. Its other annotations are dropped as they
//! arrive, among them the `last-applied-configuration` `kubectl apply` writes, which
//! holds a copy of the values. ServiceAccounts are read whole (they hold names of
//! secrets, never values) and kept as namespace, name and `imagePullSecrets`.
//!
//! Every replica keeps the caches and the snapshot (admission needs them), but only the
//! leader ([`crate::leader`]) writes statuses. The statuses to write are recomputed from
//! the caches on each rebuild (what differs from what the objects say), and a rebuild
//! follows every leadership change: a new leader writes what its predecessor left
//! unwritten, and a replica that loses leadership stops at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource};
use tokio::sync::Notify;

use super::ProjectPolicy;
use super::cluster::{Builder, StatusUpdate, slim_namespace, slim_secret, slim_service_account};
use super::file::{log_overlaps, record_reload};
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::policy::Snapshot;
use crate::policy::pull_secrets::PullSecretStore;

/// Changes closer together than this are folded into one rebuild.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Field manager of the status patches.
const MANAGER: &str = "secretgate";

/// Where cluster mode publishes its results.
#[derive(Clone)]
pub struct Targets {
    pub policies: Arc<ArcSwap<Snapshot>>,
    /// Set after the first full sync of all four caches.
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Whether this replica writes statuses ([`Leadership::always`] without election).
    pub leadership: Leadership,
    /// The instance-secret controller, when it is on.
    pub instance: Option<InstanceTargets>,
    /// The continuous audit, when it may run.
    pub audit: Option<crate::audit::continuous::Config>,
    /// The `secretgate.io/mode` namespace labels (`--label-namespaces`), when kept.
    pub mode_labels: Option<crate::mode_labels::LabelMetrics>,
    /// Whether pull secrets are read for the pull guarantee (`--pull-secret-registries`).
    pub pull_secret_registries: bool,
    /// The ValidatingAdmissionPolicies (`--publish-admission-policies`), when published.
    pub admission_policies: Option<crate::admission_policy::sync::PublishTargets>,
}

/// What the instance-secret controller needs besides the caches.
#[derive(Clone)]
pub struct InstanceTargets {
    /// Namespaces sources may come from.
    pub allowed_sources: std::collections::BTreeSet<String>,
    pub metrics: crate::instance::InstanceMetrics,
}

/// Runs the four reflectors and the rebuild loop until the task is dropped.
pub async fn run(client: Client, targets: Targets) {
    let changed = Arc::new(Notify::new());
    let resource = ApiResource::erase::<ProjectPolicy>(&());
    let policy_api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let (policies, policy_writer) = {
        let writer = reflector::store::Writer::new(resource.clone());
        (writer.as_reader(), writer)
    };
    let (namespaces, namespace_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    let (service_accounts, service_account_writer) = reflector::store();
    let config = watcher::Config::default();
    let streams = [
        drive(
            "projectpolicies",
            watcher(policy_api, config.clone())
                .default_backoff()
                .reflect(policy_writer),
            changed.clone(),
        ),
        drive(
            "namespaces",
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                config.clone(),
            )
            .default_backoff()
            .modify(slim_namespace)
            .reflect(namespace_writer),
            changed.clone(),
        ),
        drive(
            "secrets",
            watcher(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                config.clone(),
            )
            .default_backoff()
            .modify(slim_secret)
            .reflect(secret_writer),
            changed.clone(),
        ),
        drive(
            "serviceaccounts",
            watcher(Api::<ServiceAccount>::all(client.clone()), config)
                .default_backoff()
                .modify(slim_service_account)
                .reflect(service_account_writer),
            changed.clone(),
        ),
    ];
    // The pull guarantee's facts: one watch per pull-secret type (a field selector takes
    // one value), each event reduced to registry keys before anything is kept.
    let pull_secrets = targets.pull_secret_registries.then(|| {
        let store = PullSecretStore::new(PULL_SECRET_TYPES.len());
        for (which, secret_type) in PULL_SECRET_TYPES.iter().enumerate() {
            let config = watcher::Config::default().fields(&format!("type={secret_type}"));
            let stream = watcher(Api::<Secret>::all(client.clone()), config).default_backoff();
            let (store, changed) = (store.clone(), changed.clone());
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => {
                            store.apply(which, event);
                            changed.notify_one();
                        }
                        Err(e) => tracing::warn!(
                            resource = "secrets",
                            secret_type,
                            error = %crate::messages::Chain(&e),
                            "pull secret watch failed; retrying with backoff"
                        ),
                    }
                }
            });
        }
        store
    });
    let caches = Caches {
        policies,
        namespaces,
        secrets,
        service_accounts,
        pull_secrets,
    };
    let audit = targets.audit.clone().map(|config| {
        let sources = crate::audit::continuous::Sources {
            snapshot: targets.policies.clone(),
            ready: targets.ready.clone(),
            policies: caches.policies.clone(),
            namespaces: caches.namespaces.clone(),
            secrets: caches.secrets.clone(),
        };
        tokio::spawn(crate::audit::continuous::run(
            client.clone(),
            sources,
            targets.leadership.clone(),
            config,
        ))
    });
    let rebuild = rebuild_loop(client, caches, changed, targets);
    futures::future::join(futures::future::join_all(streams), rebuild).await;
    if let Some(audit) = audit {
        audit.abort();
    }
}

/// The four caches the snapshot is built from.
pub struct Caches {
    pub policies: Store<DynamicObject>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// The pull secrets pods inherit from their service account, for secret-use rules.
    pub service_accounts: Store<ServiceAccount>,
    /// What each pull secret serves, with `--pull-secret-registries`.
    pub pull_secrets: Option<PullSecretStore>,
}

/// The Secret types the kubelet reads as pull secrets.
const PULL_SECRET_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// Polls one reflector stream, logging errors (the backoff retries) and signalling
/// changes.
fn drive<K>(
    what: &'static str,
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    changed: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => {
                    tracing::warn!(resource = what, error = %crate::messages::Chain(&e), "watch failed; retrying with backoff")
                }
            }
        }
    })
}

/// Waits for the first full sync of every cache, then rebuilds on each change. Ready
/// waits for the ServiceAccounts too: before them, a pod inheriting a pull secret it may
/// not use would be admitted.
pub async fn rebuild_loop(client: Client, caches: Caches, changed: Arc<Notify>, targets: Targets) {
    let synced = futures::future::try_join4(
        caches.policies.wait_until_ready(),
        caches.namespaces.wait_until_ready(),
        caches.secrets.wait_until_ready(),
        caches.service_accounts.wait_until_ready(),
    )
    .await;
    if synced.is_err() {
        tracing::error!("policy watchers stopped before their first sync");
        return;
    }
    if let Some(store) = &caches.pull_secrets {
        // Before it, every pod pulling from a private registry would be refused.
        store.wait_until_ready().await;
    }
    let mut builder = Builder::default();
    let mut leadership = targets.leadership.clone();
    let controller = targets.instance.clone().map(|i| {
        crate::instance::Controller::new(
            client.clone(),
            i.allowed_sources,
            i.metrics,
            changed.clone(),
        )
    });
    let labeler = targets
        .mode_labels
        .clone()
        .map(|metrics| crate::mode_labels::Labeler::new(client.clone(), metrics, changed.clone()));
    let publisher = targets.admission_policies.clone().map(|t| {
        crate::admission_policy::sync::Publisher::start(client.clone(), t, leadership.clone())
    });
    // Rebuilds follow every secret change; overlaps are worth a warning only when they change.
    let mut last_overlaps = Vec::new();
    loop {
        let (mut snapshot, updates) = builder.rebuild(
            &caches.policies.state(),
            &caches.namespaces.state(),
            &caches.secrets.state(),
            &caches.service_accounts.state(),
        );
        if let Some(store) = &caches.pull_secrets {
            snapshot.pull_secrets = store.index();
        }
        if snapshot.overlaps() != last_overlaps.as_slice() {
            log_overlaps(&snapshot);
            last_overlaps = snapshot.overlaps().to_vec();
        }
        if let Some(controller) = &controller {
            let plan = crate::instance::plan_from_caches(
                &snapshot,
                &caches.namespaces.state(),
                &caches.secrets.state(),
                &controller.allowed_sources,
            );
            // Pods created before a copy exists get it injected, without a warning.
            crate::instance::provide(&plan, &mut snapshot.secrets);
            if leadership.is_leader() {
                let shown = instance_problems_shown(&caches.policies.state());
                for (policy, problems) in crate::instance::controller::status_changes(&plan, &shown)
                {
                    tokio::spawn(write_instance_status(
                        client.clone(),
                        policy,
                        problems,
                        leadership.clone(),
                    ));
                }
            }
            controller.pass(plan, leadership.is_leader());
        }
        if let Some(labeler) = &labeler {
            let plan = crate::mode_labels::plan(&snapshot, &caches.namespaces.state());
            labeler.pass(plan, leadership.is_leader());
        }
        if let Some(publisher) = &publisher {
            publisher.offer(&snapshot);
        }
        record_reload(&targets.metrics, &snapshot);
        tracing::debug!(
            policies = snapshot.policy_count(),
            "policy snapshot rebuilt"
        );
        targets.policies.store(Arc::new(snapshot));
        if !targets.ready.swap(true, Ordering::AcqRel) {
            tracing::info!("policy synced from the cluster");
        }
        let to_write = leader_writes(updates, leadership.is_leader());
        for update in to_write {
            tokio::spawn(write_status(client.clone(), update, leadership.clone()));
        }
        tokio::select! {
            () = changed.notified() => {}
            // Gained: write what differs. Lost: nothing to do, but harmless.
            leads = leadership.changed() => {
                tracing::debug!(leader = leads, "leadership changed; statuses recomputed");
            }
        }
        // Fold a burst of changes (a re-list, a kubectl apply of many objects) into one.
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// The statuses this replica writes: all of them when it leads, none otherwise (the
/// leader computes the same ones from its own caches).
pub fn leader_writes(updates: Vec<StatusUpdate>, leads: bool) -> Vec<StatusUpdate> {
    if leads {
        updates
    } else {
        if !updates.is_empty() {
            tracing::debug!(
                statuses = updates.len(),
                "not the leader: statuses left to the leader"
            );
        }
        Vec::new()
    }
}

/// What each policy's `status.instanceSecrets.problems` shows now, by policy name.
fn instance_problems_shown(
    policies: &[Arc<DynamicObject>],
) -> std::collections::BTreeMap<String, Vec<String>> {
    policies
        .iter()
        .filter_map(|p| {
            let name = p.metadata.name.clone()?;
            let shown = p.data["status"]["instanceSecrets"]["problems"]
                .as_array()
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Some((name, shown))
        })
        .collect()
}

/// Field manager of the instance-secret part of a status: its own, so the two writers'
/// server-side applies never remove each other's fields.
const INSTANCE_MANAGER: &str = "secretgate-instance-secrets";

/// Patches `status.instanceSecrets` of one policy (leader only; retried on the next
/// rebuild while it still differs).
async fn write_instance_status(
    client: Client,
    name: String,
    problems: Vec<String>,
    leadership: Leadership,
) {
    let status = serde_json::json!({"instanceSecrets": {"problems": problems}});
    apply_status(client, &name, INSTANCE_MANAGER, status, &leadership).await;
}

/// Patches a ProjectPolicy's status (conditions and `lastGoodSpec`); a failure is logged
/// and retried on the next rebuild (the status still differs then). Leadership is checked
/// again right before the request: it may have been lost since the rebuild.
async fn write_status(client: Client, update: StatusUpdate, leadership: Leadership) {
    let status = serde_json::to_value(&update.status).unwrap_or_default();
    apply_status(client, &update.name, MANAGER, status, &leadership).await;
}

/// Server-side applies `status` to policy `name` as field manager `manager`, if this
/// replica leads (checked again right before the write); a failure is logged and the
/// next rebuild tries again while the status still differs.
async fn apply_status(
    client: Client,
    name: &str,
    manager: &str,
    status: serde_json::Value,
    leadership: &Leadership,
) {
    if !leadership.is_leader() {
        return;
    }
    let api: Api<ProjectPolicy> = Api::all(client);
    let patch = serde_json::json!({
        "apiVersion": ProjectPolicy::api_version(&()),
        "kind": ProjectPolicy::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(manager).force();
    if let Err(e) = api.patch_status(name, &params, &Patch::Apply(&patch)).await {
        tracing::warn!(policy = %name, manager, error = %e, "cannot write ProjectPolicy status");
    }
}
