//! Report objects for dashboards: what `secretgate audit` found, as the policy working
//! group's report resources, so Policy Reporter and similar tools show secretgate's
//! results next to Kyverno's and Kubewarden's.
//!
//! Two flavors of the same content ([`Flavor`]): OpenReports (`openreports.io/v1alpha1`
//! `Report` per namespace and one `ClusterReport`), where the working group is heading,
//! and wgpolicyk8s (`wgpolicyk8s.io/v1alpha2` `PolicyReport` / `ClusterPolicyReport`),
//! for clusters that only have those CRDs.
//!
//! Pure functions of an [`audit::Report`](crate::audit::Report) and a timestamp, so a
//! report is reproducible and testable; the later continuous audit in `serve` is meant to
//! reuse them. Decisions (also in the README):
//!
//! - One result per object and rule ([`result`]): `policy` is the governing ProjectPolicy,
//!   `rule` a stable id derived from the finding ([`rule`]). A finding that would deny
//!   (Enforce mode, Deny severity) is `fail`/`high`; one that would warn is `warn`/`medium`;
//!   one an Audit-mode policy only logs is `warn`/`low` with property `mode: Audit`.
//!   A pod that lacks a secret the webhook would inject is `warn`/`low` (rule
//!   `inject:<kind>`, e.g. `inject:image_pull_secret`). An object with no finding gets one `pass` result with rule `all`
//!   (there is no per-object rule list to pass one by one). Objects no policy governs get
//!   no result.
//! - Cluster-scoped findings go to the `ClusterReport`: invalid ProjectPolicies (`error`:
//!   the policy is not in force as written) and instance-secret sources that are missing or
//!   not allowed (`fail`). Copy problems (missing, stale, orphaned, conflict) go to the
//!   namespace of the copy.
//! - At most [`MAX_RESULTS`] results per report, the most severe first; the rest are
//!   counted in one `skip` result (rule `results-omitted`). Messages are clipped to
//!   [`MAX_MESSAGE_CHARS`] and rule ids to [`MAX_RULE_CHARS`], so a report stays far below
//!   etcd's 1.5 MiB object limit (about 1 KiB per result at worst). `summary` counts every
//!   result, listed or not (not the marker).
//! - Namespaces with nothing reviewed get no report; the `ClusterReport` is always
//!   present (empty when all is well), so applying the output clears fixed policies.
//!
//! Messages are the admission response's (names and field paths, never values).

mod object;
pub mod result;
pub mod rule;
#[cfg(test)]
mod tests;

use std::io::Write;

use time::OffsetDateTime;

use crate::audit::Report;
pub use object::{ReportObject, Summary, object};

/// Results per report object; the rest are counted in one `skip` result.
pub const MAX_RESULTS: usize = 1_000;
/// Characters of a result's message.
pub const MAX_MESSAGE_CHARS: usize = 512;
/// Characters of a rule id.
pub const MAX_RULE_CHARS: usize = 160;
/// `metadata.name` of every report object, and `source` of every result.
pub const NAME: &str = "secretgate";

/// Which report API to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `openreports.io/v1alpha1` `Report` and `ClusterReport`.
    OpenReports,
    /// `wgpolicyk8s.io/v1alpha2` `PolicyReport` and `ClusterPolicyReport`.
    PolicyReport,
}

impl Flavor {
    pub fn api_version(self) -> &'static str {
        match self {
            Flavor::OpenReports => "openreports.io/v1alpha1",
            Flavor::PolicyReport => "wgpolicyk8s.io/v1alpha2",
        }
    }

    /// The kind of the namespaced report, or of the cluster-scoped one.
    pub fn kind(self, cluster: bool) -> &'static str {
        match (self, cluster) {
            (Flavor::OpenReports, false) => "Report",
            (Flavor::OpenReports, true) => "ClusterReport",
            (Flavor::PolicyReport, false) => "PolicyReport",
            (Flavor::PolicyReport, true) => "ClusterPolicyReport",
        }
    }
}

/// The report objects for `report`: the cluster report first, then one per namespace in
/// name order. `now` stamps every result.
pub fn build(report: &Report, flavor: Flavor, now: OffsetDateTime) -> Vec<ReportObject> {
    let placed = result::results(report, now);
    object::assemble(placed, flavor)
}

/// Writes `objects` as a YAML stream (`---` before each document), which
/// `kubectl apply -f -` reads.
pub fn write_yaml(objects: &[ReportObject], out: &mut dyn Write) -> std::io::Result<()> {
    for object in objects {
        let text = serde_saphyr::to_string(object).map_err(std::io::Error::other)?;
        writeln!(out, "---")?;
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
    }
    Ok(())
}
