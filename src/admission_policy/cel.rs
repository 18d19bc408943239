//! The CEL of the published policies: literals, namespace selection, and one expression
//! per secret rule, each the exact reading `secrets::metadata` gives that rule.
//!
//! Every rule's expression says when a request *passes* it (a VAP validation denies
//! when its expression is false) and has three parts, `!governed || ok(object) ||
//! ratchet`:
//! - `governed`: the policy governs the secret's namespace (see [`governs`]);
//! - `ok(object)`: the new object keeps the rule;
//! - `ratchet`: an UPDATE whose old object broke the rule in the same way, which the
//!   webhook only warns about (`secrets::validate_update`: a finding already present
//!   before the update is a warning). A finding is the same when its field and message
//!   are: for the name rules that is the same name in the same field, for the type rule
//!   the same type, for a required label or annotation the same key (its message names
//!   only the key). Enforce only: in Warn and Audit the webhook reports what was
//!   already there as well (every finding is a warning there), so the policy does too.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::policy::Policy;

/// A CEL string literal for `s`: double-quoted; anything outside printable ASCII and the
/// quote and backslash escaped, so a policy's strings can never change the expression.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A CEL list of string literals.
pub fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(string).collect();
    format!("[{}]", items.join(", "))
}

/// The namespace's labels in a validation (`namespaceObject` is the Namespace of the
/// Secret under review).
const NS_LABELS: &str = "namespaceObject.metadata.labels";

/// Whether the namespace has label `key` (with `has` first: a namespace may have none).
fn ns_has_label(key: &str) -> String {
    format!("(has({NS_LABELS}) && {} in {NS_LABELS})", string(key))
}

/// `selector` over the namespace's labels, with Kubernetes' semantics (those of
/// `policy::selector`): every requirement holds; `NotIn` holds for a namespace without
/// the label; `{}` selects every namespace.
pub fn selector(selector: &LabelSelector) -> String {
    let mut parts = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        parts.push(label_in(key, std::slice::from_ref(value)));
    }
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default();
        parts.push(match req.operator.as_str() {
            "In" => label_in(&req.key, values),
            "NotIn" => format!("!{}", label_in(&req.key, values)),
            "Exists" => ns_has_label(&req.key),
            "DoesNotExist" => format!("!{}", ns_has_label(&req.key)),
            // A compiled selector has no other operator; never select on one we cannot
            // read (the webhook refuses such a policy).
            _ => "false".to_owned(),
        });
    }
    if parts.is_empty() {
        return "true".to_owned();
    }
    format!("({})", parts.join(" && "))
}

fn label_in(key: &str, values: &[String]) -> String {
    format!(
        "({} && {NS_LABELS}[{}] in {})",
        ns_has_label(key),
        string(key),
        strings(values.iter().map(String::as_str))
    )
}

/// Whether `policy` selects the namespace: named in `namespaces`, or its labels match
/// `namespaceSelector` (`policy::resolve`). The name is the namespace object's own;
/// the webhook's cache gives a namespace it has not seen yet only its name label.
pub fn selects(policy: &Policy) -> String {
    let mut parts = Vec::new();
    if !policy.spec.namespaces.is_empty() {
        parts.push(format!(
            "namespaceObject.metadata.name in {}",
            strings(policy.spec.namespaces.iter().map(String::as_str))
        ));
    }
    if let Some(sel) = policy.namespace_selector() {
        parts.push(selector(&sel));
    }
    if parts.is_empty() {
        return "false".to_owned();
    }
    format!("({})", parts.join(" || "))
}

/// Whether `policies[index]` governs the namespace: it selects it and no policy before
/// it (by name, broken ones included) does. Where several select one namespace the
/// first governs it alone in the webhook, and so here: a later policy's rules never
/// apply there.
///
/// Policies that select only by name, with no name in common, cannot meet: those are
/// left out, so the expression stays short where projects list their namespaces.
pub fn governs(policies: &[Policy], index: usize) -> String {
    let policy = &policies[index];
    let mut out = selects(policy);
    for earlier in &policies[..index] {
        let by_name_only =
            policy.namespace_selector().is_none() && earlier.namespace_selector().is_none();
        let common = policy
            .spec
            .namespaces
            .iter()
            .any(|n| earlier.spec.namespaces.contains(n));
        if by_name_only && !common {
            continue;
        }
        let other = selects(earlier);
        if other != "false" {
            out.push_str(&format!(" && !{other}"));
        }
    }
    out
}

/// The name the name rules read, as `secrets::metadata` picks it: `metadata.name` when
/// set, else `metadata.generateName` (a generateName create), else none (`""`).
pub fn name_of(object: &str) -> String {
    let guard = guard(object);
    format!(
        "{guard}has({object}.metadata.name) && {object}.metadata.name != \"\" ? {object}.metadata.name : \
         ({guard}has({object}.metadata.generateName) ? {object}.metadata.generateName : \"\")"
    )
}

/// Whether the name read is `metadata.name` (pattern and maxLength apply only to it).
pub fn name_is_final(object: &str) -> String {
    let guard = guard(object);
    format!("{guard}has({object}.metadata.name) && {object}.metadata.name != \"\"")
}

/// The secret type as the API server defaults it: `Opaque` when absent or empty.
pub fn type_of(object: &str) -> String {
    let guard = guard(object);
    format!("{guard}has({object}.type) && {object}.type != \"\" ? {object}.type : \"Opaque\"")
}

/// `oldObject` is null on CREATE: every read of it is guarded.
fn guard(object: &str) -> String {
    if object == "oldObject" {
        "oldObject != null && ".to_owned()
    } else {
        String::new()
    }
}

/// Whether `object` has `key` in `field` (`labels` or `annotations`) with a value that
/// is not empty nor only white space (`trim()` of Kubernetes' strings library, Go's
/// `strings.TrimSpace`: Unicode White_Space, as Rust's `str::trim`).
pub fn present(object: &str, field: &str, key: &str) -> String {
    let map = format!("{object}.metadata.{field}");
    let key = string(key);
    format!("(has({map}) && {key} in {map} && {map}[{key}].trim() != \"\")")
}
