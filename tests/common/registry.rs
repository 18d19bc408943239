//! A real container registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on loopback with TLS and htpasswd, and the certificates for it.
//! Included with `#[path]` by the tests that log in to it.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secretgate::certs::DevCertificates;
use tempfile::TempDir;

pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
pub const INSTALL: &str = "apt-get install docker-registry apache2-utils";

// ---------------------------------------------------------------------------------------
// Fixtures.

/// Fails (never skips) when the registry or htpasswd is missing.
pub fn require_tools() {
    assert!(
        Path::new(DOCKER_REGISTRY).is_file(),
        "{DOCKER_REGISTRY} is missing: install the CNCF distribution registry and htpasswd \
         with `{INSTALL}`"
    );
    let htpasswd = Command::new("htpasswd")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        htpasswd.is_ok(),
        "htpasswd is missing: install it with `{INSTALL}`"
    );
}

/// A CA and a serving certificate for 127.0.0.1 and localhost.
pub fn pki() -> DevCertificates {
    DevCertificates::generate(&["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("certificates")
}

/// A serving certificate for 127.0.0.1 from a CA of another name than [`pki`]'s.
pub fn foreign_pki() -> DevCertificates {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, "some other CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let key = KeyPair::generate().expect("key");
    let cert = leaf.signed_by(&key, &ca).expect("certificate");
    DevCertificates {
        ca_cert: ca.pem(),
        ca_key: String::new(),
        tls_cert: cert.pem(),
        tls_key: key.serialize_pem(),
    }
}

pub fn free_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A bcrypt htpasswd line (distribution accepts bcrypt only).
pub fn htpasswd_line(user: &str, password: &str) -> Vec<u8> {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap_or_else(|e| panic!("htpasswd: {e}; install it with `{INSTALL}`"));
    assert!(out.status.success(), "htpasswd failed: {}", out.status);
    out.stdout
}

/// A `docker-registry serve` process on 127.0.0.1, killed when dropped.
pub struct DistributionRegistry {
    pub port: u16,
    dir: TempDir,
    child: Child,
}

impl DistributionRegistry {
    /// With `user`/`password` in htpasswd, or with no auth at all (anonymous).
    pub fn start(certs: &DevCertificates, login: Option<(&str, &str)>) -> Self {
        require_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("tls.crt"), &certs.tls_cert).expect("cert");
        std::fs::write(path("tls.key"), &certs.tls_key).expect("key");
        let auth = match login {
            Some((user, password)) => {
                std::fs::write(path("htpasswd"), htpasswd_line(user, password)).expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: secretgate-test\n    path: {}\n",
                    path("htpasswd").display()
                )
            }
            None => String::new(),
        };
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: test-only-http-secret\n  tls:\n    \
             certificate: {}\n    key: {}\n{auth}",
            path("data").display(),
            path("tls.crt").display(),
            path("tls.key").display(),
        );
        std::fs::write(path("config.yml"), config).expect("config");
        let log = std::fs::File::create(path("registry.log")).expect("log");
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(path("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{DOCKER_REGISTRY} does not start ({e}); `{INSTALL}`"));
        let mut registry = Self { port, dir, child };
        registry.wait_listening();
        registry
    }

    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry is not listening after 20 s:\n{}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn key(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the htpasswd file; distribution re-reads it when its mtime changes.
    pub fn set_password(&self, user: &str, password: &str) {
        let tmp = self.dir.path().join("htpasswd.tmp");
        let mut file = std::fs::File::create(&tmp).expect("htpasswd.tmp");
        file.write_all(&htpasswd_line(user, password))
            .expect("write");
        file.sync_all().expect("sync");
        std::fs::rename(&tmp, self.dir.path().join("htpasswd")).expect("rename");
    }
}

impl Drop for DistributionRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
