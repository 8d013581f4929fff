//! A rule in plain words: "City equals Warsaw and opened an e-mail in the last 30 days".
//!
//! Groups join their children with "and"/"or"; a group inside another is put in
//! parentheses. Fields are named by their label; segments by their name.

use std::collections::HashMap;

use segmentd_rules::SegmentId;
use segmentd_rules::data::SystemEventKind;
use segmentd_rules::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldCondition, FieldRef, FieldTest,
    NumberOp, Occurrence, PropertyCondition, PropertyTest, Rule, TextOp, Window,
};

/// What the words need besides the rule: field labels and segment names.
#[derive(Debug, Default)]
pub struct Names {
    pub fields: HashMap<String, String>,
    pub segments: HashMap<SegmentId, String>,
}

pub fn describe(rule: &Rule, names: &Names) -> String {
    words(rule, names, false)
}

fn words(rule: &Rule, names: &Names, nested: bool) -> String {
    let join = |children: &[Rule], sep: &str| {
        let parts: Vec<String> = children.iter().map(|c| words(c, names, true)).collect();
        let text = parts.join(sep);
        if nested && children.len() > 1 {
            format!("({text})")
        } else {
            text
        }
    };
    match rule {
        Rule::All(children) => join(children, " and "),
        Rule::Any(children) => join(children, " or "),
        Rule::Not(child) => format!("not ({})", words(child, names, false)),
        Rule::Field(c) => field_words(c, names),
        Rule::Behaviour(b) => behaviour_words(b),
        Rule::Segment(s) => {
            let name = names
                .segments
                .get(&s.segment)
                .cloned()
                .unwrap_or_else(|| format!("segment {}", s.segment));
            if s.member {
                format!("is in \u{201c}{name}\u{201d}")
            } else {
                format!("is not in \u{201c}{name}\u{201d}")
            }
        }
    }
}

/// The label of a field as the panel shows it.
pub fn field_label(field: &FieldRef, names: &Names) -> String {
    match field {
        FieldRef::Email => "E-mail".to_owned(),
        FieldRef::Phone => "Phone".to_owned(),
        FieldRef::Custom(k) => names.fields.get(k).cloned().unwrap_or_else(|| k.clone()),
    }
}

fn field_words(c: &FieldCondition, names: &Names) -> String {
    let label = field_label(&c.field, names);
    let test = match &c.test {
        FieldTest::HasValue => "has a value".to_owned(),
        FieldTest::HasNoValue => "has no value".to_owned(),
        FieldTest::IsTrue => "is true".to_owned(),
        FieldTest::IsFalse => "is false".to_owned(),
        FieldTest::Text(op) => text_op_words(op),
        FieldTest::Number(op) => number_op_words(op),
        FieldTest::Date(op) => date_op_words(op),
    };
    format!("{label} {test}")
}

fn list(items: &[segmentd_rules::rule::Text]) -> String {
    let quoted: Vec<String> = items.iter().map(|t| t.original.clone()).collect();
    quoted.join(", ")
}

fn text_op_words(op: &TextOp) -> String {
    match op {
        TextOp::Equals(t) => format!("equals {}", t.original),
        TextOp::NotEquals(t) => format!("does not equal {}", t.original),
        TextOp::Contains(t) => format!("contains {}", t.original),
        TextOp::NotContains(t) => format!("does not contain {}", t.original),
        TextOp::StartsWith(t) => format!("starts with {}", t.original),
        TextOp::EndsWith(t) => format!("ends with {}", t.original),
        TextOp::In(ts) => format!("is one of {}", list(ts)),
        TextOp::NotIn(ts) => format!("is none of {}", list(ts)),
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn number_op_words(op: &NumberOp) -> String {
    match *op {
        NumberOp::Equals(x) => format!("equals {}", num(x)),
        NumberOp::NotEquals(x) => format!("does not equal {}", num(x)),
        NumberOp::GreaterThan(x) => format!("is greater than {}", num(x)),
        NumberOp::GreaterOrEqual(x) => format!("is at least {}", num(x)),
        NumberOp::LessThan(x) => format!("is less than {}", num(x)),
        NumberOp::LessOrEqual(x) => format!("is at most {}", num(x)),
        NumberOp::Between(a, b) => format!("is between {} and {}", num(a), num(b)),
    }
}

fn date_words(d: &DateValue) -> String {
    match *d {
        DateValue::Absolute(d) => d.to_string(),
        DateValue::Relative(0) => "today".to_owned(),
        DateValue::Relative(1) => "tomorrow".to_owned(),
        DateValue::Relative(-1) => "yesterday".to_owned(),
        DateValue::Relative(n) if n < 0 => format!("{} days ago", -i64::from(n)),
        DateValue::Relative(n) => format!("{n} days ahead"),
    }
}

fn date_op_words(op: &DateOp) -> String {
    match op {
        DateOp::Equals(d) => format!("is {}", date_words(d)),
        DateOp::NotEquals(d) => format!("is not {}", date_words(d)),
        DateOp::Before(d) => format!("is before {}", date_words(d)),
        DateOp::After(d) => format!("is after {}", date_words(d)),
        DateOp::Between(a, b) => format!("is between {} and {}", date_words(a), date_words(b)),
        DateOp::AnniversaryWithin(0) => "has its anniversary today".to_owned(),
        DateOp::AnniversaryWithin(n) => format!("has its anniversary within {n} days"),
    }
}

fn system_verb(kind: SystemEventKind) -> &'static str {
    match kind {
        SystemEventKind::MailOpen => "opened an e-mail",
        SystemEventKind::MailClick => "clicked in an e-mail",
        SystemEventKind::SmsClick => "clicked in an SMS",
        SystemEventKind::PushClick => "clicked a push notification",
    }
}

fn system_negative(kind: SystemEventKind) -> &'static str {
    match kind {
        SystemEventKind::MailOpen => "did not open an e-mail",
        SystemEventKind::MailClick => "did not click in an e-mail",
        SystemEventKind::SmsClick => "did not click in an SMS",
        SystemEventKind::PushClick => "did not click a push notification",
    }
}

fn property_words(p: &PropertyCondition) -> String {
    let test = match &p.test {
        PropertyTest::HasValue => "has a value".to_owned(),
        PropertyTest::HasNoValue => "has no value".to_owned(),
        PropertyTest::IsTrue => "is true".to_owned(),
        PropertyTest::IsFalse => "is false".to_owned(),
        PropertyTest::Text(op) => text_op_words(op),
        PropertyTest::Number(op) => number_op_words(op),
    };
    format!("{} {test}", p.path)
}

fn window_words(w: &Window) -> String {
    match w {
        Window::LastDays(1) => "in the last day".to_owned(),
        Window::LastDays(n) => format!("in the last {n} days"),
        Window::Since(t) => format!("since {t}"),
        Window::Before(t) => format!("before {t}"),
        Window::Between(a, b) => format!("between {a} and {b}"),
    }
}

fn behaviour_words(b: &BehaviourCondition) -> String {
    let negative = b.occurrence == Occurrence::NotOccurred;
    let mut text = match &b.source {
        EventSource::System { kind, .. } if negative => system_negative(*kind).to_owned(),
        EventSource::System { kind, .. } => system_verb(*kind).to_owned(),
        EventSource::Custom { name, .. } if negative => {
            format!("did not do \u{201c}{name}\u{201d}")
        }
        EventSource::Custom { name, .. } => format!("did \u{201c}{name}\u{201d}"),
        EventSource::Visit { url } => {
            let page = match url {
                None => "a page".to_owned(),
                Some(op) => format!("a page whose URL {}", text_op_words(op)),
            };
            if negative {
                format!("did not visit {page}")
            } else {
                format!("visited {page}")
            }
        }
    };
    if let EventSource::System {
        campaign: Some(c), ..
    } = &b.source
    {
        text.push_str(&format!(" of campaign {c}"));
    }
    if let EventSource::Custom { filters, .. } = &b.source
        && !filters.is_empty()
    {
        let parts: Vec<String> = filters.iter().map(property_words).collect();
        text.push_str(&format!(" where {}", parts.join(" and ")));
    }
    if let Occurrence::Occurred {
        min_count,
        max_count,
    } = b.occurrence
    {
        match (min_count, max_count) {
            (1, None) => {}
            (n, None) => text.push_str(&format!(" at least {n} times")),
            (n, Some(m)) if n == m => text.push_str(&format!(" exactly {n} times")),
            (1, Some(m)) => text.push_str(&format!(" at most {m} times")),
            (n, Some(m)) => text.push_str(&format!(" {n} to {m} times")),
        }
    }
    if let Some(w) = &b.within {
        text.push(' ');
        text.push_str(&window_words(w));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use segmentd_rules::{Catalog, FieldType, parse_rule};
    use serde_json::json;

    fn check(rule: serde_json::Value, want: &str) {
        let catalog = Catalog {
            fields: [
                ("city".to_owned(), FieldType::Text),
                ("age".to_owned(), FieldType::Number),
            ]
            .into_iter()
            .collect(),
            segments: Default::default(),
        };
        let rule = parse_rule(&rule, "rule", &catalog, None).unwrap();
        let names = Names {
            fields: [("city".to_owned(), "City".to_owned())]
                .into_iter()
                .collect(),
            segments: HashMap::new(),
        };
        assert_eq!(describe(&rule, &names), want);
    }

    #[test]
    fn rules_read_as_sentences() {
        check(
            json!({"all": [{"field": "city", "op": "equals", "value": "Warsaw"},
                {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 30}}]}),
            "City equals Warsaw and opened an e-mail in the last 30 days",
        );
        check(
            json!({"any": [{"all": [{"field": "age", "op": "between", "value": [18, 30]},
                {"field": "email", "op": "has_value"}]},
                {"custom_event": "purchase", "op": "occurred", "min_count": 2,
                 "where": [{"property": "amount", "op": "greater_than", "value": 200}]}]}),
            "(age is between 18 and 30 and E-mail has a value) or did \u{201c}purchase\u{201d} where amount is greater than 200 at least 2 times",
        );
        check(
            json!({"visit_url": {"op": "contains", "value": "/pricing"}, "op": "not_occurred"}),
            "did not visit a page whose URL contains /pricing",
        );
    }
}
