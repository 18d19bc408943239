//! Generated policies, namespaces, requesters and Secret writes: for each, the published
//! CEL and the webhook's review agree (`super::agree`).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::agree;
use super::harness::{Request, secret};
use crate::admission_policy::Scope;
use crate::policy::Policy;

const TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
    "kubernetes.io/tls",
    "example.com/a",
    "example.com/b",
];

fn subset(items: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(items, 0..=items.len())
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn spec() -> impl Strategy<Value = Value> {
    (
        (
            proptest::option::of(prop_oneof![Just("team-"), Just("a"), Just("te")]),
            proptest::option::of(prop_oneof![
                Just("[a-z0-9-]+-(db|api)"),
                Just("te.*"),
                Just("[a-z]+(-[0-9]{1,2})?"),
            ]),
            proptest::option::of(prop_oneof![Just(3u32), Just(8), Just(12)]),
            any::<bool>(),
        ),
        subset(TYPES),
        any::<bool>(),
        subset(&["app", "tier"]),
        subset(&["secretgate.io/display-name"]),
        prop_oneof![Just("Enforce"), Just("Warn"), Just("Audit")],
        any::<bool>(),
        prop_oneof![
            Just(json!({"namespaces": ["ns"]})),
            Just(json!({"namespaceSelector": {"matchLabels": {"team": "a"}}})),
            Just(json!({"namespaces": ["other"],
                        "namespaceSelector": {"matchExpressions": [
                            {"key": "team", "operator": "NotIn", "values": ["b"]}]}})),
        ],
    )
        .prop_map(
            |(
                (prefix, pattern, max, dots),
                types,
                custom,
                labels,
                annotations,
                mode,
                exempt,
                selection,
            )| {
                let mut spec = selection;
                spec["mode"] = mode.into();
                spec["secrets"] = json!({
                    "name": {"prefix": prefix, "pattern": pattern, "maxLength": max,
                             "forbidDots": dots},
                    "allowedTypes": types, "allowCustomTypes": custom,
                    "requiredLabels": labels, "requiredAnnotations": annotations});
                if exempt {
                    spec["exemptions"] = json!({"usernames": ["admin"], "groups": ["platform"],
                        "serviceAccounts": ["ops/renewer"]});
                }
                spec
            },
        )
}

/// A policy, or `None` when the generated spec is one validation refuses.
fn compiled(name: &str, spec: Value) -> Option<Policy> {
    let mut spec = spec;
    if let Some(name_rule) = spec["secrets"]["name"].as_object_mut() {
        name_rule.retain(|_, v| !v.is_null());
    }
    Policy::new(name, serde_json::from_value(spec).ok()?).ok()
}

fn metadata_map() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    proptest::collection::vec(
        (
            prop_oneof![
                Just("app"),
                Just("tier"),
                Just("secretgate.io/display-name")
            ],
            prop_oneof![Just(""), Just(" "), Just("web"), Just("\u{a0}")],
        ),
        0..3,
    )
}

fn object() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9][a-z0-9.-]{0,13}",
        any::<bool>(),
        proptest::option::of(proptest::sample::select(
            [TYPES, &["", "example.com/c"]].concat(),
        )),
        metadata_map(),
        metadata_map(),
    )
        .prop_map(|(name, generated, ty, labels, annotations)| {
            // kubernetes.io/tls needs data the webhook checks: leave it to allowedTypes.
            let ty = ty.filter(|t| *t != "kubernetes.io/tls");
            let (name, prefix) = match generated {
                true => (None, Some(format!("{name}-"))),
                false => (Some(name), None),
            };
            secret(
                name.as_deref(),
                prefix.as_deref(),
                ty,
                &labels,
                &annotations,
            )
        })
}

fn request() -> impl Strategy<Value = Request> {
    (
        object(),
        proptest::option::of((object(), any::<bool>())),
        prop_oneof![
            Just("alice"),
            Just("admin"),
            Just("system:serviceaccount:ops:renewer")
        ],
        subset(&["platform", "dev"]),
        proptest::option::of(prop_oneof![Just("a"), Just("b")]),
    )
        .prop_map(|(object, old, user, groups, team)| {
            let mut request = match old {
                None => Request::create(object),
                Some((mut old, same_name)) => {
                    // Names cannot change on UPDATE; the other case is checked as well.
                    if same_name {
                        for key in ["name", "generateName"] {
                            match object["metadata"].get(key) {
                                Some(v) => old["metadata"][key] = v.clone(),
                                None => {
                                    old["metadata"].as_object_mut().map(|m| m.remove(key));
                                }
                            }
                        }
                    }
                    Request::update(old, object)
                }
            };
            request.username = user.to_owned();
            request.groups = groups;
            if let Some(team) = team {
                request.namespace_labels.insert("team".into(), team.into());
            }
            request
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn published_rules_and_the_webhook_agree(
        first in spec(), second in proptest::option::of(spec()), request in request()
    ) {
        let mut policies = Vec::new();
        policies.extend(compiled("first", first));
        policies.extend(second.and_then(|s| compiled("second", s)));
        prop_assume!(!policies.is_empty());
        agree(policies, &request, &Scope::default());
    }
}
