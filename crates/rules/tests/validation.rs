//! Validation of rules: JSON → typed rule, against an account's catalog.
//!
//! Each table row is one rule and what parsing it must give: either a rule that survives
//! a round trip through its canonical JSON, or the exact list of issues, each by its path
//! and a fragment of its message. One `check` helper runs every table and reports all
//! failing rows at once.

use std::collections::HashMap;

use proptest::prelude::*;
use segmentd_rules::rule::{
    BehaviourCondition, DateOp, DateValue, EventSource, FieldTest, Occurrence, TextOp,
};
use segmentd_rules::{Catalog, FieldType, Issue, Rule, SegmentId, parse_rule};
use serde_json::{Value, json};

/// The segment being saved in every case.
const THIS: SegmentId = 5;

/// Fields of every type, and segments that reference each other:
/// 3 → 2 → 1 (no cycle), 7 → 5 and 6 → 7 → 5 (back to the saved segment),
/// 8 ↔ 9 (a cycle already inside the catalog) and 10 → 8.
fn catalog() -> Catalog {
    let fields = [
        ("name", FieldType::Text),
        ("plan", FieldType::Text),
        ("age", FieldType::Number),
        ("birthday", FieldType::Date),
        ("vip", FieldType::Boolean),
    ];
    let segments: [(SegmentId, Vec<SegmentId>); 9] = [
        (1, vec![]),
        (2, vec![1]),
        (3, vec![2]),
        (THIS, vec![3]),
        (6, vec![7]),
        (7, vec![THIS]),
        (8, vec![9]),
        (9, vec![8]),
        (10, vec![8, 404]),
    ];
    Catalog {
        fields: fields
            .into_iter()
            .map(|(k, t)| (k.to_owned(), t))
            .collect::<HashMap<_, _>>(),
        segments: segments.into_iter().collect(),
    }
}

fn parse(rule: &Value) -> Result<Rule, Vec<Issue>> {
    parse_rule(rule, "rule", &catalog(), Some(THIS))
}

enum Expect {
    Valid,
    /// Exactly these issues, each as (path, fragment of the message), in any order.
    Issues(Vec<(&'static str, &'static str)>),
}

struct Case {
    name: &'static str,
    rule: Value,
    expect: Expect,
}

fn valid(name: &'static str, rule: Value) -> Case {
    Case {
        name,
        rule,
        expect: Expect::Valid,
    }
}

fn invalid(name: &'static str, rule: Value, issues: &[(&'static str, &'static str)]) -> Case {
    Case {
        name,
        rule,
        expect: Expect::Issues(issues.to_vec()),
    }
}

/// Runs every case and fails once, listing every case that did not hold.
fn check(cases: Vec<Case>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check_case(case)
                .err()
                .map(|why| format!("- {}: {why}\n  rule: {}", case.name, case.rule))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn check_case(case: &Case) -> Result<(), String> {
    match (&case.expect, parse(&case.rule)) {
        (Expect::Valid, Ok(rule)) => round_trips(&rule),
        (Expect::Valid, Err(issues)) => Err(format!("refused: {}", show(&issues))),
        (Expect::Issues(_), Ok(rule)) => Err(format!("accepted as {rule:?}")),
        (Expect::Issues(expected), Err(issues)) => same_issues(expected, &issues),
    }
}

fn round_trips(rule: &Rule) -> Result<(), String> {
    let json = rule.to_json();
    match parse(&json) {
        Ok(again) if &again == rule => Ok(()),
        Ok(again) => Err(format!(
            "round trip changed the rule: {rule:?} became {again:?}"
        )),
        Err(issues) => Err(format!("canonical form {json} refused: {}", show(&issues))),
    }
}

/// Every expected issue is matched by a distinct reported one, and nothing else was
/// reported.
fn same_issues(expected: &[(&str, &str)], issues: &[Issue]) -> Result<(), String> {
    let mut unmatched: Vec<&Issue> = issues.iter().collect();
    for (path, fragment) in expected {
        let found = unmatched
            .iter()
            .position(|i| i.path == *path && i.message.contains(fragment));
        match found {
            Some(at) => {
                unmatched.remove(at);
            }
            None => {
                return Err(format!(
                    "no issue at {path} saying {fragment:?}; got {}",
                    show(issues)
                ));
            }
        }
    }
    if unmatched.is_empty() {
        Ok(())
    } else {
        let extra: Vec<Issue> = unmatched.into_iter().cloned().collect();
        Err(format!("unexpected issues: {}", show(&extra)))
    }
}

fn show(issues: &[Issue]) -> String {
    let lines: Vec<String> = issues.iter().map(Issue::to_string).collect();
    format!("[{}]", lines.join(" | "))
}

/// A small valid condition, for building groups.
fn cond() -> Value {
    json!({"field": "vip", "op": "is_true"})
}

/// `rule` wrapped in `levels` nested `not`s.
fn nested_nots(levels: usize, rule: Value) -> Value {
    (0..levels).fold(rule, |inner, _| json!({ "not": inner }))
}

fn texts(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!(format!("v{i}"))).collect())
}

fn conditions(n: usize) -> Value {
    json!({ "all": vec![cond(); n] })
}

// Valid rules.

fn field_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for op in [
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
    ] {
        cases.push(valid(
            "a text field takes each single-value text op",
            json!({"field": "name", "op": op, "value": "Ann"}),
        ));
    }
    for op in [
        "equals",
        "not_equals",
        "greater_than",
        "greater_or_equal",
        "less_than",
        "less_or_equal",
    ] {
        cases.push(valid(
            "a number field takes each single-value number op",
            json!({"field": "age", "op": op, "value": 42.5}),
        ));
    }
    for op in ["equals", "not_equals", "before", "after"] {
        cases.push(valid(
            "a date field takes each single-date op with an absolute date",
            json!({"field": "birthday", "op": op, "value": "1990-02-28"}),
        ));
        cases.push(valid(
            "a date field takes each single-date op with a relative date",
            json!({"field": "birthday", "op": op, "value": {"relative_days": -30}}),
        ));
    }
    for (field, ops) in [
        ("name", &["has_value", "has_no_value"][..]),
        ("age", &["has_value", "has_no_value"][..]),
        ("birthday", &["has_value", "has_no_value"][..]),
        (
            "vip",
            &["is_true", "is_false", "has_value", "has_no_value"][..],
        ),
    ] {
        for op in ops {
            cases.push(valid(
                "an op without a value is valid for its field type",
                json!({"field": field, "op": op}),
            ));
        }
    }
    cases.extend([
        valid(
            "a text field takes in with a list",
            json!({"field": "plan", "op": "in", "value": ["Pro", "team"]}),
        ),
        valid(
            "a text field takes not_in with a list",
            json!({"field": "plan", "op": "not_in", "value": ["free"]}),
        ),
        valid(
            "email is a built-in text field",
            json!({"field": "email", "op": "ends_with", "value": "@example.com"}),
        ),
        valid(
            "phone is a built-in text field",
            json!({"field": "phone", "op": "starts_with", "value": "+33"}),
        ),
        valid(
            "whitespace counts as text",
            json!({"field": "name", "op": "equals", "value": " "}),
        ),
        valid(
            "a text value may have 1,000 characters",
            json!({"field": "name", "op": "contains", "value": "é".repeat(1000)}),
        ),
        valid(
            "an in list may have 1,000 items",
            json!({"field": "name", "op": "in", "value": texts(1000)}),
        ),
        valid(
            "a number between takes low and high",
            json!({"field": "age", "op": "between", "value": [18, 65]}),
        ),
        valid(
            "a number between may have low equal to high",
            json!({"field": "age", "op": "between", "value": [3, 3]}),
        ),
        valid(
            "a number may be negative, zero or huge",
            json!({"all": [
                {"field": "age", "op": "equals", "value": -0.0},
                {"field": "age", "op": "less_than", "value": -1e300},
                {"field": "age", "op": "greater_than", "value": 18446744073709551615_u64},
            ]}),
        ),
        valid(
            "a date between takes two absolute dates",
            json!({"field": "birthday", "op": "between", "value": ["2024-01-01", "2024-12-31"]}),
        ),
        valid(
            "a date between takes two relative dates",
            json!({"field": "birthday", "op": "between",
                   "value": [{"relative_days": -7}, {"relative_days": 0}]}),
        ),
        valid(
            "a date between that mixes absolute and relative dates is not checked for order",
            json!({"field": "birthday", "op": "between",
                   "value": ["2999-01-01", {"relative_days": 0}]}),
        ),
        valid(
            "relative days reach 100 years either way",
            json!({"any": [
                {"field": "birthday", "op": "after", "value": {"relative_days": -36500}},
                {"field": "birthday", "op": "before", "value": {"relative_days": 36500}},
            ]}),
        ),
        valid(
            "anniversary_within takes 0 days",
            json!({"field": "birthday", "op": "anniversary_within", "value": 0}),
        ),
        valid(
            "anniversary_within takes 366 days",
            json!({"field": "birthday", "op": "anniversary_within", "value": 366}),
        ),
        valid(
            "a whole number may be written with a zero fraction",
            json!({"field": "birthday", "op": "anniversary_within", "value": 7.0}),
        ),
        valid(
            "a value given as null is the same as no value",
            json!({"field": "vip", "op": "is_false", "value": null}),
        ),
    ]);
    cases
}

fn windows() -> [Option<Value>; 5] {
    [
        None,
        Some(json!({"last_days": 30})),
        Some(json!({"since": "2024-05-01T09:00:00Z"})),
        Some(json!({"before": "2024-05-01T09:00:00.123+02:00"})),
        Some(json!({"between": ["2024-01-01T00:00:00Z", "2024-07-01T00:00:00-05:00"]})),
    ]
}

fn behaviour_cases() -> Vec<Case> {
    let sources = [
        json!({"system_event": "MailOpen"}),
        json!({"system_event": "MailClick", "campaign": "spring-sale"}),
        json!({"system_event": "SmsClick"}),
        json!({"system_event": "PushClick"}),
        json!({"custom_event": "purchase"}),
        json!({"custom_event": "purchase", "where": [
            {"property": "order.total", "op": "greater_than", "value": 100}
        ]}),
        json!({"visit_url": {"op": "contains", "value": "/pricing"}}),
        json!({}),
        json!({"visit_url": null}),
    ];
    let occurrences = [
        json!({"op": "occurred"}),
        json!({"op": "not_occurred"}),
        json!({"op": "occurred", "min_count": 3}),
        json!({"op": "occurred", "min_count": 2, "max_count": 2}),
        json!({"op": "occurred", "max_count": 1_000_000}),
        json!({"op": "occurred", "min_count": 1}),
    ];
    let mut cases = Vec::new();
    for source in &sources {
        for window in windows() {
            for occurrence in &occurrences {
                let mut rule = source.clone();
                merge(&mut rule, occurrence);
                if let Some(window) = &window {
                    merge(&mut rule, &json!({ "within": window }));
                }
                cases.push(valid(
                    "every behaviour kind takes every window and count",
                    rule,
                ));
            }
        }
    }
    for op in [
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
    ] {
        cases.push(valid(
            "visit_url takes each single-value text op",
            json!({"visit_url": {"op": op, "value": "/Pricing"}, "op": "occurred"}),
        ));
    }
    cases.extend([
        valid(
            "visit_url takes in with a list",
            json!({"visit_url": {"op": "in", "value": ["/a", "/b"]}, "op": "occurred"}),
        ),
        valid(
            "visit_url takes not_in with a list",
            json!({"visit_url": {"op": "not_in", "value": ["/a"]}, "op": "not_occurred"}),
        ),
        valid(
            "last_days takes 1 and 3650",
            json!({"any": [
                {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 1}},
                {"system_event": "MailOpen", "op": "occurred", "within": {"last_days": 3650}},
            ]}),
        ),
        valid(
            "an event name may have 200 characters",
            json!({"custom_event": "e".repeat(200), "op": "occurred"}),
        ),
        valid(
            "an empty where list is the same as none",
            json!({"custom_event": "signup", "where": [], "op": "occurred"}),
        ),
        valid(
            "optional keys given as null are the same as absent ones",
            json!({"system_event": "MailOpen", "op": "occurred", "within": null,
                   "campaign": null, "min_count": null, "max_count": null}),
        ),
        valid(
            "a visit of any page may have only a window",
            json!({"within": {"last_days": 7}, "op": "not_occurred"}),
        ),
    ]);
    cases.push(valid(
        "where takes every property op with nested dotted paths",
        json!({"custom_event": "purchase", "op": "occurred", "where": property_conditions()}),
    ));
    cases
}

fn property_conditions() -> Vec<Value> {
    let mut out = Vec::new();
    for op in [
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
    ] {
        out.push(json!({"property": "customer.address.city", "op": op, "value": "Paris"}));
    }
    for op in [
        "equals",
        "not_equals",
        "greater_than",
        "greater_or_equal",
        "less_than",
        "less_or_equal",
    ] {
        out.push(json!({"property": "order.total", "op": op, "value": 99.5}));
    }
    for op in ["has_value", "has_no_value", "is_true", "is_false"] {
        out.push(json!({"property": "order.gift", "op": op}));
    }
    out.push(json!({"property": "plan", "op": "in", "value": ["pro", "team"]}));
    out.push(json!({"property": "plan", "op": "not_in", "value": ["free"]}));
    out.push(json!({"property": "a.b.c.d", "op": "between", "value": [1, 2]}));
    out
}

/// Adds the keys of `extra` to the object `rule`.
fn merge(rule: &mut Value, extra: &Value) {
    if let (Value::Object(into), Value::Object(from)) = (rule, extra) {
        into.extend(from.clone());
    }
}

fn structure_cases() -> Vec<Case> {
    vec![
        valid(
            "a segment reference takes in",
            json!({"segment": 1, "op": "in"}),
        ),
        valid(
            "a segment reference takes not_in through a chain of references",
            json!({"segment": 3, "op": "not_in"}),
        ),
        valid(
            "a reference to a segment inside a catalog cycle ends the search",
            json!({"segment": 10, "op": "in"}),
        ),
        valid(
            "the panel's two-level form nests any and all",
            json!({"any": [
                {"all": [cond(), {"field": "age", "op": "greater_than", "value": 18}]},
                {"all": [{"segment": 2, "op": "in"}]},
            ]}),
        ),
        valid(
            "not takes one rule",
            json!({"not": {"all": [cond(), {"not": cond()}]}}),
        ),
        valid("depth 8 is allowed", nested_nots(7, cond())),
        valid("200 conditions are allowed", conditions(200)),
        valid("a lone condition is a rule", cond()),
    ]
}

#[test]
fn every_valid_rule_parses_and_round_trips_through_its_json() {
    let mut cases = field_cases();
    cases.extend(behaviour_cases());
    cases.extend(structure_cases());
    check(cases);
}

// Invalid rules.

fn invalid_structure_cases() -> Vec<Case> {
    vec![
        invalid(
            "an empty all group is refused",
            json!({"all": []}),
            &[("rule.all", "must not be empty")],
        ),
        invalid(
            "an empty group deep inside is refused at its path",
            json!({"any": [cond(), {"all": []}]}),
            &[("rule.any[1].all", "must not be empty")],
        ),
        invalid(
            "a group that is not a list is refused",
            json!({"any": cond()}),
            &[("rule.any", "expected a list of rules, got an object")],
        ),
        invalid(
            "not with a list is refused",
            json!({"not": [cond(), cond()]}),
            &[("rule.not", "\"not\" takes a single rule")],
        ),
        invalid(
            "depth 9 is refused once, at the first node too deep",
            json!({"all": [
                nested_nots(7, cond()),
                nested_nots(7, cond()),
            ]}),
            &[(
                "rule.all[0].not.not.not.not.not.not.not",
                "nested too deeply: depth at most 8",
            )],
        ),
        invalid(
            "201 conditions are refused at the root",
            conditions(201),
            &[("rule", "too many conditions: 201; at most 200")],
        ),
        invalid(
            "a rule that is not an object is refused",
            json!([cond()]),
            &[("rule", "expected a rule: an object")],
        ),
        invalid(
            "an object of no known kind is refused and its stray keys named",
            json!({"feild": "age", "op": "equals", "value": 3}),
            &[
                ("rule", "expected a rule: an object"),
                ("rule.feild", "unknown key \"feild\""),
            ],
        ),
        invalid(
            "an object of two kinds is refused",
            json!({"field": "vip", "segment": 1, "op": "in"}),
            &[("rule", "found field and segment")],
        ),
        invalid(
            "an unknown key on a condition is refused",
            json!({"all": [{"field": "vip", "op": "is_true", "colour": "red"}]}),
            &[("rule.all[0].colour", "unknown key \"colour\"")],
        ),
        invalid(
            "an unknown key on a group is refused",
            json!({"all": [cond()], "op": "and"}),
            &[("rule.op", "unknown key \"op\"")],
        ),
        invalid(
            "an unknown key that is not a plain word is quoted in the path",
            json!({"field": "vip", "op": "is_true", "my key": 1}),
            &[("rule[\"my key\"]", "unknown key \"my key\"")],
        ),
    ]
}

fn invalid_field_cases() -> Vec<Case> {
    vec![
        invalid(
            "an unknown field is refused",
            json!({"field": "agee", "op": "equals", "value": 3}),
            &[("rule.field", "unknown field \"agee\"")],
        ),
        invalid(
            "an unknown field with an op no type has reports both",
            json!({"field": "agee", "op": "likes", "value": 3}),
            &[
                ("rule.field", "unknown field \"agee\""),
                ("rule.op", "op \"likes\" is not valid for any field"),
            ],
        ),
        invalid(
            "a field key that is not a text is refused",
            json!({"field": 3, "op": "equals", "value": 3}),
            &[("rule.field", "expected a field key (a text), got a number")],
        ),
        invalid(
            "an op of another type is refused with the valid ops",
            json!({"field": "age", "op": "contains", "value": "3"}),
            &[(
                "rule.op",
                "op \"contains\" is not valid for a number field; valid ops: equals, \
                 not_equals, greater_than",
            )],
        ),
        invalid(
            "a boolean field has no equals",
            json!({"field": "vip", "op": "equals", "value": true}),
            &[("rule.op", "not valid for a boolean field")],
        ),
        invalid(
            "a missing op is refused",
            json!({"field": "name", "value": "x"}),
            &[("rule.op", "missing op; valid ops for a text field")],
        ),
        invalid(
            "an op that is not a text is refused",
            json!({"field": "name", "op": 3, "value": "x"}),
            &[("rule.op", "expected an op (a text), got a number")],
        ),
        invalid(
            "a missing value is refused",
            json!({"field": "age", "op": "greater_than"}),
            &[(
                "rule.value",
                "missing value; op \"greater_than\" takes a number",
            )],
        ),
        invalid(
            "a value for an op that takes none is refused",
            json!({"field": "name", "op": "has_value", "value": "x"}),
            &[("rule.value", "op \"has_value\" takes no value")],
        ),
        invalid(
            "a text for a number is refused",
            json!({"field": "age", "op": "equals", "value": "5"}),
            &[("rule.value", "expected a number, got a text")],
        ),
        invalid(
            "a number for a text is refused",
            json!({"field": "name", "op": "equals", "value": 5}),
            &[("rule.value", "expected a text, got a number")],
        ),
        invalid(
            "an empty text value is refused",
            json!({"field": "name", "op": "contains", "value": ""}),
            &[("rule.value", "expected a text, got an empty text")],
        ),
        invalid(
            "a text value of 1,001 characters is refused",
            json!({"field": "name", "op": "contains", "value": "x".repeat(1001)}),
            &[("rule.value", "at most 1000 characters, got 1001")],
        ),
        invalid(
            "an empty in list is refused",
            json!({"field": "name", "op": "in", "value": []}),
            &[("rule.value", "got an empty list")],
        ),
        invalid(
            "an in list of 1,001 items is refused",
            json!({"field": "name", "op": "not_in", "value": texts(1001)}),
            &[("rule.value", "expected at most 1000 items, got 1001")],
        ),
        invalid(
            "an in value that is not a list is refused",
            json!({"field": "name", "op": "in", "value": "a"}),
            &[("rule.value", "expected a non-empty list of texts")],
        ),
        invalid(
            "every bad item of an in list is named",
            json!({"field": "name", "op": "in", "value": ["", "ok", 3]}),
            &[
                ("rule.value[0]", "got an empty text"),
                ("rule.value[2]", "expected a text, got a number"),
            ],
        ),
        invalid(
            "a between that is not a pair is refused",
            json!({"field": "age", "op": "between", "value": [1, 2, 3]}),
            &[("rule.value", "expected [low, high], two numbers")],
        ),
        invalid(
            "a number between with low above high is refused",
            json!({"field": "age", "op": "between", "value": [5, 3]}),
            &[("rule.value", "low (5) is greater than high (3)")],
        ),
        invalid(
            "a number between item that is not a number is refused",
            json!({"field": "age", "op": "between", "value": [1, "2"]}),
            &[("rule.value[1]", "expected a number, got a text")],
        ),
    ]
}

fn invalid_date_cases() -> Vec<Case> {
    const EXPECTED: &str = "expected a date \"YYYY-MM-DD\" or {\"relative_days\": N}";
    let date = |value: Value| json!({"field": "birthday", "op": "equals", "value": value});
    vec![
        invalid(
            "a date without leading zeros is refused",
            date(json!("2024-5-1")),
            &[("rule.value", EXPECTED)],
        ),
        invalid(
            "an impossible date is refused",
            date(json!("2024-02-30")),
            &[("rule.value", EXPECTED)],
        ),
        invalid(
            "an extended-year date is refused",
            date(json!("+002024-01-01")),
            &[("rule.value", EXPECTED)],
        ),
        invalid(
            "a date with a time is refused",
            date(json!("2024-01-01T00:00:00Z")),
            &[("rule.value", EXPECTED)],
        ),
        invalid(
            "a number for a date is refused",
            date(json!(20240101)),
            &[("rule.value", EXPECTED)],
        ),
        invalid(
            "relative days beyond 36,500 are refused",
            date(json!({"relative_days": 36501})),
            &[(
                "rule.value.relative_days",
                "expected a whole number from -36500 to 36500, got 36501",
            )],
        ),
        invalid(
            "fractional relative days are refused",
            date(json!({"relative_days": 1.5})),
            &[("rule.value.relative_days", "got 1.5")],
        ),
        invalid(
            "a relative date with another key is refused",
            date(json!({"relative_days": 1, "unit": "weeks"})),
            &[("rule.value.unit", "unknown key \"unit\"")],
        ),
        invalid(
            "a date between with absolute dates inverted is refused",
            json!({"field": "birthday", "op": "between", "value": ["2024-05-01", "2024-04-01"]}),
            &[("rule.value", "from (2024-05-01) is after to (2024-04-01)")],
        ),
        invalid(
            "a date between with relative dates inverted is refused",
            json!({"field": "birthday", "op": "between",
                   "value": [{"relative_days": 5}, {"relative_days": 3}]}),
            &[("rule.value", "is after to ({\"relative_days\": 3})")],
        ),
        invalid(
            "a bad date inside a between is named by index",
            json!({"field": "birthday", "op": "between", "value": ["2024-01-01", "soon"]}),
            &[("rule.value[1]", EXPECTED)],
        ),
        invalid(
            "anniversary_within above 366 is refused",
            json!({"field": "birthday", "op": "anniversary_within", "value": 367}),
            &[(
                "rule.value",
                "expected a whole number from 0 to 366, got 367",
            )],
        ),
        invalid(
            "a negative anniversary_within is refused",
            json!({"field": "birthday", "op": "anniversary_within", "value": -1}),
            &[("rule.value", "got -1")],
        ),
        invalid(
            "a fractional anniversary_within is refused",
            json!({"field": "birthday", "op": "anniversary_within", "value": 1.5}),
            &[("rule.value", "got 1.5")],
        ),
    ]
}

fn invalid_behaviour_cases() -> Vec<Case> {
    const TIMESTAMP: &str = "expected an RFC 3339 timestamp with an offset";
    let within =
        |window: Value| json!({"system_event": "MailOpen", "op": "occurred", "within": window});
    let counted = |extra: Value| {
        let mut rule = json!({"custom_event": "purchase", "op": "occurred"});
        merge(&mut rule, &extra);
        rule
    };
    vec![
        invalid(
            "a timestamp without an offset is refused",
            within(json!({"since": "2024-05-01T09:00:00"})),
            &[("rule.within.since", "which has no offset")],
        ),
        invalid(
            "a timestamp that is not one is refused",
            within(json!({"before": "yesterday"})),
            &[("rule.within.before", TIMESTAMP)],
        ),
        invalid(
            "a date alone is not a timestamp",
            within(json!({"since": "2024-05-01"})),
            &[("rule.within.since", TIMESTAMP)],
        ),
        invalid(
            "a window with no kind is refused",
            within(json!({})),
            &[(
                "rule.within",
                "exactly one of last_days, since, before, between; found none",
            )],
        ),
        invalid(
            "a window with two kinds is refused",
            within(json!({"last_days": 3, "since": "2024-05-01T09:00:00Z"})),
            &[("rule.within", "found last_days and since")],
        ),
        invalid(
            "a window with an unknown kind is refused",
            within(json!({"last_weeks": 2})),
            &[
                ("rule.within.last_weeks", "unknown key \"last_weeks\""),
                ("rule.within", "found none"),
            ],
        ),
        invalid(
            "a window that is not an object is refused",
            within(json!(30)),
            &[("rule.within", "expected a window")],
        ),
        invalid(
            "last_days 0 is refused",
            within(json!({"last_days": 0})),
            &[(
                "rule.within.last_days",
                "expected a whole number from 1 to 3650, got 0",
            )],
        ),
        invalid(
            "last_days 3651 is refused",
            within(json!({"last_days": 3651})),
            &[("rule.within.last_days", "got 3651")],
        ),
        invalid(
            "fractional last_days are refused",
            within(json!({"last_days": 1.5})),
            &[("rule.within.last_days", "got 1.5")],
        ),
        invalid(
            "last_days as a text are refused",
            within(json!({"last_days": "7"})),
            &[("rule.within.last_days", "got a text")],
        ),
        invalid(
            "a between window with equal ends is refused",
            within(json!({"between": ["2024-05-01T00:00:00Z", "2024-05-01T02:00:00+02:00"]})),
            &[("rule.within.between", "is not before end")],
        ),
        invalid(
            "a between window with inverted ends is refused",
            within(json!({"between": ["2024-06-01T00:00:00Z", "2024-05-01T00:00:00Z"]})),
            &[(
                "rule.within.between",
                "start (2024-06-01T00:00:00Z) is not before end",
            )],
        ),
        invalid(
            "a between window that is not a pair is refused",
            within(json!({"between": ["2024-06-01T00:00:00Z"]})),
            &[("rule.within.between", "expected [start, end]")],
        ),
        invalid(
            "a bad timestamp inside a between window is named by index",
            within(json!({"between": ["2024-06-01T00:00:00Z", "2024-07-01T00:00:00"]})),
            &[("rule.within.between[1]", "which has no offset")],
        ),
        invalid(
            "an unknown system event is refused",
            json!({"system_event": "MailBounce", "op": "occurred"}),
            &[(
                "rule.system_event",
                "unknown system event \"MailBounce\"; expected one of MailOpen, MailClick, \
                 SmsClick, PushClick",
            )],
        ),
        invalid(
            "an empty event name is refused",
            json!({"custom_event": "", "op": "occurred"}),
            &[(
                "rule.custom_event",
                "expected an event name, got an empty text",
            )],
        ),
        invalid(
            "an event name of 201 characters is refused",
            json!({"custom_event": "e".repeat(201), "op": "occurred"}),
            &[("rule.custom_event", "at most 200 characters, got 201")],
        ),
        invalid(
            "a campaign on a custom event is refused",
            json!({"custom_event": "purchase", "op": "occurred", "campaign": "c1"}),
            &[("rule.campaign", "only allowed on system events")],
        ),
        invalid(
            "a campaign on a visit is refused",
            json!({"visit_url": {"op": "contains", "value": "/a"},
                   "op": "occurred", "campaign": "c1"}),
            &[("rule.campaign", "only allowed on system events")],
        ),
        invalid(
            "an empty campaign is refused",
            json!({"system_event": "MailClick", "op": "occurred", "campaign": ""}),
            &[("rule.campaign", "expected a campaign id, got an empty text")],
        ),
        invalid(
            "a campaign that is not a text is refused",
            json!({"system_event": "MailClick", "op": "occurred", "campaign": 12}),
            &[("rule.campaign", "expected a campaign id, got a number")],
        ),
        invalid(
            "min_count 0 is refused",
            counted(json!({"min_count": 0})),
            &[(
                "rule.min_count",
                "expected a whole number from 1 to 1000000, got 0",
            )],
        ),
        invalid(
            "a negative min_count is refused",
            counted(json!({"min_count": -2})),
            &[("rule.min_count", "got -2")],
        ),
        invalid(
            "a fractional max_count is refused",
            counted(json!({"max_count": 1.5})),
            &[("rule.max_count", "got 1.5")],
        ),
        invalid(
            "max_count above a million is refused",
            counted(json!({"max_count": 1_000_001})),
            &[("rule.max_count", "got 1000001")],
        ),
        invalid(
            "max_count below min_count is refused",
            counted(json!({"min_count": 5, "max_count": 2})),
            &[("rule.max_count", "max_count (2) is less than min_count (5)")],
        ),
        invalid(
            "counts with not_occurred are refused",
            json!({"custom_event": "purchase", "op": "not_occurred",
                   "min_count": 2, "max_count": 3}),
            &[
                ("rule.min_count", "only allowed with op \"occurred\""),
                ("rule.max_count", "only allowed with op \"occurred\""),
            ],
        ),
        invalid(
            "a behaviour op other than occurred and not_occurred is refused",
            json!({"system_event": "MailOpen", "op": "happened"}),
            &[(
                "rule.op",
                "op \"happened\" is not valid for a behaviour condition; valid ops: occurred, \
                 not_occurred",
            )],
        ),
        invalid(
            "a behaviour condition without op is refused",
            json!({"custom_event": "purchase"}),
            &[("rule.op", "missing op")],
        ),
        invalid(
            "has_value is not a visit_url op",
            json!({"visit_url": {"op": "has_value"}, "op": "occurred"}),
            &[(
                "rule.visit_url.op",
                "op \"has_value\" is not valid for visit_url",
            )],
        ),
        invalid(
            "a visit_url that is not an object is refused",
            json!({"visit_url": "/pricing", "op": "occurred"}),
            &[(
                "rule.visit_url",
                "expected {\"op\": OP, \"value\": \"...\"}",
            )],
        ),
        invalid(
            "a visit_url without value is refused",
            json!({"visit_url": {"op": "contains"}, "op": "occurred"}),
            &[(
                "rule.visit_url.value",
                "missing value; op \"contains\" takes a text",
            )],
        ),
    ]
}

/// A custom event condition with one property condition.
fn in_where(property: Value) -> Value {
    json!({"custom_event": "purchase", "op": "occurred", "where": [property]})
}

fn invalid_property_cases() -> Vec<Case> {
    let with = in_where;
    vec![
        invalid(
            "where that is not a list is refused",
            json!({"custom_event": "purchase", "op": "occurred", "where": {"property": "a"}}),
            &[("rule.where", "expected a list of property conditions")],
        ),
        invalid(
            "a property condition that is not an object is refused",
            with(json!("plan")),
            &[("rule.where[0]", "expected a property condition")],
        ),
        invalid(
            "a property path with an empty part is refused",
            with(json!({"property": "order..total", "op": "has_value"})),
            &[(
                "rule.where[0].property",
                "every part between dots must be non-empty",
            )],
        ),
        invalid(
            "a property path ending with a dot is refused",
            with(json!({"property": "order.", "op": "has_value"})),
            &[(
                "rule.where[0].property",
                "every part between dots must be non-empty",
            )],
        ),
        invalid(
            "a missing property path is refused",
            with(json!({"op": "has_value"})),
            &[("rule.where[0].property", "expected a property path")],
        ),
        invalid(
            "a text op with a number value is refused with the number ops",
            with(json!({"property": "total", "op": "contains", "value": 5})),
            &[(
                "rule.where[0].op",
                "op \"contains\" is not valid with a number value; valid ops: equals, \
                 not_equals, greater_than",
            )],
        ),
        invalid(
            "a number op with a text value is refused with the text ops",
            with(json!({"property": "total", "op": "greater_than", "value": "5"})),
            &[(
                "rule.where[0].op",
                "not valid with a text value; valid ops: equals",
            )],
        ),
        invalid(
            "between with a list of texts is refused",
            with(json!({"property": "plan", "op": "between", "value": ["a", "b"]})),
            &[(
                "rule.where[0].op",
                "not valid with a list of texts; valid ops: in, not_in",
            )],
        ),
        invalid(
            "a boolean value is refused with a hint to is_true",
            with(json!({"property": "gift", "op": "equals", "value": true})),
            &[(
                "rule.where[0].value",
                "tested with op \"is_true\" or \"is_false\"",
            )],
        ),
        invalid(
            "is_true with a value is refused",
            with(json!({"property": "gift", "op": "is_true", "value": true})),
            &[("rule.where[0].value", "op \"is_true\" takes no value")],
        ),
        invalid(
            "a property between with low above high is refused",
            with(json!({"property": "total", "op": "between", "value": [5, 3]})),
            &[("rule.where[0].value", "low (5) is greater than high (3)")],
        ),
        invalid(
            "an empty property in list is refused",
            with(json!({"property": "plan", "op": "in", "value": []})),
            &[("rule.where[0].value", "got an empty list")],
        ),
        invalid(
            "a mixed property in list names the bad item",
            with(json!({"property": "plan", "op": "in", "value": ["a", 1]})),
            &[("rule.where[0].value[1]", "expected a text, got a number")],
        ),
        invalid(
            "a property equals without value is refused",
            with(json!({"property": "plan", "op": "equals"})),
            &[(
                "rule.where[0].value",
                "missing value; op \"equals\" takes a text or a number",
            )],
        ),
        invalid(
            "an unknown property op is refused",
            with(json!({"property": "plan", "op": "before", "value": "x"})),
            &[("rule.where[0].op", "not valid for a property condition")],
        ),
        invalid(
            "an unknown key in a property condition is refused",
            with(json!({"property": "plan", "op": "has_value", "colour": "red"})),
            &[("rule.where[0].colour", "unknown key \"colour\"")],
        ),
        invalid(
            "an object value is refused",
            with(json!({"property": "plan", "op": "equals", "value": {"a": 1}})),
            &[(
                "rule.where[0].value",
                "expected a text, a number, a list of texts or a pair of numbers, got an object",
            )],
        ),
    ]
}

fn invalid_segment_cases() -> Vec<Case> {
    vec![
        invalid(
            "an unknown segment is refused",
            json!({"segment": 42, "op": "in"}),
            &[("rule.segment", "unknown segment 42")],
        ),
        invalid(
            "a reference to the segment itself is a cycle",
            json!({"segment": THIS, "op": "in"}),
            &[("rule.segment", "cycle: a segment cannot refer to itself")],
        ),
        invalid(
            "a reference back through another segment is a cycle",
            json!({"not": {"segment": 7, "op": "in"}}),
            &[(
                "rule.not.segment",
                "cycle: segment 7 refers back to this segment (7 → 5)",
            )],
        ),
        invalid(
            "a reference back through two segments is a cycle",
            json!({"segment": 6, "op": "not_in"}),
            &[("rule.segment", "(6 → 7 → 5)")],
        ),
        invalid(
            "a fractional segment id is refused",
            json!({"segment": 1.5, "op": "in"}),
            &[(
                "rule.segment",
                "expected a segment id (a whole number), got 1.5",
            )],
        ),
        invalid(
            "a segment id given as a text is refused",
            json!({"segment": "1", "op": "in"}),
            &[("rule.segment", "got a text")],
        ),
        invalid(
            "a segment op other than in and not_in is refused",
            json!({"segment": 1, "op": "member"}),
            &[("rule.op", "valid ops: in, not_in")],
        ),
    ]
}

#[test]
fn every_invalid_rule_is_refused_with_its_path_and_reason() {
    let mut cases = invalid_structure_cases();
    cases.extend(invalid_field_cases());
    cases.extend(invalid_date_cases());
    cases.extend(invalid_behaviour_cases());
    cases.extend(invalid_property_cases());
    cases.extend(invalid_segment_cases());
    check(cases);
}

#[test]
fn all_problems_of_a_rule_are_reported_together() {
    let rule = json!({"any": [
        {"field": "agee", "op": "equals", "value": 3},
        {"all": [
            {"field": "age", "op": "between", "value": [5, 3]},
            {"custom_event": "", "op": "occurred", "min_count": 0, "where": [
                {"property": "a", "op": "has_value"},
                {"property": "b", "op": "contains", "value": 1},
                {"property": "c..d", "op": "equals", "value": ""},
            ]},
        ]},
        {"system_event": "MailOpen", "op": "occurred", "within": {"since": "2024-01-01T00:00:00"}},
        {"segment": 42, "op": "in", "colour": "red"},
        {"not": []},
    ]});
    check(vec![invalid(
        "a rule with nine mistakes reports nine issues",
        rule,
        &[
            ("rule.any[0].field", "unknown field \"agee\""),
            (
                "rule.any[1].all[0].value",
                "low (5) is greater than high (3)",
            ),
            ("rule.any[1].all[1].custom_event", "got an empty text"),
            ("rule.any[1].all[1].min_count", "from 1 to 1000000, got 0"),
            (
                "rule.any[1].all[1].where[1].op",
                "not valid with a number value",
            ),
            ("rule.any[1].all[1].where[2].property", "non-empty"),
            ("rule.any[1].all[1].where[2].value", "got an empty text"),
            ("rule.any[2].within.since", "which has no offset"),
            ("rule.any[3].colour", "unknown key \"colour\""),
            ("rule.any[3].segment", "unknown segment 42"),
            ("rule.any[4].not", "takes a single rule"),
        ],
    )]);
}

#[test]
fn a_parsed_rule_keeps_text_as_written_and_lowercased() {
    let rule = parse(&json!({"field": "name", "op": "equals", "value": "ÉLISE"})).expect("valid");
    let Rule::Field(condition) = rule else {
        panic!("expected a field condition, got {rule:?}");
    };
    let FieldTest::Text(TextOp::Equals(text)) = condition.test else {
        panic!("expected a text equals, got {:?}", condition.test);
    };
    assert_eq!(
        (text.original.as_str(), text.lower.as_str()),
        ("ÉLISE", "élise")
    );
}

#[test]
fn a_visit_of_any_page_is_the_same_with_visit_url_omitted_or_null() {
    let omitted = parse(&json!({"op": "occurred"})).expect("valid");
    let null = parse(&json!({"visit_url": null, "op": "occurred"})).expect("valid");
    let expected = Rule::Behaviour(BehaviourCondition {
        source: EventSource::Visit { url: None },
        occurrence: Occurrence::Occurred {
            min_count: 1,
            max_count: None,
        },
        within: None,
    });
    assert_eq!(omitted, expected);
    assert_eq!(null, expected);
    assert_eq!(expected.to_json(), json!({"op": "occurred"}));
}

#[test]
fn a_relative_date_becomes_a_relative_date_value() {
    let rule = parse(&json!({"field": "birthday", "op": "before", "value": {"relative_days": -3}}))
        .expect("valid");
    let Rule::Field(condition) = rule else {
        panic!("expected a field condition, got {rule:?}");
    };
    assert_eq!(
        condition.test,
        FieldTest::Date(DateOp::Before(DateValue::Relative(-3)))
    );
}

#[test]
fn a_new_segment_may_refer_to_any_known_segment() {
    // A segment that does not exist yet cannot be part of a cycle.
    for id in [1, 5, 7, 9] {
        let rule = json!({"segment": id, "op": "in"});
        assert!(
            parse_rule(&rule, "rule", &catalog(), None).is_ok(),
            "segment {id} refused"
        );
    }
}

#[test]
fn the_root_path_is_the_one_given() {
    let issues =
        parse_rule(&json!({"all": []}), "segments[2].rule", &catalog(), None).expect_err("invalid");
    assert_eq!(issues[0].path, "segments[2].rule.all");
}

#[test]
fn very_deep_json_is_refused_without_exhausting_the_stack() {
    let deep = nested_nots(2_000, json!({"all": [json!([[[[]]]])]}));
    let issues = parse(&deep).expect_err("too deep");
    assert_eq!(issues.len(), 1, "{}", show(&issues));
    assert!(issues[0].message.contains("nested too deeply"));
}

// Property tests.

/// Keys, ops and values that rules use, so that random objects often look like rules
/// and reach deep into the parser.
const WORDS: &[&str] = &[
    "all",
    "any",
    "not",
    "field",
    "op",
    "value",
    "system_event",
    "custom_event",
    "visit_url",
    "segment",
    "within",
    "min_count",
    "max_count",
    "campaign",
    "where",
    "property",
    "last_days",
    "since",
    "before",
    "between",
    "relative_days",
    "name",
    "age",
    "birthday",
    "vip",
    "email",
    "phone",
    "equals",
    "not_equals",
    "contains",
    "in",
    "not_in",
    "has_value",
    "is_true",
    "greater_than",
    "anniversary_within",
    "occurred",
    "not_occurred",
    "MailOpen",
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00",
    "a.b",
    "",
    "colour",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-400i64..400).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(12, 200, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((word(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_json_never_makes_the_parser_panic(json in any_json(), depth in 0usize..40) {
        let wrapped = nested_nots(depth, json.clone());
        for rule in [&json, &wrapped] {
            match parse(rule) {
                Ok(parsed) => prop_assert_eq!(parse(&parsed.to_json()), Ok(parsed)),
                Err(issues) => prop_assert!(!issues.is_empty()),
            }
        }
    }

    #[test]
    fn parsing_the_json_of_a_parsed_rule_gives_it_back(json in valid_rule_json()) {
        let rule = match parse(&json) {
            Ok(rule) => rule,
            Err(issues) => {
                let why = format!("{json} refused: {}", show(&issues));
                return Err(TestCaseError::fail(why));
            }
        };
        let canonical = rule.to_json();
        prop_assert_eq!(parse(&canonical), Ok(rule));
    }
}

// Generators of valid rules, with random operands.

fn text() -> impl Strategy<Value = String> {
    ".{1,20}"
}

fn text_list() -> impl Strategy<Value = Value> {
    proptest::collection::vec(text(), 1..5).prop_map(|items| json!(items))
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

fn sorted_pair() -> impl Strategy<Value = Value> {
    (finite(), finite()).prop_map(|(a, b)| json!([a.min(b), a.max(b)]))
}

fn text_op_json() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        (
            proptest::sample::select(
                &[
                    "equals",
                    "not_equals",
                    "contains",
                    "not_contains",
                    "starts_with",
                    "ends_with",
                ][..]
            ),
            text()
        )
            .prop_map(|(op, v)| (op.to_owned(), json!(v))),
        (proptest::sample::select(&["in", "not_in"][..]), text_list())
            .prop_map(|(op, v)| (op.to_owned(), v)),
    ]
}

fn number_op_json() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        (
            proptest::sample::select(
                &[
                    "equals",
                    "not_equals",
                    "greater_than",
                    "greater_or_equal",
                    "less_than",
                    "less_or_equal",
                ][..]
            ),
            finite()
        )
            .prop_map(|(op, v)| (op.to_owned(), json!(v))),
        sorted_pair().prop_map(|v| ("between".to_owned(), v)),
    ]
}

fn absolute_date() -> impl Strategy<Value = (i32, String)> {
    (0i32..=9999, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| {
        (
            y * 10_000 + (m as i32) * 100 + d as i32,
            format!("{y:04}-{m:02}-{d:02}"),
        )
    })
}

fn date_op_json() -> impl Strategy<Value = (String, Value)> {
    let relative = -36_500i32..=36_500;
    prop_oneof![
        (
            proptest::sample::select(&["equals", "not_equals", "before", "after"][..]),
            absolute_date()
        )
            .prop_map(|(op, (_, d))| (op.to_owned(), json!(d))),
        (
            proptest::sample::select(&["equals", "not_equals", "before", "after"][..]),
            relative.clone()
        )
            .prop_map(|(op, n)| (op.to_owned(), json!({"relative_days": n}))),
        (absolute_date(), absolute_date()).prop_map(|(a, b)| {
            let (low, high) = if a.0 <= b.0 { (a.1, b.1) } else { (b.1, a.1) };
            ("between".to_owned(), json!([low, high]))
        }),
        (relative.clone(), relative.clone()).prop_map(|(a, b)| (
            "between".to_owned(),
            json!([{"relative_days": a.min(b)}, {"relative_days": a.max(b)}])
        )),
        (absolute_date(), relative)
            .prop_map(|((_, d), n)| ("between".to_owned(), json!([d, {"relative_days": n}]))),
        (0u16..=366).prop_map(|n| ("anniversary_within".to_owned(), json!(n))),
    ]
}

fn field_json() -> impl Strategy<Value = Value> {
    let no_value = |fields: &'static [&'static str], ops: &'static [&'static str]| {
        (
            proptest::sample::select(fields),
            proptest::sample::select(ops),
        )
            .prop_map(|(f, op)| json!({"field": f, "op": op}))
    };
    prop_oneof![
        (
            proptest::sample::select(&["name", "email", "phone"][..]),
            text_op_json()
        )
            .prop_map(|(f, (op, v))| json!({"field": f, "op": op, "value": v})),
        number_op_json().prop_map(|(op, v)| json!({"field": "age", "op": op, "value": v})),
        date_op_json().prop_map(|(op, v)| json!({"field": "birthday", "op": op, "value": v})),
        no_value(
            &["name", "age", "birthday", "vip"],
            &["has_value", "has_no_value"]
        ),
        no_value(&["vip"], &["is_true", "is_false"]),
    ]
}

/// An RFC 3339 timestamp with a random offset and precision, and a later one.
fn timestamp_pair() -> impl Strategy<Value = (String, String)> {
    (
        1000i32..=9998,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof![Just(String::new()), "\\.[0-9]{1,9}"],
        prop_oneof![Just("Z".to_owned()), "[+-](0[0-9]|1[0-3]):[0-5][0-9]"],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, offset)| {
            let at =
                |year: i32| format!("{year:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}");
            (at(y), at(y + 1))
        })
}

fn window_json() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        (1u32..=3650).prop_map(|n| Some(json!({"last_days": n}))),
        timestamp_pair().prop_map(|(t, _)| Some(json!({"since": t}))),
        timestamp_pair().prop_map(|(t, _)| Some(json!({"before": t}))),
        timestamp_pair().prop_map(|(a, b)| Some(json!({"between": [a, b]}))),
    ]
}

fn occurrence_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"op": "not_occurred"})),
        Just(json!({"op": "occurred"})),
        (1u32..=1_000_000).prop_map(|n| json!({"op": "occurred", "min_count": n})),
        (1u32..=1000, 0u32..1000).prop_map(|(min, extra)| json!({
            "op": "occurred", "min_count": min, "max_count": min + extra
        })),
    ]
}

fn property_path() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z_]{1,6}", 1..4).prop_map(|parts| parts.join("."))
}

fn property_json() -> impl Strategy<Value = Value> {
    let ops = prop_oneof![
        text_op_json(),
        number_op_json(),
        proptest::sample::select(&["has_value", "has_no_value", "is_true", "is_false"][..])
            .prop_map(|op| (op.to_owned(), Value::Null)),
    ];
    (property_path(), ops).prop_map(|(path, (op, value))| {
        let mut condition = json!({"property": path, "op": op});
        if !value.is_null() {
            merge(&mut condition, &json!({ "value": value }));
        }
        condition
    })
}

fn behaviour_json() -> impl Strategy<Value = Value> {
    let source = prop_oneof![
        (
            proptest::sample::select(&["MailOpen", "MailClick", "SmsClick", "PushClick"][..]),
            proptest::option::of(text())
        )
            .prop_map(|(kind, campaign)| match campaign {
                Some(c) => json!({"system_event": kind, "campaign": c}),
                None => json!({"system_event": kind}),
            }),
        (".{1,30}", proptest::collection::vec(property_json(), 0..4))
            .prop_map(|(name, filters)| json!({"custom_event": name, "where": filters})),
        text_op_json().prop_map(|(op, v)| json!({"visit_url": {"op": op, "value": v}})),
        Just(json!({})),
    ];
    (source, occurrence_json(), window_json()).prop_map(|(mut rule, occurrence, window)| {
        merge(&mut rule, &occurrence);
        if let Some(window) = window {
            merge(&mut rule, &json!({ "within": window }));
        }
        rule
    })
}

fn segment_json() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(&[1i64, 2, 3, 10][..]),
        proptest::sample::select(&["in", "not_in"][..]),
    )
        .prop_map(|(id, op)| json!({"segment": id, "op": op}))
}

fn valid_rule_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![field_json(), behaviour_json(), segment_json()];
    // Depth 7 of groups over a leaf stays within the limit of 8; the size keeps the
    // number of leaves far below 200.
    leaf.prop_recursive(7, 60, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|rs| json!({ "all": rs })),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|rs| json!({ "any": rs })),
            inner.prop_map(|r| json!({ "not": r })),
        ]
    })
}
