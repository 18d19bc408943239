//! Rules for every secret type: name, allowed type, required labels and annotations, and
//! secret values copied into annotations.

use super::copied_values::{CopiedValues, Search};
use super::{BUILT_IN_TYPES, Input, Violation};

/// kubectl's client-side apply stores the whole object here, `data` included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn validate(input: &Input<'_>, out: &mut Vec<Violation>) {
    name_rule(input, out);
    type_allowed(input, out);
    required_keys(input, out);
    values_in_annotations(input, out);
}

fn name_rule(input: &Input<'_>, out: &mut Vec<Violation>) {
    let rule = &input.rules.name;
    // A generateName create has no name yet at admission time; the name rule then
    // applies to the prefix the API server will extend.
    let (field, name) = match (
        &input.secret.metadata.name,
        &input.secret.metadata.generate_name,
    ) {
        (Some(name), _) if !name.is_empty() => ("metadata.name", name.as_str()),
        (_, Some(prefix)) if !prefix.is_empty() => ("metadata.generateName", prefix.as_str()),
        _ => return,
    };
    if rule.forbid_dots && name.contains('.') {
        out.push(Violation::deny(
            field,
            format!("{name:?} must consist of lowercase letters, digits and '-' only (no '.')"),
        ));
    }
    if let Some(prefix) = &rule.prefix
        && !name.starts_with(prefix.as_str())
    {
        out.push(Violation::deny(
            field,
            format!("{name:?} must start with {prefix:?}"),
        ));
    }
    if field == "metadata.name" {
        if let Some(pattern) = &rule.pattern
            && !pattern.is_match(name)
        {
            out.push(Violation::deny(
                field,
                format!("{name:?} must match the pattern {:?}", pattern.as_str()),
            ));
        }
        if let Some(max) = rule.max_length
            && name.len() > max as usize
        {
            out.push(Violation::deny(
                field,
                format!(
                    "{name:?} is {} characters long; at most {max} are allowed",
                    name.len()
                ),
            ));
        }
    }
}

fn type_allowed(input: &Input<'_>, out: &mut Vec<Violation>) {
    let rules = input.rules;
    let ty = input.secret_type();
    let built_in = BUILT_IN_TYPES.contains(&ty);
    let listed = if rules.allowed_types.is_empty() {
        built_in
    } else {
        rules.allowed_types.iter().any(|t| t == ty)
    };
    if listed || (!built_in && rules.allow_custom_types) {
        return;
    }
    let message = if built_in {
        format!("type {ty:?} is not allowed in this project")
    } else {
        format!("custom type {ty:?} is not allowed in this project")
    };
    out.push(Violation::deny("type", message));
}

fn required_keys(input: &Input<'_>, out: &mut Vec<Violation>) {
    let meta = &input.secret.metadata;
    for key in &input.rules.required_labels {
        let value = meta.labels.as_ref().and_then(|l| l.get(key));
        if value.is_none_or(|v| v.trim().is_empty()) {
            out.push(Violation::deny(
                format!("metadata.labels[{key}]"),
                "required label is missing or empty",
            ));
        }
    }
    for key in &input.rules.required_annotations {
        let value = meta.annotations.as_ref().and_then(|a| a.get(key));
        if value.is_none_or(|v| v.trim().is_empty()) {
            out.push(Violation::deny(
                format!("metadata.annotations[{key}]"),
                "required annotation is missing or empty",
            ));
        }
    }
}

fn values_in_annotations(input: &Input<'_>, out: &mut Vec<Violation>) {
    let Some(annotations) = &input.secret.metadata.annotations else {
        return;
    };
    let severity = input.rules.values_in_annotations;
    let searched = annotations
        .iter()
        .filter(|(key, _)| *key != LAST_APPLIED)
        .map(|(_, value)| value.as_bytes());
    let mut values = CopiedValues::new(input.entries().map(|(_, data)| data), searched);
    let mut incomplete = 0usize;
    for (key, value) in annotations {
        let field = || format!("metadata.annotations[{key}]");
        if key == LAST_APPLIED {
            if last_applied_holds_data(value) {
                out.push(Violation::with_severity(
                    severity,
                    field(),
                    "holds a copy of the secret's data (kubectl client-side apply); \
                     use kubectl apply --server-side or kubectl create instead",
                ));
            }
            continue;
        }
        match values.search(value.as_bytes()) {
            Search::Found => out.push(Violation::with_severity(
                severity,
                field(),
                "holds a copy of a data value; annotations are not secret",
            )),
            Search::NotFound => {}
            Search::Incomplete => incomplete += 1,
        }
    }
    if incomplete > 0 {
        // At the rule's severity: a search cut short must not let a copy through.
        out.push(Violation::with_severity(
            severity,
            "metadata.annotations",
            format!(
                "{incomplete} annotations were not searched completely for copied data \
                 values (the search is bounded by the secret's size)"
            ),
        ));
    }
}

/// Whether a last-applied-configuration document carries `data` or `stringData` entries.
fn last_applied_holds_data(document: &str) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Applied {
        #[serde(default)]
        data: Option<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        string_data: Option<serde_json::Map<String, serde_json::Value>>,
    }
    match serde_json::from_str::<Applied>(document) {
        Ok(a) => {
            a.data.is_some_and(|d| !d.is_empty()) || a.string_data.is_some_and(|d| !d.is_empty())
        }
        // Not JSON: kubectl did not write it; the generic copy check does not apply
        // to this annotation, and a malformed one holds nothing we can point at.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::policy::{Pattern, SecretRules, Severity};
    use crate::secrets::test_support::secret;
    use crate::secrets::{OPAQUE, validate};

    fn found(rules: &SecretRules, s: &k8s_openapi::api::core::v1::Secret) -> Vec<String> {
        validate(s, rules, time::OffsetDateTime::now_utc())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn named(name: &str) -> k8s_openapi::api::core::v1::Secret {
        secret(name, OPAQUE, &[])
    }

    #[test]
    fn name_rule() {
        let mut rules = SecretRules::default();
        rules.name.prefix = Some("team-a-".into());
        rules.name.pattern = Some(Pattern::new("[a-z0-9-]+-(db|api)").expect("pattern"));
        rules.name.max_length = Some(20);
        rules.name.forbid_dots = true;
        let cases: &[(&str, &[&str])] = &[
            ("team-a-orders-db", &[]),
            (
                "orders-db",
                &[r#"metadata.name: "orders-db" must start with "team-a-""#],
            ),
            (
                "team-a-orders",
                &[r#"metadata.name: "team-a-orders" must match the pattern "[a-z0-9-]+-(db|api)""#],
            ),
            (
                "team-a-a-very-long-name-db",
                &[
                    r#"metadata.name: "team-a-a-very-long-name-db" is 26 characters long; at most 20 are allowed"#,
                ],
            ),
            (
                "team-a-x.y-db",
                &[
                    r#"metadata.name: "team-a-x.y-db" must consist of lowercase letters, digits and '-' only (no '.')"#,
                    r#"metadata.name: "team-a-x.y-db" must match the pattern "[a-z0-9-]+-(db|api)""#,
                ],
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(found(&rules, &named(name)), *expected, "{name}");
        }
    }

    #[test]
    fn the_prefix_applies_to_generate_name() {
        let mut rules = SecretRules::default();
        rules.name.prefix = Some("team-a-".into());
        let mut s = named("");
        s.metadata.name = None;
        s.metadata.generate_name = Some("batch-".into());
        assert_eq!(
            found(&rules, &s),
            [r#"metadata.generateName: "batch-" must start with "team-a-""#]
        );
    }

    #[test]
    fn a_bad_pattern_is_refused_when_the_policy_is_read() {
        let err = serde_json::from_str::<crate::policy::NameRule>(r#"{"pattern":"("}"#)
            .expect_err("bad regex");
        assert!(err.to_string().contains("invalid pattern \"(\""), "{err}");
    }

    #[test]
    fn allowed_types() {
        let custom = "example.com/git-credentials";
        let cases: &[(&[&str], bool, &str, &[&str])] = &[
            (&[], true, OPAQUE, &[]),
            (&[], true, custom, &[]),
            (
                &[],
                false,
                custom,
                &[
                    r#"type: custom type "example.com/git-credentials" is not allowed in this project"#,
                ],
            ),
            (
                &["kubernetes.io/tls"],
                true,
                OPAQUE,
                &[r#"type: type "Opaque" is not allowed in this project"#],
            ),
            (&["kubernetes.io/tls"], true, custom, &[]),
            (&["kubernetes.io/tls", custom], false, custom, &[]),
        ];
        for (allowed, allow_custom, ty, expected) in cases {
            let rules = SecretRules {
                allowed_types: allowed.iter().map(|s| s.to_string()).collect(),
                allow_custom_types: *allow_custom,
                ..SecretRules::default()
            };
            assert_eq!(
                found(&rules, &secret("x", ty, &[])),
                *expected,
                "{allowed:?} {allow_custom} {ty}"
            );
        }
    }

    #[test]
    fn required_labels_and_annotations() {
        let rules = SecretRules {
            required_labels: vec!["app".into()],
            required_annotations: vec!["secretgate.io/display-name".into()],
            ..SecretRules::default()
        };
        let mut s = named("x");
        assert_eq!(
            found(&rules, &s),
            [
                "metadata.labels[app]: required label is missing or empty",
                "metadata.annotations[secretgate.io/display-name]: required annotation is missing or empty"
            ]
        );
        s.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        s.metadata.annotations = Some(BTreeMap::from([(
            "secretgate.io/display-name".into(),
            " ".into(),
        )]));
        assert_eq!(
            found(&rules, &s),
            [
                "metadata.annotations[secretgate.io/display-name]: required annotation is missing or empty"
            ]
        );
    }

    #[test]
    fn values_copied_into_annotations() {
        let value = b"PLANTED-s3cr3t-value";
        let b64 = "UExBTlRFRC1zM2NyM3QtdmFsdWU=";
        let cases: &[(&str, &str, bool)] = &[
            (
                "kubectl.kubernetes.io/last-applied-configuration",
                r#"{"apiVersion":"v1","data":{"k":"eA=="},"kind":"Secret"}"#,
                true,
            ),
            (
                "kubectl.kubernetes.io/last-applied-configuration",
                r#"{"apiVersion":"v1","stringData":{"k":"x"}}"#,
                true,
            ),
            (
                "kubectl.kubernetes.io/last-applied-configuration",
                r#"{"apiVersion":"v1","kind":"Secret","type":"Opaque"}"#,
                false,
            ),
            (
                "kubectl.kubernetes.io/last-applied-configuration",
                "not json",
                false,
            ),
            ("note", "the value is PLANTED-s3cr3t-value", true),
            ("note", b64, true),
            ("note", "nothing to see", false),
        ];
        for severity in [Severity::Warn, Severity::Deny] {
            let rules = SecretRules {
                values_in_annotations: severity,
                ..SecretRules::default()
            };
            for (key, annotation, flagged) in cases {
                let mut s = secret("x", OPAQUE, &[("k", value)]);
                s.metadata.annotations =
                    Some(BTreeMap::from([(key.to_string(), annotation.to_string())]));
                let v = validate(&s, &rules, time::OffsetDateTime::now_utc());
                assert_eq!(v.len(), usize::from(*flagged), "{key}={annotation}");
                for v in &v {
                    assert_eq!(v.severity, severity);
                    assert_eq!(v.field, format!("metadata.annotations[{key}]"));
                    assert!(!v.message.contains("PLANTED") && !v.message.contains(b64));
                }
            }
        }
    }
}
