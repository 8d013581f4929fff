//! Problems in plain words: the panel's translation of the rules crate's path-carrying
//! messages (`value: low (50) is greater than high (20)`) into sentences a marketer reads
//! beside the condition they concern ("Low must be at most high."). The API keeps its
//! own messages (a contract of `spec/api.md`); only `/panel/api/…` answers with these.
//!
//! The path stays in each problem, so that the builder can put the sentence beside its
//! condition; the sentence never shows it.

use std::collections::HashMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use segmentd_rules::{Issue, SegmentId};
use serde::Serialize;

use crate::error::ApiError;

/// One problem: where (for placing it), and what, in a sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// The segment that already has the name, for the duplicate-name message's link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentLink {
    pub id: SegmentId,
    pub name: String,
}

/// The key a path ends with: `rule.any[0].all[1].value[0]` → `value`.
fn slot(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// `"… (a → b → c)"` → the ids inside the last parentheses.
fn chain(message: &str) -> Vec<SegmentId> {
    let Some(inner) = message
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
    else {
        return Vec::new();
    };
    inner
        .split('→')
        .filter_map(|id| id.trim().parse().ok())
        .collect()
}

fn quoted(id: SegmentId, names: &HashMap<SegmentId, String>) -> String {
    match names.get(&id) {
        Some(name) => format!("\u{201c}{name}\u{201d}"),
        None => format!("segment {id}"),
    }
}

/// A number inside a message: `expected a whole number from 1 to 3650, got 0` → the
/// numbers after `from` and `to`.
fn range(message: &str) -> Option<(String, String)> {
    let rest = message.split("from ").nth(1)?;
    let (from, rest) = rest.split_once(" to ")?;
    let to = rest.split(',').next()?;
    Some((from.trim().to_owned(), to.trim().to_owned()))
}

/// `expected a name of 1 to 200 characters` → `200`.
fn range_of_name(message: &str) -> Option<&str> {
    message.split(" to ").nth(1)?.split(' ').next()
}

/// The issue as a sentence. `names` names the account's segments (for cycles).
pub fn sentence(issue: &Issue, names: &HashMap<SegmentId, String>) -> String {
    let m = issue.message.as_str();
    let slot = slot(&issue.path);
    let empty = m.ends_with("got an empty text")
        || m.ends_with("got no value")
        || m.starts_with("missing value");
    if issue.path == "name" {
        return match range_of_name(m) {
            Some(max) => format!("Enter a name of 1 to {max} characters."),
            None => "Enter a name for the segment.".to_owned(),
        };
    }
    if issue.path == "description" {
        let max = m.split("at most ").nth(1).and_then(|r| r.split(' ').next());
        return format!(
            "The description can have at most {} characters.",
            max.unwrap_or("2000")
        );
    }
    if m.starts_with("low (") && m.contains("is greater than high") {
        return "Low must be at most high.".to_owned();
    }
    if m.starts_with("from (") && m.contains("is after to") {
        return "The first date must not be after the second.".to_owned();
    }
    if m.starts_with("start (") && m.contains("is not before end") {
        return "The start date must be before the end date.".to_owned();
    }
    if m.starts_with("max_count") && m.contains("less than min_count") {
        return "\u{201c}At most\u{201d} times must not be less than \u{201c}at least\u{201d}."
            .to_owned();
    }
    if m.contains("is only allowed with op \"occurred\"") {
        return "A number of times only applies to events that occurred.".to_owned();
    }
    if m.starts_with("cycle: a segment cannot refer to itself") {
        return "A segment cannot include itself.".to_owned();
    }
    if m.starts_with("cycle: segment") {
        let ids = chain(m);
        let first = ids.first().map(|&id| quoted(id, names));
        let through: Vec<String> = ids
            .iter()
            .skip(1)
            .take(ids.len().saturating_sub(2))
            .map(|&id| quoted(id, names))
            .collect();
        let first = first.unwrap_or_else(|| "That segment".to_owned());
        return if through.is_empty() {
            format!(
                "{first} already includes this segment, so it cannot be used here: the two would go round in a circle."
            )
        } else {
            format!(
                "{first} already includes this segment (through {}), so it cannot be used here: they would go round in a circle.",
                through.join(" and ")
            )
        };
    }
    if m.starts_with("unknown segment") {
        return "That segment no longer exists. Choose another one.".to_owned();
    }
    if m.starts_with("expected a segment id") || (slot == "segment" && empty) {
        return "Choose a segment.".to_owned();
    }
    if m.starts_with("unknown field") {
        return "That field no longer exists. Choose another one.".to_owned();
    }
    if slot == "op" {
        return if m.starts_with("missing op") {
            "Choose an operator.".to_owned()
        } else {
            "This operator does not fit the value. Choose another one.".to_owned()
        };
    }
    if slot == "custom_event" {
        return "Enter an event name.".to_owned();
    }
    if slot == "property" {
        return "Enter a property name, such as amount or order.total.".to_owned();
    }
    if m.starts_with("expected a whole number") {
        let (from, to) = range(m).unwrap_or_default();
        return match slot {
            "last_days" => format!("Enter a number of days from {from} to {to}."),
            "min_count" | "max_count" => format!("Enter a number of times from {from} to {to}."),
            "value" => format!("Enter a number of days from {from} to {to}."),
            _ => format!("Enter a whole number from {from} to {to}."),
        };
    }
    if m.starts_with("expected [low, high]") {
        return "Enter two numbers.".to_owned();
    }
    if m.starts_with("expected a number") {
        return "Enter a number.".to_owned();
    }
    if m.starts_with("expected [from, to]") || m.starts_with("expected [start, end]") {
        return "Enter two dates.".to_owned();
    }
    if m.starts_with("expected a date") || m.starts_with("expected an RFC 3339") {
        return "Enter a date.".to_owned();
    }
    if m.starts_with("expected a non-empty list") {
        return "Enter at least one value.".to_owned();
    }
    if m.starts_with("expected at most") {
        let n = m.split(' ').nth(3).unwrap_or("1,000");
        return format!("Enter at most {n} values.");
    }
    if m.contains("characters, got") {
        let n = m
            .split("at most ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("1000");
        return format!("Use at most {n} characters.");
    }
    if empty || m.starts_with("expected a text") || m.starts_with("expected a text or") {
        return "Enter a value.".to_owned();
    }
    if m.contains("too deep") || m.contains("nested") {
        return "The conditions are nested too deeply. Flatten some groups.".to_owned();
    }
    if m.contains("conditions") && m.contains("at most") {
        return "There are too many conditions. Remove some.".to_owned();
    }
    // Anything else (a JSON condition typed by hand): the rule's own words, as a
    // sentence.
    let mut out = String::with_capacity(m.len() + 1);
    let mut chars = m.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
    }
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The issues as problems in sentences.
pub fn problems(issues: &[Issue], names: &HashMap<SegmentId, String>) -> Vec<Problem> {
    issues
        .iter()
        .take(100)
        .map(|i| Problem {
            path: i.path.clone(),
            message: sentence(i, names),
            segment: None,
        })
        .collect()
}

/// Whether any issue needs the segments' names to be told.
pub fn needs_names(issues: &[Issue]) -> bool {
    issues.iter().any(|i| i.message.starts_with("cycle:"))
}

#[derive(Debug, Serialize)]
struct Body {
    error: Content,
}

#[derive(Debug, Serialize)]
struct Content {
    code: &'static str,
    message: String,
    details: Vec<Problem>,
}

/// A refusal of a panel write, in the API's error shape but with sentences.
pub fn refusal(status: StatusCode, code: &'static str, details: Vec<Problem>) -> Response {
    let message = match details.as_slice() {
        [one] => one.message.clone(),
        _ => "Some conditions need attention: see the messages beside them.".to_owned(),
    };
    (
        status,
        Json(Body {
            error: Content {
                code,
                message,
                details,
            },
        }),
    )
        .into_response()
}

/// The duplicate-name refusal: a sentence, with the segment that has the name.
pub fn name_taken(existing: Option<SegmentLink>, name: &str) -> Response {
    let shown = existing.as_ref().map_or(name, |s| s.name.as_str());
    refusal(
        StatusCode::CONFLICT,
        "conflict",
        vec![Problem {
            path: "name".into(),
            message: format!(
                "A segment named \u{201c}{shown}\u{201d} already exists. Choose another name."
            ),
            segment: existing,
        }],
    )
}

/// Errors that are not about the draft keep the API's shape and words.
pub fn other(e: ApiError) -> Response {
    e.into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use segmentd_rules::{Catalog, FieldType, parse_rule};
    use serde_json::{Value, json};

    /// The sentence the panel shows for the first problem of `rule` (as drafted in the
    /// builder), parsed as the segment `this` of a catalog where 2 refers to 1 and 3 to 2.
    fn check(rule: Value, this: Option<SegmentId>, want: &str) {
        let mut segments = HashMap::new();
        segments.insert(1, vec![]);
        segments.insert(2, vec![1]);
        segments.insert(3, vec![2]);
        let catalog = Catalog {
            fields: [
                ("city".to_owned(), FieldType::Text),
                ("age".to_owned(), FieldType::Number),
                ("born".to_owned(), FieldType::Date),
            ]
            .into_iter()
            .collect(),
            segments: segments.into_iter().collect(),
        };
        let names: HashMap<SegmentId, String> = [
            (1, "Readers".to_owned()),
            (2, "Warm readers".to_owned()),
            (3, "Hot readers".to_owned()),
        ]
        .into_iter()
        .collect();
        let issues = parse_rule(&rule, "rule", &catalog, this).unwrap_err();
        let said = sentence(&issues[0], &names);
        assert_eq!(said, want, "{rule} gave {:?}", issues[0]);
        assert!(!said.contains("rule."), "no path in {said}");
        let first_letter = said.chars().find(|c| c.is_alphabetic());
        assert!(first_letter.is_some_and(char::is_uppercase) && said.ends_with('.'));
    }

    #[test]
    fn the_rules_problems_read_as_sentences_without_paths() {
        let cases: &[(Value, Option<SegmentId>, &str)] = &[
            (
                json!({"field": "age", "op": "between", "value": [50, 20]}),
                None,
                "Low must be at most high.",
            ),
            (
                json!({"field": "age", "op": "equals", "value": ""}),
                None,
                "Enter a number.",
            ),
            (
                json!({"field": "age", "op": "between", "value": [1, ""]}),
                None,
                "Enter a number.",
            ),
            (
                json!({"field": "city", "op": "equals", "value": ""}),
                None,
                "Enter a value.",
            ),
            (
                json!({"field": "city", "op": "in", "value": []}),
                None,
                "Enter at least one value.",
            ),
            (
                json!({"field": "born", "op": "before", "value": ""}),
                None,
                "Enter a date.",
            ),
            (
                json!({"field": "born", "op": "between", "value": ["2024-05-02", "2024-05-01"]}),
                None,
                "The first date must not be after the second.",
            ),
            (
                json!({"field": "born", "op": "anniversary_within", "value": 400}),
                None,
                "Enter a number of days from 0 to 366.",
            ),
            (
                json!({"visit_url": {"op": "contains", "value": "/p"}, "op": "occurred", "within": {"last_days": 0}}),
                None,
                "Enter a number of days from 1 to 3650.",
            ),
            (
                json!({"system_event": "MailOpen", "op": "occurred", "min_count": 5, "max_count": 2}),
                None,
                "\u{201c}At most\u{201d} times must not be less than \u{201c}at least\u{201d}.",
            ),
            (
                json!({"custom_event": "", "op": "occurred"}),
                None,
                "Enter an event name.",
            ),
            (
                json!({"custom_event": "buy", "op": "occurred", "where": [{"property": "", "op": "equals", "value": "x"}]}),
                None,
                "Enter a property name, such as amount or order.total.",
            ),
            (
                json!({"field": "gone", "op": "has_value"}),
                None,
                "That field no longer exists. Choose another one.",
            ),
            (
                json!({"segment": 9, "op": "in"}),
                None,
                "That segment no longer exists. Choose another one.",
            ),
            (
                json!({"segment": 1, "op": "in"}),
                Some(1),
                "A segment cannot include itself.",
            ),
            (
                json!({"segment": 2, "op": "in"}),
                Some(1),
                "\u{201c}Warm readers\u{201d} already includes this segment, so it cannot be used here: the two would go round in a circle.",
            ),
            (
                json!({"segment": 3, "op": "not_in"}),
                Some(1),
                "\u{201c}Hot readers\u{201d} already includes this segment (through \u{201c}Warm readers\u{201d}), so it cannot be used here: they would go round in a circle.",
            ),
            (
                json!({"segment": "", "op": "in"}),
                None,
                "Choose a segment.",
            ),
        ];
        for (rule, this, want) in cases {
            check(rule.clone(), *this, want);
        }
    }

    #[test]
    fn the_name_and_description_problems_read_as_sentences() {
        let none = HashMap::new();
        for (path, message, want) in [
            (
                "name",
                "expected a name of 1 to 200 characters",
                "Enter a name of 1 to 200 characters.",
            ),
            (
                "description",
                "expected at most 2000 characters",
                "The description can have at most 2000 characters.",
            ),
        ] {
            assert_eq!(sentence(&Issue::new(path, message), &none), want);
        }
    }
}
