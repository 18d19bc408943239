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
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::time::Instant;

use std::sync::Arc;

use crate::policy::{Mode, Resolved};
use crate::reports::result::{self, ReportResult, Status, Timestamp};

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

/// A secret's entry as held: most secrets have no finding, and their one `pass` result
/// is kept as the few fields that differ (about 200 bytes a secret instead of 1.5 KiB;
/// 50,000 secrets stay under 10 MiB).
#[derive(Debug)]
struct Stored {
    resource_version: Box<str>,
    policy: u64,
    credentials_due: Option<Instant>,
    findings: Findings,
}

#[derive(Debug, PartialEq)]
enum Findings {
    /// One `pass` result: [`result::pass`] rebuilds it.
    Pass {
        policy: Arc<str>,
        mode: Mode,
        uid: Option<Box<str>>,
        at: Timestamp,
    },
    Results(Vec<ReportResult>),
}

impl Findings {
    /// `results` as held: compact when [`result::pass`] rebuilds them exactly.
    fn of(key: &SecretKey, results: Vec<ReportResult>, names: &mut HashSet<Arc<str>>) -> Self {
        if let [only] = results.as_slice()
            && let Some(compact) = compact(key, only, names)
        {
            return compact;
        }
        Findings::Results(results)
    }

    fn results(&self, key: &SecretKey) -> Vec<ReportResult> {
        match self {
            Findings::Results(results) => results.clone(),
            Findings::Pass {
                policy,
                mode,
                uid,
                at,
            } => vec![result::pass(
                "Secret",
                &key.namespace,
                &key.name,
                uid.as_deref(),
                policy,
                *mode,
                *at,
            )],
        }
    }

    /// Keeps `old`'s timestamps for results that did not change.
    fn timestamps_from(&mut self, old: &Findings) {
        match (self, old) {
            (Findings::Results(new), Findings::Results(old)) => carry_timestamps(old, new),
            (
                Findings::Pass {
                    policy,
                    mode,
                    uid,
                    at,
                },
                Findings::Pass {
                    policy: old_policy,
                    mode: old_mode,
                    uid: old_uid,
                    at: old_at,
                },
            ) if policy == old_policy && mode == old_mode && uid == old_uid => *at = *old_at,
            _ => {}
        }
    }

    /// (status, rule) of each result, for the metrics.
    fn statuses(&self) -> Vec<(Status, &str)> {
        match self {
            Findings::Pass { .. } => vec![(Status::Pass, "all")],
            Findings::Results(results) => results
                .iter()
                .map(|r| (r.result, r.rule.as_str()))
                .collect(),
        }
    }
}

/// The compact form of `only`, when it is the plain `pass` result of `key`.
fn compact(
    key: &SecretKey,
    only: &ReportResult,
    names: &mut HashSet<Arc<str>>,
) -> Option<Findings> {
    let mode = match only.properties.get("mode")?.as_str() {
        "Enforce" => Mode::Enforce,
        "Warn" => Mode::Warn,
        "Audit" => Mode::Audit,
        _ => return None,
    };
    let uid = only.resources.first()?.uid.as_deref();
    let rebuilt = result::pass(
        "Secret",
        &key.namespace,
        &key.name,
        uid,
        &only.policy,
        mode,
        only.timestamp,
    );
    if rebuilt != *only {
        return None;
    }
    let policy = match names.get(only.policy.as_str()) {
        Some(name) => name.clone(),
        None => {
            let name: Arc<str> = Arc::from(only.policy.as_str());
            names.insert(name.clone());
            name
        }
    };
    Some(Findings::Pass {
        policy,
        mode,
        uid: uid.map(Box::from),
        at: only.timestamp,
    })
}

#[derive(Debug, Default)]
pub struct Ledger {
    secrets: BTreeMap<String, HashMap<String, Stored>>,
    /// Policy names, shared by the compact entries.
    names: HashSet<Arc<str>>,
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
        if *entry.resource_version != *resource_version {
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

    fn secret(&self, key: &SecretKey) -> Option<&Stored> {
        self.secrets.get(&key.namespace)?.get(&key.name)
    }

    /// The results held for one secret.
    pub fn secret_results(&self, key: &SecretKey) -> Option<Vec<ReportResult>> {
        Some(self.secret(key)?.findings.results(key))
    }

    /// Records a secret's new results; unchanged results keep their timestamps.
    pub fn set_secret(&mut self, key: SecretKey, entry: SecretEntry) {
        let mut findings = Findings::of(&key, entry.results, &mut self.names);
        let in_namespace = self.secrets.entry(key.namespace.clone()).or_default();
        let changed = match in_namespace.get(&key.name) {
            Some(old) => {
                findings.timestamps_from(&old.findings);
                findings != old.findings
            }
            None => true,
        };
        if changed {
            self.touched.insert(Some(key.namespace.clone()));
        }
        let stored = Stored {
            resource_version: entry.resource_version.into(),
            policy: entry.policy,
            credentials_due: entry.credentials_due,
            findings,
        };
        in_namespace.insert(key.name, stored);
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
                for (name, stored) in secrets {
                    let key = SecretKey {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    };
                    out.extend(stored.findings.results(&key));
                }
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

    /// (status, rule) of every result held, for the metrics.
    pub fn statuses(&self) -> Vec<(Status, &str)> {
        let mut out = Vec::new();
        for names in self.secrets.values() {
            for stored in names.values() {
                out.extend(stored.findings.statuses());
            }
        }
        for r in self.pods.values().chain(self.derived.values()).flatten() {
            out.push((r.result, r.rule.as_str()));
        }
        out
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
