//! Pod mutation end to end over HTTPS with the recorded pods: which secrets each pod
//! gets, that every patch applies to the pod as sent, and that reviewing the patched pod
//! again gives no further patch (reinvocationPolicy IfNeeded).

mod common;

use base64::Engine as _;
use common::{Proto, TestServer, fixture};
use secretgate::policy::{GitSyncInjection, ProjectPolicySpec, PullSecretInjection, Snapshot};
use serde_json::{Value, json};

/// team-a's policy: a pull secret per registry, the git-sync key; `hub-cred` is named
/// by the policy but does not exist in the namespace.
fn team_a() -> Snapshot {
    let spec = ProjectPolicySpec {
        image_pull_secrets: vec![
            pull("regcred", &["registry.example.com:5000"]),
            pull("ghcr-cred", &["ghcr.io"]),
            pull("hub-cred", &["docker.io"]),
        ],
        git_sync: Some(GitSyncInjection {
            secret_name: "git-ssh".into(),
            containers: vec!["git-sync".into()],
            volume_name: "git-secret".into(),
            mount_path: "/etc/git-secret".into(),
        }),
        ..ProjectPolicySpec::default()
    };
    let mut snapshot = Snapshot::with_fallback("team-a", spec);
    for name in ["regcred", "ghcr-cred", "git-ssh"] {
        snapshot.secrets.insert("team-a", name);
    }
    snapshot
}

fn pull(name: &str, registries: &[&str]) -> PullSecretInjection {
    PullSecretInjection {
        secret_name: name.into(),
        registries: registries.iter().map(|r| r.to_string()).collect(),
    }
}

/// The decoded patch of a response, if any.
fn patch_of(response: &Value) -> Option<Value> {
    let b64 = response.get("patch")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    Some(serde_json::from_slice(&bytes).expect("JSON patch"))
}

struct Outcome {
    patch: Option<Value>,
    warnings: Vec<String>,
}

async fn mutate(client: &mut common::Client, review: &Value) -> Outcome {
    let reply = client
        .post("/mutate", serde_json::to_vec(review).expect("JSON"))
        .await;
    let answer = reply.json();
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{answer}");
    Outcome {
        patch: patch_of(response),
        warnings: response["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Applies `patch` to the request's object, and checks a second review asks for nothing.
async fn apply_and_reinvoke(
    client: &mut common::Client,
    name: &str,
    review: &Value,
    patch: &Value,
) -> Value {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone()).expect("patch");
    assert!(
        patch
            .as_array()
            .expect("array")
            .iter()
            .all(|op| op["op"] == "add"),
        "{name}: only additions, never a removal or rewrite: {patch}"
    );
    let mut pod = review["request"]["object"].clone();
    json_patch::patch(&mut pod, &ops)
        .unwrap_or_else(|e| panic!("{name}: patch does not apply: {e}"));
    let mut again = review.clone();
    again["request"]["object"] = pod.clone();
    let second = mutate(client, &again).await;
    assert_eq!(
        second.patch, None,
        "{name}: reinvocation must not patch again"
    );
    pod
}

#[tokio::test]
async fn every_recorded_pod_gets_exactly_what_its_policy_says() {
    let server = TestServer::start_with(team_a(), |_| {}).await;
    let mut client = server.client(Proto::Http2).await;
    let hub_missing = r#"imagePullSecret "hub-cred" named by policy "team-a" does not exist in namespace "team-a"; not injected"#;
    // (fixture, expected patch, expected warnings)
    let cases: Vec<(&str, Option<Value>, Vec<&str>)> = vec![
        ("pod-create-kubectl-run-nginx", None, vec![hub_missing]),
        (
            "pod-create-kubectl-run-docker-io-fqdn",
            None,
            vec![hub_missing],
        ),
        (
            "pod-create-private-registry-with-port",
            Some(json!([
                {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}
            ])),
            vec![],
        ),
        (
            "pod-create-ghcr",
            Some(json!([
                {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "ghcr-cred"}]}
            ])),
            vec![],
        ),
        (
            "pod-create-image-tag-and-digest-private-registry",
            Some(json!([
                {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}
            ])),
            vec![],
        ),
        ("pod-create-existing-imagepullsecrets", None, vec![]),
        (
            "pod-create-initcontainers",
            Some(json!([
                {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}, {"name": "ghcr-cred"}]}
            ])),
            vec![hub_missing],
        ),
        ("pod-create-localhost-registry", None, vec![]),
        (
            "pod-create-git-sync-container",
            Some(json!([
                {"op": "add", "path": "/spec/containers/1/volumeMounts/-", "value": {"name": "git-secret", "mountPath": "/etc/git-secret", "readOnly": true}},
                {"op": "add", "path": "/spec/volumes/-", "value": {"name": "git-secret", "secret": {"secretName": "git-ssh", "defaultMode": 256}}}
            ])),
            vec![hub_missing],
        ),
        (
            "pod-create-git-sync-already-has-secret-volume",
            None,
            vec![],
        ),
        ("pod-create-by-replicaset-controller", None, vec![]),
        ("pod-update-set-image", None, vec![]),
        ("pod-update-label", None, vec![]),
    ];
    for (name, expected_patch, expected_warnings) in cases {
        let review: Value =
            serde_json::from_slice(&fixture(&format!("{name}.json"))).expect("fixture");
        let outcome = mutate(&mut client, &review).await;
        assert_eq!(outcome.patch, expected_patch, "{name}");
        assert_eq!(outcome.warnings, expected_warnings, "{name}");
        if let Some(patch) = &outcome.patch {
            apply_and_reinvoke(&mut client, name, &review, patch).await;
        }
    }
    let metrics = server.metrics().await;
    for line in [
        r#"secretgate_injections_total{kind="image_pull_secret"} 5"#,
        r#"secretgate_injections_total{kind="git_sync_key"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn every_patch_applies_and_is_idempotent_for_every_recorded_pod() {
    let server = TestServer::start_with(team_a(), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let mut patched = 0;
    for (name, body) in common::request_fixtures() {
        if !(name.starts_with("pod-") || name.starts_with("reject-pod")) {
            continue;
        }
        let review: Value = serde_json::from_slice(&body).expect("fixture");
        if let Some(patch) = mutate(&mut client, &review).await.patch {
            apply_and_reinvoke(&mut client, &name, &review, &patch).await;
            patched += 1;
        }
    }
    assert!(patched >= 7, "only {patched} pods were patched");
    server.stop().await;
}

/// A pod fixture with its spec edited by `edit`.
fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut review: Value = serde_json::from_slice(&fixture(name)).expect("fixture");
    edit(&mut review["request"]["object"]);
    review
}

#[tokio::test]
async fn what_the_user_wrote_is_never_clobbered() {
    let server = TestServer::start_with(team_a(), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;

    // A volume named like ours but holding another secret: pod left as written.
    let review = edited("pod-create-git-sync-container.json", |pod| {
        pod["spec"]["volumes"]
            .as_array_mut()
            .expect("volumes")
            .push(json!({"name": "git-secret", "emptyDir": {}}));
    });
    let outcome = mutate(&mut client, &review).await;
    assert_eq!(outcome.patch, None);
    assert!(outcome.warnings.contains(&r#"volume "git-secret" already exists and does not hold secret "git-ssh"; git-sync key not injected"#.to_owned()), "{:?}", outcome.warnings);

    // Something else mounted at the key's path in the git-sync container, also written
    // as the runtime would clean it (trailing slash, doubled slashes, `.` and `..`).
    for written in [
        "/etc/git-secret",
        "/etc/git-secret/",
        "//etc//git-secret",
        "/etc/./x/../git-secret",
    ] {
        let review = edited("pod-create-git-sync-container.json", |pod| {
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array_mut()
                .expect("mounts")
                .push(json!({"name": "content", "mountPath": written}));
        });
        let outcome = mutate(&mut client, &review).await;
        assert_eq!(outcome.patch, None, "no volume without a mount ({written})");
        assert!(outcome.warnings.contains(&r#"container "git-sync" already mounts something at "/etc/git-secret"; git-sync key not mounted there"#.to_owned()), "{:?}", outcome.warnings);
    }

    // The pod names its own git-sync container; an absent volumeMounts list is created.
    let review = edited("pod-create-kubectl-run-nginx.json", |pod| {
        pod["metadata"]["annotations"] = json!({"secretgate.io/git-sync-containers": "nginx"});
        pod["spec"]["containers"][0]
            .as_object_mut()
            .expect("container")
            .remove("volumeMounts");
        pod["spec"].as_object_mut().expect("spec").remove("volumes");
    });
    let outcome = mutate(&mut client, &review).await;
    assert_eq!(
        outcome.patch,
        Some(json!([
            {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [{"name": "git-secret", "mountPath": "/etc/git-secret", "readOnly": true}]},
            {"op": "add", "path": "/spec/volumes", "value": [{"name": "git-secret", "secret": {"secretName": "git-ssh", "defaultMode": 256}}]}
        ]))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_pod_naming_hundreds_of_git_sync_containers_gets_no_key_and_a_warning() {
    let server = TestServer::start_with(team_a(), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    for (count, injected) in [(16, true), (17, false), (500, false)] {
        let review = edited("pod-create-kubectl-run-nginx.json", |pod| {
            let names: Vec<String> = (0..count).map(|i| format!("sync-{i}")).collect();
            pod["metadata"]["annotations"] =
                json!({"secretgate.io/git-sync-containers": names.join(",")});
            let containers = pod["spec"]["containers"]
                .as_array_mut()
                .expect("containers");
            let template = containers[0].clone();
            for name in &names {
                let mut c = template.clone();
                c["name"] = json!(name);
                containers.push(c);
            }
        });
        let outcome = mutate(&mut client, &review).await;
        let patch = outcome.patch.map(|p| p.to_string()).unwrap_or_default();
        assert_eq!(
            patch.contains("/spec/volumes"),
            injected,
            "{count}: {patch}"
        );
        if !injected {
            let warning = format!(
                "{count} containers are named as git-sync containers; at most 16 get the \
                 git-sync key, so it was not injected"
            );
            assert!(
                outcome.warnings.contains(&warning),
                "{:?}",
                outcome.warnings
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_missing_git_sync_secret_admits_the_pod_with_a_warning() {
    let mut snapshot = team_a();
    snapshot.secrets = Default::default();
    snapshot.secrets.insert("team-a", "regcred");
    let server = TestServer::start_with(snapshot, |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let review: Value =
        serde_json::from_slice(&fixture("pod-create-git-sync-container.json")).expect("fixture");
    let outcome = mutate(&mut client, &review).await;
    assert_eq!(outcome.patch, None);
    assert!(outcome.warnings.contains(&r#"git-sync key secret "git-ssh" named by policy "team-a" does not exist in namespace "team-a"; not injected"#.to_owned()), "{:?}", outcome.warnings);
    server.stop().await;
}

#[tokio::test]
async fn the_default_policy_injects_nothing() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http1).await;
    for (name, body) in common::request_fixtures() {
        if name.starts_with("pod-") {
            let review: Value = serde_json::from_slice(&body).expect("fixture");
            let outcome = mutate(&mut client, &review).await;
            assert_eq!((outcome.patch, outcome.warnings.len()), (None, 0), "{name}");
        }
    }
    server.stop().await;
}
