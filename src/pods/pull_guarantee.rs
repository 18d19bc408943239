//! The pull guarantee: every container whose image comes from a registry the project
//! treats as private must be pullable with the pod's own pull secrets, read as the
//! kubelet reads them ([`crate::registry::lookup`]).
//!
//! Checked on the final Pod, in the validating webhook: mutation fails open by design
//! (secretgate down or slow, another webhook rewriting an image or adding a sidecar,
//! `kubectl debug` adding an ephemeral container), so only the stored object tells. The
//! pull secrets are the pod's `imagePullSecrets`, else its service account's (the
//! ServiceAccount admission plugin copies them before webhooks run; the fallback covers
//! API servers without it). Credentials the nodes hold themselves (credential provider
//! plugins, a node's config.json) are unknown here: registries served that way are not
//! listed as private.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::PodSpec;

use super::Context;
use super::secret_use::service_account;
use crate::admission::clip;
use crate::policy::pull_secrets::{PullSecretFact, PullSecretIndex};
use crate::registry::Registry;
use crate::registry::lookup::{KeyringKey, Lookup, lookup};
use crate::secrets::Violation;

/// The annotation the kubelet sets on the mirror Pod of a static pod. Mirror pods may
/// not reference secrets at all (the API server refuses them), so the guarantee cannot
/// apply; their images are the node's business.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Longest image quoted in a finding.
const MAX_IMAGE_SHOWN: usize = 200;
/// Most different private images one pod may pull for secretgate to decide them: each is
/// looked up against every key of the pod's pull secrets. A pod has a few; a tenant can
/// send thousands, and refusing is the bounded answer that does not fail open.
pub const MAX_DISTINCT_IMAGES: usize = 256;
/// Most registry keys the pod's pull secrets may hold together, for the same reason (a
/// docker config of a few hundred KiB holds tens of thousands).
pub const MAX_KEYS: usize = 4096;
/// Pull secrets named in a finding; the rest are counted.
const MAX_NAMED: usize = 8;

/// A container image the kubelet will pull.
struct Pull<'a> {
    field: String,
    container: &'a str,
    image: &'a str,
    registry: Registry,
}

/// Every private-registry container of `spec` that its pull secrets do not serve, as
/// findings. With `old` (an UPDATE: `kubectl debug` adding an ephemeral container, or an
/// image changed in place), only containers whose image is new are checked.
pub fn violations(
    spec: &PodSpec,
    prefix: &str,
    old: Option<&PodSpec>,
    ctx: &Context<'_>,
    pull_secrets: &PullSecretIndex,
) -> Vec<Violation> {
    let private = ctx.policy.spec.private_registries();
    if private.is_empty() {
        return Vec::new();
    }
    // A set, not a scan per container: a pod may have thousands.
    let before: HashSet<(String, &str)> = old
        .map(|old| pulls(old, prefix).map(|o| (o.field, o.image)).collect())
        .unwrap_or_default();
    let pulls: Vec<Pull<'_>> = pulls(spec, prefix)
        .filter(|p| private.iter().any(|pattern| p.registry.matches(pattern)))
        .filter(|p| !before.contains(&(p.field.clone(), p.image)))
        .collect();
    if pulls.is_empty() {
        return Vec::new();
    }
    if !pull_secrets.known {
        return vec![Violation::warn(
            format!("{prefix}.imagePullSecrets"),
            format!(
                "the pull guarantee of policy {:?} is not checked here: pull secrets are \
                 not read (only a cluster-mode server with --pull-secret-registries reads \
                 them; policy files and `secretgate check` do not)",
                clip(&ctx.policy.name, 253)
            ),
        )];
    }
    let (names, inherited) = pull_secret_names(spec, ctx);
    let mut keys: Vec<&KeyringKey> = Vec::new();
    let mut unreadable = Vec::new();
    let mut why_not: Vec<String> = Vec::new();
    for name in &names {
        match pull_secrets.get(ctx.namespace, name) {
            Some(PullSecretFact::Unreadable) => unreadable.push(name.as_str()),
            Some(PullSecretFact::Keys(k)) => {
                keys.extend(k.iter());
                why_not.push(format!("{name:?}"));
            }
            None if ctx.secrets.contains(ctx.namespace, name) => why_not.push(format!(
                "{name:?} (not a pull secret the kubelet reads: type \
                 kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg with its document)"
            )),
            None => why_not.push(format!("{name:?} (not found)")),
        }
    }
    let distinct: HashSet<&str> = pulls.iter().map(|p| p.image).collect();
    if distinct.len() > MAX_DISTINCT_IMAGES || keys.len() > MAX_KEYS {
        return vec![Violation::deny(
            prefix.to_owned(),
            format!(
                "the pod pulls {} different private images with pull secrets holding {} \
                 registry keys; secretgate decides the pull guarantee for at most \
                 {MAX_DISTINCT_IMAGES} images and {MAX_KEYS} keys",
                distinct.len(),
                keys.len()
            ),
        )];
    }
    if why_not.len() > MAX_NAMED {
        let more = why_not.len() - MAX_NAMED;
        why_not.truncate(MAX_NAMED);
        why_not.push(format!("and {more} more"));
    }
    // One lookup per image: a pod may pull the same one in many containers.
    let mut decided: HashMap<&str, Lookup> = HashMap::new();
    let source = if inherited {
        "the pull secrets of its service account"
    } else {
        "imagePullSecrets"
    };
    let named = match why_not.is_empty() {
        true => "none".to_owned(),
        false => why_not.join(", "),
    };
    pulls
        .into_iter()
        .filter_map(|p| {
            let what = format!(
                "container {:?} pulls {:?} from private registry {}",
                clip(p.container, 253),
                clip(p.image, MAX_IMAGE_SHOWN),
                p.registry.address()
            );
            let message = if let Some(bad) = unreadable.first() {
                format!(
                    "{what}, but pull secret {bad:?} is not a docker config the kubelet can \
                     read, so the kubelet fails every pull of this pod"
                )
            } else {
                let found = *decided
                    .entry(p.image)
                    .or_insert_with(|| lookup(&keys, p.image));
                match found {
                    Lookup::Credentials => return None,
                    Lookup::Anonymous => format!(
                        "{what}, but the pull secrets that match it hold no credentials \
                         ({source}: {named})"
                    ),
                    Lookup::None => format!(
                        "{what}, but no pull secret of the pod serves it ({source}: {named})"
                    ),
                }
            };
            Some(Violation::deny(p.field, message))
        })
        .collect()
}

/// The pull secrets the kubelet gets for the pod, and whether they come from its service
/// account.
fn pull_secret_names(spec: &PodSpec, ctx: &Context<'_>) -> (Vec<String>, bool) {
    let own: Vec<String> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    if !own.is_empty() {
        return (own, false);
    }
    let inherited = service_account(spec)
        .ok()
        .and_then(|account| ctx.service_accounts.pull_secrets(ctx.namespace, account))
        .map(|names| names.to_vec())
        .unwrap_or_default();
    (inherited, true)
}

/// Every container, init container and ephemeral container with an image, as a pull.
fn pulls<'a>(spec: &'a PodSpec, prefix: &'a str) -> impl Iterator<Item = Pull<'a>> + 'a {
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| ("containers", i, c.name.as_str(), c.image.as_deref()));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| ("initContainers", i, c.name.as_str(), c.image.as_deref()));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            (
                "ephemeralContainers",
                i,
                c.name.as_str(),
                c.image.as_deref(),
            )
        });
    containers
        .chain(init)
        .chain(ephemeral)
        .filter_map(move |(list, i, container, image)| {
            let image = image?;
            Some(Pull {
                field: format!("{prefix}.{list}[{i}].image"),
                container,
                image,
                registry: Registry::of_image(image)?,
            })
        })
}

#[cfg(test)]
mod tests;
