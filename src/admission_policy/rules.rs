//! One validation per secret rule of a policy, mirroring `secrets::metadata` (each
//! expression's shape is explained in [`super::cel`]).

use k8s_openapi::api::admissionregistration::v1::{Validation, Variable};

use super::{cel, quote, re2, variable};
use crate::policy::{Mode, Policy};

/// What a policy's rules compile to.
pub struct Compiled {
    /// The variables the validations read (after `governed`).
    pub variables: Vec<Variable>,
    pub validations: Vec<Validation>,
    /// Rules left to the webhook, and why.
    pub webhook_only: Vec<String>,
}

/// A deny-unless expression guarded by `governed`, with its ratchet for UPDATEs in
/// Enforce. In Warn and Audit the webhook reports what an update leaves as it was too
/// (as a warning, as every finding there), so no ratchet: the same findings are reported.
fn validation(policy: &Policy, ok: &str, ratchet: &str, message: String) -> Validation {
    let expression = match policy.spec.mode {
        Mode::Enforce => format!("!variables.governed || {ok} || {ratchet}"),
        Mode::Warn | Mode::Audit => format!("!variables.governed || {ok}"),
    };
    Validation {
        expression,
        message: Some(format!(
            "secret violates policy {} (secretgate, checked by the API server): {message}",
            quote(&policy.name)
        )),
        reason: Some("Forbidden".to_owned()),
        message_expression: None,
    }
}

pub fn compile(policy: &Policy) -> Compiled {
    let rules = &policy.spec.secrets;
    let name = &rules.name;
    let mut validations = Vec::new();
    let mut webhook_only = Vec::new();
    // The same name in the same field before and after: the name rules' findings were
    // already there (names cannot change on UPDATE, so this is every UPDATE).
    let same_name = "variables.sameName";
    if name.forbid_dots {
        validations.push(validation(
            policy,
            "!variables.name.contains(\".\")",
            same_name,
            "the name must consist of lowercase letters, digits and '-' only (no '.') \
             (spec.secrets.name.forbidDots)"
                .to_owned(),
        ));
    }
    if let Some(prefix) = &name.prefix {
        validations.push(validation(
            policy,
            &format!(
                "(variables.name == \"\" || variables.name.startsWith({}))",
                cel::string(prefix)
            ),
            same_name,
            format!(
                "the name must start with {} (spec.secrets.name.prefix)",
                quote(prefix)
            ),
        ));
    }
    if let Some(pattern) = &name.pattern {
        match re2::shared(pattern.as_str()) {
            Ok(()) => validations.push(validation(
                policy,
                &format!(
                    "(!variables.nameIsFinal || variables.name.matches({}))",
                    cel::string(&format!("^(?:{})$", pattern.as_str()))
                ),
                same_name,
                format!(
                    "the name must match the pattern {} (spec.secrets.name.pattern)",
                    quote(pattern.as_str())
                ),
            )),
            Err(why) => webhook_only.push(format!(
                "spec.secrets.name.pattern: RE2 (CEL's matches) may read it differently: {why}"
            )),
        }
    }
    if let Some(max) = name.max_length {
        // Names are DNS-1123 subdomains (ASCII) by admission time: CEL's size (code
        // points) and the webhook's length (bytes) agree.
        validations.push(validation(
            policy,
            &format!("(!variables.nameIsFinal || size(variables.name) <= {max})"),
            same_name,
            format!("the name must be at most {max} characters long (spec.secrets.name.maxLength)"),
        ));
    }
    let name_rules = !validations.is_empty();
    let type_rule = type_rule(&rules.allowed_types, rules.allow_custom_types);
    if let Some(ok) = &type_rule {
        validations.push(validation(
            policy,
            ok,
            "(oldObject != null && variables.oldSecretType == variables.secretType)",
            format!(
                "the type is not allowed in this project (spec.secrets.allowedTypes {}, \
                 allowCustomTypes {})",
                quote(&rules.allowed_types.join(", ")),
                rules.allow_custom_types
            ),
        ));
    }
    for (field, keys, what) in [
        ("labels", &rules.required_labels, "requiredLabels"),
        (
            "annotations",
            &rules.required_annotations,
            "requiredAnnotations",
        ),
    ] {
        for key in keys {
            validations.push(validation(
                policy,
                &cel::present("object", field, key),
                &format!(
                    "(oldObject != null && !{})",
                    cel::present("oldObject", field, key)
                ),
                format!(
                    "metadata.{field}[{}]: required {} is missing or empty (spec.secrets.{what})",
                    quote(key).trim_matches('"'),
                    &field[..field.len() - 1]
                ),
            ));
        }
    }
    let mut variables = Vec::new();
    let ratchet = policy.spec.mode == Mode::Enforce;
    if name_rules {
        variables.extend([
            variable("name", cel::name_of("object")),
            variable("nameIsFinal", cel::name_is_final("object")),
        ]);
    }
    if name_rules && ratchet {
        variables.extend([
            variable("oldName", cel::name_of("oldObject")),
            variable("oldNameIsFinal", cel::name_is_final("oldObject")),
            variable(
                "sameName",
                "(oldObject != null && variables.oldName == variables.name && \
                 variables.oldNameIsFinal == variables.nameIsFinal)"
                    .to_owned(),
            ),
        ]);
    }
    if type_rule.is_some() {
        variables.push(variable("secretType", cel::type_of("object")));
    }
    if type_rule.is_some() && ratchet {
        variables.push(variable("oldSecretType", cel::type_of("oldObject")));
    }
    Compiled {
        variables,
        validations,
        webhook_only,
    }
}

/// When a type passes, as `secrets::metadata::type_allowed` decides: listed (an empty
/// list lists the built-in types), or custom (not built-in) where custom types are
/// allowed. `None` when every type passes.
fn type_rule(allowed: &[String], allow_custom: bool) -> Option<String> {
    let built_ins = cel::strings(crate::secrets::BUILT_IN_TYPES.iter().copied());
    let ty = "variables.secretType";
    let listed = if allowed.is_empty() {
        format!("{ty} in {built_ins}")
    } else {
        format!(
            "{ty} in {}",
            cel::strings(allowed.iter().map(String::as_str))
        )
    };
    match (allowed.is_empty(), allow_custom) {
        (true, true) => None,
        (true, false) => Some(format!("({listed})")),
        (false, true) => {
            // Every built-in type listed and custom types allowed: nothing is refused.
            if crate::secrets::BUILT_IN_TYPES
                .iter()
                .all(|t| allowed.iter().any(|a| a == t))
            {
                return None;
            }
            Some(format!("({listed} || !({ty} in {built_ins}))"))
        }
        (false, false) => Some(format!("({listed})")),
    }
}
