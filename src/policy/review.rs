//! The validating webhook for ProjectPolicies (`POST /validate-policy`): a policy the
//! service would refuse is refused when it is applied, with every problem and its field
//! path, instead of being stored and reported later in its status.
//!
//! The CRD's schema refuses what CEL can express (see [`schema`](super::schema)); this
//! runs the service's whole validation, the same function the watchers and the policy file
//! use, so what is admitted is what the service enforces. The answer is an `Invalid` (422)
//! status whose message lists the problems and whose `details.causes` carry each one with
//! its field, as the API server's own validation does. Policy values quoted in problems are
//! policy text, never secret data, and are clipped; the problem list is bounded.
//!
//! An UPDATE that leaves an (already stored) invalid spec unchanged, e.g. a label edit, is
//! admitted with the problems as warnings, so an object stored before this webhook existed
//! can still be labelled, annotated or finalized. DELETE is never sent here.

use kube::api::DynamicObject;
use kube::core::Status;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::{StatusCause, StatusDetails};

use super::resolve::{MAX_PROBLEMS, summarize};

const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";
const GROUP: &str = "secretgate.io";
const POLICY_KIND: &str = "ProjectPolicy";

/// The HTTP answer to one policy review.
#[derive(Debug)]
pub struct Answer {
    /// 200 for every decoded review (allowed or denied), 400 for a malformed one.
    pub http_status: u16,
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

/// What the log line and the metrics say about a policy review: names and counts only.
#[derive(Debug, Default)]
pub struct Outcome {
    pub uid: String,
    pub name: String,
    /// `CREATE`, `UPDATE`, … or `unknown`.
    pub operation: &'static str,
    /// `allowed`, `warned`, `denied` or `invalid`.
    pub verdict: &'static str,
    /// How many problems the policy has.
    pub problems: usize,
    /// Why a body could not be reviewed.
    pub error: Option<String>,
}

/// Reviews one AdmissionReview body of a ProjectPolicy.
pub fn review(body: &[u8]) -> Answer {
    let request = match decode(body) {
        Ok(request) => request,
        Err(message) => return malformed(message),
    };
    let mut outcome = Outcome {
        uid: request.uid.clone(),
        name: request.name.clone(),
        operation: operation(&request.operation),
        verdict: "allowed",
        ..Outcome::default()
    };
    let response = AdmissionResponse::from(&request);
    let ours = request.kind.group == GROUP && request.kind.kind == POLICY_KIND;
    let checked = matches!(request.operation, Operation::Create | Operation::Update);
    if !ours || !checked {
        return answer(response, outcome);
    }
    let Some(object) = &request.object else {
        return malformed("request.object is required for CREATE and UPDATE".to_owned());
    };
    let name = object
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| request.name.clone());
    outcome.name.clone_from(&name);
    let spec = object.data.get("spec");
    let problems = match super::cluster::check(&name, spec) {
        Ok(_) => return answer(response, outcome),
        Err(problems) => problems,
    };
    outcome.problems = problems.len();
    let unchanged = request.operation == Operation::Update
        && request
            .old_object
            .as_ref()
            .is_some_and(|old| old.data.get("spec") == spec);
    if unchanged {
        outcome.verdict = "warned";
        let mut response = response;
        response.warnings = Some(warnings(&name, &problems));
        return answer(response, outcome);
    }
    outcome.verdict = "denied";
    answer(deny(response, &name, &problems), outcome)
}

/// The typed request of a v1 AdmissionReview, or why the body is not one. Messages name
/// a position or a field, never a value.
fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let at = format!("line {}, column {}", e.line(), e.column());
        let what = match e.classify() {
            Category::Syntax => "not valid JSON",
            Category::Eof => "JSON ends early",
            Category::Io => "cannot read the body",
            Category::Data => "a field has the wrong type or value",
        };
        format!("request body is not a valid AdmissionReview: {what} ({at})")
    })?;
    if review.types.api_version != API_VERSION {
        return Err(format!(
            "apiVersion {:?} is not supported: secretgate speaks {API_VERSION} \
             (set admissionReviewVersions: [\"v1\"])",
            crate::admission::clip(&review.types.api_version, 64)
        ));
    }
    if review.types.kind != KIND {
        return Err(format!(
            "kind {:?} is not AdmissionReview",
            crate::admission::clip(&review.types.kind, 64)
        ));
    }
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "AdmissionReview has no request".to_owned())?;
    if request.uid.is_empty() {
        return Err("request.uid is missing or empty".to_owned());
    }
    Ok(request)
}

/// The 422 `Invalid` answer: the problems in the message (bounded) and one cause each.
fn deny(mut response: AdmissionResponse, name: &str, problems: &[String]) -> AdmissionResponse {
    let causes = problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| {
            let (field, message) = split(p);
            StatusCause {
                reason: "FieldValueInvalid".to_owned(),
                message: crate::admission::clip(message, 512).into_owned(),
                field: field.to_owned(),
            }
        })
        .collect();
    let message = format!(
        "ProjectPolicy {:?} is invalid: {}",
        crate::admission::clip(name, 253),
        summarize(problems)
    );
    response.allowed = false;
    response.result = Status::failure(&message, "Invalid")
        .with_code(422)
        .with_details(StatusDetails {
            name: name.to_owned(),
            group: GROUP.to_owned(),
            kind: POLICY_KIND.to_owned(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        });
    response
}

/// Warnings for an unchanged invalid spec: one line each (kubectl prints each), bounded.
fn warnings(name: &str, problems: &[String]) -> Vec<String> {
    let mut out = vec![format!(
        "ProjectPolicy {:?} is invalid (its spec is unchanged by this update, so the update \
         is admitted; see its status for the version in force)",
        crate::admission::clip(name, 253)
    )];
    out.extend(
        problems
            .iter()
            .take(MAX_PROBLEMS)
            .map(|p| crate::admission::clip(p, 512).into_owned()),
    );
    if problems.len() > MAX_PROBLEMS {
        out.push(format!(
            "and {} more problems",
            problems.len() - MAX_PROBLEMS
        ));
    }
    out
}

/// `spec.x.y: message` → (`spec.x.y`, `message`); a problem without a field path is
/// about the whole spec.
fn split(problem: &str) -> (&str, &str) {
    match problem.split_once(": ") {
        Some((field, message)) if field.starts_with("spec.") && !field.contains(' ') => {
            (field, message)
        }
        _ => ("spec", problem),
    }
}

/// The metrics and the log line of one policy review (webhook label `policy`): names,
/// counts and the verdict, never the problems themselves (they are in the answer).
pub fn record(outcome: &Outcome, metrics: &crate::metrics::Metrics, elapsed: std::time::Duration) {
    use crate::telemetry::Escaped;
    metrics
        .reviews
        .with_label_values(&["policy", outcome.operation, outcome.verdict])
        .inc();
    metrics
        .review_duration
        .with_label_values(&["policy"])
        .observe(elapsed.as_secs_f64());
    if outcome.error.is_some() {
        metrics
            .invalid_requests
            .with_label_values(&["policy", "malformed"])
            .inc();
    }
    tracing::info!(
        webhook = "policy",
        uid = %Escaped::new(&outcome.uid, 128),
        kind = POLICY_KIND,
        name = %Escaped::new(&outcome.name, 256),
        operation = outcome.operation,
        verdict = outcome.verdict,
        problems = outcome.problems,
        error = outcome.error.as_deref().map(|e| Escaped::new(e, 512)).map(tracing::field::display),
        duration_us = elapsed.as_micros() as u64,
        "review"
    );
}

fn answer(response: AdmissionResponse, outcome: Outcome) -> Answer {
    Answer {
        http_status: 200,
        body: encode(response),
        outcome,
    }
}

fn malformed(message: String) -> Answer {
    let mut response = AdmissionResponse::invalid(&message);
    response.result.code = 400;
    response.result.reason = "BadRequest".to_owned();
    Answer {
        http_status: 400,
        body: encode(response),
        outcome: Outcome {
            operation: "unknown",
            verdict: "invalid",
            error: Some(message),
            ..Outcome::default()
        },
    }
}

fn encode(response: AdmissionResponse) -> Vec<u8> {
    let mut review = response.into_review();
    // `AdmissionResponse::invalid` has no request to copy these from.
    review.types.api_version = API_VERSION.to_owned();
    review.types.kind = KIND.to_owned();
    // A response of strings, bools and numbers always serialises.
    serde_json::to_vec(&review).unwrap_or_default()
}

fn operation(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests;
