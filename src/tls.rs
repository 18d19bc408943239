//! TLS for the webhook port: a rustls server config whose certificate can be replaced at
//! run time, and the reload loop that replaces it when the files change.
//!
//! The certificate lives behind a `ResolvesServerCert` that hands out the current
//! `CertifiedKey`: a new handshake takes the new pair, established connections keep the
//! keys they negotiated. A reload that fails (unreadable file, a read that does not finish
//! in time, bad PEM, key that does not match) is logged and the last good pair stays in
//! force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::file_read::{self, Reader};
use crate::metrics::Metrics;

/// What went wrong with a certificate, key or CA file. Messages name the file and the
/// problem, never the content: the parsers' own errors print the offending line as a
/// list of bytes, and in a key file that line is the private key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] file_read::Error),
    #[error("no PEM certificate found in {path}{hint}")]
    NoCertificate { path: PathBuf, hint: Hint },
    #[error("{path} is not a usable PEM certificate chain: {problem}{hint}")]
    BadCertificate {
        path: PathBuf,
        problem: PemProblem,
        hint: Hint,
    },
    #[error("no PEM private key found in {path}{hint}")]
    NoKey { path: PathBuf, hint: Hint },
    #[error("{path} is not a usable PEM private key: {problem}{hint}")]
    BadKey {
        path: PathBuf,
        problem: PemProblem,
        hint: Hint,
    },
    #[error("{path}: the private key does not parse as an RSA, ECDSA or Ed25519 key")]
    UnsupportedKey { path: PathBuf },
    #[error("the private key in {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot check the private key in {key} against the certificate in {cert}")]
    KeyUnchecked { cert: PathBuf, key: PathBuf },
    #[error("client CA {path}: {problem}")]
    ClientCa {
        path: PathBuf,
        problem: &'static str,
    },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with a PEM file, by category (never the bytes the parser quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemProblem {
    #[error("a BEGIN line has more text after it")]
    SectionStart,
    #[error("a PEM section has no END line")]
    SectionEnd,
    #[error("a PEM section is not valid base64")]
    Base64,
    #[error("a PEM section is too large")]
    TooLarge,
    #[error("the PEM cannot be read")]
    Other,
}

impl From<&rustls_pki_types::pem::Error> for PemProblem {
    fn from(e: &rustls_pki_types::pem::Error) -> Self {
        use rustls_pki_types::pem::Error as E;
        match e {
            E::IllegalSectionStart { .. } => Self::SectionStart,
            E::MissingSectionEnd { .. } => Self::SectionEnd,
            E::Base64Decode(_) => Self::Base64,
            E::SectionTooLarge => Self::TooLarge,
            _ => Self::Other,
        }
    }
}

/// The likely cause of a PEM file that does not read, told from its shape: the usual
/// mistakes of Helm values and environment variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Hint {
    #[error("")]
    None,
    #[error(" (a PEM on one line with literal \\n? write real line breaks)")]
    OneLine,
    #[error(" (it holds a private key: are the certificate and key swapped?)")]
    HoldsKey,
    #[error(" (it holds a certificate: are the certificate and key swapped?)")]
    HoldsCertificate,
    #[error(" (it holds an encrypted key; the server needs an unencrypted one)")]
    Encrypted,
    #[error(" (the file is empty)")]
    Empty,
}

impl Hint {
    /// For a file that should hold a certificate chain.
    fn for_cert(pem: &[u8]) -> Self {
        let shape = Shape::of(pem);
        if shape.key && !shape.cert {
            Self::HoldsKey
        } else {
            shape.common()
        }
    }

    /// For a file that should hold a private key.
    fn for_key(pem: &[u8]) -> Self {
        let shape = Shape::of(pem);
        if shape.encrypted {
            Self::Encrypted
        } else if shape.cert && !shape.key {
            Self::HoldsCertificate
        } else {
            shape.common()
        }
    }
}

/// What a PEM file looks like, without keeping any of it.
struct Shape {
    empty: bool,
    one_line: bool,
    cert: bool,
    key: bool,
    encrypted: bool,
}

impl Shape {
    fn of(pem: &[u8]) -> Self {
        let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
        Self {
            empty: pem.iter().all(u8::is_ascii_whitespace),
            one_line: has(b"\\n"),
            cert: has(b"-----BEGIN CERTIFICATE-----"),
            key: has(b"PRIVATE KEY-----"),
            encrypted: has(b"ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED"),
        }
    }

    fn common(&self) -> Hint {
        if self.empty {
            Hint::Empty
        } else if self.one_line {
            Hint::OneLine
        } else {
            Hint::None
        }
    }
}

/// The crypto provider used everywhere (ring; see TOOLING.md: never two providers).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificate and key paths, and what was last loaded from them.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    /// Reads the certificate and the key together, off the runtime, one read at a time.
    reader: Reader,
    current: ArcSwap<CertifiedKey>,
    /// File contents of the pair in force, to tell a real change from a touch.
    loaded: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
}

impl CertStore {
    /// Loads the pair; fails if either file is unusable (start-up must not serve without
    /// a certificate). Waits at most [`file_read::TIMEOUT`] for the files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let reader = Reader::new(
            vec![cert_path.to_owned(), key_path.to_owned()],
            file_read::TIMEOUT,
        );
        let (cert_pem, key_pem) = pair(reader.read_blocking()?);
        let key = certified_key(cert_path, &cert_pem, key_path, &key_pem)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            reader,
            current: ArcSwap::from_pointee(key),
            loaded: std::sync::Mutex::new((cert_pem, key_pem)),
        })
    }

    /// Re-reads the files; swaps in the new pair if the contents changed and are valid.
    /// Returns `Ok(true)` when a new pair is in force.
    pub async fn reload(&self) -> Result<bool> {
        let (cert_pem, key_pem) = pair(self.reader.read().await?);
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.0 == cert_pem && loaded.1 == key_pem {
            return Ok(false);
        }
        let key = certified_key(&self.cert_path, &cert_pem, &self.key_path, &key_pem)?;
        self.current.store(Arc::new(key));
        *loaded = (cert_pem, key_pem);
        Ok(true)
    }

    /// notAfter of the leaf certificate in force, as a Unix timestamp.
    pub fn not_after(&self) -> Option<i64> {
        let current = self.current.load();
        let leaf = current.cert.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        Some(cert.validity().not_after.timestamp())
    }

    /// The reload loop: polls the files every `interval` (the kubelet updates mounted
    /// Secrets by swapping a `..data` symlink, which a watch on the file path misses).
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.reload().await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                    metrics
                        .certificate_reloads
                        .with_label_values(&["success"])
                        .inc();
                    if let Some(t) = self.not_after() {
                        metrics.certificate_expiry.set(t as f64);
                    }
                }
                Err(e) => {
                    if let Error::Read(read) = &e {
                        metrics
                            .file_read_failures
                            .with_label_values(&["certificate", read.reason()])
                            .inc();
                    }
                    tracing::error!(error = %e, "certificate reload failed; keeping the current certificate");
                    metrics
                        .certificate_reloads
                        .with_label_values(&["failure"])
                        .inc();
                }
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server config: TLS 1.2 and 1.3, ALPN h2 then http/1.1, the reloadable certificate,
/// and client certificate verification when a client CA is given.
pub fn server_config(store: Arc<CertStore>, client_ca: Option<&Path>) -> Result<ServerConfig> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca = |problem| Error::ClientCa {
                path: path.to_owned(),
                problem,
            };
            let mut pem = Reader::new(vec![path.to_owned()], file_read::TIMEOUT).read_blocking()?;
            let mut roots = RootCertStore::empty();
            for cert in parse_certs(path, &pem.pop().unwrap_or_default())? {
                roots
                    .add(cert)
                    .map_err(|_| ca("a certificate does not parse as a CA certificate"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|_| ca("no usable CA certificate"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate and key, in the order the reader reads them.
fn pair(contents: file_read::Contents) -> (Vec<u8>, Vec<u8>) {
    let mut files = contents.into_iter();
    let cert = files.next().unwrap_or_default();
    (cert, files.next().unwrap_or_default())
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::BadCertificate {
            path: path.to_owned(),
            problem: PemProblem::from(&e),
            hint: Hint::for_cert(pem),
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
            hint: Hint::for_cert(pem),
        });
    }
    Ok(certs)
}

fn certified_key(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey> {
    use rustls_pki_types::pem::Error as PemError;
    let certs = parse_certs(cert_path, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        PemError::NoItemsFound => Error::NoKey {
            path: key_path.to_owned(),
            hint: Hint::for_key(key_pem),
        },
        e => Error::BadKey {
            path: key_path.to_owned(),
            problem: PemProblem::from(&e),
            hint: Hint::for_key(key_pem),
        },
    })?;
    let signing_key =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|_| Error::UnsupportedKey {
                path: key_path.to_owned(),
            })?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        let (cert, key) = (cert_path.to_owned(), key_path.to_owned());
        match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                Error::KeyMismatch { cert, key }
            }
            _ => Error::KeyUnchecked { cert, key },
        }
    })?;
    Ok(certified)
}

#[cfg(test)]
mod tests;
