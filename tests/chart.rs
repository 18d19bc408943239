//! The Helm chart (charts/secretgate), rendered and checked without a cluster: `helm lint`,
//! `helm template` in each certificate mode and with the interesting values, the objects
//! that keep a cluster safe, the guard rails, the values schema, and the Kubernetes API
//! schemas (`kubernetes-validate`).
//!
//! helm and kubernetes-validate come from `bash .ci/tools.sh`. Without them these tests
//! fail under CI (`CI=true`) and are skipped, with a message, elsewhere.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::Parser as _;
use serde_json::{Value, json};

const RELEASE: &str = "sg";
const NAMESPACE: &str = "secretgate-system";
/// The Kubernetes version manifests are rendered for and validated against.
const KUBE_VERSION: &str = "1.33.0";
/// Kinds kubernetes-validate has no schema for (custom resources); anything else must
/// validate.
const CUSTOM_KINDS: &[&str] = &[
    "Certificate",
    "Issuer",
    "ServiceMonitor",
    "PrometheusRule",
    "ProjectPolicy",
];

const CERT_MANAGER: &[&str] = &[
    "--set",
    "tls.generate.enabled=false",
    "--set",
    "tls.certManager.enabled=true",
];

// ---------------------------------------------------------------------------------------
// Lint and schemas of the rendered manifests, in every mode

#[test]
fn helm_lint_is_clean_in_both_certificate_modes() {
    let Some(tools) = Tools::find() else { return };
    tools.lint(&[]);
    tools.lint(CERT_MANAGER);
    tools.lint(FULL_AUDIT);
    tools.lint(PROMETHEUS_RULE);
    tools.lint(BY_MODE_OFF);
}

#[test]
fn every_values_combination_renders_valid_kubernetes_objects() {
    let Some(tools) = Tools::find() else { return };
    let combinations: &[&[&str]] = &[
        &[],
        CERT_MANAGER,
        &[
            "--set",
            "tls.generate.enabled=false",
            "--set",
            "tls.certManager.enabled=true",
            "--set",
            "tls.certManager.issuerRef.name=corp-ca",
            "--set",
            "tls.certManager.issuerRef.kind=ClusterIssuer",
        ],
        &["--set", "metrics.serviceMonitor.enabled=true"],
        PROMETHEUS_RULE,
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "tls.generate.enabled=false",
            "--set",
            "tls.certManager.enabled=true",
            "--set",
            "prometheusRule.alerts.SecretgateDown.enabled=false",
            "--set",
            "prometheusRule.additionalLabels.team=platform",
        ],
        BY_MODE_OFF,
        &["--set", "replicaCount=1"],
        &[
            "--set",
            "webhooks.validate.failurePolicy=Ignore",
            "--set",
            "webhooks.mutate.failurePolicy=Fail",
        ],
        &["--set-json", MATCH_CONDITIONS],
        &[
            "--set",
            "podAntiAffinityPreset=hard",
            "--set",
            "securityContext.runAsUser=null",
            "--set",
            "securityContext.runAsGroup=null",
            "--set",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ],
        &["--set", "webhooks.mutate.enabled=false"],
        &[
            "--set",
            "webhooks.validate.enabled=false",
            "--set",
            "webhooks.policies.failurePolicy=Ignore",
        ],
        &["--set", "webhooks.policies.enabled=false"],
        &["--set", "leaderElection.enabled=false"],
        &["--set", "leaderElection.leaseName=webhook-leader"],
        SECRET_USE,
        AUDIT,
        FULL_AUDIT,
        &[
            "--set",
            "audit.enabled=true",
            "--set",
            "audit.reports=policyreport",
            "--set",
            "leaderElection.enabled=false",
        ],
        &["--set", "audit.installCrds=true"],
        &[
            "--set",
            "ownerEvents.enabled=false",
            "--set",
            "webhooks.preDeleteHook.enabled=false",
        ],
        &["--set", "webhooks.preDeleteHook.timeoutSeconds=300"],
        &[
            "--set",
            "webhooks.secretUse.enabled=true",
            "--set",
            "webhooks.secretUse.failurePolicy=Ignore",
            "--set-json",
            r#"webhooks.secretUse.excludedNamespaces=["ci"]"#,
            "--set-json",
            r#"webhooks.secretUse.matchConditions=[{"name":"not-system","expression":"!request.userInfo.username.startsWith('system:')"}]"#,
            "--set",
            "tls.generate.enabled=false",
            "--set",
            "tls.certManager.enabled=true",
        ],
    ];
    for args in combinations {
        tools.kubernetes_validate(&tools.render(args));
    }
}

// ---------------------------------------------------------------------------------------
// The Deployment

#[test]
fn deployment_runs_two_restricted_replicas_spread_over_nodes() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let deployment = manifests.one("Deployment");
    assert_eq!(at(deployment, "/spec/replicas"), 2);

    let pod = at(deployment, "/spec/template/spec");
    assert_eq!(at(pod, "/securityContext/runAsNonRoot"), true);
    assert_eq!(
        at(pod, "/securityContext/seccompProfile/type"),
        "RuntimeDefault"
    );
    let containers = all_containers(pod);
    assert!(!containers.is_empty());
    for container in containers {
        let sc = at(container, "/securityContext");
        assert_eq!(at(sc, "/runAsNonRoot"), true);
        assert_eq!(at(sc, "/runAsUser"), 65532);
        assert_eq!(at(sc, "/readOnlyRootFilesystem"), true);
        assert_eq!(at(sc, "/allowPrivilegeEscalation"), false);
        assert_eq!(at(sc, "/capabilities/drop"), &json!(["ALL"]));
        assert_eq!(at(sc, "/seccompProfile/type"), "RuntimeDefault");
        assert!(at(container, "/resources/requests").is_object());
        assert!(at(container, "/resources/limits").is_object());
    }

    let anti = at(
        pod,
        "/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm",
    );
    assert_eq!(at(anti, "/topologyKey"), "kubernetes.io/hostname");
    assert_eq!(
        at(anti, "/labelSelector/matchLabels"),
        at(deployment, "/spec/selector/matchLabels")
    );
}

#[test]
fn deployment_serves_in_cluster_mode_with_the_mounted_certificate() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let deployment = manifests.one("Deployment");
    let container = at(deployment, "/spec/template/spec/containers/0");
    let args = strings(at(container, "/args"));
    for expected in [
        "serve",
        "--kube",
        "--listen=0.0.0.0:8443",
        "--metrics-listen=0.0.0.0:9090",
        "--tls-cert=/tls/tls.crt",
        "--tls-key=/tls/tls.key",
        "--log-format=json",
    ] {
        assert!(
            joined_flags(&args).contains(&expected.to_string()),
            "args {args:?} lack {expected}"
        );
    }
    assert_eq!(
        at(container, "/image"),
        "ghcr.io/secretgate/secretgate:0.1.0"
    );

    // The TLS Secret, mounted read-only at /tls.
    let mount = find(at(container, "/volumeMounts"), "/mountPath", "/tls");
    assert_eq!(at(mount, "/readOnly"), true);
    let volume = find(
        at(deployment, "/spec/template/spec/volumes"),
        "/name",
        at(mount, "/name").as_str().unwrap(),
    );
    assert_eq!(at(volume, "/secret/secretName"), "sg-secretgate-tls");

    // Probes on the plain-HTTP metrics port.
    assert_eq!(at(container, "/livenessProbe/httpGet/path"), "/healthz");
    assert_eq!(at(container, "/livenessProbe/httpGet/port"), "metrics");
    assert_eq!(at(container, "/readinessProbe/httpGet/path"), "/readyz");
    assert_eq!(at(container, "/readinessProbe/httpGet/port"), "metrics");
    assert_eq!(
        at(
            find(at(container, "/ports"), "/name", "metrics"),
            "/containerPort"
        ),
        9090
    );

    // The kubelet waits longer than the server drains.
    let drain: f64 = flag_value(&args, "--drain-timeout-seconds")
        .parse()
        .expect("numeric drain timeout");
    let grace = at(
        deployment,
        "/spec/template/spec/terminationGracePeriodSeconds",
    );
    assert!(
        grace.as_f64().unwrap() > drain,
        "grace {grace} <= drain {drain}"
    );
}

#[test]
fn the_server_accepts_the_arguments_the_chart_gives_it() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let args = strings(at(
        manifests.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    let argv = std::iter::once("secretgate".to_string()).chain(args);
    if let Err(e) = secretgate::cli::Cli::try_parse_from(argv) {
        panic!("secretgate rejects the chart's arguments: {e}");
    }
}

#[test]
fn pod_disruption_budget_keeps_one_pod_only_when_there_are_two() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let pdb = manifests.one("PodDisruptionBudget");
    assert_eq!(at(pdb, "/spec/minAvailable"), 1);
    assert_eq!(
        at(pdb, "/spec/selector/matchLabels"),
        at(manifests.one("Deployment"), "/spec/selector/matchLabels")
    );
    assert!(
        tools
            .render(&["--set", "replicaCount=1"])
            .all("PodDisruptionBudget")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// The webhook configurations

#[test]
fn webhooks_are_safe_by_default() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let validate = secret_webhook(&manifests, STRICT);
    let lenient = secret_webhook(&manifests, LENIENT);
    let mutate = only_webhook(manifests.one("MutatingWebhookConfiguration"));
    for hook in [validate, lenient, mutate] {
        assert_eq!(at(hook, "/admissionReviewVersions"), &json!(["v1"]));
        assert_eq!(at(hook, "/sideEffects"), "None");
        assert!(hook.get("matchConditions").is_none());
    }
    // Kubernetes' webhook good practices: validation 3 s, mutation 2 s.
    assert_eq!(at(validate, "/timeoutSeconds"), 3);
    assert_eq!(at(lenient, "/timeoutSeconds"), 3);
    assert_eq!(at(mutate, "/timeoutSeconds"), 2);
    assert_eq!(at(validate, "/failurePolicy"), "Fail");
    assert_eq!(at(lenient, "/failurePolicy"), "Ignore");
    assert_eq!(at(mutate, "/failurePolicy"), "Ignore");
    assert_eq!(at(mutate, "/reinvocationPolicy"), "IfNeeded");

    for hook in [validate, lenient] {
        assert_eq!(
            at(hook, "/rules"),
            &json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                     "resources": ["secrets"], "scope": "Namespaced"}])
        );
    }
    assert_eq!(
        at(mutate, "/rules"),
        &json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                 "resources": ["pods"], "scope": "Namespaced"}])
    );
}

/// Namespaces to try the Secret webhook's selectors on: names the chart always leaves
/// out or a user leaves out, and every kind of mode label (none yet, each mode, junk).
fn namespaces_to_try() -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for name in ["team-a", "default", NAMESPACE, "kube-system", "kube-public"] {
        for mode in [
            None,
            Some("Enforce"),
            Some("Warn"),
            Some("Audit"),
            Some("audit"),
            Some(""),
        ] {
            for team in [None, Some("a")] {
                for enabled in [None, Some("true")] {
                    let mut labels = BTreeMap::new();
                    labels.insert("kubernetes.io/metadata.name".to_string(), name.to_string());
                    for (key, value) in [
                        ("secretgate.io/mode", mode),
                        ("team", team),
                        ("secretgate.io/enabled", enabled),
                    ] {
                        if let Some(value) = value {
                            labels.insert(key.to_string(), value.to_string());
                        }
                    }
                    out.push(labels);
                }
            }
        }
    }
    out
}

#[test]
fn the_secret_webhook_fails_closed_only_where_projects_enforce() {
    let Some(tools) = Tools::find() else { return };
    let user_selector = format!(
        "webhooks={}",
        json!({
            "namespaceSelector": {
                "matchLabels": {"secretgate.io/enabled": "true"},
                "matchExpressions": [{"key": "team", "operator": "Exists"}]
            },
            "excludedNamespaces": ["kube-public"]
        })
    );
    for values in [&[][..], &["--set-json", &user_selector][..]] {
        let manifests = tools.render(values);
        tools.kubernetes_validate(&manifests);
        let hooks = webhooks(secrets_config(&manifests));
        assert_eq!(hooks.len(), 2, "{values:?}: two registrations by mode");
        let strict = secret_webhook(&manifests, STRICT);
        let lenient = secret_webhook(&manifests, LENIENT);
        assert_eq!(at(strict, "/failurePolicy"), "Fail");
        assert_eq!(at(lenient, "/failurePolicy"), "Ignore");

        // Alike but for name, failurePolicy and the mode expression.
        let without = |hook: &Value| {
            let mut hook = hook.clone();
            let object = hook.as_object_mut().unwrap();
            object.remove("name");
            object.remove("failurePolicy");
            object["namespaceSelector"]["matchExpressions"]
                .as_array_mut()
                .unwrap()
                .pop();
            hook
        };
        assert_eq!(without(strict), without(lenient), "{values:?}");
        let mode_expression = |hook: &Value| {
            at(hook, "/namespaceSelector/matchExpressions")
                .as_array()
                .unwrap()
                .last()
                .cloned()
        };
        assert_eq!(
            mode_expression(strict),
            Some(
                json!({"key": "secretgate.io/mode", "operator": "NotIn", "values": ["Warn", "Audit"]})
            )
        );
        assert_eq!(
            mode_expression(lenient),
            Some(
                json!({"key": "secretgate.io/mode", "operator": "In", "values": ["Warn", "Audit"]})
            )
        );
        // Both keep the namespaces never sent.
        for hook in [strict, lenient] {
            let excluded = excluded_namespaces(at(hook, "/namespaceSelector"));
            assert!(
                excluded.contains(&NAMESPACE.to_string())
                    && excluded.contains(&"kube-system".to_string()),
                "{excluded:?}"
            );
        }

        // A partition of what the single registration (failurePolicyByMode off) covers:
        // every namespace it sends goes to exactly one of the two, to the lenient one
        // only when labelled Warn or Audit (unlabelled: strict, so it fails closed), and
        // no other namespace goes to either.
        let single = tools.render(&[values, BY_MODE_OFF].concat());
        let single = only_webhook(secrets_config(&single));
        for labels in namespaces_to_try() {
            let covered = selects(at(single, "/namespaceSelector"), &labels);
            let to_strict = selects(at(strict, "/namespaceSelector"), &labels);
            let to_lenient = selects(at(lenient, "/namespaceSelector"), &labels);
            let lenient_mode = labels
                .get("secretgate.io/mode")
                .is_some_and(|m| m == "Warn" || m == "Audit");
            assert_eq!(
                (to_strict, to_lenient),
                (covered && !lenient_mode, covered && lenient_mode),
                "{values:?}: namespace {labels:?}"
            );
        }
    }
}

#[test]
fn the_leader_labels_namespaces_only_with_failure_policy_by_mode() {
    let Some(tools) = Tools::find() else { return };
    let namespace_writes = |rules: &[Value]| -> Vec<&'static str> {
        ["patch", "update", "create", "delete"]
            .into_iter()
            .filter(|verb| grants(rules, "", "namespaces", verb))
            .collect()
    };
    // On by default: the flag, and patch (server-side apply of the label) on namespaces,
    // nothing more.
    let manifests = tools.render(&[]);
    let args = deployment_args(&manifests);
    assert_eq!(
        args.iter().filter(|a| *a == "--label-namespaces").count(),
        1,
        "{args:?}"
    );
    assert_eq!(namespace_writes(&server_rules(&manifests)), ["patch"]);
    // The one assertion that needs the server side of issue 18: `serve --label-namespaces`.
    assert_server_accepts(&args);

    // Off, or with no Secret webhook to select: one registration, no flag, no write.
    for values in [
        BY_MODE_OFF,
        &[
            "--set",
            "webhooks.validate.enabled=false",
            "--set",
            "webhooks.validate.failurePolicyByMode.enabled=true",
        ][..],
    ] {
        let manifests = tools.render(values);
        tools.kubernetes_validate(&manifests);
        let args = deployment_args(&manifests);
        assert!(
            !args.iter().any(|a| a.starts_with("--label-namespaces")),
            "{values:?}: {args:?}"
        );
        assert!(
            namespace_writes(&server_rules(&manifests)).is_empty(),
            "{values:?}"
        );
        let hooks: Vec<&Value> = manifests
            .all("ValidatingWebhookConfiguration")
            .into_iter()
            .flat_map(webhooks)
            .collect();
        assert!(
            hooks.iter().all(|h| h["name"] != LENIENT
                && !h["namespaceSelector"]
                    .to_string()
                    .contains("secretgate.io/mode")),
            "{values:?}: {hooks:#?}"
        );
    }
    // Off: exactly today's single registration, with webhooks.validate.failurePolicy.
    for policy in ["Fail", "Ignore"] {
        let manifests = tools.render(
            &[
                BY_MODE_OFF,
                &[
                    "--set",
                    &format!("webhooks.validate.failurePolicy={policy}"),
                ],
            ]
            .concat(),
        );
        let hook = only_webhook(secrets_config(&manifests));
        assert_eq!(at(hook, "/name"), STRICT);
        assert_eq!(at(hook, "/failurePolicy"), policy);
        assert_eq!(at(hook, "/timeoutSeconds"), 3);
        assert_eq!(
            excluded_namespaces(at(hook, "/namespaceSelector")),
            [NAMESPACE, "kube-system"]
        );
        assert_eq!(
            at(hook, "/namespaceSelector/matchExpressions")
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
    // No RBAC at all without rbac.create; the flag stays.
    let manifests = tools.render(&["--set", "rbac.create=false"]);
    assert!(manifests.all("ClusterRole").is_empty());
    assert!(deployment_args(&manifests).contains(&"--label-namespaces".to_string()));
}

#[test]
fn project_policies_are_validated_by_the_server_and_fail_closed() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let config = manifests.named("ValidatingWebhookConfiguration", "sg-secretgate-policies");
    let hook = only_webhook(config);
    assert_eq!(at(hook, "/name"), "projectpolicies.validate.secretgate.io");
    assert_eq!(at(hook, "/admissionReviewVersions"), &json!(["v1"]));
    assert_eq!(at(hook, "/sideEffects"), "None");
    // A policy that cannot be checked is not admitted.
    assert_eq!(at(hook, "/failurePolicy"), "Fail");
    assert_eq!(at(hook, "/timeoutSeconds"), 3);
    // CREATE and UPDATE of the policies themselves; not their status, which the server
    // writes.
    assert_eq!(
        at(hook, "/rules"),
        &json!([{"apiGroups": ["secretgate.io"], "apiVersions": ["v1alpha1"],
                 "operations": ["CREATE", "UPDATE"], "resources": ["projectpolicies"],
                 "scope": "Cluster"}])
    );
    assert!(hook.get("namespaceSelector").is_none());
    assert_eq!(at(hook, "/clientConfig/service/path"), "/validate-policy");

    let manifests = tools.render(&[
        "--set",
        "webhooks.policies.failurePolicy=Ignore",
        "--set",
        "webhooks.policies.timeoutSeconds=10",
    ]);
    let hook =
        only_webhook(manifests.named("ValidatingWebhookConfiguration", "sg-secretgate-policies"));
    assert_eq!(at(hook, "/failurePolicy"), "Ignore");
    assert_eq!(at(hook, "/timeoutSeconds"), 10);

    let manifests = tools.render(&["--set", "webhooks.policies.enabled=false"]);
    assert_eq!(
        manifests.all("ValidatingWebhookConfiguration").len(),
        1,
        "only the Secret webhook"
    );
    // Without the Secret webhook, the policy webhook stays.
    let manifests = tools.render(&["--set", "webhooks.validate.enabled=false"]);
    let configs = manifests.all("ValidatingWebhookConfiguration");
    assert_eq!(configs.len(), 1);
    assert_eq!(at(configs[0], "/metadata/name"), "sg-secretgate-policies");
}

#[test]
fn webhooks_never_see_the_release_namespace_or_kube_system() {
    let Some(tools) = Tools::find() else { return };
    let user_selector = json!({
        "namespaceSelector": {
            "matchLabels": {"secretgate.io/enabled": "true"},
            "matchExpressions": [{"key": "team", "operator": "Exists"}]
        },
        "excludedNamespaces": ["kube-public"]
    });
    let with_user_selector = format!("webhooks={user_selector}");
    for args in [&[][..], &["--set-json", &with_user_selector][..]] {
        let manifests = tools.render(args);
        for kind in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            for hook in webhooks(manifests.named(kind, "sg-secretgate")) {
                let excluded = excluded_namespaces(at(hook, "/namespaceSelector"));
                assert!(
                    excluded.contains(&NAMESPACE.to_string())
                        && excluded.contains(&"kube-system".to_string()),
                    "{kind} namespaceSelector leaves out only {excluded:?}"
                );
            }
        }
    }
    // The user's selector is added to the exclusions, never instead of them.
    let manifests = tools.render(&["--set-json", &with_user_selector]);
    for hook in webhooks(secrets_config(&manifests)) {
        let selector = at(hook, "/namespaceSelector");
        assert_eq!(
            at(selector, "/matchLabels"),
            &json!({"secretgate.io/enabled": "true"})
        );
        assert_eq!(
            at(selector, "/matchExpressions/1"),
            &json!({"key": "team", "operator": "Exists"})
        );
        assert!(excluded_namespaces(selector).contains(&"kube-public".to_string()));
    }
}

#[test]
fn failure_policies_selectors_and_match_conditions_are_configurable() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[
        "--set",
        "webhooks.validate.failurePolicy=Ignore",
        "--set",
        "webhooks.mutate.failurePolicy=Fail",
        "--set",
        "webhooks.mutate.timeoutSeconds=10",
        "--set",
        "webhooks.validate.objectSelector.matchLabels.checked=yes",
        "--set-json",
        MATCH_CONDITIONS,
    ]);
    let mutate = only_webhook(manifests.one("MutatingWebhookConfiguration"));
    assert_eq!(at(mutate, "/failurePolicy"), "Fail");
    assert_eq!(at(mutate, "/timeoutSeconds"), 10);
    assert!(mutate.get("matchConditions").is_none());
    // Both registrations by mode: failurePolicy is the strict one's (Ignore makes both
    // Ignore); the selectors and conditions are both's.
    let hooks = webhooks(secrets_config(&manifests));
    assert_eq!(hooks.len(), 2);
    for validate in hooks {
        assert_eq!(at(validate, "/failurePolicy"), "Ignore");
        assert_eq!(
            at(validate, "/objectSelector"),
            &json!({"matchLabels": {"checked": "yes"}})
        );
        assert_eq!(
            at(validate, "/matchConditions"),
            &json!([{"name": "not-helm-release",
                     "expression": "object.type != 'helm.sh/release.v1'"}])
        );
    }
}

#[test]
fn webhooks_call_paths_the_server_serves_through_the_service() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let service = manifests.one("Service");
    let deployment = manifests.one("Deployment");
    let container = at(deployment, "/spec/template/spec/containers/0");
    let mut paths = Vec::new();
    for (kind, name) in CONFIGURATIONS {
        for hook in webhooks(manifests.named(kind, name)) {
            let target = at(hook, "/clientConfig/service");
            assert_eq!(at(target, "/name"), at(service, "/metadata/name"));
            assert_eq!(at(target, "/namespace"), NAMESPACE);
            assert_eq!(at(target, "/port"), 443);
            paths.push(at(target, "/path").as_str().unwrap().to_string());
        }
    }
    // Both Secret registrations (by mode) call the same path.
    assert_eq!(
        paths,
        ["/validate", "/validate", "/mutate", "/validate-policy"]
    );

    // Service 443 → the container port named https → the address the server listens on.
    let port = find(at(service, "/spec/ports"), "/port", 443);
    let container_port = find(
        at(container, "/ports"),
        "/name",
        at(port, "/targetPort").clone(),
    );
    assert_eq!(at(container_port, "/containerPort"), 8443);
    let args = strings(at(container, "/args"));
    assert_eq!(flag_value(&args, "--listen"), "0.0.0.0:8443");
    assert_eq!(
        at(service, "/spec/selector"),
        at(deployment, "/spec/selector/matchLabels")
    );

    for path in &paths {
        assert_ne!(
            post_to_router(path),
            404,
            "the server does not serve {path}"
        );
    }
}

#[test]
fn the_secret_use_webhook_is_off_until_enabled() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let configs = manifests.all("ValidatingWebhookConfiguration");
    assert!(
        configs
            .iter()
            .all(|c| c["metadata"]["name"] != "sg-secretgate-pods"),
        "rendered while disabled"
    );
    let hooks: Vec<&Value> = configs
        .iter()
        .flat_map(|c| c["webhooks"].as_array().unwrap())
        .collect();
    assert!(
        hooks
            .iter()
            .all(|h| h["name"] != "pods.validate.secretgate.io"
                && h["clientConfig"]["service"]["path"] != "/validate-pods"),
        "{hooks:?}"
    );
}

#[test]
fn the_secret_use_webhook_checks_pods_and_workloads_when_enabled() {
    let Some(tools) = Tools::find() else { return };
    // One registration (the split by mode has its own test).
    let manifests = tools.render(&[SECRET_USE, BY_MODE_OFF].concat());
    tools.kubernetes_validate(&manifests);
    let config = manifests.named("ValidatingWebhookConfiguration", "sg-secretgate-pods");
    let hook = only_webhook(config);
    assert_eq!(at(hook, "/name"), "pods.validate.secretgate.io");
    assert_eq!(at(hook, "/admissionReviewVersions"), &json!(["v1"]));
    assert_eq!(at(hook, "/sideEffects"), "None");
    assert_eq!(at(hook, "/matchPolicy"), "Equivalent");
    assert_eq!(at(hook, "/failurePolicy"), "Fail");
    assert_eq!(at(hook, "/timeoutSeconds"), 3);
    assert!(hook.get("matchConditions").is_none());
    assert!(hook.get("objectSelector").is_none());
    let service = at(hook, "/clientConfig/service");
    assert_eq!(at(service, "/name"), "sg-secretgate");
    assert_eq!(at(service, "/namespace"), NAMESPACE);
    assert_eq!(at(service, "/path"), "/validate-pods");
    assert_eq!(at(service, "/port"), 443);
    assert_ne!(
        post_to_router("/validate-pods"),
        404,
        "the server does not serve /validate-pods"
    );
    assert_eq!(
        at(hook, "/clientConfig/caBundle"),
        at(
            manifests.named("Secret", "sg-secretgate-ca"),
            "/data/tls.crt"
        )
    );
    let rule = |groups: &[&str], operations: &[&str], resources: &[&str]| {
        json!({"apiGroups": groups, "apiVersions": ["v1"], "operations": operations,
               "resources": resources, "scope": "Namespaced"})
    };
    let write = &["CREATE", "UPDATE"][..];
    assert_eq!(
        at(hook, "/rules"),
        &json!([
            rule(&[""], &["CREATE"], &["pods"]),
            rule(&[""], &["UPDATE"], &["pods/ephemeralcontainers"]),
            rule(
                &["apps"],
                write,
                &["deployments", "statefulsets", "daemonsets", "replicasets"]
            ),
            rule(&["batch"], write, &["jobs", "cronjobs"]),
            rule(&[""], write, &["replicationcontrollers"]),
        ])
    );
    let excluded = excluded_namespaces(at(hook, "/namespaceSelector"));
    assert_eq!(excluded, [NAMESPACE, "kube-system"]);
    // The other webhooks are unchanged.
    assert_eq!(manifests.all("ValidatingWebhookConfiguration").len(), 3);
}

#[test]
fn the_secret_use_webhook_has_its_own_failure_policy_and_exclusions() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(
        &[
            SECRET_USE,
            BY_MODE_OFF,
            &[
                "--set",
                "webhooks.secretUse.failurePolicy=Ignore",
                "--set",
                "webhooks.secretUse.timeoutSeconds=7",
                "--set-json",
                r#"webhooks.secretUse.excludedNamespaces=["ci","kube-system"]"#,
                "--set-json",
                r#"webhooks.excludedNamespaces=["kube-public"]"#,
                "--set",
                "webhooks.namespaceSelector.matchLabels.team=a",
            ],
        ]
        .concat(),
    );
    let hook =
        only_webhook(manifests.named("ValidatingWebhookConfiguration", "sg-secretgate-pods"));
    assert_eq!(at(hook, "/failurePolicy"), "Ignore");
    assert_eq!(at(hook, "/timeoutSeconds"), 7);
    let selector = at(hook, "/namespaceSelector");
    assert_eq!(
        excluded_namespaces(selector),
        [NAMESPACE, "kube-system", "kube-public", "ci"]
    );
    assert_eq!(at(selector, "/matchLabels"), &json!({"team": "a"}));
    // Its exclusions are its own: the Secret and Pod webhooks still see "ci".
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        for hook in webhooks(manifests.named(kind, "sg-secretgate")) {
            let excluded = excluded_namespaces(at(hook, "/namespaceSelector"));
            assert_eq!(
                excluded,
                [NAMESPACE, "kube-system", "kube-public"],
                "{kind}"
            );
        }
    }
    // The other webhooks keep their failure policies.
    assert_eq!(
        at(secret_webhook(&manifests, STRICT), "/failurePolicy"),
        "Fail"
    );

    // cert-manager mode: the CA is injected like the others'.
    let manifests = tools.render(&[SECRET_USE, CERT_MANAGER].concat());
    let config = manifests.named("ValidatingWebhookConfiguration", "sg-secretgate-pods");
    assert_eq!(
        at(
            config,
            "/metadata/annotations/cert-manager.io~1inject-ca-from"
        ),
        &json!(format!("{NAMESPACE}/sg-secretgate"))
    );
    // Both registrations (split by mode) leave the caBundle to the cainjector.
    assert!(
        webhooks(config)
            .iter()
            .all(|h| h.pointer("/clientConfig/caBundle").is_none())
    );
}

// ---------------------------------------------------------------------------------------
// Certificates

#[test]
fn generated_mode_trusts_the_ca_that_signed_the_mounted_certificate() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let ca = manifests.named("Secret", "sg-secretgate-ca");
    let tls = manifests.named("Secret", "sg-secretgate-tls");
    let ca_cert = at(ca, "/data/tls.crt");
    assert_eq!(at(tls, "/data/ca.crt"), ca_cert);
    assert!(tls.pointer("/data/tls.key").is_some());
    for (kind, name) in CONFIGURATIONS {
        let config = manifests.named(kind, name);
        for hook in webhooks(config) {
            assert_eq!(at(hook, "/clientConfig/caBundle"), ca_cert, "{kind}");
        }
        assert!(config.pointer("/metadata/annotations").is_none());
    }
    for kind in ["Certificate", "Issuer"] {
        assert!(manifests.all(kind).is_empty(), "{kind} in generated mode");
    }
}

#[test]
fn cert_manager_mode_issues_the_mounted_certificate_and_injects_its_ca() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(CERT_MANAGER);
    let serving = manifests.named("Certificate", "sg-secretgate");
    assert_eq!(at(serving, "/spec/secretName"), "sg-secretgate-tls");
    let dns_names = strings(at(serving, "/spec/dnsNames"));
    assert!(dns_names.contains(&format!("sg-secretgate.{NAMESPACE}.svc")));
    assert_eq!(at(serving, "/spec/issuerRef/name"), "sg-secretgate-ca");
    // The chart's CA: self-signed, then a CA issuer.
    assert_eq!(
        at(
            manifests.named("Certificate", "sg-secretgate-ca"),
            "/spec/isCA"
        ),
        true
    );
    assert_eq!(manifests.all("Issuer").len(), 2);

    for (kind, name) in CONFIGURATIONS {
        let config = manifests.named(kind, name);
        assert_eq!(
            at(
                config,
                "/metadata/annotations/cert-manager.io~1inject-ca-from"
            ),
            &json!(format!("{NAMESPACE}/sg-secretgate")),
            "{kind}"
        );
        for hook in webhooks(config) {
            assert!(hook.pointer("/clientConfig/caBundle").is_none());
        }
    }
    assert!(manifests.all("Secret").is_empty());

    // An existing issuer: no Issuers of the chart's own.
    let manifests = tools.render(
        &[
            CERT_MANAGER,
            &[
                "--set",
                "tls.certManager.issuerRef.name=corp-ca",
                "--set",
                "tls.certManager.issuerRef.kind=ClusterIssuer",
            ],
        ]
        .concat(),
    );
    assert!(manifests.all("Issuer").is_empty());
    let serving = manifests.one("Certificate");
    assert_eq!(at(serving, "/spec/issuerRef/name"), "corp-ca");
    assert_eq!(at(serving, "/spec/issuerRef/kind"), "ClusterIssuer");
}

// ---------------------------------------------------------------------------------------
// RBAC, metrics, CRDs

#[test]
fn rbac_grants_only_what_the_watchers_use() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    assert_eq!(
        at(manifests.one("ClusterRole"), "/rules"),
        &json!([
            {"apiGroups": ["secretgate.io"], "resources": ["projectpolicies"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["secretgate.io"], "resources": ["projectpolicies/status"],
             "verbs": ["patch", "update"]},
            {"apiGroups": [""], "resources": ["namespaces"],
             "verbs": ["get", "list", "watch"]},
            // Metadata watch only: no get, which reads one Secret's data.
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["list", "watch"]},
            // webhooks.validate.failurePolicyByMode: the leader labels namespaces.
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["patch"]},
            // ownerEvents.enabled: Events on denied Secrets' owners, and the uid of the
            // Certificate cert-manager's annotation names.
            {"apiGroups": ["events.k8s.io"], "resources": ["events"],
             "verbs": ["create", "patch"]},
            {"apiGroups": ["cert-manager.io"], "resources": ["certificates"], "verbs": ["get"]},
        ])
    );
    // Whatever the webhooks: the server watches ServiceAccounts in cluster mode and is not
    // ready before it has listed them.
    for args in [SECRET_USE, &["--set", "webhooks.mutate.enabled=false"][..]] {
        let rules = at(tools.render(args).one("ClusterRole"), "/rules").clone();
        assert!(
            rules
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["resources"] == json!(["serviceaccounts"])
                    && r["verbs"] == json!(["list", "watch"])),
            "{args:?}: {rules}"
        );
    }
    // Namespaced rights: the leader election's Lease only.
    for kind in ["Role", "RoleBinding"] {
        assert_eq!(
            at(manifests.one(kind), "/metadata/name"),
            "sg-secretgate-leader-election",
            "unexpected {kind}"
        );
    }
    let binding = manifests.one("ClusterRoleBinding");
    assert_eq!(
        at(binding, "/roleRef/name"),
        at(manifests.one("ClusterRole"), "/metadata/name")
    );
    assert_eq!(
        at(binding, "/subjects"),
        &json!([{"kind": "ServiceAccount", "name": "sg-secretgate", "namespace": NAMESPACE}])
    );
    assert_eq!(
        at(
            manifests.one("Deployment"),
            "/spec/template/spec/serviceAccountName"
        ),
        "sg-secretgate"
    );
}

#[test]
fn leader_election_is_on_with_a_lease_role_and_the_pod_identity() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let role = manifests.one("Role");
    assert_eq!(at(role, "/metadata/namespace"), NAMESPACE);
    // get and update by name; create cannot be limited by name.
    assert_eq!(
        at(role, "/rules"),
        &json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["sg-secretgate"], "verbs": ["get", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create"]},
        ])
    );
    let binding = manifests.one("RoleBinding");
    assert_eq!(at(binding, "/metadata/namespace"), NAMESPACE);
    assert_eq!(at(binding, "/roleRef/kind"), "Role");
    assert_eq!(at(binding, "/roleRef/name"), at(role, "/metadata/name"));
    assert_eq!(
        at(binding, "/subjects"),
        &json!([{"kind": "ServiceAccount", "name": "sg-secretgate", "namespace": NAMESPACE}])
    );

    let deployment = manifests.one("Deployment");
    assert_eq!(
        at(deployment, "/spec/replicas"),
        2,
        "the replicas elect a leader"
    );
    let container = at(deployment, "/spec/template/spec/containers/0");
    let args = joined_flags(&strings(at(container, "/args")));
    assert!(args.contains(&"--leader-election=true".into()), "{args:?}");
    assert!(
        args.contains(&"--lease-name=sg-secretgate".into()),
        "{args:?}"
    );
    let env = at(container, "/env");
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert_eq!(
            at(find(env, "/name", name), "/valueFrom/fieldRef/fieldPath"),
            field,
            "{name} from the downward API"
        );
    }

    let renamed = tools.render(&["--set", "leaderElection.leaseName=webhook-leader"]);
    assert_eq!(
        at(renamed.one("Role"), "/rules/0/resourceNames"),
        &json!(["webhook-leader"])
    );
    let args = strings(at(
        renamed.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    assert_eq!(flag_value(&args, "--lease-name"), "webhook-leader");

    // Lease timing: the server's defaults, passed explicitly, and changeable.
    let args = strings(at(
        manifests.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    for (flag, value) in [
        ("--lease-duration-seconds", "15"),
        ("--lease-renew-deadline-seconds", "10"),
        ("--lease-retry-seconds", "2"),
    ] {
        assert_eq!(flag_value(&args, flag), value, "{flag}");
    }
    let slow = tools.render(&[
        "--set",
        "leaderElection.leaseDurationSeconds=60",
        "--set",
        "leaderElection.leaseRenewDeadlineSeconds=40",
        "--set",
        "leaderElection.leaseRetrySeconds=5",
    ]);
    let args = deployment_args(&slow);
    for (flag, value) in [
        ("--lease-duration-seconds", "60"),
        ("--lease-renew-deadline-seconds", "40"),
        ("--lease-retry-seconds", "5"),
    ] {
        assert_eq!(flag_value(&args, flag), value, "{flag}");
    }
    assert_server_accepts(&args);
}

#[test]
fn leader_election_can_be_turned_off_and_its_rbac_left_to_the_operator() {
    let Some(tools) = Tools::find() else { return };
    let off = tools.render(&["--set", "leaderElection.enabled=false"]);
    for kind in ["Role", "RoleBinding"] {
        assert!(
            off.all(kind).is_empty(),
            "no {kind} without leader election"
        );
    }
    let args = strings(at(
        off.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    assert!(args.contains(&"--leader-election=false".into()), "{args:?}");
    assert!(!args.iter().any(|a| a == "--lease-name"), "{args:?}");
    let argv = std::iter::once("secretgate".to_string()).chain(args);
    if let Err(e) = secretgate::cli::Cli::try_parse_from(argv) {
        panic!("secretgate rejects the chart's arguments: {e}");
    }

    let no_rbac = tools.render(&["--set", "rbac.create=false"]);
    assert!(no_rbac.all("Role").is_empty() && no_rbac.all("RoleBinding").is_empty());
}

#[test]
fn the_auditor_role_is_optional_and_grants_what_audit_reads() {
    let Some(tools) = Tools::find() else { return };
    let roles = tools.render(&[]);
    assert_eq!(
        roles.all("ClusterRole").len(),
        1,
        "no auditor role by default"
    );
    let manifests = tools.render(&["--set", "rbac.auditor=true"]);
    tools.kubernetes_validate(&manifests);
    let auditor = manifests.named("ClusterRole", "sg-secretgate-auditor");
    assert_eq!(
        at(auditor, "/rules"),
        &json!([
            {"apiGroups": ["secretgate.io"], "resources": ["projectpolicies"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["namespaces", "pods", "serviceaccounts"],
             "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "get"]},
        ])
    );
    assert_eq!(
        manifests.all("ClusterRoleBinding").len(),
        1,
        "the auditor role is bound by whoever audits, not by the chart"
    );
}

#[test]
fn service_monitor_is_optional_and_scrapes_the_metrics_port() {
    let Some(tools) = Tools::find() else { return };
    assert!(tools.render(&[]).all("ServiceMonitor").is_empty());
    let manifests = tools.render(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
    ]);
    let monitor = manifests.one("ServiceMonitor");
    assert_eq!(at(monitor, "/metadata/labels/release"), "prometheus");
    assert_eq!(at(monitor, "/spec/endpoints/0/port"), "metrics");
    assert_eq!(at(monitor, "/spec/endpoints/0/path"), "/metrics");
    let service = manifests.one("Service");
    find(at(service, "/spec/ports"), "/name", "metrics");
    for (key, value) in at(monitor, "/spec/selector/matchLabels")
        .as_object()
        .unwrap()
    {
        assert_eq!(at(service, "/metadata/labels").get(key), Some(value));
    }
}

/// Values that turn the alert rules on.
const PROMETHEUS_RULE: &[&str] = &["--set", "prometheusRule.enabled=true"];

const ALERTS: [&str; 6] = [
    "SecretgateWebhookFailOpen",
    "SecretgateDown",
    "SecretgateHighRejectionRate",
    "SecretgateServingCertificateExpiresSoon",
    "SecretgateBrokenPolicies",
    "SecretgateAuditCredentialRejected",
];

/// The alert rules of a PrometheusRule, by name.
fn alerts(rule: &Value) -> BTreeMap<String, &Value> {
    at(rule, "/spec/groups")
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| at(g, "/rules").as_array().unwrap())
        .map(|r| (at(r, "/alert").as_str().unwrap().to_string(), r))
        .collect()
}

#[test]
fn alert_rules_are_optional_and_cover_fail_open_health_and_expiry() {
    let Some(tools) = Tools::find() else { return };
    assert!(tools.render(&[]).all("PrometheusRule").is_empty());

    let manifests = tools.render(
        &[
            PROMETHEUS_RULE,
            &["--set", "metrics.serviceMonitor.enabled=true"],
            &["--set", "prometheusRule.labels.release=prometheus"],
        ]
        .concat(),
    );
    tools.kubernetes_validate(&manifests);
    let rule = manifests.one("PrometheusRule");
    assert_eq!(at(rule, "/apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(at(rule, "/metadata/namespace"), NAMESPACE);
    assert_eq!(at(rule, "/metadata/labels/release"), "prometheus");
    let by_name = alerts(rule);
    assert_eq!(by_name.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut names = ALERTS.to_vec();
        names.sort_unstable();
        names
    });
    for (name, alert) in &by_name {
        for annotation in ["summary", "description"] {
            let text = at(alert, &format!("/annotations/{annotation}"));
            assert!(
                text.as_str().is_some_and(|t| t.len() > 20),
                "{name}: {annotation} {text}"
            );
        }
        assert!(at(alert, "/labels/severity").is_string(), "{name}");
        assert!(at(alert, "/for").is_string(), "{name}");
    }
    let expr = |name: &str| at(by_name[name], "/expr").as_str().unwrap().to_string();

    // The API server's fail-open counter (labels name and type), for every webhook name
    // the chart registers and no other.
    let fail_open = expr("SecretgateWebhookFailOpen");
    assert!(
        fail_open.contains("increase(apiserver_admission_webhook_fail_open_count{name=~")
            && fail_open.contains("[10m]")
            && fail_open.contains("by (name, type)")
            && fail_open.ends_with("> 0"),
        "{fail_open}"
    );
    let pattern = fail_open
        .split("name=~\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a name pattern")
        // PromQL string escapes: \\ is one backslash.
        .replace("\\\\", "\\");
    let pattern = regex::Regex::new(&format!("^(?:{pattern})$")).expect("a regex");
    let all_hooks = tools.render(SECRET_USE);
    for config in all_hooks
        .all("ValidatingWebhookConfiguration")
        .into_iter()
        .chain(all_hooks.all("MutatingWebhookConfiguration"))
    {
        for hook in webhooks(config) {
            let name = at(hook, "/name").as_str().unwrap();
            assert!(pattern.is_match(name), "{name} not matched by {pattern}");
        }
    }
    for other in ["validate.kyverno.svc", "secretgate.example.com"] {
        assert!(!pattern.is_match(other), "{other}");
    }

    // secretgate's own series: the job the ServiceMonitor gives them (the Service's name)
    // in the release namespace.
    let service = at(manifests.one("Service"), "/metadata/name")
        .as_str()
        .unwrap();
    let selector = format!(r#"job="{service}", namespace="{NAMESPACE}""#);
    assert_eq!(
        at(
            manifests.one("ServiceMonitor"),
            "/spec/selector/matchLabels/app.kubernetes.io~1name"
        ),
        at(
            manifests.one("Service"),
            "/metadata/labels/app.kubernetes.io~1name"
        )
    );
    let denied = secretgate::admission::Verdict::Denied.as_str();
    for (name, parts) in [
        (
            "SecretgateDown",
            vec![format!("up{{{selector}}}"), "== 0".into(), "absent(".into()],
        ),
        (
            "SecretgateHighRejectionRate",
            vec![
                format!(r#"rate(secretgate_reviews_total{{{selector}, verdict="{denied}"}}[15m])"#),
                format!("rate(secretgate_reviews_total{{{selector}}}[15m])"),
                "> 0.2".into(),
            ],
        ),
        (
            "SecretgateServingCertificateExpiresSoon",
            vec![
                format!("secretgate_certificate_expiry_timestamp_seconds{{{selector}}} - time()"),
                "< 7 * 24 * 3600".into(),
            ],
        ),
        (
            "SecretgateBrokenPolicies",
            vec![
                format!("secretgate_broken_policies{{{selector}}}"),
                "> 0".into(),
            ],
        ),
        (
            "SecretgateAuditCredentialRejected",
            vec![
                format!(
                    r#"increase(secretgate_credential_checks_total{{{selector}, result="rejected"}}[1h])"#
                ),
                "> 0".into(),
            ],
        ),
    ] {
        let expr = expr(name);
        for part in parts {
            assert!(expr.contains(&part), "{name}: {part} not in {expr}");
        }
    }
    for (name, duration, severity) in [
        ("SecretgateWebhookFailOpen", "0s", "warning"),
        ("SecretgateDown", "5m", "critical"),
        ("SecretgateHighRejectionRate", "15m", "warning"),
        ("SecretgateBrokenPolicies", "5m", "warning"),
    ] {
        assert_eq!(at(by_name[name], "/for"), duration, "{name}");
        assert_eq!(at(by_name[name], "/labels/severity"), severity, "{name}");
    }
    // Prometheus' own templating reaches the annotations intact (not eaten by Helm's).
    assert!(
        at(by_name["SecretgateWebhookFailOpen"], "/annotations/summary")
            .as_str()
            .unwrap()
            .contains("{{ $labels.name }}")
    );

    // The metrics the rules read are the server's.
    let metrics = secretgate::metrics::Metrics::new(prometheus::Registry::new()).unwrap();
    metrics
        .reviews
        .with_label_values(&["validate", "CREATE", denied]);
    let exposition = metrics.render();
    for metric in [
        "secretgate_reviews_total{",
        "secretgate_certificate_expiry_timestamp_seconds ",
        "secretgate_broken_policies ",
    ] {
        assert!(
            exposition.contains(metric),
            "{metric} not served:\n{exposition}"
        );
    }

    // Per alert: off, another for and severity; labels on every alert; another job.
    let manifests = tools.render(
        &[
            PROMETHEUS_RULE,
            &[
                "--set",
                "prometheusRule.alerts.SecretgateAuditCredentialRejected.enabled=false",
                "--set",
                "prometheusRule.alerts.SecretgateDown.for=1m",
                "--set",
                "prometheusRule.alerts.SecretgateDown.severity=page",
                "--set",
                "prometheusRule.additionalLabels.team=platform",
                "--set",
                "prometheusRule.job=kubernetes-pods",
                "--set",
                "prometheusRule.namespace=monitoring",
            ],
        ]
        .concat(),
    );
    tools.kubernetes_validate(&manifests);
    let rule = manifests.one("PrometheusRule");
    assert_eq!(at(rule, "/metadata/namespace"), "monitoring");
    let by_name = alerts(rule);
    assert_eq!(by_name.len(), ALERTS.len() - 1);
    assert!(!by_name.contains_key("SecretgateAuditCredentialRejected"));
    assert_eq!(at(by_name["SecretgateDown"], "/for"), "1m");
    assert_eq!(at(by_name["SecretgateDown"], "/labels/severity"), "page");
    assert!(
        at(by_name["SecretgateDown"], "/expr")
            .as_str()
            .unwrap()
            .contains(r#"up{job="kubernetes-pods", namespace="secretgate-system"}"#)
    );
    for (name, alert) in &by_name {
        assert_eq!(at(alert, "/labels/team"), "platform", "{name}");
    }

    for (values, parts) in [
        (
            &[
                "--set",
                "prometheusRule.alerts.SecretgateDown.for=five minutes",
            ][..],
            &["for"][..],
        ),
        (
            &["--set", "prometheusRule.alerts.SecretgateTypo.enabled=true"][..],
            &["SecretgateTypo", "not allowed"][..],
        ),
        (
            &["--set", "prometheusRule.alerts.SecretgateDown.page=true"][..],
            &["page", "not allowed"][..],
        ),
    ] {
        tools.render_fails_with(values, parts);
    }
}

#[test]
fn crds_shipped_with_the_chart_are_valid_and_covered_by_rbac() {
    let Some(tools) = Tools::find() else { return };
    let crds_dir = chart_dir().join("crds");
    if !crds_dir.is_dir() {
        eprintln!("note: {} is absent: no CRD to check", crds_dir.display());
        return;
    }
    let manifests = tools.render(&["--include-crds"]);
    tools.kubernetes_validate(&manifests);
    let crd = manifests.named("CustomResourceDefinition", "projectpolicies.secretgate.io");
    assert_eq!(at(crd, "/spec/group"), "secretgate.io");
    assert_eq!(at(crd, "/spec/scope"), "Cluster");
    let rule = &at(manifests.one("ClusterRole"), "/rules")[0];
    assert_eq!(at(rule, "/resources/0"), at(crd, "/spec/names/plural"));
}

// ---------------------------------------------------------------------------------------
// Guard rails and the values schema

#[test]
fn guard_rails_refuse_impossible_values_with_the_reason() {
    let Some(tools) = Tools::find() else { return };
    let cases: &[(&[&str], &str)] = &[
        (
            &["--namespace", "kube-system"],
            "must not be installed into kube-system",
        ),
        (&["--set", "replicaCount=0"], "replicaCount is 0"),
        (
            &["--set", "tls.certManager.enabled=true"],
            "choose one certificate mode",
        ),
        (
            &["--set", "tls.generate.enabled=false"],
            "no certificate mode",
        ),
        (
            &[
                "--skip-schema-validation",
                "--set",
                "webhooks.validate.failurePolicy=Sometimes",
            ],
            "webhooks.validate.failurePolicy is \"Sometimes\": it must be Fail or Ignore",
        ),
        (
            &["--set", "webhooks.mutate.timeoutSeconds=31"],
            "accepts 1 to 30 seconds",
        ),
        (
            &[
                "--skip-schema-validation",
                "--set",
                "webhooks.policies.failurePolicy=Sometimes",
            ],
            "webhooks.policies.failurePolicy is \"Sometimes\": it must be Fail or Ignore",
        ),
        (
            &["--set", "webhooks.policies.timeoutSeconds=0"],
            "webhooks.policies.timeoutSeconds is 0",
        ),
        (
            &[
                "--skip-schema-validation",
                "--set",
                "webhooks.secretUse.failurePolicy=Sometimes",
            ],
            "webhooks.secretUse.failurePolicy is \"Sometimes\": it must be Fail or Ignore",
        ),
        (
            &["--set", "webhooks.secretUse.timeoutSeconds=31"],
            "webhooks.secretUse.timeoutSeconds is 31",
        ),
        (
            &["--set", "server.drainTimeoutSeconds=40"],
            "must be longer than server.drainTimeoutSeconds",
        ),
        (
            &["--set", "podDisruptionBudget.minAvailable=2"],
            "node drains block",
        ),
        (
            &[
                "--set",
                "webhooks.validate.enabled=false",
                "--set",
                "webhooks.mutate.enabled=false",
            ],
            "nothing would call secretgate",
        ),
        (
            &["--set", "audit.credentialChecks.enabled=true"],
            "audit.credentialChecks.enabled is true but audit.enabled is false",
        ),
        (
            &[
                "--skip-schema-validation",
                "--set",
                "audit.enabled=true",
                "--set",
                "audit.intervalSeconds=30",
            ],
            "audit.intervalSeconds is 30: it must be at least 60",
        ),
        (
            &[
                "--skip-schema-validation",
                "--set",
                "audit.enabled=true",
                "--set",
                "audit.reports=off",
            ],
            "audit.reports is \"off\"",
        ),
        (
            &["--set", "leaderElection.leaseRenewDeadlineSeconds=15"],
            "leaderElection.leaseRenewDeadlineSeconds (15) must be shorter than leaderElection.leaseDurationSeconds (15)",
        ),
        (
            &["--set", "leaderElection.leaseRetrySeconds=9"],
            "leaderElection.leaseRetrySeconds (9) plus its 20% jitter",
        ),
    ];
    for (args, message) in cases {
        tools.render_fails_with(args, &[message]);
    }
}

#[test]
fn values_schema_rejects_unknown_keys_and_wrong_types() {
    let Some(tools) = Tools::find() else { return };
    // Each case names the key and the reason; helm 3 and 4 word the rest differently.
    let cases: &[(&[&str], &[&str])] = &[
        (&["--set", "replicas=3"], &["replicas", "not allowed"]),
        (
            &["--set", "webhooks.validate.failurPolicy=Fail"],
            &["failurPolicy", "not allowed"],
        ),
        (
            &["--set", "tls.generate.bogus=1"],
            &["bogus", "not allowed"],
        ),
        (
            &["--set", "webhooks.validate.failurePolicy=Sometimes"],
            &["failurePolicy", "one of", "Fail", "Ignore"],
        ),
        (&["--set", "replicaCount=two"], &["replicaCount", "integer"]),
        (
            &["--set", "webhooks.policies.failurPolicy=Fail"],
            &["failurPolicy", "not allowed"],
        ),
        (
            &["--set", "webhooks.secretUse.objectSelector.matchLabels.a=b"],
            &["objectSelector", "not allowed"],
        ),
        (
            &[
                "--set-json",
                r#"webhooks.secretUse.excludedNamespaces=["Not_A_Name"]"#,
            ],
            &["excludedNamespaces"],
        ),
        (
            &["--set", "leaderElection.leaseName=Not_A_Name"],
            &["leaseName"],
        ),
        (
            &["--set", "leaderElection.renewSeconds=3"],
            &["renewSeconds", "not allowed"],
        ),
        (
            &["--set", "leaderElection.leaseDurationSeconds=0"],
            &["leaseDurationSeconds", "minimum"],
        ),
        (
            &[
                "--set",
                "audit.enabled=true",
                "--set",
                "audit.intervalSeconds=30",
            ],
            &["intervalSeconds", "minimum"],
        ),
        (
            &["--set-json", "audit.requestsPerSecond=0.05"],
            &["requestsPerSecond", "minimum"],
        ),
        (
            &["--set", "audit.credentialChecks.concurrency=0"],
            &["concurrency", "minimum"],
        ),
        (
            &["--set", "audit.enabled=true", "--set", "audit.reports=off"],
            &["reports", "one of", "auto", "openreports", "policyreport"],
        ),
        (&["--set", "audit.enabled=yes"], &["enabled", "boolean"]),
        (
            &["--set", "audit.interval=600"],
            &["interval", "not allowed"],
        ),
        (
            &["--set", "audit.credentialChecks.caBundle=not-a-certificate"],
            &["caBundle"],
        ),
    ];
    for (args, parts) in cases {
        tools.render_fails_with(args, parts);
    }
}

/// Every object of the schema refuses unknown keys: `additionalProperties` is false, or a
/// schema for map values (labels, annotations). Kubernetes types passed through whole
/// (affinity terms) are left to the API server and to kubernetes-validate.
#[test]
fn values_schema_closes_every_object() {
    const PASSED_THROUGH: &[&str] = &[
        "/properties/affinity/properties/nodeAffinity",
        "/properties/affinity/properties/podAffinity",
        "/properties/affinity/properties/podAntiAffinity",
    ];
    let text = std::fs::read_to_string(chart_dir().join("values.schema.json"))
        .expect("values.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    let mut open = Vec::new();
    open_objects(&schema, String::new(), &mut open);
    open.retain(|p| !PASSED_THROUGH.contains(&p.as_str()));
    assert!(
        open.is_empty(),
        "objects that accept unknown keys: {open:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Helpers

/// The webhook configurations of a default install, by kind and name.
const CONFIGURATIONS: [(&str, &str); 3] = [
    ("ValidatingWebhookConfiguration", "sg-secretgate"),
    ("MutatingWebhookConfiguration", "sg-secretgate"),
    ("ValidatingWebhookConfiguration", "sg-secretgate-policies"),
];

/// The Secret webhook's configuration.
fn secrets_config(manifests: &Manifests) -> &Value {
    manifests.named("ValidatingWebhookConfiguration", "sg-secretgate")
}

/// The Secret webhook's registrations by mode: failurePolicy (Fail) for Enforce and
/// unlabelled namespaces, Ignore for Warn and Audit.
const STRICT: &str = "secrets.validate.secretgate.io";
const LENIENT: &str = "secrets-lenient.validate.secretgate.io";

/// One registration for every namespace, as before failurePolicyByMode.
const BY_MODE_OFF: &[&str] = &[
    "--set",
    "webhooks.validate.failurePolicyByMode.enabled=false",
];

/// The Secret webhook registration of this name.
#[track_caller]
fn secret_webhook<'a>(manifests: &'a Manifests, name: &str) -> &'a Value {
    find(at(secrets_config(manifests), "/webhooks"), "/name", name)
}

/// Values that turn the secret-use webhook on.
const SECRET_USE: &[&str] = &["--set", "webhooks.secretUse.enabled=true"];

const MATCH_CONDITIONS: &str = r#"webhooks.validate.matchConditions=[{"name":"not-helm-release","expression":"object.type != 'helm.sh/release.v1'"}]"#;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/secretgate")
}

/// helm and kubernetes-validate, from .ci/tools.sh's directory or PATH.
struct Tools {
    helm: PathBuf,
    kubernetes_validate: PathBuf,
}

impl Tools {
    /// The tools, or None (after saying so) when they are missing outside CI.
    fn find() -> Option<Self> {
        match (find_tool("helm"), find_tool("kubernetes-validate")) {
            (Some(helm), Some(kubernetes_validate)) => Some(Self {
                helm,
                kubernetes_validate,
            }),
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("helm or kubernetes-validate is missing: run `bash .ci/tools.sh` first")
            }
            _ => {
                eprintln!(
                    "SKIPPED chart test: helm or kubernetes-validate not found \
                     (install them with `bash .ci/tools.sh`)"
                );
                None
            }
        }
    }

    fn run_helm(&self, args: &[&str]) -> Output {
        Command::new(&self.helm)
            .args(args)
            .output()
            .expect("run helm")
    }

    fn template_args<'a>(&self, chart: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "template",
            RELEASE,
            chart,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
        ];
        args.extend_from_slice(extra);
        args
    }

    fn lint(&self, extra: &[&str]) {
        let chart = chart_dir();
        let mut args = vec!["lint", chart.to_str().unwrap(), "--strict"];
        args.extend_from_slice(extra);
        let output = self.run_helm(&args);
        assert!(
            output.status.success(),
            "helm lint {extra:?} failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }

    /// `helm template` with these values; panics with helm's error if it fails.
    fn render(&self, extra: &[&str]) -> Manifests {
        let chart = chart_dir();
        let output = self.run_helm(&self.template_args(chart.to_str().unwrap(), extra));
        assert!(
            output.status.success(),
            "helm template {extra:?} failed:\n{}",
            text(&output.stderr)
        );
        Manifests::parse(text(&output.stdout))
    }

    /// `helm template` that must fail with an error naming every one of `parts`.
    fn render_fails_with(&self, extra: &[&str], parts: &[&str]) {
        let chart = chart_dir();
        let output = self.run_helm(&self.template_args(chart.to_str().unwrap(), extra));
        assert!(
            !output.status.success(),
            "helm template {extra:?} succeeded but should have failed"
        );
        let error = text(&output.stderr);
        for part in parts {
            assert!(
                error.contains(part),
                "helm template {extra:?} failed without {part:?}:\n{error}"
            );
        }
    }

    /// Validates every object against the Kubernetes API schemas, strictly (unknown
    /// fields are errors). Only custom resources may lack a schema.
    fn kubernetes_validate(&self, manifests: &Manifests) {
        let mut child = Command::new(&self.kubernetes_validate)
            .args(["-k", KUBE_VERSION, "--strict", "--quiet", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubernetes-validate");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifests.yaml.as_bytes())
            .expect("write manifests to kubernetes-validate");
        let output = child.wait_with_output().expect("kubernetes-validate");
        let report = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "kubernetes-validate:\n{report}");
        for warning in report.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                CUSTOM_KINDS
                    .iter()
                    .any(|kind| warning.contains(&format!("kind {kind} "))),
                "kubernetes-validate could not check a built-in object: {warning}"
            );
        }
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let tools_dir = std::env::var_os("SECRETGATE_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/secretgate-tools"))
        });
    let path = std::env::var_os("PATH").unwrap_or_default();
    tools_dir
        .map(|d| d.join("bin"))
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The objects `helm template` printed, and the YAML itself. Helm hooks (objects with a
/// `helm.sh/hook` annotation: created for one event, not installed) are kept apart.
struct Manifests {
    yaml: String,
    objects: Vec<Value>,
    hooks: Vec<Value>,
}

impl Manifests {
    fn parse(yaml: String) -> Self {
        let all: Vec<Value> = serde_saphyr::from_multiple(&yaml)
            .unwrap_or_else(|e| panic!("helm template printed invalid YAML: {e}\n{yaml}"));
        let (hooks, objects) = all
            .into_iter()
            .partition(|o| !o["metadata"]["annotations"]["helm.sh/hook"].is_null());
        Self {
            yaml,
            objects,
            hooks,
        }
    }

    /// The hooks of this kind.
    fn hooks(&self, kind: &str) -> Vec<&Value> {
        self.hooks.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The only object of this kind.
    fn one(&self, kind: &str) -> &Value {
        match self.all(kind).as_slice() {
            [object] => object,
            found => panic!("expected one {kind}, found {}", found.len()),
        }
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }
}

/// The value at a JSON pointer; panics naming the pointer when it is absent.
#[track_caller]
fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
    value
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} is absent from {value:#}"))
}

/// The element of an array whose field at `pointer` equals `expected`.
#[track_caller]
fn find<'a>(array: &'a Value, pointer: &str, expected: impl Into<Value>) -> &'a Value {
    let expected = expected.into();
    array
        .as_array()
        .and_then(|items| items.iter().find(|i| i.pointer(pointer) == Some(&expected)))
        .unwrap_or_else(|| panic!("no element with {pointer} = {expected} in {array:#}"))
}

fn strings(array: &Value) -> Vec<String> {
    array
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// Every webhook of a webhook configuration.
#[track_caller]
fn webhooks(config: &Value) -> Vec<&Value> {
    at(config, "/webhooks").as_array().unwrap().iter().collect()
}

/// The only webhook of a webhook configuration.
#[track_caller]
fn only_webhook(config: &Value) -> &Value {
    let hooks = at(config, "/webhooks").as_array().unwrap();
    assert_eq!(hooks.len(), 1, "one webhook per configuration");
    &hooks[0]
}

/// Namespaces a namespaceSelector leaves out by name.
fn excluded_namespaces(selector: &Value) -> Vec<String> {
    selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
        .flat_map(|e| strings(&e["values"]))
        .collect()
}

/// Whether a Kubernetes LabelSelector (matchLabels, matchExpressions) selects an object
/// with these labels, as the API server decides.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector["matchLabels"].as_object().into_iter().flatten();
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten();
    match_labels
        .into_iter()
        .all(|(key, value)| labels.get(key).map(String::as_str) == value.as_str())
        && expressions.into_iter().all(|e| {
            let value = labels.get(e["key"].as_str().expect("key"));
            let listed = |v: &String| e["values"].as_array().unwrap().contains(&json!(v));
            match e["operator"].as_str().expect("operator") {
                "In" => value.is_some_and(listed),
                "NotIn" => !value.is_some_and(listed),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("operator {other}"),
            }
        })
}

/// Containers and init containers of a pod spec.
fn all_containers(pod: &Value) -> Vec<&Value> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod[k].as_array())
        .flatten()
        .collect()
}

/// "--flag value" pairs as "--flag=value", so a flag and its value read as one.
fn joined_flags(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let takes_value = args[i].starts_with("--")
            && !args[i].contains('=')
            && args.get(i + 1).is_some_and(|next| !next.starts_with("--"));
        if takes_value {
            out.push(format!("{}={}", args[i], args[i + 1]));
            i += 2;
        } else {
            out.push(args[i].clone());
            i += 1;
        }
    }
    out
}

#[track_caller]
fn flag_value(args: &[String], flag: &str) -> String {
    let prefix = format!("{flag}=");
    joined_flags(args)
        .into_iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
}

/// Status of a POST of an empty JSON object to the server's webhook router.
fn post_to_router(path: &str) -> u16 {
    use tower::ServiceExt as _;
    let app = secretgate::server::app(common::state(
        secretgate::policy::Snapshot::with_default(),
        1 << 20,
    ));
    let request = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(app.oneshot(request))
        .expect("router answers")
        .status()
        .as_u16()
}

/// JSON pointers of schema objects that accept any key.
fn open_objects(schema: &Value, pointer: String, open: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if map.get("type") == Some(&json!("object")) && !map.contains_key("additionalProperties") {
        open.push(pointer.clone());
    }
    for (key, child) in map {
        match child {
            Value::Object(_) => open_objects(child, format!("{pointer}/{key}"), open),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    open_objects(item, format!("{pointer}/{key}/{i}"), open);
                }
            }
            _ => {}
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn instance_secrets_are_off_by_default_and_bring_their_rbac_when_on() {
    let Some(tools) = Tools::find() else { return };
    let rules = |m: &Manifests| {
        at(m.one("ClusterRole"), "/rules")
            .as_array()
            .expect("rules")
            .clone()
    };
    let writes_secrets = |rules: &[Value]| {
        rules.iter().any(|r| {
            r["resources"] == json!(["secrets"])
                && r["verbs"]
                    .as_array()
                    .is_some_and(|v| v.contains(&json!("create")) && v.contains(&json!("delete")))
        })
    };
    let off = tools.render(&[]);
    assert!(!writes_secrets(&rules(&off)), "no Secret writes by default");
    let args = strings(at(
        off.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    assert!(!args.iter().any(|a| a == "--instance-secrets"), "{args:?}");

    let on = tools.render(&["--set", "instanceSecrets.enabled=true"]);
    tools.kubernetes_validate(&on);
    assert!(
        writes_secrets(&rules(&on)),
        "create/update/delete Secrets when on"
    );
    let args = strings(at(
        on.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    assert!(args.iter().any(|a| a == "--instance-secrets"), "{args:?}");
    assert_eq!(
        flag_value(&args, "--instance-secret-namespaces"),
        "secretgate-system",
        "the release namespace"
    );
    let argv = std::iter::once("secretgate".to_string()).chain(args);
    if let Err(e) = secretgate::cli::Cli::try_parse_from(argv) {
        panic!("secretgate rejects the chart's arguments: {e}");
    }

    let sources = tools.render(&[
        "--set",
        "instanceSecrets.enabled=true",
        "--set-json",
        r#"instanceSecrets.sourceNamespaces=["platform","registry"]"#,
    ]);
    let args = strings(at(
        sources.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ));
    assert_eq!(
        flag_value(&args, "--instance-secret-namespaces"),
        "platform,registry"
    );
    tools.render_fails_with(
        &[
            "--set-json",
            r#"instanceSecrets.sourceNamespaces=["Not_A_Namespace"]"#,
        ],
        &["sourceNamespaces"],
    );
}

// ---------------------------------------------------------------------------------------
// The continuous audit (issue 17)

/// Values that turn the continuous audit on, with the chart's defaults otherwise.
const AUDIT: &[&str] = &["--set", "audit.enabled=true"];

/// A CA bundle for the credential checks; only its shape matters to the chart.
const CA_BUNDLE: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBeTCCAR+gAwIBAgIUFCpKyhtP\n-----END CERTIFICATE-----\n";

/// Every audit feature at once: the audit, the CRDs, credential checks with a CA bundle.
const FULL_AUDIT: &[&str] = &[
    "--set",
    "audit.enabled=true",
    "--set",
    "audit.installCrds=true",
    "--set",
    "audit.credentialChecks.enabled=true",
    "--set-json",
    r#"audit.credentialChecks.caBundle="-----BEGIN CERTIFICATE-----\nMIIBeTCCAR+gAwIBAgIUFCpKyhtP\n-----END CERTIFICATE-----\n""#,
];

const REPORT_VERBS: [&str; 4] = ["list", "create", "patch", "delete"];

/// The Deployment's container arguments.
fn deployment_args(manifests: &Manifests) -> Vec<String> {
    strings(at(
        manifests.one("Deployment"),
        "/spec/template/spec/containers/0/args",
    ))
}

/// The server's own ClusterRole rules.
fn server_rules(manifests: &Manifests) -> Vec<Value> {
    at(manifests.named("ClusterRole", "sg-secretgate"), "/rules")
        .as_array()
        .expect("rules")
        .clone()
}

/// Whether some rule grants `verb` on `resource` of `group`.
fn grants(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r["apiGroups"]
            .as_array()
            .is_some_and(|g| g.contains(&json!(group)))
            && r["resources"]
                .as_array()
                .is_some_and(|v| v.contains(&json!(resource)))
            && r["verbs"]
                .as_array()
                .is_some_and(|v| v.contains(&json!(verb)))
    })
}

#[track_caller]
fn assert_server_accepts(args: &[String]) {
    let argv = std::iter::once("secretgate".to_string()).chain(args.iter().cloned());
    if let Err(e) = secretgate::cli::Cli::try_parse_from(argv) {
        panic!("secretgate rejects the chart's arguments {args:?}: {e}");
    }
}

#[test]
fn the_audit_is_off_by_default_and_never_reads_secret_data() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let args = deployment_args(&manifests);
    assert!(args.contains(&"--reports=off".to_string()), "{args:?}");
    for flag in [
        "--audit-interval-seconds",
        "--audit-requests-per-second",
        "--credential-checks",
        "--credential-check-ca",
    ] {
        assert!(
            !args.iter().any(|a| a.starts_with(flag)),
            "{flag} in {args:?}"
        );
    }
    let rules = server_rules(&manifests);
    assert!(
        !grants(&rules, "", "secrets", "get"),
        "get on secrets: {rules:?}"
    );
    assert!(
        !grants(&rules, "", "pods", "list"),
        "list on pods: {rules:?}"
    );
    for (group, resource) in [
        ("openreports.io", "reports"),
        ("wgpolicyk8s.io", "policyreports"),
    ] {
        assert!(
            !grants(&rules, group, resource, "patch"),
            "{group}: {rules:?}"
        );
    }
    assert!(manifests.all("CustomResourceDefinition").is_empty());
    assert!(manifests.all("ConfigMap").is_empty());
    // The chart's own CRD is the only one, even with --include-crds.
    let with_crds = tools.render(&["--include-crds"]);
    let crds = with_crds.all("CustomResourceDefinition");
    assert_eq!(crds.len(), 1);
    assert_eq!(
        at(crds[0], "/metadata/name"),
        "projectpolicies.secretgate.io"
    );
}

#[test]
fn the_audit_brings_its_flags_and_rbac_when_enabled() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(AUDIT);
    tools.kubernetes_validate(&manifests);
    let args = deployment_args(&manifests);
    let flags = joined_flags(&args);
    for expected in [
        "--reports=auto",
        "--audit-interval-seconds=3600",
        "--audit-requests-per-second=10",
    ] {
        assert!(
            flags.contains(&expected.to_string()),
            "{expected} not in {args:?}"
        );
    }
    assert!(!args.contains(&"--reports=off".to_string()), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--credential-check")),
        "credential checks are opt-in: {args:?}"
    );
    assert_server_accepts(&args);

    let rules = server_rules(&manifests);
    for expected in [
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
        json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}),
        json!({"apiGroups": ["openreports.io"], "resources": ["reports", "clusterreports"],
               "verbs": REPORT_VERBS}),
        json!({"apiGroups": ["wgpolicyk8s.io"],
               "resources": ["policyreports", "clusterpolicyreports"], "verbs": REPORT_VERBS}),
    ] {
        assert!(
            rules.contains(&expected),
            "no rule {expected} in {rules:#?}"
        );
    }
    // Nothing else is added: no writes to Secrets, no watch on Pods.
    assert!(!grants(&rules, "", "secrets", "create"), "{rules:?}");
    assert!(!grants(&rules, "", "pods", "watch"), "{rules:?}");
    // The CRDs are a separate choice.
    assert!(manifests.all("CustomResourceDefinition").is_empty());
    assert!(manifests.all("ConfigMap").is_empty());

    // Values reach the flags; only the chosen report API is granted.
    let manifests = tools.render(&[
        "--set",
        "audit.enabled=true",
        "--set",
        "audit.reports=openreports",
        "--set",
        "audit.intervalSeconds=600",
        // --set makes "2.5" a string; --set-json keeps the number.
        "--set-json",
        "audit.requestsPerSecond=2.5",
    ]);
    let args = deployment_args(&manifests);
    assert_eq!(flag_value(&args, "--reports"), "openreports");
    assert_eq!(flag_value(&args, "--audit-interval-seconds"), "600");
    assert_eq!(flag_value(&args, "--audit-requests-per-second"), "2.5");
    assert_server_accepts(&args);
    let rules = server_rules(&manifests);
    assert!(grants(&rules, "openreports.io", "clusterreports", "patch"));
    assert!(
        !grants(&rules, "wgpolicyk8s.io", "policyreports", "patch"),
        "{rules:?}"
    );

    let manifests = tools.render(&[
        "--set",
        "audit.enabled=true",
        "--set",
        "audit.reports=policyreport",
    ]);
    assert_eq!(
        flag_value(&deployment_args(&manifests), "--reports"),
        "policyreport"
    );
    let rules = server_rules(&manifests);
    assert!(grants(
        &rules,
        "wgpolicyk8s.io",
        "clusterpolicyreports",
        "delete"
    ));
    assert!(
        !grants(&rules, "openreports.io", "reports", "patch"),
        "{rules:?}"
    );

    // No RBAC at all without rbac.create, whatever the audit.
    let no_rbac = tools.render(&[AUDIT, &["--set", "rbac.create=false"]].concat());
    assert!(no_rbac.all("ClusterRole").is_empty());
}

#[test]
fn the_openreports_crds_are_installed_verbatim_only_when_asked_and_kept() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[AUDIT, &["--set", "audit.installCrds=true"]].concat());
    tools.kubernetes_validate(&manifests);
    assert_eq!(manifests.all("CustomResourceDefinition").len(), 2);
    let rules = server_rules(&manifests);
    for (name, kind, plural, scope) in [
        ("reports.openreports.io", "Report", "reports", "Namespaced"),
        (
            "clusterreports.openreports.io",
            "ClusterReport",
            "clusterreports",
            "Cluster",
        ),
    ] {
        let crd = manifests.named("CustomResourceDefinition", name);
        assert_eq!(
            at(crd, "/metadata/annotations/helm.sh~1resource-policy"),
            "keep",
            "{name}: helm uninstall must not delete other tools' reports"
        );
        assert_eq!(at(crd, "/spec/group"), "openreports.io");
        assert_eq!(at(crd, "/spec/names/kind"), kind);
        assert_eq!(at(crd, "/spec/names/plural"), plural);
        assert_eq!(at(crd, "/spec/scope"), scope);
        let version = find(at(crd, "/spec/versions"), "/name", "v1alpha1");
        assert_eq!(at(version, "/served"), true);
        assert_eq!(at(version, "/storage"), true);
        // The server writes exactly what the RBAC rules name.
        assert!(
            grants(&rules, "openreports.io", plural, "patch"),
            "{plural}"
        );

        // The upstream file, unchanged but for the chart's labels and the annotation.
        let file = chart_dir().join(format!("files/openreports.io_{plural}.yaml"));
        let text = std::fs::read_to_string(&file).expect("CRD file");
        assert!(
            text.starts_with("# The OpenReports ") && text.contains("openreports/reports-api"),
            "{} must name its source",
            file.display()
        );
        let upstream: Value = serde_saphyr::from_str(&text).expect("CRD file is YAML");
        assert_eq!(at(crd, "/spec"), at(&upstream, "/spec"), "{name}");
        assert_eq!(
            at(
                crd,
                "/metadata/annotations/controller-gen.kubebuilder.io~1version"
            ),
            at(
                &upstream,
                "/metadata/annotations/controller-gen.kubebuilder.io~1version"
            )
        );
        assert_eq!(
            at(crd, "/metadata/labels/app.kubernetes.io~1instance"),
            RELEASE
        );
    }
    // The report results the server writes fit the schema's enums.
    let results = at(
        manifests.named("CustomResourceDefinition", "reports.openreports.io"),
        "/spec/versions/0/schema/openAPIV3Schema/properties/results/items/properties",
    );
    assert_eq!(
        at(results, "/result/enum"),
        &json!(["pass", "fail", "warn", "error", "skip"])
    );

    // Independent of the audit (the one-shot `audit -o report` needs them too).
    let alone = tools.render(&["--set", "audit.installCrds=true"]);
    assert_eq!(alone.all("CustomResourceDefinition").len(), 2);
    assert!(deployment_args(&alone).contains(&"--reports=off".to_string()));
}

#[test]
fn credential_checks_pass_their_flags_and_mount_the_ca_bundle() {
    let Some(tools) = Tools::find() else { return };
    // Without a bundle: the flags, no ConfigMap.
    let manifests = tools.render(&[
        "--set",
        "audit.enabled=true",
        "--set",
        "audit.credentialChecks.enabled=true",
        "--set",
        "audit.credentialChecks.timeoutSeconds=5",
        "--set",
        "audit.credentialChecks.concurrency=2",
    ]);
    let args = deployment_args(&manifests);
    assert!(
        args.contains(&"--credential-checks".to_string()),
        "{args:?}"
    );
    assert_eq!(flag_value(&args, "--credential-check-timeout-seconds"), "5");
    assert_eq!(flag_value(&args, "--credential-check-concurrency"), "2");
    assert!(
        !args.iter().any(|a| a == "--credential-check-ca"),
        "{args:?}"
    );
    assert!(manifests.all("ConfigMap").is_empty());
    assert_server_accepts(&args);

    // With a bundle: a ConfigMap, mounted read-only, its file passed to the server.
    let manifests = tools.render(FULL_AUDIT);
    tools.kubernetes_validate(&manifests);
    let config_map = manifests.named("ConfigMap", "sg-secretgate-credential-check-ca");
    assert_eq!(at(config_map, "/metadata/namespace"), NAMESPACE);
    assert_eq!(at(config_map, "/data/ca.crt"), CA_BUNDLE);
    let pod = at(manifests.one("Deployment"), "/spec/template/spec");
    let volume = find(
        at(pod, "/volumes"),
        "/configMap/name",
        "sg-secretgate-credential-check-ca",
    );
    let container = at(pod, "/containers/0");
    let mount = find(
        at(container, "/volumeMounts"),
        "/name",
        at(volume, "/name").clone(),
    );
    assert_eq!(at(mount, "/readOnly"), true);
    let args = strings(at(container, "/args"));
    assert_eq!(
        flag_value(&args, "--credential-check-ca"),
        format!("{}/ca.crt", at(mount, "/mountPath").as_str().unwrap())
    );
    assert_server_accepts(&args);
    // A new bundle rolls the pods (the server reads it at start).
    let checksum = at(
        manifests.one("Deployment"),
        "/spec/template/metadata/annotations/checksum~1credential-check-ca",
    );
    assert!(
        checksum.as_str().is_some_and(|c| c.len() == 64),
        "{checksum}"
    );

    // A bundle without the checks is not mounted.
    let manifests = tools.render(&[
        "--set",
        "audit.enabled=true",
        "--set-json",
        &format!("audit.credentialChecks.caBundle={}", json!(CA_BUNDLE)),
    ]);
    assert!(manifests.all("ConfigMap").is_empty());
    assert!(
        !deployment_args(&manifests)
            .iter()
            .any(|a| a.starts_with("--credential-check"))
    );

    // Checks without the audit: refused, with the reason.
    tools.render_fails_with(
        &["--set", "audit.credentialChecks.enabled=true"],
        &["audit.credentialChecks.enabled is true but audit.enabled is false"],
    );
}

#[test]
fn values_schema_refuses_an_audit_interval_under_a_minute() {
    let Some(tools) = Tools::find() else { return };
    tools.render_fails_with(
        &[
            "--set",
            "audit.enabled=true",
            "--set",
            "audit.intervalSeconds=30",
        ],
        &["intervalSeconds", "minimum"],
    );
    // 60 is the least the server accepts.
    let args = deployment_args(&tools.render(&[
        "--set",
        "audit.enabled=true",
        "--set",
        "audit.intervalSeconds=60",
    ]));
    assert_eq!(flag_value(&args, "--audit-interval-seconds"), "60");
}

#[test]
fn the_pull_guarantee_reads_pull_secrets_only_with_the_pods_webhook() {
    let Some(tools) = Tools::find() else { return };
    let flag = |manifests: &Manifests| {
        deployment_args(manifests)
            .iter()
            .filter(|a| *a == "--pull-secret-registries")
            .count()
    };
    // No pods webhook by default: nothing checks the guarantee, nothing is read.
    assert_eq!(flag(&tools.render(&[])), 0);
    let manifests = tools.render(SECRET_USE);
    assert_eq!(flag(&manifests), 1);
    assert_server_accepts(&deployment_args(&manifests));
    // No new grant: the list/watch on secrets the metadata cache has.
    let rules = server_rules(&manifests);
    assert!(!grants(&rules, "", "secrets", "get"), "{rules:?}");
    let off = tools.render(
        &[
            SECRET_USE,
            &["--set", "webhooks.secretUse.pullGuarantee=false"],
        ]
        .concat(),
    );
    assert_eq!(flag(&off), 0);
}

#[test]
fn the_pods_webhook_is_split_by_mode_like_the_secret_webhook() {
    let Some(tools) = Tools::find() else { return };
    let pods_hooks = |manifests: &Manifests| -> Vec<Value> {
        manifests
            .all("ValidatingWebhookConfiguration")
            .into_iter()
            .flat_map(webhooks)
            .filter(|h| h["clientConfig"]["service"]["path"] == "/validate-pods")
            .cloned()
            .collect()
    };
    let manifests = tools.render(SECRET_USE);
    tools.kubernetes_validate(&manifests);
    let hooks = pods_hooks(&manifests);
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    let warn = BTreeMap::from([
        (
            "kubernetes.io/metadata.name".to_owned(),
            "team-a".to_owned(),
        ),
        ("secretgate.io/mode".to_owned(), "Warn".to_owned()),
    ]);
    let enforce = BTreeMap::from([
        (
            "kubernetes.io/metadata.name".to_owned(),
            "team-b".to_owned(),
        ),
        ("secretgate.io/mode".to_owned(), "Enforce".to_owned()),
    ]);
    let unlabelled = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), "new".to_owned())]);
    for (labels, policy) in [(&warn, "Ignore"), (&enforce, "Fail"), (&unlabelled, "Fail")] {
        let chosen: Vec<&Value> = hooks
            .iter()
            .filter(|h| selects(&h["namespaceSelector"], labels))
            .collect();
        assert_eq!(chosen.len(), 1, "{labels:?}: exactly one registration");
        assert_eq!(chosen[0]["failurePolicy"], policy, "{labels:?}");
        // Same rules either way.
        assert_eq!(chosen[0]["rules"], hooks[0]["rules"]);
    }
    // Without the mode label: today's single registration.
    let single = tools.render(&[SECRET_USE, BY_MODE_OFF].concat());
    let hooks = pods_hooks(&single);
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["name"], "pods.validate.secretgate.io");
    assert_eq!(hooks[0]["failurePolicy"], "Fail");
}

// ---------------------------------------------------------------------------------------
// Events on denied Secrets' owners, and the pre-delete hook

#[test]
fn owner_events_are_on_by_default_with_their_rbac_and_gone_when_off() {
    let Some(tools) = Tools::find() else { return };
    let on = tools.render(&[]);
    let args = deployment_args(&on);
    assert!(args.contains(&"--owner-events".to_string()), "{args:?}");
    assert_server_accepts(&args);
    let rules = server_rules(&on);
    for verb in ["create", "patch"] {
        assert!(grants(&rules, "events.k8s.io", "events", verb), "{rules:?}");
    }
    assert!(grants(&rules, "cert-manager.io", "certificates", "get"));
    assert!(!grants(&rules, "cert-manager.io", "certificates", "list"));
    assert!(!grants(&rules, "events.k8s.io", "events", "delete"));

    let off = tools.render(&["--set", "ownerEvents.enabled=false"]);
    assert!(!deployment_args(&off).contains(&"--owner-events".to_string()));
    let rules = server_rules(&off);
    assert!(
        !grants(&rules, "events.k8s.io", "events", "create"),
        "{rules:?}"
    );
    assert!(!grants(&rules, "cert-manager.io", "certificates", "get"));
}

/// The names of the webhook configurations of `kind` the chart installs.
fn configuration_names(manifests: &Manifests, kind: &str) -> Vec<String> {
    manifests
        .all(kind)
        .iter()
        .map(|c| at(c, "/metadata/name").as_str().expect("name").to_owned())
        .collect()
}

/// The pre-delete hook's Job arguments, checked against the real command line.
fn unregister_args(manifests: &Manifests) -> Vec<String> {
    let jobs = manifests.hooks("Job");
    assert_eq!(jobs.len(), 1, "one hook Job");
    let args = strings(at(jobs[0], "/spec/template/spec/containers/0/args"));
    assert_server_accepts(&args);
    args
}

#[test]
fn the_pre_delete_hook_deletes_exactly_the_configurations_the_release_installs() {
    let Some(tools) = Tools::find() else { return };
    for values in [
        &[][..],
        SECRET_USE,
        &["--set", "webhooks.mutate.enabled=false"][..],
    ] {
        let manifests = tools.render(values);
        let validating = configuration_names(&manifests, "ValidatingWebhookConfiguration");
        let mutating = configuration_names(&manifests, "MutatingWebhookConfiguration");
        assert!(!validating.is_empty(), "{values:?}");

        // The Job names every configuration, and only those.
        let args = unregister_args(&manifests);
        assert_eq!(args[0], "unregister");
        assert_eq!(flag_values(&args, "--validating"), validating, "{values:?}");
        assert_eq!(flag_values(&args, "--mutating"), mutating, "{values:?}");

        // Its ClusterRole may delete those, by name, and do nothing else.
        let roles = manifests.hooks("ClusterRole");
        assert_eq!(roles.len(), 1);
        let mut expected = vec![json!({
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "resourceNames": validating, "verbs": ["delete"]})];
        if !mutating.is_empty() {
            expected.push(json!({
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": mutating, "verbs": ["delete"]}));
        }
        assert_eq!(at(roles[0], "/rules"), &json!(expected), "{values:?}");
    }
}

#[test]
fn the_pre_delete_hook_objects_run_in_order_and_clean_up_after_themselves() {
    let Some(tools) = Tools::find() else { return };
    let manifests = tools.render(&[]);
    let weight = |o: &Value| -> i64 {
        at(o, "/metadata/annotations/helm.sh~1hook-weight")
            .as_str()
            .expect("weight")
            .parse()
            .expect("number")
    };
    let mut weights = BTreeMap::new();
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"] {
        let objects = manifests.hooks(kind);
        assert_eq!(objects.len(), 1, "{kind}");
        let hook = objects[0];
        assert_eq!(at(hook, "/metadata/name"), "sg-secretgate-pre-delete");
        let annotations = at(hook, "/metadata/annotations");
        assert_eq!(annotations["helm.sh/hook"], "pre-delete", "{kind}");
        assert_eq!(
            annotations["helm.sh/hook-delete-policy"], "before-hook-creation,hook-succeeded",
            "{kind}"
        );
        weights.insert(kind, weight(hook));
    }
    // Identity and rights exist before the Job that uses them.
    assert!(weights["ServiceAccount"] < weights["ClusterRoleBinding"]);
    assert!(weights["ClusterRole"] < weights["ClusterRoleBinding"]);
    assert!(weights["ClusterRoleBinding"] < weights["Job"]);
    // Hooks are not installed objects: the server's own RBAC is unchanged.
    assert_eq!(manifests.all("ClusterRole").len(), 1);

    let binding = manifests.hooks("ClusterRoleBinding")[0];
    assert_eq!(at(binding, "/roleRef/name"), "sg-secretgate-pre-delete");
    assert_eq!(
        at(binding, "/subjects"),
        &json!([{"kind": "ServiceAccount", "name": "sg-secretgate-pre-delete",
                 "namespace": NAMESPACE}])
    );

    // The Job: the release's image, run like the Deployment's pods, bounded in time.
    let job = manifests.hooks("Job")[0];
    let pod = at(job, "/spec/template/spec");
    let deployment_pod = at(manifests.one("Deployment"), "/spec/template/spec");
    assert_eq!(at(pod, "/serviceAccountName"), "sg-secretgate-pre-delete");
    assert_eq!(at(pod, "/restartPolicy"), "Never");
    assert_eq!(
        at(pod, "/securityContext"),
        at(deployment_pod, "/securityContext")
    );
    let container = at(pod, "/containers/0");
    let server = at(deployment_pod, "/containers/0");
    assert_eq!(at(container, "/image"), at(server, "/image"));
    assert_eq!(
        at(container, "/securityContext"),
        at(server, "/securityContext")
    );
    assert!(at(container, "/resources/limits").is_object());
    assert_eq!(
        flag_value(&unregister_args(&manifests), "--timeout-seconds"),
        "60"
    );
    assert_eq!(at(job, "/spec/activeDeadlineSeconds"), 120);

    let longer = tools.render(&["--set", "webhooks.preDeleteHook.timeoutSeconds=300"]);
    assert_eq!(
        flag_value(&unregister_args(&longer), "--timeout-seconds"),
        "300"
    );
    assert_eq!(
        at(longer.hooks("Job")[0], "/spec/activeDeadlineSeconds"),
        360
    );
}

#[test]
fn the_pre_delete_hook_can_be_turned_off_and_needs_rbac() {
    let Some(tools) = Tools::find() else { return };
    for values in [
        &["--set", "webhooks.preDeleteHook.enabled=false"][..],
        &["--set", "rbac.create=false"][..],
    ] {
        let manifests = tools.render(values);
        assert!(
            manifests.hooks.is_empty(),
            "{values:?}: {:?}",
            manifests.hooks
        );
        // The webhooks themselves are still installed.
        assert!(!manifests.all("ValidatingWebhookConfiguration").is_empty());
    }
    tools.render_fails_with(
        &["--set", "webhooks.preDeleteHook.timeoutSeconds=0"],
        &["timeoutSeconds"],
    );
    tools.render_fails_with(&["--set", "webhooks.preDeleteHook.extra=1"], &["extra"]);
}

/// Every value given to a repeatable flag, in order.
fn flag_values(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|pair| pair[0] == flag)
        .map(|pair| pair[1].clone())
        .collect()
}

// ---------------------------------------------------------------------------------------
// ValidatingAdmissionPolicies (issue 18)

#[test]
fn admission_policies_are_off_by_default_and_bring_their_rbac_when_on() {
    let Some(tools) = Tools::find() else { return };
    const RESOURCES: [&str; 2] = [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ];
    let group = "admissionregistration.k8s.io";
    let off = tools.render(&[]);
    assert!(
        !deployment_args(&off)
            .iter()
            .any(|a| a == "--publish-admission-policies")
    );
    for resource in RESOURCES {
        assert!(!grants(&server_rules(&off), group, resource, "list"));
    }

    let on = tools.render(&[
        "--set",
        "admissionPolicies.enabled=true",
        "--set-json",
        r#"webhooks.excludedNamespaces=["monitoring"]"#,
    ]);
    tools.kubernetes_validate(&on);
    let args = deployment_args(&on);
    assert!(
        args.iter().any(|a| a == "--publish-admission-policies"),
        "{args:?}"
    );
    // The namespaces the Secret webhook never sees are left out of the bindings too.
    assert_eq!(
        flag_value(&args, "--admission-policy-excluded-namespaces"),
        "secretgate-system,kube-system,monitoring"
    );
    let argv = std::iter::once("secretgate".to_string()).chain(args);
    if let Err(e) = secretgate::cli::Cli::try_parse_from(argv) {
        panic!("secretgate rejects the chart's arguments: {e}");
    }
    let rules = server_rules(&on);
    for resource in RESOURCES {
        for verb in ["list", "create", "patch", "delete"] {
            assert!(grants(&rules, group, resource, verb), "{verb} {resource}");
        }
        for verb in ["update", "get", "watch"] {
            assert!(
                !grants(&rules, group, resource, verb),
                "no {verb} {resource}"
            );
        }
    }
    tools.render_fails_with(
        &["--set", "admissionPolicies.enabled=yes"],
        &["admissionPolicies"],
    );
}

#[test]
fn published_admission_policies_are_valid_kubernetes_objects() {
    let Some(tools) = Tools::find() else { return };
    // Every rule kind, an exemption, both selection forms, and each mode.
    let yaml = r#"
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata: {name: team-a}
spec:
  namespaces: [team-a]
  namespaceSelector: {matchLabels: {team: a}}
  secrets:
    name: {prefix: team-a-, pattern: "[a-z0-9-]+-(db|api)", maxLength: 40, forbidDots: true}
    allowedTypes: [Opaque, example.com/x]
    allowCustomTypes: false
    requiredLabels: [app]
    requiredAnnotations: [secretgate.io/display-name]
  exemptions: {groups: [platform], serviceAccounts: [cert-manager/cert-manager]}
---
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata: {name: team-b}
spec:
  mode: Warn
  namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [b]}]}
  secrets: {requiredLabels: [app]}
---
apiVersion: secretgate.io/v1alpha1
kind: ProjectPolicy
metadata: {name: team-c}
spec: {mode: Audit, namespaces: [team-c], secrets: {allowCustomTypes: false}}
"#;
    let snapshot =
        secretgate::policy::file::parse(Path::new("policy.yaml"), yaml).expect("policies");
    let scope = secretgate::admission_policy::Scope {
        excluded_namespaces: vec![NAMESPACE.to_owned(), "kube-system".to_owned()],
    };
    let plan = secretgate::admission_policy::plan(&snapshot, &scope);
    assert_eq!(plan.published.len(), 3);
    let printed = secretgate::admission_policy::to_yaml(&plan).expect("yaml");
    tools.kubernetes_validate(&Manifests::parse(printed));
}
