//! Checks of a policy spec that parsing cannot express: values out of range, rules that
//! contradict each other, injections that could never work.
//!
//! Every problem is collected (not only the first), each with its field path, so that a
//! security team fixes a policy in one edit.

use std::collections::{HashMap, HashSet};

use super::schema::{
    MAX_ENTRIES, MAX_INSTANCE_SECRETS, MAX_KEY, MAX_LABEL, MAX_NAME, MAX_NAME_PATTERNS,
    MAX_NAMESPACES, MAX_PATH, MAX_REGISTRIES, MAX_REGISTRY, MAX_USE_RULES,
};
use super::secret_use::{ALLOWED_SERVICE_ACCOUNTS_ANNOTATION, is_service_account_name};
use super::selector::Selector;
use super::spec::{
    CredentialHealth, Exemptions, GitSyncInjection, InstanceSecret, MIN_CREDENTIAL_INTERVAL,
    NameRule, ProjectPolicySpec, SecretSelection, SecretUseRule, SecretUseRules, UseDefault,
};

/// Longest policy value quoted in a problem (policy text, not a secret, but a problem
/// list is shown to whoever applies the policy and logged).
const MAX_QUOTED: usize = 64;

/// RSA sizes outside this range are either broken (< 1024) or almost certainly a typo.
const RSA_BITS: std::ops::RangeInclusive<u32> = 1024..=16384;
/// The API server's limit for a Secret name (a DNS-1123 subdomain).
const MAX_NAME_LENGTH: u32 = 253;
const SSH_ALGORITHMS: [&str; 3] = ["ed25519", "ecdsa", "rsa"];

/// Every problem found in `spec`, each as `field.path: what is wrong`. Empty when the
/// spec is usable.
pub fn problems(spec: &ProjectPolicySpec) -> Vec<String> {
    let mut out = Vec::new();
    at_most(
        &mut out,
        "spec.namespaces",
        &spec.namespaces,
        MAX_NAMESPACES,
    );
    for (i, ns) in spec.namespaces.iter().enumerate() {
        if !is_dns_label(ns) {
            out.push(format!(
                "spec.namespaces[{i}]: {} is not a namespace name",
                quote(ns)
            ));
        }
    }
    let rules = &spec.secrets;
    entries(
        &mut out,
        "spec.secrets.allowedTypes",
        &rules.allowed_types,
        MAX_NAME,
    );
    entries(
        &mut out,
        "spec.secrets.requiredLabels",
        &rules.required_labels,
        MAX_KEY,
    );
    entries(
        &mut out,
        "spec.secrets.requiredAnnotations",
        &rules.required_annotations,
        MAX_KEY,
    );
    name_rule(&mut out, &rules.name);
    registries(
        &mut out,
        "spec.secrets.imagePull.allowedRegistries",
        &rules.image_pull.allowed_registries,
        MAX_REGISTRIES,
    );
    let ssh = &rules.ssh;
    if !RSA_BITS.contains(&ssh.min_rsa_bits) {
        out.push(format!(
            "spec.secrets.ssh.minRsaBits: {} is outside {}..{}",
            ssh.min_rsa_bits,
            RSA_BITS.start(),
            RSA_BITS.end()
        ));
    }
    at_most(
        &mut out,
        "spec.secrets.ssh.allowedAlgorithms",
        &ssh.allowed_algorithms,
        MAX_ENTRIES,
    );
    for (i, alg) in ssh.allowed_algorithms.iter().enumerate() {
        if !SSH_ALGORITHMS.contains(&alg.as_str()) {
            out.push(format!(
                "spec.secrets.ssh.allowedAlgorithms[{i}]: {} is not one of ed25519, ecdsa, rsa",
                quote(alg)
            ));
        }
    }
    entries(
        &mut out,
        "spec.secrets.ssh.gitSyncKeyFields",
        &ssh.git_sync_key_fields,
        MAX_NAME,
    );
    at_most(
        &mut out,
        "spec.imagePullSecrets",
        &spec.image_pull_secrets,
        MAX_ENTRIES,
    );
    let mut seen = HashSet::new();
    for (i, inj) in spec.image_pull_secrets.iter().enumerate() {
        let at = format!("spec.imagePullSecrets[{i}]");
        if !is_dns_subdomain(&inj.secret_name) {
            out.push(format!(
                "{at}.secretName: {} is not a secret name",
                quote(&inj.secret_name)
            ));
        } else if !seen.insert(inj.secret_name.as_str()) {
            out.push(format!(
                "{at}.secretName: {} is listed twice; give one entry all its registries",
                quote(&inj.secret_name)
            ));
        }
        registries(
            &mut out,
            &format!("{at}.registries"),
            &inj.registries,
            MAX_ENTRIES,
        );
    }
    if let Some(git_sync) = &spec.git_sync {
        git_sync_rule(&mut out, git_sync);
    }
    if let Some(secret_use) = &spec.secret_use {
        secret_use_rules(&mut out, secret_use);
        injections_denied_by_default(&mut out, spec, secret_use);
    }
    instance_secrets(&mut out, &spec.instance_secrets);
    if let Some(health) = &spec.credential_health {
        credential_health(&mut out, health);
    }
    if let Some(exemptions) = &spec.exemptions {
        exemptions_problems(&mut out, exemptions);
    }
    if let Some(guarantee) = &spec.pull_guarantee {
        let at = "spec.pullGuarantee.registries";
        registries(&mut out, at, &guarantee.registries, MAX_REGISTRIES);
        if spec.private_registries().is_empty() {
            out.push(format!(
                "{at}: required value is missing (no imagePullSecrets rule names a registry, \
                 so list the private registries whose images need a pull secret)"
            ));
        }
    }
    if let Some(selector) = &spec.namespace_selector {
        let keys = selector
            .match_labels
            .iter()
            .flat_map(|m| m.keys())
            .chain(selector.match_expressions.iter().flatten().map(|e| &e.key));
        if keys
            .into_iter()
            .any(|k| k == crate::annotations::MODE_LABEL)
        {
            out.push(format!(
                "spec.namespaceSelector: must not select on {}: secretgate writes that label \
                 from the policies themselves",
                crate::annotations::MODE_LABEL
            ));
        }
    }
    out
}

/// Entries per exemption list.
const MAX_EXEMPTIONS: usize = 64;

fn exemptions_problems(out: &mut Vec<String>, exemptions: &Exemptions) {
    let at = "spec.exemptions";
    for (field, list) in [
        ("usernames", &exemptions.usernames),
        ("groups", &exemptions.groups),
    ] {
        let at = format!("{at}.{field}");
        at_most(out, &at, list, MAX_EXEMPTIONS);
        for (i, entry) in list.iter().enumerate() {
            if entry.is_empty() || entry.chars().count() > MAX_NAME_LENGTH as usize {
                out.push(format!(
                    "{at}[{i}]: must be 1 to {MAX_NAME_LENGTH} characters"
                ));
            }
        }
    }
    let at = format!("{at}.serviceAccounts");
    at_most(out, &at, &exemptions.service_accounts, MAX_EXEMPTIONS);
    for (i, entry) in exemptions.service_accounts.iter().enumerate() {
        let valid = entry
            .split_once('/')
            .is_some_and(|(ns, name)| is_dns_label(ns) && is_service_account_name(name));
        if !valid {
            out.push(format!(
                "{at}[{i}]: {} is not namespace/name of a service account",
                quote(entry)
            ));
        }
    }
}

fn credential_health(out: &mut Vec<String>, health: &CredentialHealth) {
    let at = "spec.credentialHealth";
    if health.registries.is_empty() {
        out.push(format!(
            "{at}.registries: required value is missing (list the registries the audit may log in to)"
        ));
    }
    registries(
        out,
        &format!("{at}.registries"),
        &health.registries,
        MAX_REGISTRIES,
    );
    if health.interval_seconds < MIN_CREDENTIAL_INTERVAL {
        out.push(format!(
            "{at}.intervalSeconds: {} is below the minimum of {MIN_CREDENTIAL_INTERVAL}",
            health.interval_seconds
        ));
    }
}

fn name_rule(out: &mut Vec<String>, rule: &NameRule) {
    let at = "spec.secrets.name";
    if let Some(max) = rule.max_length
        && !(1..=MAX_NAME_LENGTH).contains(&max)
    {
        out.push(format!(
            "{at}.maxLength: {max} is outside 1..{MAX_NAME_LENGTH}"
        ));
    }
    let Some(prefix) = &rule.prefix else { return };
    // A prefix no DNS-1123 name can start with would refuse every secret.
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if prefix.is_empty() {
        out.push(format!("{at}.prefix: must not be empty (omit it instead)"));
    } else if prefix.len() > MAX_NAME {
        out.push(format!(
            "{at}.prefix: {} characters can never start a secret name (at most {MAX_NAME})",
            prefix.chars().count()
        ));
    } else if !prefix.chars().all(allowed)
        || !prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        out.push(format!(
            "{at}.prefix: {} can never start a secret name (lowercase letters, digits, '-' and '.', starting with a letter or digit)",
            quote(prefix)
        ));
    } else if rule.forbid_dots && prefix.contains('.') {
        out.push(format!(
            "{at}.prefix: {} contains '.', which forbidDots refuses in every name",
            quote(prefix)
        ));
    }
    if let Some(max) = rule.max_length
        && prefix.len() as u64 >= u64::from(max)
    {
        out.push(format!(
            "{at}.maxLength: {max} leaves no room after the {}-character prefix {}",
            prefix.len(),
            quote(prefix)
        ));
    }
    if let Some(pattern) = &rule.pattern
        && !prefix.is_empty()
        && !pattern_may_start_with(pattern.as_str(), prefix)
    {
        out.push(format!(
            "{at}.pattern: {} cannot match a name that starts with the prefix {}",
            quote(pattern.as_str()),
            quote(prefix)
        ));
    }
}

/// A cheap contradiction check: a pattern that starts with a literal must agree with the
/// prefix on their common start. Patterns opening with a class or group are not judged.
fn pattern_may_start_with(pattern: &str, prefix: &str) -> bool {
    let literal: String = pattern
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    // A quantifier after the literal's last character (`ab?`) makes it optional.
    let rest = &pattern[literal.len()..];
    let literal = if rest.starts_with(['?', '*', '{', '|']) || pattern.contains('|') {
        ""
    } else {
        literal.as_str()
    };
    // Bytes, not characters: a prefix may hold non-ASCII (refused elsewhere, but this
    // must not panic on it).
    let n = literal.len().min(prefix.len());
    literal.as_bytes()[..n] == prefix.as_bytes()[..n]
}

fn git_sync_rule(out: &mut Vec<String>, git_sync: &GitSyncInjection) {
    let at = "spec.gitSync";
    if !is_dns_subdomain(&git_sync.secret_name) {
        out.push(format!(
            "{at}.secretName: {} is not a secret name",
            quote(&git_sync.secret_name)
        ));
    }
    if git_sync.containers.is_empty() {
        out.push(format!(
            "{at}.containers: must name at least one container (omit it for the default, git-sync)"
        ));
    }
    entries(
        out,
        &format!("{at}.containers"),
        &git_sync.containers,
        MAX_LABEL,
    );
    if !is_dns_label(&git_sync.volume_name) {
        out.push(format!(
            "{at}.volumeName: {} is not a DNS-1123 label",
            quote(&git_sync.volume_name)
        ));
    }
    if git_sync.mount_path.len() > MAX_PATH {
        out.push(format!(
            "{at}.mountPath: {} characters; at most {MAX_PATH}",
            git_sync.mount_path.chars().count()
        ));
    } else if !git_sync.mount_path.starts_with('/') || git_sync.mount_path.contains(':') {
        out.push(format!(
            "{at}.mountPath: {} is not an absolute path",
            quote(&git_sync.mount_path)
        ));
    }
}

/// `spec.secretUse`: every rule has a unique name, selects some secrets and lets some
/// service accounts use them; no rule repeats what an earlier one already grants.
///
/// `secrets.selector: {}` is allowed: it selects every secret, so the rule restricts
/// every secret in the namespace to its service accounts (and `default` never applies).
/// `podSelector: {}` selects every pod, as if it were left out.
fn secret_use_rules(out: &mut Vec<String>, rules: &SecretUseRules) {
    let at = "spec.secretUse.rules";
    at_most(out, at, &rules.rules, MAX_USE_RULES);
    let mut rule_names: HashMap<&str, usize> = HashMap::new();
    for (i, rule) in rules.rules.iter().enumerate() {
        let at = format!("{at}[{i}]");
        if rule.name.is_empty() {
            out.push(format!(
                "{at}.name: must not be empty (denials and reports name the rule)"
            ));
        } else if !is_dns_label(&rule.name) {
            out.push(format!(
                "{at}.name: {} is not a rule name (a DNS-1123 label: lowercase letters, digits \
                 and '-', starting and ending with a letter or digit, at most 63 characters)",
                quote(&rule.name)
            ));
        } else if let Some(first) = rule_names.get(rule.name.as_str()) {
            out.push(format!(
                "{at}.name: {} is also the name of spec.secretUse.rules[{first}]; rule names \
                 are unique in a policy",
                quote(&rule.name)
            ));
        } else {
            rule_names.insert(&rule.name, i);
        }
        selection(out, &format!("{at}.secrets"), &rule.secrets);
        service_accounts(
            out,
            &format!("{at}.serviceAccounts"),
            &rule.service_accounts,
        );
        if let Some(selector) = &rule.pod_selector
            && let Err(found) = Selector::compile(selector, &format!("{at}.podSelector"))
        {
            out.extend(found);
        }
    }
    repeated_grants(out, &rules.rules);
}

/// A rule's `secrets`: it selects something, by valid names listed once.
fn selection(out: &mut Vec<String>, at: &str, secrets: &SecretSelection) {
    if secrets.names.is_empty() && secrets.name_patterns.is_empty() && secrets.selector.is_none() {
        out.push(format!(
            "{at}: selects no secret; give it names, namePatterns or a selector \
             (selector: {{}} selects every secret)"
        ));
    }
    at_most(out, &format!("{at}.names"), &secrets.names, MAX_ENTRIES);
    let mut seen = HashSet::new();
    for (k, name) in secrets.names.iter().enumerate() {
        if !is_secret_name(name) {
            out.push(format!(
                "{at}.names[{k}]: {} is not a secret name",
                quote(name)
            ));
        } else if !seen.insert(name.as_str()) {
            out.push(format!(
                "{at}.names[{k}]: {} is listed twice in this rule",
                quote(name)
            ));
        }
    }
    // Each pattern compiled when the policy was parsed (and was refused there when longer
    // than MAX_PATTERN); here only their number and blank ones, which match no name.
    at_most(
        out,
        &format!("{at}.namePatterns"),
        &secrets.name_patterns,
        MAX_NAME_PATTERNS,
    );
    for (k, pattern) in secrets.name_patterns.iter().enumerate() {
        if pattern.as_str().trim().is_empty() {
            out.push(format!(
                "{at}.namePatterns[{k}]: must not be empty (it would match no secret name)"
            ));
        }
    }
    if let Some(selector) = &secrets.selector
        && let Err(found) = Selector::compile(selector, &format!("{at}.selector"))
    {
        out.extend(found);
    }
}

/// A rule's `serviceAccounts`: at least one, each a valid name listed once.
fn service_accounts(out: &mut Vec<String>, at: &str, accounts: &[String]) {
    if accounts.is_empty() {
        out.push(format!(
            "{at}: must name at least one service account; to let no pod use a secret, leave \
             it out of every rule with secretUse.default: Deny, or have its owner set the \
             annotation {ALLOWED_SERVICE_ACCOUNTS_ANNOTATION}"
        ));
    }
    at_most(out, at, accounts, MAX_ENTRIES);
    let mut seen = HashSet::new();
    for (k, account) in accounts.iter().enumerate() {
        if account.starts_with("system:serviceaccount:") {
            out.push(format!(
                "{at}[{k}]: {} is a user name; give the service account's name only (it is \
                 in the pod's namespace)",
                quote(account)
            ));
        } else if !is_service_account_name(account) {
            out.push(format!(
                "{at}[{k}]: {} is not a service account name (a DNS-1123 subdomain)",
                quote(account)
            ));
        } else if !seen.insert(account.as_str()) {
            out.push(format!(
                "{at}[{k}]: {} is listed twice in this rule",
                quote(account)
            ));
        }
    }
}

/// A secret a rule names that an earlier rule names too, for the same service accounts
/// and pod selector: the later grant adds nothing, which usually means a copied rule
/// whose service accounts were not changed.
fn repeated_grants(out: &mut Vec<String>, rules: &[SecretUseRule]) {
    let sets: Vec<(HashSet<&str>, HashSet<&str>)> = rules
        .iter()
        .map(|r| {
            (
                r.secrets.names.iter().map(String::as_str).collect(),
                r.service_accounts.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    for (j, later) in rules.iter().enumerate() {
        let same_users: Vec<usize> = (0..j)
            .filter(|&i| sets[i].1 == sets[j].1 && rules[i].pod_selector == later.pod_selector)
            .collect();
        if same_users.is_empty() {
            continue;
        }
        let mut reported = HashSet::new();
        for (k, name) in later.secrets.names.iter().enumerate() {
            // An invalid name is reported on its own.
            if !is_secret_name(name) || !reported.insert(name.as_str()) {
                continue;
            }
            if let Some(&i) = same_users
                .iter()
                .find(|&&i| sets[i].0.contains(name.as_str()))
            {
                out.push(format!(
                    "spec.secretUse.rules[{j}].secrets.names[{k}]: {} is already granted to the \
                     same service accounts by rule {} (spec.secretUse.rules[{i}])",
                    quote(name),
                    quote(&rules[i].name)
                ));
            }
        }
    }
}

/// With `default: Deny`, a secret the policy injects that no rule can select is refused
/// to every pod it is injected into: the injection could never work. A rule that selects
/// by labels might select it, so then nothing is said.
fn injections_denied_by_default(
    out: &mut Vec<String>,
    spec: &ProjectPolicySpec,
    secret_use: &SecretUseRules,
) {
    if secret_use.default != UseDefault::Deny
        || secret_use
            .rules
            .iter()
            .any(|r| r.secrets.selector.is_some())
    {
        return;
    }
    let selected = |name: &str| {
        secret_use.rules.iter().any(|r| {
            r.secrets.names.iter().any(|n| n == name)
                || r.secrets.name_patterns.iter().any(|p| p.is_match(name))
        })
    };
    let never = |at: &str, name: &str| {
        format!(
            "{at}: {} can never be injected: secretUse.default is Deny and no secretUse rule \
             selects it (add it to a rule's secrets.names, with the service accounts whose pods \
             get it)",
            quote(name)
        )
    };
    for (i, inj) in spec.image_pull_secrets.iter().enumerate() {
        // An invalid name is reported on its own.
        if is_dns_subdomain(&inj.secret_name) && !selected(&inj.secret_name) {
            out.push(never(
                &format!("spec.imagePullSecrets[{i}].secretName"),
                &inj.secret_name,
            ));
        }
    }
    if let Some(git_sync) = &spec.git_sync
        && is_dns_subdomain(&git_sync.secret_name)
        && !selected(&git_sync.secret_name)
    {
        out.push(never("spec.gitSync.secretName", &git_sync.secret_name));
    }
}

/// `spec.instanceSecrets`: each source a valid namespace and secret name, each copy a
/// valid secret name that no other entry provides too. (Whether the source's namespace
/// is one the server copies from is the server's setting: the controller reports it.)
///
/// A copy may well be a secret the policy injects (a pull secret or the git-sync key):
/// that is what instance secrets are for.
fn instance_secrets(out: &mut Vec<String>, wanted: &[InstanceSecret]) {
    let at = "spec.instanceSecrets";
    at_most(out, at, wanted, MAX_INSTANCE_SECRETS);
    let mut targets: HashMap<&str, usize> = HashMap::new();
    for (i, entry) in wanted.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let source = &entry.source;
        if !is_dns_label(&source.namespace) {
            out.push(format!(
                "{at}.source.namespace: {} is not a namespace name",
                quote(&source.namespace)
            ));
        }
        let source_ok = is_secret_name(&source.name);
        if !source_ok {
            out.push(format!(
                "{at}.source.name: {} is not a secret name",
                quote(&source.name)
            ));
        }
        // The copy's name: targetName, else the source's (reported above when invalid).
        let (field, valid) = match &entry.target_name {
            Some(name) => {
                let valid = is_secret_name(name);
                if !valid {
                    out.push(format!(
                        "{at}.targetName: {} is not a secret name",
                        quote(name)
                    ));
                }
                ("targetName", valid)
            }
            None => ("source.name", source_ok),
        };
        if !valid {
            continue;
        }
        let target = entry.target();
        match targets.get(target) {
            Some(first) => out.push(format!(
                "{at}.{field}: {} is already provided by spec.instanceSecrets[{first}]{}",
                quote(target),
                if entry.target_name.is_none() {
                    " (give one of them a targetName)"
                } else {
                    ""
                }
            )),
            None => {
                targets.insert(target, i);
            }
        }
    }
}

/// A list of at most `MAX_ENTRIES` non-blank strings of at most `max_len` characters.
fn entries(out: &mut Vec<String>, at: &str, entries: &[String], max_len: usize) {
    at_most(out, at, entries, MAX_ENTRIES);
    for (i, entry) in entries.iter().enumerate() {
        if entry.trim().is_empty() {
            out.push(format!("{at}[{i}]: must not be empty"));
        } else if entry.chars().count() > max_len {
            out.push(format!(
                "{at}[{i}]: {} characters; at most {max_len}",
                entry.chars().count()
            ));
        }
    }
}

/// The bound on a list's length the CRD schema has too (`maxItems`).
fn at_most<T>(out: &mut Vec<String>, at: &str, list: &[T], max: usize) {
    if list.len() > max {
        out.push(format!("{at}: {} entries; at most {max}", list.len()));
    }
}

fn registries(out: &mut Vec<String>, at: &str, patterns: &[String], max: usize) {
    at_most(out, at, patterns, max);
    for (i, pattern) in patterns.iter().enumerate() {
        if pattern.chars().count() > MAX_REGISTRY {
            out.push(format!(
                "{at}[{i}]: {} characters; at most {MAX_REGISTRY}",
                pattern.chars().count()
            ));
        } else if !crate::registry::is_valid_pattern(pattern) {
            out.push(format!(
                "{at}[{i}]: {} is not a registry host[:port] or *.domain[:port]",
                quote(pattern)
            ));
        }
    }
}

/// A policy value as a problem quotes it: clipped, so one long value cannot make the
/// problem list (a status message, a denial, a log line) long.
pub(crate) fn quote(value: &str) -> String {
    format!("{:?}", crate::admission::clip(value, MAX_QUOTED))
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A name the API server accepts for a Secret (a DNS-1123 subdomain, whose labels it does
/// not limit to 63 characters; [`is_dns_subdomain`] does): a secret-use rule can name
/// every secret that can exist. ServiceAccount names are checked the same way.
fn is_secret_name(s: &str) -> bool {
    is_service_account_name(s)
}

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests;
