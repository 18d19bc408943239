//! The continuous audit inside cluster mode's loop, against a mock API server
//! (tower-test): a secret stored while the webhook was down shows up as a `fail` result
//! in its namespace's OpenReports Report; fixing it turns the result into `pass` in the
//! same report (applied in place); deleting it deletes the report; a report an earlier
//! leader left in a namespace without results is deleted; a follower writes nothing;
//! without report CRDs nothing is written. No write carries a secret value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use base64::Engine as _;
use kube::client::Body;
use secretgate::audit::continuous::{AuditMetrics, Config};
use secretgate::cli::ReportsChoice;
use secretgate::credentials::{CheckerConfig, CredentialChecker};
use secretgate::leader::Switch;
use secretgate::metrics::Metrics;
use secretgate::policy::Snapshot;
use secretgate::policy::watch::{Targets, run};
use serde_json::{Value, json};

#[path = "common/registry.rs"]
mod registry;

#[path = "common/mock_api.rs"]
mod mock_api;
use mock_api::{body_json, eventually, list, reply};
/// In the broken secret's bytes: must never reach a write.
const BROKEN_MARKER: &str = "hunter2-broken-config";
/// The fixed secret's password.
const PASSWORD: &str = "s3cr3t-pull-password";

fn secret_meta(version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": "regcred", "namespace": "team-a", "uid": "uid-regcred",
                        "resourceVersion": version}})
}

/// A password the registry refuses.
const WRONG_PASSWORD: &str = "wrong-pull-password";

fn filler_meta(n: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": format!("filler-{n}"), "namespace": "team-a",
                        "resourceVersion": "1"}})
}

/// The pull secret's `.dockerconfigjson` at `version`. Without a test registry, "5" is
/// not JSON and later ones hold credentials for ghcr.io; with one, "5" holds a password
/// it refuses and later ones the right one.
fn config_json(version: &str, registry: Option<&str>) -> String {
    let (host, password) = match (version, registry) {
        ("5", None) => return format!("{{\"auths\": {BROKEN_MARKER}"),
        (_, None) => ("ghcr.io", PASSWORD),
        ("5", Some(host)) => (host, WRONG_PASSWORD),
        (_, Some(host)) => (host, PASSWORD),
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("robot:{password}"));
    format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)
}

/// What the mock serves and what it was sent.
#[derive(Default)]
struct World {
    /// Whether the OpenReports API is served.
    reports_api: bool,
    /// The secret's resourceVersion (`None`: deleted).
    secret: Option<String>,
    /// A real registry (`host:port`) the policy lists in `credentialHealth`.
    registry: Option<String>,
    /// Opaque secrets `filler-N` in team-a, besides `regcred`.
    fillers: usize,
    /// GETs of fillers so far.
    filler_gets: usize,
    /// Whether the broken secret `late` exists.
    late: bool,
    /// (method, uri, body) of every write.
    writes: Vec<(String, String, Value)>,
}

type Shared = Arc<Mutex<World>>;

fn answer(world: &Shared, method: &str, uri: &str, body: Value) -> (u16, Value) {
    let mut world = world.lock().expect("lock");
    if method != "GET" {
        world
            .writes
            .push((method.to_owned(), uri.to_owned(), body.clone()));
        return match method {
            "DELETE" => (
                200,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
            ),
            _ => (200, body),
        };
    }
    if uri.starts_with("/apis/openreports.io/v1alpha1?") || uri == "/apis/openreports.io/v1alpha1" {
        if !world.reports_api {
            return (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "NotFound", "code": 404}),
            );
        }
        return (
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "openreports.io/v1alpha1",
            "resources": [
                {"name": "reports", "singularName": "report", "namespaced": true, "kind": "Report",
                 "verbs": ["get", "list", "patch", "delete"]},
                {"name": "clusterreports", "singularName": "clusterreport", "namespaced": false,
                 "kind": "ClusterReport", "verbs": ["get", "list", "patch", "delete"]}]}),
        );
    }
    if uri.starts_with("/apis/wgpolicyk8s.io/") {
        return (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "NotFound", "code": 404}),
        );
    }
    if uri.starts_with("/apis/openreports.io/v1alpha1/reports") {
        // A report an earlier leader wrote in a namespace that has nothing left.
        return (
            200,
            list(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                json!([
            {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
             "metadata": {"name": "secretgate", "namespace": "gone", "resourceVersion": "3"}}]),
            ),
        );
    }
    if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
        let mut spec = json!({"namespaces": ["team-a"],
                              "secrets": {"imagePull": {"allowedRegistries": ["ghcr.io"]}}});
        if let Some(registry) = &world.registry {
            spec["secrets"]["imagePull"]["allowedRegistries"] = json!([registry]);
            spec["credentialHealth"] = json!({"registries": [registry], "intervalSeconds": 60});
        }
        let policy = json!({"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                            "metadata": {"name": "team-a", "generation": 1},
                            "spec": spec, "status": {}});
        return (
            200,
            list(
                "ProjectPolicyList",
                "secretgate.io/v1alpha1",
                json!([policy]),
            ),
        );
    }
    if uri.starts_with("/api/v1/namespaces/team-a/secrets/filler-") {
        world.filler_gets += 1;
        let name = uri.trim_start_matches("/api/v1/namespaces/team-a/secrets/");
        let name = name.split('?').next().unwrap_or_default();
        return (
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": name, "namespace": "team-a", "resourceVersion": "1"},
                   "data": {"a": "eA=="}}),
        );
    }
    if uri.starts_with("/api/v1/namespaces/team-a/secrets/late") && world.late {
        let data = base64::engine::general_purpose::STANDARD.encode(config_json("5", None));
        return (
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                   "metadata": {"name": "late", "namespace": "team-a", "resourceVersion": "9"},
                   "data": {".dockerconfigjson": data}}),
        );
    }
    if uri.starts_with("/api/v1/namespaces/team-a/secrets/regcred") {
        return match &world.secret {
            None => (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404}),
            ),
            Some(version) => {
                let data = base64::engine::general_purpose::STANDARD
                    .encode(config_json(version, world.registry.as_deref()));
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "Secret",
                             "type": "kubernetes.io/dockerconfigjson",
                             "metadata": {"name": "regcred", "namespace": "team-a",
                                          "uid": "uid-regcred", "resourceVersion": version},
                             "data": {".dockerconfigjson": data}}),
                )
            }
        };
    }
    if uri.starts_with("/api/v1/namespaces") {
        return (
            200,
            list(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                json!([
            {"apiVersion": "v1", "kind": "PartialObjectMetadata",
             "metadata": {"name": "team-a", "resourceVersion": "1"}}]),
            ),
        );
    }
    if uri.starts_with("/api/v1/secrets") {
        let mut items: Vec<Value> = world.secret.iter().map(|v| secret_meta(v)).collect();
        items.extend((0..world.fillers).map(filler_meta));
        let items = Value::from(items);
        return (
            200,
            list("PartialObjectMetadataList", "meta.k8s.io/v1", items),
        );
    }
    if uri.starts_with("/api/v1/serviceaccounts") {
        return (200, list("ServiceAccountList", "v1", json!([])));
    }
    if uri.starts_with("/api/v1/pods") {
        return (200, list("PodList", "v1", json!([])));
    }
    (
        200,
        list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([])),
    )
}

/// Answers requests from `world`; watches of secrets stream the events the test sends.
async fn mock(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    world: Shared,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    type Pending = tower_test::mock::SendResponse<Response<Body>>;
    let mut waiting: Vec<Pending> = Vec::new();
    let mut queued: Vec<String> = Vec::new();
    // Other watches stay open, unanswered.
    let mut idle: HashMap<String, Vec<Pending>> = HashMap::new();
    loop {
        tokio::select! {
            next = handle.next_request() => {
                let Some((request, send)) = next else { return };
                let uri = request.uri().to_string();
                if uri.contains("watch=true") {
                    if uri.starts_with("/api/v1/secrets?") {
                        if queued.is_empty() {
                            waiting.push(send);
                        } else {
                            let body = std::mem::take(&mut queued).join("\n") + "\n";
                            send.send_response(Response::builder()
                                .body(Body::from(body.into_bytes())).expect("response"));
                        }
                    } else {
                        idle.entry(uri).or_default().push(send);
                    }
                    continue;
                }
                let method = request.method().to_string();
                let body = body_json(request).await;
                let (status, answer) = answer(&world, &method, &uri, body);
                send.send_response(reply(status, &answer));
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                let line = event.to_string();
                match waiting.pop() {
                    Some(send) => send.send_response(Response::builder()
                        .body(Body::from(format!("{line}\n").into_bytes())).expect("response")),
                    None => queued.push(line),
                }
            }
        }
    }
}

struct Running {
    world: Shared,
    events: tokio::sync::mpsc::UnboundedSender<Value>,
    switch: Switch,
    registry: prometheus::Registry,
}

impl Running {
    fn writes(&self, method: &str, path: &str) -> Vec<Value> {
        self.world
            .lock()
            .expect("lock")
            .writes
            .iter()
            .filter(|(m, uri, _)| m == method && uri.starts_with(path))
            .map(|(_, _, body)| body.clone())
            .collect()
    }

    fn all_writes(&self) -> String {
        serde_json::to_string(&self.world.lock().expect("lock").writes).expect("json")
    }

    fn set_secret(&self, version: Option<&str>) {
        self.world.lock().expect("lock").secret = version.map(str::to_owned);
        let (kind, object) = match version {
            Some(v) => ("MODIFIED", secret_meta(v)),
            None => ("DELETED", secret_meta("7")),
        };
        self.events
            .send(json!({"type": kind, "object": object}))
            .expect("mock running");
    }

    fn add_late(&self) {
        self.world.lock().expect("lock").late = true;
        let meta = json!({"apiVersion": "v1", "kind": "PartialObjectMetadata",
                          "metadata": {"name": "late", "namespace": "team-a",
                                       "resourceVersion": "9"}});
        self.events
            .send(json!({"type": "ADDED", "object": meta}))
            .expect("mock running");
    }

    fn metric(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_gauge().get_value()))
            .sum()
    }
}

async fn start(reports_api: bool, leads: bool) -> Running {
    start_with(reports_api, leads, None, 0, 1000.0).await
}

/// With `registry`: its address and CA, for credential checks; `fillers` more secrets;
/// the audit's request budget.
async fn start_with(
    reports_api: bool,
    leads: bool,
    registry: Option<(String, String)>,
    fillers: usize,
    requests_per_second: f64,
) -> Running {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let world: Shared = Arc::new(Mutex::new(World {
        reports_api,
        secret: Some("5".to_owned()),
        registry: registry.as_ref().map(|(address, _)| address.clone()),
        fillers,
        filler_gets: 0,
        late: false,
        writes: Vec::new(),
    }));
    let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(mock(handle, world.clone(), events_rx));
    let credential_ca = registry.map(|(_, ca)| ca);
    let registry = prometheus::Registry::new();
    let (switch, leadership) = Switch::new(leads);
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(registry.clone()).expect("metrics")),
        leadership,
        instance: None,
        audit: Some(Config {
            choice: ReportsChoice::Auto,
            interval: Duration::from_secs(3600),
            tick: Duration::from_millis(50),
            requests_per_second,
            instance_sources: None,
            credentials: credential_ca.map(|ca| {
                let config = CheckerConfig {
                    system_roots: false,
                    extra_ca_pem: Some(ca.into_bytes()),
                    ..CheckerConfig::default()
                };
                Arc::new(CredentialChecker::new(&config, &registry).expect("checker"))
            }),
            metrics: AuditMetrics::new(&registry).expect("metrics"),
        }),
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));
    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");
    Running {
        world,
        events,
        switch,
        registry,
    }
}

const TEAM_A_REPORT: &str = "/apis/openreports.io/v1alpha1/namespaces/team-a/reports/secretgate";

fn statuses(report: &Value) -> Vec<String> {
    report["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| r["result"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_secret_stored_while_the_webhook_was_down_fails_in_its_report_until_fixed() {
    let cluster = start(true, true).await;

    // The broken secret is found by the first full pass.
    assert!(
        eventually(|| !cluster.writes("PATCH", TEAM_A_REPORT).is_empty()).await,
        "team-a's report written: {}",
        cluster.all_writes()
    );
    let first = cluster.writes("PATCH", TEAM_A_REPORT).remove(0);
    assert_eq!(first["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(first["kind"], "Report");
    assert_eq!(first["metadata"]["namespace"], "team-a");
    assert_eq!(first["summary"]["fail"], 1, "{first:#}");
    assert_eq!(statuses(&first), ["fail"]);
    let result = &first["results"][0];
    assert_eq!(result["policy"], "team-a");
    assert_eq!(result["severity"], "high");
    assert_eq!(result["resources"][0]["kind"], "Secret");
    assert_eq!(result["resources"][0]["name"], "regcred");
    assert_eq!(result["resources"][0]["uid"], "uid-regcred");
    assert!(
        result["rule"]
            .as_str()
            .unwrap_or("")
            .starts_with("data[.dockerconfigjson]"),
        "{result}"
    );

    // Server-side apply under the audit's own field manager, forced.
    let uris: Vec<String> = cluster
        .world
        .lock()
        .expect("lock")
        .writes
        .iter()
        .map(|(_, uri, _)| uri.clone())
        .collect();
    assert!(
        uris.iter().any(|u| u.starts_with(TEAM_A_REPORT)
            && u.contains("fieldManager=secretgate-audit")
            && u.contains("force=true")),
        "{uris:?}"
    );
    // The cluster report is written too (empty: the policy is valid).
    let cluster_reports = cluster.writes(
        "PATCH",
        "/apis/openreports.io/v1alpha1/clusterreports/secretgate",
    );
    assert!(!cluster_reports.is_empty(), "{uris:?}");
    assert_eq!(cluster_reports[0]["kind"], "ClusterReport");
    // A previous leader's report in a namespace with no results is deleted.
    assert!(
        eventually(|| !cluster
            .writes(
                "DELETE",
                "/apis/openreports.io/v1alpha1/namespaces/gone/reports/secretgate"
            )
            .is_empty())
        .await,
        "{uris:?}"
    );
    assert_eq!(cluster.metric("secretgate_audit_enabled"), 1.0);

    // Fixed: the same report, applied again, now passes.
    cluster.set_secret(Some("6"));
    assert!(
        eventually(|| cluster
            .writes("PATCH", TEAM_A_REPORT)
            .last()
            .is_some_and(|r| statuses(r) == ["pass"]))
        .await,
        "fixed secret passes: {}",
        cluster.all_writes()
    );
    let fixed = cluster
        .writes("PATCH", TEAM_A_REPORT)
        .pop()
        .expect("written");
    assert_eq!(fixed["summary"]["fail"], 0);
    assert_eq!(fixed["summary"]["pass"], 1);
    assert!(
        cluster.writes("POST", "/apis/openreports.io").is_empty()
            && cluster.writes("DELETE", TEAM_A_REPORT).is_empty(),
        "updated in place, not recreated"
    );

    // Nothing changes: nothing is written again.
    let patches = cluster.writes("PATCH", TEAM_A_REPORT).len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cluster.writes("PATCH", TEAM_A_REPORT).len(), patches);

    // Deleted: its namespace's report goes.
    cluster.set_secret(None);
    assert!(
        eventually(|| !cluster.writes("DELETE", TEAM_A_REPORT).is_empty()).await,
        "{}",
        cluster.all_writes()
    );

    let everything = cluster.all_writes();
    for value in [BROKEN_MARKER, PASSWORD] {
        assert!(!everything.contains(value), "{value} written: {everything}");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(config_json("6", None));
    assert!(!everything.contains(&encoded));
}

#[tokio::test]
async fn a_follower_writes_no_report_until_it_leads() {
    let cluster = start(true, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.all_writes(), "[]");
    assert_eq!(cluster.metric("secretgate_audit_enabled"), 0.0);

    cluster.switch.set(true, "acquired");
    assert!(
        eventually(|| !cluster.writes("PATCH", TEAM_A_REPORT).is_empty()).await,
        "the new leader writes: {}",
        cluster.all_writes()
    );
}

#[tokio::test]
async fn without_a_report_api_the_audit_stays_off_and_writes_nothing() {
    let cluster = start(false, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The policy's status is written (this replica leads); no report is.
    for method in ["PATCH", "POST", "DELETE", "PUT"] {
        for api in ["/apis/openreports.io", "/apis/wgpolicyk8s.io"] {
            assert!(
                cluster.writes(method, api).is_empty(),
                "{}",
                cluster.all_writes()
            );
        }
    }
    assert_eq!(cluster.metric("secretgate_audit_enabled"), 0.0);
}

#[tokio::test]
async fn a_rejected_registry_password_fails_in_the_report_until_the_secret_is_fixed() {
    let certs = registry::pki();
    let real = registry::DistributionRegistry::start(&certs, Some(("robot", PASSWORD)));
    let cluster = start_with(
        true,
        true,
        Some((real.key(), certs.ca_cert.clone())),
        0,
        1000.0,
    )
    .await;
    let login = |report: &Value| -> Option<(String, String)> {
        report["results"].as_array()?.iter().find_map(|r| {
            (r["rule"] == "registry-login").then(|| {
                (
                    r["result"].as_str().unwrap_or("").to_owned(),
                    r["message"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
    };
    let last_login = || {
        cluster
            .writes("PATCH", TEAM_A_REPORT)
            .last()
            .and_then(&login)
    };

    // The secret is well-formed, but the registry refuses its password.
    assert!(
        eventually(|| last_login().is_some()).await,
        "{}",
        cluster.all_writes()
    );
    let (status, message) = last_login().expect("login result");
    assert_eq!(status, "fail", "{message}");
    assert_eq!(
        message,
        format!(
            "registry {} rejected the credentials (HTTP 401)",
            real.key()
        )
    );
    let report = cluster
        .writes("PATCH", TEAM_A_REPORT)
        .pop()
        .expect("report");
    assert_eq!(statuses(&report), ["fail", "pass"], "{report:#}");

    // The right password: the changed secret is tried again at once and passes.
    cluster.set_secret(Some("6"));
    assert!(
        eventually(|| last_login().is_some_and(|(s, _)| s == "pass")).await,
        "{}",
        cluster.all_writes()
    );
    let (_, message) = last_login().expect("login result");
    assert_eq!(
        message,
        format!("registry {} accepted the credentials", real.key())
    );
    let everything = cluster.all_writes();
    for value in [PASSWORD, WRONG_PASSWORD] {
        assert!(!everything.contains(value), "{value} written");
    }
}

#[tokio::test]
async fn a_secret_created_during_a_long_full_pass_is_reported_before_the_pass_ends() {
    // 300 secrets at 50 requests a second: the first full pass takes about 6 s.
    let fillers = 300;
    let cluster = start_with(true, true, None, fillers, 50.0).await;
    assert!(
        eventually(|| cluster.world.lock().expect("lock").filler_gets >= 20).await,
        "the full pass is under way"
    );
    cluster.add_late();
    let late_reported = || {
        cluster
            .writes("PATCH", TEAM_A_REPORT)
            .iter()
            .any(|r| r.to_string().contains("\"name\":\"late\""))
    };
    assert!(eventually(late_reported).await, "{}", cluster.all_writes());
    let gets = cluster.world.lock().expect("lock").filler_gets;
    assert!(
        gets < fillers,
        "the new secret waited for the full pass: {gets} of {fillers} fillers read first"
    );
}
