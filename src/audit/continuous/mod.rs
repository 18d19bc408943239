//! The continuous audit of `serve` in cluster mode: what the cluster holds, checked off
//! the request path by the elected replica, published as report objects
//! ([`crate::reports`]) that `kubectl get reports -A` and Policy Reporter show.
//!
//! While this replica leads:
//! - at start and every `--audit-interval-seconds`, a full pass: every Secret is read
//!   and reviewed again (time alone changes verdicts: certificates expire), and every Pod
//!   is listed and reviewed;
//! - every few seconds in between, an incremental pass over the caches the admission
//!   path already keeps: new or changed Secrets (by `resourceVersion`), Secrets whose
//!   governing policy changed, deleted Secrets, and credentials due for another login;
//!   invalid policies and instance-secret copies come from the caches alone.
//!
//! A Secret's values are read with one GET just before its review and dropped right after
//! (never more than one at a time); every request of the audit waits for the budget
//! (`--audit-requests-per-second`). Results carry no values (see [`crate::reports`]).
//! Reports are applied in place (server-side apply), only when their content changed;
//! a namespace's report is deleted once it has no result. Losing leadership stops the
//! pass at once; the next leader starts with a full pass and deletes what is stale.

mod budget;
mod credentials;
mod ledger;
mod metrics;
mod pass;
mod writer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::Store;

use crate::cli::ReportsChoice;
use crate::leader::Leadership;
use crate::policy::Snapshot;
pub use ledger::{Ledger, Reason, SecretEntry, SecretKey, carry_timestamps, fingerprint};
pub use metrics::AuditMetrics;
pub use writer::{MANAGER, SELECTOR, detect, resource};

/// Time between incremental passes.
pub const TICK: Duration = Duration::from_secs(5);
/// Time between discovery attempts when the API server cannot be asked.
const RETRY: Duration = Duration::from_secs(30);
/// Time between looks for report CRDs installed after start (one discovery request).
const RECHECK: Duration = Duration::from_secs(60);

/// How the audit runs (`serve`'s "Continuous audit" flags).
#[derive(Clone)]
pub struct Config {
    pub choice: ReportsChoice,
    /// Between full passes.
    pub interval: Duration,
    /// Between incremental passes ([`TICK`]; shorter in tests).
    pub tick: Duration,
    pub requests_per_second: f64,
    /// Namespaces instance secrets come from, when the instance-secret controller runs
    /// (its copies are then audited too).
    pub instance_sources: Option<BTreeSet<String>>,
    /// Registry logins with pull secrets (`--credential-checks`), for projects whose
    /// policy has `credentialHealth`.
    pub credentials: Option<Arc<crate::credentials::CredentialChecker>>,
    pub metrics: AuditMetrics,
}

/// What the audit reads: the caches and snapshot of the watchers.
#[derive(Clone)]
pub struct Sources {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Set once the caches have synced.
    pub ready: Arc<AtomicBool>,
    pub policies: Store<DynamicObject>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

/// Audits while this replica leads, until the task is dropped.
pub async fn run(client: Client, sources: Sources, mut leadership: Leadership, config: Config) {
    if config.choice == ReportsChoice::Off {
        tracing::info!("continuous audit off (--reports=off)");
        return;
    }
    while !sources.ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        leadership.until_leader().await;
        let flavor = match writer::detect(&client, config.choice).await {
            Ok(Some(flavor)) => flavor,
            Ok(None) => {
                tracing::warn!(
                    reports = ?config.choice,
                    "continuous audit off: the cluster serves no report API secretgate may write \
                     (openreports.io/v1alpha1 Report and ClusterReport, or wgpolicyk8s.io/v1alpha2 \
                     PolicyReport and ClusterPolicyReport); install the OpenReports CRDs (Helm value \
                     audit.installCrds=true); asked again every minute"
                );
                config.metrics.enabled.set(0);
                wait_or_lose(&mut leadership, RECHECK).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "continuous audit: cannot ask the API server which report APIs it serves; retrying in 30s");
                wait_or_lose(&mut leadership, RETRY).await;
                continue;
            }
        };
        tracing::info!(
            api = flavor.api_version(),
            interval_seconds = config.interval.as_secs_f64(),
            requests_per_second = config.requests_per_second,
            "continuous audit on: writing {} and {} objects",
            flavor.kind(false),
            flavor.kind(true),
        );
        config.metrics.enabled.set(1);
        pass::Term::new(client.clone(), sources.clone(), config.clone(), flavor)
            .run(&mut leadership)
            .await;
        config.metrics.enabled.set(0);
        tracing::info!("continuous audit paused: this replica no longer leads");
    }
}

/// Sleeps `for_`, or until leadership changes.
async fn wait_or_lose(leadership: &mut Leadership, for_: Duration) {
    tokio::select! {
        () = tokio::time::sleep(for_) => {}
        _ = leadership.changed() => {}
    }
}
