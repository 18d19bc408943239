//! The policy webhook without a socket: verdicts, the shape of a denial, ratcheting of an
//! unchanged spec, pass-through and malformed bodies.

use serde_json::{Value, json};

use super::*;

fn policy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
           "metadata": {"name": name, "uid": "u-1", "generation": 1}, "spec": spec})
}

fn request(operation: &str, object: Value, old: Option<Value>) -> Vec<u8> {
    let mut request = json!({
        "uid": "review-1",
        "kind": {"group": "secretgate.io", "version": "v1alpha1", "kind": "ProjectPolicy"},
        "resource": {"group": "secretgate.io", "version": "v1alpha1", "resource": "projectpolicies"},
        "name": object["metadata"]["name"],
        "operation": operation,
        "userInfo": {"username": "admin"},
        "object": object,
    });
    if let Some(old) = old {
        request["oldObject"] = old;
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
        .to_string()
        .into_bytes()
}

fn response(answer: &Answer) -> Value {
    let body: Value = serde_json::from_slice(&answer.body).expect("JSON answer");
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    body["response"].clone()
}

const INVALID: &str = r#"{"namespaces": ["Team_A"], "secrets": {"ssh": {"minRsaBits": 1},
    "name": {"prefix": "team-a-", "pattern": "team-b-.*"}}}"#;

#[test]
fn an_invalid_policy_is_denied_with_every_problem() {
    let spec: Value = serde_json::from_str(INVALID).expect("spec");
    let answer = review(&request("CREATE", policy("team-a", spec), None));
    assert_eq!(answer.http_status, 200);
    let r = response(&answer);
    assert_eq!(r["uid"], "review-1");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 422);
    assert_eq!(r["status"]["reason"], "Invalid");
    assert_eq!(r["status"]["status"], "Failure");
    let want = [
        ("spec.namespaces[0]", "\"Team_A\" is not a namespace name"),
        (
            "spec.secrets.name.pattern",
            "\"team-b-.*\" cannot match a name that starts with the prefix \"team-a-\"",
        ),
        ("spec.secrets.ssh.minRsaBits", "1 is outside 1024..16384"),
    ];
    let message = r["status"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("ProjectPolicy \"team-a\" is invalid: "),
        "{message}"
    );
    for (field, problem) in want {
        assert!(
            message.contains(&format!("{field}: {problem}")),
            "{message}"
        );
    }
    let causes = r["status"]["details"]["causes"].as_array().expect("causes");
    let mut got: Vec<(&str, &str)> = causes
        .iter()
        .map(|c| {
            assert_eq!(c["reason"], "FieldValueInvalid");
            (
                c["field"].as_str().expect("field"),
                c["message"].as_str().expect("message"),
            )
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(r["status"]["details"]["kind"], "ProjectPolicy");
    assert_eq!(r["status"]["details"]["group"], "secretgate.io");
    assert_eq!(r["status"]["details"]["name"], "team-a");
    assert_eq!(answer.outcome.verdict, "denied");
    assert_eq!(answer.outcome.problems, 3);
}

#[test]
fn a_spec_that_does_not_parse_is_denied_naming_the_spec() {
    let answer = review(&request(
        "CREATE",
        policy("p", json!({"mode": "Sometimes"})),
        None,
    ));
    let r = response(&answer);
    assert_eq!(r["allowed"], false);
    let cause = &r["status"]["details"]["causes"][0];
    assert_eq!(cause["field"], "spec");
    assert!(
        cause["message"]
            .as_str()
            .expect("message")
            .starts_with("spec does not parse: unknown variant `Sometimes`"),
        "{cause}"
    );
}

#[test]
fn a_valid_policy_is_allowed() {
    let spec = json!({"namespaceSelector": {"matchLabels": {"project": "a"}}, "mode": "Warn",
                      "imagePullSecrets": [{"secretName": "pull", "registries": ["ghcr.io"]}]});
    for op in ["CREATE", "UPDATE"] {
        let answer = review(&request(op, policy("team-a", spec.clone()), None));
        let r = response(&answer);
        assert_eq!(r["allowed"], true, "{op}: {r}");
        assert!(r.get("warnings").is_none());
        assert_eq!(answer.outcome.verdict, "allowed");
    }
}

#[test]
fn secret_use_problems_are_denied_with_their_fields() {
    let spec = json!({
        "imagePullSecrets": [{"secretName": "pull"}],
        "secretUse": {"default": "Deny", "rules": [
            {"name": "ci", "secrets": {"names": ["deploy-key"]}, "serviceAccounts": ["ci-runner"]},
            {"name": "ci", "secrets": {}, "serviceAccounts": []},
        ]},
    });
    let answer = review(&request("CREATE", policy("team-a", spec), None));
    let r = response(&answer);
    assert_eq!(r["allowed"], false);
    let causes = r["status"]["details"]["causes"].as_array().expect("causes");
    let mut fields: Vec<&str> = causes
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "spec.imagePullSecrets[0].secretName",
            "spec.secretUse.rules[1].name",
            "spec.secretUse.rules[1].secrets",
            "spec.secretUse.rules[1].serviceAccounts",
        ]
    );
    assert_eq!(answer.outcome.problems, 4);
}

#[test]
fn an_update_that_keeps_an_invalid_spec_is_admitted_with_warnings() {
    let spec: Value = serde_json::from_str(INVALID).expect("spec");
    let old = policy("team-a", spec.clone());
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"owner": "platform"});
    let answer = review(&request("UPDATE", new, Some(old.clone())));
    let r = response(&answer);
    assert_eq!(r["allowed"], true);
    let warnings = r["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert_eq!(answer.outcome.verdict, "warned");

    // Changing the spec is checked: still invalid, so denied.
    let mut changed = old.clone();
    changed["spec"]["mode"] = json!("Warn");
    let r = response(&review(&request("UPDATE", changed, Some(old))));
    assert_eq!(r["allowed"], false);
}

#[test]
fn problems_are_bounded_and_values_clipped() {
    let long = "X".repeat(10_000);
    let namespaces: Vec<String> = (0..200).map(|i| format!("{long}{i}")).collect();
    let answer = review(&request(
        "CREATE",
        policy("p", json!({"namespaces": namespaces})),
        None,
    ));
    let r = response(&answer);
    let message = r["status"]["message"].as_str().expect("message");
    assert!(message.len() < 8 * 1024, "{} bytes", message.len());
    assert!(message.ends_with("and 180 more problems"), "{message}");
    let causes = r["status"]["details"]["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), MAX_PROBLEMS);
    assert!(answer.body.len() < 32 * 1024, "{} bytes", answer.body.len());
    assert_eq!(answer.outcome.problems, 200);
}

#[test]
fn other_kinds_and_operations_pass_through() {
    let mut other = request("CREATE", policy("p", json!({"mode": "Sometimes"})), None);
    let mut value: Value = serde_json::from_slice(&other).expect("json");
    value["request"]["kind"]["kind"] = json!("Other");
    other = value.to_string().into_bytes();
    assert_eq!(response(&review(&other))["allowed"], true);

    let delete = request("DELETE", policy("p", json!({"mode": "Sometimes"})), None);
    assert_eq!(response(&review(&delete))["allowed"], true);
}

#[test]
fn malformed_reviews_get_400_without_quoting_values() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#
                .to_vec(),
            "",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no request",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"PLANTED","kind":7}}"#
                .to_vec(),
            "wrong type or value",
        ),
    ];
    for (body, want) in cases {
        let answer = review(&body);
        assert_eq!(
            answer.http_status,
            400,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let r = response(&answer);
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 400);
        let message = r["status"]["message"].as_str().expect("message");
        assert!(message.contains(want), "{message}");
        assert!(!message.contains("PLANTED"), "{message}");
        assert_eq!(answer.outcome.verdict, "invalid");
    }
}
