use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use serde_json::{Value, json};

use super::*;
use crate::policy::pull_secrets::fact_of;
use crate::policy::{ProjectPolicySpec, Severity, Snapshot};

fn snapshot(policy: Value) -> Snapshot {
    let spec: ProjectPolicySpec = serde_json::from_value(policy).expect("spec");
    let mut snapshot = Snapshot::with_fallback("team-a", spec);
    snapshot.pull_secrets = PullSecretIndex::known();
    snapshot
}

/// A `.dockerconfigjson` with `auths` as given.
fn docker_config(auths: Value) -> BTreeMap<String, ByteString> {
    let doc = serde_json::to_vec(&json!({ "auths": auths })).expect("json");
    BTreeMap::from([(".dockerconfigjson".to_owned(), ByteString(doc))])
}

fn auth() -> Value {
    let token = base64::engine::general_purpose::STANDARD.encode("robot:s3cr3t-pass");
    json!({ "auth": token })
}

fn add_pull_secret(snapshot: &mut Snapshot, name: &str, data: BTreeMap<String, ByteString>) {
    snapshot.secrets.insert("team-a", name);
    let fact = fact_of(Some("kubernetes.io/dockerconfigjson"), Some(&data)).expect("pull secret");
    snapshot.pull_secrets.insert("team-a", name, fact);
}

fn pod(spec: Value) -> PodSpec {
    serde_json::from_value(spec).expect("pod spec")
}

fn check(snapshot: &Snapshot, spec: &PodSpec, old: Option<&PodSpec>) -> Vec<Violation> {
    let policy = snapshot.for_namespace("team-a");
    let ctx = Context {
        policy,
        secrets: &snapshot.secrets,
        service_accounts: &snapshot.service_accounts,
        namespace: "team-a",
    };
    violations(spec, "spec", old, &ctx, &snapshot.pull_secrets)
}

fn guaranteed() -> Value {
    json!({
        "imagePullSecrets": [{"secretName": "regcred", "registries": ["ghcr.io"]}],
        "pullGuarantee": {"registries": ["registry.corp.example:5000"]}
    })
}

#[test]
fn a_private_image_without_a_serving_pull_secret_is_a_finding() {
    let snapshot = snapshot(guaranteed());
    let spec = pod(json!({"containers": [
        {"name": "app", "image": "ghcr.io/team-a/app:1.0"},
        {"name": "web", "image": "nginx:1.27"}
    ]}));
    let found = check(&snapshot, &spec, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "spec.containers[0].image");
    assert_eq!(found[0].severity, Severity::Deny);
    assert_eq!(
        found[0].message,
        "container \"app\" pulls \"ghcr.io/team-a/app:1.0\" from private registry ghcr.io, \
         but no pull secret of the pod serves it (the pull secrets of its service account: none)"
    );
}

#[test]
fn a_pull_secret_that_serves_the_registry_satisfies_it() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "regcred",
        docker_config(json!({"ghcr.io": auth()})),
    );
    let spec = pod(json!({
        "imagePullSecrets": [{"name": "regcred"}],
        "initContainers": [{"name": "init", "image": "ghcr.io/team-a/init@sha256:abcd"}],
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app:1.0"}],
        "ephemeralContainers": [{"name": "debug", "image": "registry.corp.example:5000/tools/debug"}]
    }));
    let found = check(&snapshot, &spec, None);
    // The ephemeral container's registry is private too, and regcred does not serve it.
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, "spec.ephemeralContainers[0].image");
    assert!(
        found[0]
            .message
            .contains("private registry registry.corp.example:5000")
            && found[0].message.contains("(imagePullSecrets: \"regcred\")"),
        "{}",
        found[0].message
    );
}

#[test]
fn why_each_named_secret_does_not_serve_is_said() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "other",
        docker_config(json!({"quay.io": auth()})),
    );
    snapshot.secrets.insert("team-a", "opaque");
    let spec = pod(json!({
        "imagePullSecrets": [{"name": "other"}, {"name": "opaque"}, {"name": "gone"}],
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    let found = check(&snapshot, &spec, None);
    let message = &found[0].message;
    assert!(
        message.contains("\"other\", \"opaque\" (not a pull secret the kubelet reads")
            && message.ends_with("\"gone\" (not found))"),
        "{message}"
    );
}

#[test]
fn an_entry_without_credentials_is_an_anonymous_pull() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "regcred",
        docker_config(json!({"ghcr.io": {}})),
    );
    let spec = pod(json!({
        "imagePullSecrets": [{"name": "regcred"}],
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    let found = check(&snapshot, &spec, None);
    assert!(
        found[0].message.contains("hold no credentials"),
        "{found:?}"
    );
}

#[test]
fn one_unreadable_pull_secret_fails_every_private_pull() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "regcred",
        docker_config(json!({"ghcr.io": auth()})),
    );
    // `auths` as a list: Go's json.Unmarshal fails, and the kubelet with it.
    let broken = BTreeMap::from([(
        ".dockerconfigjson".to_owned(),
        ByteString(br#"{"auths": ["ghcr.io"]}"#.to_vec()),
    )]);
    add_pull_secret(&mut snapshot, "broken", broken);
    let spec = pod(json!({
        "imagePullSecrets": [{"name": "regcred"}, {"name": "broken"}],
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    let found = check(&snapshot, &spec, None);
    assert_eq!(found.len(), 1);
    assert!(
        found[0]
            .message
            .contains("pull secret \"broken\" is not a docker config the kubelet can read"),
        "{}",
        found[0].message
    );
}

#[test]
fn the_service_account_pull_secrets_count_when_the_pod_names_none() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "regcred",
        docker_config(json!({"ghcr.io": auth()})),
    );
    snapshot
        .service_accounts
        .insert("team-a", "builder", vec!["regcred".to_owned()]);
    let by_builder = pod(json!({
        "serviceAccountName": "builder",
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    assert_eq!(check(&snapshot, &by_builder, None), Vec::new());
    let by_default = pod(json!({"containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]}));
    assert_eq!(check(&snapshot, &by_default, None).len(), 1);
}

#[test]
fn an_update_checks_only_new_images() {
    let snapshot = snapshot(guaranteed());
    let old = pod(json!({"containers": [{"name": "app", "image": "ghcr.io/team-a/app:1"}]}));
    // Stored before the policy: not the update's business.
    assert_eq!(check(&snapshot, &old.clone(), Some(&old)), Vec::new());
    let mut debugged = old.clone();
    debugged.ephemeral_containers = Some(vec![
        serde_json::from_value(json!({"name": "debug", "image": "ghcr.io/team-a/debug"}))
            .expect("container"),
    ]);
    let found = check(&snapshot, &debugged, Some(&old));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "spec.ephemeralContainers[0].image");
    let mut set_image = old.clone();
    set_image.containers[0].image = Some("ghcr.io/team-a/app:2".to_owned());
    assert_eq!(check(&snapshot, &set_image, Some(&old)).len(), 1);
}

#[test]
fn without_the_facts_pods_are_told_it_is_not_checked() {
    let mut snapshot = snapshot(guaranteed());
    snapshot.pull_secrets = PullSecretIndex::default();
    let spec = pod(json!({"containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]}));
    let found = check(&snapshot, &spec, None);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warn);
    assert!(found[0].message.contains("not checked"), "{found:?}");
    // Nothing private, nothing said.
    let public = pod(json!({"containers": [{"name": "app", "image": "nginx"}]}));
    assert_eq!(check(&snapshot, &public, None), Vec::new());
}

#[test]
fn no_guarantee_no_findings() {
    let snapshot = snapshot(json!({
        "imagePullSecrets": [{"secretName": "regcred", "registries": ["ghcr.io"]}]
    }));
    let spec = pod(json!({"containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]}));
    assert_eq!(check(&snapshot, &spec, None), Vec::new());
}

#[test]
fn no_finding_quotes_a_credential() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "regcred",
        docker_config(json!({"quay.io": auth()})),
    );
    let spec = pod(json!({
        "imagePullSecrets": [{"name": "regcred"}],
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    let found = format!("{:?}", check(&snapshot, &spec, None));
    let token = base64::engine::general_purpose::STANDARD.encode("robot:s3cr3t-pass");
    for secret in ["s3cr3t", "robot", token.as_str(), "quay.io"] {
        assert!(!found.contains(secret), "{secret} in {found}");
    }
}

#[test]
fn the_largest_pods_get_a_bounded_answer() {
    let mut snapshot = snapshot(guaranteed());
    add_pull_secret(
        &mut snapshot,
        "regcred",
        docker_config(json!({"ghcr.io": auth()})),
    );
    // Thousands of containers of one image: one lookup, and no finding.
    let same: Vec<Value> = (0..5_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "ghcr.io/team-a/app:1"}))
        .collect();
    let spec = pod(json!({"imagePullSecrets": [{"name": "regcred"}], "containers": same}));
    assert_eq!(check(&snapshot, &spec, None), Vec::new());
    // More different private images than are decided: one denial, not thousands.
    let many: Vec<Value> = (0..=MAX_DISTINCT_IMAGES)
        .map(|i| json!({"name": format!("c{i}"), "image": format!("ghcr.io/team-a/app{i}")}))
        .collect();
    let spec = pod(json!({"imagePullSecrets": [{"name": "regcred"}], "containers": many}));
    let found = check(&snapshot, &spec, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].message.contains("at most 256 images"),
        "{}",
        found[0].message
    );
    // A pull secret with more keys than are decided.
    let auths: serde_json::Map<String, Value> = (0..=MAX_KEYS)
        .map(|i| (format!("r{i}.example.com"), auth()))
        .collect();
    add_pull_secret(&mut snapshot, "huge", docker_config(Value::Object(auths)));
    let spec = pod(json!({
        "imagePullSecrets": [{"name": "huge"}],
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    let found = check(&snapshot, &spec, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].message.contains("4096 keys"),
        "{}",
        found[0].message
    );
}

#[test]
fn a_long_list_of_pull_secrets_is_counted_not_quoted_whole() {
    let snapshot = snapshot(guaranteed());
    let names: Vec<Value> = (0..50).map(|i| json!({"name": format!("s{i}")})).collect();
    let spec = pod(json!({
        "imagePullSecrets": names,
        "containers": [{"name": "app", "image": "ghcr.io/team-a/app"}]
    }));
    let found = check(&snapshot, &spec, None);
    assert!(
        found[0].message.ends_with("and 42 more)"),
        "{}",
        found[0].message
    );
}
