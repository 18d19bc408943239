//! `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` content checks, reading
//! the documents as their consumer, the kubelet's credential provider, does.
//!
//! The API server only checks that `.dockerconfigjson` is JSON; the kubelet then silently
//! ignores what it cannot use, so a broken pull secret shows up much later as an
//! `ImagePullBackOff`. These checks catch the usual mistakes at creation time. Both
//! formats share the per-registry checks: `.dockercfg` is the map of registries itself,
//! `.dockerconfigjson` wraps the same map in `auths`.
//!
//! The kubelet decodes with Go `encoding/json` into the types of kubernetes
//! `pkg/credentialprovider/config.go`: `DockerConfigJSON{Auths DockerConfig
//! "json:auths"}`, `DockerConfig map[string]DockerConfigEntry`, and
//! `DockerConfigEntry.UnmarshalJSON`, which decodes `dockerConfigEntryWithAuth{username,
//! password, email, auth}` and, when `auth` is non-empty, replaces username and password
//! with `decodeDockerConfigFieldAuth(auth)`. `pkg/credentialprovider/secrets/secrets.go`
//! hands `Auths` (or the whole `.dockercfg` map) to `BasicDockerKeyring.Add` (keyring.go).
//! Go's rules that a plain JSON reading misses:
//! - struct field names match object keys case-insensitively (`"Auths"`, `"AUTH"`,
//!   even `"authſ"` are read);
//! - a key that repeats is decoded again into the same value: the registries of every
//!   `auths` occurrence end up in the keyring, a string field keeps the last value (a
//!   `null` leaves it as it was);
//! - map keys are exact strings, and a repeated registry key keeps the last entry.
//!
//! What two readers could take differently is denied as ambiguous, naming the key (field
//! names are ours, never secret); the kubelet's view of the rest is then checked as usual.
//! Registry keys are quoted only when they parse as a registry address that cannot hold a
//! secret ([`RegistryKey::is_quotable`]); any other key is named by its position.

mod json;
mod keyring;

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use self::json::{Json, go_field_match};
pub use self::keyring::{RegistryCredential, SecretBytes, kubelet_keyring, registry_credentials};
use super::{Input, Violation, data_field};
use crate::registry::RegistryKey;

const CONFIG_JSON_KEY: &str = ".dockerconfigjson";
const LEGACY_KEY: &str = ".dockercfg";
/// The fields of `DockerConfigJSON`.
const AUTHS: &str = "auths";
const HTTP_HEADERS: &str = "httpheaders";
/// The fields of `dockerConfigEntryWithAuth`.
const ENTRY_FIELDS: &[&str] = &["auth", "username", "password", "email"];

/// Registry entries one pull secret may hold (see `too_many_registries`).
pub const MAX_REGISTRIES: usize = 256;

const MISSING: &str = "required value is missing";
const NO_WHITESPACE: &str = "must not contain whitespace or line breaks";
const NOT_AN_OBJECT: &str = "must be an object mapping registry hosts to credentials";

pub fn validate_config_json(input: &Input<'_>, out: &mut Vec<Violation>) {
    let Some(root) = parse_object(input, CONFIG_JSON_KEY, out) else {
        return;
    };
    let field = data_field(CONFIG_JSON_KEY);
    report_ambiguous_keys(&field, &root, &[AUTHS], Repeat::Merged, out);
    let entries: usize = root
        .iter()
        .filter(|(k, _)| go_field_match(k, AUTHS))
        .map(|(_, v)| match v {
            Json::Object(entries) => entries.len(),
            _ => 0,
        })
        .sum();
    if too_many_registries(&format!("{field}.{AUTHS}"), entries, out) {
        return;
    }
    let mut registries = Registries::new(input);
    let mut found = false;
    // Every key Go reads into `Auths`, in document order: the kubelet merges them all.
    for (key, value) in root.iter().filter(|(k, _)| go_field_match(k, AUTHS)) {
        found = true;
        // `key` folds to "auths", so it is short and not secret.
        let auths_field = format!("{field}.{key}");
        match value {
            // An empty `auths` is legitimate: `credHelpers`/`credsStore` configs have one.
            Json::Object(entries) => registries.check(auths_field, entries, out),
            _ => out.push(Violation::deny(auths_field, NOT_AN_OBJECT)),
        }
    }
    // `HTTPHeaders map[string]string`: never used for pulls, but a value of another shape
    // fails the kubelet's whole decode.
    for (key, value) in root.iter().filter(|(k, _)| go_field_match(k, HTTP_HEADERS)) {
        let headers_ok = match value {
            Json::Null => true,
            Json::Object(headers) => headers
                .iter()
                .all(|(_, v)| matches!(v, Json::String(_) | Json::Null)),
            _ => false,
        };
        if !headers_ok {
            out.push(Violation::deny(
                format!("{field}.{key}"),
                "must be an object mapping header names to strings",
            ));
        }
    }
    if found {
        return;
    }
    let auths_field = format!("{field}.{AUTHS}");
    // The kubelet reads only `auths`: registries at the top level are ignored silently.
    if root.iter().any(|(_, v)| looks_like_credentials(v)) {
        out.push(Violation::deny(
            auths_field,
            "required value is missing; the registries are at the top level as in the legacy \
             .dockercfg format: wrap them in \"auths\" or use type kubernetes.io/dockercfg",
        ));
    } else {
        out.push(Violation::deny(auths_field, MISSING));
    }
}

pub fn validate_legacy_cfg(input: &Input<'_>, out: &mut Vec<Violation>) {
    let Some(root) = parse_object(input, LEGACY_KEY, out) else {
        return;
    };
    let field = data_field(LEGACY_KEY);
    // The mirror image of the missing-`auths` mistake: `auths` would otherwise be taken
    // for a registry host named "auths" with no credentials.
    let holds_auths = root
        .iter()
        .any(|(k, v)| go_field_match(k, AUTHS) && matches!(v, Json::Object(_)));
    if holds_auths {
        out.push(Violation::deny(
            field,
            "holds the .dockerconfigjson format (an \"auths\" object); use type \
             kubernetes.io/dockerconfigjson with key .dockerconfigjson",
        ));
        return;
    }
    if too_many_registries(&field, root.len(), out) {
        return;
    }
    Registries::new(input).check(field, &root, out);
}

/// A pull secret holds a handful of registries; `docker login` and kubectl write one
/// each. A document with more than `MAX_REGISTRIES` is denied as a whole, without a check
/// (and a finding) per entry: that is what kept a 1 MiB document of 100,000 keys from
/// costing a finding each.
fn too_many_registries(field: &str, entries: usize, out: &mut Vec<Violation>) -> bool {
    if entries <= MAX_REGISTRIES {
        return false;
    }
    out.push(Violation::deny(
        field,
        format!(
            "holds {entries} registry entries; a pull secret may hold at most {MAX_REGISTRIES}"
        ),
    ));
    true
}

/// The JSON object stored under `data[key]`, every key kept, or `None` after reporting
/// why there is none.
fn parse_object(
    input: &Input<'_>,
    key: &str,
    out: &mut Vec<Violation>,
) -> Option<Vec<(String, Json)>> {
    let field = data_field(key);
    let Some(bytes) = input.data(key) else {
        out.push(Violation::deny(field, MISSING));
        return None;
    };
    let problem = match std::str::from_utf8(bytes).map(Json::parse) {
        Ok(Ok(Json::Object(root))) => return Some(root),
        Ok(Ok(_)) => "must be a JSON object".to_owned(),
        // Only the position: serde_json's messages may quote the input.
        Ok(Err(e)) => format!(
            "is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        Err(_) => "is not valid UTF-8".to_owned(),
    };
    out.push(Violation::deny(field, problem));
    None
}

fn looks_like_credentials(value: &Json) -> bool {
    let Json::Object(members) = value else {
        return false;
    };
    members.iter().any(|(k, _)| {
        ["auth", "username", "password"]
            .iter()
            .any(|f| go_field_match(k, f))
    })
}

/// What Go does with a struct field read more than once.
#[derive(Clone, Copy)]
enum Repeat {
    /// A map field: the entries of every occurrence are merged (`auths`).
    Merged,
    /// A string field: the last value wins.
    LastWins,
}

/// Reports every key of `object` that Go's decoder and a plain reading would take
/// differently: a key that names one of `known` fields in another case, a known field
/// given twice, and any other key that repeats (named by position: it is not ours).
fn report_ambiguous_keys(
    field: &str,
    object: &[(String, Json)],
    known: &[&str],
    repeat: Repeat,
    out: &mut Vec<Violation>,
) {
    // Per known field: keys Go reads into it, and keys that name it exactly.
    let counts: Vec<(usize, usize)> = known
        .iter()
        .map(|f| {
            object
                .iter()
                .filter(|(k, _)| go_field_match(k, f))
                .fold((0, 0), |(all, exact), (k, _)| {
                    (all + 1, exact + usize::from(k == f))
                })
        })
        .collect();
    let mut exact_seen = vec![0_usize; known.len()];
    let mut others: HashMap<&str, usize> = HashMap::new();
    for (i, (key, _)) in object.iter().enumerate() {
        let position = i + 1;
        let Some(f) = known.iter().position(|f| go_field_match(key, f)) else {
            match others.entry(key) {
                Entry::Occupied(first) => out.push(Violation::deny(
                    field,
                    format!(
                        "the key at position {position} repeats the key at position {}; \
                         JSON readers disagree on which one counts",
                        first.get()
                    ),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(position);
                }
            }
            continue;
        };
        let (name, (all, exact)) = (known[f], counts[f]);
        if key != name {
            let reads = match all {
                1 => format!("the kubelet reads it as {name:?}"),
                2 => "the kubelet reads both".to_owned(),
                n => format!("the kubelet reads all {n}"),
            };
            let wins = match repeat {
                Repeat::LastWins if all > 1 => "; the last one wins",
                _ => "",
            };
            out.push(Violation::deny(
                field,
                format!("key {key:?} differs from {name:?} only by case; {reads}{wins}"),
            ));
            continue;
        }
        exact_seen[f] += 1;
        // Reported once, where the key repeats.
        if exact_seen[f] == 2 {
            let then = match repeat {
                Repeat::Merged => "the kubelet merges them",
                Repeat::LastWins => "the kubelet keeps the last",
            };
            out.push(Violation::deny(
                field,
                format!("key {name:?} appears {exact} times; {then}"),
            ));
        }
    }
}

/// The registry entries of one document. The kubelet merges every map (each `auths`
/// occurrence) into one, so a registry key repeated in any of them is reported.
struct Registries<'a> {
    allowed: &'a [String],
    /// Each registry key seen, with the field path of its first entry.
    seen: HashMap<&'a str, String>,
}

impl<'a> Registries<'a> {
    fn new(input: &'a Input<'_>) -> Self {
        Self {
            allowed: &input.rules.image_pull.allowed_registries,
            seen: HashMap::new(),
        }
    }

    /// Checks every `registry: credentials` pair of `entries`, whose path is `prefix`.
    fn check(&mut self, prefix: String, entries: &'a [(String, Json)], out: &mut Vec<Violation>) {
        for (i, (key, entry)) in entries.iter().enumerate() {
            let parsed = RegistryKey::parse(key);
            let field = match &parsed {
                Ok(k) if k.is_quotable() => format!("{prefix}[{key:?}]"),
                // The key may be a credential pasted by mistake: name it by position.
                _ => format!("{prefix}[entry {}]", i + 1),
            };
            match self.seen.entry(key) {
                Entry::Occupied(first) => out.push(Violation::deny(
                    &field,
                    format!(
                        "repeats the registry key of {}; the kubelet keeps only the last",
                        first.get()
                    ),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(field.clone());
                }
            }
            match parsed {
                Err(problem) => out.push(Violation::deny(&field, problem)),
                Ok(k) if !self.allowed.is_empty() && !k.allowed_by(self.allowed) => {
                    let what = if k.is_glob() {
                        "the kubelet uses these credentials for every registry this pattern \
                         matches, and not all of them are allowed in this project"
                    } else {
                        "registry is not allowed in this project"
                    };
                    out.push(Violation::deny(
                        &field,
                        format!("{what} (allowed: {})", self.allowed.join(", ")),
                    ))
                }
                Ok(_) => {}
            }
            check_entry(&field, entry, out);
        }
    }
}

/// Checks one registry's credentials as the kubelet reads them: `auth` (base64 of
/// `user:password`) and/or `username` + `password`. No value reaches a message.
fn check_entry(field: &str, entry: &Json, out: &mut Vec<Violation>) {
    let Json::Object(members) = entry else {
        out.push(Violation::deny(
            field,
            "must be an object with \"auth\" or \"username\" and \"password\"",
        ));
        return;
    };
    report_ambiguous_keys(field, members, ENTRY_FIELDS, Repeat::LastWins, out);
    // Evaluate all four before bailing out, so every wrong type is reported (`email` is
    // never used, but a wrong type fails the kubelet's whole decode).
    let (auth, username, password, email) = (
        member(field, members, "auth", out),
        member(field, members, "username", out),
        member(field, members, "password", out),
        member(field, members, "email", out),
    );
    let (Ok(auth), Ok(username), Ok(password), Ok(_)) = (auth, username, password, email) else {
        return;
    };
    check_credentials(field, auth, username, password, out);
}

/// The value Go leaves in field `name`: the last string among the keys it reads into
/// that field (`null` leaves the field as it was). `Err` after reporting a value that is
/// not a string (Go fails the whole decode).
fn member<'j>(
    field: &str,
    members: &'j [(String, Json)],
    name: &str,
    out: &mut Vec<Violation>,
) -> Result<Option<&'j str>, ()> {
    let mut value = None;
    let mut wrong_type = false;
    for (_, v) in members.iter().filter(|(k, _)| go_field_match(k, name)) {
        match v {
            Json::Null => {}
            Json::String(s) => value = Some(s.as_str()),
            _ => wrong_type = true,
        }
    }
    if wrong_type {
        out.push(Violation::deny(
            format!("{field}.{name}"),
            "must be a string",
        ));
        return Err(());
    }
    Ok(value)
}

fn check_credentials(
    field: &str,
    auth: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
    out: &mut Vec<Violation>,
) {
    if auth.is_none() && username.is_none() && password.is_none() {
        out.push(Violation::deny(
            field,
            "has no credentials: set \"auth\" (base64 of user:password) \
             or \"username\" and \"password\"",
        ));
        return;
    }
    for (name, value) in [("username", username), ("password", password)] {
        let name_field = format!("{field}.{name}");
        match value {
            None if auth.is_none() => out.push(Violation::deny(name_field, MISSING)),
            None => {}
            Some("") => out.push(Violation::deny(name_field, "must not be empty")),
            Some(v) if v.chars().any(char::is_whitespace) => {
                out.push(Violation::deny(name_field, NO_WHITESPACE))
            }
            Some(_) => {}
        }
    }
    let Some(auth) = auth else {
        return;
    };
    let auth_field = format!("{field}.auth");
    let (user, pass) = match decode_auth(auth) {
        Ok(pair) => pair,
        Err(problem) => {
            out.push(Violation::deny(auth_field, problem));
            return;
        }
    };
    if user.is_empty() {
        out.push(Violation::deny(&auth_field, "user name must not be empty"));
    }
    if pass.is_empty() {
        out.push(Violation::deny(&auth_field, "password must not be empty"));
    }
    // Typically `echo user:password | base64`, which encodes echo's trailing newline.
    if user.iter().chain(&pass).any(u8::is_ascii_whitespace) {
        out.push(Violation::deny(
            &auth_field,
            "user name or password contains whitespace or a line break \
             (encoded with echo without -n?)",
        ));
    }
    // The kubelet uses `auth` when it is set; differing fields mean one of them is stale.
    let differs =
        |given: Option<&str>, decoded: &[u8]| given.is_some_and(|g| g.as_bytes() != decoded);
    if differs(username, &user) || differs(password, &pass) {
        out.push(Violation::deny(
            auth_field,
            "auth does not match username and password",
        ));
    }
}

/// Splits a decoded `auth` at its first colon, as the kubelet does
/// (`decodeDockerConfigFieldAuth`: `strings.SplitN(decoded, ":", 2)`; passwords may
/// hold colons). Padded base64 only: the kubelet also takes unpadded, so this is stricter.
fn decode_auth(auth: &str) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    if auth.is_empty() {
        return Err("must not be empty");
    }
    // Wrapped base64 (`base64` without `-w0`) is the usual copy-paste mistake.
    if auth.chars().any(char::is_whitespace) {
        return Err(NO_WHITESPACE);
    }
    let decoded = STANDARD.decode(auth).map_err(|_| "not valid base64")?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or("must be base64 of user:password")?;
    Ok((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests;
