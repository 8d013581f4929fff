//! Event timelines: one stream per kind (each system event kind, each custom event name,
//! visits), so that a condition reads only the events of its kind.
//!
//! A stream is a few time runs, each three columns (slot, timestamp in ms as a 32-bit
//! offset from the run's earliest, payload) sorted by slot, so that a whole-account count
//! is one linear pass over the runs its window overlaps and one contact's events are a
//! short slice found through a small group index (slot / 64 → first entry); recent
//! events wait in an append tail (by slot) until it is merged, linearly, into the runs
//! (re-cut by time once a day of new timestamps). Dense streams also keep a saturating
//! per-slot total, so that all-time counts need no scan. Payloads: a campaign code
//! (system events), a lowercased URL code (visits), a property record (custom events).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::catalog::PropTally;
use crate::chunked::{BLOCK, Chunked};
use crate::dict::{Dict, NONE};

/// Streams shorter than this are scanned on one thread. (Debug builds, i.e. the
/// property tests, split any stream.)
const PARALLEL_EVENTS: usize = if cfg!(debug_assertions) { 2 } else { 500_000 };

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

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct TailEntry {
    slot: u32,
    payload: u32,
    ts: i64,
    next: u32,
}

const NO_NEXT: u32 = u32::MAX;

/// A run's timestamps (ms): offsets from its earliest one when its span fits 32 bits
/// (4 bytes an event), else whole.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Times {
    Narrow { base: i64, off: Chunked<u32> },
    Wide(Chunked<i64>),
}

impl Default for Times {
    fn default() -> Self {
        Times::Wide(Chunked::new())
    }
}

impl Times {
    /// Empty columns for timestamps from `min` to `max`.
    fn for_range(min: i64, max: i64) -> Times {
        if max
            .checked_sub(min)
            .is_some_and(|d| (0..=i64::from(u32::MAX)).contains(&d))
        {
            Times::Narrow {
                base: min,
                off: Chunked::new(),
            }
        } else {
            Times::Wide(Chunked::new())
        }
    }

    fn push(&mut self, t: i64) {
        match self {
            Times::Narrow { base, off } => off.push((t - *base) as u32),
            Times::Wide(ts) => ts.push(t),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> i64 {
        match self {
            Times::Narrow { base, off } => base + i64::from(off.get(i).unwrap_or(0)),
            Times::Wide(ts) => ts.get(i).unwrap_or(0),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Times::Narrow { off, .. } => off.heap_bytes(),
            Times::Wide(ts) => ts.heap_bytes(),
        }
    }
}

/// Slots per group of the group index.
const GROUP_SHIFT: u32 = 6;

/// One time range of a stream's merged events, sorted by (slot, timestamp, payload).
/// Its columns are [`Chunked`]: a merge writes a new run beside the old one, and blocks
/// of one size are what the allocator reuses without keeping holes resident.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Run {
    slot: Chunked<u32>,
    ts: Times,
    payload: Chunked<u32>,
    /// `group_start[g]`: the first entry whose slot is at least `g << GROUP_SHIFT` (one
    /// more group than the last slot's, ending at the run's length).
    group_start: Vec<u32>,
    /// The run's earliest and latest timestamps.
    min_ts: i64,
    max_ts: i64,
}

impl Run {
    /// An empty run about to receive, in order, entries with timestamps from `min` to
    /// `max` (`Run::push`, then `Run::finish`).
    fn start(min: i64, max: i64) -> Run {
        Run {
            ts: Times::for_range(min, max),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ..Run::default()
        }
    }

    fn push(&mut self, (s, t, p): (u32, i64, u32)) {
        let g = (s >> GROUP_SHIFT) as usize;
        while self.group_start.len() <= g {
            self.group_start.push(self.slot.len() as u32);
        }
        self.slot.push(s);
        self.ts.push(t);
        self.payload.push(p);
        self.min_ts = self.min_ts.min(t);
        self.max_ts = self.max_ts.max(t);
    }

    fn finish(mut self) -> Run {
        if !self.slot.is_empty() {
            self.group_start.push(self.slot.len() as u32);
        }
        self.group_start.shrink_to_fit();
        self.slot.shrink();
        self.payload.shrink();
        match &mut self.ts {
            Times::Narrow { off, .. } => off.shrink(),
            Times::Wide(ts) => ts.shrink(),
        }
        self
    }

    fn from_sorted(entries: &[(u32, i64, u32)]) -> Run {
        let min = entries.iter().map(|e| e.1).min().unwrap_or(0);
        let max = entries.iter().map(|e| e.1).max().unwrap_or(0);
        let mut run = Run::start(min, max);
        for &e in entries {
            run.push(e);
        }
        run.finish()
    }

    /// The entry `i` as (slot, timestamp, payload).
    fn entry(&self, i: usize) -> (u32, i64, u32) {
        (
            self.slot.get(i).unwrap_or(0),
            self.ts.get(i),
            self.payload.get(i).unwrap_or(NONE),
        )
    }

    /// This run merged with `piece` (sorted the same way), in one linear pass.
    fn merged(&self, piece: &[(u32, i64, u32)]) -> Run {
        let lo = piece.iter().map(|e| e.1).min().unwrap_or(i64::MAX);
        let hi = piece.iter().map(|e| e.1).max().unwrap_or(i64::MIN);
        let mut run = Run::start(lo.min(self.min_ts), hi.max(self.max_ts));
        let mut i = 0;
        for &e in piece {
            while i < self.len() && self.entry(i) <= e {
                run.push(self.entry(i));
                i += 1;
            }
            run.push(e);
        }
        for j in i..self.len() {
            run.push(self.entry(j));
        }
        run.finish()
    }

    fn len(&self) -> usize {
        self.slot.len()
    }

    /// Whether the run may hold events with `lo <= ts < hi`.
    fn overlaps(&self, lo: i64, hi: i64) -> bool {
        self.min_ts < hi && self.max_ts >= lo
    }

    /// The range of `slot`'s events.
    fn range(&self, slot: u32) -> std::ops::Range<usize> {
        let g = (slot >> GROUP_SHIFT) as usize;
        let (Some(&a), Some(&b)) = (self.group_start.get(g), self.group_start.get(g + 1)) else {
            return 0..0;
        };
        let (a, b) = (a as usize, b as usize);
        let start = self.slot.partition_point_in(a, b, |s| s < slot);
        let mut end = start;
        while end < b && self.slot.get(end) == Some(slot) {
            end += 1;
        }
        start..end
    }

    /// Adds to `counts[s - from]` the events of slots `[from, to)` with `lo <= ts < hi`
    /// that pass `pass(payload)`.
    fn tally<const CHEAP: bool>(
        &self,
        lo: i64,
        hi: i64,
        pass: &impl Fn(u32) -> bool,
        counts: &mut [u32],
        from: u32,
        to: u32,
    ) {
        let a = self.slot.partition_point_in(0, self.len(), |s| s < from);
        let b = self.slot.partition_point_in(a, self.len(), |s| s < to);
        // The three columns have the same blocks: their slices line up.
        let slots = self.slot.slices(a, b);
        let payloads = self.payload.slices(a, b);
        match &self.ts {
            Times::Narrow { base, off } => {
                // The window relative to `base`, clamped to the offsets' range.
                let rel = |x: i64| x.saturating_sub(*base).clamp(0, 1 << 32);
                for ((s, t), p) in slots.zip(off.slices(a, b)).zip(payloads) {
                    tally::<CHEAP, u32>(s, t, p, rel(lo), rel(hi), pass, counts, from);
                }
            }
            Times::Wide(ts) => {
                for ((s, t), p) in slots.zip(ts.slices(a, b)).zip(payloads) {
                    tally::<CHEAP, i64>(s, t, p, lo, hi, pass, counts, from);
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.slot.heap_bytes()
            + self.ts.heap_bytes()
            + self.payload.heap_bytes()
            + self.group_start.capacity() * 4
    }
}
#[allow(clippy::too_many_arguments)]
#[inline]
fn tally<const CHEAP: bool, T: Copy + Into<i64>>(
    slots: &[u32],
    ts: &[T],
    payloads: &[u32],
    lo: i64,
    hi: i64,
    pass: &impl Fn(u32) -> bool,
    counts: &mut [u32],
    from: u32,
) {
    for ((&s, &t), &p) in slots.iter().zip(ts).zip(payloads) {
        let t: i64 = t.into();
        let w = (lo <= t) & (t < hi);
        let ok = if CHEAP { w & pass(p) } else { w && pass(p) };
        if let Some(c) = counts.get_mut(s.wrapping_sub(from) as usize) {
            *c += u32::from(ok);
        }
    }
}

/// Run boundaries, in days before the latest timestamp at compaction: a window of the
/// last week reads only the newest run, of the last month about a third of 90 days.
const RUN_CUTS_DAYS: [i64; 4] = [63, 31, 15, 8];
const DAY_MS: i64 = 86_400_000;

/// How far the latest timestamp moves before the runs are re-cut.
const RECUT_MS: i64 = DAY_MS;

/// Tail entries that trigger a merge (at least; else a sixteenth of the stream).
const TAIL_MIN: usize = if cfg!(debug_assertions) { 3 } else { 4096 };

/// A stream of events: merged runs by time range (each sorted by slot), so that a
/// windowed count reads only the runs its window overlaps, plus an append tail.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stream {
    /// One run per time range of `cuts` (some maybe empty).
    runs: Vec<Run>,
    /// Run `k` holds `cuts[k - 1] <= ts < cuts[k]`, cut from `recut_at`, the latest
    /// timestamp when the runs were last re-cut; merges add to the runs in place.
    cuts: Vec<i64>,
    recut_at: i64,
    /// Recent events in arrival order, each linked to the slot's next one (`NO_NEXT`
    /// ends a chain): no allocation per slot.
    tail: Vec<TailEntry>,
    /// Slot → (first, last) entry of its chain in `tail`.
    tail_heads: HashMap<u32, (u32, u32), BuildHasherDefault<SlotHasher>>,
    /// The latest timestamp ever added (`i64::MIN` when empty).
    pub max_ts: i64,
    /// The earliest timestamp ever added (`i64::MAX` when empty).
    min_ts: i64,
    /// Per slot: its number of events, saturating at `u8::MAX` (kept once the stream is
    /// dense enough to pay for a byte per slot): all-time counts with no scan.
    totals: Option<Chunked<u8>>,
    /// Custom event properties (payloads are their record ids).
    pub props: PropColumns,
    /// Events of deleted contacts (they stay in the runs; nothing counts them).
    pub dead: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            runs: Vec::new(),
            cuts: Vec::new(),
            recut_at: i64::MIN,
            totals: None,
            tail: Vec::new(),
            tail_heads: HashMap::default(),
            max_ts: i64::MIN,
            min_ts: i64::MAX,
            props: PropColumns::default(),
            dead: 0,
        }
    }
}

impl Stream {
    fn merged_len(&self) -> usize {
        self.runs.iter().map(Run::len).sum()
    }

    pub fn len(&self) -> usize {
        self.merged_len() + self.tail.len()
    }

    /// Events of live contacts.
    pub fn live(&self) -> u64 {
        (self.len() as u64).saturating_sub(self.dead)
    }

    /// Merged runs that may hold events with `lo <= ts < hi` (the cost of one contact's
    /// lookup grows with them).
    pub fn runs_in(&self, lo: i64, hi: i64) -> usize {
        self.runs.iter().filter(|r| r.overlaps(lo, hi)).count()
    }

    /// Events a count over `[lo, hi)` reads.
    pub fn events_in(&self, lo: i64, hi: i64) -> usize {
        self.runs
            .iter()
            .filter(|r| r.overlaps(lo, hi))
            .map(|r| r.slot.len())
            .sum::<usize>()
            + self.tail.len()
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
        self.min_ts = self.min_ts.min(ts);
        if let Some(t) = &mut self.totals {
            let total = t.get(slot as usize).unwrap_or(0).saturating_add(1);
            t.set(slot as usize, total, 0);
        }
        if self.tail.len() > TAIL_MIN.max(self.merged_len() / 16) {
            self.compact();
        }
    }

    /// Merges the tail into the runs: in place, one linear merge per run it adds to;
    /// the runs are re-cut by time from the latest timestamp once that moved on by
    /// `RECUT_MS` (or on the first merge).
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
        let recut = self.runs.len() != RUN_CUTS_DAYS.len() + 1
            || self.max_ts.saturating_sub(self.recut_at) > RECUT_MS;
        if !recut {
            let cuts = &self.cuts;
            let bucket = |t: i64| cuts.partition_point(|&c| c <= t);
            for (k, run) in self.runs.iter_mut().enumerate() {
                let piece: Vec<(u32, i64, u32)> =
                    tail.iter().copied().filter(|e| bucket(e.1) == k).collect();
                if !piece.is_empty() {
                    *run = run.merged(&piece);
                }
            }
            self.maybe_total();
            return;
        }
        // Run `k` holds `cuts[k - 1] <= ts < cuts[k]`.
        let cuts: Vec<i64> = RUN_CUTS_DAYS
            .iter()
            .map(|d| self.max_ts.saturating_sub(d * DAY_MS))
            .collect();
        let bucket = |t: i64| cuts.partition_point(|&c| c <= t);
        let old = std::mem::take(&mut self.runs);
        for k in 0..=cuts.len() {
            // Sorted pieces, one after the other: a stable sort merges them as runs.
            let mut entries: Vec<(u32, i64, u32)> = Vec::new();
            for r in &old {
                for i in 0..r.len() {
                    let e = r.entry(i);
                    if bucket(e.1) == k {
                        entries.push(e);
                    }
                }
            }
            entries.extend(tail.iter().filter(|e| bucket(e.1) == k));
            entries.sort();
            self.runs.push(Run::from_sorted(&entries));
        }
        self.cuts = cuts;
        self.recut_at = self.max_ts;
        self.maybe_total();
    }

    /// Starts keeping per-slot totals once the stream has at least one event per two
    /// slots it reaches.
    fn maybe_total(&mut self) {
        if self.totals.is_some() {
            return;
        }
        let slots = self
            .runs
            .iter()
            .filter_map(|r| r.slot.last())
            .chain(self.tail.iter().map(|e| e.slot))
            .max()
            .map_or(0, |s| s as usize + 1);
        if slots == 0 || self.len() * 2 < slots {
            return;
        }
        let mut t = Chunked::new();
        t.grow_to(slots, 0u8);
        let slots = self.runs.iter().flat_map(|r| r.slot.iter());
        for s in slots.chain(self.tail.iter().map(|e| e.slot)) {
            if let Some(c) = t.get_mut(s as usize) {
                *c = c.saturating_add(1);
            }
        }
        self.totals = Some(t);
    }

    /// Per-slot all-time totals (saturating at `u8::MAX`) when kept and when every event
    /// falls in `[lo, hi)`.
    pub fn totals_in(&self, lo: i64, hi: i64) -> Option<&Chunked<u8>> {
        let all = lo <= self.min_ts && self.max_ts < hi;
        if all { self.totals.as_ref() } else { None }
    }

    /// Gives back the tail's spare capacity (when idle).
    fn release(&mut self) {
        if self.tail.is_empty() {
            self.tail = Vec::new();
            self.tail_heads = HashMap::default();
        }
        self.props.shrink();
    }

    /// Calls `f(ts, payload)` for each event of `slot`, at least those with
    /// `lo <= ts < hi` (runs outside that range are not read).
    pub fn for_slot_in(&self, slot: u32, lo: i64, hi: i64, mut f: impl FnMut(i64, u32)) {
        for r in self.runs.iter().filter(|r| r.overlaps(lo, hi)) {
            for i in r.range(slot) {
                f(r.ts.get(i), r.payload.get(i).unwrap_or(NONE));
            }
        }
        if let Some(&(first, _)) = self.tail_heads.get(&slot) {
            let mut at = first;
            while let Some(e) = self.tail.get(at as usize) {
                f(e.ts, e.payload);
                at = e.next;
            }
        }
    }

    /// Calls `f(slot, ts)` for every event with `lo <= ts < hi`: one linear pass over the
    /// runs that window overlaps, then the tail.
    pub fn for_each_in(&self, lo: i64, hi: i64, mut f: impl FnMut(u32, i64)) {
        for r in self.runs.iter().filter(|r| r.overlaps(lo, hi)) {
            let slots = r.slot.slices(0, r.len());
            match &r.ts {
                Times::Narrow { base, off } => {
                    for (s, t) in slots.zip(off.slices(0, r.len())) {
                        for (&s, &t) in s.iter().zip(t) {
                            let t = base + i64::from(t);
                            if lo <= t && t < hi {
                                f(s, t);
                            }
                        }
                    }
                }
                Times::Wide(ts) => {
                    for (s, t) in slots.zip(ts.slices(0, r.len())) {
                        for (&s, &t) in s.iter().zip(t) {
                            if lo <= t && t < hi {
                                f(s, t);
                            }
                        }
                    }
                }
            }
        }
        for e in &self.tail {
            if lo <= e.ts && e.ts < hi {
                f(e.slot, e.ts);
            }
        }
    }

    /// Adds to `counts[slot]` the number of the slot's events with `lo <= ts < hi` that
    /// pass `pass(payload)`. One linear pass over the runs the window overlaps; slots
    /// past `counts.len()` are skipped. `CHEAP`: `pass` is cheap enough to run on every
    /// event, so that the loop has no data-dependent branch (a window test mispredicts
    /// half the time otherwise).
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
        let runs: Vec<&Run> = self.runs.iter().filter(|r| r.overlaps(lo, hi)).collect();
        // Each run's entries of slots `[from, to)` into `counts` (which starts at `from`).
        let base = |counts: &mut [u32], from: u32, to: u32| {
            for r in &runs {
                r.tally::<CHEAP>(lo, hi, &pass, counts, from, to);
            }
        };
        let scanned: usize = runs.iter().map(|r| r.slot.len()).sum();
        let n = counts.len();
        // Two threads over two halves of the slots, each adding to its own part of
        // `counts`.
        if parallel && scanned >= PARALLEL_EVENTS && n >= 2 {
            let at = n / 2;
            let (low, high) = counts.split_at_mut(at);
            std::thread::scope(|scope| {
                scope.spawn(|| base(high, at as u32, u32::MAX));
                base(low, 0, at as u32);
            });
        } else {
            base(counts, 0, u32::MAX);
        }
        for e in &self.tail {
            if let Some(c) = counts.get_mut(e.slot as usize) {
                *c += u32::from(ok(e.ts, e.payload));
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.runs.iter().map(Run::heap_bytes).sum::<usize>()
            + self.totals.as_ref().map_or(0, Chunked::heap_bytes)
            + self.tail.capacity() * std::mem::size_of::<TailEntry>()
            + self.tail_heads.capacity() * 13
            + self.props.heap_bytes()
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

/// Type tags of a property column entry.
pub const TAG_ABSENT: u8 = 0;
pub const TAG_TEXT: u8 = 1;
pub const TAG_NUMBER: u8 = 2;
pub const TAG_BOOL: u8 = 3;
pub const TAG_OTHER: u8 = 4;

/// The property paths and strings of every custom event, shared by the streams: a path
/// is the dotted path a rule would write. Null and missing properties are absent; keys
/// that are empty or hold a dot cannot be reached by a rule and are left out.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Properties {
    pub paths: HashMap<String, u32>,
    pub strings: Dict,
}

impl Properties {
    fn path_id(&mut self, path: &str) -> u32 {
        match self.paths.get(path) {
            Some(&p) => p,
            None => {
                let p = self.paths.len() as u32;
                self.paths.insert(path.to_owned(), p);
                p
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.strings.heap_bytes()
            + self.paths.capacity() * 40
            + self.paths.keys().map(String::capacity).sum::<usize>()
    }
}

/// One property path's values over a custom stream's records (record ids are the
/// stream's arrival order, so entries only ever append). Dense: entry `i` is record
/// `start + i` (`TAG_ABSENT` where the record lacks the path); sparse (`recs`): entry `i`
/// is record `recs[i]`. Value columns are allocated at the first value of their type.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct PropColumn {
    start: u32,
    recs: Option<Vec<u32>>,
    tags: Chunked<u8>,
    /// Numbers (empty until the first number).
    nums: Chunked<f64>,
    /// Text codes and booleans as 0/1 (empty until the first such value).
    codes: Chunked<u32>,
    /// Entries holding a value.
    present: u32,
}

impl PropColumn {
    /// The column's value of `record`.
    pub fn get(&self, record: u32) -> Option<Prop> {
        let i = match &self.recs {
            Some(recs) => recs.binary_search(&record).ok()?,
            None => record.checked_sub(self.start)? as usize,
        };
        let tag = self.tags.get(i)?;
        let num = || self.nums.get(i).unwrap_or(0.0);
        let code = || self.codes.get(i).unwrap_or(0);
        match tag {
            TAG_TEXT => Some(Prop::Text(code())),
            TAG_NUMBER => Some(Prop::Number(num())),
            TAG_BOOL => Some(Prop::Boolean(code() != 0)),
            TAG_OTHER => Some(Prop::Other),
            _ => None,
        }
    }

    fn end(&self) -> u32 {
        match &self.recs {
            Some(recs) => recs.last().map_or(0, |r| r + 1),
            None => self.start + self.tags.len() as u32,
        }
    }

    fn push_entry(&mut self, tag: u8, num: f64, code: u32) {
        if tag == TAG_NUMBER || !self.nums.is_empty() {
            self.nums.grow_to(self.tags.len(), 0.0);
            self.nums.push(num);
        }
        if tag == TAG_TEXT || tag == TAG_BOOL || !self.codes.is_empty() {
            self.codes.grow_to(self.tags.len(), 0);
            self.codes.push(code);
        }
        self.tags.push(tag);
    }

    /// Appends `record`'s value (records arrive in increasing order).
    fn push(&mut self, record: u32, value: Prop) {
        let (tag, num, code) = match value {
            Prop::Text(c) => (TAG_TEXT, 0.0, c),
            Prop::Number(x) => (TAG_NUMBER, x, 0),
            Prop::Boolean(b) => (TAG_BOOL, 0.0, u32::from(b)),
            Prop::Other => (TAG_OTHER, 0.0, 0),
        };
        if self.tags.is_empty() {
            self.start = record;
            self.recs = None;
        }
        let end = self.end();
        if record < end {
            return; // Cannot happen: records only grow.
        }
        if self.recs.is_none() {
            // Sparse when fewer than an eighth of the covered records hold a value.
            let gap = (record - end) as usize;
            let span = self.tags.len() + gap + 1;
            if gap > 0 && span >= 64 && (self.present as usize + 1) * 8 < span {
                self.sparsify();
            }
        }
        match &mut self.recs {
            Some(recs) => {
                recs.push(record);
                self.push_entry(tag, num, code);
                // Dense once a quarter of the covered records hold a value.
                let span = u64::from(record - self.start) + 1;
                if span >= 64 && u64::from(self.present + 1) * 4 >= span {
                    self.densify();
                }
            }
            None => {
                for _ in 0..(record - end) {
                    self.push_entry(TAG_ABSENT, 0.0, 0);
                }
                self.push_entry(tag, num, code);
            }
        }
        self.present += 1;
    }

    fn densify(&mut self) {
        let Some(recs) = self.recs.take() else { return };
        let old = std::mem::take(self);
        self.start = recs.first().copied().unwrap_or(0);
        self.present = old.present;
        for (i, r) in recs.iter().enumerate() {
            while self.start + (self.tags.len() as u32) < *r {
                self.push_entry(TAG_ABSENT, 0.0, 0);
            }
            self.push_entry(
                old.tags.get(i).unwrap_or(TAG_ABSENT),
                old.nums.get(i).unwrap_or(0.0),
                old.codes.get(i).unwrap_or(0),
            );
        }
    }

    fn sparsify(&mut self) {
        if self.recs.is_some() {
            return;
        }
        let old = std::mem::take(self);
        let mut recs = Vec::with_capacity(old.present as usize);
        self.start = old.start;
        self.present = old.present;
        for (i, t) in old.tags.iter().enumerate() {
            if t != TAG_ABSENT {
                recs.push(old.start + i as u32);
                self.push_entry(
                    t,
                    old.nums.get(i).unwrap_or(0.0),
                    old.codes.get(i).unwrap_or(0),
                );
            }
        }
        self.recs = Some(recs);
    }

    /// `mask[r] &= test(value of r)` for every record `r < mask.len()`, where `test`
    /// reads `(tag, number, code)` of a record with the path; `absent` is the result for a
    /// record without it.
    pub fn and_mask(&self, mask: &mut [u8], absent: bool, test: impl Fn(u8, f64, u32) -> bool) {
        let absent = u8::from(absent);
        match &self.recs {
            None => {
                let start = (self.start as usize).min(mask.len());
                let end = (start + self.tags.len()).min(mask.len());
                let (before, rest) = mask.split_at_mut(start);
                let (within, after) = rest.split_at_mut(end - start);
                if absent == 0 {
                    before.fill(0);
                    after.fill(0);
                }
                // Block by block: the columns' blocks line up with `within`'s chunks.
                for (k, within) in within.chunks_mut(BLOCK).enumerate() {
                    let (a, b) = (k * BLOCK, k * BLOCK + within.len());
                    let tags = self.tags.slices(a, b).next().unwrap_or(&[]);
                    let nums = self.nums.slices(a, b).next().unwrap_or(&[]);
                    let codes = self.codes.slices(a, b).next().unwrap_or(&[]);
                    match (nums.is_empty(), codes.is_empty()) {
                        (false, false) => {
                            for (((m, &t), &x), &c) in
                                within.iter_mut().zip(tags).zip(nums).zip(codes)
                            {
                                *m &=
                                    u8::from(test(t, x, c)) | (u8::from(t == TAG_ABSENT) & absent);
                            }
                        }
                        (false, true) => {
                            for ((m, &t), &x) in within.iter_mut().zip(tags).zip(nums) {
                                *m &=
                                    u8::from(test(t, x, 0)) | (u8::from(t == TAG_ABSENT) & absent);
                            }
                        }
                        (true, false) => {
                            for ((m, &t), &c) in within.iter_mut().zip(tags).zip(codes) {
                                *m &= u8::from(test(t, 0.0, c))
                                    | (u8::from(t == TAG_ABSENT) & absent);
                            }
                        }
                        (true, true) => {
                            for (m, &t) in within.iter_mut().zip(tags) {
                                *m &= u8::from(test(t, 0.0, 0))
                                    | (u8::from(t == TAG_ABSENT) & absent);
                            }
                        }
                    }
                }
            }
            Some(recs) => {
                let entry = |i: usize| {
                    test(
                        self.tags.get(i).unwrap_or(TAG_ABSENT),
                        self.nums.get(i).unwrap_or(0.0),
                        self.codes.get(i).unwrap_or(0),
                    )
                };
                if absent == 1 {
                    for (i, &r) in recs.iter().enumerate() {
                        if let Some(m) = mask.get_mut(r as usize) {
                            *m &= u8::from(entry(i));
                        }
                    }
                } else {
                    let kept: Vec<(usize, u8)> = recs
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &r)| {
                            let m = *mask.get(r as usize)?;
                            Some((r as usize, m & u8::from(entry(i))))
                        })
                        .collect();
                    mask.fill(0);
                    for (r, m) in kept {
                        mask[r] = m;
                    }
                }
            }
        }
    }

    fn shrink(&mut self) {
        if let Some(r) = &mut self.recs {
            r.shrink_to_fit();
        }
        self.tags.shrink();
        self.nums.shrink();
        self.codes.shrink();
    }

    fn heap_bytes(&self) -> usize {
        self.recs.as_ref().map_or(0, |r| r.capacity() * 4)
            + self.tags.heap_bytes()
            + self.nums.heap_bytes()
            + self.codes.heap_bytes()
    }
}

/// The properties of one custom stream's events, a typed column per path.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct PropColumns {
    /// Records so far (the next record id).
    pub records: u32,
    /// Path id → its column.
    cols: HashMap<u32, PropColumn, BuildHasherDefault<SlotHasher>>,
    /// Path id → the types and text values of its live events (the builder's catalog).
    tallies: HashMap<u32, PropTally, BuildHasherDefault<SlotHasher>>,
}

impl PropColumns {
    /// Stores one event's properties; returns its record id.
    pub fn add(&mut self, shared: &mut Properties, props: &serde_json::Map<String, Value>) -> u32 {
        let record = self.records;
        self.records += 1;
        let mut prefix = String::new();
        self.flatten(shared, record, props, &mut prefix);
        record
    }

    fn flatten(
        &mut self,
        shared: &mut Properties,
        record: u32,
        props: &serde_json::Map<String, Value>,
        prefix: &mut String,
    ) {
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
                Value::String(s) => Some(Prop::Text(shared.strings.intern(&lower(s)))),
                Value::Number(n) => Some(n.as_f64().map_or(Prop::Other, Prop::Number)),
                Value::Bool(b) => Some(Prop::Boolean(*b)),
                Value::Array(_) | Value::Object(_) => Some(Prop::Other),
            };
            if let Some(value) = value {
                let path = shared.path_id(prefix);
                self.cols.entry(path).or_default().push(record, value);
                self.tallies.entry(path).or_default().add(value);
            }
            if let Value::Object(inner) = v {
                self.flatten(shared, record, inner, prefix);
            }
            prefix.truncate(len);
        }
    }

    fn shrink(&mut self) {
        for c in self.cols.values_mut() {
            c.shrink();
        }
    }

    pub fn column(&self, path: u32) -> Option<&PropColumn> {
        self.cols.get(&path)
    }

    /// Takes a record's values out of the tallies (its contact was deleted).
    pub fn forget(&mut self, record: u32) {
        for (path, col) in &self.cols {
            if let (Some(v), Some(t)) = (col.get(record), self.tallies.get_mut(path)) {
                t.remove(v);
            }
        }
    }

    pub fn tallies(&self) -> impl Iterator<Item = (&u32, &PropTally)> {
        self.tallies.iter()
    }

    pub fn tally(&self, path: u32) -> Option<&PropTally> {
        self.tallies.get(&path)
    }

    pub fn heap_bytes(&self) -> usize {
        self.cols.capacity() * 80
            + self
                .cols
                .values()
                .map(PropColumn::heap_bytes)
                .sum::<usize>()
            + self
                .tallies
                .values()
                .map(|t| t.heap_bytes() + 64)
                .sum::<usize>()
    }
}

/// Every stream of an account, with the dictionaries their payloads use.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
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

    /// Gives back spare capacity after a compaction (when idle).
    pub fn release(&mut self) {
        for s in &mut self.system {
            s.release();
        }
        for s in self.custom.values_mut() {
            s.release();
        }
        self.visits.release();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns switch between dense and sparse as gaps come and go; reads and masks
    /// agree with the values pushed whatever the layout.
    #[test]
    fn property_columns_read_back_what_was_pushed_dense_or_sparse() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        for round in 0..40 {
            let mut col = PropColumn::default();
            let mut model: Vec<Option<Prop>> = Vec::new();
            // Some rounds fill the columns past one block of their chunked storage.
            let records = if round % 10 == 9 { 40_000 } else { 2000 };
            for r in 0..records {
                // Phases of high and low density.
                let dense = (r / 300 + round) % 2 == 0;
                let hit = if dense {
                    next() % 3 != 0
                } else {
                    next() % 50 == 0
                };
                let value = hit.then(|| match next() % 4 {
                    0 => Prop::Text((next() % 5) as u32),
                    1 => Prop::Number((next() % 100) as f64),
                    2 => Prop::Boolean(next() % 2 == 0),
                    _ => Prop::Other,
                });
                if let Some(v) = value {
                    col.push(r, v);
                }
                model.push(value);
            }
            for (r, v) in model.iter().enumerate() {
                assert_eq!(col.get(r as u32), *v, "record {r}");
            }
            for absent in [false, true] {
                let mut mask = vec![1u8; records as usize];
                col.and_mask(&mut mask, absent, |t, x, c| {
                    (t == TAG_NUMBER && x > 50.0) || (t == TAG_TEXT && c == 2)
                });
                for (r, v) in model.iter().enumerate() {
                    let want = match v {
                        None => absent,
                        Some(Prop::Number(x)) => *x > 50.0,
                        Some(Prop::Text(c)) => *c == 2,
                        Some(_) => false,
                    };
                    assert_eq!(mask[r] != 0, want, "record {r}");
                }
            }
        }
    }
    /// Streams read back every pushed event, per slot and counted in windows, whatever
    /// the runs' layout (narrow or wide timestamps, merged in place or re-cut).
    #[test]
    fn streams_count_what_was_pushed_across_merges_and_recuts() {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        // (days the timestamps spread over, events): the last case fills runs past one
        // block of their chunked columns.
        for (spread_days, events) in [(3i64, 3000u64), (200, 3000), (40_000, 3000), (3, 60_000)] {
            let mut stream = Stream::default();
            let mut model: Vec<(u32, i64, u32)> = Vec::new();
            let base = 1_700_000_000_000i64;
            for i in 0..events {
                let slot = (next() % 97) as u32;
                // Time mostly moves forward, with stragglers.
                let drift = (i as i64) * spread_days * DAY_MS / events as i64;
                let ts = base + drift - (next() as i64 % (spread_days * DAY_MS / 4 + 1));
                let payload = (next() % 5) as u32;
                stream.push(slot, ts, payload);
                model.push((slot, ts, payload));
                if i % 700 == 0 {
                    stream.compact();
                }
            }
            for slot in 0..100u32 {
                let mut got = Vec::new();
                stream.for_slot_in(slot, i64::MIN, i64::MAX, |t, p| got.push((t, p)));
                let mut want: Vec<(i64, u32)> = model
                    .iter()
                    .filter(|e| e.0 == slot)
                    .map(|e| (e.1, e.2))
                    .collect();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "slot {slot}");
            }
            let totals = stream.totals_in(i64::MIN, i64::MAX);
            assert!(totals.is_some());
            for (slot, t) in totals.iter().flat_map(|t| t.iter()).enumerate() {
                let n = model.iter().filter(|e| e.0 as usize == slot).count();
                assert_eq!(usize::from(t), n.min(255), "total of {slot}");
            }
            let (min, max) = (
                model.iter().map(|e| e.1).min().unwrap_or(0),
                model.iter().map(|e| e.1).max().unwrap_or(0),
            );
            for (lo, hi) in [
                (i64::MIN, i64::MAX),
                (min, max),
                (max - 2 * DAY_MS, max + 1),
                (min + (max - min) / 3, min + (max - min) / 2),
            ] {
                let mut counts = vec![0u32; 100];
                stream.count_into::<true, _>(lo, hi, |p| p != 3, &mut counts, true);
                let mut want = vec![0u32; 100];
                for e in &model {
                    if lo <= e.1 && e.1 < hi && e.2 != 3 {
                        want[e.0 as usize] += 1;
                    }
                }
                assert_eq!(counts, want, "window {lo}..{hi}");
            }
        }
    }
}
