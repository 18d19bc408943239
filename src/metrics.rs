//! Prometheus metrics, registered in a registry passed in (no globals). Labels are
//! bounded: webhook, operation, verdict, mode, kind, file — never an object name or a
//! value.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Reviews answered, by webhook (`validate`/`mutate`), operation and verdict.
    pub reviews: IntCounterVec,
    /// Server time per review, from the first body byte to the encoded answer.
    pub review_duration: HistogramVec,
    /// Bodies refused before evaluation, by reason (`too_large`, `malformed`, ...).
    pub invalid_requests: IntCounterVec,
    /// Policy findings, by policy mode and what became of them (`denied`, `warned`, `audited`).
    pub findings: IntCounterVec,
    /// Injections made into pods, by kind (`image_pull_secret`, `git_sync_key`).
    pub injections: IntCounterVec,
    /// Reviews an exemption turned from a denial into warnings, by webhook.
    pub exempted: IntCounterVec,
    /// Project policies in force (the embedded default not counted).
    pub policies: IntGauge,
    /// Project policies invalid with no good version known: Secret writes are denied where
    /// they govern (readiness stays 200; `/readyz` names them).
    pub broken_policies: IntGauge,
    /// When the policy set was last (re)loaded, as a Unix timestamp.
    pub policy_last_reload: Gauge,
    /// Policy reloads (file edits, cluster changes), by result (`success`, `failure`).
    pub policy_reloads: IntCounterVec,
    /// Large reviews given no answer, by webhook and reason (`busy`: too many at once;
    /// `timeout`: the API server's timeout passed).
    pub abandoned_reviews: IntCounterVec,
    /// Serving certificate notAfter, as a Unix timestamp.
    pub certificate_expiry: Gauge,
    /// Certificate reload attempts that found a change, by result.
    pub certificate_reloads: IntCounterVec,
    /// Polled reads of the policy file or the certificate pair that failed, by file
    /// (`policy`, `certificate`) and reason (`timeout`, `error`); the server keeps what
    /// it had.
    pub file_read_failures: IntCounterVec,
    /// 1 while this replica holds the leader lease and writes to the cluster (ProjectPolicy
    /// statuses, instance-secret copies); 1 also without leader election in cluster mode.
    /// Summed over the replicas it should be 1.
    pub leader: IntGauge,
    /// Leadership transitions of this replica, by event (`acquired`, `lost`, `released`).
    pub leader_transitions: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates every metric and registers it in `registry`.
    pub fn new(registry: Registry) -> prometheus::Result<Self> {
        let reviews = IntCounterVec::new(
            Opts::new("secretgate_reviews_total", "Admission reviews answered."),
            &["webhook", "operation", "verdict"],
        )?;
        let review_duration = HistogramVec::new(
            HistogramOpts::new(
                "secretgate_review_duration_seconds",
                "Server time to answer one admission review.",
            )
            .buckets(vec![
                0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                0.025, 0.1,
            ]),
            &["webhook"],
        )?;
        let invalid_requests = IntCounterVec::new(
            Opts::new(
                "secretgate_invalid_requests_total",
                "Requests refused before evaluation (malformed, too large, wrong content type).",
            ),
            &["webhook", "reason"],
        )?;
        let findings = IntCounterVec::new(
            Opts::new(
                "secretgate_policy_findings_total",
                "Rule violations found in secrets, by policy mode and outcome.",
            ),
            &["mode", "outcome"],
        )?;
        let injections = IntCounterVec::new(
            Opts::new("secretgate_injections_total", "Injections made into pods."),
            &["kind"],
        )?;
        let exempted = IntCounterVec::new(
            Opts::new(
                "secretgate_exempted_reviews_total",
                "Reviews that would have been denied but the requester is exempt (warned instead).",
            ),
            &["webhook"],
        )?;
        let policies = IntGauge::new("secretgate_policies", "Project policies in force.")?;
        let broken_policies = IntGauge::new(
            "secretgate_broken_policies",
            "Project policies invalid with no good version known; Secret writes in the \
             namespaces they select are denied.",
        )?;
        let policy_last_reload = Gauge::new(
            "secretgate_policy_last_reload_timestamp_seconds",
            "Unix time of the last policy load.",
        )?;
        let policy_reloads = IntCounterVec::new(
            Opts::new(
                "secretgate_policy_reloads_total",
                "Policy reloads after a change, by result; a failure keeps the last good policy.",
            ),
            &["result"],
        )?;
        let abandoned_reviews = IntCounterVec::new(
            Opts::new(
                "secretgate_abandoned_reviews_total",
                "Large reviews given no answer: too many at once (busy) or past the API server's timeout.",
            ),
            &["webhook", "reason"],
        )?;
        let certificate_expiry = Gauge::new(
            "secretgate_certificate_expiry_timestamp_seconds",
            "Unix time at which the serving certificate expires.",
        )?;
        let certificate_reloads = IntCounterVec::new(
            Opts::new(
                "secretgate_certificate_reloads_total",
                "Serving certificate reloads after a change on disk, by result.",
            ),
            &["result"],
        )?;
        let file_read_failures = IntCounterVec::new(
            Opts::new(
                "secretgate_file_read_failures_total",
                "Reads of the policy file or serving certificate that failed or did not \
                 finish in time; the server keeps what it had.",
            ),
            &["file", "reason"],
        )?;
        let leader = IntGauge::new(
            "secretgate_leader",
            "1 while this replica is the leader that writes to the cluster, else 0.",
        )?;
        let leader_transitions = IntCounterVec::new(
            Opts::new(
                "secretgate_leader_transitions_total",
                "Leadership transitions of this replica: acquired, lost (renewal failed or \
                 taken), released (on shutdown).",
            ),
            &["event"],
        )?;
        registry.register(Box::new(reviews.clone()))?;
        registry.register(Box::new(review_duration.clone()))?;
        registry.register(Box::new(invalid_requests.clone()))?;
        registry.register(Box::new(findings.clone()))?;
        registry.register(Box::new(injections.clone()))?;
        registry.register(Box::new(exempted.clone()))?;
        registry.register(Box::new(policies.clone()))?;
        registry.register(Box::new(broken_policies.clone()))?;
        registry.register(Box::new(policy_last_reload.clone()))?;
        registry.register(Box::new(policy_reloads.clone()))?;
        registry.register(Box::new(abandoned_reviews.clone()))?;
        registry.register(Box::new(certificate_expiry.clone()))?;
        registry.register(Box::new(certificate_reloads.clone()))?;
        registry.register(Box::new(file_read_failures.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(leader_transitions.clone()))?;
        Ok(Self {
            registry,
            reviews,
            review_duration,
            invalid_requests,
            findings,
            injections,
            exempted,
            policies,
            broken_policies,
            policy_last_reload,
            policy_reloads,
            abandoned_reviews,
            certificate_expiry,
            certificate_reloads,
            file_read_failures,
            leader,
            leader_transitions,
        })
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
