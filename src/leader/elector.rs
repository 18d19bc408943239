//! The election loop against the Lease API: try to acquire every retry period, renew
//! while leading, step down when renewals fail past the renew deadline, release on
//! shutdown. The decisions are [`super::decide`]'s; this file only talks to the API
//! server and keeps time.

use std::future::Future;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::decide::{self, Observed, Turn};
use super::{Error, Leadership, LeaseConfig, Result, Switch};
use crate::metrics::Metrics;

/// One candidate for the lease. [`Elector::leadership`] hands out the handles writers
/// check; [`Elector::run`] drives the election until shutdown.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    switch: Switch,
    observed: Observed,
    /// The lease as this process last read or wrote it: the next REPLACE carries its
    /// `resourceVersion`, so it fails (409) if anyone wrote in between.
    last: Option<Lease>,
    /// When the last successful acquisition or renewal was sent: the renew deadline
    /// counts from here.
    renewed_at: Instant,
}

/// Why a leader stopped leading.
#[derive(Debug)]
enum Lost {
    /// The lease names another holder, or is gone.
    Taken(&'static str),
    /// No renewal succeeded before the renew deadline.
    Deadline,
}

impl Elector {
    /// A candidate, not leading yet. Fails on timings that cannot guarantee one leader.
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            switch: Switch::new(false).0,
            observed: Observed::default(),
            last: None,
            renewed_at: Instant::now(),
        })
    }

    /// Keeps `secretgate_leader` and the transition counter.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<Metrics>) -> Self {
        self.switch = self.switch.with_metrics(metrics);
        self
    }

    /// A handle that follows this elector.
    pub fn leadership(&self) -> Leadership {
        self.switch.leadership()
    }

    /// Campaigns, leads, and campaigns again after a loss, until `shutdown` resolves;
    /// then stops writing and releases the lease if it holds it.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let lease = self.config.lease();
        let identity = self.config.identity.clone();
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = self.acquire() => {}
            }
            self.switch.set(true, "acquired");
            let transitions = self.spec_field(|s| s.lease_transitions);
            tracing::info!(%lease, %identity, transitions, "leadership acquired: this replica writes");
            let lost = tokio::select! {
                () = &mut shutdown => None,
                lost = self.hold() => Some(lost),
            };
            self.switch
                .set(false, if lost.is_some() { "lost" } else { "released" });
            match lost {
                Some(Lost::Taken(why)) => {
                    tracing::warn!(%lease, %identity, reason = why, "leadership lost: writes stopped");
                }
                Some(Lost::Deadline) => tracing::warn!(
                    %lease,
                    %identity,
                    deadline = ?self.config.renew_deadline,
                    "leadership lost: the lease could not be renewed in time; writes stopped"
                ),
                None => {
                    self.release().await;
                    return;
                }
            }
        }
    }

    /// Tries every retry period until this process holds the lease.
    async fn acquire(&mut self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read or take the lease; retrying"),
            }
            tokio::time::sleep(decide::jittered(self.config.retry_period, spread())).await;
        }
    }

    /// One round: read the lease, and create, take or renew it when it is this process's
    /// turn. `Ok(false)`: someone else holds it, or won the race (409).
    async fn try_acquire(&mut self) -> Result<bool> {
        let started = Instant::now();
        let current = self.call(self.api.get_opt(&self.config.name)).await?;
        let unchanged_for = self.observed.see(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            started.into_std(),
        );
        let me = &self.config.identity;
        let turn = decide::turn(current.as_ref(), me, unchanged_for, self.config.duration);
        let written = match (turn, current) {
            (Turn::Wait(_), current) => {
                self.last = current;
                return Ok(false);
            }
            (Turn::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.claim(None)),
                };
                self.call(self.api.create(&PostParams::default(), &lease))
                    .await
            }
            (Turn::Take | Turn::Renew, Some(mut lease)) => {
                lease.spec = Some(self.claim(lease.spec.as_ref()));
                self.replace(&lease).await
            }
        };
        match written {
            Ok(lease) => {
                self.last = Some(lease);
                self.renewed_at = started;
                Ok(true)
            }
            // AlreadyExists and Conflict: another candidate wrote first.
            Err(e) if is_conflict(&e) => {
                tracing::debug!(error = %e, "another replica won the lease");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Renews every renew interval; returns when leadership is lost. The renew deadline
    /// is a hard stop: a renewal still in flight then is abandoned.
    async fn hold(&mut self) -> Lost {
        loop {
            tokio::time::sleep(self.config.renew_interval).await;
            let deadline =
                decide::step_down_at(self.renewed_at.into_std(), self.config.renew_deadline);
            match tokio::time::timeout_at(deadline.into(), self.renew()).await {
                Ok(Ok(())) => {}
                Ok(Err(lost)) => return lost,
                Err(_) => return Lost::Deadline,
            }
        }
    }

    /// Renews, retrying failures every retry period (the caller bounds it by the
    /// deadline).
    async fn renew(&mut self) -> Result<(), Lost> {
        loop {
            let started = Instant::now();
            match self.renew_once().await {
                Ok(true) => {
                    self.renewed_at = started;
                    return Ok(());
                }
                // A conflict with this process still the holder: retry with the new version.
                Ok(false) => continue,
                Err(Ok(lost)) => return Err(lost),
                Err(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew the lease; retrying until the renew deadline");
                    tokio::time::sleep(decide::jittered(self.config.retry_period, spread())).await;
                }
            }
        }
    }

    /// One REPLACE of the lease as last seen. `Ok(false)`: 409, but this process still
    /// holds it (something else changed the object); `Err(Ok(_))`: someone else holds it.
    async fn renew_once(&mut self) -> Result<bool, Result<Lost, Error>> {
        let Some(mut lease) = self.last.clone() else {
            return Err(Ok(Lost::Taken("the lease is unknown")));
        };
        lease.spec = Some(self.claim(lease.spec.as_ref()));
        match self.replace(&lease).await {
            Ok(renewed) => {
                self.last = Some(renewed);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => {
                let current = self
                    .call(self.api.get_opt(&self.config.name))
                    .await
                    .map_err(Err)?;
                let holds = current
                    .as_ref()
                    .and_then(|l| decide::holder(l.spec.as_ref()))
                    == Some(self.config.identity.as_str());
                let gone = current.is_none();
                self.last = current;
                match (holds, gone) {
                    (true, _) => Ok(false),
                    (false, true) => Err(Ok(Lost::Taken("the lease was deleted"))),
                    (false, false) => Err(Ok(Lost::Taken("another replica holds the lease"))),
                }
            }
            Err(e) => Err(Err(e)),
        }
    }

    /// Hands the lease over: no holder, one-second duration. Best effort: if it fails,
    /// the others take over when the lease expires.
    async fn release(&mut self) {
        let lease_name = self.config.lease();
        for _ in 0..2 {
            let Some(mut lease) = self.last.clone() else {
                return;
            };
            if decide::holder(lease.spec.as_ref()) != Some(self.config.identity.as_str()) {
                return;
            }
            lease.spec = Some(decide::release(lease.spec.as_ref(), Timestamp::now()));
            match self.replace(&lease).await {
                Ok(released) => {
                    self.last = Some(released);
                    tracing::info!(lease = %lease_name, identity = %self.config.identity, "leadership released");
                    return;
                }
                Err(e) if is_conflict(&e) => {
                    self.last = self
                        .call(self.api.get_opt(&self.config.name))
                        .await
                        .ok()
                        .flatten();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot release the lease; the others take over when it expires");
                    return;
                }
            }
        }
    }

    fn claim(&self, current: Option<&LeaseSpec>) -> LeaseSpec {
        decide::claim(
            current,
            &self.config.identity,
            self.config.duration,
            Timestamp::now(),
        )
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease> {
        self.call(
            self.api
                .replace(&self.config.name, &PostParams::default(), lease),
        )
        .await
    }

    /// One API request, bounded by the renew deadline (the client's own read timeout is
    /// minutes).
    async fn call<T>(&self, request: impl Future<Output = kube::Result<T>>) -> Result<T> {
        let timeout = self.config.renew_deadline;
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(Error::Api {
                lease: self.config.lease(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                lease: self.config.lease(),
                timeout,
            }),
        }
    }

    fn spec_field<T>(&self, field: impl Fn(&LeaseSpec) -> Option<T>) -> Option<T> {
        self.last
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(field)
    }
}

/// 409: the object changed since it was read (Conflict), or was created meanwhile
/// (AlreadyExists).
fn is_conflict(error: &Error) -> bool {
    matches!(error, Error::Api { source: kube::Error::Api(status), .. } if status.code == 409)
}

/// A number in `[0, 1)` from the standard library's randomly seeded hasher.
fn spread() -> f64 {
    use std::hash::BuildHasher as _;
    let bits = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
