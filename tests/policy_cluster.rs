//! Cluster mode against a mock API server (kube-rs's tower-test pattern): LIST answers
//! fill the caches, the service turns ready after the first sync of all three, the
//! snapshot follows the ProjectPolicies, and an invalid policy gets its status patched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::metrics::Metrics;
use secretgate::policy::watch::{Targets, run};
use secretgate::policy::{Mode, Snapshot};
use serde_json::json;
use tokio::sync::mpsc;

fn list(kind: &str, api_version: &str, items: serde_json::Value) -> Vec<u8> {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
        .to_string()
        .into_bytes()
}

fn meta_list(items: serde_json::Value) -> Vec<u8> {
    list("PartialObjectMetadataList", "meta.k8s.io/v1", items)
}

/// Answers LISTs, holds WATCHes open (no events), and reports PATCH bodies.
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    patches: mpsc::UnboundedSender<(String, serde_json::Value)>,
) {
    let mut open_watches = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        let method = request.method().clone();
        if uri.contains("watch=true") {
            open_watches.push(send);
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
                json!([
                    {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                     "metadata": {"name": "team-a", "generation": 1},
                     "spec": {"namespaceSelector": {"matchLabels": {"project": "a"}}, "mode": "Warn"}},
                    {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                     "metadata": {"name": "broken", "generation": 7},
                     "spec": {"namespaces": ["b"], "secrets": {"ssh": {"minRsaBits": 1}}}}
                ]),
            )
        } else if uri.starts_with("/api/v1/namespaces") {
            meta_list(json!([{"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "a-dev", "labels": {"project": "a"}}}]))
        } else if uri.starts_with("/api/v1/secrets") {
            meta_list(json!([{"apiVersion": "v1", "kind": "PartialObjectMetadata",
                              "metadata": {"name": "pull", "namespace": "a-dev"}}]))
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
    tokio::spawn(api_server(handle, patches_tx));
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
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
    assert_eq!(
        snapshot.policy_count(),
        1,
        "the invalid policy is not in force"
    );

    let mut seen = Vec::new();
    while seen.len() < 2 {
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
        "spec.secrets.ssh.minRsaBits: 1 is outside 1024..16384"
    );
    assert_eq!(broken["status"]["observedGeneration"], 7);
    assert_eq!(seen[1].1["status"]["conditions"][0]["status"], "True");
}
