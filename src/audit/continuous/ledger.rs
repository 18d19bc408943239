//! What the continuous audit last found, object by object, and which reports that makes
//! out of date. Pure bookkeeping: no I/O, no clock (callers pass instants), so every
//! decision here is unit-tested.
//!
//! - A Secret is re-reviewed when its `resourceVersion` changed, when the policy that
//!   governs its namespace changed (a [`fingerprint`] of name and spec), when a full pass
//!   asks for everything, or when its credentials are due for another login.
//! - Pods are reviewed on full passes only (they are not cached), a namespace at a time.
//! - Results that did not change keep their first timestamp, so a report is rewritten
//!   only when something in it changed, and its timestamps say since when.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::time::Instant;

use crate::policy::Resolved;
use crate::reports::result::{ReportResult, Timestamp};

/// The report a result belongs to: a namespace's, or the cluster's (`None`).
pub type Scope = Option<String>;

/// A secret's key in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
}

/// What was found for one Secret.
#[derive(Clone, Debug)]
pub struct SecretEntry {
    pub resource_version: String,
    /// The governing policy's [`fingerprint`] at review time.
    pub policy: u64,
    pub results: Vec<ReportResult>,
    /// When its credentials should be tried again (`None`: not checked).
    pub credentials_due: Option<Instant>,
}

/// Why a secret is reviewed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    New,
    Changed,
    PolicyChanged,
    FullPass,
    CredentialsDue,
}

#[derive(Debug, Default)]
pub struct Ledger {
    secrets: BTreeMap<String, HashMap<String, SecretEntry>>,
    pods: BTreeMap<String, Vec<ReportResult>>,
    /// Results derived from the caches alone: invalid policies (cluster scope) and
    /// instance-secret copies (their namespace, or the cluster for source problems).
    derived: BTreeMap<Scope, Vec<ReportResult>>,
    touched: BTreeSet<Scope>,
}

/// A number that changes when the policy governing a namespace changes: its name, its
/// spec and whether it is broken.
pub fn fingerprint(policy: &Resolved, spec_hashes: &mut HashMap<usize, u64>) -> u64 {
    let spec = *spec_hashes
        .entry(std::sync::Arc::as_ptr(&policy.spec) as usize)
        .or_insert_with(|| {
            let mut h = DefaultHasher::new();
            // Specs are plain data: serialising cannot fail.
            serde_json::to_vec(&*policy.spec)
                .unwrap_or_default()
                .hash(&mut h);
            h.finish()
        });
    let mut h = DefaultHasher::new();
    policy.name.hash(&mut h);
    spec.hash(&mut h);
    policy.broken.is_some().hash(&mut h);
    h.finish()
}

impl Ledger {
    /// Why `key` (now at `resource_version`, governed by a policy with fingerprint
    /// `policy`) must be reviewed, or `None` when its results still hold.
    pub fn due(
        &self,
        key: &SecretKey,
        resource_version: &str,
        policy: u64,
        full: bool,
        now: Instant,
    ) -> Option<Reason> {
        let Some(entry) = self.secret(key) else {
            return Some(Reason::New);
        };
        if entry.resource_version != resource_version {
            Some(Reason::Changed)
        } else if entry.policy != policy {
            Some(Reason::PolicyChanged)
        } else if full {
            Some(Reason::FullPass)
        } else if entry.credentials_due.is_some_and(|due| due <= now) {
            Some(Reason::CredentialsDue)
        } else {
            None
        }
    }

    pub fn secret(&self, key: &SecretKey) -> Option<&SecretEntry> {
        self.secrets.get(&key.namespace)?.get(&key.name)
    }

    /// Records a secret's new results; unchanged results keep their timestamps.
    pub fn set_secret(&mut self, key: SecretKey, mut entry: SecretEntry) {
        let in_namespace = self.secrets.entry(key.namespace.clone()).or_default();
        let old = in_namespace.get(&key.name);
        let before = old.map(|o| o.results.as_slice()).unwrap_or_default();
        carry_timestamps(before, &mut entry.results);
        if before != entry.results.as_slice() {
            self.touched.insert(Some(key.namespace.clone()));
        }
        in_namespace.insert(key.name, entry);
    }

    /// Forgets a deleted secret.
    pub fn remove_secret(&mut self, key: &SecretKey) {
        let Some(in_namespace) = self.secrets.get_mut(&key.namespace) else {
            return;
        };
        if in_namespace.remove(&key.name).is_some() {
            self.touched.insert(Some(key.namespace.clone()));
        }
        if in_namespace.is_empty() {
            self.secrets.remove(&key.namespace);
        }
    }

    /// Every secret the ledger holds.
    pub fn secret_keys(&self) -> Vec<SecretKey> {
        self.secrets
            .iter()
            .flat_map(|(namespace, names)| {
                names.keys().map(|name| SecretKey {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
            })
            .collect()
    }

    /// Replaces every pod result with `by_namespace` (a full pass saw all pods).
    pub fn set_pods(&mut self, by_namespace: BTreeMap<String, Vec<ReportResult>>) {
        let old = std::mem::take(&mut self.pods);
        self.pods = replace_all(old, by_namespace, |ns| Some(ns.clone()), &mut self.touched);
    }

    /// Replaces the results derived from the caches.
    pub fn set_derived(&mut self, by_scope: BTreeMap<Scope, Vec<ReportResult>>) {
        let old = std::mem::take(&mut self.derived);
        self.derived = replace_all(old, by_scope, Clone::clone, &mut self.touched);
    }

    /// The reports to write again since the last call.
    pub fn take_touched(&mut self) -> BTreeSet<Scope> {
        std::mem::take(&mut self.touched)
    }

    /// Marks a report to be written (or deleted) whatever its content.
    pub fn touch(&mut self, scope: Scope) {
        self.touched.insert(scope);
    }

    /// Every namespace that has results.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.secrets.keys().cloned().collect();
        out.extend(self.pods.keys().cloned());
        out.extend(self.derived.keys().flatten().cloned());
        out
    }

    /// Every result of one report.
    pub fn results(&self, scope: &Scope) -> Vec<ReportResult> {
        let mut out = Vec::new();
        if let Some(namespace) = scope {
            if let Some(secrets) = self.secrets.get(namespace) {
                out.extend(secrets.values().flat_map(|e| e.results.iter().cloned()));
            }
            if let Some(pods) = self.pods.get(namespace) {
                out.extend(pods.iter().cloned());
            }
        }
        if let Some(derived) = self.derived.get(scope) {
            out.extend(derived.iter().cloned());
        }
        out
    }

    /// Every result held, for the metrics.
    pub fn all_results(&self) -> impl Iterator<Item = &ReportResult> {
        let secrets = self
            .secrets
            .values()
            .flat_map(|names| names.values().flat_map(|e| e.results.iter()));
        secrets
            .chain(self.pods.values().flatten())
            .chain(self.derived.values().flatten())
    }
}

/// `new` in place of `old`, keyed alike; every key whose results differ is touched.
fn replace_all<K: Ord + Clone>(
    mut old: BTreeMap<K, Vec<ReportResult>>,
    new: BTreeMap<K, Vec<ReportResult>>,
    scope: impl Fn(&K) -> Scope,
    touched: &mut BTreeSet<Scope>,
) -> BTreeMap<K, Vec<ReportResult>> {
    let mut out = BTreeMap::new();
    for (key, mut results) in new {
        let before = old.remove(&key).unwrap_or_default();
        carry_timestamps(&before, &mut results);
        if before != results {
            touched.insert(scope(&key));
        }
        if !results.is_empty() {
            out.insert(key, results);
        }
    }
    for key in old.keys() {
        touched.insert(scope(key));
    }
    out
}

/// Gives each result of `new` that also appears in `old` (all but its timestamp) the
/// old timestamp.
pub fn carry_timestamps(old: &[ReportResult], new: &mut [ReportResult]) {
    if old.is_empty() {
        return;
    }
    let mut seen: HashMap<String, Timestamp> = HashMap::with_capacity(old.len());
    for r in old {
        seen.insert(identity(r), r.timestamp);
    }
    for r in new {
        if let Some(at) = seen.get(&identity(r)) {
            r.timestamp = *at;
        }
    }
}

/// A result's content without its timestamp.
fn identity(result: &ReportResult) -> String {
    let mut r = result.clone();
    r.timestamp = Timestamp {
        seconds: 0,
        nanos: 0,
    };
    serde_json::to_string(&r).unwrap_or_default()
}

#[cfg(test)]
mod tests;
