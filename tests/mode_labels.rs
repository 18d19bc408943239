//! `serve --label-namespaces` inside cluster mode's loop, against a mock API server
//! (tower-test): the leader labels each namespace with its policy's mode
//! (`secretgate.io/mode`) by server-side apply, only where the label is missing or wrong;
//! a follower writes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::leader::Switch;
use secretgate::metrics::Metrics;
use secretgate::mode_labels::LabelMetrics;
use secretgate::policy::Snapshot;
use secretgate::policy::watch::{Targets, run};
use serde_json::{Value, json};

#[path = "common/mock_api.rs"]
mod mock_api;
use mock_api::{body_json, eventually, list, reply};

type Writes = Arc<Mutex<Vec<(String, String, Value)>>>;

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": name, "resourceVersion": "1", "labels": labels}})
}

async fn mock(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>, writes: Writes) {
    let mut open = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        if uri.contains("watch=true") {
            open.push(send);
            continue;
        }
        let method = request.method().to_string();
        let body = body_json(request).await;
        let answer = if method != "GET" {
            writes
                .lock()
                .expect("lock")
                .push((method, uri.clone(), body.clone()));
            body
        } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
            list(
                "ProjectPolicyList",
                "secretgate.io/v1alpha1",
                json!([
                    {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                     "metadata": {"name": "team-a", "generation": 1},
                     "spec": {"namespaces": ["team-a", "team-a-dev"], "mode": "Warn"},
                     "status": {}},
                    {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                     "metadata": {"name": "team-c", "generation": 1},
                     "spec": {"namespaces": ["team-c"], "mode": "Audit"},
                     "status": {}}]),
            )
        } else if uri.starts_with("/api/v1/namespaces") {
            list(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                json!([
                    // Unlabelled: labelled Warn.
                    namespace("team-a", json!({})),
                    // Already right: left alone.
                    namespace("team-a-dev", json!({"secretgate.io/mode": "Warn"})),
                    // The default policy governs it: Enforce, and it says so already.
                    namespace("team-b", json!({"secretgate.io/mode": "Enforce"})),
                    // Someone wrote Audit on an Enforce namespace: put back.
                    namespace("kube-public", json!({"secretgate.io/mode": "Audit"})),
                    namespace("team-c", json!({"other": "kept"}))
                ]),
            )
        } else if uri.starts_with("/api/v1/serviceaccounts") {
            list("ServiceAccountList", "v1", json!([]))
        } else {
            list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([]))
        };
        send.send_response(reply(200, &answer));
    }
}

async fn start(leads: bool) -> (Writes, Switch) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let writes: Writes = Arc::default();
    tokio::spawn(mock(handle, writes.clone()));
    let registry = prometheus::Registry::new();
    let (switch, leadership) = Switch::new(leads);
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(registry.clone()).expect("metrics")),
        leadership,
        instance: None,
        audit: None,
        mode_labels: Some(LabelMetrics::new(&registry).expect("metrics")),
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));
    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");
    (writes, switch)
}

fn label_writes(writes: &Writes) -> Vec<(String, String, Value)> {
    writes
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, uri, _)| uri.starts_with("/api/v1/namespaces/"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_leader_labels_namespaces_whose_label_is_missing_or_wrong() {
    let (writes, _switch) = start(true).await;
    assert!(
        eventually(|| label_writes(&writes).len() >= 3).await,
        "{:?}",
        label_writes(&writes)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut written: Vec<(String, String)> = label_writes(&writes)
        .into_iter()
        .map(|(method, uri, body)| {
            assert_eq!(method, "PATCH");
            assert!(
                uri.contains("fieldManager=secretgate-mode-labels") && uri.contains("force=true"),
                "{uri}"
            );
            // Only the one label: server-side apply leaves the others to their owners.
            let labels = body["metadata"]["labels"]
                .as_object()
                .expect("labels")
                .clone();
            assert_eq!(labels.len(), 1, "{body}");
            (
                body["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                labels["secretgate.io/mode"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            ("kube-public".to_owned(), "Enforce".to_owned()),
            ("team-a".to_owned(), "Warn".to_owned()),
            ("team-c".to_owned(), "Audit".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_follower_writes_no_label_until_it_leads() {
    let (writes, switch) = start(false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(label_writes(&writes).is_empty());
    switch.set(true, "acquired");
    assert!(eventually(|| label_writes(&writes).len() >= 3).await);
}
