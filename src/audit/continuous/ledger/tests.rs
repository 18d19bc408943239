use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::policy::ProjectPolicySpec;
use crate::reports::result::Resource;
use crate::reports::result::{Status, registry_login};

fn key(namespace: &str, name: &str) -> SecretKey {
    SecretKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn result(status: Status, message: &str, seconds: i64) -> ReportResult {
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).expect("time");
    registry_login(
        "p",
        Resource::secret("ns", "s"),
        "ghcr.io",
        status,
        message,
        at,
    )
}

fn entry(version: &str, policy: u64, results: Vec<ReportResult>) -> SecretEntry {
    SecretEntry {
        resource_version: version.to_owned(),
        policy,
        results,
        credentials_due: None,
    }
}

#[test]
fn a_secret_is_due_when_new_changed_governed_anew_on_full_passes_or_for_credentials() {
    let now = Instant::now();
    let mut ledger = Ledger::default();
    let k = key("ns", "s");
    assert_eq!(ledger.due(&k, "1", 7, false, now), Some(Reason::New));
    ledger.set_secret(k.clone(), entry("1", 7, vec![]));
    assert_eq!(ledger.due(&k, "1", 7, false, now), None);
    assert_eq!(ledger.due(&k, "2", 7, false, now), Some(Reason::Changed));
    assert_eq!(
        ledger.due(&k, "1", 8, false, now),
        Some(Reason::PolicyChanged)
    );
    assert_eq!(ledger.due(&k, "1", 7, true, now), Some(Reason::FullPass));
    let mut checked = entry("1", 7, vec![]);
    checked.credentials_due = Some(now + Duration::from_secs(60));
    ledger.set_secret(k.clone(), checked);
    assert_eq!(ledger.due(&k, "1", 7, false, now), None);
    assert_eq!(
        ledger.due(&k, "1", 7, false, now + Duration::from_secs(60)),
        Some(Reason::CredentialsDue)
    );
}

#[test]
fn unchanged_results_keep_their_timestamp_and_touch_nothing() {
    let mut ledger = Ledger::default();
    let k = key("ns", "s");
    ledger.set_secret(
        k.clone(),
        entry("1", 7, vec![result(Status::Fail, "bad", 100)]),
    );
    assert_eq!(ledger.take_touched(), [Some("ns".to_owned())].into());

    // Reviewed again later with the same outcome: first timestamp kept, no write.
    ledger.set_secret(
        k.clone(),
        entry("2", 7, vec![result(Status::Fail, "bad", 200)]),
    );
    assert!(ledger.take_touched().is_empty());
    let kept = &ledger.secret_results(&k).expect("held")[0];
    assert_eq!(kept.timestamp.seconds, 100);

    // A different outcome: new timestamp, report touched.
    ledger.set_secret(
        k.clone(),
        entry("3", 7, vec![result(Status::Pass, "ok", 300)]),
    );
    assert_eq!(ledger.take_touched(), [Some("ns".to_owned())].into());
    assert_eq!(
        ledger.results(&Some("ns".to_owned()))[0].timestamp.seconds,
        300
    );
}

#[test]
fn removing_the_last_secret_empties_its_namespace_report() {
    let mut ledger = Ledger::default();
    ledger.set_secret(
        key("ns", "s"),
        entry("1", 7, vec![result(Status::Pass, "ok", 1)]),
    );
    ledger.take_touched();
    ledger.remove_secret(&key("ns", "s"));
    assert_eq!(ledger.take_touched(), [Some("ns".to_owned())].into());
    assert!(ledger.results(&Some("ns".to_owned())).is_empty());
    assert!(ledger.namespaces().is_empty());
    // Removing what is not held touches nothing.
    ledger.remove_secret(&key("ns", "s"));
    assert!(ledger.take_touched().is_empty());
}

#[test]
fn pods_and_derived_results_replace_the_previous_set_and_touch_what_changed() {
    let mut ledger = Ledger::default();
    ledger.set_pods(
        [
            ("a".to_owned(), vec![result(Status::Warn, "w", 1)]),
            ("b".to_owned(), vec![result(Status::Pass, "ok", 1)]),
        ]
        .into(),
    );
    assert_eq!(ledger.take_touched().len(), 2);
    // b unchanged (later timestamp), a gone, c new.
    ledger.set_pods(
        [
            ("b".to_owned(), vec![result(Status::Pass, "ok", 9)]),
            ("c".to_owned(), vec![result(Status::Fail, "f", 9)]),
        ]
        .into(),
    );
    assert_eq!(
        ledger.take_touched(),
        [Some("a".to_owned()), Some("c".to_owned())].into()
    );
    assert_eq!(
        ledger.results(&Some("b".to_owned()))[0].timestamp.seconds,
        1
    );

    ledger.set_derived([(None, vec![result(Status::Error, "broken policy", 5)])].into());
    assert_eq!(ledger.take_touched(), [None].into());
    ledger.set_derived([(None, vec![])].into());
    assert_eq!(ledger.take_touched(), [None].into());
    assert!(ledger.results(&None).is_empty());
}

#[test]
fn a_policy_fingerprint_follows_name_spec_and_brokenness() {
    let spec = Arc::new(ProjectPolicySpec::default());
    let a = Resolved::new(Arc::from("a"), spec.clone(), None);
    let mut hashes = HashMap::new();
    let base = fingerprint(&a, &mut hashes);
    // Same content behind another Arc: same fingerprint.
    let again = Resolved::new(Arc::from("a"), Arc::new(ProjectPolicySpec::default()), None);
    assert_eq!(fingerprint(&again, &mut HashMap::new()), base);
    let renamed = Resolved::new(Arc::from("b"), spec.clone(), None);
    assert_ne!(fingerprint(&renamed, &mut hashes), base);
    let mut other = ProjectPolicySpec::default();
    other.secrets.tls.warn_within_days = 30;
    let changed = Resolved::new(Arc::from("a"), Arc::new(other), None);
    assert_ne!(fingerprint(&changed, &mut HashMap::new()), base);
    let broken = Resolved::new(Arc::from("a"), spec, Some(Arc::from("problems")));
    assert_ne!(fingerprint(&broken, &mut hashes), base);
}

fn passing(namespace: &str, name: &str, seconds: i64) -> ReportResult {
    let at = time::OffsetDateTime::from_unix_timestamp(seconds).expect("time");
    crate::reports::result::pass(
        "Secret",
        namespace,
        name,
        Some("uid-1"),
        "team-a",
        crate::policy::Mode::Warn,
        at.into(),
    )
}

#[test]
fn a_passing_secret_is_held_compactly_and_given_back_exactly() {
    let mut ledger = Ledger::default();
    let k = key("ns", "s");
    let original = passing("ns", "s", 100);
    ledger.set_secret(k.clone(), entry("1", 7, vec![original.clone()]));
    assert!(matches!(
        ledger.secret(&k).expect("held").findings,
        Findings::Pass { .. }
    ));
    assert_eq!(
        ledger.secret_results(&k).expect("held"),
        std::slice::from_ref(&original)
    );
    assert_eq!(ledger.results(&Some("ns".to_owned())), [original]);
    assert_eq!(ledger.statuses(), [(Status::Pass, "all")]);
    ledger.take_touched();

    // Passing again later: the first timestamp stays, nothing to write.
    ledger.set_secret(k.clone(), entry("2", 7, vec![passing("ns", "s", 200)]));
    assert!(ledger.take_touched().is_empty());
    assert_eq!(
        ledger.secret_results(&k).expect("held")[0]
            .timestamp
            .seconds,
        100
    );

    // A result that only looks like a pass is held as it is.
    let mut odd = passing("ns", "s", 300);
    odd.message = "no finding, but another message".to_owned();
    ledger.set_secret(k.clone(), entry("3", 7, vec![odd.clone()]));
    assert!(matches!(
        ledger.secret(&k).expect("held").findings,
        Findings::Results(_)
    ));
    assert_eq!(ledger.secret_results(&k).expect("held"), [odd]);
    assert_eq!(ledger.take_touched(), [Some("ns".to_owned())].into());
}
