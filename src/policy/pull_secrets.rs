//! Which registries each pull secret serves, for the pull guarantee: a fact derived from
//! the secret's docker config and kept instead of it.
//!
//! In cluster mode (`serve --pull-secret-registries`) a watcher lists and watches the
//! Secrets the kubelet reads as pull secrets (types `kubernetes.io/dockerconfigjson` and
//! `kubernetes.io/dockercfg`, selected by field selector so no other Secret is sent),
//! reads each one's keyring as the kubelet does and keeps only its registry keys and
//! whether each holds a credential ([`KeyringKey`]). The data is dropped as the event is
//! handled: user names, passwords and `auth` values are never stored. The RBAC is the
//! list/watch on secrets the metadata cache already needs; no new grant.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use tokio::sync::watch as signal;

use super::namespaced::{Namespaced, WatchedIndex};
use crate::registry::lookup::KeyringKey;
use crate::secrets::dockerconfig_keyring;

/// What one pull secret gives the kubelet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullSecretFact {
    /// Its docker config does not decode the way Go's `json.Unmarshal` needs: the kubelet
    /// fails every pull of a pod that names it.
    Unreadable,
    /// Its keyring entries (possibly none).
    Keys(Box<[KeyringKey]>),
}

/// The fact of a Secret, `None` when the kubelet does not read it as a pull secret (another
/// type, or its document missing or empty: `MakeDockerKeyring` skips it).
pub fn fact_of(
    secret_type: Option<&str>,
    data: Option<&BTreeMap<String, ByteString>>,
) -> Option<PullSecretFact> {
    let (config_json, key) = match secret_type? {
        "kubernetes.io/dockerconfigjson" => (true, ".dockerconfigjson"),
        "kubernetes.io/dockercfg" => (false, ".dockercfg"),
        _ => return None,
    };
    let bytes = &data?.get(key)?.0;
    if bytes.is_empty() {
        return None;
    }
    Some(match dockerconfig_keyring(config_json, bytes) {
        None => PullSecretFact::Unreadable,
        Some(entries) => PullSecretFact::Keys(
            entries
                .iter()
                .filter_map(|e| {
                    KeyringKey::parse(&e.key, !e.username.is_empty() || !e.password.is_empty())
                })
                .collect(),
        ),
    })
}

/// The facts of every pull secret, by namespace and name.
#[derive(Clone, Debug, Default)]
pub struct PullSecretIndex {
    /// Whether this server reads pull secrets at all; without it the guarantee cannot be
    /// checked (and pods are told so).
    pub known: bool,
    /// One share per watcher (per pull-secret type; a Secret's type never changes, so a
    /// name is in one share at most); persistent, so taking the index is O(1).
    shares: Vec<Namespaced<Arc<PullSecretFact>>>,
}

impl PullSecretIndex {
    /// An index that reads pull secrets (for policy files and tests).
    pub fn known() -> Self {
        Self {
            known: true,
            ..Self::default()
        }
    }

    pub fn insert(&mut self, namespace: &str, name: &str, fact: PullSecretFact) {
        if self.shares.is_empty() {
            self.shares.push(Namespaced::default());
        }
        self.shares[0].insert(namespace, name, Arc::new(fact));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&PullSecretFact> {
        self.shares
            .iter()
            .find_map(|share| share.get(namespace, name))
            .map(Arc::as_ref)
    }

    pub fn len(&self) -> usize {
        self.shares.iter().map(Namespaced::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cache the pull-secret watchers fill: facts only. One watcher per type, each with
/// its own share, so one watcher's re-list never drops the other's entries.
#[derive(Clone)]
pub struct PullSecretStore {
    shares: Arc<[WatchedIndex<Arc<PullSecretFact>>]>,
    synced: Arc<Mutex<Vec<bool>>>,
    count: signal::Sender<usize>,
}

impl PullSecretStore {
    /// A store for `watchers` watchers.
    pub fn new(watchers: usize) -> Self {
        Self {
            shares: (0..watchers).map(|_| WatchedIndex::default()).collect(),
            synced: Arc::new(Mutex::new(vec![false; watchers])),
            count: signal::Sender::new(0),
        }
    }

    /// Applies one event of watcher `which`, keeping the fact and dropping the Secret.
    pub fn apply(&self, which: usize, event: watcher::Event<Secret>) {
        let Some(share) = self.shares.get(which) else {
            return;
        };
        share.apply(&event, |s: &Secret| {
            fact_of(s.type_.as_deref(), s.data.as_ref()).map(Arc::new)
        });
        if matches!(event, watcher::Event::InitDone) {
            let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
            if !synced[which] {
                synced[which] = true;
                self.count
                    .send_replace(synced.iter().filter(|s| **s).count());
            }
        }
    }

    /// Waits until every watcher has listed once.
    pub async fn wait_until_ready(&self) {
        let watchers = self.shares.len();
        let mut rx = self.count.subscribe();
        // The sender lives in `self`, so this only ends when the count is reached.
        let _ = rx.wait_for(|count| *count >= watchers).await;
    }

    /// The facts now, as the snapshot holds them (O(1)).
    pub fn index(&self) -> PullSecretIndex {
        PullSecretIndex {
            known: true,
            shares: self.shares.iter().map(WatchedIndex::current).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
