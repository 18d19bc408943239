//! A Pod as the pod rules read it: metadata, containers, volumes, pull secrets.

use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, LocalObjectReference, Pod, PodSpec, SecretVolumeSource, Volume,
    VolumeMount,
};
use serde::{Deserialize, Deserializer};

use super::{Lean, Meta};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerFields {
    name: Option<String>,
    image: Option<String>,
    volume_mounts: Option<Vec<MountFields>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountFields {
    name: Option<String>,
    mount_path: Option<String>,
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

    fn container(mut self) -> Container {
        Container {
            volume_mounts: self.mounts(),
            name: self.name.unwrap_or_default(),
            image: self.image,
            ..Container::default()
        }
    }

    fn ephemeral(mut self) -> EphemeralContainer {
        EphemeralContainer {
            volume_mounts: self.mounts(),
            name: self.name.unwrap_or_default(),
            image: self.image,
            ..EphemeralContainer::default()
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
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct SpecFields {
            containers: Option<Vec<ContainerFields>>,
            init_containers: Option<Vec<ContainerFields>>,
            ephemeral_containers: Option<Vec<ContainerFields>>,
            volumes: Option<Vec<VolumeFields>>,
            image_pull_secrets: Option<Vec<NameField>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct VolumeFields {
            name: Option<String>,
            secret: Option<SecretVolumeFields>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct SecretVolumeFields {
            secret_name: Option<String>,
        }
        #[derive(Deserialize)]
        struct NameField {
            name: Option<String>,
        }

        let f = Fields::deserialize(d)?;
        let spec = f.spec.map(|s| PodSpec {
            containers: s
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(ContainerFields::container)
                .collect(),
            init_containers: s
                .init_containers
                .map(|c| c.into_iter().map(ContainerFields::container).collect()),
            ephemeral_containers: s
                .ephemeral_containers
                .map(|c| c.into_iter().map(ContainerFields::ephemeral).collect()),
            volumes: s.volumes.map(|v| {
                v.into_iter()
                    .map(|v| Volume {
                        name: v.name.unwrap_or_default(),
                        secret: v.secret.map(|s| SecretVolumeSource {
                            secret_name: s.secret_name,
                            ..SecretVolumeSource::default()
                        }),
                        ..Volume::default()
                    })
                    .collect()
            }),
            image_pull_secrets: s.image_pull_secrets.map(|l| {
                l.into_iter()
                    .map(|r| LocalObjectReference {
                        name: r.name.unwrap_or_default(),
                    })
                    .collect()
            }),
            ..PodSpec::default()
        });
        Ok(Lean(Pod {
            metadata: f.metadata.unwrap_or_default().into(),
            spec,
            ..Pod::default()
        }))
    }
}
