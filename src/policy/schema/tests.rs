//! The CRD's rules against the service's validation: every place of the table exists in
//! the generated schema; run on samples, no rule (nor bound) refuses a spec the service
//! accepts, and the rules refuse what they are for; the service refuses what exceeds the
//! bounds.

use kube::CustomResourceExt as _;

use serde::Deserialize as _;

use super::*;
use crate::policy::{Policy, ProjectPolicy, ProjectPolicySpec};

/// The simple forms of CEL the rules on strings and integers use, evaluated with `self`
/// bound to `value`; `None` for a form this does not know (rules on objects and lists,
/// which tests/crd.rs checks by their text) or a value of the wrong type.
fn eval(rule: &str, value: &Value) -> Option<bool> {
    let text = value.as_str();
    let int = value.as_i64();
    if let Some(rest) = rule.strip_prefix("size(self) == 0 || ") {
        return Some(text?.is_empty() || eval(rest, value)?);
    }
    if let Some(rest) = rule.strip_prefix("self.trim().") {
        // CEL's trim() and Rust's trim() both drop Unicode white space.
        return eval(&format!("self.{rest}"), &json!(text?.trim()));
    }
    if let Some(rest) = rule.strip_prefix("self.matches('") {
        // CEL unescapes `\\` in the literal; RE2 and Rust agree on these expressions.
        let pattern = rest.strip_suffix("')")?.replace(r"\\", r"\");
        let regex = regex::Regex::new(&pattern).expect("a rule's expression compiles");
        return Some(regex.is_match(text?));
    }
    if let Some(rest) = rule.strip_prefix("self in [") {
        let options: Vec<&str> = rest
            .strip_suffix(']')?
            .split(", ")
            .map(|o| o.trim_matches('\''))
            .collect();
        return Some(options.contains(&text?));
    }
    if let Some(rest) = rule.strip_prefix("self >= ") {
        let (min, max) = rest.split_once(" && self <= ")?;
        let (min, max): (i64, i64) = (min.parse().ok()?, max.parse().ok()?);
        return Some((min..=max).contains(&int?));
    }
    match rule {
        "size(self) > 0" => Some(!text?.is_empty()),
        "size(self.trim()) > 0" => Some(!text?.trim().is_empty()),
        "self.startsWith('/') && !self.contains(':')" => {
            Some(text?.starts_with('/') && !text?.contains(':'))
        }
        _ => None,
    }
}

/// Whether the CRD admits `value` at the place `c` describes: within its length and every
/// rule this file can evaluate holds.
fn schema_admits(c: &Constraint, value: &Value) -> bool {
    let short_enough = match (c.max_length, value.as_str()) {
        (Some(max), Some(s)) => s.chars().count() <= max,
        _ => true,
    };
    short_enough && c.rules.iter().all(|r| eval(r.rule, value) != Some(false))
}

/// The minimal valid value the service needs around a place (required fields).
fn base(path: &str) -> Value {
    match path {
        "imagePullSecrets[]" => json!({"secretName": "pull"}),
        "gitSync" => json!({"secretName": "git-key"}),
        p if p.ends_with("matchExpressions[]") => json!({"key": "k", "operator": "Exists"}),
        "secretUse.rules[]" => {
            json!({"name": "r", "secrets": {"names": ["s"]}, "serviceAccounts": ["sa"]})
        }
        "instanceSecrets[]" => json!({"source": {"namespace": "ns", "name": "s"}}),
        _ => json!({}),
    }
}

/// A spec that holds `value` at `path` (a list place holds it as its only item) and is
/// valid everywhere else.
fn spec_with(path: &str, value: Value) -> Value {
    let mut spec = json!({});
    place(&mut spec, &path.split('.').collect::<Vec<_>>(), value, "");
    spec
}

fn place(at: &mut Value, steps: &[&str], value: Value, prefix: &str) {
    let Some((step, rest)) = steps.split_first() else {
        *at = value;
        return;
    };
    let (name, items) = match step.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (*step, false),
    };
    let here = format!("{prefix}{name}");
    let slot = &mut at[name];
    if items {
        if rest.is_empty() {
            *slot = json!([value]);
            return;
        }
        *slot = json!([base(&format!("{here}[]"))]);
        place(&mut slot[0], rest, value, &format!("{here}[]."));
    } else if rest.is_empty() {
        *slot = value;
    } else {
        if slot.is_null() {
            *slot = base(&here);
        }
        place(slot, rest, value, &format!("{here}."));
    }
}

/// Whether the service accepts `spec`: it parses and validates.
fn service_accepts(spec: &Value) -> bool {
    ProjectPolicySpec::deserialize(spec).is_ok_and(|spec| Policy::new("p", spec).is_ok())
}

fn samples() -> Vec<Value> {
    let mut out: Vec<Value> = [
        "",
        " ",
        "a",
        "team-a",
        "team-a.dev",
        "Team_A",
        "-a",
        "a-",
        "a..b",
        "ghcr.io",
        "GHCR.io",
        "*.example.com",
        "*.example.com:443",
        "registry.local:5000",
        "registry.local:",
        "[::1]",
        "[::1]:5000",
        "*.[::1]",
        "10.0.0.1",
        "10.0.0.1:80",
        "https://ghcr.io",
        "ghcr.io/org",
        "ghcr.io ",
        "*",
        "*.",
        "host:0",
        "host:65536",
        "host:00080",
        " ghcr.io",
        "ghcr.io\t",
        "ghcr .io",
        "ed25519",
        "ecdsa",
        "rsa",
        "dsa",
        "RSA",
        "/etc/git-secret",
        "/",
        "etc/git",
        "/a:b",
        "C:/x",
        "kubernetes.io/tls",
        "Opaque",
        "example.com/custom",
        "secretgate.io/display-name",
        "ssh",
        "In",
        "NotIn",
        "Exists",
        "DoesNotExist",
        "Matches",
        "git-sync",
        "team-a-",
        "team-a.",
        "0team",
        "ü",
        "\t",
    ]
    .iter()
    .map(|s| json!(s))
    .collect();
    for n in [62, 63, 64, 252, 253, 254, 260, 261, 262] {
        out.push(json!("a".repeat(n)));
    }
    out.push(json!(format!("{}.{}", "a".repeat(63), "b".repeat(63))));
    out.push(json!(format!("{}.{}", "a".repeat(64), "b")));
    for n in [-1, 0, 1, 7, 253, 254, 512, 1023, 1024, 2048, 16384, 16385] {
        out.push(json!(n));
    }
    out
}

#[test]
fn every_place_of_the_table_is_in_the_generated_schema() {
    let mut crd = serde_json::to_value(ProjectPolicy::crd()).expect("CRD JSON");
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(apply(spec), Vec::<&str>::new());
}

#[test]
fn no_rule_or_bound_refuses_what_the_service_accepts() {
    let mut checked = 0;
    for c in CONSTRAINTS {
        for value in samples() {
            let spec = spec_with(c.path, value.clone());
            if service_accepts(&spec) {
                checked += 1;
                assert!(
                    schema_admits(c, &value),
                    "{}: the service accepts {value} but the CRD refuses it",
                    c.path
                );
            }
        }
    }
    assert!(checked > 100, "only {checked} accepted samples");
}

#[test]
fn rules_refuse_what_they_are_for() {
    let refused: &[(&str, Value)] = &[
        ("namespaces[]", json!("Team_A")),
        ("namespaces[]", json!("a-")),
        ("secrets.allowedTypes[]", json!(" ")),
        ("secrets.requiredLabels[]", json!("")),
        ("secrets.requiredAnnotations[]", json!("\t")),
        ("secrets.name.prefix", json!("")),
        ("secrets.name.prefix", json!("Team-")),
        ("secrets.name.prefix", json!("-team")),
        ("secrets.name.maxLength", json!(0)),
        ("secrets.name.maxLength", json!(254)),
        (
            "secrets.imagePull.allowedRegistries[]",
            json!("https://ghcr.io"),
        ),
        (
            "secrets.imagePull.allowedRegistries[]",
            json!("ghcr.io/org"),
        ),
        ("secrets.imagePull.allowedRegistries[]", json!("*")),
        ("secrets.ssh.minRsaBits", json!(1023)),
        ("secrets.ssh.minRsaBits", json!(16385)),
        ("secrets.ssh.allowedAlgorithms[]", json!("dsa")),
        ("secrets.ssh.gitSyncKeyFields[]", json!(" ")),
        ("imagePullSecrets[].secretName", json!("Pull")),
        (
            "imagePullSecrets[].secretName",
            json!(format!("{}.b", "a".repeat(64))),
        ),
        ("imagePullSecrets[].registries[]", json!("ghcr .io")),
        ("gitSync.secretName", json!("")),
        ("gitSync.containers[]", json!("")),
        ("gitSync.volumeName", json!("Git_Secret")),
        ("gitSync.mountPath", json!("etc/git")),
        ("gitSync.mountPath", json!("/a:b")),
        ("namespaceSelector.matchExpressions[].key", json!("")),
        ("secretUse.rules[].name", json!("Deploy_Key")),
        ("secretUse.rules[].name", json!("")),
        ("secretUse.rules[].secrets.names[]", json!("Deploy")),
        ("secretUse.rules[].secrets.namePatterns[]", json!(" ")),
        (
            "secretUse.rules[].secrets.selector.matchExpressions[].key",
            json!(""),
        ),
        ("secretUse.rules[].serviceAccounts[]", json!("CI")),
        (
            "secretUse.rules[].serviceAccounts[]",
            json!("system:serviceaccount:ci:runner"),
        ),
        (
            "secretUse.rules[].podSelector.matchExpressions[].key",
            json!(""),
        ),
        ("instanceSecrets[].source.namespace", json!("Platform")),
        ("instanceSecrets[].source.namespace", json!("")),
        ("instanceSecrets[].source.name", json!("Regcred")),
        ("instanceSecrets[].source.name", json!("")),
        ("instanceSecrets[].targetName", json!("reg_cred")),
        ("instanceSecrets[].targetName", json!("-regcred")),
    ];
    for (path, value) in refused {
        let c = CONSTRAINTS
            .iter()
            .find(|c| c.path == *path)
            .unwrap_or_else(|| panic!("no constraint at {path}"));
        assert!(!schema_admits(c, value), "{path}: the CRD admits {value}");
        assert!(
            !service_accepts(&spec_with(path, value.clone())),
            "{path}: the service accepts {value}"
        );
    }
}

/// A valid item number `i` of the list at `path`.
fn item(path: &str, i: usize) -> Value {
    match path {
        "namespaces" => json!(format!("ns-{i}")),
        p if p.ends_with("matchExpressions") => {
            json!({"key": format!("k{i}"), "operator": "Exists"})
        }
        "secretUse.rules" => json!({"name": format!("r{i}"),
                                    "secrets": {"names": [format!("s{i}")]},
                                    "serviceAccounts": ["sa"]}),
        "secrets.ssh.allowedAlgorithms" => json!("rsa"),
        "secrets.imagePull.allowedRegistries" | "imagePullSecrets[].registries" => {
            json!(format!("r{i}.example.com"))
        }
        "imagePullSecrets" => json!({"secretName": format!("pull-{i}")}),
        "gitSync.containers" => json!(format!("c{i}")),
        "instanceSecrets" => json!({"source": {"namespace": "ns", "name": format!("s{i}")}}),
        _ => json!(format!("k{i}")),
    }
}

#[test]
fn the_service_refuses_lists_beyond_their_bound() {
    for c in CONSTRAINTS {
        let Some(max) = c.max_items else { continue };
        let list = |n: usize| Value::Array((0..n).map(|i| item(c.path, i)).collect());
        // spec_with puts a list place's value in a list: set the list itself instead.
        let at = |n: usize| {
            let mut spec = spec_with(c.path, json!(null));
            *pointer(&mut spec, c.path) = list(n);
            spec
        };
        assert!(service_accepts(&at(max)), "{}: {max} entries", c.path);
        assert!(
            !service_accepts(&at(max + 1)),
            "{}: {} entries accepted",
            c.path,
            max + 1
        );
    }
}

/// The value at `path` of a spec built by [`spec_with`] (lists: their first item).
fn pointer<'a>(spec: &'a mut Value, path: &str) -> &'a mut Value {
    let mut at = spec;
    for step in path.split('.') {
        at = match step.strip_suffix("[]") {
            Some(name) => &mut at[name][0],
            None => &mut at[step],
        };
    }
    at
}

#[test]
fn the_service_refuses_strings_beyond_their_bound() {
    for c in CONSTRAINTS {
        let Some(max) = c.max_length else { continue };
        // Values valid but for their length.
        let long = match c.path {
            p if p.ends_with("registries[]") || p.ends_with("allowedRegistries[]") => {
                format!("*.a.com:{}1", "0".repeat(max - 8))
            }
            "gitSync.mountPath" => format!("/{}", "a".repeat(max)),
            _ => "a".repeat(max + 1),
        };
        assert_eq!(long.chars().count(), max + 1, "{}", c.path);
        assert!(
            !service_accepts(&spec_with(c.path, json!(long))),
            "{}: {} characters accepted",
            c.path,
            max + 1
        );
    }
}

/// The rules of `secretUse` on objects and lists, as the service reads them: `None` for
/// another rule.
fn eval_structural(rule: &str, value: &Value) -> Option<bool> {
    let filled = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    match rule {
        "(has(self.names) && size(self.names) > 0) || (has(self.namePatterns) && size(self.namePatterns) > 0) || has(self.selector)" => {
            Some(filled("names") || filled("namePatterns") || value.get("selector").is_some())
        }
        "size(self) > 0" => Some(!value.as_array()?.is_empty()),
        "self.all(a, self.exists_one(b, b.name == a.name))" => {
            let items = value.as_array()?;
            Some(
                items
                    .iter()
                    .all(|a| items.iter().filter(|b| b["name"] == a["name"]).count() == 1),
            )
        }
        "self.all(a, self.exists_one(b, (has(b.targetName) ? b.targetName : b.source.name) == (has(a.targetName) ? a.targetName : a.source.name)))" =>
        {
            let items = value.as_array()?;
            let target = |v: &Value| {
                v.get("targetName")
                    .unwrap_or(&v["source"]["name"])
                    .as_str()
                    .map(str::to_owned)
            };
            Some(
                items
                    .iter()
                    .all(|a| items.iter().filter(|b| target(b) == target(a)).count() == 1),
            )
        }
        _ => None,
    }
}

#[test]
fn secret_use_rules_on_objects_and_lists_agree_with_the_service() {
    let rule = |name: &str, secret: &str| json!({"name": name, "secrets": {"names": [secret]}, "serviceAccounts": ["sa"]});
    let cases: &[(&str, Value)] = &[
        ("secretUse.rules[].secrets", json!({})),
        ("secretUse.rules[].secrets", json!({"names": []})),
        (
            "secretUse.rules[].secrets",
            json!({"names": [], "namePatterns": []}),
        ),
        ("secretUse.rules[].secrets", json!({"names": ["a"]})),
        (
            "secretUse.rules[].secrets",
            json!({"namePatterns": ["a-.*"]}),
        ),
        ("secretUse.rules[].secrets", json!({"selector": {}})),
        (
            "secretUse.rules[].secrets",
            json!({"names": [], "selector": {"matchLabels": {"a": "b"}}}),
        ),
        ("secretUse.rules[].serviceAccounts", json!([])),
        ("secretUse.rules[].serviceAccounts", json!(["ci", "deploy"])),
        ("secretUse.rules", json!([])),
        ("secretUse.rules", json!([rule("a", "x"), rule("b", "y")])),
        ("secretUse.rules", json!([rule("a", "x"), rule("a", "y")])),
        (
            "secretUse.rules",
            json!([rule("a", "x"), rule("b", "y"), rule("a", "z")]),
        ),
    ];
    let mut refused = 0;
    for (path, value) in cases {
        let c = CONSTRAINTS
            .iter()
            .find(|c| c.path == *path)
            .unwrap_or_else(|| panic!("no constraint at {path}"));
        let verdicts: Vec<bool> = c
            .rules
            .iter()
            .map(|r| eval_structural(r.rule, value).expect("a rule this test knows"))
            .collect();
        let schema = verdicts.iter().all(|v| *v);
        let service = service_accepts(&spec_with(path, value.clone()));
        assert_eq!(schema, service, "{path}: {value}");
        refused += usize::from(!schema);
    }
    assert_eq!(refused, 6);
}

#[test]
fn instance_secret_uniqueness_agrees_with_the_service() {
    let entry = |ns: &str, name: &str, target: Option<&str>| match target {
        Some(t) => json!({"source": {"namespace": ns, "name": name}, "targetName": t}),
        None => json!({"source": {"namespace": ns, "name": name}}),
    };
    let cases: &[Value] = &[
        json!([]),
        json!([entry("a", "regcred", None)]),
        json!([
            entry("a", "regcred", None),
            entry("b", "regcred", Some("b-regcred"))
        ]),
        json!([
            entry("a", "regcred", None),
            entry("a", "regcred", Some("regcred-2"))
        ]),
        json!([entry("a", "regcred", None), entry("b", "regcred", None)]),
        json!([
            entry("a", "x", Some("regcred")),
            entry("b", "regcred", None)
        ]),
        json!([entry("a", "x", Some("t")), entry("b", "y", Some("t"))]),
        json!([
            entry("a", "x", None),
            entry("b", "y", None),
            entry("c", "z", Some("x"))
        ]),
    ];
    let c = CONSTRAINTS
        .iter()
        .find(|c| c.path == "instanceSecrets")
        .expect("a constraint on instanceSecrets");
    let mut refused = 0;
    for value in cases {
        let schema = c
            .rules
            .iter()
            .all(|r| eval_structural(r.rule, value).expect("a rule this test knows"));
        let mut spec = json!({});
        spec["instanceSecrets"] = value.clone();
        assert_eq!(schema, service_accepts(&spec), "{value}");
        refused += usize::from(!schema);
    }
    assert_eq!(refused, 4);
}

#[test]
fn integer_formats_are_ones_kubernetes_knows() {
    let mut schema = json!({"properties": {
        "a": {"type": "integer", "format": "uint32", "minimum": 0.0},
        "b": {"items": {"type": "integer", "format": "uint16"}},
        "c": {"type": "integer", "format": "int64"}
    }});
    known_integer_formats(&mut schema);
    assert_eq!(
        schema,
        json!({"properties": {
            "a": {"type": "integer", "format": "int64", "minimum": 0.0, "maximum": 4_294_967_295u64},
            "b": {"items": {"type": "integer", "format": "int32", "maximum": 65535}},
            "c": {"type": "integer", "format": "int64"}
        }})
    );
}
