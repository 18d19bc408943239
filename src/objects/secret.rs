//! A Secret as the secret rules read it: metadata, type and data.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Deserializer};

use super::{Lean, Meta, bulk_map};

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
