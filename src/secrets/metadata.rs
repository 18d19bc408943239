//! Rules for every secret type: name, allowed type, required labels and annotations, and
//! secret values copied into annotations.

use super::{BUILT_IN_TYPES, Input, Violation};

/// kubectl's client-side apply stores the whole object here, `data` included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Data values shorter than this are not searched for in annotations: short values such
/// as `true` or `80` would match by chance.
const MIN_COPIED_VALUE_LEN: usize = 8;

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
    use base64::Engine as _;
    let Some(annotations) = &input.secret.metadata.annotations else {
        return;
    };
    let severity = input.rules.values_in_annotations;
    for (key, value) in annotations {
        let field = format!("metadata.annotations[{key}]");
        if key == LAST_APPLIED {
            if last_applied_holds_data(value) {
                out.push(Violation::with_severity(
                    severity,
                    field,
                    "holds a copy of the secret's data (kubectl client-side apply); \
                     use kubectl apply --server-side or kubectl create instead",
                ));
            }
            continue;
        }
        let copied = input.entries().any(|(_, data)| {
            data.len() >= MIN_COPIED_VALUE_LEN
                && (contains(value.as_bytes(), data)
                    || contains(
                        value.as_bytes(),
                        base64::engine::general_purpose::STANDARD
                            .encode(data)
                            .as_bytes(),
                    ))
        });
        if copied {
            out.push(Violation::with_severity(
                severity,
                field,
                "holds a copy of a data value; annotations are not secret",
            ));
        }
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
