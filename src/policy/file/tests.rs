//! Policy file parsing: documents, resolution, and errors that point at the line.

use super::*;
use crate::policy::{DEFAULT_POLICY_NAME, Mode, default_policy_yaml};

fn parse_str(text: &str) -> Result<Snapshot> {
    parse(Path::new("policy.yaml"), text)
}

fn error(text: &str) -> String {
    match parse_str(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const FILE: &str = "\
# Team A's project.
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata:
  name: team-a
spec:
  namespaceSelector:
    matchLabels: {project: a}
  mode: Warn
---
apiVersion: v1
kind: Namespace
metadata:
  name: a-dev
  labels: {project: a}
---
apiVersion: v1
kind: Secret
metadata:
  name: pull
  namespace: a-dev
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: eyJhdXRocyI6e319
";

#[test]
fn policies_namespaces_and_secrets() {
    let snap = parse_str(FILE).expect("parses");
    assert_eq!(snap.policy_count(), 1);
    let resolved = snap.for_namespace("a-dev");
    assert_eq!(
        (&*resolved.name, resolved.spec.mode),
        ("team-a", Mode::Warn)
    );
    assert_eq!(&*snap.for_namespace("b-dev").name, DEFAULT_POLICY_NAME);
    assert!(snap.secrets.contains("a-dev", "pull"));
    assert_eq!(snap.secrets.len(), 1);
}

#[test]
fn the_printed_default_policy_loads_back() {
    let snap = parse_str(&default_policy_yaml()).expect("default policy parses");
    assert_eq!(snap.policy_count(), 1);
}

#[test]
fn an_empty_policy_is_never_inferred() {
    let namespaces_only = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n";
    for text in [
        "",
        "\n\n",
        "# nothing yet\n",
        "---\n# nothing yet\n---\n",
        namespaces_only,
    ] {
        let got = error(text);
        assert!(
            got.starts_with("policy.yaml: no ProjectPolicy document"),
            "{text:?}: {got}"
        );
        assert!(got.contains(EXPLICITLY_EMPTY), "{text:?}: {got}");
    }
}

#[test]
fn an_explicitly_empty_list_means_the_default_everywhere() {
    for text in [
        EXPLICITLY_EMPTY.to_owned(),
        format!("# No project policy yet.\n---\n{EXPLICITLY_EMPTY}"),
        format!("{EXPLICITLY_EMPTY}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n"),
    ] {
        let snap = parse_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(snap.policy_count(), 0);
        assert_eq!(&*snap.for_namespace("x").name, DEFAULT_POLICY_NAME);
    }
}

#[test]
fn a_policy_list_holds_policies_as_kubectl_lists_them() {
    let text = "\
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicyList
metadata: {resourceVersion: \"12\"}
items:
  - apiVersion: secretgate.io/v1alpha1
    kind: ProjectPolicy
    metadata: {name: team-a, uid: x, generation: 3}
    spec: {namespaces: [a-dev], mode: Warn}
    status: {conditions: []}
  - metadata: {name: team-b}
    spec: {namespaces: [b-dev]}
";
    let snap = parse_str(text).expect("parses");
    assert_eq!(snap.policy_count(), 2);
    assert_eq!(snap.for_namespace("a-dev").spec.mode, Mode::Warn);
    assert_eq!(&*snap.for_namespace("b-dev").name, "team-b");

    let cases = [
        (
            "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicyList\n",
            "policy.yaml:2:1: document 1: missing field `items`",
        ),
        (
            "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicyList\nitems:\n- {kind: Namespace, metadata: {name: a}}\n",
            "policy.yaml:1: document 1: items[0]: apiVersion \"secretgate.io/v1alpha1\", kind \"Namespace\" is not",
        ),
        (
            "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicyList\nitems:\n- {metadata: {name: a}}\n",
            "policy.yaml:1: document 1: items[0]: ProjectPolicy \"a\" has no spec",
        ),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.starts_with(want), "want {want:?}, got {got:?}");
    }
}

#[test]
fn a_file_cut_short_is_refused() {
    let policy_a = "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata: {name: a}\nspec: {namespaces: [a]}\n";
    let cases = [
        // Cut after a separator: the next document is missing.
        (
            format!("{policy_a}---\n"),
            "policy.yaml:5: document 2: the file ends with `---` and no document after it",
        ),
        (
            format!("{policy_a}---\n# Team B\n"),
            "policy.yaml:5: document 2: the file ends with `---`",
        ),
        // Cut inside a ProjectPolicy, before its spec.
        (
            format!(
                "{policy_a}---\napiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata:\n  name: b\n"
            ),
            "policy.yaml:6: document 2: ProjectPolicy \"b\" has no spec (is the file cut short?)",
        ),
        (
            format!(
                "{policy_a}---\napiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata:\n  name: b\nspec:\n"
            ),
            "policy.yaml:6: document 2: ProjectPolicy \"b\" has no spec",
        ),
        // Cut inside a value.
        (
            format!(
                "{policy_a}---\napiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata:\n  name: b\nspec: {{namespaces: [b"
            ),
            "policy.yaml:10:",
        ),
        (
            format!("{policy_a}---\napiVersion: secretgate.io/v1alpha1\nkind: Proj"),
            "policy.yaml:6: document 2: apiVersion",
        ),
    ];
    for (text, want) in cases {
        let got = error(&text);
        assert!(got.starts_with(want), "want {want:?}, got {got:?}");
    }
    // A leading separator and an explicit document end are fine.
    parse_str(&format!("---\n{policy_a}")).expect("leading ---");
    parse_str(&format!("{policy_a}...\n")).expect("document end marker");
    parse_str(&format!("--- # team a\n{policy_a}")).expect("separator with a comment");
}

#[test]
fn errors_name_line_column_and_document() {
    let bad_value = FILE.replace(
        "mode: Warn",
        "mode: Warn\n  secrets: {ssh: {minRsaBits: lots}}",
    );
    let bad_labels = FILE.replace("labels: {project: a}", "labels: [project]");
    let policy_typo = FILE.replace("  mode: Warn", "  mdoe: Warn");
    let broken_yaml = format!("{FILE}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: [\n");
    let cases = [
        (
            bad_value.as_str(),
            "policy.yaml:10:31: document 1: invalid value, expected u32",
        ),
        (bad_labels.as_str(), "policy.yaml:15:11: document 2: "),
        (
            policy_typo.as_str(),
            "policy.yaml:9:3: document 1: unknown field, expected one of ",
        ),
        (broken_yaml.as_str(), "policy.yaml:28:"),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.starts_with(want), "want {want:?}, got {got:?}");
    }
}

#[test]
fn document_errors() {
    let two = format!(
        "{FILE}---\n{}",
        &FILE[..FILE.find("---").expect("separator")]
    );
    let cases = [
        (
            two.as_str(),
            "policy.yaml:26: document 4: ProjectPolicy \"team-a\" is defined twice",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            "policy.yaml:1: document 1: apiVersion \"apps/v1\", kind \"Deployment\" is not one of",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
            "policy.yaml:1: document 1: Secret \"x\" needs metadata.namespace",
        ),
        (
            "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata: {name: p}\nspec:\n  secrets: {ssh: {minRsaBits: 100}}\n",
            "policy.yaml:1: document 1: policy \"p\" is invalid: spec.secrets.ssh.minRsaBits: 100 is outside 1024..16384",
        ),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(got.starts_with(want), "want {want:?}, got {got:?}");
    }
}

#[test]
fn secret_values_never_reach_error_messages() {
    // A syntax error inside a Secret document: the message must not quote its data.
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\ndata:\n  key: [c3VwZXJzZWNyZXQ=, {\n  other: \"c3VwZXJzZWNyZXQ=\n";
    let got = error(text);
    assert!(!got.contains("c3VwZXJzZWNyZXQ"), "{got}");
}

/// A marker that must never appear in an error, planted where a tenant could put a
/// credential: a key, a value, a field name, just before a syntax error.
const MARKER: &str = "PLANTEDSECRET123";

/// Documents whose errors are planted with [`MARKER`], and the line and column each
/// error must name.
fn planted() -> Vec<(&'static str, String, &'static str)> {
    let policy = |spec: &str| {
        format!(
            "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicy\nmetadata: {{name: p}}\n\
             spec:\n{spec}"
        )
    };
    let secret = |data: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: n}}\ndata:\n{data}")
    };
    vec![
        (
            "duplicate key",
            policy(&format!(
                "  namespaces: [a]\n  {MARKER}: 1\n  {MARKER}: 2\n"
            )),
            "policy.yaml:7:3: document 1: duplicate mapping key",
        ),
        (
            "duplicate key in a Secret's data",
            secret(&format!("  {MARKER}: eA==\n  {MARKER}: eQ==\n")),
            "policy.yaml:6:3: document 1: duplicate mapping key",
        ),
        (
            "wrong type",
            policy(&format!("  namespaces: {MARKER}\n")),
            "policy.yaml:5:15: document 1: invalid type, expected sequence",
        ),
        (
            "unknown value",
            policy(&format!("  mode: {MARKER}\n")),
            "policy.yaml:5:9: document 1: unknown value, expected one of Enforce, Warn, Audit",
        ),
        (
            "unknown field",
            policy(&format!("  {MARKER}: [a]\n")),
            "policy.yaml:5:3: document 1: unknown field, expected one of ",
        ),
        (
            "invalid pattern",
            policy(&format!(
                "  secrets: {{name: {{pattern: \"{MARKER}(\"}}}}\n"
            )),
            "policy.yaml:5:29: document 1: invalid regular expression",
        ),
        (
            "syntax error after the marker",
            secret(&format!("  k: {MARKER}: [\n")),
            "policy.yaml:5:22: document 1: syntax error",
        ),
        (
            "owner annotation of the wrong type",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: n\n  \
                 annotations:\n    secretgate.io/allowed-service-accounts: [{MARKER}]\n    \
                 {MARKER}: {{{MARKER}: [{MARKER}]}}\n"
            ),
            "policy.yaml:7:45: document 1: invalid type, expected string scalar",
        ),
        (
            "unterminated quote after the marker",
            secret(&format!("  k: \"{MARKER}\n  j: x\n")),
            "policy.yaml:5:6: document 1: syntax error",
        ),
    ]
}

#[test]
fn errors_never_quote_a_key_or_value() {
    for (case, text, want) in planted() {
        let got = error(&text);
        assert!(got.starts_with(want), "{case}: want {want:?}, got {got:?}");
        assert!(!got.contains(MARKER), "{case}: {got}");
    }
}

#[tokio::test]
async fn reload_errors_never_quote_a_key_or_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, FILE).expect("write");
    let (file, _) = PolicyFile::load(&path).expect("loads");
    for (case, text, _) in planted() {
        std::fs::write(&path, &text).expect("write");
        let err = file.reload().await.expect_err(case);
        for shown in [format!("{err}"), format!("{err:#}"), format!("{err:?}")] {
            assert!(!shown.contains(MARKER), "{case}: {shown}");
        }
        assert!(
            err.to_string().starts_with(&format!("{}:", path.display())),
            "{case}: {err}"
        );
    }
}

const CLUSTER_STATE: &str = "\
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicyList
items: []
---
apiVersion: v1
kind: Secret
metadata:
  name: deploy-key
  namespace: a-dev
  labels: {tier: ci}
  annotations:
    secretgate.io/allowed-service-accounts: ci-runner,deployer
    kubectl.kubernetes.io/last-applied-configuration: |
      {\"data\": {\"ssh\": \"UExBTlRFRA==\"}}
    replicas: 3
data:
  ssh: UExBTlRFRA==
---
apiVersion: v1
kind: Secret
metadata: {name: plain, namespace: a-dev, annotations: null}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ci-runner, namespace: a-dev}
imagePullSecrets: [{name: regcred}, {name: \"\"}, {name: mirror}]
secrets: [{name: ci-runner-token}]
automountServiceAccountToken: false
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: a-dev}
";

#[test]
fn secrets_keep_their_labels_and_owner_annotation() {
    let snap = parse_str(CLUSTER_STATE).expect("parses");
    let key = snap.secrets.get("a-dev", "deploy-key").expect("deploy-key");
    assert_eq!(key.labels.get("tier").map(String::as_str), Some("ci"));
    assert_eq!(
        key.allowed_service_accounts.as_deref(),
        Some("ci-runner,deployer")
    );
    assert_eq!(
        snap.secrets.get("a-dev", "plain"),
        Some(&crate::policy::SecretMeta::default())
    );
}

#[test]
fn service_accounts_state_the_pull_secrets_their_pods_inherit() {
    let snap = parse_str(CLUSTER_STATE).expect("parses");
    let accounts = &snap.service_accounts;
    assert_eq!(accounts.len(), 2);
    assert_eq!(
        accounts.pull_secrets("a-dev", "ci-runner"),
        Some(&["regcred".to_owned(), "mirror".to_owned()][..])
    );
    assert_eq!(accounts.pull_secrets("a-dev", "default"), Some(&[][..]));
    assert_eq!(accounts.pull_secrets("b-dev", "default"), None);

    // Cluster state alone is no policy.
    let only_state = &CLUSTER_STATE[CLUSTER_STATE.find("---").expect("separator") + 4..];
    assert!(error(only_state).starts_with("policy.yaml: no ProjectPolicy document"));
}

#[test]
fn cluster_state_errors() {
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ci, namespace: a}\n";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: a}\n";
    let cases = [
        (
            format!(
                "{EXPLICITLY_EMPTY}---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: ci}}\n"
            ),
            "policy.yaml:5: document 2: ServiceAccount \"ci\" needs metadata.namespace",
        ),
        (
            format!("{EXPLICITLY_EMPTY}---\n{sa}---\n{sa}"),
            "policy.yaml:9: document 3: ServiceAccount \"a\"/\"ci\" is defined twice",
        ),
        (
            format!("{EXPLICITLY_EMPTY}---\n{secret}---\n{secret}"),
            "policy.yaml:9: document 3: Secret \"a\"/\"s\" is defined twice",
        ),
        (
            format!("{EXPLICITLY_EMPTY}---\n{sa}imagePullSecrets: regcred\n"),
            "policy.yaml:8:19: document 2: invalid type, expected ",
        ),
        (
            format!(
                "{EXPLICITLY_EMPTY}---\n{}",
                secret.replace(
                    "namespace: a}",
                    "namespace: a, annotations: {secretgate.io/allowed-service-accounts: [x]}}"
                )
            ),
            "policy.yaml:7:",
        ),
        (
            format!(
                "{EXPLICITLY_EMPTY}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n"
            ),
            "policy.yaml:5: document 2: apiVersion \"v1\", kind \"ConfigMap\" is not one of \
             secretgate.io/v1alpha1 ProjectPolicy or ProjectPolicyList, v1 Namespace, v1 Secret, \
             v1 ServiceAccount",
        ),
    ];
    for (text, want) in cases {
        let got = error(&text);
        assert!(got.starts_with(want), "want {want:?}, got {got:?}");
    }
}
