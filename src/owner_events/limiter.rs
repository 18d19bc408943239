//! One Event write per owner per interval, in bounded memory; pure (the caller passes the
//! time), so it is tested without a clock.
//!
//! The first denial for an owner creates an Event. Denials within the interval after a
//! write are suppressed and counted (`pending`); once the interval has passed they are
//! folded into the Event's `series.count` (one PATCH, by [`Limiter::due`] or the next
//! denial), as client-go's event recorder aggregates. A denial with another message
//! than the Event's starts a new Event (the note of an Event cannot change). An Event
//! older than `series_window` is not continued: a new one is created.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the limiter allows.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// At most one write per owner within this.
    pub interval: Duration,
    /// An Event is continued (series) for this long after its last write.
    pub series_window: Duration,
    /// Owners remembered at most; the stalest is forgotten first.
    pub capacity: usize,
}

/// Which owner: the Event's namespace and the owner's reference (its uid left out, so a
/// recreated owner is limited as the old one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub namespace: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// What to do with a denial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create a new Event (then report its name with [`Limiter::created`]).
    Create,
    /// Advance the series of Event `event` to `count` occurrences.
    Series { event: String, count: i32 },
    /// Written too recently: counted into the next series write.
    Suppress,
}

#[derive(Debug)]
struct Entry {
    last_write: Instant,
    /// Hash of the note of the current Event.
    note: u64,
    /// The Event written, once its create succeeded, and the occurrences it records.
    event: Option<(String, i32)>,
    /// Denials suppressed since the last write.
    pending: i32,
}

#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    entries: HashMap<Key, Entry>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
        }
    }

    /// Owners remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decides about one denial for `key` whose note hashes to `note`, at `now`. A write
    /// it allows counts as done: if it fails, the owner still waits the interval.
    pub fn decide(&mut self, key: &Key, note: u64, now: Instant) -> Decision {
        let interval = self.limits.interval;
        let window = self.limits.series_window;
        let Some(entry) = self.entries.get_mut(key) else {
            self.make_room(now);
            let entry = Entry {
                last_write: now,
                note,
                event: None,
                pending: 0,
            };
            self.entries.insert(key.clone(), entry);
            return Decision::Create;
        };
        let since = now.saturating_duration_since(entry.last_write);
        if since < interval {
            entry.pending = entry.pending.saturating_add(1);
            return Decision::Suppress;
        }
        entry.last_write = now;
        let pending = std::mem::take(&mut entry.pending);
        match &mut entry.event {
            Some((name, count)) if entry.note == note && since < window => {
                *count = count.saturating_add(pending).saturating_add(1);
                Decision::Series {
                    event: name.clone(),
                    count: *count,
                }
            }
            _ => {
                entry.note = note;
                entry.event = None;
                Decision::Create
            }
        }
    }

    /// The create `decide` asked for succeeded: Event `name` records one occurrence.
    pub fn created(&mut self, key: &Key, name: String) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.event = Some((name, 1));
        }
    }

    /// The Event of `key` is gone (expired, deleted): the next write creates one.
    pub fn forget_event(&mut self, key: &Key) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.event = None;
        }
    }

    /// Series writes due at `now`: owners with suppressed denials whose interval has
    /// passed, each marked written. Also forgets owners idle past the series window.
    pub fn due(&mut self, now: Instant) -> Vec<(Key, Decision)> {
        let interval = self.limits.interval;
        let window = self.limits.series_window;
        self.entries
            .retain(|_, e| e.pending > 0 || now.saturating_duration_since(e.last_write) < window);
        let mut due = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.pending == 0 || now.saturating_duration_since(entry.last_write) < interval {
                continue;
            }
            let pending = std::mem::take(&mut entry.pending);
            if let Some((name, count)) = &mut entry.event {
                entry.last_write = now;
                *count = count.saturating_add(pending);
                due.push((
                    key.clone(),
                    Decision::Series {
                        event: name.clone(),
                        count: *count,
                    },
                ));
            }
        }
        due
    }

    /// Before a new owner is added at capacity: forget those idle past the series
    /// window, and if none are, the one written longest ago.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.limits.capacity.max(1) {
            return;
        }
        let window = self.limits.series_window;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_write) < window);
        if self.entries.len() < self.limits.capacity.max(1) {
            return;
        }
        let stalest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_write)
            .map(|(k, _)| k.clone());
        if let Some(key) = stalest {
            self.entries.remove(&key);
        }
    }
}

/// Writes per second across all owners: a token bucket.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Budget {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one write from the budget, if there is one left at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
