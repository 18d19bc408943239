//! A Secret as the secret rules read it: metadata, type and data.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Resource;
use serde::{Deserialize, Deserializer};

use super::Meta;
use super::secret_data::SecretData;

/// A Secret decoded with only the fields the rules read: metadata and type in the API
/// type, and `data` packed (`SecretData`, whose decode allocates per buffer rather than
/// per entry) with `secret.data` left empty.
#[derive(Clone, Debug, Default)]
pub struct LeanSecret {
    pub secret: Secret,
    pub data: SecretData,
}

impl Resource for LeanSecret {
    type DynamicType = ();
    type Scope = <Secret as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Secret::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Secret::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Secret::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Secret::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.secret.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.secret.meta_mut()
    }
}

impl<'de> Deserialize<'de> for LeanSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            metadata: Option<Meta>,
            #[serde(rename = "type")]
            type_: Option<String>,
            #[serde(default)]
            data: SecretData,
        }
        let f = Fields::deserialize(d)?;
        Ok(LeanSecret {
            secret: Secret {
                metadata: f.metadata.unwrap_or_default().into(),
                type_: f.type_,
                ..Secret::default()
            },
            data: f.data,
        })
    }
}
