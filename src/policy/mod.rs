//! Project policy: what a project's rules say, and which policy governs a namespace.
//!
//! A *project* is a set of namespaces. Its policy says how strictly secrets are checked
//! (`mode`), which secret rules apply (`secrets`) and what is injected into pods. Where no
//! project policy selects a namespace, the embedded default policy applies.

pub mod cluster;
mod crd;
mod default;
pub mod file;
pub mod namespaced;
pub mod pull_secrets;
pub mod resolve;
pub mod review;
pub mod schema;
pub mod secret_use;
mod selector;
mod spec;
mod validate;
pub mod watch;

pub use crd::{
    CONDITION_READY, InstanceSecretsStatus, LastGood, ProjectPolicyStatus, REASON_ACCEPTED,
    REASON_INVALID, crd, crd_yaml,
};
pub use default::{DEFAULT_POLICY_NAME, default_policy, default_policy_yaml};
pub use resolve::{InvalidPolicy, Overlap, Policy};
pub use secret_use::{SecretMeta, SecretUse};
pub use selector::Labels;
pub use spec::*;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::admission;

/// The policy in force for one review, resolved before any rule runs.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Name of the project policy, or `default` for the embedded one.
    pub name: Arc<str>,
    pub spec: Arc<ProjectPolicySpec>,
    /// Set when the governing policy is invalid and no good version of it is known (its
    /// problems): the namespace is not downgraded to the default policy; secrets are
    /// denied ([`Resolved::secret_denial`]) and pods admitted without injections, with a
    /// warning ([`Resolved::pod_warning`]).
    pub broken: Option<Arc<str>>,
    /// The compiled `secretUse` rules, when the policy has them.
    pub secret_use: Option<Arc<SecretUse>>,
}

impl Resolved {
    /// `spec` in force under `name` (its `secretUse` compiled).
    pub fn new(name: Arc<str>, spec: Arc<ProjectPolicySpec>, broken: Option<Arc<str>>) -> Self {
        let secret_use = spec
            .secret_use
            .as_ref()
            .map(|rules| Arc::new(SecretUse::compile(rules, spec.mode)));
        Self {
            name,
            spec,
            broken,
            secret_use,
        }
    }

    /// The denial for a Secret write where the governing policy is broken.
    pub fn secret_denial(&self) -> Option<String> {
        let problems = self.broken.as_deref()?;
        Some(format!(
            "secret denied: policy {:?} governs this namespace but is invalid, and no good \
             version of it is known, so its rules cannot be checked (an administrator fixes \
             it: kubectl describe projectpolicy {}): {problems}",
            admission::clip(&self.name, 253),
            admission::clip(&self.name, 253)
        ))
    }

    /// The warning for a Pod created where the governing policy is broken: mutation fails
    /// open by design (an outage of secretgate admits pods unchanged too), but not silently.
    pub fn pod_warning(&self) -> Option<String> {
        self.broken.as_ref()?;
        Some(format!(
            "policy {:?} is invalid and no good version of it is known: pod admitted without \
             its image pull secrets or git-sync key",
            admission::clip(&self.name, 253)
        ))
    }
}

/// A policy that governs namespaces while invalid with no good version known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub name: Arc<str>,
    /// Its problems, on one bounded line.
    pub problems: Arc<str>,
}

/// An immutable view of every policy the server knows, resolved per namespace. Reviews
/// read one snapshot from start to finish, so a policy update never shows half-applied.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Which policy governs each namespace: rebuilt when a policy changes, updated one
    /// namespace at a time when a namespace does, shared by snapshots in between.
    governance: Arc<resolve::Governance>,
    /// Which secrets exist (and their labels), so pods only get secrets that are there
    /// and secret-use rules can select by label.
    pub secrets: SecretIndex,
    /// The pull secrets of each known service account, which its pods inherit.
    pub service_accounts: ServiceAccountIndex,
    /// What each pull secret serves (registry keys, never credentials), for the pull
    /// guarantee; `known` only where the server reads pull secrets.
    pub pull_secrets: pull_secrets::PullSecretIndex,
}

/// The secrets that exist, by namespace, with what secret-use rules read of them:
/// metadata only, never values. Persistent ([`namespaced::Namespaced`]): in cluster mode
/// the secrets watch keeps it one event at a time and each snapshot takes it in O(1).
#[derive(Debug, Default, Clone)]
pub struct SecretIndex {
    names: namespaced::Namespaced<SecretMeta>,
}

impl SecretIndex {
    /// Records that `namespace/name` exists (no labels known).
    pub fn insert(&mut self, namespace: &str, name: &str) {
        self.insert_meta(namespace, name, SecretMeta::default());
    }

    pub fn insert_meta(&mut self, namespace: &str, name: &str, meta: SecretMeta) {
        self.names.insert(namespace, name, meta);
    }

    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.names.contains(namespace, name)
    }

    /// What is known of `namespace/name`, if it exists.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&SecretMeta> {
        self.names.get(namespace, name)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl From<namespaced::Namespaced<SecretMeta>> for SecretIndex {
    fn from(names: namespaced::Namespaced<SecretMeta>) -> Self {
        Self { names }
    }
}

/// The `imagePullSecrets` of each known ServiceAccount, by namespace: the secrets its pods
/// inherit when they name none (the API server's ServiceAccount admission copies them).
#[derive(Debug, Default, Clone)]
pub struct ServiceAccountIndex {
    pull_secrets: namespaced::Namespaced<Arc<[String]>>,
}

impl ServiceAccountIndex {
    pub fn insert(&mut self, namespace: &str, name: &str, pull_secrets: Vec<String>) {
        self.pull_secrets
            .insert(namespace, name, Arc::from(pull_secrets));
    }

    /// The pull secrets of `namespace/name`; `None` when the account is not known.
    pub fn pull_secrets(&self, namespace: &str, name: &str) -> Option<&[String]> {
        self.pull_secrets.get(namespace, name).map(|p| &**p)
    }

    pub fn len(&self) -> usize {
        self.pull_secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<namespaced::Namespaced<Arc<[String]>>> for ServiceAccountIndex {
    fn from(pull_secrets: namespaced::Namespaced<Arc<[String]>>) -> Self {
        Self { pull_secrets }
    }
}

impl Snapshot {
    /// A snapshot holding only the embedded default policy.
    pub fn with_default() -> Self {
        Self::with_fallback(DEFAULT_POLICY_NAME, default_policy())
    }

    /// A snapshot whose policy for every namespace is `spec`, named `name`.
    pub fn with_fallback(name: &str, spec: ProjectPolicySpec) -> Self {
        let default = Resolved::new(Arc::from(name), Arc::new(spec), None);
        Self::assemble(
            Arc::new(resolve::build(Vec::new(), &[], default)),
            SecretIndex::default(),
        )
    }

    /// A snapshot of `governance` (shared) and `secrets`, knowing no service account or
    /// pull secret yet.
    pub fn assemble(governance: Arc<resolve::Governance>, secrets: SecretIndex) -> Self {
        Self {
            governance,
            secrets,
            service_accounts: ServiceAccountIndex::default(),
            pull_secrets: Default::default(),
        }
    }

    /// Which policy governs each namespace (shared: cloning is a reference count).
    pub fn governance(&self) -> &Arc<resolve::Governance> {
        &self.governance
    }

    /// The snapshot of `policies` over `namespaces` (name → labels), with the embedded
    /// default where none selects. See [`resolve`] for the combination rule.
    pub fn build(
        policies: Vec<Policy>,
        namespaces: &BTreeMap<String, Labels>,
        secrets: SecretIndex,
    ) -> Self {
        let default = Resolved::new(
            Arc::from(DEFAULT_POLICY_NAME),
            Arc::new(default_policy()),
            None,
        );
        let known: Vec<(&str, &Labels)> = namespaces.iter().map(|(n, l)| (n.as_str(), l)).collect();
        Self::assemble(Arc::new(resolve::build(policies, &known, default)), secrets)
    }

    /// The policy that governs `namespace`: a hash lookup, resolved when the snapshot was
    /// built.
    pub fn for_namespace(&self, namespace: &str) -> &Resolved {
        self.governance.for_namespace(namespace)
    }

    /// The embedded default (or fallback) policy.
    pub fn default_policy(&self) -> &Resolved {
        &self.governance.default
    }

    /// How many project policies are in force.
    pub fn policy_count(&self) -> usize {
        self.governance.policies
    }

    /// Every project policy, broken ones included, by name: the first that selects a
    /// namespace governs it.
    pub fn policies_in_force(&self) -> &[Policy] {
        &self.governance.in_force
    }

    /// Namespaces selected by more than one policy (the first governs).
    pub fn overlaps(&self) -> &[Overlap] {
        &self.governance.overlaps
    }

    /// Policies that are invalid with no good version known: where they govern, secrets
    /// are denied and pods get no injection.
    pub fn broken_policies(&self) -> &[Broken] {
        &self.governance.broken
    }

    /// What `/readyz` says while the server is ready: `ok`, and the broken policies if
    /// any. Readiness stays 200 with broken policies: one tenant's broken policy must not
    /// take every replica out of the Service (with `failurePolicy: Fail`, that would deny
    /// every Secret write in the cluster); it is said here, in the metric
    /// `secretgate_broken_policies` and in each policy's status instead.
    pub fn readiness(&self) -> String {
        if self.governance.broken.is_empty() {
            return "ok".to_owned();
        }
        let names: Vec<String> = self
            .governance
            .broken
            .iter()
            .take(resolve::MAX_PROBLEMS)
            .map(|b| format!("{:?}", admission::clip(&b.name, 253)))
            .collect();
        let more = match self
            .governance
            .broken
            .len()
            .saturating_sub(resolve::MAX_PROBLEMS)
        {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        format!(
            "ok\nbroken policies: {}{more} (invalid with no good version known: Secret writes \
             in the namespaces they select are denied until they are fixed)",
            names.join(", ")
        )
    }
}
