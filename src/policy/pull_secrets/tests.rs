use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::*;
use crate::registry::lookup::{Lookup, lookup};

fn secret(name: &str, secret_type: &str, key: &str, doc: serde_json::Value) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("team-a".to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(secret_type.to_owned()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(serde_json::to_vec(&doc).expect("json")),
        )])),
        ..Secret::default()
    }
}

fn regcred(name: &str, registry: &str) -> Secret {
    secret(
        name,
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        json!({"auths": {registry: {"username": "robot", "password": "pw"}}}),
    )
}

fn serves(index: &PullSecretIndex, name: &str, image: &str) -> bool {
    match index.get("team-a", name) {
        Some(PullSecretFact::Keys(keys)) => {
            let keys: Vec<&KeyringKey> = keys.iter().collect();
            lookup(&keys, image) == Lookup::Credentials
        }
        _ => false,
    }
}

#[test]
fn facts_follow_the_kubelet_reading_of_each_type() {
    let json = regcred("a", "ghcr.io");
    let fact = fact_of(json.type_.as_deref(), json.data.as_ref());
    assert!(
        matches!(fact, Some(PullSecretFact::Keys(ref k)) if k.len() == 1),
        "{fact:?}"
    );
    // The right document under the wrong type is not read by the kubelet.
    assert_eq!(fact_of(Some("Opaque"), json.data.as_ref()), None);
    assert_eq!(
        fact_of(Some("kubernetes.io/dockercfg"), json.data.as_ref()),
        None
    );
    let cfg = secret(
        "b",
        "kubernetes.io/dockercfg",
        ".dockercfg",
        json!({"quay.io": {"username": "u", "password": "p"}}),
    );
    assert!(matches!(
        fact_of(cfg.type_.as_deref(), cfg.data.as_ref()),
        Some(PullSecretFact::Keys(_))
    ));
    let empty = BTreeMap::from([(".dockerconfigjson".to_owned(), ByteString(Vec::new()))]);
    assert_eq!(
        fact_of(Some("kubernetes.io/dockerconfigjson"), Some(&empty)),
        None
    );
    let broken = BTreeMap::from([(".dockerconfigjson".to_owned(), ByteString(b"{".to_vec()))]);
    assert_eq!(
        fact_of(Some("kubernetes.io/dockerconfigjson"), Some(&broken)),
        Some(PullSecretFact::Unreadable)
    );
}

#[test]
fn the_store_follows_lists_and_watch_events_per_watcher() {
    let store = PullSecretStore::new(2);
    store.apply(0, watcher::Event::Init);
    store.apply(0, watcher::Event::InitApply(regcred("a", "ghcr.io")));
    store.apply(1, watcher::Event::Init);
    store.apply(1, watcher::Event::InitDone);
    // Not swapped in before InitDone.
    assert!(store.index().is_empty());
    store.apply(0, watcher::Event::InitDone);
    let index = store.index();
    assert!(index.known);
    assert!(serves(&index, "a", "ghcr.io/team-a/app"));
    store.apply(0, watcher::Event::Apply(regcred("a", "quay.io")));
    store.apply(0, watcher::Event::Apply(regcred("b", "ghcr.io")));
    let index = store.index();
    assert!(!serves(&index, "a", "ghcr.io/team-a/app"));
    assert!(serves(&index, "a", "quay.io/team-a/app"));
    assert!(serves(&index, "b", "ghcr.io/x"));
    store.apply(0, watcher::Event::Delete(regcred("b", "ghcr.io")));
    // A re-list of the other watcher keeps this one's entries.
    store.apply(1, watcher::Event::Init);
    store.apply(1, watcher::Event::InitDone);
    let index = store.index();
    assert_eq!(index.len(), 1);
    assert!(serves(&index, "a", "quay.io/team-a/app"));
    // A re-list replaces what this watcher had.
    store.apply(0, watcher::Event::Init);
    store.apply(0, watcher::Event::InitApply(regcred("c", "ghcr.io")));
    store.apply(0, watcher::Event::InitDone);
    let index = store.index();
    assert_eq!(index.len(), 1);
    assert!(serves(&index, "c", "ghcr.io/x"));
}

#[tokio::test]
async fn ready_once_every_watcher_listed() {
    let store = PullSecretStore::new(2);
    store.apply(0, watcher::Event::Init);
    store.apply(0, watcher::Event::InitDone);
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        store.wait_until_ready(),
    )
    .await;
    assert!(waiting.is_err(), "ready before the second watcher listed");
    store.apply(1, watcher::Event::Init);
    store.apply(1, watcher::Event::InitDone);
    tokio::time::timeout(std::time::Duration::from_secs(1), store.wait_until_ready())
        .await
        .expect("ready");
}

#[test]
fn the_store_keeps_no_credential() {
    let store = PullSecretStore::new(1);
    store.apply(0, watcher::Event::Apply(regcred("a", "ghcr.io")));
    let kept = format!("{:?}", store.index());
    assert!(
        !kept.contains("robot") && !kept.contains("\"pw\""),
        "{kept}"
    );
}
