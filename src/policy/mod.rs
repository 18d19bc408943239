//! Project policy: what a project's rules say, and which policy governs a namespace.
//!
//! A *project* is a set of namespaces. Its policy says how strictly secrets are checked
//! (`mode`), which secret rules apply (`secrets`) and what is injected into pods. Where no
//! project policy selects a namespace, the embedded default policy applies.

mod crd;
mod default;
mod spec;

pub use crd::{CONDITION_READY, ProjectPolicyStatus, REASON_ACCEPTED, REASON_INVALID, crd_yaml};
pub use default::{DEFAULT_POLICY_NAME, default_policy, default_policy_yaml};
pub use spec::*;

use std::collections::HashSet;
use std::sync::Arc;

/// The policy in force for one review, resolved before any rule runs.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Name of the project policy, or `default` for the embedded one.
    pub name: Arc<str>,
    pub spec: Arc<ProjectPolicySpec>,
}

/// An immutable view of every policy the server knows. Reviews read one snapshot from
/// start to finish, so a policy update never shows half-applied.
#[derive(Debug)]
pub struct Snapshot {
    default: Resolved,
    /// Which secrets exist, so pods only get secrets that are there.
    pub secrets: SecretIndex,
}

/// The names of the secrets that exist, by namespace: metadata only, never values.
#[derive(Debug, Default, Clone)]
pub struct SecretIndex {
    names: HashSet<(String, String)>,
}

impl SecretIndex {
    pub fn insert(&mut self, namespace: &str, name: &str) {
        self.names.insert((namespace.to_owned(), name.to_owned()));
    }

    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        // A tuple of owned strings is the key; look up without allocating twice.
        self.names
            .contains(&(namespace.to_owned(), name.to_owned()))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl Snapshot {
    /// A snapshot holding only the embedded default policy.
    pub fn with_default() -> Self {
        Self::with_fallback(DEFAULT_POLICY_NAME, default_policy())
    }

    /// A snapshot whose policy for every namespace is `spec`, named `name`.
    pub fn with_fallback(name: &str, spec: ProjectPolicySpec) -> Self {
        Self {
            default: Resolved {
                name: Arc::from(name),
                spec: Arc::new(spec),
            },
            secrets: SecretIndex::default(),
        }
    }

    /// The policy that governs `namespace`.
    pub fn for_namespace(&self, _namespace: &str) -> &Resolved {
        // Project policies (CRD and file) arrive with the policy store; until one selects a
        // namespace, the embedded default governs it.
        &self.default
    }
}
