//! Which policy governs a namespace, decided once per snapshot rather than per request.
//!
//! A policy selects a namespace when the namespace is listed in `namespaces` or its labels
//! match `namespaceSelector`. **When several policies select the same namespace, the one
//! whose name sorts first governs it alone**; the others are recorded as overlaps and
//! logged. Policies are whole documents written to be read together (a mode, rules and
//! injections), so merging them field by field would enforce a policy nobody wrote, and
//! "first by name" is what `kubectl get projectpolicies` shows at the top.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::selector::{Labels, Selector};
use super::spec::ProjectPolicySpec;
use super::{Resolved, SecretIndex, Snapshot, validate};

/// The label the API server puts on every namespace; namespaces named in a policy but
/// not (yet) seen get it too, so selectors on it agree with the cluster.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A policy refused because it cannot be enforced as written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("policy {name:?} is invalid: {}", problems.join("; "))]
pub struct InvalidPolicy {
    pub name: String,
    /// Each problem as `field.path: what is wrong`.
    pub problems: Vec<String>,
}

/// A policy that passed validation, with its selector compiled.
#[derive(Clone, Debug)]
pub struct Policy {
    pub name: Arc<str>,
    pub spec: Arc<ProjectPolicySpec>,
    selector: Option<Selector>,
}

impl Policy {
    /// Validates `spec` and compiles its selector.
    pub fn new(name: &str, spec: ProjectPolicySpec) -> Result<Self, InvalidPolicy> {
        let mut problems = validate::problems(&spec);
        let selector = match &spec.namespace_selector {
            None => None,
            Some(sel) => match Selector::compile(sel, "spec.namespaceSelector") {
                Ok(sel) => Some(sel),
                Err(found) => {
                    problems.extend(found);
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(InvalidPolicy {
                name: name.to_owned(),
                problems,
            });
        }
        Ok(Self {
            name: Arc::from(name),
            spec: Arc::new(spec),
            selector,
        })
    }

    /// Whether this policy selects namespace `name` with `labels`.
    pub fn selects(&self, name: &str, labels: &Labels) -> bool {
        self.spec.namespaces.iter().any(|n| n == name)
            || self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }

    fn resolved(&self) -> Resolved {
        Resolved {
            name: self.name.clone(),
            spec: self.spec.clone(),
        }
    }
}

/// A namespace selected by more than one policy: `policies[0]` governs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub namespace: String,
    pub policies: Vec<Arc<str>>,
}

/// Builds the snapshot: the governing policy of every known namespace, and of namespaces
/// not seen yet (selectors evaluated against no labels).
///
/// `namespaces` maps each known namespace to its labels; names listed in a policy but
/// unknown are resolved as if they existed with only the name label.
pub fn build(
    mut policies: Vec<Policy>,
    namespaces: &BTreeMap<String, Labels>,
    secrets: SecretIndex,
    default: Resolved,
) -> Snapshot {
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    policies.dedup_by(|a, b| a.name == b.name);
    let unknown = policies
        .iter()
        .find(|p| {
            p.selector
                .as_ref()
                .is_some_and(|s| s.matches(&Labels::new()))
        })
        .map_or_else(|| default.clone(), Policy::resolved);

    let mut named = BTreeMap::new();
    for name in policies.iter().flat_map(|p| p.spec.namespaces.iter()) {
        if !namespaces.contains_key(name) {
            named.insert(
                name.clone(),
                Labels::from([(NAME_LABEL.to_owned(), name.clone())]),
            );
        }
    }

    let mut by_namespace = HashMap::new();
    let mut overlaps = Vec::new();
    for (ns, labels) in namespaces.iter().chain(named.iter()) {
        let mut selecting = policies.iter().filter(|p| p.selects(ns, labels));
        let governing = selecting
            .next()
            .map_or_else(|| default.clone(), Policy::resolved);
        let shadowed: Vec<Arc<str>> = selecting.map(|p| p.name.clone()).collect();
        if !shadowed.is_empty() {
            let mut all = vec![governing.name.clone()];
            all.extend(shadowed);
            overlaps.push(Overlap {
                namespace: ns.clone(),
                policies: all,
            });
        }
        // Only what differs from the unknown-namespace answer is stored: with tens of
        // thousands of namespaces mostly under the default, the map stays small.
        if !Arc::ptr_eq(&governing.spec, &unknown.spec) {
            by_namespace.insert(ns.clone(), governing);
        }
    }
    Snapshot {
        default,
        by_namespace,
        unknown,
        secrets,
        policies: policies.len(),
        overlaps,
    }
}

#[cfg(test)]
mod tests;
