//! `kubernetes.io/ssh-auth` and git-sync key checks (SPEC §3): the private key parses
//! (OpenSSH, or legacy PEM as `ssh-keygen -m PEM` writes it), is not a public key pasted
//! by mistake, is not passphrase-protected unless the policy allows it (git-sync cannot
//! prompt for one), uses an allowed algorithm and RSA size; an optional `known_hosts`
//! parses line by line.
//!
//! Messages carry line numbers, algorithm names and sizes only, never the text of a parser
//! error, so no part of a key can leak into a response or a log.

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use ssh_key::known_hosts::Entry;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, PrivateKey};

use super::tls::{self, KeyAlg};
use super::verdict_cache::{CAPACITY, VerdictCache};
use super::{Input, Violation, data_field};

const PRIVATE_KEY: &str = "ssh-privatekey";
const KNOWN_HOSTS: &str = "known_hosts";

/// What `allowedAlgorithms: []` means.
const ALL_ALGORITHMS: &[&str] = &["ed25519", "ecdsa", "rsa"];

/// More bad `known_hosts` lines than this are summarised in one violation, so a large
/// garbage file cannot blow up the response.
const MAX_LINE_VIOLATIONS: usize = 10;

const NOT_A_KEY: &str = "is not an SSH private key (expected OpenSSH or PEM format)";

/// What parsing a key found (`read_key`), memoised: a pure function of the field name (it
/// appears in one message) and the value, independent of the policy, whose passphrase,
/// algorithm and size rules run on every review.
static KEY_FACTS: VerdictCache<Result<KeyFacts, String>> =
    VerdictCache::new("ssh private key: what it is", CAPACITY);

pub fn validate(input: &Input<'_>, out: &mut Vec<Violation>) {
    match input.data(PRIVATE_KEY) {
        Some(value) => check_private_key(input, PRIVATE_KEY, value, &KEY_FACTS, out),
        // The API server refuses this before any webhook; reported for completeness.
        None => out.push(Violation::deny(
            data_field(PRIVATE_KEY),
            "required value is missing",
        )),
    }
    if let Some(value) = input.data(KNOWN_HOSTS) {
        check_known_hosts(value, out);
    }
}

/// Opaque secrets: the keys the policy names as git-sync key fields get the same checks as
/// `ssh-privatekey`; `known_hosts` is checked only in a secret that has such a key, since
/// elsewhere it is not ours to judge.
pub fn validate_git_sync_fields(input: &Input<'_>, out: &mut Vec<Violation>) {
    let fields = &input.rules.ssh.git_sync_key_fields;
    let mut found = false;
    for (i, name) in fields.iter().enumerate() {
        if fields[..i].contains(name) || name == KNOWN_HOSTS {
            continue;
        }
        if let Some(value) = input.data(name) {
            found = true;
            check_private_key(input, name, value, &KEY_FACTS, out);
        }
    }
    if !found {
        return;
    }
    if let Some(value) = input.data(KNOWN_HOSTS) {
        check_known_hosts(value, out);
    }
}

/// What the checks need to know about a private key: no part of it.
#[derive(Clone, Debug)]
struct KeyFacts {
    /// `ed25519`, `ecdsa`, `rsa`, `dsa`, …; `None` when encryption hides it.
    algorithm: Option<&'static str>,
    rsa_bits: Option<usize>,
    encrypted: bool,
}

fn check_private_key(
    input: &Input<'_>,
    name: &str,
    value: &[u8],
    key_facts: &VerdictCache<Result<KeyFacts, String>>,
    out: &mut Vec<Violation>,
) {
    let rules = &input.rules.ssh;
    let field = data_field(name);
    let facts = key_facts.get_or_check(&[name.as_bytes(), value], || read_key(name, value));
    let facts = match facts {
        Ok(facts) => facts,
        Err(message) => return out.push(Violation::deny(field, message)),
    };
    if facts.encrypted && !rules.allow_passphrase {
        out.push(Violation::deny(
            field.clone(),
            "is passphrase-protected; git-sync needs an unencrypted key",
        ));
    }
    if let Some(algorithm) = facts.algorithm {
        let allowed: Vec<&str> = if rules.allowed_algorithms.is_empty() {
            ALL_ALGORITHMS.to_vec()
        } else {
            rules
                .allowed_algorithms
                .iter()
                .map(String::as_str)
                .collect()
        };
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(algorithm)) {
            out.push(Violation::deny(
                field.clone(),
                format!(
                    "key algorithm {algorithm} is not allowed (allowed: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let too_small = facts
        .rsa_bits
        .filter(|bits| *bits < rules.min_rsa_bits as usize);
    if let Some(bits) = too_small {
        out.push(Violation::deny(
            field,
            format!(
                "RSA key is {bits} bits; policy requires at least {}",
                rules.min_rsa_bits
            ),
        ));
    }
}

/// Classifies the value; the error is the whole message for the field.
fn read_key(name: &str, value: &[u8]) -> Result<KeyFacts, String> {
    if tls::is_blank(value) {
        return Err("must not be empty".into());
    }
    let labels = tls::pem_labels(value);
    if labels.contains(&"OPENSSH PRIVATE KEY") {
        return read_openssh(value);
    }
    if labels.iter().any(|l| l.ends_with("PRIVATE KEY")) {
        return read_legacy_pem(value, &labels);
    }
    if is_public_key(value, &labels) {
        return Err(format!("is a public key; {name} needs the private key"));
    }
    Err(NOT_A_KEY.into())
}

/// An `ssh-keygen` `.pub` line, an RFC 4716 (`---- BEGIN SSH2 PUBLIC KEY ----`) block, or a
/// PEM public key: what people paste when they grab the wrong file.
fn is_public_key(value: &[u8], labels: &[&str]) -> bool {
    if labels.iter().any(|l| l.ends_with("PUBLIC KEY")) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let text = text.trim_start();
    let first = text.split_ascii_whitespace().next().unwrap_or("");
    text.starts_with("---- BEGIN SSH2 PUBLIC KEY ----")
        || ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
            .iter()
            .any(|p| first.starts_with(p))
}

fn read_openssh(value: &[u8]) -> Result<KeyFacts, String> {
    let text = std::str::from_utf8(value).map_err(|_| NOT_A_KEY.to_string())?;
    let key = PrivateKey::from_openssh(text.trim())
        .map_err(|_| "is not a valid OpenSSH private key (truncated or corrupted)".to_string())?;
    // The public half is stored in clear even in an encrypted key, so the algorithm and the
    // RSA size are known either way.
    let rsa_bits = match key.public_key().key_data() {
        KeyData::Rsa(rsa) => Some(tls::bit_length(rsa.n.as_bytes())),
        _ => None,
    };
    let algorithm = match key.algorithm() {
        Algorithm::Ed25519 => "ed25519",
        Algorithm::Ecdsa { .. } => "ecdsa",
        Algorithm::Rsa { .. } => "rsa",
        Algorithm::Dsa => "dsa",
        Algorithm::SkEd25519 => "sk-ed25519",
        Algorithm::SkEcdsaSha2NistP256 => "sk-ecdsa",
        // The name comes from the secret itself: do not echo it.
        _ => "unknown",
    };
    Ok(KeyFacts {
        algorithm: Some(algorithm),
        rsa_bits,
        encrypted: key.is_encrypted(),
    })
}

/// `BEGIN RSA|EC|DSA PRIVATE KEY` (traditional), `BEGIN [ENCRYPTED] PRIVATE KEY` (PKCS#8):
/// OpenSSH reads all of them through libcrypto, ssh-key reads none.
fn read_legacy_pem(value: &[u8], labels: &[&str]) -> Result<KeyFacts, String> {
    let by_label = |label: &str| match label {
        "RSA PRIVATE KEY" => Some("rsa"),
        "EC PRIVATE KEY" => Some("ecdsa"),
        "DSA PRIVATE KEY" => Some("dsa"),
        _ => None,
    };
    let first = labels.iter().find(|l| l.ends_with("PRIVATE KEY")).copied();
    let first = first.unwrap_or_default();
    if tls::is_legacy_encrypted(value) || first == "ENCRYPTED PRIVATE KEY" {
        return Ok(KeyFacts {
            algorithm: by_label(first),
            rsa_bits: None,
            encrypted: true,
        });
    }
    if first == "DSA PRIVATE KEY" {
        // No DSA parser here; DSA is refused unless a policy lists it, and OpenSSH itself
        // no longer accepts it by default.
        return Ok(KeyFacts {
            algorithm: Some("dsa"),
            rsa_bits: None,
            encrypted: false,
        });
    }
    let invalid = || "is not a valid PEM private key".to_string();
    if !tls::is_plain_key_label(first) {
        return Err(NOT_A_KEY.into());
    }
    let key = PrivateKeyDer::from_pem_slice(value).map_err(|_| invalid())?;
    let (algorithm, rsa_bits) = match tls::inspect_key(&key).ok_or_else(invalid)? {
        KeyAlg::Rsa { bits } => ("rsa", Some(bits)),
        KeyAlg::Ec { .. } => ("ecdsa", None),
        KeyAlg::Ed25519 => ("ed25519", None),
        KeyAlg::Other => ("unknown", None),
    };
    Ok(KeyFacts {
        algorithm: Some(algorithm),
        rsa_bits,
        encrypted: false,
    })
}

/// Every non-empty, non-comment line must be a known_hosts entry (markers such as
/// `@cert-authority` and hashed `|1|…` hosts included).
fn check_known_hosts(value: &[u8], out: &mut Vec<Violation>) {
    let field = data_field(KNOWN_HOSTS);
    let Ok(text) = std::str::from_utf8(value) else {
        out.push(Violation::deny(field, "is not valid UTF-8 text"));
        return;
    };
    let mut entries = 0;
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<Entry>() {
            Ok(_) => entries += 1,
            Err(_) => bad.push(i + 1),
        }
    }
    for line in bad.iter().take(MAX_LINE_VIOLATIONS) {
        out.push(Violation::deny(
            field.clone(),
            format!("line {line} is not a valid known_hosts entry"),
        ));
    }
    if bad.len() > MAX_LINE_VIOLATIONS {
        out.push(Violation::deny(
            field.clone(),
            format!(
                "{} more lines are not valid known_hosts entries",
                bad.len() - MAX_LINE_VIOLATIONS
            ),
        ));
    }
    if entries == 0 && bad.is_empty() {
        // Not fatal, but git-sync verifies host keys by default and would fail to connect.
        out.push(Violation::warn(field, "has no host keys"));
    }
}

#[cfg(test)]
mod tests;
