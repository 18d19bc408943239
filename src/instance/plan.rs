//! What the instance-secret controller should do, as a pure function of what the caches
//! hold: the governing policy of each namespace, and the metadata of every Secret.
//!
//! Rules:
//! - a copy is wanted in each namespace a valid policy governs, for each of its
//!   `instanceSecrets` whose source exists in an allowed namespace (never over the source
//!   itself);
//! - a wanted copy that is missing is created; one whose source, policy or source version
//!   differs from its annotations is updated; a managed copy that is not wanted any more
//!   (namespace left the project, the policy dropped it or was deleted) is deleted;
//! - a Secret of the wanted name that secretgate does not manage is a conflict: left
//!   alone, reported;
//! - where the governing policy is broken (invalid, no good version known) nothing is
//!   created or deleted: a typo in a policy must not delete every copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::policy::{Resolved, SecretReference};

use super::{
    MANAGED_BY, MANAGED_BY_LABEL, POLICY_ANNOTATION, SOURCE_ANNOTATION, SOURCE_VERSION_ANNOTATION,
};

/// What the plan reads of one Secret: metadata only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretState {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// Set when the secret is a copy secretgate manages.
    pub managed: Option<Managed>,
}

/// What a managed copy's annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Managed {
    pub policy: String,
    pub source: SecretReference,
    pub source_version: Option<String>,
}

impl SecretState {
    /// The state of a secret with these labels and annotations.
    pub fn from_metadata(
        uid: Option<String>,
        resource_version: Option<String>,
        labels: Option<&BTreeMap<String, String>>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let labelled = labels
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY);
        let managed = annotations.filter(|_| labelled).and_then(|a| {
            let (namespace, name) = a.get(SOURCE_ANNOTATION)?.split_once('/')?;
            Some(Managed {
                policy: a.get(POLICY_ANNOTATION).cloned().unwrap_or_default(),
                source: SecretReference {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
                source_version: a.get(SOURCE_VERSION_ANNOTATION).cloned(),
            })
        });
        Self {
            uid,
            resource_version,
            managed,
        }
    }
}

/// A copy to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub namespace: String,
    pub name: String,
    pub policy: Arc<str>,
    pub source: SecretReference,
    /// The source's resourceVersion when planned.
    pub source_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create(Copy),
    /// Replace the copy whose resourceVersion is `resource_version` (a 409 means it moved
    /// since the plan: the next pass plans again).
    Update {
        copy: Copy,
        resource_version: Option<String>,
    },
    /// Delete the managed copy with this uid (a precondition: never a secret created in
    /// its place since).
    Delete {
        namespace: String,
        name: String,
        uid: Option<String>,
    },
}

impl Action {
    /// `namespace/name` of the secret acted on.
    pub fn target(&self) -> String {
        match self {
            Action::Create(c) | Action::Update { copy: c, .. } => {
                format!("{}/{}", c.namespace, c.name)
            }
            Action::Delete {
                namespace, name, ..
            } => format!("{namespace}/{name}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// A Secret of the copy's name exists and secretgate does not manage it.
    Conflict,
    /// The source does not exist (yet).
    SourceMissing,
    /// The source's namespace is not one the server copies from.
    SourceNotAllowed,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Conflict => "conflict",
            ProblemKind::SourceMissing => "source_missing",
            ProblemKind::SourceNotAllowed => "source_not_allowed",
        }
    }
}

/// Something a policy asks for that cannot be provided.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub policy: String,
    pub kind: ProblemKind,
    /// The secret concerned: the conflicting one, or the source.
    pub namespace: String,
    pub name: String,
}

impl Problem {
    pub fn message(&self) -> String {
        let at = format!("{}/{}", self.namespace, self.name);
        match self.kind {
            ProblemKind::Conflict => format!(
                "secret {at} exists and is not managed by secretgate: left alone, no copy there"
            ),
            ProblemKind::SourceMissing => format!("source secret {at} does not exist"),
            ProblemKind::SourceNotAllowed => format!(
                "source secret {at} is in a namespace secretgate does not copy from \
                 (serve --instance-secret-namespaces)"
            ),
        }
    }
}

/// The controller's work for one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub problems: Vec<Problem>,
    /// Copies already as wanted.
    pub in_sync: usize,
    /// Wanted copies, by namespace: what will exist once the plan is applied (so pull
    /// secret injection need not warn in the moments before a copy is created).
    pub wanted: BTreeSet<(String, String)>,
}

/// The plan for `namespaces` (each with its governing policy), given every Secret's
/// state by (namespace, name) and the namespaces sources may come from.
pub fn plan<'a>(
    namespaces: impl IntoIterator<Item = (&'a str, &'a Resolved)>,
    secrets: &HashMap<(String, String), SecretState>,
    allowed_sources: &BTreeSet<String>,
) -> Plan {
    let mut plan = Plan::default();
    let mut problems = BTreeSet::new();
    let mut frozen = BTreeSet::new();
    for (namespace, policy) in namespaces {
        if policy.broken.is_some() {
            frozen.insert(namespace.to_owned());
            continue;
        }
        for wanted in &policy.spec.instance_secrets {
            let source = &wanted.source;
            let problem = |kind| Problem {
                policy: policy.name.to_string(),
                kind,
                namespace: source.namespace.clone(),
                name: source.name.clone(),
            };
            if !allowed_sources.contains(&source.namespace) {
                problems.insert(problem(ProblemKind::SourceNotAllowed));
                continue;
            }
            let Some(source_state) = secrets.get(&(source.namespace.clone(), source.name.clone()))
            else {
                problems.insert(problem(ProblemKind::SourceMissing));
                continue;
            };
            let target = wanted.target();
            if namespace == source.namespace && target == source.name {
                continue;
            }
            let key = (namespace.to_owned(), target.to_owned());
            if !plan.wanted.insert(key.clone()) {
                // Two entries of one policy for the same name: the first wins (the policy
                // validation refuses this).
                continue;
            }
            let copy = Copy {
                namespace: key.0.clone(),
                name: key.1.clone(),
                policy: policy.name.clone(),
                source: source.clone(),
                source_version: source_state.resource_version.clone(),
            };
            match secrets.get(&key) {
                None => plan.actions.push(Action::Create(copy)),
                Some(SecretState { managed: None, .. }) => {
                    plan.wanted.remove(&key);
                    problems.insert(Problem {
                        policy: policy.name.to_string(),
                        kind: ProblemKind::Conflict,
                        namespace: key.0,
                        name: key.1,
                    });
                }
                Some(
                    existing @ SecretState {
                        managed: Some(m), ..
                    },
                ) => {
                    let current = m.policy == *policy.name
                        && m.source == *source
                        && m.source_version == copy.source_version;
                    if current {
                        plan.in_sync += 1;
                    } else {
                        plan.actions.push(Action::Update {
                            copy,
                            resource_version: existing.resource_version.clone(),
                        });
                    }
                }
            }
        }
    }
    let mut orphans: Vec<Action> = secrets
        .iter()
        .filter(|((ns, name), state)| {
            state.managed.is_some()
                && !frozen.contains(ns)
                && !plan.wanted.contains(&(ns.clone(), name.clone()))
        })
        .map(|((ns, name), state)| Action::Delete {
            namespace: ns.clone(),
            name: name.clone(),
            uid: state.uid.clone(),
        })
        .collect();
    orphans.sort_by_key(Action::target);
    plan.actions.extend(orphans);
    plan.problems = problems.into_iter().collect();
    plan
}

#[cfg(test)]
mod tests;
