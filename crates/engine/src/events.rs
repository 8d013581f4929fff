//! Event timelines: one stream per kind (each system event kind, each custom event name,
//! visits), so that a condition reads only the events of its kind.
//!
//! A stream is three columns (slot, timestamp in ms, payload) sorted by slot, so that a
//! whole-account count is one linear pass and one contact's events are a short slice
//! found through a small block index; recent events wait in an append tail (by slot)
//! until it is merged in. Payloads: a campaign code (system events), a lowercased URL
//! code (visits), a property record (custom events).

use std::collections::HashMap;

use serde_json::Value;

use crate::dict::{Dict, NONE};

/// Entries per block of the block index.
const BLOCK: usize = 64;

#[derive(Debug, Default, Clone)]
pub struct Stream {
    slot: Vec<u32>,
    ts: Vec<i64>,
    payload: Vec<u32>,
    /// The first slot of each block of `BLOCK` entries.
    block_first: Vec<u32>,
    tail: HashMap<u32, Vec<(i64, u32)>>,
    tail_len: usize,
    /// The latest timestamp ever added (`i64::MIN` when empty).
    pub max_ts: i64,
}

impl Stream {
    pub fn new() -> Self {
        Stream {
            max_ts: i64::MIN,
            ..Stream::default()
        }
    }

    pub fn len(&self) -> usize {
        self.slot.len() + self.tail_len
    }

    pub fn push(&mut self, slot: u32, ts: i64, payload: u32) {
        self.tail.entry(slot).or_default().push((ts, payload));
        self.tail_len += 1;
        self.max_ts = self.max_ts.max(ts);
        if self.tail_len > 4096.max(self.slot.len() / 16) {
            self.compact();
        }
    }

    /// Merges the tail into the sorted columns.
    pub fn compact(&mut self) {
        if self.tail_len == 0 {
            return;
        }
        let mut tail: Vec<(u32, i64, u32)> = Vec::with_capacity(self.tail_len);
        for (slot, evs) in self.tail.drain() {
            tail.extend(evs.into_iter().map(|(t, p)| (slot, t, p)));
        }
        self.tail_len = 0;
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
        if let Some(t) = self.tail.get(&slot) {
            for &(ts, p) in t {
                f(ts, p);
            }
        }
    }

    /// Counts, per slot, the events with `lo <= ts < hi` that pass `pass(payload)`, and
    /// calls `set(slot, count)`. A slot may be reported more than once: the last report
    /// is its count. Slots never reported have no matching event.
    pub fn count_all<P: Fn(u32) -> bool, S: FnMut(u32, u32)>(
        &self,
        lo: i64,
        hi: i64,
        pass: P,
        mut set: S,
    ) {
        let n = self.slot.len();
        let mut i = 0;
        while i < n {
            let s = self.slot[i];
            let mut c = 0u32;
            while i < n && self.slot[i] == s {
                let t = self.ts[i];
                if lo <= t && t < hi && pass(self.payload[i]) {
                    c += 1;
                }
                i += 1;
            }
            if c > 0 {
                set(s, c);
            }
        }
        for &s in self.tail.keys() {
            let mut c = 0u32;
            self.for_slot(s, |t, p| {
                if lo <= t && t < hi && pass(p) {
                    c += 1;
                }
            });
            set(s, c);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.slot.capacity() * 4
            + self.ts.capacity() * 8
            + self.payload.capacity() * 4
            + self.block_first.capacity() * 4
            + self.tail.capacity() * 40
            + self.tail.values().map(|v| v.capacity() * 16).sum::<usize>()
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
    keys: Vec<u32>,
    values: Vec<Prop>,
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
                Value::String(s) => Some(Prop::Text(self.strings.intern(&s.to_lowercase()))),
                Value::Number(n) => Some(n.as_f64().map_or(Prop::Other, Prop::Number)),
                Value::Bool(b) => Some(Prop::Boolean(*b)),
                Value::Array(_) | Value::Object(_) => Some(Prop::Other),
            };
            if let Some(value) = value {
                let next = self.paths.len() as u32;
                let path = *self.paths.entry(prefix.clone()).or_insert(next);
                self.keys.push(path);
                self.values.push(value);
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
            .find(|&i| self.keys[i] == path)
            .map(|i| self.values[i])
    }

    pub fn heap_bytes(&self) -> usize {
        self.strings.heap_bytes()
            + self.paths.capacity() * 40
            + self.starts.capacity() * 4
            + self.keys.capacity() * 4
            + self.values.capacity() * std::mem::size_of::<Prop>()
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
        Events {
            system: [Stream::new(), Stream::new(), Stream::new(), Stream::new()],
            visits: Stream::new(),
            ..Events::default()
        }
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
