//! Lean decoding of the objects a review carries: only the fields secretgate's rules
//! read are built; everything else (managedFields, status, container resources, …) is
//! skipped by the parser without allocating.
//!
//! The result is the usual k8s-openapi `Secret` or `Pod` with just those fields set, so
//! the rules keep working on the real types; a Secret's `data` alone comes packed
//! (`SecretData`), since it can hold a hundred thousand entries. Decoding the whole typed
//! object was most of a review's cost (see BENCHMARKS.md).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::Resource;
use serde::{Deserialize, Deserializer};

mod pod;
mod secret;
mod secret_data;
mod workload;

pub use secret::LeanSecret;
pub use secret_data::SecretData;
pub use workload::{PodOrWorkload, Workload, template_pointer, template_pointer_of};

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
pub(crate) struct Meta {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    #[serde(default, deserialize_with = "bulk_map")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "bulk_map")]
    annotations: Option<BTreeMap<String, String>>,
    /// Who owns a denied Secret, for the Event on the owner (`owner_events`).
    #[serde(default, deserialize_with = "lenient_owner_references")]
    owner_references: Option<Vec<OwnerReference>>,
}

/// `ownerReferences`, or none when they do not decode (a wrong type): no rule reads them,
/// so they never make a review fail. Mutating webhooks see objects before the API server
/// validates them.
fn lenient_owner_references<'de, D>(d: D) -> Result<Option<Vec<OwnerReference>>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// A JSON object as a `BTreeMap`, built in bulk from its entries rather than by one
/// insert each: a tenant can send a hundred thousand annotations or data keys, and the
/// API server writes them sorted, which a bulk build takes in one pass. A repeated key
/// keeps its last value, as inserting would.
pub(crate) fn bulk_map<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
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
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
mod tests;
