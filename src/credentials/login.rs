//! One registry login, as `docker login` performs it (see the module doc of
//! [`crate::credentials`]): HTTP/1.1 over rustls, one connection per request, no
//! redirects, no connection reuse, everything under one timeout.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue, USER_AGENT, WWW_AUTHENTICATE};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::challenge::{self, Challenge};
use super::target::{Origin, token_of, token_request};
use super::{CheckerConfig, ConfigError, Outcome};
use crate::secrets::SecretBytes;

/// Most bytes read from a token endpoint's answer (Docker Hub's are about 5 KiB).
const MAX_TOKEN_BODY: usize = 64 * 1024;
/// Read buffer of the HTTP client, which bounds a response's head (hyper's minimum is 8 KiB).
const MAX_HEAD: usize = 64 * 1024;
const USER_AGENT_VALUE: &str = concat!("secretgate/", env!("CARGO_PKG_VERSION"));

/// A TLS client for logins, shared by all checks.
pub struct Client {
    tls: TlsConnector,
    timeout: Duration,
}

impl Client {
    pub fn new(config: &CheckerConfig) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore::empty();
        if config.system_roots {
            // Unreadable system certificates are skipped: the rest still verify.
            let native = rustls_native_certs::load_native_certs();
            if !native.errors.is_empty() {
                tracing::warn!(
                    errors = native.errors.len(),
                    "some system trust roots could not be loaded"
                );
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system trust roots for registry logins");
        }
        if let Some(pem) = &config.extra_ca_pem {
            let mut count = 0;
            for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
                let cert = cert.map_err(|_| ConfigError::BadPem)?;
                roots
                    .add(cert)
                    .map_err(|source| ConfigError::BadCa { index, source })?;
                count += 1;
            }
            if count == 0 {
                return Err(ConfigError::NoCaCertificate);
            }
        }
        if roots.is_empty() {
            return Err(ConfigError::NoTrustRoots);
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
            timeout: config.timeout,
        })
    }

    /// Logs in to `origin` with `username` and `password`, within the timeout.
    pub async fn login(
        &self,
        origin: &Origin,
        username: &SecretBytes,
        password: &SecretBytes,
    ) -> Outcome {
        match tokio::time::timeout(self.timeout, self.flow(origin, username, password)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::unreachable(format!("timed out after {:?}", self.timeout)),
        }
    }

    async fn flow(
        &self,
        origin: &Origin,
        username: &SecretBytes,
        password: &SecretBytes,
    ) -> Outcome {
        const V2: &str = "/v2/";
        let first = match self.get(origin, V2, None, 0).await {
            Ok(reply) => reply,
            Err(reason) => return Outcome::unreachable(reason),
        };
        match first.status {
            200 => return Outcome::Anonymous,
            401 => {}
            status => return Outcome::unreachable(status_reason(status, V2)),
        }
        let basic = basic_auth(username, password);
        match pick_challenge(&first.challenges) {
            Some(c) if c.scheme == "bearer" => self.bearer(origin, &c, username, &basic).await,
            Some(_) => match self.get(origin, V2, Some(&basic), 0).await {
                Ok(reply) => verdict(reply.status, V2),
                Err(reason) => Outcome::unreachable(reason),
            },
            None => Outcome::unreachable(
                "401 from /v2/ without a usable Basic or Bearer WWW-Authenticate challenge",
            ),
        }
    }

    /// The token flow: a token from the realm for the credentials, then `/v2/` with it.
    async fn bearer(
        &self,
        origin: &Origin,
        challenge: &Challenge,
        username: &SecretBytes,
        basic: &HeaderValue,
    ) -> Outcome {
        let Some(realm) = challenge.param("realm") else {
            return Outcome::unreachable("Bearer challenge without a realm");
        };
        let (token_origin, path) =
            match token_request(realm, challenge.param("service"), username.expose()) {
                Ok(target) => target,
                Err(reason) => return Outcome::unreachable(reason),
            };
        let reply = match self
            .get(&token_origin, &path, Some(basic), MAX_TOKEN_BODY)
            .await
        {
            Ok(reply) => reply,
            Err(reason) => return Outcome::unreachable(format!("token endpoint: {reason}")),
        };
        match reply.status {
            200 => {}
            401 | 403 => {
                return Outcome::rejected(format!("token endpoint answered HTTP {}", reply.status));
            }
            status => {
                return Outcome::unreachable(format!("token endpoint answered HTTP {status}"));
            }
        }
        let Some(token) = token_of(&reply.body) else {
            return Outcome::unreachable("token endpoint answered 200 without a token");
        };
        drop(reply);
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(token.expose());
        let bearer = SecretBytes::new(bearer);
        let Ok(mut header) = HeaderValue::from_bytes(bearer.expose()) else {
            return Outcome::unreachable("token endpoint answered a token unfit for a header");
        };
        header.set_sensitive(true);
        match self.get(origin, "/v2/", Some(&header), 0).await {
            Ok(reply) if matches!(reply.status, 401 | 403) => Outcome::rejected(format!(
                "HTTP {} from /v2/ to the token issued for them",
                reply.status
            )),
            Ok(reply) => verdict(reply.status, "/v2/"),
            Err(reason) => Outcome::unreachable(reason),
        }
    }

    /// One `GET` on a fresh connection. The body is read only when `body_limit` > 0.
    /// `Err` is a value-free reason.
    async fn get(
        &self,
        origin: &Origin,
        path: &str,
        authorization: Option<&HeaderValue>,
        body_limit: usize,
    ) -> Result<Reply, String> {
        let addrs: Vec<_> = tokio::net::lookup_host((origin.host.as_str(), origin.port))
            .await
            .map_err(|_| "cannot resolve the host name".to_owned())?
            .collect();
        let tcp = TcpStream::connect(&addrs[..])
            .await
            .map_err(|e| connect_reason(&e))?;
        let name = ServerName::try_from(origin.host.clone())
            .map_err(|_| "the host is not a valid TLS server name".to_owned())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| tls_reason(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let mut request = Request::get(path)
            .header(HOST, origin.authority())
            .header(USER_AGENT, USER_AGENT_VALUE);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|_| "cannot build the request".to_owned())?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let status = response.status().as_u16();
            let challenges = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .cloned()
                .collect();
            let body = if body_limit == 0 {
                Bytes::new()
            } else {
                Limited::new(response.into_body(), body_limit)
                    .collect()
                    .await
                    .map_err(|_| format!("response body unreadable or over {body_limit} bytes"))?
                    .to_bytes()
            };
            Ok::<_, String>(Reply {
                status,
                challenges,
                body,
            })
        };
        // The connection is driven here, not in a spawned task: when the login times out,
        // dropping this future closes the socket.
        tokio::select! {
            reply = exchange => reply,
            closed = conn => Err(match closed {
                Ok(()) => "connection closed before an answer".to_owned(),
                Err(e) => format!("HTTP: {e}"),
            }),
        }
    }
}

struct Reply {
    status: u16,
    challenges: Vec<HeaderValue>,
    body: Bytes,
}

/// The challenge to answer: Bearer when offered (docker prefers it), else Basic.
pub(super) fn pick_challenge(headers: &[HeaderValue]) -> Option<Challenge> {
    let all: Vec<Challenge> = headers
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(|h| challenge::parse(h).ok())
        .flatten()
        .collect();
    let find = |scheme: &str| all.iter().find(|c| c.scheme == scheme).cloned();
    find("bearer").or_else(|| find("basic"))
}

/// The verdict of a request made with credentials.
fn verdict(status: u16, path: &str) -> Outcome {
    match status {
        200 => Outcome::Ok,
        401 | 403 => Outcome::rejected(format!("HTTP {status}")),
        _ => Outcome::unreachable(status_reason(status, path)),
    }
}

fn status_reason(status: u16, path: &str) -> String {
    if (300..400).contains(&status) {
        format!("HTTP {status} from {path} (redirects are not followed)")
    } else {
        format!("HTTP {status} from {path}")
    }
}

fn basic_auth(username: &SecretBytes, password: &SecretBytes) -> HeaderValue {
    let mut pair = username.expose().to_vec();
    pair.push(b':');
    pair.extend_from_slice(password.expose());
    let pair = SecretBytes::new(pair);
    let encoded = SecretBytes::new(format!("Basic {}", STANDARD.encode(pair.expose())));
    // Base64 is always a valid header value.
    let mut value = HeaderValue::from_bytes(encoded.expose())
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

fn connect_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::TimedOut => "connection timed out".to_owned(),
        K::ConnectionReset => "connection reset".to_owned(),
        K::HostUnreachable => "host unreachable".to_owned(),
        K::NetworkUnreachable => "network unreachable".to_owned(),
        kind => format!("cannot connect ({kind})"),
    }
}

/// `TLS: <rustls error>` when rustls refused (rustls errors name the problem, e.g.
/// `invalid peer certificate: UnknownIssuer`, never data).
fn tls_reason(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("TLS: {tls}"),
        None => format!("TLS handshake failed ({})", e.kind()),
    }
}
