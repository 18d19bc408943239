//! Keeps a policy file's snapshot current: polls the file (the kubelet updates a mounted
//! ConfigMap by swapping a `..data` symlink, which a watch on the file path misses),
//! swaps in a new snapshot when the content changed and parses, and keeps the last good
//! one when it does not. Reads run off the runtime and are bounded in time
//! ([`crate::file_read`]): a file that blocks is a counted failure, not a stalled server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::{Error, Result, parse};
use crate::file_read::{self, Reader};
use crate::metrics::Metrics;
use crate::policy::Snapshot;

/// A policy file and the content of the version in force.
#[derive(Debug)]
pub struct PolicyFile {
    path: PathBuf,
    reader: Reader,
    /// The bytes last parsed (good or bad), so an unchanged file is neither re-parsed nor
    /// re-reported every poll.
    seen: Mutex<Vec<u8>>,
}

impl PolicyFile {
    /// Reads and parses the file; start-up fails on an error, and on a file that is not
    /// a regular one or does not read within [`file_read::TIMEOUT`].
    pub fn load(path: &Path) -> Result<(Self, Snapshot)> {
        let reader = Reader::new(vec![path.to_owned()], file_read::TIMEOUT);
        let bytes = only(reader.read_blocking()?);
        let snapshot = parse(path, &String::from_utf8_lossy(&bytes))?;
        let file = Self {
            path: path.to_owned(),
            reader,
            seen: Mutex::new(bytes),
        };
        Ok((file, snapshot))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file: `Ok(None)` when unchanged since the last call, the new snapshot
    /// when it changed and parses.
    pub async fn reload(&self) -> Result<Option<Snapshot>> {
        let bytes = only(self.reader.read().await?);
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
            match self.reload().await {
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
                    if let Error::Read(read) = &e {
                        metrics
                            .file_read_failures
                            .with_label_values(&["policy", read.reason()])
                            .inc();
                    }
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
        .broken_policies
        .set(snapshot.broken_policies().len() as i64);
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

/// The content of the one file a policy reader reads.
fn only(contents: file_read::Contents) -> Vec<u8> {
    contents.into_iter().next().unwrap_or_default()
}
