//! Defence in depth: the rules of each ProjectPolicy that CEL can express, published as a
//! `ValidatingAdmissionPolicy` and its `ValidatingAdmissionPolicyBinding`
//! (`admissionregistration.k8s.io/v1`), which the API server evaluates itself, so they
//! hold while the webhook is unreachable.
//!
//! Published per policy: the name rule (prefix, pattern, maximum length, no dots), the
//! allowed types (with `allowCustomTypes` as `secrets::metadata` reads it), required
//! labels and annotations. All of them are `Deny` findings in the webhook, so they follow
//! the mode: Enforce → `[Deny]`, Warn → `[Warn]`, Audit → `[Audit]`; failurePolicy
//! Ignore in every mode (an error there is a bug in the published CEL, and the webhook
//! checks the same rules). On an
//! UPDATE in Enforce, what the old object already broke is let through, as the webhook
//! only warns about it then ([`cel`]). Everything else (content checks, cross-object rules, values
//! in annotations) only the webhook can check.
//!
//! Where the webhook and these objects could read a request differently, they are built
//! so that the policy never denies what the webhook admits:
//! - **Which policy governs a namespace.** Where several policies select one namespace,
//!   the first by name governs it alone (`policy::resolve`). Each policy's CEL carries
//!   that rule (`variables.governed`, reading `namespaceObject`), so a later policy's
//!   rules never apply there, broken policies included.
//! - **Exemptions.** In Enforce the webhook turns an exempt requester's denials into
//!   warnings; the policy's `matchConditions` leave exempt requesters out (so they get
//!   no warning from it). In Warn and Audit exemptions change nothing in the webhook,
//!   and are not published.
//! - **The webhook's own scope.** The chart never sends the webhook its own namespace
//!   or `kube-system`: the binding leaves out the namespaces given as excluded.
//! - **Patterns.** Only those RE2 reads as Rust does ([`re2`]); others stay with the
//!   webhook.
//!
//! A *broken* policy (invalid, no good version known) gets nothing new: the objects it
//! had stay as they are (deleting them would fail open while the webhook denies there).
//! The embedded default policy has no rule CEL can express (no name rule, every type
//! allowed, no required keys), so nothing is published for it. A policy with no such
//! rule publishes nothing, and what it had is deleted.

mod cel;
mod re2;
pub mod sync;

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use crate::annotations::{MANAGED_BY, MANAGED_BY_LABEL, POLICY_ANNOTATION};
use crate::policy::resolve::NAME_LABEL;
use crate::policy::{Mode, Policy, Snapshot};

/// Field manager of the server-side applies.
pub const FIELD_MANAGER: &str = "secretgate-admission-policies";
/// Label selector of the objects secretgate publishes.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=secretgate";
/// Longest object name the API server takes (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;
/// Longest policy text quoted in a message (messages are one line, bounded).
const MAX_QUOTED: usize = 200;

/// What the published objects leave out besides what the policies say.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Namespaces the webhook is never asked about (the chart: its own and
    /// `kube-system`, plus `webhooks.excludedNamespaces`).
    pub excluded_namespaces: Vec<String>,
}

/// The two objects of one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The ProjectPolicy they come from.
    pub policy: String,
    pub policy_object: ValidatingAdmissionPolicy,
    pub binding: ValidatingAdmissionPolicyBinding,
    /// Rules of the policy left to the webhook alone, and why.
    pub webhook_only: Vec<String>,
}

/// What should be published for a snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub published: Vec<Published>,
    /// Broken policies: whatever they published before is left in place.
    pub kept: Vec<String>,
}

/// The objects for every policy of `snapshot` (see the module documentation).
pub fn plan(snapshot: &Snapshot, scope: &Scope) -> Plan {
    let policies = snapshot.policies_in_force();
    let mut out = Plan::default();
    for (index, policy) in policies.iter().enumerate() {
        if policy.is_broken() {
            out.kept.push(policy.name.to_string());
            continue;
        }
        if let Some(published) = build(policies, index, scope) {
            out.published.push(published);
        }
    }
    out
}

/// The objects of `policies[index]`, or `None` when it has no rule CEL can express or
/// selects no namespace.
fn build(policies: &[Policy], index: usize, scope: &Scope) -> Option<Published> {
    let policy = &policies[index];
    let rules = rules::compile(policy);
    if rules.validations.is_empty() {
        return None;
    }
    let namespace_selector = binding_selector(policy, scope)?;
    let name = object_name(&policy.name);
    let mut variables = vec![variable("governed", cel::governs(policies, index))];
    variables.extend(rules.variables);
    let mode = policy.spec.mode;
    let policy_object = ValidatingAdmissionPolicy {
        metadata: metadata(&name, &policy.name),
        spec: Some(ValidatingAdmissionPolicySpec {
            // A VAP fails only on its own expressions (a type error against the cluster's
            // Secret schema, a cost limit): a mistake of secretgate's, never an outage.
            // Under Fail it would deny every Secret write of the project; under Ignore
            // the webhook, which checks all of this too, goes on deciding alone.
            failure_policy: Some("Ignore".to_owned()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![String::new()]),
                    api_versions: Some(vec!["v1".to_owned()]),
                    operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                    resources: Some(vec!["secrets".to_owned()]),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            match_conditions: (mode == Mode::Enforce)
                .then(|| exemption_condition(policy))
                .flatten()
                .map(|c| vec![c]),
            variables: Some(variables),
            validations: Some(rules.validations),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        status: None,
    };
    let binding = ValidatingAdmissionPolicyBinding {
        metadata: metadata(&name, &policy.name),
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(name.clone()),
            validation_actions: Some(vec![mode.as_str().replace("Enforce", "Deny")]),
            match_resources: Some(MatchResources {
                namespace_selector: Some(namespace_selector),
                ..MatchResources::default()
            }),
            param_ref: None,
        }),
    };
    Some(Published {
        policy: policy.name.to_string(),
        policy_object,
        binding,
        webhook_only: rules.webhook_only,
    })
}

fn variable(name: &str, expression: String) -> Variable {
    Variable {
        name: name.to_owned(),
        expression,
    }
}

fn metadata(name: &str, policy: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY.to_owned(),
        )])),
        annotations: Some(BTreeMap::from([(
            POLICY_ANNOTATION.to_owned(),
            policy.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// `secretgate-<policy>`, when that is a valid object name; otherwise (a policy file's
/// name with characters an object name cannot hold, or too long) the name made valid
/// and cut, with a hash of the policy name so two policies never share objects.
pub fn object_name(policy: &str) -> String {
    let plain = format!("secretgate-{policy}");
    if plain.len() <= MAX_NAME && is_subdomain(&plain) {
        return plain;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, policy.as_bytes());
    let hash: String = digest.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cleaned: String = plain
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(MAX_NAME - hash.len() - 1)
        .collect();
    format!("{}-{hash}", cleaned.trim_end_matches(['-', '.']))
}

/// A DNS-1123 subdomain: dot-separated labels of `[a-z0-9-]`, each starting and ending
/// with a letter or digit.
fn is_subdomain(name: &str) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// The binding's namespace selector: the namespaces the webhook is asked about, narrowed
/// to the policy's when one selector can say it (only `namespaces`, or only
/// `namespaceSelector`); with both, the CEL's `governed` decides. `None` when the
/// policy selects nothing.
fn binding_selector(policy: &Policy, scope: &Scope) -> Option<LabelSelector> {
    let spec = &policy.spec;
    let mut expressions = Vec::new();
    if !scope.excluded_namespaces.is_empty() {
        expressions.push(LabelSelectorRequirement {
            key: NAME_LABEL.to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(scope.excluded_namespaces.clone()),
        });
    }
    let mut match_labels = None;
    match (spec.namespaces.is_empty(), &spec.namespace_selector) {
        (true, None) => return None,
        (false, None) => expressions.push(LabelSelectorRequirement {
            key: NAME_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(spec.namespaces.clone()),
        }),
        (true, Some(selector)) => {
            match_labels = selector.match_labels.clone().filter(|l| !l.is_empty());
            expressions.extend(selector.match_expressions.iter().flatten().cloned());
        }
        (false, Some(_)) => {}
    }
    Some(LabelSelector {
        match_labels,
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// The `matchConditions` entry that leaves exempt requesters out (Enforce only).
fn exemption_condition(policy: &Policy) -> Option<MatchCondition> {
    let exemptions = policy.spec.exemptions.as_ref()?;
    let mut users: Vec<String> = exemptions.usernames.clone();
    // `Exemptions::exempt`: `ns/name` is the username `system:serviceaccount:ns:name`
    // (policy validation makes both parts names, so neither holds ':' or '/').
    users.extend(
        exemptions
            .service_accounts
            .iter()
            .filter_map(|a| a.split_once('/'))
            .map(|(ns, name)| format!("system:serviceaccount:{ns}:{name}")),
    );
    let mut exempt = Vec::new();
    if !users.is_empty() {
        exempt.push(format!(
            "(has(request.userInfo.username) && request.userInfo.username in {})",
            cel::strings(users.iter().map(String::as_str))
        ));
    }
    if !exemptions.groups.is_empty() {
        exempt.push(format!(
            "(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in {}))",
            cel::strings(exemptions.groups.iter().map(String::as_str))
        ));
    }
    if exempt.is_empty() {
        return None;
    }
    Some(MatchCondition {
        name: "not-exempt".to_owned(),
        expression: format!("!({})", exempt.join(" || ")),
    })
}

/// One-line, bounded quote of policy text for a message.
fn quote(text: &str) -> String {
    let clipped = crate::admission::clip(text, MAX_QUOTED);
    format!("{clipped:?}")
}

mod rules;

/// The published objects as YAML documents, for GitOps (`secretgate admission-policies`):
/// each policy's pair after a comment naming it and what it leaves to the webhook.
pub fn to_yaml(plan: &Plan) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for kept in &plan.kept {
        out.push_str(&format!(
            "# ProjectPolicy {kept:?} is invalid with no good version known: nothing is \
             published for it (the webhook denies its Secret writes)\n"
        ));
    }
    for p in &plan.published {
        out.push_str(&format!("---\n# ProjectPolicy {:?}\n", p.policy));
        for note in &p.webhook_only {
            out.push_str(&format!("# left to the webhook: {note}\n"));
        }
        out.push_str(&serde_saphyr::to_string(&p.policy_object)?);
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&p.binding)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
