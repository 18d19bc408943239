//! From the reflectors' caches to a snapshot: parses each ProjectPolicy on its own, keeps
//! the last good version of a policy that turned invalid, and says which statuses need
//! writing. Pure (no I/O), so it is tested by filling stores by hand.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DynamicObject, PartialObjectMeta};
use serde::Deserialize as _;

use super::{Labels, Policy, ProjectPolicySpec, ProjectPolicyStatus, SecretIndex, Snapshot};

/// A status the service should write to a ProjectPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub name: String,
    pub status: ProjectPolicyStatus,
}

/// What the builder remembers between rebuilds.
#[derive(Debug, Default)]
pub struct Builder {
    /// The last version of each policy that passed validation, by name: it stays in force
    /// while a later edit of the same policy is invalid.
    last_good: HashMap<String, Policy>,
    /// The error last logged per policy, so a broken policy is logged once, not on every
    /// rebuild.
    reported: HashMap<String, String>,
}

impl Builder {
    /// The snapshot of the current caches, and the statuses that differ from what the
    /// objects say.
    pub fn rebuild(
        &mut self,
        policies: &[Arc<DynamicObject>],
        namespaces: &[Arc<PartialObjectMeta<Namespace>>],
        secrets: &[Arc<PartialObjectMeta<Secret>>],
    ) -> (Snapshot, Vec<StatusUpdate>) {
        let mut in_force = Vec::new();
        let mut updates = Vec::new();
        let mut present = HashMap::new();
        for obj in policies {
            let Some(name) = obj.metadata.name.clone() else {
                continue;
            };
            let generation = obj.metadata.generation;
            let verdict = parse(&name, obj.data.get("spec"));
            let invalid = verdict.as_ref().err().cloned();
            match verdict {
                Ok(policy) => {
                    self.last_good.insert(name.clone(), policy);
                    if self.reported.remove(&name).is_some() {
                        tracing::info!(policy = %name, "policy is valid again");
                    }
                }
                Err(message) => {
                    if self.reported.get(&name) != Some(&message) {
                        let kept = self.last_good.contains_key(&name);
                        tracing::error!(
                            policy = %name,
                            error = %message,
                            last_good_in_force = kept,
                            "invalid ProjectPolicy refused"
                        );
                        self.reported.insert(name.clone(), message);
                    }
                }
            }
            if let Some(policy) = self.last_good.get(&name) {
                in_force.push(policy.clone());
            }
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let wanted = ProjectPolicyStatus::observed(generation, invalid.as_deref(), now);
            let current: Option<ProjectPolicyStatus> = obj
                .data
                .get("status")
                .and_then(|s| serde_json::from_value(s.clone()).ok());
            if !current.is_some_and(|c| c.same_verdict(&wanted)) {
                updates.push(StatusUpdate {
                    name: name.clone(),
                    status: wanted,
                });
            }
            present.insert(name, ());
        }
        // A deleted policy leaves no last good version behind.
        self.last_good.retain(|name, _| present.contains_key(name));
        self.reported.retain(|name, _| present.contains_key(name));

        let mut labels = BTreeMap::new();
        for ns in namespaces {
            if let Some(name) = &ns.metadata.name {
                let l: Labels = ns.metadata.labels.clone().unwrap_or_default();
                labels.insert(name.clone(), l);
            }
        }
        let mut index = SecretIndex::default();
        for secret in secrets {
            if let (Some(ns), Some(name)) = (&secret.metadata.namespace, &secret.metadata.name) {
                index.insert(ns, name);
            }
        }
        (Snapshot::build(in_force, &labels, index), updates)
    }
}

/// Parses and validates one policy's spec; the error is the message for its status.
fn parse(name: &str, spec: Option<&serde_json::Value>) -> Result<Policy, String> {
    let spec: ProjectPolicySpec = match spec {
        None => ProjectPolicySpec::default(),
        Some(value) => ProjectPolicySpec::deserialize(value)
            .map_err(|e| format!("spec does not parse: {e}"))?,
    };
    Policy::new(name, spec).map_err(|e| e.problems.join("; "))
}

#[cfg(test)]
mod tests;
