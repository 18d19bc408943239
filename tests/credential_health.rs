//! Credential health against real servers: Debian's `docker-registry` (the CNCF
//! distribution registry) on loopback with TLS and htpasswd for the Basic flow, and a
//! small HTTPS token server in the test for the Bearer flow.
//!
//! `docker-registry` and `htpasswd` must be installed (`apt-get install docker-registry
//! apache2-utils`; `.ci/run` does it): without them these tests fail, never skip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secretgate::certs::DevCertificates;
use secretgate::credentials::{
    CheckerConfig, CredentialChecker, MAX_LOGINS_PER_SECRET, Outcome, PullSecret, RegistryCheck,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const HOUR: Duration = Duration::from_secs(3600);

#[path = "common/registry.rs"]
mod registry;
use registry::{DistributionRegistry, foreign_pki, free_port, pki};

/// How the in-test token server behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `/v2/` challenges with an https realm on this server.
    Bearer,
    /// The same, but the realm is `http://`.
    HttpRealm,
    /// `/v2/` answers a redirect.
    Redirect,
}

/// An HTTPS server in the test: the registry's `/v2/` and its token endpoint `/token`.
struct TokenServer {
    port: u16,
    /// Requests to `/token`, and the query of the last one.
    token_hits: Arc<AtomicUsize>,
    last_query: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    async fn start(
        certs: &DevCertificates,
        mode: Mode,
        user: &str,
        pass: &str,
        token: &str,
    ) -> Self {
        let cert_chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(certs.tls_cert.as_bytes())
                .collect::<Result<_, _>>()
                .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(certs.tls_key.as_bytes()).expect("key PEM");
        let tls = rustls::ServerConfig::builder_with_provider(secretgate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)
            .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let token_hits = Arc::new(AtomicUsize::new(0));
        let last_query = Arc::new(Mutex::new(String::new()));
        let expected_basic = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        let state = Arc::new((
            mode,
            port,
            expected_basic,
            token.to_owned(),
            token_hits.clone(),
            last_query.clone(),
        ));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let (mode, port, basic, token, hits, query) = &*state;
                            Ok::<_, std::convert::Infallible>(answer(
                                &req, *mode, *port, basic, token, hits, query,
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            port,
            token_hits,
            last_query,
            task,
        }
    }

    fn key(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn answer(
    req: &Request<Incoming>,
    mode: Mode,
    port: u16,
    basic: &str,
    token: &str,
    hits: &AtomicUsize,
    query: &Mutex<String>,
) -> Response<Full<Bytes>> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let reply = |status: u16, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
        response
    };
    match req.uri().path() {
        "/v2/" if mode == Mode::Redirect => {
            let mut response = reply(302, String::new());
            response.headers_mut().insert(
                "location",
                hyper::header::HeaderValue::from_static("https://127.0.0.1:1/v2/"),
            );
            response
        }
        "/v2/" if authorization == format!("Bearer {token}") => reply(200, "{}".to_owned()),
        "/v2/" => {
            let scheme = if mode == Mode::HttpRealm {
                "http"
            } else {
                "https"
            };
            let mut response = reply(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_owned());
            let challenge =
                format!(r#"Bearer realm="{scheme}://127.0.0.1:{port}/token",service="test""#);
            response
                .headers_mut()
                .insert("www-authenticate", challenge.parse().expect("header value"));
            response
        }
        "/token" => {
            hits.fetch_add(1, Ordering::SeqCst);
            *query.lock().expect("lock") = req.uri().query().unwrap_or_default().to_owned();
            if authorization == basic {
                // The body also carries the token twice: never to be echoed.
                reply(200, json!({"token": token, "expires_in": 60}).to_string())
            } else {
                reply(401, format!(r#"{{"details":"bad {token} credentials"}}"#))
            }
        }
        _ => reply(404, String::new()),
    }
}

fn checker(ca_pem: &str, timeout: Duration) -> (CredentialChecker, prometheus::Registry) {
    let metrics = prometheus::Registry::new();
    let config = CheckerConfig {
        timeout,
        system_roots: false,
        extra_ca_pem: Some(ca_pem.as_bytes().to_vec()),
        ..CheckerConfig::default()
    };
    let checker = CredentialChecker::new(&config, &metrics).expect("checker");
    (checker, metrics)
}

/// `secretgate_credential_checks_total{result}`.
fn logins(metrics: &prometheus::Registry, result: &str) -> u64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&metrics.gather())
        .expect("metrics text");
    let prefix = format!("secretgate_credential_checks_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().expect("a count"))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

fn total_logins(metrics: &prometheus::Registry) -> u64 {
    ["ok", "rejected", "unreachable", "anonymous"]
        .iter()
        .map(|r| logins(metrics, r))
        .sum()
}

/// A `.dockerconfigjson` with one registry, as `kubectl create secret docker-registry`
/// writes it.
fn config_json(key: &str, user: &str, pass: &str) -> Vec<u8> {
    let auth = STANDARD.encode(format!("{user}:{pass}"));
    json!({"auths": {key: {"username": user, "password": pass, "auth": auth}}})
        .to_string()
        .into_bytes()
}

async fn check_one(
    checker: &CredentialChecker,
    name: &str,
    doc: &[u8],
    allowed: &str,
    min_interval: Duration,
) -> RegistryCheck {
    let secret = PullSecret {
        namespace: "team-a",
        name,
        config_json: true,
        data: doc,
    };
    let mut results = checker.check(&secret, &[allowed], min_interval).await;
    assert_eq!(results.len(), 1, "{results:?}");
    results.remove(0)
}

fn unreachable_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Unreachable { reason } => reason,
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Log capture: every test's log lines, searched by the leak test.

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture(Arc::default());
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        capture
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&captured_logs().0.lock().expect("lock")).into_owned()
}

// ---------------------------------------------------------------------------------------
// Basic: the distribution registry with htpasswd.

#[tokio::test]
async fn basic_auth_accepts_and_rejects() {
    captured_logs();
    let certs = pki();
    let registry = DistributionRegistry::start(&certs, Some(("ci-robot", "right-pass-1")));
    let (checker, metrics) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = registry.key();

    let good = check_one(
        &checker,
        "good",
        &config_json(&key, "ci-robot", "right-pass-1"),
        &key,
        HOUR,
    )
    .await;
    assert_eq!(good.outcome, Outcome::Ok, "{}", registry.log());
    assert_eq!(good.registry, key);
    assert_eq!(
        good.message(),
        format!("registry {key} accepted the credentials")
    );
    assert!(!good.cached);

    let bad = check_one(
        &checker,
        "bad",
        &config_json(&key, "ci-robot", "wrong-pass"),
        &key,
        HOUR,
    )
    .await;
    assert_eq!(
        bad.outcome,
        Outcome::Rejected {
            reason: "HTTP 401".to_owned()
        }
    );
    assert_eq!(
        bad.message(),
        format!("registry {key} rejected the credentials (HTTP 401)")
    );
    let unknown = check_one(
        &checker,
        "unknown",
        &config_json(&key, "nobody", "x"),
        &key,
        HOUR,
    )
    .await;
    assert!(
        matches!(unknown.outcome, Outcome::Rejected { .. }),
        "{unknown:?}"
    );
    assert_eq!(
        (logins(&metrics, "ok"), logins(&metrics, "rejected")),
        (1, 2)
    );
}

#[tokio::test]
async fn password_changed_at_the_registry_is_rejected_and_cached_outcomes_are_reused() {
    captured_logs();
    let certs = pki();
    let registry = DistributionRegistry::start(&certs, Some(("ci-robot", "old-pass")));
    let (checker, metrics) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = registry.key();
    let old = config_json(&key, "ci-robot", "old-pass");

    let first = check_one(&checker, "pull", &old, &key, HOUR).await;
    assert_eq!((first.outcome.clone(), first.cached), (Outcome::Ok, false));
    assert_eq!(total_logins(&metrics), 1);

    // Within the interval, the same credentials are not checked again.
    let again = check_one(&checker, "pull", &old, &key, HOUR).await;
    assert_eq!((again.outcome, again.cached), (Outcome::Ok, true));
    assert_eq!(total_logins(&metrics), 1, "a cache hit is no login");

    // The password changes at the registry; the cache still answers within the interval.
    registry.set_password("ci-robot", "new-pass");
    let stale = check_one(&checker, "pull", &old, &key, HOUR).await;
    assert_eq!((stale.outcome, stale.cached), (Outcome::Ok, true));
    assert_eq!(total_logins(&metrics), 1);

    // Once the interval has passed, the login shows the change.
    let due = check_one(&checker, "pull", &old, &key, Duration::ZERO).await;
    assert_eq!(
        (due.outcome, due.cached),
        (
            Outcome::Rejected {
                reason: "HTTP 401".to_owned()
            },
            false
        ),
        "{}",
        registry.log()
    );
    assert_eq!(logins(&metrics, "rejected"), 1);

    // The secret is fixed: changed credentials are checked at once, whatever the interval.
    let fixed = config_json(&key, "ci-robot", "new-pass");
    let now = check_one(&checker, "pull", &fixed, &key, HOUR).await;
    assert_eq!((now.outcome, now.cached), (Outcome::Ok, false));
    assert_eq!(logins(&metrics, "ok"), 2);
    let cached = check_one(&checker, "pull", &fixed, &key, HOUR).await;
    assert!(cached.cached);

    // Another secret with the same credentials has its own entry.
    let other = check_one(&checker, "other", &fixed, &key, HOUR).await;
    assert!(!other.cached);
    assert_eq!(checker.cache_len(), 2);
    assert_eq!(total_logins(&metrics), 4);

    // A deleted secret is forgotten: its next check logs in again.
    checker.forget("team-a", "pull");
    assert_eq!(checker.cache_len(), 1);
    let after = check_one(&checker, "pull", &fixed, &key, HOUR).await;
    assert!(!after.cached);
    checker.retain(|_, name| name == "pull");
    assert_eq!(checker.cache_len(), 1);
    assert_eq!(total_logins(&metrics), 5);
}

#[tokio::test]
async fn anonymous_registry_proves_nothing() {
    captured_logs();
    let certs = pki();
    let registry = DistributionRegistry::start(&certs, None);
    let (checker, metrics) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = registry.key();
    let result = check_one(&checker, "pull", &config_json(&key, "u", "p"), &key, HOUR).await;
    assert_eq!(result.outcome, Outcome::Anonymous, "{}", registry.log());
    assert_eq!(logins(&metrics, "anonymous"), 1);
    assert_eq!(logins(&metrics, "ok"), 0);
}

// ---------------------------------------------------------------------------------------
// Unreachable.

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    captured_logs();
    let certs = pki();
    let (checker, metrics) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = format!("127.0.0.1:{}", free_port());
    let result = check_one(&checker, "pull", &config_json(&key, "u", "p"), &key, HOUR).await;
    assert_eq!(unreachable_reason(&result.outcome), "connection refused");
    assert_eq!(
        result.message(),
        format!("registry {key} is unreachable: connection refused")
    );
    assert_eq!(logins(&metrics, "unreachable"), 1);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_unreachable() {
    captured_logs();
    let trusted = pki();
    let (checker, _) = checker(&trusted.ca_cert, Duration::from_secs(10));
    // An unknown CA; and one that takes the trusted CA's name but not its key.
    for (other, problem) in [(foreign_pki(), "UnknownIssuer"), (pki(), "BadSignature")] {
        let server = TokenServer::start(&other, Mode::Bearer, "u", "p", "tok").await;
        let key = server.key();
        let result = check_one(&checker, "pull", &config_json(&key, "u", "p"), &key, HOUR).await;
        let reason = unreachable_reason(&result.outcome);
        assert_eq!(reason, format!("TLS: invalid peer certificate: {problem}"));
        assert_eq!(server.token_hits.load(Ordering::SeqCst), 0);
    }
}

/// A TCP server that accepts and never answers (not even the TLS handshake).
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let key = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    (key, hold)
}

#[tokio::test]
async fn logins_wait_for_the_concurrency_limit() {
    captured_logs();
    let certs = pki();
    let (a, hold_a) = silent_server().await;
    let (b, hold_b) = silent_server().await;
    let entry = json!({"username": "u", "password": "p"});
    let doc = json!({"auths": {&a: entry, &b: entry}}).to_string();
    let secret = PullSecret {
        namespace: "team-a",
        name: "two",
        config_json: true,
        data: doc.as_bytes(),
    };
    let timeout = Duration::from_millis(400);
    let mut elapsed = Vec::new();
    for concurrency in [1, 2] {
        let config = CheckerConfig {
            timeout,
            concurrency,
            system_roots: false,
            extra_ca_pem: Some(certs.ca_cert.as_bytes().to_vec()),
        };
        let checker =
            CredentialChecker::new(&config, &prometheus::Registry::new()).expect("checker");
        let started = Instant::now();
        let results = checker.check(&secret, &[&a, &b], HOUR).await;
        elapsed.push(started.elapsed());
        assert_eq!(results.len(), 2);
        for r in &results {
            assert_eq!(unreachable_reason(&r.outcome), "timed out after 400ms");
        }
    }
    // One at a time: the second login starts when the first has timed out.
    assert!(elapsed[0] >= 2 * timeout, "{elapsed:?}");
    assert!(elapsed[1] < 2 * timeout, "{elapsed:?}");
    hold_a.abort();
    hold_b.abort();
}

#[tokio::test]
async fn a_silent_server_times_out() {
    captured_logs();
    let certs = pki();
    let (key, hold) = silent_server().await;
    let (checker, _) = checker(&certs.ca_cert, Duration::from_millis(500));
    let started = Instant::now();
    let result = check_one(&checker, "pull", &config_json(&key, "u", "p"), &key, HOUR).await;
    assert_eq!(unreachable_reason(&result.outcome), "timed out after 500ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn redirects_are_not_followed() {
    captured_logs();
    let certs = pki();
    let server = TokenServer::start(&certs, Mode::Redirect, "u", "p", "tok").await;
    let (checker, _) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = server.key();
    let result = check_one(&checker, "pull", &config_json(&key, "u", "p"), &key, HOUR).await;
    assert_eq!(
        unreachable_reason(&result.outcome),
        "HTTP 302 from /v2/ (redirects are not followed)"
    );
}

// ---------------------------------------------------------------------------------------
// Bearer: the token flow.

#[tokio::test]
async fn bearer_token_flow_accepts_and_rejects() {
    captured_logs();
    let certs = pki();
    let server =
        TokenServer::start(&certs, Mode::Bearer, "robot$1", "bearer-pass", "tok-123").await;
    let (checker, metrics) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = server.key();

    let good = check_one(
        &checker,
        "good",
        &config_json(&key, "robot$1", "bearer-pass"),
        &key,
        HOUR,
    )
    .await;
    assert_eq!(good.outcome, Outcome::Ok);
    assert_eq!(server.token_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        *server.last_query.lock().expect("lock"),
        "service=test&account=robot%241"
    );

    let bad = check_one(
        &checker,
        "bad",
        &config_json(&key, "robot$1", "wrong"),
        &key,
        HOUR,
    )
    .await;
    assert_eq!(
        bad.outcome,
        Outcome::Rejected {
            reason: "token endpoint answered HTTP 401".to_owned()
        }
    );
    assert_eq!(
        (logins(&metrics, "ok"), logins(&metrics, "rejected")),
        (1, 1)
    );
}

#[tokio::test]
async fn a_plain_http_realm_is_refused() {
    captured_logs();
    let certs = pki();
    let server = TokenServer::start(&certs, Mode::HttpRealm, "u", "p", "tok").await;
    let (checker, _) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = server.key();
    let result = check_one(&checker, "pull", &config_json(&key, "u", "p"), &key, HOUR).await;
    let reason = unreachable_reason(&result.outcome);
    assert!(
        reason.contains("http://") && reason.contains("clear"),
        "{reason}"
    );
    assert_eq!(
        server.token_hits.load(Ordering::SeqCst),
        0,
        "no request to the realm"
    );
}

// ---------------------------------------------------------------------------------------
// Which registries.

#[tokio::test]
async fn only_allowed_registries_are_contacted_and_globs_are_not() {
    captured_logs();
    let certs = pki();
    let server = TokenServer::start(&certs, Mode::Bearer, "u", "p", "tok").await;
    let (checker, metrics) = checker(&certs.ca_cert, Duration::from_secs(10));
    let key = server.key();
    let entry = json!({"username": "u", "password": "p"});
    let doc = json!({"auths": {
        &key: entry,
        // Not allowed: never contacted (it would be unreachable from the test anyway).
        "registry.invalid": entry,
        "*.example.com": entry,
        "empty.example.com": {},
    }})
    .to_string();
    let secret = PullSecret {
        namespace: "team-a",
        name: "multi",
        config_json: true,
        data: doc.as_bytes(),
    };
    let results = checker
        .check(&secret, &[key.as_str(), "*.example.com"], HOUR)
        .await;
    let got: Vec<(&str, &Outcome)> = results
        .iter()
        .map(|r| (r.registry.as_str(), &r.outcome))
        .collect();
    assert_eq!(got.len(), 3, "{results:?}");
    assert!(got.contains(&(key.as_str(), &Outcome::Ok)), "{results:?}");
    let not_checked = |name: &str| {
        results
            .iter()
            .find(|r| r.registry == name)
            .map(|r| matches!(r.outcome, Outcome::NotChecked { .. }))
    };
    assert_eq!(not_checked("*.example.com"), Some(true));
    assert_eq!(not_checked("empty.example.com"), Some(true));
    assert_eq!(not_checked("registry.invalid"), None);
    assert_eq!(total_logins(&metrics), 1);

    // At most MAX_LOGINS_PER_SECRET logins per check: keys with paths are distinct keys
    // for one host.
    let many: serde_json::Map<String, serde_json::Value> = (0..MAX_LOGINS_PER_SECRET + 2)
        .map(|i| (format!("{key}/team{i}"), entry.clone()))
        .collect();
    let doc = json!({ "auths": many }).to_string();
    let crowded = PullSecret {
        name: "crowded",
        data: doc.as_bytes(),
        ..secret
    };
    let results = checker.check(&crowded, &[key.as_str()], HOUR).await;
    let count = |ok: bool| {
        results
            .iter()
            .filter(|r| (r.outcome == Outcome::Ok) == ok)
            .count()
    };
    assert_eq!((count(true), count(false)), (MAX_LOGINS_PER_SECRET, 2));
    assert_eq!(total_logins(&metrics), 1 + MAX_LOGINS_PER_SECRET as u64);

    // The legacy format reads the same way.
    let legacy = json!({ &key: {"auth": STANDARD.encode("u:p")} }).to_string();
    let secret = PullSecret {
        config_json: false,
        data: legacy.as_bytes(),
        ..secret
    };
    let results = checker
        .check(&secret, &[key.as_str()], Duration::ZERO)
        .await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Ok);
}

// ---------------------------------------------------------------------------------------
// Nothing that is a credential is ever echoed.

#[tokio::test]
async fn no_password_auth_or_token_in_outcomes_errors_debug_or_logs() {
    captured_logs();
    const USER: &str = "leak-user";
    const PASS: &str = "PLANTED-pass-5e1f0c";
    const WRONG: &str = "PLANTED-wrong-77a2b9";
    const TOKEN: &str = "PLANTED-token-c0ffee";
    let certs = pki();
    let registry = DistributionRegistry::start(&certs, Some((USER, PASS)));
    let server = TokenServer::start(&certs, Mode::Bearer, USER, PASS, TOKEN).await;
    let refused = format!("127.0.0.1:{}", free_port());
    let (checker, _) = checker(&certs.ca_cert, Duration::from_secs(10));

    let mut results = Vec::new();
    for (name, key, pass) in [
        ("basic-ok", registry.key(), PASS),
        ("basic-bad", registry.key(), WRONG),
        ("bearer-ok", server.key(), PASS),
        ("bearer-bad", server.key(), WRONG),
        ("refused", refused.clone(), PASS),
    ] {
        let doc = config_json(&key, USER, pass);
        let result = check_one(&checker, name, &doc, &key, HOUR).await;
        results.push(result);
    }
    let outcomes: Vec<&Outcome> = results.iter().map(|r| &r.outcome).collect();
    assert!(matches!(
        outcomes[..],
        [
            Outcome::Ok,
            Outcome::Rejected { .. },
            Outcome::Ok,
            Outcome::Rejected { .. },
            Outcome::Unreachable { .. }
        ]
    ));

    // Credentials and config errors, as a caller would print them.
    let credentials =
        secretgate::secrets::registry_credentials(true, &config_json(&registry.key(), USER, PASS));
    let bad_ca = CredentialChecker::new(
        &CheckerConfig {
            system_roots: false,
            extra_ca_pem: Some(
                format!("-----BEGIN CERTIFICATE-----\n{PASS}\n-----END CERTIFICATE-----\n")
                    .into_bytes(),
            ),
            ..CheckerConfig::default()
        },
        &prometheus::Registry::new(),
    )
    .expect_err("not a certificate");

    let mut text = String::new();
    for r in &results {
        text += &format!("{}\n{r:?}\n{r:#?}\n", r.message());
        text += &serde_json::to_string(r).expect("serialises");
    }
    text += &format!("{credentials:?}\n{checker:?}\n{bad_ca}\n{bad_ca:?}\n");
    let logs = log_text();
    assert!(
        logs.contains("pull secret credential check"),
        "the log capture works"
    );
    text += &logs;
    for (what, planted) in [
        ("password", PASS.to_owned()),
        ("wrong password", WRONG.to_owned()),
        ("token", TOKEN.to_owned()),
        ("auth", STANDARD.encode(format!("{USER}:{PASS}"))),
        ("wrong auth", STANDARD.encode(format!("{USER}:{WRONG}"))),
        ("planted prefix", "PLANTED".to_owned()),
    ] {
        assert!(!text.contains(&planted), "the {what} leaked:\n{text}");
    }
}
