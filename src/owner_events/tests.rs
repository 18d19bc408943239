use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::limiter::{Budget, Decision, Key, Limiter, Limits};
use super::*;

fn reference(kind: &str, name: &str, controller: Option<bool>) -> OwnerReference {
    OwnerReference {
        api_version: "example.io/v1".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{name}"),
        controller,
        ..OwnerReference::default()
    }
}

fn meta(references: Vec<OwnerReference>, annotations: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        owner_references: Some(references),
        annotations: Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ObjectMeta::default()
    }
}

#[test]
fn the_controller_reference_is_the_owner_else_the_first() {
    let owner = Owner::of(&meta(
        vec![
            reference("Other", "a", None),
            reference("ExternalSecret", "db", Some(true)),
        ],
        &[],
    ))
    .expect("owner");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ExternalSecret", "db")
    );
    assert_eq!(owner.uid.as_deref(), Some("uid-db"));
    assert!(!owner.look_up_uid);

    let first = Owner::of(&meta(
        vec![
            reference("SealedSecret", "s", Some(false)),
            reference("Other", "b", None),
        ],
        &[],
    ))
    .expect("owner");
    assert_eq!(first.name, "s");
}

#[test]
fn cert_manager_names_its_certificate_by_annotation() {
    let owner = Owner::of(&meta(vec![], &[(CERT_MANAGER_ANNOTATION, "web")])).expect("owner");
    assert_eq!(
        owner,
        Owner {
            api_version: "cert-manager.io/v1".to_owned(),
            kind: "Certificate".to_owned(),
            name: "web".to_owned(),
            uid: None,
            look_up_uid: true,
        }
    );
    // An ownerReference wins over the annotation (cert-manager with owner refs on).
    let owner = Owner::of(&meta(
        vec![reference("Certificate", "by-ref", Some(true))],
        &[(CERT_MANAGER_ANNOTATION, "web")],
    ))
    .expect("owner");
    assert_eq!(owner.name, "by-ref");
}

#[test]
fn no_owner_no_notice_and_oversized_references_are_not_owners() {
    assert_eq!(Owner::of(&ObjectMeta::default()), None);
    assert_eq!(
        Owner::of(&meta(vec![], &[("cert-manager.io/issuer-name", "ca")])),
        None
    );
    assert_eq!(
        Notice::for_denial(&ObjectMeta::default(), "ns", "s", "CREATE", "denied"),
        None
    );
    let long = "x".repeat(254);
    assert_eq!(
        Owner::of(&meta(
            vec![reference("Certificate", &long, Some(true))],
            &[]
        )),
        None
    );
    assert_eq!(
        Owner::of(&meta(vec![reference("Certificate", "", Some(true))], &[])),
        None
    );
}

#[test]
fn the_note_names_the_secret_and_fits_the_api_limit() {
    let m = meta(vec![], &[(CERT_MANAGER_ANNOTATION, "web")]);
    let notice = Notice::for_denial(&m, "team-a", "web-tls", "UPDATE", "secret violates policy")
        .expect("notice");
    assert_eq!(
        notice.note,
        "secretgate denied UPDATE of Secret web-tls: secret violates policy"
    );
    assert_eq!(notice.namespace, "team-a");
    let long = "é".repeat(2000);
    let notice = Notice::for_denial(&m, "team-a", "web-tls", "CREATE", &long).expect("notice");
    assert!(notice.note.len() <= MAX_NOTE_BYTES, "{}", notice.note.len());
    assert!(notice.note.ends_with('…'));
}

#[test]
fn clip_bytes_cuts_on_a_character_boundary() {
    assert_eq!(clip_bytes("short", 10), "short");
    let clipped = clip_bytes("ééééé", 6);
    assert!(clipped.len() <= 6, "{clipped}");
    assert_eq!(clipped, "é…");
}

fn limits() -> Limits {
    Limits {
        interval: Duration::from_secs(60),
        series_window: Duration::from_secs(360),
        capacity: 3,
    }
}

fn key(name: &str) -> Key {
    Key {
        namespace: "ns".to_owned(),
        api_version: "v1".to_owned(),
        kind: "Certificate".to_owned(),
        name: name.to_owned(),
    }
}

#[test]
fn one_write_per_owner_per_interval_then_a_series_with_the_suppressed() {
    let mut limiter = Limiter::new(limits());
    let t0 = Instant::now();
    let a = key("a");
    assert_eq!(limiter.decide(&a, 1, t0), Decision::Create);
    limiter.created(&a, "a.1".to_owned());
    for s in 1..=3 {
        assert_eq!(
            limiter.decide(&a, 1, t0 + Duration::from_secs(s)),
            Decision::Suppress
        );
    }
    // Another owner is not held back.
    assert_eq!(limiter.decide(&key("b"), 1, t0), Decision::Create);
    // Nothing due before the interval has passed.
    assert_eq!(limiter.due(t0 + Duration::from_secs(59)), vec![]);
    // Then the three suppressed join the first occurrence.
    assert_eq!(
        limiter.due(t0 + Duration::from_secs(60)),
        vec![(
            a.clone(),
            Decision::Series {
                event: "a.1".to_owned(),
                count: 4
            }
        )]
    );
    assert_eq!(limiter.due(t0 + Duration::from_secs(61)), vec![]);
    // The next denial after another interval advances the series itself.
    assert_eq!(
        limiter.decide(&a, 1, t0 + Duration::from_secs(121)),
        Decision::Series {
            event: "a.1".to_owned(),
            count: 5
        }
    );
}

#[test]
fn a_new_message_or_an_old_event_starts_a_new_event() {
    let mut limiter = Limiter::new(limits());
    let t0 = Instant::now();
    let a = key("a");
    assert_eq!(limiter.decide(&a, 1, t0), Decision::Create);
    limiter.created(&a, "a.1".to_owned());
    assert_eq!(
        limiter.decide(&a, 2, t0 + Duration::from_secs(61)),
        Decision::Create
    );
    limiter.created(&a, "a.2".to_owned());
    assert_eq!(
        limiter.decide(&a, 2, t0 + Duration::from_secs(61 + 400)),
        Decision::Create
    );
    // A create that failed leaves no Event to continue: the next write creates again.
    assert_eq!(limiter.decide(&key("c"), 1, t0), Decision::Create);
    assert_eq!(
        limiter.decide(&key("c"), 1, t0 + Duration::from_secs(70)),
        Decision::Create
    );
}

#[test]
fn memory_is_bounded_by_capacity_forgetting_the_stalest() {
    let mut limiter = Limiter::new(limits());
    let t0 = Instant::now();
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        limiter.decide(&key(name), 1, t0 + Duration::from_secs(i as u64));
        assert!(limiter.len() <= 3, "{}", limiter.len());
    }
    // "a" was forgotten: it may write again at once; "e" may not.
    assert_eq!(
        limiter.decide(&key("a"), 1, t0 + Duration::from_secs(6)),
        Decision::Create
    );
    assert_eq!(
        limiter.decide(&key("e"), 1, t0 + Duration::from_secs(6)),
        Decision::Suppress
    );
    // Idle owners are forgotten after the series window.
    limiter.due(t0 + Duration::from_secs(3600));
    limiter.due(t0 + Duration::from_secs(3600));
    assert!(limiter.is_empty(), "{limiter:?}");
}

#[test]
fn the_budget_bounds_writes_across_owners() {
    let t0 = Instant::now();
    let mut budget = Budget::new(1.0, 2.0, t0);
    assert!(budget.take(t0));
    assert!(budget.take(t0));
    assert!(!budget.take(t0));
    assert!(budget.take(t0 + Duration::from_secs(1)));
    assert!(!budget.take(t0 + Duration::from_secs(1)));
}

#[test]
fn the_event_regards_the_owner_as_the_api_requires() {
    let notice = Notice {
        namespace: "team-a".to_owned(),
        owner: Owner {
            api_version: "cert-manager.io/v1".to_owned(),
            kind: "Certificate".to_owned(),
            name: "Web_TLS.".to_owned(),
            uid: None,
            look_up_uid: true,
        },
        note: "secretgate denied CREATE of Secret web-tls: x".to_owned(),
    };
    let now = Timestamp::from_second(1_700_000_000).expect("time");
    let event = event(&notice, Some("u-1".to_owned()), "secretgate-abc", now);
    let json = serde_json::to_value(&event).expect("json");
    assert_eq!(json["metadata"]["namespace"], "team-a");
    let name = json["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("web-tls."), "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
        "{name}"
    );
    assert_eq!(
        json["regarding"],
        serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                           "name": "Web_TLS.", "namespace": "team-a", "uid": "u-1"})
    );
    assert_eq!(json["type"], "Warning");
    assert_eq!(json["reason"], REASON);
    assert_eq!(json["action"], ACTION);
    assert_eq!(json["reportingController"], REPORTING_CONTROLLER);
    assert_eq!(json["reportingInstance"], "secretgate-abc");
    assert!(json["eventTime"].is_string());
    assert!(json.get("series").is_none());
}
