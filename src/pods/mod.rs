//! Pod mutation: the JSON Patch that injects what a project's policy says a pod needs.
//!
//! The embedded default policy injects nothing, and project policies gain injection rules
//! (image pull secrets, git-sync keys) with the pods issue; until a rule asks for
//! something, a pod is admitted exactly as written, with no patch.

use k8s_openapi::api::core::v1::Pod;

use crate::policy::ProjectPolicySpec;

/// What the webhook adds to one pod.
#[derive(Debug, Default)]
pub struct Mutation {
    /// RFC 6902 operations that apply to the pod exactly as the request carried it.
    pub patch: json_patch::Patch,
    /// Things the user should know: a secret the policy names that does not exist, a
    /// volume name that is already taken.
    pub warnings: Vec<String>,
    /// One bounded label per injection made (`image_pull_secret`, `git_sync_key`).
    pub injections: Vec<&'static str>,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// The mutation `policy` asks for on `pod`.
pub fn mutate(_pod: &Pod, _policy: &ProjectPolicySpec) -> Mutation {
    Mutation::default()
}
