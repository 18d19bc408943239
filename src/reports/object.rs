//! Report objects: results grouped by namespace (and one cluster report), sorted, capped
//! and counted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::result::{Placed, ReportResult, Status};
use super::{Flavor, MAX_RESULTS, NAME};

/// One `Report`/`PolicyReport` (namespaced) or `ClusterReport`/`ClusterPolicyReport`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportObject {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    /// OpenReports only: the engine that wrote every result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// OpenReports only: tells consumers results are capped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Configuration>,
    pub summary: Summary,
    pub results: Vec<ReportResult>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Metadata {
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub labels: BTreeMap<&'static str, &'static str>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub limits: Limits,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_results: usize,
}

/// Results by status, including those left out of `results`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub error: usize,
    pub skip: usize,
}

impl Summary {
    fn count(&mut self, status: Status) {
        match status {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::Warn => self.warn += 1,
            Status::Error => self.error += 1,
            Status::Skip => self.skip += 1,
        }
    }
}

/// The cluster report, then one report per namespace with results, in name order.
pub fn assemble(placed: Vec<Placed>, flavor: Flavor) -> Vec<ReportObject> {
    let mut cluster = Vec::new();
    let mut namespaced: BTreeMap<String, Vec<ReportResult>> = BTreeMap::new();
    for p in placed {
        match p.namespace {
            None => cluster.push(p.result),
            Some(ns) => namespaced.entry(ns).or_default().push(p.result),
        }
    }
    let mut out = vec![object(flavor, None, cluster)];
    for (namespace, results) in namespaced {
        out.push(object(flavor, Some(namespace), results));
    }
    out
}

/// One report object holding `results` (sorted, deduplicated, counted and capped here):
/// the namespace's, or the cluster's when `namespace` is `None`.
pub fn object(
    flavor: Flavor,
    namespace: Option<String>,
    mut results: Vec<ReportResult>,
) -> ReportObject {
    results.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    results.dedup();
    let mut summary = Summary::default();
    for r in &results {
        summary.count(r.result);
    }
    cap(&mut results);
    let open = flavor == Flavor::OpenReports;
    ReportObject {
        api_version: flavor.api_version(),
        kind: flavor.kind(namespace.is_none()),
        metadata: Metadata {
            name: NAME,
            namespace,
            labels: [("app.kubernetes.io/managed-by", NAME)].into(),
        },
        source: open.then_some(NAME),
        configuration: open.then_some(Configuration {
            limits: Limits {
                max_results: MAX_RESULTS,
            },
        }),
        summary,
        results,
    }
}

/// Keeps the first `MAX_RESULTS - 1` results and counts the rest in one `skip` result.
fn cap(results: &mut Vec<ReportResult>) {
    if results.len() <= MAX_RESULTS {
        return;
    }
    let omitted = results.split_off(MAX_RESULTS - 1);
    let first = &omitted[0];
    let mut marker = first.clone();
    marker.policy = NAME.to_owned();
    marker.rule = "results-omitted".to_owned();
    marker.result = Status::Skip;
    marker.severity = None;
    marker.category = "Report";
    marker.scored = false;
    marker.message = format!(
        "{} more results not listed (at most {MAX_RESULTS} per report; `secretgate audit` lists all)",
        omitted.len()
    );
    marker.resources = Vec::new();
    marker.properties = [("omitted".to_owned(), omitted.len().to_string())].into();
    results.push(marker);
}
