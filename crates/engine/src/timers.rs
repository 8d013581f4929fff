//! Timers: the instants at which time alone changes what a contact's behaviour
//! conditions count, so that [`crate::Index::refresh`] re-decides only the contacts
//! whose state changes instead of whole segments.
//!
//! A behaviour condition counts an event while `ts <= floor(now)` and, in a rolling
//! window `last_days: N` of length `L = N × 24 h`, while `ts > floor(now) - L` (see
//! `eval::time_range`; the two floors agree because `L` is whole milliseconds). So when
//! the clock moves forward from `f0` to `f1` (whole milliseconds), an event enters every
//! condition on its stream if `f0 < ts <= f1`, and leaves the windows of length `L` if
//! `f0 < ts + L <= f1`. Nothing else a behaviour condition reads moves with `now`.
//!
//! There is one queue per stream that saved segments read, keyed by that stream and the
//! window lengths read on it. It holds about one entry per contact that has an event
//! ahead of the clock or inside one of those windows: the contact's next change instant
//! on the stream, the earliest of its events' `ts` (still ahead) and `ts + L` (for each
//! length `L`). An entry is 8 bytes in a binary min-heap: the second of that instant,
//! counted from `Timers::base`, and the slot. When an entry fires, the contact's own
//! events (`Stream::for_slot_in`) tell what changed and its next instant.
//!
//! **The invariant that makes refresh exact**: for every queue and every live slot
//! whose next change instant `t` after the index's clock exists, the queue holds an
//! entry of that slot whose second starts at or before `t`. Entries may be early
//! (a second is coarser than a millisecond; a write may leave a later duplicate; a
//! deleted contact's entries wait until they fire), never late: a fired entry whose
//! contact did not change in `(f0, f1]` only re-arms it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::bits::Bits;
use crate::events::{Events, Stream};
use crate::segments::StreamKey;

/// The last second an entry names. An instant further ahead of `Timers::base` (136
/// years) is armed at this second, early, which keeps the invariant.
const LAST_SECOND: u32 = u32::MAX - 1;

/// Marks a slot with no instant while a queue is built.
const NO_SECOND: u32 = u32::MAX;

/// One stream's timers.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Queue {
    /// The rolling window lengths (ms) saved segments read on the stream, ascending.
    lengths: Vec<i64>,
    /// `Reverse((second << 32) | slot)`: the earliest second on top.
    heap: BinaryHeap<Reverse<u64>>,
}

impl Queue {
    /// Pushes an entry, growing the heap by an eighth when full rather than doubling
    /// it: a heap stays about as long as it is (each fired entry re-arms at most once),
    /// so doubling would hold up to twice its memory for nothing.
    fn push(&mut self, entry: Reverse<u64>) {
        if self.heap.len() == self.heap.capacity() {
            self.heap.reserve_exact(self.heap.len() / 8 + 64);
        }
        self.heap.push(entry);
    }

    /// Gives back spare capacity beyond a sixteenth of the length (room for the next
    /// pushes without a reallocation of the whole heap).
    fn shrink(&mut self) {
        self.heap
            .shrink_to(self.heap.len() + self.heap.len() / 16 + 64);
    }
}

/// What changed for one contact on one stream as the clock moved forward.
#[derive(Debug, Clone, Copy)]
pub struct Fired {
    pub slot: u32,
    /// The stream's queue, for [`Timers::key`].
    pub queue: usize,
    /// An event entered: every condition on the stream may count differently (also set
    /// when a window past the 64th length of the stream changed).
    pub entered: bool,
    /// Bit `i`: an event left the window of the queue's `i`-th length.
    pub left: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Timers {
    /// The instant (ms) entries count their seconds from. Set when the timers are
    /// (re)built; the clock never goes below it (a clock moved back rebuilds them).
    base: i64,
    /// Per stream read by saved segments, sorted by stream.
    queues: Vec<(StreamKey, Queue)>,
}

impl Timers {
    /// No timers; seconds counted from `now` (ms).
    pub fn new(now: i64) -> Self {
        Timers {
            base: now,
            queues: Vec::new(),
        }
    }

    /// The second an instant falls in, clamped to what an entry can name (clamping down
    /// arms early, which is allowed; instants are never before `base` when armed).
    fn second(&self, t: i64) -> u32 {
        t.saturating_sub(self.base)
            .div_euclid(1000)
            .clamp(0, i64::from(LAST_SECOND)) as u32
    }

    fn entry(second: u32, slot: u32) -> Reverse<u64> {
        Reverse((u64::from(second) << 32) | u64::from(slot))
    }

    /// The stream and window lengths of a queue.
    pub fn key(&self, queue: usize) -> Option<(&StreamKey, &[i64])> {
        self.queues
            .get(queue)
            .map(|(k, q)| (k, q.lengths.as_slice()))
    }

    fn find(&self, key: &StreamKey) -> Option<usize> {
        self.queues.binary_search_by(|(k, _)| k.cmp(key)).ok()
    }

    /// Brings the queues in line with what saved segments read (`keys`: stream → window
    /// lengths → how many segments read each), at `now`: a stream no longer read loses
    /// its queue; a stream newly read, or whose set of lengths changed, gets its queue
    /// built from its events (one pass). Queues whose lengths stay are kept as they are.
    pub fn sync(
        &mut self,
        keys: &BTreeMap<StreamKey, BTreeMap<i64, usize>>,
        events: &Events,
        alive: &Bits,
        now: i64,
    ) {
        let mut old: BTreeMap<StreamKey, Queue> =
            std::mem::take(&mut self.queues).into_iter().collect();
        let mut queues = Vec::with_capacity(keys.len());
        for (key, lengths) in keys {
            let lengths: Vec<i64> = lengths.keys().copied().collect();
            let queue = match old.remove(key) {
                Some(q) if q.lengths == lengths => q,
                _ => self.build(key.stream(events), lengths, alive, now),
            };
            queues.push((key.clone(), queue));
        }
        self.queues = queues;
    }

    /// Rebuilds every queue at `now`, counting seconds from it (after the clock moved
    /// back, or when it nears the last second entries can name).
    pub fn rebuild(
        &mut self,
        keys: &BTreeMap<StreamKey, BTreeMap<i64, usize>>,
        events: &Events,
        alive: &Bits,
        now: i64,
    ) {
        self.base = now;
        self.queues.clear();
        self.sync(keys, events, alive, now);
    }

    /// Whether the clock has gone so far from `base` that entries soon cannot name their
    /// seconds (68 years): time to rebuild.
    pub fn needs_rebase(&self, now: i64) -> bool {
        self.second(now) >= LAST_SECOND / 2
    }

    /// A stream's queue from its events: each live slot at its next change instant.
    fn build(&self, stream: Option<&Stream>, lengths: Vec<i64>, alive: &Bits, now: i64) -> Queue {
        let mut entries: Vec<Reverse<u64>> = Vec::new();
        if let Some(stream) = stream {
            // Per slot, the second of its earliest instant: a pass over the events that
            // can still change something, then a pass over the slots.
            let mut first = vec![NO_SECOND; alive.len()];
            stream.for_each_in(horizon(&lengths, now), i64::MAX, |slot, ts| {
                if let (Some(t), Some(f)) = (
                    instant_after(&lengths, ts, now),
                    first.get_mut(slot as usize),
                ) {
                    *f = (*f).min(self.second(t));
                }
            });
            entries = first
                .iter()
                .enumerate()
                .filter(|&(slot, &s)| s != NO_SECOND && alive.get(slot as u32))
                .map(|(slot, &s)| Timers::entry(s, slot as u32))
                .collect();
        }
        let mut queue = Queue {
            lengths,
            heap: BinaryHeap::from(entries),
        };
        queue.shrink();
        queue
    }

    /// The first instant after `now` at which an event at `ts` on `key` changes what a
    /// condition counts; `None` when it never will or no saved segment reads `key`.
    pub fn first_change(&self, key: &StreamKey, ts: i64, now: i64) -> Option<i64> {
        let (_, q) = self.queues.get(self.find(key)?)?;
        instant_after(&q.lengths, ts, now)
    }

    /// After events were added to `slot` on `key`, `first` being the earliest of their
    /// [`Timers::first_change`]s: arms the slot there, unless its events change it at
    /// `first` or earlier anyway (an older event), which the invariant already covers.
    pub fn arm_added(
        &mut self,
        key: &StreamKey,
        stream: Option<&Stream>,
        slot: u32,
        first: i64,
        now: i64,
    ) {
        let Some(i) = self.find(key) else { return };
        let second = self.second(first);
        let Some((_, q)) = self.queues.get_mut(i) else {
            return;
        };
        // The new events are in the stream already: their instant is the slot's next
        // one exactly when no older event comes first (equal instants arm twice, which
        // is harmless: both fire together).
        let next = next_after(stream, &q.lengths, slot, now);
        if next.is_none_or(|n| first <= n) {
            q.push(Timers::entry(second, slot));
        }
    }

    /// Pops every entry due when the clock moves forward from `f0` to `f1` (its second
    /// starts at or before `f1`), finds what changed for each live slot in `(f0, f1]`
    /// from its events, and re-arms it at its next instant after `f1`. Returns the slots
    /// that changed, sorted by slot, and the number of entries popped.
    pub fn fire(&mut self, events: &Events, alive: &Bits, f0: i64, f1: i64) -> (Vec<Fired>, usize) {
        let due = self.second(f1);
        let base = self.base;
        let second = |t: i64| -> u32 {
            t.saturating_sub(base)
                .div_euclid(1000)
                .clamp(0, i64::from(LAST_SECOND)) as u32
        };
        let mut out = Vec::new();
        let mut popped = 0;
        for (q, (key, queue)) in self.queues.iter_mut().enumerate() {
            let mut slots: Vec<u32> = Vec::new();
            while let Some(&Reverse(e)) = queue.heap.peek() {
                if (e >> 32) as u32 > due {
                    break;
                }
                queue.heap.pop();
                slots.push(e as u32);
            }
            popped += slots.len();
            slots.sort_unstable();
            slots.dedup();
            let stream = key.stream(events);
            for slot in slots {
                // A deleted contact's entries end here.
                if !alive.get(slot) {
                    continue;
                }
                let (entered, left, next) = changes(stream, &queue.lengths, slot, f0, f1);
                if let Some(t) = next {
                    queue.push(Timers::entry(second(t), slot));
                }
                if entered || left != 0 {
                    out.push(Fired {
                        slot,
                        queue: q,
                        entered,
                        left,
                    });
                }
            }
        }
        out.sort_unstable_by_key(|f| f.slot);
        (out, popped)
    }

    /// Entries pending in every queue.
    pub fn pending(&self) -> usize {
        self.queues.iter().map(|(_, q)| q.heap.len()).sum()
    }

    /// Gives back the heaps' spare capacity (when idle).
    pub fn shrink(&mut self) {
        for (_, q) in &mut self.queues {
            q.shrink();
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.queues.capacity() * std::mem::size_of::<(StreamKey, Queue)>()
            + self
                .queues
                .iter()
                .map(|(k, q)| {
                    let name = match k {
                        StreamKey::Custom(n) => n.capacity(),
                        _ => 0,
                    };
                    name + q.lengths.capacity() * 8 + q.heap.capacity() * 8
                })
                .sum::<usize>()
    }
}

/// The earliest timestamp of an event that can still change something after `now`.
fn horizon(lengths: &[i64], now: i64) -> i64 {
    match lengths.last() {
        Some(&longest) => now.saturating_sub(longest).saturating_add(1),
        None => now.saturating_add(1),
    }
}

/// The first instant after `now` at which an event at `ts` changes what a condition on
/// its stream counts: `ts` itself while it is ahead, else the end of the shortest window
/// (of `lengths`, ascending) it is still in.
pub fn instant_after(lengths: &[i64], ts: i64, now: i64) -> Option<i64> {
    if ts > now {
        return Some(ts);
    }
    let i = lengths.partition_point(|&l| ts.saturating_add(l) <= now);
    lengths.get(i).map(|&l| ts.saturating_add(l))
}

/// A slot's next change instant after `now` on a stream, from its events.
fn next_after(stream: Option<&Stream>, lengths: &[i64], slot: u32, now: i64) -> Option<i64> {
    let stream = stream?;
    let lo = horizon(lengths, now);
    let mut next: Option<i64> = None;
    stream.for_slot_in(slot, lo, i64::MAX, |ts, _| {
        if ts >= lo
            && let Some(t) = instant_after(lengths, ts, now)
        {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    });
    next
}

/// What changed for a slot on a stream as the clock moved from `f0` to `f1`: whether an
/// event entered, which windows an event left (bit per length; past the 64th, counted as
/// an entry), and the slot's next change instant after `f1`.
fn changes(
    stream: Option<&Stream>,
    lengths: &[i64],
    slot: u32,
    f0: i64,
    f1: i64,
) -> (bool, u64, Option<i64>) {
    let Some(stream) = stream else {
        return (false, 0, None);
    };
    let lo = horizon(lengths, f0);
    let (mut entered, mut left, mut next) = (false, 0u64, None::<i64>);
    stream.for_slot_in(slot, lo, i64::MAX, |ts, _| {
        if ts < lo {
            return;
        }
        entered |= f0 < ts && ts <= f1;
        for (i, &l) in lengths.iter().enumerate() {
            let end = ts.saturating_add(l);
            if f0 < end && end <= f1 {
                if i < 64 {
                    left |= 1 << i;
                } else {
                    entered = true;
                }
            }
        }
        if let Some(t) = instant_after(lengths, ts, f1) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    });
    (entered, left, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    /// An event's next change: its own time while ahead, then the end of each window
    /// in turn (exclusive of the window's start: `ts + L` is the first instant it is out).
    #[test]
    fn an_event_changes_at_its_time_then_at_each_window_end() {
        let lengths = [DAY, 7 * DAY];
        let cases: [(i64, i64, Option<i64>); 6] = [
            // (ts, now, next)
            (1000, 999, Some(1000)),
            (1000, 1000, Some(1000 + DAY)),
            (1000, 1000 + DAY - 1, Some(1000 + DAY)),
            (1000, 1000 + DAY, Some(1000 + 7 * DAY)),
            (1000, 1000 + 7 * DAY - 1, Some(1000 + 7 * DAY)),
            (1000, 1000 + 7 * DAY, None),
        ];
        for (ts, now, want) in cases {
            assert_eq!(instant_after(&lengths, ts, now), want, "ts {ts} now {now}");
        }
        assert_eq!(instant_after(&[], 5, 4), Some(5));
        assert_eq!(instant_after(&[], 5, 5), None);
    }

    /// A slot is popped once its second starts, however many entries it has, and its
    /// changes are read from its events in `(f0, f1]` exactly.
    #[test]
    fn firing_reports_exactly_what_changed_between_the_two_clocks() {
        let mut events = Events::new();
        let now = 10 * DAY;
        // Slot 0: an event leaving the one-day window at `now + 1500`; slot 1: an
        // event ahead, at `now + 2500`.
        events.visits.push(0, now - DAY + 1500, 0);
        events.visits.push(1, now + 2500, 0);
        let mut alive = Bits::new(2);
        alive.set(0);
        alive.set(1);
        let mut keys = BTreeMap::new();
        keys.insert(StreamKey::Visits, BTreeMap::from([(DAY, 1usize)]));
        let mut timers = Timers::new(now);
        timers.sync(&keys, &events, &alive, now);
        assert_eq!(timers.pending(), 2);
        // Slot 0's second starts at `now + 1000`: popped, nothing changed yet.
        let (fired, popped) = timers.fire(&events, &alive, now, now + 1499);
        assert_eq!((fired.len(), popped), (0, 1));
        let (fired, _) = timers.fire(&events, &alive, now + 1499, now + 1500);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].slot, fired[0].entered, fired[0].left),
            (0, false, 1)
        );
        let (fired, _) = timers.fire(&events, &alive, now + 1500, now + 2500);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].slot, fired[0].entered), (1, true));
        // Slot 1 now waits for its event to leave the window; slot 0 has nothing left.
        assert_eq!(timers.pending(), 1);
    }
}
