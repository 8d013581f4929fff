//! Rule evaluation over the index, two ways that must agree with the reference evaluator
//! (`segmentd_rules::eval`) and with each other:
//!
//! - [`Index::eval_bits`]: the whole account at once, as set algebra over bit sets.
//! - [`Index::decide`]: one contact (re-deciding after a write, explaining).
//!
//! Every negation is the complement of its positive op against the live contacts.

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::{SignedDuration, Span, Timestamp};
use segmentd_rules::Clock;
use segmentd_rules::eval::MAX_SEGMENT_NESTING;
use segmentd_rules::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldCondition, FieldTest, NumberOp,
    Occurrence, PropertyCondition, PropertyTest, Rule, SegmentId, TextOp, Window,
};

use crate::Index;
use crate::bits::Bits;
use crate::chunked::Chunked;
use crate::dict::{Dict, NONE};
use crate::events::{Prop, PropColumn, Stream, TAG_ABSENT, TAG_BOOL, TAG_NUMBER, TAG_TEXT};
use crate::fields::{
    Field, Stored, TextColumn, day_number, month_day, text_bytes_test, text_negated,
};

/// Below this many contacts, evaluation stays on one thread. (Debug builds, i.e. the
/// property tests, take every path on small data.)
const PARALLEL_FROM: usize = if cfg!(debug_assertions) { 1 } else { 200_000 };

/// The cost of deciding one contact's behaviour condition from its slice of a stream,
/// and of one event of a whole-stream scan (a property filter: `PROPS_EVENT_COST`), in
/// the same rough unit. `all` picks the cheaper way per behaviour condition. (Debug
/// builds, i.e. the property tests, decide contact by contact whenever they can.)
const SLOT_COST: u64 = if cfg!(debug_assertions) { 0 } else { 40 };
const PROPS_EVENT_COST: u64 = 2;

/// Contacts decided one by one go on two threads from this many. (Debug builds, i.e. the
/// property tests, split any set.)
const PARALLEL_SLOTS: u64 = if cfg!(debug_assertions) { 2 } else { 4096 };

/// An arena text op reads only the contacts an `all` left when they are fewer than one
/// in this many (a random read each, against a sequential scan of every value).
const TEXT_NARROW: u64 = 4;

/// Whether `rule` refers to a saved segment anywhere.
fn refers(rule: &Rule) -> bool {
    let mut found = false;
    rule.visit(&mut |r| found |= matches!(r, Rule::Segment(_)));
    found
}

/// How segment references are read.
pub(crate) enum Refs {
    /// From the maintained membership (valid at the index's own clock).
    Maintained,
    /// By evaluating the referenced segment's current rule afresh (an explicit clock).
    Fresh(HashMap<SegmentId, Bits>),
}

// ---------------------------------------------------------------------------------------
// Prepared pieces shared by both evaluators
// ---------------------------------------------------------------------------------------

/// A text op reduced to "the value's code is in `codes`", negated or not.
pub(crate) struct TextCodes {
    pub codes: Bits,
    pub negated: bool,
}

impl TextCodes {
    /// The op on a value: `None` is "no value".
    pub fn matches(&self, code: Option<u32>) -> bool {
        let positive = code.is_some_and(|c| self.codes.get(c));
        positive != self.negated
    }
}

pub(crate) fn text_codes(dict: &Dict, op: &TextOp) -> TextCodes {
    let mut codes = Bits::new(dict.len());
    let scan = |codes: &mut Bits, f: &dyn Fn(&str) -> bool| {
        for (c, s) in dict.iter() {
            if f(s) {
                codes.set(c);
            }
        }
    };
    let negated = matches!(
        op,
        TextOp::NotEquals(_) | TextOp::NotContains(_) | TextOp::NotIn(_)
    );
    match op {
        TextOp::Equals(t) | TextOp::NotEquals(t) => {
            if let Some(c) = dict.get(&t.lower) {
                codes.set(c);
            }
        }
        TextOp::In(items) | TextOp::NotIn(items) => {
            for t in items {
                if let Some(c) = dict.get(&t.lower) {
                    codes.set(c);
                }
            }
        }
        TextOp::Contains(t) | TextOp::NotContains(t) => {
            scan(&mut codes, &|s| s.contains(t.lower.as_str()))
        }
        // On bytes (no UTF-8 check per value): a valid needle can only match a valid
        // haystack at a character boundary.
        TextOp::StartsWith(t) => {
            for (c, s) in dict.iter_bytes() {
                if s.starts_with(t.lower.as_bytes()) {
                    codes.set(c);
                }
            }
        }
        TextOp::EndsWith(t) => {
            for (c, s) in dict.iter_bytes() {
                if s.ends_with(t.lower.as_bytes()) {
                    codes.set(c);
                }
            }
        }
    }
    TextCodes { codes, negated }
}

/// The reference's number ops, "`-0` equals `0`", never matching no value except
/// `not_equals`.
pub(crate) fn number_op_matches(op: &NumberOp, value: Option<f64>) -> bool {
    match *op {
        NumberOp::Equals(x) => value.is_some_and(|v| v == x),
        NumberOp::NotEquals(x) => !value.is_some_and(|v| v == x),
        NumberOp::GreaterThan(x) => value.is_some_and(|v| v > x),
        NumberOp::GreaterOrEqual(x) => value.is_some_and(|v| v >= x),
        NumberOp::LessThan(x) => value.is_some_and(|v| v < x),
        NumberOp::LessOrEqual(x) => value.is_some_and(|v| v <= x),
        NumberOp::Between(low, high) => value.is_some_and(|v| low <= v && v <= high),
    }
}

fn resolve_date(d: &DateValue, today: Date) -> Option<i32> {
    match *d {
        DateValue::Absolute(date) => Some(day_number(date)),
        DateValue::Relative(days) => {
            let span = Span::new().try_days(days).ok()?;
            today.checked_add(span).ok().map(day_number)
        }
    }
}

/// A date op reduced to a test on day numbers.
pub(crate) enum DateTest {
    /// `lo <= day <= hi`, negated or not; `None`: the positive op matches no one.
    Range(Option<(i32, i32)>, bool),
    /// The `(month, day)` pairs whose anniversary falls in the window.
    Anniversary(Box<[[bool; 32]; 13]>),
}

impl DateTest {
    pub fn new(op: &DateOp, today: Date) -> Self {
        let at = |d| resolve_date(d, today);
        match op {
            DateOp::Equals(d) => DateTest::Range(at(d).map(|x| (x, x)), false),
            DateOp::NotEquals(d) => DateTest::Range(at(d).map(|x| (x, x)), true),
            DateOp::Before(d) => DateTest::Range(
                at(d).and_then(|x| x.checked_sub(1)).map(|x| (i32::MIN, x)),
                false,
            ),
            DateOp::After(d) => DateTest::Range(
                at(d).and_then(|x| x.checked_add(1)).map(|x| (x, i32::MAX)),
                false,
            ),
            DateOp::Between(a, b) => DateTest::Range(
                match (at(a), at(b)) {
                    (Some(a), Some(b)) if a <= b => Some((a, b)),
                    _ => None,
                },
                false,
            ),
            DateOp::AnniversaryWithin(n) => {
                let mut table = Box::new([[false; 32]; 13]);
                let mut day = today;
                for _ in 0..=*n {
                    table[day.month() as usize][day.day() as usize] = true;
                    // "29 February counts as 28 February in other years."
                    if day.month() == 2 && day.day() == 28 && !day.in_leap_year() {
                        table[2][29] = true;
                    }
                    match day.tomorrow() {
                        Ok(next) => day = next,
                        Err(_) => break,
                    }
                }
                DateTest::Anniversary(table)
            }
        }
    }

    pub fn matches(&self, value: Option<i32>) -> bool {
        match self {
            DateTest::Range(range, negated) => {
                let positive = match (value, range) {
                    (Some(v), Some((lo, hi))) => *lo <= v && v <= *hi,
                    _ => false,
                };
                positive != *negated
            }
            DateTest::Anniversary(table) => value.is_some_and(|v| {
                let (m, d) = month_day(v);
                table[m as usize][d as usize]
            }),
        }
    }

    /// Whether no value matches (the negated ops).
    fn negated(&self) -> bool {
        matches!(self, DateTest::Range(_, true))
    }
}

/// `[lo, hi)` in ms: the event timestamps a behaviour condition reads at `now`.
///
/// Stored timestamps are whole milliseconds, while `now` and window bounds may carry
/// finer digits: `e <= x` is `e < floor(x) + 1`, `e > x` is `e >= floor(x) + 1`,
/// `e >= x` is `e >= ceil(x)`, `e < x` is `e < ceil(x)`.
pub(crate) fn time_range(within: Option<Window>, now: Timestamp) -> (i64, i64) {
    let mut lo = i64::MIN;
    let mut hi = ms_floor(now).saturating_add(1);
    match within {
        None => {}
        Some(Window::LastDays(days)) => {
            let length = SignedDuration::from_secs(i64::from(days) * 24 * 60 * 60);
            if let Ok(start) = now.checked_sub(length) {
                lo = ms_floor(start).saturating_add(1);
            }
        }
        Some(Window::Since(t)) => lo = ms_ceil(t),
        Some(Window::Before(t)) => hi = hi.min(ms_ceil(t)),
        Some(Window::Between(a, b)) => {
            lo = ms_ceil(a);
            hi = hi.min(ms_ceil(b));
        }
    }
    (lo, hi)
}

pub(crate) fn ms_floor(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    ns.div_euclid(1_000_000) as i64
}

fn ms_ceil(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    -((-ns).div_euclid(1_000_000)) as i64
}

/// A text op on dictionary codes: through a code set prepared once (whole-account
/// scans), or directly on the code's string (one contact: no dictionary scan).
enum TextMatch<'a> {
    Codes(TextCodes),
    Direct(&'a TextOp, &'a Dict),
}

impl TextMatch<'_> {
    fn new<'a>(dict: &'a Dict, op: &'a TextOp, whole: bool) -> TextMatch<'a> {
        if whole {
            TextMatch::Codes(text_codes(dict, op))
        } else {
            TextMatch::Direct(op, dict)
        }
    }

    fn matches(&self, code: Option<u32>) -> bool {
        match self {
            TextMatch::Codes(t) => t.matches(code),
            TextMatch::Direct(op, dict) => text_op_matches(op, code.map(|c| dict.str(c))),
        }
    }
}

/// A property condition, prepared.
enum PropTest<'a> {
    HasValue,
    HasNoValue,
    IsTrue,
    IsFalse,
    Text(TextMatch<'a>),
    Number(NumberOp),
}

struct PreparedProp<'a> {
    /// `None`: no event ever had this path (every event misses it).
    path: Option<u32>,
    /// The path's column in the condition's stream, found once rather than per event.
    col: Option<&'a PropColumn>,
    test: PropTest<'a>,
}

impl PreparedProp<'_> {
    fn passes(&self, value: Option<Prop>) -> bool {
        match &self.test {
            PropTest::HasValue => value.is_some(),
            PropTest::HasNoValue => value.is_none(),
            PropTest::IsTrue => value == Some(Prop::Boolean(true)),
            PropTest::IsFalse => value == Some(Prop::Boolean(false)),
            PropTest::Text(t) => match value {
                None => t.matches(None),
                Some(Prop::Text(c)) => t.matches(Some(c)),
                Some(_) => false,
            },
            PropTest::Number(op) => match value {
                None => number_op_matches(op, None),
                Some(Prop::Number(x)) => number_op_matches(op, Some(x)),
                Some(_) => false,
            },
        }
    }
}

/// Which payloads pass a behaviour condition's filters.
enum PayloadFilter<'a> {
    Any,
    Campaign(u32),
    Url(TextMatch<'a>),
    Props(Vec<PreparedProp<'a>>),
}

/// A behaviour condition, prepared against the index.
pub(crate) struct Behaviour<'a> {
    stream: Option<&'a Stream>,
    lo: i64,
    hi: i64,
    filter: PayloadFilter<'a>,
    occurrence: Occurrence,
}

/// Per record of a custom stream: 1 when it passes every property filter.
fn props_mask(stream: &Stream, props: &[PreparedProp<'_>]) -> Vec<u8> {
    let mut mask = vec![1u8; stream.props.records as usize];
    for p in props {
        let absent = p.passes(None);
        let col = p.path.and_then(|path| stream.props.column(path));
        let Some(col) = col else {
            if !absent {
                mask.fill(0);
            }
            continue;
        };
        match &p.test {
            PropTest::HasValue => col.and_mask(&mut mask, absent, |t, _, _| t != TAG_ABSENT),
            PropTest::HasNoValue => col.and_mask(&mut mask, absent, |t, _, _| t == TAG_ABSENT),
            PropTest::IsTrue => {
                col.and_mask(&mut mask, absent, |t, _, c| (t == TAG_BOOL) & (c == 1))
            }
            PropTest::IsFalse => {
                col.and_mask(&mut mask, absent, |t, _, c| (t == TAG_BOOL) & (c == 0))
            }
            PropTest::Text(m) => col.and_mask(&mut mask, absent, |t, _, c| {
                ((t == TAG_TEXT) & m.matches(Some(c))) | ((t == TAG_ABSENT) & absent)
            }),
            PropTest::Number(op) => {
                let none = absent;
                let pos = |x: f64| match *op {
                    NumberOp::Equals(v) | NumberOp::NotEquals(v) => x == v,
                    NumberOp::GreaterThan(v) => x > v,
                    NumberOp::GreaterOrEqual(v) => x >= v,
                    NumberOp::LessThan(v) => x < v,
                    NumberOp::LessOrEqual(v) => x <= v,
                    NumberOp::Between(lo, hi) => (lo <= x) & (x <= hi),
                };
                let negated = matches!(op, NumberOp::NotEquals(_));
                col.and_mask(&mut mask, absent, |t, x, _| {
                    ((t == TAG_NUMBER) & (pos(x) != negated)) | ((t == TAG_ABSENT) & none)
                })
            }
        }
    }
    mask
}

impl Behaviour<'_> {
    fn passes(&self, _index: &Index, payload: u32) -> bool {
        match &self.filter {
            PayloadFilter::Any => true,
            PayloadFilter::Campaign(c) => payload == *c,
            PayloadFilter::Url(t) => t.matches(Some(payload)),
            PayloadFilter::Props(props) => props
                .iter()
                .all(|p| p.passes(p.col.and_then(|c| c.get(payload)))),
        }
    }

    pub fn count(&self, index: &Index, slot: u32) -> u64 {
        let mut n = 0;
        if let Some(s) = self.stream {
            s.for_slot_in(slot, self.lo, self.hi, |t, p| {
                if self.lo <= t && t < self.hi && self.passes(index, p) {
                    n += 1;
                }
            });
        }
        n
    }

    /// Whether `slot` matches: from the stream's all-time totals when they answer
    /// exactly, else by counting its events.
    pub fn decide_slot(&self, index: &Index, slot: u32) -> bool {
        if let Some(t) = self.totals() {
            return self.decide_count(u64::from(t.get(slot as usize).unwrap_or(0)));
        }
        self.decide_count(self.count(index, slot))
    }

    /// The stream's per-slot totals, when they decide this condition: every event
    /// counts (no filter, a window holding every event) and the thresholds are below the
    /// saturation.
    fn totals(&self) -> Option<&Chunked<u8>> {
        if !matches!(self.filter, PayloadFilter::Any) {
            return None;
        }
        let small = match self.occurrence {
            Occurrence::Occurred {
                min_count,
                max_count,
            } => min_count < u32::from(u8::MAX) && max_count.is_none_or(|m| m < u32::from(u8::MAX)),
            Occurrence::NotOccurred => true,
        };
        if !small {
            return None;
        }
        self.stream?.totals_in(self.lo, self.hi)
    }

    pub fn decide_count(&self, count: u64) -> bool {
        match self.occurrence {
            Occurrence::Occurred {
                min_count,
                max_count,
            } => count >= u64::from(min_count) && max_count.is_none_or(|m| count <= u64::from(m)),
            Occurrence::NotOccurred => count == 0,
        }
    }
}

impl Index {
    pub(crate) fn field(&self, c: &FieldCondition) -> Option<&Field> {
        self.fields.get(&c.field)
    }

    /// `whole`: prepared for a whole-account pass (text ops turned into code sets once)
    /// rather than for one contact.
    pub(crate) fn prepare_behaviour<'a>(
        &'a self,
        b: &'a BehaviourCondition,
        clock: &Clock,
        whole: bool,
    ) -> Behaviour<'a> {
        let (lo, hi) = time_range(b.within, clock.now);
        let (stream, filter) = match &b.source {
            EventSource::System { kind, campaign } => {
                let stream = Some(&self.events.system[*kind as usize]);
                let filter = match campaign {
                    None => PayloadFilter::Any,
                    // An unknown campaign matches nothing: `NONE` is the payload of
                    // events without a campaign, so use a code no event has.
                    Some(c) => {
                        PayloadFilter::Campaign(self.events.campaigns.get(c).unwrap_or(NONE - 1))
                    }
                };
                (stream, filter)
            }
            EventSource::Custom { name, filters } => {
                let props = &self.events.properties;
                let stream = self.events.custom.get(name);
                let prepared = filters
                    .iter()
                    .map(|f: &PropertyCondition| {
                        let path = props.paths.get(&f.path).copied();
                        (
                            f,
                            path,
                            path.zip(stream).and_then(|(p, s)| s.props.column(p)),
                        )
                    })
                    .map(|(f, path, col)| PreparedProp {
                        path,
                        col,
                        test: match &f.test {
                            PropertyTest::HasValue => PropTest::HasValue,
                            PropertyTest::HasNoValue => PropTest::HasNoValue,
                            PropertyTest::IsTrue => PropTest::IsTrue,
                            PropertyTest::IsFalse => PropTest::IsFalse,
                            PropertyTest::Text(op) => {
                                PropTest::Text(TextMatch::new(&props.strings, op, whole))
                            }
                            PropertyTest::Number(op) => PropTest::Number(op.clone()),
                        },
                    })
                    .collect::<Vec<_>>();
                let filter = if prepared.is_empty() {
                    PayloadFilter::Any
                } else {
                    PayloadFilter::Props(prepared)
                };
                (stream, filter)
            }
            EventSource::Visit { url } => (
                Some(&self.events.visits),
                match url {
                    None => PayloadFilter::Any,
                    Some(op) => PayloadFilter::Url(TextMatch::new(&self.events.urls, op, whole)),
                },
            ),
        };
        Behaviour {
            stream,
            lo,
            hi,
            filter,
            occurrence: b.occurrence,
        }
    }

    // -----------------------------------------------------------------------------------
    // Whole account
    // -----------------------------------------------------------------------------------

    /// The live contacts matching `rule` at `clock`.
    pub(crate) fn eval_bits(
        &self,
        rule: &Rule,
        clock: &Clock,
        refs: &mut Refs,
        depth: usize,
    ) -> Bits {
        self.eval_node(rule, clock, refs, depth, self.alive.len() >= PARALLEL_FROM)
    }

    /// `par`: independent children may be evaluated on two threads (only at one level of
    /// the tree, so that the two cores are not oversubscribed).
    fn eval_node(
        &self,
        rule: &Rule,
        clock: &Clock,
        refs: &mut Refs,
        depth: usize,
        par: bool,
    ) -> Bits {
        match rule {
            Rule::All(children) => {
                // Fields, references and groups first; behaviour conditions last, so that
                // when the other children leave few contacts, those are decided one by
                // one (a short slice of their stream each) instead of scanning a stream.
                // Text ops on arena columns (a scan of every value) likewise go after
                // the cheap children, and read only the contacts those left when few.
                let (late, early): (Vec<&Rule>, Vec<&Rule>) = children
                    .iter()
                    .partition(|c| matches!(c, Rule::Behaviour(_)) || self.arena_text(c).is_some());
                let mut acc = self.alive.clone();
                for b in self.eval_children(&early, clock, refs, depth, par) {
                    acc.and_with(&b);
                }
                let n = self.alive.len() as u64;
                for child in &late {
                    let Some((col, op)) = self.arena_text(child) else {
                        continue;
                    };
                    if cfg!(debug_assertions) || acc.count() * TEXT_NARROW < n {
                        let test = text_bytes_test(op);
                        let negated = text_negated(op);
                        acc = self.within(&acc, par, |slot| {
                            col.arena_bytes(slot).is_some_and(&test) != negated
                        });
                    } else {
                        acc.and_with(&self.eval_node(child, clock, refs, depth, par));
                    }
                }
                // Each behaviour condition that costs less decided per remaining contact
                // (a block-index lookup each) than as a scan of its whole stream.
                let mut scan: Vec<&Rule> = Vec::new();
                let mut left = acc.count();
                for child in late {
                    let Rule::Behaviour(b) = child else { continue };
                    let prepared = self.prepare_behaviour(b, clock, true);
                    let per_event = match prepared.filter {
                        PayloadFilter::Props(_) => PROPS_EVENT_COST,
                        _ => 1,
                    };
                    let (events, runs) = prepared.stream.map_or((0, 0), |s| {
                        (
                            s.events_in(prepared.lo, prepared.hi) as u64,
                            s.runs_in(prepared.lo, prepared.hi) as u64,
                        )
                    });
                    // A contact's lookup searches each run.
                    let slot_cost = SLOT_COST * (1 + runs) / 2;
                    if !early.is_empty() && left * slot_cost <= events * per_event {
                        acc = self.behaviour_within(&prepared, &acc, par);
                        left = acc.count();
                    } else {
                        scan.push(child);
                    }
                }
                for b in self.eval_children(&scan, clock, refs, depth, par) {
                    acc.and_with(&b);
                }
                acc
            }
            Rule::Any(children) => {
                let children: Vec<&Rule> = children.iter().collect();
                let mut acc = Bits::new(self.alive.len());
                for b in self.eval_children(&children, clock, refs, depth, par) {
                    acc.or_with(&b);
                }
                acc
            }
            Rule::Not(child) => {
                let mut b = self.eval_node(child, clock, refs, depth, par);
                b.complement_within(&self.alive);
                b
            }
            Rule::Field(c) => {
                let mut b = self.field_bits(c, clock);
                b.and_with(&self.alive);
                b
            }
            Rule::Behaviour(b) => self.behaviour_bits(b, clock, par),
            Rule::Segment(s) => {
                let mut b = self.segment_bits(s.segment, clock, refs, depth);
                b.and_with(&self.alive);
                if !s.member {
                    b.complement_within(&self.alive);
                }
                b
            }
        }
    }

    /// The arena text column and op of a text condition on an arena column.
    fn arena_text<'r>(&'r self, rule: &'r Rule) -> Option<(&'r TextColumn, &'r TextOp)> {
        let Rule::Field(c) = rule else { return None };
        let FieldTest::Text(op) = &c.test else {
            return None;
        };
        let col = self.field(c)?.text.as_ref()?;
        col.is_arena().then_some((col, op))
    }

    /// Each child's set, on two threads when allowed and worth it. A thread of its own
    /// reads segment references only from maintained membership (nothing to share), so
    /// fresh evaluation goes parallel only when the children refer to no segment.
    fn eval_children(
        &self,
        children: &[&Rule],
        clock: &Clock,
        refs: &mut Refs,
        depth: usize,
        par: bool,
    ) -> Vec<Bits> {
        let parallel = par
            && children.len() >= 2
            && (matches!(refs, Refs::Maintained) || !children.iter().any(|c| refers(c)));
        if !parallel {
            return children
                .iter()
                .map(|c| self.eval_node(c, clock, refs, depth, par))
                .collect();
        }
        // Alternate the children between the two threads.
        type Share<'r> = Vec<(usize, &'r Rule)>;
        let (mine, theirs): (Share<'_>, Share<'_>) = children
            .iter()
            .copied()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        let mut out: Vec<Option<Bits>> = vec![None; children.len()];
        let maintained = matches!(refs, Refs::Maintained);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let mut refs = if maintained {
                    Refs::Maintained
                } else {
                    Refs::Fresh(HashMap::new())
                };
                theirs
                    .iter()
                    .map(|(i, c)| (*i, self.eval_node(c, clock, &mut refs, depth, false)))
                    .collect::<Vec<_>>()
            });
            for (i, c) in &mine {
                out[*i] = Some(self.eval_node(c, clock, refs, depth, false));
            }
            match other.join() {
                Ok(results) => {
                    for (i, b) in results {
                        out[i] = Some(b);
                    }
                }
                Err(_) => {
                    // The other thread failed (cannot happen short of a bug): do its
                    // share here.
                    for (i, c) in &theirs {
                        out[*i] = Some(self.eval_node(c, clock, refs, depth, false));
                    }
                }
            }
        });
        out.into_iter().flatten().collect()
    }

    /// The contacts of `within` that match behaviour condition `b`, decided one by one.
    /// `par`: on two threads (each half of the slots) when they are many.
    fn behaviour_within(&self, prepared: &Behaviour<'_>, within: &Bits, par: bool) -> Bits {
        self.within(within, par, |slot| prepared.decide_slot(self, slot))
    }

    /// The slots of `within` passing `decide`; on two threads (each half of the slots)
    /// when `par` and they are many.
    fn within(&self, within: &Bits, par: bool, decide: impl Fn(u32) -> bool + Sync) -> Bits {
        let n = self.alive.len();
        let part = |from: u32, to: u32| {
            let mut out = Bits::new(n);
            for slot in within
                .iter()
                .skip_while(|&s| s < from)
                .take_while(|&s| s < to)
            {
                if decide(slot) {
                    out.set(slot);
                }
            }
            out
        };
        let count = within.count();
        if !par || count < PARALLEL_SLOTS {
            return part(0, u32::MAX);
        }
        // Split at the middle member, so that both threads decide as many contacts.
        let mid = within.iter().nth((count / 2) as usize).unwrap_or(u32::MAX);
        let mut out = std::thread::scope(|scope| {
            let high = scope.spawn(|| part(mid, u32::MAX));
            let mut low = part(0, mid);
            match high.join() {
                Ok(h) => low.or_with(&h),
                // The other thread failed (cannot happen short of a bug): redo its half.
                Err(_) => low.or_with(&part(mid, u32::MAX)),
            }
            low
        });
        out.grow(n);
        out
    }

    fn segment_bits(&self, id: SegmentId, clock: &Clock, refs: &mut Refs, depth: usize) -> Bits {
        let n = self.alive.len();
        match refs {
            Refs::Maintained => match self.segments.saved.get(&id) {
                Some(s) => Bits::from_roaring(&s.members, n),
                None => Bits::new(n),
            },
            Refs::Fresh(memo) => {
                if let Some(b) = memo.get(&id) {
                    return b.clone();
                }
                if depth >= MAX_SEGMENT_NESTING {
                    return Bits::new(n);
                }
                let b = match self.segments.saved.get(&id) {
                    Some(s) => self.eval_bits(&s.rule, clock, refs, depth + 1),
                    None => Bits::new(n),
                };
                if let Refs::Fresh(memo) = refs {
                    memo.insert(id, b.clone());
                }
                b
            }
        }
    }

    fn field_bits(&self, c: &FieldCondition, clock: &Clock) -> Bits {
        let n = self.alive.len();
        let mut out = Bits::new(n);
        let field = self.field(c);
        // The positive op's set; `negated` ops are its complement.
        let negated = match &c.test {
            FieldTest::HasValue => {
                if let Some(f) = field {
                    out.or_with(&f.present);
                }
                false
            }
            FieldTest::HasNoValue => {
                if let Some(f) = field {
                    out.or_with(&f.present);
                }
                true
            }
            FieldTest::Text(op) => {
                if let Some(col) = field.and_then(|f| f.text.as_ref()) {
                    col.select_positive(op, &mut out);
                }
                text_negated(op)
            }
            FieldTest::Number(op) => {
                let negated = matches!(op, NumberOp::NotEquals(_));
                let positive = match op.clone() {
                    NumberOp::NotEquals(x) => NumberOp::Equals(x),
                    other => other,
                };
                if let Some(col) = field.and_then(|f| f.number.as_ref()) {
                    // Branch-free over the whole column, then keep the slots with a value.
                    match positive {
                        NumberOp::Equals(x) | NumberOp::NotEquals(x) => {
                            col.fill(&mut out, |v| v == x)
                        }
                        NumberOp::GreaterThan(x) => col.fill(&mut out, |v| v > x),
                        NumberOp::GreaterOrEqual(x) => col.fill(&mut out, |v| v >= x),
                        NumberOp::LessThan(x) => col.fill(&mut out, |v| v < x),
                        NumberOp::LessOrEqual(x) => col.fill(&mut out, |v| v <= x),
                        NumberOp::Between(lo, hi) => col.fill(&mut out, |v| (lo <= v) & (v <= hi)),
                    }
                    out.and_with(&col.has);
                }
                negated
            }
            FieldTest::Date(op) => {
                let test = DateTest::new(op, clock.today);
                let negated = test.negated();
                if let Some(col) = field.and_then(|f| f.date.as_ref()) {
                    // The positive op (the negation flipped back), then the slots with a
                    // value.
                    match &test {
                        DateTest::Range(None, _) => {}
                        &DateTest::Range(Some((lo, hi)), _) => {
                            out.fill_from_chunked(&col.days, |d| (lo <= d) & (d <= hi))
                        }
                        DateTest::Anniversary(_) => {
                            out.fill_from_chunked(&col.days, |d| test.matches(Some(d)))
                        }
                    }
                    out.and_with(&col.has);
                }
                negated
            }
            FieldTest::IsTrue => {
                if let Some(b) = field.and_then(|f| f.boolean.as_ref()) {
                    out.or_with(&b.is_true);
                }
                false
            }
            FieldTest::IsFalse => {
                if let Some(b) = field.and_then(|f| f.boolean.as_ref()) {
                    out.or_with(&b.is_false);
                }
                false
            }
        };
        if negated {
            out.complement_within(&self.alive);
        }
        out
    }

    /// `par`: the stream may be scanned on two threads.
    fn behaviour_bits(&self, b: &BehaviourCondition, clock: &Clock, par: bool) -> Bits {
        let prepared = self.prepare_behaviour(b, clock, true);
        let n = self.alive.len();
        if let Some(totals) = prepared.totals() {
            let mut out = Bits::new(n);
            out.fill_from_chunked(totals, |c| prepared.decide_count(u64::from(c)));
            // Slots past the totals have no event.
            if totals.len() < n && prepared.decide_count(0) {
                for s in totals.len()..n {
                    out.set(s as u32);
                }
            }
            out.and_with(&self.alive);
            return out;
        }
        let mut counts = vec![0u32; n];
        if let Some(stream) = prepared.stream {
            let (lo, hi) = (prepared.lo, prepared.hi);
            // One closure per filter kind, so that the per-event test is inlined.
            match &prepared.filter {
                PayloadFilter::Any => {
                    stream.count_into::<true, _>(lo, hi, |_| true, &mut counts, par)
                }
                PayloadFilter::Campaign(c) => {
                    stream.count_into::<true, _>(lo, hi, |p| p == *c, &mut counts, par)
                }
                PayloadFilter::Url(t) => {
                    stream.count_into::<true, _>(lo, hi, |p| t.matches(Some(p)), &mut counts, par)
                }
                PayloadFilter::Props(props) => {
                    // Which records pass, one columnar pass per filter.
                    let mask = props_mask(stream, props);
                    stream.count_into::<true, _>(
                        lo,
                        hi,
                        |p| mask.get(p as usize).is_some_and(|&m| m != 0),
                        &mut counts,
                        par,
                    )
                }
            }
        }
        let mut out = Bits::new(n);
        out.fill_from(&counts, |c| prepared.decide_count(u64::from(c)));
        out.and_with(&self.alive);
        out
    }

    // -----------------------------------------------------------------------------------
    // One contact
    // -----------------------------------------------------------------------------------

    /// Whether live contact `slot` matches `rule` at `clock`.
    pub(crate) fn decide(
        &self,
        rule: &Rule,
        slot: u32,
        clock: &Clock,
        refs: RefMode,
        depth: usize,
    ) -> bool {
        match rule {
            Rule::All(children) => children
                .iter()
                .all(|c| self.decide(c, slot, clock, refs, depth)),
            Rule::Any(children) => children
                .iter()
                .any(|c| self.decide(c, slot, clock, refs, depth)),
            Rule::Not(child) => !self.decide(child, slot, clock, refs, depth),
            Rule::Field(c) => self.decide_field(c, slot, clock),
            Rule::Behaviour(b) => {
                let p = self.prepare_behaviour(b, clock, false);
                p.decide_slot(self, slot)
            }
            Rule::Segment(s) => self.in_segment(s.segment, slot, clock, refs, depth) == s.member,
        }
    }

    pub(crate) fn in_segment(
        &self,
        id: SegmentId,
        slot: u32,
        clock: &Clock,
        refs: RefMode,
        depth: usize,
    ) -> bool {
        match refs {
            RefMode::Maintained => self
                .segments
                .saved
                .get(&id)
                .is_some_and(|s| s.members.contains(slot)),
            RefMode::Fresh => {
                depth < MAX_SEGMENT_NESTING
                    && self
                        .segments
                        .saved
                        .get(&id)
                        .is_some_and(|s| self.decide(&s.rule, slot, clock, refs, depth + 1))
            }
        }
    }

    pub(crate) fn decide_field(&self, c: &FieldCondition, slot: u32, clock: &Clock) -> bool {
        let value = self.field(c).and_then(|f| f.get(slot));
        match &c.test {
            FieldTest::HasValue => value.is_some(),
            FieldTest::HasNoValue => value.is_none(),
            FieldTest::Text(op) => {
                let v = match value {
                    Some(Stored::Text(s)) => Some(s),
                    _ => None,
                };
                text_op_matches(op, v)
            }
            FieldTest::Number(op) => number_op_matches(
                op,
                match value {
                    Some(Stored::Number(x)) => Some(x),
                    _ => None,
                },
            ),
            FieldTest::Date(op) => DateTest::new(op, clock.today).matches(match value {
                Some(Stored::Date(d)) => Some(d),
                _ => None,
            }),
            FieldTest::IsTrue => value == Some(Stored::Boolean(true)),
            FieldTest::IsFalse => value == Some(Stored::Boolean(false)),
        }
    }
}

/// How [`Index::decide`] reads segment references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefMode {
    Maintained,
    Fresh,
}

/// A text op on an already lowercased value.
pub(crate) fn text_op_matches(op: &TextOp, v: Option<&str>) -> bool {
    let eq = |t: &segmentd_rules::rule::Text| v.is_some_and(|v| v == t.lower);
    match op {
        TextOp::Equals(t) => eq(t),
        TextOp::NotEquals(t) => !eq(t),
        TextOp::Contains(t) => v.is_some_and(|v| v.contains(t.lower.as_str())),
        TextOp::NotContains(t) => !v.is_some_and(|v| v.contains(t.lower.as_str())),
        TextOp::StartsWith(t) => v.is_some_and(|v| v.starts_with(t.lower.as_str())),
        TextOp::EndsWith(t) => v.is_some_and(|v| v.ends_with(t.lower.as_str())),
        TextOp::In(items) => items.iter().any(eq),
        TextOp::NotIn(items) => !items.iter().any(eq),
    }
}
