//! The command line as an operator meets it, through the real binary: the connection
//! flags every cluster command shares, errors said once (no repeated cause, no doubled
//! quotes), nothing written before the configuration is known to be usable,
//! `certs --print-ca-bundle`, and `check`'s positional inputs and counts.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_secretgate");

/// The binary in `dir`, with no kubeconfig anywhere and not in a pod: HOME is `dir`.
fn secretgate(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    secretgate(dir).args(args).output().expect("run secretgate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A kubeconfig in `dir` for an API server at `server`, context `lab`.
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig.yaml");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: lab}}\ncurrent-context: lab\nusers:\n- name: lab\n  user: {{token: not-a-real-token}}\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// One `error:` line, no text said twice (split at `: ` and lines), no doubled quotes,
/// no Rust type names.
fn assert_said_once(err: &str) {
    let headlines = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(headlines, 1, "{err}");
    assert!(!err.contains("'\"") && !err.contains("\"'"), "{err}");
    assert!(
        !err.contains("ServiceError") && !err.contains("ApiError"),
        "{err}"
    );
    let segments: Vec<&str> = err
        .lines()
        .flat_map(|line| line.split(": "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(
            !segments[i + 1..].contains(segment),
            "{segment:?} is said twice: {err}"
        );
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const LOCAL_PORTS: [&str; 4] = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];

#[test]
fn serve_without_a_kubeconfig_says_so_once_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["serve", "--kube"];
    args.extend(LOCAL_PORTS);
    let out = run(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let home_config = dir.path().join(".kube/config");
    assert!(
        err.contains(&format!("no kubeconfig at {}", home_config.display())),
        "{err}"
    );
    assert!(err.contains("pass --kubeconfig"), "{err}");
    assert_said_once(&err);
    // No development certificates (certs/) before the configuration is known usable.
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn serve_refuses_connection_flags_outside_cluster_mode_before_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kubeconfig(dir.path(), "https://127.0.0.1:1");
    let mut args = vec!["serve", "--kubeconfig", config.to_str().expect("utf-8")];
    args.extend(LOCAL_PORTS);
    let out = run(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("add --kube"), "{err}");
    assert_eq!(entries(dir.path()), ["kubeconfig.yaml"]);
}

#[test]
fn every_cluster_command_takes_the_same_connection_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kubeconfig(dir.path(), "https://127.0.0.1:1");
    let config = config.to_str().expect("utf-8");
    let mut serve = vec!["serve", "--kube"];
    serve.extend(LOCAL_PORTS);
    for command in [
        serve,
        vec!["audit"],
        vec!["unregister", "--validating", "secretgate"],
    ] {
        let mut args = command.clone();
        args.extend(["--kubeconfig", config, "--context", "staging"]);
        let out = run(dir.path(), &args);
        assert_ne!(out.status.code(), Some(0), "{command:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "error: context \"staging\" does not exist in kubeconfig {config}; pass one of [lab] to --context"
            )),
            "{command:?}: {err}"
        );
        assert_said_once(&err);
        // KUBECONFIG is read as kubectl reads it (a list; missing files skipped).
        let listed = format!("{}/missing.yaml:{config}", dir.path().display());
        let out = secretgate(dir.path())
            .args(&command)
            .args(["--context", "staging"])
            .env("KUBECONFIG", &listed)
            .output()
            .expect("run secretgate");
        assert!(
            stderr(&out).contains("pass one of [lab] to --context"),
            "{command:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(entries(dir.path()), ["kubeconfig.yaml"]);
}

#[test]
fn an_unreachable_api_server_is_named_once_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = format!("https://127.0.0.1:{}", closed_port());
    let config = kubeconfig(dir.path(), &server);
    let config = config.to_str().expect("utf-8");
    for args in [
        vec!["audit", "--kubeconfig", config],
        vec![
            "unregister",
            "--validating",
            "secretgate",
            "--mutating",
            "secretgate",
            "--kubeconfig",
            config,
        ],
    ] {
        let out = run(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!(
                "error: cannot reach the API server at {server} (kubeconfig {config}, context lab); check"
            )),
            "{args:?}: {err}"
        );
        assert!(first.contains("--kubeconfig and --context"), "{err}");
        assert!(err.contains("Connection refused"), "{err}");
        assert_said_once(&err);
    }
}

#[test]
fn serve_logs_an_unreachable_api_server_with_its_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = format!("https://127.0.0.1:{}", closed_port());
    let config = kubeconfig(dir.path(), &server);
    let mut args = vec![
        "serve",
        "--kube",
        "--kubeconfig",
        config.to_str().expect("utf-8"),
        "--leader-election=false",
        "--reports",
        "off",
    ];
    args.extend(LOCAL_PORTS);
    let mut child = secretgate(dir.path())
        .args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run secretgate");
    let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut failure = None;
    for line in lines {
        let line = line.expect("stderr line");
        if line.contains("watch failed") {
            failure = Some(line);
            break;
        }
        seen.push(line);
        if Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = failure.unwrap_or_else(|| panic!("no watch failure logged: {seen:#?}"));
    assert!(line.contains("Connection refused"), "{line}");
    assert_eq!(line.matches("client error (Connect)").count(), 1, "{line}");
    assert!(!line.contains("ServiceError"), "{line}");
    // kube's own line for the same failure is not in the default log.
    assert!(
        !seen.iter().any(|l| l.contains("failed with error")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("cluster mode") && l.contains(&server)),
        "{seen:#?}"
    );
}

#[test]
fn print_ca_bundle_prints_the_existing_ca_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No CA yet: says how to make one, creates nothing.
    let out = run(dir.path(), &["certs", "--print-ca-bundle"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "error: no CA certificate at certs/ca.crt; create one with `secretgate certs"
        ),
        "{err}"
    );
    assert_said_once(&err);
    assert!(entries(dir.path()).is_empty());

    let made = run(dir.path(), &["certs"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let files = |dir: &Path| -> Vec<Vec<u8>> {
        ["ca.crt", "ca.key", "tls.crt", "tls.key"]
            .iter()
            .map(|f| std::fs::read(dir.join("certs").join(f)).expect("cert file"))
            .collect()
    };
    let before = files(dir.path());

    let printed = run(dir.path(), &["certs", "--print-ca-bundle"]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert_eq!(stdout(&printed), stdout(&made), "the bundle certs printed");
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(stdout(&printed).trim())
        .expect("base64");
    assert_eq!(pem, before[0], "base64 of ca.crt as it is");
    assert!(stderr(&printed).is_empty(), "{}", stderr(&printed));

    // Again without --force: one line pointing at --print-ca-bundle, nothing replaced.
    let again = run(dir.path(), &["certs"]);
    assert_eq!(again.status.code(), Some(1));
    let err = stderr(&again);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already exist in certs"), "{err}");
    assert!(
        err.contains("--print-ca-bundle") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(files(dir.path()), before);
}

/// `check` with `stdin` on its standard input.
fn check(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = secretgate(dir)
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

fn secret(name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\n")
}

#[test]
fn check_takes_positional_inputs_mixed_with_f_in_the_order_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.yaml"), secret("a")).expect("write");
    std::fs::create_dir(dir.path().join("more")).expect("mkdir");
    std::fs::write(dir.path().join("more/b.yaml"), secret("b")).expect("write");

    let one = check(dir.path(), &["a.yaml"], b"");
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(
        stdout(&one).ends_with(
            "\n1 object: 1 allowed, 0 warned, 0 patched, 0 denied, 0 invalid, 0 skipped\n"
        ),
        "{}",
        stdout(&one)
    );

    let mixed = check(
        dir.path(),
        &["more", "-f", "a.yaml", "-"],
        secret("c").as_bytes(),
    );
    assert_eq!(mixed.status.code(), Some(0), "{}", stderr(&mixed));
    let text = stdout(&mixed);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(": Secret default/").nth(1))
        .filter_map(|rest| rest.split(':').next())
        .collect();
    assert_eq!(names, ["b", "a", "c"], "{text}");
    assert!(text.contains("\n3 objects: 3 allowed"), "{text}");
}

#[test]
fn check_without_inputs_says_how_to_name_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(dir.path(), &[], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: nothing to check"), "{err}");
    assert!(err.contains("secretgate check deploy/"), "{err}");
}

/// An API server at `http://127.0.0.1:PORT` that answers every request with `code`
/// (a `Status` as the real one sends), on a thread that ends with the test.
fn refusing_api_server(code: u16, reason: &'static str) -> String {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"projectpolicies.secretgate.io is forbidden: User \"dev\" cannot list resource \"projectpolicies\"","reason":"{reason}","code":{code}}}"#
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{address}")
}

#[test]
fn refused_credentials_and_missing_rbac_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (code, reason, says) in [
        (401, "Unauthorized", "refused the credentials"),
        (403, "Forbidden", "grant it the RBAC"),
    ] {
        let server = refusing_api_server(code, reason);
        let config = kubeconfig(dir.path(), &server);
        let out = run(
            dir.path(),
            &["audit", "--kubeconfig", config.to_str().expect("utf-8")],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: the API server at {server}")),
            "{err}"
        );
        assert!(first.contains(says), "{err}");
        // The server's own message, once, with its reason and code.
        assert!(
            err.contains(&format!(
                "cannot list resource \"projectpolicies\" ({reason}, {code})"
            )),
            "{err}"
        );
        assert_said_once(&err);
    }
}
