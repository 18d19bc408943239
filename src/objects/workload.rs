//! A workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
//! ReplicationController) as the pod rules read it: its metadata and the pod template its
//! controller creates pods from.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{GroupVersionKind, NamespaceResourceScope, Resource};
use serde::{Deserialize, Deserializer};

use super::Meta;
use super::pod::TemplateFields;

/// Where a workload of some kind keeps its pod template, as a JSON pointer, or `None`
/// for a kind that has none.
pub fn template_pointer(gvk: &GroupVersionKind) -> Option<&'static str> {
    match (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()) {
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
        #[derive(Deserialize)]
        struct Fields {
            metadata: Option<Meta>,
            spec: Option<SpecFields>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct SpecFields {
            template: Option<TemplateFields>,
            job_template: Option<JobTemplateFields>,
        }
        #[derive(Deserialize)]
        struct JobTemplateFields {
            spec: Option<JobSpecFields>,
        }
        #[derive(Deserialize)]
        struct JobSpecFields {
            template: Option<TemplateFields>,
        }
        let f = Fields::deserialize(d)?;
        let (template, job_template) = match f.spec {
            None => (None, None),
            Some(spec) => (
                spec.template.map(TemplateFields::template),
                spec.job_template
                    .and_then(|j| j.spec)
                    .and_then(|s| s.template)
                    .map(TemplateFields::template),
            ),
        };
        Ok(Workload {
            metadata: f.metadata.unwrap_or_default().into(),
            template,
            job_template,
        })
    }
}
