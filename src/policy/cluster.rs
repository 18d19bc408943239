//! From the reflectors' caches to a snapshot: parses each ProjectPolicy on its own, keeps
//! the last good version of a policy that turned invalid, and says which statuses need
//! writing; and what each cache keeps of an object (`slim_*`: only what the snapshot
//! reads). Pure (no I/O), so it is tested by filling stores by hand.
//!
//! The last good version of a policy is kept in memory and in its status
//! (`status.lastGoodSpec`, written with every accepted spec), so a replica that restarts
//! while a policy is invalid enforces the same version as the replicas that saw it
//! accepted. A policy that is invalid with no good version anywhere is *broken*: it still
//! governs the namespaces it selects (as far as they can be read), where Secret writes are
//! denied, instead of leaving them to the default policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DynamicObject, PartialObjectMeta};
use serde::Deserialize as _;

use super::resolve::Governance;
use super::resolve::summarize;
use super::secret_use::ALLOWED_SERVICE_ACCOUNTS_ANNOTATION;
use super::{
    Labels, LastGood, Policy, ProjectPolicySpec, ProjectPolicyStatus, Resolved, SecretIndex,
    SecretMeta, ServiceAccountIndex, Snapshot,
};

/// A status the service should write to a ProjectPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub name: String,
    pub status: ProjectPolicyStatus,
}

/// The last version of a policy that passed validation.
#[derive(Clone, Debug)]
struct Good {
    /// The object it belongs to: a policy deleted and created again under the same name
    /// does not inherit the old one's last good version.
    uid: Option<String>,
    generation: Option<i64>,
    /// The spec as stored, for `status.lastGoodSpec`.
    spec: serde_json::Value,
    policy: Policy,
}

/// What the builder remembers between rebuilds.
#[derive(Debug, Default)]
pub struct Builder {
    /// The last version of each policy that passed validation, by name: it stays in force
    /// while a later edit of the same policy is invalid.
    last_good: HashMap<String, Good>,
    /// The error last logged per policy, so a broken policy is logged once, not on every
    /// rebuild.
    reported: HashMap<String, String>,
    /// Policies whose `status.lastGoodSpec` does not validate, with its generation, so it
    /// is parsed and logged once.
    unusable: HashMap<String, Option<i64>>,
    /// The last verdict on each policy's spec, by name.
    parsed: HashMap<String, Parsed>,
}

/// One policy's spec as last parsed.
#[derive(Debug)]
struct Parsed {
    uid: Option<String>,
    generation: Option<i64>,
    verdict: Result<Policy, String>,
}

impl Builder {
    /// The snapshot of the current caches, and the statuses that differ from what the
    /// objects say: the whole build, for one-shot uses (`secretgate audit`, tests). The
    /// serving watchers build only [`Builder::govern`] and keep the other indexes one
    /// event at a time.
    pub fn rebuild(
        &mut self,
        policies: &[Arc<DynamicObject>],
        namespaces: &[Arc<PartialObjectMeta<Namespace>>],
        secrets: &[Arc<PartialObjectMeta<Secret>>],
        service_accounts: &[Arc<ServiceAccount>],
    ) -> (Snapshot, Vec<StatusUpdate>) {
        let (governance, updates) = self.govern(policies, namespaces, None);
        let mut snapshot = Snapshot::assemble(Arc::new(governance), secret_index(secrets));
        snapshot.service_accounts = service_account_index(service_accounts);
        (snapshot, updates)
    }

    /// Which policy governs each namespace, and the statuses that differ from what the
    /// objects say. A policy whose spec did not change since the last call (same uid and
    /// generation) is not parsed again; given the `previous` governance (over the same
    /// namespaces), only the namespaces a changed policy selects are resolved again.
    pub fn govern(
        &mut self,
        policies: &[Arc<DynamicObject>],
        namespaces: &[Arc<PartialObjectMeta<Namespace>>],
        previous: Option<&Governance>,
    ) -> (Governance, Vec<StatusUpdate>) {
        let mut in_force = Vec::new();
        let mut updates = Vec::new();
        let mut present = HashMap::new();
        for obj in policies {
            let Some(name) = obj.metadata.name.clone() else {
                continue;
            };
            let uid = obj.metadata.uid.clone();
            let generation = obj.metadata.generation;
            let raw_spec = obj.data.get("spec");
            let current: Option<ProjectPolicyStatus> = obj
                .data
                .get("status")
                .and_then(|s| serde_json::from_value(s.clone()).ok());
            if self.last_good.get(&name).is_some_and(|g| g.uid != uid) {
                self.last_good.remove(&name);
            }
            let verdict = self.parse_once(&name, uid.as_ref(), generation, raw_spec);
            let invalid = verdict.as_ref().err().cloned();
            match verdict {
                Ok(policy) => {
                    self.last_good.insert(
                        name.clone(),
                        Good {
                            uid: uid.clone(),
                            generation,
                            spec: raw_spec.cloned().unwrap_or_else(|| serde_json::json!({})),
                            policy,
                        },
                    );
                    if self.reported.remove(&name).is_some() {
                        tracing::info!(policy = %name, "policy is valid again");
                    }
                }
                Err(message) => {
                    self.restore(&name, uid.as_ref(), current.as_ref());
                    if self.reported.get(&name) != Some(&message) {
                        let kept = self.last_good.get(&name);
                        tracing::error!(
                            policy = %name,
                            error = %message,
                            last_good_in_force = kept.is_some(),
                            last_good_generation = kept.and_then(|g| g.generation),
                            "invalid ProjectPolicy refused"
                        );
                        if kept.is_none() {
                            tracing::error!(
                                policy = %name,
                                "no good version of this ProjectPolicy is known: Secret writes \
                                 in the namespaces it selects are denied until it is fixed"
                            );
                        }
                        self.reported.insert(name.clone(), message);
                    }
                }
            }
            // A valid spec was recorded just above: `None` here means invalid with no good
            // version known.
            let good = self.last_good.get(&name);
            in_force.push(match good {
                Some(good) => good.policy.clone(),
                None => Policy::broken(&name, invalid.as_deref().unwrap_or_default(), raw_spec),
            });
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let last_good = good.map(|g| LastGood {
                spec: &g.spec,
                generation: g.generation,
            });
            let wanted =
                ProjectPolicyStatus::observed(generation, invalid.as_deref(), last_good, now);
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
        self.unusable.retain(|name, _| present.contains_key(name));
        self.parsed.retain(|name, _| present.contains_key(name));

        let default = Resolved::new(
            Arc::from(super::DEFAULT_POLICY_NAME),
            Arc::new(super::default_policy()),
            None,
        );
        let known = namespace_labels(namespaces);
        let governance = match previous {
            Some(previous) => previous.with_policies(in_force, &known),
            None => super::resolve::build(in_force, &known, default),
        };
        (governance, updates)
    }

    /// [`parse`], or its verdict from the last call when the object is the same one at
    /// the same generation (the API server raises a custom resource's generation on
    /// every spec change, never on a status write).
    fn parse_once(
        &mut self,
        name: &str,
        uid: Option<&String>,
        generation: Option<i64>,
        spec: Option<&serde_json::Value>,
    ) -> Result<Policy, String> {
        if let Some(parsed) = self.parsed.get(name)
            && generation.is_some()
            && parsed.uid.as_ref() == uid
            && parsed.generation == generation
        {
            return parsed.verdict.clone();
        }
        let verdict = parse(name, spec);
        self.parsed.insert(
            name.to_owned(),
            Parsed {
                uid: uid.cloned(),
                generation,
                verdict: verdict.clone(),
            },
        );
        verdict
    }

    /// Takes the last good version a policy's status keeps when it is newer than the one
    /// in memory (or there is none in memory: this replica restarted, or another replica
    /// saw a version this one missed). One that no longer validates is not used.
    fn restore(&mut self, name: &str, uid: Option<&String>, status: Option<&ProjectPolicyStatus>) {
        let Some(kept) = status.and_then(ProjectPolicyStatus::last_good) else {
            return;
        };
        let in_memory = self.last_good.get(name).map(|g| g.generation);
        let newer = match in_memory {
            None => true,
            Some(known) => kept.generation.unwrap_or(0) > known.unwrap_or(0),
        };
        if !newer || self.unusable.get(name) == Some(&kept.generation) {
            return;
        }
        match parse(name, Some(kept.spec)) {
            Ok(policy) => {
                tracing::info!(
                    policy = %name,
                    generation = kept.generation,
                    "last good version of an invalid ProjectPolicy restored from its status"
                );
                self.last_good.insert(
                    name.to_owned(),
                    Good {
                        uid: uid.cloned(),
                        generation: kept.generation,
                        spec: kept.spec.clone(),
                        policy,
                    },
                );
            }
            Err(problems) => {
                tracing::warn!(
                    policy = %name,
                    error = %problems,
                    "status.lastGoodSpec of this ProjectPolicy does not validate; not used"
                );
                self.unusable.insert(name.to_owned(), kept.generation);
            }
        }
    }
}

/// Each namespace's name and labels (what namespace selectors match), borrowed from the
/// cache: at 10,000 namespaces, copying them was most of a policy event's cost.
fn namespace_labels(namespaces: &[Arc<PartialObjectMeta<Namespace>>]) -> Vec<(&str, &Labels)> {
    static NO_LABELS: Labels = BTreeMap::new();
    namespaces
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.as_deref()?;
            Some((name, ns.metadata.labels.as_ref().unwrap_or(&NO_LABELS)))
        })
        .collect()
}

/// Which secrets exist, with the labels and owner annotation secret-use rules read.
fn secret_index(secrets: &[Arc<PartialObjectMeta<Secret>>]) -> SecretIndex {
    let mut index = SecretIndex::default();
    for secret in secrets {
        let m = &secret.metadata;
        if let (Some(ns), Some(name), Some(meta)) = (&m.namespace, &m.name, secret_meta(secret)) {
            index.insert_meta(ns, name, meta);
        }
    }
    index
}

/// What the secret index keeps of a Secret (the watch applies it to each event).
pub fn secret_meta(secret: &PartialObjectMeta<Secret>) -> Option<SecretMeta> {
    let m = &secret.metadata;
    Some(SecretMeta::from_metadata(
        m.labels.as_ref(),
        m.annotations.as_ref(),
    ))
}

/// The pull secrets of each service account (an account with none is known, with none).
fn service_account_index(accounts: &[Arc<ServiceAccount>]) -> ServiceAccountIndex {
    let mut index = ServiceAccountIndex::default();
    for account in accounts {
        let m = &account.metadata;
        if let (Some(ns), Some(name)) = (&m.namespace, &m.name) {
            index.insert(ns, name, pull_secret_names(account));
        }
    }
    index
}

/// What the service-account index keeps of one: its pull secrets' names.
pub fn account_pull_secrets(account: &ServiceAccount) -> Option<Arc<[String]>> {
    Some(pull_secret_names(account).into())
}

/// The names in a service account's `imagePullSecrets` (empty names left out: they
/// refer to nothing).
fn pull_secret_names(account: &ServiceAccount) -> Vec<String> {
    account
        .image_pull_secrets
        .iter()
        .flatten()
        .filter(|r| !r.name.is_empty())
        .map(|r| r.name.clone())
        .collect()
}

/// What the Namespace cache keeps of one: its name and labels. The reflector stores what
/// this leaves, so managed fields and annotations are not held for every namespace.
pub fn slim_namespace(namespace: &mut PartialObjectMeta<Namespace>) {
    let m = std::mem::take(&mut namespace.metadata);
    namespace.metadata = ObjectMeta {
        name: m.name,
        labels: m.labels,
        ..ObjectMeta::default()
    };
}

/// What the Secret cache keeps of one: namespace, name, labels and the owner's
/// [`ALLOWED_SERVICE_ACCOUNTS_ANNOTATION`]. Every other annotation is dropped as it
/// arrives: `kubectl apply` leaves a copy of the whole Secret, values included, in
/// `kubectl.kubernetes.io/last-applied-configuration`, and the cache must not hold it.
pub fn slim_secret(secret: &mut PartialObjectMeta<Secret>) {
    let m = std::mem::take(&mut secret.metadata);
    let mut annotations = m.annotations.unwrap_or_default();
    let mut kept = BTreeMap::new();
    if let Some((k, v)) = annotations.remove_entry(ALLOWED_SERVICE_ACCOUNTS_ANNOTATION) {
        kept.insert(k, v);
    }
    // An instance-secret copy's bookkeeping (names and versions, never values), kept
    // only in the short form secretgate writes.
    for key in crate::annotations::KEPT_ANNOTATIONS {
        if let Some((k, v)) = annotations.remove_entry(key)
            && v.len() <= crate::annotations::MAX_KEPT_ANNOTATION
        {
            kept.insert(k, v);
        }
    }
    secret.metadata = ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        annotations: (!kept.is_empty()).then_some(kept),
        // For the instance-secret controller: a source's version tells a rotation, a
        // copy's uid and version make its writes conditional.
        uid: m.uid,
        resource_version: m.resource_version,
        ..ObjectMeta::default()
    };
}

/// What the ServiceAccount cache keeps of one: namespace, name and its `imagePullSecrets`
/// (names only, what its pods inherit). Its token secrets' references, annotations and
/// managed fields are dropped as they arrive.
pub fn slim_service_account(account: &mut ServiceAccount) {
    let m = std::mem::take(&mut account.metadata);
    *account = ServiceAccount {
        metadata: ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            ..ObjectMeta::default()
        },
        image_pull_secrets: account.image_pull_secrets.take(),
        ..ServiceAccount::default()
    };
}

/// Parses and validates one policy's spec; the error is the message for its status
/// (bounded: [`summarize`]).
pub fn parse(name: &str, spec: Option<&serde_json::Value>) -> Result<Policy, String> {
    check(name, spec).map_err(|problems| summarize(&problems))
}

/// Parses and validates one policy's spec (a stored object's, or one under review); the
/// error is every problem, each as `field.path: what is wrong`.
pub fn check(name: &str, spec: Option<&serde_json::Value>) -> Result<Policy, Vec<String>> {
    let spec: ProjectPolicySpec = match spec {
        None => ProjectPolicySpec::default(),
        Some(value) => ProjectPolicySpec::deserialize(value).map_err(|e| {
            // serde names the field and the expected values; what it quotes is policy text.
            vec![format!(
                "spec does not parse: {}",
                crate::admission::clip(&e.to_string(), 512)
            )]
        })?,
    };
    Policy::new(name, spec).map_err(|e| e.problems)
}

#[cfg(test)]
mod tests;
