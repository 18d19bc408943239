//! The ProjectPolicy spec: the document a security team writes, and its defaults.
//!
//! Every field has a default, so `{}` is a valid (and permissive) spec. Names follow
//! Kubernetes API conventions (camelCase, `Enforce`/`Warn`/`Audit` enums).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::crd::ProjectPolicyStatus;

/// What happens to a secret that breaks a rule (like Pod Security Admission's modes).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum Mode {
    /// Refuse the request with 403 Forbidden and every violation in the message.
    #[default]
    Enforce,
    /// Admit the request; each violation becomes a warning kubectl prints.
    Warn,
    /// Admit the request silently; violations are only logged and counted.
    Audit,
}

impl Mode {
    /// The stricter of two modes (Enforce, then Warn, then Audit).
    pub fn strictest(self, other: Mode) -> Mode {
        self.min(other)
    }

    /// The more lenient of two modes.
    pub fn weakest(self, other: Mode) -> Mode {
        self.max(other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "Enforce",
            Mode::Warn => "Warn",
            Mode::Audit => "Audit",
        }
    }
}

/// The rules of one project: which namespaces it governs, how strictly, and what is
/// injected into their pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "secretgate.io",
    version = "v1alpha1",
    kind = "ProjectPolicy",
    shortname = "pp",
    status = "ProjectPolicyStatus",
    doc = "Secret rules and pod injections for the namespaces of one project.",
    // Raw JSON columns: the `printcolumn(type_ = ..)` form trips clippy's
    // duplicated_attributes lint.
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    // Namespaces has no schema default, so a selector-only policy shows <none> there and
    // its selector (as JSON) in the next column.
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"Selector","type":"string","jsonPath":".spec.namespaceSelector"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectPolicySpec {
    /// Namespaces selected by name.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces selected by their labels. A namespace is selected when it is named in
    /// `namespaces` or matches this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub secrets: SecretRules,
    /// Pull secrets added to pods whose images come from the listed registries.
    #[serde(default)]
    pub image_pull_secrets: Vec<PullSecretInjection>,
    /// The git-sync SSH key mounted into git-sync containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sync: Option<GitSyncInjection>,
    /// Which pods may use which secrets (mount them, read them into env, pull with them).
    /// Without it, every pod in a namespace may use every secret there, as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_use: Option<SecretUseRules>,
    /// Secrets provided in every namespace of the project: copies of a source secret
    /// (e.g. the platform team's `secretgate/regcred`), kept in step with it by the
    /// elected replica, deleted when no longer wanted. Sources must live in a namespace
    /// the server allows (`serve --instance-secret-namespaces`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_secrets: Vec<InstanceSecret>,
    /// Logging in to registries with the project's pull secrets, off the admission path,
    /// to find passwords that stopped working (`serve --credential-checks` in cluster
    /// mode). Outbound calls are a security decision: only the registries listed here are
    /// ever contacted. Absent: no pull secret of the project is tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_health: Option<CredentialHealth>,
    /// Requesters whose writes this policy never denies (like Pod Security Admission's
    /// exemptions): what would deny them is a warning instead, counted and logged with
    /// who was exempted, so a platform controller renewing a certificate is never
    /// blocked. Broken policies deny everyone (their exemptions are unknown too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemptions: Option<Exemptions>,
    /// Every Pod pulling from a private registry must name a pull secret that serves it,
    /// as the kubelet matches them: checked on the final Pod by the pods validating
    /// webhook, after every mutation (secretgate's own injection fails open). Absent: no
    /// such check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_guarantee: Option<PullGuarantee>,
}

/// The pull guarantee: which registries are private to the project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullGuarantee {
    /// Findings follow this mode; absent, the policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Private registries besides those the `imagePullSecrets` rules name, as there:
    /// `ghcr.io`, `host:port`, `*.example.com`. Images from any other registry are not
    /// checked (public images, or registries the nodes log in to themselves).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<String>,
}

impl ProjectPolicySpec {
    /// The registries the pull guarantee treats as private: those of the
    /// `imagePullSecrets` rules (a rule without registries names none) and the explicit
    /// list. Empty when the policy has no pull guarantee.
    pub fn private_registries(&self) -> Vec<&str> {
        let Some(guarantee) = &self.pull_guarantee else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .image_pull_secrets
            .iter()
            .flat_map(|rule| rule.registries.iter())
            .chain(&guarantee.registries)
            .map(String::as_str)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Who is exempt, by the request's authenticated user (`request.userInfo`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exemptions {
    /// Exact usernames, e.g. `system:serviceaccount:cert-manager:cert-manager`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usernames: Vec<String>,
    /// Exact group names the requester belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Service accounts as `namespace/name` (their username is
    /// `system:serviceaccount:<namespace>:<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
}

impl Exemptions {
    /// Why a requester with `username` and `groups` is exempt, if they are: `user "…"`,
    /// `service account ns/name` or `group "…"`.
    pub fn exempt(&self, username: &str, groups: &[String]) -> Option<String> {
        if username.is_empty() && groups.is_empty() {
            return None;
        }
        if let Some(account) = self.service_accounts.iter().find(|a| {
            a.split_once('/').is_some_and(|(ns, name)| {
                username
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    == Some((ns, name))
            })
        }) {
            return Some(format!("service account {account}"));
        }
        if self.usernames.iter().any(|u| u == username) {
            return Some(format!("user {username:?}"));
        }
        self.groups
            .iter()
            .find(|g| groups.contains(g))
            .map(|g| format!("group {g:?}"))
    }
}

/// Which registries the continuous audit may log in to with the project's pull secrets,
/// and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialHealth {
    /// Registries to contact, as in `allowedRegistries`: `ghcr.io`, `host:port`,
    /// `*.example.com`. A pull secret's credentials for any other registry are not tried.
    pub registries: Vec<String>,
    /// Least time between two logins with the same credentials (a changed secret is
    /// checked at once). At least 60.
    #[serde(default = "default_credential_interval")]
    pub interval_seconds: u32,
}

/// Seconds between two checks of unchanged credentials: an hour.
pub const DEFAULT_CREDENTIAL_INTERVAL: u32 = 3_600;
/// The shortest interval a policy may ask for: registries rate-limit logins.
pub const MIN_CREDENTIAL_INTERVAL: u32 = 60;

fn default_credential_interval() -> u32 {
    DEFAULT_CREDENTIAL_INTERVAL
}

/// One secret provided in each namespace of the project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceSecret {
    /// The secret copied.
    pub source: SecretReference,
    /// Name of the copy in each namespace; the source's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
}

impl InstanceSecret {
    /// The name of the copies.
    pub fn target(&self) -> &str {
        self.target_name.as_deref().unwrap_or(&self.source.name)
    }
}

/// A Secret by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretReference {
    pub namespace: String,
    pub name: String,
}

/// Who may use a secret. A pod *uses* a secret when its spec reaches it in any way the
/// kubelet follows: a secret or projected volume, `env[].valueFrom.secretKeyRef`,
/// `envFrom[].secretRef`, `imagePullSecrets` (its own, or its service account's), a CSI
/// volume's `nodePublishSecretRef`.
///
/// A secret that at least one rule selects may be used only by the pods one of those
/// rules lets use it; a secret no rule selects follows `default`. A secret's owner may
/// narrow this further with the annotation `secretgate.io/allowed-service-accounts`
/// (comma-separated service account names): never widen it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretUseRules {
    /// How a pod that uses a secret it may not is treated; the policy's `mode` when unset
    /// (e.g. `Warn` here while the project's secret rules are already enforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Secrets no rule selects: `Allow` (any pod in the namespace, as Kubernetes does) or
    /// `Deny` (no pod).
    #[serde(default)]
    pub default: UseDefault,
    #[serde(default)]
    pub rules: Vec<SecretUseRule>,
}

/// What happens to a secret no secret-use rule selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UseDefault {
    #[default]
    Allow,
    Deny,
}

/// Lets the pods of some service accounts (optionally only those with some labels) use
/// the secrets it selects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretUseRule {
    /// Names the rule in denials and reports: a DNS-1123 label, unique in the policy.
    pub name: String,
    /// The secrets this rule is about.
    pub secrets: SecretSelection,
    /// Service accounts (in the pod's namespace, by name only) whose pods may use those
    /// secrets; at least one. To let no pod use a secret, leave it out of every rule with
    /// `default: Deny`, or have its owner set the annotation.
    pub service_accounts: Vec<String>,
    /// Further, only pods with these labels. Pod labels are the pod author's, so this
    /// narrows a rule; it is never the only thing that grants use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// Which secrets a rule selects: a secret is selected when any of the three matches. At
/// least one must be given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSelection {
    /// Secret names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Regular expressions the whole secret name must match (at most 16; one pattern can
    /// alternate).
    #[serde(default)]
    pub name_patterns: Vec<Pattern>,
    /// Labels of the Secret; `{}` selects every secret (so each is kept to this rule's
    /// service accounts, and `default` never applies). Read from secretgate's cache of
    /// Secret metadata: a secret it has not seen yet cannot be matched, so a pod that names
    /// one is refused while any rule of the project selects by labels (see SECURITY.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Adds `secretName` to a pod's `spec.imagePullSecrets` when one of its images is
/// pulled from a matching registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullSecretInjection {
    /// A `kubernetes.io/dockerconfigjson` secret in the pod's namespace.
    pub secret_name: String,
    /// Registry patterns: exact host (`ghcr.io`), `host:port`, or wildcard subdomains
    /// (`*.example.com`). Docker Hub images match `docker.io`. Empty means every pod.
    #[serde(default)]
    pub registries: Vec<String>,
}

/// Mounts an SSH key secret into the git-sync containers of a pod.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSyncInjection {
    /// The secret (in the pod's namespace) holding the key, e.g. under `ssh`.
    pub secret_name: String,
    /// Containers (and init containers) that get the key, by name. A pod can name its
    /// own with the annotation `secretgate.io/git-sync-containers: "a,b"`.
    #[serde(default = "default_git_sync_containers")]
    pub containers: Vec<String>,
    /// Name of the added volume (a DNS-1123 label).
    #[serde(default = "default_git_sync_volume")]
    pub volume_name: String,
    /// Where the key directory is mounted; git-sync v4 reads `/etc/git-secret/ssh`.
    #[serde(default = "default_git_sync_mount_path")]
    pub mount_path: String,
}

fn default_git_sync_containers() -> Vec<String> {
    vec!["git-sync".to_owned()]
}

fn default_git_sync_volume() -> String {
    "git-secret".to_owned()
}

fn default_git_sync_mount_path() -> String {
    "/etc/git-secret".to_owned()
}

/// Rules for Secrets (SPEC §3). Each sub-rule has its own defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRules {
    /// Secret types allowed in the project. Empty means every built-in type
    /// (`Opaque`, `kubernetes.io/*`).
    #[serde(default)]
    pub allowed_types: Vec<String>,
    /// Whether types outside the built-in set (e.g. `example.com/git-credentials`) are
    /// allowed in addition to `allowedTypes`.
    #[serde(default = "yes")]
    pub allow_custom_types: bool,
    #[serde(default)]
    pub name: NameRule,
    /// Label keys every secret must carry (with a non-empty value).
    #[serde(default)]
    pub required_labels: Vec<String>,
    /// Annotation keys every secret must carry (with a non-empty value), e.g.
    /// `secretgate.io/display-name`.
    #[serde(default)]
    pub required_annotations: Vec<String>,
    #[serde(default)]
    pub image_pull: ImagePullRules,
    #[serde(default)]
    pub tls: TlsRules,
    #[serde(default)]
    pub ssh: SshRules,
    #[serde(default)]
    pub basic_auth: BasicAuthRules,
    /// What to do when an annotation (such as `kubectl.kubernetes.io/last-applied-configuration`)
    /// carries the secret's `data` or `stringData`.
    #[serde(default)]
    pub values_in_annotations: Severity,
}

impl Default for SecretRules {
    fn default() -> Self {
        Self {
            allowed_types: Vec::new(),
            allow_custom_types: true,
            name: NameRule::default(),
            required_labels: Vec::new(),
            required_annotations: Vec::new(),
            image_pull: ImagePullRules::default(),
            tls: TlsRules::default(),
            ssh: SshRules::default(),
            basic_auth: BasicAuthRules::default(),
            values_in_annotations: Severity::Warn,
        }
    }
}

/// How a finding counts. `Deny` findings follow the policy mode; `Warn` findings are at most
/// warnings, whatever the mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Severity {
    Deny,
    #[default]
    Warn,
}

/// A name rule stricter than the API server's DNS-1123 subdomain check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameRule {
    /// Every secret name must start with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A regular expression the whole name must match (anchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// Maximum length of the name (the API server allows 253).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// Forbid `.` in names (lowercase letters, digits and `-` only, a DNS-1123 label).
    #[serde(default)]
    pub forbid_dots: bool,
}

/// Rules for `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePullRules {
    /// Registries a pull secret may hold credentials for: exact hosts (`ghcr.io`),
    /// `host:port`, or wildcard subdomains (`*.example.com`). Empty means any registry.
    #[serde(default)]
    pub allowed_registries: Vec<String>,
}

/// Rules for `kubernetes.io/tls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRules {
    /// Refuse a leaf certificate whose notAfter is in the past (or notBefore in the future).
    #[serde(default = "yes")]
    pub reject_expired: bool,
    /// Refuse a leaf certificate that expires in fewer than this many days (0: no minimum).
    #[serde(default)]
    pub min_days_remaining: u32,
    /// Warn about a leaf certificate that expires within this many days (0: never), at
    /// admission and in the continuous audit's reports, before it breaks. The default, 14,
    /// stays quiet for certificates cert-manager renews (30 days before expiry, for its
    /// default 90-day certificates) unless renewal has been failing for two weeks.
    #[serde(default = "default_warn_within_days")]
    pub warn_within_days: u32,
}

/// Days before expiry a certificate is warned about by default.
pub const DEFAULT_WARN_WITHIN_DAYS: u32 = 14;

fn default_warn_within_days() -> u32 {
    DEFAULT_WARN_WITHIN_DAYS
}

impl Default for TlsRules {
    fn default() -> Self {
        Self {
            reject_expired: true,
            min_days_remaining: 0,
            warn_within_days: DEFAULT_WARN_WITHIN_DAYS,
        }
    }
}

/// Rules for `kubernetes.io/ssh-auth` secrets and Opaque git-sync key secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshRules {
    /// Allow passphrase-protected keys (git-sync cannot use them).
    #[serde(default)]
    pub allow_passphrase: bool,
    /// Allowed key algorithms: `ed25519`, `ecdsa`, `rsa`. Empty means all three.
    #[serde(default)]
    pub allowed_algorithms: Vec<String>,
    /// Minimum RSA modulus size in bits.
    #[serde(default = "default_min_rsa_bits")]
    pub min_rsa_bits: u32,
    /// Data keys of Opaque secrets that hold a git-sync SSH private key (git-sync v4 reads
    /// `ssh`); those keys get the same checks as `ssh-privatekey`.
    #[serde(default = "default_git_sync_key_fields")]
    pub git_sync_key_fields: Vec<String>,
}

impl Default for SshRules {
    fn default() -> Self {
        Self {
            allow_passphrase: false,
            allowed_algorithms: Vec::new(),
            min_rsa_bits: default_min_rsa_bits(),
            git_sync_key_fields: default_git_sync_key_fields(),
        }
    }
}

/// Rules for `kubernetes.io/basic-auth`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuthRules {
    /// Require both `username` and `password`, non-empty (the API server requires one).
    #[serde(default)]
    pub require_username_and_password: bool,
}

fn yes() -> bool {
    true
}

fn default_min_rsa_bits() -> u32 {
    2048
}

fn default_git_sync_key_fields() -> Vec<String> {
    vec!["ssh".to_owned()]
}

/// A regular expression from a policy, compiled when the policy is read, so that a bad
/// pattern is refused with the policy and never costs time on the request path.
/// It must match the whole value (it is anchored).
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`; one longer than [`MAX_PATTERN`](super::schema::MAX_PATTERN)
    /// characters is refused before compiling (the compile time of a pattern grows with
    /// its length).
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let max = super::schema::MAX_PATTERN;
        if source.chars().nth(max).is_some() {
            return Err(regex::Error::Syntax(format!(
                "longer than {max} characters"
            )));
        }
        let regex = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The regex syntax is Rust's; the service compiles it and reports a bad one.
        schemars::json_schema!({
            "type": "string",
            "description": "A regular expression (Rust syntax) the whole value must match."
        })
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Pattern::new(&source)
            .map_err(|e| serde::de::Error::custom(format!("invalid pattern {source:?}: {e}")))
    }
}

#[cfg(test)]
mod exemption_tests {
    use super::Exemptions;

    #[test]
    fn requesters_match_exactly_by_service_account_username_or_group() {
        let e = Exemptions {
            usernames: vec!["admin".into()],
            groups: vec!["platform".into()],
            service_accounts: vec!["cert-manager/cert-manager".into()],
        };
        let sa = "system:serviceaccount:cert-manager:cert-manager";
        assert_eq!(
            e.exempt(sa, &[]).as_deref(),
            Some("service account cert-manager/cert-manager")
        );
        assert_eq!(e.exempt("admin", &[]).as_deref(), Some("user \"admin\""));
        assert_eq!(
            e.exempt("someone", &["x".into(), "platform".into()])
                .as_deref(),
            Some("group \"platform\"")
        );
        for (user, groups) in [
            ("system:serviceaccount:cert-manager:other", vec![]),
            ("system:serviceaccount:other:cert-manager", vec![]),
            ("system:serviceaccount:cert-manager:cert-manager:x", vec![]),
            ("Admin", vec!["Platform".to_owned()]),
            ("", vec![]),
        ] {
            assert_eq!(e.exempt(user, &groups), None, "{user}");
        }
    }
}
