//! Cluster mode: reflectors keep ProjectPolicies, Namespaces, Secret *metadata* and
//! ServiceAccounts (their pull secrets' names) in memory, and every change (debounced)
//! publishes a new snapshot, swapped in whole. What a change costs follows the change, not
//! the cluster: a Secret or ServiceAccount event updates its persistent index in place
//! ([`super::namespaced`], O(log n)) and a snapshot takes the indexes in O(1); a Namespace
//! event resolves that namespace alone; only a policy change (or a re-list, or a
//! leadership change) resolves every namespace again, parsing only the policies whose
//! spec changed.
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

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource};
use tokio::sync::Notify;

use super::ProjectPolicy;
use super::SecretMeta;
use super::cluster::{
    Builder, StatusUpdate, account_pull_secrets, secret_meta, slim_namespace, slim_secret,
    slim_service_account,
};
use super::file::{log_overlaps, record_reload};
use super::namespaced::WatchedIndex;
use super::resolve::Governance;
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
    let log = ChangeLog::new(changed.clone());
    let secret_index = Arc::new(WatchedIndex::default());
    let account_index = Arc::new(WatchedIndex::default());
    let streams = [
        drive(
            "projectpolicies",
            watcher(policy_api, config.clone())
                .default_backoff()
                .reflect(policy_writer),
            {
                let log = log.clone();
                move |event: &watcher::Event<DynamicObject>| {
                    if !matches!(event, watcher::Event::InitApply(_)) {
                        log.record(|c| c.policies = true);
                    }
                }
            },
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
            {
                let log = log.clone();
                move |event: &watcher::Event<PartialObjectMeta<Namespace>>| match event {
                    watcher::Event::Apply(ns) | watcher::Event::Delete(ns) => {
                        if let Some(name) = &ns.metadata.name {
                            log.record(|c| {
                                c.namespaces.insert(name.clone());
                            });
                        }
                    }
                    // A re-list replaces the cache once complete: resolve everything then.
                    watcher::Event::InitDone => log.record(|c| c.govern_all = true),
                    watcher::Event::Init | watcher::Event::InitApply(_) => {}
                }
            },
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
            {
                let (log, index) = (log.clone(), secret_index.clone());
                move |event: &watcher::Event<PartialObjectMeta<Secret>>| {
                    index.apply(event, secret_meta);
                    log.record(|c| c.indexes = true);
                }
            },
        ),
        drive(
            "serviceaccounts",
            watcher(Api::<ServiceAccount>::all(client.clone()), config)
                .default_backoff()
                .modify(slim_service_account)
                .reflect(service_account_writer),
            {
                let (log, index) = (log.clone(), account_index.clone());
                move |event: &watcher::Event<ServiceAccount>| {
                    index.apply(event, account_pull_secrets);
                    log.record(|c| c.indexes = true);
                }
            },
        ),
    ];
    // The pull guarantee's facts: one watch per pull-secret type (a field selector takes
    // one value), each event reduced to registry keys before anything is kept.
    let pull_secrets = targets.pull_secret_registries.then(|| {
        let store = PullSecretStore::new(PULL_SECRET_TYPES.len());
        for (which, secret_type) in PULL_SECRET_TYPES.iter().enumerate() {
            let config = watcher::Config::default().fields(&format!("type={secret_type}"));
            let stream = watcher(Api::<Secret>::all(client.clone()), config).default_backoff();
            let (store, log) = (store.clone(), log.clone());
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => {
                            store.apply(which, event);
                            log.record(|c| c.indexes = true);
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
        secret_index,
        account_index,
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
    let rebuild = rebuild_loop(client, caches, log, targets);
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
    /// The snapshot's secret index, kept by the secrets watch one event at a time.
    pub secret_index: Arc<WatchedIndex<SecretMeta>>,
    /// The snapshot's service-account index, kept likewise.
    pub account_index: Arc<WatchedIndex<Arc<[String]>>>,
}

/// What changed since the last pass, as the watch tasks record it. A wake-up with
/// nothing recorded comes from a controller asking for another pass (a retry).
#[derive(Debug, Default)]
pub struct Changes {
    /// The first pass, or the namespaces were re-listed: resolve every namespace again.
    pub govern_all: bool,
    /// A policy changed, leadership changed or a status write must be retried: parse
    /// what changed, compute the statuses, resolve what the changed policies select.
    pub policies: bool,
    /// Namespaces whose labels changed or that went away.
    pub namespaces: BTreeSet<String>,
    /// The secret, service-account or pull-secret index changed.
    pub indexes: bool,
}

impl Changes {
    fn is_empty(&self) -> bool {
        !self.govern_all && !self.policies && self.namespaces.is_empty() && !self.indexes
    }
}

/// Where the watch tasks record changes, and the wake-up of the rebuild loop.
#[derive(Clone)]
pub struct ChangeLog {
    changes: Arc<Mutex<Changes>>,
    wake: Arc<Notify>,
}

impl ChangeLog {
    pub fn new(wake: Arc<Notify>) -> Self {
        Self {
            changes: Arc::default(),
            wake,
        }
    }

    /// Records a change and wakes the loop.
    pub fn record(&self, change: impl FnOnce(&mut Changes)) {
        change(&mut self.changes.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_one();
    }

    fn take(&self) -> Changes {
        std::mem::take(&mut self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The Secret types the kubelet reads as pull secrets.
const PULL_SECRET_TYPES: [&str; 2] = ["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"];

/// Polls one reflector stream, logging errors (the backoff retries) and handing each
/// event to `on_event`.
fn drive<K>(
    what: &'static str,
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => on_event(&event),
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
pub async fn rebuild_loop(client: Client, caches: Caches, log: ChangeLog, targets: Targets) {
    let changed = log.wake.clone();
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
    // Overlaps are worth a warning only when they change.
    let mut last_overlaps = Vec::new();
    let mut governance = None;
    let mut instance_plan = None;
    // The first pass resolves everything.
    log.record(|c| c.govern_all = true);
    loop {
        let changes = log.take();
        // Woken with nothing recorded: a controller asked for another pass.
        let retry = changes.is_empty();
        let (current, updates, governance_changed) =
            govern(&mut builder, &caches, governance.take(), &changes);
        governance = Some(current.clone());
        let mut snapshot = Snapshot::assemble(current, caches.secret_index.current().into());
        snapshot.service_accounts = caches.account_index.current().into();
        if let Some(store) = &caches.pull_secrets {
            snapshot.pull_secrets = store.index();
        }
        if governance_changed {
            if snapshot.overlaps() != last_overlaps.as_slice() {
                log_overlaps(&snapshot);
                last_overlaps = snapshot.overlaps().to_vec();
            }
            if let Some(publisher) = &publisher {
                publisher.offer(&snapshot);
            }
            record_reload(&targets.metrics, &snapshot);
        }
        if let Some(controller) = &controller {
            // Its plan reads every secret: made again only when its inputs changed.
            if governance_changed || changes.indexes || retry || instance_plan.is_none() {
                let plan = crate::instance::plan_from_caches(
                    &snapshot,
                    &caches.namespaces.state(),
                    &caches.secrets.state(),
                    &controller.allowed_sources,
                );
                if leadership.is_leader() {
                    let shown = instance_problems_shown(&caches.policies.state());
                    for (policy, problems) in
                        crate::instance::controller::status_changes(&plan, &shown)
                    {
                        tokio::spawn(write_instance_status(
                            client.clone(),
                            policy,
                            problems,
                            leadership.clone(),
                        ));
                    }
                }
                controller.pass(plan.clone(), leadership.is_leader());
                instance_plan = Some(plan);
            }
            // Pods created before a copy exists get it injected, without a warning.
            if let Some(plan) = &instance_plan {
                crate::instance::provide(plan, &mut snapshot.secrets);
            }
        }
        if let Some(labeler) = &labeler
            && (governance_changed || retry)
        {
            let plan = crate::mode_labels::plan(&snapshot, &caches.namespaces.state());
            labeler.pass(plan, leadership.is_leader());
        }
        tracing::debug!(
            policies = snapshot.policy_count(),
            governance_changed,
            "policy snapshot published"
        );
        targets.policies.store(Arc::new(snapshot));
        if !targets.ready.swap(true, Ordering::AcqRel) {
            tracing::info!("policy synced from the cluster");
        }
        let to_write = leader_writes(updates, leadership.is_leader());
        for update in to_write {
            tokio::spawn(write_status(
                client.clone(),
                update,
                leadership.clone(),
                log.clone(),
            ));
        }
        tokio::select! {
            () = changed.notified() => {}
            // Gained: write what differs. Lost: nothing to do, but harmless.
            leads = leadership.changed() => {
                tracing::debug!(leader = leads, "leadership changed; statuses recomputed");
                log.record(|c| c.policies = true);
            }
        }
        // Fold a burst of changes (a re-list, a kubectl apply of many objects) into one.
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// The governance after `changes`: resolved whole (with the statuses to write) on the
/// first pass and after a namespace re-list; after a policy change, the namespaces the
/// changed policies select; after namespace events, those namespaces alone; else the
/// previous one. Also says whether it changed.
fn govern(
    builder: &mut Builder,
    caches: &Caches,
    previous: Option<Arc<Governance>>,
    changes: &Changes,
) -> (Arc<Governance>, Vec<StatusUpdate>, bool) {
    let (mut current, updates) = match previous {
        Some(previous) if !changes.govern_all => {
            if !changes.policies {
                if changes.namespaces.is_empty() {
                    return (previous, Vec::new(), false);
                }
                ((*previous).clone(), Vec::new())
            } else {
                let namespaces = caches.namespaces.state();
                builder.govern(&caches.policies.state(), &namespaces, Some(&previous))
            }
        }
        _ => {
            let (governance, updates) =
                builder.govern(&caches.policies.state(), &caches.namespaces.state(), None);
            return (Arc::new(governance), updates, true);
        }
    };
    for name in &changes.namespaces {
        let labels = caches
            .namespaces
            .get(&ObjectRef::new(name))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default());
        current.update_namespace(name, labels.as_ref());
    }
    (Arc::new(current), updates, true)
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
/// and, after [`STATUS_RETRY`], the statuses are computed again and what still differs is
/// written. Leadership is checked again right before the request: it may have been lost
/// since the rebuild.
async fn write_status(
    client: Client,
    update: StatusUpdate,
    leadership: Leadership,
    log: ChangeLog,
) {
    let status = serde_json::to_value(&update.status).unwrap_or_default();
    if !apply_status(client, &update.name, MANAGER, status, &leadership).await {
        tokio::time::sleep(STATUS_RETRY).await;
        log.record(|c| c.policies = true);
    }
}

/// How long a failed status write waits before the statuses are computed again.
const STATUS_RETRY: Duration = Duration::from_secs(5);

/// Server-side applies `status` to policy `name` as field manager `manager`, if this
/// replica leads (checked again right before the write); a failure is logged and
/// `false` returned.
async fn apply_status(
    client: Client,
    name: &str,
    manager: &str,
    status: serde_json::Value,
    leadership: &Leadership,
) -> bool {
    if !leadership.is_leader() {
        return true;
    }
    let api: Api<ProjectPolicy> = Api::all(client);
    let patch = serde_json::json!({
        "apiVersion": ProjectPolicy::api_version(&()),
        "kind": ProjectPolicy::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(manager).force();
    match api.patch_status(name, &params, &Patch::Apply(&patch)).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(policy = %name, manager, error = %e, "cannot write ProjectPolicy status");
            false
        }
    }
}
