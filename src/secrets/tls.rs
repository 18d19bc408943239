//! `kubernetes.io/tls` content checks (SPEC §3): `tls.crt` holds PEM certificates that
//! parse, `tls.key` one PEM private key that parses and matches the leaf (first)
//! certificate, the leaf's validity period passes the policy, and an optional `ca.crt`
//! parses.
//!
//! Messages name the field, a certificate's position and its dates only. They never quote
//! a parser's error text, because some errors (rustls-pki-types' PEM errors) carry the
//! offending input line.

use std::sync::Arc;

use pkcs8::ObjectIdentifier;
use rustls::sign::SigningKey;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::verdict_cache::{CAPACITY, VerdictCache};
use super::{Input, Violation, data_field};
use crate::policy::Severity;

const CRT: &str = "tls.crt";
const KEY: &str = "tls.key";
const CA: &str = "ca.crt";

/// Clock skew tolerated on notBefore: a certificate issued a moment ago by a machine whose
/// clock runs a little ahead of ours must not be refused as "not yet valid".
const NOT_BEFORE_SKEW: Duration = Duration::minutes(5);

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

const SUPPORTED_KEYS: &str = "use RSA (2048 to 8192 bits), ECDSA P-256/P-384 or Ed25519";

/// Verdicts of the key check ("tls.key loads as rustls would and matches the leaf"), the
/// costly part of a review (ring verifies an RSA key's consistency when it loads it). The
/// verdict reads neither the policy nor the clock; it depends on the `tls.key` bytes and
/// the leaf certificate's public key bits only, so those are the cache key (a certificate
/// renewed for the same key reuses the verdict). Dates are checked on every review.
static KEY_VERDICTS: VerdictCache<Option<Violation>> = VerdictCache::new(
    "kubernetes.io/tls: tls.key loads and matches the leaf",
    CAPACITY,
);

pub fn validate(input: &Input<'_>, out: &mut Vec<Violation>) {
    validate_with(input, &KEY_VERDICTS, out);
}

fn validate_with(
    input: &Input<'_>,
    key_verdicts: &VerdictCache<Option<Violation>>,
    out: &mut Vec<Violation>,
) {
    let leaf_der = match input.data(CRT) {
        Some(value) => read_certificates(CRT, value, out),
        // The API server refuses this before any webhook; reported for completeness.
        None => {
            out.push(Violation::deny(
                data_field(CRT),
                "required value is missing",
            ));
            None
        }
    };
    // read_certificates only returns a leaf that parsed, so `ok()` loses nothing here.
    let leaf = leaf_der
        .as_deref()
        .and_then(|der| X509Certificate::from_der(der).ok())
        .map(|(_, cert)| cert);
    if let Some(leaf) = &leaf {
        check_validity(input, leaf, out);
    }

    let key_finding = match (input.data(KEY), &leaf) {
        (Some(value), Some(leaf)) => {
            let leaf_key = leaf_public_key(leaf);
            key_verdicts.get_or_check(&[leaf_key, value], || check_key(value, leaf_key))
        }
        // Without a leaf there is nothing to match; a broken certificate is not memoised.
        (Some(value), None) => read_private_key(value)
            .err()
            .map(|message| Violation::deny(data_field(KEY), message)),
        (None, _) => Some(Violation::deny(
            data_field(KEY),
            "required value is missing",
        )),
    };
    out.extend(key_finding);

    if let Some(value) = input.data(CA) {
        read_certificates(CA, value, out);
    }
}

/// What is wrong with `tls.key` given the leaf's public key bits: a pure function of both.
fn check_key(value: &[u8], leaf_key: &[u8]) -> Option<Violation> {
    match read_private_key(value) {
        Ok(key) => key_mismatch(leaf_key, key.as_ref()),
        Err(message) => Some(Violation::deny(data_field(KEY), message)),
    }
}

/// The subject public key bits of the leaf, all the key check reads of the certificate.
fn leaf_public_key<'a>(leaf: &'a X509Certificate<'_>) -> &'a [u8] {
    &leaf.tbs_certificate.subject_pki.subject_public_key.data
}

/// Reports what is wrong with a PEM certificate bundle; returns the leaf's DER if it parsed.
fn read_certificates(name: &str, value: &[u8], out: &mut Vec<Violation>) -> Option<Vec<u8>> {
    let field = data_field(name);
    if is_blank(value) {
        out.push(Violation::deny(field, "must not be empty"));
        return None;
    }
    let mut certs = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(value) {
        match section {
            Ok((SectionKind::Certificate, der)) => certs.push(der),
            Ok(_) => {}
            Err(_) => {
                out.push(Violation::deny(field, "is not valid PEM"));
                return None;
            }
        }
    }
    if certs.is_empty() {
        let message = if pem_labels(value).iter().any(|l| l.ends_with("PRIVATE KEY")) {
            "holds a private key, not a certificate"
        } else {
            "no PEM certificate found"
        };
        out.push(Violation::deny(field, message));
        return None;
    }
    let mut leaf_ok = false;
    for (i, der) in certs.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok(([], _)) => leaf_ok |= i == 0,
            _ => out.push(Violation::deny(
                field.clone(),
                format!("certificate {} is not a valid X.509 certificate", i + 1),
            )),
        }
    }
    leaf_ok.then(|| certs.swap_remove(0))
}

/// Expiry rules of the policy, on the leaf certificate only (the one clients check first).
fn check_validity(input: &Input<'_>, leaf: &X509Certificate<'_>, out: &mut Vec<Violation>) {
    let rules = &input.rules.tls;
    let field = data_field(CRT);
    // An expired certificate is always worth a warning, even when the policy lets it in.
    let severity = if rules.reject_expired {
        Severity::Deny
    } else {
        Severity::Warn
    };
    let not_before = leaf.validity().not_before.to_datetime();
    let not_after = leaf.validity().not_after.to_datetime();
    if not_before - NOT_BEFORE_SKEW > input.now {
        let message = format!("certificate is not valid before {}", instant(not_before));
        out.push(Violation::with_severity(severity, field, message));
        return;
    }
    if not_after < input.now {
        let message = format!("certificate expired on {}", day(not_after));
        out.push(Violation::with_severity(severity, field, message));
        return;
    }
    let left = (not_after - input.now).whole_days();
    if left < i64::from(rules.min_days_remaining) {
        let message = format!(
            "certificate expires on {} (in {left} days); policy requires at least {} days",
            day(not_after),
            rules.min_days_remaining
        );
        out.push(Violation::deny(field, message));
    } else if left < i64::from(rules.warn_within_days) {
        let message = format!(
            "certificate expires soon: on {} (in {left} days; the policy warns within {} days)",
            day(not_after),
            rules.warn_within_days
        );
        out.push(Violation::warn(field, message));
    }
}

/// The key as rustls will load it when the certificate is served, or what is wrong with it.
fn read_private_key(value: &[u8]) -> Result<Arc<dyn SigningKey>, String> {
    if is_blank(value) {
        return Err("must not be empty".into());
    }
    if is_legacy_encrypted(value) {
        return Err("is passphrase-protected; a TLS secret needs the unencrypted key".into());
    }
    let labels = pem_labels(value);
    let plain = labels.iter().filter(|l| is_plain_key_label(l)).count();
    if plain == 0 {
        let message = if labels.contains(&"ENCRYPTED PRIVATE KEY") {
            "is an encrypted PKCS#8 key; a TLS secret needs the unencrypted key"
        } else if labels.contains(&"OPENSSH PRIVATE KEY") {
            "is an OpenSSH key; a TLS key must be PEM (PKCS#1, PKCS#8 or SEC1)"
        } else if labels.contains(&"CERTIFICATE") {
            "holds a certificate, not a private key"
        } else {
            "no PEM private key found"
        };
        return Err(message.into());
    }
    if plain > 1 {
        return Err(format!("holds {plain} private keys; expected one"));
    }
    let key = PrivateKeyDer::from_pem_slice(value).map_err(|_| "is not valid PEM".to_string())?;
    // The DER structure first, so a broken key is told apart from an unsupported one.
    let alg = inspect_key(&key)
        .ok_or_else(|| format!("is not a valid {} private key", format_name(&key)))?;
    rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| match alg {
        KeyAlg::Rsa { bits } if !(2048..=8192).contains(&bits) => {
            format!("RSA {bits}-bit keys are not supported; {SUPPORTED_KEYS}")
        }
        KeyAlg::Ec {
            curve: "P-256" | "P-384",
        }
        | KeyAlg::Rsa { .. }
        | KeyAlg::Ed25519 => format!("is not a valid {} private key", alg.describe()),
        KeyAlg::Ec { .. } => format!(
            "{} keys are not supported; {SUPPORTED_KEYS}",
            alg.describe()
        ),
        KeyAlg::Other => format!("uses an unsupported key algorithm; {SUPPORTED_KEYS}"),
    })
}

/// Compares the key's public half with the leaf certificate's subject public key bits.
fn key_mismatch(leaf_key: &[u8], key: &dyn SigningKey) -> Option<Violation> {
    // ring always knows the public key; without one there is nothing to compare.
    let spki = key.public_key()?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(&spki).ok()?;
    // Compare the key bits, not the whole SPKI DER: encoders differ in the algorithm
    // parameters (e.g. RSA's NULL) for one and the same key.
    (*spki.subject_public_key.data != *leaf_key).then(|| {
        Violation::deny(
            data_field(KEY),
            format!("does not match the certificate in {}", data_field(CRT)),
        )
    })
}

/// What a private key is, read from its DER structure (no crypto provider involved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyAlg {
    Rsa { bits: usize },
    Ec { curve: &'static str },
    Ed25519,
    Other,
}

impl KeyAlg {
    fn describe(self) -> String {
        match self {
            KeyAlg::Rsa { bits } => format!("RSA {bits}-bit"),
            KeyAlg::Ec { curve } => format!("ECDSA {curve}"),
            KeyAlg::Ed25519 => "Ed25519".into(),
            KeyAlg::Other => "unknown algorithm".into(),
        }
    }
}

/// Parses the DER of a PKCS#1, SEC1 or PKCS#8 key; `None` if it is malformed.
pub(super) fn inspect_key(key: &PrivateKeyDer<'_>) -> Option<KeyAlg> {
    match key {
        PrivateKeyDer::Pkcs1(k) => inspect_rsa(k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => inspect_ec(k.secret_sec1_der(), None),
        PrivateKeyDer::Pkcs8(k) => {
            let info = pkcs8::PrivateKeyInfo::try_from(k.secret_pkcs8_der()).ok()?;
            match info.algorithm.oid {
                OID_RSA => inspect_rsa(info.private_key),
                OID_EC => inspect_ec(info.private_key, info.algorithm.parameters_oid().ok()),
                OID_ED25519 => Some(KeyAlg::Ed25519),
                _ => Some(KeyAlg::Other),
            }
        }
        _ => None,
    }
}

fn inspect_rsa(der: &[u8]) -> Option<KeyAlg> {
    let key = pkcs1::RsaPrivateKey::try_from(der).ok()?;
    Some(KeyAlg::Rsa {
        bits: bit_length(key.modulus.as_bytes()),
    })
}

/// `outer` is the curve named by a PKCS#8 wrapper, which may leave it out of the SEC1 part.
fn inspect_ec(der: &[u8], outer: Option<ObjectIdentifier>) -> Option<KeyAlg> {
    let key = sec1::EcPrivateKey::try_from(der).ok()?;
    let curve = match key.parameters.and_then(|p| p.named_curve()).or(outer) {
        Some(OID_P256) => "P-256",
        Some(OID_P384) => "P-384",
        Some(OID_P521) => "P-521",
        _ => "(other curve)",
    };
    Some(KeyAlg::Ec { curve })
}

/// Bits of a big-endian unsigned integer, ignoring leading zero bytes.
pub(super) fn bit_length(bytes: &[u8]) -> usize {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    match bytes[start..].first() {
        Some(first) => (bytes.len() - start) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn format_name(key: &PrivateKeyDer<'_>) -> &'static str {
    match key {
        PrivateKeyDer::Pkcs1(_) => "PKCS#1 RSA",
        PrivateKeyDer::Sec1(_) => "SEC1 EC",
        _ => "PKCS#8",
    }
}

/// The labels of every `-----BEGIN …-----` line. Labels name formats, never content, but
/// callers still only compare them with known labels and never echo them.
pub(super) fn pem_labels(value: &[u8]) -> Vec<&str> {
    value
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?.trim();
            line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
        })
        .collect()
}

pub(super) fn is_plain_key_label(label: &str) -> bool {
    matches!(label, "RSA PRIVATE KEY" | "PRIVATE KEY" | "EC PRIVATE KEY")
}

/// OpenSSL's traditional encrypted PEM (`openssl genrsa -aes128`, `ssh-keygen -m PEM -N …`).
pub(super) fn is_legacy_encrypted(value: &[u8]) -> bool {
    value
        .split(|b| *b == b'\n')
        .any(|line| line.trim_ascii().starts_with(b"Proc-Type: 4,ENCRYPTED"))
}

pub(super) fn is_blank(value: &[u8]) -> bool {
    value.iter().all(u8::is_ascii_whitespace)
}

/// `2024-01-01`: dates of a certificate are public.
fn day(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).date().to_string()
}

/// `2026-11-23T16:03:49Z`, for notBefore, which is often later the same day.
fn instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let (h, m, s) = t.time().as_hms();
    format!("{}T{h:02}:{m:02}:{s:02}Z", t.date())
}

#[cfg(test)]
mod tests;
