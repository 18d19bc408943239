//! Secret rules end to end over HTTPS with the recorded fixtures and the embedded default
//! policy: the exact verdict and field paths for every secret the API server sent, and
//! what Warn and Audit make of the same findings.

mod common;

use common::{Proto, TestServer, fixture};
use secretgate::policy::{Mode, ProjectPolicySpec, Snapshot};

const LAST_APPLIED: &str = "metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]: holds a copy of the secret's data (kubectl client-side apply); use kubectl apply --server-side or kubectl create instead";

/// Fixtures the default policy denies, with every violation the message must list.
const DENIED: &[(&str, &[&str])] = &[
    (
        "secret-create-dockercfg-legacy",
        &[
            r#"data[.dockercfg]["registry.example.com"].auth: auth does not match username and password"#,
        ],
    ),
    (
        "secret-create-dockerconfigjson-auth-no-colon",
        &[r#"data[.dockerconfigjson].auths["ghcr.io"].auth: must be base64 of user:password"#],
    ),
    (
        "secret-create-dockerconfigjson-auth-not-base64",
        &[r#"data[.dockerconfigjson].auths["registry.example.com:5000"].auth: not valid base64"#],
    ),
    (
        "secret-create-dockerconfigjson-auths-is-array",
        &["data[.dockerconfigjson].auths: must be an object mapping registry hosts to credentials"],
    ),
    (
        "secret-create-dockerconfigjson-no-auths-key",
        &[
            r#"data[.dockerconfigjson].auths: required value is missing; the registries are at the top level as in the legacy .dockercfg format: wrap them in "auths" or use type kubernetes.io/dockercfg"#,
        ],
    ),
    (
        "secret-create-ssh-auth-encrypted-key",
        &["data[ssh-privatekey]: is passphrase-protected; git-sync needs an unencrypted key"],
    ),
    (
        "secret-create-ssh-auth-public-key-by-mistake",
        &["data[ssh-privatekey]: is a public key; ssh-privatekey needs the private key"],
    ),
    (
        "secret-create-tls-expired",
        &["data[tls.crt]: certificate expired on 2024-01-01"],
    ),
    (
        "secret-create-tls-garbage-cert",
        &[
            "data[tls.crt]: no PEM certificate found",
            "data[tls.key]: no PEM private key found",
        ],
    ),
    (
        "secret-create-tls-mismatched-key",
        &["data[tls.key]: does not match the certificate in data[tls.crt]"],
    ),
];

/// Fixtures admitted with a warning: kubectl client-side apply copies data into an annotation.
const WARNED: &[&str] = &[
    "secret-create-apply-last-applied",
    "secret-create-immutable",
    "secret-create-stringdata",
    "secret-update-apply-changed-data",
    "secret-update-apply-unchanged",
];

fn expected_denial(name: &str) -> Option<&'static [&'static str]> {
    DENIED.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn secret_fixtures() -> Vec<(String, Vec<u8>)> {
    common::request_fixtures()
        .into_iter()
        .filter(|(n, _)| n.starts_with("secret-") || n.starts_with("reject-secret"))
        .map(|(n, b)| (n.trim_end_matches(".json").to_owned(), b))
        .collect()
}

fn warnings_of(response: &serde_json::Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn default_policy_gives_the_exact_verdict_for_every_recorded_secret() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    let fixtures = secret_fixtures();
    assert!(
        fixtures.len() >= 55,
        "found {} secret fixtures",
        fixtures.len()
    );
    for (name, body) in &fixtures {
        let review = client.post("/validate", body.clone()).await.json();
        let response = &review["response"];
        match expected_denial(name) {
            Some(violations) => {
                assert_eq!(response["allowed"], false, "{name}: {review}");
                assert_eq!(response["status"]["code"], 403, "{name}");
                assert_eq!(
                    response["status"]["message"],
                    format!(
                        r#"secret violates policy "default": {}"#,
                        violations.join("; ")
                    ),
                    "{name}"
                );
            }
            None => assert_eq!(response["allowed"], true, "{name}: {review}"),
        }
        let expected_warnings: Vec<String> =
            if WARNED.contains(&name.as_str()) || name == "secret-create-tls-mismatched-key" {
                vec![LAST_APPLIED.to_owned()]
            } else {
                Vec::new()
            };
        assert_eq!(warnings_of(response), expected_warnings, "{name}");
    }
    server.stop().await;
}

#[tokio::test]
async fn warn_mode_admits_every_secret_with_one_warning_per_violation() {
    let spec = ProjectPolicySpec {
        mode: Mode::Warn,
        ..ProjectPolicySpec::default()
    };
    let server = TestServer::start_with(Snapshot::with_fallback("warn", spec), |_| {}).await;
    let mut client = server.client(Proto::Http2).await;
    for (name, violations) in DENIED {
        let review = client
            .post("/validate", fixture(&format!("{name}.json")))
            .await
            .json();
        let response = &review["response"];
        assert_eq!(response["allowed"], true, "{name}");
        let warnings = warnings_of(response);
        for v in *violations {
            assert!(
                warnings.iter().any(|w| w == v),
                "{name}: {v} not in {warnings:?}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn audit_mode_admits_silently_and_counts_the_findings() {
    let spec = ProjectPolicySpec {
        mode: Mode::Audit,
        ..ProjectPolicySpec::default()
    };
    let server = TestServer::start_with(Snapshot::with_fallback("audit", spec), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let mut findings = 0;
    for (name, violations) in DENIED {
        let review = client
            .post("/validate", fixture(&format!("{name}.json")))
            .await
            .json();
        assert_eq!(review["response"]["allowed"], true, "{name}");
        assert!(review["response"].get("warnings").is_none(), "{name}");
        findings += violations.len();
        if *name == "secret-create-tls-mismatched-key" {
            findings += 1; // the last-applied copy
        }
    }
    let metrics = server.metrics().await;
    let line =
        format!(r#"secretgate_policy_findings_total{{mode="Audit",outcome="audited"}} {findings}"#);
    assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn the_last_applied_copy_is_denied_when_the_policy_says_so() {
    let mut spec = ProjectPolicySpec::default();
    spec.secrets.values_in_annotations = secretgate::policy::Severity::Deny;
    let server = TestServer::start_with(Snapshot::with_fallback("strict", spec), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let review = client
        .post(
            "/validate",
            fixture("secret-create-apply-last-applied.json"),
        )
        .await
        .json();
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["status"]["message"],
        format!(r#"secret violates policy "strict": {LAST_APPLIED}"#)
    );
    // An update that keeps the old copy is only warned about, so the user can fix it.
    let review = client
        .post("/validate", fixture("secret-update-apply-unchanged.json"))
        .await
        .json();
    assert_eq!(review["response"]["allowed"], true, "{review}");
    server.stop().await;
}

/// The recorded `regcred` request with `.dockerconfigjson` replaced by `doc`.
fn pull_secret_review(doc: &str) -> Vec<u8> {
    use base64::Engine as _;
    let mut review: serde_json::Value =
        serde_json::from_slice(&fixture("secret-create-dockerconfigjson-valid.json"))
            .expect("fixture JSON");
    review["request"]["object"]["data"][".dockerconfigjson"] =
        base64::engine::general_purpose::STANDARD.encode(doc).into();
    serde_json::to_vec(&review).expect("serialises")
}

#[tokio::test]
async fn a_pull_secret_the_kubelet_reads_differently_is_denied_without_echoing_keys_or_values() {
    let mut spec = ProjectPolicySpec::default();
    spec.secrets.image_pull.allowed_registries = vec!["registry.example.com:5000".into()];
    let server = TestServer::start_with(Snapshot::with_fallback("pull", spec), |_| {}).await;
    let mut client = server.client(Proto::Http2).await;
    // `cm9ib3Q6czNjcjN0` is base64 of robot:s3cr3t; "Auths" hides evil.io from a plain
    // reading, the last key carries a token in its user info.
    let doc = r#"{"auths":{"registry.example.com:5000":{"auth":"cm9ib3Q6czNjcjN0"}},
        "Auths":{"evil.io":{"auth":"cm9ib3Q6czNjcjN0"}},
        "auths":{"https://robot:PLANTEDtoken@registry.example.com:5000":{"auth":"cm9ib3Q6czNjcjN0","Auth":"cm9ib3Q6czNjcjN0"}}}"#;
    let reply = client.post("/validate", pull_secret_review(doc)).await;
    let review = reply.json();
    let response = &review["response"];
    assert_eq!(response["allowed"], false, "{review}");
    let want = [
        r#"data[.dockerconfigjson]: key "Auths" differs from "auths" only by case; the kubelet reads all 3"#,
        r#"data[.dockerconfigjson]: key "auths" appears 2 times; the kubelet merges them"#,
        r#"data[.dockerconfigjson].Auths["evil.io"]: registry is not allowed in this project (allowed: registry.example.com:5000)"#,
        "data[.dockerconfigjson].auths[entry 1]: holds user info (user:password@host?): credentials belong in the entry, not in the registry key",
        r#"data[.dockerconfigjson].auths[entry 1]: key "Auth" differs from "auth" only by case; the kubelet reads both; the last one wins"#,
    ];
    assert_eq!(
        response["status"]["message"],
        format!(r#"secret violates policy "pull": {}"#, want.join("; "))
    );
    let body = String::from_utf8_lossy(&serde_json::to_vec(&review).expect("json")).into_owned();
    for secret in ["PLANTED", "token", "cm9ib3Q6czNjcjN0", "s3cr3t"] {
        assert!(!body.contains(secret), "the answer echoes {secret}: {body}");
    }
    server.stop().await;
}
