//! Events on the owners of denied Secrets (`serve --owner-events`): recorded
//! AdmissionReviews, given an owner, go through the server's review path (the router, as
//! the API server calls it) while a tower-test mock stands in for the API server that
//! receives the Events. Checked: the Event regards the owner and carries no secret value,
//! cert-manager's Certificate is found by its annotation (and its uid looked up), one
//! Event per owner per interval with the rest folded into its series, nothing for dry
//! runs or allowed Secrets, and a full channel drops without delaying the review.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::owner_events::{self, OwnerEventMetrics, limiter::Limits};
use secretgate::policy::Snapshot;
use serde_json::{Value, json};
use tower::ServiceExt as _;

#[path = "common/mock_api.rs"]
mod mock_api;
use mock_api::{body_json, eventually, reply};

/// What the mock API server received: method, URI, JSON body.
type Calls = Arc<Mutex<Vec<(String, String, Value)>>>;

const CERT_UID: &str = "3c1d7e52-certificate-uid";

async fn mock_api(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    calls: Calls,
) {
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let body = body_json(request).await;
        calls
            .lock()
            .expect("lock")
            .push((method.clone(), uri.clone(), body.clone()));
        // Owners named "forbidden" get a 403 for their Event; Events of owners named
        // "expired" are gone (404) when their series is patched.
        let answer = match method.as_str() {
            "POST" if body["regarding"]["name"] == "forbidden" => reply(
                403,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Forbidden", "code": 403}),
            ),
            "PATCH" if uri.contains("/events/expired.") => reply(
                404,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404}),
            ),
            "GET" if uri.contains("/apis/cert-manager.io/v1/namespaces/team-a/certificates/") => {
                let name = uri.rsplit('/').next().unwrap_or_default().to_owned();
                reply(
                    200,
                    &json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                            "metadata": {"name": name, "namespace": "team-a", "uid": CERT_UID}}),
                )
            }
            "POST" => reply(201, &body),
            "PATCH" => reply(
                200,
                &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                                          "metadata": {"name": "patched"}}),
            ),
            _ => reply(
                404,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": "NotFound", "code": 404}),
            ),
        };
        send.send_response(answer);
    }
}

struct Harness {
    app: Router,
    calls: Calls,
    metrics: OwnerEventMetrics,
    /// Held (not polled) when no emitter runs, so the channel fills.
    _receiver: Option<owner_events::Receiver>,
}

impl Harness {
    /// The router with owner events on, an emitter writing to the mock API with `interval`
    /// between writes per owner (or none, `run_emitter` false), and a channel of `capacity`.
    fn start(interval: Duration, capacity: usize, run_emitter: bool) -> Self {
        let registry = prometheus::Registry::new();
        let metrics = OwnerEventMetrics::new(&registry).expect("metrics");
        let (sender, receiver) = owner_events::channel(capacity, metrics.clone());
        let calls: Calls = Arc::default();
        let mut state = common::state(Snapshot::with_default(), 3 * 1024 * 1024);
        state.owner_events = Some(sender);
        let mut held = Some(receiver);
        if run_emitter {
            let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            tokio::spawn(mock_api(handle, calls.clone()));
            let config = owner_events::Config {
                limits: Limits {
                    interval,
                    ..owner_events::Config::new("x").limits
                },
                ..owner_events::Config::new("secretgate-7d9f-abcde")
            };
            tokio::spawn(owner_events::run(
                kube::Client::new(service, "default"),
                held.take().expect("receiver"),
                config,
                metrics.clone(),
            ));
        }
        Self {
            app: secretgate::server::app(state),
            calls,
            metrics,
            _receiver: held,
        }
    }

    /// Posts `review` to /validate; the response's `allowed`.
    async fn review(&self, review: &Value) -> bool {
        let request = Request::post("/validate")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(review.to_string()))
            .expect("request");
        let response =
            tokio::time::timeout(Duration::from_secs(5), self.app.clone().oneshot(request))
                .await
                .expect("the review answers without waiting for the Event")
                .expect("response");
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).expect("json");
        answer["response"]["allowed"].as_bool().expect("allowed")
    }

    fn calls(&self, method: &str) -> Vec<(String, Value)> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(m, _, _)| m == method)
            .map(|(_, uri, body)| (uri.clone(), body.clone()))
            .collect()
    }

    fn outcome(&self, outcome: &str) -> u64 {
        self.metrics.get(outcome)
    }
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&common::fixture(name)).expect("fixture")
}

/// A pull secret the default policy denies (its auth is not base64), owned by an
/// ExternalSecret as the external-secrets operator writes it.
fn external_secret_review() -> Value {
    let mut review = fixture("secret-create-dockerconfigjson-auth-not-base64.json");
    review["request"]["object"]["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "unrelated", "uid": "u-0"},
        {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": "registry",
         "uid": "5f0e-external-secret-uid", "controller": true, "blockOwnerDeletion": true}
    ]);
    review
}

/// A TLS secret whose key does not match its certificate, written as cert-manager writes
/// it: no ownerReference, the Certificate named by annotation.
fn cert_manager_review(fixture_name: &str) -> Value {
    let mut review = fixture(fixture_name);
    let annotations = &mut review["request"]["object"]["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations["cert-manager.io/certificate-name"] = json!("web");
    annotations["cert-manager.io/issuer-name"] = json!("corp-ca");
    review
}

/// The Secret's values in pieces of 12 characters: each data value as sent (base64) and
/// decoded, and for JSON data (a docker config) every string value in it, not its keys
/// (registry names, which denials name as field paths). None may reach the API server.
fn secret_value_pieces(review: &Value) -> Vec<String> {
    use base64::Engine as _;
    fn leaves(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
            Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
            _ => {}
        }
    }
    let data = review["request"]["object"]["data"]
        .as_object()
        .expect("data");
    let mut texts = Vec::new();
    for value in data.values() {
        let encoded = value.as_str().expect("string").to_owned();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        match serde_json::from_str::<Value>(&decoded) {
            Ok(json) => leaves(&json, &mut texts),
            Err(_) => texts.push(decoded),
        }
        texts.push(encoded);
    }
    let mut pieces = Vec::new();
    for text in texts {
        let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        pieces.extend(
            chars
                .chunks(12)
                .filter(|c| c.len() == 12)
                .map(|c| c.iter().collect()),
        );
    }
    pieces
}

fn assert_value_free(review: &Value, sent: &Value) {
    let sent = sent.to_string();
    for piece in secret_value_pieces(review) {
        // Dashes and PEM armour are not secret; everything else is.
        if piece.contains("-----") || piece.chars().all(|c| c == '-' || c == '=') {
            continue;
        }
        assert!(!sent.contains(&piece), "secret data {piece:?} in {sent}");
    }
}

#[tokio::test]
async fn a_denied_secret_gets_a_warning_event_on_its_controller_owner() {
    let harness = Harness::start(Duration::from_secs(60), 16, true);
    let review = external_secret_review();
    assert!(
        !harness.review(&review).await,
        "the default policy denies it"
    );
    assert!(eventually(|| harness.calls("POST").len() == 1).await);
    let (uri, event) = harness.calls("POST").remove(0);
    assert!(
        uri.starts_with("/apis/events.k8s.io/v1/namespaces/team-a/events"),
        "{uri}"
    );
    assert_eq!(
        event["regarding"],
        json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
               "name": "registry", "namespace": "team-a", "uid": "5f0e-external-secret-uid"})
    );
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "SecretDenied");
    assert_eq!(event["action"], "Admit");
    assert_eq!(event["reportingController"], "secretgate.io/webhook");
    assert_eq!(event["reportingInstance"], "secretgate-7d9f-abcde");
    assert_eq!(event["metadata"]["namespace"], "team-a");
    let note = event["note"].as_str().expect("note");
    assert!(
        note.starts_with(
            "secretgate denied CREATE of Secret regcred-bad-b64: secret violates policy"
        ),
        "{note}"
    );
    assert!(note.len() <= 1024);
    assert_value_free(&review, &event);
    assert_eq!(harness.outcome("emitted"), 1);
    // No owner lookup: the ownerReference carries the uid.
    assert!(harness.calls("GET").is_empty());
}

#[tokio::test]
async fn a_cert_manager_secret_gets_the_event_on_its_certificate_with_its_uid() {
    let harness = Harness::start(Duration::from_secs(60), 16, true);
    let review = cert_manager_review("secret-create-tls-mismatched-key.json");
    assert!(!harness.review(&review).await, "the key does not match");
    assert!(eventually(|| harness.calls("POST").len() == 1).await);
    let gets = harness.calls("GET");
    assert_eq!(gets.len(), 1);
    assert!(
        gets[0]
            .0
            .starts_with("/apis/cert-manager.io/v1/namespaces/team-a/certificates/web"),
        "{}",
        gets[0].0
    );
    let (_, event) = harness.calls("POST").remove(0);
    assert_eq!(
        event["regarding"],
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "web",
               "namespace": "team-a", "uid": CERT_UID})
    );
    let note = event["note"].as_str().expect("note");
    assert!(note.contains("web-tls-mismatched"), "{note}");
    assert_value_free(&review, &event);
}

#[tokio::test]
async fn one_event_per_owner_per_interval_and_the_rest_join_its_series() {
    let harness = Harness::start(Duration::from_millis(400), 16, true);
    let review = external_secret_review();
    for _ in 0..3 {
        assert!(!harness.review(&review).await);
    }
    assert!(eventually(|| harness.outcome("rate_limited") == 2).await);
    assert_eq!(harness.calls("POST").len(), 1);
    assert_eq!(harness.outcome("emitted"), 1);
    // Once the interval has passed, the suppressed two join the first: 3 occurrences.
    assert!(eventually(|| !harness.calls("PATCH").is_empty()).await);
    let (uri, patch) = harness.calls("PATCH").remove(0);
    let created = harness.calls("POST").remove(0).1;
    let name = created["metadata"]["name"].as_str().expect("name");
    assert!(
        uri.contains(&format!("/namespaces/team-a/events/{name}")),
        "{uri}"
    );
    assert_eq!(patch["series"]["count"], 3);
    assert!(patch["series"]["lastObservedTime"].is_string());
    // The note and everything else stay as created (immutable in events.k8s.io/v1).
    assert_eq!(patch.as_object().expect("object").len(), 1, "{patch}");
    // Another owner is not held back by the first.
    let mut other = external_secret_review();
    other["request"]["object"]["metadata"]["ownerReferences"][1]["name"] = json!("other");
    assert!(!harness.review(&other).await);
    assert!(eventually(|| harness.calls("POST").len() == 2).await);
}

#[tokio::test]
async fn dry_runs_allowed_secrets_and_ownerless_secrets_get_no_event() {
    let harness = Harness::start(Duration::from_secs(60), 16, true);
    let mut dry_run = external_secret_review();
    dry_run["request"]["dryRun"] = json!(true);
    assert!(!harness.review(&dry_run).await);
    let allowed = cert_manager_review("secret-create-tls-rsa-pkcs8.json");
    assert!(harness.review(&allowed).await);
    let ownerless = fixture("secret-create-dockerconfigjson-auth-not-base64.json");
    assert!(!harness.review(&ownerless).await);
    // A denial with an owner last: the channel keeps order, so once its Event is written
    // the three before it have been seen, and made none.
    assert!(
        !harness
            .review(&cert_manager_review(
                "secret-create-tls-mismatched-key.json"
            ))
            .await
    );
    assert!(eventually(|| harness.calls("POST").len() == 1).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let posts = harness.calls("POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].1["regarding"]["kind"], "Certificate");
    for outcome in OwnerEventMetrics::OUTCOMES {
        let expected = u64::from(outcome == "emitted");
        assert_eq!(harness.outcome(outcome), expected, "{outcome}");
    }
}

#[tokio::test]
async fn a_full_channel_drops_the_event_without_delaying_the_review() {
    // No emitter: the one slot fills with the first notice.
    let harness = Harness::start(Duration::from_secs(60), 1, false);
    let review = external_secret_review();
    for _ in 0..4 {
        assert!(!harness.review(&review).await);
    }
    assert_eq!(harness.outcome("dropped"), 3);
    assert_eq!(harness.outcome("emitted"), 0);
    assert!(harness.calls("POST").is_empty());
}

/// The review owned by an ExternalSecret named `owner`.
fn owned_by(owner: &str) -> Value {
    let mut review = external_secret_review();
    review["request"]["object"]["metadata"]["ownerReferences"][1]["name"] = json!(owner);
    review
}

#[tokio::test]
async fn a_refused_write_is_counted_failed_and_limited_like_any_other() {
    let harness = Harness::start(Duration::from_secs(60), 16, true);
    assert!(!harness.review(&owned_by("forbidden")).await);
    assert!(eventually(|| harness.outcome("failed") == 1).await);
    // No retry storm: the owner still waits its interval.
    assert!(!harness.review(&owned_by("forbidden")).await);
    assert!(eventually(|| harness.outcome("rate_limited") == 1).await);
    assert_eq!(harness.calls("POST").len(), 1);
    assert_eq!(harness.outcome("emitted"), 0);
}

#[tokio::test]
async fn an_event_gone_before_its_series_is_written_again() {
    let harness = Harness::start(Duration::from_millis(300), 16, true);
    assert!(!harness.review(&owned_by("expired")).await);
    assert!(eventually(|| harness.calls("POST").len() == 1).await);
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Past the interval: the series PATCH finds no Event, so a new one is created.
    assert!(!harness.review(&owned_by("expired")).await);
    assert!(eventually(|| harness.calls("POST").len() == 2).await);
    assert_eq!(harness.calls("PATCH").len(), 1);
    assert_eq!(harness.outcome("emitted"), 2);
    assert_eq!(harness.outcome("failed"), 0);
}
