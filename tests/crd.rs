//! The CRD: the committed file matches what `secretgate crd` prints, so the chart never
//! ships a stale schema; its formats are ones the API server knows; its CEL rules and
//! bounds are the ones below (each rule is also run on samples against the service's own
//! validation, in `src/policy/schema/tests.rs`); its printer columns and status.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

#[test]
fn committed_crd_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/secretgate/crds/projectpolicies.secretgate.io.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .arg("crd")
        .output()
        .expect("run secretgate crd");
    assert!(output.status.success(), "secretgate crd failed");
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        printed == committed,
        "{} is out of date with the ProjectPolicy types; regenerate it with\n  \
         cargo run -- crd > charts/secretgate/crds/projectpolicies.secretgate.io.yaml",
        path.display()
    );
}

fn crd() -> Value {
    serde_json::to_value(secretgate::policy::crd()).expect("CRD JSON")
}

fn version(crd: &Value) -> &Value {
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1);
    &versions[0]
}

fn spec_schema(crd: &Value) -> &Value {
    &version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]
}

/// Every `(path, value)` of `key` in a schema: paths like `spec.namespaces[]`.
fn collect<'a>(schema: &'a Value, path: String, key: &str, out: &mut Vec<(String, &'a Value)>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if let Some(value) = map.get(key) {
        out.push((path.clone(), value));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            collect(child, format!("{path}.{name}"), key, out);
        }
    }
    if let Some(items) = map.get("items") {
        collect(items, format!("{path}[]"), key, out);
    }
}

/// The formats kube-apiserver validates (k8s.io/kube-openapi `strfmt` defaults and the
/// OpenAPI number formats); any other prints `Warning: unrecognized format`.
const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "binary",
    "date",
    "date-time",
    "datetime",
    "duration",
    "password",
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
];

#[test]
fn formats_are_ones_the_api_server_knows() {
    let crd = crd();
    let mut formats = Vec::new();
    collect(
        &version(&crd)["schema"]["openAPIV3Schema"],
        String::new(),
        "format",
        &mut formats,
    );
    assert!(!formats.is_empty());
    for (path, format) in &formats {
        let format = format.as_str().expect("a string");
        assert!(
            KNOWN_FORMATS.contains(&format),
            "{path}: format {format:?} is unknown to Kubernetes"
        );
    }
    // u32 fields keep their range.
    let min_rsa_bits = &spec_schema(&crd)["properties"]["secrets"]["properties"]["ssh"]["properties"]
        ["minRsaBits"];
    assert_eq!(min_rsa_bits["format"], "int64");
    assert_eq!(min_rsa_bits["maximum"], json!(4_294_967_295.0));
    assert!(!secretgate::policy::crd_yaml().contains("uint"));
}

/// Every CEL rule of the spec: where, the rule, its message, its fieldPath.
const RULES: &[(&str, &str, &str, &str)] = &[
    (
        "spec.gitSync.containers",
        "size(self) > 0",
        "must name at least one container (omit it for the default, git-sync)",
        "",
    ),
    (
        "spec.gitSync.containers[]",
        "size(self.trim()) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.gitSync.mountPath",
        "self.startsWith('/') && !self.contains(':')",
        "must be an absolute path",
        "",
    ),
    (
        "spec.gitSync.secretName",
        "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$')",
        "must be a secret name (a DNS-1123 subdomain)",
        "",
    ),
    (
        "spec.gitSync.volumeName",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        "",
    ),
    (
        "spec.imagePullSecrets",
        "self.all(a, self.exists_one(b, b.secretName == a.secretName))",
        "lists a secretName twice; give one entry all its registries",
        "",
    ),
    (
        "spec.instanceSecrets",
        "self.all(a, self.exists_one(b, (has(b.targetName) ? b.targetName : b.source.name) == (has(a.targetName) ? a.targetName : a.source.name)))",
        "provides a secret name twice (targetName, or the source's name without one); copy names are unique in a policy",
        "",
    ),
    (
        "spec.instanceSecrets[].source.name",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "must be a secret name (a DNS-1123 subdomain)",
        "",
    ),
    (
        "spec.instanceSecrets[].source.namespace",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        "",
    ),
    (
        "spec.instanceSecrets[].targetName",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "must be a secret name (a DNS-1123 subdomain)",
        "",
    ),
    (
        "spec.imagePullSecrets[].registries[]",
        r"self.trim().matches('^([*][.])?([-a-zA-Z0-9.]+|\\[[0-9a-fA-F:.]+\\])(:[0-9]+)?$')",
        "must be a registry host[:port] or *.domain[:port], without a scheme or path",
        "",
    ),
    (
        "spec.imagePullSecrets[].secretName",
        "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$')",
        "must be a secret name (a DNS-1123 subdomain)",
        "",
    ),
    (
        "spec.namespaceSelector.matchExpressions[]",
        "self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
        "must be one of In, NotIn, Exists, DoesNotExist",
        ".operator",
    ),
    (
        "spec.namespaceSelector.matchExpressions[]",
        "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        "operators In and NotIn need at least one value",
        ".values",
    ),
    (
        "spec.namespaceSelector.matchExpressions[]",
        "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
        "operators Exists and DoesNotExist take no values",
        ".values",
    ),
    (
        "spec.namespaceSelector.matchExpressions[].key",
        "size(self) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.namespaces[]",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        "",
    ),
    (
        "spec.secrets.allowedTypes[]",
        "size(self.trim()) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.pullGuarantee.registries[]",
        r"self.trim().matches('^([*][.])?([-a-zA-Z0-9.]+|\\[[0-9a-fA-F:.]+\\])(:[0-9]+)?$')",
        "must be a registry host[:port] or *.domain[:port], without a scheme or path",
        "",
    ),
    (
        "spec.secrets.imagePull.allowedRegistries[]",
        r"self.trim().matches('^([*][.])?([-a-zA-Z0-9.]+|\\[[0-9a-fA-F:.]+\\])(:[0-9]+)?$')",
        "must be a registry host[:port] or *.domain[:port], without a scheme or path",
        "",
    ),
    (
        "spec.secrets.name",
        "!(has(self.forbidDots) && self.forbidDots) || !has(self.prefix) || !self.prefix.contains('.')",
        "contains '.', which forbidDots refuses in every name",
        ".prefix",
    ),
    (
        "spec.secrets.name",
        "!has(self.prefix) || !has(self.maxLength) || size(self.prefix) < self.maxLength",
        "leaves no room after the prefix",
        ".maxLength",
    ),
    (
        "spec.secrets.name.maxLength",
        "self >= 1 && self <= 253",
        "must be within 1..253",
        "",
    ),
    (
        "spec.secrets.name.prefix",
        "size(self) > 0",
        "must not be empty (omit it instead)",
        "",
    ),
    (
        "spec.secrets.name.prefix",
        "size(self) == 0 || self.matches('^[a-z0-9][-a-z0-9.]*$')",
        "can never start a secret name (lowercase letters, digits, '-' and '.', starting with a letter or digit)",
        "",
    ),
    (
        "spec.secrets.requiredAnnotations[]",
        "size(self.trim()) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.secrets.requiredLabels[]",
        "size(self.trim()) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.secrets.ssh.allowedAlgorithms[]",
        "self in ['ed25519', 'ecdsa', 'rsa']",
        "must be one of ed25519, ecdsa, rsa",
        "",
    ),
    (
        "spec.secrets.ssh.gitSyncKeyFields[]",
        "size(self.trim()) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.secrets.ssh.minRsaBits",
        "self >= 1024 && self <= 16384",
        "must be within 1024..16384",
        "",
    ),
    (
        "spec.secretUse.rules",
        "self.all(a, self.exists_one(b, b.name == a.name))",
        "lists a rule name twice; rule names are unique in a policy",
        "",
    ),
    (
        "spec.secretUse.rules[].name",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        "",
    ),
    (
        "spec.secretUse.rules[].secrets",
        "(has(self.names) && size(self.names) > 0) || (has(self.namePatterns) && size(self.namePatterns) > 0) || has(self.selector)",
        "selects no secret; give it names, namePatterns or a selector (selector: {} selects every secret)",
        "",
    ),
    (
        "spec.secretUse.rules[].secrets.names[]",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "must be a secret name (a DNS-1123 subdomain)",
        "",
    ),
    (
        "spec.secretUse.rules[].secrets.namePatterns[]",
        "size(self.trim()) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.secretUse.rules[].secrets.selector.matchExpressions[]",
        "self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
        "must be one of In, NotIn, Exists, DoesNotExist",
        ".operator",
    ),
    (
        "spec.secretUse.rules[].secrets.selector.matchExpressions[]",
        "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        "operators In and NotIn need at least one value",
        ".values",
    ),
    (
        "spec.secretUse.rules[].secrets.selector.matchExpressions[]",
        "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
        "operators Exists and DoesNotExist take no values",
        ".values",
    ),
    (
        "spec.secretUse.rules[].secrets.selector.matchExpressions[].key",
        "size(self) > 0",
        "must not be empty",
        "",
    ),
    (
        "spec.secretUse.rules[].serviceAccounts",
        "size(self) > 0",
        "must name at least one service account; to let no pod use a secret, leave it out of every rule with default: Deny, or have its owner set the annotation secretgate.io/allowed-service-accounts",
        "",
    ),
    (
        "spec.secretUse.rules[].serviceAccounts[]",
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
        "must be a service account name (a DNS-1123 subdomain), without system:serviceaccount:",
        "",
    ),
    (
        "spec.secretUse.rules[].podSelector.matchExpressions[]",
        "self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
        "must be one of In, NotIn, Exists, DoesNotExist",
        ".operator",
    ),
    (
        "spec.secretUse.rules[].podSelector.matchExpressions[]",
        "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
        "operators In and NotIn need at least one value",
        ".values",
    ),
    (
        "spec.secretUse.rules[].podSelector.matchExpressions[]",
        "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
        "operators Exists and DoesNotExist take no values",
        ".values",
    ),
    (
        "spec.secretUse.rules[].podSelector.matchExpressions[].key",
        "size(self) > 0",
        "must not be empty",
        "",
    ),
];

#[test]
fn every_cel_rule_and_message_is_in_the_crd() {
    let crd = crd();
    let mut found = Vec::new();
    collect(
        spec_schema(&crd),
        "spec".to_owned(),
        "x-kubernetes-validations",
        &mut found,
    );
    let mut got = BTreeSet::new();
    for (path, rules) in found {
        for rule in rules.as_array().expect("a list of rules") {
            let text = |key: &str| rule[key].as_str().unwrap_or_default().to_owned();
            got.insert((
                path.clone(),
                text("rule"),
                text("message"),
                text("fieldPath"),
            ));
        }
    }
    let want: BTreeSet<(String, String, String, String)> = RULES
        .iter()
        .map(|(p, r, m, f)| ((*p).into(), (*r).into(), (*m).into(), (*f).into()))
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing: {missing:#?}\nunexpected: {unexpected:#?}"
    );
}

#[test]
fn lists_and_strings_under_rules_are_bounded() {
    // The API server estimates the cost of each rule from these bounds, and refuses a CRD
    // whose rules could cost too much: every string a rule reads and every list holding
    // such strings or objects has a bound.
    let crd = crd();
    let mut found = Vec::new();
    collect(
        spec_schema(&crd),
        "spec".to_owned(),
        "x-kubernetes-validations",
        &mut found,
    );
    let spec = spec_schema(&crd);
    for (path, _) in &found {
        let mut at = spec;
        for step in path.trim_start_matches("spec").split('.').skip(1) {
            let (name, items) = match step.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (step, false),
            };
            at = &at["properties"][name];
            if items {
                assert!(at["maxItems"].is_u64(), "{name} in {path} has no maxItems");
                at = &at["items"];
            }
        }
        if at["type"] == "string" {
            assert!(at["maxLength"].is_u64(), "{path} has no maxLength");
        }
    }
}

#[test]
fn printer_columns_show_names_or_selector_and_readiness() {
    let crd = crd();
    let columns: Vec<(String, String, u64)> = version(&crd)["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["jsonPath"].as_str().expect("jsonPath").to_owned(),
                c["priority"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want = [
        ("Mode", ".spec.mode", 0),
        ("Namespaces", ".spec.namespaces", 0),
        ("Selector", ".spec.namespaceSelector", 0),
        (
            "Ready",
            r#".status.conditions[?(@.type=="Ready")].status"#,
            0,
        ),
        (
            "Reason",
            r#".status.conditions[?(@.type=="Ready")].reason"#,
            1,
        ),
        ("Age", ".metadata.creationTimestamp", 0),
    ];
    let want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(n, p, prio)| ((*n).to_owned(), (*p).to_owned(), *prio))
        .collect();
    assert_eq!(columns, want);
    // No default for namespaces: a selector-only policy shows <none> there, not [].
    let namespaces = &spec_schema(&crd)["properties"]["namespaces"];
    assert!(namespaces.get("default").is_none(), "{namespaces}");
}

#[test]
fn the_status_keeps_the_last_good_spec_and_the_spec_has_no_nullable() {
    let crd = crd();
    let status = &version(&crd)["schema"]["openAPIV3Schema"]["properties"]["status"];
    let last_good = &status["properties"]["lastGoodSpec"];
    assert_eq!(last_good["type"], "object");
    assert_eq!(last_good["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        status["properties"]["lastGoodGeneration"]["format"],
        "int64"
    );
    let mut nullable = Vec::new();
    collect(
        spec_schema(&crd),
        "spec".to_owned(),
        "nullable",
        &mut nullable,
    );
    assert!(nullable.is_empty(), "{nullable:?}");
    assert_eq!(
        version(&crd)["schema"]["openAPIV3Schema"]["required"],
        json!(["spec"])
    );
}

#[test]
fn secret_use_enums_stay_enums() {
    let crd = crd();
    let secret_use = &spec_schema(&crd)["properties"]["secretUse"]["properties"];
    assert_eq!(secret_use["default"]["enum"], json!(["Allow", "Deny"]));
    assert_eq!(secret_use["default"]["default"], "Allow");
    assert_eq!(
        secret_use["mode"]["enum"],
        json!(["Enforce", "Warn", "Audit"])
    );
    // Unset, the policy's mode applies: no default of its own.
    assert!(secret_use["mode"].get("default").is_none());
    let rule = &secret_use["rules"]["items"];
    assert_eq!(
        rule["required"],
        json!(["name", "secrets", "serviceAccounts"])
    );
}
