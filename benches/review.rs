//! Micro-benchmarks of the request path without the network: secret validation per
//! type, pod patch building, and a whole review (decode → evaluate → encode) next to the
//! echo ceiling (envelope decode + encode only).
//!
//! `cargo bench --bench review` for figures; `cargo test --benches` runs each once.

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::admission::AdmissionReview;
use secretgate::admission::{self, Context, Webhook};
use secretgate::policy::{
    GitSyncInjection, ProjectPolicySpec, PullSecretInjection, SecretRules, Snapshot,
};
use secretgate::{pods, secrets};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/admission")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn object<K: kube::Resource + serde::de::DeserializeOwned>(name: &str) -> K {
    let review: AdmissionReview<K> = serde_json::from_slice(&fixture(name)).expect("fixture");
    review.request.and_then(|r| r.object).expect("object")
}

/// team-a's policy from the load benchmark: pull secrets by registry and git-sync.
fn team_policy() -> Snapshot {
    let spec = ProjectPolicySpec {
        image_pull_secrets: vec![
            PullSecretInjection {
                secret_name: "regcred".into(),
                registries: vec!["registry.example.com:5000".into(), "*.example.com".into()],
            },
            PullSecretInjection {
                secret_name: "ghcr-cred".into(),
                registries: vec!["ghcr.io".into()],
            },
        ],
        git_sync: Some(GitSyncInjection {
            secret_name: "git-ssh".into(),
            containers: vec!["git-sync".into()],
            volume_name: "git-secret".into(),
            mount_path: "/etc/git-secret".into(),
        }),
        ..ProjectPolicySpec::default()
    };
    let mut snapshot = Snapshot::with_fallback("team-a", spec);
    for name in ["regcred", "ghcr-cred", "git-ssh"] {
        snapshot.secrets.insert("team-a", name);
    }
    snapshot
}

const SECRETS: &[(&str, &str)] = &[
    ("opaque", "secret-create-generic-from-literal.json"),
    (
        "dockerconfigjson",
        "secret-create-dockerconfigjson-valid.json",
    ),
    ("tls_rsa", "secret-create-tls-rsa-pkcs8.json"),
    ("tls_ecdsa", "secret-create-tls-ecdsa-pkcs8.json"),
    ("ssh_ed25519", "secret-create-ssh-auth-ed25519.json"),
    ("ssh_rsa_pem", "secret-create-ssh-auth-rsa-pem-legacy.json"),
    ("basic_auth", "secret-create-basic-auth.json"),
];

fn validate_per_type(c: &mut Criterion) {
    let rules = SecretRules::default();
    let now = time::OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("validate");
    for (name, file) in SECRETS {
        let secret: Secret = object(file);
        group.bench_function(*name, |b| {
            b.iter(|| secrets::validate(black_box(&secret), &rules, now))
        });
    }
    group.finish();
}

/// `secret` with `data[key]` made unique by `n`: a first line of 24 spaces and tabs that
/// spell `n` in binary, which every key parser skips (PEM readers ignore text outside a
/// section, OpenSSH keys are trimmed), so the verdict is the same and its cost too.
fn unique(secret: &Secret, key: &str, n: u32) -> Secret {
    let mut secret = secret.clone();
    let value = secret
        .data
        .as_mut()
        .and_then(|d| d.get_mut(key))
        .expect("key field");
    let mut prefix: Vec<u8> = (0..24)
        .map(|bit| if n >> bit & 1 == 1 { b'\t' } else { b' ' })
        .collect();
    prefix.push(b'\n');
    value.0.splice(0..0, prefix);
    secret
}

/// The key-check verdict cache (issue 20). Warm: the same secret again, as Argo CD, Flux
/// and server-side dry-run send it (a cache hit after the first iteration). Cold: a unique
/// secret every iteration (see `unique`), so the whole key check runs, its verdict is
/// inserted, and once the cache is full the oldest entry is evicted; building the unique
/// secret is outside the timing. `sha256_*`: ring's SHA-256 over the key value alone, the
/// bulk of what the cache digests.
fn verdict_cache(c: &mut Criterion) {
    let rules = SecretRules::default();
    let now = time::OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("verdict_cache");
    for (name, file, key) in [
        ("tls_rsa", "secret-create-tls-rsa-pkcs8.json", "tls.key"),
        ("tls_ecdsa", "secret-create-tls-ecdsa-pkcs8.json", "tls.key"),
        (
            "ssh_ed25519",
            "secret-create-ssh-auth-ed25519.json",
            "ssh-privatekey",
        ),
        (
            "ssh_rsa_pem",
            "secret-create-ssh-auth-rsa-pem-legacy.json",
            "ssh-privatekey",
        ),
    ] {
        let secret: Secret = object(file);
        // The unique variants are checked alike: the cold rows measure the same work.
        let want = secrets::validate(&secret, &rules, now);
        assert!(want.is_empty(), "{name}: {want:?}");
        assert_eq!(
            secrets::validate(&unique(&secret, key, 0xa5a5), &rules, now),
            want
        );
        group.bench_function(format!("{name}_warm"), |b| {
            b.iter(|| secrets::validate(black_box(&secret), &rules, now))
        });
        // The cold rows' harness cost (a secret cloned in the setup, dropped in the
        // timing) without their key check: the same secret, cloned, so every check hits.
        group.bench_function(format!("{name}_warm_cloned"), |b| {
            b.iter_batched(
                || secret.clone(),
                |s| secrets::validate(black_box(&s), &rules, now),
                BatchSize::SmallInput,
            )
        });
        let mut n = 0u32;
        group.bench_function(format!("{name}_cold"), |b| {
            b.iter_batched(
                || {
                    n = n.wrapping_add(1);
                    unique(&secret, key, n)
                },
                |s| secrets::validate(black_box(&s), &rules, now),
                BatchSize::SmallInput,
            )
        });
        let value = secret.data.as_ref().and_then(|d| d.get(key)).expect("key");
        group.bench_function(format!("sha256_{name}_key_{}_bytes", value.0.len()), |b| {
            b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(&value.0)))
        });
    }
    group.finish();
}

fn mutate_pods(c: &mut Criterion) {
    let snapshot = team_policy();
    let policy = snapshot.for_namespace("team-a");
    let ctx = pods::Context {
        policy,
        secrets: &snapshot.secrets,
        service_accounts: &snapshot.service_accounts,
        namespace: "team-a",
    };
    let mut group = c.benchmark_group("mutate");
    for (name, file) in [
        ("nothing_to_do", "pod-create-kubectl-run-nginx.json"),
        ("pull_secret", "pod-create-private-registry-with-port.json"),
        ("git_sync", "pod-create-git-sync-container.json"),
    ] {
        let pod: Pod = object(file);
        group.bench_function(name, |b| b.iter(|| pods::mutate(black_box(&pod), &ctx)));
    }
    group.finish();
}

fn whole_review(c: &mut Criterion) {
    let snapshot = team_policy();
    let now = time::OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("review");
    for (name, webhook, file) in [
        (
            "secret_opaque",
            Webhook::Validate,
            "secret-create-generic-from-literal.json",
        ),
        (
            "secret_tls_rsa",
            Webhook::Validate,
            "secret-create-tls-rsa-pkcs8.json",
        ),
        (
            "pod_git_sync",
            Webhook::Mutate,
            "pod-create-git-sync-container.json",
        ),
        (
            "pod_kubectl_run",
            Webhook::Mutate,
            "pod-create-kubectl-run-nginx.json",
        ),
    ] {
        let body = fixture(file);
        group.bench_function(name, |b| {
            b.iter(|| {
                let ctx = Context {
                    policies: &snapshot,
                    now,
                };
                admission::review(webhook, black_box(&body), &ctx)
            })
        });
        group.bench_function(format!("{name}_echo"), |b| {
            b.iter(|| admission::echo(black_box(&body)))
        });
    }
    group.finish();
}

/// team-a's policy with secret-use rules of each kind (names, a pattern, a label
/// selector), every secret the fixtures use known with labels, as in cluster mode.
fn secret_use_policy() -> Snapshot {
    let base = team_policy();
    let mut spec = (*base.for_namespace("team-a").spec).clone();
    spec.secret_use = Some(
        serde_json::from_value(serde_json::json!({
            "rules": [
                {"name": "ci-only", "secrets": {"names": ["deploy-key"]},
                 "serviceAccounts": ["ci-runner"]},
                {"name": "pull", "secrets": {"namePatterns": [".*-cred", "regcred"]},
                 "serviceAccounts": ["default", "builder"]},
                {"name": "prod", "secrets": {"selector": {"matchLabels": {"tier": "prod"}}},
                 "serviceAccounts": ["deployer"]},
            ]
        }))
        .expect("secretUse"),
    );
    let mut snapshot = Snapshot::with_fallback("team-a", spec);
    for name in [
        "regcred",
        "ghcr-cred",
        "git-ssh",
        "deploy-key",
        "app-config",
    ] {
        let meta = secretgate::policy::SecretMeta {
            labels: [("tier".to_owned(), "dev".to_owned())].into(),
            allowed_service_accounts: None,
        };
        snapshot.secrets.insert_meta("team-a", name, meta);
    }
    snapshot
}

/// Whole reviews of the secret-use webhook (`/validate-pods`) next to the mutation of the
/// same pod: the budget is the mutation's.
fn secret_use(c: &mut Criterion) {
    let snapshot = secret_use_policy();
    let now = time::OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("secret_use");
    for (name, file) in [
        ("pod_git_sync", "pod-create-git-sync-container.json"),
        ("pod_kubectl_run", "pod-create-kubectl-run-nginx.json"),
        (
            "pod_existing_pull_secrets",
            "pod-create-existing-imagepullsecrets.json",
        ),
    ] {
        let body = fixture(file);
        for (what, webhook) in [
            ("validate", Webhook::ValidatePods),
            ("mutate", Webhook::Mutate),
        ] {
            group.bench_function(format!("{name}_{what}"), |b| {
                b.iter(|| {
                    let ctx = Context {
                        policies: &snapshot,
                        now,
                    };
                    admission::review(webhook, black_box(&body), &ctx)
                })
            });
        }
    }
    group.finish();
}

/// The pull guarantee on `/validate-pods`: the same pod with and without
/// `pullGuarantee` in team-a's policy, its pull secret's facts known as in cluster mode
/// with `--pull-secret-registries` (a docker config of three registries).
fn pull_guarantee(c: &mut Criterion) {
    use k8s_openapi::ByteString;
    use secretgate::policy::pull_secrets::{PullSecretIndex, fact_of};

    let without = team_policy();
    let mut spec = (*without.for_namespace("team-a").spec).clone();
    spec.pull_guarantee = Some(
        serde_json::from_value(serde_json::json!({"registries": ["quay.io"]}))
            .expect("pullGuarantee"),
    );
    let mut with = Snapshot::with_fallback("team-a", spec);
    with.pull_secrets = PullSecretIndex::known();
    let doc = serde_json::json!({"auths": {
        "ghcr.io": {"auth": "cm9ib3Q6cGFzcw=="},
        "https://registry.example.com:5000/v2/": {"auth": "cm9ib3Q6cGFzcw=="},
        "*.example.com": {"auth": "cm9ib3Q6cGFzcw=="},
    }});
    let data = [(
        ".dockerconfigjson".to_owned(),
        ByteString(serde_json::to_vec(&doc).expect("json")),
    )]
    .into();
    let fact = fact_of(Some("kubernetes.io/dockerconfigjson"), Some(&data)).expect("fact");
    for name in ["regcred", "ghcr-cred", "git-ssh"] {
        with.secrets.insert("team-a", name);
    }
    with.pull_secrets.insert("team-a", "regcred", fact);
    let now = time::OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("pull_guarantee");
    for (name, file) in [
        (
            "pod_existing_pull_secrets",
            "pod-create-existing-imagepullsecrets.json",
        ),
        ("pod_kubectl_run", "pod-create-kubectl-run-nginx.json"),
    ] {
        let body = fixture(file);
        // The passing path is measured: regcred serves the pod's private image.
        let answer = admission::review(
            Webhook::ValidatePods,
            &body,
            &Context {
                policies: &with,
                now,
            },
        );
        let answer: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
        assert_eq!(answer["response"]["allowed"], true, "{name}: {answer}");
        for (what, snapshot) in [("with", &with), ("without", &without)] {
            group.bench_function(format!("{name}_{what}"), |b| {
                b.iter(|| {
                    let ctx = Context {
                        policies: snapshot,
                        now,
                    };
                    admission::review(Webhook::ValidatePods, black_box(&body), &ctx)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    validate_per_type,
    mutate_pods,
    whole_review,
    secret_use,
    pull_guarantee,
    verdict_cache
);
criterion_main!(benches);
