//! Checks of a policy spec that parsing cannot express: values out of range, rules that
//! contradict each other, injections that could never work.
//!
//! Every problem is collected (not only the first), each with its field path, so that a
//! security team fixes a policy in one edit.

use std::collections::HashSet;

use super::spec::{GitSyncInjection, NameRule, ProjectPolicySpec};

/// RSA sizes outside this range are either broken (< 1024) or almost certainly a typo.
const RSA_BITS: std::ops::RangeInclusive<u32> = 1024..=16384;
/// The API server's limit for a Secret name (a DNS-1123 subdomain).
const MAX_NAME_LENGTH: u32 = 253;
const SSH_ALGORITHMS: [&str; 3] = ["ed25519", "ecdsa", "rsa"];

/// Every problem found in `spec`, each as `field.path: what is wrong`. Empty when the
/// spec is usable.
pub fn problems(spec: &ProjectPolicySpec) -> Vec<String> {
    let mut out = Vec::new();
    for (i, ns) in spec.namespaces.iter().enumerate() {
        if !is_dns_label(ns) {
            out.push(format!(
                "spec.namespaces[{i}]: {ns:?} is not a namespace name"
            ));
        }
    }
    let rules = &spec.secrets;
    non_empty_entries(&mut out, "spec.secrets.allowedTypes", &rules.allowed_types);
    non_empty_entries(
        &mut out,
        "spec.secrets.requiredLabels",
        &rules.required_labels,
    );
    non_empty_entries(
        &mut out,
        "spec.secrets.requiredAnnotations",
        &rules.required_annotations,
    );
    name_rule(&mut out, &rules.name);
    registries(
        &mut out,
        "spec.secrets.imagePull.allowedRegistries",
        &rules.image_pull.allowed_registries,
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
    for (i, alg) in ssh.allowed_algorithms.iter().enumerate() {
        if !SSH_ALGORITHMS.contains(&alg.as_str()) {
            out.push(format!(
                "spec.secrets.ssh.allowedAlgorithms[{i}]: {alg:?} is not one of ed25519, ecdsa, rsa"
            ));
        }
    }
    non_empty_entries(
        &mut out,
        "spec.secrets.ssh.gitSyncKeyFields",
        &ssh.git_sync_key_fields,
    );
    let mut seen = HashSet::new();
    for (i, inj) in spec.image_pull_secrets.iter().enumerate() {
        let at = format!("spec.imagePullSecrets[{i}]");
        if !is_dns_subdomain(&inj.secret_name) {
            out.push(format!(
                "{at}.secretName: {:?} is not a secret name",
                inj.secret_name
            ));
        } else if !seen.insert(inj.secret_name.as_str()) {
            out.push(format!(
                "{at}.secretName: {:?} is listed twice; give one entry all its registries",
                inj.secret_name
            ));
        }
        registries(&mut out, &format!("{at}.registries"), &inj.registries);
    }
    if let Some(git_sync) = &spec.git_sync {
        git_sync_rule(&mut out, git_sync);
    }
    out
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
    } else if !prefix.chars().all(allowed)
        || !prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        out.push(format!(
            "{at}.prefix: {prefix:?} can never start a secret name (lowercase letters, digits, '-' and '.', starting with a letter or digit)"
        ));
    } else if rule.forbid_dots && prefix.contains('.') {
        out.push(format!(
            "{at}.prefix: {prefix:?} contains '.', which forbidDots refuses in every name"
        ));
    }
    if let Some(max) = rule.max_length
        && prefix.len() as u64 >= u64::from(max)
    {
        out.push(format!(
            "{at}.maxLength: {max} leaves no room after the {}-character prefix {prefix:?}",
            prefix.len()
        ));
    }
    if let Some(pattern) = &rule.pattern
        && !prefix.is_empty()
        && !pattern_may_start_with(pattern.as_str(), prefix)
    {
        out.push(format!(
            "{at}.pattern: {:?} cannot match a name that starts with the prefix {prefix:?}",
            pattern.as_str()
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
    let n = literal.len().min(prefix.len());
    literal[..n] == prefix[..n]
}

fn git_sync_rule(out: &mut Vec<String>, git_sync: &GitSyncInjection) {
    let at = "spec.gitSync";
    if !is_dns_subdomain(&git_sync.secret_name) {
        out.push(format!(
            "{at}.secretName: {:?} is not a secret name",
            git_sync.secret_name
        ));
    }
    if git_sync.containers.is_empty() {
        out.push(format!(
            "{at}.containers: must name at least one container (omit it for the default, git-sync)"
        ));
    }
    non_empty_entries(out, &format!("{at}.containers"), &git_sync.containers);
    if !is_dns_label(&git_sync.volume_name) {
        out.push(format!(
            "{at}.volumeName: {:?} is not a DNS-1123 label",
            git_sync.volume_name
        ));
    }
    if !git_sync.mount_path.starts_with('/') || git_sync.mount_path.contains(':') {
        out.push(format!(
            "{at}.mountPath: {:?} is not an absolute path",
            git_sync.mount_path
        ));
    }
}

fn non_empty_entries(out: &mut Vec<String>, at: &str, entries: &[String]) {
    for (i, entry) in entries.iter().enumerate() {
        if entry.trim().is_empty() {
            out.push(format!("{at}[{i}]: must not be empty"));
        }
    }
}

fn registries(out: &mut Vec<String>, at: &str, patterns: &[String]) {
    for (i, pattern) in patterns.iter().enumerate() {
        if !crate::registry::is_valid_pattern(pattern) {
            out.push(format!(
                "{at}[{i}]: {pattern:?} is not a registry host[:port] or *.domain[:port]"
            ));
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests;
