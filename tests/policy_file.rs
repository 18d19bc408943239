//! File mode end to end: a policy file written to a tempdir decides verdicts over HTTPS,
//! an edit takes effect without a restart, a broken edit keeps the last good policy, and
//! a path that cannot be read (a FIFO) neither stops reviews nor hangs start-up. An empty
//! policy is never inferred: an empty, comment-only or cut-short file is refused (at
//! start-up with how to write an explicitly empty policy), and an explicit empty
//! `ProjectPolicyList` is accepted. The cluster state the file states (a Secret's labels
//! and owner annotation, a ServiceAccount's pull secrets) reaches the secret-use
//! decisions, and follows edits of the file.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use secretgate::certs::DevCertificates;
use secretgate::policy::file::{EXPLICITLY_EMPTY, PolicyFile};

use common::{Proto, TestServer, fixture, replace_by_fifo};

/// Secret `app-config` in namespace `team-a`: breaks a `team-a-` name prefix.
const APP_CONFIG: &str = "secret-create-generic-from-literal.json";

/// A policy file whose `team-a` policy selects namespaces labelled `project: a`.
fn policy_file(mode: &str) -> String {
    format!(
        "apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata:
  name: team-a
spec:
  namespaceSelector:
    matchLabels: {{project: a}}
  mode: {mode}
  secrets:
    name: {{prefix: team-a-}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels: {{project: a}}
"
    )
}

/// Writes the file the way the kubelet updates a mounted ConfigMap: a new file renamed
/// over the old one.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write policy");
    std::fs::rename(&tmp, path).expect("rename policy");
}

/// Starts a server on the file's policy with the file watcher polling every 50 ms.
async fn serve(path: &Path) -> TestServer {
    let (file, snapshot) = PolicyFile::load(path).expect("policy file loads");
    let server = TestServer::start_with(snapshot, |_| {}).await;
    let (policies, metrics) = (server.state.policies.clone(), server.state.metrics.clone());
    tokio::spawn(file.watch(Duration::from_millis(50), policies, metrics));
    server
}

/// `allowed` and the warnings for the APP_CONFIG review.
async fn verdict(server: &TestServer) -> (bool, usize) {
    let reply = server
        .client(Proto::Http1)
        .await
        .post("/validate", fixture(APP_CONFIG))
        .await;
    let response = &reply.json()["response"];
    let warnings = response["warnings"].as_array().map_or(0, Vec::len);
    (response["allowed"] == true, warnings)
}

/// Polls until the verdict is `want` (the watcher runs every 50 ms).
async fn wait_for(server: &TestServer, want: (bool, usize)) {
    for _ in 0..100 {
        if verdict(server).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("verdict never became {want:?}");
}

#[tokio::test]
async fn a_file_policy_decides_and_reloads_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    write(&path, &policy_file("Enforce"));
    let server = serve(&path).await;

    assert_eq!(
        verdict(&server).await,
        (false, 0),
        "team-a's prefix rule denies"
    );
    assert!(server.metrics().await.contains("secretgate_policies 1"));

    write(&path, &policy_file("Warn"));
    wait_for(&server, (true, 1)).await;
    assert!(
        server
            .metrics()
            .await
            .contains(r#"secretgate_policy_reloads_total{result="success"} 1"#)
    );

    // A broken edit: logged and counted; the Warn policy stays in force.
    write(
        &path,
        &policy_file("Warn").replace("mode: Warn", "mode: Sometimes"),
    );
    let failed = r#"secretgate_policy_reloads_total{result="failure"} 1"#;
    for _ in 0..100 {
        if server.metrics().await.contains(failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.metrics().await.contains(failed));
    assert_eq!(
        verdict(&server).await,
        (true, 1),
        "last good policy in force"
    );

    // Namespace labels come from the file too: without the label, the default governs.
    write(
        &path,
        &policy_file("Enforce").replace("labels: {project: a}", "labels: {project: b}"),
    );
    wait_for(&server, (true, 0)).await;
    server.stop().await;
}

/// Pod `nginx` in `team-a`, service account `default`, no pull secrets of its own.
const NGINX: &str = "pod-create-kubectl-run-nginx.json";

/// team-a injects `regcred` into every pod; only `ci-runner` may use secrets labelled
/// `tier: ci`. `secret_metadata` is the `regcred` Secret's metadata (labels, annotations).
fn secret_use_file(secret_metadata: &str) -> String {
    format!(
        "apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata:
  name: team-a
spec:
  namespaces: [team-a]
  imagePullSecrets: [{{secretName: regcred}}]
  secretUse:
    rules:
      - name: ci-only
        secrets: {{selector: {{matchLabels: {{tier: ci}}}}}}
        serviceAccounts: [ci-runner]
---
apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: team-a
{secret_metadata}
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: eyJhdXRocyI6e319
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: ci-runner, namespace: team-a}}
imagePullSecrets: [{{name: regcred}}]
"
    )
}

/// The pull secrets the mutating webhook injects into NGINX, and its warnings.
async fn injected(server: &TestServer) -> (Vec<String>, Vec<String>) {
    let reply = server
        .client(Proto::Http1)
        .await
        .post("/mutate", fixture(NGINX))
        .await;
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], true, "{response}");
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let warnings = strings(&response["warnings"]);
    let Some(patch) = response["patch"].as_str() else {
        return (Vec::new(), warnings);
    };
    use base64::Engine as _;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("base64 patch");
    let patch: serde_json::Value = serde_json::from_slice(&patch).expect("JSON patch");
    let names = patch
        .as_array()
        .expect("operations")
        .iter()
        .filter(|op| {
            op["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/spec/imagePullSecrets"))
        })
        .flat_map(|op| match &op["value"] {
            serde_json::Value::Array(items) => items.clone(),
            item => vec![item.clone()],
        })
        .filter_map(|item| item["name"].as_str().map(str::to_owned))
        .collect();
    (names, warnings)
}

/// Polls until NGINX gets `want` injected (the watcher runs every 50 ms).
async fn wait_injected(server: &TestServer, want: &[&str]) -> Vec<String> {
    for _ in 0..100 {
        let (names, warnings) = injected(server).await;
        if names == want {
            return warnings;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never injected {want:?}: {:?}", injected(server).await);
}

#[tokio::test]
async fn the_files_secret_labels_owner_annotation_and_service_accounts_decide_secret_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    write(&path, &secret_use_file("  labels: {tier: ci}"));
    let (_, snapshot) = PolicyFile::load(&path).expect("loads");
    assert_eq!(
        snapshot
            .service_accounts
            .pull_secrets("team-a", "ci-runner"),
        Some(&["regcred".to_owned()][..])
    );
    let server = serve(&path).await;

    // Labelled tier: ci, so only ci-runner may use it: not injected into a default pod.
    let (names, warnings) = injected(&server).await;
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("imagePullSecret \"regcred\" not injected: "),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("ci-only"),
        "names the rule: {warnings:?}"
    );

    // The label edited away in the file: no rule selects it, it is injected.
    write(&path, &secret_use_file("  labels: {tier: web}"));
    let warnings = wait_injected(&server, &["regcred"]).await;
    assert!(warnings.is_empty(), "{warnings:?}");

    // The owner narrows with the annotation: refused again.
    write(
        &path,
        &secret_use_file(
            "  annotations:\n    secretgate.io/allowed-service-accounts: ci-runner\n    \
             kubectl.kubernetes.io/last-applied-configuration: '{}'",
        ),
    );
    let warnings = wait_injected(&server, &[]).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("regcred"), "{warnings:?}");
    server.stop().await;
}

/// /healthz answers on both ports.
async fn assert_healthy(server: &TestServer) {
    let reply = server
        .client(Proto::Http2)
        .await
        .send("GET", "/healthz", None, Vec::new())
        .await;
    assert_eq!(reply.status, 200, "/healthz on the webhook port");
    assert_eq!(
        server.ops_get("/healthz").await.0,
        200,
        "/healthz on the metrics port"
    );
}

#[tokio::test]
async fn a_policy_file_replaced_by_a_fifo_is_a_counted_failure_and_reviews_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    write(&path, &policy_file("Enforce"));
    let server = serve(&path).await;
    assert_eq!(verdict(&server).await, (false, 0));

    // Opening a FIFO blocks until a writer comes; none ever does.
    replace_by_fifo(&path);
    server
        .wait_for_metric(r#"secretgate_file_read_failures_total{file="policy",reason="error"}"#)
        .await;
    assert_healthy(&server).await;
    assert_eq!(
        verdict(&server).await,
        (false, 0),
        "the last good policy decides"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"secretgate_policy_reloads_total{result="failure"}"#),
        "{metrics}"
    );

    // A regular file again: the next poll reads it.
    write(&path, &policy_file("Warn"));
    wait_for(&server, (true, 1)).await;
    server.stop().await;
}

/// `secretgate serve ARGS` with development certificates in `dir`; its exit status and
/// standard error, or a panic if it is still running after 10 s.
fn serve_exits(dir: &Path, args: &[OsString]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--dev-certs-dir")
        .arg(dir.join("certs"))
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run secretgate serve");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
                .expect("stderr");
            return (status, stderr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("secretgate serve {args:?} still running after 10 s");
}

#[test]
fn start_up_refuses_a_fifo_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    replace_by_fifo(&fifo);
    let (status, stderr) = serve_exits(dir.path(), &["--policy".into(), fifo.clone().into()]);
    assert!(!status.success());
    let want = format!("{} is not a regular file", fifo.display());
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");

    // The key of the certificate pair too.
    let certs = dir.path().join("certs");
    DevCertificates::generate(&["localhost".to_owned()])
        .expect("generate")
        .write_to(&certs)
        .expect("write");
    let args = [
        "--tls-cert".into(),
        certs.join("tls.crt").into(),
        "--tls-key".into(),
        fifo.into(),
    ];
    let (status, stderr) = serve_exits(dir.path(), &args);
    assert!(!status.success());
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
}

#[test]
fn start_up_fails_on_a_broken_file_with_its_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    write(&path, &policy_file("Sometimes"));
    let output = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--dev-certs-dir")
        .arg(dir.path().join("certs"))
        .arg("--policy")
        .arg(&path)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run secretgate serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let want = format!("{}:8:9: document 1: ", path.display());
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
}

#[test]
fn the_printed_default_policy_loads_as_a_policy_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("default.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["serve", "--print-default-policy"])
        .output()
        .expect("run secretgate serve --print-default-policy");
    assert!(output.status.success());
    std::fs::write(&path, &output.stdout).expect("write");
    let (_, snapshot) = PolicyFile::load(&path).expect("the default policy loads back");
    assert_eq!(snapshot.policy_count(), 1);
}

#[tokio::test]
async fn reloads_that_would_infer_an_empty_policy_or_are_cut_short_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    let good = policy_file("Enforce");
    write(&path, &good);
    let server = serve(&path).await;
    assert_eq!(
        verdict(&server).await,
        (false, 0),
        "team-a's prefix rule denies"
    );

    let cut_before_spec = &good[..good.find("spec:").expect("spec")];
    let cases = [
        ("empty", String::new()),
        (
            "comments only",
            "# policies moved elsewhere\n---\n".to_owned(),
        ),
        ("cut before its spec", cut_before_spec.to_owned()),
        ("cut after a separator", format!("{good}---\n")),
        (
            "cut inside a value",
            good.replace("{prefix: team-a-}", "{prefix: te"),
        ),
        (
            "only namespaces",
            good[good.find("---").expect("separator")..].to_owned(),
        ),
    ];
    for (i, (case, text)) in cases.iter().enumerate() {
        write(&path, text);
        server
            .wait_for_metric(&format!(
                r#"secretgate_policy_reloads_total{{result="failure"}} {}"#,
                i + 1
            ))
            .await;
        assert_eq!(
            verdict(&server).await,
            (false, 0),
            "{case}: the last good policy stays in force"
        );
    }
    assert!(server.metrics().await.contains("secretgate_policies 1"));

    // An explicitly empty policy is accepted: the default governs everywhere.
    write(&path, EXPLICITLY_EMPTY);
    wait_for(&server, (true, 0)).await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("secretgate_policies 0"), "{metrics}");
    assert!(
        metrics.contains(r#"secretgate_policy_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}

#[test]
fn start_up_refuses_an_empty_file_saying_how_to_write_an_empty_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    for text in ["", "# nothing yet\n"] {
        write(&path, text);
        let (status, stderr) = serve_exits(dir.path(), &["--policy".into(), path.clone().into()]);
        assert!(!status.success());
        let want = format!("{}: no ProjectPolicy document", path.display());
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
        assert!(
            stderr.contains("kind: ProjectPolicyList\nitems: []"),
            "{stderr}"
        );
    }
    // The explicit form starts.
    write(&path, EXPLICITLY_EMPTY);
    let (_, snapshot) = PolicyFile::load(&path).expect("an explicitly empty policy loads");
    assert_eq!(snapshot.policy_count(), 0);
}
