//! Random data and random rules for the engine's property tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use segmentd_engine::{ContactValues, Event, Index};
use segmentd_rules::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldCondition, FieldRef, FieldTest,
    NumberOp, Occurrence, PropertyCondition, PropertyTest, Rule, SegmentCondition, SegmentId, Text,
    TextOp, Window,
};
use segmentd_rules::{
    Clock, ContactData, CustomEvent, FieldValue, SystemEvent, SystemEventKind, Visit, is_member,
};
use serde_json::{Value, json};

/// "Now" carries sub-millisecond digits on purpose.
pub fn now() -> Timestamp {
    "2024-03-01T12:00:00.000400Z".parse().unwrap()
}

pub fn clock_at(now: Timestamp) -> Clock {
    Clock::new(now, &TimeZone::fixed(jiff::tz::offset(-5)))
}

/// Window bounds used by rules; events are placed on and around them.
pub fn t1() -> Timestamp {
    now() - SignedDuration::from_hours(72) + SignedDuration::from_micros(300)
}
pub fn t2() -> Timestamp {
    now() - SignedDuration::from_hours(24)
}

const DAY_MS: i64 = 86_400_000;

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// An event timestamp: on/around every edge, or anywhere from 40 days ago to 2 days ahead.
pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    let n = ms(now());
    let mut anchors = vec![n, ms(t1()), ms(t1()) + 1, ms(t2())];
    for d in [1, 7, 30] {
        anchors.push(n - d * DAY_MS);
    }
    prop_oneof![
        (prop::sample::select(anchors), -2i64..=2).prop_map(|(a, d)| a + d),
        (n - 40 * DAY_MS)..(n + 2 * DAY_MS),
    ]
    .prop_map(|m| Timestamp::from_millisecond(m).unwrap())
}

pub fn texts() -> Vec<&'static str> {
    vec![
        "Alice@Example.com",
        "alice@example.com",
        "BOB@x.org",
        "Straße",
        "STRASSE",
        "İstanbul",
        "ΟΔΟΣ",
        " spaced ",
        "x",
        "pricing",
    ]
}

pub fn text_value() -> impl Strategy<Value = String> {
    prop::sample::select(texts()).prop_map(str::to_owned)
}

fn date(s: &str) -> Date {
    s.parse().unwrap()
}

pub fn field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        text_value().prop_map(FieldValue::Text),
        Just(FieldValue::Text(String::new())),
        prop::sample::select(vec![-1.0, 0.0, -0.0, 1.5, 10.0, 1e9]).prop_map(FieldValue::Number),
        prop::sample::select(vec![
            "2024-03-01",
            "2024-02-29",
            "2023-02-28",
            "2000-02-29",
            "2024-03-02",
            "1990-03-08",
            "2024-02-28",
            "2023-12-31",
        ])
        .prop_map(|s| FieldValue::Date(date(s))),
        any::<bool>().prop_map(FieldValue::Boolean),
    ]
}

/// Custom field keys and their declared types (values may still mismatch).
pub const KEYS: [&str; 5] = ["t1", "t2", "n1", "d1", "b1"];

pub fn values() -> impl Strategy<Value = ContactValues> {
    (
        prop::option::of(prop_oneof![text_value(), Just(String::new())]),
        prop::option::of(text_value()),
        prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), field_value(), 0..5),
    )
        .prop_map(|(email, phone, fields)| ContactValues {
            email,
            phone,
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
            ..ContactValues::default()
        })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        text_value().prop_map(Value::String),
        Just(json!("")),
        prop::sample::select(vec![0.0, 5.0, 9.99, -3.0, 100.0]).prop_map(|x| json!(x)),
        Just(json!(7)),
        any::<bool>().prop_map(Value::Bool),
        Just(json!([1, 2])),
    ]
}

pub fn properties() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    let inner = prop::collection::btree_map(
        prop::sample::select(vec!["name", "price", "b"]),
        json_leaf(),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop::collection::btree_map(
        prop::sample::select(vec!["amount", "item", "a", "a.b", "tags"]),
        prop_oneof![json_leaf(), inner],
        0..4,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

pub const NAMES: [&str; 3] = ["buy", "Buy", "view"];
pub const URLS: [&str; 4] = [
    "https://x.com/Pricing",
    "https://x.com/blog/post",
    "/pricing?a=1",
    "HTTPS://X.COM/",
];

fn id(prefix: &'static str) -> impl Strategy<Value = Option<String>> {
    prop::option::of((0..4u8).prop_map(move |i| format!("{prefix}{i}")))
}

pub fn kind() -> impl Strategy<Value = SystemEventKind> {
    prop::sample::select(SystemEventKind::ALL.to_vec())
}

pub fn system_event() -> impl Strategy<Value = SystemEvent> {
    (
        id("s"),
        kind(),
        timestamp(),
        prop::option::of(prop::sample::select(vec!["c1", "C1", "c2"])),
    )
        .prop_map(|(id, kind, timestamp, campaign)| SystemEvent {
            id,
            kind,
            timestamp,
            campaign: campaign.map(str::to_owned),
            url: None,
        })
}

pub fn custom_event() -> impl Strategy<Value = CustomEvent> {
    (
        id("c"),
        prop::sample::select(NAMES.to_vec()),
        timestamp(),
        properties(),
    )
        .prop_map(|(id, name, timestamp, properties)| CustomEvent {
            id,
            name: name.to_owned(),
            timestamp,
            properties,
        })
}

pub fn visit() -> impl Strategy<Value = Visit> {
    (id("v"), prop::sample::select(URLS.to_vec()), timestamp()).prop_map(|(id, url, timestamp)| {
        Visit {
            id,
            url: url.to_owned(),
            timestamp,
        }
    })
}

/// A contact with values and events.
pub fn contact() -> impl Strategy<Value = ContactData> {
    (
        values(),
        prop::collection::vec(system_event(), 0..5),
        prop::collection::vec(custom_event(), 0..5),
        prop::collection::vec(visit(), 0..4),
    )
        .prop_map(|(v, system_events, custom_events, visits)| ContactData {
            email: v.email,
            phone: v.phone,
            fields: v.fields,
            system_events,
            custom_events,
            visits,
        })
}

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

fn rule_text() -> impl Strategy<Value = Text> {
    prop::sample::select(vec![
        "alice@example.com",
        "ALICE",
        "example.com",
        "straße",
        "strasse",
        "i̇stanbul",
        "İ",
        "οδος",
        "ΟΔΟΣ",
        " ",
        "x",
        "pricing",
        "https://x.com/",
        "/PRICING",
        "post",
        "a=1",
        "9.99",
    ])
    .prop_map(Text::new)
}

pub fn text_op() -> impl Strategy<Value = TextOp> {
    prop_oneof![
        rule_text().prop_map(TextOp::Equals),
        rule_text().prop_map(TextOp::NotEquals),
        rule_text().prop_map(TextOp::Contains),
        rule_text().prop_map(TextOp::NotContains),
        rule_text().prop_map(TextOp::StartsWith),
        rule_text().prop_map(TextOp::EndsWith),
        prop::collection::vec(rule_text(), 1..3).prop_map(TextOp::In),
        prop::collection::vec(rule_text(), 1..3).prop_map(TextOp::NotIn),
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![-1.0, 0.0, -0.0, 1.5, 5.0, 7.0, 9.99, 10.0])
}

pub fn number_op() -> impl Strategy<Value = NumberOp> {
    prop_oneof![
        number().prop_map(NumberOp::Equals),
        number().prop_map(NumberOp::NotEquals),
        number().prop_map(NumberOp::GreaterThan),
        number().prop_map(NumberOp::GreaterOrEqual),
        number().prop_map(NumberOp::LessThan),
        number().prop_map(NumberOp::LessOrEqual),
        (number(), number()).prop_map(|(a, b)| NumberOp::Between(a.min(b), a.max(b))),
    ]
}

fn date_value() -> impl Strategy<Value = DateValue> {
    prop_oneof![
        prop::sample::select(vec!["2024-03-01", "2024-02-29", "2023-02-28", "2024-02-28"])
            .prop_map(|s| DateValue::Absolute(date(s))),
        prop::sample::select(vec![-1, 0, 1, -366, 2]).prop_map(DateValue::Relative),
    ]
}

fn date_op() -> impl Strategy<Value = DateOp> {
    prop_oneof![
        date_value().prop_map(DateOp::Equals),
        date_value().prop_map(DateOp::NotEquals),
        date_value().prop_map(DateOp::Before),
        date_value().prop_map(DateOp::After),
        (date_value(), date_value()).prop_map(|(a, b)| DateOp::Between(a, b)),
        prop::sample::select(vec![0u16, 1, 7, 30, 365, 366]).prop_map(DateOp::AnniversaryWithin),
    ]
}

pub fn field_condition() -> impl Strategy<Value = FieldCondition> {
    let c = |field: FieldRef, test: FieldTest| FieldCondition { field, test };
    prop_oneof![
        (
            prop::sample::select(vec![
                FieldRef::Email,
                FieldRef::Phone,
                FieldRef::Custom("t1".into()),
                FieldRef::Custom("t2".into()),
            ]),
            prop_oneof![
                text_op().prop_map(FieldTest::Text),
                Just(FieldTest::HasValue),
                Just(FieldTest::HasNoValue)
            ]
        )
            .prop_map(move |(f, t)| c(f, t)),
        prop_oneof![
            number_op().prop_map(FieldTest::Number),
            Just(FieldTest::HasValue),
            Just(FieldTest::HasNoValue)
        ]
        .prop_map(move |t| c(FieldRef::Custom("n1".into()), t)),
        prop_oneof![
            date_op().prop_map(FieldTest::Date),
            Just(FieldTest::HasValue),
            Just(FieldTest::HasNoValue)
        ]
        .prop_map(move |t| c(FieldRef::Custom("d1".into()), t)),
        prop::sample::select(vec![
            FieldTest::IsTrue,
            FieldTest::IsFalse,
            FieldTest::HasValue,
            FieldTest::HasNoValue
        ])
        .prop_map(move |t| c(FieldRef::Custom("b1".into()), t)),
    ]
}

fn property_condition() -> impl Strategy<Value = PropertyCondition> {
    (
        prop::sample::select(vec![
            "amount",
            "item",
            "item.price",
            "item.name",
            "item.b",
            "a",
            "a.b",
            "tags",
            "missing",
        ]),
        prop_oneof![
            Just(PropertyTest::HasValue),
            Just(PropertyTest::HasNoValue),
            Just(PropertyTest::IsTrue),
            Just(PropertyTest::IsFalse),
            text_op().prop_map(PropertyTest::Text),
            number_op().prop_map(PropertyTest::Number),
        ],
    )
        .prop_map(|(p, test)| PropertyCondition {
            path: p.to_owned(),
            test,
        })
}

fn window() -> impl Strategy<Value = Option<Window>> {
    prop::option::of(prop_oneof![
        prop::sample::select(vec![1u32, 7, 30]).prop_map(Window::LastDays),
        Just(Window::Since(t1())),
        Just(Window::Before(t2())),
        Just(Window::Before(t1())),
        Just(Window::Between(t1(), t2())),
        Just(Window::Since(now())),
    ])
}

fn occurrence() -> impl Strategy<Value = Occurrence> {
    prop_oneof![
        Just(Occurrence::NotOccurred),
        (1u32..4, prop::option::of(0u32..3)).prop_map(|(min, extra)| Occurrence::Occurred {
            min_count: min,
            max_count: extra.map(|e| min + e),
        }),
    ]
}

pub fn behaviour() -> impl Strategy<Value = BehaviourCondition> {
    let source = prop_oneof![
        (
            kind(),
            prop::option::of(prop::sample::select(vec!["c1", "C1", "zz"]))
        )
            .prop_map(|(kind, c)| EventSource::System {
                kind,
                campaign: c.map(str::to_owned)
            }),
        (
            prop::sample::select(vec!["buy", "Buy", "view", "never"]),
            prop::collection::vec(property_condition(), 0..3)
        )
            .prop_map(|(name, filters)| EventSource::Custom {
                name: name.to_owned(),
                filters
            }),
        prop::option::of(text_op()).prop_map(|url| EventSource::Visit { url }),
    ];
    (source, occurrence(), window()).prop_map(|(source, occurrence, within)| BehaviourCondition {
        source,
        occurrence,
        within,
    })
}

/// A random rule of depth at most 4, referring to segments among `refs`.
pub fn rule(refs: Vec<SegmentId>) -> BoxedStrategy<Rule> {
    let leaf = {
        let seg: BoxedStrategy<Rule> = if refs.is_empty() {
            field_condition().prop_map(Rule::Field).boxed()
        } else {
            (prop::sample::select(refs), any::<bool>())
                .prop_map(|(segment, member)| Rule::Segment(SegmentCondition { segment, member }))
                .boxed()
        };
        prop_oneof![
            3 => field_condition().prop_map(Rule::Field),
            3 => behaviour().prop_map(Rule::Behaviour),
            1 => seg,
        ]
    };
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Rule::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Rule::Any),
            inner.prop_map(|r| Rule::Not(Box::new(r))),
        ]
    })
    .boxed()
}

/// Saved segments 1..=3, each referring only to lower ids (no cycles).
pub fn saved_segments() -> impl Strategy<Value = Vec<Rule>> {
    (rule(vec![]), rule(vec![1]), rule(vec![1, 2])).prop_map(|(a, b, c)| vec![a, b, c])
}

// ---------------------------------------------------------------------------------------
// Oracle helpers
// ---------------------------------------------------------------------------------------

pub fn store_id(i: usize) -> i64 {
    1000 + i as i64
}

pub fn events_of(c: &ContactData) -> Vec<Event> {
    c.system_events
        .iter()
        .cloned()
        .map(Event::System)
        .chain(c.custom_events.iter().cloned().map(Event::Custom))
        .chain(c.visits.iter().cloned().map(Event::Visit))
        .collect()
}

/// Loads contacts into `index` as the server would: values, then the events.
pub fn load(index: &mut Index, contacts: &[ContactData]) {
    for (i, c) in contacts.iter().enumerate() {
        index.upsert_contact(store_id(i), &format!("ext-{i:03}"), &ContactValues::from(c));
        let evs = events_of(c);
        index.add_events(evs.iter().map(|e| (store_id(i), e)));
    }
}

/// The store ids the reference evaluator puts in `rule`.
pub fn expected(
    rule: &Rule,
    contacts: &BTreeMap<i64, ContactData>,
    clock: &Clock,
    segments: &HashMap<SegmentId, Rule>,
) -> Vec<i64> {
    contacts
        .iter()
        .filter(|(_, c)| is_member(rule, c, clock, segments))
        .map(|(id, _)| *id)
        .collect()
}

pub fn actual(index: &Index, set: &roaring::RoaringBitmap) -> Vec<i64> {
    let mut ids = index.store_ids(set);
    ids.sort_unstable();
    ids
}

/// Gives each contact its own event ids (the index deduplicates account-wide, the
/// reference per contact). With `cross_kind`, ids may also repeat across kinds.
pub fn namespace_ids(contacts: &mut [ContactData], cross_kind: bool) {
    let fix = |i: usize, id: &mut Option<String>| {
        if let Some(s) = id {
            let s2 = if cross_kind { &s[1..] } else { &s[..] };
            *id = Some(format!("{i}-{s2}"));
        }
    };
    for (i, c) in contacts.iter_mut().enumerate() {
        c.system_events.iter_mut().for_each(|e| fix(i, &mut e.id));
        c.custom_events.iter_mut().for_each(|e| fix(i, &mut e.id));
        c.visits.iter_mut().for_each(|e| fix(i, &mut e.id));
    }
}
