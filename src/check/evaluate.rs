//! One object through the server's own review path: a bare Secret or Pod is wrapped into
//! the AdmissionReview CREATE request the API server would send, `admission::review`
//! answers it, and the answer body is read back. Verdicts, messages and patches are
//! therefore exactly the server's.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::admission::{self, Context, Summary, Webhook};

/// Why an object could not be turned into a review.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    #[error("{0} has neither metadata.name nor metadata.generateName")]
    NoName(&'static str),
    /// The key is not named: a tenant's manifest may hold anything there.
    #[error("a value in stringData is not a string (the API server would refuse it)")]
    StringData,
}

/// How the server answered one review, read back from the response body.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub allowed: bool,
    /// `response.status.code`, when the answer carries a status (denied or invalid).
    pub code: Option<i64>,
    /// `response.status.message`: the denial kubectl would print.
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// The JSON Patch of a mutation, decoded from its base64 wire form.
    pub patch: Option<json_patch::Patch>,
}

/// The webhook that handles a review, by `request.kind.kind`: Pods are mutated, every
/// other kind goes to the validating route (which allows kinds it does not handle).
pub fn route(review: &Value) -> Webhook {
    match review["request"]["kind"]["kind"].as_str() {
        Some("Pod") => Webhook::Mutate,
        _ => Webhook::Validate,
    }
}

/// Reviews one AdmissionReview body exactly as the server would.
pub fn review(webhook: Webhook, body: &[u8], ctx: &Context<'_>) -> Outcome {
    let answer = admission::review(webhook, body, ctx);
    let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let response = &parsed["response"];
    let status = &response["status"];
    let patch = response["patch"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    Outcome {
        summary: answer.summary,
        allowed: response["allowed"].as_bool().unwrap_or(false),
        code: status["code"].as_i64(),
        message: status["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
        warnings: response["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        patch,
    }
}

/// Wraps a bare v1 Secret or Pod (`kind` is "Secret" or "Pod") into the CREATE review the
/// API server would send. The namespace is the object's, else `namespace`. As the API
/// server does before admission, `stringData` is folded into `data` and the object gets
/// its namespace.
pub fn wrap(
    kind: &'static str,
    object: Value,
    namespace: &str,
) -> Result<(Webhook, Value), WrapError> {
    let (webhook, resource) = match kind {
        "Pod" => (Webhook::Mutate, "pods"),
        _ => (Webhook::Validate, "secrets"),
    };
    let review = wrap_as(("", kind, resource), object, namespace)?;
    Ok((webhook, review))
}

/// Wraps a workload (whose `apiVersion` and `kind` say what it is) into the CREATE review
/// the API server sends to `/validate-pods`; `None` for a kind without a pod template.
pub fn wrap_workload(object: Value, namespace: &str) -> Option<Result<Value, WrapError>> {
    let group = match object["apiVersion"].as_str()? {
        "apps/v1" => "apps",
        "batch/v1" => "batch",
        "v1" => "",
        _ => return None,
    };
    let kind = match object["kind"].as_str()? {
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        "DaemonSet" => "DaemonSet",
        "ReplicaSet" => "ReplicaSet",
        "Job" => "Job",
        "CronJob" => "CronJob",
        "ReplicationController" => "ReplicationController",
        _ => return None,
    };
    pod_template_path(&object)?;
    let resource = format!("{}s", kind.to_ascii_lowercase());
    Some(wrap_as((group, kind, &resource), object, namespace))
}

/// The CREATE review of `object` as `(group, kind, resource)` in version v1.
fn wrap_as(
    (group, kind, resource): (&str, &str, &str),
    mut object: Value,
    namespace: &str,
) -> Result<Value, WrapError> {
    let what = if kind == "Secret" {
        "Secret"
    } else if kind == "Pod" {
        "Pod"
    } else {
        "workload"
    };
    let meta = object
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
    let (name, namespace) = match meta.and_then(Value::as_object_mut) {
        Some(meta) => {
            let namespace = match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() => ns.to_owned(),
                _ => namespace.to_owned(),
            };
            meta.insert("namespace".to_owned(), Value::from(namespace.as_str()));
            let named = |key| {
                meta.get(key)
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
            };
            if named("name").is_none() && named("generateName").is_none() {
                return Err(WrapError::NoName(what));
            }
            (named("name"), namespace)
        }
        None => return Err(WrapError::NoName(what)),
    };
    if kind == "Secret" {
        fold_string_data(&mut object)?;
    }
    static SEQUENCE: AtomicU64 = AtomicU64::new(1);
    let uid = format!(
        "00000000-0000-4000-8000-{:012x}",
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let gvk = json!({"group": group, "version": "v1", "kind": kind});
    let gvr = json!({"group": group, "version": "v1", "resource": resource});
    let mut review = json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "secretgate-check"},
            "object": object,
            "oldObject": null,
            "dryRun": true,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        }
    });
    // Like the API server, no request.name for a generateName create.
    if let Some(name) = name {
        review["request"]["name"] = Value::from(name);
    }
    Ok(review)
}

/// One outcome for an object two webhooks reviewed: the mutation, then the secret-use
/// validation of the mutated object (what the API server does: validating webhooks see
/// the final object). Refused if the validation refuses; warnings and findings of both.
pub fn merge(mut mutation: Outcome, validation: Outcome) -> Outcome {
    use crate::admission::Verdict;
    if !validation.allowed {
        mutation.allowed = false;
        mutation.code = validation.code;
        mutation.message = validation.message;
    }
    mutation.warnings.extend(validation.warnings);
    let (m, v) = (&mut mutation.summary, validation.summary);
    m.verdict = Some(match (m.verdict(), v.verdict()) {
        (_, Verdict::Denied | Verdict::Invalid) => v.verdict(),
        (Verdict::Allowed, Verdict::Warned) => Verdict::Warned,
        (mine, _) => mine,
    });
    if !v.findings.is_empty() {
        // The findings are the validation's, judged under its mode.
        m.mode = v.mode;
    }
    m.findings.extend(v.findings);
    m.finding_count += v.finding_count;
    m.findings_more = m.findings_more.take().or(v.findings_more);
    mutation
}

/// Where a workload keeps the template of the Pods its controller creates.
pub fn pod_template_path(workload: &Value) -> Option<&'static str> {
    let api_version = workload["apiVersion"].as_str()?;
    let kind = workload["kind"].as_str()?;
    match (api_version, kind) {
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch/v1", "Job")
        | ("v1", "ReplicationController") => Some("/spec/template"),
        ("batch/v1", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The Pod a controller would create from the template at `path`, named after the
/// workload (so the report says which one) and in its namespace: a namespace in the
/// template is ignored, as the controller ignores it. `None` without a template.
pub fn templated_pod(workload: &Value, path: &str) -> Option<Value> {
    let template = workload.pointer(path)?.as_object()?;
    let mut metadata = match template.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for key in ["name", "generateName", "namespace"] {
        metadata.remove(key);
        match workload["metadata"][key].as_str() {
            Some(v) if !v.is_empty() => {
                metadata.insert(key.to_owned(), Value::from(v));
            }
            _ => {}
        }
    }
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}))
}

/// A patch for a template's Pod, rewritten to apply to the workload (every `path` and
/// `from` under the template at `template`).
pub fn patch_for_workload(patch: &json_patch::Patch, template: &str) -> Option<json_patch::Patch> {
    let mut ops = serde_json::to_value(patch).ok()?;
    for op in ops.as_array_mut()? {
        for key in ["path", "from"] {
            if let Some(Value::String(p)) = op.get_mut(key) {
                *p = format!("{template}{p}");
            }
        }
    }
    serde_json::from_value(ops).ok()
}

/// Moves `stringData` into `data` (base64), later keys winning, as the API server does.
fn fold_string_data(secret: &mut Value) -> Result<(), WrapError> {
    let Some(obj) = secret.as_object_mut() else {
        return Ok(());
    };
    let Some(Value::Object(strings)) = obj.remove("stringData") else {
        return Ok(());
    };
    let data = obj
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in strings {
            let Value::String(text) = value else {
                return Err(WrapError::StringData);
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            data.insert(key, Value::String(encoded));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_is_folded_into_data() {
        let mut secret = json!({"data": {"a": "eA=="}, "stringData": {"a": "y", "b": "z"}});
        fold_string_data(&mut secret).expect("fold");
        assert_eq!(secret, json!({"data": {"a": "eQ==", "b": "eg=="}}));
    }

    #[test]
    fn wrap_sets_the_namespace_and_names_the_request() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let (webhook, review) = wrap("Pod", pod, "team-a").expect("wrap");
        assert_eq!(webhook, Webhook::Mutate);
        assert_eq!(review["request"]["namespace"], "team-a");
        assert_eq!(
            review["request"]["object"]["metadata"]["namespace"],
            "team-a"
        );
        assert_eq!(review["request"]["operation"], "CREATE");
    }

    #[test]
    fn workloads_are_checked_through_their_pod_template() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "ghcr.io/x"}]}}}});
        let path = pod_template_path(&deployment).expect("a workload");
        let pod = templated_pod(&deployment, path).expect("a template");
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["metadata"]["name"], "web");
        assert_eq!(pod["metadata"]["namespace"], "team-a");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["spec"]["containers"][0]["image"], "ghcr.io/x");

        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"generateName": "n-"},
            "spec": {"jobTemplate": {"spec": {"template": {
                "metadata": {"namespace": "elsewhere"}, "spec": {"containers": []}}}}}});
        let path = pod_template_path(&cron).expect("a workload");
        assert_eq!(path, "/spec/jobTemplate/spec/template");
        let pod = templated_pod(&cron, path).expect("pod");
        assert_eq!(
            pod["metadata"],
            json!({"generateName": "n-"}),
            "no template namespace"
        );
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}
        ]))
        .expect("patch");
        let mut cron = cron;
        json_patch::patch(&mut cron, &patch_for_workload(&patch, path).expect("patch"))
            .expect("applies to the workload");
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
            "regcred"
        );

        // Odd shapes are skipped, never a panic.
        for odd in [
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "x"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": 3,
                   "spec": {"template": {"metadata": [], "spec": 1}}}),
        ] {
            if let Some(pod) = templated_pod(&odd, "/spec/template") {
                assert_eq!(pod["kind"], "Pod");
            }
        }
        assert_eq!(
            pod_template_path(&json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            None
        );
    }

    #[test]
    fn a_nameless_object_is_refused_and_generate_name_is_not() {
        let secret = json!({"kind": "Secret", "metadata": {"labels": {}}});
        assert!(matches!(
            wrap("Secret", secret, "default"),
            Err(WrapError::NoName("Secret"))
        ));
        let generated = json!({"kind": "Secret", "metadata": {"generateName": "x-"}});
        let (_, review) = wrap("Secret", generated, "default").expect("generateName");
        assert!(review["request"].get("name").is_none());
    }
}
