//! The credentials a pull secret gives the kubelet, read the way the checks in the
//! parent module read the document (same JSON reader, same field matching), for those
//! who use them: credential health logs in to registries with them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use base64::Engine as _;

use super::json::{Json, go_field_match};
use super::{AUTHS, HTTP_HEADERS, member};
use crate::registry::RegistryKey;

/// A credential value (user name, password, token): bytes that never reach a message or
/// a log line. `Debug` prints `<redacted>` and there is no `Display`. The buffer is
/// overwritten when dropped; that is best effort (copies made on the way, e.g. by the
/// JSON reader, are freed without it), it shortens how long the bytes stay in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes, for the one place that sends them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keeps the compiler from dropping the writes to a buffer about to be freed.
        std::hint::black_box(&mut self.0);
    }
}

/// One registry's credentials as the kubelet's keyring holds them.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The registry key as written in the document (`ghcr.io`, `https://index.docker.io/v1/`,
    /// `*.example.com`); parse it with [`RegistryKey::parse`]. Users paste credentials into
    /// keys by mistake, so quote it only when [`RegistryKey::is_quotable`].
    pub key: String,
    /// Empty when the entry holds none (the kubelet then pulls anonymously).
    pub username: SecretBytes,
    pub password: SecretBytes,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quotable = RegistryKey::parse(&self.key).is_ok_and(|k| k.is_quotable());
        f.debug_struct("RegistryCredential")
            .field("key", &if quotable { &self.key } else { "<unquotable>" })
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// The credentials the kubelet reads from a pull secret's document: `.dockerconfigjson`
/// when `config_json`, else `.dockercfg`. One entry per registry key (a repeated key
/// keeps its last entry, in the place of its first), in document order.
///
/// Read as the kubelet reads (see the module doc): every key Go folds to `auths` is
/// merged (a `null` one empties the map, as Go sets it to nil), entry fields match
/// case-insensitively with the last string winning, and a non-empty `auth` replaces
/// username and password. Where Go's decode fails (invalid JSON, a field of the wrong
/// type, an `auth` that does not decode), the kubelet uses no credential from the
/// secret, and neither list has any here. Unlike the admission check, `auth` is decoded
/// as leniently as the kubelet does (unpadded base64 too): this reads secrets stored
/// before a policy existed.
pub fn registry_credentials(config_json: bool, bytes: &[u8]) -> Vec<RegistryCredential> {
    kubelet_keyring(config_json, bytes).unwrap_or_default()
}

/// [`registry_credentials`], but `None` where Go's `json.Unmarshal` fails: the kubelet
/// then fails every pull of a pod that names the secret (`MakeDockerKeyring` returns
/// the error), not only the pulls it would have served.
pub fn kubelet_keyring(config_json: bool, bytes: &[u8]) -> Option<Vec<RegistryCredential>> {
    let root = Json::parse(std::str::from_utf8(bytes).ok()?).ok()?;
    let mut keyring = Keyring::default();
    if !config_json {
        match root {
            Json::Object(entries) => keyring.add(&entries)?,
            Json::Null => {}
            _ => return None,
        }
        return Some(keyring.entries);
    }
    let members = match root {
        Json::Object(members) => members,
        // `null` leaves the struct as it was.
        Json::Null => return Some(Vec::new()),
        _ => return None,
    };
    for (key, value) in &members {
        if go_field_match(key, AUTHS) {
            match value {
                Json::Object(entries) => keyring.add(entries)?,
                Json::Null => keyring = Keyring::default(),
                _ => return None,
            }
        } else if go_field_match(key, HTTP_HEADERS) {
            // Never used for pulls, but another shape fails the whole decode.
            match value {
                Json::Null => {}
                Json::Object(headers)
                    if headers
                        .iter()
                        .all(|(_, v)| matches!(v, Json::String(_) | Json::Null)) => {}
                _ => return None,
            }
        }
    }
    Some(keyring.entries)
}

/// `DockerConfig` as Go fills it: a map (here in first-seen order) where a key written
/// again replaces its entry.
#[derive(Default)]
struct Keyring {
    entries: Vec<RegistryCredential>,
    index: HashMap<String, usize>,
}

impl Keyring {
    fn add(&mut self, entries: &[(String, Json)]) -> Option<()> {
        for (key, entry) in entries {
            let (username, password) = kubelet_entry(entry)?;
            let credential = RegistryCredential {
                key: key.clone(),
                username,
                password,
            };
            match self.index.entry(key.clone()) {
                Entry::Occupied(slot) => self.entries[*slot.get()] = credential,
                Entry::Vacant(slot) => {
                    slot.insert(self.entries.len());
                    self.entries.push(credential);
                }
            }
        }
        Some(())
    }
}

/// `DockerConfigEntry.UnmarshalJSON`: the string fields Go reads (through [`member`],
/// the validation's own reading), then a non-empty `auth` replaces username and password.
fn kubelet_entry(entry: &Json) -> Option<(SecretBytes, SecretBytes)> {
    let members = match entry {
        Json::Object(members) => members,
        // `UnmarshalJSON("null")` leaves an empty entry.
        Json::Null => return Some((SecretBytes::new(""), SecretBytes::new(""))),
        _ => return None,
    };
    // `member` reports wrong types into `ignored`; its `Err` is all that counts here.
    let mut ignored = Vec::new();
    let mut field = |name| member("", members, name, &mut ignored).ok();
    let (auth, username, password, _email) = (
        field("auth")?,
        field("username")?,
        field("password")?,
        field("email")?,
    );
    match auth {
        Some(auth) if !auth.is_empty() => kubelet_decode_auth(auth),
        _ => Some((
            SecretBytes::new(username.unwrap_or_default()),
            SecretBytes::new(password.unwrap_or_default()),
        )),
    }
}

/// `decodeDockerConfigFieldAuth`: padded base64 (`StdEncoding`) when the value ends with
/// `=` after trimming spaces, else unpadded (`RawStdEncoding`); Go's decoder skips `\r`
/// and `\n` and accepts non-zero trailing bits. Then `strings.SplitN(decoded, ":", 2)`.
fn kubelet_decode_auth(auth: &str) -> Option<(SecretBytes, SecretBytes)> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let padding = if auth.trim().ends_with('=') {
        DecodePaddingMode::RequireCanonical
    } else {
        DecodePaddingMode::RequireNone
    };
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(padding);
    let cleaned = SecretBytes::new(
        auth.bytes()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect::<Vec<u8>>(),
    );
    let decoded = SecretBytes::new(
        GeneralPurpose::new(&alphabet::STANDARD, config)
            .decode(cleaned.expose())
            .ok()?,
    );
    let bytes = decoded.expose();
    let colon = bytes.iter().position(|b| *b == b':')?;
    Some((
        SecretBytes::new(&bytes[..colon]),
        SecretBytes::new(&bytes[colon + 1..]),
    ))
}
