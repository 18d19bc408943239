//! Both sides of the comparison: the published objects evaluated offline with a Rust CEL
//! interpreter (as the API server would: binding selector, match conditions, variables
//! in order, then every validation), and the whole webhook review
//! (`admission::review`) of the same request.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use crate::admission::{self, Verdict, Webhook};
use crate::admission_policy::Plan;
use crate::policy::resolve::NAME_LABEL;
use crate::policy::{Labels, Policy, SecretIndex, Snapshot};

/// One Secret write, as both sides see it.
#[derive(Clone, Debug)]
pub struct Request {
    pub operation: &'static str,
    pub namespace: String,
    /// The namespace's labels (the name label is added).
    pub namespace_labels: Labels,
    pub object: Value,
    pub old_object: Option<Value>,
    pub username: String,
    pub groups: Vec<String>,
}

/// A Secret with no data (so the webhook's content checks find nothing, and only the
/// rules CEL can express decide).
pub fn secret(
    name: Option<&str>,
    generate_name: Option<&str>,
    ty: Option<&str>,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Value {
    let map = |pairs: &[(&str, &str)]| -> Value {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut metadata = json!({"namespace": "ns"});
    if let Some(name) = name {
        metadata["name"] = name.into();
    }
    if let Some(prefix) = generate_name {
        metadata["generateName"] = prefix.into();
    }
    if !labels.is_empty() {
        metadata["labels"] = map(labels);
    }
    if !annotations.is_empty() {
        metadata["annotations"] = map(annotations);
    }
    let mut object = json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata});
    if let Some(ty) = ty {
        object["type"] = ty.into();
    }
    object
}

impl Request {
    pub fn create(object: Value) -> Self {
        Self {
            operation: "CREATE",
            namespace: "ns".to_owned(),
            namespace_labels: Labels::new(),
            object,
            old_object: None,
            username: "alice".to_owned(),
            groups: vec!["system:authenticated".to_owned()],
        }
    }

    pub fn update(old: Value, object: Value) -> Self {
        Self {
            operation: "UPDATE",
            old_object: Some(old),
            ..Self::create(object)
        }
    }

    fn labels(&self) -> Labels {
        let mut labels = self.namespace_labels.clone();
        labels.insert(NAME_LABEL.to_owned(), self.namespace.clone());
        labels
    }
}

/// A policy from its name and spec as JSON (must be valid).
pub fn policy(name: &str, spec: Value) -> Policy {
    let spec = serde_json::from_value(spec).expect("spec parses");
    Policy::new(name, spec).expect("valid policy")
}

/// The webhook's snapshot of `policies`, knowing the request's namespace.
pub fn snapshot(policies: Vec<Policy>, request: &Request) -> Snapshot {
    let namespaces = BTreeMap::from([(request.namespace.clone(), request.labels())]);
    Snapshot::build(policies, &namespaces, SecretIndex::default())
}

/// What the webhook decided, and how many findings it had (in every mode).
pub fn webhook(snapshot: &Snapshot, request: &Request) -> (Verdict, usize) {
    let mut user = json!({});
    if !request.username.is_empty() {
        user["username"] = request.username.as_str().into();
    }
    if !request.groups.is_empty() {
        user["groups"] = request.groups.clone().into();
    }
    let mut body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "resource": {"group": "", "version": "v1", "resource": "secrets"},
            "namespace": request.namespace, "operation": request.operation,
            "userInfo": user, "object": request.object}});
    if let Some(old) = &request.old_object {
        body["request"]["oldObject"] = old.clone();
    }
    let ctx = admission::Context {
        policies: snapshot,
        now: time::OffsetDateTime::now_utc(),
    };
    let answer = admission::review(Webhook::Validate, body.to_string().as_bytes(), &ctx);
    assert_eq!(answer.http_status, 200, "{:?}", answer.error);
    (answer.summary.verdict(), answer.summary.finding_count)
}

/// What the published objects decided: the messages of failed validations, by the
/// binding's actions.
#[derive(Debug, Default, PartialEq)]
pub struct Evaluated {
    pub denied: Vec<String>,
    /// Warn and Audit failures.
    pub reported: Vec<String>,
}

pub fn interpreter() -> Arc<cel::Env> {
    let mut env = cel::Env::stdlib();
    // Kubernetes' CEL has cel-go's strings extension (`trim`).
    env.add_extension(cel::extensions::strings)
        .expect("strings extension");
    Arc::new(env)
}

/// Evaluates `expression`; any error fails the test (a published expression must never
/// err: under failurePolicy Fail that would deny).
pub fn eval(env: &Arc<cel::Env>, expression: &str, vars: &[(&str, &Value)]) -> cel::Value {
    let program = env
        .compile(expression)
        .unwrap_or_else(|e| panic!("{expression}: {e:?}"));
    let mut context = cel::Context::with_env(env.clone());
    for (name, value) in vars {
        context.add_variable_from_value(*name, cel::to_value(value).expect("to CEL"));
    }
    program
        .execute(&context)
        .unwrap_or_else(|e| panic!("{expression}: {e:?}"))
}

fn truth(value: cel::Value, expression: &str) -> bool {
    match value {
        cel::Value::Bool(b) => b,
        other => panic!("{expression} is not a bool: {other:?}"),
    }
}

/// Evaluates every published pair for `request`.
pub fn published(env: &Arc<cel::Env>, plan: &Plan, request: &Request) -> Evaluated {
    let mut user = json!({});
    if !request.username.is_empty() {
        user["username"] = request.username.as_str().into();
    }
    if !request.groups.is_empty() {
        user["groups"] = request.groups.clone().into();
    }
    let req = json!({"operation": request.operation, "namespace": request.namespace,
                     "userInfo": user});
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": request.namespace, "labels": request.labels()}});
    let old = request.old_object.clone().unwrap_or(Value::Null);
    let mut out = Evaluated::default();
    for pair in &plan.published {
        let binding = pair.binding.spec.as_ref().expect("binding spec");
        let selector = binding
            .match_resources
            .as_ref()
            .and_then(|m| m.namespace_selector.clone())
            .unwrap_or_default();
        if !selects(&selector, &request.labels()) {
            continue;
        }
        let spec = pair.policy_object.spec.as_ref().expect("policy spec");
        let rule = &spec
            .match_constraints
            .as_ref()
            .expect("constraints")
            .resource_rules;
        let ops = rule.as_ref().expect("rules")[0]
            .operations
            .clone()
            .unwrap_or_default();
        if !ops.iter().any(|op| op == request.operation) {
            continue;
        }
        let base = [
            ("object", &request.object),
            ("oldObject", &old),
            ("request", &req),
        ];
        let skipped = spec
            .match_conditions
            .iter()
            .flatten()
            .any(|c| !truth(eval(env, &c.expression, &base), &c.expression));
        if skipped {
            continue;
        }
        let mut variables = serde_json::Map::new();
        let mut values = Value::Object(variables.clone());
        for v in spec.variables.iter().flatten() {
            let mut vars = base.to_vec();
            vars.push(("namespaceObject", &namespace));
            vars.push(("variables", &values));
            let value = eval(env, &v.expression, &vars);
            variables.insert(v.name.clone(), cel_to_json(value));
            values = Value::Object(variables.clone());
        }
        let actions = binding.validation_actions.clone().unwrap_or_default();
        for validation in spec.validations.iter().flatten() {
            let mut vars = base.to_vec();
            vars.push(("namespaceObject", &namespace));
            vars.push(("variables", &values));
            let passed = truth(
                eval(env, &validation.expression, &vars),
                &validation.expression,
            );
            if !passed {
                let message = validation.message.clone().unwrap_or_default();
                if actions.iter().any(|a| a == "Deny") {
                    out.denied.push(message);
                } else {
                    out.reported.push(message);
                }
            }
        }
    }
    out
}

/// The variables' values are strings and bools.
fn cel_to_json(value: cel::Value) -> Value {
    match value {
        cel::Value::Bool(b) => b.into(),
        cel::Value::String(s) => s.to_string().into(),
        other => panic!("unexpected variable value {other:?}"),
    }
}

/// A LabelSelector over `labels`, as the API server matches a binding's.
fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_hold
        && selector.match_expressions.iter().flatten().all(|r| {
            let values = r.values.clone().unwrap_or_default();
            let value = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => !value.is_some_and(|v| values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("operator {other}"),
            }
        })
}
