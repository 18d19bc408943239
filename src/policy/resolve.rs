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

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize as _;

use super::selector::{Labels, Selector};
use super::spec::ProjectPolicySpec;
use super::{Broken, Resolved, SecretIndex, Snapshot, validate};

/// Most problems one message lists (a status, a denial, an error line); the rest are
/// counted.
pub const MAX_PROBLEMS: usize = 20;
/// Longest problem shown; longer ones end in `…`.
const MAX_PROBLEM_CHARS: usize = 512;

/// The label the API server puts on every namespace; namespaces named in a policy but
/// not (yet) seen get it too, so selectors on it agree with the cluster.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A policy refused because it cannot be enforced as written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("policy {name:?} is invalid: {}", summarize(problems))]
pub struct InvalidPolicy {
    pub name: String,
    /// Each problem as `field.path: what is wrong`.
    pub problems: Vec<String>,
}

impl InvalidPolicy {
    /// The problems on one line, bounded ([`summarize`]).
    pub fn summary(&self) -> String {
        summarize(&self.problems)
    }
}

/// `problems` joined with `; `: the first [`MAX_PROBLEMS`], each clipped, then how many
/// more there are. Bounded whatever the policy holds.
pub fn summarize(problems: &[String]) -> String {
    let mut shown: Vec<String> = problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| crate::admission::clip(p, MAX_PROBLEM_CHARS).into_owned())
        .collect();
    if problems.len() > MAX_PROBLEMS {
        shown.push(format!(
            "and {} more problems",
            problems.len() - MAX_PROBLEMS
        ));
    }
    shown.join("; ")
}

/// A policy that passed validation, with its selector compiled; or a *broken* one: invalid,
/// with no good version known, which still governs the namespaces it selects (as far as
/// they can be read) so that they are not silently downgraded to the default policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub name: Arc<str>,
    pub spec: Arc<ProjectPolicySpec>,
    selector: Option<Selector>,
    /// The problems of a broken policy.
    broken: Option<Arc<str>>,
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
            broken: None,
        })
    }

    /// A policy invalid with no good version known (`problems` says why). It selects what
    /// its `namespaces` and `namespaceSelector` say when each can be read on its own from
    /// the raw `spec`; a part that cannot be read (a selector with an unknown operator)
    /// selects nothing. Secrets are denied where it governs, pods get no injection.
    pub fn broken(name: &str, problems: &str, spec: Option<&serde_json::Value>) -> Self {
        let field = |key: &str| spec.and_then(|s| s.get(key));
        let namespaces = field("namespaces")
            .and_then(|v| Vec::<String>::deserialize(v).ok())
            .unwrap_or_default();
        let selector = field("namespaceSelector")
            .and_then(|v| LabelSelector::deserialize(v).ok())
            .and_then(|sel| Selector::compile(&sel, "spec.namespaceSelector").ok());
        Self {
            name: Arc::from(name),
            spec: Arc::new(ProjectPolicySpec {
                namespaces,
                ..ProjectPolicySpec::default()
            }),
            selector,
            broken: Some(Arc::from(problems)),
        }
    }

    /// Whether this policy is invalid with no good version known.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The label part of what this policy selects, as requirements only (`None`: it
    /// selects by name alone; a broken policy's unreadable selector selects nothing).
    pub fn namespace_selector(&self) -> Option<LabelSelector> {
        self.selector.as_ref().map(Selector::to_label_selector)
    }

    /// Whether this policy selects namespace `name` with `labels`.
    pub fn selects(&self, name: &str, labels: &Labels) -> bool {
        self.spec.namespaces.iter().any(|n| n == name)
            || self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }

    fn resolved(&self) -> Resolved {
        Resolved::new(self.name.clone(), self.spec.clone(), self.broken.clone())
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
    let broken = policies
        .iter()
        .filter_map(|p| {
            p.broken.as_ref().map(|problems| Broken {
                name: p.name.clone(),
                problems: problems.clone(),
            })
        })
        .collect::<Vec<_>>();
    Snapshot {
        default,
        by_namespace,
        unknown,
        secrets,
        service_accounts: Default::default(),
        pull_secrets: Default::default(),
        policies: policies.len() - broken.len(),
        broken,
        overlaps,
        in_force: policies,
    }
}

#[cfg(test)]
mod tests;
