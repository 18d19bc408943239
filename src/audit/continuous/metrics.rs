//! Metrics of the continuous audit. No namespace or object names in labels: with 10,000
//! namespaces a per-namespace series would dwarf every other metric, and the reports
//! already say where. Totals by status and reason only.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::reports::result::Status;

#[derive(Clone)]
pub struct AuditMetrics {
    /// 1 while this replica writes reports.
    pub enabled: IntGauge,
    /// Results in the reports, by status (`pass`, `fail`, `warn`, `error`, `skip`).
    pub results: IntGaugeVec,
    /// Certificates that expire within their policy's warning window (or are expired).
    pub expiring: IntGauge,
    /// Objects reviewed, by reason (`new`, `changed`, `policy_changed`, `full_pass`,
    /// `credentials_due`, `pod`).
    pub reviews: IntCounterVec,
    /// Passes, by kind (`full`, `incremental`).
    pub passes: IntCounterVec,
    /// Report writes, by outcome (`applied`, `deleted`, `failed`).
    pub writes: IntCounterVec,
}

impl AuditMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let enabled = IntGauge::new(
            "secretgate_audit_enabled",
            "1 while this replica runs the continuous audit and writes reports.",
        )?;
        let results = IntGaugeVec::new(
            Opts::new(
                "secretgate_audit_results",
                "Results in the continuous audit's reports, by status.",
            ),
            &["status"],
        )?;
        let expiring = IntGauge::new(
            "secretgate_audit_certificates_expiring",
            "TLS secrets whose certificate expires within the policy's warning window or has expired.",
        )?;
        let reviews = IntCounterVec::new(
            Opts::new(
                "secretgate_audit_reviews_total",
                "Objects the continuous audit reviewed, by reason.",
            ),
            &["reason"],
        )?;
        let passes = IntCounterVec::new(
            Opts::new(
                "secretgate_audit_passes_total",
                "Continuous audit passes, by kind.",
            ),
            &["kind"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "secretgate_audit_report_writes_total",
                "Report objects written by the continuous audit, by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(enabled.clone()))?;
        registry.register(Box::new(results.clone()))?;
        registry.register(Box::new(expiring.clone()))?;
        registry.register(Box::new(reviews.clone()))?;
        registry.register(Box::new(passes.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        Ok(Self {
            enabled,
            results,
            expiring,
            reviews,
            passes,
            writes,
        })
    }

    /// Sets the gauges from every result held.
    pub fn observe(&self, results: &[(Status, &str)]) {
        let mut by_status = [0i64; 5];
        let mut expiring = 0;
        for &(status, rule) in results {
            by_status[status as usize] += 1;
            if status != Status::Pass && is_expiry(rule) {
                expiring += 1;
            }
        }
        for (status, n) in [
            (Status::Fail, "fail"),
            (Status::Error, "error"),
            (Status::Warn, "warn"),
            (Status::Skip, "skip"),
            (Status::Pass, "pass"),
        ]
        .map(|(s, name)| (name, by_status[s as usize]))
        {
            self.results.with_label_values(&[status]).set(n);
        }
        self.expiring.set(expiring);
    }
}

/// Whether `rule` is about a certificate's expiry: the TLS check's messages on `tls.crt`
/// (rule ids are built from them, see [`crate::reports::rule`]).
fn is_expiry(rule: &str) -> bool {
    rule.starts_with("data[tls.crt]:certificate-expire")
}
