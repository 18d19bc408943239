//! The HTTP side: the webhook router (`app`), the operations router (`ops_app`), and the
//! TLS accept loop with graceful shutdown.
//!
//! Request path: TLS accept → hyper (h2 or http/1.1) → `app` → `admission::review` →
//! `secrets` | `pods`, reading the current policy snapshot.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::{self, Answer, Context, Webhook};
use crate::first_byte::FirstByte;
use crate::metrics::Metrics;
use crate::policy::Snapshot;
use crate::telemetry::Escaped;
use crate::tls::{self, CertStore};

pub mod evaluation;

/// How the server listens and what it tolerates.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Verify client certificates against this CA (API servers can present one).
    pub client_ca: Option<PathBuf>,
    /// How often the certificate files are compared with the pair in force.
    pub cert_reload_interval: Duration,
    /// Bodies above this size get 413. The API server stores at most ~1.5 MiB per
    /// object and a review carries two objects.
    pub max_body_bytes: usize,
    /// A client that has not sent its request headers (or TLS handshake) by then is
    /// disconnected, and a request whose body has not arrived by then gets 408: the API
    /// server gives up on a webhook after at most 30 s, so a slower request is an attack
    /// or a broken client holding a connection (or an h2 stream) open.
    pub header_read_timeout: Duration,
    /// After SIGTERM, in-flight reviews get this long to finish.
    pub drain_timeout: Duration,
}

impl Config {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The policy snapshot in force; swapped whole when policy changes.
    pub policies: Arc<ArcSwap<Snapshot>>,
    pub metrics: Arc<Metrics>,
    /// Set once certificates are loaded and policy has synced.
    pub ready: Arc<AtomicBool>,
    pub max_body_bytes: usize,
    /// Where reviews of large bodies run (`evaluation`).
    pub lane: Arc<evaluation::Lane>,
    /// Benchmark ceiling: answer every review allowed without evaluating it
    /// (`serve --echo`, hidden). Everything else — TLS, HTTP, body limits, envelope
    /// decode, response encode, logs, metrics — is the same.
    pub echo: bool,
    /// Where denied Secrets that name an owner are offered for an Event on it
    /// (`serve --owner-events`, cluster mode); never waited for.
    pub owner_events: Option<crate::owner_events::Sender>,
}

/// The webhook router: `/validate`, `/mutate`, `/validate-pods`, `/validate-policy`, and
/// the health endpoints.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/validate-pods", post(validate_pods))
        .route("/validate-policy", post(validate_policy))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The operations router, on its own plain-HTTP port: `/metrics` and health.
pub fn ops_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn validate(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(Webhook::Validate, &state, &uri, &headers, body).await
}

async fn mutate(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(Webhook::Mutate, &state, &uri, &headers, body).await
}

async fn validate_pods(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(Webhook::ValidatePods, &state, &uri, &headers, body).await
}

/// ProjectPolicies (`POST /validate-policy`): the service's own validation when a policy
/// is applied (`policy::review`). Large bodies take the same bounded lane as reviews.
async fn validate_policy(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use crate::policy::review;
    let started = Instant::now();
    let deadline =
        started + evaluation::requested_timeout(uri.query()).unwrap_or(evaluation::DEFAULT_TIMEOUT);
    let bytes = match read_body(&headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err((status, reason, message)) => {
            let labels = ["policy", reason];
            state
                .metrics
                .invalid_requests
                .with_label_values(&labels)
                .inc();
            return status_response(status, reason, &message);
        }
    };
    let answer = if bytes.len() <= evaluation::INLINE_MAX_BYTES {
        review::review(&bytes)
    } else {
        match state
            .lane
            .run(deadline, move || review::review(&bytes))
            .await
        {
            Ok(answer) => answer,
            Err(abandoned) => return abandon("policy", &state, abandoned),
        }
    };
    review::record(&answer.outcome, &state.metrics, started.elapsed());
    let status = StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response()
}

async fn handle(
    webhook: Webhook,
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let deadline =
        started + evaluation::requested_timeout(uri.query()).unwrap_or(evaluation::DEFAULT_TIMEOUT);
    // A body that may be large takes its place in the lane before it is read, so the
    // memory large bodies hold is bounded by the lane, not by how many arrive at once.
    let declared = content_length(headers);
    let small = declared.is_some_and(|n| n <= evaluation::INLINE_MAX_BYTES as u64);
    let admitted = if state.echo || small {
        None
    } else {
        match state.lane.admit() {
            Ok(admitted) => Some(admitted),
            Err(abandoned) => return abandon(webhook.as_str(), state, abandoned),
        }
    };
    let bytes = match read_body(headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err((status, reason, message)) => {
            state
                .metrics
                .invalid_requests
                .with_label_values(&[webhook.as_str(), reason])
                .inc();
            tracing::warn!(webhook = webhook.as_str(), status = status.as_u16(), %message, "request refused");
            return status_response(status, reason, &message);
        }
    };
    let mut answer = match admitted {
        _ if state.echo => admission::echo(&bytes),
        Some(admitted) if bytes.len() > evaluation::INLINE_MAX_BYTES => {
            let review_state = state.clone();
            let reviewed = admitted
                .run(deadline, move || review_now(webhook, &review_state, &bytes))
                .await;
            match reviewed {
                Ok(answer) => answer,
                Err(abandoned) => return abandon(webhook.as_str(), state, abandoned),
            }
        }
        _ => review_now(webhook, state, &bytes),
    };
    record(webhook, state, &answer, started.elapsed());
    if let (Some(events), Some(notice)) = (&state.owner_events, answer.summary.owner_event.take()) {
        events.offer(notice);
    }
    let status = StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response()
}

/// The answer to a large review that got none: 503 when the lane was full, 504 when the
/// API server's timeout passed. Counted and logged.
fn abandon(webhook: &'static str, state: &AppState, abandoned: evaluation::Abandoned) -> Response {
    state
        .metrics
        .abandoned_reviews
        .with_label_values(&[webhook, abandoned.reason()])
        .inc();
    tracing::warn!(
        webhook,
        reason = abandoned.reason(),
        "review abandoned: {abandoned}"
    );
    let status = match abandoned {
        evaluation::Abandoned::Busy => StatusCode::SERVICE_UNAVAILABLE,
        evaluation::Abandoned::TimedOut => StatusCode::GATEWAY_TIMEOUT,
    };
    status_response(status, abandoned.reason(), &abandoned.to_string())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reviews `body` against the policy snapshot in force now.
fn review_now(webhook: Webhook, state: &AppState, body: &[u8]) -> Answer {
    let policies = state.policies.load();
    let ctx = Context {
        policies: &policies,
        now: time::OffsetDateTime::now_utc(),
    };
    admission::review(webhook, body, &ctx)
}

type Refusal = (StatusCode, &'static str, String);

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Refusal> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content-type {:?} is not supported; send application/json",
                    admission::clip(essence, 64)
                ),
            ));
        }
    }
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = content_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        // `Vec::from` takes over the buffer `to_bytes` gathered the frames into, where
        // `to_vec` copied it again (3 MiB for the largest reviews).
        Ok(collected) => Ok(Vec::from(collected.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// Answers 408 when a request (in practice: its body, reviews take microseconds) takes
/// longer than `limit`, so a client trickling a body cannot hold a connection or an h2
/// stream for ever.
async fn within(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let webhook = match path.as_str() {
                "/validate" => Webhook::Validate.as_str(),
                "/mutate" => Webhook::Mutate.as_str(),
                "/validate-pods" => Webhook::ValidatePods.as_str(),
                "/validate-policy" => "policy",
                _ => "other",
            };
            tracing::warn!(webhook, timeout = ?limit, "request not received in time");
            status_response(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                &format!("the request was not received within {limit:?}"),
            )
        }
    }
}

/// One log line and the metrics for a review. Only names, never data.
fn record(webhook: Webhook, state: &AppState, answer: &Answer, elapsed: Duration) {
    let s = &answer.summary;
    let verdict = s.verdict();
    let metrics = &state.metrics;
    let operation = match s.operation.as_str() {
        op @ ("CREATE" | "UPDATE" | "DELETE" | "CONNECT") => op,
        _ => "unknown",
    };
    metrics
        .reviews
        .with_label_values(&[webhook.as_str(), operation, verdict.as_str()])
        .inc();
    metrics
        .review_duration
        .with_label_values(&[webhook.as_str()])
        .observe(elapsed.as_secs_f64());
    if let Some(error) = &answer.error {
        metrics
            .invalid_requests
            .with_label_values(&[webhook.as_str(), error.reason()])
            .inc();
    }
    for injection in &s.injections {
        metrics
            .injections
            .with_label_values(&[injection.kind])
            .inc();
    }
    if s.exempted.is_some() {
        metrics
            .exempted
            .with_label_values(&[webhook.as_str()])
            .inc();
    }
    if let Some(mode) = s.mode
        && s.finding_count > 0
    {
        let outcome = match verdict {
            admission::Verdict::Denied => "denied",
            _ if mode == crate::policy::Mode::Audit => "audited",
            _ => "warned",
        };
        metrics
            .findings
            .with_label_values(&[mode.as_str(), outcome])
            .inc_by(s.finding_count as u64);
    }
    // Everything from the request is escaped and cut (`Escaped`); findings are already
    // capped by admission, so the line stays under ~24 KiB whatever the review held.
    let mut findings: Vec<String> = s.findings.iter().map(ToString::to_string).collect();
    findings.extend(s.findings_more.clone());
    let findings = findings.join("; ");
    let injected: Vec<String> = s
        .injections
        .iter()
        .take(admission::MAX_SHOWN)
        .map(|i| format!("{}/{}", i.kind, i.secret))
        .collect();
    let injected = injected.join(", ");
    let error = answer.error.as_ref().map(ToString::to_string);
    tracing::info!(
        webhook = webhook.as_str(),
        uid = %Escaped::new(&s.uid, 128),
        kind = %Escaped::new(&s.kind, 64),
        namespace = %Escaped::new(&s.namespace, 64),
        name = %Escaped::new(&s.name, 256),
        operation = %Escaped::new(&s.operation, 16),
        dry_run = s.dry_run,
        policy = %Escaped::new(s.policy.as_deref().unwrap_or(""), 256),
        mode = s.mode.map(|m| m.as_str()).unwrap_or(""),
        verdict = verdict.as_str(),
        exempted = s.exempted.as_deref().map(|e| Escaped::new(e, 320)).map(tracing::field::display),
        findings = %Escaped::new(&findings, 20_000),
        injected = %Escaped::new(&injected, 4096),
        error = error.as_deref().map(|e| Escaped::new(e, 512)).map(tracing::field::display),
        duration_us = elapsed.as_micros() as u64,
        "review"
    );
}

/// A Kubernetes-style `Status` body for requests refused before review.
fn status_response(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status.as_u16(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        // 200 even with broken policies, which the body names (`Snapshot::readiness`).
        (StatusCode::OK, state.policies.load().readiness()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: policy not synced",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// A bound server: sockets open, certificate loaded, not yet serving.
pub struct Server {
    config: Config,
    state: AppState,
    listener: TcpListener,
    metrics_listener: TcpListener,
    certs: Arc<CertStore>,
    tls: Arc<rustls::ServerConfig>,
}

impl Server {
    /// Loads the certificate (waiting at most [`crate::file_read::TIMEOUT`] for its
    /// files) and binds both ports (port 0 picks a free one).
    pub async fn bind(config: Config, state: AppState) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let certs = Arc::new(
            CertStore::load(&config.tls_cert, &config.tls_key)
                .context("cannot load the serving certificate (--tls-cert and --tls-key)")?,
        );
        if let Some(t) = certs.not_after() {
            state.metrics.certificate_expiry.set(t as f64);
        }
        let tls = Arc::new(
            tls::server_config(certs.clone(), config.client_ca.as_deref())
                .context("cannot set up TLS (--client-ca)")?,
        );
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (--listen); stop what holds it or pass another address",
                config.listen
            )
        })?;
        let metrics_listener = TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (--metrics-listen); stop what holds it or pass another \
                     address",
                    config.metrics_listen
                )
            })?;
        Ok(Self {
            config,
            state,
            listener,
            metrics_listener,
            certs,
            tls,
        })
    }

    /// Where the webhook (HTTPS) port listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the metrics (HTTP) port listens.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics_listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight reviews
    /// finish (bounded by the drain timeout) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Server {
            config,
            state,
            listener,
            metrics_listener,
            certs,
            tls,
        } = self;
        let reload = tokio::spawn(
            certs
                .clone()
                .watch(config.cert_reload_interval, state.metrics.clone()),
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ops = {
            let mut stop = stop_rx.clone();
            let app = ops_app(state.clone());
            tokio::spawn(async move {
                let served = axum::serve(metrics_listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics server failed");
                }
            })
        };
        let mut stop = stop_rx;
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        tokio::spawn(signal);
        serve_tls(listener, tls, app(state), &config, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
        reload.abort();
        let _ = ops.await;
    }
}

/// The accept loop: TLS handshake (bounded by the header timeout), then hyper's
/// auto-detecting connection (h2 or http/1.1), watched for graceful shutdown.
async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Bounds what one client can ask for at once on a single connection.
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(64)
        .max_header_list_size(64 * 1024);
    let handshake_timeout = config.header_read_timeout;
    let request_timeout = config.header_read_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            within(request_timeout, req, next)
        },
    ));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY, small h2 frames wait for delayed ACKs (tens of ms at p99).
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            // A client silent after the handshake is closed like a slow header.
            let stream = FirstByte::new(stream, handshake_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; finishing in-flight reviews");
    if tokio::time::timeout(config.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?config.drain_timeout, "drain timed out; closing remaining connections");
    }
}
