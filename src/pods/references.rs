//! Every way a pod spec reaches a Secret, with the field path of each.
//!
//! The list is Kubernetes' own (`VisitPodSecretNames` in `pkg/api/v1/pod/util.go`, which
//! the node authorizer follows to decide which secrets a kubelet may read for a pod):
//! `imagePullSecrets`; `envFrom[].secretRef` and `env[].valueFrom.secretKeyRef` of
//! containers, init containers and ephemeral containers; secret, projected, CSI
//! (`nodePublishSecretRef`), azureFile, cephfs, cinder, flexVolume, iscsi, rbd, scaleIO and
//! storageos volumes. An empty name reaches nothing and is skipped (the API server refuses
//! most of them anyway).

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, LocalObjectReference, PodSpec, Volume};

/// How a pod reaches a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    Volume,
    ProjectedVolume,
    Env,
    EnvFrom,
    ImagePullSecret,
    /// A volume plugin's credentials (CSI `nodePublishSecretRef`, cephfs `secretRef`, …).
    VolumeCredentials,
}

/// One reference from a pod spec to a secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Field path in kubectl's style, under the pod (`spec.containers[0].env[2]…`) or a
    /// workload's template (`spec.template.spec.…`).
    pub field: String,
    pub secret: String,
    pub via: Via,
}

/// Every secret reference in `spec`; field paths start with `prefix` (`spec` for a pod,
/// `spec.template.spec` for most workloads).
pub fn references(spec: &PodSpec, prefix: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut add = |field: String, secret: &str, via: Via| {
        if !secret.is_empty() {
            out.push(Reference {
                field,
                secret: secret.to_owned(),
                via,
            });
        }
    };
    for (i, r) in spec.image_pull_secrets.iter().flatten().enumerate() {
        add(
            format!("{prefix}.imagePullSecrets[{i}]"),
            &r.name,
            Via::ImagePullSecret,
        );
    }
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| ("containers", i, c.env.as_deref(), c.env_from.as_deref()));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| ("initContainers", i, c.env.as_deref(), c.env_from.as_deref()));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let env = c.env.as_deref();
            ("ephemeralContainers", i, env, c.env_from.as_deref())
        });
    for (list, i, env, env_from) in containers.chain(init).chain(ephemeral) {
        let at = format!("{prefix}.{list}[{i}]");
        container_references(&at, env, env_from, &mut add);
    }
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        volume_references(&format!("{prefix}.volumes[{i}]"), volume, &mut add);
    }
    out
}

fn container_references(
    at: &str,
    env: Option<&[EnvVar]>,
    env_from: Option<&[EnvFromSource]>,
    add: &mut impl FnMut(String, &str, Via),
) {
    for (j, source) in env_from.into_iter().flatten().enumerate() {
        if let Some(r) = &source.secret_ref {
            add(
                format!("{at}.envFrom[{j}].secretRef"),
                &r.name,
                Via::EnvFrom,
            );
        }
    }
    for (j, var) in env.into_iter().flatten().enumerate() {
        let key_ref = var
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref());
        if let Some(r) = key_ref {
            add(
                format!("{at}.env[{j}].valueFrom.secretKeyRef"),
                &r.name,
                Via::Env,
            );
        }
    }
}

fn volume_references(at: &str, volume: &Volume, add: &mut impl FnMut(String, &str, Via)) {
    if let Some(name) = volume
        .secret
        .as_ref()
        .and_then(|s| s.secret_name.as_deref())
    {
        add(format!("{at}.secret.secretName"), name, Via::Volume);
    }
    let sources = volume.projected.as_ref().and_then(|p| p.sources.as_deref());
    for (k, source) in sources.into_iter().flatten().enumerate() {
        if let Some(s) = &source.secret {
            add(
                format!("{at}.projected.sources[{k}].secret"),
                &s.name,
                Via::ProjectedVolume,
            );
        }
    }
    if let Some(a) = &volume.azure_file {
        add(
            format!("{at}.azureFile.secretName"),
            &a.secret_name,
            Via::VolumeCredentials,
        );
    }
    let refs: [(&str, Option<&LocalObjectReference>); 8] = [
        (
            "csi.nodePublishSecretRef",
            volume
                .csi
                .as_ref()
                .and_then(|c| c.node_publish_secret_ref.as_ref()),
        ),
        (
            "cephfs.secretRef",
            volume.cephfs.as_ref().and_then(|v| v.secret_ref.as_ref()),
        ),
        (
            "cinder.secretRef",
            volume.cinder.as_ref().and_then(|v| v.secret_ref.as_ref()),
        ),
        (
            "flexVolume.secretRef",
            volume
                .flex_volume
                .as_ref()
                .and_then(|v| v.secret_ref.as_ref()),
        ),
        (
            "iscsi.secretRef",
            volume.iscsi.as_ref().and_then(|v| v.secret_ref.as_ref()),
        ),
        (
            "rbd.secretRef",
            volume.rbd.as_ref().and_then(|v| v.secret_ref.as_ref()),
        ),
        (
            "scaleIO.secretRef",
            volume.scale_io.as_ref().map(|v| &v.secret_ref),
        ),
        (
            "storageos.secretRef",
            volume
                .storageos
                .as_ref()
                .and_then(|v| v.secret_ref.as_ref()),
        ),
    ];
    for (field, reference) in refs {
        if let Some(r) = reference {
            add(format!("{at}.{field}"), &r.name, Via::VolumeCredentials);
        }
    }
}
