//! JSON → typed [`Rule`], checked against a [`Catalog`].
//!
//! The parser walks the JSON once. It builds the typed tree where it can and writes every
//! problem it meets into one list of [`Issue`]s, so that a marketer sees all the mistakes
//! of a rule at once rather than one per save. A node with a problem yields `None`; its
//! parent keeps checking its other children and yields `None` too, so a rule is returned
//! only when no issue was found at all.
//!
//! Recursion is bounded: the parser stops descending at the first level past the allowed
//! depth, so arbitrarily deep JSON cannot exhaust the stack.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::data::{self, FieldType, SystemEventKind};
use crate::limits::{
    MAX_ANNIVERSARY_DAYS, MAX_CONDITIONS, MAX_DEPTH, MAX_EVENT_NAME_CHARS, MAX_IN_ITEMS,
    MAX_LAST_DAYS, MAX_RELATIVE_DAYS, MAX_TEXT_CHARS,
};
use crate::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldCondition, FieldRef, FieldTest,
    NumberOp, Occurrence, PropertyCondition, PropertyTest, Rule, SegmentCondition, SegmentId, Text,
    TextOp, Window,
};
use crate::{Catalog, Issue};

/// The smallest and largest `min_count`/`max_count` (docs/semantics.md).
const MIN_COUNT: u32 = 1;
const MAX_COUNT: u32 = 1_000_000;

/// The keys that name what a rule object is; an object must have exactly one of them.
const KIND_KEYS: [&str; 8] = [
    "all",
    "any",
    "not",
    "field",
    "system_event",
    "custom_event",
    "visit_url",
    "segment",
];

/// Every key that may appear in some rule object, used to point at typos in an object
/// whose kind could not be recognised.
const ALL_RULE_KEYS: [&str; 15] = [
    "all",
    "any",
    "not",
    "field",
    "system_event",
    "custom_event",
    "visit_url",
    "segment",
    "op",
    "value",
    "within",
    "min_count",
    "max_count",
    "campaign",
    "where",
];

const FIELD_KEYS: [&str; 3] = ["field", "op", "value"];
const SEGMENT_KEYS: [&str; 2] = ["segment", "op"];
const PROPERTY_KEYS: [&str; 3] = ["property", "op", "value"];
const VISIT_URL_KEYS: [&str; 2] = ["op", "value"];
const SYSTEM_EVENT_KEYS: [&str; 6] = [
    "system_event",
    "op",
    "within",
    "min_count",
    "max_count",
    "campaign",
];
// `campaign` is accepted here only to be refused with a message that says why.
const CUSTOM_EVENT_KEYS: [&str; 7] = [
    "custom_event",
    "where",
    "op",
    "within",
    "min_count",
    "max_count",
    "campaign",
];
const VISIT_KEYS: [&str; 6] = [
    "visit_url",
    "op",
    "within",
    "min_count",
    "max_count",
    "campaign",
];
const WINDOW_KEYS: [&str; 4] = ["last_days", "since", "before", "between"];
const RELATIVE_DATE_KEYS: [&str; 1] = ["relative_days"];

const TEXT_VALUE_OPS: [&str; 8] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "in",
    "not_in",
];
const TEXT_FIELD_OPS: [&str; 10] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "in",
    "not_in",
    "has_value",
    "has_no_value",
];
const NUMBER_FIELD_OPS: [&str; 9] = [
    "equals",
    "not_equals",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "between",
    "has_value",
    "has_no_value",
];
const DATE_FIELD_OPS: [&str; 8] = [
    "equals",
    "not_equals",
    "before",
    "after",
    "between",
    "anniversary_within",
    "has_value",
    "has_no_value",
];
const BOOLEAN_FIELD_OPS: [&str; 4] = ["is_true", "is_false", "has_value", "has_no_value"];
const BEHAVIOUR_OPS: [&str; 2] = ["occurred", "not_occurred"];
const SEGMENT_OPS: [&str; 2] = ["in", "not_in"];

/// Every op of some field type, to tell an unknown op from one of the wrong type when the
/// field itself is unknown.
const ANY_FIELD_OPS: [&str; 20] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "in",
    "not_in",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "between",
    "before",
    "after",
    "anniversary_within",
    "is_true",
    "is_false",
    "has_value",
    "has_no_value",
];

const PROPERTY_OPS: [&str; 17] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "in",
    "not_in",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "between",
    "has_value",
    "has_no_value",
    "is_true",
    "is_false",
];
/// The op sets that a property condition's value type allows.
const TEXT_SINGLE_OPS: [&str; 6] = [
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
];
const TEXT_LIST_OPS: [&str; 2] = ["in", "not_in"];
const NUMBER_SINGLE_OPS: [&str; 6] = [
    "equals",
    "not_equals",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
];
const NUMBER_PAIR_OPS: [&str; 1] = ["between"];

/// What the value of each kind of operand must be, shared by "missing value" and "wrong
/// value" messages so that both say the same thing.
const A_TEXT: &str = "a text";
const A_TEXT_LIST: &str = "a non-empty list of texts, e.g. [\"a\", \"b\"]";
const A_NUMBER: &str = "a number";
const A_NUMBER_PAIR: &str = "[low, high], two numbers";
const A_DATE: &str = "a date \"YYYY-MM-DD\" or {\"relative_days\": N}";
const A_DATE_PAIR: &str = "[from, to], two dates \"YYYY-MM-DD\" or {\"relative_days\": N}";
const A_DAY_COUNT: &str = "a whole number of days from 0 to 366";
const A_TEXT_OR_NUMBER: &str = "a text or a number";
const A_TIMESTAMP: &str = "an RFC 3339 timestamp with an offset, e.g. \"2024-05-01T09:00:00Z\"";
const A_TIMESTAMP_PAIR: &str = "[start, end], two RFC 3339 timestamps with an offset";
const A_PROPERTY_VALUE: &str = "a text, a number, a list of texts or a pair of numbers";
const A_PROPERTY_PATH: &str = "a property path such as \"order.total\"";

const EXPECTED_RULE: &str = "expected a rule: an object with one of the keys all, any, not, \
     field, system_event, custom_event, visit_url or segment (a visit of any page is \
     {\"op\": \"occurred\"})";
const EXPECTED_WINDOW: &str = "expected a window: {\"last_days\": N}, {\"since\": T}, \
     {\"before\": T} or {\"between\": [T1, T2]}";

/// Parses `json` (found at `path`, normally `"rule"`) into a typed rule.
///
/// `this_segment` is the id of the segment being updated, so that a reference to
/// itself, directly or through others, is reported as a cycle. Every problem is
/// reported, each with its path; the function never panics, whatever the JSON.
pub fn parse_rule(
    json: &Value,
    path: &str,
    catalog: &Catalog,
    this_segment: Option<SegmentId>,
) -> Result<Rule, Vec<Issue>> {
    let root = Path(path.to_owned());
    let mut parser = Parser {
        catalog,
        this_segment,
        issues: Vec::new(),
        conditions: 0,
        too_deep_reported: false,
    };
    let rule = parser.rule(json, &root, 1);
    if parser.conditions > MAX_CONDITIONS {
        parser.issue(
            &root,
            format!(
                "too many conditions: {}; at most {MAX_CONDITIONS}",
                parser.conditions
            ),
        );
    }
    match rule {
        Some(rule) if parser.issues.is_empty() => Ok(rule),
        _ => {
            // Every refusal records an issue; this only guarantees that an error is never
            // an empty list, should a refusal ever forget to say why.
            if parser.issues.is_empty() {
                parser.issue(&root, "invalid rule");
            }
            Err(parser.issues)
        }
    }
}

/// A JSON path such as `rule.any[1].all[0].value`, built as the parser descends.
#[derive(Debug, Clone)]
struct Path(String);

impl Path {
    fn key(&self, key: &str) -> Path {
        // A key that is not a plain word (a typo with a space, say) is quoted, so that the
        // path still reads as one path.
        let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match (self.0.is_empty(), plain) {
            (true, true) => Path(key.to_owned()),
            (false, true) => Path(format!("{}.{key}", self.0)),
            (_, false) => Path(format!("{}[{}]", self.0, quote(key))),
        }
    }

    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
}

/// Quotes a text from the input for a message, cut short so that a huge input cannot
/// make a huge message.
fn quote(s: &str) -> String {
    const MAX_SHOWN: usize = 60;
    if s.chars().count() <= MAX_SHOWN {
        Value::String(s.to_owned()).to_string()
    } else {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("{}…", Value::String(cut))
    }
}

/// Names the JSON type of a value for "expected …, got …" messages.
fn describe(json: &Value) -> &'static str {
    match json {
        Value::Null => "no value",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value of an optional key. `null` counts as absent, as `"visit_url": null` does in
/// docs/semantics.md: clients that always send every key should not be refused for it.
fn present<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The value of a key that the object's kind already says is there.
fn required<'v>(obj: &'v Map<String, Value>, key: &str) -> &'v Value {
    obj.get(key).unwrap_or(&Value::Null)
}

/// A JSON number that is a whole number: `7`, and also `7.0` or `7e0`, which are the
/// same number written otherwise.
fn whole_number(json: &Value) -> Option<i64> {
    if let Some(n) = json.as_i64() {
        return Some(n);
    }
    let x = json.as_f64()?;
    // Every whole f64 in [-2^63, 2^63) converts to i64 exactly.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    (x.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&x)).then_some(x as i64)
}

/// An object with no kind key is the spec's visit of any page when it looks like a
/// behaviour condition; otherwise it is simply not a rule.
fn looks_like_visit(obj: &Map<String, Value>) -> bool {
    let behaviour_op = matches!(
        obj.get("op").and_then(Value::as_str),
        Some("occurred" | "not_occurred")
    );
    behaviour_op
        || ["within", "min_count", "max_count"]
            .iter()
            .any(|k| obj.contains_key(*k))
}

fn field_ops(ty: FieldType) -> &'static [&'static str] {
    match ty {
        FieldType::Text => &TEXT_FIELD_OPS,
        FieldType::Number => &NUMBER_FIELD_OPS,
        FieldType::Date => &DATE_FIELD_OPS,
        FieldType::Boolean => &BOOLEAN_FIELD_OPS,
    }
}

/// What the value of a field condition must be, once its type and op are known.
fn field_value_expected(ty: FieldType, op: &str) -> &'static str {
    match (ty, op) {
        (FieldType::Text, "in" | "not_in") => A_TEXT_LIST,
        (FieldType::Text, _) => A_TEXT,
        (FieldType::Number, "between") => A_NUMBER_PAIR,
        (FieldType::Number, _) => A_NUMBER,
        (FieldType::Date, "between") => A_DATE_PAIR,
        (FieldType::Date, "anniversary_within") => A_DAY_COUNT,
        (FieldType::Date, _) => A_DATE,
        (FieldType::Boolean, _) => "no value",
    }
}

/// What the value of a property condition must be for an op that takes one.
fn property_value_expected(op: &str) -> &'static str {
    match op {
        "equals" | "not_equals" => A_TEXT_OR_NUMBER,
        "in" | "not_in" => A_TEXT_LIST,
        "between" => A_NUMBER_PAIR,
        "greater_than" | "greater_or_equal" | "less_than" | "less_or_equal" => A_NUMBER,
        _ => A_TEXT,
    }
}

fn single_text_op(op: &str) -> Option<fn(Text) -> TextOp> {
    Some(match op {
        "equals" => TextOp::Equals,
        "not_equals" => TextOp::NotEquals,
        "contains" => TextOp::Contains,
        "not_contains" => TextOp::NotContains,
        "starts_with" => TextOp::StartsWith,
        "ends_with" => TextOp::EndsWith,
        _ => return None,
    })
}

fn single_number_op(op: &str) -> Option<fn(f64) -> NumberOp> {
    Some(match op {
        "equals" => NumberOp::Equals,
        "not_equals" => NumberOp::NotEquals,
        "greater_than" => NumberOp::GreaterThan,
        "greater_or_equal" => NumberOp::GreaterOrEqual,
        "less_than" => NumberOp::LessThan,
        "less_or_equal" => NumberOp::LessOrEqual,
        _ => return None,
    })
}

fn single_date_op(op: &str) -> Option<fn(DateValue) -> DateOp> {
    Some(match op {
        "equals" => DateOp::Equals,
        "not_equals" => DateOp::NotEquals,
        "before" => DateOp::Before,
        "after" => DateOp::After,
        _ => return None,
    })
}

fn no_value_field_test(op: &str) -> Option<FieldTest> {
    match op {
        "has_value" => Some(FieldTest::HasValue),
        "has_no_value" => Some(FieldTest::HasNoValue),
        "is_true" => Some(FieldTest::IsTrue),
        "is_false" => Some(FieldTest::IsFalse),
        _ => None,
    }
}

fn no_value_property_test(op: &str) -> Option<PropertyTest> {
    match op {
        "has_value" => Some(PropertyTest::HasValue),
        "has_no_value" => Some(PropertyTest::HasNoValue),
        "is_true" => Some(PropertyTest::IsTrue),
        "is_false" => Some(PropertyTest::IsFalse),
        _ => None,
    }
}

fn show_date(d: DateValue) -> String {
    match d {
        DateValue::Absolute(d) => d.to_string(),
        DateValue::Relative(n) => format!("{{\"relative_days\": {n}}}"),
    }
}

/// The JSON type of a property condition's value, which picks the op set (spec: "chosen
/// by the JSON type of `value`").
#[derive(Debug, Clone, Copy)]
enum PropertyValueKind {
    Text,
    TextList,
    Number,
    NumberPair,
}

impl PropertyValueKind {
    fn of(json: &Value, op: &str) -> Option<Self> {
        match json {
            Value::String(_) => Some(Self::Text),
            Value::Number(_) => Some(Self::Number),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
                Some(Self::TextList)
            }
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number) => {
                Some(Self::NumberPair)
            }
            // An empty or mixed list has no type of its own. When the op says which list
            // was meant, the list is checked as that one, so each bad item gets its own
            // precise message.
            Value::Array(_) => match op {
                "between" => Some(Self::NumberPair),
                "in" | "not_in" => Some(Self::TextList),
                _ => None,
            },
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Text => "a text value",
            Self::TextList => "a list of texts",
            Self::Number => "a number value",
            Self::NumberPair => "a pair of numbers",
        }
    }

    fn ops(self) -> &'static [&'static str] {
        match self {
            Self::Text => &TEXT_SINGLE_OPS,
            Self::TextList => &TEXT_LIST_OPS,
            Self::Number => &NUMBER_SINGLE_OPS,
            Self::NumberPair => &NUMBER_PAIR_OPS,
        }
    }
}

/// The one walk over the JSON, with the list of issues it has found so far.
struct Parser<'a> {
    catalog: &'a Catalog,
    this_segment: Option<SegmentId>,
    issues: Vec<Issue>,
    /// Leaves met so far, valid or not, for the limit on conditions.
    conditions: usize,
    /// Too deep a rule is reported once, at the first node past the limit: the nodes
    /// below it would only repeat the news, and the walk stops there anyway.
    too_deep_reported: bool,
}

impl Parser<'_> {
    /// Parses every item of a list with `item`, even after one fails, so that all problems
    /// are reported; the list only when every item parsed.
    fn each<T>(
        &mut self,
        items: &[Value],
        path: &Path,
        mut item: impl FnMut(&mut Self, &Value, &Path) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::with_capacity(items.len());
        let mut complete = true;
        for (i, json) in items.iter().enumerate() {
            match item(self, json, &path.index(i)) {
                Some(parsed) => out.push(parsed),
                None => complete = false,
            }
        }
        complete.then_some(out)
    }

    fn issue(&mut self, path: &Path, message: impl Into<String>) {
        self.issues.push(Issue::new(path.0.clone(), message));
    }

    /// Reports every key of `obj` that is not in `allowed`, each at its own path.
    fn unknown_keys(&mut self, obj: &Map<String, Value>, path: &Path, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.issue(
                    &path.key(key),
                    format!(
                        "unknown key {}; valid keys: {}",
                        quote(key),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// Reads the `op` of `obj` and checks that it is one of `valid`; `what` names what
    /// the op applies to, e.g. "a number field".
    fn op<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        path: &Path,
        valid: &[&str],
        what: &str,
    ) -> Option<&'v str> {
        let path = path.key("op");
        let valid_list = valid.join(", ");
        let message = match obj.get("op") {
            Some(Value::String(op)) if valid.contains(&op.as_str()) => return Some(op),
            Some(Value::String(op)) => {
                format!(
                    "op {} is not valid for {what}; valid ops: {valid_list}",
                    quote(op)
                )
            }
            None | Some(Value::Null) => format!("missing op; valid ops for {what}: {valid_list}"),
            Some(other) => format!(
                "expected an op (a text), got {}; valid ops for {what}: {valid_list}",
                describe(other)
            ),
        };
        self.issue(&path, message);
        None
    }

    /// Checks that an op that takes no value was given none.
    fn no_value(&mut self, op: &str, value: Option<&Value>, path: &Path) -> bool {
        if value.is_some() {
            self.issue(path, format!("op {} takes no value", quote(op)));
        }
        value.is_none()
    }

    /// Checks that an op that takes a value was given one.
    fn needs_value<'v>(
        &mut self,
        op: &str,
        value: Option<&'v Value>,
        path: &Path,
        expected: &str,
    ) -> Option<&'v Value> {
        if value.is_none() {
            self.issue(
                path,
                format!("missing value; op {} takes {expected}", quote(op)),
            );
        }
        value
    }

    /// Refuses an op that an earlier check should already have refused. It keeps the
    /// promise that every refusal says why, without a panic.
    fn unexpected_op<T>(&mut self, op: &str, path: &Path) -> Option<T> {
        self.issue(path, format!("op {} is not valid here", quote(op)));
        None
    }

    // Rule nodes.

    fn rule(&mut self, json: &Value, path: &Path, depth: usize) -> Option<Rule> {
        if depth > MAX_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                self.issue(
                    path,
                    format!(
                        "rule is nested too deeply: depth at most {MAX_DEPTH}, counting every \
                         all, any, not and condition on the way from the top"
                    ),
                );
            }
            return None;
        }
        let Some(obj) = json.as_object() else {
            self.issue(path, format!("{EXPECTED_RULE}, got {}", describe(json)));
            return None;
        };
        let kinds: Vec<&str> = KIND_KEYS
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        match kinds.as_slice() {
            ["all"] => self.group(obj, "all", path, depth).map(Rule::All),
            ["any"] => self.group(obj, "any", path, depth).map(Rule::Any),
            ["not"] => self.not(obj, path, depth),
            [kind] => self.condition(obj, kind, path),
            [] if looks_like_visit(obj) => self.condition(obj, "visit_url", path),
            [] => {
                self.issue(path, EXPECTED_RULE);
                // A misspelt kind key is the likely cause; naming it helps.
                self.unknown_keys(obj, path, &ALL_RULE_KEYS);
                None
            }
            _ => {
                self.issue(
                    path,
                    format!(
                        "expected exactly one of the keys {}; found {}",
                        KIND_KEYS.join(", "),
                        kinds.join(" and ")
                    ),
                );
                None
            }
        }
    }

    fn group(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &Path,
        depth: usize,
    ) -> Option<Vec<Rule>> {
        self.unknown_keys(obj, path, &[key]);
        let path = path.key(key);
        let items = match required(obj, key) {
            Value::Array(items) if !items.is_empty() => items,
            Value::Array(_) => {
                self.issue(
                    &path,
                    "expected at least one rule: a group must not be empty",
                );
                return None;
            }
            other => {
                self.issue(
                    &path,
                    format!("expected a list of rules, got {}", describe(other)),
                );
                return None;
            }
        };
        self.each(items, &path, |p, item, at| p.rule(item, at, depth + 1))
    }

    fn not(&mut self, obj: &Map<String, Value>, path: &Path, depth: usize) -> Option<Rule> {
        self.unknown_keys(obj, path, &["not"]);
        let path = path.key("not");
        let inner = required(obj, "not");
        if inner.is_array() {
            self.issue(
                &path,
                "expected one rule: \"not\" takes a single rule, not a list; wrap several \
                 rules in {\"all\": [...]} or {\"any\": [...]}",
            );
            return None;
        }
        self.rule(inner, &path, depth + 1)
            .map(|r| Rule::Not(Box::new(r)))
    }

    fn condition(&mut self, obj: &Map<String, Value>, kind: &str, path: &Path) -> Option<Rule> {
        self.conditions += 1;
        match kind {
            "field" => self.field_condition(obj, path).map(Rule::Field),
            "segment" => self.segment_condition(obj, path).map(Rule::Segment),
            _ => self
                .behaviour_condition(obj, kind, path)
                .map(Rule::Behaviour),
        }
    }

    // Field conditions.

    fn field_condition(&mut self, obj: &Map<String, Value>, path: &Path) -> Option<FieldCondition> {
        self.unknown_keys(obj, path, &FIELD_KEYS);
        let field = self.field_ref(required(obj, "field"), &path.key("field"));
        let Some((field, ty)) = field else {
            // Without the field's type its value cannot be checked; an op that no field
            // type has is still worth reporting.
            self.op(obj, path, &ANY_FIELD_OPS, "any field");
            return None;
        };
        let op = self.op(obj, path, field_ops(ty), &format!("a {ty} field"))?;
        let test = self.field_test(ty, op, present(obj, "value"), &path.key("value"))?;
        Some(FieldCondition { field, test })
    }

    fn field_ref(&mut self, json: &Value, path: &Path) -> Option<(FieldRef, FieldType)> {
        let Some(key) = json.as_str() else {
            self.issue(
                path,
                format!("expected a field key (a text), got {}", describe(json)),
            );
            return None;
        };
        match key {
            "email" => Some((FieldRef::Email, FieldType::Text)),
            "phone" => Some((FieldRef::Phone, FieldType::Text)),
            _ => match self.catalog.fields.get(key) {
                Some(&ty) => Some((FieldRef::Custom(key.to_owned()), ty)),
                None => {
                    self.issue(path, format!("unknown field {}", quote(key)));
                    None
                }
            },
        }
    }

    /// Checks the value of a field condition whose op is already known to suit the type.
    fn field_test(
        &mut self,
        ty: FieldType,
        op: &str,
        value: Option<&Value>,
        path: &Path,
    ) -> Option<FieldTest> {
        if let Some(test) = no_value_field_test(op) {
            return self.no_value(op, value, path).then_some(test);
        }
        let value = self.needs_value(op, value, path, field_value_expected(ty, op))?;
        match ty {
            FieldType::Text => self.text_op(op, value, path).map(FieldTest::Text),
            FieldType::Number => self.number_op(op, value, path).map(FieldTest::Number),
            FieldType::Date => self.date_op(op, value, path).map(FieldTest::Date),
            FieldType::Boolean => self.unexpected_op(op, path),
        }
    }

    // Operands, shared by field, property and URL conditions.

    fn text_op(&mut self, op: &str, value: &Value, path: &Path) -> Option<TextOp> {
        match op {
            "in" => self.text_list(value, path).map(TextOp::In),
            "not_in" => self.text_list(value, path).map(TextOp::NotIn),
            _ => {
                let Some(make) = single_text_op(op) else {
                    return self.unexpected_op(op, path);
                };
                self.text(value, path).map(make)
            }
        }
    }

    fn number_op(&mut self, op: &str, value: &Value, path: &Path) -> Option<NumberOp> {
        if op == "between" {
            return self
                .number_pair(value, path)
                .map(|(low, high)| NumberOp::Between(low, high));
        }
        let Some(make) = single_number_op(op) else {
            return self.unexpected_op(op, path);
        };
        self.number(value, path).map(make)
    }

    fn date_op(&mut self, op: &str, value: &Value, path: &Path) -> Option<DateOp> {
        match op {
            "between" => self
                .date_pair(value, path)
                .map(|(from, to)| DateOp::Between(from, to)),
            "anniversary_within" => self
                .whole(value, path, 0, MAX_ANNIVERSARY_DAYS)
                .map(DateOp::AnniversaryWithin),
            _ => {
                let Some(make) = single_date_op(op) else {
                    return self.unexpected_op(op, path);
                };
                self.date_value(value, path).map(make)
            }
        }
    }

    /// A non-empty string of at most `max_chars` characters; `what` names it in messages.
    fn string<'v>(
        &mut self,
        json: &'v Value,
        path: &Path,
        what: &str,
        max_chars: usize,
    ) -> Option<&'v str> {
        let Some(s) = json.as_str() else {
            self.issue(path, format!("expected {what}, got {}", describe(json)));
            return None;
        };
        if s.is_empty() {
            self.issue(path, format!("expected {what}, got an empty text"));
            return None;
        }
        let chars = s.chars().count();
        if chars > max_chars {
            self.issue(
                path,
                format!("expected {what} of at most {max_chars} characters, got {chars}"),
            );
            return None;
        }
        Some(s)
    }

    fn text(&mut self, json: &Value, path: &Path) -> Option<Text> {
        self.string(json, path, A_TEXT, MAX_TEXT_CHARS)
            .map(Text::new)
    }

    fn text_list(&mut self, json: &Value, path: &Path) -> Option<Vec<Text>> {
        let items = match json {
            Value::Array(items) if items.is_empty() => {
                self.issue(path, format!("expected {A_TEXT_LIST}, got an empty list"));
                return None;
            }
            // Past the limit the items are not checked one by one: a thousand messages
            // about them would bury the one that matters.
            Value::Array(items) if items.len() > MAX_IN_ITEMS => {
                self.issue(
                    path,
                    format!("expected at most {MAX_IN_ITEMS} items, got {}", items.len()),
                );
                return None;
            }
            Value::Array(items) => items,
            other => {
                self.issue(
                    path,
                    format!("expected {A_TEXT_LIST}, got {}", describe(other)),
                );
                return None;
            }
        };
        self.each(items, path, Self::text)
    }

    fn number(&mut self, json: &Value, path: &Path) -> Option<f64> {
        // serde_json cannot hold NaN or infinities; the check keeps that true should its
        // features ever change.
        match json.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.issue(path, format!("expected {A_NUMBER}, got {}", describe(json)));
                None
            }
        }
    }

    fn number_pair(&mut self, json: &Value, path: &Path) -> Option<(f64, f64)> {
        let Some([low, high]) = json.as_array().map(Vec::as_slice) else {
            self.issue(path, format!("expected {A_NUMBER_PAIR}"));
            return None;
        };
        let low = self.number(low, &path.index(0));
        let high = self.number(high, &path.index(1));
        let (low, high) = (low?, high?);
        if low > high {
            self.issue(path, format!("low ({low}) is greater than high ({high})"));
            return None;
        }
        Some((low, high))
    }

    fn date_value(&mut self, json: &Value, path: &Path) -> Option<DateValue> {
        match json {
            Value::String(s) => {
                let date = data::parse_date(s).map(DateValue::Absolute);
                if date.is_none() {
                    self.issue(path, format!("expected {A_DATE}, got {}", quote(s)));
                }
                date
            }
            Value::Object(obj) if obj.contains_key("relative_days") => {
                self.unknown_keys(obj, path, &RELATIVE_DATE_KEYS);
                self.whole(
                    required(obj, "relative_days"),
                    &path.key("relative_days"),
                    -MAX_RELATIVE_DAYS,
                    MAX_RELATIVE_DAYS,
                )
                .map(DateValue::Relative)
            }
            other => {
                self.issue(path, format!("expected {A_DATE}, got {}", describe(other)));
                None
            }
        }
    }

    fn date_pair(&mut self, json: &Value, path: &Path) -> Option<(DateValue, DateValue)> {
        let Some([from, to]) = json.as_array().map(Vec::as_slice) else {
            self.issue(path, format!("expected {A_DATE_PAIR}"));
            return None;
        };
        let from = self.date_value(from, &path.index(0));
        let to = self.date_value(to, &path.index(1));
        let (from, to) = (from?, to?);
        // A mix of an absolute and a relative date can only be compared on the day of
        // evaluation (docs/semantics.md), so only like with like is checked here.
        let inverted = match (from, to) {
            (DateValue::Absolute(a), DateValue::Absolute(b)) => a > b,
            (DateValue::Relative(a), DateValue::Relative(b)) => a > b,
            _ => false,
        };
        if inverted {
            self.issue(
                path,
                format!("from ({}) is after to ({})", show_date(from), show_date(to)),
            );
            return None;
        }
        Some((from, to))
    }

    /// A whole number within `min..=max`. `7.0` is accepted as 7; `1.5`, a number out of
    /// range and anything that is not a number are refused, saying what was given.
    fn whole<T>(&mut self, json: &Value, path: &Path, min: T, max: T) -> Option<T>
    where
        T: Copy + Into<i64> + TryFrom<i64> + fmt::Display,
    {
        let n = whole_number(json)
            .filter(|n| (min.into()..=max.into()).contains(n))
            .and_then(|n| T::try_from(n).ok());
        if n.is_none() {
            let got = if json.is_number() {
                json.to_string()
            } else {
                describe(json).to_owned()
            };
            self.issue(
                path,
                format!("expected a whole number from {min} to {max}, got {got}"),
            );
        }
        n
    }

    fn timestamp(&mut self, json: &Value, path: &Path) -> Option<Timestamp> {
        let Some(s) = json.as_str() else {
            self.issue(
                path,
                format!("expected {A_TIMESTAMP}, got {}", describe(json)),
            );
            return None;
        };
        let ts = data::parse_timestamp(s);
        if ts.is_none() {
            // The most likely slip is a local time without an offset: say so plainly.
            let no_offset = s.parse::<jiff::civil::DateTime>().is_ok();
            let why = if no_offset {
                ", which has no offset"
            } else {
                ""
            };
            self.issue(
                path,
                format!("expected {A_TIMESTAMP}, got {}{why}", quote(s)),
            );
        }
        ts
    }

    fn timestamp_pair(&mut self, json: &Value, path: &Path) -> Option<(Timestamp, Timestamp)> {
        let Some([start, end]) = json.as_array().map(Vec::as_slice) else {
            self.issue(path, format!("expected {A_TIMESTAMP_PAIR}"));
            return None;
        };
        let start = self.timestamp(start, &path.index(0));
        let end = self.timestamp(end, &path.index(1));
        let (start, end) = (start?, end?);
        if start >= end {
            self.issue(path, format!("start ({start}) is not before end ({end})"));
            return None;
        }
        Some((start, end))
    }

    // Behaviour conditions.

    fn behaviour_condition(
        &mut self,
        obj: &Map<String, Value>,
        kind: &str,
        path: &Path,
    ) -> Option<BehaviourCondition> {
        let source = match kind {
            "system_event" => self.system_source(obj, path),
            "custom_event" => self.custom_source(obj, path),
            _ => self.visit_source(obj, path),
        };
        let occurrence = self.occurrence(obj, path);
        let within = match present(obj, "within") {
            Some(window) => self.window(window, &path.key("within")).map(Some),
            None => Some(None),
        };
        Some(BehaviourCondition {
            source: source?,
            occurrence: occurrence?,
            within: within?,
        })
    }

    fn system_source(&mut self, obj: &Map<String, Value>, path: &Path) -> Option<EventSource> {
        self.unknown_keys(obj, path, &SYSTEM_EVENT_KEYS);
        let kind_path = path.key("system_event");
        let kinds = SystemEventKind::ALL.map(SystemEventKind::as_str).join(", ");
        let kind = match required(obj, "system_event") {
            Value::String(s) => {
                let kind = SystemEventKind::parse(s);
                if kind.is_none() {
                    self.issue(
                        &kind_path,
                        format!("unknown system event {}; expected one of {kinds}", quote(s)),
                    );
                }
                kind
            }
            other => {
                self.issue(
                    &kind_path,
                    format!(
                        "expected a system event, one of {kinds}; got {}",
                        describe(other)
                    ),
                );
                None
            }
        };
        let campaign = match present(obj, "campaign") {
            Some(c) => self
                .string(c, &path.key("campaign"), "a campaign id", MAX_TEXT_CHARS)
                .map(|c| Some(c.to_owned())),
            None => Some(None),
        };
        Some(EventSource::System {
            kind: kind?,
            campaign: campaign?,
        })
    }

    fn custom_source(&mut self, obj: &Map<String, Value>, path: &Path) -> Option<EventSource> {
        self.unknown_keys(obj, path, &CUSTOM_EVENT_KEYS);
        self.no_campaign(obj, path);
        let name = self.string(
            required(obj, "custom_event"),
            &path.key("custom_event"),
            "an event name",
            MAX_EVENT_NAME_CHARS,
        );
        let filters = match present(obj, "where") {
            Some(filters) => self.property_conditions(filters, &path.key("where")),
            None => Some(Vec::new()),
        };
        Some(EventSource::Custom {
            name: name?.to_owned(),
            filters: filters?,
        })
    }

    fn visit_source(&mut self, obj: &Map<String, Value>, path: &Path) -> Option<EventSource> {
        self.unknown_keys(obj, path, &VISIT_KEYS);
        self.no_campaign(obj, path);
        let url = match present(obj, "visit_url") {
            Some(url) => self.visit_url(url, &path.key("visit_url")).map(Some),
            None => Some(None),
        };
        Some(EventSource::Visit { url: url? })
    }

    /// `campaign` belongs to system events only; elsewhere it is refused with the reason
    /// rather than as a bare unknown key.
    fn no_campaign(&mut self, obj: &Map<String, Value>, path: &Path) {
        if present(obj, "campaign").is_some() {
            self.issue(
                &path.key("campaign"),
                "campaign is only allowed on system events (system_event)",
            );
        }
    }

    fn visit_url(&mut self, json: &Value, path: &Path) -> Option<TextOp> {
        let Some(obj) = json.as_object() else {
            self.issue(
                path,
                format!(
                    "expected {{\"op\": OP, \"value\": \"...\"}}, or no visit_url for any \
                     page; got {}",
                    describe(json)
                ),
            );
            return None;
        };
        self.unknown_keys(obj, path, &VISIT_URL_KEYS);
        let op = self.op(obj, path, &TEXT_VALUE_OPS, "visit_url")?;
        let value_path = path.key("value");
        let expected = if matches!(op, "in" | "not_in") {
            A_TEXT_LIST
        } else {
            A_TEXT
        };
        let value = self.needs_value(op, present(obj, "value"), &value_path, expected)?;
        self.text_op(op, value, &value_path)
    }

    fn occurrence(&mut self, obj: &Map<String, Value>, path: &Path) -> Option<Occurrence> {
        let op = self.op(obj, path, &BEHAVIOUR_OPS, "a behaviour condition");
        if op == Some("not_occurred") {
            for key in ["min_count", "max_count"] {
                if present(obj, key).is_some() {
                    self.issue(
                        &path.key(key),
                        format!("{key} is only allowed with op \"occurred\""),
                    );
                }
            }
            return Some(Occurrence::NotOccurred);
        }
        let min_count = self.count(obj, "min_count", path);
        let max_count = self.count(obj, "max_count", path);
        let (Some(_), Some(min_count), Some(max_count)) = (op, min_count, max_count) else {
            return None;
        };
        let min_count = min_count.unwrap_or(1);
        if let Some(max) = max_count.filter(|&max| max < min_count) {
            self.issue(
                &path.key("max_count"),
                format!("max_count ({max}) is less than min_count ({min_count})"),
            );
            return None;
        }
        Some(Occurrence::Occurred {
            min_count,
            max_count,
        })
    }

    /// An optional count: `Some(None)` when absent, `None` when invalid.
    fn count(&mut self, obj: &Map<String, Value>, key: &str, path: &Path) -> Option<Option<u32>> {
        match present(obj, key) {
            Some(n) => self
                .whole(n, &path.key(key), MIN_COUNT, MAX_COUNT)
                .map(Some),
            None => Some(None),
        }
    }

    fn window(&mut self, json: &Value, path: &Path) -> Option<Window> {
        let Some(obj) = json.as_object() else {
            self.issue(path, format!("{EXPECTED_WINDOW}, got {}", describe(json)));
            return None;
        };
        self.unknown_keys(obj, path, &WINDOW_KEYS);
        let given: Vec<&str> = WINDOW_KEYS
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        let [key] = given.as_slice() else {
            let found = if given.is_empty() {
                "none".to_owned()
            } else {
                given.join(" and ")
            };
            self.issue(
                path,
                format!("expected exactly one of last_days, since, before, between; found {found}"),
            );
            return None;
        };
        let value = required(obj, key);
        let path = path.key(key);
        match *key {
            "last_days" => self
                .whole(value, &path, 1, MAX_LAST_DAYS)
                .map(Window::LastDays),
            "since" => self.timestamp(value, &path).map(Window::Since),
            "before" => self.timestamp(value, &path).map(Window::Before),
            _ => self
                .timestamp_pair(value, &path)
                .map(|(start, end)| Window::Between(start, end)),
        }
    }

    // Property conditions of custom events.

    fn property_conditions(&mut self, json: &Value, path: &Path) -> Option<Vec<PropertyCondition>> {
        let Some(items) = json.as_array() else {
            self.issue(
                path,
                format!(
                    "expected a list of property conditions, e.g. [{{\"property\": \"plan\", \
                     \"op\": \"equals\", \"value\": \"pro\"}}], got {}",
                    describe(json)
                ),
            );
            return None;
        };
        self.each(items, path, Self::property_condition)
    }

    fn property_condition(&mut self, json: &Value, path: &Path) -> Option<PropertyCondition> {
        let Some(obj) = json.as_object() else {
            self.issue(
                path,
                format!(
                    "expected a property condition {{\"property\": PATH, \"op\": OP, \
                     \"value\": V}}, got {}",
                    describe(json)
                ),
            );
            return None;
        };
        self.unknown_keys(obj, path, &PROPERTY_KEYS);
        let property = self.property_path(required(obj, "property"), &path.key("property"));
        let test = self.property_test(obj, path);
        Some(PropertyCondition {
            path: property?.to_owned(),
            test: test?,
        })
    }

    fn property_path<'v>(&mut self, json: &'v Value, path: &Path) -> Option<&'v str> {
        let property = self.string(json, path, A_PROPERTY_PATH, MAX_TEXT_CHARS)?;
        if property.split('.').any(str::is_empty) {
            self.issue(
                path,
                format!(
                    "expected {A_PROPERTY_PATH}, got {}: every part between dots must be \
                     non-empty",
                    quote(property)
                ),
            );
            return None;
        }
        Some(property)
    }

    /// The op set of a property condition follows the JSON type of its value
    /// (docs/semantics.md), so the value is classified first and the op checked against
    /// what that type allows.
    fn property_test(&mut self, obj: &Map<String, Value>, path: &Path) -> Option<PropertyTest> {
        let op = self.op(obj, path, &PROPERTY_OPS, "a property condition")?;
        let value_path = path.key("value");
        let value = present(obj, "value");
        if let Some(test) = no_value_property_test(op) {
            return self.no_value(op, value, &value_path).then_some(test);
        }
        let value = self.needs_value(op, value, &value_path, property_value_expected(op))?;
        let Some(kind) = PropertyValueKind::of(value, op) else {
            let hint = if value.is_boolean() {
                "; a boolean property is tested with op \"is_true\" or \"is_false\" and no value"
            } else {
                ""
            };
            self.issue(
                &value_path,
                format!("expected {A_PROPERTY_VALUE}, got {}{hint}", describe(value)),
            );
            return None;
        };
        if !kind.ops().contains(&op) {
            self.issue(
                &path.key("op"),
                format!(
                    "op {} is not valid with {}; valid ops: {}",
                    quote(op),
                    kind.name(),
                    kind.ops().join(", ")
                ),
            );
            return None;
        }
        match kind {
            PropertyValueKind::Text | PropertyValueKind::TextList => {
                self.text_op(op, value, &value_path).map(PropertyTest::Text)
            }
            PropertyValueKind::Number | PropertyValueKind::NumberPair => self
                .number_op(op, value, &value_path)
                .map(PropertyTest::Number),
        }
    }

    // Segment references.

    fn segment_condition(
        &mut self,
        obj: &Map<String, Value>,
        path: &Path,
    ) -> Option<SegmentCondition> {
        self.unknown_keys(obj, path, &SEGMENT_KEYS);
        let segment = self.segment_id(required(obj, "segment"), &path.key("segment"));
        let op = self.op(obj, path, &SEGMENT_OPS, "a segment condition");
        Some(SegmentCondition {
            segment: segment?,
            member: op? == "in",
        })
    }

    fn segment_id(&mut self, json: &Value, path: &Path) -> Option<SegmentId> {
        let Some(id) = whole_number(json) else {
            let got = if json.is_number() {
                json.to_string()
            } else {
                describe(json).to_owned()
            };
            self.issue(
                path,
                format!("expected a segment id (a whole number), got {got}"),
            );
            return None;
        };
        let message = if self.this_segment == Some(id) {
            format!("cycle: a segment cannot refer to itself (segment {id})")
        } else if !self.catalog.segments.contains_key(&id) {
            format!("unknown segment {id}")
        } else if let Some(chain) = self.chain_back_to_this_segment(id) {
            let chain: Vec<String> = chain.iter().map(i64::to_string).collect();
            format!(
                "cycle: segment {id} refers back to this segment ({})",
                chain.join(" → ")
            )
        } else {
            return Some(id);
        };
        self.issue(path, message);
        None
    }

    /// The shortest chain of references from `start` back to the segment being saved, if
    /// there is one. The search remembers the segments it has seen, so it ends even when
    /// the catalog already holds a cycle of its own. The saved segment's own references
    /// in the catalog are never followed: they belong to the rule being replaced.
    fn chain_back_to_this_segment(&self, start: SegmentId) -> Option<Vec<SegmentId>> {
        let target = self.this_segment?;
        let mut came_from: HashMap<SegmentId, SegmentId> = HashMap::new();
        let mut seen = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            if id == target {
                let mut chain = vec![id];
                let mut at = id;
                while let Some(&previous) = came_from.get(&at) {
                    chain.push(previous);
                    at = previous;
                }
                chain.reverse();
                return Some(chain);
            }
            let references = self
                .catalog
                .segments
                .get(&id)
                .map_or(&[][..], Vec::as_slice);
            for &next in references {
                if seen.insert(next) {
                    came_from.insert(next, id);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}
