//! Hostile clients over HTTPS: oversized and chunked bodies, nested JSON, huge strings,
//! invalid UTF-8, wrong content types, HTTP/2 stream floods and rapid reset, slow
//! headers and slow bodies, TLS garbage. Each gets the right status or a closed
//! connection, while a normal review sent at the same time still succeeds.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Proto, TestServer, fixture, uid_of};
use secretgate::policy::Snapshot;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The server's timeout for headers, TLS handshakes and whole requests in these tests.
const TIMEOUT: Duration = Duration::from_millis(800);
/// Longer than any refusal may take.
const PATIENCE: Duration = Duration::from_secs(10);

async fn server() -> TestServer {
    TestServer::start_with(Snapshot::with_default(), |c| {
        c.header_read_timeout = TIMEOUT;
    })
    .await
}

fn good() -> Vec<u8> {
    fixture("secret-create-generic-from-literal.json")
}

/// A normal review over new HTTP/1.1 and HTTP/2 connections gets its answer.
async fn normal_review_succeeds(server: &TestServer, during: &str) {
    let body = good();
    for proto in Proto::ALL {
        let answered = tokio::time::timeout(PATIENCE, async {
            let mut client = server.client(proto).await;
            client.post("/validate", body.clone()).await
        })
        .await
        .unwrap_or_else(|_| panic!("normal review ({proto:?}) timed out during {during}"));
        assert_eq!(answered.status, 200, "normal review during {during}");
        let json = answered.json();
        assert_eq!(json["response"]["uid"], uid_of(&body), "during {during}");
        assert_eq!(json["response"]["allowed"], true, "during {during}");
    }
}

/// Runs `hostile` while a normal review is made, then returns what `hostile` returned.
async fn alongside<T: Send + 'static>(
    server: &TestServer,
    what: &str,
    hostile: impl Future<Output = T> + Send + 'static,
) -> T {
    let task = tokio::spawn(hostile);
    // Give the hostile client a head start so the review really overlaps it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    normal_review_succeeds(server, what).await;
    tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap_or_else(|_| panic!("{what}: the server neither answered nor closed"))
        .expect("hostile task")
}

async fn tls(
    server: &TestServer,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    common::tls_connect(server.addr, &server.ca_pem(), alpn)
        .await
        .expect("TLS handshake")
}

/// Writes `head` and then `body` chunks (ignoring write errors: the server may refuse
/// and close early), and returns the response status, or `None` if the connection was
/// closed without one.
async fn raw_h1(
    mut stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    head: String,
    body: Vec<Bytes>,
    pause: Duration,
) -> Option<u16> {
    let (mut read, mut write) = tokio::io::split(&mut stream);
    let writer = async move {
        let mut pieces = std::iter::once(Bytes::from(head)).chain(body);
        if let Some(first) = pieces.next()
            && write.write_all(&first).await.is_ok()
        {
            for piece in pieces {
                tokio::time::sleep(pause).await;
                if write.write_all(&piece).await.is_err() {
                    break;
                }
            }
        }
        // Then silence (or a refused write): the reader waits for what the server does.
        std::future::pending::<()>().await;
    };
    let reader = async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if memchr::memmem::find(&buf, b"\r\n\r\n").is_some() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&buf);
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
    };
    tokio::select! {
        status = reader => status,
        () = writer => unreachable!("the writer never ends"),
    }
}

fn post_head(content_type: &str, framing: &str) -> String {
    format!(
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n{framing}\r\n"
    )
}

fn chunked(body: &[u8], piece: usize) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = body
        .chunks(piece)
        .map(|c| {
            let mut framed = format!("{:x}\r\n", c.len()).into_bytes();
            framed.extend_from_slice(c);
            framed.extend_from_slice(b"\r\n");
            Bytes::from(framed)
        })
        .collect();
    out.push(Bytes::from_static(b"0\r\n\r\n"));
    out
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_with_and_without_content_length() {
    let server = server().await;
    let big = vec![b' '; 4 << 20];

    let stream = tls(&server, &[b"http/1.1"]).await;
    let head = post_head(
        "application/json",
        &format!("Content-Length: {}\r\n", big.len()),
    );
    let body = vec![Bytes::from(big.clone())];
    let status = alongside(
        &server,
        "declared oversized body",
        raw_h1(stream, head, body, Duration::ZERO),
    )
    .await;
    assert_eq!(status, Some(413), "declared length over the limit");

    let stream = tls(&server, &[b"http/1.1"]).await;
    let head = post_head("application/json", "Transfer-Encoding: chunked\r\n");
    let body = chunked(&big, 256 * 1024);
    let status = alongside(
        &server,
        "chunked oversized body",
        raw_h1(stream, head, body, Duration::ZERO),
    )
    .await;
    assert_eq!(status, Some(413), "chunked body over the limit");

    // HTTP/2 without content-length: DATA frames until the limit is crossed.
    let stream = tls(&server, &[b"h2"]).await;
    let status = alongside(&server, "h2 oversized body", async move {
        let (client, conn) = h2::client::handshake(stream).await.expect("h2");
        tokio::spawn(conn);
        let mut client = client.ready().await.expect("ready");
        let req = h2_request("application/json");
        let (response, mut send) = client.send_request(req, false).expect("send");
        for _ in 0..4 {
            if send
                .send_data(Bytes::from(vec![b' '; 1 << 20]), false)
                .is_err()
            {
                break;
            }
        }
        let _ = send.send_data(Bytes::new(), true);
        response.await.ok().map(|r| r.status().as_u16())
    })
    .await;
    assert_eq!(status, Some(413), "h2 body over the limit");
    server.stop().await;
}

fn h2_request(content_type: &str) -> axum::http::Request<()> {
    axum::http::Request::post("https://localhost/validate?timeout=10s")
        .header("content-type", content_type)
        .body(())
        .expect("request")
}

/// A review of `good()` whose request carries `object` instead of its own.
fn review_with_object(object: &str) -> Vec<u8> {
    let review = String::from_utf8(good()).expect("UTF-8 fixture");
    let v: serde_json::Value = serde_json::from_str(&review).expect("JSON");
    let original = serde_json::to_string(&v["request"]["object"]).expect("JSON");
    let compact = serde_json::to_string(&v).expect("JSON");
    compact.replacen(&original, object, 1).into_bytes()
}

#[tokio::test]
async fn malformed_and_extreme_bodies_get_precise_answers() {
    let server = server().await;
    let huge = "x".repeat(2 << 20);
    let nested_envelope = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}"#,
        "[".repeat(100_000)
    );
    // A valid review whose annotation is a 2 MiB string: answered, not refused.
    let huge_annotation = {
        let mut v: serde_json::Value = serde_json::from_slice(&good()).expect("JSON");
        v["request"]["object"]["metadata"]["annotations"] = serde_json::json!({ "note": huge });
        serde_json::to_vec(&v).expect("JSON")
    };
    // (what, content type, body, status)
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("100k [", "application/json", "[".repeat(100_000).into_bytes(), 400),
        ("100k { in the envelope", "application/json", "{\"a\":".repeat(100_000).into_bytes(), 400),
        ("100k [ as request", "application/json", nested_envelope.into_bytes(), 400),
        ("100k [ as the object", "application/json", review_with_object(&"[".repeat(100_000)), 400),
        ("100k [ closed as the object", "application/json", review_with_object(&format!("{}{}", "[".repeat(50_000), "]".repeat(50_000))), 400),
        ("2 MiB string field", "application/json", huge_annotation, 200),
        ("2 MiB string as uid", "application/json", format!(r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"{huge}","operation":"CREATE"}}}}"#).into_bytes(), 200),
        ("invalid UTF-8 in a string", "application/json", review_with_object("{\"metadata\":{\"name\":\"\u{0}\"}}").into_iter().map(|b| if b == 0 { 0xff } else { b }).collect(), 400),
        ("lone surrogate escape", "application/json", review_with_object(r#"{"metadata":{"name":"\ud800"}}"#), 400),
        ("text/plain", "text/plain", good(), 415),
        ("application/yaml", "application/yaml", good(), 415),
        ("multipart", "multipart/form-data; boundary=x", good(), 415),
        ("application/jsonx", "application/jsonx", good(), 415),
    ];
    for (what, content_type, body, status) in cases {
        for proto in Proto::ALL {
            let mut client = server.client(proto).await;
            let (reply, ()) = tokio::join!(
                client.send("POST", "/validate", Some(content_type), body.clone()),
                normal_review_succeeds(&server, what),
            );
            assert_eq!(
                reply.status,
                status,
                "{what} ({proto:?}): {}",
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
            );
            let json = reply.json();
            assert!(json.is_object(), "{what}: a JSON answer");
            // Only the uid is echoed (as the API requires); nothing else of the input.
            let limit = if what.ends_with("as uid") {
                (2 << 20) + 4096
            } else {
                64 * 1024
            };
            assert!(
                reply.body.len() < limit,
                "{what}: the answer does not echo the input"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let server = server().await;
    // Many clients that stop half-way through the headers.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let stream = tls(&server, &[b"http/1.1"]).await;
        slow.push(raw_h1(
            stream,
            "POST /validate HTTP/1.1\r\nHost: loc".to_owned(),
            Vec::new(),
            Duration::ZERO,
        ));
    }
    let started = Instant::now();
    let statuses = alongside(&server, "slow headers", futures::future::join_all(slow)).await;
    assert!(
        statuses.iter().all(|s| matches!(s, None | Some(408))),
        "{statuses:?}"
    );
    assert!(started.elapsed() < PATIENCE);

    // A body that declares 1000 bytes and sends 10, then nothing.
    let stream = tls(&server, &[b"http/1.1"]).await;
    let head = post_head("application/json", "Content-Length: 1000\r\n");
    let status = alongside(
        &server,
        "slow body (h1)",
        raw_h1(
            stream,
            head,
            vec![Bytes::from_static(b"{\"apiVersi")],
            Duration::ZERO,
        ),
    )
    .await;
    assert!(
        matches!(status, None | Some(408)),
        "slow h1 body: {status:?}"
    );

    // A chunked body that trickles one byte per 100 ms for ever.
    let stream = tls(&server, &[b"http/1.1"]).await;
    let head = post_head("application/json", "Transfer-Encoding: chunked\r\n");
    let trickle = chunked(&[b' '; 200], 1);
    let status = alongside(
        &server,
        "trickling body (h1)",
        raw_h1(stream, head, trickle, Duration::from_millis(100)),
    )
    .await;
    assert!(
        matches!(status, None | Some(408)),
        "trickling h1 body: {status:?}"
    );

    // HTTP/2: a stream whose body never ends.
    let stream = tls(&server, &[b"h2"]).await;
    let status = alongside(&server, "slow body (h2)", async move {
        let (client, conn) = h2::client::handshake(stream).await.expect("h2");
        tokio::spawn(conn);
        let mut client = client.ready().await.expect("ready");
        let (response, mut send) = client
            .send_request(h2_request("application/json"), false)
            .expect("send");
        let _ = send.send_data(Bytes::from_static(b"{"), false);
        let status = response.await.ok().map(|r| r.status().as_u16());
        drop(send);
        status
    })
    .await;
    assert!(
        matches!(status, None | Some(408)),
        "slow h2 body: {status:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn http2_stream_floods_and_rapid_reset_do_not_starve_others() {
    let server = server().await;
    // Rapid reset (CVE-2023-44487): open and cancel streams as fast as possible.
    let stream = tls(&server, &[b"h2"]).await;
    let reset = alongside(&server, "rapid reset", async move {
        let (client, conn) = h2::client::handshake(stream).await.expect("h2");
        let conn = tokio::spawn(conn);
        let mut client = Some(client);
        let mut sent = 0u32;
        let started = Instant::now();
        while sent < 20_000 && started.elapsed() < Duration::from_secs(5) {
            let Some(Ok(mut ready)) = (match client.take() {
                Some(c) => Some(c.ready().await),
                None => None,
            }) else {
                break;
            };
            let Ok((_, mut send)) = ready.send_request(h2_request("application/json"), false)
            else {
                break;
            };
            send.send_reset(h2::Reason::CANCEL);
            client = Some(ready);
            sent += 1;
        }
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        sent
    })
    .await;
    assert!(reset > 0, "rapid reset sent streams");

    // Stream flood: as many open streams as the server allows, each waiting on a body.
    let stream = tls(&server, &[b"h2"]).await;
    let opened = alongside(&server, "stream flood", async move {
        let (client, conn) = h2::client::handshake(stream).await.expect("h2");
        tokio::spawn(conn);
        let mut client = client;
        let mut pending = Vec::new();
        for _ in 0..1000 {
            match tokio::time::timeout(Duration::from_millis(200), client.clone().ready()).await {
                Ok(Ok(ready)) => client = ready,
                _ => break,
            }
            match client.send_request(h2_request("application/json"), false) {
                Ok((response, send)) => pending.push((response, send)),
                Err(_) => break,
            }
        }
        let opened = pending.len();
        // Each stream is answered (408) or reset when the request timeout runs out, or,
        // since a body without a length may be large, refused at once (503) when the
        // lane for large reviews is full.
        for (response, send) in pending {
            let status = response.await.ok().map(|r| r.status().as_u16());
            assert!(
                matches!(status, None | Some(408) | Some(503)),
                "flooded stream: {status:?}"
            );
            drop(send);
        }
        opened
    })
    .await;
    // h2's client queues streams beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS
    // (256) itself, so every one was answered or reset in bounded time.
    assert!(
        opened > 256,
        "the flood exceeded the stream limit: {opened} opened"
    );
    normal_review_succeeds(&server, "after the floods").await;
    server.stop().await;
}

#[tokio::test]
async fn tls_garbage_is_dropped() {
    let server = server().await;
    let addr = server.addr;
    let mut hello = None;
    // A real ClientHello, captured from a client that then goes silent.
    {
        let (client_side, mut capture) = tokio::io::duplex(64 * 1024);
        let connect = tokio::spawn(async move {
            let roots = rustls::RootCertStore::empty();
            let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let _ = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, client_side)
                .await;
        });
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(2), capture.read(&mut buf)).await
        {
            hello = Some(buf[..n].to_vec());
        }
        connect.abort();
    }
    let hello = hello.expect("captured a ClientHello");
    let mut garbage = Vec::with_capacity(16 * 1024);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..16 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push(x as u8);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", garbage),
        ("ClientHello then silence", hello),
        (
            "plain HTTP",
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        ),
        ("half a record header", b"\x16\x03\x01".to_vec()),
        ("nothing at all", Vec::new()),
    ];
    for (what, bytes) in cases {
        let closed = alongside(&server, what, async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
            let _ = tcp.write_all(&bytes).await;
            let mut sink = Vec::new();
            tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut sink))
                .await
                .is_ok()
        })
        .await;
        assert!(closed, "{what}: the server closes the connection");
    }
    // Idle HTTP/2 and HTTP/1.1 connections that never send a request are closed too.
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut stream = tls(&server, &[alpn]).await;
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut sink))
            .await
            .is_ok();
        assert!(
            closed,
            "a silent {} connection is closed",
            String::from_utf8_lossy(alpn)
        );
    }
    normal_review_succeeds(&server, "after TLS garbage").await;
    server.stop().await;
}
