//! Secret validation: every rule of SPEC §3, as pure functions of (secret, rules, now).
//!
//! `validate` runs the rules that apply to every type (`metadata`), then dispatches on
//! the secret type to one module per type. Each type module exposes the same shape:
//! `fn validate(input: &Input<'_>, out: &mut Vec<Violation>)`.
//!
//! A finding is a value (`Violation`), never an error: `admission` decides what the
//! policy mode makes of it. Messages never contain a secret value or any part of one.

mod basic_auth;
mod copied_values;
mod dockerconfig;
mod metadata;
mod ssh;
mod tls;
mod verdict_cache;

pub use dockerconfig::{
    RegistryCredential, SecretBytes, kubelet_keyring as dockerconfig_keyring, registry_credentials,
};

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use time::OffsetDateTime;

use crate::objects::{LeanSecret, SecretData};
use crate::policy::{Mode, SecretRules, Severity};

/// One broken rule, with the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Field path in kubectl's style, e.g. `data[.dockerconfigjson].auths["ghcr.io"].auth`.
    pub field: String,
    /// What is wrong, lowercase and without any secret value.
    pub message: String,
    pub severity: Severity,
    /// The mode of the rule set it comes from, where that is not the review's: a review
    /// under Enforce may carry findings of rules the policy set to Warn or Audit
    /// (`secretUse.mode`, `pullGuarantee.mode`), which count under the weaker of the two.
    pub mode: Option<Mode>,
}

impl Violation {
    /// A finding that follows the policy mode (denied under Enforce).
    pub fn deny(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            severity: Severity::Deny,
            mode: None,
        }
    }

    /// A finding that is never more than a warning.
    pub fn warn(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            severity: Severity::Warn,
            mode: None,
        }
    }

    /// A finding whose severity the policy chose.
    pub fn with_severity(
        severity: Severity,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            severity,
            mode: None,
        }
    }

    /// The finding, counted under `mode` where that is weaker than the review's.
    pub fn under(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A secret as the rules read it: metadata and type from the API type, data from its map
/// or, for a review, packed (`objects::SecretData`). `validate` takes either.
#[derive(Clone, Copy)]
pub struct SecretRef<'a> {
    pub secret: &'a Secret,
    pub data: Data<'a>,
}

/// A secret's data entries, wherever they were decoded to.
#[derive(Clone, Copy)]
pub enum Data<'a> {
    Map(Option<&'a BTreeMap<String, ByteString>>),
    Packed(&'a SecretData),
}

impl<'a> Data<'a> {
    /// The decoded bytes of `data[key]`.
    pub fn get(self, key: &str) -> Option<&'a [u8]> {
        match self {
            Data::Map(map) => map.and_then(|d| d.get(key)).map(|b| b.0.as_slice()),
            Data::Packed(data) => data.get(key),
        }
    }

    /// All entries, in key order.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let (map, packed) = match self {
            Data::Map(map) => (map, None),
            Data::Packed(data) => (None, Some(data)),
        };
        let map = map
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()));
        map.chain(packed.into_iter().flat_map(SecretData::iter))
    }
}

impl<'a> From<&'a Secret> for SecretRef<'a> {
    fn from(secret: &'a Secret) -> Self {
        Self {
            secret,
            data: Data::Map(secret.data.as_ref()),
        }
    }
}

impl<'a> From<&'a LeanSecret> for SecretRef<'a> {
    fn from(lean: &'a LeanSecret) -> Self {
        Self {
            secret: &lean.secret,
            data: Data::Packed(&lean.data),
        }
    }
}

/// What every rule gets to look at.
pub struct Input<'a> {
    pub secret: &'a Secret,
    pub data: Data<'a>,
    pub rules: &'a SecretRules,
    /// The time expiry rules compare against (passed in so tests are deterministic).
    pub now: OffsetDateTime,
}

impl<'a> Input<'a> {
    pub fn new(
        secret: impl Into<SecretRef<'a>>,
        rules: &'a SecretRules,
        now: OffsetDateTime,
    ) -> Self {
        let SecretRef { secret, data } = secret.into();
        Self {
            secret,
            data,
            rules,
            now,
        }
    }

    /// The secret type as the API server defaults it (`Opaque` when absent or empty).
    pub fn secret_type(&self) -> &'a str {
        match self.secret.type_.as_deref() {
            None | Some("") => OPAQUE,
            Some(t) => t,
        }
    }

    /// The decoded bytes of `data[key]`. At admission time `stringData` has already been
    /// folded into `data` by the API server.
    pub fn data(&self, key: &str) -> Option<&'a [u8]> {
        self.data.get(key)
    }

    /// All data entries, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.data.iter()
    }
}

/// Field path of a data key, as the API server writes it: `data[tls.key]`.
pub fn data_field(key: &str) -> String {
    format!("data[{key}]")
}

pub const OPAQUE: &str = "Opaque";
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";
pub const TLS: &str = "kubernetes.io/tls";
pub const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
pub const BOOTSTRAP_TOKEN: &str = "bootstrap.kubernetes.io/token";

/// The types Kubernetes defines; every other type is a custom type.
pub const BUILT_IN_TYPES: &[&str] = &[
    OPAQUE,
    SERVICE_ACCOUNT_TOKEN,
    DOCKER_CFG,
    DOCKER_CONFIG_JSON,
    BASIC_AUTH,
    SSH_AUTH,
    TLS,
    BOOTSTRAP_TOKEN,
];

/// Every violation of `rules` by `secret` (a `Secret`, or a review's `LeanSecret`), in a
/// stable order: metadata rules first, then the type's content rules.
pub fn validate<'a>(
    secret: impl Into<SecretRef<'a>>,
    rules: &'a SecretRules,
    now: OffsetDateTime,
) -> Vec<Violation> {
    let input = Input::new(secret, rules, now);
    let mut out = Vec::new();
    metadata::validate(&input, &mut out);
    validate_type(&input, &mut out);
    out
}

/// The checks of the secret's type. They read only the type, the data, the rules and the
/// time, never the metadata (`validate_update` relies on that).
fn validate_type(input: &Input<'_>, out: &mut Vec<Violation>) {
    match input.secret_type() {
        DOCKER_CONFIG_JSON => dockerconfig::validate_config_json(input, out),
        DOCKER_CFG => dockerconfig::validate_legacy_cfg(input, out),
        TLS => tls::validate(input, out),
        SSH_AUTH => ssh::validate(input, out),
        BASIC_AUTH => basic_auth::validate(input, out),
        // An Opaque secret may carry a git-sync key under the fields the policy names.
        OPAQUE => ssh::validate_git_sync_fields(input, out),
        _ => {}
    }
}

/// Validation of an UPDATE, ratcheted so users can always fix or relabel a secret that
/// broke a rule introduced after it was created: a violation that the old object already
/// had is reported as a warning, not a denial. Only what the update makes worse is denied.
///
/// When the update keeps the type and every data value (a relabel, an annotation, an
/// apply that changes nothing), the old object's type checks would find exactly what the
/// new one's do, so they are not run twice: a tenant's megabyte pull secret costs one
/// parse per update, not two.
pub fn validate_update<'a>(
    old: impl Into<SecretRef<'a>>,
    new: impl Into<SecretRef<'a>>,
    rules: &'a SecretRules,
    now: OffsetDateTime,
) -> Vec<Violation> {
    let (old, new) = (old.into(), new.into());
    let (old_input, new_input) = (Input::new(old, rules, now), Input::new(new, rules, now));
    let mut after = Vec::new();
    metadata::validate(&new_input, &mut after);
    let new_metadata_findings = after.len();
    validate_type(&new_input, &mut after);
    let mut before_metadata = Vec::new();
    metadata::validate(&old_input, &mut before_metadata);
    let same_data =
        old_input.secret_type() == new_input.secret_type() && old.data.iter().eq(new.data.iter());
    let mut before_type = Vec::new();
    if !same_data {
        validate_type(&old_input, &mut before_type);
    }
    // A set, not a list: both sides can hold a finding per registry key or annotation.
    let before: std::collections::HashSet<&Violation> =
        before_metadata.iter().chain(&before_type).collect();
    for (i, v) in after.iter_mut().enumerate() {
        // With the same type and data, the old object's type checks found exactly these.
        let was_there = (same_data && i >= new_metadata_findings) || before.contains(&*v);
        // A finding about a data value counts as the same only when the value is: fields
        // inside a value can be named by position (`auths[entry 1]`), so an edited value
        // could otherwise pass as the old finding.
        let unchanged =
            data_key_of(&v.field).is_none_or(|key| old.data.get(key) == new.data.get(key));
        if v.severity == Severity::Deny && unchanged && was_there {
            v.severity = Severity::Warn;
            v.message.push_str(" (already present before this update)");
        }
    }
    after
}

/// The data key a finding's field is about (`data[KEY]…` → `KEY`); keys cannot hold `]`.
fn data_key_of(field: &str) -> Option<&str> {
    field.strip_prefix("data[")?.split(']').next()
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::secret;
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn prefix_rules() -> SecretRules {
        let mut rules = SecretRules::default();
        rules.name.prefix = Some("team-a-".to_owned());
        rules
    }

    #[test]
    fn an_update_is_denied_only_for_what_it_makes_worse() {
        let rules = prefix_rules();
        let old = secret("legacy", OPAQUE, &[("k", b"v")]);
        let relabelled = old.clone();
        let found = validate_update(&old, &relabelled, &rules, now());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warn);
        assert!(
            found[0]
                .message
                .ends_with("(already present before this update)")
        );

        // Breaking a new rule in the same update is still denied.
        rules_with_basic_auth_denies_new_problem();
    }

    fn rules_with_basic_auth_denies_new_problem() {
        let mut rules = prefix_rules();
        rules.basic_auth.require_username_and_password = true;
        let old = secret(
            "legacy",
            BASIC_AUTH,
            &[("username", b"u"), ("password", b"p")],
        );
        let new = secret("legacy", BASIC_AUTH, &[("username", b"u")]);
        let found = validate_update(&old, &new, &rules, now());
        let denied: Vec<_> = found
            .iter()
            .filter(|v| v.severity == Severity::Deny)
            .map(ToString::to_string)
            .collect();
        assert_eq!(denied, ["data[password]: required value is missing"]);
    }

    #[test]
    fn an_edited_value_is_not_ratcheted_as_the_old_finding() {
        let mut rules = SecretRules::default();
        rules.image_pull.allowed_registries = vec!["ghcr.io".into()];
        let config =
            |key: &str| format!(r#"{{"auths":{{"{key}":{{"username":"u","password":"p"}}}}}}"#);
        // Keys with capitals are named by position: both findings read alike.
        let old = secret(
            "pull",
            DOCKER_CONFIG_JSON,
            &[(".dockerconfigjson", config("Old.Example.com").as_bytes())],
        );
        let new = secret(
            "pull",
            DOCKER_CONFIG_JSON,
            &[(".dockerconfigjson", config("Evil.Example.com").as_bytes())],
        );
        let denied = |found: Vec<Violation>| {
            found
                .into_iter()
                .filter(|v| v.severity == Severity::Deny)
                .count()
        };
        assert!(denied(validate_update(&old, &new, &rules, now())) > 0);
        assert_eq!(
            denied(validate_update(&old, &old.clone(), &rules, now())),
            0
        );
    }

    #[test]
    fn a_fixed_secret_passes_on_update() {
        let rules = prefix_rules();
        let old = secret("legacy", OPAQUE, &[]);
        let new = secret("team-a-legacy", OPAQUE, &[]);
        assert!(validate_update(&old, &new, &rules, now()).is_empty());
    }

    #[test]
    fn an_absent_or_empty_type_is_opaque() {
        let mut s = secret("x", "", &[]);
        assert_eq!(
            Input::new(&s, &SecretRules::default(), now()).secret_type(),
            OPAQUE
        );
        s.type_ = None;
        assert_eq!(
            Input::new(&s, &SecretRules::default(), now()).secret_type(),
            OPAQUE
        );
    }
}
