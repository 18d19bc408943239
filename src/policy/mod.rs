//! Project policy: what a project's rules say, and which policy governs a namespace.
//!
//! A *project* is a set of namespaces. Its policy says how strictly secrets are checked
//! (`mode`), which secret rules apply (`secrets`) and what is injected into pods. Where no
//! project policy selects a namespace, the embedded default policy applies.

pub mod cluster;
mod crd;
mod default;
pub mod file;
pub mod resolve;
pub mod schema;
mod selector;
mod spec;
mod validate;
pub mod watch;

pub use crd::{
    CONDITION_READY, ProjectPolicyStatus, REASON_ACCEPTED, REASON_INVALID, crd, crd_yaml,
};
pub use default::{DEFAULT_POLICY_NAME, default_policy, default_policy_yaml};
pub use resolve::{InvalidPolicy, Overlap, Policy};
pub use selector::Labels;
pub use spec::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// The policy in force for one review, resolved before any rule runs.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Name of the project policy, or `default` for the embedded one.
    pub name: Arc<str>,
    pub spec: Arc<ProjectPolicySpec>,
}

/// An immutable view of every policy the server knows, resolved per namespace. Reviews
/// read one snapshot from start to finish, so a policy update never shows half-applied.
#[derive(Debug)]
pub struct Snapshot {
    /// The embedded default (or a test's fallback): in force where no policy selects.
    default: Resolved,
    /// The governing policy of each known namespace whose answer differs from `unknown`.
    by_namespace: HashMap<String, Resolved>,
    /// The answer for a namespace the snapshot has not seen.
    unknown: Resolved,
    /// Which secrets exist, so pods only get secrets that are there.
    pub secrets: SecretIndex,
    /// Project policies in force (the default not counted).
    policies: usize,
    overlaps: Vec<Overlap>,
}

/// The names of the secrets that exist, by namespace: metadata only, never values.
#[derive(Debug, Default, Clone)]
pub struct SecretIndex {
    names: HashMap<String, HashSet<String>>,
}

impl SecretIndex {
    pub fn insert(&mut self, namespace: &str, name: &str) {
        self.names
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned());
    }

    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        // Keyed by namespace first, so a lookup borrows both strings.
        self.names.get(namespace).is_some_and(|n| n.contains(name))
    }

    pub fn len(&self) -> usize {
        self.names.values().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.names.values().all(HashSet::is_empty)
    }
}

impl Snapshot {
    /// A snapshot holding only the embedded default policy.
    pub fn with_default() -> Self {
        Self::with_fallback(DEFAULT_POLICY_NAME, default_policy())
    }

    /// A snapshot whose policy for every namespace is `spec`, named `name`.
    pub fn with_fallback(name: &str, spec: ProjectPolicySpec) -> Self {
        let default = Resolved {
            name: Arc::from(name),
            spec: Arc::new(spec),
        };
        resolve::build(
            Vec::new(),
            &BTreeMap::new(),
            SecretIndex::default(),
            default,
        )
    }

    /// The snapshot of `policies` over `namespaces` (name → labels), with the embedded
    /// default where none selects. See [`resolve`] for the combination rule.
    pub fn build(
        policies: Vec<Policy>,
        namespaces: &BTreeMap<String, Labels>,
        secrets: SecretIndex,
    ) -> Self {
        let default = Resolved {
            name: Arc::from(DEFAULT_POLICY_NAME),
            spec: Arc::new(default_policy()),
        };
        resolve::build(policies, namespaces, secrets, default)
    }

    /// The policy that governs `namespace`: a hash lookup, resolved when the snapshot was
    /// built.
    pub fn for_namespace(&self, namespace: &str) -> &Resolved {
        self.by_namespace.get(namespace).unwrap_or(&self.unknown)
    }

    /// The embedded default (or fallback) policy.
    pub fn default_policy(&self) -> &Resolved {
        &self.default
    }

    /// How many project policies are in force.
    pub fn policy_count(&self) -> usize {
        self.policies
    }

    /// Namespaces selected by more than one policy (the first governs).
    pub fn overlaps(&self) -> &[Overlap] {
        &self.overlaps
    }
}
