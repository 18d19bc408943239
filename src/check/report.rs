//! The `check` report: text for people, JSON and YAML for tools. Holds names, field paths
//! and the server's messages, never an object's data (the mutated pod of YAML output
//! aside: pods carry no secret values).

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::{Checked, Source};
use crate::admission::Verdict;
use crate::cli::OutputFormat;
use crate::policy::{Mode, Severity};

/// What a finding did under the policy mode: `deny`, `warn` or `audit`.
pub fn effect(mode: Option<Mode>, severity: Severity) -> &'static str {
    match (mode.unwrap_or_default(), severity) {
        (Mode::Audit, _) => "audit",
        (Mode::Enforce, Severity::Deny) => "deny",
        _ => "warn",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    results: Vec<Entry<'a>>,
    /// Inputs left out (links into a directory already read).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    summary: Counts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    source: &'a Source,
    kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    operation: &'a str,
    /// allowed, warned, patched, denied, invalid; or skipped.
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    violations: Vec<Finding<'a>>,
    /// Findings beyond the first 20, counted by rule (`and N more: …`), as the server
    /// says them.
    #[serde(skip_serializing_if = "Option::is_none")]
    more_violations: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    injections: Vec<Injected<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<&'a json_patch::Patch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutated_object: Option<&'a Value>,
    #[serde(skip)]
    wrapped: bool,
}

#[derive(Serialize)]
struct Finding<'a> {
    field: &'a str,
    message: &'a str,
    /// deny, warn or audit: what the finding did under the policy mode.
    effect: &'static str,
}

#[derive(Serialize)]
struct Injected<'a> {
    kind: &'static str,
    secret: &'a str,
}

#[derive(Default, Serialize)]
struct Counts {
    objects: usize,
    allowed: usize,
    warned: usize,
    patched: usize,
    denied: usize,
    invalid: usize,
    skipped: usize,
}

fn entry(checked: &Checked) -> Entry<'_> {
    let Some(outcome) = &checked.outcome else {
        return Entry {
            source: &checked.source,
            kind: &checked.kind,
            namespace: "",
            name: "",
            operation: "",
            verdict: "skipped",
            allowed: None,
            policy: None,
            mode: None,
            code: None,
            message: None,
            violations: Vec::new(),
            more_violations: None,
            warnings: &[],
            injections: Vec::new(),
            patch: None,
            mutated_object: None,
            wrapped: false,
        };
    };
    let s = &outcome.summary;
    Entry {
        source: &checked.source,
        kind: &checked.kind,
        namespace: &s.namespace,
        name: &s.name,
        operation: &s.operation,
        verdict: s.verdict().as_str(),
        allowed: Some(outcome.allowed),
        policy: s.policy.as_deref(),
        mode: s.mode.map(Mode::as_str),
        code: outcome.code,
        message: outcome.message.as_deref(),
        violations: s
            .findings
            .iter()
            .map(|v| Finding {
                field: &v.field,
                message: &v.message,
                effect: effect(s.mode, v.severity),
            })
            .collect(),
        more_violations: s.findings_more.as_deref(),
        warnings: &outcome.warnings,
        injections: s
            .injections
            .iter()
            .map(|i| Injected {
                kind: i.kind,
                secret: &i.secret,
            })
            .collect(),
        patch: outcome.patch.as_ref(),
        mutated_object: checked.mutated.as_ref(),
        wrapped: checked.wrapped,
    }
}

fn counts(results: &[Checked]) -> Counts {
    let mut c = Counts {
        objects: results.len(),
        ..Counts::default()
    };
    for r in results {
        match r.verdict() {
            None => c.skipped += 1,
            Some(Verdict::Allowed) => c.allowed += 1,
            Some(Verdict::Warned) => c.warned += 1,
            Some(Verdict::Patched) => c.patched += 1,
            Some(Verdict::Denied) => c.denied += 1,
            Some(Verdict::Invalid) => c.invalid += 1,
        }
    }
    c
}

/// Writes the report of `results` (and `notes` on the input) in `format`.
pub fn write(
    results: &[Checked],
    notes: &[String],
    format: OutputFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let report = Report {
        results: results.iter().map(entry).collect(),
        notes,
        summary: counts(results),
    };
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)
        }
        OutputFormat::Yaml => {
            let text = serde_saphyr::to_string(&report).map_err(std::io::Error::other)?;
            out.write_all(text.as_bytes())
        }
        OutputFormat::Text => text(&report, out),
    }
}

fn text(report: &Report<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    for e in &report.results {
        if e.verdict == "skipped" {
            writeln!(
                out,
                "{}: {}: skipped (check evaluates Secrets, Pods, workloads' pod templates and \
                 AdmissionReviews)",
                e.source, e.kind
            )?;
            continue;
        }
        // A malformed generateName object reaches no name at all.
        let name = if e.name.is_empty() {
            "(no name)"
        } else {
            e.name
        };
        let object = if e.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", e.namespace)
        };
        write!(out, "{}: {} {}: {}", e.source, e.kind, object, e.verdict)?;
        match (e.policy, e.mode) {
            (Some(policy), Some(mode)) => writeln!(out, " (policy {policy:?}, {mode})")?,
            _ => writeln!(out)?,
        }
        if e.verdict == "invalid" {
            writeln!(out, "  error: {}", e.message.unwrap_or(""))?;
            if e.wrapped {
                // The position is in the review built from the manifest, not the file.
                let what = match e.kind {
                    "Secret" | "Pod" => format!("v1 {}", e.kind),
                    workload => format!("v1 Pod (from the {workload}'s template)"),
                };
                writeln!(
                    out,
                    "  note: the object does not decode as a {what}; the API server would \
                     refuse it before any webhook (data values must be base64, fields \
                     must have their types)"
                )?;
            }
        }
        for v in &e.violations {
            writeln!(out, "  {:<6} {}: {}", v.effect, v.field, v.message)?;
        }
        if let Some(more) = e.more_violations {
            writeln!(out, "  {more}")?;
        }
        // Warnings that repeat a finding (Warn mode) are already listed above.
        let shown: Vec<String> = e
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .chain(e.more_violations.map(str::to_owned))
            .collect();
        for w in e.warnings.iter().filter(|w| !shown.contains(w)) {
            writeln!(out, "  warning: {w}")?;
        }
        for i in &e.injections {
            writeln!(out, "  inject {} {}", i.kind, i.secret)?;
        }
        if let Some(patch) = e.patch {
            let json = serde_json::to_string(patch).map_err(std::io::Error::other)?;
            writeln!(out, "  patch: {json}")?;
        }
    }
    for note in report.notes {
        writeln!(out, "note: {note}")?;
    }
    let c = &report.summary;
    writeln!(
        out,
        "{}: {} allowed, {} warned, {} patched, {} denied, {} invalid, {} skipped",
        crate::messages::count(c.objects, "object", None),
        c.allowed,
        c.warned,
        c.patched,
        c.denied,
        c.invalid,
        c.skipped
    )
}
