//! The election's rules, without an API server or a clock: whose turn, when a lease
//! expires, what is written; the handle writers check; the flags' resolution.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use super::decide::{self, Observed, Turn};
use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn held_by(holder: &str, seconds: i32) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(3),
            acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            ..LeaseSpec::default()
        }),
        ..Lease::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("a timestamp")
}

// ---------------------------------------------------------------------------------------
// Whose turn

#[test]
fn no_lease_is_created() {
    assert_eq!(
        decide::turn(None, "me", Duration::ZERO, SECOND),
        Turn::Create
    );
}

#[test]
fn a_lease_held_by_this_process_is_renewed() {
    let lease = held_by("me", 15);
    assert_eq!(
        decide::turn(Some(&lease), "me", 99 * SECOND, SECOND),
        Turn::Renew
    );
}

#[test]
fn a_released_lease_is_taken_at_once() {
    for holder in [None, Some(String::new())] {
        let mut lease = held_by("x", 15);
        lease.spec.as_mut().unwrap().holder_identity = holder;
        assert_eq!(
            decide::turn(Some(&lease), "me", Duration::ZERO, SECOND),
            Turn::Take
        );
    }
    let no_spec = Lease::default();
    assert_eq!(
        decide::turn(Some(&no_spec), "me", Duration::ZERO, SECOND),
        Turn::Take
    );
}

#[test]
fn another_holders_lease_is_waited_for_until_seen_unchanged_for_its_duration() {
    let lease = held_by("other", 15);
    assert_eq!(
        decide::turn(Some(&lease), "me", Duration::ZERO, SECOND),
        Turn::Wait(15 * SECOND)
    );
    assert_eq!(
        decide::turn(Some(&lease), "me", 14 * SECOND, SECOND),
        Turn::Wait(SECOND)
    );
    assert_eq!(
        decide::turn(Some(&lease), "me", 15 * SECOND, SECOND),
        Turn::Take
    );
    assert_eq!(
        decide::turn(Some(&lease), "me", 60 * SECOND, SECOND),
        Turn::Take
    );
}

#[test]
fn a_lease_without_a_duration_uses_ours() {
    for seconds in [None, Some(0), Some(-5)] {
        let mut lease = held_by("other", 15);
        lease.spec.as_mut().unwrap().lease_duration_seconds = seconds;
        assert_eq!(
            decide::turn(Some(&lease), "me", 9 * SECOND, 10 * SECOND),
            Turn::Wait(SECOND)
        );
        assert_eq!(
            decide::turn(Some(&lease), "me", 10 * SECOND, 10 * SECOND),
            Turn::Take
        );
    }
}

// ---------------------------------------------------------------------------------------
// Expiry on the local clock

#[test]
fn the_expiry_clock_restarts_whenever_the_record_changes() {
    let start = Instant::now();
    let mut observed = Observed::default();
    let first = held_by("other", 15);
    assert_eq!(observed.see(first.spec.as_ref(), start), Duration::ZERO);
    assert_eq!(
        observed.see(first.spec.as_ref(), start + 4 * SECOND),
        4 * SECOND
    );
    // The holder renewed: a new record, seen from now on.
    let mut renewed = first.clone();
    renewed.spec.as_mut().unwrap().renew_time = Some(MicroTime(now()));
    assert_eq!(
        observed.see(renewed.spec.as_ref(), start + 5 * SECOND),
        Duration::ZERO
    );
    assert_eq!(
        observed.see(renewed.spec.as_ref(), start + 7 * SECOND),
        2 * SECOND
    );
}

#[test]
fn the_holders_renew_time_is_not_compared_with_our_clock() {
    // Renewed "in 1970" by a node whose clock is wrong: still valid until seen unchanged
    // for its duration here.
    let lease = held_by("other", 15);
    let mut observed = Observed::default();
    let unchanged = observed.see(lease.spec.as_ref(), Instant::now());
    assert_eq!(
        decide::turn(Some(&lease), "me", unchanged, SECOND),
        Turn::Wait(15 * SECOND)
    );
}

#[test]
fn a_leader_steps_down_before_any_follower_can_take_over() {
    let config = LeaseConfig::new("ns", "lease", "me".into());
    let sent = Instant::now();
    let step_down = decide::step_down_at(sent, config.renew_deadline);
    // A follower sees the renewed record no earlier than it was sent, and takes it once
    // it has been unchanged for the lease's duration.
    let follower_takes = sent + Duration::from_secs(decide::lease_seconds(config.duration) as u64);
    assert!(step_down < follower_takes);
    assert_eq!(
        follower_takes - step_down,
        config.duration - config.renew_deadline
    );
}

// ---------------------------------------------------------------------------------------
// What is written

#[test]
fn creating_holds_the_lease_with_no_transition() {
    let spec = decide::claim(None, "me", 15 * SECOND, now());
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));
    assert_eq!(spec.acquire_time, Some(MicroTime(now())));
    assert_eq!(spec.renew_time, Some(MicroTime(now())));
}

#[test]
fn taking_counts_a_transition_and_resets_the_acquire_time() {
    let old = held_by("other", 15);
    let spec = decide::claim(old.spec.as_ref(), "me", 15 * SECOND, now());
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert_eq!(spec.acquire_time, Some(MicroTime(now())));
}

#[test]
fn renewing_keeps_the_acquire_time_and_transitions() {
    let old = held_by("me", 15);
    let spec = decide::claim(old.spec.as_ref(), "me", 15 * SECOND, now());
    assert_eq!(spec.lease_transitions, Some(3));
    assert_eq!(spec.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)));
    assert_eq!(spec.renew_time, Some(MicroTime(now())));
}

#[test]
fn releasing_clears_the_holder_with_a_one_second_duration() {
    let old = held_by("me", 15);
    let spec = decide::release(old.spec.as_ref(), now());
    assert_eq!(decide::holder(Some(&spec)), None);
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(3));
    let released = Lease {
        spec: Some(spec),
        ..Lease::default()
    };
    assert_eq!(
        decide::turn(Some(&released), "next", Duration::ZERO, SECOND),
        Turn::Take
    );
}

#[test]
fn lease_seconds_round_up_to_at_least_one() {
    assert_eq!(decide::lease_seconds(Duration::from_millis(1)), 1);
    assert_eq!(decide::lease_seconds(Duration::from_millis(1500)), 2);
    assert_eq!(decide::lease_seconds(15 * SECOND), 15);
}

#[test]
fn jitter_stretches_by_at_most_a_fifth() {
    assert_eq!(decide::jittered(10 * SECOND, 0.0), 10 * SECOND);
    assert_eq!(decide::jittered(10 * SECOND, 0.5), 11 * SECOND);
    assert!(decide::jittered(10 * SECOND, 7.0) <= 12 * SECOND);
}

// ---------------------------------------------------------------------------------------
// Configuration and flags

#[test]
fn client_go_defaults_are_valid_and_unsafe_timings_are_refused() {
    let config = LeaseConfig::new("ns", "lease", "me".into());
    config.validate().expect("defaults");
    let bad = [
        LeaseConfig {
            renew_deadline: config.duration,
            ..config.clone()
        },
        LeaseConfig {
            renew_interval: config.renew_deadline,
            ..config.clone()
        },
        LeaseConfig {
            retry_period: config.renew_deadline,
            ..config.clone()
        },
        LeaseConfig {
            duration: Duration::from_millis(500),
            renew_deadline: Duration::from_millis(300),
            renew_interval: Duration::from_millis(100),
            retry_period: Duration::from_millis(50),
            ..config.clone()
        },
        LeaseConfig {
            identity: String::new(),
            ..config.clone()
        },
    ];
    for config in bad {
        assert!(
            matches!(config.validate(), Err(Error::Timing(_))),
            "{config:?}"
        );
    }
}

#[test]
fn election_is_on_in_cluster_mode_when_the_namespace_is_known() {
    assert_eq!(
        election_namespace(None, true, Some("sg"))
            .unwrap()
            .as_deref(),
        Some("sg")
    );
    assert_eq!(
        election_namespace(Some(true), true, Some("sg"))
            .unwrap()
            .as_deref(),
        Some("sg")
    );
    assert_eq!(election_namespace(None, true, None).unwrap(), None);
    assert_eq!(election_namespace(None, true, Some("")).unwrap(), None);
    assert_eq!(
        election_namespace(Some(false), true, Some("sg")).unwrap(),
        None
    );
    assert_eq!(election_namespace(None, false, Some("sg")).unwrap(), None);
    assert_eq!(election_namespace(Some(false), false, None).unwrap(), None);
    assert!(election_namespace(Some(true), false, Some("sg")).is_err());
    assert!(election_namespace(Some(true), true, None).is_err());
}

#[test]
fn identities_are_unique_per_process_and_keep_the_pod_name() {
    let a = with_suffix("secretgate-7d9f-abcde");
    let b = with_suffix("secretgate-7d9f-abcde");
    assert!(a.starts_with("secretgate-7d9f-abcde_"), "{a}");
    assert_eq!(a.len(), "secretgate-7d9f-abcde_".len() + 8);
    assert_ne!(a, b);
    assert!(!identity().is_empty());
}

// ---------------------------------------------------------------------------------------
// The handle writers check

#[test]
fn without_election_this_replica_always_leads() {
    let leadership = Leadership::always();
    let copy = leadership.clone();
    drop(leadership);
    assert!(copy.is_leader());
}

#[tokio::test]
async fn handles_follow_the_switch_and_see_each_transition() {
    let metrics = std::sync::Arc::new(
        crate::metrics::Metrics::new(prometheus::Registry::new()).expect("metrics"),
    );
    let (switch, mut leadership) = Switch::new(false);
    let switch = switch.with_metrics(metrics.clone());
    let other = switch.leadership();
    assert!(!leadership.is_leader() && !other.is_leader());
    assert_eq!(metrics.leader.get(), 0);

    assert!(switch.set(true, "acquired"));
    assert!(!switch.set(true, "acquired"), "no transition: not counted");
    assert!(leadership.changed().await);
    assert!(other.is_leader());
    leadership.until_leader().await;
    assert_eq!(metrics.leader.get(), 1);

    switch.set(false, "released");
    assert!(!leadership.changed().await);
    assert_eq!(metrics.leader.get(), 0);
    let counted = |event| metrics.leader_transitions.with_label_values(&[event]).get();
    assert_eq!(
        (counted("acquired"), counted("released"), counted("lost")),
        (1, 1, 0)
    );
    assert!(metrics.render().contains("secretgate_leader 0"));
}

#[tokio::test]
async fn a_stopped_elector_means_not_leader_and_changed_pends() {
    let (switch, mut leadership) = Switch::new(true);
    assert!(leadership.is_leader());
    // Dropped while leading (a panic, an aborted task): writers must stop.
    drop(switch);
    assert!(!leadership.is_leader());
    let waited = tokio::time::timeout(Duration::from_millis(20), leadership.changed()).await;
    assert!(
        waited.is_err(),
        "changed() never resolves once the elector is gone"
    );
}
