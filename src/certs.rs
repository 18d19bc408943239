//! Development certificates: a CA and a serving certificate signed by it (`secretgate
//! certs`, and `serve` when no certificate is given). Never for production: the CA key
//! is written next to the certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is neither a DNS name nor an IP address")]
    BadName(String),
    #[error(
        "no CA certificate at {path}; create one with `secretgate certs --out-dir {dir}` \
         (or `secretgate serve --dev-certs-dir {dir}`)"
    )]
    NoCa {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate; replace it with `secretgate certs --force`")]
    NotCa { path: PathBuf },
    #[error(
        "certificates already exist in {dir} ({files}); print the caBundle of their CA with \
         --print-ca-bundle, or pass --force to replace them"
    )]
    Exists { dir: PathBuf, files: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// File names inside the certificate directory.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// Names the serving certificate is valid for by default: loopback for `serve`, and the
/// in-cluster names of the chart's Service in namespace `secretgate`.
pub fn default_names() -> Vec<String> {
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "secretgate",
        "secretgate.secretgate",
        "secretgate.secretgate.svc",
        "secretgate.secretgate.svc.cluster.local",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// PEM text of a generated CA and serving certificate.
pub struct DevCertificates {
    pub ca_cert: String,
    pub ca_key: String,
    pub tls_cert: String,
    pub tls_key: String,
}

impl DevCertificates {
    /// A new CA (valid 10 years) and a serving certificate (valid 1 year) for `names`,
    /// each a DNS name or an IP address.
    pub fn generate(names: &[String]) -> Result<Self> {
        let now = time::OffsetDateTime::now_utc();

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "secretgate development CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = now - time::Duration::hours(1);
        ca_params.not_after = now + time::Duration::days(3650);
        let ca_key = KeyPair::generate()?;
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_>>()?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("secretgate"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;

        Ok(Self {
            ca_cert: ca.pem(),
            ca_key: ca_key_pem,
            tls_cert: cert.pem(),
            tls_key: key.serialize_pem(),
        })
    }

    /// The CA certificate, base64-encoded, as a webhook configuration's `caBundle` wants it.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_cert.as_bytes())
    }

    /// Writes the four files into `dir` (created if needed); keys get mode 0600.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
        write(&dir.join(CA_CERT), &self.ca_cert, false)?;
        write(&dir.join(CA_KEY), &self.ca_key, true)?;
        // The key first, so a reloading server never sees a new certificate with an old key
        // for longer than one poll.
        write(&dir.join(TLS_KEY), &self.tls_key, true)?;
        write(&dir.join(TLS_CERT), &self.tls_cert, false)
    }
}

/// The caBundle of the CA certificate in `dir`: base64 of `ca.crt` as it is, once it is
/// known to hold PEM certificates. Writes nothing.
pub fn ca_bundle_of(dir: &Path) -> Result<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let path = dir.join(CA_CERT);
    let pem = std::fs::read(&path).map_err(|source| Error::NoCa {
        path: path.clone(),
        dir: dir.to_owned(),
        source,
    })?;
    let mut certs = CertificateDer::pem_slice_iter(&pem);
    if !matches!(certs.next(), Some(Ok(_))) || certs.any(|c| c.is_err()) {
        return Err(Error::NotCa { path });
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(&pem))
}

/// Refuses a directory where any of the four files exists (`certs` without `--force`).
pub fn refuse_existing(dir: &Path) -> Result<()> {
    let found: Vec<&str> = [CA_CERT, CA_KEY, TLS_CERT, TLS_KEY]
        .into_iter()
        .filter(|name| dir.join(name).exists())
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::Exists {
        dir: dir.to_owned(),
        files: found.join(", "),
    })
}

fn san(name: &str) -> Result<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = name
        .to_owned()
        .try_into()
        .map_err(|_| Error::BadName(name.to_owned()))?;
    Ok(SanType::DnsName(dns))
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    // Write beside the target and rename, so a reader never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(err)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).map_err(err)
}
