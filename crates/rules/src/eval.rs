//! The reference evaluator: decides whether ONE contact matches a rule at a given clock.
//!
//! It is the oracle for the fast engine, so it is written to be obviously right rather
//! than fast: plain loops, one short function per sentence of `spec/rules.md` (quoted in
//! the comments), and every negation written as `!positive` so that an op and its
//! negation always split the contacts in two.
//!
//! Choices of this module beyond `docs/semantics.md` are marked "Decision:".

use std::collections::HashSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde_json::Value;

use crate::data::{ContactData, CustomEvent, FieldValue, SystemEvent, Visit};
use crate::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldCondition, FieldRef, FieldTest,
    NumberOp, Occurrence, PropertyCondition, PropertyTest, Rule, SegmentCondition, SegmentId, Text,
    TextOp, Window,
};

/// The evaluation time and the calendar day it falls on in the account's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Clock {
    pub now: Timestamp,
    pub today: Date,
}

impl Clock {
    pub fn new(now: Timestamp, time_zone: &TimeZone) -> Self {
        Clock {
            now,
            today: time_zone.to_datetime(now).date(),
        }
    }
}

/// How the evaluator finds the current rule of a referenced segment.
pub trait SegmentRules {
    fn rule(&self, id: SegmentId) -> Option<&Rule>;
}

impl SegmentRules for std::collections::HashMap<SegmentId, Rule> {
    fn rule(&self, id: SegmentId) -> Option<&Rule> {
        self.get(&id)
    }
}

/// How many segment references may be followed inside one another before the evaluator
/// gives up. Cycles are validation errors, so this is only a guard: a segment reached
/// deeper than this is treated as empty (like an unknown segment), so the stack can never
/// overflow and `not_in` stays the exact complement of `in`.
pub const MAX_SEGMENT_NESTING: usize = 64;

/// Decides whether `contact` matches `rule` at `clock`.
pub fn is_member(
    rule: &Rule,
    contact: &ContactData,
    clock: &Clock,
    segments: &dyn SegmentRules,
) -> bool {
    let ctx = Context {
        contact,
        events: StoredEvents::of(contact),
        clock,
        segments,
    };
    rule_matches(rule, &ctx, 0)
}

/// The number of the contact's events that behaviour condition `b` counts at `clock`
/// (after duplicate ids are dropped, through every filter): what `occurred` compares with
/// `min_count`/`max_count`. For explanations; `is_member` decides membership.
pub fn matching_event_count(b: &BehaviourCondition, contact: &ContactData, clock: &Clock) -> u64 {
    let no_segments: std::collections::HashMap<SegmentId, Rule> = std::collections::HashMap::new();
    let ctx = Context {
        contact,
        events: StoredEvents::of(contact),
        clock,
        segments: &no_segments,
    };
    count_matching_events(b, &ctx)
}

/// Everything one evaluation reads.
struct Context<'a> {
    contact: &'a ContactData,
    events: StoredEvents<'a>,
    clock: &'a Clock,
    segments: &'a dyn SegmentRules,
}

// ---------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------

/// `depth` is the number of segment references followed to get here.
fn rule_matches(rule: &Rule, ctx: &Context<'_>, depth: usize) -> bool {
    match rule {
        Rule::All(children) => all_match(children, ctx, depth),
        Rule::Any(children) => any_matches(children, ctx, depth),
        // `{"not": rule}`: the complement.
        Rule::Not(child) => !rule_matches(child, ctx, depth),
        Rule::Field(c) => field_matches(c, ctx.contact, ctx.clock.today),
        Rule::Behaviour(b) => behaviour_matches(b, ctx),
        Rule::Segment(s) => segment_condition_matches(s, ctx, depth),
    }
}

/// "`{"all": [rule, ...]}` every child matches". (An empty list, which validation
/// refuses, would match everyone.)
fn all_match(children: &[Rule], ctx: &Context<'_>, depth: usize) -> bool {
    for child in children {
        if !rule_matches(child, ctx, depth) {
            return false;
        }
    }
    true
}

/// "`{"any": [rule, ...]}` at least one child matches". (An empty list matches no one.)
fn any_matches(children: &[Rule], ctx: &Context<'_>, depth: usize) -> bool {
    for child in children {
        if rule_matches(child, ctx, depth) {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// Field conditions
// ---------------------------------------------------------------------------------------

fn field_matches(c: &FieldCondition, contact: &ContactData, today: Date) -> bool {
    let field = &c.field;
    match &c.test {
        FieldTest::HasValue => field_has_value(contact, field),
        // "A contact with no value matches only `has_no_value` and the negations."
        FieldTest::HasNoValue => !field_has_value(contact, field),
        FieldTest::Text(op) => text_op_matches(op, text_value(contact, field)),
        FieldTest::Number(op) => number_op_matches(op, number_value(contact, field)),
        FieldTest::Date(op) => date_op_matches(op, date_value(contact, field), today),
        FieldTest::IsTrue => boolean_value(contact, field) == Some(true),
        FieldTest::IsFalse => boolean_value(contact, field) == Some(false),
    }
}

/// "A cleared value and a never-set value are the same thing, 'no value'."
///
/// Decision: an empty `email`/`phone` or an empty stored text (which the API never
/// stores: writing `""` clears) is read as no value too.
fn field_has_value(contact: &ContactData, field: &FieldRef) -> bool {
    match field {
        FieldRef::Email => non_empty(contact.email.as_deref()).is_some(),
        FieldRef::Phone => non_empty(contact.phone.as_deref()).is_some(),
        FieldRef::Custom(key) => match contact.fields.get(key) {
            None => false,
            Some(FieldValue::Text(s)) => !s.is_empty(),
            Some(_) => true,
        },
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// "`email` and `phone` can be used in rules as built-in text fields."
///
/// Decision: a stored value of another type than the condition's (impossible through
/// the API, which checks every write against the field's type) is read as no value by
/// the typed ops, so the negations still complement their positive ops.
fn text_value<'a>(contact: &'a ContactData, field: &FieldRef) -> Option<&'a str> {
    match field {
        FieldRef::Email => non_empty(contact.email.as_deref()),
        FieldRef::Phone => non_empty(contact.phone.as_deref()),
        FieldRef::Custom(key) => match contact.fields.get(key) {
            Some(FieldValue::Text(s)) => non_empty(Some(s)),
            _ => None,
        },
    }
}

fn number_value(contact: &ContactData, field: &FieldRef) -> Option<f64> {
    match custom_value(contact, field) {
        Some(FieldValue::Number(x)) => Some(*x),
        _ => None,
    }
}

fn date_value(contact: &ContactData, field: &FieldRef) -> Option<Date> {
    match custom_value(contact, field) {
        Some(FieldValue::Date(d)) => Some(*d),
        _ => None,
    }
}

fn boolean_value(contact: &ContactData, field: &FieldRef) -> Option<bool> {
    match custom_value(contact, field) {
        Some(FieldValue::Boolean(b)) => Some(*b),
        _ => None,
    }
}

fn custom_value<'a>(contact: &'a ContactData, field: &FieldRef) -> Option<&'a FieldValue> {
    match field {
        FieldRef::Custom(key) => contact.fields.get(key),
        FieldRef::Email | FieldRef::Phone => None,
    }
}

// ---------------------------------------------------------------------------------------
// Text ops (fields, visit URLs, event properties)
// ---------------------------------------------------------------------------------------

/// `value: None` is "no value". "Every negation is the exact complement of its positive
/// op", so each negation below is written as `!positive`.
fn text_op_matches(op: &TextOp, value: Option<&str>) -> bool {
    // "Text comparison ignores case: both sides are lowercased (Unicode lowercase
    // mapping) first. Whitespace counts." The rule's side is lowercased in `Text::lower`.
    let value = value.map(str::to_lowercase);
    let value = value.as_deref();
    match op {
        TextOp::Equals(t) => text_equals(value, t),
        TextOp::NotEquals(t) => !text_equals(value, t),
        TextOp::Contains(t) => text_contains(value, t),
        TextOp::NotContains(t) => !text_contains(value, t),
        TextOp::StartsWith(t) => value.is_some_and(|v| v.starts_with(t.lower.as_str())),
        TextOp::EndsWith(t) => value.is_some_and(|v| v.ends_with(t.lower.as_str())),
        TextOp::In(items) => text_in(value, items),
        TextOp::NotIn(items) => !text_in(value, items),
    }
}

/// `lower_value` is already lowercased.
fn text_equals(lower_value: Option<&str>, t: &Text) -> bool {
    lower_value.is_some_and(|v| v == t.lower)
}

fn text_contains(lower_value: Option<&str>, t: &Text) -> bool {
    lower_value.is_some_and(|v| v.contains(t.lower.as_str()))
}

fn text_in(lower_value: Option<&str>, items: &[Text]) -> bool {
    for item in items {
        if text_equals(lower_value, item) {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// Number ops (fields and event properties)
// ---------------------------------------------------------------------------------------

/// "`greater_than` etc. never match a contact with no value"; `not_equals` does.
/// "Numbers compare as IEEE doubles; `-0` equals `0`" (semantics.md): plain `==` on f64.
fn number_op_matches(op: &NumberOp, value: Option<f64>) -> bool {
    match *op {
        NumberOp::Equals(x) => number_equals(value, x),
        NumberOp::NotEquals(x) => !number_equals(value, x),
        NumberOp::GreaterThan(x) => value.is_some_and(|v| v > x),
        NumberOp::GreaterOrEqual(x) => value.is_some_and(|v| v >= x),
        NumberOp::LessThan(x) => value.is_some_and(|v| v < x),
        NumberOp::LessOrEqual(x) => value.is_some_and(|v| v <= x),
        // "`between` is inclusive at both ends".
        NumberOp::Between(low, high) => value.is_some_and(|v| low <= v && v <= high),
    }
}

fn number_equals(value: Option<f64>, x: f64) -> bool {
    value.is_some_and(|v| v == x)
}

// ---------------------------------------------------------------------------------------
// Date ops
// ---------------------------------------------------------------------------------------

fn date_op_matches(op: &DateOp, value: Option<Date>, today: Date) -> bool {
    match op {
        // "`equals` is the same calendar day."
        DateOp::Equals(d) => date_equals(value, d, today),
        // "a date's `not_equals` match[es] contacts with no value."
        DateOp::NotEquals(d) => !date_equals(value, d, today),
        // "`before`/`after` are strict".
        DateOp::Before(d) => date_compare(value, d, today, |v, d| v < d),
        DateOp::After(d) => date_compare(value, d, today, |v, d| v > d),
        DateOp::Between(from, to) => date_between(value, from, to, today),
        DateOp::AnniversaryWithin(days) => anniversary_within(value, *days, today),
    }
}

fn date_equals(value: Option<Date>, d: &DateValue, today: Date) -> bool {
    date_compare(value, d, today, |v, d| v == d)
}

/// Applies `test(value, resolved date)`; false when there is no value or the relative
/// date falls outside the calendar jiff can represent.
fn date_compare(
    value: Option<Date>,
    d: &DateValue,
    today: Date,
    test: fn(Date, Date) -> bool,
) -> bool {
    match (value, resolve_date(d, today)) {
        (Some(v), Some(d)) => test(v, d),
        _ => false,
    }
}

/// "`between` is inclusive at both ends". An inverted pair (possible with one absolute
/// and one relative date, semantics.md) matches no one.
fn date_between(value: Option<Date>, from: &DateValue, to: &DateValue, today: Date) -> bool {
    match (value, resolve_date(from, today), resolve_date(to, today)) {
        (Some(v), Some(from), Some(to)) => from <= v && v <= to,
        _ => false,
    }
}

/// "`{"relative_days": N}` is today plus N days (negative: past)".
///
/// Decision: a relative date outside jiff's calendar (years -9999..=9999) resolves to
/// nothing: the positive ops do not match and `not_equals` (their complement) does.
fn resolve_date(d: &DateValue, today: Date) -> Option<Date> {
    match *d {
        DateValue::Absolute(date) => Some(date),
        DateValue::Relative(days) => add_days(today, days),
    }
}

fn add_days(date: Date, days: i32) -> Option<Date> {
    let span = Span::new().try_days(days).ok()?;
    date.checked_add(span).ok()
}

/// "`anniversary_within: N` matches when the month and day of the value fall within the
/// next N days, today included" — i.e. on a day of `[today, today + N days]`
/// (semantics.md). Checked the plain way: walk every day of that range and ask whether
/// it is the value's anniversary in its own year.
///
/// Decision: days past the end of jiff's calendar (9999-12-31) are simply not walked.
fn anniversary_within(value: Option<Date>, days: u16, today: Date) -> bool {
    let Some(value) = value else {
        return false;
    };
    let mut day = today;
    for _ in 0..=days {
        if anniversary_in_year(value, day.year()) == Some(day) {
            return true;
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => return false,
        }
    }
    false
}

/// The day on which `value`'s month and day fall in `year`.
/// "29 February counts as 28 February in other years."
fn anniversary_in_year(value: Date, year: i16) -> Option<Date> {
    match Date::new(year, value.month(), value.day()) {
        Ok(d) => Some(d),
        // Only 29 February can be missing from a year.
        Err(_) => Date::new(year, 2, 28).ok(),
    }
}

// ---------------------------------------------------------------------------------------
// Behaviour conditions
// ---------------------------------------------------------------------------------------

/// The contact's events as stored: with duplicate client ids removed.
///
/// "The same `id` posted twice in an account is stored once (...); the first one stays."
/// and (semantics.md) "the first stored stays, whatever kind (...) the later ones name".
///
/// Decision: the contact's lists are given in arrival order within each list, but the
/// order between lists is unknown, so they are read as if all system events arrived
/// first, then all custom events, then all visits: the first occurrence of an id within
/// a list wins, and an id already seen in an earlier list is skipped too. Events without
/// an id are all kept. Duplicates are removed before any filter (kind, name, `where`,
/// window, `now`): a later copy never stands in for a first one that does not match.
struct StoredEvents<'a> {
    system: Vec<&'a SystemEvent>,
    custom: Vec<&'a CustomEvent>,
    visits: Vec<&'a Visit>,
}

impl<'a> StoredEvents<'a> {
    fn of(contact: &'a ContactData) -> Self {
        let mut seen: HashSet<&'a str> = HashSet::new();
        let mut stored = StoredEvents {
            system: Vec::new(),
            custom: Vec::new(),
            visits: Vec::new(),
        };
        for e in &contact.system_events {
            if first_time(&mut seen, e.id.as_deref()) {
                stored.system.push(e);
            }
        }
        for e in &contact.custom_events {
            if first_time(&mut seen, e.id.as_deref()) {
                stored.custom.push(e);
            }
        }
        for v in &contact.visits {
            if first_time(&mut seen, v.id.as_deref()) {
                stored.visits.push(v);
            }
        }
        stored
    }
}

/// True unless `id` was seen before; records it.
fn first_time<'a>(seen: &mut HashSet<&'a str>, id: Option<&'a str>) -> bool {
    match id {
        None => true,
        Some(id) => seen.insert(id),
    }
}

/// "`occurred` means their number is at least `min_count` (and at most `max_count` when
/// given); `not_occurred` means there are none."
fn behaviour_matches(b: &BehaviourCondition, ctx: &Context<'_>) -> bool {
    let count = count_matching_events(b, ctx);
    match b.occurrence {
        Occurrence::Occurred {
            min_count,
            max_count,
        } => {
            let at_least_min = count >= u64::from(min_count);
            let at_most_max = match max_count {
                Some(max) => count <= u64::from(max),
                None => true,
            };
            at_least_min && at_most_max
        }
        Occurrence::NotOccurred => count == 0,
    }
}

/// "The matching events of a contact are those of the given kind that pass `where`,
/// `visit_url`, `campaign` and `within`, with a timestamp at or before the evaluation
/// time."
fn count_matching_events(b: &BehaviourCondition, ctx: &Context<'_>) -> u64 {
    let clock = ctx.clock;
    let mut count = 0;
    match &b.source {
        EventSource::System { kind, campaign } => {
            for e in &ctx.events.system {
                if e.kind == *kind
                    && campaign_passes(campaign.as_deref(), e)
                    && in_time(e.timestamp, b.within, clock)
                {
                    count += 1;
                }
            }
        }
        EventSource::Custom { name, filters } => {
            for e in &ctx.events.custom {
                if e.name == *name
                    && properties_pass(filters, e)
                    && in_time(e.timestamp, b.within, clock)
                {
                    count += 1;
                }
            }
        }
        EventSource::Visit { url } => {
            for v in &ctx.events.visits {
                if url_passes(url.as_ref(), v) && in_time(v.timestamp, b.within, clock) {
                    count += 1;
                }
            }
        }
    }
    count
}

/// Decision: campaign ids are identifiers and compare exactly (case counts); an event
/// without a campaign never passes a `campaign` filter.
fn campaign_passes(campaign: Option<&str>, e: &SystemEvent) -> bool {
    match campaign {
        None => true,
        Some(c) => e.campaign.as_deref() == Some(c),
    }
}

/// "`visit_url` omitted: any page". Otherwise the text op on the visit's URL, ignoring
/// case like every text comparison; a negated op picks the visits whose URL does not
/// match (semantics.md).
fn url_passes(url: Option<&TextOp>, v: &Visit) -> bool {
    match url {
        None => true,
        Some(op) => text_op_matches(op, Some(v.url.as_str())),
    }
}

/// "with a timestamp at or before the evaluation time" and inside the window.
fn in_time(ts: Timestamp, within: Option<Window>, clock: &Clock) -> bool {
    let not_after_now = ts <= clock.now;
    let in_window = match within {
        None => true,
        Some(w) => window_contains(w, ts, clock.now),
    };
    not_after_now && in_window
}

/// "`last_days: N` (...) is the rolling window `(now - N×24h, now]`; `since` is
/// `ts >= T`; `before` is `ts < T`; `between` is `T1 <= ts < T2`."
fn window_contains(w: Window, ts: Timestamp, now: Timestamp) -> bool {
    match w {
        Window::LastDays(days) => {
            let length = SignedDuration::from_secs(i64::from(days) * 24 * 60 * 60);
            match now.checked_sub(length) {
                Ok(start) => start < ts && ts <= now,
                // Decision: a window reaching past the earliest timestamp jiff can
                // represent has no lower end.
                Err(_) => ts <= now,
            }
        }
        Window::Since(t) => ts >= t,
        Window::Before(t) => ts < t,
        Window::Between(t1, t2) => t1 <= ts && ts < t2,
    }
}

/// Decision: custom event names are identifiers and compare exactly (case counts), as
/// in `e.name == *name` above.
///
/// "Several property conditions must all hold on the same event."
fn properties_pass(filters: &[PropertyCondition], e: &CustomEvent) -> bool {
    for filter in filters {
        if !property_passes(filter, e) {
            return false;
        }
    }
    true
}

/// "A missing or null property is 'no value' and behaves as a field with no value (the
/// negations match it). A present property of another JSON type than the op's never
/// matches, negations included."
fn property_passes(filter: &PropertyCondition, e: &CustomEvent) -> bool {
    let value = property_value(filter, e);
    match &filter.test {
        PropertyTest::HasValue => value.is_some(),
        PropertyTest::HasNoValue => value.is_none(),
        PropertyTest::IsTrue => value == Some(&Value::Bool(true)),
        PropertyTest::IsFalse => value == Some(&Value::Bool(false)),
        PropertyTest::Text(op) => match value {
            None => text_op_matches(op, None),
            Some(Value::String(s)) => text_op_matches(op, Some(s)),
            Some(_) => false,
        },
        PropertyTest::Number(op) => match value {
            None => number_op_matches(op, None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) => number_op_matches(op, Some(x)),
                None => false,
            },
            Some(_) => false,
        },
    }
}

/// The property at the condition's path: "a key or a dotted path into nested objects".
/// `None` when it is missing or null.
///
/// Decision: when a step of the path is not an object (`a.b` where `a` is a string), the
/// property is missing. Decision: a present empty string is a value (only missing and
/// null are "no value" for properties); the text ops treat it as any other text.
fn property_value<'a>(filter: &PropertyCondition, e: &'a CustomEvent) -> Option<&'a Value> {
    let mut keys = filter.path_segments();
    let first = keys.next()?;
    let mut current = e.properties.get(first)?;
    for key in keys {
        match current {
            Value::Object(inner) => current = inner.get(key)?,
            _ => return None,
        }
    }
    if current.is_null() {
        None
    } else {
        Some(current)
    }
}

// ---------------------------------------------------------------------------------------
// Segment references
// ---------------------------------------------------------------------------------------

/// "membership in another segment of the same account, by that segment's current rule".
fn segment_condition_matches(s: &SegmentCondition, ctx: &Context<'_>, depth: usize) -> bool {
    let member = is_in_segment(s.segment, ctx, depth);
    if s.member { member } else { !member }
}

/// A segment that does not exist is empty (semantics.md); so is one reached through more
/// than `MAX_SEGMENT_NESTING` references (a cycle, which validation refuses).
fn is_in_segment(id: SegmentId, ctx: &Context<'_>, depth: usize) -> bool {
    if depth >= MAX_SEGMENT_NESTING {
        return false;
    }
    match ctx.segments.rule(id) {
        Some(rule) => rule_matches(rule, ctx, depth + 1),
        None => false,
    }
}
