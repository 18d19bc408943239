//! Pod mutation: the JSON Patch that injects what a project's policy says a pod needs.
//!
//! Each builder (`pull_secrets`, `git_sync`) looks at the pod as the request carried it
//! and adds operations to one `PatchBuilder`. Nothing the user wrote is removed or
//! rewritten; nothing already there is added again, so applying the patch and reviewing
//! the result gives no further patch (the webhook may be reinvoked).

mod git_sync;
mod patch;
mod pull_secrets;

use k8s_openapi::api::core::v1::Pod;

pub use git_sync::CONTAINERS_ANNOTATION as GIT_SYNC_CONTAINERS_ANNOTATION;
use patch::PatchBuilder;

use crate::policy::{Resolved, SecretIndex};

/// What a mutation reads besides the pod.
pub struct Context<'a> {
    pub policy: &'a Resolved,
    /// Secrets that exist, so only those are injected.
    pub secrets: &'a SecretIndex,
    /// The pod's namespace (from the request: a new pod may not carry it yet).
    pub namespace: &'a str,
}

impl Context<'_> {
    /// The warning for a secret the policy names that the namespace does not have, or
    /// `None` when it exists.
    fn missing(&self, what: &str, name: &str) -> Option<String> {
        (!self.secrets.contains(self.namespace, name)).then(|| {
            format!(
                "{what} {name:?} named by policy {:?} does not exist in namespace {:?}; not injected",
                self.policy.name.as_ref(),
                self.namespace
            )
        })
    }
}

/// One thing injected, for logs (names only) and metrics (kind only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub kind: &'static str,
    pub secret: String,
}

/// What the webhook adds to one pod.
#[derive(Debug, Default)]
pub struct Mutation {
    /// RFC 6902 operations that apply to the pod exactly as the request carried it.
    pub patch: json_patch::Patch,
    /// Things the user should know: a secret the policy names that does not exist, a
    /// volume name that is already taken.
    pub warnings: Vec<String>,
    pub injections: Vec<Injection>,
}

/// The mutation the policy in `ctx` asks for on `pod`.
pub fn mutate(pod: &Pod, ctx: &Context<'_>) -> Mutation {
    let mut patch = PatchBuilder::default();
    let mut injections = Vec::new();
    let mut warnings = Vec::new();
    pull_secrets::inject(pod, ctx, &mut patch, &mut injections, &mut warnings);
    git_sync::inject(pod, ctx, &mut patch, &mut injections, &mut warnings);
    Mutation {
        patch: patch.build(),
        warnings,
        injections,
    }
}
