//! Leader election: one replica of `serve` at a time writes to the cluster (ProjectPolicy
//! statuses, instance-secret copies); every replica serves admission, which never waits
//! for any of this.
//!
//! # Protocol
//!
//! client-go's `leaderelection` on a `coordination.k8s.io/v1` Lease, with its optimistic
//! concurrency on `resourceVersion` (see [`elector`] for the loop, [`decide`] for the
//! pure rules):
//!
//! - A candidate GETs the lease. Absent: it CREATEs it holding it (a 409 means another
//!   candidate created it first). Held by another replica and not expired: it waits
//!   [`LeaseConfig::retry_period`] and reads again. Expired or released (no holder): it
//!   takes it with a REPLACE (PUT) carrying the `resourceVersion` it read, so when two
//!   candidates race, the API server accepts one PUT and answers the other 409 Conflict.
//! - "Expired" is measured on the candidate's own monotonic clock: the record has not
//!   changed for `leaseDurationSeconds` since this process first saw it. The holder's
//!   `renewTime` comes from another machine's clock and is never compared with ours, so
//!   clock skew between nodes cannot make two leaders (client-go's `observedTime`).
//! - The leader renews every [`LeaseConfig::renew_interval`] by REPLACE. If no renewal
//!   succeeds for [`LeaseConfig::renew_deadline`] (shorter than the lease duration), it
//!   steps down at once: writers see `is_leader() == false` before any other replica
//!   can consider the lease expired.
//! - On shutdown (SIGTERM), the leader stops writing, then releases the lease: a REPLACE
//!   with no holder and `leaseDurationSeconds: 1`, so another replica takes over on its
//!   next retry instead of waiting for the lease to expire.
//!
//! RBAC, in the lease's namespace (the chart's `leader-election-role.yaml`):
//!
//! ```yaml
//! - apiGroups: ["coordination.k8s.io"]
//!   resources: ["leases"]
//!   resourceNames: ["secretgate"]   # get and update can be limited by name
//!   verbs: ["get", "update"]
//! - apiGroups: ["coordination.k8s.io"]
//!   resources: ["leases"]
//!   verbs: ["create"]               # create cannot: the name is not known at authorization
//! ```
//!
//! # Why not the `kube-lease-manager` crate
//!
//! It fits kube 5, but it takes the lease with server-side apply (field-manager
//! conflicts) instead of client-go's compare-and-swap on `resourceVersion`, the protocol
//! every Kubernetes controller uses and whose behaviour under races is well known. The
//! compare-and-swap is also easy to test faithfully against a small in-memory API server
//! (`tests/leader.rs`: GET/POST/PUT with 404 and 409, as the real one answers), and this
//! module (a few hundred lines) adds no dependency.
//!
//! # Use
//!
//! Writers hold a [`Leadership`] and check [`Leadership::is_leader`] right before each
//! write, skipping it when not leader; they await [`Leadership::changed`] to redo on
//! gaining leadership what the previous leader may have left undone.

pub mod decide;
pub mod elector;

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Metrics;

pub use elector::Elector;

/// Leader election errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The durations cannot guarantee a single leader.
    #[error("invalid leader election timing: {0}")]
    Timing(&'static str),
    /// `--leader-election` was asked for where it cannot run.
    #[error("leader election: {0}")]
    Unavailable(&'static str),
    /// A request for the lease failed.
    #[error("lease {lease}: {source}")]
    Api {
        lease: String,
        #[source]
        source: kube::Error,
    },
    /// A request for the lease got no answer in time.
    #[error("lease {lease}: no answer within {timeout:?}")]
    Timeout { lease: String, timeout: Duration },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which Lease, who this replica is, and the timing (client-go's names and defaults).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process: see [`identity`].
    pub identity: String,
    /// How long a lease stays valid without renewal (`leaseDurationSeconds`, rounded up to
    /// whole seconds in the Lease): how long the others wait when a leader vanishes
    /// without releasing.
    pub duration: Duration,
    /// How long the leader keeps leading while renewals fail. Shorter than `duration`:
    /// the difference is the margin between this replica stopping its writes and another
    /// one starting them.
    pub renew_deadline: Duration,
    /// Time between renewals while leading.
    pub renew_interval: Duration,
    /// Time between attempts while not leading, and between failed renewals (jittered by
    /// up to 20% so replicas do not retry in step).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults (15 s lease, 10 s renew deadline, 2 s retry), renewing every
    /// third of the lease.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: String) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity,
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_interval: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Refuses timings under which a leader could still write after another replica
    /// considers its lease expired, or could never renew in time.
    pub fn validate(&self) -> Result<()> {
        if self.identity.is_empty() {
            return Err(Error::Timing("the identity is empty"));
        }
        if self.duration < Duration::from_secs(1) {
            return Err(Error::Timing("the lease duration must be at least 1s"));
        }
        if self.renew_deadline >= self.duration {
            return Err(Error::Timing(
                "the renew deadline must be shorter than the lease duration",
            ));
        }
        if self.renew_interval.is_zero() || self.renew_interval >= self.renew_deadline {
            return Err(Error::Timing(
                "the renew interval must be above zero and shorter than the renew deadline",
            ));
        }
        if self.retry_period.is_zero() || self.retry_period.mul_f64(1.2) >= self.renew_deadline {
            return Err(Error::Timing(
                "the retry period (plus 20% jitter) must be above zero and shorter than the \
                 renew deadline",
            ));
        }
        Ok(())
    }

    /// `namespace/name`, for logs and errors.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Whether this replica leads, cheap to clone and to read (a `watch` receiver). Writers
/// call [`Leadership::is_leader`] right before each write.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    /// Keeps the channel open for [`Leadership::always`]: a closed channel reads as "not
    /// leader" (an elector that stopped, even by a panic, must not leave writers writing).
    _always: Option<Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// Leads forever: no election (one replica, or `--leader-election=false`), as before
    /// leader election existed.
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            rx,
            _always: Some(Arc::new(tx)),
        }
    }

    /// Whether this replica may write now: false once its elector has stopped.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow() && self.rx.has_changed().is_ok()
    }

    /// Waits for the next transition and returns the new state. Never returns once the
    /// elector has stopped (after shutdown), nor with [`Leadership::always`].
    pub async fn changed(&mut self) -> bool {
        if self.rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        *self.rx.borrow_and_update()
    }

    /// Resolves once this replica leads (at once if it does already); never once its
    /// elector has stopped.
    pub async fn until_leader(&mut self) {
        if self.rx.wait_for(|leads| *leads).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The writing end of a [`Leadership`]: the elector's, or a test's. Keeps the
/// `secretgate_leader` gauge and the transition counter in step with it.
#[derive(Debug)]
pub struct Switch {
    tx: watch::Sender<bool>,
    metrics: Option<Arc<Metrics>>,
}

impl Switch {
    /// A switch starting at `leads`, and the handle that follows it.
    pub fn new(leads: bool) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(leads);
        let leadership = Leadership { rx, _always: None };
        (Self { tx, metrics: None }, leadership)
    }

    /// Records transitions in these metrics from now on.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.leader.set(i64::from(*self.tx.borrow()));
        self.metrics = Some(metrics);
        self
    }

    /// Sets the state; `event` names a transition for the counter (`acquired`, `lost`,
    /// `released`). Returns whether the state changed.
    pub fn set(&self, leads: bool, event: &'static str) -> bool {
        let changed = self.tx.send_if_modified(|current| {
            let changed = *current != leads;
            *current = leads;
            changed
        });
        if let (true, Some(metrics)) = (changed, &self.metrics) {
            metrics.leader.set(i64::from(leads));
            metrics.leader_transitions.with_label_values(&[event]).inc();
        }
        changed
    }

    /// The current state.
    pub fn is_leader(&self) -> bool {
        *self.tx.borrow()
    }

    /// Another handle on this switch.
    pub fn leadership(&self) -> Leadership {
        Leadership {
            rx: self.tx.subscribe(),
            _always: None,
        }
    }
}

/// Where leader election runs, from the flags: the lease namespace, or `None` for no
/// election (every write done by this replica, as with a single replica).
///
/// `flag`: `--leader-election` (`None`: not given). Off in file mode (nothing is
/// written); in cluster mode on by default when the namespace is known
/// (`--leader-election-namespace`, or `POD_NAMESPACE` from the downward API).
pub fn election_namespace(
    flag: Option<bool>,
    cluster: bool,
    namespace: Option<&str>,
) -> Result<Option<String>> {
    let namespace = namespace.filter(|ns| !ns.is_empty());
    match (flag, cluster, namespace) {
        (Some(false), _, _) | (None, false, _) | (None, true, None) => Ok(None),
        (Some(true), false, _) => Err(Error::Unavailable(
            "--leader-election needs cluster mode (--kube); with --policy nothing is written",
        )),
        (Some(true), true, None) => Err(Error::Unavailable(
            "--leader-election needs the lease namespace: --leader-election-namespace or \
             POD_NAMESPACE",
        )),
        (_, true, Some(ns)) => Ok(Some(ns.to_owned())),
    }
}

/// This process's identity in the lease: the pod name (`POD_NAME`, from the downward
/// API), else the host name, plus a random suffix. The suffix makes every process
/// distinct: a restarted container is a new candidate, never mistaken for the process
/// that held the lease before it.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(hostname)
        .unwrap_or_else(|| "secretgate".to_owned());
    with_suffix(&base)
}

/// `base_xxxxxxxx`: eight hex digits from the standard library's randomly seeded hasher
/// (no random-number crate needed for a name).
pub fn with_suffix(base: &str) -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{base}_{:08x}", hasher.finish() as u32)
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests;
