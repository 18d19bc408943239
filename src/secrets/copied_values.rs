//! Finds data values copied into annotations, in time linear in the secret.
//!
//! The naive search (every annotation × every value × every offset) let one Secret with
//! tens of thousands of annotations and values cost a minute of CPU. Here every value
//! (raw and base64, at least `MIN_LEN` bytes) is indexed once by its first 8 bytes; each
//! annotation is scanned once, one hash lookup per byte, and a value is compared in full
//! only where its first 8 bytes occur.
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
    /// Indexes `values` (shorter ones are ignored, and forms longer than `longest`, the
    /// longest text to be searched, which cannot be in it); `haystack_bytes` is the total
    /// size of what will be searched, which sets the budget.
    pub fn new<'v>(
        values: impl Iterator<Item = &'v [u8]>,
        longest: usize,
        haystack_bytes: usize,
    ) -> Self {
        let mut arena = Vec::new();
        let mut spans: Vec<(u32, u32)> = Vec::new();
        let mut add = |arena: &mut Vec<u8>, start: usize| {
            // A request is at most a few MiB, so offsets fit in u32.
            let len = arena.len() - start;
            spans.push((start as u32, len as u32));
        };
        for value in values.filter(|v| (MIN_LEN..=longest).contains(&v.len())) {
            let start = arena.len();
            arena.extend_from_slice(value);
            add(&mut arena, start);
            let encoded = base64::encoded_len(value.len(), true).unwrap_or(usize::MAX);
            if encoded > longest {
                continue;
            }
            let start = arena.len();
            arena.resize(start + encoded, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(value, &mut arena[start..])
                .unwrap_or(0);
            arena.truncate(start + written);
            add(&mut arena, start);
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
        for (i, (prefix, _, _)) in patterns.iter().enumerate() {
            let range = by_prefix.entry(*prefix).or_insert((i as u32, i as u32));
            range.1 = i as u32 + 1;
        }
        let indexed = arena.len();
        let budget = BUDGET_FLOOR
            .saturating_add(BUDGET_PER_BYTE.saturating_mul(indexed.saturating_add(haystack_bytes)));
        Self {
            arena,
            patterns,
            by_prefix,
            budget,
        }
    }

    /// Whether `haystack` contains one of the indexed values.
    pub fn search(&mut self, haystack: &[u8]) -> Search {
        if self.by_prefix.is_empty() || haystack.len() < MIN_LEN {
            return Search::NotFound;
        }
        for start in 0..=haystack.len() - MIN_LEN {
            let Some(&(first, end)) = self.by_prefix.get(&prefix_key(&haystack[start..])) else {
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

/// The first 8 bytes as one number (callers guarantee at least `MIN_LEN` bytes).
fn prefix_key(bytes: &[u8]) -> u64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(values: &[&[u8]], haystack: &[u8]) -> Search {
        CopiedValues::new(values.iter().copied(), haystack.len(), haystack.len()).search(haystack)
    }

    #[test]
    fn finds_raw_and_base64_copies_anywhere() {
        let value: &[u8] = b"PLANTED-s3cr3t";
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        assert_eq!(search(&[value], b"PLANTED-s3cr3t"), Search::Found);
        assert_eq!(search(&[value], b"note: PLANTED-s3cr3t!"), Search::Found);
        assert_eq!(search(&[value], b64.as_bytes()), Search::Found);
        assert_eq!(search(&[value], b"PLANTED-s3cr3"), Search::NotFound);
        assert_eq!(search(&[value], b"PLANTED-s3cr3T"), Search::NotFound);
        assert_eq!(search(&[b"short"], b"short short"), Search::NotFound);
        assert_eq!(search(&[], b"anything at all"), Search::NotFound);
    }

    #[test]
    fn values_sharing_a_prefix_are_each_found() {
        let values: &[&[u8]] = &[b"prefix00-one", b"prefix00-two-longer", b"prefix00"];
        for v in values {
            let haystack = [b"..".as_slice(), v, b".."].concat();
            assert_eq!(search(values, &haystack), Search::Found);
        }
        assert_eq!(search(values, b"prefix0-none"), Search::NotFound);
    }

    #[test]
    fn near_misses_exhaust_the_budget_instead_of_the_cpu() {
        // 8 values of 128 KiB that differ from a 250 KiB run of 'A' only in their last
        // byte: a full search compares ~256 Ki × 8 × 128 Ki bytes.
        let values: Vec<Vec<u8>> = (0..8u8)
            .map(|i| {
                let mut v = vec![b'A'; 128 * 1024];
                *v.last_mut().expect("non-empty") = b'a' + i;
                v
            })
            .collect();
        let haystack = vec![b'A'; 250 * 1024];
        let mut index = CopiedValues::new(
            values.iter().map(Vec::as_slice),
            haystack.len(),
            haystack.len(),
        );
        assert_eq!(index.search(&haystack), Search::Incomplete);
        assert_eq!(index.search(&haystack), Search::Incomplete);
    }

    #[test]
    fn duplicate_values_are_indexed_once() {
        let values = vec![b"same-value-1".as_slice(); 10_000];
        let index = CopiedValues::new(values.into_iter(), 100, 0);
        assert_eq!(index.patterns.len(), 2);
    }
}
