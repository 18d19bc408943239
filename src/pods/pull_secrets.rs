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
        if let Some(refused) = ctx.refused(pod, "imagePullSecret", name) {
            warnings.push(refused);
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use crate::policy::{ProjectPolicySpec, PullSecretInjection, Snapshot};

    /// The secrets injected into a pod with `images` under one rule for `registries`.
    fn injected(images: &[&str], registries: &[&str]) -> Vec<String> {
        let spec = ProjectPolicySpec {
            image_pull_secrets: vec![PullSecretInjection {
                secret_name: "regcred".into(),
                registries: registries.iter().map(|r| r.to_string()).collect(),
            }],
            ..ProjectPolicySpec::default()
        };
        let mut snapshot = Snapshot::with_fallback("p", spec);
        snapshot.secrets.insert("ns", "regcred");
        let ctx = Context {
            policy: snapshot.for_namespace("ns"),
            secrets: &snapshot.secrets,
            service_accounts: &snapshot.service_accounts,
            namespace: "ns",
        };
        let containers = images
            .iter()
            .map(|i| Container {
                name: "c".into(),
                image: Some(i.to_string()),
                ..Container::default()
            })
            .collect();
        let pod = Pod {
            spec: Some(PodSpec {
                containers,
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let (mut patch, mut out, mut warnings) = (PatchBuilder::default(), Vec::new(), Vec::new());
        inject(&pod, &ctx, &mut patch, &mut out, &mut warnings);
        out.into_iter().map(|i| i.secret).collect()
    }

    /// Injection reads registries as secret validation does (`registry.rs`): the port as
    /// written, the host in any case, `*.domain` for subdomains only.
    #[test]
    fn images_match_rules_as_the_kubelet_matches_keys() {
        let cases: &[(&str, &str, bool)] = &[
            ("registry.corp.io:5000/app", "registry.corp.io:5000", true),
            ("registry.corp.io:05000/app", "registry.corp.io:5000", false),
            ("registry.corp.io/app", "registry.corp.io:443", false),
            ("GHCR.IO/org/app", "ghcr.io", true),
            ("a.example.com/app", "*.example.com", true),
            ("example.com/app", "*.example.com", false),
            ("nginx", "docker.io", true),
            ("ghcr.io./app", "ghcr.io", false),
        ];
        for (image, registry, wanted) in cases {
            let got = injected(&[image], &[registry]);
            assert_eq!(!got.is_empty(), *wanted, "{image} with {registry}");
        }
    }
}
