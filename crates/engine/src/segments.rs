//! Saved segments: rules, maintained membership, what each rule reads (the inverted map
//! from field / event stream to segments) and the dependency order of references.

use std::collections::{BTreeSet, HashMap, HashSet};

use roaring::RoaringBitmap;
use segmentd_rules::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldRef, FieldTest, Rule, SegmentId,
    Window,
};

use crate::EngineError;
use crate::events::{Events, Stream};

/// An event stream a rule can read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
            time.rolling_now |= matches!(b.within, Some(Window::LastDays(_)));
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
        let mut ids: Vec<SegmentId> = self.saved.keys().copied().collect();
        ids.sort_unstable();
        for &id in &ids {
            let s = &self.saved[&id];
            for f in &s.reads.fields {
                self.by_field.entry(f.clone()).or_default().push(id);
            }
            for k in &s.reads.streams {
                self.by_stream.entry(k.clone()).or_default().push(id);
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

    pub fn heap_bytes(&self) -> usize {
        self.saved
            .values()
            .map(|s| s.members.serialized_size() + 256)
            .sum::<usize>()
    }
}
