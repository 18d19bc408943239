//! The audit report: counts and findings grouped by project (the governing policy) and
//! rule (field path pattern and message), plus every reviewed object's own outcome (for
//! the report objects of [`crate::reports`]). Names and field paths only, never values.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use time::OffsetDateTime;

use crate::admission::Verdict;
use crate::check::Outcome;
use crate::check::report::effect;
use crate::cli::AuditFormat;
use crate::pods::Injection;
use crate::policy::Mode;
use crate::reports::Flavor;
use crate::secrets::Violation;

/// What an audit found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Policies the server refuses (it keeps their last good version, if it had one).
    pub invalid_policies: Vec<InvalidPolicy>,
    /// By policy name (`default` for the embedded policy).
    pub projects: BTreeMap<String, Project>,
    /// Instance-secret copies that are not as their policies want them.
    pub instance_secrets: Vec<CopyFinding>,
    /// Every object reviewed, one by one: report objects need a result per object, which
    /// the grouping above loses. Not part of `-o json` (it would repeat `projects`).
    #[serde(skip)]
    pub reviewed: Vec<Reviewed>,
}

/// One reviewed Secret or Pod and what the server would say about it now. Field paths,
/// messages and names only, as the admission response carries them: never values.
#[derive(Clone, Debug)]
pub struct Reviewed {
    /// `Secret` or `Pod`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The object's metadata.uid, when the API server gave one.
    pub uid: Option<String>,
    /// The governing policy (`None` when no policy governs the object).
    pub policy: Option<String>,
    pub mode: Option<Mode>,
    pub verdict: Verdict,
    /// The findings the review listed (at most `admission::bounded::MAX_SHOWN`).
    pub findings: Vec<Violation>,
    /// Findings counted but not listed: how many, and their summary by rule.
    pub unlisted: Option<(usize, String)>,
    /// The mutation's warnings (pods only: a secret's warnings repeat its findings).
    pub warnings: Vec<String>,
    /// Injections the pod lacks (the webhook would add them).
    pub injections: Vec<Injection>,
    /// The denial message when the review denied without listing a finding (a policy
    /// that refuses every secret, say).
    pub denial: Option<String>,
}

/// One instance-secret copy that is missing, stale, orphaned or blocked.
#[derive(Debug, Serialize)]
pub struct CopyFinding {
    /// `missing`, `stale`, `orphaned`, `conflict`, `source_missing`, `source_not_allowed`.
    pub state: &'static str,
    /// `namespace/name` of the copy (or of the source, for source problems).
    pub secret: String,
    /// The policy that wants it (empty for an orphaned copy).
    pub policy: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct InvalidPolicy {
    pub name: String,
    pub problems: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Project {
    pub mode: String,
    pub secrets: usize,
    pub pods: usize,
    /// Secrets the server would deny if they were created now.
    pub denied: usize,
    pub warned: usize,
    /// Pods that would be patched (the injections they lack).
    pub patched: usize,
    /// Keyed by `effect rule`; each rule lists the objects, as `Kind namespace/name`.
    pub rules: BTreeMap<String, Rule>,
}

#[derive(Debug, Default, Serialize)]
pub struct Rule {
    /// deny, warn, audit or inject.
    pub effect: String,
    /// The field path with registry hosts and other quoted keys as `*`, and the message.
    pub rule: String,
    pub objects: Vec<String>,
}

impl Report {
    pub fn invalid_policy(&mut self, name: String, problems: String) {
        self.invalid_policies.push(InvalidPolicy { name, problems });
    }

    /// Adds what the instance-secret controller would do now (nothing when all copies are
    /// current).
    pub fn instance_secrets(&mut self, plan: &crate::instance::Plan) {
        use crate::instance::Action;
        for action in &plan.actions {
            let (state, policy, message) = match action {
                Action::Create(c) => (
                    "missing",
                    c.policy.to_string(),
                    format!(
                        "copy of {}/{} not created yet",
                        c.source.namespace, c.source.name
                    ),
                ),
                Action::Update { copy: c, .. } => (
                    "stale",
                    c.policy.to_string(),
                    format!(
                        "copy differs from source {}/{} (version, source or policy)",
                        c.source.namespace, c.source.name
                    ),
                ),
                Action::Delete { .. } => (
                    "orphaned",
                    String::new(),
                    "managed copy that no policy wants any more".to_owned(),
                ),
            };
            self.instance_secrets.push(CopyFinding {
                state,
                secret: action.target(),
                policy,
                message,
            });
        }
        for problem in &plan.problems {
            self.instance_secrets.push(CopyFinding {
                state: problem.kind.as_str(),
                secret: format!("{}/{}", problem.namespace, problem.name),
                policy: problem.policy.clone(),
                message: problem.message(),
            });
        }
    }

    /// Adds one reviewed object (`uid` is its metadata.uid, when known).
    pub fn add(&mut self, kind: &str, uid: Option<String>, outcome: &Outcome) {
        self.reviewed.push(Reviewed::new(kind, uid, outcome));
        let s = &outcome.summary;
        let project_name = s.policy.as_deref().unwrap_or("(none)").to_owned();
        let project = self.projects.entry(project_name).or_default();
        if let Some(mode) = s.mode {
            project.mode = mode.as_str().to_owned();
        }
        let object = format!("{kind} {}/{}", s.namespace, s.name);
        let mut hit = |effect: &str, rule: String| {
            let entry = project.rules.entry(format!("{effect} {rule}")).or_default();
            entry.effect = effect.to_owned();
            entry.rule = rule;
            if !entry.objects.contains(&object) {
                entry.objects.push(object.clone());
            }
        };
        for v in &s.findings {
            hit(
                effect(s.mode, v.severity),
                format!("{}: {}", pattern(&v.field), v.message),
            );
        }
        for i in &s.injections {
            hit("inject", format!("{} {}", i.kind, i.secret));
        }
        if kind == "Pod" {
            for w in &outcome.warnings {
                hit("warn", w.clone());
            }
        }
        match kind {
            "Pod" => project.pods += 1,
            _ => project.secrets += 1,
        }
        match s.verdict() {
            Verdict::Denied => project.denied += 1,
            Verdict::Warned if kind != "Pod" => project.warned += 1,
            Verdict::Patched => project.patched += 1,
            _ => {}
        }
    }

    /// Whether a secret would be denied somewhere.
    pub fn any_denied(&self) -> bool {
        self.projects.values().any(|p| p.denied > 0)
    }
}

impl Reviewed {
    fn new(kind: &str, uid: Option<String>, outcome: &Outcome) -> Self {
        let s = &outcome.summary;
        let unlisted = s.finding_count.saturating_sub(s.findings.len());
        Self {
            kind: kind.to_owned(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            uid,
            policy: s.policy.as_deref().map(str::to_owned),
            mode: s.mode,
            verdict: s.verdict(),
            findings: s.findings.clone(),
            unlisted: (unlisted > 0)
                .then(|| (unlisted, s.findings_more.clone().unwrap_or_default())),
            warnings: if kind == "Pod" {
                outcome.warnings.clone()
            } else {
                Vec::new()
            },
            injections: s.injections.clone(),
            denial: (s.findings.is_empty() && s.verdict() == Verdict::Denied)
                .then(|| outcome.message.clone().unwrap_or_default()),
        }
    }
}

/// A field path with each quoted key (`["registry.example.com"]`) as `[*]`, so one rule
/// groups the same problem across registries and hosts.
pub(crate) fn pattern(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(start) = rest.find("[\"") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("\"]") {
            Some(end) => {
                out.push_str("[*]");
                rest = &rest[start + 2 + end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Writes the report in `format`; `now` stamps the results of report objects.
pub fn write(
    report: &Report,
    format: AuditFormat,
    now: OffsetDateTime,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        AuditFormat::Report => crate::reports::write_yaml(
            &crate::reports::build(report, Flavor::OpenReports, now),
            out,
        ),
        AuditFormat::PolicyReport => crate::reports::write_yaml(
            &crate::reports::build(report, Flavor::PolicyReport, now),
            out,
        ),
        AuditFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        AuditFormat::Text => text(report, out),
    }
}

fn text(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    use crate::messages::count;
    for (name, p) in &report.projects {
        writeln!(
            out,
            "project {name} ({}): {} ({} denied, {} warned), {} ({} to patch)",
            p.mode,
            count(p.secrets, "secret", None),
            p.denied,
            p.warned,
            count(p.pods, "pod", None),
            p.patched
        )?;
        for rule in p.rules.values() {
            writeln!(
                out,
                "  {:<6} {} ({})",
                rule.effect,
                rule.rule,
                rule.objects.len()
            )?;
            for object in &rule.objects {
                writeln!(out, "           {object}")?;
            }
        }
    }
    for invalid in &report.invalid_policies {
        writeln!(
            out,
            "invalid policy {} (refused by the server): {}",
            invalid.name, invalid.problems
        )?;
    }
    for copy in &report.instance_secrets {
        writeln!(
            out,
            "instance secret {} {} (policy {}): {}",
            copy.state, copy.secret, copy.policy, copy.message
        )?;
    }
    if report.projects.is_empty() {
        writeln!(out, "no secrets or pods found")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pattern;

    #[test]
    fn quoted_keys_become_stars() {
        assert_eq!(
            pattern(r#"data[.dockerconfigjson].auths["ghcr.io"].auth"#),
            "data[.dockerconfigjson].auths[*].auth"
        );
        assert_eq!(pattern("metadata.name"), "metadata.name");
        assert_eq!(pattern(r#"a["x"].b["y"]"#), "a[*].b[*]");
    }
}
