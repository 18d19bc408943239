//! The instance-secret controller: after every rebuild of the snapshot (any change to a
//! policy, namespace or secret, debounced), the plan is computed from the caches and, on
//! the elected replica, applied — one pass at a time, off the admission path.
//!
//! A pass that cannot start (one is running) or that did not finish cleanly (a race, an
//! API error) asks for another rebuild after a pause, so no change is left unapplied
//! when the cluster goes quiet. The plan is recomputed each time from the caches: a pass
//! never acts on a stale list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::Notify;

use super::apply::{Outcome, apply};
use super::plan::{Action, Plan, ProblemKind};

/// Pause before another pass after one that raced or failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Copies by state, and the controller's writes.
#[derive(Clone)]
pub struct InstanceMetrics {
    /// Copies wanted or found, by state: `in_sync`, `pending` (to create or update),
    /// `orphaned` (to delete), `conflict`, `source_missing`, `source_not_allowed`.
    pub copies: IntGaugeVec,
    /// Writes and skips, by outcome (`created`, `updated`, `deleted`, `raced`, `failed`, …).
    pub writes: IntCounterVec,
}

impl InstanceMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let copies = IntGaugeVec::new(
            Opts::new(
                "secretgate_instance_secret_copies",
                "Instance-secret copies by state, as of the last pass.",
            ),
            &["state"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "secretgate_instance_secret_writes_total",
                "Instance-secret controller actions by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(copies.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Self { copies, writes })
    }

    /// Records what `plan` says of the copies.
    pub fn observe(&self, plan: &Plan) {
        let pending = plan
            .actions
            .iter()
            .filter(|a| !matches!(a, Action::Delete { .. }))
            .count();
        let orphaned = plan.actions.len() - pending;
        let problems = |kind| plan.problems.iter().filter(|p| p.kind == kind).count();
        for (state, n) in [
            ("in_sync", plan.in_sync),
            ("pending", pending),
            ("orphaned", orphaned),
            ("conflict", problems(ProblemKind::Conflict)),
            ("source_missing", problems(ProblemKind::SourceMissing)),
            (
                "source_not_allowed",
                problems(ProblemKind::SourceNotAllowed),
            ),
        ] {
            self.copies
                .with_label_values(&[state])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// Most problems one policy's status lists.
const MAX_STATUS_PROBLEMS: usize = 20;

/// The `status.instanceSecrets.problems` each policy should show, for the policies whose
/// status (`current`: name → what it shows now) says otherwise. A policy with no problem
/// gets an empty list once, so a fixed conflict disappears from its status.
pub fn status_changes(
    plan: &Plan,
    current: &BTreeMap<String, Vec<String>>,
) -> Vec<(String, Vec<String>)> {
    let mut wanted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for problem in &plan.problems {
        wanted
            .entry(problem.policy.as_str())
            .or_default()
            .push(format!(
                "{}/{}: {}",
                problem.namespace,
                problem.name,
                problem.message()
            ));
    }
    let mut changes = Vec::new();
    for (policy, shown) in current {
        let mut lines = wanted.remove(policy.as_str()).unwrap_or_default();
        if lines.len() > MAX_STATUS_PROBLEMS {
            let more = lines.len() - MAX_STATUS_PROBLEMS;
            lines.truncate(MAX_STATUS_PROBLEMS);
            lines.push(format!("and {more} more"));
        }
        if &lines != shown {
            changes.push((policy.clone(), lines));
        }
    }
    changes
}

/// Runs passes for the cluster-mode loop.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    /// Namespaces sources may come from.
    pub allowed_sources: Arc<BTreeSet<String>>,
    metrics: InstanceMetrics,
    /// Set while a pass runs.
    running: Arc<AtomicBool>,
    /// Wakes the rebuild loop (which plans again).
    rebuild: Arc<Notify>,
    /// Problems last logged, so a standing conflict is logged once.
    reported: Arc<std::sync::Mutex<BTreeSet<(String, String, String)>>>,
}

impl Controller {
    pub fn new(
        client: Client,
        allowed_sources: BTreeSet<String>,
        metrics: InstanceMetrics,
        rebuild: Arc<Notify>,
    ) -> Self {
        Self {
            client,
            allowed_sources: Arc::new(allowed_sources),
            metrics,
            running: Arc::new(AtomicBool::new(false)),
            rebuild,
            reported: Arc::default(),
        }
    }

    /// Takes the plan of one rebuild: records it, logs new problems, and on the leader
    /// applies it in the background.
    pub fn pass(&self, plan: Plan, leading: bool) {
        self.metrics.observe(&plan);
        self.log_problems(&plan);
        if !leading || plan.actions.is_empty() {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            // A pass is running: plan again once it is done.
            self.retry_later(Duration::from_millis(500));
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let applied = apply(&this.client, &plan.actions).await;
            for (outcome, n) in &applied.counts {
                this.metrics
                    .writes
                    .with_label_values(&[outcome.as_str()])
                    .inc_by(*n as u64);
            }
            this.running.store(false, Ordering::Release);
            let unfinished = applied.count(Outcome::Failed) + applied.count(Outcome::Raced);
            if unfinished > 0 {
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

    fn log_problems(&self, plan: &Plan) {
        let now: BTreeSet<(String, String, String)> = plan
            .problems
            .iter()
            .map(|p| {
                (
                    p.policy.clone(),
                    p.kind.as_str().to_owned(),
                    format!("{}/{}", p.namespace, p.name),
                )
            })
            .collect();
        let Ok(mut reported) = self.reported.lock() else {
            return;
        };
        for problem in &plan.problems {
            let key = (
                problem.policy.clone(),
                problem.kind.as_str().to_owned(),
                format!("{}/{}", problem.namespace, problem.name),
            );
            if !reported.contains(&key) {
                tracing::warn!(
                    policy = %problem.policy,
                    problem = problem.kind.as_str(),
                    "instance secret not provided: {}",
                    problem.message()
                );
            }
        }
        *reported = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::plan::{Copy, Problem};
    use crate::policy::SecretReference;

    #[test]
    fn statuses_change_only_where_they_differ() {
        let problem = |policy: &str, ns: &str| Problem {
            policy: policy.into(),
            kind: ProblemKind::Conflict,
            namespace: ns.into(),
            name: "regcred".into(),
        };
        let plan = Plan {
            problems: vec![problem("a", "x"), problem("a", "y")],
            ..Plan::default()
        };
        let shown = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let current = BTreeMap::from([
            ("a".to_owned(), shown(&[])),
            ("b".to_owned(), shown(&["old/regcred: fixed since"])),
            ("c".to_owned(), shown(&[])),
        ]);
        let changes = status_changes(&plan, &current);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].0, "a");
        assert!(changes[0].1[0].starts_with("x/regcred: secret x/regcred exists"));
        assert_eq!(
            changes[1],
            ("b".to_owned(), vec![]),
            "a fixed conflict goes"
        );

        let settled = BTreeMap::from([("a".to_owned(), changes[0].1.clone())]);
        assert!(status_changes(&plan, &settled).is_empty(), "no churn");

        let many = Plan {
            problems: (0..30).map(|i| problem("a", &format!("n{i:02}"))).collect(),
            ..Plan::default()
        };
        let bounded = status_changes(&many, &BTreeMap::from([("a".to_owned(), vec![])]));
        assert_eq!(bounded[0].1.len(), MAX_STATUS_PROBLEMS + 1);
        assert_eq!(bounded[0].1.last().map(String::as_str), Some("and 10 more"));
    }

    #[test]
    fn copies_are_counted_by_state() {
        let registry = Registry::new();
        let metrics = InstanceMetrics::new(&registry).expect("metrics");
        let copy = Copy {
            namespace: "a".into(),
            name: "regcred".into(),
            policy: Arc::from("p"),
            source: SecretReference {
                namespace: "secretgate".into(),
                name: "regcred".into(),
            },
            source_version: Some("1".into()),
        };
        let plan = Plan {
            actions: vec![
                Action::Create(copy.clone()),
                Action::Update {
                    copy,
                    resource_version: None,
                },
                Action::Delete {
                    namespace: "b".into(),
                    name: "regcred".into(),
                    uid: None,
                },
            ],
            problems: vec![Problem {
                policy: "p".into(),
                kind: ProblemKind::Conflict,
                namespace: "c".into(),
                name: "regcred".into(),
            }],
            in_sync: 4,
            wanted: BTreeSet::new(),
        };
        metrics.observe(&plan);
        let value = |state: &str| metrics.copies.with_label_values(&[state]).get();
        assert_eq!(
            [
                value("in_sync"),
                value("pending"),
                value("orphaned"),
                value("conflict")
            ],
            [4, 2, 1, 1]
        );
    }
}
