//! Who may use a secret, end to end over HTTPS (`POST /validate-pods`): recorded pods,
//! every kind of reference a pod spec can make, workloads through their templates,
//! `kubectl debug`'s ephemeral-container UPDATE, the owner's annotation, modes, and the
//! mutating webhook refusing to inject what a pod may not use.

mod common;

use common::{Proto, TestServer, fixture};
use secretgate::policy::{ProjectPolicySpec, SecretMeta, Snapshot};
use serde_json::{Value, json};

/// team-a: only service account `ci-runner` may use `deploy-key`; `regcred` (injected
/// for ghcr.io images) only `builder`; every other secret is free (default Allow).
fn policy(extra: Value) -> ProjectPolicySpec {
    let mut spec = json!({
        "imagePullSecrets": [{"secretName": "regcred", "registries": ["ghcr.io"]}],
        "secretUse": {
            "rules": [
                {"name": "ci-only", "secrets": {"names": ["deploy-key"]},
                 "serviceAccounts": ["ci-runner"]},
                {"name": "builders-pull", "secrets": {"names": ["regcred"]},
                 "serviceAccounts": ["builder"]},
            ]
        }
    });
    if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(spec).expect("policy spec")
}

fn snapshot(spec: ProjectPolicySpec) -> Snapshot {
    let mut snapshot = Snapshot::with_fallback("team-a", spec);
    for name in ["deploy-key", "regcred", "app-config"] {
        snapshot.secrets.insert("team-a", name);
    }
    snapshot
}

/// The recorded `kubectl run nginx` CREATE with `edit` applied to its pod.
fn pod_review(edit: impl FnOnce(&mut Value)) -> Value {
    let mut review: Value =
        serde_json::from_slice(&fixture("pod-create-kubectl-run-nginx.json")).expect("fixture");
    edit(&mut review["request"]["object"]);
    review
}

async fn post(client: &mut common::Client, review: &Value) -> Value {
    let reply = client
        .post("/validate-pods", serde_json::to_vec(review).expect("JSON"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    let answer = reply.json();
    assert_eq!(
        answer["response"]["uid"], review["request"]["uid"],
        "{answer}"
    );
    answer["response"].clone()
}

fn warnings_of(response: &Value) -> String {
    let lines: Vec<&str> = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    lines.join("\n")
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Each way a pod spec reaches a secret, as an edit of the pod and the field path the
/// denial must name.
/// An edit of a pod.
type Edit = Box<dyn Fn(&mut Value)>;
/// Nests a pod template where a workload kind keeps it.
type Nest = Box<dyn Fn(Value) -> Value>;

fn every_reference() -> Vec<(&'static str, Edit)> {
    fn volume(pod: &mut Value, v: Value) {
        pod["spec"]["volumes"]
            .as_array_mut()
            .expect("volumes")
            .push(v);
    }
    vec![
        (
            "spec.volumes[1].secret.secretName",
            Box::new(|p: &mut Value| {
                volume(
                    p,
                    json!({"name": "k", "secret": {"secretName": "deploy-key"}}),
                )
            }),
        ),
        (
            "spec.volumes[1].projected.sources[1].secret",
            Box::new(|p: &mut Value| {
                volume(
                    p,
                    json!({"name": "k", "projected": {"sources": [
                    {"configMap": {"name": "x"}}, {"secret": {"name": "deploy-key"}}]}}),
                )
            }),
        ),
        (
            "spec.volumes[1].csi.nodePublishSecretRef",
            Box::new(|p: &mut Value| {
                volume(
                    p,
                    json!({"name": "k", "csi": {"driver": "d.example.com",
                    "nodePublishSecretRef": {"name": "deploy-key"}}}),
                )
            }),
        ),
        (
            "spec.volumes[1].flexVolume.secretRef",
            Box::new(|p: &mut Value| {
                volume(
                    p,
                    json!({"name": "k", "flexVolume": {"driver": "x/y",
                    "secretRef": {"name": "deploy-key"}}}),
                )
            }),
        ),
        (
            "spec.volumes[1].azureFile.secretName",
            Box::new(|p: &mut Value| {
                volume(
                    p,
                    json!({"name": "k", "azureFile": {"secretName": "deploy-key",
                    "shareName": "s"}}),
                )
            }),
        ),
        (
            "spec.containers[0].env[0].valueFrom.secretKeyRef",
            Box::new(|p: &mut Value| {
                p["spec"]["containers"][0]["env"] = json!([{"name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "deploy-key", "key": "ssh"}}}]);
            }),
        ),
        (
            "spec.containers[0].envFrom[0].secretRef",
            Box::new(|p: &mut Value| {
                p["spec"]["containers"][0]["envFrom"] =
                    json!([{"secretRef": {"name": "deploy-key"}}]);
            }),
        ),
        (
            "spec.initContainers[0].envFrom[0].secretRef",
            Box::new(|p: &mut Value| {
                p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox",
                    "envFrom": [{"secretRef": {"name": "deploy-key"}}]}]);
            }),
        ),
        (
            "spec.imagePullSecrets[0]",
            Box::new(|p: &mut Value| {
                p["spec"]["imagePullSecrets"] = json!([{"name": "deploy-key"}]);
            }),
        ),
    ]
}

#[tokio::test]
async fn recorded_pods_that_use_no_protected_secret_are_allowed() {
    // Only deploy-key is protected (the recorded pods use regcred freely).
    let spec = policy(json!({"secretUse": {"rules": [
        {"name": "ci-only", "secrets": {"names": ["deploy-key"]}, "serviceAccounts": ["ci-runner"]}]}}));
    let server = TestServer::start_with(snapshot(spec), |_| {}).await;
    let mut client = server.client(Proto::Http2).await;
    let mut seen = 0;
    for (name, body) in common::request_fixtures() {
        if !name.starts_with("pod-create") {
            continue;
        }
        let review: Value = serde_json::from_slice(&body).expect("fixture");
        let response = post(&mut client, &review).await;
        assert_eq!(response["allowed"], true, "{name}: {response}");
        seen += 1;
    }
    assert!(seen >= 15, "recorded pod creates: {seen}");
    server.stop().await;
}

#[tokio::test]
async fn every_kind_of_reference_is_refused_to_other_service_accounts() {
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    for (field, edit) in every_reference() {
        let review = pod_review(|pod| edit(pod));
        let response = post(&mut client, &review).await;
        assert_eq!(response["allowed"], false, "{field}: {response}");
        assert_eq!(response["status"]["code"], 403);
        let text = message(&response);
        assert!(
            text.starts_with("pod violates policy \"team-a\": "),
            "{text}"
        );
        for part in [field, "\"deploy-key\"", "\"default\"", "\"ci-only\""] {
            assert!(text.contains(part), "{field}: {part} missing in {text}");
        }

        let allowed = pod_review(|pod| {
            edit(pod);
            pod["spec"]["serviceAccountName"] = json!("ci-runner");
            pod["spec"]["serviceAccount"] = json!("ci-runner");
        });
        let response = post(&mut client, &allowed).await;
        assert_eq!(response["allowed"], true, "{field}: {response}");
    }
    server.stop().await;
}

/// A workload review as the API server sends it, with the fixture pod's spec as its
/// template.
fn workload_review(
    group: &str,
    kind: &str,
    resource: &str,
    account: &str,
    nest: impl FnOnce(Value) -> Value,
) -> Value {
    let pod = pod_review(|pod| {
        pod["spec"]["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "deploy-key"}}]);
        pod["spec"]["serviceAccountName"] = json!(account);
        pod["spec"]["serviceAccount"] = json!(account);
    });
    let template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": pod["request"]["object"]["spec"].clone(),
    });
    let api_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    let gvk = json!({"group": group, "version": "v1", "kind": kind});
    let gvr = json!({"group": group, "version": "v1", "resource": resource});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("4a4b0c9e-0000-4000-8000-{:012x}", kind.len() * 7919 + account.len()),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": "web", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "dev"},
            "object": {
                "apiVersion": api_version, "kind": kind,
                "metadata": {"name": "web", "namespace": "team-a"},
                "spec": nest(template),
            },
            "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        }
    })
}

#[tokio::test]
async fn workloads_are_refused_at_apply_with_the_path_inside_their_template() {
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http2).await;
    let template = |t: Value| json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": t});
    let job = |t: Value| json!({"jobTemplate": {"spec": {"template": t}}, "schedule": "* * * * *"});
    let cases: Vec<(&str, &str, &str, Nest, &str)> = vec![
        (
            "apps",
            "Deployment",
            "deployments",
            Box::new(template),
            "spec.template.spec",
        ),
        (
            "apps",
            "StatefulSet",
            "statefulsets",
            Box::new(template),
            "spec.template.spec",
        ),
        (
            "apps",
            "DaemonSet",
            "daemonsets",
            Box::new(template),
            "spec.template.spec",
        ),
        (
            "apps",
            "ReplicaSet",
            "replicasets",
            Box::new(template),
            "spec.template.spec",
        ),
        (
            "batch",
            "Job",
            "jobs",
            Box::new(template),
            "spec.template.spec",
        ),
        (
            "",
            "ReplicationController",
            "replicationcontrollers",
            Box::new(template),
            "spec.template.spec",
        ),
        (
            "batch",
            "CronJob",
            "cronjobs",
            Box::new(job),
            "spec.jobTemplate.spec.template.spec",
        ),
    ];
    for (group, kind, resource, nest, prefix) in cases {
        let review = workload_review(group, kind, resource, "default", &nest);
        let response = post(&mut client, &review).await;
        assert_eq!(response["allowed"], false, "{kind}: {response}");
        let text = message(&response);
        let field = format!("{prefix}.containers[0].envFrom[0].secretRef");
        assert!(
            text.starts_with(&format!("{kind} violates policy \"team-a\": {field}: ")),
            "{text}"
        );
        assert!(text.contains("\"ci-only\""), "{text}");

        let ok = workload_review(group, kind, resource, "ci-runner", &nest);
        let response = post(&mut client, &ok).await;
        assert_eq!(response["allowed"], true, "{kind}: {response}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_ephemeral_container_is_checked_and_existing_references_are_not() {
    // The pod was admitted before the rule existed, with deploy-key mounted.
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let update = |ephemeral: Value| {
        let mut review = pod_review(|pod| {
            pod["spec"]["volumes"]
                .as_array_mut()
                .expect("volumes")
                .push(json!({"name": "k", "secret": {"secretName": "deploy-key"}}));
        });
        let request = &mut review["request"];
        request["operation"] = json!("UPDATE");
        request["subResource"] = json!("ephemeralcontainers");
        request["oldObject"] = request["object"].clone();
        request["object"]["spec"]["ephemeralContainers"] = json!([ephemeral]);
        request["options"] = json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"});
        review
    };
    let debug = json!({"name": "debugger", "image": "busybox"});
    let response = post(&mut client, &update(debug)).await;
    assert_eq!(response["allowed"], true, "nothing new: {response}");

    let reads_key = json!({"name": "debugger", "image": "busybox",
        "envFrom": [{"secretRef": {"name": "deploy-key"}}]});
    let response = post(&mut client, &update(reads_key)).await;
    assert_eq!(response["allowed"], false, "{response}");
    let text = message(&response);
    assert!(
        text.contains("spec.ephemeralContainers[0].envFrom[0].secretRef"),
        "{text}"
    );
    assert!(
        !text.contains("spec.volumes"),
        "existing references ratchet: {text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn modes_defaults_owners_and_unknown_secrets() {
    // Warn: allowed with the finding as a warning.
    let warn = policy(json!({"secretUse": {"mode": "Warn", "rules": [
        {"name": "ci-only", "secrets": {"names": ["deploy-key"]}, "serviceAccounts": ["ci-runner"]}]}}));
    let server = TestServer::start_with(snapshot(warn), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let review = pod_review(|pod| {
        pod["spec"]["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "deploy-key"}}]);
    });
    let response = post(&mut client, &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = warnings_of(&response);
    assert!(warnings.contains("\"ci-only\""), "{warnings}");
    server.stop().await;

    // Default Deny: a secret no rule mentions is refused.
    let deny = policy(json!({"secretUse": {"default": "Deny", "rules": [
        {"name": "ci-only", "secrets": {"names": ["deploy-key"]}, "serviceAccounts": ["ci-runner"]}]}}));
    let mut snap = snapshot(deny);
    // The owner of app-config narrows it to `web`.
    snap.secrets.insert_meta(
        "team-a",
        "owned",
        SecretMeta {
            allowed_service_accounts: Some("web".into()),
            ..SecretMeta::default()
        },
    );
    let server = TestServer::start_with(snap, |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let uses = |secret: &str, account: &str| {
        let secret = secret.to_owned();
        let account = account.to_owned();
        pod_review(move |pod| {
            pod["spec"]["containers"][0]["env"] = json!([{"name": "X",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]);
            pod["spec"]["serviceAccountName"] = json!(account);
            pod["spec"]["serviceAccount"] = json!(account);
        })
    };
    let response = post(&mut client, &uses("app-config", "web")).await;
    assert_eq!(response["allowed"], false);
    assert!(message(&response).contains("default is Deny"), "{response}");
    server.stop().await;

    // Label rules: a secret secretgate has not seen cannot be decided, so it is refused.
    let by_label = policy(json!({"secretUse": {"rules": [
        {"name": "prod", "secrets": {"selector": {"matchLabels": {"tier": "prod"}}},
         "serviceAccounts": ["deployer"]}]}}));
    let mut snap = snapshot(by_label);
    snap.secrets.insert_meta(
        "team-a",
        "db-prod",
        SecretMeta {
            labels: [("tier".to_owned(), "prod".to_owned())].into(),
            allowed_service_accounts: None,
        },
    );
    snap.secrets.insert_meta(
        "team-a",
        "owned",
        SecretMeta {
            allowed_service_accounts: Some("web".into()),
            ..SecretMeta::default()
        },
    );
    let server = TestServer::start_with(snap, |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    for (secret, account, allowed, says) in [
        ("db-prod", "web", false, "\"prod\""),
        ("db-prod", "deployer", true, ""),
        ("app-config", "web", true, ""),
        ("not-yet", "web", false, "not known to secretgate yet"),
        ("owned", "web", true, ""),
        (
            "owned",
            "deployer",
            false,
            "secretgate.io/allowed-service-accounts",
        ),
    ] {
        let response = post(&mut client, &uses(secret, account)).await;
        assert_eq!(
            response["allowed"], allowed,
            "{secret} {account}: {response}"
        );
        assert!(message(&response).contains(says), "{secret}: {response}");
    }
    server.stop().await;
}

#[tokio::test]
async fn secretgate_does_not_inject_what_the_pod_may_not_use() {
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let review: Value = serde_json::from_slice(&fixture("pod-create-ghcr.json")).expect("fixture");
    let reply = client
        .post("/mutate", serde_json::to_vec(&review).expect("JSON"))
        .await;
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], true);
    assert!(
        response.get("patch").is_none_or(Value::is_null),
        "{response}"
    );
    let warnings = warnings_of(response);
    assert!(
        warnings.contains("imagePullSecret \"regcred\" not injected")
            && warnings.contains("\"builders-pull\""),
        "{warnings}"
    );

    let mut builder = review.clone();
    builder["request"]["object"]["spec"]["serviceAccountName"] = json!("builder");
    builder["request"]["object"]["spec"]["serviceAccount"] = json!("builder");
    let reply = client
        .post("/mutate", serde_json::to_vec(&builder).expect("JSON"))
        .await;
    assert!(
        reply.json()["response"]["patch"].is_string(),
        "{}",
        reply.json()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_broken_policy_refuses_pods_rather_than_failing_open() {
    let snap = {
        use secretgate::policy::Policy;
        let broken = Policy::broken(
            "team-a",
            "spec.secretUse: does not parse",
            Some(&json!({"namespaces": ["team-a"]})),
        );
        Snapshot::build(vec![broken], &Default::default(), Default::default())
    };
    let server = TestServer::start_with(snap, |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let response = post(&mut client, &pod_review(|_| {})).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(message(&response).contains("is invalid"), "{response}");
    server.stop().await;
}

/// The README's worked example: its policy, and the denial it prints for a Deployment
/// of service account `default` reading `deploy-key`.
#[tokio::test]
async fn the_readme_worked_example_says_what_the_server_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let example = &readme[readme.find("**Worked example.**").expect("example")..];
    let yaml = example
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("policy block");
    let console = example
        .split("```console\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("console block");
    // In a cluster, deploy-key exists (the cache knows it); here a document says so.
    let state = format!(
        "{yaml}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: deploy-key, namespace: team-a}}\n"
    );
    let snapshot = secretgate::policy::file::parse(std::path::Path::new("README.md"), &state)
        .expect("the README policy loads");
    let server = TestServer::start_with(snapshot, |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let template = |t: Value| json!({"selector": {"matchLabels": {"app": "web"}}, "template": t});
    let review = workload_review("apps", "Deployment", "deployments", "default", template);
    let response = post(&mut client, &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    let printed: String = console.lines().skip(1).collect::<Vec<_>>().join(" ");
    let expected = format!(
        "Error from server (Forbidden): error when creating \"web.yaml\": admission webhook \
         \"pods.validate.secretgate.io\" denied the request: {}",
        message(&response)
    );
    assert_eq!(printed.trim(), expected);
    server.stop().await;
}

/// Deciding is bounded per pod: up to 1,024 different secrets are decided, more is one
/// refusal (never admitted undecided).
#[tokio::test]
async fn a_pod_using_more_different_secrets_than_the_bound_is_refused() {
    let server = TestServer::start_with(snapshot(policy(json!({}))), |_| {}).await;
    let mut client = server.client(Proto::Http1).await;
    let with = |n: usize| {
        pod_review(move |pod| {
            let env: Vec<Value> = (0..n)
                .map(|i| {
                    json!({"name": format!("V{i}"),
                    "valueFrom": {"secretKeyRef": {"name": format!("s-{i}"), "key": "k"}}})
                })
                .collect();
            pod["spec"]["containers"][0]["env"] = Value::Array(env);
        })
    };
    let bound = secretgate::pods::secret_use::MAX_DISTINCT_SECRETS;
    let response = post(&mut client, &with(bound)).await;
    assert_eq!(response["allowed"], true, "{response}");
    let response = post(&mut client, &with(bound + 1)).await;
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("1025 different secrets"),
        "{response}"
    );
    server.stop().await;
}
