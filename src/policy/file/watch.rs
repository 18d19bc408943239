//! Keeps a policy file's snapshot current: polls the file (the kubelet updates a mounted
//! ConfigMap by swapping a `..data` symlink, which a watch on the file path misses),
//! swaps in a new snapshot when the content changed and parses, and keeps the last good
//! one when it does not.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::{Error, Result, parse};
use crate::metrics::Metrics;
use crate::policy::Snapshot;

/// A policy file and the content of the version in force.
#[derive(Debug)]
pub struct PolicyFile {
    path: PathBuf,
    /// The bytes last parsed (good or bad), so an unchanged file is neither re-parsed nor
    /// re-reported every poll.
    seen: Mutex<Vec<u8>>,
}

impl PolicyFile {
    /// Reads and parses the file; start-up fails on an error.
    pub fn load(path: &Path) -> Result<(Self, Snapshot)> {
        let bytes = read(path)?;
        let snapshot = parse(path, &String::from_utf8_lossy(&bytes))?;
        let file = Self {
            path: path.to_owned(),
            seen: Mutex::new(bytes),
        };
        Ok((file, snapshot))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file: `Ok(None)` when unchanged since the last call, the new snapshot
    /// when it changed and parses.
    pub fn reload(&self) -> Result<Option<Snapshot>> {
        let bytes = read(&self.path)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == bytes {
            return Ok(None);
        }
        let parsed = parse(&self.path, &String::from_utf8_lossy(&bytes));
        *seen = bytes;
        parsed.map(Some)
    }

    /// The reload loop: every `interval`, swaps a changed, valid policy into `policies`.
    pub async fn watch(
        self,
        interval: Duration,
        policies: Arc<ArcSwap<Snapshot>>,
        metrics: Arc<Metrics>,
    ) {
        // The gauge describes the snapshot loaded at start-up until the first reload.
        metrics.policies.set(policies.load().policy_count() as i64);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.reload() {
                Ok(None) => {}
                Ok(Some(snapshot)) => {
                    tracing::info!(
                        file = %self.path.display(),
                        policies = snapshot.policy_count(),
                        "policy file reloaded"
                    );
                    log_overlaps(&snapshot);
                    record_reload(&metrics, &snapshot);
                    policies.store(Arc::new(snapshot));
                }
                Err(e) => {
                    tracing::error!(error = %e, "policy file reload failed; keeping the last good policy");
                    metrics.policy_reloads.with_label_values(&["failure"]).inc();
                }
            }
        }
    }
}

/// Metrics of a snapshot that has just been put in force.
pub fn record_reload(metrics: &Metrics, snapshot: &Snapshot) {
    metrics.policy_reloads.with_label_values(&["success"]).inc();
    metrics.policies.set(snapshot.policy_count() as i64);
    metrics
        .policy_last_reload
        .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
}

/// One warning per namespace that several policies select.
pub fn log_overlaps(snapshot: &Snapshot) {
    for overlap in snapshot.overlaps() {
        let policies: Vec<&str> = overlap.policies.iter().map(|p| &**p).collect();
        tracing::warn!(
            namespace = %overlap.namespace,
            governing = policies.first().copied().unwrap_or_default(),
            policies = ?policies,
            "several policies select this namespace; the first by name governs it"
        );
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| Error::Read {
        path: path.to_owned(),
        error,
    })
}
