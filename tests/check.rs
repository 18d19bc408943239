//! `secretgate check`: the real binary against the real server's answers for every
//! recorded fixture, exit codes, the three output formats, and manifests that kubectl
//! writes at test time.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::{Proto, TestServer, fixtures_dir, request_fixtures};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_secretgate");

fn bench_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/policy.yaml")
}

/// Runs `secretgate check ARGS` with `stdin` on its standard input.
fn check(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run secretgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("secretgate exits")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(out), stderr(out)))
}

#[tokio::test]
async fn every_fixture_gets_exactly_the_servers_answer() {
    let policy = bench_policy();
    let snapshot = secretgate::policy::file::load(&policy).expect("bench policy");
    let server = TestServer::start_with(snapshot, |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let fixtures = request_fixtures();
    assert!(fixtures.len() > 50, "fixtures found: {}", fixtures.len());

    let mut args = vec!["--policy".to_owned(), policy.display().to_string()];
    args.extend(["-o".to_owned(), "json".to_owned()]);
    for (name, _) in &fixtures {
        args.push("-f".to_owned());
        args.push(fixtures_dir().join(name).display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = check(&args, b"");
    let report = json(&out);
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), fixtures.len());

    for ((name, body), result) in fixtures.iter().zip(results) {
        let review: Value = serde_json::from_slice(body).expect("fixture");
        let path = match review["request"]["kind"]["kind"].as_str() {
            Some("Pod") => "/mutate",
            _ => "/validate",
        };
        let reply = client.post(path, body.clone()).await;
        let response = &reply.json()["response"];
        assert_eq!(result["allowed"], response["allowed"], "{name}");
        assert_eq!(result["code"], response["status"]["code"], "{name}");
        let message = response["status"]["message"]
            .as_str()
            .filter(|m| !m.is_empty());
        assert_eq!(result["message"].as_str(), message, "{name}");
        let warnings = response["warnings"].as_array().cloned().unwrap_or_default();
        let got = result["warnings"].as_array().cloned().unwrap_or_default();
        assert_eq!(got, warnings, "{name}");
        let patch = response["patch"].as_str().map(|b64| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 patch");
            serde_json::from_slice::<Value>(&bytes).expect("patch JSON")
        });
        assert_eq!(result.get("patch").cloned(), patch, "{name}");
        let verdict = result["verdict"].as_str().expect("verdict");
        let expected = match (response["allowed"].as_bool(), &patch) {
            (Some(false), _) => "denied",
            (_, Some(_)) => "patched",
            _ if !warnings.is_empty() => "warned",
            _ => "allowed",
        };
        assert_eq!(verdict, expected, "{name}");
    }
    let denied = results.iter().any(|r| r["verdict"] == "denied");
    assert_eq!(out.status.code(), Some(if denied { 1 } else { 0 }));
    server.stop().await;
}

/// A policy for team-a: names start with `a-`, pods pulling from registry.example.com
/// get `a-regcred`.
const POLICY: &str = "\
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata: {name: team-a}
spec:
  namespaces: [team-a]
  mode: Enforce
  secrets:
    name: {prefix: a-}
  imagePullSecrets:
    - {secretName: a-regcred, registries: [registry.example.com]}
";

const GOOD_SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: a-config, namespace: team-a}
stringData: {password: PLANTED-VALUE-1}
";

const BAD_SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: web-tls}
type: kubernetes.io/tls
stringData: {tls.crt: PLANTED-VALUE-2, tls.key: PLANTED-VALUE-3}
";

const POD: &str = r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a-regcred"},
   "type": "Opaque", "data": {"k": "UExBTlRFRC1WQUxVRS00"}},
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
   "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}},
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
]}"#;

/// A tempdir with the policy and `files` (name, content).
fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("policy.yaml"), POLICY).expect("policy");
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, content).expect("write");
    }
    dir
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let policy = dir.join("policy.yaml").display().to_string();
    let mut all = vec!["--policy", policy.as_str()];
    all.extend_from_slice(args);
    check(&all, b"")
}

fn no_secret_values(out: &Output) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert!(!text.contains("PLANTED"), "{text}");
    for planted in ["PLANTED-VALUE-1", "PLANTED-VALUE-2", "PLANTED-VALUE-4"] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(planted);
        assert!(!text.contains(&b64), "{text}");
    }
}

#[test]
fn a_passing_secret_exits_0() {
    let dir = workspace(&[("good.yaml", GOOD_SECRET)]);
    let out = run_in(
        dir.path(),
        &["-f", &dir.path().join("good.yaml").display().to_string()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("Secret team-a/a-config: allowed (policy \"team-a\", Enforce)"));
    no_secret_values(&out);
}

#[test]
fn a_denied_secret_exits_1_with_every_field_path() {
    let dir = workspace(&[("m/bad.yaml", &format!("{GOOD_SECRET}---\n{BAD_SECRET}"))]);
    let args = ["-f", &dir.path().display().to_string(), "-n", "team-a"];
    let out = run_in(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("bad.yaml, document 2: Secret team-a/web-tls: denied"),
        "{text}"
    );
    assert!(text.contains("deny   metadata.name:"), "{text}");
    assert!(text.contains("deny   data[tls.crt]:"), "{text}");
    assert!(text.contains("deny   data[tls.key]:"), "{text}");
    no_secret_values(&out);

    let out = run_in(dir.path(), &[&args[..], &["-o", "json"]].concat());
    let report = json(&out);
    assert_eq!(report["summary"]["denied"], 1);
    let fields: Vec<&str> = report["results"][1]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["field"].as_str())
        .collect();
    assert!(fields.contains(&"metadata.name"), "{fields:?}");
    no_secret_values(&out);
}

#[test]
fn many_findings_are_shown_as_the_server_shows_them() {
    // 30 registries whose `auth` is not base64: 30 findings and more (the workspace's
    // policy also has a name rule and an allow-list), 20 shown, the rest counted.
    let auths: serde_json::Map<String, Value> = (0..30)
        .map(|i| {
            (
                format!("r{i}.example.com"),
                serde_json::json!({"auth": "%%%"}),
            )
        })
        .collect();
    let config = serde_json::json!({ "auths": auths }).to_string();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\n  namespace: team-a\n\
         type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        base64::engine::general_purpose::STANDARD.encode(config)
    );
    let dir = workspace(&[("pull.yaml", &secret)]);
    let out = run_in(dir.path(), &["-f", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("  deny   ").count(), 20, "{text}");
    assert!(text.contains(" × not valid base64"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("  and ") && l.contains(" more: ")),
        "{text}"
    );

    let out = run_in(
        dir.path(),
        &["-f", &dir.path().display().to_string(), "-o", "json"],
    );
    let report = json(&out);
    let result = report["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == "Secret"))
        .expect("the secret's result");
    assert_eq!(result["violations"].as_array().map(Vec::len), Some(20));
    assert!(
        result["moreViolations"]
            .as_str()
            .is_some_and(|m| m.starts_with("and ") && m.contains(" × not valid base64")),
        "{result}"
    );
}

#[test]
fn a_pod_gets_the_patch_and_with_yaml_the_mutated_pod() {
    let dir = workspace(&[("app.json", POD)]);
    let file = dir.path().join("app.json").display().to_string();
    let out = run_in(dir.path(), &["-f", &file, "-n", "team-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("document 1, item 2: Pod team-a/web: patched"),
        "{text}"
    );
    assert!(text.contains(r#"patch: [{"op":"add","path":"/spec/imagePullSecrets","value":[{"name":"a-regcred"}]}]"#), "{text}");
    assert!(text.contains("item 3: ConfigMap: skipped"), "{text}");

    let out = run_in(dir.path(), &["-f", &file, "-n", "team-a", "-o", "yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_saphyr::from_str(&stdout(&out)).expect("YAML report");
    let pod = &report["results"][1]["mutatedObject"];
    assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], "a-regcred");
    assert!(report["results"][0].get("mutatedObject").is_none());
    no_secret_values(&out);
}

const WORKLOADS: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: a-regcred, namespace: team-a}
stringData: {k: PLANTED-VALUE-1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: registry.example.com/app:1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: team-a}
spec:
  schedule: '@daily'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: docker.io/library/busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {generateName: migrate-, namespace: team-a}
spec:
  template:
    metadata: {namespace: ignored-by-the-controller}
    spec:
      restartPolicy: Never
      containers: [{name: m, image: registry.example.com/migrate}]
";

#[test]
fn workloads_are_checked_through_the_pods_their_templates_make() {
    let dir = workspace(&[("app.yaml", WORKLOADS)]);
    let file = dir.path().join("app.yaml").display().to_string();
    let out = run_in(dir.path(), &["-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("document 2: Deployment team-a/web: patched"),
        "{text}"
    );
    assert!(
        text.contains(r#"patch: [{"op":"add","path":"/spec/template/spec/imagePullSecrets""#),
        "{text}"
    );
    assert!(
        text.contains("document 3: CronJob team-a/nightly: allowed"),
        "{text}"
    );
    assert!(
        text.contains("document 4: Job team-a/migrate-*: patched"),
        "{text}"
    );

    let out = run_in(dir.path(), &["-f", &file, "-o", "yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_saphyr::from_str(&stdout(&out)).expect("YAML report");
    let deployment = &report["results"][1]["mutatedObject"];
    assert_eq!(
        deployment["kind"], "Deployment",
        "the workload, ready to apply"
    );
    assert_eq!(deployment["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "a-regcred"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["app"],
        "web"
    );
    no_secret_values(&out);
}

#[test]
fn stdin_is_read_with_a_dash() {
    let dir = workspace(&[]);
    let policy = dir.path().join("policy.yaml").display().to_string();
    let out = check(&["--policy", &policy, "-f", "-"], BAD_SECRET.as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("-, document 1: Secret default/web-tls: denied"));
}

#[test]
fn input_errors_exit_2_naming_file_document_and_line() {
    let broken =
        format!("{GOOD_SECRET}---\napiVersion: v1\nkind: Secret\ndata: [PLANTED-VALUE-1\n");
    let dir = workspace(&[("broken.yaml", &broken)]);
    let file = dir.path().join("broken.yaml").display().to_string();
    let out = run_in(dir.path(), &["-f", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&format!("{file}:")), "{err}");
    assert!(err.contains("document 2"), "{err}");
    no_secret_values(&out);

    let out = run_in(dir.path(), &["-f", "/nonexistent/x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/x.yaml"),
        "{}",
        stderr(&out)
    );

    // Not base64: the API server would refuse it; check says so and quotes nothing.
    let not_base64 =
        "apiVersion: v1\nkind: Secret\nmetadata: {generateName: a-}\ndata: {k: PLANTED!!}\n";
    let out = check(&["-f", "-"], not_base64.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("-, document 1: Secret default/(no name): invalid"),
        "{}",
        stdout(&out)
    );
    no_secret_values(&out);

    let out = check(&["-o", "xml", "-f", "-"], b"");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn yaml_and_json_errors_quote_no_key_or_value() {
    const MARKER: &str = "PLANTEDSECRET123";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: a-s, namespace: team-a}\n";
    let cases = [
        (
            "duplicate key",
            format!("{secret}data:\n  {MARKER}: eA==\n  {MARKER}: eQ==\n"),
            ":6:3: document 1: duplicate mapping key",
        ),
        (
            "syntax error after the marker",
            format!("{secret}data:\n  k: {MARKER}: [\n"),
            ":5:22: document 1: syntax error",
        ),
        (
            "a stringData value that is not a string",
            format!("{secret}stringData:\n  {MARKER}: [{MARKER}]\n"),
            ", document 1: a value in stringData is not a string",
        ),
        (
            "JSON syntax error after the marker",
            format!(r#"{{"apiVersion": "v1", "kind": "Secret", "{MARKER}" {MARKER}}}"#),
            ":1:59: document 1: not valid JSON",
        ),
    ];
    for (case, text, want) in cases {
        let dir = workspace(&[("in.yaml", &text)]);
        let file = dir.path().join("in.yaml").display().to_string();
        for format in ["text", "json"] {
            let out = run_in(dir.path(), &["-o", format, "-f", &file]);
            assert_eq!(out.status.code(), Some(2), "{case}");
            let (out, err) = (stdout(&out), stderr(&out));
            let want = format!("{file}{want}");
            assert!(err.contains(&want), "{case}: want {want:?} in {err}");
            assert!(
                !format!("{out}{err}").contains(MARKER),
                "{case}: {out}{err}"
            );
        }
    }
}

/// Runs `secretgate check ARGS`, failing the test if it has not finished within 30 s.
fn check_within(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("check")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run secretgate");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("secretgate check {args:?} still running after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("secretgate exits")
}

#[test]
fn symlink_loops_end_and_every_file_is_read_once() {
    use std::os::unix::fs::symlink;
    let dir = workspace(&[
        ("tree/good.yaml", GOOD_SECRET),
        ("tree/sub/bad.yaml", BAD_SECRET),
    ]);
    let tree = dir.path().join("tree");
    symlink(".", tree.join("again")).expect("link to itself");
    symlink(&tree, tree.join("sub/loop")).expect("link to itself, absolute");
    // Out of the tree, to the workspace holding it (and policy.yaml, a real file too).
    symlink("..", tree.join("up")).expect("link to the parent");
    let policy = dir.path().join("policy.yaml").display().to_string();
    let tree = tree.display().to_string();

    let out = check_within(&["--policy", &policy, "-o", "json", "-f", &tree]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    let mut read: Vec<PathBuf> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let file = r["source"]["file"].as_str().expect("file");
            std::fs::canonicalize(file).expect("a real file")
        })
        .collect();
    read.sort();
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let mut want = [
        root.join("policy.yaml"),
        root.join("tree/good.yaml"),
        root.join("tree/sub/bad.yaml"),
    ];
    want.sort();
    assert_eq!(read, want, "every real file once");
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let looping = "skipped: link to a directory already being read";
    for link in ["tree/again", "tree/sub/loop", "tree/up/tree"] {
        let want = format!("{}/{link}: {looping}", dir.path().display());
        assert!(notes.contains(&want.as_str()), "want {want:?} in {notes:?}");
    }
    assert_eq!(notes.len(), 3, "{notes:?}");

    let out = check_within(&["--policy", &policy, "-f", &tree]);
    assert!(
        stdout(&out).contains(&format!("note: {tree}/again: {looping}\n")),
        "{}",
        stdout(&out)
    );
}

/// Manifests as `kubectl create secret … --dry-run=client -o yaml` writes them.
#[test]
fn kubectl_generated_secrets() {
    let kubectl = Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!("SKIPPED kubectl_generated_secrets: /usr/bin/kubectl is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    secretgate::certs::DevCertificates::generate(&["web.example.com".to_owned()])
        .expect("certificates")
        .write_to(dir.path())
        .expect("write certificates");
    let cert = format!("--cert={}", dir.path().join("tls.crt").display());
    let key = format!("--key={}", dir.path().join("tls.key").display());
    let cases: [(&[&str], i32); 4] = [
        (
            &[
                "docker-registry",
                "regcred",
                "--docker-server=registry.example.com",
                "--docker-username=robot",
                "--docker-password=PLANTED-pw",
            ],
            0,
        ),
        (&["tls", "web-tls", &cert, &key], 0),
        (&["generic", "app", "--from-literal=token=PLANTED-token"], 0),
        (
            &[
                "generic",
                "deploy-key",
                "--type=kubernetes.io/ssh-auth",
                "--from-literal=ssh-privatekey=PLANTED-not-a-key",
            ],
            1,
        ),
    ];
    for (args, code) in cases {
        let made = Command::new(kubectl)
            .args(["create", "secret"])
            .args(args)
            .args(["-n", "team-a", "--dry-run=client", "-o", "yaml"])
            .output()
            .expect("kubectl");
        assert!(made.status.success(), "kubectl: {}", stderr(&made));
        let out = check(&["-f", "-"], &made.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&format!("Secret team-a/{}", args[1])),
            "{}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains("PLANTED"), "{}", stdout(&out));
    }
}

#[test]
fn help_has_examples_and_completions_are_printed() {
    for command in ["check", "audit", "completions"] {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .expect("help");
        assert!(
            stdout(&out).contains("Examples:"),
            "{command}: {}",
            stdout(&out)
        );
    }
    for (shell, marker) in [
        ("bash", "_secretgate()"),
        ("zsh", "#compdef secretgate"),
        ("fish", "complete -c secretgate"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("completions");
        assert_eq!(out.status.code(), Some(0));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("audit"), "{shell}");
    }
}

const SECRET_USE_POLICY: &str = r#"
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata: {name: team-a}
spec:
  namespaces: [team-a]
  secretUse:
    rules:
      - name: ci-only
        secrets: {names: [deploy-key]}
        serviceAccounts: [ci-runner]
"#;

/// A Deployment of service account `account` that reads `deploy-key` into its env (or
/// only inherits it, with `env: false`).
fn deployment(name: &str, account: &str, env: bool) -> String {
    let env = if env {
        "\n          env:\n            - name: KEY\n              valueFrom: {secretKeyRef: {name: deploy-key, key: ssh}}"
    } else {
        ""
    };
    format!(
        r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: team-a}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      serviceAccountName: {account}
      containers:
        - name: app
          image: ghcr.io/team-a/app:1{env}
"#
    )
}

#[test]
fn secret_use_is_checked_in_manifests_through_templates_and_service_accounts() {
    let manifest = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: builder, namespace: team-a}}\n\
         imagePullSecrets: [{{name: deploy-key}}]\n{}{}{}",
        deployment("ci", "ci-runner", true),
        deployment("web", "default", true),
        deployment("build", "builder", false),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("policy.yaml"), SECRET_USE_POLICY).expect("policy");
    std::fs::write(dir.path().join("app.yaml"), manifest).expect("manifest");
    let file = dir.path().join("app.yaml").display().to_string();
    let out = run_in(dir.path(), &["-f", &file]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("Deployment team-a/ci: allowed"), "{text}");
    assert!(text.contains("Deployment team-a/web: denied"), "{text}");
    assert!(
        text.contains("spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef"),
        "{text}"
    );
    assert!(text.contains("Deployment team-a/build: denied"), "{text}");
    assert!(
        text.contains("spec.template.spec.serviceAccountName"),
        "inherited pull secret: {text}"
    );
    assert!(text.contains("\"ci-only\""), "{text}");
}
