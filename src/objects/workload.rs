//! A workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
//! ReplicationController) as the pod rules read it: its metadata and the pod template its
//! controller creates pods from.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{GroupVersionKind, NamespaceResourceScope, Resource};
use serde::{Deserialize, Deserializer};

use super::pod::{SpecFields, lean_pod};
use super::{Lean, Meta};

/// Where a workload of some kind keeps its pod template, as a JSON pointer, or `None`
/// for a kind that has none.
pub fn template_pointer(gvk: &GroupVersionKind) -> Option<&'static str> {
    template_pointer_of(&gvk.group, &gvk.version, &gvk.kind)
}

/// [`template_pointer`] of a kind given by its parts.
pub fn template_pointer_of(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    match (group, version, kind) {
        ("apps", "v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "v1", "Job")
        | ("", "v1", "ReplicationController") => Some("/spec/template"),
        ("batch", "v1", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// A workload's metadata and pod template. `template` is `spec.template`, or for a
/// CronJob `spec.jobTemplate.spec.template` (both are read; the kind says which counts).
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub metadata: ObjectMeta,
    template: Option<PodTemplateSpec>,
    job_template: Option<PodTemplateSpec>,
}

impl Workload {
    /// The pod template that `pointer` (from [`template_pointer`]) names.
    pub fn template(&self, pointer: &str) -> Option<&PodTemplateSpec> {
        if pointer == "/spec/jobTemplate/spec/template" {
            self.job_template.as_ref()
        } else {
            self.template.as_ref()
        }
    }
}

impl Resource for Workload {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    // Never used to build a URL: the review's own `kind` says what the object is.
    fn kind(_: &()) -> Cow<'_, str> {
        "Workload".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "workloads".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> Deserialize<'de> for Workload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PodOrWorkload::deserialize(d).map(PodOrWorkload::into_workload)
    }
}

/// A `/validate-pods` object read in one pass before the review's kind says what it is:
/// a Pod's fields and a workload's pod templates (whichever the object has). Deciding
/// first would take a pass over the body to read the kind, then another for the object.
pub struct PodOrWorkload {
    metadata: Option<Meta>,
    spec: Option<SpecFields>,
}

impl PodOrWorkload {
    pub fn into_pod(self) -> Lean<Pod> {
        lean_pod(self.metadata, self.spec)
    }

    pub fn into_workload(self) -> Workload {
        let (template, job_template) = self.spec.map(SpecFields::templates).unwrap_or_default();
        Workload {
            metadata: self.metadata.unwrap_or_default().into(),
            template,
            job_template,
        }
    }
}

impl<'de> Deserialize<'de> for PodOrWorkload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            metadata: Option<Meta>,
            spec: Option<SpecFields>,
        }
        let f = Fields::deserialize(d)?;
        Ok(Self {
            metadata: f.metadata,
            spec: f.spec,
        })
    }
}
