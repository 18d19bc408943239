//! Lean decoding of the objects a review carries: only the fields secretgate's rules
//! read are built; everything else (managedFields, status, container resources, …) is
//! skipped by the parser without allocating.
//!
//! The result is the usual k8s-openapi `Secret` or `Pod` with just those fields set, so
//! the rules keep working on the real types. Decoding the whole typed object was most of
//! a review's cost (see BENCHMARKS.md).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, LocalObjectReference, Pod, PodSpec, Secret, SecretVolumeSource,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Resource;
use serde::{Deserialize, Deserializer};

/// `K` decoded with only the fields secretgate reads.
#[derive(Clone, Debug, Default)]
pub struct Lean<K>(pub K);

impl<K: Resource<DynamicType = ()>> Resource for Lean<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// The metadata rules read: names, labels, annotations.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    #[serde(default, deserialize_with = "bulk_map")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "bulk_map")]
    annotations: Option<BTreeMap<String, String>>,
}

/// A JSON object as a `BTreeMap`, built in bulk from its entries rather than by one
/// insert each: a tenant can send a hundred thousand annotations or data keys, and the
/// API server writes them sorted, which a bulk build takes in one pass. A repeated key
/// keeps its last value, as inserting would.
fn bulk_map<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = Option<BTreeMap<String, V>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object or null")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries: Vec<(String, V)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(Some(entries.into_iter().collect()))
        }
    }

    d.deserialize_option(Entries(std::marker::PhantomData))
}

impl From<Meta> for ObjectMeta {
    fn from(m: Meta) -> Self {
        ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            labels: m.labels,
            annotations: m.annotations,
            ..ObjectMeta::default()
        }
    }
}

impl<'de> Deserialize<'de> for Lean<Secret> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            metadata: Option<Meta>,
            #[serde(rename = "type")]
            type_: Option<String>,
            #[serde(default, deserialize_with = "bulk_map")]
            data: Option<BTreeMap<String, ByteString>>,
        }
        let f = Fields::deserialize(d)?;
        Ok(Lean(Secret {
            metadata: f.metadata.unwrap_or_default().into(),
            type_: f.type_,
            data: f.data,
            ..Secret::default()
        }))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::admission::AdmissionReview;

    fn both<K>(name: &str) -> (K, K)
    where
        K: Resource + serde::de::DeserializeOwned,
        Lean<K>: serde::de::DeserializeOwned + Resource,
    {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/admission")
            .join(name);
        let body = std::fs::read(path).expect("fixture");
        let full: AdmissionReview<K> = serde_json::from_slice(&body).expect("full");
        let lean: AdmissionReview<Lean<K>> = serde_json::from_slice(&body).expect("lean");
        (
            full.request.and_then(|r| r.object).expect("object"),
            lean.request.and_then(|r| r.object).expect("object").0,
        )
    }

    #[test]
    fn lean_pods_keep_every_field_the_rules_read() {
        for name in [
            "pod-create-git-sync-container.json",
            "pod-create-git-sync-already-has-secret-volume.json",
            "pod-create-initcontainers.json",
            "pod-create-existing-imagepullsecrets.json",
            "pod-create-generatename.json",
        ] {
            let (full, lean) = both::<Pod>(name);
            let (fs, ls) = (full.spec.expect("spec"), lean.spec.expect("spec"));
            let view = |c: &Container| {
                let mounts = c.volume_mounts.as_ref().map(|m| {
                    m.iter()
                        .map(|m| (m.name.clone(), m.mount_path.clone()))
                        .collect::<Vec<_>>()
                });
                (c.name.clone(), c.image.clone(), mounts)
            };
            assert_eq!(
                fs.containers.iter().map(view).collect::<Vec<_>>(),
                ls.containers.iter().map(view).collect::<Vec<_>>(),
                "{name}"
            );
            assert_eq!(
                fs.init_containers
                    .map(|c| c.iter().map(view).collect::<Vec<_>>()),
                ls.init_containers
                    .map(|c| c.iter().map(view).collect::<Vec<_>>()),
                "{name}"
            );
            let vols = |v: Option<Vec<Volume>>| {
                v.map(|v| {
                    v.into_iter()
                        .map(|v| (v.name, v.secret.and_then(|s| s.secret_name)))
                        .collect::<Vec<_>>()
                })
            };
            assert_eq!(vols(fs.volumes), vols(ls.volumes), "{name}");
            assert_eq!(fs.image_pull_secrets, ls.image_pull_secrets, "{name}");
            assert_eq!(
                full.metadata.annotations, lean.metadata.annotations,
                "{name}"
            );
            assert_eq!(full.metadata.name, lean.metadata.name, "{name}");
            assert_eq!(
                full.metadata.generate_name, lean.metadata.generate_name,
                "{name}"
            );
        }
    }

    #[test]
    fn lean_secrets_keep_every_field_the_rules_read() {
        for name in [
            "secret-create-apply-last-applied.json",
            "secret-create-tls-fullchain-with-ca.json",
            "secret-create-generic-binary-file.json",
        ] {
            let (full, lean) = both::<Secret>(name);
            assert_eq!(full.data, lean.data, "{name}");
            assert_eq!(full.type_, lean.type_, "{name}");
            assert_eq!(full.metadata.labels, lean.metadata.labels, "{name}");
            assert_eq!(
                full.metadata.annotations, lean.metadata.annotations,
                "{name}"
            );
            assert_eq!(full.metadata.name, lean.metadata.name, "{name}");
        }
    }
}
