//! The `secretgate.io/mode` label on every namespace: the mode of the policy that
//! governs it, kept by the elected replica (`serve --label-namespaces`), so the API
//! server can fail closed only where that is needed. The chart registers the Secret
//! webhook twice, selected by this label: `failurePolicy: Fail` for Enforce (and for
//! namespaces not labelled yet), `Ignore` for Warn and Audit, where a refusal is never
//! the answer anyway (Kubernetes' webhook good practices; Kyverno#2962 shows what a
//! cluster-wide Fail does to audit-only policies when the webhook dies).
//!
//! A broken policy (invalid, no good version) denies Secret writes, so its namespaces
//! are labelled Enforce. Labels are written with server-side apply under the field
//! manager `secretgate-mode-labels`, which owns this one label and nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::Notify;

use crate::annotations::MODE_LABEL;
use crate::policy::{Mode, Snapshot};

/// Field manager of the label writes.
pub const MANAGER: &str = "secretgate-mode-labels";
/// Wait before planning again after a failed write.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The mode a namespace should be labelled with: the strictest of its policy's rule sets
/// (`secretUse` and `pullGuarantee` may have modes of their own), since the label picks
/// whether each webhook fails closed there.
pub fn wanted(snapshot: &Snapshot, namespace: &str) -> Mode {
    let policy = snapshot.for_namespace(namespace);
    if policy.broken.is_some() {
        return Mode::Enforce;
    }
    let spec = &policy.spec;
    [
        spec.secret_use.as_ref().and_then(|rules| rules.mode),
        spec.pull_guarantee.as_ref().and_then(|g| g.mode),
    ]
    .into_iter()
    .flatten()
    .fold(spec.mode, Mode::strictest)
}

/// A label to write: the namespace, the mode it should say, and what it says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relabel {
    pub namespace: String,
    pub mode: Mode,
    pub current: Option<String>,
}

/// Namespaces whose label differs from what their policy says.
pub fn plan(snapshot: &Snapshot, namespaces: &[Arc<PartialObjectMeta<Namespace>>]) -> Vec<Relabel> {
    namespaces
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.as_deref()?;
            // Going away: a label write would only fail.
            if ns.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let mode = wanted(snapshot, name);
            let current = ns.metadata.labels.as_ref().and_then(|l| l.get(MODE_LABEL));
            (current.map(String::as_str) != Some(mode.as_str())).then(|| Relabel {
                namespace: name.to_owned(),
                mode,
                current: current.cloned(),
            })
        })
        .collect()
}

/// `secretgate_namespace_mode_labels_total{outcome}`: label writes, `applied` or `failed`.
#[derive(Clone)]
pub struct LabelMetrics {
    writes: IntCounterVec,
}

impl LabelMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let writes = IntCounterVec::new(
            Opts::new(
                "secretgate_namespace_mode_labels_total",
                "Writes of the secretgate.io/mode namespace label, by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Self { writes })
    }
}

/// Writes the labels a plan asks for, one pass at a time, on the leader only.
#[derive(Clone)]
pub struct Labeler {
    client: Client,
    running: Arc<AtomicBool>,
    /// Wakes the rebuild loop, which plans again.
    rebuild: Arc<Notify>,
    writes: IntCounterVec,
    /// Labels written whose change the cache has not shown yet: not written again
    /// while the namespace still says what it said before the write.
    pending: Arc<Mutex<HashMap<String, Relabel>>>,
}

impl Labeler {
    pub fn new(client: Client, metrics: LabelMetrics, rebuild: Arc<Notify>) -> Self {
        Self {
            client,
            running: Arc::new(AtomicBool::new(false)),
            rebuild,
            writes: metrics.writes,
            pending: Arc::default(),
        }
    }

    /// Takes the plan of one rebuild and, on the leader, writes it in the background.
    pub fn pass(&self, plan: Vec<Relabel>, leading: bool) {
        let plan: Vec<Relabel> = {
            let Ok(mut pending) = self.pending.lock() else {
                return;
            };
            // What the cache shows now is settled: forget it.
            pending.retain(|ns, written| plan.iter().any(|r| r.namespace == *ns && r == written));
            plan.into_iter()
                .filter(|r| !pending.contains_key(&r.namespace))
                .collect()
        };
        if !leading || plan.is_empty() {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            self.retry_later(Duration::from_millis(500));
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut failed = 0;
            for relabel in plan {
                let (namespace, mode) = (&relabel.namespace, relabel.mode);
                let outcome = match apply(&this.client, namespace, mode).await {
                    Ok(()) => {
                        if let Ok(mut pending) = this.pending.lock() {
                            pending.insert(namespace.clone(), relabel.clone());
                        }
                        "applied"
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(namespace = %namespace, error = %e, "cannot label namespace {MODE_LABEL}={}", mode.as_str());
                        "failed"
                    }
                };
                this.writes.with_label_values(&[outcome]).inc();
            }
            this.running.store(false, Ordering::Release);
            if failed > 0 {
                this.retry_later(RETRY_AFTER);
            }
        });
    }

    fn retry_later(&self, after: Duration) {
        let rebuild = self.rebuild.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            rebuild.notify_one();
        });
    }
}

/// Sets the label on one namespace with server-side apply (only this label is owned).
async fn apply(client: &Client, namespace: &str, mode: Mode) -> kube::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {MODE_LABEL: mode.as_str()}},
    });
    api.patch(
        namespace,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ProjectPolicySpec, Snapshot};

    fn namespace(name: &str, label: Option<&str>) -> Arc<PartialObjectMeta<Namespace>> {
        let mut meta = PartialObjectMeta::<Namespace>::default();
        meta.metadata.name = Some(name.to_owned());
        if let Some(label) = label {
            meta.metadata.labels = Some([(MODE_LABEL.to_owned(), label.to_owned())].into());
        }
        Arc::new(meta)
    }

    #[test]
    fn only_namespaces_whose_label_differs_from_their_policy_are_written() {
        let spec = ProjectPolicySpec {
            mode: Mode::Warn,
            ..ProjectPolicySpec::default()
        };
        let snapshot = Snapshot::with_fallback("team", spec);
        let plan = plan(
            &snapshot,
            &[
                namespace("right", Some("Warn")),
                namespace("wrong", Some("Audit")),
                namespace("forged", Some("warn")),
                namespace("unlabelled", None),
            ],
        );
        let planned: Vec<(&str, Mode, Option<&str>)> = plan
            .iter()
            .map(|r| (r.namespace.as_str(), r.mode, r.current.as_deref()))
            .collect();
        assert_eq!(
            planned,
            [
                ("wrong", Mode::Warn, Some("Audit")),
                ("forged", Mode::Warn, Some("warn")),
                ("unlabelled", Mode::Warn, None),
            ]
        );
    }

    #[test]
    fn the_default_policy_and_broken_policies_mean_enforce() {
        let snapshot = Snapshot::with_default();
        assert_eq!(wanted(&snapshot, "anything"), Mode::Enforce);
        // A Warn-mode policy that is broken: its namespaces deny, so they fail closed.
        let spec = serde_json::json!({"namespaces": ["team-a"], "mode": "Warn"});
        let broken = crate::policy::Policy::broken("team", "spec does not parse", Some(&spec));
        let namespaces = [("team-a".to_owned(), crate::policy::Labels::new())].into();
        let snapshot = Snapshot::build(vec![broken], &namespaces, Default::default());
        assert!(snapshot.for_namespace("team-a").broken.is_some());
        assert_eq!(wanted(&snapshot, "team-a"), Mode::Enforce);
    }

    #[test]
    fn a_rule_set_stricter_than_its_policy_sets_the_label() {
        let label = |spec: serde_json::Value| {
            let spec: ProjectPolicySpec = serde_json::from_value(spec).expect("spec");
            wanted(&Snapshot::with_fallback("team", spec), "team-a")
        };
        let pulls = |mode: &str| serde_json::json!({"registries": ["ghcr.io"], "mode": mode});
        assert_eq!(label(serde_json::json!({"mode": "Audit"})), Mode::Audit);
        assert_eq!(
            label(serde_json::json!({"mode": "Audit", "pullGuarantee": pulls("Enforce")})),
            Mode::Enforce
        );
        assert_eq!(
            label(
                serde_json::json!({"mode": "Warn", "secretUse": {"mode": "Enforce", "rules": []}})
            ),
            Mode::Enforce
        );
        // A more lenient rule set does not loosen the policy's own mode.
        assert_eq!(
            label(serde_json::json!({"mode": "Enforce", "pullGuarantee": pulls("Audit")})),
            Mode::Enforce
        );
        assert_eq!(
            label(serde_json::json!({"mode": "Audit", "pullGuarantee": pulls("Warn")})),
            Mode::Warn
        );
    }
}
