//! The typed rule tree of `spec/rules.md`, and its canonical JSON form.
//!
//! A `Rule` only exists once it has been parsed against an account's catalog (see
//! `parse`): which ops a field condition may use depends on the field's type, so the JSON
//! alone cannot be turned into a typed tree. That is why `Rule` implements `Serialize`
//! but is built by `parse::parse_rule` rather than by `Deserialize`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::data::SystemEventKind;

/// A segment's id inside its account.
pub type SegmentId = i64;

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Field(FieldCondition),
    Behaviour(BehaviourCondition),
    Segment(SegmentCondition),
}

/// A text operand, kept as written (for display) and lowercased (for comparison).
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub original: String,
    pub lower: String,
}

impl Text {
    pub fn new(original: &str) -> Self {
        Text {
            original: original.to_owned(),
            lower: original.to_lowercase(),
        }
    }
}

/// The field a condition reads: a custom field or one of the built-in text fields.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum FieldRef {
    Email,
    Phone,
    Custom(String),
}

impl FieldRef {
    pub fn key(&self) -> &str {
        match self {
            FieldRef::Email => "email",
            FieldRef::Phone => "phone",
            FieldRef::Custom(k) => k,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldCondition {
    pub field: FieldRef,
    pub test: FieldTest,
}

/// What a field condition checks. The variant already fixes the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldTest {
    HasValue,
    HasNoValue,
    Text(TextOp),
    Number(NumberOp),
    Date(DateOp),
    IsTrue,
    IsFalse,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TextOp {
    Equals(Text),
    NotEquals(Text),
    Contains(Text),
    NotContains(Text),
    StartsWith(Text),
    EndsWith(Text),
    In(Vec<Text>),
    NotIn(Vec<Text>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum NumberOp {
    Equals(f64),
    NotEquals(f64),
    GreaterThan(f64),
    GreaterOrEqual(f64),
    LessThan(f64),
    LessOrEqual(f64),
    Between(f64, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    Absolute(Date),
    /// Today plus this many days (negative: past), today in the account's time zone.
    Relative(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum DateOp {
    Equals(DateValue),
    NotEquals(DateValue),
    Before(DateValue),
    After(DateValue),
    Between(DateValue, DateValue),
    /// Month and day fall within `[today, today + N days]`.
    AnniversaryWithin(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BehaviourCondition {
    pub source: EventSource,
    pub occurrence: Occurrence,
    pub within: Option<Window>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventSource {
    System {
        kind: SystemEventKind,
        campaign: Option<String>,
    },
    Custom {
        name: String,
        filters: Vec<PropertyCondition>,
    },
    /// `url: None` matches a visit of any page.
    Visit { url: Option<TextOp> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    Occurred {
        min_count: u32,
        max_count: Option<u32>,
    },
    NotOccurred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `(now - N×24h, now]`.
    LastDays(u32),
    /// `ts >= T`.
    Since(Timestamp),
    /// `ts < T`.
    Before(Timestamp),
    /// `T1 <= ts < T2`.
    Between(Timestamp, Timestamp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyCondition {
    /// The path as written, e.g. `order.total`.
    pub path: String,
    pub test: PropertyTest,
}

impl PropertyCondition {
    pub fn path_segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('.')
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropertyTest {
    HasValue,
    HasNoValue,
    IsTrue,
    IsFalse,
    Text(TextOp),
    Number(NumberOp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCondition {
    pub segment: SegmentId,
    /// `true` for `"op": "in"`, `false` for `"not_in"`.
    pub member: bool,
}

impl Rule {
    /// The ids of the segments this rule refers to directly.
    pub fn referenced_segments(&self) -> BTreeSet<SegmentId> {
        let mut out = BTreeSet::new();
        self.visit(&mut |r| {
            if let Rule::Segment(s) = r {
                out.insert(s.segment);
            }
        });
        out
    }

    /// The keys of the custom fields this rule reads (not `email`/`phone`).
    pub fn custom_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.visit(&mut |r| {
            if let Rule::Field(FieldCondition {
                field: FieldRef::Custom(k),
                ..
            }) = r
            {
                out.insert(k.clone());
            }
        });
        out
    }

    /// Calls `f` on every node, parents before children.
    pub fn visit(&self, f: &mut dyn FnMut(&Rule)) {
        f(self);
        match self {
            Rule::All(rs) | Rule::Any(rs) => rs.iter().for_each(|r| r.visit(f)),
            Rule::Not(r) => r.visit(f),
            Rule::Field(_) | Rule::Behaviour(_) | Rule::Segment(_) => {}
        }
    }

    /// The canonical JSON form of the spec. Parsing it again gives the same rule.
    pub fn to_json(&self) -> Value {
        match self {
            Rule::All(rs) => json!({ "all": rs.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Any(rs) => json!({ "any": rs.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Not(r) => json!({ "not": r.to_json() }),
            Rule::Field(c) => {
                let mut m = Map::new();
                m.insert("field".into(), Value::String(c.field.key().to_owned()));
                let (op, value) = field_test_json(&c.test);
                m.insert("op".into(), Value::String(op.into()));
                if let Some(v) = value {
                    m.insert("value".into(), v);
                }
                Value::Object(m)
            }
            Rule::Behaviour(b) => behaviour_json(b),
            Rule::Segment(s) => json!({
                "segment": s.segment,
                "op": if s.member { "in" } else { "not_in" },
            }),
        }
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

fn number_json(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn texts_json(ts: &[Text]) -> Value {
    Value::Array(
        ts.iter()
            .map(|t| Value::String(t.original.clone()))
            .collect(),
    )
}

pub(crate) fn text_op_json(op: &TextOp) -> (&'static str, Value) {
    let s = |t: &Text| Value::String(t.original.clone());
    match op {
        TextOp::Equals(t) => ("equals", s(t)),
        TextOp::NotEquals(t) => ("not_equals", s(t)),
        TextOp::Contains(t) => ("contains", s(t)),
        TextOp::NotContains(t) => ("not_contains", s(t)),
        TextOp::StartsWith(t) => ("starts_with", s(t)),
        TextOp::EndsWith(t) => ("ends_with", s(t)),
        TextOp::In(ts) => ("in", texts_json(ts)),
        TextOp::NotIn(ts) => ("not_in", texts_json(ts)),
    }
}

fn number_op_json(op: &NumberOp) -> (&'static str, Value) {
    match *op {
        NumberOp::Equals(x) => ("equals", number_json(x)),
        NumberOp::NotEquals(x) => ("not_equals", number_json(x)),
        NumberOp::GreaterThan(x) => ("greater_than", number_json(x)),
        NumberOp::GreaterOrEqual(x) => ("greater_or_equal", number_json(x)),
        NumberOp::LessThan(x) => ("less_than", number_json(x)),
        NumberOp::LessOrEqual(x) => ("less_or_equal", number_json(x)),
        NumberOp::Between(a, b) => ("between", json!([number_json(a), number_json(b)])),
    }
}

fn date_value_json(d: &DateValue) -> Value {
    match d {
        DateValue::Absolute(d) => Value::String(d.to_string()),
        DateValue::Relative(n) => json!({ "relative_days": n }),
    }
}

fn field_test_json(t: &FieldTest) -> (&'static str, Option<Value>) {
    match t {
        FieldTest::HasValue => ("has_value", None),
        FieldTest::HasNoValue => ("has_no_value", None),
        FieldTest::IsTrue => ("is_true", None),
        FieldTest::IsFalse => ("is_false", None),
        FieldTest::Text(op) => {
            let (o, v) = text_op_json(op);
            (o, Some(v))
        }
        FieldTest::Number(op) => {
            let (o, v) = number_op_json(op);
            (o, Some(v))
        }
        FieldTest::Date(op) => match op {
            DateOp::Equals(d) => ("equals", Some(date_value_json(d))),
            DateOp::NotEquals(d) => ("not_equals", Some(date_value_json(d))),
            DateOp::Before(d) => ("before", Some(date_value_json(d))),
            DateOp::After(d) => ("after", Some(date_value_json(d))),
            DateOp::Between(a, b) => (
                "between",
                Some(json!([date_value_json(a), date_value_json(b)])),
            ),
            DateOp::AnniversaryWithin(n) => ("anniversary_within", Some(json!(n))),
        },
    }
}

fn property_json(p: &PropertyCondition) -> Value {
    let mut m = Map::new();
    m.insert("property".into(), Value::String(p.path.clone()));
    let (op, value) = match &p.test {
        PropertyTest::HasValue => ("has_value", None),
        PropertyTest::HasNoValue => ("has_no_value", None),
        PropertyTest::IsTrue => ("is_true", None),
        PropertyTest::IsFalse => ("is_false", None),
        PropertyTest::Text(op) => {
            let (o, v) = text_op_json(op);
            (o, Some(v))
        }
        PropertyTest::Number(op) => {
            let (o, v) = number_op_json(op);
            (o, Some(v))
        }
    };
    m.insert("op".into(), Value::String(op.into()));
    if let Some(v) = value {
        m.insert("value".into(), v);
    }
    Value::Object(m)
}

fn window_json(w: &Window) -> Value {
    match w {
        Window::LastDays(n) => json!({ "last_days": n }),
        Window::Since(t) => json!({ "since": t.to_string() }),
        Window::Before(t) => json!({ "before": t.to_string() }),
        Window::Between(a, b) => json!({ "between": [a.to_string(), b.to_string()] }),
    }
}

fn behaviour_json(b: &BehaviourCondition) -> Value {
    let mut m = Map::new();
    match &b.source {
        EventSource::System { kind, .. } => {
            m.insert("system_event".into(), Value::String(kind.as_str().into()));
        }
        EventSource::Custom { name, filters } => {
            m.insert("custom_event".into(), Value::String(name.clone()));
            if !filters.is_empty() {
                m.insert(
                    "where".into(),
                    Value::Array(filters.iter().map(property_json).collect()),
                );
            }
        }
        // The spec's form for "any page" omits `visit_url`; the parser also takes `null`.
        EventSource::Visit { url: None } => {}
        EventSource::Visit { url: Some(op) } => {
            let (o, v) = text_op_json(op);
            m.insert("visit_url".into(), json!({ "op": o, "value": v }));
        }
    }
    match b.occurrence {
        Occurrence::NotOccurred => {
            m.insert("op".into(), json!("not_occurred"));
        }
        Occurrence::Occurred {
            min_count,
            max_count,
        } => {
            m.insert("op".into(), json!("occurred"));
            if min_count != 1 {
                m.insert("min_count".into(), json!(min_count));
            }
            if let Some(max) = max_count {
                m.insert("max_count".into(), json!(max));
            }
        }
    }
    if let Some(w) = &b.within {
        m.insert("within".into(), window_json(w));
    }
    if let EventSource::System {
        campaign: Some(c), ..
    } = &b.source
    {
        m.insert("campaign".into(), Value::String(c.clone()));
    }
    Value::Object(m)
}
