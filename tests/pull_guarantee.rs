//! The pull guarantee end to end over HTTPS: recorded pods through `/mutate` and then
//! `/validate-pods` as the API server chains them (mutating webhooks, reinvocation, then
//! validating webhooks on the final object), a later webhook rewriting an image,
//! `kubectl debug`, modes, mirror pods; and in cluster mode, the facts learnt from a
//! mock API server's pull secrets (field-selected by type, values never kept).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use base64::Engine as _;
use common::{Proto, TestServer, fixture};
use k8s_openapi::ByteString;
use kube::client::Body;
use secretgate::leader::Switch;
use secretgate::metrics::Metrics;
use secretgate::policy::pull_secrets::{PullSecretIndex, fact_of};
use secretgate::policy::watch::{Targets, run};
use secretgate::policy::{ProjectPolicySpec, Snapshot};
use serde_json::{Value, json};

#[path = "common/mock_api.rs"]
mod mock_api;
use mock_api::{eventually, list, reply};

const PASSWORD: &str = "pull-guarantee-s3cret";

/// team-a (Enforce): `regcred` is injected for ghcr.io images, and the guarantee also
/// covers the corporate registry.
fn policy(extra: Value) -> ProjectPolicySpec {
    let mut spec = json!({
        "imagePullSecrets": [{"secretName": "regcred", "registries": ["ghcr.io"]}],
        "pullGuarantee": {"registries": ["registry.corp.example:5000"]}
    });
    for (k, v) in extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    serde_json::from_value(spec).expect("policy spec")
}

fn docker_config(registry: &str) -> BTreeMap<String, ByteString> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("robot:{PASSWORD}"));
    let doc = json!({"auths": {registry: {"auth": auth}}});
    BTreeMap::from([(
        ".dockerconfigjson".to_owned(),
        ByteString(serde_json::to_vec(&doc).expect("json")),
    )])
}

/// The snapshot with `regcred` (serving ghcr.io) in team-a.
fn snapshot(spec: ProjectPolicySpec) -> Snapshot {
    let mut snapshot = Snapshot::with_fallback("team-a", spec);
    snapshot.pull_secrets = PullSecretIndex::known();
    snapshot.secrets.insert("team-a", "regcred");
    let fact = fact_of(
        Some("kubernetes.io/dockerconfigjson"),
        Some(&docker_config("ghcr.io")),
    )
    .expect("pull secret");
    snapshot.pull_secrets.insert("team-a", "regcred", fact);
    snapshot
}

/// The recorded `kubectl run … --image ghcr.io/example-org/tool:v2.3.1` CREATE.
fn ghcr_review() -> Value {
    serde_json::from_slice(&fixture("pod-create-ghcr.json")).expect("fixture")
}

async fn post(client: &mut common::Client, path: &str, review: &Value) -> Value {
    let reply = client
        .post(path, serde_json::to_vec(review).expect("JSON"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    reply.json()["response"].clone()
}

/// The review with the mutating webhook's patch applied to its object, as the API
/// server does before the validating webhooks.
fn mutated(review: &Value, response: &Value) -> Value {
    let mut review = review.clone();
    if let Some(b64) = response["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch");
        json_patch::patch(&mut review["request"]["object"], &patch).expect("patch applies");
    }
    review
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn warnings(response: &Value) -> String {
    response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_final_pod_is_checked_after_mutation() {
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let review = ghcr_review();

    // Mutation skipped (secretgate's mutating webhook down or timed out: it fails open):
    // the stored pod would have no pull secret for ghcr.io.
    let response = post(&mut client, "/validate-pods", &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403);
    let text = message(&response);
    assert!(
        text.contains(
            "spec.containers[0].image: container \"ghcr-tool\" pulls \
             \"ghcr.io/example-org/tool:v2.3.1\" from private registry ghcr.io, but no pull \
             secret of the pod serves it"
        ),
        "{text}"
    );

    // The mutating webhook ran: regcred injected, and the final pod passes.
    let patched = post(&mut client, "/mutate", &review).await;
    assert!(patched["patch"].is_string(), "{patched}");
    let final_pod = mutated(&review, &patched);
    assert_eq!(
        final_pod["request"]["object"]["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    let response = post(&mut client, "/validate-pods", &final_pod).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response["warnings"].is_null(), "{response}");

    // Reinvocation after a later webhook rewrote the image to a mirror in the corporate
    // registry: secretgate's mutation adds nothing (regcred is there), and the final pod
    // is refused, since regcred does not serve that registry.
    let mut rewritten = final_pod.clone();
    rewritten["request"]["object"]["spec"]["containers"][0]["image"] =
        json!("registry.corp.example:5000/mirror/tool:v2.3.1");
    let again = post(&mut client, "/mutate", &rewritten).await;
    assert!(again["patch"].is_null(), "nothing to add: {again}");
    let response = post(&mut client, "/validate-pods", &rewritten).await;
    assert_eq!(response["allowed"], false, "{response}");
    let text = message(&response);
    assert!(
        text.contains("private registry registry.corp.example:5000")
            && text.contains("(imagePullSecrets: \"regcred\")"),
        "{text}"
    );
    assert!(
        !text.contains(PASSWORD) && !text.contains("robot"),
        "{text}"
    );
    server.stop().await;
}

/// Every recorded Pod CREATE, as the API server chains the webhooks: without the
/// mutation (secretgate's mutating webhook unreachable: it fails open) the pods pulling
/// from a private registry with no pull secret are refused, each naming its container;
/// after the mutation every one passes.
#[tokio::test]
async fn recorded_pods_before_and_after_mutation() {
    let spec = policy(json!({"imagePullSecrets": [{"secretName": "regcred",
        "registries": ["ghcr.io", "registry.example.com:5000"]}]}));
    let mut snapshot = snapshot(spec);
    let both = {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("robot:{PASSWORD}"));
        let doc = json!({"auths": {"ghcr.io": {"auth": auth},
                                   "https://registry.example.com:5000/v2/": {"auth": auth}}});
        BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(serde_json::to_vec(&doc).expect("json")),
        )])
    };
    let fact = fact_of(Some("kubernetes.io/dockerconfigjson"), Some(&both)).expect("fact");
    snapshot.pull_secrets.insert("team-a", "regcred", fact);
    let server = TestServer::start_with(snapshot, |_| {}).await;
    let mut client = server.client(Proto::Http2).await;
    let refused_unmutated = [
        "pod-create-by-non-admin-user.json",
        "pod-create-generatename.json",
        "pod-create-ghcr.json",
        "pod-create-image-tag-and-digest-private-registry.json",
        "pod-create-initcontainers.json",
        "pod-create-private-registry-with-port.json",
    ];
    let mut seen = 0;
    for (name, body) in common::request_fixtures() {
        if !name.starts_with("pod-create-") {
            continue;
        }
        seen += 1;
        let mut review: Value = serde_json::from_slice(&body).expect("fixture");
        review["request"]["namespace"] = json!("team-a");
        let response = post(&mut client, "/validate-pods", &review).await;
        let refused = refused_unmutated.contains(&name.as_str());
        assert_eq!(
            response["allowed"], !refused,
            "{name} unmutated: {response}"
        );
        if refused {
            let text = message(&response);
            assert!(text.contains("from private registry"), "{name}: {text}");
        }
        let patched = post(&mut client, "/mutate", &review).await;
        let final_pod = mutated(&review, &patched);
        let response = post(&mut client, "/validate-pods", &final_pod).await;
        assert_eq!(response["allowed"], true, "{name} mutated: {response}");
    }
    assert!(seen >= 20, "recorded pods: {seen}");
    server.stop().await;
}

#[tokio::test]
async fn warn_mode_warns_and_its_own_mode_wins_over_the_policy() {
    for (extra, what) in [
        (json!({"mode": "Warn"}), "policy in Warn"),
        (
            json!({"pullGuarantee": {"mode": "Warn"}}),
            "pullGuarantee in Warn",
        ),
    ] {
        let server = TestServer::start_with(snapshot(policy(extra)), |_| {}).await;
        let mut client = server.client(Proto::Http1).await;
        let response = post(&mut client, "/validate-pods", &ghcr_review()).await;
        assert_eq!(response["allowed"], true, "{what}: {response}");
        assert!(
            warnings(&response).contains("no pull secret of the pod serves it"),
            "{what}: {response}"
        );
        server.stop().await;
    }
    // Audit: admitted silently.
    let spec = policy(json!({"pullGuarantee": {"mode": "Audit"}}));
    let server = TestServer::start_with(snapshot(spec), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let response = post(&mut client, "/validate-pods", &ghcr_review()).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response["warnings"].is_null(), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn kubectl_debug_and_mirror_pods() {
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    // The pod as stored after mutation.
    let review = ghcr_review();
    let stored = mutated(&review, &post(&mut client, "/mutate", &review).await);
    let debug = |image: &str| {
        let mut update = stored.clone();
        let request = &mut update["request"];
        request["operation"] = json!("UPDATE");
        request["subResource"] = json!("ephemeralcontainers");
        request["oldObject"] = request["object"].clone();
        request["object"]["spec"]["ephemeralContainers"] =
            json!([{"name": "debugger", "image": image}]);
        request["options"] = json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"});
        update
    };
    let response = post(&mut client, "/validate-pods", &debug("busybox")).await;
    assert_eq!(response["allowed"], true, "{response}");
    let response = post(
        &mut client,
        "/validate-pods",
        &debug("ghcr.io/example-org/debug"),
    )
    .await;
    assert_eq!(
        response["allowed"], true,
        "regcred serves ghcr.io: {response}"
    );
    let response = post(
        &mut client,
        "/validate-pods",
        &debug("registry.corp.example:5000/tools/debug"),
    )
    .await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        message(&response).contains("spec.ephemeralContainers[0].image: container \"debugger\""),
        "{response}"
    );

    // A static pod's mirror may not name secrets at all: never refused for it.
    let mut mirror = ghcr_review();
    mirror["request"]["object"]["metadata"]["annotations"] =
        json!({"kubernetes.io/config.mirror": "c0ffee"});
    let response = post(&mut client, "/validate-pods", &mirror).await;
    assert_eq!(response["allowed"], true, "{response}");
    server.stop().await;
}

// ---- cluster mode: facts from the API server's pull secrets ----

type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn pull_secret(name: &str, secret_type: &str, key: &str, registry: &str) -> Value {
    let data: BTreeMap<String, ByteString> = docker_config(registry);
    let doc = data.values().next().expect("doc").0.clone();
    json!({"apiVersion": "v1", "kind": "Secret", "type": secret_type,
           "metadata": {"name": name, "namespace": "team-a", "resourceVersion": "1"},
           "data": {key: base64::engine::general_purpose::STANDARD.encode(doc)}})
}

async fn mock(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>, seen: Seen) {
    let mut open = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        let accept = request
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().expect("lock").push((uri.clone(), accept));
        if uri.contains("watch=true") {
            open.push(send);
            continue;
        }
        let answer = if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
            list(
                "ProjectPolicyList",
                "secretgate.io/v1alpha1",
                json!([{"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                        "metadata": {"name": "team-a", "generation": 1},
                        "spec": {"namespaces": ["team-a"],
                                 "pullGuarantee": {"registries": ["ghcr.io"]}},
                        "status": {}}]),
            )
        } else if uri.starts_with("/api/v1/secrets") && uri.contains("dockerconfigjson") {
            list(
                "SecretList",
                "v1",
                json!([
                    pull_secret("regcred", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", "ghcr.io"),
                    {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                     "metadata": {"name": "broken", "namespace": "team-a", "resourceVersion": "1"},
                     "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode("{")}}
                ]),
            )
        } else if uri.starts_with("/api/v1/secrets") && uri.contains("dockercfg") {
            list(
                "SecretList",
                "v1",
                json!([pull_secret(
                    "legacy",
                    "kubernetes.io/dockercfg",
                    ".dockercfg",
                    "quay.io"
                )]),
            )
        } else if uri.starts_with("/api/v1/serviceaccounts") {
            list("ServiceAccountList", "v1", json!([]))
        } else {
            list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([]))
        };
        send.send_response(reply(200, &answer));
    }
}

#[tokio::test]
async fn cluster_mode_learns_what_pull_secrets_serve_and_keeps_no_value() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Seen = Arc::default();
    tokio::spawn(mock(handle, seen.clone()));
    let (_switch, leadership) = Switch::new(false);
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
        leadership,
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: true,
        admission_policies: None,
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));
    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");
    let snapshot = targets.policies.load();
    let facts = &snapshot.pull_secrets;
    assert!(facts.known);
    assert_eq!(facts.len(), 3, "{facts:?}");
    use secretgate::policy::pull_secrets::PullSecretFact;
    assert_eq!(
        facts.get("team-a", "broken"),
        Some(&PullSecretFact::Unreadable)
    );
    assert!(matches!(
        facts.get("team-a", "regcred"),
        Some(PullSecretFact::Keys(keys)) if keys.len() == 1
    ));
    let kept = format!("{:?}", **snapshot);
    assert!(
        !kept.contains(PASSWORD) && !kept.contains("robot"),
        "values kept"
    );

    // Full Secrets are requested only by type; every other Secret request is for metadata.
    let seen = seen.lock().expect("lock").clone();
    let secret_requests: Vec<&(String, String)> = seen
        .iter()
        .filter(|(uri, _)| uri.starts_with("/api/v1/secrets"))
        .collect();
    assert!(!secret_requests.is_empty());
    for (uri, accept) in secret_requests {
        let by_type = uri.contains("fieldSelector=type%3Dkubernetes.io%2Fdockerconfigjson")
            || uri.contains("fieldSelector=type%3Dkubernetes.io%2Fdockercfg");
        assert!(
            by_type || accept.contains("as=PartialObjectMetadata"),
            "a request for whole Secrets of every type: {uri} ({accept})"
        );
    }
}
