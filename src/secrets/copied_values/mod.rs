//! Finds data values copied into annotations, in time linear in the secret.
//!
//! The naive search (every annotation × every value × every offset) let one Secret with
//! tens of thousands of annotations and values cost a minute of CPU. Here every value
//! (raw and base64, at least `MIN_LEN` bytes) is indexed once by its first 8 bytes; each
//! annotation is scanned once, one lookup per byte, and a value is compared in full only
//! where its first 8 bytes occur.
//!
//! Two filters (`filter.rs`) keep the hashing off the common path: a value whose first 8
//! bytes start no window of any annotation cannot be found and is not indexed at all
//! (20,000 annotations against 74,000 values: the index was most of the review), and a
//! window that starts no indexed value is passed over without a hash lookup. Both only
//! skip work whose outcome is known; what is found, and what is compared, is unchanged.
//!
//! Comparisons are bounded by a budget proportional to the secret's size, so a tenant who
//! plants thousands of near-misses (values sharing a prefix that repeats through a long
//! annotation) cannot make the comparisons quadratic. That bound loses nothing a security
//! team relies on: the rule catches honest mistakes (a value pasted into a note); a tenant
//! set on copying a value into an annotation can always encode it differently. When the
//! budget runs out the search stops and says so (`Search::Incomplete`).

use std::collections::HashMap;
use std::hash::RandomState;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use filter::PrefixFilter;

mod filter;

/// Values shorter than this are not searched for: `true` or `80` would match by chance.
pub const MIN_LEN: usize = 8;

/// Bytes compared per byte of input (annotations plus indexed values), plus a floor.
const BUDGET_PER_BYTE: usize = 8;
const BUDGET_FLOOR: usize = 1 << 20;

/// Data values indexed for search: every value and its base64 encoding in one arena,
/// sorted by their first 8 bytes, so indexing a secret of 100,000 values allocates a few
/// buffers, not a few per value.
pub struct CopiedValues {
    /// Raw values and encodings, back to back.
    arena: Vec<u8>,
    /// Patterns as (prefix, start, length) in `arena`, sorted by prefix, duplicates gone.
    patterns: Vec<(u64, u32, u32)>,
    /// Each distinct prefix → the range of `patterns` that starts with it.
    /// Keyed per process (SipHash): the prefixes are the tenant's, and a fixed hash
    /// lets them choose prefixes that all collide.
    by_prefix: HashMap<u64, (u32, u32), RandomState>,
    /// The keys of `by_prefix`, checked first: most windows start no value.
    prefixes: PrefixFilter,
    /// Bytes that comparisons may still read.
    budget: usize,
}

/// The outcome of searching one annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    Found,
    NotFound,
    /// The comparison budget ran out before this annotation was searched completely.
    Incomplete,
}

impl CopiedValues {
    /// Indexes `values` for a search of `haystacks`, the texts `search` will be given
    /// (each of them once). Forms shorter than `MIN_LEN`, or longer than the longest
    /// haystack, cannot be found and are left out; so is every form whose first 8 bytes
    /// start no window of any haystack.
    pub fn new<'v, 'h>(
        values: impl Iterator<Item = &'v [u8]>,
        haystacks: impl Iterator<Item = &'h [u8]> + Clone,
    ) -> Self {
        let (haystack_bytes, longest, windows) =
            haystacks
                .clone()
                .fold((0usize, 0usize, 0usize), |(t, l, w), h| {
                    (
                        t + h.len(),
                        l.max(h.len()),
                        w + h.len().saturating_sub(MIN_LEN - 1),
                    )
                });
        if longest < MIN_LEN {
            return Self::nothing();
        }
        let mut starts = PrefixFilter::with_capacity(windows);
        for window in haystacks.flat_map(|h| h.windows(MIN_LEN)) {
            starts.insert(prefix_key(window));
        }
        let mut arena = Vec::new();
        let mut spans: Vec<(u32, u32)> = Vec::new();
        // Bytes of every form that fits, indexed or filtered out: the budget is the same
        // as if all were indexed.
        let mut fitting = 0usize;
        for value in values.filter(|v| (MIN_LEN..=longest).contains(&v.len())) {
            fitting += value.len();
            if starts.may_contain(prefix_key(value)) {
                // A request is at most a few MiB, so offsets fit in u32.
                spans.push((arena.len() as u32, value.len() as u32));
                arena.extend_from_slice(value);
            }
            let encoded = base64::encoded_len(value.len(), true).unwrap_or(usize::MAX);
            if encoded > longest {
                continue;
            }
            fitting += encoded;
            if !starts.may_contain(base64_head(value)) {
                continue;
            }
            let start = arena.len();
            arena.resize(start + encoded, 0);
            let written = STANDARD
                .encode_slice(value, &mut arena[start..])
                .unwrap_or(0);
            arena.truncate(start + written);
            spans.push((start as u32, written as u32));
        }
        let bytes = |&(start, len): &(u32, u32)| &arena[start as usize..(start + len) as usize];
        let mut patterns: Vec<(u64, u32, u32)> = spans
            .iter()
            .map(|span| (prefix_key(bytes(span)), span.0, span.1))
            .collect();
        // By prefix and length (numbers: no byte comparisons), dropping a pattern that
        // repeats the one before it. Repeats that do not end up side by side stay: they
        // only cost comparisons, which the budget bounds.
        patterns.sort_unstable_by_key(|p| (p.0, p.2));
        let mut unique: Vec<(u64, u32, u32)> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let repeat = unique.last().is_some_and(|q| {
                (q.0, q.2) == (p.0, p.2) && bytes(&(q.1, q.2)) == bytes(&(p.1, p.2))
            });
            if !repeat {
                unique.push(p);
            }
        }
        let patterns = unique;
        let mut by_prefix: HashMap<u64, (u32, u32), RandomState> =
            HashMap::with_capacity_and_hasher(patterns.len(), RandomState::new());
        let mut prefixes = PrefixFilter::with_capacity(patterns.len());
        for (i, (prefix, _, _)) in patterns.iter().enumerate() {
            let range = by_prefix.entry(*prefix).or_insert((i as u32, i as u32));
            range.1 = i as u32 + 1;
            prefixes.insert(*prefix);
        }
        let budget = BUDGET_FLOOR
            .saturating_add(BUDGET_PER_BYTE.saturating_mul(fitting.saturating_add(haystack_bytes)));
        Self {
            arena,
            patterns,
            by_prefix,
            prefixes,
            budget,
        }
    }

    /// An index of nothing: no haystack is long enough to hold a value.
    fn nothing() -> Self {
        Self {
            arena: Vec::new(),
            patterns: Vec::new(),
            by_prefix: HashMap::default(),
            prefixes: PrefixFilter::empty(),
            budget: 0,
        }
    }

    /// Whether `haystack` contains one of the indexed values.
    pub fn search(&mut self, haystack: &[u8]) -> Search {
        if self.by_prefix.is_empty() || haystack.len() < MIN_LEN {
            return Search::NotFound;
        }
        for start in 0..=haystack.len() - MIN_LEN {
            let key = prefix_key(&haystack[start..]);
            if !self.prefixes.may_contain(key) {
                continue;
            }
            let Some(&(first, end)) = self.by_prefix.get(&key) else {
                continue;
            };
            let rest = &haystack[start..];
            // Sorted by length within a prefix: once one is longer than what is left, so
            // are the rest, and those cannot match here.
            for &(_, at, len) in &self.patterns[first as usize..end as usize] {
                let pattern = &self.arena[at as usize..(at + len) as usize];
                if pattern.len() > rest.len() {
                    break;
                }
                if pattern.len() > self.budget {
                    self.budget = 0;
                    return Search::Incomplete;
                }
                self.budget -= pattern.len();
                if rest.starts_with(pattern) {
                    return Search::Found;
                }
            }
        }
        Search::NotFound
    }
}

/// The first 8 characters of `value`'s standard base64 encoding, as `prefix_key` of the
/// encoding would give them: they are the encoding of its first 6 bytes (callers
/// guarantee at least `MIN_LEN`). Done by hand because it runs for every value, most of
/// which are then not encoded at all; `tests.rs` checks it against the encoder.
fn base64_head(value: &[u8]) -> u64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut head = [0u8; 8];
    for (bytes, chars) in value[..6].chunks_exact(3).zip(head.chunks_exact_mut(4)) {
        let group = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for (i, c) in chars.iter_mut().enumerate() {
            *c = ALPHABET[(group >> (18 - 6 * i) & 63) as usize];
        }
    }
    u64::from_le_bytes(head)
}

/// The first 8 bytes as one number (callers guarantee at least `MIN_LEN` bytes).
fn prefix_key(bytes: &[u8]) -> u64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(key)
}

#[cfg(test)]
mod tests;
