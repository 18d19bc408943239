//! Container registries as policies name them: parsing `host[:port]` (also in the
//! `https://index.docker.io/v1/` form docker writes), the registry an image is pulled
//! from, and matching against policy patterns (`host`, `host:port`, `*.domain`).
//!
//! Shared by pull-secret validation (which registries a secret may serve) and pod
//! mutation (which pods get which pull secret), so both read patterns the same way.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Names docker and kubectl use for Docker Hub; `docker.io` is the one a policy writes.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];

impl Registry {
    /// Parses a registry key or address; the error says what is wrong with it.
    pub fn parse(key: &str) -> Result<Self, &'static str> {
        parse_registry(key)
    }

    /// The registry `image` is pulled from, resolved as container runtimes do
    /// (`nginx` → `docker.io`, `localhost:5000/app` → `localhost:5000`). `None` for an
    /// empty reference or a registry part that is not a host.
    pub fn of_image(image: &str) -> Option<Self> {
        parse_registry(image_domain(image.trim())?).ok()
    }

    /// The registry as a policy would write it (`host` or `host:port`).
    pub fn address(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", canonical(&self.host)),
            None => canonical(&self.host).to_owned(),
        }
    }
}

/// The registry part of an image reference, by the rule of the distribution library
/// that Docker, containerd and CRI-O share (`splitDockerDomain`): the part before the
/// first `/` is a registry if it contains `.` or `:`, is `localhost`, or has an
/// uppercase letter; otherwise the image is on Docker Hub.
///
/// Only the registry matters here (the kubelet validates the rest), so this is the
/// whole rule rather than a reference parser: oci-spec's full reference regex cost
/// ~150 ms to compile at start-up and ~1.5 µs per image (see BENCHMARKS.md).
fn image_domain(image: &str) -> Option<&str> {
    if image.is_empty() {
        return None;
    }
    match image.split_once('/') {
        Some((first, _))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            Some(first)
        }
        _ => Some(DOCKER_HUB),
    }
}

/// Whether `pattern` is a registry pattern a policy may use: `host`, `host:port`,
/// `*.domain` or `*.domain:port`.
pub fn is_valid_pattern(pattern: &str) -> bool {
    let bare = pattern.strip_prefix("*.").unwrap_or(pattern);
    !bare.contains('/') && !bare.contains("://") && parse_registry(bare).is_ok()
}

/// A registry as written in a docker config key, reduced to what a policy names.
pub struct Registry {
    /// Lowercase DNS name or IP literal (IPv6 in brackets).
    pub host: String,
    pub port: Option<u16>,
}

pub const NOT_A_HOST: &str =
    "is not a registry host (expected host[:port], optionally with https:// and a path)";

/// Parses `host[:port]`, also in the `https://index.docker.io/v1/` form docker writes.
fn parse_registry(key: &str) -> Result<Registry, &'static str> {
    let key = key.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| key.strip_prefix(scheme))
        .unwrap_or(&key);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, after) = bracketed.split_once(']').ok_or(NOT_A_HOST)?;
            ip.parse::<Ipv6Addr>().map_err(|_| NOT_A_HOST)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(NOT_A_HOST)?),
            };
            (&authority[..ip.len() + 2], port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if !host.starts_with('[') && host.parse::<Ipv4Addr>().is_err() && !is_dns_name(host) {
        return Err(NOT_A_HOST);
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or("port must be between 1 and 65535")?),
    };
    Ok(Registry {
        host: host.to_owned(),
        port,
    })
}

fn parse_port(port: &str) -> Option<u16> {
    // `u16::from_str` also takes a leading `+`, which no registry address has.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

/// RFC 1123 host name; a last label of digits only would be a malformed IPv4 address.
fn is_dns_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.len() <= 253
        && host.split('.').all(label_ok)
        && !host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

impl Registry {
    /// Whether `pattern` (`host`, `host:port`, `*.domain`, `*.domain:port`) names this
    /// registry. A pattern without a port only matches registries without one: docker
    /// treats `host` and `host:5000` as different registries.
    pub fn matches(&self, pattern: &str) -> bool {
        let pattern = pattern.trim();
        let (wildcard, pattern) = match pattern.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, pattern),
        };
        // A pattern that does not parse names no registry (policy validation reports it).
        let Ok(p) = parse_registry(pattern) else {
            return false;
        };
        if p.port != self.port {
            return false;
        }
        if wildcard {
            // Subdomains only: `*.example.com` does not match `example.com` itself.
            self.host
                .strip_suffix(p.host.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
        } else {
            canonical(&self.host) == canonical(&p.host)
        }
    }
}

fn canonical(host: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_resolve_to_their_registry_as_runtimes_do() {
        let cases = [
            ("nginx", Some("docker.io")),
            ("library/nginx:1.25", Some("docker.io")),
            ("docker.io/library/nginx:1.25", Some("docker.io")),
            ("index.docker.io/library/nginx", Some("docker.io")),
            (
                "registry.example.com:5000/team/app:1.0",
                Some("registry.example.com:5000"),
            ),
            ("ghcr.io/example-org/tool:v2.3.1", Some("ghcr.io")),
            (
                "nginx@sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac",
                Some("docker.io"),
            ),
            (
                "registry.example.com:5000/team/app:1.0@sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac",
                Some("registry.example.com:5000"),
            ),
            ("localhost:5000/dev/app", Some("localhost:5000")),
            ("localhost/app", Some("localhost")),
            ("", None),
            ("UPPER/app", Some("upper")),
            ("bad host:1/app", None),
        ];
        for (image, expected) in cases {
            assert_eq!(
                Registry::of_image(image).map(|r| r.address()).as_deref(),
                expected,
                "{image}"
            );
        }
    }

    #[test]
    fn patterns() {
        let cases = [
            ("docker.io", "docker.io", true),
            ("docker.io", "index.docker.io", true),
            (
                "registry.example.com:5000",
                "registry.example.com:5000",
                true,
            ),
            ("registry.example.com:5000", "registry.example.com", false),
            ("registry.example.com", "registry.example.com:5000", false),
            ("registry.example.com:5000", "*.example.com:5000", true),
            ("registry.example.com", "*.example.com", true),
            ("example.com", "*.example.com", false),
            ("evil-example.com", "*.example.com", false),
            ("ghcr.io", "GHCR.io", true),
        ];
        for (registry, pattern, expected) in cases {
            let r = Registry::parse(registry).expect("registry");
            assert_eq!(r.matches(pattern), expected, "{registry} ~ {pattern}");
        }
        for (pattern, valid) in [
            ("ghcr.io", true),
            ("*.example.com", true),
            ("registry:5000", true),
            ("https://ghcr.io", false),
            ("ghcr.io/org", false),
            ("not a host", false),
            ("*", false),
        ] {
            assert_eq!(is_valid_pattern(pattern), valid, "{pattern}");
        }
    }
}
