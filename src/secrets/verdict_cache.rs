//! A bounded memo of key-check verdicts (TLS key loading and matching, SSH key parsing),
//! keyed by a salted SHA-256 digest of exactly the bytes a verdict depends on.
//!
//! Argo CD, Flux and server-side dry-run send the same Secret again and again; loading an
//! RSA key the way rustls does (ring verifies its consistency) is most of a TLS review.
//! Only checks that read neither the policy nor the clock may be memoised here: the
//! callers still run validity dates, size and algorithm rules on every review.
//!
//! Against a hostile tenant:
//! - the memory is bounded: at most `capacity` entries, the oldest evicted first, so
//!   unique secrets only evict (and each one still pays its full check, as without a cache);
//! - an entry holds a digest and a verdict (a value-free finding), never data or a key;
//! - a verdict cannot be planted for someone else's content: it is computed by the check
//!   from the content whose digest is its key, and another content with the same digest
//!   would be a SHA-256 collision. Parts are length-prefixed, so two different splits of
//!   the same bytes do not digest alike;
//! - the digest is salted with 32 random bytes per process, so digests seen in a memory
//!   dump cannot be tested offline against candidate keys;
//! - inputs larger than [`MAX_DIGESTED`] are checked without the cache, so a megabyte
//!   value does not make hashing the cost (no valid key is that large).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Entries per cache: a cluster's TLS (or SSH) secrets, sent again and again, fit; a flood
/// of unique ones costs at most this many small entries (a few hundred KiB).
pub(super) const CAPACITY: usize = 4096;

/// Bytes above which a check runs without the cache. An RSA-8192 key is under 7 KiB in
/// PEM or OpenSSH form, its certificate's public key about 1 KiB.
pub(super) const MAX_DIGESTED: usize = 16 * 1024;

type Digest = [u8; 32];

/// A memo of one kind of verdict. It lives in a `static` next to the check it serves (a
/// global keeps `validate`'s signature, shared by every secret type, unchanged; the
/// verdicts are pure functions of their input, so sharing them across reviews and
/// policies is sound).
pub(super) struct VerdictCache<V> {
    /// Names the check and the secret type, digested first: two caches never share keys.
    domain: &'static str,
    capacity: usize,
    /// `None` when the system RNG failed: then every check runs, nothing is memoised.
    inner: OnceLock<Option<Inner<V>>>,
}

struct Inner<V> {
    salt: [u8; 32],
    entries: Mutex<Entries<V>>,
}

struct Entries<V> {
    verdicts: HashMap<Digest, V>,
    /// Insertion order, oldest first: eviction is O(1) and needs no per-hit bookkeeping.
    order: VecDeque<Digest>,
    hits: u64,
    misses: u64,
}

impl<V: Clone> VerdictCache<V> {
    /// A cache of at most `capacity` verdicts; 0 disables it (every call runs the check).
    pub(super) const fn new(domain: &'static str, capacity: usize) -> Self {
        Self {
            domain,
            capacity,
            inner: OnceLock::new(),
        }
    }

    /// The verdict of `check` for the input made of `parts`, from the cache when this
    /// input was checked before. `check` must be a pure function of `parts` (and of the
    /// cache's domain): it runs without the lock held.
    pub(super) fn get_or_check(&self, parts: &[&[u8]], check: impl FnOnce() -> V) -> V {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.capacity == 0 || total > MAX_DIGESTED {
            return check();
        }
        let Some(inner) = self.inner() else {
            return check();
        };
        let digest = digest(&inner.salt, self.domain, parts);
        {
            let mut entries = inner.lock();
            if let Some(verdict) = entries.verdicts.get(&digest) {
                let verdict = verdict.clone();
                entries.hits += 1;
                return verdict;
            }
            entries.misses += 1;
        }
        let verdict = check();
        let mut entries = inner.lock();
        // Another review may have inserted the same input meanwhile: the verdict is the
        // same, so keep the one there and its place in the order.
        if !entries.verdicts.contains_key(&digest) {
            if entries.verdicts.len() >= self.capacity
                && let Some(oldest) = entries.order.pop_front()
            {
                entries.verdicts.remove(&oldest);
            }
            entries.verdicts.insert(digest, verdict.clone());
            entries.order.push_back(digest);
        }
        verdict
    }

    fn inner(&self) -> Option<&Inner<V>> {
        self.inner
            .get_or_init(|| {
                let mut salt = [0u8; 32];
                SystemRandom::new().fill(&mut salt).ok()?;
                Some(Inner {
                    salt,
                    entries: Mutex::new(Entries {
                        verdicts: HashMap::new(),
                        order: VecDeque::new(),
                        hits: 0,
                        misses: 0,
                    }),
                })
            })
            .as_ref()
    }

    /// (hits, misses, entries) so far.
    #[cfg(test)]
    pub(super) fn stats(&self) -> (u64, u64, usize) {
        self.inner().map_or((0, 0, 0), |inner| {
            let entries = inner.lock();
            (entries.hits, entries.misses, entries.verdicts.len())
        })
    }

    /// Every stored byte of every entry: the digests, and the verdicts' `Debug` text.
    #[cfg(test)]
    pub(super) fn dump(&self) -> Vec<u8>
    where
        V: std::fmt::Debug,
    {
        let Some(inner) = self.inner() else {
            return Vec::new();
        };
        let entries = inner.lock();
        let mut out = Vec::new();
        for (digest, verdict) in &entries.verdicts {
            out.extend_from_slice(digest);
            out.extend_from_slice(format!("{verdict:?}").as_bytes());
        }
        for digest in &entries.order {
            out.extend_from_slice(digest);
        }
        out
    }
}

impl<V> Inner<V> {
    /// Nothing panics while the lock is held (the check runs outside it), so a poisoned
    /// lock still guards consistent entries.
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SHA-256 of salt, domain and parts, each length-prefixed so the encoding is unambiguous.
fn digest(salt: &[u8; 32], domain: &str, parts: &[&[u8]]) -> Digest {
    let mut ctx = Context::new(&SHA256);
    ctx.update(salt);
    for part in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// `check` that counts its runs and returns the input's length.
    fn counted<'a>(runs: &'a Cell<u32>, len: usize) -> impl FnOnce() -> usize + 'a {
        move || {
            runs.set(runs.get() + 1);
            len
        }
    }

    #[test]
    fn a_repeated_input_is_checked_once() {
        let cache = VerdictCache::new("test", 8);
        let runs = Cell::new(0);
        for _ in 0..3 {
            assert_eq!(cache.get_or_check(&[b"ab", b"c"], counted(&runs, 3)), 3);
        }
        assert_eq!(runs.get(), 1);
        assert_eq!(cache.stats(), (2, 1, 1));
    }

    #[test]
    fn parts_are_not_concatenated() {
        let cache = VerdictCache::new("test", 8);
        let runs = Cell::new(0);
        cache.get_or_check(&[b"ab", b"c"], counted(&runs, 1));
        cache.get_or_check(&[b"a", b"bc"], counted(&runs, 2));
        cache.get_or_check(&[b"abc"], counted(&runs, 3));
        cache.get_or_check(&[b"abc", b""], counted(&runs, 4));
        assert_eq!(runs.get(), 4);
        assert_eq!(cache.get_or_check(&[b"a", b"bc"], || 0), 2);
    }

    #[test]
    fn domains_and_processes_do_not_share_digests() {
        let parts: &[&[u8]] = &[b"same input"];
        let salt = [7u8; 32];
        assert_ne!(digest(&salt, "tls", parts), digest(&salt, "ssh", parts));
        assert_ne!(
            digest(&salt, "tls", parts),
            digest(&[8u8; 32], "tls", parts)
        );
        let (a, b) = (
            VerdictCache::<u8>::new("x", 1),
            VerdictCache::<u8>::new("x", 1),
        );
        let (a, b) = (a.inner().unwrap(), b.inner().unwrap());
        assert_ne!(a.salt, b.salt, "each cache draws its own salt");
    }

    /// 10,000 unique inputs: the cache never holds more than its capacity, keeps the
    /// newest, and evicted inputs are checked again.
    #[test]
    fn the_bound_holds_under_unique_inserts() {
        let cache = VerdictCache::new("test", 256);
        let runs = Cell::new(0);
        for i in 0..10_000u32 {
            cache.get_or_check(&[&i.to_be_bytes()], counted(&runs, i as usize));
            let (_, _, len) = cache.stats();
            assert!(len <= 256, "{len} entries after {i} inserts");
        }
        assert_eq!(runs.get(), 10_000);
        let (hits, misses, len) = cache.stats();
        assert_eq!((hits, misses, len), (0, 10_000, 256));
        // The newest stayed, the oldest went.
        assert_eq!(cache.get_or_check(&[&9_999u32.to_be_bytes()], || 0), 9_999);
        assert_eq!(cache.get_or_check(&[&0u32.to_be_bytes()], || 0), 0);
        assert_eq!(cache.stats().0, 1);
        let entries = cache.inner().unwrap().lock();
        assert_eq!(entries.order.len(), entries.verdicts.len());
    }

    #[test]
    fn the_default_capacity_holds_too() {
        let cache = VerdictCache::new("test", CAPACITY);
        for i in 0..10_000u32 {
            cache.get_or_check(&[&i.to_be_bytes()], || ());
        }
        assert_eq!(cache.stats().2, CAPACITY);
    }

    #[test]
    fn disabled_or_oversized_inputs_bypass_the_cache() {
        let runs = Cell::new(0);
        let off = VerdictCache::new("test", 0);
        off.get_or_check(&[b"x"], counted(&runs, 1));
        off.get_or_check(&[b"x"], counted(&runs, 1));
        assert_eq!(runs.get(), 2);
        assert_eq!(off.stats(), (0, 0, 0));

        let cache = VerdictCache::new("test", 8);
        let big = vec![b'a'; MAX_DIGESTED + 1];
        cache.get_or_check(&[&big], counted(&runs, 1));
        cache.get_or_check(&[&big], counted(&runs, 1));
        assert_eq!(runs.get(), 4);
        assert_eq!(cache.stats(), (0, 0, 0));
    }

    /// The salt is not in the entries, and no window of the input is either.
    #[test]
    fn entries_hold_no_input_bytes() {
        let cache = VerdictCache::new("test", 8);
        let input: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        cache.get_or_check(&[&input], || "verdict");
        let dump = cache.dump();
        assert!(dump.len() >= 64);
        for w in input.windows(8) {
            assert!(!dump.windows(8).any(|d| d == w), "entry holds {w:?}");
        }
        let salt = cache.inner().unwrap().salt;
        assert!(!dump.windows(32).any(|d| d == salt));
    }
}
