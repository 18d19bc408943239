//! Test helpers: a real server on 127.0.0.1:0 with certificates in a tempdir, an HTTPS
//! client speaking HTTP/1.1 or HTTP/2, and the recorded fixtures.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use secretgate::certs::DevCertificates;
use secretgate::metrics::Metrics;
use secretgate::policy::Snapshot;
use secretgate::server::{AppState, Config, Server};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Directory of the recorded AdmissionReview fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/admission")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every request fixture (secret-*, pod-*, reject-*), sorted by name.
pub fn request_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory (../shared beside the repository)")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with("response-"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

/// The state a server starts with: the given policy snapshot, ready.
pub fn state(snapshot: Snapshot, max_body_bytes: usize) -> AppState {
    AppState {
        policies: Arc::new(ArcSwap::from_pointee(snapshot)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
        ready: Arc::new(AtomicBool::new(true)),
        max_body_bytes,
        lane: Arc::new(secretgate::server::evaluation::Lane::for_this_machine()),
        echo: false,
        owner_events: None,
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// A server with the embedded default policy and test-friendly timeouts.
    pub async fn start() -> Self {
        Self::start_with(Snapshot::with_default(), |_| {}).await
    }

    pub async fn start_with(snapshot: Snapshot, adjust: impl FnOnce(&mut Config)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        write_certs(dir.path());
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            metrics_listen: "127.0.0.1:0".parse().expect("addr"),
            tls_cert: dir.path().join("tls.crt"),
            tls_key: dir.path().join("tls.key"),
            client_ca: None,
            cert_reload_interval: Duration::from_millis(100),
            max_body_bytes: Config::DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
        };
        adjust(&mut config);
        let state = state(snapshot, config.max_body_bytes);
        let server = Server::bind(config, state.clone()).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let metrics_addr = server.metrics_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            metrics_addr,
            dir,
            state,
            stop: Some(tx),
            task,
        }
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.crt")).expect("ca.crt")
    }

    pub async fn client(&self, proto: Proto) -> Client {
        Client::connect(self.addr, &self.ca_pem(), proto).await
    }

    /// Replaces the serving certificate on disk with a new pair from a new CA.
    pub fn rotate_certs(&self) {
        write_certs(self.dir.path());
    }

    /// The Prometheus text from the metrics port.
    pub async fn metrics(&self) -> String {
        let (status, body) = self.ops_get("/metrics").await;
        assert_eq!(status, 200, "/metrics: {body}");
        body
    }

    /// A GET on the metrics (plain HTTP) port: status and body.
    pub async fn ops_get(&self, path: &str) -> (u16, String) {
        let stream = TcpStream::connect(self.metrics_addr)
            .await
            .expect("connect");
        let (mut send, conn) = http1::handshake(TokioIo::new(stream)).await.expect("h1");
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let res = send.send_request(req).await.expect(path);
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    /// Polls /metrics until it holds `line` (a reload loop runs every 50–100 ms).
    pub async fn wait_for_metric(&self, line: &str) {
        for _ in 0..200 {
            if self.metrics().await.contains(line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{line} never appeared in:\n{}", self.metrics().await);
    }

    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within 10s")
            .expect("server task");
    }
}

/// Replaces `path` by a FIFO: opening it for reading blocks until a writer comes.
pub fn replace_by_fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn write_certs(dir: &Path) {
    DevCertificates::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("generate")
        .write_to(dir)
        .expect("write certs");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

impl Proto {
    pub const ALL: [Proto; 2] = [Proto::Http1, Proto::Http2];
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One HTTPS connection, like the API server's keep-alive connection to a webhook.
pub struct Client {
    sender: Sender,
    /// The server's leaf certificate as presented in this connection's handshake.
    pub peer_cert: Vec<u8>,
}

/// A response: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &[u8],
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("ca pem")).expect("ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
}

impl Client {
    pub async fn connect(addr: SocketAddr, ca_pem: &[u8], proto: Proto) -> Self {
        let alpn: &[&[u8]] = match proto {
            Proto::Http1 => &[b"http/1.1"],
            Proto::Http2 => &[b"h2"],
        };
        let tls = tls_connect(addr, ca_pem, alpn)
            .await
            .expect("TLS handshake");
        let (_, session) = tls.get_ref();
        let peer_cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let negotiated = session.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        let sender = match proto {
            Proto::Http1 => {
                assert_eq!(negotiated.as_deref(), Some(&b"http/1.1"[..]));
                let (send, conn) = http1::handshake(io).await.expect("h1 handshake");
                tokio::spawn(conn);
                Sender::H1(send)
            }
            Proto::Http2 => {
                assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
                let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
                tokio::spawn(conn);
                Sender::H2(send)
            }
        };
        Self { sender, peer_cert }
    }

    /// POSTs `body` as the API server does (`application/json`, `?timeout=10s`).
    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> Reply {
        self.send(
            "POST",
            &format!("{path}?timeout=10s"),
            Some("application/json"),
            body,
        )
        .await
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .header("user-agent", "kube-apiserver-admission")
            .header("accept", "application/json, */*");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if matches!(self.sender, Sender::H1(_)) {
            req = req.header("host", "localhost");
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let res = match &mut self.sender {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
        .expect("response");
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Reply { status, body }
    }
}

/// The `request.uid` of a fixture.
pub fn uid_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("fixture JSON");
    v["request"]["uid"].as_str().expect("uid").to_owned()
}

/// Why a request under load got no complete answer.
#[derive(Debug)]
pub enum Failure {
    /// No connection, or the connection was closed or the stream refused before any
    /// response header arrived: the server never accepted the request.
    Refused(String),
    /// A response started but did not complete (a dropped in-flight review).
    Broken(String),
}

impl Client {
    /// Like [`Client::connect`], but reports a failed connection instead of panicking
    /// (load tests count those).
    pub async fn try_connect(
        addr: SocketAddr,
        ca_pem: &[u8],
        proto: Proto,
    ) -> Result<Self, Failure> {
        let alpn: &[&[u8]] = match proto {
            Proto::Http1 => &[b"http/1.1"],
            Proto::Http2 => &[b"h2"],
        };
        let tls = tls_connect(addr, ca_pem, alpn)
            .await
            .map_err(|e| Failure::Refused(format!("connect: {e}")))?;
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let io = TokioIo::new(tls);
        let handshake = |e: hyper::Error| Failure::Refused(format!("handshake: {e}"));
        let sender = match proto {
            Proto::Http1 => {
                let (send, conn) = http1::handshake(io).await.map_err(handshake)?;
                tokio::spawn(conn);
                Sender::H1(send)
            }
            Proto::Http2 => {
                let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(handshake)?;
                tokio::spawn(conn);
                Sender::H2(send)
            }
        };
        Ok(Self { sender, peer_cert })
    }

    /// POSTs a review; a failure says whether the server had started answering.
    pub async fn try_post(&mut self, path: &str, body: Vec<u8>) -> Result<Reply, Failure> {
        let mut req = hyper::Request::post(format!("https://localhost{path}?timeout=10s"))
            .header("content-type", "application/json");
        if matches!(self.sender, Sender::H1(_)) {
            req = req.header("host", "localhost");
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let res = match &mut self.sender {
            Sender::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            Sender::H2(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
        }
        .map_err(|e| Failure::Refused(e.to_string()))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Broken(format!("body after status {status}: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(Reply { status, body })
    }
}

/// Log output captured from every thread of the test process.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything captured so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}
