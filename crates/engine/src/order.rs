//! External ids and the contacts' order by external id, for member listing.
//!
//! External ids live in one byte arena. The order is a sorted vector of slots plus a
//! small sorted set of recent additions, merged when it grows. Deleted contacts are
//! skipped while listing and dropped at the next merge.

use std::collections::BTreeSet;
use std::ops::Bound;

use roaring::RoaringBitmap;

use crate::bits::Bits;
use crate::chunked::Chunked;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExternalOrder {
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    /// Slot → (start, length) in `bytes`.
    spans: Chunked<(u32, u32)>,
    /// Slots sorted by (external id, slot).
    sorted: Vec<u32>,
    pending: BTreeSet<(Box<str>, u32)>,
}

impl ExternalOrder {
    pub fn ext(&self, slot: u32) -> &str {
        match self.spans.get(slot as usize) {
            Some((a, n)) => {
                std::str::from_utf8(&self.bytes[a as usize..(a + n) as usize]).unwrap_or("")
            }
            None => "",
        }
    }

    fn key(&self, slot: u32) -> (&str, u32) {
        (self.ext(slot), slot)
    }

    pub fn set(&mut self, slot: u32, ext: &str) {
        let known = (slot as usize) < self.spans.len();
        if known {
            if self.ext(slot) == ext {
                return;
            }
            // A new external id for a known contact: take it out of the order.
            let old = self.ext(slot).to_owned();
            if self.pending.remove(&(old.as_str().into(), slot)) {
            } else {
                let pos = self
                    .sorted
                    .partition_point(|&s| self.key(s) < (old.as_str(), slot));
                if self.sorted.get(pos) == Some(&slot) {
                    self.sorted.remove(pos);
                }
            }
        } else {
            self.spans.grow_to(slot as usize + 1, (0, 0));
        }
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(ext.as_bytes());
        self.spans
            .set(slot as usize, (start, ext.len() as u32), (0, 0));
        self.pending.insert((ext.into(), slot));
    }

    /// Forgets a deleted contact's place in the order (lazily: see `compact`).
    pub fn remove(&mut self, slot: u32) {
        let ext = self.ext(slot).to_owned();
        self.pending.remove(&(ext.into(), slot));
    }

    /// Merges the recent additions into the sorted order when they are many.
    pub fn maybe_compact(&mut self, alive: &Bits) {
        if self.pending.len() > 1024.max(self.sorted.len() / 8) {
            self.compact(alive);
        }
    }

    pub fn compact(&mut self, alive: &Bits) {
        let pending = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(self.sorted.len() + pending.len());
        let mut i = 0;
        for (ext, slot) in pending {
            while i < self.sorted.len() && self.key(self.sorted[i]) < (&*ext, slot) {
                if alive.get(self.sorted[i]) {
                    out.push(self.sorted[i]);
                }
                i += 1;
            }
            if alive.get(slot) {
                out.push(slot);
            }
        }
        out.extend(self.sorted[i..].iter().copied().filter(|&s| alive.get(s)));
        self.sorted = out;
    }

    /// Up to `limit` live slots of `set`, by external id, after `after`.
    pub fn page(
        &self,
        set: &RoaringBitmap,
        alive: &Bits,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<u32> {
        let total = (self.sorted.len() + self.pending.len()).max(1) as u64;
        let after_key = |slot: u32| after.is_none_or(|a| self.ext(slot) > a);
        if limit == 0 {
            return Vec::new();
        }
        // Walking the order visits about `limit × total / members` contacts; sorting the
        // members costs about `members`: walk unless the set is very sparse.
        let members = set.len();
        if members.saturating_mul(members) < (limit as u64).saturating_mul(total) {
            // Sparse set: sort its members rather than walk everyone.
            let mut keys: Vec<(&str, u32)> = set
                .iter()
                .filter(|&s| alive.get(s) && after_key(s))
                .map(|s| self.key(s))
                .collect();
            if keys.len() > limit {
                keys.select_nth_unstable(limit);
                keys.truncate(limit);
            }
            keys.sort_unstable();
            return keys.into_iter().map(|(_, s)| s).collect();
        }
        let start = match after {
            None => 0,
            Some(a) => self.sorted.partition_point(|&s| self.ext(s) <= a),
        };
        let mut base = self.sorted[start..].iter().copied().peekable();
        let lower = match after {
            None => Bound::Unbounded,
            Some(a) => Bound::Excluded((Box::<str>::from(a), u32::MAX)),
        };
        let mut recent = self
            .pending
            .range((lower, Bound::Unbounded))
            .map(|(_, s)| *s)
            .peekable();
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit {
            let next = match (base.peek(), recent.peek()) {
                (Some(&b), Some(&r)) => {
                    if self.key(b) < self.key(r) {
                        base.next()
                    } else {
                        recent.next()
                    }
                }
                (Some(_), None) => base.next(),
                (None, Some(_)) => recent.next(),
                (None, None) => None,
            };
            let Some(slot) = next else { break };
            if alive.get(slot) && set.contains(slot) {
                out.push(slot);
            }
        }
        out
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.spans.heap_bytes()
            + self.sorted.capacity() * 4
            + self
                .pending
                .iter()
                .map(|(e, _)| e.len() + 40)
                .sum::<usize>()
    }
}
