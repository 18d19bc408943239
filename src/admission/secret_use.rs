//! The `/validate-pods` webhook: who may use which secret, for Pods and for the pod
//! templates of workloads (so `kubectl apply` of a Deployment fails at once, with the
//! field path inside its template, rather than its ReplicaSet failing to create pods
//! later).
//!
//! Pods are checked when created and when an UPDATE adds references (`kubectl debug`
//! adds an ephemeral container through the `pods/ephemeralcontainers` subresource): the
//! references a running pod already had were checked when it was created. Workloads are
//! checked in full on every CREATE and UPDATE: every pod their controller creates from
//! the template would be checked the same way.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::core::admission::{AdmissionResponse, Operation};

use super::request::{Request, User};
use super::response::{allowed, deny};
use super::{Context, DecodeError, Judged, Summary, Verdict, apply_findings, lean, summary_of};
use crate::objects::{Lean, Workload};
use crate::pods::{self, secret_use};
use crate::policy::{Labels, Resolved};

/// Reviews a Pod CREATE or UPDATE.
pub(super) fn validate_pod(
    req: Request<'_, Lean<Pod>>,
    ctx: &Context<'_>,
) -> Result<(AdmissionResponse, Summary), DecodeError> {
    let summary = summary_of(&req);
    let response = allowed(&req.uid);
    let old = match req.operation {
        Operation::Create => None,
        Operation::Update => lean(&req.old_object).and_then(|p| p.spec.as_ref()),
        Operation::Delete | Operation::Connect => return Ok((response, summary)),
    };
    let what = if req.operation == Operation::Create {
        "CREATE"
    } else {
        "UPDATE"
    };
    let pod = lean(&req.object).ok_or(DecodeError::NoObject(what))?;
    let no_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&no_spec);
    let labels = pod.metadata.labels.as_ref();
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(pods::pull_guarantee::MIRROR_ANNOTATION));
    Ok(judge(
        response,
        summary,
        ctx,
        Template {
            subject: "pod",
            spec,
            labels,
            prefix: "spec",
            old,
            // The stored pod is what the kubelet pulls for; a mirror pod names no secret.
            pulls: !mirror,
        },
        &req.user_info,
    ))
}

/// Reviews a workload CREATE or UPDATE through its pod template at `pointer`.
pub(super) fn validate_workload(
    req: Request<'_, Workload>,
    pointer: &'static str,
    ctx: &Context<'_>,
) -> Result<(AdmissionResponse, Summary), DecodeError> {
    let summary = summary_of(&req);
    let response = allowed(&req.uid);
    let what = match req.operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete | Operation::Connect => return Ok((response, summary)),
    };
    let workload = req.object.as_ref().ok_or(DecodeError::NoObject(what))?;
    // A workload without a template makes no pods (the API server refuses most).
    let Some(template) = workload.template(pointer) else {
        return Ok((response, summary));
    };
    let no_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&no_spec);
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    // `/spec/template` → `spec.template.spec`.
    let prefix = format!("{}.spec", pointer.trim_start_matches('/').replace('/', "."));
    let subject: &str = &req.kind.kind;
    Ok(judge(
        response,
        summary,
        ctx,
        Template {
            subject,
            spec,
            labels,
            prefix: &prefix,
            old: None,
            // A template's pods are mutated (pull secrets injected) before they are
            // stored; each pod is checked then.
            pulls: false,
        },
        &req.user_info,
    ))
}

/// A pod spec under review and where it sits.
struct Template<'a> {
    subject: &'a str,
    spec: &'a PodSpec,
    labels: Option<&'a Labels>,
    /// Field path of the spec (`spec`, `spec.template.spec`, …).
    prefix: &'a str,
    /// The spec before an UPDATE: only references it lacked are checked.
    old: Option<&'a PodSpec>,
    /// Whether the pull guarantee applies (a final Pod, not a template or mirror pod).
    pulls: bool,
}

fn judge(
    mut response: AdmissionResponse,
    mut summary: Summary,
    ctx: &Context<'_>,
    template: Template<'_>,
    user: &User<'_>,
) -> (AdmissionResponse, Summary) {
    let policy: &Resolved = ctx.policies.for_namespace(&summary.namespace);
    summary.policy = Some(policy.name.clone());
    if let Some(problems) = policy.broken.as_deref() {
        // The rules are unknown: refusing is the only answer that does not fail open.
        summary.verdict = Some(Verdict::Denied);
        let message = format!(
            "{} denied: policy {:?} governs this namespace but is invalid, and no good \
             version of it is known, so who may use which secret cannot be checked (an \
             administrator fixes it: kubectl describe projectpolicy {}): {problems}",
            template.subject,
            super::clip(&policy.name, 253),
            super::clip(&policy.name, 253),
        );
        response = deny(response, message);
        return (response, summary);
    }
    let use_mode = policy
        .secret_use
        .as_ref()
        .map_or(policy.spec.mode, |rules| rules.mode);
    let pull_mode = policy
        .spec
        .pull_guarantee
        .as_ref()
        .filter(|_| template.pulls)
        .map(|g| g.mode.unwrap_or(policy.spec.mode));
    // The review's mode is the strictest of its rule sets'; each finding counts under its own.
    let mode = pull_mode.map_or(use_mode, |m| m.strictest(use_mode));
    summary.mode = Some(mode);
    let none = Labels::new();
    let pods_ctx = pods::Context {
        policy,
        secrets: &ctx.policies.secrets,
        service_accounts: &ctx.policies.service_accounts,
        namespace: &summary.namespace,
    };
    let mut findings: Vec<_> = secret_use::violations(
        template.spec,
        template.labels.unwrap_or(&none),
        template.prefix,
        template.old,
        &pods_ctx,
    )
    .into_iter()
    .map(|v| v.under(use_mode))
    .collect();
    if let Some(pull_mode) = pull_mode {
        findings.extend(
            pods::pull_guarantee::violations(
                template.spec,
                template.prefix,
                template.old,
                &pods_ctx,
                &ctx.policies.pull_secrets,
            )
            .into_iter()
            .map(|v| v.under(pull_mode)),
        );
    }
    let judged = Judged {
        subject: template.subject,
        policy: &policy.name,
        mode,
        exempt: super::exemption(policy, user),
    };
    let response = apply_findings(response, judged, findings, &mut summary);
    (response, summary)
}
