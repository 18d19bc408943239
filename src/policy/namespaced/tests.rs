use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::Event;

use super::*;

fn secret(ns: &str, name: &str, label: Option<&str>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: label.map(|l| [("l".to_owned(), l.to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// What the index keeps: the label, and nothing for unlabelled secrets.
fn label(s: &Secret) -> Option<String> {
    s.metadata.labels.as_ref()?.get("l").cloned()
}

#[test]
fn insert_replace_remove_keep_the_count() {
    let mut index = Namespaced::default();
    index.insert("a", "x", 1);
    index.insert("a", "y", 2);
    index.insert("b", "x", 3);
    index.insert("a", "x", 4);
    assert_eq!(index.len(), 3);
    assert_eq!(index.get("a", "x"), Some(&4));
    assert_eq!(index.get("b", "y"), None);
    assert!(index.remove("a", "x"));
    assert!(!index.remove("a", "x"));
    assert!(!index.remove("c", "x"));
    assert_eq!(index.len(), 2);
    assert!(index.remove("b", "x"));
    assert!(index.remove("a", "y"));
    assert!(index.is_empty());
    assert_eq!(index.iter().count(), 0);
}

#[test]
fn a_copy_does_not_see_later_changes() {
    let mut index = Namespaced::default();
    for i in 0..1000 {
        index.insert(&format!("ns-{}", i % 10), &format!("s-{i}"), i);
    }
    let copy = index.clone();
    index.insert("ns-0", "new", -1);
    index.remove("ns-1", "s-1");
    index.insert("ns-2", "s-2", -2);
    assert_eq!(copy.len(), 1000);
    assert_eq!(copy.get("ns-0", "new"), None);
    assert_eq!(copy.get("ns-1", "s-1"), Some(&1));
    assert_eq!(copy.get("ns-2", "s-2"), Some(&2));
    assert_eq!(index.len(), 1000);
    assert_eq!(index.get("ns-2", "s-2"), Some(&-2));
    let mut all: Vec<_> = copy.iter().map(|(_, _, v)| *v).collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

#[test]
fn watch_events_apply_one_by_one_and_a_relist_replaces_when_done() {
    let index = WatchedIndex::default();
    index.apply(&Event::Init, label);
    index.apply(&Event::InitApply(secret("a", "x", Some("1"))), label);
    index.apply(&Event::InitApply(secret("a", "plain", None)), label);
    assert!(
        index.current().is_empty(),
        "not before the list is complete"
    );
    index.apply(&Event::<Secret>::InitDone, label);
    let listed = index.current();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed.get("a", "x").map(String::as_str), Some("1"));

    index.apply(&Event::Apply(secret("b", "y", Some("2"))), label);
    index.apply(&Event::Apply(secret("a", "x", None)), label);
    let now = index.current();
    assert_eq!(
        now.get("a", "x"),
        None,
        "an update that keeps nothing removes"
    );
    assert_eq!(now.get("b", "y").map(String::as_str), Some("2"));
    assert_eq!(listed.len(), 1, "an earlier copy is unchanged");

    // A re-list: the old index stays in force until it completes, then only what was
    // listed is left.
    index.apply(&Event::Init, label);
    index.apply(&Event::InitApply(secret("c", "z", Some("3"))), label);
    assert_eq!(index.current().len(), 1);
    assert!(index.current().contains("b", "y"));
    index.apply(&Event::<Secret>::InitDone, label);
    let relisted = index.current();
    assert_eq!(relisted.len(), 1);
    assert!(relisted.contains("c", "z"));

    index.apply(&Event::Delete(secret("c", "z", Some("3"))), label);
    assert!(index.current().is_empty());
}
