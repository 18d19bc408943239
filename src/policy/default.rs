//! The embedded default policy: in force wherever no project policy selects a namespace.
//!
//! Mode Enforce; every content check for the built-in secret types; built-in and custom
//! types allowed; no name rule beyond the API server's; no injections. It is exactly
//! `ProjectPolicySpec::default()`, printed as the YAML document a user would write.

use super::spec::ProjectPolicySpec;

/// Name under which the embedded default shows up in logs, metrics and warnings.
pub const DEFAULT_POLICY_NAME: &str = "default";

pub fn default_policy() -> ProjectPolicySpec {
    ProjectPolicySpec::default()
}

/// The default policy as a ProjectPolicy YAML document (`serve --print-default-policy`).
pub fn default_policy_yaml() -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Document<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: Metadata<'a>,
        spec: ProjectPolicySpec,
    }
    #[derive(serde::Serialize)]
    struct Metadata<'a> {
        name: &'a str,
    }
    let doc = Document {
        api_version: "secretgate.io/v1alpha1",
        kind: "ProjectPolicy",
        metadata: Metadata {
            name: DEFAULT_POLICY_NAME,
        },
        spec: default_policy(),
    };
    // Serialising plain structs of strings, bools, numbers and lists cannot fail.
    serde_saphyr::to_string(&doc).unwrap_or_default()
}
