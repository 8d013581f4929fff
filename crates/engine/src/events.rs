//! Event timelines: one stream per kind (each system event kind, each custom event name,
//! visits), so that a condition reads only the events of its kind.
//!
//! A stream is three columns (slot, timestamp in ms, payload) sorted by slot, so that a
//! whole-account count is one linear pass and one contact's events are a short slice
//! found through a small block index; recent events wait in an append tail (by slot)
//! until it is merged in. Payloads: a campaign code (system events), a lowercased URL
//! code (visits), a property record (custom events).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::dict::{Dict, NONE};

/// Streams shorter than this are scanned on one thread. (Debug builds, i.e. the
/// property tests, split any stream.)
const PARALLEL_EVENTS: usize = if cfg!(debug_assertions) { 2 } else { 500_000 };

/// Entries per block of the block index.
const BLOCK: usize = 64;

/// A multiplicative hash for slot keys (SipHash costs more than the lookup it serves).
#[derive(Default)]
pub struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug, Clone, Copy)]
struct TailEntry {
    slot: u32,
    payload: u32,
    ts: i64,
    next: u32,
}

const NO_NEXT: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct Stream {
    slot: Vec<u32>,
    ts: Vec<i64>,
    payload: Vec<u32>,
    /// The first slot of each block of `BLOCK` entries.
    block_first: Vec<u32>,
    /// Recent events in arrival order, each linked to the slot's next one (`NO_NEXT`
    /// ends a chain): no allocation per slot.
    tail: Vec<TailEntry>,
    /// Slot → (first, last) entry of its chain in `tail`.
    tail_heads: HashMap<u32, (u32, u32), BuildHasherDefault<SlotHasher>>,
    /// The latest timestamp ever added (`i64::MIN` when empty).
    pub max_ts: i64,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            slot: Vec::new(),
            ts: Vec::new(),
            payload: Vec::new(),
            block_first: Vec::new(),
            tail: Vec::new(),
            tail_heads: HashMap::default(),
            max_ts: i64::MIN,
        }
    }
}

impl Stream {
    pub fn len(&self) -> usize {
        self.slot.len() + self.tail.len()
    }

    pub fn push(&mut self, slot: u32, ts: i64, payload: u32) {
        let at = self.tail.len() as u32;
        self.tail.push(TailEntry {
            slot,
            payload,
            ts,
            next: NO_NEXT,
        });
        match self.tail_heads.get_mut(&slot) {
            Some((_, last)) => {
                let prev = std::mem::replace(last, at);
                if let Some(e) = self.tail.get_mut(prev as usize) {
                    e.next = at;
                }
            }
            None => {
                self.tail_heads.insert(slot, (at, at));
            }
        }
        self.max_ts = self.max_ts.max(ts);
        if self.tail.len() > 4096.max(self.slot.len() / 16) {
            self.compact();
        }
    }

    /// Merges the tail into the sorted columns.
    pub fn compact(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let mut tail: Vec<(u32, i64, u32)> = self
            .tail
            .iter()
            .map(|e| (e.slot, e.ts, e.payload))
            .collect();
        self.tail.clear();
        self.tail_heads.clear();
        tail.sort_unstable();
        let n = self.slot.len() + tail.len();
        let (mut slot, mut ts, mut payload) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut i = 0;
        for (s, t, p) in tail {
            while i < self.slot.len() && self.slot[i] <= s {
                slot.push(self.slot[i]);
                ts.push(self.ts[i]);
                payload.push(self.payload[i]);
                i += 1;
            }
            slot.push(s);
            ts.push(t);
            payload.push(p);
        }
        slot.extend_from_slice(&self.slot[i..]);
        ts.extend_from_slice(&self.ts[i..]);
        payload.extend_from_slice(&self.payload[i..]);
        self.slot = slot;
        self.ts = ts;
        self.payload = payload;
        self.block_first = self.slot.iter().step_by(BLOCK).copied().collect();
    }

    /// The range of `slot`'s events in the sorted columns.
    fn base_range(&self, slot: u32) -> std::ops::Range<usize> {
        // The first block whose first slot is >= `slot`; the run may start in the block
        // before it.
        let b = self.block_first.partition_point(|&f| f < slot);
        let mut start = b.saturating_sub(1) * BLOCK;
        let end_limit = ((b + 1) * BLOCK).min(self.slot.len());
        while start < end_limit && self.slot[start] < slot {
            start += 1;
        }
        let mut end = start;
        while end < self.slot.len() && self.slot[end] == slot {
            end += 1;
        }
        start..end
    }

    /// Calls `f(ts, payload)` for each event of `slot`.
    pub fn for_slot(&self, slot: u32, mut f: impl FnMut(i64, u32)) {
        for i in self.base_range(slot) {
            f(self.ts[i], self.payload[i]);
        }
        if let Some(&(first, _)) = self.tail_heads.get(&slot) {
            let mut at = first;
            while let Some(e) = self.tail.get(at as usize) {
                f(e.ts, e.payload);
                at = e.next;
            }
        }
    }

    /// Adds to `counts[slot]` the number of the slot's events with `lo <= ts < hi` that
    /// pass `pass(payload)`. One linear pass; slots past `counts.len()` are skipped.
    /// `CHEAP`: `pass` is cheap enough to run on every event, so that the loop has no
    /// data-dependent branch (a window test mispredicts half the time otherwise).
    pub fn count_into<const CHEAP: bool, P: Fn(u32) -> bool + Sync>(
        &self,
        lo: i64,
        hi: i64,
        pass: P,
        counts: &mut [u32],
        parallel: bool,
    ) {
        let ok = |t: i64, p: u32| {
            let w = (lo <= t) & (t < hi);
            if CHEAP { w & pass(p) } else { w && pass(p) }
        };
        let base = |range: std::ops::Range<usize>, counts: &mut [u32], first: usize| {
            let cols = self.slot[range.clone()]
                .iter()
                .zip(&self.ts[range.clone()])
                .zip(&self.payload[range]);
            for ((&s, &t), &p) in cols {
                if let Some(c) = counts.get_mut((s as usize).wrapping_sub(first)) {
                    *c += u32::from(ok(t, p));
                }
            }
        };
        // Two threads over two halves of the sorted columns, cut between two slots so
        // that each half adds to its own part of `counts`.
        let len = self.slot.len();
        let mut cut = len / 2;
        while cut > 0 && cut < len && self.slot[cut] == self.slot[cut - 1] {
            cut += 1;
        }
        let split = self.slot.get(cut).map(|&s| s as usize);
        match split {
            Some(at) if parallel && len >= PARALLEL_EVENTS && at <= counts.len() && cut > 0 => {
                let (low, high) = counts.split_at_mut(at);
                std::thread::scope(|scope| {
                    scope.spawn(|| base(cut..len, high, at));
                    base(0..cut, low, 0);
                });
            }
            _ => base(0..len, counts, 0),
        }
        for e in &self.tail {
            if let Some(c) = counts.get_mut(e.slot as usize) {
                *c += u32::from(ok(e.ts, e.payload));
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.slot.capacity() * 4
            + self.ts.capacity() * 8
            + self.payload.capacity() * 4
            + self.block_first.capacity() * 4
            + self.tail.capacity() * std::mem::size_of::<TailEntry>()
            + self.tail_heads.capacity() * 13
    }
}

/// A property value as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prop {
    /// A lowercased string's code in the property string dictionary.
    Text(u32),
    Number(f64),
    Boolean(bool),
    /// An array or an object: present, of no type an op reads.
    Other,
}

/// The properties of every custom event: flattened to (path, value) pairs, where the
/// path is the dotted path a rule would write. Null and missing properties are absent;
/// keys that are empty or hold a dot cannot be reached by a rule and are left out.
#[derive(Debug, Default, Clone)]
pub struct Properties {
    pub paths: HashMap<String, u32>,
    pub strings: Dict,
    /// `starts[record]..starts[record + 1]` are the record's pairs.
    starts: Vec<u32>,
    /// `path << 2 | type tag` per pair (0 text, 1 number, 2 boolean, 3 other).
    keys: Vec<u32>,
    /// The value's bits: a string code, an `f64`'s bits, 0/1.
    values: Vec<u64>,
}

fn pack(p: Prop) -> (u32, u64) {
    match p {
        Prop::Text(c) => (0, u64::from(c)),
        Prop::Number(x) => (1, x.to_bits()),
        Prop::Boolean(b) => (2, u64::from(b)),
        Prop::Other => (3, 0),
    }
}

fn unpack(tag: u32, v: u64) -> Prop {
    match tag {
        0 => Prop::Text(v as u32),
        1 => Prop::Number(f64::from_bits(v)),
        2 => Prop::Boolean(v != 0),
        _ => Prop::Other,
    }
}

impl Properties {
    /// Stores one event's properties; returns its record id.
    pub fn add(&mut self, props: &serde_json::Map<String, Value>) -> u32 {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let mut prefix = String::new();
        self.flatten(props, &mut prefix);
        self.starts.push(self.keys.len() as u32);
        (self.starts.len() - 2) as u32
    }

    fn flatten(&mut self, props: &serde_json::Map<String, Value>, prefix: &mut String) {
        for (k, v) in props {
            if k.is_empty() || k.contains('.') {
                continue;
            }
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(k);
            let value = match v {
                Value::Null => None,
                Value::String(s) => Some(Prop::Text(self.strings.intern(&lower(s)))),
                Value::Number(n) => Some(n.as_f64().map_or(Prop::Other, Prop::Number)),
                Value::Bool(b) => Some(Prop::Boolean(*b)),
                Value::Array(_) | Value::Object(_) => Some(Prop::Other),
            };
            if let Some(value) = value {
                let path = match self.paths.get(prefix.as_str()) {
                    Some(&p) => p,
                    None => {
                        let p = self.paths.len() as u32;
                        self.paths.insert(prefix.clone(), p);
                        p
                    }
                };
                let (tag, bits) = pack(value);
                self.keys.push(path << 2 | tag);
                self.values.push(bits);
            }
            if let Value::Object(inner) = v {
                self.flatten(inner, prefix);
            }
            prefix.truncate(len);
        }
    }

    /// The value at `path` in `record`, `None` when missing or null.
    pub fn get(&self, record: u32, path: u32) -> Option<Prop> {
        let r = record as usize;
        let (a, b) = (
            *self.starts.get(r)? as usize,
            *self.starts.get(r + 1)? as usize,
        );
        (a..b)
            .find(|&i| self.keys[i] >> 2 == path)
            .map(|i| unpack(self.keys[i] & 3, self.values[i]))
    }

    pub fn heap_bytes(&self) -> usize {
        self.strings.heap_bytes()
            + self.paths.capacity() * 40
            + self.starts.capacity() * 4
            + self.keys.capacity() * 4
            + self.values.capacity() * 8
    }
}

/// Every stream of an account, with the dictionaries their payloads use.
#[derive(Debug, Default, Clone)]
pub struct Events {
    pub system: [Stream; 4],
    pub custom: HashMap<String, Stream>,
    pub visits: Stream,
    pub campaigns: Dict,
    pub urls: Dict,
    pub properties: Properties,
}

impl Events {
    pub fn new() -> Self {
        Events::default()
    }

    pub fn campaign_code(&mut self, campaign: Option<&str>) -> u32 {
        match campaign {
            Some(c) => self.campaigns.intern(c),
            None => NONE,
        }
    }

    pub fn compact(&mut self) {
        for s in &mut self.system {
            s.compact();
        }
        for s in self.custom.values_mut() {
            s.compact();
        }
        self.visits.compact();
    }

    pub fn len(&self) -> usize {
        self.system.iter().map(Stream::len).sum::<usize>()
            + self.custom.values().map(Stream::len).sum::<usize>()
            + self.visits.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.system.iter().map(Stream::heap_bytes).sum::<usize>()
            + self
                .custom
                .iter()
                .map(|(k, s)| k.capacity() + s.heap_bytes())
                .sum::<usize>()
            + self.visits.heap_bytes()
            + self.campaigns.heap_bytes()
            + self.urls.heap_bytes()
            + self.properties.heap_bytes()
    }
}

/// Unicode lowercase, without allocating when `s` is already lowercase ASCII.
pub fn lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.to_lowercase())
    }
}
