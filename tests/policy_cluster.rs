//! Cluster mode against a mock API server (kube-rs's tower-test pattern): LIST answers
//! fill the caches, the service turns ready after the first sync of all four (and not
//! before the ServiceAccounts are listed), the snapshot follows the ProjectPolicies,
//! holds each secret's labels and owner annotation and each service account's pull
//! secrets, and an invalid policy gets its status patched. WATCH events then change
//! policies, namespaces, secrets and service accounts; an invalid edit keeps the last
//! good policy in force; failing watches leave the snapshot as it was.
//!
//! A replica that restarts while a policy is invalid enforces the last good version its
//! status keeps; with no good version at all, Secret writes in its namespaces are denied
//! naming it, pods are admitted with a warning, and the metric and `/readyz` say so. The
//! policy webhook (`/validate-policy`) refuses an invalid policy over HTTPS.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::leader::Leadership;
use secretgate::metrics::Metrics;
use secretgate::policy::watch::{Targets, run};
use secretgate::policy::{Mode, Snapshot};
use serde_json::json;
use tokio::sync::mpsc;

use common::{Proto, TestServer, fixture};

fn list(kind: &str, api_version: &str, items: serde_json::Value) -> Vec<u8> {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
        .to_string()
        .into_bytes()
}

fn meta_list(items: serde_json::Value) -> Vec<u8> {
    list("PartialObjectMetadataList", "meta.k8s.io/v1", items)
}

/// The paths of the four resources cluster mode watches.
const RESOURCES: [&str; 4] = [
    "/apis/secretgate.io/v1alpha1/projectpolicies",
    "/api/v1/namespaces",
    "/api/v1/secrets",
    "/api/v1/serviceaccounts",
];

/// How the mock answers WATCH requests.
#[derive(Default)]
struct Watches {
    /// Events streamed by the first WATCH of a resource (by path prefix), after which
    /// the stream ends and the watcher watches again.
    first: Vec<(&'static str, Vec<serde_json::Value>)>,
    /// Later WATCHes get HTTP 500 (the API server is failing) instead of being held open.
    fail_later: bool,
    /// How many WATCHes got a 500, by resource path.
    failed: Arc<Mutex<HashMap<&'static str, usize>>>,
    /// The ProjectPolicies the LIST answers with, instead of [`default_policies`].
    policies: Option<serde_json::Value>,
    /// LISTs of this resource (by path prefix) are never answered: its cache never syncs.
    held: Option<&'static str>,
}

/// team-a (by selector), team-b (by name) and an invalid policy, `broken`.
fn default_policies() -> serde_json::Value {
    json!([
        {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
         "metadata": {"name": "team-a", "generation": 1},
         "spec": {"namespaceSelector": {"matchLabels": {"project": "a"}}, "mode": "Warn"}},
        {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
         "metadata": {"name": "team-b", "generation": 1},
         "spec": {"namespaces": ["b2"]}},
        {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
         "metadata": {"name": "broken", "generation": 7},
         "spec": {"namespaces": ["b"], "secrets": {"ssh": {"minRsaBits": 1}}}}
    ])
}

/// Answers LISTs, WATCHes as `watches` says, and reports PATCH bodies.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    patches: mpsc::UnboundedSender<(String, serde_json::Value)>,
    mut watches: Watches,
) {
    let mut open_watches = Vec::new();
    let mut held_lists = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        let method = request.method().clone();
        if watches.held.is_some_and(|p| uri.starts_with(p)) {
            held_lists.push(send);
            continue;
        }
        if uri.contains("watch=true") {
            let scripted = watches.first.iter().position(|(p, _)| uri.starts_with(p));
            if let Some(i) = scripted {
                let (_, events) = watches.first.remove(i);
                let lines: String = events.iter().map(|e| format!("{e}\n")).collect();
                send.send_response(Response::new(Body::from(lines.into_bytes())));
            } else if watches.fail_later {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "message": "etcd is down", "reason": "InternalError", "code": 500});
                let response = Response::builder()
                    .status(500)
                    .body(Body::from(status.to_string().into_bytes()))
                    .expect("response");
                send.send_response(response);
                let resource = RESOURCES
                    .into_iter()
                    .find(|r| uri.starts_with(r))
                    .expect("a watched resource");
                *watches
                    .failed
                    .lock()
                    .expect("lock")
                    .entry(resource)
                    .or_default() += 1;
            } else {
                open_watches.push(send);
            }
            continue;
        }
        let body = if method == "PATCH" {
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("patch body");
            let patch: serde_json::Value = serde_json::from_slice(&bytes).expect("patch JSON");
            let _ = patches.send((uri.clone(), patch.clone()));
            patch.to_string().into_bytes()
        } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
            list(
                "ProjectPolicyList",
                "secretgate.io/v1alpha1",
                watches.policies.clone().unwrap_or_else(default_policies),
            )
        } else if uri.starts_with("/api/v1/namespaces") {
            meta_list(json!([{"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "a-dev", "labels": {"project": "a"}}},
                             {"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "team-a", "labels": {"project": "team-a"}}}]))
        } else if uri.starts_with("/api/v1/secrets") {
            meta_list(json!([{"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "pull", "namespace": "a-dev"}},
                             {"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "deploy-key", "namespace": "a-dev",
                                           "labels": {"tier": "ci"},
                                           "annotations": {
                                               "secretgate.io/allowed-service-accounts": "ci-runner",
                                               "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}]))
        } else if uri.starts_with("/api/v1/serviceaccounts") {
            list(
                "ServiceAccountList",
                "v1",
                json!([{"metadata": {"name": "ci-runner", "namespace": "a-dev",
                                     "managedFields": [{"manager": "kubectl"}]},
                        "imagePullSecrets": [{"name": "pull"}],
                        "secrets": [{"name": "ci-runner-token"}]},
                       {"metadata": {"name": "default", "namespace": "a-dev"}}]),
            )
        } else {
            panic!("unexpected request {method} {uri}");
        };
        send.send_response(
            Response::builder()
                .body(Body::from(body))
                .expect("response"),
        );
    }
}

#[tokio::test]
async fn first_sync_makes_ready_and_invalid_policies_get_a_status() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (patches_tx, mut patches) = mpsc::unbounded_channel();
    tokio::spawn(api_server(handle, patches_tx, Watches::default()));
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
        leadership: Leadership::always(),
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(client, targets.clone()));

    for _ in 0..200 {
        if targets.ready.load(Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        targets.ready.load(Ordering::Acquire),
        "ready after the first sync"
    );
    let snapshot = targets.policies.load();
    assert_eq!(&*snapshot.for_namespace("a-dev").name, "team-a");
    assert_eq!(snapshot.for_namespace("a-dev").spec.mode, Mode::Warn);
    assert!(snapshot.secrets.contains("a-dev", "pull"));
    let key = snapshot
        .secrets
        .get("a-dev", "deploy-key")
        .expect("deploy-key indexed");
    assert_eq!(key.labels.get("tier").map(String::as_str), Some("ci"));
    assert_eq!(key.allowed_service_accounts.as_deref(), Some("ci-runner"));
    assert_eq!(
        snapshot.service_accounts.pull_secrets("a-dev", "ci-runner"),
        Some(&["pull".to_owned()][..])
    );
    assert_eq!(
        snapshot.service_accounts.pull_secrets("a-dev", "default"),
        Some(&[][..])
    );
    assert_eq!(&*snapshot.for_namespace("b2").name, "team-b");
    assert_eq!(
        snapshot.policy_count(),
        2,
        "the invalid policy is not in force"
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let patch = tokio::time::timeout(Duration::from_secs(5), patches.recv())
            .await
            .expect("status patches within 5s")
            .expect("patch");
        seen.push(patch);
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let (uri, broken) = &seen[0];
    assert!(
        uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies/broken/status"),
        "{uri}"
    );
    let condition = &broken["status"]["conditions"][0];
    assert_eq!(condition["type"], "Ready");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Invalid");
    assert_eq!(
        condition["message"],
        "spec.secrets.ssh.minRsaBits: 1 is outside 1024..16384 (no good version is known: \
         Secret writes in the namespaces it selects are denied until it is fixed)"
    );
    assert_eq!(broken["status"]["observedGeneration"], 7);
    assert!(broken["status"].get("lastGoodSpec").is_none());
    // Accepted policies keep their spec as the last good one.
    assert_eq!(
        seen[1].1["status"]["lastGoodSpec"],
        json!({"namespaceSelector": {"matchLabels": {"project": "a"}}, "mode": "Warn"})
    );
    // The broken policy still governs the namespace it names.
    assert_eq!(&*snapshot.for_namespace("b").name, "broken");
    assert!(snapshot.for_namespace("b").broken.is_some());
    assert_eq!(seen[1].1["status"]["conditions"][0]["status"], "True");
    assert_eq!(seen[2].1["status"]["conditions"][0]["status"], "True");
}

fn policy(
    name: &str,
    generation: i64,
    version: &str,
    spec: serde_json::Value,
) -> serde_json::Value {
    json!({"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
           "metadata": {"name": name, "generation": generation, "resourceVersion": version},
           "spec": spec})
}

fn meta(
    name: &str,
    namespace: Option<&str>,
    version: &str,
    labels: serde_json::Value,
) -> serde_json::Value {
    let mut metadata = json!({"name": name, "resourceVersion": version, "labels": labels});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": metadata})
}

fn service_account(
    name: &str,
    version: &str,
    pull_secrets: serde_json::Value,
) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": "a-dev", "resourceVersion": version},
           "imagePullSecrets": pull_secrets})
}

fn event(kind: &str, object: serde_json::Value) -> serde_json::Value {
    json!({"type": kind, "object": object})
}

/// Polls `done` on the published snapshot for up to 5 s.
async fn until(targets: &Targets, done: impl Fn(&Snapshot) -> bool) -> bool {
    for _ in 0..500 {
        if targets.ready.load(Ordering::Acquire) && done(&targets.policies.load()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn watch_events_update_the_snapshot_and_failing_watches_keep_it() {
    let failed = Arc::new(Mutex::new(HashMap::new()));
    let watches = Watches {
        first: vec![
            (
                "/apis/secretgate.io/v1alpha1/projectpolicies",
                vec![
                    // team-a turns invalid: its last good version (Warn) stays in force.
                    event(
                        "MODIFIED",
                        policy(
                            "team-a",
                            2,
                            "2",
                            json!({"namespaceSelector": {"matchLabels": {"project": "a"}},
                               "mode": "Enforce", "secrets": {"ssh": {"minRsaBits": 1}}}),
                        ),
                    ),
                    event(
                        "ADDED",
                        policy(
                            "team-c",
                            1,
                            "3",
                            json!({"namespaces": ["c"], "mode": "Audit"}),
                        ),
                    ),
                    event(
                        "DELETED",
                        policy("broken", 7, "4", json!({"namespaces": ["b"]})),
                    ),
                    // team-b was valid and in force: b2 falls back to the default.
                    event(
                        "DELETED",
                        policy("team-b", 1, "5", json!({"namespaces": ["b2"]})),
                    ),
                ],
            ),
            (
                "/api/v1/namespaces",
                vec![event(
                    "ADDED",
                    meta("a-prod", None, "5", json!({"project": "a"})),
                )],
            ),
            (
                "/api/v1/secrets",
                vec![
                    event("ADDED", meta("git-ssh", Some("a-dev"), "6", json!({}))),
                    event("DELETED", meta("pull", Some("a-dev"), "7", json!({}))),
                    // A label change reaches the index.
                    event(
                        "MODIFIED",
                        meta("deploy-key", Some("a-dev"), "8", json!({"tier": "prod"})),
                    ),
                ],
            ),
            (
                "/api/v1/serviceaccounts",
                vec![
                    event(
                        "MODIFIED",
                        service_account("ci-runner", "9", json!([{"name": "git-ssh"}])),
                    ),
                    event("DELETED", service_account("default", "10", json!([]))),
                ],
            ),
        ],
        fail_later: true,
        failed: failed.clone(),
        policies: None,
        held: None,
    };
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (patches_tx, mut patches) = mpsc::unbounded_channel();
    tokio::spawn(api_server(handle, patches_tx, watches));
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
        leadership: Leadership::always(),
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(client, targets.clone()));

    let followed = |s: &Snapshot| {
        s.policy_count() == 2
            && &*s.for_namespace("b2").name == "default"
            && &*s.for_namespace("c").name == "team-c"
            && &*s.for_namespace("a-prod").name == "team-a"
            && s.secrets.contains("a-dev", "git-ssh")
            && !s.secrets.contains("a-dev", "pull")
            && s.secrets
                .get("a-dev", "deploy-key")
                .is_some_and(|m| m.labels.get("tier").is_some_and(|t| t == "prod"))
            && s.service_accounts.pull_secrets("a-dev", "ci-runner")
                == Some(&["git-ssh".to_owned()][..])
            && s.service_accounts
                .pull_secrets("a-dev", "default")
                .is_none()
    };
    assert!(
        until(&targets, followed).await,
        "the snapshot follows the events"
    );
    let snapshot = targets.policies.load();
    let team_a = snapshot.for_namespace("a-dev");
    assert_eq!(&*team_a.name, "team-a");
    assert_eq!(
        team_a.spec.mode,
        Mode::Warn,
        "the last good team-a stays in force"
    );
    assert_eq!(snapshot.for_namespace("c").spec.mode, Mode::Audit);
    assert_eq!(
        &*snapshot.for_namespace("b").name,
        "default",
        "broken is gone"
    );

    // team-a's status says why its edit is not in force, for generation 2.
    let status = loop {
        let (uri, patch) = tokio::time::timeout(Duration::from_secs(5), patches.recv())
            .await
            .expect("status patches within 5s")
            .expect("patch");
        if uri.contains("/projectpolicies/team-a/status")
            && patch["status"]["observedGeneration"] == 2
        {
            break patch["status"].clone();
        }
    };
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(
        status["conditions"][0]["message"],
        "spec.secrets.ssh.minRsaBits: 1 is outside 1024..16384 (the last good version, \
         generation 1, stays in force)"
    );
    assert_eq!(status["lastGoodGeneration"], 1);
    assert_eq!(status["lastGoodSpec"]["mode"], "Warn");

    // Every watch now fails (500); each watcher retries with backoff (0.8 s and up) and
    // the snapshot stays as it was. Wait for two failures of each.
    let retried = || {
        let failed = failed.lock().expect("lock");
        RESOURCES
            .iter()
            .all(|r| failed.get(r).copied().unwrap_or(0) >= 2)
    };
    for _ in 0..200 {
        if retried() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        retried(),
        "each watcher retried against the failing server: {:?}",
        failed.lock().expect("lock")
    );
    assert!(targets.ready.load(Ordering::Acquire), "still ready");
    assert!(
        followed(&targets.policies.load()),
        "the snapshot is kept while watches fail"
    );
}

#[tokio::test]
async fn not_ready_until_the_service_accounts_are_listed() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (patches_tx, _patches) = mpsc::unbounded_channel();
    let watches = Watches {
        held: Some("/api/v1/serviceaccounts"),
        ..Watches::default()
    };
    tokio::spawn(api_server(handle, patches_tx, watches));
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
        leadership: Leadership::always(),
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(client, targets.clone()));
    // The other three caches sync at once; well past that, still not ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!targets.ready.load(Ordering::Acquire));
    assert_eq!(
        targets.policies.load().policy_count(),
        0,
        "nothing published"
    );
}

/// Cluster mode feeding a webhook server: the watchers publish into the server's state.
async fn serve_cluster(
    policies: serde_json::Value,
) -> (
    TestServer,
    mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) {
    let server = TestServer::start().await;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (patches_tx, patches) = mpsc::unbounded_channel();
    let watches = Watches {
        policies: Some(policies),
        ..Watches::default()
    };
    tokio::spawn(api_server(handle, patches_tx, watches));
    let targets = Targets {
        policies: server.state.policies.clone(),
        ready: server.state.ready.clone(),
        metrics: server.state.metrics.clone(),
        leadership: Leadership::always(),
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(client, targets));
    (server, patches)
}

/// Polls the server's snapshot for up to 5 s.
async fn until_served(server: &TestServer, done: impl Fn(&Snapshot) -> bool) {
    for _ in 0..500 {
        if done(&server.state.policies.load()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the snapshot never got there");
}

#[tokio::test]
async fn a_restarted_replica_enforces_the_last_good_spec_its_status_keeps() {
    let selector = json!({"matchLabels": {"project": "a"}});
    let policies = json!([{
        "apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
        "metadata": {"name": "team-a", "generation": 4, "uid": "u-a"},
        // Generation 4 is invalid (stored before the webhook and the CRD rules existed).
        "spec": {"namespaceSelector": selector, "mode": "Enforce",
                 "secrets": {"ssh": {"minRsaBits": 1}}},
        // Generation 3 was accepted by a replica that has since restarted.
        "status": {"observedGeneration": 3,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Accepted",
                                   "message": "the policy is in force", "observedGeneration": 3,
                                   "lastTransitionTime": "2025-01-01T00:00:00Z"}],
                   "lastGoodSpec": {"namespaceSelector": selector, "mode": "Warn"},
                   "lastGoodGeneration": 3}
    }]);
    let (server, mut patches) = serve_cluster(policies).await;
    until_served(&server, |s| s.policy_count() == 1).await;
    let snapshot = server.state.policies.load();
    let team_a = snapshot.for_namespace("a-dev");
    assert_eq!(&*team_a.name, "team-a");
    assert_eq!(team_a.spec.mode, Mode::Warn, "generation 3 is in force");
    assert!(snapshot.broken_policies().is_empty());

    // Over HTTPS: team-a's rules in Warn mode (no name rule: the secret is allowed).
    let mut secret = fixture(APP_CONFIG);
    in_namespace(&mut secret, "a-dev");
    let reply = server
        .client(Proto::Http1)
        .await
        .post("/validate", secret)
        .await;
    assert_eq!(reply.json()["response"]["allowed"], true);
    assert!(
        server
            .metrics()
            .await
            .contains("secretgate_broken_policies 0")
    );

    // The status says why generation 4 is not in force and keeps generation 3.
    let (uri, patch) = tokio::time::timeout(Duration::from_secs(5), patches.recv())
        .await
        .expect("a status patch within 5s")
        .expect("patch");
    assert!(uri.contains("/projectpolicies/team-a/status"), "{uri}");
    let status = &patch["status"];
    assert_eq!(status["observedGeneration"], 4);
    assert_eq!(status["lastGoodGeneration"], 3);
    assert_eq!(status["lastGoodSpec"]["mode"], "Warn");
    assert_eq!(
        status["conditions"][0]["message"],
        "spec.secrets.ssh.minRsaBits: 1 is outside 1024..16384 (the last good version, \
         generation 3, stays in force)"
    );
    server.stop().await;
}

/// Secret `app-config` (namespace `team-a` as recorded).
const APP_CONFIG: &str = "secret-create-generic-from-literal.json";
/// Pod `nginx` in `team-a`.
const NGINX: &str = "pod-create-kubectl-run-nginx.json";

/// Moves a recorded review to `namespace`.
fn in_namespace(body: &mut Vec<u8>, namespace: &str) {
    let mut review: serde_json::Value = serde_json::from_slice(body).expect("fixture JSON");
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    *body = review.to_string().into_bytes();
}

#[tokio::test]
async fn with_no_good_version_secrets_are_denied_and_pods_warned_naming_the_policy() {
    let policies = json!([{
        "apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
        "metadata": {"name": "team-a-policy", "generation": 1, "uid": "u-a"},
        "spec": {"namespaceSelector": {"matchLabels": {"project": "team-a"}},
                 "mode": "Sometimes",
                 "imagePullSecrets": [{"secretName": "pull"}]}
    }]);
    let (server, _patches) = serve_cluster(policies).await;
    until_served(&server, |s| !s.broken_policies().is_empty()).await;

    for proto in Proto::ALL {
        let mut client = server.client(proto).await;
        // Secrets in the namespaces it selects: denied, naming the broken policy.
        let reply = client.post("/validate", fixture(APP_CONFIG)).await;
        assert_eq!(reply.status, 200);
        let response = &reply.json()["response"];
        assert_eq!(response["allowed"], false, "{proto:?}");
        assert_eq!(response["status"]["code"], 403);
        let message = response["status"]["message"].as_str().expect("message");
        assert!(
            message.contains("policy \"team-a-policy\" governs this namespace but is invalid"),
            "{message}"
        );
        assert!(message.contains("unknown variant `Sometimes`"), "{message}");

        // Deleting stays possible.
        let reply = client
            .post("/validate", fixture("secret-delete.json"))
            .await;
        assert_eq!(reply.json()["response"]["allowed"], true);

        // Elsewhere the default policy decides as before.
        let mut elsewhere = fixture(APP_CONFIG);
        in_namespace(&mut elsewhere, "elsewhere");
        let reply = client.post("/validate", elsewhere).await;
        assert_eq!(reply.json()["response"]["allowed"], true);

        // Pods: admitted unpatched (mutation fails open by design), with a warning.
        let reply = client.post("/mutate", fixture(NGINX)).await;
        let response = &reply.json()["response"];
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none(), "{response}");
        let warnings = response["warnings"].as_array().expect("warnings");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .as_str()
                .expect("warning")
                .starts_with("policy \"team-a-policy\" is invalid and no good version"),
            "{warnings:?}"
        );
    }

    // The metric and /readyz (still 200, on both ports) say it.
    assert!(
        server
            .metrics()
            .await
            .contains("secretgate_broken_policies 1")
    );
    let (status, body) = server.ops_get("/readyz").await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("ok\nbroken policies: \"team-a-policy\""),
        "{body}"
    );
    let reply = server
        .client(Proto::Http2)
        .await
        .send("GET", "/readyz", None, Vec::new())
        .await;
    assert_eq!(reply.status, 200);
    assert!(String::from_utf8_lossy(&reply.body).contains("team-a-policy"));
    server.stop().await;
}

/// An AdmissionReview of a ProjectPolicy CREATE.
fn policy_review(name: &str, spec: serde_json::Value) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("uid-{name}"),
        "kind": {"group": "secretgate.io", "version": "v1alpha1", "kind": "ProjectPolicy"},
        "resource": {"group": "secretgate.io", "version": "v1alpha1", "resource": "projectpolicies"},
        "name": name, "operation": "CREATE", "userInfo": {"username": "admin"},
        "object": {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                   "metadata": {"name": name}, "spec": spec}
    }})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn the_policy_webhook_refuses_an_invalid_policy_with_every_problem() {
    let server = TestServer::start().await;
    let invalid = json!({
        "namespaces": ["Team_A"],
        "secrets": {"ssh": {"minRsaBits": 1, "allowedAlgorithms": ["dsa"]},
                    "imagePull": {"allowedRegistries": ["https://ghcr.io"]}},
        "gitSync": {"secretName": "git", "containers": []}
    });
    let problems = [
        ("spec.namespaces[0]", "\"Team_A\" is not a namespace name"),
        (
            "spec.secrets.imagePull.allowedRegistries[0]",
            "\"https://ghcr.io\" is not a registry host[:port] or *.domain[:port]",
        ),
        ("spec.secrets.ssh.minRsaBits", "1 is outside 1024..16384"),
        (
            "spec.secrets.ssh.allowedAlgorithms[0]",
            "\"dsa\" is not one of ed25519, ecdsa, rsa",
        ),
        (
            "spec.gitSync.containers",
            "must name at least one container (omit it for the default, git-sync)",
        ),
    ];
    for proto in Proto::ALL {
        let mut client = server.client(proto).await;
        let reply = client
            .post("/validate-policy", policy_review("team-a", invalid.clone()))
            .await;
        assert_eq!(reply.status, 200);
        let response = &reply.json()["response"];
        assert_eq!(response["uid"], "uid-team-a");
        assert_eq!(response["allowed"], false, "{proto:?}");
        assert_eq!(response["status"]["code"], 422);
        assert_eq!(response["status"]["reason"], "Invalid");
        let message = response["status"]["message"].as_str().expect("message");
        assert!(message.starts_with("ProjectPolicy \"team-a\" is invalid: "));
        let causes = response["status"]["details"]["causes"]
            .as_array()
            .expect("causes");
        assert_eq!(causes.len(), problems.len(), "{causes:?}");
        for (field, problem) in problems {
            assert!(
                message.contains(&format!("{field}: {problem}")),
                "{message}"
            );
            assert!(
                causes
                    .iter()
                    .any(|c| c["field"] == field && c["message"] == problem),
                "{field} not in {causes:?}"
            );
        }

        let valid = json!({"namespaceSelector": {"matchLabels": {"project": "a"}}, "mode": "Warn"});
        let reply = client
            .post("/validate-policy", policy_review("team-a", valid))
            .await;
        let response = &reply.json()["response"];
        assert_eq!(response["allowed"], true, "{response}");

        // A malformed review gets 400 like the other webhooks.
        let reply = client.post("/validate-policy", b"{}".to_vec()).await;
        assert_eq!(reply.status, 400);
    }
    let metrics = server.metrics().await;
    for line in [
        r#"secretgate_reviews_total{operation="CREATE",verdict="denied",webhook="policy"} 2"#,
        r#"secretgate_reviews_total{operation="CREATE",verdict="allowed",webhook="policy"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    server.stop().await;
}
