//! Who may use a secret: a policy's `secretUse` rules, compiled once, and the decision for
//! one pod (or pod template) using one secret.
//!
//! The decision reads only what secretgate already holds: the rules, the secret's
//! metadata from the cache (labels, the owner's annotation) and the pod's service account
//! and labels. A secret the cache has not seen cannot be matched by labels: while any
//! rule selects by labels, such a reference is *undecided* and refused rather than
//! guessed (a tenant could otherwise name a protected secret before it exists).

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::sync::Arc;

use super::selector::{Labels, Selector};
use super::spec::{Mode, Pattern, SecretUseRules, UseDefault};
use crate::admission::clip;

/// The annotation with which a Secret's owner narrows who may use it: service account
/// names, comma-separated.
pub const ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: &str = "secretgate.io/allowed-service-accounts";

/// The service account of a pod that names none (the API server sets it).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What secretgate knows of one secret: metadata only, never values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretMeta {
    pub labels: Labels,
    /// The owner's [`ALLOWED_SERVICE_ACCOUNTS_ANNOTATION`], as written.
    pub allowed_service_accounts: Option<Box<str>>,
}

impl SecretMeta {
    /// The metadata of a secret with these labels and annotations.
    pub fn from_metadata(
        labels: Option<&std::collections::BTreeMap<String, String>>,
        annotations: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Self {
        Self {
            labels: labels.cloned().unwrap_or_default(),
            allowed_service_accounts: annotations
                .and_then(|a| a.get(ALLOWED_SERVICE_ACCOUNTS_ANNOTATION))
                .map(|v| v.as_str().into()),
        }
    }
}

/// The service accounts an owner's annotation names, or `None` when it is malformed
/// (an empty entry, or one that is not a service account name). A malformed annotation
/// lets no pod use the secret: the owner meant to narrow, so it fails closed.
pub fn owner_service_accounts(value: &str) -> Option<HashSet<&str>> {
    let names: Vec<&str> = value.split(',').map(str::trim).collect();
    names
        .iter()
        .all(|n| is_service_account_name(n))
        .then(|| names.into_iter().collect())
}

/// A DNS-1123 subdomain, as the API server requires of a ServiceAccount name.
pub fn is_service_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A policy's `secretUse`, compiled so that deciding one secret costs one hash lookup and
/// one automaton pass per rule over its name (a policy has at most 64 rules of 16
/// patterns; a pod's distinct secrets are bounded in `pods::secret_use`).
#[derive(Clone, Debug)]
pub struct SecretUse {
    /// The mode its findings follow (its own, else the policy's).
    pub mode: Mode,
    default_deny: bool,
    rules: Vec<Rule>,
    /// Secret name → the rules that name it.
    by_name: HashMap<String, Vec<usize>>,
}

/// One rule's name patterns as one anchored alternation: a pod may name thousands of
/// secrets, and one small automaton per rule answers each name in one pass (a single
/// set of every rule's patterns has to report all matches, which for a policy at its
/// limits fell back to a slow engine: seconds per pod in the worst-case benchmark).
#[derive(Clone, Debug)]
enum NamePatterns {
    None,
    Joined(regex::Regex),
    /// If the alternation does not build (its size limit is not the single patterns'),
    /// each pattern is tried in turn: slower, never weaker.
    Each(Vec<Pattern>),
}

impl NamePatterns {
    fn compile(patterns: &[Pattern]) -> Self {
        if patterns.is_empty() {
            return NamePatterns::None;
        }
        let joined: Vec<String> = patterns
            .iter()
            .map(|p| format!("(?:{})", p.as_str()))
            .collect();
        match regex::Regex::new(&format!("^(?:{})$", joined.join("|"))) {
            Ok(regex) => NamePatterns::Joined(regex),
            Err(_) => NamePatterns::Each(patterns.to_vec()),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        match self {
            NamePatterns::None => false,
            NamePatterns::Joined(regex) => regex.is_match(name),
            NamePatterns::Each(each) => each.iter().any(|p| p.is_match(name)),
        }
    }
}

#[derive(Clone, Debug)]
struct Rule {
    name: Arc<str>,
    patterns: NamePatterns,
    selector: Option<Selector>,
    service_accounts: HashSet<String>,
    pod_selector: Option<Selector>,
}

impl Rule {
    /// Whether the rule selects the secret by its labels: `Some(true/false)`, or `None`
    /// when only the secret's labels could tell and they are not known.
    fn selects_by_labels(&self, meta: Option<&SecretMeta>) -> Option<bool> {
        match (&self.selector, meta) {
            (None, _) => Some(false),
            (Some(selector), _) if selector.matches_everything() => Some(true),
            (Some(selector), Some(meta)) => Some(selector.matches(&meta.labels)),
            (Some(_), None) => None,
        }
    }

    fn grants(&self, user: &User<'_>) -> bool {
        self.service_accounts.contains(user.service_account)
            && self
                .pod_selector
                .as_ref()
                .is_none_or(|s| s.matches(user.labels))
    }
}

/// The pod (or pod template) that would use a secret.
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    pub service_account: &'a str,
    pub labels: &'a Labels,
}

/// Why a pod may not use a secret. Messages name the secret, the service account and the
/// rule, never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Rules select the secret and none lets this pod use it.
    NotGranted { rules: Vec<Arc<str>> },
    /// No rule selects the secret and the project's default is `Deny`.
    DefaultDeny,
    /// The secret is not known yet and rules that select by labels might cover it.
    Undecided,
    /// The owner's annotation does not name this service account.
    OwnerExcludes,
    /// The owner's annotation is malformed: no pod may use the secret.
    OwnerAnnotationMalformed,
}

impl Refusal {
    /// The finding's message for `secret` used by a pod of `service_account`.
    pub fn message(&self, secret: &str, service_account: &str) -> String {
        let secret = clip(secret, 253);
        let account = clip(service_account, 253);
        match self {
            Refusal::NotGranted { rules } => {
                let names: Vec<String> = rules.iter().map(|r| format!("{r:?}")).collect();
                format!(
                    "service account {account:?} may not use secret {secret:?}: secretUse \
                     rule {} selects it and does not allow this pod",
                    names.join(", ")
                )
            }
            Refusal::DefaultDeny => format!(
                "service account {account:?} may not use secret {secret:?}: no secretUse rule \
                 allows it and the project's default is Deny"
            ),
            Refusal::Undecided => format!(
                "secret {secret:?} is not known to secretgate yet and secretUse rules select \
                 secrets by label, so whether service account {account:?} may use it cannot \
                 be decided; create the secret first"
            ),
            Refusal::OwnerExcludes => format!(
                "service account {account:?} may not use secret {secret:?}: its annotation \
                 {ALLOWED_SERVICE_ACCOUNTS_ANNOTATION} does not name it"
            ),
            Refusal::OwnerAnnotationMalformed => format!(
                "secret {secret:?} has a malformed {ALLOWED_SERVICE_ACCOUNTS_ANNOTATION} \
                 annotation (comma-separated service account names), so no pod may use it \
                 until its owner fixes it"
            ),
        }
    }

    /// A bounded label for metrics and reports.
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::NotGranted { .. } => "secret-use-rule",
            Refusal::DefaultDeny => "secret-use-default",
            Refusal::Undecided => "secret-use-undecided",
            Refusal::OwnerExcludes | Refusal::OwnerAnnotationMalformed => "secret-use-owner",
        }
    }
}

impl SecretUse {
    /// Compiles `rules` (validated with the rest of the spec: problems are reported there,
    /// and a selector that does not compile selects nothing here).
    pub fn compile(rules: &SecretUseRules, policy_mode: Mode) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut compiled = Vec::with_capacity(rules.rules.len());
        for (i, r) in rules.rules.iter().enumerate() {
            for name in &r.secrets.names {
                let named = by_name.entry(name.clone()).or_default();
                if !named.contains(&i) {
                    named.push(i);
                }
            }
            let compile = |s: &LabelSelector| {
                Selector::compile(s, "").unwrap_or_else(|_| Selector::nothing())
            };
            compiled.push(Rule {
                name: Arc::from(r.name.as_str()),
                patterns: NamePatterns::compile(&r.secrets.name_patterns),
                selector: r.secrets.selector.as_ref().map(compile),
                service_accounts: r.service_accounts.iter().cloned().collect(),
                pod_selector: r.pod_selector.as_ref().map(compile),
            });
        }
        Self {
            mode: rules.mode.unwrap_or(policy_mode),
            default_deny: rules.default == UseDefault::Deny,
            rules: compiled,
            by_name,
        }
    }

    /// Whether the project's rules let `user` use `secret`; `meta` is what the cache
    /// knows of it (`None`: not seen). The owner's annotation is applied by [`decide`].
    fn project_allows(
        &self,
        secret: &str,
        meta: Option<&SecretMeta>,
        user: &User<'_>,
    ) -> Result<(), Refusal> {
        let named = self
            .by_name
            .get(secret)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut selecting = Vec::new();
        let mut undecided = false;
        for (i, rule) in self.rules.iter().enumerate() {
            let selected = if named.contains(&i) || rule.patterns.is_match(secret) {
                Some(true)
            } else {
                rule.selects_by_labels(meta)
            };
            match selected {
                Some(true) if rule.grants(user) => return Ok(()),
                Some(true) => selecting.push(rule.name.clone()),
                Some(false) => {}
                None => undecided = true,
            }
        }
        if undecided {
            // A rule that matches by labels might select the secret (so the default
            // might not apply) or grant it (so a refusal might be wrong).
            return Err(Refusal::Undecided);
        }
        match (selecting.is_empty(), self.default_deny) {
            (true, false) => Ok(()),
            (true, true) => Err(Refusal::DefaultDeny),
            (false, _) => Err(Refusal::NotGranted { rules: selecting }),
        }
    }
}

/// Whether `user` may use `secret` under `rules` (none: the project has no `secretUse`)
/// and the owner's annotation in `meta`.
pub fn decide(
    rules: Option<&SecretUse>,
    secret: &str,
    meta: Option<&SecretMeta>,
    user: &User<'_>,
) -> Result<(), Refusal> {
    if let Some(value) = meta.and_then(|m| m.allowed_service_accounts.as_deref()) {
        match owner_service_accounts(value) {
            None => return Err(Refusal::OwnerAnnotationMalformed),
            Some(names) if !names.contains(user.service_account) => {
                return Err(Refusal::OwnerExcludes);
            }
            Some(_) => {}
        }
    }
    match rules {
        Some(rules) => rules.project_allows(secret, meta, user),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
