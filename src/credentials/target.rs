//! Where a login's requests go: the origin a registry key names, and the token
//! endpoint a Bearer challenge names (with the query docker sends it).

use std::fmt::Write as _;

use hyper::Uri;

use crate::registry::{Registry, RegistryKey};
use crate::secrets::SecretBytes;

const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// One HTTPS origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// DNS name or IP address to connect to (IPv6 without brackets).
    pub(super) host: String,
    pub(super) port: u16,
}

impl Origin {
    /// Where a docker config key's registry is contacted: `Err` says why a key cannot be
    /// (value-free: the key is never quoted).
    pub fn of_key(key: &str) -> Result<Self, &'static str> {
        let parsed = RegistryKey::parse(key)?;
        if parsed.is_glob() {
            return Err("the key is a glob pattern and names no single host");
        }
        let registry = Registry::parse(key)?;
        if registry.address() == "docker.io" {
            return Ok(Self {
                host: DOCKER_HUB_API.to_owned(),
                port: 443,
            });
        }
        let port = match &registry.port {
            // `Registry::parse` admits 1..=65535 only; leading zeros are dropped here.
            Some(p) => p.parse().map_err(|_| crate::registry::PORT_RANGE)?,
            None => 443,
        };
        let host = registry.host.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The `Host` header: the port only when not 443, IPv6 in brackets.
    pub(super) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            443 => host,
            port => format!("{host}:{port}"),
        }
    }
}

/// The token endpoint and the path (with query) to `GET` there, from a Bearer realm:
/// `<realm>?service=<service>&account=<username>`, as docker's token handler asks.
/// Docker asks no scope for a login, nor does this.
pub(super) fn token_request(
    realm: &str,
    service: Option<&str>,
    username: &[u8],
) -> Result<(Origin, String), String> {
    let uri: Uri = realm
        .parse()
        .map_err(|_| "Bearer realm is not a URL".to_owned())?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            return Err(
                "Bearer realm is http://, which would send the password in clear: refused"
                    .to_owned(),
            );
        }
        _ => return Err("Bearer realm is not an https:// URL".to_owned()),
    }
    let authority = uri
        .authority()
        .filter(|a| !a.as_str().contains('@'))
        .ok_or("Bearer realm has no host, or has user info")?;
    let origin = Origin {
        host: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: authority.port_u16().unwrap_or(443),
    };
    let mut path = uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let mut separator = if path.contains('?') { '&' } else { '?' };
    let mut add = |name: &str, value: &[u8]| {
        path.push(separator);
        separator = '&';
        path.push_str(name);
        path.push('=');
        query_escape(value, &mut path);
    };
    if let Some(service) = service.filter(|s| !s.is_empty()) {
        add("service", service.as_bytes());
    }
    if !username.is_empty() {
        add("account", username);
    }
    Ok((origin, path))
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn query_escape(value: &[u8], out: &mut String) {
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The token of a token endpoint's answer: `access_token` when set, else `token` (as
/// docker's token handler canonicalises them).
pub(super) fn token_of(body: &[u8]) -> Option<SecretBytes> {
    #[derive(serde::Deserialize)]
    struct TokenBody {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let parsed: TokenBody = serde_json::from_slice(body).ok()?;
    [parsed.access_token, parsed.token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .map(SecretBytes::new)
}
