//! From the server's caches to a plan, and from a plan to the secret index.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::PartialObjectMeta;

use super::plan::{Plan, SecretState, plan};
use super::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::policy::{SecretIndex, SecretMeta, Snapshot};

/// The plan for what the caches hold: every known namespace under its governing policy.
/// Only the secrets the plan can concern are looked at closely (sources, secrets of a
/// wanted copy's name, managed copies), so a pass costs little with tens of thousands of
/// unrelated secrets.
pub fn plan_from_caches(
    snapshot: &Snapshot,
    namespaces: &[Arc<PartialObjectMeta<Namespace>>],
    secrets: &[Arc<PartialObjectMeta<Secret>>],
    allowed_sources: &BTreeSet<String>,
) -> Plan {
    let governed: Vec<(&str, &crate::policy::Resolved)> = namespaces
        .iter()
        .filter_map(|ns| ns.metadata.name.as_deref())
        .map(|name| (name, snapshot.for_namespace(name)))
        .collect();
    let mut sources = HashSet::new();
    let mut targets = HashSet::new();
    for (_, policy) in &governed {
        for wanted in &policy.spec.instance_secrets {
            sources.insert((
                wanted.source.namespace.as_str(),
                wanted.source.name.as_str(),
            ));
            targets.insert(wanted.target());
        }
    }
    let mut states = HashMap::new();
    for secret in secrets {
        let m = &secret.metadata;
        let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) else {
            continue;
        };
        let labelled = m
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY);
        if !labelled && !targets.contains(name) && !sources.contains(&(ns, name)) {
            continue;
        }
        let state = SecretState::from_metadata(
            m.uid.clone(),
            m.resource_version.clone(),
            m.labels.as_ref(),
            m.annotations.as_ref(),
        );
        states.insert((ns.to_owned(), name.to_owned()), state);
    }
    plan(governed, &states, allowed_sources)
}

/// Records the copies `plan` wants as existing, so pull-secret injection uses a copy (and
/// does not warn it is missing) in the moments before the controller creates it.
pub fn provide(plan: &Plan, index: &mut SecretIndex) {
    for (namespace, name) in &plan.wanted {
        if !index.contains(namespace, name) {
            let meta = SecretMeta {
                labels: [(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())].into(),
                allowed_service_accounts: None,
            };
            index.insert_meta(namespace, name, meta);
        }
    }
}
