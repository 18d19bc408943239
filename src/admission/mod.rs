//! The only module that knows AdmissionReview: decode a body, route it by kind and
//! operation to `secrets` or `pods`, and turn the result into the response body.
//!
//! A review is first decoded in one typed pass (`Request<LeanSecret>` / `<Lean<Pod>>`, a
//! borrowed view of the request with kube's shape checks, see `request`):
//! that is every review the API server sends under the shipped configuration. When that
//! pass fails or finds something else (another apiVersion, kind or object kind, no uid,
//! no object), the body is read again the careful way: a light envelope read checks
//! apiVersion, kind, uid and the object's kind without building the object, so a
//! malformed review gets a precise 400 and a kind the route does not handle is allowed
//! without parsing it as the wrong type; only then is the typed request decoded.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::core::Resource;
use kube::core::admission::{AdmissionResponse, Operation};
use time::OffsetDateTime;

use crate::objects::{Lean, LeanSecret, PodOrWorkload};

mod bounded;
mod decode;
mod request;
mod response;
mod secret_use;
use crate::pods;
use crate::policy::{Mode, Severity, Snapshot};
use crate::secrets::{self, Violation};
pub use bounded::{MAX_SHOWN, clip};
use decode::{Envelope, decode, decode_well_formed, decode_well_formed_if};
use request::{Gvk, Request, User};
use response::{allowed, deny, encode, invalid, pass_through, with_patch};

const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

/// The webhooks secretgate serves for reviews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Webhook {
    /// ValidatingWebhook for Secrets (`POST /validate`).
    Validate,
    /// MutatingWebhook for Pods (`POST /mutate`).
    Mutate,
    /// ValidatingWebhook for Pods and workloads' pod templates (`POST /validate-pods`):
    /// who may use which secret.
    ValidatePods,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
            Webhook::ValidatePods => "validate-pods",
        }
    }

    /// The request path the webhook is served on.
    pub fn path(self) -> &'static str {
        match self {
            Webhook::Validate => "/validate",
            Webhook::Mutate => "/mutate",
            Webhook::ValidatePods => "/validate-pods",
        }
    }
}

/// Why a body could not be reviewed. Messages name the field; they never quote a value.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request body is not a valid AdmissionReview: {0}")]
    Json(String),
    #[error(
        "apiVersion {0:?} is not supported: secretgate speaks admission.k8s.io/v1 \
         (set admissionReviewVersions: [\"v1\"])"
    )]
    ApiVersion(String),
    #[error("kind {0:?} is not AdmissionReview")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("request.uid is missing or empty")]
    NoUid,
    #[error("request.object is required for {0}")]
    NoObject(&'static str),
}

impl DecodeError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "malformed_json",
            DecodeError::ApiVersion(_) => "wrong_api_version",
            DecodeError::Kind(_) => "wrong_kind",
            DecodeError::NoRequest => "no_request",
            DecodeError::NoUid => "no_uid",
            DecodeError::NoObject(_) => "no_object",
        }
    }
}

/// How a review ended, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted with nothing to say.
    Allowed,
    /// Admitted with warnings (Warn mode, or findings that are only warnings).
    Warned,
    /// Admitted with a JSON Patch.
    Patched,
    /// Refused by policy (403).
    Denied,
    /// Not a well-formed review (400).
    Invalid,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Warned => "warned",
            Verdict::Patched => "patched",
            Verdict::Denied => "denied",
            Verdict::Invalid => "invalid",
        }
    }
}

/// What a review was about and how it ended: everything the log line and metrics need,
/// and nothing from the object's data.
#[derive(Debug, Default)]
pub struct Summary {
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    pub dry_run: bool,
    pub policy: Option<Arc<str>>,
    pub mode: Option<Mode>,
    /// The first findings with their field paths (never values), clipped as the response
    /// shows them (`bounded`), for the log line and reports.
    pub findings: Vec<Violation>,
    /// How many findings there were in all.
    pub finding_count: usize,
    /// The rest, counted by rule, when there were more than `findings` holds.
    pub findings_more: Option<String>,
    pub verdict: Option<Verdict>,
    /// Injections made (kind and secret name; never values).
    pub injections: Vec<pods::Injection>,
    /// Who the requester was exempt as, when an exemption turned a denial into warnings.
    pub exempted: Option<String>,
    /// For a denied Secret (not a dry run) that names an owner: the Event to write on
    /// that owner (its reference and the value-free denial message only).
    pub owner_event: Option<crate::owner_events::Notice>,
}

impl Summary {
    pub fn verdict(&self) -> Verdict {
        self.verdict.unwrap_or(Verdict::Allowed)
    }
}

/// The HTTP answer to one review.
#[derive(Debug)]
pub struct Answer {
    /// 200 for every decoded review (allowed or denied), 400 for a malformed one.
    pub http_status: u16,
    pub body: Vec<u8>,
    pub summary: Summary,
    pub error: Option<DecodeError>,
}

/// Everything a review reads besides the body.
pub struct Context<'a> {
    pub policies: &'a Snapshot,
    pub now: OffsetDateTime,
}

/// Reviews one AdmissionReview body for `webhook`.
pub fn review(webhook: Webhook, body: &[u8], ctx: &Context<'_>) -> Answer {
    match review_well_formed(webhook, body, ctx) {
        Some(answer) => answer,
        None => review_checked(webhook, body, ctx),
    }
}

/// The single-pass review of a well-formed v1 review of the kind `webhook` handles;
/// `None` for anything else, which `review_checked` then answers precisely.
fn review_well_formed(webhook: Webhook, body: &[u8], ctx: &Context<'_>) -> Option<Answer> {
    let result = match webhook {
        Webhook::Validate => validate_secret(decode_well_formed(body, "Secret")?, ctx),
        Webhook::Mutate => mutate_pod(decode_well_formed(body, "Pod")?, ctx),
        // A Pod or a workload: the object is read in one pass before its kind is known.
        Webhook::ValidatePods => {
            let pointer = |gvk: &Gvk<'_>| {
                crate::objects::template_pointer_of(&gvk.group, &gvk.version, &gvk.kind)
            };
            let is_pod =
                |gvk: &Gvk<'_>| gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == "Pod";
            let req = decode_well_formed_if::<PodOrWorkload>(body, |gvk| {
                is_pod(gvk) || pointer(gvk).is_some()
            })?;
            match pointer(&req.kind) {
                None => secret_use::validate_pod(req.map(PodOrWorkload::into_pod), ctx),
                Some(at) => {
                    secret_use::validate_workload(req.map(PodOrWorkload::into_workload), at, ctx)
                }
            }
        }
    };
    let (response, summary) = result.ok()?;
    Some(Answer {
        http_status: 200,
        body: encode(&response),
        summary,
        error: None,
    })
}

/// The careful review: envelope first (precise 400s, pass-through of other kinds), then
/// the typed decode.
fn review_checked(webhook: Webhook, body: &[u8], ctx: &Context<'_>) -> Answer {
    let head = match Envelope::read(body) {
        Ok(head) => head,
        Err(e) => return invalid("", Summary::default(), e),
    };
    let template = crate::objects::template_pointer(&head.gvk());
    let handled = match webhook {
        Webhook::Validate => head.is_core_v1("Secret"),
        Webhook::Mutate => head.is_core_v1("Pod"),
        Webhook::ValidatePods => head.is_core_v1("Pod") || template.is_some(),
    };
    let result = match (webhook, handled, template) {
        (Webhook::Validate, true, _) => decode(body).and_then(|req| validate_secret(req, ctx)),
        (Webhook::Mutate, true, _) => decode(body).and_then(|req| mutate_pod(req, ctx)),
        (Webhook::ValidatePods, true, None) => {
            decode(body).and_then(|req| secret_use::validate_pod(req, ctx))
        }
        (Webhook::ValidatePods, true, Some(pointer)) => {
            decode(body).and_then(|req| secret_use::validate_workload(req, pointer, ctx))
        }
        (_, false, _) => Ok(pass_through(&head)),
    };
    match result {
        Ok((response, summary)) => Answer {
            http_status: 200,
            body: encode(&response),
            summary,
            error: None,
        },
        Err(e) => invalid(&head.uid, head.summary(), e),
    }
}

/// The benchmark ceiling (`serve --echo`): one pass over the body (the envelope read) and
/// the same response encoding as `review`, answering allowed with no policy evaluation.
pub fn echo(body: &[u8]) -> Answer {
    match Envelope::read(body) {
        Ok(head) => {
            let (response, summary) = pass_through(&head);
            Answer {
                http_status: 200,
                body: encode(&response),
                summary,
                error: None,
            }
        }
        Err(e) => invalid("", Summary::default(), e),
    }
}

fn validate_secret(
    req: Request<'_, LeanSecret>,
    ctx: &Context<'_>,
) -> Result<(AdmissionResponse, Summary), DecodeError> {
    let mut summary = summary_of(&req);
    let response = allowed(&req.uid);
    // A broken governing policy (invalid, no good version known) denies writes.
    let policy = ctx.policies.for_namespace(&summary.namespace);
    if let (Operation::Create | Operation::Update, Some(message)) =
        (&req.operation, policy.secret_denial())
    {
        summary.policy = Some(policy.name.clone());
        summary.verdict = Some(Verdict::Denied);
        let response = deny(response, message);
        note_owner_event(&req, &response, &mut summary);
        return Ok((response, summary));
    }
    let findings = match req.operation {
        Operation::Create => {
            let secret = req.object.as_ref().ok_or(DecodeError::NoObject("CREATE"))?;
            let policy = ctx.policies.for_namespace(&summary.namespace);
            summary.policy = Some(policy.name.clone());
            summary.mode = Some(policy.spec.mode);
            Some((
                policy,
                secrets::validate(secret, &policy.spec.secrets, ctx.now),
            ))
        }
        Operation::Update => {
            let secret = req.object.as_ref().ok_or(DecodeError::NoObject("UPDATE"))?;
            let policy = ctx.policies.for_namespace(&summary.namespace);
            summary.policy = Some(policy.name.clone());
            summary.mode = Some(policy.spec.mode);
            let rules = &policy.spec.secrets;
            let findings = match &req.old_object {
                Some(old) => secrets::validate_update(old, secret, rules, ctx.now),
                None => secrets::validate(secret, rules, ctx.now),
            };
            Some((policy, findings))
        }
        // Deleting is always allowed: a user must be able to get rid of a bad secret.
        Operation::Delete | Operation::Connect => None,
    };
    let response = match findings {
        Some((policy, findings)) => {
            let judged = Judged {
                subject: "secret",
                policy: &policy.name,
                mode: policy.spec.mode,
                exempt: exemption(policy, &req.user_info),
            };
            apply_findings(response, judged, findings, &mut summary)
        }
        None => response,
    };
    note_owner_event(&req, &response, &mut summary);
    Ok((response, summary))
}

/// When the Secret of `req` is denied for real (not a dry run) and names an owner, what
/// the Event on that owner says (`owner_events`): the denial message the writer got.
fn note_owner_event(
    req: &Request<'_, LeanSecret>,
    response: &AdmissionResponse,
    summary: &mut Summary,
) {
    if summary.verdict() != Verdict::Denied || req.dry_run {
        return;
    }
    let Some(secret) = &req.object else { return };
    summary.owner_event = crate::owner_events::Notice::for_denial(
        secret.meta(),
        &summary.namespace,
        &summary.name,
        &summary.operation,
        &response.result.message,
    );
}

/// What findings are about and under which policy and mode they are judged.
struct Judged<'a> {
    /// `secret`, `pod`, or a workload kind, as the denial names it.
    subject: &'a str,
    policy: &'a str,
    mode: Mode,
    /// Who the requester is exempt as ([`crate::policy::Exemptions`]), if they are.
    exempt: Option<String>,
}

/// Why the requester of a review is exempt from `policy`, if they are.
fn exemption(policy: &crate::policy::Resolved, user: &User<'_>) -> Option<String> {
    let exemptions = policy.spec.exemptions.as_ref()?;
    let username = user.username.as_ref().map_or("", |u| &u.0);
    // Owned group names for `exempt`, built only under a policy with exemptions.
    let groups: Vec<String> = (user.groups.iter().flatten())
        .map(|g| g.0.clone().into_owned())
        .collect();
    exemptions.exempt(username, &groups)
}

/// Applies the policy mode to the findings: Enforce denies on any `Deny` finding, Warn
/// turns every finding into a warning, Audit only records them. What is said is capped
/// (`bounded`): the first findings in full, then a count of the rest by rule.
fn apply_findings(
    mut response: AdmissionResponse,
    judged: Judged<'_>,
    findings: Vec<Violation>,
    summary: &mut Summary,
) -> AdmissionResponse {
    let mut mode = judged.mode;
    // An exempt requester is warned of what would deny anyone else.
    let exempted = judged
        .exempt
        .filter(|_| mode == Mode::Enforce && findings.iter().any(|v| v.severity == Severity::Deny));
    if exempted.is_some() {
        mode = Mode::Warn;
    }
    // A finding of a rule set with a weaker mode of its own counts under that one.
    let mode_of = |v: &Violation| v.mode.map_or(mode, |own| mode.weakest(own));
    let is_denied = |v: &&Violation| mode_of(v) == Mode::Enforce && v.severity == Severity::Deny;
    let is_warned = |v: &&Violation| match mode_of(v) {
        Mode::Audit => false,
        Mode::Warn => true,
        Mode::Enforce => v.severity == Severity::Warn,
    };
    let denied = findings.iter().filter(is_denied).count();
    let warned = findings.iter().filter(is_warned).count();
    summary.verdict = Some(if denied > 0 {
        Verdict::Denied
    } else if warned > 0 {
        Verdict::Warned
    } else {
        Verdict::Allowed
    });
    if denied > 0 {
        let shown = bounded::lines(ExactCount::new(findings.iter().filter(is_denied), denied));
        response = deny(
            response,
            format!(
                "{} violates policy {:?}: {}",
                judged.subject,
                judged.policy,
                shown.join("; ")
            ),
        );
    }
    if warned > 0 {
        let mut lines = bounded::lines(ExactCount::new(findings.iter().filter(is_warned), warned));
        if let Some(who) = &exempted {
            lines.insert(
                0,
                format!(
                    "{} would be denied by policy {:?}, which exempts {}: its findings are warnings",
                    judged.subject,
                    judged.policy,
                    clip(who, 300)
                ),
            );
        }
        response.warnings = Some(lines);
    }
    summary.exempted = exempted.map(|who| clip(&who, 300).into_owned());
    summary.finding_count = findings.len();
    summary.findings_more = (findings.len() > bounded::MAX_SHOWN).then(|| {
        bounded::more(
            findings[bounded::MAX_SHOWN..]
                .iter()
                .map(|v| v.message.as_str()),
        )
    });
    summary.findings = findings
        .into_iter()
        .take(bounded::MAX_SHOWN)
        .map(bounded::clip_finding)
        .collect();
    response
}

/// An iterator whose length was counted beforehand (a filter's is not known).
struct ExactCount<I> {
    inner: I,
    left: usize,
}

impl<I> ExactCount<I> {
    fn new(inner: I, len: usize) -> Self {
        Self { inner, left: len }
    }
}

impl<I: Iterator> Iterator for ExactCount<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactCount<I> {}

fn mutate_pod(
    req: Request<'_, Lean<Pod>>,
    ctx: &Context<'_>,
) -> Result<(AdmissionResponse, Summary), DecodeError> {
    let mut summary = summary_of(&req);
    let mut response = allowed(&req.uid);
    // Pods are mutated when created; an UPDATE cannot change the fields we inject.
    if req.operation != Operation::Create {
        return Ok((response, summary));
    }
    let pod = lean(&req.object).ok_or(DecodeError::NoObject("CREATE"))?;
    let policy = ctx.policies.for_namespace(&summary.namespace);
    summary.policy = Some(policy.name.clone());
    summary.mode = Some(policy.spec.mode);
    if let Some(warning) = policy.pod_warning() {
        response.warnings = Some(vec![warning]);
        summary.verdict = Some(Verdict::Warned);
        return Ok((response, summary));
    }
    let mutation = pods::mutate(
        pod,
        &pods::Context {
            policy,
            secrets: &ctx.policies.secrets,
            service_accounts: &ctx.policies.service_accounts,
            namespace: &summary.namespace,
        },
    );
    let pods::Mutation {
        patch,
        warnings,
        injections,
    } = mutation;
    if !warnings.is_empty() {
        response.warnings = Some(bounded::warnings(warnings));
        summary.verdict = Some(Verdict::Warned);
    }
    if !patch.0.is_empty() {
        response = with_patch(response, patch)?;
        summary.verdict = Some(Verdict::Patched);
    }
    summary.injections = injections;
    Ok((response, summary))
}

fn lean<K>(object: &Option<Lean<K>>) -> Option<&K> {
    object.as_ref().map(|o| &o.0)
}

fn summary_of<K: Resource<DynamicType = ()>>(req: &Request<'_, K>) -> Summary {
    let name = if !req.name.is_empty() {
        req.name.clone().into_owned()
    } else {
        // generateName creates and deletecollection DELETEs carry no request.name.
        let meta = req
            .object
            .as_ref()
            .or(req.old_object.as_ref())
            .map(|o| o.meta());
        match meta {
            Some(m) => m
                .name
                .clone()
                .or_else(|| m.generate_name.as_ref().map(|g| format!("{g}*")))
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    Summary {
        uid: req.uid.clone().into_owned(),
        kind: req.kind.kind.clone().into_owned(),
        namespace: req.namespace().to_owned(),
        name,
        operation: operation_str(&req.operation).to_owned(),
        dry_run: req.dry_run,
        ..Summary::default()
    }
}

fn operation_str(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests;
