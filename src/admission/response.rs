//! Writing the answer: the AdmissionReview response on the wire (a base64 JSON Patch, as
//! the Kubernetes API documents it), denials with the status kubectl prints, 400s for
//! malformed reviews, and the pass-through for kinds a route does not handle.

use base64::Engine as _;
use kube::core::Status;
use kube::core::admission::AdmissionResponse;
use serde::Serialize;

use super::decode::Envelope;
use super::{API_VERSION, Answer, DecodeError, KIND, Summary, Verdict};

/// A review the route does not handle (another kind): allowed unchanged.
pub(super) fn pass_through(head: &Envelope) -> (AdmissionResponse, Summary) {
    (allowed(&head.uid), head.summary())
}

/// The answer "allowed" to the review `uid`, as kube's `AdmissionResponse::from` a
/// request builds it; denials, warnings and patches are set on it.
pub(super) fn allowed(uid: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_owned();
    response.allowed = true;
    response.result = Status::default();
    response
}

/// Sets the 403 Forbidden status kubectl prints as `denied the request: <message>`.
pub(super) fn deny(response: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".to_owned();
    response
}

pub(super) fn with_patch(
    response: AdmissionResponse,
    patch: json_patch::Patch,
) -> Result<AdmissionResponse, DecodeError> {
    // Serialising a Patch of JSON values cannot fail; map it anyway rather than panic.
    response
        .with_patch(patch)
        .map_err(|e| DecodeError::Json(format!("cannot encode the patch: {e}")))
}

pub(super) fn invalid(uid: &str, summary: Summary, error: DecodeError) -> Answer {
    let mut response = AdmissionResponse::invalid(error.to_string());
    response.uid = uid.to_owned();
    response.result.code = 400;
    response.result.reason = "BadRequest".to_owned();
    Answer {
        http_status: 400,
        body: encode(&response),
        summary: Summary {
            verdict: Some(Verdict::Invalid),
            ..summary
        },
        error: Some(error),
    }
}

/// The response body. kube-core serialises `patch` as an array of numbers; the
/// Kubernetes API documents (and every other tool expects) a base64 string, so the wire
/// form is written here from the response's public fields.
pub(super) fn encode(response: &AdmissionResponse) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct WireReview<'a> {
        api_version: &'static str,
        kind: &'static str,
        response: WireResponse<'a>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct WireResponse<'a> {
        uid: &'a str,
        allowed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a Status>,
        #[serde(skip_serializing_if = "Option::is_none")]
        patch_type: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        patch: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        warnings: Option<&'a Vec<String>>,
        #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
        audit_annotations: &'a std::collections::HashMap<String, String>,
    }
    let patch = response
        .patch
        .as_ref()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let wire = WireReview {
        api_version: API_VERSION,
        kind: KIND,
        response: WireResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: (!response.allowed).then_some(&response.result),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: response.warnings.as_ref(),
            audit_annotations: &response.audit_annotations,
        },
    };
    // Serialising strings, bools and numbers into a Vec cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}
