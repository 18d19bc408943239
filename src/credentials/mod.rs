//! Credential health for pull secrets: does each registry a `kubernetes.io/dockerconfigjson`
//! or `kubernetes.io/dockercfg` secret holds credentials for still accept them?
//!
//! # What is contacted
//!
//! For each registry key of the secret that the project's policy patterns allow (and
//! only those: outbound calls are a security decision the caller makes per project), the
//! registry's host over HTTPS, as `docker login` does (Docker Registry HTTP API v2,
//! docker's `registry.loginV2`):
//!
//! 1. `GET https://<host>/v2/` without credentials. 200 means the registry lets anyone
//!    in: [`Outcome::Anonymous`], since nothing was proven about the credentials.
//! 2. On 401, the `WWW-Authenticate` challenge decides:
//!    - `Basic`: `GET /v2/` again with `Authorization: Basic …`; 200 is [`Outcome::Ok`],
//!      401/403 [`Outcome::Rejected`].
//!    - `Bearer realm=…,service=…`: `GET <realm>?service=…&account=<user>` with Basic
//!      auth (the token endpoint, often another host such as `auth.docker.io`); a token
//!      (`token` or `access_token`) is then confirmed by `GET /v2/` with
//!      `Authorization: Bearer …`. 401/403 from either is [`Outcome::Rejected`].
//! 3. Anything else is [`Outcome::Unreachable`] with a short reason.
//!
//! Docker Hub keys (`docker.io`, `index.docker.io`, `https://index.docker.io/v1/`) are
//! contacted at `registry-1.docker.io`; a key's scheme and path are dropped (HTTPS to
//! the host, always). Glob keys (`*.example.com`) name no host and are not contacted.
//!
//! # When
//!
//! Never on the admission path: a background caller runs [`CredentialChecker::check`].
//! A secret's registry is contacted again only when its credentials changed or the last
//! login is older than the interval the caller passes; at most `concurrency` logins run
//! at once, each bounded by `timeout`.
//!
//! # Why it is safe
//!
//! - Credentials go only where the kubelet would send them anyway: the registry the key
//!   names (policy-allowed), and the token endpoint that registry names, as with `docker
//!   login`. The realm must be `https://`: a plain-http realm would carry the password in
//!   clear, so it is refused.
//! - TLS verification is always on (system roots plus an optional extra CA bundle); there
//!   is no switch to turn it off. Redirects are never followed.
//! - Bodies are read only from the token endpoint, at most 64 KiB; response headers are
//!   capped by the HTTP client's buffer.
//! - Nothing that might be a credential is kept or echoed: the cache holds a SHA-256 of
//!   user name and password, never the password; outcome reasons, errors, `Debug` output
//!   and log lines hold no password, `auth` value, token or response body; metrics are
//!   labelled by result only.

mod challenge;
mod checker;
mod login;
mod target;

use std::time::Duration;

pub use checker::{CredentialChecker, MAX_LOGINS_PER_SECRET, PullSecret, RegistryCheck};

/// How the checker connects.
#[derive(Clone, Debug)]
pub struct CheckerConfig {
    /// Bound on one registry login, all its requests included.
    pub timeout: Duration,
    /// Logins in flight at once, over all concurrent checks (at least 1).
    pub concurrency: usize,
    /// Whether the system's trust roots are trusted.
    pub system_roots: bool,
    /// Further trusted CA certificates (PEM), e.g. a private registry's CA.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            concurrency: 4,
            system_roots: true,
            extra_ca_pem: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the extra CA bundle is not valid PEM")]
    BadPem,
    #[error("the extra CA bundle holds no certificate")]
    NoCaCertificate,
    #[error("certificate {index} of the extra CA bundle is not a usable trust anchor: {source}")]
    BadCa {
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("no trusted CA: the system store has none and no extra CA bundle is configured")]
    NoTrustRoots,
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What a registry made of a secret's credentials. Every reason is value-free: written
/// by secretgate from statuses and error kinds, never from a response body, a header
/// value or a credential.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The registry accepted the credentials.
    Ok,
    /// `GET /v2/` answered 200 without credentials: the registry is open to anyone, so
    /// the login proved nothing about the credentials (not `Ok`).
    Anonymous,
    /// The registry or its token endpoint answered 401 or 403 to the credentials.
    Rejected { reason: String },
    /// No verdict on the credentials: connection, TLS, timeout, an unexpected status or
    /// challenge.
    Unreachable { reason: String },
    /// Not contacted: a glob key, an entry without credentials, too many registries.
    NotChecked { reason: String },
}

impl Outcome {
    /// The `result` label of `secretgate_credential_checks_total`; `None` for
    /// [`Outcome::NotChecked`] (no login happened).
    pub fn result(&self) -> Option<&'static str> {
        match self {
            Outcome::Ok => Some("ok"),
            Outcome::Anonymous => Some("anonymous"),
            Outcome::Rejected { .. } => Some("rejected"),
            Outcome::Unreachable { .. } => Some("unreachable"),
            Outcome::NotChecked { .. } => None,
        }
    }

    /// A sentence for reports, naming `registry` (as [`RegistryCheck::registry`] does).
    pub fn message(&self, registry: &str) -> String {
        match self {
            Outcome::Ok => format!("registry {registry} accepted the credentials"),
            Outcome::Anonymous => format!(
                "registry {registry} allows anonymous access; the credentials were not tested"
            ),
            Outcome::Rejected { reason } => {
                format!("registry {registry} rejected the credentials ({reason})")
            }
            Outcome::Unreachable { reason } => {
                format!("registry {registry} is unreachable: {reason}")
            }
            Outcome::NotChecked { reason } => {
                format!("registry {registry} was not checked: {reason}")
            }
        }
    }

    fn rejected(reason: impl Into<String>) -> Self {
        Outcome::Rejected {
            reason: reason.into(),
        }
    }

    fn unreachable(reason: impl Into<String>) -> Self {
        Outcome::Unreachable {
            reason: reason.into(),
        }
    }

    fn not_checked(reason: impl Into<String>) -> Self {
        Outcome::NotChecked {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
