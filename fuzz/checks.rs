//! The properties every fuzz target checks, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the proptest run in `cargo test`
//! (`tests/fuzz_regressions.rs`), so a crash either finds is the same failure.
//!
//! Each check takes arbitrary bytes and panics only when a property breaks: no panic
//! inside secretgate, a 200 or 400 answer in JSON, no planted marker in a message, a
//! patch that applies to the pod it was built for and is not needed twice.
#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, LocalObjectReference, Pod, PodSpec, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secretgate::admission::{self, Context, Webhook};
use secretgate::policy::{
    GitSyncInjection, ProjectPolicySpec, PullSecretInjection, SecretRules, Snapshot, default_policy,
};
use secretgate::registry::{self, Registry, RegistryKey};
use secretgate::{pods, secrets};
use time::OffsetDateTime;

/// A fixed instant, so a run is reproducible.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).expect("valid timestamp")
}

/// A value no secretgate message contains unless it copied part of a secret.
pub const MARKER: &str = "SGMARKq7Zx";

/// The policy fuzzed input is reviewed under: every content rule on, registries
/// restricted, pull-secret and git-sync injections, in namespace `team-a`.
pub fn snapshot() -> Snapshot {
    let spec = ProjectPolicySpec {
        secrets: rules(),
        image_pull_secrets: vec![
            pull("regcred", &["registry.example.com:5000"]),
            pull("ghcr-cred", &["ghcr.io"]),
            pull("wild-cred", &["*.example.com"]),
            pull("hub-cred", &["docker.io"]),
            pull("all-cred", &[]),
        ],
        git_sync: Some(GitSyncInjection {
            secret_name: "git-ssh".into(),
            containers: vec!["git-sync".into()],
            volume_name: "git-secret".into(),
            mount_path: "/etc/git-secret".into(),
        }),
        // Secret use by name, pattern and label, so /validate-pods decides, refuses
        // and finds undecidable references.
        secret_use: Some(
            serde_json::from_str(
                r#"{"rules": [
                    {"name": "ci", "secrets": {"names": ["regcred", "git-ssh"]},
                     "serviceAccounts": ["default", "ci"]},
                    {"name": "wild", "secrets": {"namePatterns": ["w.*"]},
                     "serviceAccounts": ["builder"], "podSelector": {"matchLabels": {"a": "b"}}},
                    {"name": "prod", "secrets": {"selector": {"matchLabels": {"tier": "prod"}}},
                     "serviceAccounts": ["deployer"]}]}"#,
            )
            .expect("secretUse"),
        ),
        ..default_policy()
    };
    let mut snapshot = Snapshot::with_fallback("fuzz", spec);
    // hub-cred is named by the policy but missing: the warning path.
    for name in ["regcred", "ghcr-cred", "wild-cred", "all-cred", "git-ssh"] {
        snapshot.secrets.insert("team-a", name);
    }
    snapshot
}

fn pull(name: &str, registries: &[&str]) -> PullSecretInjection {
    PullSecretInjection {
        secret_name: name.into(),
        registries: registries.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn rules() -> SecretRules {
    let mut rules = default_policy().secrets;
    rules.basic_auth.require_username_and_password = true;
    rules.ssh.git_sync_key_fields = vec!["ssh".into()];
    rules.tls.min_days_remaining = 30;
    rules.image_pull.allowed_registries = vec!["ghcr.io".into(), "*.example.com".into()];
    rules
}

/// `admission::review` on `data` as a whole body, and on `data` as the object of an
/// otherwise valid review of each kind and operation, for every review webhook.
pub fn admission_review(data: &[u8]) {
    let snapshot = snapshot();
    let ctx = Context {
        policies: &snapshot,
        now: now(),
    };
    for webhook in [Webhook::Validate, Webhook::Mutate, Webhook::ValidatePods] {
        check_answer(webhook, data, &ctx);
    }
    // Valid JSON goes one level deeper: as the object (and old object) of a review.
    if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_err() {
        return;
    }
    let object = String::from_utf8_lossy(data);
    for (webhook, group, kind) in [
        (Webhook::Validate, "", "Secret"),
        (Webhook::Mutate, "", "Pod"),
        (Webhook::ValidatePods, "", "Pod"),
        (Webhook::ValidatePods, "apps", "Deployment"),
        (Webhook::ValidatePods, "batch", "CronJob"),
    ] {
        for operation in ["CREATE", "UPDATE", "DELETE"] {
            let body = format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"fuzz-uid","kind":{{"group":"{group}","version":"v1","kind":"{kind}"}},"resource":{{"group":"","version":"v1","resource":"x"}},"namespace":"team-a","operation":"{operation}","userInfo":{{}},"object":{object},"oldObject":{object}}}}}"#
            );
            check_answer(webhook, body.as_bytes(), &ctx);
        }
    }
}

/// What one review may say at most, whatever the input: the uid is echoed as sent, the
/// rest is capped (20 findings shown, each clipped).
const MAX_RESPONSE_BESIDE_UID: usize = 48 * 1024;

fn check_answer(webhook: Webhook, body: &[u8], ctx: &Context<'_>) {
    let answer = admission::review(webhook, body, ctx);
    let uid_len = answer.summary.uid.len();
    assert!(
        answer.body.len() <= MAX_RESPONSE_BESIDE_UID + 2 * uid_len,
        "a response of {} bytes",
        answer.body.len()
    );
    assert!(answer.summary.findings.len() <= admission::MAX_SHOWN);
    assert!(answer.summary.findings.len() <= answer.summary.finding_count);
    check_not_echoed(body, &answer);
    assert!(
        answer.http_status == 200 || answer.http_status == 400,
        "status {}",
        answer.http_status
    );
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("the answer is JSON");
    assert_eq!(json["kind"], "AdmissionReview");
    assert!(json["response"]["allowed"].is_boolean(), "response.allowed");
    if answer.http_status == 400 {
        assert_eq!(json["response"]["allowed"], false);
        assert_eq!(json["response"]["status"]["code"], 400);
    }
}

/// No 8-byte run of a Secret's data value reaches the response or the log summary,
/// unless the same bytes are in the request outside the data (a name, a key), are a
/// valid registry address named in a field path, or are word-like.
fn check_not_echoed(body: &[u8], answer: &admission::Answer) {
    let Ok(review) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let mut rest = String::from_utf8_lossy(body).into_owned();
    let mut values = Vec::new();
    for object in ["object", "oldObject"] {
        let Some(data) = review["request"][object]["data"].as_object() else {
            continue;
        };
        for encoded in data.values().filter_map(serde_json::Value::as_str) {
            rest = rest.replace(encoded, "");
            if let Ok(value) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                values.push(value);
            }
        }
    }
    if values.is_empty() {
        return;
    }
    let summary = &answer.summary;
    let response: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    // The response's strings decoded (its JSON escapes quotes), and the log summary.
    let mut said = String::new();
    for text in [
        &response["response"]["status"]["message"],
        &response["response"]["warnings"],
    ] {
        said.push_str(&format!(
            "\n{}",
            text.as_str()
                .map_or_else(|| text.to_string(), str::to_owned)
        ));
    }
    for v in &summary.findings {
        said.push_str(&format!("\n{v}"));
    }
    said.push_str(summary.findings_more.as_deref().unwrap_or(""));
    if let Some(error) = &answer.error {
        said.push_str(&format!("\n{error}"));
    }
    // A registry key that is a valid registry address is named on purpose (an address,
    // not a credential); nothing else may be.
    let said = without_registry_addresses(&said);
    for value in &values {
        for window in value.windows(8) {
            let Ok(text) = std::str::from_utf8(window) else {
                continue;
            };
            // Word-like runs (`registry`, `kubernetes.io/tls`) are secretgate's own
            // vocabulary too; planted random markers (tests/redaction.rs) cover them.
            // Quoted words too: a key that is a field name in another case (`"passWord"`)
            // is named on purpose.
            let word_like = text
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b".-/ _\"".contains(&b));
            if word_like || rest.contains(text) {
                continue;
            }
            assert!(
                !said.contains(text),
                "the answer echoes a data value: {text:?} in {said}"
            );
        }
    }
}

/// `text` without the `["host:port"]` segments that name a registry address secretgate
/// quotes on purpose (`RegistryKey::is_quotable`).
fn without_registry_addresses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[\"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("\"]") {
            Some(end)
                if RegistryKey::parse(&after[..end]).is_ok_and(|k| k.is_quotable())
                    && !after[..end].contains('\\') =>
            {
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("[\"");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The data keys each secret type's parser reads.
const SECRET_CASES: &[(&str, &[&str])] = &[
    (secrets::DOCKER_CONFIG_JSON, &[".dockerconfigjson"]),
    (secrets::DOCKER_CFG, &[".dockercfg"]),
    (secrets::TLS, &["tls.crt", "tls.key"]),
    (secrets::TLS, &["tls.crt"]),
    (secrets::TLS, &["tls.key"]),
    (secrets::SSH_AUTH, &["ssh-privatekey"]),
    (secrets::SSH_AUTH, &["ssh-privatekey", "known_hosts"]),
    (secrets::OPAQUE, &["ssh", "known_hosts"]),
    (secrets::BASIC_AUTH, &["username", "password"]),
];

/// `secrets::validate` on a Secret whose data holds `data` under each type's keys, and
/// the same with a marker spliced in: no message may quote the marker. (Docker config
/// keys are quoted only when they are plain lowercase registry addresses; the marker has
/// capitals, so not even a key may echo it.)
pub fn secret_parsers(data: &[u8]) {
    let rules = rules();
    let at = data.first().map_or(0, |b| usize::from(*b)) % (data.len() + 1);
    let mut planted = data[..at].to_vec();
    planted.extend_from_slice(MARKER.as_bytes());
    planted.extend_from_slice(&data[at..]);
    for (ty, keys) in SECRET_CASES {
        let _ = secrets::validate(&secret(ty, keys, data), &rules, now());
        let old = secret(ty, keys, b"");
        let _ = secrets::validate_update(&old, &secret(ty, keys, data), &rules, now());
        for v in secrets::validate(&secret(ty, keys, &planted), &rules, now()) {
            let text = format!("{}: {}", v.field, v.message);
            assert!(
                !text.contains(MARKER),
                "a message quotes the secret: {text}"
            );
        }
    }
}

fn secret(ty: &str, keys: &[&str], value: &[u8]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("fuzzed".into()),
            namespace: Some("team-a".into()),
            ..ObjectMeta::default()
        },
        type_: Some(ty.to_owned()),
        data: Some(
            keys.iter()
                .map(|k| ((*k).to_owned(), ByteString(value.to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

/// Image references and registry keys: no panic; an address parses again, matches
/// itself, and is a valid policy pattern.
pub fn registry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, second) = text.split_once('\n').unwrap_or((&text, ""));
    for candidate in [Registry::of_image(first), Registry::parse(first).ok()]
        .into_iter()
        .flatten()
    {
        let address = candidate.address();
        let again = Registry::parse(&address).expect("an address parses again");
        assert_eq!(again.address(), address, "address is stable");
        assert!(candidate.matches(&address), "{address} matches itself");
        assert!(
            registry::is_valid_pattern(&address),
            "{address} is a pattern"
        );
        let _ = candidate.matches(second);
    }
    let _ = registry::is_valid_pattern(first);
}

/// Pod mutation: a pod decoded from `data` as JSON, and a pod built from `data` by a
/// small generator (names, images, volumes that collide with what is injected). The
/// patch applies to the pod as sent, and the patched pod needs no further patch.
pub fn pod_mutate(data: &[u8]) {
    let snapshot = snapshot();
    if let Ok(pod) = serde_json::from_slice::<Pod>(data) {
        check_mutation(&snapshot, &pod);
    }
    check_mutation(&snapshot, &generated_pod(data));
}

fn check_mutation(snapshot: &Snapshot, pod: &Pod) {
    let ctx = pods::Context {
        policy: snapshot.for_namespace("team-a"),
        secrets: &snapshot.secrets,
        service_accounts: &snapshot.service_accounts,
        namespace: "team-a",
    };
    let first = pods::mutate(pod, &ctx);
    if first.patch.0.is_empty() {
        return;
    }
    let mut value = serde_json::to_value(pod).expect("a pod serialises");
    json_patch::patch(&mut value, &first.patch).expect("the patch applies to the pod as sent");
    let patched: Pod = serde_json::from_value(value).expect("the patched pod is a pod");
    let second = pods::mutate(&patched, &ctx);
    assert!(
        second.patch.0.is_empty(),
        "reinvocation patches again: {}",
        serde_json::to_string(&second.patch).unwrap_or_default()
    );
}

/// Reads choices from fuzz bytes; zeros when they run out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }
    fn pick<'s>(&mut self, options: &[&'s str]) -> &'s str {
        options[usize::from(self.byte()) % options.len()]
    }
    /// A short string taken from the input itself.
    fn raw(&mut self) -> String {
        let len = usize::from(self.byte() % 24).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(taken).into_owned()
    }
}

const NAMES: &[&str] = &["app", "git-sync", "sidecar", "git-sync", "a/b~c", ""];
const IMAGES: &[&str] = &[
    "nginx",
    "ghcr.io/org/app:1",
    "registry.example.com:5000/team/app@sha256:abc",
    "a.example.com/x",
    "localhost:5000/y",
    "docker.io/library/nginx",
    "[::1]:5000/z",
    "",
];
const SECRETS: &[&str] = &["regcred", "ghcr-cred", "git-ssh", "other", "all-cred"];
const VOLUMES: &[&str] = &["git-secret", "data", "git-secret-1", "x"];

fn generated_pod(data: &[u8]) -> Pod {
    let mut c = Choices(data);
    let container = |c: &mut Choices<'_>| {
        let mut mounts = Vec::new();
        for _ in 0..c.byte() % 3 {
            mounts.push(VolumeMount {
                name: c.pick(VOLUMES).to_owned(),
                mount_path: c
                    .pick(&["/etc/git-secret", "/data", "/etc/git-secret/ssh"])
                    .to_owned(),
                ..VolumeMount::default()
            });
        }
        let image = if c.byte() % 4 == 0 {
            c.raw()
        } else {
            c.pick(IMAGES).to_owned()
        };
        Container {
            name: c.pick(NAMES).to_owned(),
            image: Some(image),
            volume_mounts: (!mounts.is_empty()).then_some(mounts),
            ..Container::default()
        }
    };
    let containers = (0..1 + c.byte() % 3).map(|_| container(&mut c)).collect();
    let init: Vec<Container> = (0..c.byte() % 3).map(|_| container(&mut c)).collect();
    let pull: Vec<LocalObjectReference> = (0..c.byte() % 3)
        .map(|_| LocalObjectReference {
            name: c.pick(SECRETS).to_owned(),
        })
        .collect();
    let volumes: Vec<Volume> = (0..c.byte() % 3)
        .map(|_| Volume {
            name: c.pick(VOLUMES).to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(c.pick(SECRETS).to_owned()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        })
        .collect();
    let mut annotations = BTreeMap::new();
    if c.byte() % 3 == 0 {
        annotations.insert(
            pods::GIT_SYNC_CONTAINERS_ANNOTATION.to_owned(),
            format!("{},{}", c.pick(NAMES), c.raw()),
        );
    }
    Pod {
        metadata: ObjectMeta {
            name: Some("fuzzed".into()),
            namespace: Some("team-a".into()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            image_pull_secrets: (!pull.is_empty()).then_some(pull),
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// Base64 of `bytes`, for building reviews by hand.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
