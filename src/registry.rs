//! Container registries as the kubelet and container runtimes name them: docker config
//! keys (`host[:port]`, optionally with `https://` and a path as docker writes
//! `https://index.docker.io/v1/`, or a glob such as `*.example.com`), the registry an
//! image is pulled from, and matching against policy patterns (`host`, `host:port`,
//! `*.domain`).
//!
//! One normalisation serves pull-secret validation (which registries a secret's
//! credentials reach) and pod mutation (which pods get which pull secret). It follows
//! the kubelet (kubernetes `pkg/credentialprovider/keyring.go`: `BasicDockerKeyring.Add`
//! turns a key into `host[/path]`, `Lookup` compares it with each image through
//! `URLsMatchStr` → `ParseSchemelessURL` + `URLsMatch` → `SplitURL`):
//! - a key is a URL whose `https://` or `http://` prefix is optional; `Add` strips
//!   exactly these two (`strings.HasPrefix`, so `HTTPS://` is not a scheme to it);
//! - `URLsMatch` splits the host on dots and matches label by label with
//!   `filepath.Match`, so a key may hold globs (`*.example.com` serves every
//!   `x.example.com`, one label per `*`); such a key is only allowed inside a policy's
//!   `*.domain`;
//! - `SplitURL` keeps the port as written and `URLsMatch` compares it as a string:
//!   credentials under `host:05000` serve images named `host:05000/…`, a registry the
//!   policy's `host:5000` does not name (the runtime's mirror configuration is keyed by
//!   that string too), and `host` is not `host:443`;
//! - a trailing dot makes another label (`ghcr.io.` is not `ghcr.io`): not a host here;
//! - the key's path must be a prefix of the image's path: it only narrows which images
//!   of that registry use the credentials, so policies name registries, not paths;
//! - `filepath.Match` is case-sensitive, but the runtime contacts the host whatever its
//!   case (DNS), so hosts compare case-insensitively here: `GHCR.io` reaches `ghcr.io`.

pub mod lookup;

use std::net::{Ipv4Addr, Ipv6Addr};

/// Names docker and kubectl use for Docker Hub; `docker.io` is the one a policy writes.
/// The kubelet itself sends `index.docker.io` credentials to Docker Hub images
/// (`isDefaultRegistryMatch`), and the runtime resolves the other names to Docker Hub.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];

/// Longest key parsed at all (scheme, host, port, path).
const MAX_KEY_LEN: usize = 512;
/// Longest `host[:port]`: a DNS name (253) and `:65535`.
const MAX_AUTHORITY_LEN: usize = 253 + 6;
/// Longest key quoted in a message; see [`RegistryKey::is_quotable`].
const MAX_QUOTED_LEN: usize = 128;
/// Longest host label or path segment of a quoted key.
const MAX_QUOTED_PART: usize = 24;
/// Longest path of a quoted key.
const MAX_QUOTED_PATH: usize = 64;

pub const NOT_A_HOST: &str =
    "is not a registry host (expected host[:port], optionally with https:// and a path)";
pub const USER_INFO: &str = "holds user info (user:password@host?): credentials belong in \
    the entry, not in the registry key";
pub const SINGLE_NAME: &str = "is a single name without a dot or a port: the kubelet would \
    use these credentials for Docker Hub images under that name (write the registry's full \
    host name, or docker.io)";
pub const PORT_RANGE: &str = "port must be between 1 and 65535";

/// A registry as policies name it: what an image is pulled from, or what a docker config
/// key without globs serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// Lowercase DNS name or IP literal (IPv6 in brackets).
    pub host: String,
    /// The port as written (digits, 1..=65535): the kubelet compares ports as strings.
    pub port: Option<String>,
}

impl Registry {
    /// Parses a registry address or a docker config key without globs (scheme and path
    /// are accepted and dropped); the error says what is wrong, without quoting it.
    pub fn parse(key: &str) -> Result<Self, &'static str> {
        let parts = split_key(key)?;
        parts.registry(false).map(|(registry, _)| registry)
    }

    /// The registry `image` is pulled from, resolved as container runtimes do
    /// (`nginx` → `docker.io`, `localhost:5000/app` → `localhost:5000`). `None` for an
    /// empty reference or a registry part that is not a host.
    pub fn of_image(image: &str) -> Option<Self> {
        Self::parse(image_domain(image.trim())?).ok()
    }

    /// The registry as a policy would write it (`host` or `host:port`).
    pub fn address(&self) -> String {
        match &self.port {
            Some(port) => format!("{}:{port}", canonical(&self.host)),
            None => canonical(&self.host).to_owned(),
        }
    }

    /// Whether `pattern` (`host`, `host:port`, `*.domain`, `*.domain:port`) names this
    /// registry. Ports compare as written, and a pattern without a port only matches
    /// registries without one, as the kubelet matches keys with images.
    pub fn matches(&self, pattern: &str) -> bool {
        let Some((wildcard, p)) = parse_pattern(pattern) else {
            // A pattern that does not parse names no registry (policy validation reports it).
            return false;
        };
        if p.port != self.port {
            return false;
        }
        if wildcard {
            is_subdomain(&self.host, &p.host)
        } else {
            canonical(&self.host) == canonical(&p.host)
        }
    }
}

/// A `.dockerconfigjson` / `.dockercfg` registry key as the kubelet reads it.
#[derive(Clone, Debug)]
pub struct RegistryKey {
    /// Host (lowercase, maybe with `*` globs) and port.
    registry: Registry,
    glob: bool,
    quotable: bool,
}

impl RegistryKey {
    /// Parses a docker config key; the error says what is wrong, without quoting it.
    pub fn parse(key: &str) -> Result<Self, &'static str> {
        let parts = split_key(key)?;
        let (registry, glob) = parts.registry(true)?;
        // `Lookup` matches such a key with the first component of an image name
        // (`myreg` with `myreg/app`), which the runtime pulls from Docker Hub.
        if !registry.host.contains(['.', '['])
            && registry.port.is_none()
            && registry.host != "localhost"
        {
            return Err(SINGLE_NAME);
        }
        let quotable = key.len() <= MAX_QUOTED_LEN
            && !key.bytes().any(|b| b.is_ascii_uppercase())
            && (parts.host.starts_with('[')
                || parts.host.split('.').all(|l| l.len() <= MAX_QUOTED_PART))
            && parts.path.len() <= MAX_QUOTED_PATH
            && parts.path.split('/').all(|s| {
                s.len() <= MAX_QUOTED_PART
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        Ok(Self {
            registry,
            glob,
            quotable,
        })
    }

    /// Whether the key may be quoted in a message (field paths, denials, warnings, logs).
    ///
    /// Users paste credentials into keys by mistake (`https://robot:TOKEN@ghcr.io`, an
    /// `auth` value as the key), so a key is quoted only when it parses and could hardly
    /// hold a secret: at most 128 characters, no upper case (tokens and base64 mix cases),
    /// host labels and path segments of at most 24 characters, a path of at most 64 in
    /// docker's repository alphabet (`a-z0-9._-`). Any other key is named by position.
    pub fn is_quotable(&self) -> bool {
        self.quotable
    }

    /// Whether the key holds a glob (`*.example.com`).
    pub fn is_glob(&self) -> bool {
        self.glob
    }

    /// Whether every registry the kubelet would use these credentials for is matched by
    /// one of `patterns`: the registry itself, or for a glob key every host the glob
    /// matches (so only a `*.domain` pattern covering all of them allows it).
    pub fn allowed_by<S: AsRef<str>>(&self, patterns: &[S]) -> bool {
        patterns.iter().any(|p| self.within(p.as_ref()))
    }

    fn within(&self, pattern: &str) -> bool {
        if !self.glob {
            return self.registry.matches(pattern);
        }
        // The glob labels sit before `domain`, which is literal: every host the key
        // matches has at least one label before `domain`, i.e. is a subdomain.
        parse_pattern(pattern).is_some_and(|(wildcard, p)| {
            wildcard && p.port == self.registry.port && is_subdomain(&self.registry.host, &p.host)
        })
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
    parse_pattern(pattern).is_some()
}

/// `(wildcard, registry)` of a policy pattern; no scheme, path or other glob.
fn parse_pattern(pattern: &str) -> Option<(bool, Registry)> {
    let pattern = pattern.trim();
    let (wildcard, bare) = match pattern.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, pattern),
    };
    if bare.contains('/') {
        return None;
    }
    Registry::parse(bare).ok().map(|r| (wildcard, r))
}

/// Subdomains only: `*.example.com` does not match `example.com` itself.
fn is_subdomain(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
}

/// A key split as `url.Parse` would split `https://` + key, as written.
struct Parts<'a> {
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
}

/// Splits a key into host, port and path, refusing what `url.Parse` would read
/// differently from what it looks like: user info (`url.Parse` drops it and keeps the
/// host after `@`), a query or fragment, `%` escapes, backslashes, whitespace, control
/// and non-ASCII characters.
fn split_key(key: &str) -> Result<Parts<'_>, &'static str> {
    if key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NOT_A_HOST);
    }
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    if rest.contains('@') {
        return Err(USER_INFO);
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // Another scheme, or `HTTPS://` (not a scheme to `Add`, which compares case-sensitively).
    if rest.contains(['?', '#', '%', '\\'])
        || rest.contains("://")
        || authority.len() > MAX_AUTHORITY_LEN
    {
        return Err(NOT_A_HOST);
    }
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
    Ok(Parts { host, port, path })
}

impl Parts<'_> {
    /// The registry, and whether its host holds a glob (only where `globs` allows).
    fn registry(&self, globs: bool) -> Result<(Registry, bool), &'static str> {
        let host = self.host.to_ascii_lowercase();
        let glob = if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
            false
        } else if is_dns_name(&host, globs) {
            host.contains('*')
        } else {
            return Err(NOT_A_HOST);
        };
        if self.port.is_some_and(|p| !is_port(p)) {
            return Err(PORT_RANGE);
        }
        let port = self.port.map(str::to_owned);
        Ok((Registry { host, port }, glob))
    }
}

/// Digits only (`u16::from_str` would take a leading `+`), 1..=65535; leading zeros are
/// kept: the port is compared as written.
fn is_port(port: &str) -> bool {
    !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u64>().is_ok_and(|p| (1..=65535).contains(&p))
}

/// RFC 1123 host name (with `*` in labels where `globs`); a last label of digits only
/// would be a malformed IPv4 address.
fn is_dns_name(host: &str, globs: bool) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (globs && b == b'*'))
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
            // The port as written: the kubelet compares it as a string.
            ("registry.corp.io:05000/app", Some("registry.corp.io:05000")),
            ("ghcr.io./app", None),
            ("robot@ghcr.io/app", None),
            ("robot@ghcr.io:1/app", None),
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
            // Ports compare as strings, as in the kubelet's URLsMatch.
            ("registry.corp.io:05000", "registry.corp.io:5000", false),
            ("registry.corp.io:5000", "registry.corp.io:05000", false),
            ("registry.corp.io:05000", "registry.corp.io:05000", true),
            ("ghcr.io:443", "ghcr.io", false),
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
            ("*.*.example.com", false),
            ("a*.example.com", false),
            ("robot@ghcr.io", false),
        ] {
            assert_eq!(is_valid_pattern(pattern), valid, "{pattern}");
        }
    }

    #[test]
    fn keys_parse_as_the_kubelet_reads_them() {
        // (key, Ok(address) or Err(message))
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("ghcr.io", Ok("ghcr.io")),
            ("https://index.docker.io/v1/", Ok("docker.io")),
            ("http://localhost:5000", Ok("localhost:5000")),
            ("localhost", Ok("localhost")),
            ("GHCR.io/Org", Ok("ghcr.io")),
            ("registry.corp.io:05000", Ok("registry.corp.io:05000")),
            ("[::1]:5000", Ok("[::1]:5000")),
            ("*.example.com", Ok("*.example.com")),
            ("*:5000", Ok("*:5000")),
            ("https://robot:tok@ghcr.io", Err(USER_INFO)),
            ("robot@ghcr.io", Err(USER_INFO)),
            ("https://ghcr.io@evil.io/", Err(USER_INFO)),
            ("myreg", Err(SINGLE_NAME)),
            ("dXNlcjpwYXNz", Err(SINGLE_NAME)),
            ("*", Err(SINGLE_NAME)),
            ("HTTPS://ghcr.io", Err(NOT_A_HOST)),
            ("ftp://ghcr.io", Err(NOT_A_HOST)),
            ("ghcr.io.", Err(NOT_A_HOST)),
            ("ghcr.io?x=1", Err(NOT_A_HOST)),
            ("ghcr.io#x", Err(NOT_A_HOST)),
            ("%67hcr.io", Err(NOT_A_HOST)),
            ("ghcr.io\\x", Err(NOT_A_HOST)),
            ("ghcr.io /x", Err(NOT_A_HOST)),
            ("ghcr.io\n", Err(NOT_A_HOST)),
            ("ghсr.io", Err(NOT_A_HOST)),
            ("ghcr.io:", Err(PORT_RANGE)),
            ("ghcr.io:+5000", Err(PORT_RANGE)),
            ("ghcr.io:65536", Err(PORT_RANGE)),
            (
                "ghcr.io:000000000000000000000000000001",
                Ok("ghcr.io:000000000000000000000000000001"),
            ),
        ];
        for (key, want) in cases {
            let got = RegistryKey::parse(key).map(|k| {
                let r = &k.registry;
                match &r.port {
                    Some(p) => format!("{}:{p}", canonical(&r.host)),
                    None => canonical(&r.host).to_owned(),
                }
            });
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{key:?}");
        }
        let long = format!("{}.io", "a.".repeat(200));
        assert_eq!(RegistryKey::parse(&long).err(), Some(NOT_A_HOST));
        assert!(
            Registry::parse("*.example.com").is_err(),
            "no globs outside keys"
        );
        assert!(
            Registry::parse("myreg").is_ok(),
            "an image's registry may be one label"
        );
    }

    #[test]
    fn keys_are_allowed_only_when_everything_they_reach_is() {
        let policy = [
            "ghcr.io",
            "*.example.com",
            "registry.corp.io:5000",
            "docker.io",
        ];
        let cases = [
            ("ghcr.io", true),
            ("https://ghcr.io/v2/", true),
            ("ghcr.io/org/team", true),
            ("GHCR.IO", true),
            ("https://index.docker.io/v1/", true),
            ("registry-1.docker.io", true),
            ("a.example.com", true),
            ("a.b.example.com", true),
            ("*.example.com", true),
            ("*.*.example.com", true),
            ("app*.example.com", true),
            ("registry.corp.io:5000", true),
            ("registry.corp.io:05000", false),
            ("registry.corp.io", false),
            ("registry.corp.io:5001", false),
            ("example.com", false),
            ("*example.com", false),
            ("*.com", false),
            ("*.io", false),
            ("ghcr.*", false),
            ("*.example.com:5000", false),
            ("evil.io", false),
        ];
        for (key, allowed) in cases {
            let k = RegistryKey::parse(key).expect(key);
            assert_eq!(k.allowed_by(&policy), allowed, "{key}");
        }
        let glob = RegistryKey::parse("*.example.com:5000").expect("glob");
        assert!(glob.is_glob());
        assert!(glob.allowed_by(&["*.example.com:5000"]));
        assert!(!glob.allowed_by(&["a.example.com:5000"]));
    }

    #[test]
    fn only_keys_that_cannot_hide_a_secret_are_quoted() {
        for (key, quoted) in [
            ("ghcr.io", true),
            ("https://index.docker.io/v1/", true),
            ("registry.example.com:5000/team-a/app", true),
            ("[::1]:5000", true),
            ("*.example.com", true),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", true),
            ("Quay.IO", false),
            ("ghcr.io/Org", false),
            ("ghcr.io/0123456789abcdef0123456789abcdef", false),
            ("0123456789abcdef0123456789abcdef.example.com", false),
            (
                "ghcr.io/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab/ab",
                false,
            ),
            ("ghcr.io/a~b", false),
        ] {
            let got = RegistryKey::parse(key).is_ok_and(|k| k.is_quotable());
            assert_eq!(got, quoted, "{key}");
        }
    }
}
