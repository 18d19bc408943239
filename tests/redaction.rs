//! Secret values never leave the request: every secret fixture, as recorded and with
//! planted marker values in every data key, goes through the webhook with logs captured
//! at trace level; no value appears in a response, a log line or a metric.

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use secretgate::policy::{Mode, ProjectPolicySpec, Snapshot};
use tower::ServiceExt as _;

/// Log output captured from every thread of the test process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Variants of one secret's data in which every value carries `marker` where a parser
/// would look hardest at it: raw, inside registry credentials, inside PEM armour.
fn planted_values(marker: &str) -> Vec<String> {
    let auth = b64(format!("{marker}:{marker}").as_bytes());
    vec![
        marker.to_owned(),
        format!("{marker}\n{marker} with spaces"),
        format!(
            r#"{{"auths":{{"registry.example.com":{{"auth":"{marker}","username":"{marker}","password":"{marker} x"}}}}}}"#
        ),
        format!(
            r#"{{"auths":{{"registry.example.com":{{"auth":"{auth}","username":"u","password":"p"}}}}}}"#
        ),
        format!(r#"{{"registry.example.com":{{"auth":"{marker}","email":"{marker}"}}}}"#),
        format!("-----BEGIN PRIVATE KEY-----\n{marker}\n-----END PRIVATE KEY-----\n"),
        format!("-----BEGIN CERTIFICATE-----\n{marker}\n-----END CERTIFICATE-----\n"),
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{marker}\n-----END OPENSSH PRIVATE KEY-----\n"
        ),
        format!("ssh-ed25519 {marker} user@host"),
        format!("github.com ssh-ed25519 {marker}\n{marker}"),
    ]
}

async fn post(app: &axum::Router, path: &str, body: Vec<u8>) -> Vec<u8> {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn no_secret_value_reaches_responses_logs_or_metrics() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let mut outputs: Vec<Vec<u8>> = Vec::new();
    let mut secrets_to_hide: Vec<Vec<u8>> = Vec::new();
    for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
        let mut spec = ProjectPolicySpec {
            mode,
            ..ProjectPolicySpec::default()
        };
        spec.secrets.basic_auth.require_username_and_password = true;
        spec.secrets.ssh.git_sync_key_fields =
            vec!["ssh".into(), "id_ed25519".into(), "token".into()];
        let state = common::state(Snapshot::with_fallback("p", spec), 4 << 20);
        let app = secretgate::server::app(state.clone());

        let mut n = 0;
        for (name, body) in common::request_fixtures() {
            if !name.starts_with("secret-") {
                continue;
            }
            let review: serde_json::Value = serde_json::from_slice(&body).expect("fixture");
            // The values as recorded: none may appear, raw or base64.
            for side in ["object", "oldObject"] {
                if let Some(data) = review["request"][side]["data"].as_object() {
                    for value in data.values() {
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(value.as_str().unwrap_or_default())
                            .expect("data is base64");
                        // Short values ("k=v" literals) and plain English ("not a
                        // certificate", from the garbage-cert fixture) can match a
                        // message by chance; planted markers cover those shapes.
                        let plain_words =
                            decoded.iter().all(|b| b.is_ascii_lowercase() || *b == b' ');
                        if decoded.len() >= 8 && !plain_words {
                            secrets_to_hide.push(decoded.clone());
                            secrets_to_hide.push(b64(&decoded).into_bytes());
                        }
                    }
                }
            }
            outputs.push(post(&app, "/validate", body.clone()).await);

            // The same request with planted values in every data key.
            for planted in planted_values("PLANTEDx9q") {
                n += 1;
                let marker = format!("PLANTED{n}Z");
                let value = planted.replace("PLANTEDx9q", &marker);
                let mut review = review.clone();
                for side in ["object", "oldObject"] {
                    if let Some(data) = review["request"][side]["data"].as_object_mut() {
                        for v in data.values_mut() {
                            *v = serde_json::Value::String(b64(value.as_bytes()));
                        }
                    }
                    if let Some(meta) = review["request"][side]["metadata"].as_object_mut() {
                        meta.insert(
                            "annotations".into(),
                            serde_json::json!({"note": format!("copied {value}")}),
                        );
                    }
                }
                secrets_to_hide.push(marker.into_bytes());
                let body = serde_json::to_vec(&review).expect("JSON");
                outputs.push(post(&app, "/validate", body).await);
            }
        }
        outputs.push(state.metrics.render().into_bytes());
    }
    let _ = std::io::stderr().flush();
    let logs = captured.0.lock().expect("logs").clone();
    assert!(
        String::from_utf8_lossy(&logs).contains("verdict"),
        "logs were captured"
    );
    outputs.push(logs);

    // Outputs are joined with a separator no value contains, then searched once per value.
    let haystack = outputs.join(&b"\0\0"[..]);
    let mut leaks: Vec<String> = secrets_to_hide
        .iter()
        .filter(|s| memchr::memmem::find(&haystack, s).is_some())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    leaks.sort();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "secret values found in outputs: {leaks:?}"
    );
}
