//! End-to-end over HTTPS, as the API server talks to the webhook: every recorded request
//! over HTTP/1.1 and HTTP/2, bad input, metrics, certificate rotation, shutdown.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Proto, TestServer, fixture, request_fixtures, uid_of};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Checks that `reply` is a well-formed AdmissionReview answer to the request `body`.
fn assert_well_formed(name: &str, body: &[u8], reply: &common::Reply) {
    assert_eq!(reply.status, 200, "{name}: HTTP status");
    let review = reply.json();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{name}");
    assert_eq!(review["kind"], "AdmissionReview", "{name}");
    let response = &review["response"];
    assert_eq!(response["uid"], uid_of(body), "{name}: uid echoed");
    let allowed = response["allowed"].as_bool().expect("allowed is a bool");
    if !allowed {
        assert_eq!(response["status"]["code"], 403, "{name}: denial code");
        assert_eq!(response["status"]["reason"], "Forbidden", "{name}");
        assert!(
            response["status"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    if let Some(patch) = response.get("patch") {
        assert_eq!(response["patchType"], "JSONPatch", "{name}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch.as_str().expect("patch is a base64 string"))
            .expect("patch is base64");
        let ops: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch is JSON Patch");
        assert!(!ops.0.is_empty(), "{name}: an empty patch is never sent");
    }
}

#[tokio::test]
async fn every_recorded_request_gets_a_well_formed_answer_over_h1_and_h2() {
    let server = TestServer::start().await;
    let fixtures = request_fixtures();
    assert!(
        fixtures.len() > 80,
        "expected the recorded fixtures, found {}",
        fixtures.len()
    );
    for proto in Proto::ALL {
        // One keep-alive connection for all requests, as the API server does.
        let mut client = server.client(proto).await;
        for (name, body) in &fixtures {
            let path = if name.starts_with("pod-") || name.starts_with("reject-pod") {
                "/mutate"
            } else {
                "/validate"
            };
            let reply = client.post(path, body.clone()).await;
            assert_well_formed(&format!("{name} ({proto:?})"), body, &reply);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn byte_exact_wire_bodies_are_answered() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    for (name, path) in [
        (
            "raw/secret-create-generic-from-literal.wire.json",
            "/validate",
        ),
        (
            "raw/secret-update-annotation-with-html-chars.wire.json",
            "/validate",
        ),
        ("raw/pod-create-kubectl-run.wire.json", "/mutate"),
    ] {
        let body = fixture(name);
        let reply = client.post(path, body.clone()).await;
        assert_well_formed(name, &body, &reply);
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_precise_status_and_the_server_keeps_serving() {
    let server = TestServer::start_with(secretgate::policy::Snapshot::with_default(), |c| {
        c.max_body_bytes = 64 * 1024;
    })
    .await;
    let good = fixture("secret-create-generic-from-literal.json");
    for proto in Proto::ALL {
        // (what, content type, body, expected status, expected message)
        type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
        let cases: Vec<Case> = vec![
            ("too large", Some("application/json"), vec![b' '; 65 * 1024], 413, "larger than the limit of 65536 bytes"),
            ("not JSON", Some("application/json"), b"{not json".to_vec(), 400, "not valid JSON (line 1, column 2)"),
            ("truncated", Some("application/json"), good[..good.len() / 2].to_vec(), 400, "JSON ends early"),
            ("wrong apiVersion", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}"#.to_vec(), 400, "apiVersion \"admission.k8s.io/v1beta1\" is not supported"),
            ("wrong kind", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(), 400, "kind \"Pod\" is not AdmissionReview"),
            ("no request", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), 400, "AdmissionReview has no request"),
            ("no uid", Some("application/json"), br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"group":"","version":"v1","kind":"Secret"}}}"#.to_vec(), 400, "request.uid is missing or empty"),
            ("wrong content type", Some("text/plain"), good.clone(), 415, "content-type \"text/plain\" is not supported"),
            ("invalid UTF-8", Some("application/json"), b"{\"apiVersion\":\"\xff\xfe\"}".to_vec(), 400, "not a valid AdmissionReview"),
        ];
        for (what, content_type, body, status, message) in cases {
            // HTTP/1.1 closes a connection whose body was refused unread, so each case
            // gets its own connection; a second one proves the server still serves.
            let mut client = server.client(proto).await;
            let reply = client.send("POST", "/validate", content_type, body).await;
            assert_eq!(
                reply.status,
                status,
                "{what} ({proto:?}): {}",
                String::from_utf8_lossy(&reply.body)
            );
            // A review answer carries the message in response.status, a refusal before
            // review in a Kubernetes Status.
            let json = reply.json();
            let text = json["response"]["status"]["message"]
                .as_str()
                .or(json["message"].as_str())
                .unwrap_or_default();
            assert!(text.contains(message), "{what} ({proto:?}): {text}");
            let mut client = server.client(proto).await;
            let ok = client.post("/validate", good.clone()).await;
            assert_well_formed(what, &good, &ok);
        }
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            r#"secretgate_invalid_requests_total{reason="too_large",webhook="validate"} 2"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_disconnected_while_others_are_served() {
    let server = TestServer::start_with(secretgate::policy::Snapshot::with_default(), |c| {
        c.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let ca = server.ca_pem();
    // TLS done, then half a request line and silence.
    let mut slow = common::tls_connect(server.addr, &ca, &[b"http/1.1"])
        .await
        .expect("tls");
    slow.write_all(b"POST /validate HTTP/1.1\r\nHost: local")
        .await
        .expect("write");
    let good = fixture("secret-create-generic-from-literal.json");
    let mut client = server.client(Proto::Http1).await;
    assert_well_formed(
        "concurrent",
        &good,
        &client.post("/validate", good.clone()).await,
    );
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow connection is closed by the server");
    // A client that never finishes the TLS handshake is dropped too.
    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    raw.write_all(b"\x16\x03\x01").await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), raw.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the stalled handshake is closed by the server"
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_the_reviews_made() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    for _ in 0..3 {
        client
            .post(
                "/validate",
                fixture("secret-create-generic-from-literal.json"),
            )
            .await;
    }
    client
        .post("/validate", fixture("secret-delete.json"))
        .await;
    client
        .post("/mutate", fixture("pod-create-kubectl-run-nginx.json"))
        .await;
    let metrics = server.metrics().await;
    for line in [
        r#"secretgate_reviews_total{operation="CREATE",verdict="allowed",webhook="validate"} 3"#,
        r#"secretgate_reviews_total{operation="DELETE",verdict="allowed",webhook="validate"} 1"#,
        r#"secretgate_reviews_total{operation="CREATE",verdict="allowed",webhook="mutate"} 1"#,
        r#"secretgate_review_duration_seconds_count{webhook="validate"} 4"#,
        "secretgate_certificate_expiry_timestamp_seconds ",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn rotated_certificate_is_served_to_new_connections_and_old_ones_keep_working() {
    let server = TestServer::start().await;
    let body = fixture("secret-create-generic-from-literal.json");
    let mut old = server.client(Proto::Http1).await;
    let mut old_h2 = server.client(Proto::Http2).await;
    let first_cert = old.peer_cert.clone();

    server.rotate_certs();
    let mut rotated = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The new CA is on disk, so a connection that verifies proves the new pair.
        if let Ok(stream) = common::tls_connect(server.addr, &server.ca_pem(), &[b"http/1.1"]).await
        {
            let cert = stream.get_ref().1.peer_certificates().expect("cert")[0].to_vec();
            rotated = Some(cert);
            break;
        }
    }
    let new_cert = rotated.expect("the new certificate is served within 5 s");
    assert_ne!(new_cert, first_cert);
    let on_disk = std::fs::read(server.dir.path().join("tls.crt")).expect("tls.crt");
    let on_disk = rustls::pki_types::pem::PemObject::pem_slice_iter(&on_disk)
        .next()
        .map(|c: Result<rustls::pki_types::CertificateDer<'static>, _>| c.expect("pem").to_vec());
    assert_eq!(Some(new_cert), on_disk);

    assert_well_formed(
        "old h1 connection",
        &body,
        &old.post("/validate", body.clone()).await,
    );
    assert_well_formed(
        "old h2 connection",
        &body,
        &old_h2.post("/validate", body.clone()).await,
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"secretgate_certificate_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_broken_certificate_on_disk_keeps_the_last_good_one() {
    let server = TestServer::start().await;
    let before = server.client(Proto::Http1).await.peer_cert;
    std::fs::write(server.dir.path().join("tls.crt"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = server.client(Proto::Http1).await.peer_cert;
    assert_eq!(before, after);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"secretgate_certificate_reloads_total{result="failure"}"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_file_replaced_by_a_fifo_keeps_the_pair_and_the_server_serving() {
    let server = TestServer::start().await;
    let before = server.client(Proto::Http1).await.peer_cert;
    // Opening a FIFO blocks until a writer comes; none ever does.
    common::replace_by_fifo(&server.dir.path().join("tls.key"));
    server
        .wait_for_metric(
            r#"secretgate_file_read_failures_total{file="certificate",reason="error"}"#,
        )
        .await;
    let mut client = server.client(Proto::Http2).await;
    assert_eq!(client.peer_cert, before, "the last good pair is served");
    let body = fixture("secret-create-generic-from-literal.json");
    assert_well_formed(
        "with a FIFO",
        &body,
        &client.post("/validate", body.clone()).await,
    );
    assert_eq!(
        client
            .send("GET", "/healthz", None, Vec::new())
            .await
            .status,
        200
    );
    assert_eq!(server.ops_get("/healthz").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut client = server.client(Proto::Http1).await;
    let body = fixture("secret-create-generic-from-literal.json");
    assert_well_formed(
        "before shutdown",
        &body,
        &client.post("/validate", body.clone()).await,
    );
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn health_endpoints_answer_on_both_ports() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    for path in ["/healthz", "/readyz"] {
        let reply = client.send("GET", path, None, Vec::new()).await;
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (200, &b"ok"[..]),
            "{path}"
        );
    }
    server
        .state
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    let reply = client.send("GET", "/readyz", None, Vec::new()).await;
    assert_eq!(reply.status, 503);
    assert!(
        server
            .metrics()
            .await
            .contains("# TYPE secretgate_certificate_expiry_timestamp_seconds gauge")
    );
    server.stop().await;
}
