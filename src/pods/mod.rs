//! Pod mutation: the JSON Patch that injects what a project's policy says a pod needs.
//!
//! Each builder (`pull_secrets`, `git_sync`) looks at the pod as the request carried it
//! and adds operations to one `PatchBuilder`. Nothing the user wrote is removed or
//! rewritten; nothing already there is added again, so applying the patch and reviewing
//! the result gives no further patch (the webhook may be reinvoked).

mod git_sync;
mod patch;
pub mod pull_guarantee;
mod pull_secrets;
pub mod references;
pub mod secret_use;

use k8s_openapi::api::core::v1::Pod;

pub use git_sync::CONTAINERS_ANNOTATION as GIT_SYNC_CONTAINERS_ANNOTATION;
use patch::PatchBuilder;

use crate::policy::secret_use::{Refusal, User, decide};
use crate::policy::{Labels, Resolved, SecretIndex, ServiceAccountIndex};

/// What a mutation reads besides the pod.
pub struct Context<'a> {
    pub policy: &'a Resolved,
    /// Secrets that exist, so only those are injected.
    pub secrets: &'a SecretIndex,
    /// Service accounts' pull secrets, which their pods inherit.
    pub service_accounts: &'a ServiceAccountIndex,
    /// The pod's namespace (from the request: a new pod may not carry it yet).
    pub namespace: &'a str,
}

impl Context<'_> {
    /// Whether a pod of `service_account` with `labels` may use `secret`.
    pub fn decide(
        &self,
        secret: &str,
        service_account: &str,
        labels: &Labels,
    ) -> Result<(), Refusal> {
        let user = User {
            service_account,
            labels,
        };
        let meta = self.secrets.get(self.namespace, secret);
        decide(self.policy.secret_use.as_deref(), secret, meta, &user)
    }

    /// The warning for a secret the policy would inject that `pod` may not use (secretgate
    /// never injects what the pod could not use itself), or `None` when it may.
    fn refused(&self, pod: &Pod, what: &str, name: &str) -> Option<String> {
        let spec = pod.spec.as_ref()?;
        let refusal = match secret_use::service_account(spec) {
            Ok(account) => {
                let none = Labels::new();
                let labels = pod.metadata.labels.as_ref().unwrap_or(&none);
                self.decide(name, account, labels)
                    .err()
                    .map(|r| r.message(name, account))?
            }
            Err(ambiguous) => ambiguous,
        };
        Some(format!("{what} {name:?} not injected: {refusal}"))
    }

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
