//! The instance-secret controller inside cluster mode's loop, against a mock API server
//! (tower-test): after the first sync, the leader copies the source into the project's
//! namespace, leaves a hand-made secret of the same name alone, and a follower writes
//! nothing until it becomes the leader. Admission sees the copy as existing before it is
//! created.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use base64::Engine as _;
use kube::client::Body;
use secretgate::instance::InstanceMetrics;
use secretgate::leader::Switch;
use secretgate::metrics::Metrics;
use secretgate::policy::Snapshot;
use secretgate::policy::watch::{InstanceTargets, Targets, run};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(20);

async fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

fn list(kind: &str, api_version: &str, items: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"resourceVersion": "1"}, "items": items})
}

fn meta(namespace: &str, name: &str, extra: Value) -> Value {
    let mut metadata = json!({"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                              "resourceVersion": "5"});
    if let (Some(m), Some(e)) = (metadata.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    json!({"apiVersion": "v1", "kind": "PartialObjectMetadata", "metadata": metadata})
}

/// Writes the mock received: (method, uri, body).
type Writes = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn cluster(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    writes: Writes,
) {
    let mut open = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        let method = request.method().to_string();
        if uri.contains("watch=true") {
            open.push(send);
            continue;
        }
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let reply = if method != "GET" {
            writes
                .lock()
                .expect("lock")
                .push((method.clone(), uri.clone(), body.clone()));
            body
        } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
            list(
                "ProjectPolicyList",
                "secretgate.io/v1alpha1",
                json!([{"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                        "metadata": {"name": "team-a", "generation": 1},
                        "spec": {"namespaceSelector": {"matchLabels": {"project": "team-a"}},
                                 "instanceSecrets": [
                                     {"source": {"namespace": "secretgate", "name": "regcred"}}]},
                        "status": {}}]),
            )
        } else if uri.starts_with("/api/v1/namespaces/secretgate/secrets/regcred") {
            let data = base64::engine::general_purpose::STANDARD.encode(r#"{"auths":{}}"#);
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                   "metadata": {"name": "regcred", "namespace": "secretgate", "resourceVersion": "5",
                                "labels": {"team": "platform"}},
                   "data": {".dockerconfigjson": data}})
        } else if uri.starts_with("/api/v1/namespaces") {
            list(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                json!([
                    {"apiVersion": "v1", "kind": "PartialObjectMetadata",
                     "metadata": {"name": "secretgate"}},
                    {"apiVersion": "v1", "kind": "PartialObjectMetadata",
                     "metadata": {"name": "team-a", "labels": {"project": "team-a"}}},
                    {"apiVersion": "v1", "kind": "PartialObjectMetadata",
                     "metadata": {"name": "team-a-dev", "labels": {"project": "team-a"}}}
                ]),
            )
        } else if uri.starts_with("/api/v1/secrets") {
            list(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                json!([
                    meta("secretgate", "regcred", json!({})),
                    // Hand-made: never touched.
                    meta("team-a", "regcred", json!({}))
                ]),
            )
        } else if uri.starts_with("/api/v1/serviceaccounts") {
            list("ServiceAccountList", "v1", json!([]))
        } else {
            list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([]))
        };
        send.send_response(
            Response::builder()
                .status(if method == "POST" { 201 } else { 200 })
                .body(Body::from(reply.to_string().into_bytes()))
                .expect("response"),
        );
    }
}

#[tokio::test]
async fn the_leader_copies_the_source_and_leaves_hand_made_secrets_alone() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let writes: Writes = Arc::default();
    tokio::spawn(cluster(handle, writes.clone()));
    let (switch, leadership) = Switch::new(false);
    let registry = prometheus::Registry::new();
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(registry.clone()).expect("metrics")),
        leadership,
        instance: Some(InstanceTargets {
            allowed_sources: ["secretgate".to_owned()].into(),
            metrics: InstanceMetrics::new(&registry).expect("metrics"),
        }),
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));
    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");

    // Admission already counts the copy as existing (no "does not exist" warning).
    assert!(
        targets
            .policies
            .load()
            .secrets
            .contains("team-a-dev", "regcred")
    );
    let rendered = || {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode")
    };
    assert!(
        eventually(
            || rendered().contains(r#"secretgate_instance_secret_copies{state="conflict"} 1"#)
        )
        .await,
        "{}",
        rendered()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copies = |w: &Writes| {
        w.lock()
            .expect("lock")
            .iter()
            .filter(|(m, uri, _)| m == "POST" && uri.contains("/secrets"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(copies(&writes).is_empty(), "a follower writes nothing");

    switch.set(true, "acquired");
    assert!(
        eventually(|| !copies(&writes).is_empty()).await,
        "the leader copies"
    );
    let all = copies(&writes);
    assert_eq!(all.len(), 1, "only team-a-dev: {all:?}");
    let (_, uri, body) = &all[0];
    assert!(
        uri.starts_with("/api/v1/namespaces/team-a-dev/secrets"),
        "{uri}"
    );
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "secretgate"
    );
    assert_eq!(
        body["metadata"]["labels"].get("team"),
        None,
        "no source labels"
    );
    assert_eq!(
        body["metadata"]["annotations"]["secretgate.io/source"],
        "secretgate/regcred"
    );
    assert_eq!(
        body["metadata"]["annotations"]["secretgate.io/source-version"],
        "5"
    );
    assert_eq!(body["type"], "kubernetes.io/dockerconfigjson");
    let touched_team_a = writes
        .lock()
        .expect("lock")
        .iter()
        .any(|(_, uri, _)| uri.contains("/namespaces/team-a/secrets"));
    assert!(
        !touched_team_a,
        "the hand-made team-a/regcred is left alone"
    );
    // The conflict is in the policy's status, under the controller's own field manager.
    let status_write = || {
        writes
            .lock()
            .expect("lock")
            .iter()
            .find(|(m, uri, _)| {
                m == "PATCH"
                    && uri.contains("projectpolicies/team-a/status")
                    && uri.contains("secretgate-instance-secrets")
            })
            .cloned()
    };
    assert!(
        eventually(|| status_write().is_some()).await,
        "instance-secret status written"
    );
    let (_, _, status) = status_write().expect("written");
    let problems = status["status"]["instanceSecrets"]["problems"].to_string();
    assert!(
        problems.contains("team-a/regcred") && problems.contains("not managed by secretgate"),
        "{problems}"
    );
}

/// An event for one watched resource (`namespaces` or `secrets`), as the API server
/// streams it.
struct Event {
    resource: &'static str,
    kind: &'static str,
    object: Value,
}

/// A mock that answers lists as `cluster` does and, for watches, streams the events
/// the test sends (each watch request gets the events queued for its resource, then
/// ends; the watcher watches again).
async fn live_cluster(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    writes: Writes,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    source_version: Arc<Mutex<String>>,
) {
    use std::collections::HashMap;
    type Pending = tower_test::mock::SendResponse<Response<Body>>;
    let mut waiting: HashMap<&'static str, Vec<Pending>> = HashMap::new();
    let mut queued: HashMap<&'static str, Vec<String>> = HashMap::new();
    let resource_of = |uri: &str| {
        if uri.starts_with("/api/v1/namespaces?") {
            "namespaces"
        } else if uri.starts_with("/api/v1/secrets?") {
            "secrets"
        } else {
            "other"
        }
    };
    loop {
        tokio::select! {
            next = handle.next_request() => {
                let Some((request, send)) = next else { return };
                let uri = request.uri().to_string();
                if uri.contains("watch=true") {
                    let resource = resource_of(&uri);
                    match queued.get_mut(resource).filter(|q| !q.is_empty()) {
                        Some(lines) => {
                            let body = std::mem::take(lines).join("\n") + "\n";
                            send.send_response(Response::builder()
                                .body(Body::from(body.into_bytes())).expect("response"));
                        }
                        None => waiting.entry(resource).or_default().push(send),
                    }
                    continue;
                }
                let method = request.method().to_string();
                let bytes = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reply = if method != "GET" {
                    writes.lock().expect("lock").push((method.clone(), uri.clone(), body.clone()));
                    if method == "DELETE" {
                        json!({"apiVersion": "v1", "kind": "Status", "status": "Success"})
                    } else {
                        body
                    }
                } else if uri.starts_with("/api/v1/namespaces/secretgate/secrets/regcred") {
                    let version = source_version.lock().expect("lock").clone();
                    let data = base64::engine::general_purpose::STANDARD.encode(format!("v{version}"));
                    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                           "metadata": {"name": "regcred", "namespace": "secretgate",
                                        "resourceVersion": version},
                           "data": {"token": data}})
                } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
                    list("ProjectPolicyList", "secretgate.io/v1alpha1",
                        json!([{"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                                "metadata": {"name": "team-a", "generation": 1},
                                "spec": {"namespaceSelector": {"matchLabels": {"project": "team-a"}},
                                         "instanceSecrets": [
                                             {"source": {"namespace": "secretgate", "name": "regcred"}}]},
                                "status": {}}]))
                } else if uri.starts_with("/api/v1/namespaces") {
                    list("PartialObjectMetadataList", "meta.k8s.io/v1",
                        json!([{"apiVersion": "v1", "kind": "PartialObjectMetadata",
                                "metadata": {"name": "secretgate", "resourceVersion": "1"}}]))
                } else if uri.starts_with("/api/v1/secrets") {
                    list("PartialObjectMetadataList", "meta.k8s.io/v1",
                        json!([meta("secretgate", "regcred", json!({}))]))
                } else if uri.starts_with("/api/v1/serviceaccounts") {
                    list("ServiceAccountList", "v1", json!([]))
                } else {
                    list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([]))
                };
                send.send_response(Response::builder()
                    .status(if method == "POST" { 201 } else { 200 })
                    .body(Body::from(reply.to_string().into_bytes())).expect("response"));
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                let line = json!({"type": event.kind, "object": event.object}).to_string();
                match waiting.get_mut(event.resource).and_then(Vec::pop) {
                    Some(send) => send.send_response(Response::builder()
                        .body(Body::from(format!("{line}\n").into_bytes())).expect("response")),
                    None => queued.entry(event.resource).or_default().push(line),
                }
            }
        }
    }
}

fn namespace(name: &str, version: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": name, "resourceVersion": version, "labels": labels}})
}

#[tokio::test]
async fn copies_follow_namespaces_joining_and_leaving_and_the_source_rotating() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let writes: Writes = Arc::default();
    let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let source_version = Arc::new(Mutex::new("5".to_owned()));
    tokio::spawn(live_cluster(
        handle,
        writes.clone(),
        events_rx,
        source_version.clone(),
    ));
    let registry = prometheus::Registry::new();
    let (_switch, leadership) = Switch::new(true);
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(registry.clone()).expect("metrics")),
        leadership,
        instance: Some(InstanceTargets {
            allowed_sources: ["secretgate".to_owned()].into(),
            metrics: InstanceMetrics::new(&registry).expect("metrics"),
        }),
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));
    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");
    let writes_to = |method: &str| {
        writes
            .lock()
            .expect("lock")
            .iter()
            .filter(|(m, uri, _)| m == method && uri.contains("/namespaces/team-a-dev/secrets"))
            .cloned()
            .collect::<Vec<_>>()
    };

    // A namespace joins the project: its copy is created.
    let send = |resource, kind, object| {
        events
            .send(Event {
                resource,
                kind,
                object,
            })
            .expect("mock running");
    };
    send(
        "namespaces",
        "ADDED",
        namespace("team-a-dev", "10", json!({"project": "team-a"})),
    );
    assert!(
        eventually(|| !writes_to("POST").is_empty()).await,
        "copy created"
    );
    let (_, _, created) = writes_to("POST").remove(0);
    assert_eq!(
        created["metadata"]["annotations"]["secretgate.io/source-version"],
        "5"
    );
    let copy = |version: &str| {
        meta(
            "team-a-dev",
            "regcred",
            json!({"uid": "copy-uid", "resourceVersion": "20",
                   "labels": {"app.kubernetes.io/managed-by": "secretgate"},
                   "annotations": {"secretgate.io/source": "secretgate/regcred",
                                   "secretgate.io/policy": "team-a",
                                   "secretgate.io/source-version": version}}),
        )
    };
    send("secrets", "ADDED", copy("5"));

    // The source rotates: the copy is replaced, conditionally on its version.
    *source_version.lock().expect("lock") = "6".to_owned();
    send(
        "secrets",
        "MODIFIED",
        meta("secretgate", "regcred", json!({"resourceVersion": "6"})),
    );
    assert!(
        eventually(|| !writes_to("PUT").is_empty()).await,
        "copy updated"
    );
    let (_, _, replaced) = writes_to("PUT").remove(0);
    assert_eq!(
        replaced["metadata"]["annotations"]["secretgate.io/source-version"],
        "6"
    );
    assert_eq!(replaced["metadata"]["resourceVersion"], "20");
    send("secrets", "MODIFIED", copy("6"));

    // The namespace leaves the project: the copy is deleted, with its uid as precondition.
    send(
        "namespaces",
        "MODIFIED",
        namespace("team-a-dev", "11", json!({})),
    );
    assert!(
        eventually(|| !writes_to("DELETE").is_empty()).await,
        "copy deleted"
    );
    let (_, _, deleted) = writes_to("DELETE").remove(0);
    assert_eq!(deleted["preconditions"]["uid"], "copy-uid", "{deleted}");
    assert_eq!(writes_to("POST").len(), 1, "nothing created twice");
}
