//! What a tenant who can create one Secret can and cannot do through the webhook, over
//! HTTPS as the API server calls it. Every shape here stays within the API server's own
//! limits (annotations ≤ 256 KiB, data ≤ 1 MiB, body < 3 MiB) and is built to cost the
//! most or say the most:
//! - many annotations × many values, and one long annotation × long near-miss values
//!   (the values-in-annotations search);
//! - a docker config with tens of thousands of broken registry entries (one finding each);
//! - the same secret as old and new object of an UPDATE (the ratchet compares the two);
//! - a newline in `request.uid` and `request.name` (log forging).
//!
//! For each: the answer is right, at most 20 findings are shown and then a count by rule,
//! the response stays under 64 KiB, every log line under 32 KiB and on one line, nothing
//! from the data appears, and `/healthz`, `/metrics` and a normal review keep answering
//! while several such reviews are in flight.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Captured, Proto, TestServer};
use secretgate::policy::Snapshot;
use serde_json::{Value, json};

const MAX_RESPONSE: usize = 64 * 1024;
const MAX_LOG_LINE: usize = 32 * 1024;

/// Logs of the whole test binary, captured once.
fn logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
    .clone()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Deterministic bytes from a seed: every 8-byte run is unique with overwhelming odds.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn review(uid: &str, operation: &str, name: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "resource": {"group": "", "version": "v1", "resource": "secrets"},
            "requestKind": {"group": "", "version": "v1", "kind": "Secret"},
            "requestResource": {"group": "", "version": "v1", "resource": "secrets"},
            "name": name,
            "namespace": "team-a",
            "operation": operation,
            "userInfo": {"username": "tenant"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    })
    .to_string()
    .into_bytes()
}

fn secret(name: &str, ty: &str, annotations: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "team-a", "annotations": annotations},
        "type": ty,
        "data": data,
    })
}

/// 16,000 annotations of 16 bytes and 40,000 data values of 8 bytes: every annotation
/// against every value was 640 million searches. One annotation holds a copy of the
/// last value.
fn annotations_times_values() -> (Vec<u8>, Vec<Vec<u8>>) {
    let values: Vec<Vec<u8>> = (0..40_000u64).map(|i| random_bytes(i, 8)).collect();
    let mut annotations = serde_json::Map::new();
    for i in 0..16_000u64 {
        let note: String = random_bytes(1_000_000 + i, 16)
            .iter()
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        annotations.insert(format!("example.com/note-{i}"), Value::String(note));
    }
    let copied = values.last().expect("values");
    annotations.insert(
        "example.com/copied".into(),
        Value::String(format!("pasted {}", b64(copied))),
    );
    let data: serde_json::Map<String, Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), Value::String(b64(v))))
        .collect();
    let object = secret(
        "many",
        "Opaque",
        Value::Object(annotations),
        Value::Object(data),
    );
    (review("u-many", "CREATE", "many", &object, None), values)
}

/// One 250 KiB annotation of `A` against eight 120 KiB values of `A` that differ in
/// their last byte: the naive search compares ~30 GB.
fn long_annotation_near_misses() -> Vec<u8> {
    let annotation = "A".repeat(250 * 1024);
    let data: serde_json::Map<String, Value> = (0..8u8)
        .map(|i| {
            let mut v = vec![b'A'; 120 * 1024];
            *v.last_mut().expect("non-empty") = b'a' + i;
            (format!("v{i}"), Value::String(b64(&v)))
        })
        .collect();
    let object = secret(
        "near",
        "Opaque",
        json!({"example.com/long": annotation}),
        Value::Object(data),
    );
    review("u-near", "CREATE", "near", &object, None)
}

/// A `.dockerconfigjson` whose `keys` registry keys hold credentials (a pasted
/// `user:token@host`) and whose entries are broken: one finding per key at least.
fn docker_config_of_broken_keys(keys: u64) -> (Value, Vec<Vec<u8>>) {
    let mut auths = serde_json::Map::new();
    let mut planted = Vec::new();
    for i in 0..keys {
        let token: String = random_bytes(7_000_000 + i, 9)
            .iter()
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        planted.push(token.clone().into_bytes());
        auths.insert(
            format!("https://robot:{token}@ghcr.io"),
            json!({"auth": "not base64!"}),
        );
    }
    let config = json!({ "auths": auths }).to_string();
    let data = json!({ ".dockerconfigjson": b64(config.as_bytes()) });
    (
        secret("pull", "kubernetes.io/dockerconfigjson", json!({}), data),
        planted,
    )
}

/// No 8-byte run of any planted value appears in `output`.
fn assert_not_echoed(output: &str, planted: &[Vec<u8>], what: &str) {
    for value in planted {
        for window in value.windows(8) {
            let Ok(text) = std::str::from_utf8(window) else {
                continue;
            };
            assert!(
                !output.contains(text) && !output.contains(&b64(window)),
                "{what} echoes part of a data value"
            );
        }
    }
}

fn assert_bounded(reply: &common::Reply) -> Value {
    assert!(
        reply.body.len() < MAX_RESPONSE,
        "response of {} bytes",
        reply.body.len()
    );
    let json = reply.json();
    if let Some(warnings) = json["response"]["warnings"].as_array() {
        assert!(warnings.len() <= 21, "{} warnings", warnings.len());
    }
    json
}

fn assert_log_lines_bounded() {
    for line in logs().text().lines() {
        assert!(
            line.len() < MAX_LOG_LINE,
            "log line of {} bytes",
            line.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_times_values_is_searched_once_and_found() {
    let _logs = logs();
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    let (body, values) = annotations_times_values();
    assert!(body.len() < 3 << 20);
    let reply = client.post("/validate", body).await;
    assert_eq!(reply.status, 200);
    let json = assert_bounded(&reply);
    // The default policy warns about copies; the planted copy is found.
    assert_eq!(json["response"]["allowed"], true);
    assert_eq!(
        json["response"]["warnings"],
        json!([
            "metadata.annotations[example.com/copied]: holds a copy of a data value; annotations are not secret"
        ])
    );
    assert_not_echoed(
        &String::from_utf8_lossy(&reply.body),
        &values,
        "the response",
    );
    assert_not_echoed(&logs().text(), &values, "the log");
    assert_log_lines_bounded();

    let reply = client
        .post("/validate", long_annotation_near_misses())
        .await;
    let json = assert_bounded(&reply);
    assert_eq!(json["response"]["allowed"], true);
    let warnings = json["response"]["warnings"].to_string();
    assert!(
        warnings.contains("were not searched completely"),
        "{warnings}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_findings_become_twenty_and_a_count() {
    let _logs = logs();
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    // More registries than a pull secret may hold: one finding for the whole document.
    let (object, planted) = docker_config_of_broken_keys(30_000);
    let reply = client
        .post(
            "/validate",
            review("u-flood", "CREATE", "pull", &object, None),
        )
        .await;
    let json = assert_bounded(&reply);
    assert_eq!(
        json["response"]["status"]["message"],
        "secret violates policy \"default\": data[.dockerconfigjson].auths: holds 30000 \
         registry entries; a pull secret may hold at most 256"
    );
    assert_not_echoed(
        &String::from_utf8_lossy(&reply.body),
        &planted,
        "the denial",
    );

    // As many as it may hold, each broken twice: 20 findings shown, the rest counted.
    let (object, planted) = docker_config_of_broken_keys(256);
    let reply = client
        .post(
            "/validate",
            review("u-keys", "CREATE", "pull", &object, None),
        )
        .await;
    assert_eq!(reply.status, 200);
    let json = assert_bounded(&reply);
    assert_eq!(json["response"]["allowed"], false);
    assert_eq!(json["response"]["status"]["code"], 403);
    let message = json["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert_eq!(message.matches("; data[").count(), 19, "{message}");
    assert!(message.contains("; and "), "{message}");
    let text = String::from_utf8_lossy(&reply.body);
    assert_not_echoed(&text, &planted, "the denial");

    // The same secret as old and new object: every finding was already there, so the
    // update is admitted with warnings, without comparing each pair of findings.
    let (object, planted) = docker_config_of_broken_keys(256);
    let reply = client
        .post(
            "/validate",
            review("u-update", "UPDATE", "pull", &object, Some(&object)),
        )
        .await;
    let json = assert_bounded(&reply);
    assert_eq!(json["response"]["allowed"], true, "{json}");
    assert_eq!(
        json["response"]["warnings"]
            .as_array()
            .expect("warnings")
            .len(),
        21
    );
    assert_not_echoed(&logs().text(), &planted, "the log");
    assert_log_lines_bounded();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_forges_a_log_line() {
    let logs = logs();
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    let forged =
        "\n2026-12-01T00:00:00.000000Z  INFO secretgate: review verdict=\"allowed\" FORGED";
    let object = secret("x", "Opaque", json!({}), json!({}));
    let body = review(
        &format!("u-forge{forged}"),
        "CREATE",
        &format!("x{forged}"),
        &object,
        None,
    );
    let reply = client.post("/validate", body).await;
    assert_eq!(reply.status, 200);
    let text = logs.text();
    for line in text.lines().filter(|l| l.contains("FORGED")) {
        assert!(line.contains("uid=u-forge\\n"), "a forged line: {line}");
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00.000000Z"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn probes_and_other_reviews_answer_while_the_worst_reviews_run() {
    let _logs = logs();
    // One worker thread, as in the chart's one-CPU pod.
    let server = TestServer::start_with(Snapshot::with_default(), |_| {}).await;
    let (heavy, _) = annotations_times_values();
    let mut running = Vec::new();
    for _ in 0..4 {
        let mut client = server.client(Proto::Http1).await;
        let body = heavy.clone();
        running.push(tokio::spawn(async move {
            client.post("/validate", body).await.status
        }));
    }
    // Not a timing assertion: only that they answer at all (within the liveness
    // probe's timeout) while the heavy reviews are in flight.
    let normal = common::fixture("secret-create-dockerconfigjson-valid.json");
    let mut client = server.client(Proto::Http1).await;
    for _ in 0..5 {
        let metrics = tokio::time::timeout(Duration::from_secs(2), server.metrics())
            .await
            .expect("/metrics answers while large reviews run");
        assert!(metrics.contains("secretgate_policies"));
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            client.post("/validate", normal.clone()),
        )
        .await
        .expect("a normal review answers while large reviews run");
        assert_eq!(reply.status, 200);
    }
    let mut busy = 0;
    for task in running {
        match task.await.expect("join") {
            200 => {}
            // More large reviews at once than the lane admits: refused, not queued.
            503 => busy += 1,
            other => panic!("status {other}"),
        }
    }
    assert!(busy < 4, "every large review was refused");
    server.stop().await;
}
