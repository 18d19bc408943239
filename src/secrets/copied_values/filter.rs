//! A one-hash Bloom filter over 8-byte prefixes: "certainly not in the set" without
//! hashing through SipHash, which cost most of an index of 74,000 values.
//!
//! A slot is picked by multiply-shift (the top bits of `key × a`, `a` a random odd number
//! drawn per filter): for any two distinct keys the chance that they share a slot is at
//! most 2 / slots, whatever the keys, as long as `a` is unknown. A tenant who still made
//! every key pass would only send the search back to the exact SipHash lookups the filter
//! sits in front of: the filter is a shortcut, never the answer.

use std::hash::{BuildHasher, RandomState};

/// Slots per key: about one key in eight that is not in the set passes.
const SLOTS_PER_KEY: usize = 8;
/// At most 2 MiB of bits, whatever the input claims (more keys only pass more often).
const MAX_SLOTS: usize = 1 << 24;

pub struct PrefixFilter {
    words: Vec<u64>,
    /// 64 − log2(slots): the product's top bits are the slot.
    shift: u32,
    multiplier: u64,
}

impl PrefixFilter {
    /// A filter that holds nothing, and allocates nothing.
    pub fn empty() -> Self {
        Self {
            words: Vec::new(),
            shift: 64,
            multiplier: 1,
        }
    }

    /// A filter sized for about `keys` keys.
    pub fn with_capacity(keys: usize) -> Self {
        let slots = keys
            .saturating_mul(SLOTS_PER_KEY)
            .clamp(64, MAX_SLOTS)
            .next_power_of_two();
        Self {
            words: vec![0; slots / 64],
            shift: 64 - slots.trailing_zeros(),
            // Keyed per filter: RandomState's keys are random per thread and change on
            // every `new`, so the multiplier is not something a tenant can know.
            multiplier: RandomState::new().hash_one(0x5ec2_e79a_u64) | 1,
        }
    }

    pub fn insert(&mut self, key: u64) {
        let slot = self.slot(key);
        self.words[slot / 64] |= 1 << (slot % 64);
    }

    /// False only if `key` was never inserted.
    pub fn may_contain(&self, key: u64) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let slot = self.slot(key);
        self.words[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn slot(&self, key: u64) -> usize {
        // `shift` is at least 40 (at most 2^24 slots), so the slot fits in usize.
        (key.wrapping_mul(self.multiplier) >> self.shift) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_inserted_and_rejects_most_of_the_rest() {
        let mut filter = PrefixFilter::with_capacity(10_000);
        for key in 0..10_000u64 {
            filter.insert(key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        for key in 0..10_000u64 {
            assert!(filter.may_contain(key.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        }
        // Sequential keys: what a tenant might try first to make everything pass.
        let passed = (1u64 << 40..(1 << 40) + 100_000)
            .filter(|&k| filter.may_contain(k))
            .count();
        assert!(passed < 25_000, "{passed} of 100,000 passed");
    }

    #[test]
    fn the_empty_filter_holds_nothing() {
        assert!(!PrefixFilter::empty().may_contain(0));
        assert!(!PrefixFilter::with_capacity(0).may_contain(0));
    }
}
