//! Saved segments: rules, maintained membership, what each rule reads (the inverted map
//! from field / event stream / rolling window to segments) and the dependency order of
//! references.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use roaring::RoaringBitmap;
use segmentd_rules::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldRef, FieldTest, Rule, SegmentId,
    Window,
};

use crate::EngineError;
use crate::events::{Events, Stream};

/// A day in milliseconds: a `last_days: N` window is `N × DAY_MS` long.
pub const DAY_MS: i64 = 86_400_000;

/// An event stream a rule can read.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum StreamKey {
    /// A system event kind, as its index in `SystemEventKind::ALL`.
    System(u8),
    Custom(String),
    Visits,
}

impl StreamKey {
    pub fn of(b: &BehaviourCondition) -> Self {
        match &b.source {
            EventSource::System { kind, .. } => StreamKey::System(*kind as u8),
            EventSource::Custom { name, .. } => StreamKey::Custom(name.clone()),
            EventSource::Visit { .. } => StreamKey::Visits,
        }
    }

    pub fn stream<'a>(&self, events: &'a Events) -> Option<&'a Stream> {
        match self {
            StreamKey::System(k) => events.system.get(*k as usize),
            StreamKey::Custom(name) => events.custom.get(name),
            StreamKey::Visits => Some(&events.visits),
        }
    }
}

/// What a rule reads directly (not through the segments it refers to).
#[derive(Debug, Clone, Default)]
pub struct Reads {
    pub fields: BTreeSet<FieldRef>,
    pub streams: BTreeSet<StreamKey>,
    /// Rolling windows: (stream, window length in ms) of each `last_days` condition.
    pub windows: BTreeSet<(StreamKey, i64)>,
    pub segments: BTreeSet<SegmentId>,
}

/// How a rule's result moves with time alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeDeps {
    /// A rolling window (`last_days`): moves with `now`.
    pub rolling_now: bool,
    /// A relative date or an anniversary: moves with `today`.
    pub rolling_today: bool,
}

#[derive(Debug, Clone)]
pub struct Saved {
    pub rule: Rule,
    pub members: RoaringBitmap,
    pub reads: Reads,
    pub time: TimeDeps,
}

fn analyse(rule: &Rule) -> (Reads, TimeDeps) {
    let mut reads = Reads::default();
    let mut time = TimeDeps::default();
    rule.visit(&mut |r| match r {
        Rule::Field(c) => {
            reads.fields.insert(c.field.clone());
            if let FieldTest::Date(op) = &c.test {
                let rel = |d: &DateValue| matches!(d, DateValue::Relative(_));
                time.rolling_today |= match op {
                    DateOp::Equals(d)
                    | DateOp::NotEquals(d)
                    | DateOp::Before(d)
                    | DateOp::After(d) => rel(d),
                    DateOp::Between(a, b) => rel(a) || rel(b),
                    DateOp::AnniversaryWithin(_) => true,
                };
            }
        }
        Rule::Behaviour(b) => {
            reads.streams.insert(StreamKey::of(b));
            if let Some(Window::LastDays(days)) = b.within {
                reads
                    .windows
                    .insert((StreamKey::of(b), i64::from(days) * DAY_MS));
                time.rolling_now = true;
            }
        }
        Rule::Segment(s) => {
            reads.segments.insert(s.segment);
        }
        Rule::All(_) | Rule::Any(_) | Rule::Not(_) => {}
    });
    (reads, time)
}

#[derive(Debug, Default)]
pub struct Segments {
    pub saved: HashMap<SegmentId, Saved>,
    /// Every saved segment, referenced ones before those referring to them.
    pub order: Vec<SegmentId>,
    rank: HashMap<SegmentId, usize>,
    by_field: HashMap<FieldRef, Vec<SegmentId>>,
    by_stream: HashMap<StreamKey, Vec<SegmentId>>,
    /// Per stream: its readers and the segments referring to them, in dependency order.
    stream_readers: HashMap<StreamKey, Vec<SegmentId>>,
    /// Per rolling window (stream, length in ms): the segments with such a `last_days`
    /// condition and the segments referring to them, in dependency order.
    window_readers: HashMap<StreamKey, BTreeMap<i64, Vec<SegmentId>>>,
    /// What the timers must watch: every stream some saved segment reads (its events
    /// enter every condition on it when `now` reaches them), with the lengths of the
    /// rolling windows read on it and how many saved segments read each.
    timer_keys: BTreeMap<StreamKey, BTreeMap<i64, usize>>,
    /// Segment → the saved segments whose rules refer to it directly.
    dependents: HashMap<SegmentId, Vec<SegmentId>>,
}

impl Segments {
    /// Saves `rule` under `id`, keeping its current members (the caller re-evaluates).
    pub fn set(&mut self, id: SegmentId, rule: Rule) -> Result<(), EngineError> {
        let (reads, time) = analyse(&rule);
        // A cycle: `id` reachable from one of the segments the new rule refers to.
        let mut stack: Vec<SegmentId> = reads.segments.iter().copied().collect();
        let mut seen = HashSet::new();
        while let Some(s) = stack.pop() {
            if s == id {
                return Err(EngineError::Cycle(id));
            }
            if seen.insert(s)
                && let Some(saved) = self.saved.get(&s)
            {
                stack.extend(saved.reads.segments.iter().copied());
            }
        }
        let members = self
            .saved
            .remove(&id)
            .map(|s| s.members)
            .unwrap_or_default();
        self.saved.insert(
            id,
            Saved {
                rule,
                members,
                reads,
                time,
            },
        );
        self.rebuild();
        Ok(())
    }

    pub fn remove(&mut self, id: SegmentId) -> Option<Saved> {
        let old = self.saved.remove(&id);
        if old.is_some() {
            self.rebuild();
        }
        old
    }

    fn rebuild(&mut self) {
        self.by_field.clear();
        self.by_stream.clear();
        self.dependents.clear();
        self.timer_keys.clear();
        let mut by_window: HashMap<(StreamKey, i64), Vec<SegmentId>> = HashMap::new();
        let mut ids: Vec<SegmentId> = self.saved.keys().copied().collect();
        ids.sort_unstable();
        for &id in &ids {
            let s = &self.saved[&id];
            for f in &s.reads.fields {
                self.by_field.entry(f.clone()).or_default().push(id);
            }
            for k in &s.reads.streams {
                self.by_stream.entry(k.clone()).or_default().push(id);
                self.timer_keys.entry(k.clone()).or_default();
            }
            for w in &s.reads.windows {
                by_window.entry(w.clone()).or_default().push(id);
                *self
                    .timer_keys
                    .entry(w.0.clone())
                    .or_default()
                    .entry(w.1)
                    .or_default() += 1;
            }
            for r in &s.reads.segments {
                self.dependents.entry(*r).or_default().push(id);
            }
        }
        // Depth-first post-order: a segment after everything it refers to.
        let mut order = Vec::with_capacity(ids.len());
        let mut done = HashSet::new();
        for &id in &ids {
            let mut stack = vec![(id, false)];
            while let Some((s, expanded)) = stack.pop() {
                if expanded {
                    order.push(s);
                    continue;
                }
                if !self.saved.contains_key(&s) || !done.insert(s) {
                    continue;
                }
                stack.push((s, true));
                for r in &self.saved[&s].reads.segments {
                    stack.push((*r, false));
                }
            }
        }
        self.rank = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        self.order = order;
        self.stream_readers = self
            .by_stream
            .iter()
            .map(|(k, direct)| (k.clone(), self.with_dependents(direct)))
            .collect();
        self.window_readers.clear();
        for ((key, length), direct) in by_window {
            let readers = self.with_dependents(&direct);
            self.window_readers
                .entry(key)
                .or_default()
                .insert(length, readers);
        }
    }

    /// `ids` and every saved segment referring to them, directly or not, in dependency
    /// order.
    pub fn with_dependents(&self, ids: &[SegmentId]) -> Vec<SegmentId> {
        let mut seen: HashSet<SegmentId> = HashSet::new();
        let mut stack: Vec<SegmentId> = ids.to_vec();
        while let Some(s) = stack.pop() {
            if seen.insert(s)
                && let Some(d) = self.dependents.get(&s)
            {
                stack.extend(d.iter().copied());
            }
        }
        let mut out: Vec<SegmentId> = seen
            .into_iter()
            .filter(|s| self.rank.contains_key(s))
            .collect();
        out.sort_unstable_by_key(|s| self.rank[s]);
        out
    }

    pub fn readers_of_fields(&self, fields: &[FieldRef]) -> Vec<SegmentId> {
        let direct: Vec<SegmentId> = fields
            .iter()
            .filter_map(|f| self.by_field.get(f))
            .flatten()
            .copied()
            .collect();
        if direct.is_empty() {
            return direct;
        }
        self.with_dependents(&direct)
    }

    /// The segments reading `key`, with the segments referring to them, in dependency
    /// order.
    pub fn readers_of_stream(&self, key: &StreamKey) -> &[SegmentId] {
        self.stream_readers.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn reads_stream(&self, key: &StreamKey) -> bool {
        self.by_stream.contains_key(key)
    }

    /// The segments reading any of `keys`, with the segments referring to them, in
    /// dependency order (from lists prepared when segments change).
    pub fn readers_of_streams(&self, keys: &[&StreamKey]) -> Vec<SegmentId> {
        let mut out: Vec<SegmentId> = keys
            .iter()
            .filter_map(|k| self.stream_readers.get(*k))
            .flatten()
            .copied()
            .collect();
        if keys.len() > 1 {
            out.sort_unstable_by_key(|s| self.rank.get(s).copied().unwrap_or(usize::MAX));
            out.dedup();
        }
        out
    }

    /// The segments reading a rolling window of `length` ms on `key`, with the segments
    /// referring to them, in dependency order.
    pub fn readers_of_window(&self, key: &StreamKey, length: i64) -> &[SegmentId] {
        self.window_readers
            .get(key)
            .and_then(|w| w.get(&length))
            .map_or(&[], Vec::as_slice)
    }

    /// Every stream saved segments read, with the rolling window lengths (ms) read on it
    /// and how many saved segments read each.
    pub fn timer_keys(&self) -> &BTreeMap<StreamKey, BTreeMap<i64, usize>> {
        &self.timer_keys
    }

    /// The saved segments whose rules use relative dates or anniversaries, with the
    /// segments referring to them, in dependency order: what a new day changes.
    pub fn moved_by_today(&self) -> Vec<SegmentId> {
        let direct: Vec<SegmentId> = self
            .saved
            .iter()
            .filter(|(_, s)| s.time.rolling_today)
            .map(|(id, _)| *id)
            .collect();
        if direct.is_empty() {
            return direct;
        }
        self.with_dependents(&direct)
    }

    /// Puts `ids` in dependency order, each once.
    pub fn in_order(&self, ids: &mut Vec<SegmentId>) {
        ids.sort_unstable_by_key(|s| self.rank.get(s).copied().unwrap_or(usize::MAX));
        ids.dedup();
    }

    pub fn heap_bytes(&self) -> usize {
        self.saved
            .values()
            .map(|s| s.members.serialized_size() + 256)
            .sum::<usize>()
    }
}
