//! The instance-secret executor against a mock API server (tower-test): the requests each
//! action makes (POST, PUT with the planned resourceVersion, DELETE with the planned uid
//! as a precondition), what a copy carries, races and missing objects skipped, one read
//! per source, an error on one action reported without stopping the others, and no
//! value in any log line, error or report.

use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use base64::Engine as _;
use kube::client::Body;
use secretgate::instance::{
    Action, Applied, ApplyError, Cause, Copy, Op, Outcome, apply, source_hash,
};
use secretgate::policy::SecretReference;
use serde_json::{Value, json};

const PLANTED_PASSWORD: &str = "PLANTED-password";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn docker_config() -> String {
    json!({"auths": {"registry.example.com": {"username": "u", "password": PLANTED_PASSWORD}}})
        .to_string()
}

/// The platform team's source: labels and a last-applied annotation of its own (which
/// holds the value, as `kubectl apply` writes it).
fn source_secret() -> Value {
    let data = json!({".dockerconfigjson": b64(&docker_config())});
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": "regcred", "namespace": "secretgate", "resourceVersion": "42", "uid": "src-uid",
            "labels": {"team": "platform"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    json!({"apiVersion": "v1", "kind": "Secret", "data": data}).to_string(),
                "owner": "platform"
            }
        },
        "data": data
    })
}

fn expected_hash() -> String {
    let config = docker_config();
    source_hash(
        Some("kubernetes.io/dockerconfigjson"),
        [(".dockerconfigjson", config.as_bytes())],
    )
}

fn status(code: u16, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
           "reason": reason, "message": "STATUS-MESSAGE (an API server's message may quote the request)"})
}

/// One request the mock saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    body: Value,
}

type Answer = Arc<dyn Fn(&str, &str, &Value) -> (u16, Value) + Send + Sync>;

/// Answers each request with `answer(method, path, body)` and records it.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request JSON")
        };
        let (code, reply) = answer(&method, &path, &body);
        seen.lock().expect("lock").push(Seen { method, path, body });
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(reply.to_string().into_bytes()))
                .expect("response"),
        );
    }
}

/// The usual cluster: the source exists; a write answers with what was written, a
/// delete with a Success status.
fn cluster(method: &str, path: &str, body: &Value) -> (u16, Value) {
    match (method, path) {
        ("GET", "/api/v1/namespaces/secretgate/secrets/regcred") => (200, source_secret()),
        ("GET", p) if p.starts_with("/api/v1/namespaces/secretgate/secrets/") => {
            (404, status(404, "NotFound"))
        }
        ("POST", _) => (201, body.clone()),
        ("PUT", _) => (200, body.clone()),
        ("DELETE", _) => (
            200,
            json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200}),
        ),
        _ => panic!("unexpected request {method} {path}"),
    }
}

/// Runs `actions` against a mock answering with `answer`, with logs captured.
async fn run(
    actions: &[Action],
    answer: impl Fn(&str, &str, &Value) -> (u16, Value) + Send + Sync + 'static,
) -> (Applied, Vec<Seen>, String) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(api_server(handle, Arc::new(answer), seen.clone()));
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let applied = {
        let _guard = tracing::subscriber::set_default(subscriber);
        apply(&client, actions).await
    };
    drop(client);
    server.await.expect("mock server");
    let seen = seen.lock().expect("lock").clone();
    let logs = logs.text();
    // Nothing of the values anywhere: logs (at trace level), errors, the report.
    // Nor the API server's messages in what secretgate says (kube logs them at debug).
    let ours: String = logs
        .lines()
        .filter(|l| l.contains("secretgate::"))
        .collect::<Vec<_>>()
        .join("\n");
    let report = format!("{applied:?} {}", errors_text(&applied));
    for text in [&logs, &ours, &report] {
        for planted in ["PLANTED", &b64(&docker_config())[..16]] {
            assert!(!text.contains(planted), "{planted} in:\n{text}");
        }
    }
    for text in [&ours, &report] {
        assert!(!text.contains("STATUS-MESSAGE"), "{text}");
    }
    (applied, seen, logs)
}

fn errors_text(applied: &Applied) -> String {
    applied
        .errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Log output of one test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

fn regcred() -> SecretReference {
    SecretReference {
        namespace: "secretgate".into(),
        name: "regcred".into(),
    }
}

fn copy(namespace: &str, name: &str, source: SecretReference) -> Copy {
    Copy {
        namespace: namespace.into(),
        name: name.into(),
        policy: "team-a".into(),
        source,
        source_version: Some("41".into()),
    }
}

fn create(namespace: &str) -> Action {
    Action::Create(copy(namespace, "regcred", regcred()))
}

fn update(namespace: &str, resource_version: &str) -> Action {
    Action::Update {
        copy: copy(namespace, "regcred", regcred()),
        resource_version: Some(resource_version.into()),
    }
}

fn delete(namespace: &str, name: &str, uid: &str) -> Action {
    Action::Delete {
        namespace: namespace.into(),
        name: name.into(),
        uid: Some(uid.into()),
    }
}

fn requests(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

/// What every copy of the source carries.
fn assert_copy(body: &Value, namespace: &str) {
    let metadata = &body["metadata"];
    assert_eq!(metadata["name"], "regcred");
    assert_eq!(metadata["namespace"], namespace);
    assert_eq!(
        metadata["labels"],
        json!({"app.kubernetes.io/managed-by": "secretgate"})
    );
    assert_eq!(
        metadata["annotations"],
        json!({
            "secretgate.io/policy": "team-a",
            "secretgate.io/source": "secretgate/regcred",
            "secretgate.io/source-version": "42",
            "secretgate.io/source-hash": expected_hash(),
        })
    );
    assert!(metadata.get("uid").is_none(), "{body}");
    assert_eq!(body["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(body["data"], source_secret()["data"]);
    assert!(body.get("immutable").is_none(), "{body}");
    assert!(body.get("stringData").is_none(), "{body}");
    assert!(!body.to_string().contains("last-applied"), "{body}");
    assert!(!body.to_string().contains("platform"), "{body}");
}

#[tokio::test]
async fn create_posts_the_copy_with_its_labels_annotations_type_and_data() {
    let (applied, seen, logs) = run(&[create("team-a-dev")], cluster).await;
    assert_eq!(
        requests(&seen),
        pairs(&[
            ("GET", "/api/v1/namespaces/secretgate/secrets/regcred"),
            ("POST", "/api/v1/namespaces/team-a-dev/secrets"),
        ])
    );
    assert_copy(&seen[1].body, "team-a-dev");
    assert!(seen[1].body["metadata"].get("resourceVersion").is_none());
    assert_eq!(applied.count(Outcome::Created), 1);
    assert_eq!(applied.writes(), 1);
    assert!(applied.errors.is_empty());
    let line = logs
        .lines()
        .find(|l| l.contains("instance secret copy created"))
        .unwrap_or_else(|| panic!("no log line:\n{logs}"));
    for part in [
        "INFO",
        "copy=team-a-dev/regcred",
        "source=secretgate/regcred",
        "policy=team-a",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

#[tokio::test]
async fn update_puts_the_copy_with_the_planned_resource_version() {
    let (applied, seen, logs) = run(&[update("team-a-dev", "7")], cluster).await;
    assert_eq!(
        requests(&seen),
        pairs(&[
            ("GET", "/api/v1/namespaces/secretgate/secrets/regcred"),
            ("PUT", "/api/v1/namespaces/team-a-dev/secrets/regcred"),
        ])
    );
    assert_copy(&seen[1].body, "team-a-dev");
    assert_eq!(seen[1].body["metadata"]["resourceVersion"], "7");
    assert_eq!(applied.count(Outcome::Updated), 1);
    assert!(logs.contains("instance secret copy updated"), "{logs}");
}

#[tokio::test]
async fn delete_carries_the_uid_as_a_precondition() {
    let (applied, seen, logs) = run(&[delete("team-b", "old", "uid-1")], cluster).await;
    assert_eq!(
        requests(&seen),
        pairs(&[("DELETE", "/api/v1/namespaces/team-b/secrets/old")])
    );
    assert_eq!(seen[0].body["preconditions"], json!({"uid": "uid-1"}));
    assert_eq!(applied.count(Outcome::Deleted), 1);
    assert!(
        logs.contains("instance secret copy deleted") && logs.contains("copy=team-b/old"),
        "{logs}"
    );
}

#[tokio::test]
async fn conflicts_and_missing_objects_are_skipped_not_errors() {
    let actions = [
        // Created by someone since the plan.
        create("taken"),
        // Changed since the plan.
        update("moved", "7"),
        // Deleted since the plan.
        update("gone", "7"),
        // Already deleted.
        delete("team-b", "old", "uid-1"),
        // Replaced by another secret since the plan (uid precondition fails).
        delete("team-b", "replaced", "uid-2"),
        // The source is gone.
        Action::Create(copy(
            "team-a-dev",
            "other",
            SecretReference {
                namespace: "secretgate".into(),
                name: "deleted-source".into(),
            },
        )),
    ];
    let (applied, seen, _) = run(&actions, |method, path, body| match (method, path) {
        ("POST", "/api/v1/namespaces/taken/secrets") => (409, status(409, "AlreadyExists")),
        ("PUT", "/api/v1/namespaces/moved/secrets/regcred") => (409, status(409, "Conflict")),
        ("PUT", "/api/v1/namespaces/gone/secrets/regcred") => (404, status(404, "NotFound")),
        ("DELETE", "/api/v1/namespaces/team-b/secrets/old") => (404, status(404, "NotFound")),
        ("DELETE", "/api/v1/namespaces/team-b/secrets/replaced") => (409, status(409, "Conflict")),
        _ => cluster(method, path, body),
    })
    .await;
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    assert_eq!(applied.count(Outcome::Raced), 4);
    assert_eq!(applied.count(Outcome::AlreadyGone), 1);
    assert_eq!(applied.count(Outcome::SourceGone), 1);
    assert_eq!(applied.writes(), 0);
    // Nothing written for the missing source.
    assert!(
        !seen
            .iter()
            .any(|s| s.method != "GET" && s.path.starts_with("/api/v1/namespaces/team-a-dev")),
        "{:?}",
        requests(&seen)
    );
}

#[tokio::test]
async fn a_source_is_read_once_for_all_its_copies() {
    let actions = [
        create("team-a-dev"),
        create("team-a-prod"),
        update("team-a-test", "3"),
        Action::Create(copy("team-b", "pull", regcred())),
    ];
    let (applied, seen, _) = run(&actions, cluster).await;
    let gets = seen.iter().filter(|s| s.method == "GET").count();
    assert_eq!(gets, 1, "{:?}", requests(&seen));
    assert_eq!(applied.count(Outcome::Created), 3);
    assert_eq!(applied.count(Outcome::Updated), 1);
    let posted: Vec<&Value> = seen
        .iter()
        .filter(|s| s.method != "GET")
        .map(|s| &s.body)
        .collect();
    assert_eq!(posted.len(), 4);
    for body in posted {
        assert_eq!(
            body["metadata"]["annotations"]["secretgate.io/source-hash"],
            expected_hash()
        );
    }
}

#[tokio::test]
async fn an_api_error_on_one_action_is_reported_and_the_others_go_on() {
    let actions = [
        create("team-a-dev"),
        create("team-a-prod"),
        update("team-a-test", "3"),
        delete("team-b", "old", "uid-1"),
    ];
    let (applied, seen, logs) = run(&actions, |method, path, body| match (method, path) {
        ("POST", "/api/v1/namespaces/team-a-dev/secrets") => (500, status(500, "InternalError")),
        ("PUT", "/api/v1/namespaces/team-a-test/secrets/regcred") => {
            (403, status(403, "Forbidden"))
        }
        _ => cluster(method, path, body),
    })
    .await;
    assert_eq!(applied.count(Outcome::Failed), 2);
    assert_eq!(applied.count(Outcome::Created), 1);
    assert_eq!(applied.count(Outcome::Deleted), 1);
    assert_eq!(
        applied.errors,
        vec![
            ApplyError::Write {
                op: Op::Create,
                target: "team-a-dev/regcred".into(),
                cause: Cause::Api {
                    code: 500,
                    reason: "InternalError".into()
                },
            },
            ApplyError::Write {
                op: Op::Update,
                target: "team-a-test/regcred".into(),
                cause: Cause::Api {
                    code: 403,
                    reason: "Forbidden".into()
                },
            },
        ]
    );
    assert_eq!(
        applied.errors[0].to_string(),
        "cannot create copy team-a-dev/regcred: the API server answered 500 InternalError"
    );
    assert_eq!(applied.errors[1].target(), "team-a-test/regcred");
    assert_eq!(seen.len(), 5, "{:?}", requests(&seen));
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{logs}");
    assert!(warnings[0].contains("team-a-dev/regcred"), "{logs}");
}

#[tokio::test]
async fn a_source_that_cannot_be_read_fails_its_copies_only() {
    let other = SecretReference {
        namespace: "secretgate".into(),
        name: "flaky".into(),
    };
    let actions = [
        Action::Create(copy("team-a-dev", "flaky", other.clone())),
        Action::Create(copy("team-a-prod", "flaky", other)),
        create("team-a-dev"),
    ];
    let (applied, seen, _) = run(&actions, |method, path, body| match (method, path) {
        ("GET", "/api/v1/namespaces/secretgate/secrets/flaky") => {
            (503, status(503, "ServiceUnavailable"))
        }
        _ => cluster(method, path, body),
    })
    .await;
    assert_eq!(
        requests(&seen),
        pairs(&[
            ("GET", "/api/v1/namespaces/secretgate/secrets/flaky"),
            ("GET", "/api/v1/namespaces/secretgate/secrets/regcred"),
            ("POST", "/api/v1/namespaces/team-a-dev/secrets"),
        ])
    );
    assert_eq!(applied.count(Outcome::Failed), 2);
    assert_eq!(applied.count(Outcome::Created), 1);
    assert_eq!(
        applied.errors[1].to_string(),
        "cannot read source secretgate/flaky for copy team-a-prod/flaky: \
         the API server answered 503 ServiceUnavailable"
    );
}

#[tokio::test]
async fn a_copy_that_cannot_change_in_place_is_deleted_by_version_and_created_again() {
    // The copy in the cluster is immutable: the PUT is refused as invalid.
    let (applied, seen, logs) = run(&[update("team-a-dev", "7")], |method, path, body| {
        match (method, path) {
            ("PUT", _) => (422, status(422, "Invalid")),
            _ => cluster(method, path, body),
        }
    })
    .await;
    assert_eq!(
        requests(&seen),
        pairs(&[
            ("GET", "/api/v1/namespaces/secretgate/secrets/regcred"),
            ("PUT", "/api/v1/namespaces/team-a-dev/secrets/regcred"),
            ("DELETE", "/api/v1/namespaces/team-a-dev/secrets/regcred"),
            ("POST", "/api/v1/namespaces/team-a-dev/secrets"),
        ])
    );
    assert_eq!(
        seen[2].body["preconditions"],
        json!({"resourceVersion": "7"})
    );
    assert_copy(&seen[3].body, "team-a-dev");
    assert_eq!(applied.count(Outcome::Recreated), 1);
    assert!(logs.contains("instance secret copy recreated"), "{logs}");

    // An immutable source: its copies are immutable, so no PUT is tried.
    let immutable = |method: &str, path: &str, body: &Value| match (method, path) {
        ("GET", "/api/v1/namespaces/secretgate/secrets/regcred") => {
            let mut source = source_secret();
            source["immutable"] = json!(true);
            (200, source)
        }
        _ => cluster(method, path, body),
    };
    let (applied, seen, _) = run(&[update("team-a-dev", "7"), create("team-b")], immutable).await;
    assert_eq!(
        requests(&seen),
        pairs(&[
            ("GET", "/api/v1/namespaces/secretgate/secrets/regcred"),
            ("DELETE", "/api/v1/namespaces/team-a-dev/secrets/regcred"),
            ("POST", "/api/v1/namespaces/team-a-dev/secrets"),
            ("POST", "/api/v1/namespaces/team-b/secrets"),
        ])
    );
    assert_eq!(seen[2].body["immutable"], true);
    assert_eq!(seen[3].body["immutable"], true);
    assert_eq!(applied.count(Outcome::Recreated), 1);
    assert_eq!(applied.count(Outcome::Created), 1);

    // Replaced by another secret since the plan: the versioned delete is refused, nothing
    // is created.
    let replaced = |method: &str, path: &str, body: &Value| match (method, path) {
        ("PUT", _) => (422, status(422, "Invalid")),
        ("DELETE", _) => (409, status(409, "Conflict")),
        _ => cluster(method, path, body),
    };
    let (applied, seen, _) = run(&[update("team-a-dev", "7")], replaced).await;
    assert_eq!(applied.count(Outcome::Raced), 1);
    assert!(!seen.iter().any(|s| s.method == "POST"));
}

#[tokio::test]
async fn nothing_is_deleted_without_a_precondition() {
    let actions = [Action::Delete {
        namespace: "team-b".into(),
        name: "old".into(),
        uid: None,
    }];
    let (applied, seen, _) = run(&actions, cluster).await;
    assert!(seen.is_empty());
    assert_eq!(applied.count(Outcome::Failed), 1);
    assert_eq!(
        applied.errors[0].to_string(),
        "will not delete copy team-b/old: no uid or resourceVersion to make it conditional"
    );
}
