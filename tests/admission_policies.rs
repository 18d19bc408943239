//! `serve --publish-admission-policies` inside cluster mode's loop, against a mock API
//! server (tower-test): the leader applies each policy's ValidatingAdmissionPolicy and
//! binding by server-side apply, writes nothing when the cluster already says it, deletes
//! the pairs it owns whose policy is gone (never a broken policy's), and a follower
//! writes nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::admission_policy::sync::{PublishMetrics, PublishTargets};
use secretgate::admission_policy::{Scope, plan};
use secretgate::leader::Switch;
use secretgate::metrics::Metrics;
use secretgate::policy::watch::{Targets, run};
use secretgate::policy::{Policy, Snapshot};
use serde_json::{Value, json};

#[path = "common/mock_api.rs"]
mod mock_api;
use mock_api::{body_json, eventually, list, reply};

type Writes = Arc<Mutex<Vec<(String, String, Value)>>>;

const VAP_PATH: &str = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies";
const BINDING_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings";

fn team_spec() -> Value {
    json!({"namespaces": ["team-a"], "mode": "Enforce",
           "secrets": {"name": {"prefix": "team-a-"}, "requiredLabels": ["app"]}})
}

fn policies() -> Value {
    json!([
        {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
         "metadata": {"name": "team", "generation": 1}, "spec": team_spec(), "status": {}},
        // No rule CEL can express: nothing published.
        {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
         "metadata": {"name": "lenient", "generation": 1},
         "spec": {"namespaces": ["other"]}, "status": {}},
        // Invalid with no good version: what it published stays.
        {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
         "metadata": {"name": "broken", "generation": 1},
         "spec": {"namespaces": ["legacy"], "bogus": 1}, "status": {}}
    ])
}

/// What the cluster holds of one kind: the objects the server would publish for `team`
/// as the API server returns them (with defaults and metadata it adds), plus `extra`.
fn cluster_objects(kind: &str, with_team: bool, extra: &[(&str, &str)]) -> Value {
    let mut items = Vec::new();
    if with_team {
        // Every policy of the cluster, as the server reads them: each one's CEL says that
        // the policies before it (by name) govern where they select.
        let policies = policies()
            .as_array()
            .expect("policies")
            .iter()
            .map(|p| {
                let name = p["metadata"]["name"].as_str().expect("name");
                serde_json::from_value(p["spec"].clone())
                    .ok()
                    .and_then(|spec| Policy::new(name, spec).ok())
                    .unwrap_or_else(|| Policy::broken(name, "invalid", Some(&p["spec"])))
            })
            .collect();
        let snapshot = Snapshot::build(policies, &BTreeMap::new(), Default::default());
        let published = &plan(&snapshot, &Scope::default()).published[0];
        let mut object = match kind {
            "ValidatingAdmissionPolicy" => serde_json::to_value(&published.policy_object),
            _ => serde_json::to_value(&published.binding),
        }
        .expect("json");
        object["metadata"]["resourceVersion"] = "7".into();
        object["metadata"]["uid"] = "u-7".into();
        object["spec"]["matchResources"]["matchPolicy"] = "Equivalent".into();
        object["spec"]["matchConstraints"]["matchPolicy"] = "Equivalent".into();
        items.push(object);
    }
    for (name, policy) in extra {
        items.push(
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name, "resourceVersion": "3",
                "labels": {"app.kubernetes.io/managed-by": "secretgate"},
                "annotations": {"secretgate.io/policy": policy}},
            "spec": {}}),
        );
    }
    list(
        &format!("{kind}List"),
        "admissionregistration.k8s.io/v1",
        Value::Array(items),
    )
}

/// The mock API server: `existing` says what the cluster holds of the published kinds
/// (`None`: it does not serve them, 404).
async fn mock(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    writes: Writes,
    existing: Option<(bool, Vec<(&'static str, &'static str)>)>,
) {
    let mut open = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        if uri.contains("watch=true") {
            open.push(send);
            continue;
        }
        let method = request.method().to_string();
        let body = body_json(request).await;
        let (status, answer) = if method != "GET" {
            writes
                .lock()
                .expect("lock")
                .push((method, uri.clone(), body.clone()));
            (200, body)
        } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
            (
                200,
                list("ProjectPolicyList", "secretgate.io/v1alpha1", policies()),
            )
        } else if uri.starts_with(VAP_PATH) || uri.starts_with(BINDING_PATH) {
            assert!(uri.contains("labelSelector=app.kubernetes.io"), "{uri}");
            let kind = match uri.starts_with(VAP_PATH) {
                true => "ValidatingAdmissionPolicy",
                false => "ValidatingAdmissionPolicyBinding",
            };
            match &existing {
                None => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "reason": "NotFound", "code": 404}),
                ),
                Some((with_team, extra)) => (200, cluster_objects(kind, *with_team, extra)),
            }
        } else if uri.starts_with("/api/v1/serviceaccounts") {
            (200, list("ServiceAccountList", "v1", json!([])))
        } else {
            (
                200,
                list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([])),
            )
        };
        send.send_response(reply(status, &answer));
    }
}

async fn start(
    leads: bool,
    existing: Option<(bool, Vec<(&'static str, &'static str)>)>,
) -> (Writes, Switch, prometheus::Registry) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let writes: Writes = Arc::default();
    tokio::spawn(mock(handle, writes.clone(), existing));
    let registry = prometheus::Registry::new();
    let (switch, leadership) = Switch::new(leads);
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(registry.clone()).expect("metrics")),
        leadership,
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: Some(PublishTargets {
            scope: Scope::default(),
            metrics: PublishMetrics::new(&registry).expect("metrics"),
        }),
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));
    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");
    (writes, switch, registry)
}

/// The writes to the admission registration API, as (method, path without query).
fn published(writes: &Writes) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = writes
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, uri, _)| uri.starts_with("/apis/admissionregistration.k8s.io/"))
        .map(|(method, uri, _)| {
            let path = uri.split('?').next().unwrap_or_default();
            (method.clone(), path.to_owned())
        })
        .collect();
    out.sort();
    out
}

fn patch(path: &str, name: &str) -> (String, String) {
    ("PATCH".to_owned(), format!("{path}/{name}"))
}

#[tokio::test]
async fn the_leader_applies_each_policy_pair_by_server_side_apply() {
    let (writes, _switch, registry) = start(true, Some((false, vec![]))).await;
    assert!(eventually(|| published(&writes).len() >= 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        published(&writes),
        [
            patch(VAP_PATH, "secretgate-team"),
            patch(BINDING_PATH, "secretgate-team"),
        ]
    );
    for (_, uri, body) in writes.lock().expect("lock").iter() {
        if uri.starts_with("/apis/admissionregistration.k8s.io/") {
            assert!(
                uri.contains("fieldManager=secretgate-admission-policies")
                    && uri.contains("force=true"),
                "{uri}"
            );
            assert_eq!(
                body["metadata"]["annotations"]["secretgate.io/policy"],
                "team"
            );
        }
    }
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("metrics text");
    assert!(
        text.contains("secretgate_admission_policy_writes_total{outcome=\"applied\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn nothing_is_written_when_the_cluster_already_says_it() {
    let (writes, _switch, _) = start(true, Some((true, vec![]))).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(published(&writes), []);
}

#[tokio::test]
async fn owned_pairs_whose_policy_is_gone_are_deleted_but_a_broken_policys_stay() {
    let extra = vec![("secretgate-gone", "gone"), ("secretgate-broken", "broken")];
    let (writes, _switch, _) = start(true, Some((true, extra))).await;
    assert!(eventually(|| published(&writes).len() >= 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        published(&writes),
        [
            ("DELETE".to_owned(), format!("{VAP_PATH}/secretgate-gone")),
            (
                "DELETE".to_owned(),
                format!("{BINDING_PATH}/secretgate-gone")
            ),
        ]
    );
}

#[tokio::test]
async fn a_follower_writes_nothing_until_it_leads() {
    let (writes, switch, _) = start(false, Some((false, vec![]))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(published(&writes), []);
    switch.set(true, "acquired");
    assert!(eventually(|| published(&writes).len() >= 2).await);
}

#[tokio::test]
async fn a_cluster_without_the_api_is_left_to_the_webhook() {
    let (writes, _switch, _) = start(true, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(published(&writes), []);
}

#[test]
fn the_command_prints_the_pairs_of_a_policy_file_for_gitops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("policy.yaml");
    std::fs::write(
        &file,
        "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata: {name: team}\n\
         spec: {namespaces: [team-a], secrets: {name: {prefix: team-a-}}}\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["admission-policies", "--policy"])
        .arg(&file)
        .args(["--excluded-namespaces", "secretgate,kube-system"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    assert_eq!(
        docs[1]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["secretgate", "kube-system"])
    );
    // A policy file that does not parse is refused, as `check` and `serve` refuse it.
    std::fs::write(&file, "kind: nothing\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["admission-policies", "--policy"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
}
