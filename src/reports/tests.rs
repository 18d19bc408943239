use serde_json::{Value, json};
use time::OffsetDateTime;

use super::result::{self, Status};
use super::*;
use crate::admission::{Context, Verdict, Webhook};
use crate::audit::{CopyFinding, Report, Reviewed};
use crate::check::evaluate;
use crate::pods::Injection;
use crate::policy::{Mode, Severity, Snapshot};
use crate::secrets::Violation;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_764_570_000_123_456_789).expect("time")
}

fn reviewed(kind: &str, namespace: &str, name: &str, mode: Mode) -> Reviewed {
    Reviewed {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: Some(format!("uid-{name}")),
        policy: Some("team".to_owned()),
        mode: Some(mode),
        verdict: Verdict::Allowed,
        findings: Vec::new(),
        unlisted: None,
        warnings: Vec::new(),
        injections: Vec::new(),
        denial: None,
    }
}

fn finding(severity: Severity) -> Violation {
    Violation {
        field: r#"data[.dockerconfigjson].auths["ghcr.io"].auth"#.to_owned(),
        message: "password must not be empty".to_owned(),
        severity,
        mode: None,
    }
}

fn to_json(objects: &[ReportObject]) -> Vec<Value> {
    objects
        .iter()
        .map(|o| serde_json::to_value(o).expect("json"))
        .collect()
}

fn only(objects: &[Value], namespace: &str) -> Value {
    objects
        .iter()
        .find(|o| o["metadata"]["namespace"] == namespace)
        .cloned()
        .unwrap_or_else(|| panic!("no report for {namespace}: {objects:?}"))
}

#[test]
fn findings_map_to_fail_warn_and_pass() {
    let mut report = Report::default();
    let mut denied = reviewed("Secret", "a", "denied", Mode::Enforce);
    denied.findings = vec![finding(Severity::Deny)];
    denied.verdict = Verdict::Denied;
    let mut warned = reviewed("Secret", "a", "warned", Mode::Enforce);
    warned.findings = vec![finding(Severity::Warn)];
    let mut audited = reviewed("Secret", "a", "audited", Mode::Audit);
    audited.findings = vec![finding(Severity::Deny)];
    let clean = reviewed("Secret", "a", "clean", Mode::Enforce);
    let mut pod = reviewed("Pod", "a", "web", Mode::Enforce);
    pod.injections = vec![Injection {
        kind: "image_pull_secret",
        secret: "regcred".to_owned(),
    }];
    let mut ungoverned = reviewed("Secret", "a", "ungoverned", Mode::Enforce);
    ungoverned.policy = None;
    report.reviewed = vec![denied, warned, audited, clean, pod, ungoverned];

    let objects = to_json(&build(&report, Flavor::OpenReports, now()));
    let a = only(&objects, "a");
    let by_name = |name: &str| -> Vec<Value> {
        a["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["resources"][0]["name"] == name)
            .cloned()
            .collect()
    };
    let rule = "data[.dockerconfigjson].auths[*].auth:password-must-not-be-empty";
    let d = &by_name("denied")[0];
    assert_eq!(
        (&d["result"], &d["severity"], &d["rule"], &d["policy"]),
        (&json!("fail"), &json!("high"), &json!(rule), &json!("team"))
    );
    assert_eq!(d["properties"]["mode"], "Enforce");
    assert_eq!(
        d["resources"][0],
        json!({"apiVersion": "v1", "kind": "Secret", "namespace": "a", "name": "denied", "uid": "uid-denied"})
    );
    assert_eq!(
        d["timestamp"],
        json!({"seconds": 1_764_570_000, "nanos": 123_456_789})
    );
    assert_eq!(d["source"], "secretgate");
    let w = &by_name("warned")[0];
    assert_eq!(
        (&w["result"], &w["severity"]),
        (&json!("warn"), &json!("medium"))
    );
    let au = &by_name("audited")[0];
    assert_eq!(
        (&au["result"], &au["severity"]),
        (&json!("warn"), &json!("low"))
    );
    assert_eq!(au["properties"]["mode"], "Audit");
    let c = &by_name("clean")[0];
    assert_eq!((&c["result"], &c["rule"]), (&json!("pass"), &json!("all")));
    assert!(c.get("severity").is_none());
    let p = &by_name("web")[0];
    assert_eq!(
        (&p["result"], &p["rule"], &p["category"]),
        (
            &json!("warn"),
            &json!("inject:image_pull_secret"),
            &json!("Pods")
        )
    );
    assert_eq!(p["resources"][0]["kind"], "Pod");
    assert!(by_name("ungoverned").is_empty(), "no policy, no result");
    assert_eq!(
        a["summary"],
        json!({"pass": 1, "fail": 1, "warn": 3, "error": 0, "skip": 0})
    );
    // Most pressing first.
    assert_eq!(a["results"][0]["result"], "fail");
    assert_eq!(a["results"][4]["result"], "pass");
}

#[test]
fn namespaces_split_and_cluster_findings_go_to_the_cluster_report() {
    let mut report = Report {
        reviewed: vec![
            reviewed("Secret", "b", "one", Mode::Enforce),
            reviewed("Secret", "a", "two", Mode::Enforce),
        ],
        ..Report::default()
    };
    report.invalid_policy(
        "broken".to_owned(),
        "spec.namespaces: unknown field".to_owned(),
    );
    report.instance_secrets = vec![
        CopyFinding {
            state: "missing",
            secret: "b/shared-tls".to_owned(),
            policy: "team".to_owned(),
            message: "copy of src/tls not created yet".to_owned(),
        },
        CopyFinding {
            state: "source_missing",
            secret: "src/nope".to_owned(),
            policy: "team".to_owned(),
            message: "source secret src/nope does not exist".to_owned(),
        },
    ];
    for flavor in [Flavor::OpenReports, Flavor::PolicyReport] {
        let objects = to_json(&build(&report, flavor, now()));
        let kinds: Vec<(&str, &str)> = objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().expect("kind"),
                    o["metadata"]["namespace"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        let (cluster, namespaced) = match flavor {
            Flavor::OpenReports => ("ClusterReport", "Report"),
            Flavor::PolicyReport => ("ClusterPolicyReport", "PolicyReport"),
        };
        assert_eq!(
            kinds,
            [(cluster, "-"), (namespaced, "a"), (namespaced, "b")]
        );
        for o in &objects {
            assert_eq!(o["apiVersion"], flavor.api_version());
            assert_eq!(o["metadata"]["name"], "secretgate");
            assert_eq!(o.get("source").is_some(), flavor == Flavor::OpenReports);
            assert_eq!(
                o.get("configuration").is_some(),
                flavor == Flavor::OpenReports
            );
        }
        let c = &objects[0];
        assert_eq!(
            c["summary"],
            json!({"pass": 0, "fail": 1, "warn": 0, "error": 1, "skip": 0})
        );
        let results = c["results"].as_array().expect("results");
        assert_eq!(results[0]["rule"], "instance-secret:source_missing");
        assert_eq!(results[0]["resources"][0]["kind"], "ProjectPolicy");
        assert_eq!(results[0]["resources"][1]["namespace"], "src");
        assert_eq!(results[1]["result"], "error");
        assert_eq!(results[1]["policy"], "broken");
        assert_eq!(
            results[1]["resources"][0],
            json!({"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy", "name": "broken"})
        );
        let b = &objects[2];
        assert_eq!(
            b["summary"]["warn"], 1,
            "the missing copy, in its namespace"
        );
        assert_eq!(b["summary"]["pass"], 1);
    }
}

#[test]
fn the_cluster_report_is_there_when_all_is_well() {
    let objects = to_json(&build(&Report::default(), Flavor::OpenReports, now()));
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["kind"], "ClusterReport");
    assert_eq!(objects[0]["results"], json!([]));
}

#[test]
fn results_are_capped_and_the_rest_counted() {
    let mut report = Report::default();
    for i in 0..1_400 {
        report.reviewed.push(reviewed(
            "Secret",
            "big",
            &format!("s-{i:04}"),
            Mode::Enforce,
        ));
    }
    let mut bad = reviewed("Secret", "big", "zz-bad", Mode::Enforce);
    bad.findings = vec![finding(Severity::Deny)];
    report.reviewed.push(bad);
    let objects = build(&report, Flavor::OpenReports, now());
    let big = &objects[1];
    assert_eq!(big.results.len(), MAX_RESULTS);
    assert_eq!(big.results[0].result, Status::Fail, "failures are kept");
    let last = big.results.last().expect("marker");
    assert_eq!(
        (last.result, last.rule.as_str()),
        (Status::Skip, "results-omitted")
    );
    assert_eq!(last.properties["omitted"], "402");
    assert_eq!(big.summary.pass, 1_400, "the summary counts every result");
    assert_eq!(big.summary.fail, 1);
    let mut yaml = Vec::new();
    write_yaml(&objects, &mut yaml).expect("yaml");
    assert!(yaml.len() < 1024 * 1024, "{} bytes", yaml.len());
}

#[test]
fn long_messages_are_clipped() {
    let mut report = Report::default();
    let mut r = reviewed("Secret", "a", "long", Mode::Enforce);
    r.findings = vec![Violation {
        field: "x".repeat(1_000),
        message: "é".repeat(2_000),
        severity: Severity::Deny,
        mode: None,
    }];
    report.reviewed = vec![r];
    let objects = build(&report, Flavor::OpenReports, now());
    let result = &objects[1].results[0];
    assert_eq!(result.message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(result.rule.chars().count() <= MAX_RULE_CHARS);
}

#[test]
fn rule_slugs_keep_plain_words_only() {
    assert_eq!(
        rule::slug("password must not be empty"),
        "password-must-not-be-empty"
    );
    assert_eq!(
        rule::slug(r#"registry "ghcr.io" is not allowed, 3 times"#),
        "registry-is-not-allowed-times"
    );
    assert_eq!(
        rule::slug(r#"imagePullSecret "regcred" named by policy "a" does not exist"#),
        "imagepullsecret-named-by-policy-does-not-exist"
    );
    assert_eq!(rule::slug("expires 2026-01-01; renew"), "expires-renew");
    assert_eq!(rule::finding("metadata.name", ""), "metadata.name");
}

/// A real review of a secret holding planted values: its results name it and its
/// fields, never the values.
#[test]
fn no_values_in_the_output_and_the_output_is_deterministic() {
    let planted = base64_of("PLANTED-crt");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "web-tls", "namespace": "team-a", "uid": "u-1"},
        "data": {"tls.crt": planted, "tls.key": base64_of("PLANTED-key")}});
    let snapshot = Snapshot::with_default();
    let ctx = Context {
        policies: &snapshot,
        now: now(),
    };
    let (webhook, review) = evaluate::wrap("Secret", secret, "team-a").expect("wrap");
    assert_eq!(webhook, Webhook::Validate);
    let outcome = evaluate::review(webhook, &serde_json::to_vec(&review).expect("body"), &ctx);
    let mut report = Report::default();
    report.add("Secret", Some("u-1".to_owned()), &outcome);
    report.add("Secret", Some("u-1".to_owned()), &outcome);
    let mut outputs = Vec::new();
    for flavor in [Flavor::OpenReports, Flavor::PolicyReport] {
        let mut yaml = Vec::new();
        write_yaml(&build(&report, flavor, now()), &mut yaml).expect("yaml");
        let text = String::from_utf8(yaml).expect("utf-8");
        assert!(text.contains("web-tls"), "{text}");
        assert!(text.contains("fail"), "{text}");
        assert!(!text.contains("PLANTED"), "{text}");
        assert!(!text.contains(&planted), "{text}");
        outputs.push(text);
    }
    // Same input in another order: the same bytes.
    let mut again = Report::default();
    let mut reviewed = report.reviewed.clone();
    reviewed.reverse();
    again.reviewed = reviewed;
    let mut yaml = Vec::new();
    write_yaml(&build(&again, Flavor::OpenReports, now()), &mut yaml).expect("yaml");
    assert_eq!(String::from_utf8(yaml).expect("utf-8"), outputs[0]);
    // A YAML stream kubectl reads: documents behind `---`.
    assert!(outputs[0].starts_with("---\n"), "{}", outputs[0]);
    assert_eq!(outputs[0].matches("\n---\n").count() + 1, 2);
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn the_pass_result_of_an_object_without_findings_is_what_result_pass_builds() {
    // The continuous audit holds passing secrets compactly and rebuilds them with
    // `result::pass`: the two must agree.
    for kind in ["Secret", "Pod"] {
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
            let mut report = Report::default();
            report.reviewed.push(reviewed(kind, "ns", "obj", mode));
            let placed = result::results(&report, now());
            assert_eq!(placed.len(), 1);
            let expected = result::pass(
                kind,
                "ns",
                "obj",
                Some("uid-obj"),
                "team",
                mode,
                now().into(),
            );
            assert_eq!(placed[0].result, expected, "{kind} {mode:?}");
        }
    }
}
