//! Which policy governs a namespace, decided once per snapshot rather than per request.
//!
//! A policy selects a namespace when the namespace is listed in `namespaces` or its labels
//! match `namespaceSelector`. **When several policies select the same namespace, the one
//! whose name sorts first governs it alone**; the others are recorded as overlaps and
//! logged. Policies are whole documents written to be read together (a mode, rules and
//! injections), so merging them field by field would enforce a policy nobody wrote, and
//! "first by name" is what `kubectl get projectpolicies` shows at the top.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize as _;

use super::selector::{Labels, Selector};
use super::spec::ProjectPolicySpec;
use super::{Broken, Resolved, validate};

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
    /// What governed namespaces get, built once (its `secretUse` rules compiled): every
    /// namespace the policy governs shares it.
    resolved: Resolved,
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
        let (name, spec) = (Arc::from(name), Arc::new(spec));
        Ok(Self {
            resolved: Resolved::new(Arc::clone(&name), Arc::clone(&spec), None),
            name,
            spec,
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
        let (name, broken): (Arc<str>, Arc<str>) = (Arc::from(name), Arc::from(problems));
        let spec = Arc::new(ProjectPolicySpec {
            namespaces,
            ..ProjectPolicySpec::default()
        });
        Self {
            resolved: Resolved::new(name.clone(), spec.clone(), Some(broken.clone())),
            name,
            spec,
            selector,
            broken: Some(broken),
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
        self.resolved.clone()
    }
}

/// A namespace selected by more than one policy: `policies[0]` governs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    pub namespace: String,
    pub policies: Vec<Arc<str>>,
}

/// Which policy governs each namespace: the part of a snapshot that depends on policies
/// and namespace labels only.
#[derive(Clone, Debug)]
pub struct Governance {
    /// The embedded default (or a test's fallback): in force where no policy selects.
    pub(super) default: Resolved,
    /// The governing policy of each known namespace whose answer differs from `unknown`
    /// (persistent, so one namespace's change copies one path, not the map).
    by_namespace: rpds::HashTrieMapSync<Arc<str>, Resolved>,
    /// The answer for a namespace the snapshot has not seen.
    unknown: Resolved,
    /// Project policies in force (the default and broken ones not counted).
    pub(super) policies: usize,
    /// Policies invalid with no good version known, by name.
    pub(super) broken: Vec<Broken>,
    /// Sorted by namespace.
    pub(super) overlaps: Vec<Overlap>,
    /// Every project policy, broken ones included, sorted by name (the order in which
    /// the first selecting one governs a namespace). Shared: a namespace event copies
    /// the governance, not the policies.
    pub(super) in_force: Arc<[Policy]>,
}

/// Builds the governance: the governing policy of every known namespace, and of
/// namespaces not seen yet (selectors evaluated against no labels).
///
/// `namespaces` lists each known namespace with its labels (borrowed from wherever the
/// caller keeps them: nothing is copied); names listed in a policy but unknown are
/// resolved as if they existed with only the name label.
pub fn build(policies: Vec<Policy>, namespaces: Known<'_>, default: Resolved) -> Governance {
    let mut governance = Governance::of(sorted(policies), default);

    let known: HashSet<&str> = namespaces.iter().map(|(ns, _)| *ns).collect();
    let mut named = BTreeMap::new();
    let in_force = governance.in_force.clone();
    for name in in_force.iter().flat_map(|p| p.spec.namespaces.iter()) {
        if !known.contains(name.as_str()) {
            named.insert(name.as_str(), name_only(name));
        }
    }
    let named: Vec<(&str, &Labels)> = named.iter().map(|(ns, l)| (*ns, l)).collect();
    for &(ns, labels) in namespaces.iter().chain(&named) {
        let (governing, overlap) = governance.resolve(ns, labels);
        if let Some(overlap) = overlap {
            governance.overlaps.push(overlap);
        }
        governance.record(ns, governing);
    }
    governance
        .overlaps
        .sort_by(|a, b| a.namespace.cmp(&b.namespace));
    governance
}

/// Known namespaces with their labels.
pub type Known<'a> = &'a [(&'a str, &'a Labels)];

/// `policies` sorted by name, one per name.
fn sorted(mut policies: Vec<Policy>) -> Arc<[Policy]> {
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    policies.dedup_by(|a, b| a.name == b.name);
    policies.into()
}

/// Whether two versions of a policy are the same one: a policy whose spec did not
/// change keeps its parsed version (and so its spec's allocation).
fn same(a: &Policy, b: &Policy) -> bool {
    a.name == b.name && Arc::ptr_eq(&a.spec, &b.spec) && a.broken == b.broken
}

/// The labels of a namespace known only by a policy naming it.
fn name_only(name: &str) -> Labels {
    Labels::from([(NAME_LABEL.to_owned(), name.to_owned())])
}

impl Governance {
    /// `policies` (sorted) over no namespace yet.
    fn of(policies: Arc<[Policy]>, default: Resolved) -> Self {
        let unknown = policies
            .iter()
            .find(|p| {
                p.selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&Labels::new()))
            })
            .map_or_else(|| default.clone(), Policy::resolved);
        let broken = policies
            .iter()
            .filter_map(|p| {
                p.broken.as_ref().map(|problems| Broken {
                    name: p.name.clone(),
                    problems: problems.clone(),
                })
            })
            .collect::<Vec<_>>();
        Governance {
            default,
            by_namespace: rpds::HashTrieMapSync::new_sync(),
            unknown,
            policies: policies.len() - broken.len(),
            broken,
            overlaps: Vec::new(),
            in_force: policies,
        }
    }

    /// This governance with `policies` in force instead, over `namespaces` (the same as
    /// `build(policies, namespaces, default)`). Only the namespaces a changed policy
    /// selects, before or after the change, are resolved again: a policy event costs one
    /// pass of the changed policies over the namespaces, not every policy over every
    /// namespace. When the answer for unseen namespaces changes, everything is.
    pub fn with_policies(&self, policies: Vec<Policy>, namespaces: Known<'_>) -> Self {
        let next = Self::of(sorted(policies), self.default.clone());
        let unchanged_unknown = next.unknown.name == self.unknown.name
            && Arc::ptr_eq(&next.unknown.spec, &self.unknown.spec);
        if !unchanged_unknown {
            return build(next.in_force.to_vec(), namespaces, self.default.clone());
        }
        let new_policies = next.in_force.clone();
        let changed: Vec<&Policy> = {
            let (old, new) = (&self.in_force, &new_policies);
            let gone = old.iter().filter(|p| !new.iter().any(|q| same(p, q)));
            let came = new.iter().filter(|p| !old.iter().any(|q| same(p, q)));
            gone.chain(came).collect()
        };
        // Known namespaces a changed policy selects (by name or label), and names a
        // changed policy lists that are not known (resolved as `build` resolves them).
        let mut affected: BTreeMap<&str, Option<&Labels>> = changed
            .iter()
            .flat_map(|p| p.spec.namespaces.iter().map(|n| (n.as_str(), None)))
            .collect();
        for &(ns, labels) in namespaces {
            if changed.iter().any(|p| p.selects(ns, labels)) {
                affected.insert(ns, Some(labels));
            }
        }
        let mut governance = Governance {
            by_namespace: self.by_namespace.clone(),
            overlaps: self.overlaps.clone(),
            ..next
        };
        for (ns, labels) in affected {
            governance.update_namespace(ns, labels);
        }
        governance
    }

    /// The policy that governs `namespace`: a hash lookup, resolved when the governance
    /// was built.
    pub fn for_namespace(&self, namespace: &str) -> &Resolved {
        self.by_namespace.get(namespace).unwrap_or(&self.unknown)
    }

    /// Namespace `name` changed: its labels are now `labels`, or it is gone (`None`).
    /// Resolves that namespace alone (one pass over the policies), so a namespace event
    /// costs what one namespace costs, not what the cluster does.
    pub fn update_namespace(&mut self, name: &str, labels: Option<&Labels>) {
        let named = self
            .in_force
            .iter()
            .any(|p| p.spec.namespaces.iter().any(|n| n == name));
        let labels = match (labels, named) {
            (Some(labels), _) => std::borrow::Cow::Borrowed(labels),
            // Gone, but a policy names it: resolved as `build` resolves unseen names.
            (None, true) => std::borrow::Cow::Owned(name_only(name)),
            (None, false) => {
                self.by_namespace.remove_mut(name);
                self.set_overlap(name, None);
                return;
            }
        };
        let (governing, overlap) = self.resolve(name, &labels);
        self.set_overlap(name, overlap);
        self.by_namespace.remove_mut(name);
        self.record(name, governing);
    }

    /// The governing policy of `ns` with `labels`, and the overlap when several select it.
    fn resolve(&self, ns: &str, labels: &Labels) -> (Resolved, Option<Overlap>) {
        let mut selecting = self.in_force.iter().filter(|p| p.selects(ns, labels));
        let governing = selecting
            .next()
            .map_or_else(|| self.default.clone(), Policy::resolved);
        let shadowed: Vec<Arc<str>> = selecting.map(|p| p.name.clone()).collect();
        let overlap = (!shadowed.is_empty()).then(|| {
            let mut all = vec![governing.name.clone()];
            all.extend(shadowed);
            Overlap {
                namespace: ns.to_owned(),
                policies: all,
            }
        });
        (governing, overlap)
    }

    /// Stores `governing` for `ns`. Only what differs from the unknown-namespace answer
    /// is stored: with tens of thousands of namespaces mostly under the default, the map
    /// stays small.
    fn record(&mut self, ns: &str, governing: Resolved) {
        if !Arc::ptr_eq(&governing.spec, &self.unknown.spec) {
            self.by_namespace.insert_mut(Arc::from(ns), governing);
        }
    }

    /// Replaces `ns`'s overlap (kept sorted by namespace).
    fn set_overlap(&mut self, ns: &str, overlap: Option<Overlap>) {
        let at = self
            .overlaps
            .binary_search_by(|o| o.namespace.as_str().cmp(ns));
        match (at, overlap) {
            (Ok(i), Some(o)) => self.overlaps[i] = o,
            (Ok(i), None) => {
                self.overlaps.remove(i);
            }
            (Err(i), Some(o)) => self.overlaps.insert(i, o),
            (Err(_), None) => {}
        }
    }
}

#[cfg(test)]
mod tests;
