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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use tokio::sync::watch as signal;

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
    by_namespace: HashMap<String, HashMap<String, Arc<PullSecretFact>>>,
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
        self.by_namespace
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned(), Arc::new(fact));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&PullSecretFact> {
        self.by_namespace
            .get(namespace)
            .and_then(|n| n.get(name))
            .map(Arc::as_ref)
    }

    pub fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cache the pull-secret watchers fill: facts only. One watcher per type, each with
/// its own share, so one watcher's re-list never drops the other's entries.
#[derive(Clone)]
pub struct PullSecretStore {
    state: Arc<Mutex<State>>,
    synced: signal::Sender<usize>,
}

/// One watcher's facts by (namespace, name).
type Facts = HashMap<(String, String), Arc<PullSecretFact>>;

#[derive(Default)]
struct State {
    /// Per watcher: its facts.
    live: Vec<Facts>,
    /// Per watcher: a re-list in progress.
    relisting: Vec<Option<Facts>>,
    synced: Vec<bool>,
}

impl PullSecretStore {
    /// A store for `watchers` watchers.
    pub fn new(watchers: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                live: vec![HashMap::new(); watchers],
                relisting: vec![None; watchers],
                synced: vec![false; watchers],
            })),
            synced: signal::Sender::new(0),
        }
    }

    /// Applies one event of watcher `which`, keeping the fact and dropping the Secret.
    pub fn apply(&self, which: usize, event: watcher::Event<Secret>) {
        let key_fact = |s: &Secret| {
            let key = (s.metadata.namespace.clone()?, s.metadata.name.clone()?);
            Some((key, fact_of(s.type_.as_deref(), s.data.as_ref())))
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => state.relisting[which] = Some(HashMap::new()),
            watcher::Event::InitApply(secret) => {
                if let (Some((key, Some(fact))), Some(buffer)) =
                    (key_fact(&secret), state.relisting[which].as_mut())
                {
                    buffer.insert(key, Arc::new(fact));
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = state.relisting[which].take() {
                    state.live[which] = buffer;
                }
                if !state.synced[which] {
                    state.synced[which] = true;
                    let count = state.synced.iter().filter(|s| **s).count();
                    self.synced.send_replace(count);
                }
            }
            watcher::Event::Apply(secret) => match key_fact(&secret) {
                Some((key, Some(fact))) => {
                    state.live[which].insert(key, Arc::new(fact));
                }
                Some((key, None)) => {
                    state.live[which].remove(&key);
                }
                None => {}
            },
            watcher::Event::Delete(secret) => {
                if let Some((key, _)) = key_fact(&secret) {
                    state.live[which].remove(&key);
                }
            }
        }
    }

    /// Waits until every watcher has listed once.
    pub async fn wait_until_ready(&self) {
        let watchers = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live
            .len();
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`, so this only ends when the count is reached.
        let _ = rx.wait_for(|count| *count >= watchers).await;
    }

    /// The facts now, as the snapshot holds them.
    pub fn index(&self) -> PullSecretIndex {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut index = PullSecretIndex::known();
        for ((namespace, name), fact) in state.live.iter().flatten() {
            index
                .by_namespace
                .entry(namespace.clone())
                .or_default()
                .insert(name.clone(), fact.clone());
        }
        index
    }
}

#[cfg(test)]
mod tests;
