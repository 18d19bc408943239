//! The election's rules as pure functions: whose turn it is after reading the lease, when
//! a lease counts as expired, and what this process writes into it. No I/O and no clock
//! reads (the caller passes the times), so every rule is tested without timing.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// What a candidate does after reading the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// No lease yet: CREATE it, holding it.
    Create,
    /// This process holds it: renew (REPLACE).
    Renew,
    /// Released (no holder) or expired: take it (REPLACE with the `resourceVersion` read).
    Take,
    /// Another replica holds a valid lease, which expires in this long unless renewed.
    Wait(Duration),
}

/// Whose turn it is. `unchanged_for`: how long this process has seen the current record
/// unchanged ([`Observed::see`]); `fallback`: the duration assumed when the lease states
/// none.
pub fn turn(lease: Option<&Lease>, me: &str, unchanged_for: Duration, fallback: Duration) -> Turn {
    let Some(lease) = lease else {
        return Turn::Create;
    };
    let spec = lease.spec.as_ref();
    match holder(spec) {
        None => Turn::Take,
        Some(holder) if holder == me => Turn::Renew,
        Some(_) => match remaining(spec, unchanged_for, fallback) {
            Some(left) => Turn::Wait(left),
            None => Turn::Take,
        },
    }
}

/// The holder named in the lease; an empty name is a released lease.
pub fn holder(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec.and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// How long the current record stays valid, `None` once it has expired: it has been seen
/// unchanged for the duration its holder promised to renew within.
pub fn remaining(
    spec: Option<&LeaseSpec>,
    unchanged_for: Duration,
    fallback: Duration,
) -> Option<Duration> {
    let duration = spec
        .and_then(|s| s.lease_duration_seconds)
        .filter(|s| *s > 0)
        .map_or(fallback, |s| Duration::from_secs(s.unsigned_abs().into()));
    duration.checked_sub(unchanged_for).filter(|d| !d.is_zero())
}

/// When this process first saw the current lease record. The record (holder, times,
/// transitions) is compared, not the `resourceVersion`, as client-go does: the time
/// counts on the local monotonic clock from the first sight of a record, so another
/// machine's clock never enters the expiry decision.
#[derive(Debug, Default)]
pub struct Observed {
    record: Option<LeaseSpec>,
    since: Option<Instant>,
}

impl Observed {
    /// Records a read of `spec` at `now`; returns how long it has been seen unchanged.
    pub fn see(&mut self, spec: Option<&LeaseSpec>, now: Instant) -> Duration {
        let spec = spec.cloned().unwrap_or_default();
        match (&self.record, self.since) {
            (Some(seen), Some(since)) if *seen == spec => now.saturating_duration_since(since),
            _ => {
                self.record = Some(spec);
                self.since = Some(now);
                Duration::ZERO
            }
        }
    }
}

/// The record this process writes to hold the lease, created, taken or renewed: a
/// renewal keeps the acquire time and the transition count, a take counts one more
/// transition.
pub fn claim(
    current: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let renewing = holder(current) == Some(me);
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(lease_seconds(duration)),
        acquire_time: if renewing {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(match (renewing, current) {
            (true, _) | (false, None) => transitions,
            (false, Some(_)) => transitions.saturating_add(1),
        }),
        ..LeaseSpec::default()
    }
}

/// The record a leader writes on shutdown: no holder and a one-second duration, so the
/// next candidate takes it at once (client-go's release).
pub fn release(current: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: current.and_then(|s| s.lease_transitions),
        ..LeaseSpec::default()
    }
}

/// `leaseDurationSeconds`: whole seconds, rounded up (never promising less than the
/// leader's timing), at least one.
pub fn lease_seconds(duration: Duration) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

/// When a leader must stop writing: `renew_deadline` after the start of its last
/// successful renewal. Followers count the lease's duration from *after* that request
/// reached the API server, so this comes first by at least `duration - renew_deadline`.
pub fn step_down_at(last_renewal_started: Instant, renew_deadline: Duration) -> Instant {
    last_renewal_started + renew_deadline
}

/// `period` stretched by up to 20% (`spread` in `[0, 1)`), so replicas that started
/// together do not retry in step.
pub fn jittered(period: Duration, spread: f64) -> Duration {
    period.mul_f64(1.0 + 0.2 * spread.clamp(0.0, 1.0))
}
