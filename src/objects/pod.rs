//! A Pod (or a workload's pod template) as the pod rules read it: metadata, service
//! account, containers with their mounts and secret env, volumes with every secret they
//! reach, pull secrets.
//!
//! The secret references kept are those Kubernetes itself counts for a pod
//! (`VisitPodSecretNames` in `pkg/api/v1/pod/util.go`, which the node authorizer uses to
//! decide what a kubelet may read): missing one here would be a way around secret-use
//! rules.

use k8s_openapi::api::core::v1::{
    AzureFileVolumeSource, CSIVolumeSource, CephFSVolumeSource, CinderVolumeSource, Container,
    EnvFromSource, EnvVar, EnvVarSource, EphemeralContainer, FlexVolumeSource, ISCSIVolumeSource,
    LocalObjectReference, Pod, PodSpec, PodTemplateSpec, ProjectedVolumeSource, RBDVolumeSource,
    ScaleIOVolumeSource, SecretEnvSource, SecretKeySelector, SecretProjection, SecretVolumeSource,
    StorageOSVolumeSource, Volume, VolumeMount, VolumeProjection,
};
use serde::{Deserialize, Deserializer};

use super::{Lean, Meta};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerFields {
    name: Option<String>,
    image: Option<String>,
    volume_mounts: Option<Vec<MountFields>>,
    env: Option<Vec<EnvFields>>,
    env_from: Option<Vec<EnvFromFields>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountFields {
    name: Option<String>,
    mount_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvFields {
    name: Option<String>,
    value_from: Option<ValueFromFields>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueFromFields {
    secret_key_ref: Option<KeyRefFields>,
}

#[derive(Deserialize)]
struct KeyRefFields {
    name: Option<String>,
    key: Option<String>,
    optional: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvFromFields {
    secret_ref: Option<NameField>,
}

#[derive(Deserialize)]
struct NameField {
    name: Option<String>,
}

impl NameField {
    fn reference(self) -> LocalObjectReference {
        LocalObjectReference {
            name: self.name.unwrap_or_default(),
        }
    }
}

impl ContainerFields {
    fn mounts(&mut self) -> Option<Vec<VolumeMount>> {
        self.volume_mounts.take().map(|mounts| {
            mounts
                .into_iter()
                .map(|m| VolumeMount {
                    name: m.name.unwrap_or_default(),
                    mount_path: m.mount_path.unwrap_or_default(),
                    ..VolumeMount::default()
                })
                .collect()
        })
    }

    /// Only the variables that read a secret are kept (with their positions: a field
    /// path names `env[2]`); the others become placeholders without a value.
    fn env(&mut self) -> Option<Vec<EnvVar>> {
        self.env.take().map(|vars| {
            vars.into_iter()
                .map(|v| EnvVar {
                    name: v.name.unwrap_or_default(),
                    value_from: v
                        .value_from
                        .and_then(|f| f.secret_key_ref)
                        .map(|r| EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: r.name.unwrap_or_default(),
                                key: r.key.unwrap_or_default(),
                                optional: r.optional,
                            }),
                            ..EnvVarSource::default()
                        }),
                    ..EnvVar::default()
                })
                .collect()
        })
    }

    fn env_from(&mut self) -> Option<Vec<EnvFromSource>> {
        self.env_from.take().map(|sources| {
            sources
                .into_iter()
                .map(|s| EnvFromSource {
                    secret_ref: s.secret_ref.map(|r| SecretEnvSource {
                        name: r.name.unwrap_or_default(),
                        ..SecretEnvSource::default()
                    }),
                    ..EnvFromSource::default()
                })
                .collect()
        })
    }

    fn container(mut self) -> Container {
        Container {
            volume_mounts: self.mounts(),
            env: self.env(),
            env_from: self.env_from(),
            name: self.name.unwrap_or_default(),
            image: self.image,
            ..Container::default()
        }
    }

    fn ephemeral(mut self) -> EphemeralContainer {
        EphemeralContainer {
            volume_mounts: self.mounts(),
            env: self.env(),
            env_from: self.env_from(),
            name: self.name.unwrap_or_default(),
            image: self.image,
            ..EphemeralContainer::default()
        }
    }
}

/// A volume with every field through which it reaches a secret.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeFields {
    name: Option<String>,
    secret: Option<SecretVolumeFields>,
    projected: Option<ProjectedFields>,
    csi: Option<CsiFields>,
    azure_file: Option<SecretVolumeFields>,
    cephfs: Option<SecretRefFields>,
    cinder: Option<SecretRefFields>,
    flex_volume: Option<SecretRefFields>,
    iscsi: Option<SecretRefFields>,
    rbd: Option<SecretRefFields>,
    #[serde(rename = "scaleIO")]
    scale_io: Option<SecretRefFields>,
    storageos: Option<SecretRefFields>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretVolumeFields {
    secret_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretRefFields {
    secret_ref: Option<NameField>,
}

impl SecretRefFields {
    fn reference(self) -> Option<LocalObjectReference> {
        self.secret_ref.map(NameField::reference)
    }
}

#[derive(Deserialize)]
struct ProjectedFields {
    sources: Option<Vec<ProjectionFields>>,
}

#[derive(Deserialize)]
struct ProjectionFields {
    secret: Option<NameField>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CsiFields {
    node_publish_secret_ref: Option<NameField>,
}

impl VolumeFields {
    fn volume(self) -> Volume {
        Volume {
            name: self.name.unwrap_or_default(),
            secret: self.secret.map(|s| SecretVolumeSource {
                secret_name: s.secret_name,
                ..SecretVolumeSource::default()
            }),
            projected: self.projected.map(|p| ProjectedVolumeSource {
                sources: p.sources.map(|sources| {
                    sources
                        .into_iter()
                        .map(|s| VolumeProjection {
                            secret: s.secret.map(|r| SecretProjection {
                                name: r.name.unwrap_or_default(),
                                ..SecretProjection::default()
                            }),
                            ..VolumeProjection::default()
                        })
                        .collect()
                }),
                ..ProjectedVolumeSource::default()
            }),
            csi: self.csi.map(|c| CSIVolumeSource {
                node_publish_secret_ref: c.node_publish_secret_ref.map(NameField::reference),
                ..CSIVolumeSource::default()
            }),
            azure_file: self.azure_file.map(|a| AzureFileVolumeSource {
                secret_name: a.secret_name.unwrap_or_default(),
                ..AzureFileVolumeSource::default()
            }),
            cephfs: self.cephfs.map(|s| CephFSVolumeSource {
                secret_ref: s.reference(),
                ..CephFSVolumeSource::default()
            }),
            cinder: self.cinder.map(|s| CinderVolumeSource {
                secret_ref: s.reference(),
                ..CinderVolumeSource::default()
            }),
            flex_volume: self.flex_volume.map(|s| FlexVolumeSource {
                secret_ref: s.reference(),
                ..FlexVolumeSource::default()
            }),
            iscsi: self.iscsi.map(|s| ISCSIVolumeSource {
                secret_ref: s.reference(),
                ..ISCSIVolumeSource::default()
            }),
            rbd: self.rbd.map(|s| RBDVolumeSource {
                secret_ref: s.reference(),
                ..RBDVolumeSource::default()
            }),
            scale_io: self.scale_io.map(|s| ScaleIOVolumeSource {
                secret_ref: s.reference().unwrap_or_default(),
                ..ScaleIOVolumeSource::default()
            }),
            storageos: self.storageos.map(|s| StorageOSVolumeSource {
                secret_ref: s.reference(),
                ..StorageOSVolumeSource::default()
            }),
            ..Volume::default()
        }
    }
}

/// The fields of a pod spec the rules read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecFields {
    containers: Option<Vec<ContainerFields>>,
    init_containers: Option<Vec<ContainerFields>>,
    ephemeral_containers: Option<Vec<ContainerFields>>,
    volumes: Option<Vec<VolumeFields>>,
    image_pull_secrets: Option<Vec<NameField>>,
    service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`, still in the v1 API.
    service_account: Option<String>,
    /// A workload's pod template (`spec.template`): read in the same pass when the
    /// review's kind is not known yet ([`super::workload::PodOrWorkload`]). A Pod has no
    /// such field (the API server drops unknown fields), so it costs pods nothing.
    template: Option<Box<TemplateFields>>,
    /// A CronJob's (`spec.jobTemplate.spec.template`).
    job_template: Option<Box<JobTemplateFields>>,
}

/// `spec.jobTemplate` of a CronJob, down to its pod template.
#[derive(Deserialize)]
pub(super) struct JobTemplateFields {
    spec: Option<JobSpecFields>,
}

#[derive(Deserialize)]
struct JobSpecFields {
    template: Option<TemplateFields>,
}

/// A Pod from its metadata and spec fields.
pub(super) fn lean_pod(metadata: Option<Meta>, spec: Option<SpecFields>) -> Lean<Pod> {
    Lean(Pod {
        metadata: metadata.unwrap_or_default().into(),
        spec: spec.map(SpecFields::spec),
        ..Pod::default()
    })
}

impl SpecFields {
    /// A workload's pod templates: `spec.template`, and a CronJob's
    /// `spec.jobTemplate.spec.template`.
    pub(super) fn templates(self) -> (Option<PodTemplateSpec>, Option<PodTemplateSpec>) {
        (
            self.template.map(|t| t.template()),
            self.job_template
                .and_then(|j| j.spec)
                .and_then(|s| s.template)
                .map(TemplateFields::template),
        )
    }

    pub(super) fn spec(self) -> PodSpec {
        PodSpec {
            containers: self
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(ContainerFields::container)
                .collect(),
            init_containers: self
                .init_containers
                .map(|c| c.into_iter().map(ContainerFields::container).collect()),
            ephemeral_containers: self
                .ephemeral_containers
                .map(|c| c.into_iter().map(ContainerFields::ephemeral).collect()),
            volumes: self
                .volumes
                .map(|v| v.into_iter().map(VolumeFields::volume).collect()),
            image_pull_secrets: self
                .image_pull_secrets
                .map(|l| l.into_iter().map(NameField::reference).collect()),
            service_account_name: self.service_account_name,
            service_account: self.service_account,
            ..PodSpec::default()
        }
    }
}

/// A pod template (`spec.template` of a workload).
#[derive(Deserialize)]
pub(super) struct TemplateFields {
    metadata: Option<Meta>,
    spec: Option<SpecFields>,
}

impl TemplateFields {
    pub(super) fn template(self) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(self.metadata.unwrap_or_default().into()),
            spec: self.spec.map(SpecFields::spec),
        }
    }
}

impl<'de> Deserialize<'de> for Lean<Pod> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            metadata: Option<Meta>,
            spec: Option<SpecFields>,
        }
        let f = Fields::deserialize(d)?;
        Ok(lean_pod(f.metadata, f.spec))
    }
}
