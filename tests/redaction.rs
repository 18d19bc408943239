//! Secret values never leave the request: every fixture through both webhooks, every
//! secret fixture with planted marker values in every data key, and random secrets of
//! every type (fuzz-style: random bytes and random markers inside each format) go
//! through the webhooks with logs captured at trace level and panics captured too; no
//! value appears in a response, a warning, a log line, a panic message or /metrics.

mod common;

use common::Captured;

use std::io::Write as _;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use secretgate::policy::{Mode, ProjectPolicySpec, Snapshot};
use tower::ServiceExt as _;

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

async fn get(app: &axum::Router, path: &str) -> Vec<u8> {
    let req = Request::get(path).body(Body::empty()).expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

/// Each secret type and the data keys its parser reads.
const SECRET_TYPES: &[(&str, &[&str])] = &[
    ("kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]),
    ("kubernetes.io/dockercfg", &[".dockercfg"]),
    ("kubernetes.io/tls", &["tls.crt", "tls.key"]),
    ("kubernetes.io/ssh-auth", &["ssh-privatekey", "known_hosts"]),
    ("kubernetes.io/basic-auth", &["username", "password"]),
    ("Opaque", &["ssh", "id_ed25519", "token", "known_hosts"]),
    ("example.com/custom", &["anything"]),
];

/// A small deterministic generator (xorshift64), so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A random secret value and what must not appear: random bytes, or a random marker
/// inside one of the formats parsers read.
fn random_value(rng: &mut XorShift) -> (Vec<u8>, Vec<Vec<u8>>) {
    if rng.below(3) == 0 {
        let len = 16 + rng.below(200);
        let value = rng.bytes(len);
        return (value.clone(), vec![value]);
    }
    const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let len = 12 + rng.below(20);
    let marker: String = (0..len)
        .map(|_| ALNUM[rng.below(ALNUM.len())] as char)
        .collect();
    let forms = planted_values("PLANTEDx9q");
    let value = forms[rng.below(forms.len())].replace("PLANTEDx9q", &marker);
    (value.into_bytes(), vec![marker.into_bytes()])
}

#[tokio::test]
async fn no_secret_value_reaches_responses_logs_or_metrics() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();
    // A panic anywhere (a handler, a spawned task) lands in the same buffer.
    let panics = captured.clone();
    std::panic::set_hook(Box::new(move |info| {
        let mut out = panics.clone();
        let _ = writeln!(out, "PANIC {info}");
    }));

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
        // Every fixture through both webhooks: a pod sent to /validate, a secret to
        // /mutate, are allowed untouched and must not echo anything either.
        for (_, body) in common::request_fixtures() {
            for path in ["/validate", "/mutate"] {
                outputs.push(post(&app, path, body.clone()).await);
            }
        }
        // Random secrets of every type.
        let mut rng = XorShift(0x5eed_0000 ^ mode as u64);
        let template: serde_json::Value =
            serde_json::from_slice(&common::fixture("secret-create-generic-from-literal.json"))
                .expect("fixture");
        for _ in 0..120 {
            let (ty, keys) = SECRET_TYPES[rng.below(SECRET_TYPES.len())];
            let (value, hide) = random_value(&mut rng);
            let mut review = template.clone();
            let object = &mut review["request"]["object"];
            object["type"] = ty.into();
            object["data"] = keys
                .iter()
                .map(|k| ((*k).to_owned(), serde_json::Value::String(b64(&value))))
                .collect::<serde_json::Map<_, _>>()
                .into();
            secrets_to_hide.push(b64(&value).into_bytes());
            secrets_to_hide.extend(hide);
            let body = serde_json::to_vec(&review).expect("JSON");
            for path in ["/validate", "/mutate"] {
                outputs.push(post(&app, path, body.clone()).await);
            }
        }
        outputs.push(state.metrics.render().into_bytes());
        outputs.push(get(&secretgate::server::ops_app(state.clone()), "/metrics").await);
    }
    let _ = std::panic::take_hook();
    let _ = std::io::stderr().flush();
    let logs = captured.text().into_bytes();
    assert!(
        String::from_utf8_lossy(&logs).contains("verdict"),
        "logs were captured"
    );
    assert!(
        !String::from_utf8_lossy(&logs).contains("PANIC "),
        "nothing panicked"
    );
    outputs.push(logs);

    // Outputs are joined with a separator no value contains, then searched once per value.
    // One pass over all outputs for every value (memmem per value took minutes).
    let haystack = outputs.join(&b"\0\0"[..]);
    let finder = aho_corasick::AhoCorasick::new(&secrets_to_hide).expect("patterns");
    let mut leaks: Vec<String> = finder
        .find_overlapping_iter(&haystack)
        .map(|m| String::from_utf8_lossy(&secrets_to_hide[m.pattern().as_usize()]).into_owned())
        .collect();
    leaks.sort();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "secret values found in outputs: {leaks:?}"
    );
}
