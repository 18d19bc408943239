//! What the CRD's schema itself refuses at `kubectl apply`: bounds on lists and strings,
//! and a CEL rule (`x-kubernetes-validations`) for every check of
//! [`validate`](super::validate) that CEL can express.
//!
//! The service's validation stays the full check (the `/validate-policy` webhook runs it
//! before a policy is stored); these rules make the API server refuse the common mistakes
//! even where the webhook is not installed or not reachable, with the same field paths.
//! Two properties hold and are tested: every rule is **never stricter** than the service
//! (a spec the service accepts passes every rule), and the bounds are the service's too
//! (`validate` refuses what exceeds them, so file mode and cluster mode agree).
//!
//! The bounds also keep the API server's cost estimate of the rules finite: a rule over
//! the items of an unbounded list of unbounded strings is refused when the CRD is created.
//! The estimate of a rule is its cost on the longest value times how many places it can
//! apply to (the product of the enclosing lists' `maxItems`), and must stay under
//! 10 000 000; the largest here, a secret name or a service account in a secret-use rule,
//! is about 64 × 64 × 390 ≈ 1.6 M (`matches`: a tenth of the string's length times a
//! quarter of the expression's), and a registry pattern in an injection about
//! 64 × 64 × 355 ≈ 1.5 M. The sum over all rules (limit 100 000 000) is about 10 M.
//! Uniqueness rules (`all` over `exists_one`) compare every pair of a list's entries: that
//! is why those lists (`imagePullSecrets`, `secretUse.rules`, `instanceSecrets`) hold at
//! most 64 entries.
//!
//! What CEL cannot express is left to the webhook: Rust regular expressions that do not
//! compile, a `pattern` that contradicts the `prefix`, the full syntax of registry patterns
//! (IP addresses, ports in range) and label selectors beyond their operators; and for
//! `secretUse`, what a rule means next to the others: an injected secret that no rule can
//! select under `default: Deny`, a grant an earlier rule already makes. Names and service
//! accounts listed twice in one rule are left to the webhook too: CEL could say it, but
//! `all`/`exists_one` over 64 names of 64 rules costs about 8 M of the 10 M estimate.

use serde_json::{Value, json};

/// Most namespaces a policy names one by one (a selector is the tool beyond that).
pub const MAX_NAMESPACES: usize = 1000;
/// Most entries of the other lists: types, keys, algorithms, injections, containers,
/// selector expressions.
pub const MAX_ENTRIES: usize = 64;
/// Most registry patterns a policy allows for pull secrets. (An injection's registries are
/// a list in a list: [`MAX_ENTRIES`] each keeps the API server's cost estimate of their
/// rule low.)
pub const MAX_REGISTRIES: usize = 256;
/// Most instance secrets a policy provides. Each is a copy in every namespace of the
/// project, written by the elected replica.
pub const MAX_INSTANCE_SECRETS: usize = MAX_ENTRIES;
/// A DNS-1123 subdomain: secret names, name prefixes, secret types, data keys.
pub const MAX_NAME: usize = 253;
/// A DNS-1123 label: namespaces, volumes, containers.
pub const MAX_LABEL: usize = 63;
/// A qualified label or annotation key: a 253-character prefix, `/`, a 63-character name.
pub const MAX_KEY: usize = 317;
/// A registry pattern: `*.`, a 253-character host, `:`, a port of 5 digits.
pub const MAX_REGISTRY: usize = 261;
/// Most secret-use rules a policy has. A pod's every secret reference is decided against
/// each of them, so this bounds the request path too.
pub const MAX_USE_RULES: usize = 64;
/// Most name patterns one secret-use rule has (one pattern can alternate): each secret a
/// pod references is matched against every pattern of every rule, at most
/// `MAX_USE_RULES × MAX_NAME_PATTERNS` of them.
pub const MAX_NAME_PATTERNS: usize = 16;
/// A name pattern (a regular expression); longer ones are refused before compiling.
pub const MAX_PATTERN: usize = 1024;
/// A mount path.
pub const MAX_PATH: usize = 4096;
/// A selector operator (the longest valid one is `DoesNotExist`).
const MAX_OPERATOR: usize = 16;
/// An SSH algorithm name (the longest valid one is `ed25519`).
const MAX_ALGORITHM: usize = 16;

/// One CEL rule as the CRD carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub rule: &'static str,
    pub message: &'static str,
    /// For a rule on an object, the field the API server names in its error.
    pub field_path: Option<&'static str>,
}

/// Bounds and rules for one place of the spec's schema.
#[derive(Clone, Copy, Debug)]
pub struct Constraint {
    /// Where, under `spec`: field names joined by `.`; `[]` steps into a list's items.
    pub path: &'static str,
    pub max_items: Option<usize>,
    pub max_length: Option<usize>,
    pub rules: &'static [Rule],
}

const fn rule(rule: &'static str, message: &'static str) -> Rule {
    Rule {
        rule,
        message,
        field_path: None,
    }
}

const fn rule_at(rule: &'static str, message: &'static str, field_path: &'static str) -> Rule {
    Rule {
        rule,
        message,
        field_path: Some(field_path),
    }
}

/// `^…$` regular expressions inside CEL string literals: CEL unescapes `\\` to `\`.
const DNS_LABEL: Rule = rule(
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
    "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
);
const SECRET_NAME: Rule = rule(
    "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$')",
    "must be a secret name (a DNS-1123 subdomain)",
);
/// What the API server requires of a Secret's or ServiceAccount's name: a DNS-1123
/// subdomain, whose labels it does not limit to 63 characters (so a secret-use rule can
/// name every secret that can exist; [`SECRET_NAME`], for injections, is stricter).
const OBJECT_NAME: &str =
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
const ANY_SECRET_NAME: Rule = rule(OBJECT_NAME, "must be a secret name (a DNS-1123 subdomain)");
const SERVICE_ACCOUNT: Rule = rule(
    OBJECT_NAME,
    "must be a service account name (a DNS-1123 subdomain), without system:serviceaccount:",
);
const NOT_BLANK: Rule = rule("size(self.trim()) > 0", "must not be empty");
/// The rules of one `matchExpressions[]` item of a label selector.
const SELECTOR_EXPRESSION: &[Rule] = &[
    rule_at(
        "self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
        "must be one of In, NotIn, Exists, DoesNotExist",
        ".operator",
    ),
    rule_at(
        "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        "operators In and NotIn need at least one value",
        ".values",
    ),
    rule_at(
        "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
        "operators Exists and DoesNotExist take no values",
        ".values",
    ),
];
const SELECTOR_KEY: &[Rule] = &[rule("size(self) > 0", "must not be empty")];
/// Surrounding white space is trimmed, as the service trims a pattern.
const REGISTRY: Rule = rule(
    r"self.trim().matches('^([*][.])?([-a-zA-Z0-9.]+|\\[[0-9a-fA-F:.]+\\])(:[0-9]+)?$')",
    "must be a registry host[:port] or *.domain[:port], without a scheme or path",
);

const fn list(path: &'static str, max_items: usize, rules: &'static [Rule]) -> Constraint {
    Constraint {
        path,
        max_items: Some(max_items),
        max_length: None,
        rules,
    }
}

const fn string(path: &'static str, max_length: usize, rules: &'static [Rule]) -> Constraint {
    Constraint {
        path,
        max_items: None,
        max_length: Some(max_length),
        rules,
    }
}

const fn object(path: &'static str, rules: &'static [Rule]) -> Constraint {
    Constraint {
        path,
        max_items: None,
        max_length: None,
        rules,
    }
}

/// Every bound and rule of the spec's schema.
pub const CONSTRAINTS: &[Constraint] = &[
    list("namespaces", MAX_NAMESPACES, &[]),
    string("namespaces[]", MAX_LABEL, &[DNS_LABEL]),
    list("namespaceSelector.matchExpressions", MAX_ENTRIES, &[]),
    object("namespaceSelector.matchExpressions[]", SELECTOR_EXPRESSION),
    string(
        "namespaceSelector.matchExpressions[].key",
        MAX_KEY,
        SELECTOR_KEY,
    ),
    string(
        "namespaceSelector.matchExpressions[].operator",
        MAX_OPERATOR,
        &[],
    ),
    list("secrets.allowedTypes", MAX_ENTRIES, &[]),
    string("secrets.allowedTypes[]", MAX_NAME, &[NOT_BLANK]),
    list("secrets.requiredLabels", MAX_ENTRIES, &[]),
    string("secrets.requiredLabels[]", MAX_KEY, &[NOT_BLANK]),
    list("secrets.requiredAnnotations", MAX_ENTRIES, &[]),
    string("secrets.requiredAnnotations[]", MAX_KEY, &[NOT_BLANK]),
    object(
        "secrets.name",
        &[
            rule_at(
                "!(has(self.forbidDots) && self.forbidDots) || !has(self.prefix) || !self.prefix.contains('.')",
                "contains '.', which forbidDots refuses in every name",
                ".prefix",
            ),
            rule_at(
                "!has(self.prefix) || !has(self.maxLength) || size(self.prefix) < self.maxLength",
                "leaves no room after the prefix",
                ".maxLength",
            ),
        ],
    ),
    string(
        "secrets.name.prefix",
        MAX_NAME,
        &[
            rule("size(self) > 0", "must not be empty (omit it instead)"),
            rule(
                "size(self) == 0 || self.matches('^[a-z0-9][-a-z0-9.]*$')",
                "can never start a secret name (lowercase letters, digits, '-' and '.', starting with a letter or digit)",
            ),
        ],
    ),
    string("secrets.name.pattern", MAX_PATTERN, &[]),
    object(
        "secrets.name.maxLength",
        &[rule("self >= 1 && self <= 253", "must be within 1..253")],
    ),
    list("pullGuarantee.registries", MAX_REGISTRIES, &[]),
    string("pullGuarantee.registries[]", MAX_REGISTRY, &[REGISTRY]),
    list("secrets.imagePull.allowedRegistries", MAX_REGISTRIES, &[]),
    string(
        "secrets.imagePull.allowedRegistries[]",
        MAX_REGISTRY,
        &[REGISTRY],
    ),
    object(
        "secrets.ssh.minRsaBits",
        &[rule(
            "self >= 1024 && self <= 16384",
            "must be within 1024..16384",
        )],
    ),
    list("secrets.ssh.allowedAlgorithms", MAX_ENTRIES, &[]),
    string(
        "secrets.ssh.allowedAlgorithms[]",
        MAX_ALGORITHM,
        &[rule(
            "self in ['ed25519', 'ecdsa', 'rsa']",
            "must be one of ed25519, ecdsa, rsa",
        )],
    ),
    list("secrets.ssh.gitSyncKeyFields", MAX_ENTRIES, &[]),
    string("secrets.ssh.gitSyncKeyFields[]", MAX_NAME, &[NOT_BLANK]),
    list(
        "imagePullSecrets",
        MAX_ENTRIES,
        &[rule(
            "self.all(a, self.exists_one(b, b.secretName == a.secretName))",
            "lists a secretName twice; give one entry all its registries",
        )],
    ),
    string("imagePullSecrets[].secretName", MAX_NAME, &[SECRET_NAME]),
    list("imagePullSecrets[].registries", MAX_ENTRIES, &[]),
    string("imagePullSecrets[].registries[]", MAX_REGISTRY, &[REGISTRY]),
    string("gitSync.secretName", MAX_NAME, &[SECRET_NAME]),
    list(
        "gitSync.containers",
        MAX_ENTRIES,
        &[rule(
            "size(self) > 0",
            "must name at least one container (omit it for the default, git-sync)",
        )],
    ),
    string("gitSync.containers[]", MAX_LABEL, &[NOT_BLANK]),
    string("gitSync.volumeName", MAX_LABEL, &[DNS_LABEL]),
    string(
        "gitSync.mountPath",
        MAX_PATH,
        &[rule(
            "self.startsWith('/') && !self.contains(':')",
            "must be an absolute path",
        )],
    ),
    list(
        "secretUse.rules",
        MAX_USE_RULES,
        &[rule(
            "self.all(a, self.exists_one(b, b.name == a.name))",
            "lists a rule name twice; rule names are unique in a policy",
        )],
    ),
    string("secretUse.rules[].name", MAX_LABEL, &[DNS_LABEL]),
    object(
        "secretUse.rules[].secrets",
        &[rule(
            "(has(self.names) && size(self.names) > 0) || (has(self.namePatterns) && size(self.namePatterns) > 0) || has(self.selector)",
            "selects no secret; give it names, namePatterns or a selector (selector: {} selects every secret)",
        )],
    ),
    list("secretUse.rules[].secrets.names", MAX_ENTRIES, &[]),
    string(
        "secretUse.rules[].secrets.names[]",
        MAX_NAME,
        &[ANY_SECRET_NAME],
    ),
    list(
        "secretUse.rules[].secrets.namePatterns",
        MAX_NAME_PATTERNS,
        &[],
    ),
    string(
        "secretUse.rules[].secrets.namePatterns[]",
        MAX_PATTERN,
        &[NOT_BLANK],
    ),
    list(
        "secretUse.rules[].secrets.selector.matchExpressions",
        MAX_ENTRIES,
        &[],
    ),
    object(
        "secretUse.rules[].secrets.selector.matchExpressions[]",
        SELECTOR_EXPRESSION,
    ),
    string(
        "secretUse.rules[].secrets.selector.matchExpressions[].key",
        MAX_KEY,
        SELECTOR_KEY,
    ),
    string(
        "secretUse.rules[].secrets.selector.matchExpressions[].operator",
        MAX_OPERATOR,
        &[],
    ),
    list(
        "secretUse.rules[].serviceAccounts",
        MAX_ENTRIES,
        &[rule(
            "size(self) > 0",
            "must name at least one service account; to let no pod use a secret, leave it out of every rule with default: Deny, or have its owner set the annotation secretgate.io/allowed-service-accounts",
        )],
    ),
    string(
        "secretUse.rules[].serviceAccounts[]",
        MAX_NAME,
        &[SERVICE_ACCOUNT],
    ),
    list(
        "secretUse.rules[].podSelector.matchExpressions",
        MAX_ENTRIES,
        &[],
    ),
    object(
        "secretUse.rules[].podSelector.matchExpressions[]",
        SELECTOR_EXPRESSION,
    ),
    string(
        "secretUse.rules[].podSelector.matchExpressions[].key",
        MAX_KEY,
        SELECTOR_KEY,
    ),
    string(
        "secretUse.rules[].podSelector.matchExpressions[].operator",
        MAX_OPERATOR,
        &[],
    ),
    list(
        "instanceSecrets",
        MAX_INSTANCE_SECRETS,
        &[rule(
            "self.all(a, self.exists_one(b, (has(b.targetName) ? b.targetName : b.source.name) == (has(a.targetName) ? a.targetName : a.source.name)))",
            "provides a secret name twice (targetName, or the source's name without one); copy names are unique in a policy",
        )],
    ),
    string(
        "instanceSecrets[].source.namespace",
        MAX_LABEL,
        &[DNS_LABEL],
    ),
    string(
        "instanceSecrets[].source.name",
        MAX_NAME,
        &[ANY_SECRET_NAME],
    ),
    string("instanceSecrets[].targetName", MAX_NAME, &[ANY_SECRET_NAME]),
];

/// Adds [`CONSTRAINTS`] to the schema of `spec`; returns the paths it could not find
/// (none: a test holds the table to the types).
pub fn apply(spec: &mut Value) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for c in CONSTRAINTS {
        let Some(node) = node(spec, c.path).and_then(Value::as_object_mut) else {
            missing.push(c.path);
            continue;
        };
        if let Some(max) = c.max_items {
            node.insert("maxItems".to_owned(), json!(max));
        }
        if let Some(max) = c.max_length {
            node.insert("maxLength".to_owned(), json!(max));
        }
        if !c.rules.is_empty() {
            let rules: Vec<Value> = c
                .rules
                .iter()
                .map(|r| {
                    let mut v = json!({"rule": r.rule, "message": r.message});
                    if let Some(path) = r.field_path {
                        v["fieldPath"] = json!(path);
                    }
                    v
                })
                .collect();
            node.insert("x-kubernetes-validations".to_owned(), Value::Array(rules));
        }
    }
    missing
}

/// The schema node at `path` (see [`Constraint::path`]) under `spec`'s schema.
pub fn node<'a>(spec: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut at = spec;
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let (name, items) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        at = at.get_mut("properties")?.get_mut(name)?;
        if items {
            at = at.get_mut("items")?;
        }
    }
    Some(at)
}

/// Formats the API server knows for integers; schemars writes `uint32` for `u32`, which
/// `kubectl apply` answers with `Warning: unrecognized format "uint32"`.
pub fn known_integer_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let replacement = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(("int32", Some(u64::from(u8::MAX)))),
                Some("uint16") => Some(("int32", Some(u64::from(u16::MAX)))),
                Some("int8" | "int16") => Some(("int32", None)),
                Some("uint32") => Some(("int64", Some(u64::from(u32::MAX)))),
                Some("uint64" | "uint") => Some(("int64", None)),
                _ => None,
            };
            if let Some((format, maximum)) = replacement {
                map.insert("format".to_owned(), json!(format));
                if let Some(max) = maximum {
                    map.insert("maximum".to_owned(), json!(max));
                }
            }
            map.values_mut().for_each(known_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(known_integer_formats),
        _ => {}
    }
}

/// Removes `nullable: true` (kube writes it for every `Option`): the service never writes
/// `null` into a spec, and without `nullable` the API server drops a `null` a user writes
/// (as if the field were absent) instead of storing it, so `has(self.field)` in the rules
/// means the field has a value.
pub fn not_nullable(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("nullable");
            map.values_mut().for_each(not_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(not_nullable),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
