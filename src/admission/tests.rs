use base64::Engine as _;
use kube::core::Status;

use super::*;

fn response_for(uid: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_owned();
    response.allowed = true;
    response.result = Status::default();
    response
}

#[test]
fn a_patch_is_sent_as_base64_json_patch() {
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}
    ]))
    .expect("patch");
    let response = with_patch(response_for("u-1"), patch).expect("patch");
    let wire: serde_json::Value = serde_json::from_slice(&encode(&response)).expect("JSON");
    assert_eq!(wire["response"]["patchType"], "JSONPatch");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(wire["response"]["patch"].as_str().expect("a base64 string"))
        .expect("base64");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&decoded).expect("JSON"),
        serde_json::json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}])
    );
    assert!(
        wire["response"].get("status").is_none(),
        "no status when allowed"
    );
}

#[test]
fn an_allowed_answer_has_only_uid_and_allowed() {
    let wire: serde_json::Value =
        serde_json::from_slice(&encode(&response_for("u-2"))).expect("JSON");
    assert_eq!(
        wire,
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u-2", "allowed": true}})
    );
}

#[test]
fn json_errors_never_quote_the_input() {
    // A wrong type inside the object makes serde quote the value; we must not.
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Secret"},"resource":{"group":"","version":"v1","resource":"secrets"},"operation":"CREATE","userInfo":{},"object":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"k":"PLANTED-not-base64!!"}}}}"#;
    let ctx = Context {
        policies: &Snapshot::with_default(),
        now: OffsetDateTime::now_utc(),
    };
    let answer = review(Webhook::Validate, body, &ctx);
    assert_eq!(answer.http_status, 400);
    let text = String::from_utf8(answer.body).expect("utf-8");
    assert!(!text.contains("PLANTED"), "{text}");
    assert!(
        text.contains("a field has the wrong type or value"),
        "{text}"
    );
    assert_eq!(uid_in(&text), "u", "the uid is echoed when it was readable");
}

/// The single pass is only a shortcut: for every recorded review, under a policy
/// that denies, warns and patches, and for bodies it must leave to the careful path,
/// the answer, the log/metrics summary and the error are the same as the careful path's.
#[test]
fn the_single_pass_answers_as_the_careful_path() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let policies =
        crate::policy::file::load(&root.join("bench/policy.yaml")).expect("bench policy");
    let ctx = Context {
        policies: &policies,
        now: OffsetDateTime::now_utc(),
    };
    let fixtures = root.join("../shared/fixtures/admission");
    let mut fast = 0;
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("response-") || !name.ends_with(".json") {
            continue;
        }
        let body = std::fs::read(&path).expect("fixture");
        let text = String::from_utf8_lossy(&body);
        // (body, whether the single pass may answer it)
        let variants = [
            (body.clone(), true),
            (
                text.replacen("\"CREATE\"", "\"CONNECT\"", 1).into_bytes(),
                true,
            ),
            // Without an object a pod UPDATE is still answered (nothing to mutate).
            (
                text.replacen("\"object\"", "\"objet\"", 1).into_bytes(),
                true,
            ),
            (
                text.replacen("admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1)
                    .into_bytes(),
                false,
            ),
            (
                text.replacen("\"AdmissionReview\"", "\"AdmissionRevue\"", 1)
                    .into_bytes(),
                false,
            ),
            (text.replacen("\"uid\"", "\"uuid\"", 1).into_bytes(), false),
            // request.kind's group comes first: another API group is not ours.
            (
                text.replacen("\"group\": \"\"", "\"group\": \"apps\"", 1)
                    .into_bytes(),
                false,
            ),
            (body[..body.len() / 2].to_vec(), false),
        ];
        for (i, (body, may_be_quick)) in variants.iter().enumerate() {
            for webhook in [Webhook::Validate, Webhook::Mutate] {
                let quick = review_well_formed(webhook, body, &ctx);
                if !may_be_quick {
                    assert!(quick.is_none(), "{name} variant {i} took the single pass");
                }
                let Some(quick) = quick else { continue };
                fast += 1;
                let careful = review_checked(webhook, body, &ctx);
                assert_eq!(quick.http_status, careful.http_status, "{name}");
                assert_eq!(
                    String::from_utf8_lossy(&quick.body),
                    String::from_utf8_lossy(&careful.body),
                    "{name} {webhook:?}"
                );
                assert_eq!(
                    format!("{:?}", quick.summary),
                    format!("{:?}", careful.summary),
                    "{name} {webhook:?}"
                );
                assert!(quick.error.is_none() && careful.error.is_none(), "{name}");
            }
        }
    }
    assert!(
        fast >= 50,
        "only {fast} recorded reviews took the single pass"
    );
}

fn uid_in(text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
    v["response"]["uid"].as_str().unwrap_or_default().to_owned()
}
