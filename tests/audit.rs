//! `secretgate audit` against a mock API server (tower-test): LISTs of the four kinds,
//! one GET per secret (a secret deleted meanwhile is skipped), and a report grouped by
//! project and rule without secret values; the same findings as OpenReports and
//! wgpolicyk8s report objects, checked against the fields their CRDs define.

use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use base64::Engine as _;
use kube::client::Body;
use secretgate::audit;
use secretgate::cli::AuditFormat;
use serde_json::{Value, json};

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn list(kind: &str, api_version: &str, items: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn meta(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": name, "namespace": namespace}})
}

fn secret(name: &str, type_: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": type_, "data": data,
           "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}")}})
}

/// What the mock cluster holds, answered by URI.
fn answer(method: &str, uri: &str) -> Value {
    assert_eq!(method, "GET", "{uri}");
    let docker = b64(&json!({"auths": {"registry.example.com":
        {"username": "u", "password": "PLANTED-pw", "auth": b64("u:PLANTED-pw")}}})
    .to_string());
    if uri.starts_with("/api/v1/namespaces/team-a/secrets/regcred") {
        secret(
            "regcred",
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": docker}),
        )
    } else if uri.starts_with("/api/v1/namespaces/team-a/secrets/web-tls") {
        secret(
            "web-tls",
            "kubernetes.io/tls",
            json!({"tls.crt": b64("PLANTED-crt"), "tls.key": b64("PLANTED-key")}),
        )
    } else if uri.starts_with("/api/v1/namespaces/team-b/secrets/b-tls") {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "b-tls", "namespace": "team-b"},
               "data": {"tls.crt": b64("PLANTED-crt"), "tls.key": b64("PLANTED-key")}})
    } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
        list(
            "ProjectPolicyList",
            "secretgate.io/v1alpha1",
            json!([
                {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                 "metadata": {"name": "team-a"},
                 "spec": {"namespaceSelector": {"matchLabels": {"project": "a"}}, "mode": "Enforce",
                          "imagePullSecrets": [{"secretName": "regcred",
                                                "registries": ["registry.example.com"]}],
                          "instanceSecrets": [
                              {"source": {"namespace": "team-b", "name": "b-tls"}, "targetName": "regcred"},
                              {"source": {"namespace": "team-b", "name": "b-tls"}, "targetName": "shared-tls"},
                              {"source": {"namespace": "team-b", "name": "nope"}},
                              {"source": {"namespace": "kube-system", "name": "admin"}}]}},
                {"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                 "metadata": {"name": "broken"},
                 "spec": {"namespaces": ["x"], "secrets": {"ssh": {"minRsaBits": 1}}}}
            ]),
        )
    } else if uri.starts_with("/api/v1/namespaces") {
        list(
            "PartialObjectMetadataList",
            "meta.k8s.io/v1",
            json!([
                {"apiVersion": "v1", "kind": "PartialObjectMetadata",
                 "metadata": {"name": "team-a", "labels": {"project": "a"}}},
                {"apiVersion": "v1", "kind": "PartialObjectMetadata", "metadata": {"name": "team-b"}}
            ]),
        )
    } else if uri.starts_with("/api/v1/secrets") {
        list(
            "PartialObjectMetadataList",
            "meta.k8s.io/v1",
            json!([
                meta("team-a", "regcred"),
                // A copy secretgate made earlier that no policy wants now.
                json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
                       "metadata": {"name": "web-tls", "namespace": "team-a", "uid": "w",
                                    "labels": {"app.kubernetes.io/managed-by": "secretgate"},
                                    "annotations": {"secretgate.io/source": "team-b/b-tls",
                                                    "secretgate.io/policy": "team-a"}}}),
                meta("team-a", "gone"),
                meta("team-b", "b-tls")
            ]),
        )
    } else if uri.starts_with("/api/v1/serviceaccounts") {
        list(
            "ServiceAccountList",
            "v1",
            json!([{"metadata": {"name": "default", "namespace": "team-a"}}]),
        )
    } else if uri.starts_with("/api/v1/pods") {
        list(
            "PodList",
            "v1",
            json!([
                {"metadata": {"name": "web", "namespace": "team-a"},
                 "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}},
                {"metadata": {"name": "ok", "namespace": "team-a"},
                 "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}],
                          "imagePullSecrets": [{"name": "regcred"}]}}
            ]),
        )
    } else {
        panic!("unexpected request {method} {uri}");
    }
}

fn not_found(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound",
           "code": 404, "message": format!("secrets \"{name}\" not found")})
}

/// Answers every request and records (uri, accept header).
async fn api_server(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
) {
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        let accept = request
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // A secret deleted between the LIST and its GET.
        let (status, body) = if uri.starts_with("/api/v1/namespaces/team-a/secrets/gone") {
            (404, not_found("gone"))
        } else {
            (200, answer(request.method().as_str(), &uri))
        };
        seen.lock().expect("lock").push((uri, accept));
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(body.to_string().into_bytes()))
                .expect("response"),
        );
    }
}

#[tokio::test]
async fn audit_groups_findings_by_project_and_rule() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(api_server(handle, seen.clone()));

    let sources = ["team-b".to_owned()].into();
    let now = time::OffsetDateTime::now_utc();
    let report = audit::run(client, now, &sources).await.expect("audit");

    let team_a = &report.projects["team-a"];
    assert_eq!(
        (team_a.secrets, team_a.denied, team_a.pods, team_a.patched),
        (2, 1, 2, 1)
    );
    let rules: Vec<&String> = team_a.rules.keys().collect();
    assert!(
        rules.iter().any(|r| r.starts_with("deny data[tls.crt]:")),
        "{rules:?}"
    );
    let inject = team_a
        .rules
        .values()
        .find(|r| r.effect == "inject")
        .expect("an injection rule");
    assert_eq!(inject.objects, ["Pod team-a/web"]);
    let default = &report.projects["default"];
    assert_eq!((default.secrets, default.denied), (1, 1));
    assert_eq!(report.invalid_policies.len(), 1);
    assert_eq!(report.invalid_policies[0].name, "broken");
    assert!(report.any_denied());
    let copies: Vec<(&str, &str)> = report
        .instance_secrets
        .iter()
        .map(|c| (c.state, c.secret.as_str()))
        .collect();
    assert_eq!(
        copies,
        [
            ("missing", "team-a/shared-tls"),
            ("orphaned", "team-a/web-tls"),
            ("conflict", "team-a/regcred"),
            ("source_missing", "team-b/nope"),
            ("source_not_allowed", "kube-system/admin"),
        ]
    );

    let seen = seen.lock().expect("lock").clone();
    let list = seen
        .iter()
        .find(|(uri, _)| uri.starts_with("/api/v1/secrets"))
        .expect("secrets listed");
    assert!(
        list.1.contains("PartialObjectMetadataList"),
        "metadata-only list: {}",
        list.1
    );
    let gets = seen
        .iter()
        .filter(|(uri, _)| uri.contains("/secrets/"))
        .count();
    assert_eq!(gets, 4, "one GET per secret: {seen:?}");

    for format in [
        AuditFormat::Text,
        AuditFormat::Json,
        AuditFormat::Report,
        AuditFormat::PolicyReport,
    ] {
        let mut out = Vec::new();
        audit::write(&report, format, now, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("team-a"), "{text}");
        assert!(text.contains("conflict"), "{text}");
        assert!(!text.contains("PLANTED"), "{text}");
        assert!(!text.contains(&b64("PLANTED-crt")), "{text}");
    }
    report_objects(&report, now);
}

/// The report objects of the audit above: kinds, namespaces, results, and only the
/// fields the CRDs define (no CRD validator is available offline: the field lists below
/// are the OpenReports v1alpha1 and wgpolicyk8s v1alpha2 CRD schemas, by hand).
fn report_objects(report: &audit::Report, now: time::OffsetDateTime) {
    use secretgate::reports::{self, Flavor};
    for flavor in [Flavor::OpenReports, Flavor::PolicyReport] {
        let mut out = Vec::new();
        let format = match flavor {
            Flavor::OpenReports => AuditFormat::Report,
            Flavor::PolicyReport => AuditFormat::PolicyReport,
        };
        audit::write(report, format, now, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let docs: Vec<Value> = text
            .split("\n---\n")
            .map(|doc| doc.trim_start_matches("---\n"))
            .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}")))
            .collect();
        assert_eq!(
            docs,
            reports::build(report, flavor, now)
                .iter()
                .map(|o| serde_json::to_value(o).expect("json"))
                .collect::<Vec<_>>(),
            "the YAML stream reads back as the objects"
        );
        let names: Vec<(String, String)> = docs
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap_or_default().to_owned(),
                    d["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("-")
                        .to_owned(),
                )
            })
            .collect();
        let (cluster, namespaced) = match flavor {
            Flavor::OpenReports => ("ClusterReport", "Report"),
            Flavor::PolicyReport => ("ClusterPolicyReport", "PolicyReport"),
        };
        let expect = |k: &str, ns: &str| (k.to_owned(), ns.to_owned());
        assert_eq!(
            names,
            [
                expect(cluster, "-"),
                expect(namespaced, "team-a"),
                expect(namespaced, "team-b")
            ]
        );
        for doc in &docs {
            assert_eq!(doc["apiVersion"], flavor.api_version());
            shape(doc, flavor);
        }
        let results = |i: usize| docs[i]["results"].as_array().expect("results").clone();
        // Cluster: the broken policy (error) and the two source problems (fail).
        let cluster_results: Vec<(String, String, String)> = results(0)
            .iter()
            .map(|r| {
                (
                    r["result"].as_str().unwrap_or_default().to_owned(),
                    r["policy"].as_str().unwrap_or_default().to_owned(),
                    r["rule"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            cluster_results,
            [
                (
                    "fail".into(),
                    "team-a".into(),
                    "instance-secret:source_not_allowed".into()
                ),
                (
                    "fail".into(),
                    "team-a".into(),
                    "instance-secret:source_missing".into()
                ),
                ("error".into(), "broken".into(), "valid".into()),
            ],
            "{:#?}",
            results(0)
        );
        let team_a = results(1);
        let find = |kind: &str, name: &str| -> Vec<Value> {
            team_a
                .iter()
                .filter(|r| r["resources"][0]["kind"] == kind && r["resources"][0]["name"] == name)
                .cloned()
                .collect()
        };
        let web_tls = find("Secret", "web-tls");
        assert!(
            web_tls.iter().any(|r| r["result"] == "fail"
                && r["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("data[tls.crt]")),
            "{web_tls:#?}"
        );
        // Its review's result carries the uid (the conflict result of the instance
        // secret of the same name does not know it).
        let regcred: Vec<Value> = find("Secret", "regcred")
            .into_iter()
            .filter(|r| r["category"] == "Secrets")
            .collect();
        assert!(!regcred.is_empty(), "{team_a:#?}");
        assert_eq!(regcred[0]["resources"][0]["uid"], "uid-regcred");
        let web = find("Pod", "web");
        assert!(
            web.iter()
                .any(|r| r["result"] == "warn" && r["rule"] == "inject:image_pull_secret"),
            "{web:#?}"
        );
        let ok = find("Pod", "ok");
        assert_eq!(ok.len(), 1, "{ok:#?}");
        assert_eq!(
            (&ok[0]["result"], &ok[0]["rule"]),
            (&json!("pass"), &json!("all"))
        );
        let summary = &docs[1]["summary"];
        let counted: u64 = ["pass", "fail", "warn", "error", "skip"]
            .iter()
            .map(|k| summary[k].as_u64().expect("count"))
            .sum();
        assert_eq!(counted, team_a.len() as u64, "{summary}");
        assert_eq!(
            summary["fail"].as_u64(),
            Some(team_a.iter().filter(|r| r["result"] == "fail").count() as u64)
        );
        // Copy problems in the copy's namespace.
        for state in ["missing", "orphaned", "conflict"] {
            assert!(
                team_a
                    .iter()
                    .any(|r| r["rule"] == format!("instance-secret:{state}")),
                "{state}: {team_a:#?}"
            );
        }
        // The default policy's b-tls in team-b.
        assert!(
            results(2)
                .iter()
                .any(|r| r["result"] == "fail" && r["policy"] == "default")
        );
    }
}

/// Fails on any field the report CRDs do not define, and on values their enums forbid.
fn shape(doc: &Value, flavor: secretgate::reports::Flavor) {
    use secretgate::reports::Flavor;
    let mut top = vec![
        "apiVersion",
        "kind",
        "metadata",
        "scope",
        "scopeSelector",
        "summary",
        "results",
    ];
    if flavor == Flavor::OpenReports {
        top.extend(["source", "configuration"]);
    }
    keys(doc, &top, "report");
    keys(
        &doc["summary"],
        &["pass", "fail", "warn", "error", "skip"],
        "summary",
    );
    if let Some(c) = doc.get("configuration") {
        keys(c, &["limits"], "configuration");
        keys(&c["limits"], &["maxResults", "statusFilter"], "limits");
    }
    for r in doc["results"].as_array().expect("results") {
        keys(
            r,
            &[
                "source",
                "policy",
                "rule",
                "category",
                "severity",
                "timestamp",
                "result",
                "scored",
                "resources",
                "resourceSelector",
                "message",
                "properties",
            ],
            "result",
        );
        assert!(r["policy"].is_string(), "policy is required: {r}");
        assert!(
            ["pass", "fail", "warn", "error", "skip"]
                .contains(&r["result"].as_str().unwrap_or("?")),
            "{r}"
        );
        if let Some(s) = r.get("severity") {
            assert!(
                ["critical", "high", "medium", "low", "info"].contains(&s.as_str().unwrap_or("?")),
                "{r}"
            );
        }
        keys(&r["timestamp"], &["seconds", "nanos"], "timestamp");
        assert!(
            r["timestamp"]["seconds"].is_i64() && r["timestamp"]["nanos"].is_i64(),
            "{r}"
        );
        for res in r["resources"].as_array().expect("resources") {
            keys(
                res,
                &[
                    "apiVersion",
                    "kind",
                    "namespace",
                    "name",
                    "uid",
                    "resourceVersion",
                    "fieldPath",
                ],
                "resource",
            );
        }
        if let Some(p) = r.get("properties") {
            assert!(
                p.as_object().expect("map").values().all(Value::is_string),
                "{r}"
            );
        }
    }
}

fn keys(value: &Value, allowed: &[&str], what: &str) {
    let map = value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not a map: {value}"));
    for key in map.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{what} has no field {key}: {value}"
        );
    }
}

#[test]
fn an_unreadable_kubeconfig_exits_2_naming_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .args(["audit", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("run secretgate");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
}
