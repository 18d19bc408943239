//! imagePullSecrets injection: a pod gets each policy secret whose registries match one
//! of its images (containers, initContainers, ephemeralContainers), after the entries it
//! already has, never twice.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::json;

use super::patch::PatchBuilder;
use super::{Context, Injection};
use crate::registry::Registry;

pub const KIND: &str = "image_pull_secret";

pub fn inject(
    pod: &Pod,
    ctx: &Context<'_>,
    patch: &mut PatchBuilder,
    out: &mut Vec<Injection>,
    warnings: &mut Vec<String>,
) {
    let rules = &ctx.policy.spec.image_pull_secrets;
    let Some(spec) = &pod.spec else { return };
    if rules.is_empty() {
        return;
    }
    let registries: Vec<Registry> = images(spec).filter_map(Registry::of_image).collect();
    let existing = spec.image_pull_secrets.as_ref();
    let mut added: Vec<&str> = Vec::new();
    for rule in rules {
        let name = rule.secret_name.as_str();
        let wanted = rule.registries.is_empty()
            || registries
                .iter()
                .any(|r| rule.registries.iter().any(|p| r.matches(p)));
        let present = existing.is_some_and(|list| list.iter().any(|s| s.name == name));
        if !wanted || present || added.contains(&name) {
            continue;
        }
        if let Some(missing) = ctx.missing("imagePullSecret", name) {
            warnings.push(missing);
            continue;
        }
        added.push(name);
    }
    let items = added.iter().map(|name| json!({ "name": name })).collect();
    patch.extend_array(&["spec", "imagePullSecrets"], existing.is_some(), items);
    out.extend(added.into_iter().map(|name| Injection {
        kind: KIND,
        secret: name.to_owned(),
    }));
}

/// Every image the pod pulls.
fn images(spec: &PodSpec) -> impl Iterator<Item = &str> {
    let containers = spec.containers.iter().filter_map(|c| c.image.as_deref());
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(|c| c.image.as_deref());
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .filter_map(|c| c.image.as_deref());
    containers.chain(init).chain(ephemeral)
}
