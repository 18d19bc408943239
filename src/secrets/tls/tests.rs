use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SignatureAlgorithm,
};
use time::macros::datetime;

use super::*;
use crate::policy::SecretRules;
use crate::secrets::test_support::{ENCRYPTED_PKCS8, LEGACY_ENCRYPTED, PLANTED, RSA_1024_PKCS1};

// Throwaway test material generated for these tests with OpenSSL 3.0
// (`openssl genpkey`, `openssl pkcs8 -topk8 -v2 aes128`, `openssl genrsa -aes128
// -traditional`); it protects nothing. rcgen with ring cannot generate RSA or P-521 keys.
const RSA_2048_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQD8W8ClHRnHc1s+
7YOrcHk5nnH8xF5o3YRInenYPotO3YudbA+zt39VHeecQOnDsDQBsqBQzOsuMSj1
lO9MBtFo4AyfKg6b77Umi1Nu4s3p/RWC9ucV0+53hXZky9FWmIGVvsN14YYTK8Im
dMpuSZycF8k3pMwyJqt1sZr1OJw0IXFO7eb0SW0v13ErMZOMgTu95pyL0GQrNCt1
bQanOz7DzD74BZh+vYKxO115UT+BydqHGxnk4ZiEoR+Wt5YCLK991fwu4S7k11QI
gCn/CRNXkgTIrHzRyqJ1at2tcZgYlYzW8ziOct5pUdjhkGe5NYpJBlo8f2iJ7M0+
Jo1/x7PtAgMBAAECggEAJrnJyUy67QGFyhVWtFNRNwdahKh5uGvt5drdzMJkTFjx
GNpBWpnZH220YiUP+miqwmvv8BZSLMd8eps9UZRmRErFhRNGJKXXTa/pwMVrRfIB
gBR1h8L7ADpp3bPtTvWeRSV+BzPxiDWZ2J7phZ0kPEvmI/TVJQkMHMaBegoS5mjB
YOBmInOQgbuuDmOWiTn4ErlFtDiaHgaDiu/HRqesbVA4e8SFe7BdbkGu0dS1GMmr
dE7u/B2sNadA+p8PwYbF0WcoyUSAfZxPSvCykHswnBbf3C0k5aj0vTZAatt6kbt1
HWE1NOB8G34Pfyqa3NKpJI6dTgF51eHkDtDD5tl5wQKBgQD/gyewPEO3mUwkxobu
KA41lfDIojFX3J/7kiXystMEgXjBInoHydEUJ1/XbcARQ6+KH0AY+KVvUgb1CJ3n
DhYTjtCtsFxaREeve30PggvRpcERePujwXL5/6QiNwyDmTDmUZC/9e8CHDck5cOh
QLc0e9AKvZD2D6K+od1QLR+knQKBgQD81w50WVZ0Dz8eAzv4VEXIdhKUuI/Xxwp2
KEcZFeg2d3WhudMc1KTtCJg4CcwcT0pxclvFw6spV5OOrCLWa0e6cxtYgzh/WbMh
Hut+cfK3SgY0ETlv458zniXkZCV1F/gdWUNZqnf5N/JvBT23zDoQ4770u7kskcQD
V2jcmqIjkQKBgQCCKuPOMXViFDOpTIYyz68ld2R6Ib63fwr1k2fHs3gzBG5rHdBD
JXphJQn7asr9QJkt6WuzDQDirEwlCqW+rvtqLUh8I6t4xO4sJOH6Q4sX27R23UZ9
DzEu0SBh2d+DL0itHQJ7+KMxVQR2xKKcBKcQkr7Sqe4unJqROU7Q6JwFNQKBgGaL
gl1F7n5bwKmXfjcVVsgauyZ+RDirjV6mr09JR0jv4lGZYDoNNGa+WZ5AuvuwXOzu
CLKIzV6TGlF/FxIHqKvCC5E2hy9/XdtNAw3hgSM9bo6nfbgXhXYV6iBbTaXT9tlQ
XrR7IvV872J/qaxltBcth0ES8eNVqz3/sZPnU2NBAoGBALjlkESTWRX17UcR9qjA
56YN2SD9JtvnS7tjmP07gg/7V6QsAGA53TgJv0kC1w+01v3FH5oaMC3B8cKN2bUS
n/Jxf3dSqe10RP0rGQha2hdvHwhJDqwKVS+AY9TmExyjcGSbNF1ZOQq7fXscMs1M
WFa3ciBU1DbpAPj7h5kEGLQk
-----END PRIVATE KEY-----
";
const P521_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIB3f9T8Oy4KGgx1zz3
ZgwMP/edkFcyrCx1gCpOr1oJam75wRnXoc01rHX8wMawCjgsIeoIgCAOJMjoWcLd
QyW4RSuhgYkDgYYABAC4bt8HsRykvwxRsd6WB1qkHPZbMxbQnXqHoV3Lu2aXQftc
CDSJ0syHcrcgSxi0emvyHxMENeoLE0DCMMGIxwvBPwA26tcO6e922/bgC8y68eyN
t5/olQYjjdDvWEvs8dJRzqsKd0/fA1jjFy5qvqizl6FwLtTcWZWBtogN9TZt8Jfm
lA==
-----END PRIVATE KEY-----
";

const NOW: OffsetDateTime = datetime!(2026-11-23 18:00 UTC);
const YEAR_AGO: OffsetDateTime = datetime!(2025-11-23 00:00 UTC);
const NEXT_YEAR: OffsetDateTime = datetime!(2027-11-23 00:00 UTC);

fn params(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::new(vec![cn.to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = not_before;
    p.not_after = not_after;
    p
}

fn self_signed(key: &KeyPair, not_before: OffsetDateTime, not_after: OffsetDateTime) -> String {
    params("app.example.com", not_before, not_after)
        .self_signed(key)
        .unwrap()
        .pem()
}

fn generate(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

/// PKCS#1 or SEC1 from PKCS#8: the inner key of the PKCS#8 wrapper is exactly that.
fn unwrap_pkcs8(pkcs8_pem: &str, label: &str) -> String {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
    let info = pkcs8::PrivateKeyInfo::try_from(der.secret_pkcs8_der()).unwrap();
    pem(label, info.private_key)
}

fn secret(data: &[(&str, &str)]) -> Secret {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    Secret {
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `Deny data[tls.key]: …` lines, so a table states severity, field and message at once.
fn check(secret: &Secret, rules: &SecretRules, now: OffsetDateTime) -> Vec<String> {
    let input = Input::new(secret, rules, now);
    let mut out = Vec::new();
    validate(&input, &mut out);
    out.iter()
        .map(|v| format!("{:?} {v}", v.severity))
        .collect()
}

struct Case {
    name: &'static str,
    data: Vec<(&'static str, String)>,
    rules: SecretRules,
    now: OffsetDateTime,
    want: Vec<&'static str>,
}

fn case(name: &'static str, data: &[(&'static str, &str)], want: &[&'static str]) -> Case {
    Case {
        name,
        data: data.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        rules: SecretRules::default(),
        now: NOW,
        want: want.to_vec(),
    }
}

fn cases() -> Vec<Case> {
    let rsa = KeyPair::from_pem(RSA_2048_PKCS8).unwrap();
    let rsa_crt = self_signed(&rsa, YEAR_AGO, NEXT_YEAR);
    let rsa_pkcs1 = unwrap_pkcs8(RSA_2048_PKCS8, "RSA PRIVATE KEY");
    let p256 = generate(&PKCS_ECDSA_P256_SHA256);
    let p256_crt = self_signed(&p256, YEAR_AGO, NEXT_YEAR);
    let p256_key = p256.serialize_pem();
    let p256_sec1 = unwrap_pkcs8(&p256_key, "EC PRIVATE KEY");
    let p384 = generate(&PKCS_ECDSA_P384_SHA384);
    let ed = generate(&PKCS_ED25519);
    let other = generate(&PKCS_ECDSA_P256_SHA256);

    // A CA and a leaf it signed; tls.crt is the full chain, leaf first.
    let ca_key = generate(&PKCS_ECDSA_P256_SHA256);
    let mut ca_params = params("Test CA", YEAR_AGO, NEXT_YEAR);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_crt = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = generate(&PKCS_ECDSA_P256_SHA256);
    let leaf_crt = params("leaf.example.com", YEAR_AGO, NEXT_YEAR)
        .signed_by(&leaf_key, &issuer)
        .unwrap()
        .pem();
    let chain = format!("{leaf_crt}{ca_crt}");
    let leaf_pem = leaf_key.serialize_pem();

    let expired = self_signed(
        &p256,
        datetime!(2023-01-01 00:00 UTC),
        datetime!(2024-01-01 00:00 UTC),
    );
    let future = self_signed(
        &p256,
        datetime!(2027-01-01 00:00 UTC),
        datetime!(2028-01-01 00:00 UTC),
    );
    let just_issued = self_signed(&p256, NOW + Duration::minutes(2), NEXT_YEAR);
    let short = self_signed(&p256, YEAR_AGO, datetime!(2026-12-03 20:00 UTC));
    let not_der = pem("CERTIFICATE", PLANTED.as_bytes());
    // The first body line only: valid base64, DER cut short.
    let truncated: String = p256_key
        .lines()
        .take(2)
        .chain(["-----END PRIVATE KEY-----"])
        .collect::<Vec<_>>()
        .join("\n");

    let mut lenient = case(
        "expired, not rejected by policy",
        &[("tls.crt", &expired), ("tls.key", &p256_key)],
        &["Warn data[tls.crt]: certificate expired on 2024-01-01"],
    );
    lenient.rules.tls.reject_expired = false;
    let mut min_days = case(
        "expires before the policy's minimum",
        &[("tls.crt", &short), ("tls.key", &p256_key)],
        &[
            "Deny data[tls.crt]: certificate expires on 2026-12-03 (in 10 days); policy requires at least 30 days",
        ],
    );
    min_days.rules.tls.min_days_remaining = 30;
    let mut min_days_ok = case(
        "expires after the policy's minimum, within the default warning window",
        &[("tls.crt", &short), ("tls.key", &p256_key)],
        &[
            "Warn data[tls.crt]: certificate expires soon: on 2026-12-03 (in 10 days; the policy warns within 14 days)",
        ],
    );
    min_days_ok.rules.tls.min_days_remaining = 10;
    let mut outside_window = case(
        "expires after the policy's warning window",
        &[("tls.crt", &short), ("tls.key", &p256_key)],
        &[],
    );
    outside_window.rules.tls.warn_within_days = 10;
    let mut late = case(
        "checked a year later",
        &[("tls.crt", &rsa_crt), ("tls.key", RSA_2048_PKCS8)],
        &["Deny data[tls.crt]: certificate expired on 2027-11-23"],
    );
    late.now = datetime!(2028-01-01 00:00 UTC);

    vec![
        outside_window,
        case(
            "RSA, PKCS#8 key",
            &[("tls.crt", &rsa_crt), ("tls.key", RSA_2048_PKCS8)],
            &[],
        ),
        case(
            "RSA, PKCS#1 key",
            &[("tls.crt", &rsa_crt), ("tls.key", &rsa_pkcs1)],
            &[],
        ),
        case(
            "ECDSA P-256, PKCS#8 key",
            &[("tls.crt", &p256_crt), ("tls.key", &p256_key)],
            &[],
        ),
        case(
            "ECDSA P-256, SEC1 key",
            &[("tls.crt", &p256_crt), ("tls.key", &p256_sec1)],
            &[],
        ),
        case(
            "ECDSA P-384",
            &[
                ("tls.crt", &self_signed(&p384, YEAR_AGO, NEXT_YEAR)),
                ("tls.key", &p384.serialize_pem()),
            ],
            &[],
        ),
        case(
            "Ed25519",
            &[
                ("tls.crt", &self_signed(&ed, YEAR_AGO, NEXT_YEAR)),
                ("tls.key", &ed.serialize_pem()),
            ],
            &[],
        ),
        case(
            "leaf + CA chain and ca.crt",
            &[
                ("tls.crt", &chain),
                ("tls.key", &leaf_pem),
                ("ca.crt", &ca_crt),
            ],
            &[],
        ),
        case(
            "chain in the wrong order",
            &[
                ("tls.crt", &format!("{ca_crt}{leaf_crt}")),
                ("tls.key", &leaf_pem),
            ],
            &["Deny data[tls.key]: does not match the certificate in data[tls.crt]"],
        ),
        case(
            "key of another certificate",
            &[("tls.crt", &p256_crt), ("tls.key", &other.serialize_pem())],
            &["Deny data[tls.key]: does not match the certificate in data[tls.crt]"],
        ),
        case(
            "RSA certificate, ECDSA key",
            &[("tls.crt", &rsa_crt), ("tls.key", &p256_key)],
            &["Deny data[tls.key]: does not match the certificate in data[tls.crt]"],
        ),
        case(
            "expired",
            &[("tls.crt", &expired), ("tls.key", &p256_key)],
            &["Deny data[tls.crt]: certificate expired on 2024-01-01"],
        ),
        lenient,
        late,
        case(
            "not yet valid",
            &[("tls.crt", &future), ("tls.key", &p256_key)],
            &["Deny data[tls.crt]: certificate is not valid before 2027-01-01T00:00:00Z"],
        ),
        case(
            "issued by a clock slightly ahead",
            &[("tls.crt", &just_issued), ("tls.key", &p256_key)],
            &[],
        ),
        min_days,
        min_days_ok,
        case(
            "garbage",
            &[("tls.crt", "not a certificate"), ("tls.key", "not a key")],
            &[
                "Deny data[tls.crt]: no PEM certificate found",
                "Deny data[tls.key]: no PEM private key found",
            ],
        ),
        case(
            "empty values",
            &[("tls.crt", ""), ("tls.key", " \n")],
            &[
                "Deny data[tls.crt]: must not be empty",
                "Deny data[tls.key]: must not be empty",
            ],
        ),
        case(
            "missing values",
            &[],
            &[
                "Deny data[tls.crt]: required value is missing",
                "Deny data[tls.key]: required value is missing",
            ],
        ),
        case(
            "certificate given as key",
            &[("tls.crt", &p256_crt), ("tls.key", &p256_crt)],
            &["Deny data[tls.key]: holds a certificate, not a private key"],
        ),
        case(
            "key given as certificate",
            &[("tls.crt", &p256_key), ("tls.key", &p256_key)],
            &["Deny data[tls.crt]: holds a private key, not a certificate"],
        ),
        case(
            "encrypted PKCS#8 key",
            &[("tls.crt", &p256_crt), ("tls.key", ENCRYPTED_PKCS8)],
            &[
                "Deny data[tls.key]: is an encrypted PKCS#8 key; a TLS secret needs the unencrypted key",
            ],
        ),
        case(
            "legacy encrypted PEM key",
            &[("tls.crt", &rsa_crt), ("tls.key", LEGACY_ENCRYPTED)],
            &[
                "Deny data[tls.key]: is passphrase-protected; a TLS secret needs the unencrypted key",
            ],
        ),
        case(
            "OpenSSH key",
            &[
                ("tls.crt", &p256_crt),
                (
                    "tls.key",
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n",
                ),
            ],
            &[
                "Deny data[tls.key]: is an OpenSSH key; a TLS key must be PEM (PKCS#1, PKCS#8 or SEC1)",
            ],
        ),
        case(
            "two keys",
            &[
                ("tls.crt", &p256_crt),
                ("tls.key", &format!("{p256_key}{p256_sec1}")),
            ],
            &["Deny data[tls.key]: holds 2 private keys; expected one"],
        ),
        case(
            "truncated key",
            &[("tls.crt", &p256_crt), ("tls.key", &truncated)],
            &["Deny data[tls.key]: is not a valid PKCS#8 private key"],
        ),
        case(
            "RSA 1024 key",
            &[("tls.crt", &rsa_crt), ("tls.key", RSA_1024_PKCS1)],
            &[
                "Deny data[tls.key]: RSA 1024-bit keys are not supported; use RSA (2048 to 8192 bits), ECDSA P-256/P-384 or Ed25519",
            ],
        ),
        case(
            "P-521 key",
            &[("tls.crt", &p256_crt), ("tls.key", P521_PKCS8)],
            &[
                "Deny data[tls.key]: ECDSA P-521 keys are not supported; use RSA (2048 to 8192 bits), ECDSA P-256/P-384 or Ed25519",
            ],
        ),
        case(
            "certificate that is not DER",
            &[("tls.crt", &not_der), ("tls.key", &p256_key)],
            &["Deny data[tls.crt]: certificate 1 is not a valid X.509 certificate"],
        ),
        case(
            "bad second certificate",
            &[
                ("tls.crt", &format!("{p256_crt}{not_der}")),
                ("tls.key", &p256_key),
            ],
            &["Deny data[tls.crt]: certificate 2 is not a valid X.509 certificate"],
        ),
        case(
            "broken PEM armour",
            &[
                ("tls.crt", &format!("-----BEGIN CERTIFICATE {PLANTED}\n")),
                (
                    "tls.key",
                    &format!(
                        "-----BEGIN PRIVATE KEY-----\n{PLANTED}!!\n-----END PRIVATE KEY-----\n"
                    ),
                ),
            ],
            &[
                "Deny data[tls.crt]: is not valid PEM",
                "Deny data[tls.key]: is not valid PEM",
            ],
        ),
        case(
            "bad ca.crt",
            &[
                ("tls.crt", &p256_crt),
                ("tls.key", &p256_key),
                ("ca.crt", PLANTED),
            ],
            &["Deny data[ca.crt]: no PEM certificate found"],
        ),
        case(
            "empty ca.crt",
            &[
                ("tls.crt", &p256_crt),
                ("tls.key", &p256_key),
                ("ca.crt", ""),
            ],
            &["Deny data[ca.crt]: must not be empty"],
        ),
    ]
}

#[test]
fn table() {
    for c in cases() {
        let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            check(&secret(&data), &c.rules, c.now),
            c.want,
            "case {:?}",
            c.name
        );
    }
}

/// No violation quotes any part of a value: every 16-character window of every
/// non-armour line of every input is looked for in every field and message.
#[test]
fn messages_never_contain_secret_material() {
    for c in cases() {
        let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let text = check(&secret(&data), &c.rules, c.now).join("\n");
        assert!(!text.contains("PLANTED"), "case {:?}: {text}", c.name);
        for (_, value) in &c.data {
            for line in value.lines().filter(|l| !l.starts_with("-----")) {
                let chars: Vec<char> = line.chars().collect();
                for w in chars.windows(16) {
                    let w: String = w.iter().collect();
                    assert!(!text.contains(&w), "case {:?} leaks {w:?}: {text}", c.name);
                }
            }
        }
    }
}

fn check_with(
    secret: &Secret,
    rules: &SecretRules,
    now: OffsetDateTime,
    cache: &VerdictCache<Option<Violation>>,
) -> Vec<String> {
    let input = Input::new(secret, rules, now);
    let mut out = Vec::new();
    validate_with(&input, cache, &mut out);
    out.iter()
        .map(|v| format!("{:?} {v}", v.severity))
        .collect()
}

/// Every case, cold (no cache) and then twice through one cache: the second pass is
/// answered from the cache alone, and a verdict cached under one case's policy and
/// clock is right under the next (the table reuses keys across expiry rules and times).
#[test]
fn cached_verdicts_equal_cold_checks() {
    let cold = VerdictCache::new("test", 0);
    let cache = VerdictCache::new("test", CAPACITY);
    let cases = cases();
    for pass in 0..2 {
        let misses = cache.stats().1;
        for c in &cases {
            let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let secret = secret(&data);
            let want = check_with(&secret, &c.rules, c.now, &cold);
            assert_eq!(want, c.want, "case {:?} cold", c.name);
            let got = check_with(&secret, &c.rules, c.now, &cache);
            assert_eq!(got, want, "case {:?}, pass {pass}", c.name);
        }
        if pass == 1 {
            assert_eq!(cache.stats().1, misses, "the second pass only hits");
        }
    }
    let (hits, misses, len) = cache.stats();
    assert!(
        hits > misses && len > 10,
        "{hits} hits, {misses} misses, {len} entries"
    );
}

/// A valid certificate's verdict, cached, does not outlive the certificate: later
/// clocks and stricter or more lenient policies see the dates afresh.
#[test]
fn a_cached_verdict_does_not_freeze_dates() {
    let cache = VerdictCache::new("test", 8);
    let key = KeyPair::from_pem(RSA_2048_PKCS8).unwrap();
    let crt = self_signed(&key, YEAR_AGO, NEXT_YEAR);
    let s = secret(&[("tls.crt", &crt), ("tls.key", RSA_2048_PKCS8)]);
    let rules = SecretRules::default();
    assert!(check_with(&s, &rules, NOW, &cache).is_empty());
    let later = datetime!(2028-01-01 00:00 UTC);
    let expired = ["Deny data[tls.crt]: certificate expired on 2027-11-23"];
    assert_eq!(check_with(&s, &rules, later, &cache), expired);
    let mut lenient = rules.clone();
    lenient.tls.reject_expired = false;
    let warned = ["Warn data[tls.crt]: certificate expired on 2027-11-23"];
    assert_eq!(check_with(&s, &lenient, later, &cache), warned);
    let mut strict = rules.clone();
    strict.tls.min_days_remaining = 400;
    let got = check_with(&s, &strict, NOW, &cache);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("policy requires at least 400 days"),
        "{got:?}"
    );
    assert_eq!(cache.stats(), (3, 1, 1));
}

/// What the cache keeps after every case: no 16-character window of a value's text,
/// no 8-byte window of a decoded key or certificate.
#[test]
fn cached_verdicts_hold_no_secret_material() {
    let cache = VerdictCache::new("test", CAPACITY);
    let cases = cases();
    let mut ders = Vec::new();
    for c in &cases {
        let data: Vec<(&str, &str)> = c.data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        check_with(&secret(&data), &c.rules, c.now, &cache);
        for (_, value) in &c.data {
            for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(value.as_bytes()) {
                ders.extend(section.ok().map(|(_, der)| der));
            }
        }
    }
    let dump = cache.dump();
    assert!(cache.stats().2 > 10 && !ders.is_empty());
    let text = String::from_utf8_lossy(&dump);
    for c in &cases {
        for (_, value) in &c.data {
            for line in value.lines().filter(|l| !l.starts_with("-----")) {
                let chars: Vec<char> = line.chars().collect();
                for w in chars.windows(16) {
                    let w: String = w.iter().collect();
                    assert!(!text.contains(&w), "case {:?}: cache holds {w:?}", c.name);
                }
            }
        }
    }
    for der in &ders {
        for w in der.windows(8) {
            assert!(
                !dump.windows(8).any(|d| d == w),
                "cache holds DER bytes {w:?}"
            );
        }
    }
}

#[test]
fn bit_length_ignores_leading_zeros() {
    assert_eq!(bit_length(&[]), 0);
    assert_eq!(bit_length(&[0, 0]), 0);
    assert_eq!(bit_length(&[0, 0x80, 0]), 16);
    assert_eq!(bit_length(&[0x01, 0xff]), 9);
}

fn fixture(name: &str) -> Secret {
    let path = format!(
        "{}/../shared/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let review: kube::core::admission::AdmissionReview<Secret> =
        serde_json::from_slice(&bytes).unwrap();
    review.request.unwrap().object.unwrap()
}

/// The recorded API server requests, with the default policy. `now` is after the
/// fixtures' certificates were issued (2026-11-23 16:03 UTC).
#[test]
fn recorded_fixtures() {
    let expired = "Deny data[tls.crt]: certificate expired on 2024-01-01";
    let mismatch = "Deny data[tls.key]: does not match the certificate in data[tls.crt]";
    let table: &[(&str, &[&str])] = &[
        ("secret-create-tls-ecdsa-pkcs8.json", &[]),
        ("secret-create-tls-ecdsa-sec1.json", &[]),
        ("secret-create-tls-rsa-pkcs1.json", &[]),
        ("secret-create-tls-rsa-pkcs8.json", &[]),
        ("secret-create-tls-fullchain-with-ca.json", &[]),
        ("secret-create-tls-expired.json", &[expired]),
        ("secret-create-tls-mismatched-key.json", &[mismatch]),
        (
            "secret-create-tls-garbage-cert.json",
            &[
                "Deny data[tls.crt]: no PEM certificate found",
                "Deny data[tls.key]: no PEM private key found",
            ],
        ),
    ];
    let rules = SecretRules::default();
    for (name, want) in table {
        assert_eq!(check(&fixture(name), &rules, NOW), *want, "{name}");
    }
}
