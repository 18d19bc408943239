//! Keeps the published ValidatingAdmissionPolicies in step with the policies
//! (`serve --publish-admission-policies`, cluster mode): the elected replica lists the
//! objects it owns (label `app.kubernetes.io/managed-by: secretgate`), applies those
//! that differ from the plan by server-side apply (field manager
//! `secretgate-admission-policies`) and deletes those whose policy is gone. Nothing is
//! written when nothing differs.
//!
//! It runs when the plan changes, when this replica becomes the leader, and every
//! [`RESYNC`] (to put back what someone edited by hand). A cluster that does not serve
//! `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicies (before 1.30) is said
//! once in the log; the webhook goes on alone.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{FIELD_MANAGER, Plan, SELECTOR, Scope};
use crate::annotations::POLICY_ANNOTATION;
use crate::leader::Leadership;
use crate::policy::Snapshot;

/// How often the owned objects are compared with the plan though nothing changed.
pub const RESYNC: Duration = Duration::from_secs(600);
/// Wait before trying again after a failed pass (doubled for each failure in a row).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// `secretgate_admission_policy_writes_total{outcome}`: `applied`, `deleted`, `failed`.
#[derive(Clone)]
pub struct PublishMetrics {
    writes: IntCounterVec,
}

impl PublishMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let writes = IntCounterVec::new(
            Opts::new(
                "secretgate_admission_policy_writes_total",
                "Writes of ValidatingAdmissionPolicies and their bindings, by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Self { writes })
    }
}

/// What the publisher needs besides the snapshots (`policy::watch::Targets`).
#[derive(Clone)]
pub struct PublishTargets {
    pub scope: Scope,
    pub metrics: PublishMetrics,
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the cluster does not serve admissionregistration.k8s.io/v1 {0}")]
    Unsupported(&'static str),
    #[error("cannot list {what}")]
    List {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// The rebuild loop's side: offers each snapshot's plan to the background task.
pub struct Publisher {
    scope: Scope,
    plan: watch::Sender<Option<Arc<Plan>>>,
}

impl Publisher {
    /// Starts the background task that writes (on the leader only).
    pub fn start(client: Client, targets: PublishTargets, leadership: Leadership) -> Self {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(run(client, rx, leadership, targets.metrics));
        Self {
            scope: targets.scope,
            plan: tx,
        }
    }

    /// Plans for `snapshot`; wakes the task only when the plan differs from the last.
    pub fn offer(&self, snapshot: &Snapshot) {
        let plan = super::plan(snapshot, &self.scope);
        self.plan.send_if_modified(|current| {
            if current.as_deref() == Some(&plan) {
                return false;
            }
            *current = Some(Arc::new(plan));
            true
        });
    }
}

async fn run(
    client: Client,
    mut plan: watch::Receiver<Option<Arc<Plan>>>,
    mut leadership: Leadership,
    metrics: PublishMetrics,
) {
    let mut said_unsupported = false;
    // Failed passes in a row: the wait before the next try doubles with each.
    let mut failures = 0u32;
    let mut wait = RESYNC;
    loop {
        tokio::select! {
            changed = plan.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = leadership.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        wait = RESYNC;
        let Some(current) = plan.borrow_and_update().clone() else {
            continue;
        };
        if !leadership.is_leader() {
            continue;
        }
        let failed = match pass(&client, &current, &leadership, &metrics).await {
            Ok(0) => false,
            Ok(failed) => {
                tracing::warn!(failed, "some admission policy writes failed; retrying");
                true
            }
            Err(e @ Error::Unsupported(_)) => {
                if !said_unsupported {
                    tracing::warn!(error = %e, "admission policies not published: the webhook goes on alone");
                    said_unsupported = true;
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish admission policies; retrying");
                true
            }
        };
        failures = if failed {
            failures.saturating_add(1)
        } else {
            0
        };
        if failed {
            wait = RETRY_AFTER.saturating_mul(1 << failures.min(8)).min(RESYNC);
        }
    }
}

/// One pass: apply what differs, delete what is no longer wanted. Returns how many
/// writes failed.
pub async fn pass(
    client: &Client,
    plan: &Plan,
    leadership: &Leadership,
    metrics: &PublishMetrics,
) -> Result<usize, Error> {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let owned_policies = owned(&policies, "ValidatingAdmissionPolicies").await?;
    let owned_bindings = owned(&bindings, "ValidatingAdmissionPolicyBindings").await?;
    let mut writer = Writer {
        leadership,
        metrics,
        failed: 0,
    };
    // Policies before their bindings (a binding to a missing policy is ignored, but
    // briefly).
    for p in &plan.published {
        writer
            .apply(&policies, &owned_policies, &p.policy_object)
            .await;
    }
    for p in &plan.published {
        writer.apply(&bindings, &owned_bindings, &p.binding).await;
    }
    // Bindings first when deleting: the policy is never left bound to nothing.
    writer
        .delete_stale(&bindings, &owned_bindings, plan, |p| &p.binding.metadata)
        .await;
    writer
        .delete_stale(&policies, &owned_policies, plan, |p| {
            &p.policy_object.metadata
        })
        .await;
    Ok(writer.failed)
}

/// The objects of this kind labelled as secretgate's.
async fn owned<K>(api: &Api<K>, what: &'static str) -> Result<Vec<K>, Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default().labels(SELECTOR)).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(Error::Unsupported(what)),
        Err(source) => Err(Error::List { what, source }),
    }
}

struct Writer<'a> {
    leadership: &'a Leadership,
    metrics: &'a PublishMetrics,
    failed: usize,
}

impl Writer<'_> {
    /// Applies `wanted` unless an owned object of its name already says all it says
    /// (the API server adds defaults, so "says all" is containment, not equality).
    async fn apply<K>(&mut self, api: &Api<K>, owned: &[K], wanted: &K)
    where
        K: kube::Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        let Some(name) = wanted.meta().name.as_deref() else {
            return;
        };
        let want = serde_json::to_value(wanted).unwrap_or_default();
        let same = owned
            .iter()
            .find(|o| o.meta().name.as_deref() == Some(name))
            .and_then(|o| serde_json::to_value(o).ok())
            .is_some_and(|have| contains(&have, &want));
        if same || !self.leadership.is_leader() {
            return;
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let outcome = match api.patch(name, &params, &Patch::Apply(&want)).await {
            Ok(_) => {
                tracing::info!(name, "admission policy applied");
                "applied"
            }
            Err(e) => {
                tracing::warn!(name, error = %e, "cannot apply admission policy");
                self.failed += 1;
                "failed"
            }
        };
        self.metrics.writes.with_label_values(&[outcome]).inc();
    }

    /// Deletes owned objects no published pair names, except those of broken policies.
    async fn delete_stale<K>(
        &mut self,
        api: &Api<K>,
        owned: &[K],
        plan: &Plan,
        meta_of: impl Fn(
            &super::Published,
        ) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        for object in owned {
            let meta = object.meta();
            let Some(name) = meta.name.as_deref() else {
                continue;
            };
            let policy = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(POLICY_ANNOTATION));
            let wanted = plan
                .published
                .iter()
                .any(|p| meta_of(p).name.as_deref() == Some(name));
            let kept = policy.is_some_and(|p| plan.kept.contains(p));
            if wanted || kept || !self.leadership.is_leader() {
                continue;
            }
            let outcome = match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(
                        name,
                        policy = policy.map(String::as_str),
                        "stale admission policy deleted"
                    );
                    "deleted"
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => continue,
                Err(e) => {
                    tracing::warn!(name, error = %e, "cannot delete stale admission policy");
                    self.failed += 1;
                    "failed"
                }
            };
            self.metrics.writes.with_label_values(&[outcome]).inc();
        }
    }
}

/// Whether `have` says everything `want` does: objects key by key (extra keys allowed),
/// lists element by element (same length), other values equal.
pub fn contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| contains(h, w))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        _ => have == want,
    }
}
