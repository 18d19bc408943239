//! Secret use: does every secret a pod (or a workload's pod template) reaches belong to
//! those its service account may use? One finding per reference that may not, naming the
//! field, the secret, the service account and the rule; never a value.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::PodSpec;

use super::Context;
use super::references::{Reference, Via, references};
use crate::policy::Labels;
use crate::policy::secret_use::{DEFAULT_SERVICE_ACCOUNT, Refusal};
use crate::secrets::Violation;

/// Most different secrets one pod (or template) may use for secretgate to decide them.
pub const MAX_DISTINCT_SECRETS: usize = 1024;

/// The service account a pod runs as, read as the API server reads it:
/// `serviceAccountName`, else the deprecated `serviceAccount`, else `default`. `Err` when
/// both are set and differ (the API server never sends that; a client talking to the
/// webhook directly might, and which one counts is then a guess).
pub fn service_account(spec: &PodSpec) -> Result<&str, String> {
    let name = spec
        .service_account_name
        .as_deref()
        .filter(|n| !n.is_empty());
    let deprecated = spec.service_account.as_deref().filter(|n| !n.is_empty());
    match (name, deprecated) {
        (Some(a), Some(b)) if a != b => Err(
            "serviceAccountName and the deprecated serviceAccount name different service \
             accounts; which one the pod runs as is ambiguous"
                .to_owned(),
        ),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Ok(DEFAULT_SERVICE_ACCOUNT),
    }
}

/// The references a pod makes, plus the pull secrets it inherits from its service
/// account when it names none (the ServiceAccount admission plugin copies them into a
/// pod; a workload's template does not have them yet).
fn all_references(
    spec: &PodSpec,
    prefix: &str,
    account: &str,
    ctx: &Context<'_>,
) -> Vec<Reference> {
    let mut refs = references(spec, prefix);
    let has_own = spec
        .image_pull_secrets
        .as_ref()
        .is_some_and(|l| !l.is_empty());
    if !has_own {
        let inherited = ctx.service_accounts.pull_secrets(ctx.namespace, account);
        for name in inherited.into_iter().flatten() {
            refs.push(Reference {
                field: format!("{prefix}.serviceAccountName"),
                secret: name.clone(),
                via: Via::ImagePullSecret,
            });
        }
    }
    refs
}

/// Every reference in `spec` (field paths under `prefix`) that a pod with `labels` may
/// not use, as findings. With `old` (an UPDATE), only references the old spec did not
/// have count: a running pod's existing references were checked when it was created.
pub fn violations(
    spec: &PodSpec,
    labels: &Labels,
    prefix: &str,
    old: Option<&PodSpec>,
    ctx: &Context<'_>,
) -> Vec<Violation> {
    let account = match service_account(spec) {
        Ok(account) => account,
        Err(problem) => {
            return vec![Violation::deny(
                format!("{prefix}.serviceAccountName"),
                problem,
            )];
        }
    };
    let before: HashSet<(String, String)> = old
        .map(|old| {
            let old_account = service_account(old).unwrap_or(account);
            all_references(old, prefix, old_account, ctx)
                .into_iter()
                .map(|r| (r.field, r.secret))
                .collect()
        })
        .unwrap_or_default();
    let references = all_references(spec, prefix, account, ctx);
    let distinct: HashSet<&str> = references.iter().map(|r| r.secret.as_str()).collect();
    if distinct.len() > MAX_DISTINCT_SECRETS {
        // Deciding costs a few automaton passes per secret; a pod has tens, not
        // thousands. Refusing is the bounded answer that does not fail open.
        return vec![Violation::deny(
            prefix.to_owned(),
            format!(
                "the pod uses {} different secrets; secretgate decides secret use for at                  most {MAX_DISTINCT_SECRETS} per pod",
                distinct.len()
            ),
        )];
    }
    let mut out = Vec::new();
    // One decision per secret: a pod may name the same one in thousands of places.
    let mut decided: HashMap<String, Result<(), Refusal>> = HashMap::new();
    for reference in references {
        if before.contains(&(reference.field.clone(), reference.secret.clone())) {
            continue;
        }
        let decision = decided
            .entry(reference.secret.clone())
            .or_insert_with(|| ctx.decide(&reference.secret, account, labels));
        if let Err(refusal) = decision {
            let mut message = refusal.message(&reference.secret, account);
            if reference.field.ends_with(".serviceAccountName") {
                message.push_str(
                    " (an image pull secret of the service account, which its pods inherit)",
                );
            }
            out.push(Violation::deny(reference.field, message));
        }
    }
    out
}
