//! The real binary under load: SIGTERM in the middle of it (every review the server
//! accepted is answered completely, and the process exits 0 in bounded time), and
//! certificate files replaced again and again during load (no review fails).

mod common;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Client, Failure, Proto, fixture, uid_of};
use secretgate::certs::DevCertificates;

/// `secretgate serve` on 127.0.0.1:0 with the certificate pair in `dir`.
struct Serving {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Serving {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_secretgate"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .args(["--log-format", "json", "--drain-timeout-seconds", "5"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start secretgate");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        // Reads the log until the process ends, so the pipe never fills.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "secretgate serving"
                {
                    let addr = |k: &str| v[k].as_str().and_then(|a| a.parse().ok());
                    let _ = tx.send((addr("listen"), addr("metrics")));
                }
                let mut logs = sink.lock().expect("logs");
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let (addr, metrics) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("secretgate logs where it listens within 30 s");
        Self {
            child,
            addr: addr.expect("listen address"),
            metrics: metrics.expect("metrics address"),
            logs,
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM");
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    async fn metrics_text(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut tcp = tokio::net::TcpStream::connect(self.metrics)
            .await
            .expect("metrics");
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.expect("read");
        out
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // A failed test must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Outcome counts of one load run.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// Refusals seen before the signal (or at all, when there is none): failures.
    refused_early: AtomicU64,
    /// Refusals seen after the signal: requests the server did not accept. That it
    /// really did not is checked against its log (one line per review answered).
    refused_late: AtomicU64,
    /// Answers that were cut off or not a valid review answer: always failures.
    broken: Mutex<Vec<String>>,
    /// When SIGTERM was sent, if it was.
    signal_at: OnceLock<Instant>,
}

impl Tally {
    fn refused(&self) {
        match self.signal_at.get() {
            Some(at) if Instant::now() >= *at => self.refused_late.fetch_add(1, Ordering::Relaxed),
            _ => self.refused_early.fetch_add(1, Ordering::Relaxed),
        };
    }
    fn broken(&self, why: String) {
        self.broken.lock().expect("tally").push(why);
    }
    fn report(&self) -> String {
        format!(
            "ok {}, refused before signal {}, refused after signal {}, broken {}",
            self.ok.load(Ordering::Relaxed),
            self.refused_early.load(Ordering::Relaxed),
            self.refused_late.load(Ordering::Relaxed),
            self.broken.lock().expect("tally").len()
        )
    }
}

/// One client: a connection over `proto`, `per_connection` reviews on it, then a new
/// connection, until `stop` or the bounds. A new connection that fails after the signal
/// ends the client (the server is going away).
async fn client(
    addr: SocketAddr,
    ca: Arc<Vec<u8>>,
    proto: Proto,
    per_connection: u32,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let bodies = [
        (
            "/validate",
            fixture("secret-create-dockerconfigjson-valid.json"),
        ),
        ("/validate", fixture("secret-create-tls-rsa-pkcs1.json")),
        ("/mutate", fixture("pod-create-kubectl-run-nginx.json")),
    ];
    let started = Instant::now();
    let mut sent = 0usize;
    'connections: while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30)
    {
        let mut conn = match Client::try_connect(addr, &ca, proto).await {
            Ok(c) => c,
            Err(_) if tally.signal_at.get().is_some() => break,
            Err(e) => {
                tally.refused();
                tally.broken(format!("connect before the signal: {e:?}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        for _ in 0..per_connection {
            if stop.load(Ordering::Relaxed) || sent >= 200_000 {
                break 'connections;
            }
            let (path, body) = &bodies[sent % bodies.len()];
            sent += 1;
            match conn.try_post(path, body.clone()).await {
                Ok(reply) => match check(&reply, body) {
                    Ok(()) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => tally.broken(why),
                },
                Err(Failure::Refused(_)) => {
                    tally.refused();
                    continue 'connections;
                }
                Err(Failure::Broken(why)) => {
                    tally.broken(why);
                    continue 'connections;
                }
            }
        }
    }
}

/// A complete review answer for `body`.
fn check(reply: &common::Reply, body: &[u8]) -> Result<(), String> {
    if reply.status != 200 {
        return Err(format!("status {}", reply.status));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&reply.body).map_err(|e| format!("not JSON: {e}"))?;
    if json["response"]["uid"] != uid_of(body) || !json["response"]["allowed"].is_boolean() {
        return Err("not the answer to this review".to_owned());
    }
    Ok(())
}

fn spawn_load(
    addr: SocketAddr,
    ca: &[u8],
    clients_per_proto: usize,
    per_connection: u32,
    tally: &Arc<Tally>,
) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ca = Arc::new(ca.to_vec());
    let mut tasks = Vec::new();
    for proto in Proto::ALL {
        for _ in 0..clients_per_proto {
            tasks.push(tokio::spawn(client(
                addr,
                ca.clone(),
                proto,
                per_connection,
                stop.clone(),
                tally.clone(),
            )));
        }
    }
    (stop, tasks)
}

fn generate(dir: &Path) -> PathBuf {
    DevCertificates::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("generate")
        .write_to(dir)
        .expect("write");
    dir.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_accepted_review_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path());
    let ca = std::fs::read(dir.path().join("ca.crt")).expect("ca");
    let mut server = Serving::start(dir.path(), &[]);
    let tally = Arc::new(Tally::default());
    // Long-lived connections (like the API server's) and some that reconnect.
    let (stop, mut tasks) = spawn_load(server.addr, &ca, 6, 1_000_000, &tally);
    let (stop2, more) = spawn_load(server.addr, &ca, 2, 5, &tally);
    tasks.extend(more);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = tally.ok.load(Ordering::Relaxed);
    assert!(before > 0, "load is flowing: {}", tally.report());
    let _ = tally.signal_at.set(Instant::now());
    server.terminate();
    let exit = tokio::task::spawn_blocking(move || {
        let code = server.wait(Duration::from_secs(15));
        (code, server)
    });
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(40), task)
            .await
            .expect("clients finish")
            .expect("client task");
    }
    stop.store(true, Ordering::Relaxed);
    stop2.store(true, Ordering::Relaxed);
    let (code, server) = exit.await.expect("wait");
    let logs = server.logs.lock().expect("logs").clone();
    eprintln!("shutdown under load: {}", tally.report());
    assert_eq!(
        code,
        Some(0),
        "exits 0 within 15 s after SIGTERM; logs:\n{logs}"
    );
    assert_eq!(
        tally.refused_early.load(Ordering::Relaxed),
        0,
        "{}",
        tally.report()
    );
    let broken = tally.broken.lock().expect("tally").clone();
    assert!(broken.is_empty(), "cut-off or wrong answers: {broken:?}");
    assert!(
        logs.contains("shutting down"),
        "graceful path taken:\n{logs}"
    );
    // Every review the server answered (it logs each) reached its client complete.
    let answered = logs
        .lines()
        .filter(|l| l.contains(r#""message":"review""#))
        .count();
    assert_eq!(
        answered as u64,
        tally.ok.load(Ordering::Relaxed),
        "reviews the server answered vs answers received: {}",
        tally.report()
    );
}

/// Writes `contents` to `path` as a whole: beside it, then renamed over it.
fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_fails_no_review() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path());
    // Every pair the test will rotate through, made beforehand; clients trust all CAs.
    let mut ca = std::fs::read(dir.path().join("ca.crt")).expect("ca");
    let mut pairs = Vec::new();
    for i in 0..4 {
        let pair = dir.path().join(format!("pair-{i}"));
        std::fs::create_dir(&pair).expect("mkdir");
        generate(&pair);
        ca.extend(std::fs::read(pair.join("ca.crt")).expect("ca"));
        pairs.push((
            std::fs::read(pair.join("tls.crt")).expect("crt"),
            std::fs::read(pair.join("tls.key")).expect("key"),
        ));
    }
    let mut server = Serving::start(dir.path(), &["--cert-reload-seconds", "0.05"]);
    let tally = Arc::new(Tally::default());
    // Reconnecting every few reviews so new handshakes meet every rotation.
    let (stop, mut tasks) = spawn_load(server.addr, &ca, 3, 8, &tally);
    let (stop2, more) = spawn_load(server.addr, &ca, 1, 1_000_000, &tally);
    tasks.extend(more);
    let rotations = 16;
    for i in 0..rotations {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (crt, key) = &pairs[i % pairs.len()];
        // Key first, then certificate: for a moment they do not match, and the server
        // must keep the last good pair.
        replace(&dir.path().join("tls.key"), key);
        replace(&dir.path().join("tls.crt"), crt);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    stop2.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(40), task)
            .await
            .expect("clients finish")
            .expect("client task");
    }
    let metrics = server.metrics_text().await;
    let reloads = metrics
        .lines()
        .find(|l| l.starts_with(r#"secretgate_certificate_reloads_total{result="success"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    eprintln!(
        "rotation under load: {rotations} rotations, {reloads} reloads, {}",
        tally.report()
    );
    let broken = tally.broken.lock().expect("tally").clone();
    assert!(
        broken.is_empty(),
        "failed reviews during rotation: {broken:?}"
    );
    assert_eq!(
        tally.refused_early.load(Ordering::Relaxed),
        0,
        "{}",
        tally.report()
    );
    assert!(tally.ok.load(Ordering::Relaxed) > 100, "{}", tally.report());
    assert!(reloads >= 4.0, "the server picked up new pairs: {reloads}");
    server.terminate();
    assert_eq!(server.wait(Duration::from_secs(15)), Some(0));
}
