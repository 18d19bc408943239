//! One result per object and rule, from an audit's outcomes. Where each result belongs
//! (a namespace's report or the cluster report) travels with it as [`Placed`].

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::{MAX_MESSAGE_CHARS, NAME, rule};
use crate::admission::Verdict;
use crate::audit::{CopyFinding, InvalidPolicy, Report, Reviewed};
use crate::check::report::effect;
use crate::policy::Mode;

/// The outcome of one rule for one object, as the report APIs spell it. Ordered from the
/// most to the least pressing: results are listed, and capped, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Fail,
    Error,
    Warn,
    Skip,
    Pass,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
    Info,
}

/// `{seconds, nanos}` since the Unix epoch, as both APIs want it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self {
            seconds: t.unix_timestamp(),
            nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
        }
    }
}

/// The object a result is about (a core ObjectReference's fields).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl Resource {
    pub fn secret(namespace: &str, name: &str) -> Self {
        Self {
            api_version: "v1".to_owned(),
            kind: "Secret".to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
            uid: None,
        }
    }

    fn policy(name: &str) -> Self {
        Self {
            api_version: "secretgate.io/v1alpha1".to_owned(),
            kind: "ProjectPolicy".to_owned(),
            namespace: None,
            name: name.to_owned(),
            uid: None,
        }
    }
}

/// One entry of `results[]`. Field order is the sort order (after `result`): resource
/// first, so one object's results stay together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportResult {
    pub source: &'static str,
    pub policy: String,
    pub rule: String,
    pub result: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub category: &'static str,
    pub message: String,
    pub scored: bool,
    pub timestamp: Timestamp,
    pub resources: Vec<Resource>,
    /// String values only (both CRDs say `additionalProperties: string`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

impl ReportResult {
    /// The order results are listed (and capped) in.
    pub fn sort_key(&self) -> impl Ord + '_ {
        (
            self.result,
            &self.resources,
            &self.policy,
            &self.rule,
            &self.message,
        )
    }
}

/// A result and the namespace whose report holds it (`None`: the cluster report).
#[derive(Clone, Debug)]
pub struct Placed {
    pub namespace: Option<String>,
    pub result: ReportResult,
}

/// Every result of `report`, unordered.
pub fn results(report: &Report, now: OffsetDateTime) -> Vec<Placed> {
    let at = Timestamp::from(now);
    let mut out = Vec::new();
    for object in &report.reviewed {
        objects(object, at, &mut out);
    }
    for invalid in &report.invalid_policies {
        out.push(invalid_policy(invalid, at));
    }
    for copy in &report.instance_secrets {
        out.push(instance_secret(copy, at));
    }
    out
}

/// A result with the fields every result shares filled in.
fn new(policy: &str, rule: String, status: Status, message: &str, at: Timestamp) -> ReportResult {
    ReportResult {
        source: NAME,
        policy: policy.to_owned(),
        rule,
        result: status,
        severity: None,
        category: "",
        message: clip(message),
        scored: true,
        timestamp: at,
        resources: Vec::new(),
        properties: BTreeMap::new(),
    }
}

/// The results of one reviewed Secret or Pod.
fn objects(object: &Reviewed, at: Timestamp, out: &mut Vec<Placed>) {
    let Some(policy) = object.policy.as_deref() else {
        return;
    };
    let resource = Resource {
        api_version: "v1".to_owned(),
        kind: object.kind.clone(),
        namespace: Some(object.namespace.clone()),
        name: object.name.clone(),
        uid: object.uid.clone().filter(|u| !u.is_empty()),
    };
    let category = category(&object.kind);
    let mode = object.mode.unwrap_or_default();
    let mut push = |rule: String, effect: &str, message: &str| {
        let (status, severity) = match effect {
            "deny" => (Status::Fail, Severity::High),
            "warn" => (Status::Warn, Severity::Medium),
            "error" => (Status::Error, Severity::High),
            "pass" => (Status::Pass, Severity::Info),
            // audit, inject
            _ => (Status::Warn, Severity::Low),
        };
        let mut r = new(policy, rule, status, message, at);
        r.severity = (status != Status::Pass).then_some(severity);
        r.category = category;
        r.resources = vec![resource.clone()];
        r.properties
            .insert("mode".to_owned(), mode.as_str().to_owned());
        if status != Status::Pass {
            r.properties.insert("effect".to_owned(), effect.to_owned());
        }
        out.push(Placed {
            namespace: Some(object.namespace.clone()),
            result: r,
        });
    };
    let mut any = false;
    for v in &object.findings {
        push(
            rule::finding(&v.field, &v.message),
            effect(object.mode, v.severity),
            &v.message,
        );
        any = true;
    }
    if let Some((count, summary)) = &object.unlisted {
        let effect = match object.verdict {
            Verdict::Denied => "deny",
            _ => effect(object.mode, crate::policy::Severity::Warn),
        };
        let more = crate::messages::count(*count, "more finding", Some("more findings"));
        let message = if summary.is_empty() {
            more
        } else {
            format!("{more}: {summary}")
        };
        push("more-findings".to_owned(), effect, &message);
        any = true;
    }
    if let Some(denial) = &object.denial {
        push("denied".to_owned(), "deny", denial);
        any = true;
    }
    if object.verdict == Verdict::Invalid && !any {
        // A decode error may quote the object: a fixed message instead.
        push(
            "review".to_owned(),
            "error",
            "the object could not be reviewed",
        );
        any = true;
    }
    for w in &object.warnings {
        push(rule::prefixed("warning", w), "warn", w);
        any = true;
    }
    for i in &object.injections {
        push(
            format!("inject:{}", i.kind),
            "inject",
            &format!(
                "lacks {} {:?}, which the webhook would inject on creation",
                i.kind, i.secret
            ),
        );
        any = true;
    }
    if !any {
        push("all".to_owned(), "pass", "no finding");
    }
}

/// The one `pass` result (rule `all`) of a Secret or Pod with no finding, as
/// [`results`] writes it.
pub fn pass(
    kind: &str,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    policy: &str,
    mode: Mode,
    at: Timestamp,
) -> ReportResult {
    let mut r = new(policy, "all".to_owned(), Status::Pass, "no finding", at);
    r.category = category(kind);
    r.resources = vec![Resource {
        api_version: "v1".to_owned(),
        kind: kind.to_owned(),
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
        uid: uid.filter(|u| !u.is_empty()).map(str::to_owned),
    }];
    r.properties
        .insert("mode".to_owned(), mode.as_str().to_owned());
    r
}

fn category(kind: &str) -> &'static str {
    match kind {
        "Pod" => "Pods",
        _ => "Secrets",
    }
}

/// A login to `registry` with a pull secret's credentials (credential health): `pass`
/// when accepted, `fail`/`high` when rejected (pods will not pull), `error`/`medium` when
/// the registry could not be asked, `skip` when it needs no credentials. Rule
/// `registry-login`; the registry (a host the policy lists) is a property.
pub fn registry_login(
    policy: &str,
    secret: Resource,
    registry: &str,
    status: Status,
    message: &str,
    now: OffsetDateTime,
) -> ReportResult {
    let mut r = new(
        policy,
        "registry-login".to_owned(),
        status,
        message,
        now.into(),
    );
    r.severity = match status {
        Status::Fail => Some(Severity::High),
        Status::Error => Some(Severity::Medium),
        _ => None,
    };
    r.scored = matches!(status, Status::Pass | Status::Fail);
    r.category = "Credentials";
    r.resources = vec![secret];
    r.properties
        .insert("registry".to_owned(), registry.to_owned());
    r
}

/// A ProjectPolicy the server refuses: `error` in the cluster report.
fn invalid_policy(invalid: &InvalidPolicy, at: Timestamp) -> Placed {
    let mut r = new(
        &invalid.name,
        "valid".to_owned(),
        Status::Error,
        &format!("policy refused by the server: {}", invalid.problems),
        at,
    );
    r.severity = Some(Severity::High);
    r.category = "Policies";
    r.resources = vec![Resource::policy(&invalid.name)];
    Placed {
        namespace: None,
        result: r,
    }
}

/// An instance-secret copy that is not as wanted: in the copy's namespace, or (a source
/// that is missing or not allowed) in the cluster report, naming the policy and source.
fn instance_secret(copy: &CopyFinding, at: Timestamp) -> Placed {
    let (namespace, name) = copy.secret.split_once('/').unwrap_or(("", &copy.secret));
    let policy = if copy.policy.is_empty() {
        NAME
    } else {
        copy.policy.as_str()
    };
    let (status, severity) = match copy.state {
        "missing" | "stale" | "orphaned" => (Status::Warn, Severity::Low),
        _ => (Status::Fail, Severity::Medium),
    };
    let mut r = new(
        policy,
        format!("instance-secret:{}", copy.state),
        status,
        &copy.message,
        at,
    );
    r.severity = Some(severity);
    r.category = "Instance secrets";
    r.properties
        .insert("state".to_owned(), copy.state.to_owned());
    let source_problem = copy.state.starts_with("source_");
    if source_problem && !copy.policy.is_empty() {
        r.resources.push(Resource::policy(&copy.policy));
    }
    r.resources.push(Resource::secret(namespace, name));
    Placed {
        namespace: (!source_problem).then(|| namespace.to_owned()),
        result: r,
    }
}

/// `text` cut to at most `MAX_MESSAGE_CHARS` characters, with `…` when cut.
fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    out.push('…');
    out
}
