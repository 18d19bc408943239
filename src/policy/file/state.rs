//! The cluster state a policy file states, for running without a cluster: `v1 Namespace`
//! documents (name and labels, so selectors work), `v1 Secret` documents (metadata only:
//! which secrets exist, their labels and the owner's annotation, for injection and
//! secret-use rules) and `v1 ServiceAccount` documents (the pull secrets their pods
//! inherit).
//!
//! Only what the snapshot reads is deserialised: a Secret's `data` and `stringData` and
//! its other annotations (`last-applied-configuration` holds a copy of the values) are
//! skipped by the parser and never kept.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

use super::{Document, Metadata, Result, document_error};
use crate::policy::resolve::NAME_LABEL;
use crate::policy::secret_use::ALLOWED_SERVICE_ACCOUNTS_ANNOTATION;
use crate::policy::{Labels, SecretIndex, SecretMeta, ServiceAccountIndex, Snapshot};

/// The cluster objects read so far from a file.
#[derive(Default)]
pub(super) struct State {
    namespaces: BTreeMap<String, Labels>,
    secrets: SecretIndex,
    service_accounts: ServiceAccountIndex,
}

impl State {
    /// Records a `v1 Namespace` document; a namespace stated twice is refused.
    pub(super) fn namespace(&mut self, doc: &Document<'_>, path: &Path) -> Result<()> {
        let parsed: NamespaceDocument = doc.parse(path)?;
        let name = parsed.metadata.name;
        let mut labels = parsed.metadata.labels;
        // The API server sets this label on every namespace; so does the file.
        labels.insert(NAME_LABEL.to_owned(), name.clone());
        if self.namespaces.contains_key(&name) {
            return Err(document_error(
                path,
                doc,
                format!("Namespace {name:?} is defined twice"),
            ));
        }
        self.namespaces.insert(name, labels);
        Ok(())
    }

    /// Records a `v1 Secret` document's metadata; a secret stated twice is refused (which
    /// labels are in force would be a guess).
    pub(super) fn secret(&mut self, doc: &Document<'_>, path: &Path) -> Result<()> {
        let parsed: SecretDocument = doc.parse(path)?;
        let m = parsed.metadata;
        let namespace = required_namespace("Secret", &m.name, m.namespace, doc, path)?;
        if self.secrets.contains(&namespace, &m.name) {
            return Err(twice("Secret", &namespace, &m.name, doc, path));
        }
        let meta = SecretMeta {
            labels: m.labels,
            allowed_service_accounts: m.annotations.and_then(|a| a.0).map(String::into_boxed_str),
        };
        self.secrets.insert_meta(&namespace, &m.name, meta);
        Ok(())
    }

    /// Records a `v1 ServiceAccount` document's `imagePullSecrets` (names; empty ones
    /// refer to nothing and are left out); an account stated twice is refused.
    pub(super) fn service_account(&mut self, doc: &Document<'_>, path: &Path) -> Result<()> {
        let parsed: ServiceAccountDocument = doc.parse(path)?;
        let m = parsed.metadata;
        let namespace = required_namespace("ServiceAccount", &m.name, m.namespace, doc, path)?;
        if self
            .service_accounts
            .pull_secrets(&namespace, &m.name)
            .is_some()
        {
            return Err(twice("ServiceAccount", &namespace, &m.name, doc, path));
        }
        let pull_secrets = parsed
            .image_pull_secrets
            .into_iter()
            .flatten()
            .map(|r| r.name)
            .filter(|name| !name.is_empty())
            .collect();
        self.service_accounts
            .insert(&namespace, &m.name, pull_secrets);
        Ok(())
    }

    /// The snapshot of `policies` over this state.
    pub(super) fn into_snapshot(self, policies: Vec<crate::policy::Policy>) -> Snapshot {
        let mut snapshot = Snapshot::build(policies, &self.namespaces, self.secrets);
        snapshot.service_accounts = self.service_accounts;
        snapshot
    }
}

/// The namespace of a namespaced object, or the error saying it has none.
fn required_namespace(
    kind: &str,
    name: &str,
    namespace: Option<String>,
    doc: &Document<'_>,
    path: &Path,
) -> Result<String> {
    namespace.ok_or_else(|| {
        document_error(
            path,
            doc,
            format!("{kind} {name:?} needs metadata.namespace"),
        )
    })
}

fn twice(kind: &str, namespace: &str, name: &str, doc: &Document<'_>, path: &Path) -> super::Error {
    document_error(
        path,
        doc,
        format!("{kind} {namespace:?}/{name:?} is defined twice"),
    )
}

#[derive(Deserialize)]
struct NamespaceDocument {
    metadata: Metadata,
}

/// Only the metadata of a Secret is deserialised: `data` and `stringData` are skipped.
#[derive(Deserialize)]
struct SecretDocument {
    metadata: SecretMetadata,
}

#[derive(Deserialize)]
struct SecretMetadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Labels,
    /// `None` for `annotations: null` as for none at all.
    #[serde(default)]
    annotations: Option<OwnerAnnotation>,
}

/// The owner's [`ALLOWED_SERVICE_ACCOUNTS_ANNOTATION`] among a Secret's annotations; the
/// values of the others are skipped unread.
struct OwnerAnnotation(Option<String>);

impl<'de> Deserialize<'de> for OwnerAnnotation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OwnerAnnotationVisitor)
    }
}

struct OwnerAnnotationVisitor;

impl<'de> Visitor<'de> for OwnerAnnotationVisitor {
    type Value = OwnerAnnotation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of annotations")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut owner = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == ALLOWED_SERVICE_ACCOUNTS_ANNOTATION {
                owner = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(OwnerAnnotation(owner))
    }
}

/// A ServiceAccount's name and pull secrets; its token `secrets` and the rest are skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceAccountDocument {
    metadata: Metadata,
    #[serde(default)]
    image_pull_secrets: Option<Vec<NameReference>>,
}

/// `{name: ...}` (a LocalObjectReference).
#[derive(Deserialize)]
struct NameReference {
    #[serde(default)]
    name: String,
}
