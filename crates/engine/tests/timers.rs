//! Time alone moves membership: as the clock only moves forward (as production clocks
//! do), events enter conditions and leave rolling windows to the millisecond, and
//! `refresh` re-decides only the contacts whose events do.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::*;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use segmentd_engine::{ContactValues, Event, Index, MembershipChange};
use segmentd_rules::rule::{
    BehaviourCondition, EventSource, FieldCondition, FieldRef, FieldTest, Occurrence, Rule,
    SegmentCondition, SegmentId, Text, TextOp, Window,
};
use segmentd_rules::{
    Clock, ContactData, CustomEvent, FieldValue, SystemEvent, SystemEventKind, Visit,
};

const DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

/// The clock `ms` milliseconds after the tests' `now()` (which has sub-ms digits).
fn clock_plus(ms: i64) -> Clock {
    clock_at(now() + SignedDuration::from_millis(ms))
}

/// `floor(now())` in ms: the instant events are compared with.
fn now_ms() -> i64 {
    now().as_millisecond()
}

fn behaviour(source: EventSource, occurrence: Occurrence, within: Option<Window>) -> Rule {
    Rule::Behaviour(BehaviourCondition {
        source,
        occurrence,
        within,
    })
}

fn occurred(min: u32) -> Occurrence {
    Occurrence::Occurred {
        min_count: min,
        max_count: None,
    }
}

fn visits() -> EventSource {
    EventSource::Visit { url: None }
}

fn opens() -> EventSource {
    EventSource::System {
        kind: SystemEventKind::MailOpen,
        campaign: None,
    }
}

fn buys() -> EventSource {
    EventSource::Custom {
        name: "buy".into(),
        filters: vec![],
    }
}

fn in_segment(segment: SegmentId, member: bool) -> Rule {
    Rule::Segment(SegmentCondition { segment, member })
}

fn visit(ms: i64) -> Event {
    Event::Visit(Visit {
        id: None,
        url: "https://x.com/".into(),
        timestamp: at(ms),
    })
}

fn open(ms: i64) -> Event {
    Event::System(SystemEvent {
        id: None,
        kind: SystemEventKind::MailOpen,
        timestamp: at(ms),
        campaign: None,
        url: None,
    })
}

fn buy(ms: i64) -> Event {
    Event::Custom(CustomEvent {
        id: None,
        name: "buy".into(),
        timestamp: at(ms),
        properties: serde_json::Map::new(),
    })
}

fn change(segment: SegmentId, contact: i64, entered: bool) -> MembershipChange {
    MembershipChange {
        segment,
        contact,
        entered,
    }
}

/// Every saved segment's maintained members equal the engine's own evaluation from
/// scratch at the index's clock. (Compared member by member: roaring's `==` also
/// compares how each block is stored, which differs between equal sets built
/// differently.)
fn assert_fresh(index: &Index, segments: &[SegmentId]) {
    for id in segments {
        let rule = index.segment_rule(*id).unwrap().clone();
        let fresh: Vec<u32> = index.evaluate_fresh(&rule, index.clock()).iter().collect();
        let kept: Vec<u32> = index.membership(*id).unwrap().iter().collect();
        assert_eq!(kept, fresh, "segment {id} at {}", index.clock().now);
    }
}

// ---------------------------------------------------------------------------------------
// Edges, one case at a time
// ---------------------------------------------------------------------------------------

/// An event leaves `last_days: N` exactly `N` days after it happened: still counted one
/// millisecond before, gone at that millisecond (whatever the sub-ms digits of `now`).
#[test]
fn an_event_leaves_a_rolling_window_at_the_millisecond_it_turns_n_days_old() {
    for days in [1u32, 7, 30] {
        let mut index = Index::new(clock_plus(0));
        index
            .set_segment(
                1,
                behaviour(visits(), occurred(1), Some(Window::LastDays(days))),
            )
            .unwrap();
        index.upsert_contact(7, "x", &ContactValues::default());
        let ts = now_ms() - 1000;
        assert_eq!(
            index.add_events([(7, &visit(ts))]),
            vec![change(1, 7, true)]
        );
        let end = i64::from(days) * DAY + ts - now_ms();
        assert_eq!(index.refresh(&clock_plus(end - 1)), vec![], "{days} days");
        assert_eq!(
            index.refresh(&clock_plus(end)),
            vec![change(1, 7, false)],
            "{days} days"
        );
        assert_eq!(index.refresh_stats().pending, 0);
    }
}

/// An event dated ahead of the clock counts from its own millisecond, in every kind of
/// condition on its stream; `not_occurred` lets the contact go then.
#[test]
fn a_future_event_enters_every_condition_on_its_stream_at_its_millisecond() {
    let mut index = Index::new(clock_plus(0));
    index
        .set_segment(1, behaviour(visits(), occurred(1), None))
        .unwrap();
    index
        .set_segment(
            2,
            behaviour(visits(), occurred(1), Some(Window::LastDays(1))),
        )
        .unwrap();
    index
        .set_segment(
            3,
            behaviour(visits(), Occurrence::NotOccurred, Some(Window::LastDays(7))),
        )
        .unwrap();
    index
        .set_segment(
            4,
            behaviour(visits(), occurred(1), Some(Window::Since(now()))),
        )
        .unwrap();
    assert_eq!(
        index.upsert_contact(7, "x", &ContactValues::default()),
        vec![change(3, 7, true)]
    );
    let ts = now_ms() + 5000;
    assert_eq!(index.add_events([(7, &visit(ts))]), vec![]);
    assert_eq!(index.refresh(&clock_plus(4999)), vec![]);
    assert_eq!(
        index.refresh(&clock_plus(5000)),
        vec![
            change(1, 7, true),
            change(2, 7, true),
            change(3, 7, false),
            change(4, 7, true)
        ]
    );
    assert_eq!(index.refresh_stats().redecided, 1);
    // A day later it leaves the one-day window only; a week later, the week.
    assert_eq!(
        index.refresh(&clock_plus(5000 + DAY)),
        vec![change(2, 7, false)]
    );
    assert_eq!(
        index.refresh(&clock_plus(5000 + 7 * DAY)),
        vec![change(3, 7, true)]
    );
}

/// `min_count` and `max_count` move as events leave one by one; a segment referring to
/// a time-dependent one follows it, in the same refresh.
#[test]
fn counts_move_one_leaving_event_at_a_time_and_references_follow() {
    let mut index = Index::new(clock_plus(0));
    let two_or_three = Occurrence::Occurred {
        min_count: 2,
        max_count: Some(3),
    };
    index
        .set_segment(
            1,
            behaviour(opens(), two_or_three, Some(Window::LastDays(1))),
        )
        .unwrap();
    index
        .set_segment(2, Rule::Not(Box::new(in_segment(1, true))))
        .unwrap();
    index.upsert_contact(7, "x", &ContactValues::default());
    let n = now_ms();
    let events: Vec<Event> = [4, 3, 2, 1]
        .iter()
        .map(|h| open(n - h * 3_600_000))
        .collect();
    // Four opens in the last day: too many.
    index.add_events(events.iter().map(|e| (7, e)));
    assert!(!index.is_member(1, 7));
    assert!(index.is_member(2, 7));
    // The oldest leaves 20 hours from now: three left.
    assert_eq!(
        index.refresh(&clock_plus(20 * 3_600_000)),
        vec![change(1, 7, true), change(2, 7, false)]
    );
    assert_eq!(index.refresh(&clock_plus(21 * 3_600_000)), vec![]);
    // The third leaves: one left.
    assert_eq!(
        index.refresh(&clock_plus(22 * 3_600_000)),
        vec![change(1, 7, false), change(2, 7, true)]
    );
}

/// A contact deleted with events in a window: its timers fire later and change nothing.
#[test]
fn a_deleted_contacts_timers_fire_without_changing_anything() {
    let mut index = Index::new(clock_plus(0));
    index
        .set_segment(
            1,
            behaviour(visits(), occurred(1), Some(Window::LastDays(1))),
        )
        .unwrap();
    for c in [7, 8] {
        index.upsert_contact(c, "x", &ContactValues::default());
        index.add_events([(c, &visit(now_ms() - 1000)), (c, &visit(now_ms() + 1000))]);
    }
    assert_eq!(index.delete_contact(7), vec![change(1, 7, false)]);
    assert_eq!(index.refresh(&clock_plus(1000)), vec![]);
    assert_eq!(index.refresh_stats().redecided, 1);
    assert_eq!(
        index.refresh(&clock_plus(DAY + 1000)),
        vec![change(1, 8, false)]
    );
    // The deleted contact's entries are gone once fired.
    assert_eq!(index.refresh_stats().pending, 0);
    assert_fresh(&index, &[1]);
}

/// Replacing a rule with another window re-arms the contacts for the new window: the
/// contact stays past the old window's end and leaves at the new one's.
#[test]
fn replacing_a_rule_with_another_window_moves_the_contacts_timers_to_it() {
    let mut index = Index::new(clock_plus(0));
    index
        .set_segment(
            1,
            behaviour(visits(), occurred(1), Some(Window::LastDays(1))),
        )
        .unwrap();
    index.upsert_contact(7, "x", &ContactValues::default());
    let ts = now_ms() - 3_600_000;
    index.add_events([(7, &visit(ts))]);
    assert_eq!(
        index
            .set_segment(
                1,
                behaviour(visits(), occurred(1), Some(Window::LastDays(7)))
            )
            .unwrap(),
        vec![]
    );
    let left_at = ts + 7 * DAY - now_ms();
    assert_eq!(index.refresh(&clock_plus(DAY)), vec![]);
    assert_eq!(index.refresh(&clock_plus(left_at - 1)), vec![]);
    assert_eq!(
        index.refresh(&clock_plus(left_at)),
        vec![change(1, 7, false)]
    );
    // And back to a shorter window on a stream with events past it: they leave at once
    // when the segment is saved, and the timers hold nothing stale.
    index.add_events([(7, &visit(now_ms() + left_at - 2 * DAY))]);
    assert!(index.is_member(1, 7));
    assert_eq!(
        index
            .set_segment(
                1,
                behaviour(visits(), occurred(1), Some(Window::LastDays(1)))
            )
            .unwrap(),
        vec![change(1, 7, false)]
    );
    assert_eq!(index.refresh(&clock_plus(left_at + 6 * DAY)), vec![]);
    assert_eq!(index.refresh_stats().pending, 0);
}

/// Removing one of two segments on the same stream keeps the other's timers (the keys
/// are counted per segment) and stops the removed one's.
#[test]
fn removing_a_segment_keeps_the_timers_other_segments_need() {
    let mut index = Index::new(clock_plus(0));
    let week = behaviour(visits(), occurred(1), Some(Window::LastDays(7)));
    index.set_segment(1, week.clone()).unwrap();
    index.set_segment(2, week).unwrap();
    index
        .set_segment(
            3,
            behaviour(visits(), occurred(1), Some(Window::LastDays(1))),
        )
        .unwrap();
    index.upsert_contact(7, "x", &ContactValues::default());
    let ts = now_ms() - 1000;
    index.add_events([(7, &visit(ts))]);
    assert_eq!(index.remove_segment(1), vec![change(1, 7, false)]);
    assert_eq!(index.remove_segment(3), vec![change(3, 7, false)]);
    assert_eq!(index.refresh(&clock_plus(DAY)), vec![]);
    assert_eq!(index.refresh_stats().redecided, 0);
    assert_eq!(
        index.refresh(&clock_plus(7 * DAY - 1000)),
        vec![change(2, 7, false)]
    );
}

/// Dropping a field that a rule combines with a window: the contact leaves at once, and
/// its window timer, firing later, changes nothing; given the field again, it comes back
/// and leaves when its event does.
#[test]
fn dropping_a_field_leaves_the_windows_timers_right() {
    let mut index = Index::new(clock_plus(0));
    let city = Rule::Field(FieldCondition {
        field: FieldRef::Custom("city".into()),
        test: FieldTest::Text(TextOp::Equals(Text::new("paris"))),
    });
    index
        .set_segment(
            1,
            Rule::All(vec![
                city,
                behaviour(visits(), occurred(1), Some(Window::LastDays(1))),
            ]),
        )
        .unwrap();
    let mut paris = ContactValues::default();
    paris
        .fields
        .insert("city".into(), FieldValue::Text("Paris".into()));
    index.upsert_contact(7, "x", &paris);
    let ts = now_ms() - 1000;
    assert_eq!(
        index.add_events([(7, &visit(ts))]),
        vec![change(1, 7, true)]
    );
    assert_eq!(index.drop_field("city"), vec![change(1, 7, false)]);
    assert_eq!(index.refresh(&clock_plus(3_600_000)), vec![]);
    assert_eq!(
        index.upsert_contact(7, "x", &paris),
        vec![change(1, 7, true)]
    );
    assert_eq!(index.refresh(&clock_plus(DAY - 1001)), vec![]);
    assert_eq!(
        index.refresh(&clock_plus(DAY - 1000)),
        vec![change(1, 7, false)]
    );
}

/// A relative date moves with the day only: a refresh within the day re-evaluates no
/// segment whole; the first refresh of the next day does, once.
#[test]
fn a_new_day_re_evaluates_relative_date_segments_once() {
    use segmentd_rules::rule::{DateOp, DateValue};
    let mut index = Index::new(clock_plus(0));
    let due_tomorrow = Rule::Field(FieldCondition {
        field: FieldRef::Custom("renewal".into()),
        test: FieldTest::Date(DateOp::Equals(DateValue::Relative(1))),
    });
    index.set_segment(1, due_tomorrow).unwrap();
    index.set_segment(2, in_segment(1, true)).unwrap();
    let mut v = ContactValues::default();
    let today = index.clock().today;
    v.fields.insert(
        "renewal".into(),
        FieldValue::Date(today.checked_add(jiff::Span::new().days(2)).unwrap()),
    );
    index.upsert_contact(7, "x", &v);
    // `now()` is 07:00 in the tests' zone (UTC-5).
    assert_eq!(index.refresh(&clock_plus(3_600_000)), vec![]);
    assert_eq!(index.refresh_stats().reevaluated, 0);
    assert_eq!(
        index.refresh(&clock_plus(DAY)),
        vec![change(1, 7, true), change(2, 7, true)]
    );
    assert_eq!(index.refresh_stats().reevaluated, 2);
    assert_eq!(index.refresh(&clock_plus(DAY + 1)), vec![]);
    assert_eq!(index.refresh_stats().reevaluated, 0);
}

// ---------------------------------------------------------------------------------------
// Proportionality
// ---------------------------------------------------------------------------------------

/// A tiny seeded generator (the test must not depend on proptest's choices).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// 20,000 contacts with events over the last 30 days and a few ahead: each small step of
/// the clock re-decides exactly the contacts with an event entering (dated in the step)
/// or leaving a window read by a saved segment (turning `N` days old in the step).
#[test]
fn advancing_the_clock_re_decides_only_the_contacts_whose_events_enter_or_leave() {
    const CONTACTS: i64 = 20_000;
    let mut index = Index::new(clock_plus(0));
    // Two segments before the data (their timers armed by the writes), three after
    // (armed from the streams when saved).
    index
        .set_segment(
            1,
            behaviour(visits(), occurred(1), Some(Window::LastDays(7))),
        )
        .unwrap();
    index
        .set_segment(
            2,
            behaviour(opens(), occurred(2), Some(Window::LastDays(1))),
        )
        .unwrap();
    let mut rng = Lcg(3);
    let n = now_ms();
    // (contact, stream: 0 visits, 1 opens, 2 buys, timestamp)
    let mut all: Vec<(i64, u8, i64)> = Vec::new();
    for c in 0..CONTACTS {
        index.upsert_contact(c, &format!("c{c}"), &ContactValues::default());
        let mut events = Vec::new();
        for _ in 0..3 {
            let stream = rng.below(3) as u8;
            let ts = if rng.below(200) == 0 {
                n + rng.below(3_600_000) as i64
            } else {
                n - rng.below(30 * DAY as u64) as i64
            };
            all.push((c, stream, ts));
            events.push(match stream {
                0 => visit(ts),
                1 => open(ts),
                _ => buy(ts),
            });
        }
        index.add_events(events.iter().map(|e| (c, e)));
    }
    index
        .set_segment(
            3,
            behaviour(buys(), Occurrence::NotOccurred, Some(Window::LastDays(30))),
        )
        .unwrap();
    index
        .set_segment(
            4,
            Rule::All(vec![in_segment(1, true), in_segment(2, false)]),
        )
        .unwrap();
    index
        .set_segment(5, behaviour(visits(), occurred(1), None))
        .unwrap();
    let segments = [1, 2, 3, 4, 5];
    assert_fresh(&index, &segments);
    // At most one entry per contact and stream read.
    assert!(index.refresh_stats().pending <= 3 * CONTACTS as usize);
    // The windows each stream is read with.
    let lengths = |stream: u8| match stream {
        0 => vec![7 * DAY],
        1 => vec![DAY],
        _ => vec![30 * DAY],
    };
    let mut clock = 0i64;
    for step in [1, 999, 1000, 5000, 60_000, 600_000, 3_600_000, 1, 5000] {
        let (f0, f1) = (n + clock, n + clock + step);
        let want: BTreeSet<i64> = all
            .iter()
            .filter(|(_, s, ts)| {
                (f0 < *ts && *ts <= f1) || lengths(*s).iter().any(|l| f0 < ts + l && ts + l <= f1)
            })
            .map(|(c, _, _)| *c)
            .collect();
        clock += step;
        index.refresh(&clock_plus(clock));
        let stats = index.refresh_stats();
        assert_eq!(stats.redecided, want.len(), "step {step}");
        // A small share of the contacts, not all of them.
        assert!(
            stats.redecided * 20 < CONTACTS as usize,
            "step {step}: {stats:?}"
        );
        assert_eq!(stats.reevaluated, 0);
        assert_fresh(&index, &segments);
    }
}

// ---------------------------------------------------------------------------------------
// Property: the clock only moves forward
// ---------------------------------------------------------------------------------------

/// When an event happens, relative to the index's clock at the time of the write.
#[derive(Debug, Clone, Copy)]
enum When {
    /// `days` before the clock plus `ms`: it leaves a `last_days: days` window `ms`
    /// after the clock (or left `-ms` ago).
    Edge(u32, i64),
    /// `ms` ahead of the clock.
    Ahead(i64),
    /// Anywhere from 40 days back to 2 days ahead (`ms` from the clock).
    Around(i64),
}

#[derive(Debug, Clone)]
enum Step {
    Upsert(usize, ContactValues),
    Events(usize, Vec<(Event, When)>),
    Delete(usize),
    SetSegment(SegmentId, Rule),
    RemoveSegment(SegmentId),
    DropField(&'static str),
    /// Moves the clock forward by this many ms.
    Advance(i64),
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        3 => (
            prop::sample::select(vec![1u32, 7, 30]),
            prop::sample::select(vec![-1i64, 0, 1, 2, 999, 1000, 60_000, 3_600_000]),
        )
            .prop_map(|(d, ms)| When::Edge(d, ms)),
        1 => prop::sample::select(vec![1i64, 2, 1000, 3_600_000, DAY]).prop_map(When::Ahead),
        2 => (-40 * DAY..2 * DAY).prop_map(When::Around),
    ]
}

fn timed_event() -> impl Strategy<Value = (Event, When)> {
    let event = prop_oneof![
        system_event().prop_map(Event::System),
        custom_event().prop_map(Event::Custom),
        visit_event().prop_map(Event::Visit),
    ];
    (event, when())
}

fn visit_event() -> impl Strategy<Value = Visit> {
    common::visit()
}

/// A rule of depth at most 3 made mostly of rolling-window conditions (1, 7 or 30 days,
/// any kind, filter and count, under `all`/`any`/`not`), referring to segments among
/// `refs`; or any rule of the shared generator.
fn windowed_rule(refs: Vec<SegmentId>) -> BoxedStrategy<Rule> {
    let windowed = || {
        (common::behaviour(), prop::sample::select(vec![1u32, 7, 30]))
            .prop_map(|(mut b, days)| {
                b.within = Some(Window::LastDays(days));
                Rule::Behaviour(b)
            })
            .boxed()
    };
    let seg: BoxedStrategy<Rule> = if refs.is_empty() {
        windowed()
    } else {
        (prop::sample::select(refs.clone()), any::<bool>())
            .prop_map(|(s, m)| in_segment(s, m))
            .boxed()
    };
    let leaf = prop_oneof![
        5 => windowed(),
        1 => common::behaviour().prop_map(Rule::Behaviour),
        1 => field_condition().prop_map(Rule::Field),
        2 => seg,
    ];
    let tree = leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Rule::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Rule::Any),
            inner.prop_map(|r| Rule::Not(Box::new(r))),
        ]
    });
    prop_oneof![3 => tree, 1 => rule(refs)].boxed()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0usize..6, values()).prop_map(|(n, v)| Step::Upsert(n, v)),
        5 => (0usize..6, prop::collection::vec(timed_event(), 1..5))
            .prop_map(|(n, e)| Step::Events(n, e)),
        1 => (0usize..6).prop_map(Step::Delete),
        2 => (1i64..=4).prop_flat_map(|id| {
            windowed_rule((1..id).collect()).prop_map(move |r| Step::SetSegment(id, r))
        }),
        1 => (1i64..=4).prop_map(Step::RemoveSegment),
        1 => prop::sample::select(KEYS.to_vec()).prop_map(Step::DropField),
        5 => prop::sample::select(vec![
            1i64, 1, 2, 999, 1000, 59_999, 60_000, 3_600_000, DAY - 1, DAY, DAY + 1, 3 * DAY,
            8 * DAY,
        ])
        .prop_map(Step::Advance),
    ]
}

/// Sets an event's timestamp (and drops its client id: ids are not what this tests).
fn placed(mut e: Event, ms: i64) -> Event {
    let ts = at(ms);
    match &mut e {
        Event::System(x) => {
            x.timestamp = ts;
            x.id = None;
        }
        Event::Custom(x) => {
            x.timestamp = ts;
            x.id = None;
        }
        Event::Visit(x) => {
            x.timestamp = ts;
            x.id = None;
        }
    }
    e
}

fn add_to(c: &mut ContactData, e: &Event) {
    match e {
        Event::System(e) => c.system_events.push(e.clone()),
        Event::Custom(e) => c.custom_events.push(e.clone()),
        Event::Visit(v) => c.visits.push(v.clone()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// After every step, with the clock only moving forward (small steps and large, over
    /// window edges, events placed on them and ahead of the clock), maintained membership
    /// equals the reference evaluator's from scratch, and the changes replay to it.
    #[test]
    fn membership_follows_a_clock_moving_forward_to_the_millisecond(
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut offset = 0i64;
        let mut clock = clock_plus(offset);
        let mut index = Index::new(clock.clone());
        let mut contacts: BTreeMap<i64, ContactData> = BTreeMap::new();
        let mut created: Vec<i64> = Vec::new();
        let mut segments: HashMap<SegmentId, Rule> = HashMap::new();
        let mut changes: Vec<MembershipChange> = Vec::new();
        for step in steps {
            let live = |created: &Vec<i64>, n: usize| created.get(n).copied();
            match step {
                Step::Upsert(n, values) => {
                    let id = match live(&created, n) {
                        Some(id) if contacts.contains_key(&id) => id,
                        _ => {
                            let id = 100 + created.len() as i64;
                            created.push(id);
                            id
                        }
                    };
                    changes.extend(index.upsert_contact(id, &format!("e{id}"), &values));
                    let c = contacts.entry(id).or_default();
                    c.email = values.email;
                    c.phone = values.phone;
                    c.fields = values.fields;
                }
                Step::Events(n, events) => {
                    let Some(id) = live(&created, n) else { continue };
                    let f = now_ms() + offset;
                    let events: Vec<Event> = events
                        .into_iter()
                        .map(|(e, w)| {
                            let ms = match w {
                                When::Edge(days, ms) => f - i64::from(days) * DAY + ms,
                                When::Ahead(ms) | When::Around(ms) => f + ms,
                            };
                            placed(e, ms)
                        })
                        .collect();
                    changes.extend(index.add_events(events.iter().map(|e| (id, e))));
                    if let Some(c) = contacts.get_mut(&id) {
                        for e in &events {
                            add_to(c, e);
                        }
                    }
                }
                Step::Delete(n) => {
                    let Some(id) = live(&created, n) else { continue };
                    changes.extend(index.delete_contact(id));
                    contacts.remove(&id);
                }
                Step::SetSegment(id, rule) => {
                    changes.extend(index.set_segment(id, rule.clone()).unwrap());
                    segments.insert(id, rule);
                }
                Step::RemoveSegment(id) => {
                    changes.extend(index.remove_segment(id));
                    segments.remove(&id);
                }
                Step::DropField(key) => {
                    changes.extend(index.drop_field(key));
                    for c in contacts.values_mut() {
                        c.fields.remove(key);
                    }
                }
                Step::Advance(ms) => {
                    offset += ms;
                    clock = clock_plus(offset);
                    changes.extend(index.refresh(&clock));
                }
            }
            for (id, rule) in &segments {
                let want = expected(rule, &contacts, &clock, &segments);
                let maintained = actual(&index, index.membership(*id).unwrap());
                prop_assert_eq!(
                    &maintained, &want,
                    "segment {} rule {} at +{} ms", id, rule.to_json(), offset
                );
            }
        }
        let mut replay: HashMap<SegmentId, BTreeSet<i64>> = HashMap::new();
        for c in &changes {
            let set = replay.entry(c.segment).or_default();
            if c.entered {
                prop_assert!(set.insert(c.contact), "entered twice: {:?}", c);
            } else {
                prop_assert!(set.remove(&c.contact), "left without entering: {:?}", c);
            }
        }
        for id in 1..=4 {
            let want: BTreeSet<i64> = match index.membership(id) {
                Some(m) => index.store_ids(m).into_iter().collect(),
                None => BTreeSet::new(),
            };
            prop_assert_eq!(replay.remove(&id).unwrap_or_default(), want);
        }
    }
}
