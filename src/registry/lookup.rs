//! Which pull-secret entries the kubelet uses for an image: its keyring lookup
//! (kubernetes `pkg/credentialprovider/keyring.go`), for the pull guarantee.
//!
//! The kubelet pulls `repoToPull`, the image's normalized repository name
//! (`parsers.ParseImageName` → distribution's `ParseNormalizedNamed`: `nginx:1.25` is
//! `docker.io/library/nginx`, tag and digest dropped), and looks it up in a keyring built
//! from the pod's pull secrets:
//! - `Add` keeps each docker config key as `host[:port][path]`: `https://` or `http://`
//!   is stripped (else `https://` is assumed for `url.Parse`), a path starting `/v1/` or
//!   `/v2/` loses those three characters, and `/` is no path;
//! - `Lookup` takes every key that `URLsMatchStr` matches with the repository: the same
//!   number of host labels, each matched with `filepath.Match` (case-sensitive, `*`
//!   globs), the port equal as a string, and the key's path a plain string prefix of the
//!   repository's path (`ghcr.io/org` serves `ghcr.io/organisation/app` too);
//! - only when no key matched, the entry under `index.docker.io` serves images that
//!   `isDefaultRegistryMatch` says are on Docker Hub.
//!
//! An entry with neither user name nor password is used too, as an anonymous pull: it
//! gives no credential, so it serves nothing here, but it still hides the Docker Hub
//! fallback. Keys this module cannot read as the kubelet would (user info, `%`
//! escapes, globs other than `*`, …) serve nothing: a pull secret is never counted as
//! covering an image on a reading the kubelet might not share.

use super::{DOCKER_HUB, is_dns_name, split_key};

/// The kubelet's name for Docker Hub in a keyring (`defaultRegistryHost`).
const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

/// One docker config key as the kubelet's keyring holds it. Kept in memory for the pull
/// guarantee; never quoted in a message (users paste tokens into keys by mistake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringKey {
    /// Host as written (the kubelet matches it case-sensitively), maybe with `*` globs.
    host: Box<str>,
    port: Option<Box<str>>,
    /// `""` for none, else starting with `/`.
    path: Box<str>,
    /// Whether the entry holds a user name or password (else it is an anonymous pull).
    credentials: bool,
}

impl KeyringKey {
    /// The key as the kubelet's `Add` keeps it; `None` when it is not read here (it then
    /// serves nothing).
    pub fn parse(key: &str, credentials: bool) -> Option<Self> {
        let parts = split_key(key).ok()?;
        let lower = parts.host.to_ascii_lowercase();
        let host_ok = if let Some(inner) = lower.strip_prefix('[') {
            inner
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            lower.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(&lower, true)
        };
        let port_ok = parts
            .port
            .is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return None;
        }
        let path = match parts.path {
            p if p.starts_with("/v1/") || p.starts_with("/v2/") => &p[3..],
            p => p,
        };
        Some(Self {
            host: parts.host.into(),
            port: parts.port.map(Into::into),
            path: if path == "/" { "" } else { path }.into(),
            credentials,
        })
    }

    /// Whether `URLsMatchStr(key, repository)` holds.
    fn matches(&self, repository: &Repository<'_>) -> bool {
        if self.port.as_deref() != repository.port || !repository.path.starts_with(&*self.path) {
            return false;
        }
        let mut globs = self.host.split('.');
        let mut labels = repository.host.split('.');
        loop {
            match (globs.next(), labels.next()) {
                (None, None) => return true,
                (Some(glob), Some(label)) if glob_match(glob, label) => {}
                _ => return false,
            }
        }
    }

    fn is_default_registry(&self) -> bool {
        &*self.host == DEFAULT_REGISTRY_HOST && self.port.is_none() && self.path.is_empty()
    }
}

/// What the kubelet's keyring says for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// At least one matching entry holds credentials.
    Credentials,
    /// Entries match, but none holds a credential: an anonymous pull.
    Anonymous,
    /// No entry serves the image.
    None,
}

/// The kubelet's keyring lookup of `image` among `keys` (every key of every pull secret
/// of the pod); `None` too when the image is not a reference the kubelet would pull.
pub fn lookup(keys: &[&KeyringKey], image: &str) -> Lookup {
    let Some(name) = normalized_name(image) else {
        return Lookup::None;
    };
    let repository = Repository::of(&name);
    let mut matched = keys.iter().filter(|k| k.matches(&repository)).peekable();
    let found = if matched.peek().is_some() {
        matched.any(|k| k.credentials)
    } else if is_default_registry_match(&name) {
        match keys.iter().find(|k| k.is_default_registry()) {
            Some(key) => key.credentials,
            None => return Lookup::None,
        }
    } else {
        return Lookup::None;
    };
    if found {
        Lookup::Credentials
    } else {
        Lookup::Anonymous
    }
}

/// The repository an image is pulled as: `domain/path`, Docker Hub's `docker.io`
/// spelled out and `library/` added to its one-part names, tag and digest dropped.
/// `None` for an empty reference.
pub fn normalized_name(image: &str) -> Option<String> {
    let image = image.trim();
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    // A tag is a `:` after the last `/`.
    let image = match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    };
    if image.is_empty() {
        return None;
    }
    let (domain, rest) = match image.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, image),
    };
    let domain = if domain == DEFAULT_REGISTRY_HOST {
        DOCKER_HUB
    } else {
        domain
    };
    if domain == DOCKER_HUB && !rest.contains('/') {
        return Some(format!("{DOCKER_HUB}/library/{rest}"));
    }
    Some(format!("{domain}/{rest}"))
}

/// A normalized name read as `url.Parse("https://" + name)` reads it.
struct Repository<'a> {
    host: &'a str,
    port: Option<&'a str>,
    /// Starts with `/`.
    path: &'a str,
}

impl<'a> Repository<'a> {
    fn of(name: &'a str) -> Self {
        let (authority, path) = name.split_at(name.find('/').unwrap_or(name.len()));
        // `net.SplitHostPort`, for the forms a registry domain takes.
        let (host, port) = match authority.strip_prefix('[') {
            Some(_) => match authority.rsplit_once("]:") {
                Some((ip, port)) => (&authority[..ip.len() + 1], Some(port)),
                None => (authority, None),
            },
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        Self { host, port, path }
    }
}

/// `isDefaultRegistryMatch`: the first part is empty (no), the whole name (yes),
/// `docker.io` or `index.docker.io` (yes), else yes when it holds neither `.` nor `:`.
fn is_default_registry_match(name: &str) -> bool {
    match name.split_once('/') {
        None => !name.is_empty(),
        Some(("", _)) => false,
        Some((first, _)) => {
            first == DOCKER_HUB || first == DEFAULT_REGISTRY_HOST || !first.contains(['.', ':'])
        }
    }
}

/// `filepath.Match` for one host label with `*` as the only wildcard (the only one a
/// [`KeyringKey`] holds): `*` matches any run of characters.
fn glob_match(glob: &str, label: &str) -> bool {
    let mut pieces = glob.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = label.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests;
