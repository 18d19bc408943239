//! A map of namespaced objects (namespace → name → value) that is cheap to copy: the
//! cluster-mode indexes (which secrets exist, service accounts' pull secrets, pull-secret
//! facts) are kept up to date by their watches one event at a time, and every snapshot
//! takes a copy of them. With persistent maps (`rpds`' hash array mapped tries) the copy
//! is O(1) (it shares every node) and an event is O(log n) (it copies one path), so a
//! snapshot's cost does not grow with the cluster: at 50,000 secrets a rebuild used to
//! re-index all of them on every change.

use std::sync::{Arc, Mutex};

use kube::runtime::watcher;
use rpds::HashTrieMapSync;

/// Namespace → name → `V`, persistent (clones share structure).
#[derive(Clone)]
pub struct Namespaced<V> {
    by_namespace: HashTrieMapSync<Arc<str>, HashTrieMapSync<Arc<str>, V>>,
    len: usize,
}

impl<V> Default for Namespaced<V> {
    fn default() -> Self {
        Self {
            by_namespace: HashTrieMapSync::new_sync(),
            len: 0,
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Namespaced<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(ns, name, v)| ((ns, name), v)))
            .finish()
    }
}

impl<V: Clone> Namespaced<V> {
    /// Sets `namespace/name` to `value`.
    pub fn insert(&mut self, namespace: &str, name: &str, value: V) {
        let (key, mut names) = match self.by_namespace.get_key_value(namespace) {
            Some((key, names)) => (key.clone(), names.clone()),
            None => (Arc::from(namespace), HashTrieMapSync::new_sync()),
        };
        if names.get(name).is_none() {
            self.len += 1;
        }
        names.insert_mut(Arc::from(name), value);
        self.by_namespace.insert_mut(key, names);
    }

    /// Forgets `namespace/name`; whether it was there.
    pub fn remove(&mut self, namespace: &str, name: &str) -> bool {
        let Some(mut names) = self.by_namespace.get(namespace).cloned() else {
            return false;
        };
        if !names.remove_mut(name) {
            return false;
        }
        self.len -= 1;
        if names.is_empty() {
            self.by_namespace.remove_mut(namespace);
        } else {
            // The key is there (just read), so this replaces the namespace's map in place.
            self.by_namespace.insert_mut(Arc::from(namespace), names);
        }
        true
    }
}

impl<V> Namespaced<V> {
    pub fn get(&self, namespace: &str, name: &str) -> Option<&V> {
        self.by_namespace.get(namespace)?.get(name)
    }

    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.get(namespace, name).is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry as (namespace, name, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &V)> {
        self.by_namespace
            .iter()
            .flat_map(|(ns, names)| names.iter().map(move |(name, v)| (&**ns, &**name, v)))
    }
}

/// A [`Namespaced`] index kept by one watch: each event is applied as it arrives (what
/// the index keeps of an object is `value_of`'s answer; `None` keeps nothing), and a
/// re-list replaces the index only once it is complete, as kube's reflector store does,
/// so reviews never see a half-listed cluster.
pub struct WatchedIndex<V> {
    state: Mutex<Indexes<V>>,
}

struct Indexes<V> {
    live: Namespaced<V>,
    /// A re-list in progress.
    relisting: Option<Namespaced<V>>,
}

impl<V: Clone> Default for WatchedIndex<V> {
    fn default() -> Self {
        Self {
            state: Mutex::new(Indexes {
                live: Namespaced::default(),
                relisting: None,
            }),
        }
    }
}

impl<V: Clone> WatchedIndex<V> {
    /// Applies one watch event.
    pub fn apply<K: kube::Resource>(
        &self,
        event: &watcher::Event<K>,
        value_of: impl Fn(&K) -> Option<V>,
    ) {
        let key = |object: &K| {
            let m = object.meta();
            Some((m.namespace.clone()?, m.name.clone()?))
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => state.relisting = Some(Namespaced::default()),
            watcher::Event::InitApply(object) => {
                if let (Some((ns, name)), Some(value), Some(buffer)) =
                    (key(object), value_of(object), state.relisting.as_mut())
                {
                    buffer.insert(&ns, &name, value);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = state.relisting.take() {
                    state.live = buffer;
                }
            }
            watcher::Event::Apply(object) => {
                if let Some((ns, name)) = key(object) {
                    match value_of(object) {
                        Some(value) => state.live.insert(&ns, &name, value),
                        None => {
                            state.live.remove(&ns, &name);
                        }
                    }
                }
            }
            watcher::Event::Delete(object) => {
                if let Some((ns, name)) = key(object) {
                    state.live.remove(&ns, &name);
                }
            }
        }
    }

    /// The index now (O(1): shares the live one's structure).
    pub fn current(&self) -> Namespaced<V> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live
            .clone()
    }
}

/// Builds a [`Namespaced`] from (namespace, name, value) entries, for indexes built whole.
impl<V: Clone> FromIterator<(String, String, V)> for Namespaced<V> {
    fn from_iter<I: IntoIterator<Item = (String, String, V)>>(entries: I) -> Self {
        let mut index = Self::default();
        for (ns, name, v) in entries {
            index.insert(&ns, &name, v);
        }
        index
    }
}

#[cfg(test)]
mod tests;
