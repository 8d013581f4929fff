//! The reference evaluator against `spec/rules.md` and `docs/semantics.md`.
//!
//! Every test is a table of cases run by one `check` helper, which reports every failing
//! row at once. Rules are written in JSON and go through `parse_rule`, as in production.
//! Unless a case says otherwise, the evaluation time is 2025-06-15T12:00:00Z in UTC.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use segmentd_rules::data::parse_date;
use segmentd_rules::rule::SegmentCondition;
use segmentd_rules::{
    Catalog, Clock, ContactData, CustomEvent, FieldType, FieldValue, Rule, SegmentId, SystemEvent,
    SystemEventKind, Visit, is_member, parse_rule,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

const NOW: &str = "2025-06-15T12:00:00Z";

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for (key, ty) in [
        ("city", FieldType::Text),
        ("age", FieldType::Number),
        ("birthday", FieldType::Date),
        ("vip", FieldType::Boolean),
    ] {
        c.fields.insert(key.to_owned(), ty);
    }
    c.segments.insert(1, vec![]);
    c.segments.insert(2, vec![1]);
    c.segments.insert(3, vec![]);
    c
}

fn rule(json: &Value) -> Rule {
    match parse_rule(json, "rule", &catalog(), None) {
        Ok(r) => r,
        Err(issues) => panic!("test rule {json} does not parse: {issues:?}"),
    }
}

/// The account's segments: 1 = people of Paris; 2 = segment 1 or VIPs; 3 = opened a mail.
fn segments() -> HashMap<SegmentId, Rule> {
    let mut s = HashMap::new();
    s.insert(
        1,
        rule(&json!({"field": "city", "op": "equals", "value": "Paris"})),
    );
    s.insert(
        2,
        rule(&json!({"any": [
            {"segment": 1, "op": "in"},
            {"field": "vip", "op": "is_true"},
        ]})),
    );
    s.insert(
        3,
        rule(&json!({"system_event": "MailOpen", "op": "occurred"})),
    );
    s
}

fn ts(s: &str) -> Timestamp {
    match s.parse() {
        Ok(t) => t,
        Err(e) => panic!("bad timestamp {s}: {e}"),
    }
}

/// `s` shifted by `ms` milliseconds.
fn ts_ms(s: &str, ms: i64) -> Timestamp {
    match ts(s).checked_add(jiff::SignedDuration::from_millis(ms)) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

fn clock_in(now: &str, tz: &str) -> Clock {
    match TimeZone::get(tz) {
        Ok(zone) => Clock::new(ts(now), &zone),
        Err(e) => panic!("bad time zone {tz}: {e}"),
    }
}

fn utc_clock(now: &str) -> Clock {
    clock_in(now, "UTC")
}

struct Case {
    what: String,
    rule: Value,
    contact: ContactData,
    member: bool,
}

fn case(what: &str, rule: Value, contact: ContactData, member: bool) -> Case {
    Case {
        what: what.to_owned(),
        rule,
        contact,
        member,
    }
}

fn check(cases: Vec<Case>) {
    check_at(&utc_clock(NOW), cases);
}

fn check_at(clock: &Clock, cases: Vec<Case>) {
    let segments = segments();
    let total = cases.len();
    let mut failures = Vec::new();
    for c in cases {
        let got = is_member(&rule(&c.rule), &c.contact, clock, &segments);
        if got != c.member {
            failures.push(format!(
                "  {}: expected member = {}, got {}\n    rule: {}",
                c.what, c.member, got, c.rule
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (now = {}, today = {}):\n{}",
        failures.len(),
        total,
        clock.now,
        clock.today,
        failures.join("\n")
    );
}

/// A field condition; `Value::Null` means the op takes no value.
fn field_rule(field: &str, op: &str, value: &Value) -> Value {
    if value.is_null() {
        json!({"field": field, "op": op})
    } else {
        json!({"field": field, "op": op, "value": value})
    }
}

fn with_field(field: &str, value: Option<FieldValue>) -> ContactData {
    let mut c = ContactData::default();
    match (field, value) {
        ("email", Some(FieldValue::Text(s))) => c.email = Some(s),
        ("phone", Some(FieldValue::Text(s))) => c.phone = Some(s),
        (_, Some(v)) => {
            c.fields.insert(field.to_owned(), v);
        }
        (_, None) => {}
    }
    c
}

fn text_cases(field: &str, rows: &[(&str, Value, Option<&str>, bool)]) -> Vec<Case> {
    rows.iter()
        .map(|(op, value, stored, member)| {
            let what = format!("{field} {op} {value} on {stored:?}");
            let stored = stored.map(|s| FieldValue::Text(s.to_owned()));
            case(
                &what,
                field_rule(field, op, value),
                with_field(field, stored),
                *member,
            )
        })
        .collect()
}

fn number_cases(rows: &[(&str, Value, Option<f64>, bool)]) -> Vec<Case> {
    rows.iter()
        .map(|(op, value, stored, member)| {
            let what = format!("age {op} {value} on {stored:?}");
            let stored = stored.map(FieldValue::Number);
            case(
                &what,
                field_rule("age", op, value),
                with_field("age", stored),
                *member,
            )
        })
        .collect()
}

fn date(s: &str) -> FieldValue {
    match parse_date(s) {
        Some(d) => FieldValue::Date(d),
        None => panic!("bad date {s}"),
    }
}

fn date_cases(rows: &[(&str, Value, Option<&str>, bool)]) -> Vec<Case> {
    rows.iter()
        .map(|(op, value, stored, member)| {
            let what = format!("birthday {op} {value} on {stored:?}");
            case(
                &what,
                field_rule("birthday", op, value),
                with_field("birthday", stored.map(date)),
                *member,
            )
        })
        .collect()
}

fn boolean_cases(rows: &[(&str, Option<bool>, bool)]) -> Vec<Case> {
    rows.iter()
        .map(|(op, stored, member)| {
            let what = format!("vip {op} on {stored:?}");
            case(
                &what,
                field_rule("vip", op, &Value::Null),
                with_field("vip", stored.map(FieldValue::Boolean)),
                *member,
            )
        })
        .collect()
}

// Events -------------------------------------------------------------------------------

fn system(kind: SystemEventKind, at: Timestamp) -> SystemEvent {
    SystemEvent {
        id: None,
        kind,
        timestamp: at,
        campaign: None,
        url: None,
    }
}

fn mail_open(at: Timestamp) -> SystemEvent {
    system(SystemEventKind::MailOpen, at)
}

fn from_campaign(campaign: &str, e: SystemEvent) -> SystemEvent {
    SystemEvent {
        campaign: Some(campaign.to_owned()),
        ..e
    }
}

fn custom(name: &str, at: Timestamp, properties: Value) -> CustomEvent {
    let properties = match properties {
        Value::Object(m) => m,
        other => panic!("properties must be an object, not {other}"),
    };
    CustomEvent {
        id: None,
        name: name.to_owned(),
        timestamp: at,
        properties,
    }
}

fn visit(url: &str, at: Timestamp) -> Visit {
    Visit {
        id: None,
        url: url.to_owned(),
        timestamp: at,
    }
}

fn with_system(events: Vec<SystemEvent>) -> ContactData {
    ContactData {
        system_events: events,
        ..ContactData::default()
    }
}

fn with_custom(events: Vec<CustomEvent>) -> ContactData {
    ContactData {
        custom_events: events,
        ..ContactData::default()
    }
}

fn with_visits(visits: Vec<Visit>) -> ContactData {
    ContactData {
        visits,
        ..ContactData::default()
    }
}

fn an_hour_ago() -> Timestamp {
    ts("2025-06-15T11:00:00Z")
}

// ---------------------------------------------------------------------------------------
// Text fields
// ---------------------------------------------------------------------------------------

#[test]
fn text_equals_ignores_case_on_both_sides_but_counts_whitespace() {
    check(text_cases(
        "city",
        &[
            ("equals", json!("Paris"), Some("Paris"), true),
            ("equals", json!("Paris"), Some("PARIS"), true),
            ("equals", json!("PARIS"), Some("paris"), true),
            ("equals", json!("ŁÓDŹ"), Some("łódź"), true),
            ("equals", json!("łódź"), Some("ŁÓDŹ"), true),
            ("equals", json!("Lodz"), Some("Łódź"), false),
            ("equals", json!("Paris"), Some(" Paris"), false),
            ("equals", json!("Paris"), Some("Paris "), false),
            ("equals", json!("New York"), Some("New  York"), false),
            ("equals", json!("Paris"), Some("Pari"), false),
            ("equals", json!("Paris"), None, false),
        ],
    ));
}

#[test]
fn text_comparison_uses_the_unicode_lowercase_mapping_not_case_folding() {
    check(text_cases(
        "city",
        &[
            // "İ" lowercases to "i" + U+0307 COMBINING DOT ABOVE.
            ("equals", json!("İstanbul"), Some("İSTANBUL"), true),
            ("equals", json!("İstanbul"), Some("i\u{307}stanbul"), true),
            ("equals", json!("İstanbul"), Some("istanbul"), false),
            ("equals", json!("istanbul"), Some("İstanbul"), false),
            ("contains", json!("stanbul"), Some("İSTANBUL"), true),
            ("equals", json!("ΑΘΗΝΑ"), Some("αθηνα"), true),
            // Lowercasing maps "SS" to "ss", never to "ß".
            ("equals", json!("Straße"), Some("STRASSE"), false),
            ("equals", json!("STRASSE"), Some("strasse"), true),
        ],
    ));
}

#[test]
fn text_not_equals_is_the_complement_of_equals_and_matches_no_value() {
    check(text_cases(
        "city",
        &[
            ("not_equals", json!("Paris"), Some("Paris"), false),
            ("not_equals", json!("Paris"), Some("pARIS"), false),
            ("not_equals", json!("ŁÓDŹ"), Some("łódź"), false),
            ("not_equals", json!("Paris"), Some("Paris "), true),
            ("not_equals", json!("Paris"), Some("Lyon"), true),
            ("not_equals", json!("Paris"), None, true),
        ],
    ));
}

#[test]
fn text_contains_and_not_contains_ignore_case_and_complement_each_other() {
    check(text_cases(
        "city",
        &[
            ("contains", json!("ari"), Some("PARIS"), true),
            ("contains", json!("Paris"), Some("Paris"), true),
            ("contains", json!("ÓD"), Some("łódź"), true),
            ("contains", json!(" "), Some("New York"), true),
            ("contains", json!(" "), Some("Paris"), false),
            ("contains", json!("xyz"), Some("Paris"), false),
            ("contains", json!("Paris!"), Some("Paris"), false),
            ("contains", json!("ari"), None, false),
            ("not_contains", json!("ari"), Some("PARIS"), false),
            ("not_contains", json!("xyz"), Some("Paris"), true),
            ("not_contains", json!(" "), Some("Paris"), true),
            ("not_contains", json!("ari"), None, true),
        ],
    ));
}

#[test]
fn text_starts_with_and_ends_with_ignore_case_and_never_match_no_value() {
    check(text_cases(
        "city",
        &[
            ("starts_with", json!("par"), Some("PARIS"), true),
            ("starts_with", json!("Paris"), Some("Paris"), true),
            ("starts_with", json!("aris"), Some("Paris"), false),
            ("starts_with", json!("Par"), Some(" Paris"), false),
            ("starts_with", json!("Ł"), Some("łódź"), true),
            ("starts_with", json!("par"), None, false),
            ("ends_with", json!("RIS"), Some("paris"), true),
            ("ends_with", json!("Paris"), Some("Paris"), true),
            ("ends_with", json!("Pari"), Some("Paris"), false),
            ("ends_with", json!("ris"), Some("Paris "), false),
            ("ends_with", json!("DŹ"), Some("łódź"), true),
            ("ends_with", json!("ris"), None, false),
        ],
    ));
}

#[test]
fn text_in_matches_any_item_ignoring_case_and_not_in_is_its_complement() {
    check(text_cases(
        "city",
        &[
            ("in", json!(["Lyon", "Paris"]), Some("paris"), true),
            ("in", json!(["Lyon", "ŁÓDŹ"]), Some("łódź"), true),
            ("in", json!(["Lyon"]), Some("Lyon"), true),
            ("in", json!(["Lyon", "Paris"]), Some("Nice"), false),
            ("in", json!(["Lyon", "Paris"]), Some("Paris "), false),
            ("in", json!(["Lyon", "Paris"]), Some("Par"), false),
            ("in", json!(["Lyon", "Paris"]), None, false),
            ("not_in", json!(["Lyon", "Paris"]), Some("paris"), false),
            ("not_in", json!(["Lyon", "Paris"]), Some("Nice"), true),
            ("not_in", json!(["Lyon", "Paris"]), Some("Paris "), true),
            ("not_in", json!(["Lyon", "Paris"]), None, true),
        ],
    ));
}

#[test]
fn text_has_value_and_has_no_value_tell_set_from_unset() {
    check(text_cases(
        "city",
        &[
            ("has_value", Value::Null, Some("Paris"), true),
            ("has_value", Value::Null, Some(" "), true),
            ("has_value", Value::Null, None, false),
            ("has_no_value", Value::Null, Some("Paris"), false),
            ("has_no_value", Value::Null, Some(" "), false),
            ("has_no_value", Value::Null, None, true),
        ],
    ));
}

#[test]
fn email_and_phone_are_built_in_text_fields() {
    let mut cases = text_cases(
        "email",
        &[
            (
                "equals",
                json!("Ann@Example.com"),
                Some("ann@example.COM"),
                true,
            ),
            (
                "ends_with",
                json!("@example.com"),
                Some("ann@EXAMPLE.com"),
                true,
            ),
            ("contains", json!("@"), None, false),
            ("not_contains", json!("@gmail"), None, true),
            ("has_value", Value::Null, Some("a@b.c"), true),
            ("has_no_value", Value::Null, None, true),
        ],
    );
    cases.extend(text_cases(
        "phone",
        &[
            ("starts_with", json!("+48"), Some("+48 600 100 200"), true),
            (
                "starts_with",
                json!("+48"),
                Some("+33 6 00 00 00 00"),
                false,
            ),
            (
                "in",
                json!(["+48 600 100 200"]),
                Some("+48 600 100 200"),
                true,
            ),
            (
                "in",
                json!(["+48600100200"]),
                Some("+48 600 100 200"),
                false,
            ),
            ("has_no_value", Value::Null, Some("+48"), false),
            ("not_equals", json!("+48"), None, true),
        ],
    ));
    // The email field reads the email, not the phone.
    let phone_only = ContactData {
        phone: Some("a@b.c".into()),
        ..ContactData::default()
    };
    cases.push(case(
        "email has_value on a contact with only a phone",
        field_rule("email", "has_value", &Value::Null),
        phone_only,
        false,
    ));
    check(cases);
}

// ---------------------------------------------------------------------------------------
// Number fields
// ---------------------------------------------------------------------------------------

#[test]
fn number_equals_and_not_equals_compare_as_doubles_and_not_equals_matches_no_value() {
    check(number_cases(&[
        ("equals", json!(42), Some(42.0), true),
        ("equals", json!(42.5), Some(42.5), true),
        ("equals", json!(0), Some(-0.0), true),
        ("equals", json!(-0.0), Some(0.0), true),
        ("equals", json!(42), Some(42.000_001), false),
        ("equals", json!(42), None, false),
        ("not_equals", json!(42), Some(42.0), false),
        ("not_equals", json!(0), Some(-0.0), false),
        ("not_equals", json!(42), Some(41.0), true),
        ("not_equals", json!(42), None, true),
    ]));
}

#[test]
fn number_comparisons_are_strict_or_not_as_named_and_never_match_no_value() {
    check(number_cases(&[
        ("greater_than", json!(10), Some(10.5), true),
        ("greater_than", json!(10), Some(10.0), false),
        ("greater_than", json!(10), Some(9.0), false),
        ("greater_than", json!(-1), None, false),
        ("greater_or_equal", json!(10), Some(10.0), true),
        ("greater_or_equal", json!(10), Some(9.999), false),
        ("greater_or_equal", json!(-1), None, false),
        ("less_than", json!(10), Some(9.5), true),
        ("less_than", json!(10), Some(10.0), false),
        ("less_than", json!(10), Some(11.0), false),
        ("less_than", json!(1e300), None, false),
        ("less_or_equal", json!(10), Some(10.0), true),
        ("less_or_equal", json!(10), Some(10.001), false),
        ("less_or_equal", json!(1e300), None, false),
        ("less_than", json!(0), Some(-0.5), true),
    ]));
}

#[test]
fn number_between_is_inclusive_at_both_ends() {
    check(number_cases(&[
        ("between", json!([18, 30]), Some(18.0), true),
        ("between", json!([18, 30]), Some(30.0), true),
        ("between", json!([18, 30]), Some(24.5), true),
        ("between", json!([18, 30]), Some(17.999), false),
        ("between", json!([18, 30]), Some(30.001), false),
        ("between", json!([5, 5]), Some(5.0), true),
        ("between", json!([-10, 10]), Some(-10.0), true),
        ("between", json!([18, 30]), None, false),
    ]));
}

#[test]
fn number_has_value_and_has_no_value_tell_set_from_unset() {
    check(number_cases(&[
        ("has_value", Value::Null, Some(0.0), true),
        ("has_value", Value::Null, None, false),
        ("has_no_value", Value::Null, Some(0.0), false),
        ("has_no_value", Value::Null, None, true),
    ]));
}

// ---------------------------------------------------------------------------------------
// Date fields (today is 2025-06-15 unless said otherwise)
// ---------------------------------------------------------------------------------------

#[test]
fn date_equals_is_the_same_calendar_day_and_not_equals_matches_no_value() {
    check(date_cases(&[
        ("equals", json!("2025-06-15"), Some("2025-06-15"), true),
        ("equals", json!("2025-06-15"), Some("2025-06-14"), false),
        ("equals", json!("2025-06-15"), Some("2024-06-15"), false),
        ("equals", json!("2025-06-15"), None, false),
        ("not_equals", json!("2025-06-15"), Some("2025-06-15"), false),
        ("not_equals", json!("2025-06-15"), Some("2025-06-16"), true),
        ("not_equals", json!("2025-06-15"), None, true),
    ]));
}

#[test]
fn date_before_and_after_are_strict_and_never_match_no_value() {
    check(date_cases(&[
        ("before", json!("2025-01-01"), Some("2024-12-31"), true),
        ("before", json!("2025-01-01"), Some("2025-01-01"), false),
        ("before", json!("2025-01-01"), Some("2025-01-02"), false),
        ("before", json!("2025-01-01"), None, false),
        ("after", json!("2025-01-01"), Some("2025-01-02"), true),
        ("after", json!("2025-01-01"), Some("2025-01-01"), false),
        ("after", json!("2025-01-01"), Some("2024-12-31"), false),
        ("after", json!("2025-01-01"), None, false),
    ]));
}

#[test]
fn date_between_is_inclusive_at_both_ends() {
    check(date_cases(&[
        (
            "between",
            json!(["2025-01-01", "2025-01-31"]),
            Some("2025-01-01"),
            true,
        ),
        (
            "between",
            json!(["2025-01-01", "2025-01-31"]),
            Some("2025-01-31"),
            true,
        ),
        (
            "between",
            json!(["2025-01-01", "2025-01-31"]),
            Some("2025-01-15"),
            true,
        ),
        (
            "between",
            json!(["2025-01-01", "2025-01-31"]),
            Some("2024-12-31"),
            false,
        ),
        (
            "between",
            json!(["2025-01-01", "2025-01-31"]),
            Some("2025-02-01"),
            false,
        ),
        (
            "between",
            json!(["2025-01-01", "2025-01-01"]),
            Some("2025-01-01"),
            true,
        ),
        ("between", json!(["2025-01-01", "2025-01-31"]), None, false),
    ]));
}

#[test]
fn relative_dates_are_today_plus_n_days() {
    check(date_cases(&[
        (
            "equals",
            json!({"relative_days": 0}),
            Some("2025-06-15"),
            true,
        ),
        (
            "equals",
            json!({"relative_days": 0}),
            Some("2025-06-14"),
            false,
        ),
        (
            "equals",
            json!({"relative_days": -1}),
            Some("2025-06-14"),
            true,
        ),
        (
            "equals",
            json!({"relative_days": 1}),
            Some("2025-06-16"),
            true,
        ),
        (
            "equals",
            json!({"relative_days": 17}),
            Some("2025-07-02"),
            true,
        ),
        (
            "equals",
            json!({"relative_days": -366}),
            Some("2024-06-14"),
            true,
        ),
        (
            "not_equals",
            json!({"relative_days": 0}),
            Some("2025-06-15"),
            false,
        ),
        ("not_equals", json!({"relative_days": 0}), None, true),
        (
            "before",
            json!({"relative_days": 0}),
            Some("2025-06-14"),
            true,
        ),
        (
            "before",
            json!({"relative_days": 0}),
            Some("2025-06-15"),
            false,
        ),
        (
            "after",
            json!({"relative_days": -30}),
            Some("2025-05-17"),
            true,
        ),
        (
            "after",
            json!({"relative_days": -30}),
            Some("2025-05-16"),
            false,
        ),
        (
            "between",
            json!([{"relative_days": -7}, {"relative_days": 0}]),
            Some("2025-06-08"),
            true,
        ),
        (
            "between",
            json!([{"relative_days": -7}, {"relative_days": 0}]),
            Some("2025-06-15"),
            true,
        ),
        (
            "between",
            json!([{"relative_days": -7}, {"relative_days": 0}]),
            Some("2025-06-07"),
            false,
        ),
        (
            "between",
            json!([{"relative_days": -7}, {"relative_days": 0}]),
            Some("2025-06-16"),
            false,
        ),
        // A mix of absolute and relative that is inverted today matches no one.
        (
            "between",
            json!(["2025-06-20", {"relative_days": 0}]),
            Some("2025-06-17"),
            false,
        ),
        (
            "between",
            json!(["2025-06-10", {"relative_days": 0}]),
            Some("2025-06-12"),
            true,
        ),
    ]));
}

#[test]
fn a_relative_date_past_the_end_of_the_calendar_matches_only_not_equals_and_never_panics() {
    // jiff's calendar ends on 9999-12-31.
    check_at(
        &utc_clock("9999-12-30T12:00:00Z"),
        date_cases(&[
            (
                "equals",
                json!({"relative_days": 36500}),
                Some("9999-12-31"),
                false,
            ),
            (
                "after",
                json!({"relative_days": 36500}),
                Some("9999-12-31"),
                false,
            ),
            (
                "before",
                json!({"relative_days": 36500}),
                Some("9999-12-31"),
                false,
            ),
            (
                "between",
                json!([{"relative_days": 0}, {"relative_days": 36500}]),
                Some("9999-12-31"),
                false,
            ),
            (
                "not_equals",
                json!({"relative_days": 36500}),
                Some("9999-12-31"),
                true,
            ),
            (
                "equals",
                json!({"relative_days": 1}),
                Some("9999-12-31"),
                true,
            ),
            ("anniversary_within", json!(366), Some("2000-12-31"), true),
            ("anniversary_within", json!(366), Some("2000-01-01"), false),
        ]),
    );
}

#[test]
fn date_has_value_and_has_no_value_tell_set_from_unset() {
    check(date_cases(&[
        ("has_value", Value::Null, Some("2000-01-01"), true),
        ("has_value", Value::Null, None, false),
        ("has_no_value", Value::Null, Some("2000-01-01"), false),
        ("has_no_value", Value::Null, None, true),
    ]));
}

#[test]
fn anniversary_within_n_covers_today_and_the_n_following_days() {
    check(date_cases(&[
        ("anniversary_within", json!(0), Some("1990-06-15"), true),
        ("anniversary_within", json!(0), Some("1990-06-16"), false),
        ("anniversary_within", json!(0), Some("1990-06-14"), false),
        ("anniversary_within", json!(7), Some("1990-06-22"), true),
        ("anniversary_within", json!(7), Some("1990-06-23"), false),
        ("anniversary_within", json!(7), Some("1990-06-14"), false),
        // The year of the value does not matter, even a future one.
        ("anniversary_within", json!(1), Some("2030-06-16"), true),
        // Next year's 14 June is 364 days away.
        ("anniversary_within", json!(366), Some("1990-06-14"), true),
        ("anniversary_within", json!(364), Some("1990-06-14"), true),
        ("anniversary_within", json!(363), Some("1990-06-14"), false),
        ("anniversary_within", json!(7), None, false),
    ]));
}

#[test]
fn anniversary_within_crosses_the_year_end() {
    check_at(
        &utc_clock("2025-12-30T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(3), Some("1990-01-02"), true),
            ("anniversary_within", json!(2), Some("1990-01-02"), false),
            ("anniversary_within", json!(2), Some("1990-12-31"), true),
            ("anniversary_within", json!(5), Some("1990-12-29"), false),
            // Next year's 29 December is 364 days away.
            ("anniversary_within", json!(364), Some("1990-12-29"), true),
            ("anniversary_within", json!(363), Some("1990-12-29"), false),
        ]),
    );
}

#[test]
fn a_29_february_anniversary_falls_on_28_february_in_years_without_one() {
    let leap_day = Some("2000-02-29");
    // 2025 is not a leap year.
    check_at(
        &utc_clock("2025-02-28T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(0), leap_day, true),
            ("anniversary_within", json!(0), Some("2001-02-28"), true),
        ]),
    );
    check_at(
        &utc_clock("2025-02-27T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(0), leap_day, false),
            ("anniversary_within", json!(1), leap_day, true),
        ]),
    );
    check_at(
        &utc_clock("2025-03-01T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(0), leap_day, false),
            ("anniversary_within", json!(300), leap_day, false),
        ]),
    );
    // 2024 is a leap year: 29 February is itself.
    check_at(
        &utc_clock("2024-02-28T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(0), leap_day, false),
            ("anniversary_within", json!(1), leap_day, true),
            ("anniversary_within", json!(0), Some("2001-02-28"), true),
        ]),
    );
    check_at(
        &utc_clock("2024-02-29T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(0), leap_day, true),
            ("anniversary_within", json!(0), Some("2001-02-28"), false),
            ("anniversary_within", json!(0), Some("2001-03-01"), false),
        ]),
    );
    // Across the year end into a year without 29 February: 2025-02-28 is 59 days
    // after 2024-12-31.
    check_at(
        &utc_clock("2024-12-31T12:00:00Z"),
        date_cases(&[
            ("anniversary_within", json!(59), leap_day, true),
            ("anniversary_within", json!(58), leap_day, false),
        ]),
    );
}

#[test]
fn today_is_the_date_in_the_account_time_zone() {
    // 2025-06-15T13:00Z is 16 June 01:00 in Auckland and 15 June 06:00 in Los Angeles.
    let now = "2025-06-15T13:00:00Z";
    let auckland = clock_in(now, "Pacific/Auckland");
    let los_angeles = clock_in(now, "America/Los_Angeles");
    check_at(
        &auckland,
        date_cases(&[
            (
                "equals",
                json!({"relative_days": 0}),
                Some("2025-06-16"),
                true,
            ),
            (
                "equals",
                json!({"relative_days": 0}),
                Some("2025-06-15"),
                false,
            ),
            (
                "before",
                json!({"relative_days": 0}),
                Some("2025-06-15"),
                true,
            ),
            ("anniversary_within", json!(0), Some("1990-06-16"), true),
            ("anniversary_within", json!(0), Some("1990-06-15"), false),
        ]),
    );
    check_at(
        &los_angeles,
        date_cases(&[
            (
                "equals",
                json!({"relative_days": 0}),
                Some("2025-06-16"),
                false,
            ),
            (
                "equals",
                json!({"relative_days": 0}),
                Some("2025-06-15"),
                true,
            ),
            (
                "before",
                json!({"relative_days": 0}),
                Some("2025-06-15"),
                false,
            ),
            ("anniversary_within", json!(0), Some("1990-06-16"), false),
            ("anniversary_within", json!(0), Some("1990-06-15"), true),
        ]),
    );
}

// ---------------------------------------------------------------------------------------
// Boolean fields
// ---------------------------------------------------------------------------------------

#[test]
fn booleans_are_true_false_or_unset_and_unset_is_neither() {
    check(boolean_cases(&[
        ("is_true", Some(true), true),
        ("is_true", Some(false), false),
        ("is_true", None, false),
        ("is_false", Some(false), true),
        ("is_false", Some(true), false),
        ("is_false", None, false),
        ("has_value", Some(false), true),
        ("has_value", None, false),
        ("has_no_value", Some(false), false),
        ("has_no_value", None, true),
    ]));
}

// ---------------------------------------------------------------------------------------
// Behaviour: time windows (now = 2025-06-15T12:00:00Z)
// ---------------------------------------------------------------------------------------

fn opened_at(at: Timestamp) -> ContactData {
    with_system(vec![mail_open(at)])
}

fn opened_within(window: Value) -> Value {
    json!({"system_event": "MailOpen", "op": "occurred", "within": window})
}

#[test]
fn events_at_now_count_and_events_after_now_are_ignored() {
    let opened = json!({"system_event": "MailOpen", "op": "occurred"});
    let never = json!({"system_event": "MailOpen", "op": "not_occurred"});
    check(vec![
        case(
            "event exactly at now",
            opened.clone(),
            opened_at(ts(NOW)),
            true,
        ),
        case(
            "event 1 ms before now",
            opened.clone(),
            opened_at(ts_ms(NOW, -1)),
            true,
        ),
        case(
            "event 1 ms after now",
            opened.clone(),
            opened_at(ts_ms(NOW, 1)),
            false,
        ),
        case(
            "event a year after now",
            opened,
            opened_at(ts("2026-06-15T12:00:00Z")),
            false,
        ),
        case(
            "not_occurred: only a future event",
            never.clone(),
            opened_at(ts_ms(NOW, 1)),
            true,
        ),
        case(
            "not_occurred: event at now",
            never,
            opened_at(ts(NOW)),
            false,
        ),
    ]);
}

#[test]
fn last_days_is_the_rolling_window_from_n_times_24_hours_ago_excluded_to_now_included() {
    let one_day = opened_within(json!({"last_days": 1}));
    let thirty_days = opened_within(json!({"last_days": 30}));
    let start = "2025-06-14T12:00:00Z";
    check(vec![
        case(
            "exactly now - 24h",
            one_day.clone(),
            opened_at(ts(start)),
            false,
        ),
        case(
            "1 ms before now - 24h",
            one_day.clone(),
            opened_at(ts_ms(start, -1)),
            false,
        ),
        case(
            "1 ms after now - 24h",
            one_day.clone(),
            opened_at(ts_ms(start, 1)),
            true,
        ),
        case("exactly now", one_day.clone(), opened_at(ts(NOW)), true),
        case("1 ms after now", one_day, opened_at(ts_ms(NOW, 1)), false),
        case(
            "30 days: exactly now - 720h",
            thirty_days.clone(),
            opened_at(ts("2025-05-16T12:00:00Z")),
            false,
        ),
        case(
            "30 days: 1 ms after now - 720h",
            thirty_days,
            opened_at(ts_ms("2025-05-16T12:00:00Z", 1)),
            true,
        ),
    ]);
}

#[test]
fn last_days_counts_24_hour_days_not_calendar_days_across_a_dst_change() {
    // Europe/Warsaw moved to summer time on 2025-03-30; the window is still 48 hours.
    let clock = clock_in("2025-03-31T10:00:00Z", "Europe/Warsaw");
    let two_days = opened_within(json!({"last_days": 2}));
    check_at(
        &clock,
        vec![
            case(
                "exactly 48 h ago",
                two_days.clone(),
                opened_at(ts("2025-03-29T10:00:00Z")),
                false,
            ),
            case(
                "48 h minus 1 ms ago",
                two_days,
                opened_at(ts_ms("2025-03-29T10:00:00Z", 1)),
                true,
            ),
        ],
    );
}

#[test]
fn since_includes_its_instant_and_accepts_any_offset() {
    let t = "2025-06-01T00:00:00Z";
    let since = opened_within(json!({"since": t}));
    let since_offset = opened_within(json!({"since": "2025-06-01T02:00:00+02:00"}));
    check(vec![
        case("exactly at T", since.clone(), opened_at(ts(t)), true),
        case(
            "1 ms before T",
            since.clone(),
            opened_at(ts_ms(t, -1)),
            false,
        ),
        case("1 ms after T", since.clone(), opened_at(ts_ms(t, 1)), true),
        case("after now", since, opened_at(ts_ms(NOW, 1)), false),
        case(
            "T with an offset: same instant",
            since_offset.clone(),
            opened_at(ts(t)),
            true,
        ),
        case(
            "T with an offset: 1 ms before",
            since_offset,
            opened_at(ts_ms(t, -1)),
            false,
        ),
    ]);
}

#[test]
fn before_excludes_its_instant() {
    let t = "2025-06-01T00:00:00Z";
    let before = opened_within(json!({"before": t}));
    check(vec![
        case("exactly at T", before.clone(), opened_at(ts(t)), false),
        case(
            "1 ms before T",
            before.clone(),
            opened_at(ts_ms(t, -1)),
            true,
        ),
        case(
            "1 ms after T",
            before.clone(),
            opened_at(ts_ms(t, 1)),
            false,
        ),
        case(
            "long before T",
            before,
            opened_at(ts("2001-01-01T00:00:00Z")),
            true,
        ),
    ]);
    // A `before` after now still ignores events after now.
    let later = opened_within(json!({"before": "2030-01-01T00:00:00Z"}));
    check(vec![case(
        "before 2030, event after now",
        later,
        opened_at(ts_ms(NOW, 1)),
        false,
    )]);
}

#[test]
fn between_includes_its_start_and_excludes_its_end() {
    let (t1, t2) = ("2025-06-01T00:00:00Z", "2025-06-08T00:00:00Z");
    let between = opened_within(json!({"between": [t1, t2]}));
    check(vec![
        case("exactly at T1", between.clone(), opened_at(ts(t1)), true),
        case(
            "1 ms before T1",
            between.clone(),
            opened_at(ts_ms(t1, -1)),
            false,
        ),
        case(
            "1 ms after T1",
            between.clone(),
            opened_at(ts_ms(t1, 1)),
            true,
        ),
        case(
            "1 ms before T2",
            between.clone(),
            opened_at(ts_ms(t2, -1)),
            true,
        ),
        case("exactly at T2", between.clone(), opened_at(ts(t2)), false),
        case("1 ms after T2", between, opened_at(ts_ms(t2, 1)), false),
    ]);
}

// ---------------------------------------------------------------------------------------
// Behaviour: counts
// ---------------------------------------------------------------------------------------

fn opens(n: usize) -> ContactData {
    with_system((0..n).map(|_| mail_open(an_hour_ago())).collect())
}

#[test]
fn occurred_needs_at_least_min_count_and_at_most_max_count_events() {
    let once = json!({"system_event": "MailOpen", "op": "occurred"});
    let twice = json!({"system_event": "MailOpen", "op": "occurred", "min_count": 2});
    let two_or_three =
        json!({"system_event": "MailOpen", "op": "occurred", "min_count": 2, "max_count": 3});
    let at_most_one = json!({"system_event": "MailOpen", "op": "occurred", "max_count": 1});
    check(vec![
        case("default min 1, 0 events", once.clone(), opens(0), false),
        case("default min 1, 1 event", once.clone(), opens(1), true),
        case("default min 1, 5 events", once, opens(5), true),
        case("min 2, 1 event", twice.clone(), opens(1), false),
        case("min 2, 2 events", twice, opens(2), true),
        case("2..=3, 1 event", two_or_three.clone(), opens(1), false),
        case("2..=3, 2 events", two_or_three.clone(), opens(2), true),
        case("2..=3, 3 events", two_or_three.clone(), opens(3), true),
        case("2..=3, 4 events", two_or_three, opens(4), false),
        case("max 1, 0 events", at_most_one.clone(), opens(0), false),
        case("max 1, 1 event", at_most_one.clone(), opens(1), true),
        case("max 1, 2 events", at_most_one, opens(2), false),
    ]);
}

#[test]
fn counts_include_only_events_that_pass_every_filter() {
    let rule = json!({
        "custom_event": "Purchase",
        "where": [{"property": "total", "op": "greater_than", "value": 100}],
        "within": {"last_days": 7},
        "op": "occurred", "min_count": 2, "max_count": 2,
    });
    let big = |at: &str| custom("Purchase", ts(at), json!({"total": 150}));
    let small = |at: &str| custom("Purchase", ts(at), json!({"total": 50}));
    let noise = vec![
        small("2025-06-14T00:00:00Z"),
        big("2025-06-01T00:00:00Z"),
        big("2025-06-15T12:00:00.001Z"),
        custom("Refund", ts("2025-06-14T00:00:00Z"), json!({"total": 150})),
    ];
    let with_big = |n: usize| {
        let mut events = noise.clone();
        for _ in 0..n {
            events.push(big("2025-06-13T00:00:00Z"));
        }
        with_custom(events)
    };
    check(vec![
        case(
            "1 matching among the noise",
            rule.clone(),
            with_big(1),
            false,
        ),
        case(
            "2 matching among the noise",
            rule.clone(),
            with_big(2),
            true,
        ),
        case(
            "3 matching among the noise (max 2)",
            rule,
            with_big(3),
            false,
        ),
    ]);
}

#[test]
fn the_kind_of_a_system_event_must_be_the_one_asked_for() {
    let clicked = json!({"system_event": "MailClick", "op": "occurred"});
    let push = json!({"system_event": "PushClick", "op": "occurred"});
    let sms_never = json!({"system_event": "SmsClick", "op": "not_occurred"});
    let at = an_hour_ago();
    check(vec![
        case("MailClick on an open", clicked.clone(), opens(3), false),
        case(
            "MailClick on a click",
            clicked,
            with_system(vec![system(SystemEventKind::MailClick, at)]),
            true,
        ),
        case(
            "PushClick on an SMS click",
            push,
            with_system(vec![system(SystemEventKind::SmsClick, at)]),
            false,
        ),
        case(
            "never SmsClick, has one",
            sms_never.clone(),
            with_system(vec![system(SystemEventKind::SmsClick, at)]),
            false,
        ),
        case("never SmsClick, has only opens", sms_never, opens(2), true),
    ]);
}

// ---------------------------------------------------------------------------------------
// Behaviour: duplicate client ids
// ---------------------------------------------------------------------------------------

fn open_with_id(id: &str) -> SystemEvent {
    SystemEvent {
        id: Some(id.to_owned()),
        ..mail_open(an_hour_ago())
    }
}

#[test]
fn events_sharing_a_client_id_count_once_and_the_first_one_stays() {
    let twice = json!({"system_event": "MailOpen", "op": "occurred", "min_count": 2});
    let purchased = json!({"custom_event": "Purchase", "op": "occurred"});
    let visited_twice = json!({"op": "occurred", "min_count": 2});
    let same_id_custom = |name: &str| CustomEvent {
        id: Some("e1".into()),
        ..custom(name, an_hour_ago(), json!({}))
    };
    let same_id_visit = |url: &str| Visit {
        id: Some("v1".into()),
        ..visit(url, an_hour_ago())
    };
    check(vec![
        case(
            "two opens with one id",
            twice.clone(),
            with_system(vec![open_with_id("a"), open_with_id("a")]),
            false,
        ),
        case(
            "two opens with two ids",
            twice.clone(),
            with_system(vec![open_with_id("a"), open_with_id("b")]),
            true,
        ),
        case(
            "two opens without ids",
            twice,
            with_system(vec![mail_open(an_hour_ago()), mail_open(an_hour_ago())]),
            true,
        ),
        case(
            "the first event of an id is not a Purchase, the later one is",
            purchased.clone(),
            with_custom(vec![same_id_custom("Signup"), same_id_custom("Purchase")]),
            false,
        ),
        case(
            "the first event of an id is a Purchase",
            purchased.clone(),
            with_custom(vec![same_id_custom("Purchase"), same_id_custom("Signup")]),
            true,
        ),
        case(
            "two visits with one id",
            visited_twice,
            with_visits(vec![same_id_visit("/a"), same_id_visit("/b")]),
            false,
        ),
    ]);
}

#[test]
fn a_client_id_is_unique_across_system_events_custom_events_and_visits() {
    let purchased = json!({"custom_event": "Purchase", "op": "occurred"});
    let visited = json!({"op": "occurred"});
    let opened = json!({"system_event": "MailOpen", "op": "occurred"});
    let purchase = CustomEvent {
        id: Some("x".into()),
        ..custom("Purchase", an_hour_ago(), json!({}))
    };
    let page = Visit {
        id: Some("x".into()),
        ..visit("/pricing", an_hour_ago())
    };
    let all_three = ContactData {
        system_events: vec![open_with_id("x")],
        custom_events: vec![purchase.clone()],
        visits: vec![page.clone()],
        ..ContactData::default()
    };
    let custom_and_visit = ContactData {
        custom_events: vec![purchase],
        visits: vec![page],
        ..ContactData::default()
    };
    check(vec![
        case("system event keeps the id", opened, all_three.clone(), true),
        case(
            "custom event after a system event with its id",
            purchased.clone(),
            all_three.clone(),
            false,
        ),
        case(
            "visit after a system event with its id",
            visited.clone(),
            all_three,
            false,
        ),
        case(
            "custom event keeps the id",
            purchased,
            custom_and_visit.clone(),
            true,
        ),
        case(
            "visit after a custom event with its id",
            visited,
            custom_and_visit,
            false,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Behaviour: campaigns, custom event properties, visits
// ---------------------------------------------------------------------------------------

#[test]
fn a_campaign_filter_keeps_only_events_of_that_campaign() {
    let rule = json!({"system_event": "MailClick", "op": "occurred", "campaign": "spring-sale"});
    let never =
        json!({"system_event": "MailClick", "op": "not_occurred", "campaign": "spring-sale"});
    let click = || system(SystemEventKind::MailClick, an_hour_ago());
    check(vec![
        case(
            "click of that campaign",
            rule.clone(),
            with_system(vec![from_campaign("spring-sale", click())]),
            true,
        ),
        case(
            "click of another campaign",
            rule.clone(),
            with_system(vec![from_campaign("winter-sale", click())]),
            false,
        ),
        case(
            "click without a campaign",
            rule.clone(),
            with_system(vec![click()]),
            false,
        ),
        // Decision: campaign ids compare exactly.
        case(
            "click of the campaign id in other case",
            rule.clone(),
            with_system(vec![from_campaign("Spring-Sale", click())]),
            false,
        ),
        case(
            "open of that campaign",
            rule,
            with_system(vec![from_campaign("spring-sale", mail_open(an_hour_ago()))]),
            false,
        ),
        case(
            "never clicked that campaign, clicked another",
            never,
            with_system(vec![from_campaign("winter-sale", click())]),
            true,
        ),
    ]);
}

fn purchase_with(properties: Value) -> ContactData {
    with_custom(vec![custom("Purchase", an_hour_ago(), properties)])
}

fn purchased_where(op: &str, value: Value) -> Value {
    let condition = if value.is_null() {
        json!({"property": "total", "op": op})
    } else {
        json!({"property": "total", "op": op, "value": value})
    };
    json!({"custom_event": "Purchase", "where": [condition], "op": "occurred"})
}

fn property_cases(rows: &[(&str, Value, Value, bool)]) -> Vec<Case> {
    rows.iter()
        .map(|(op, value, properties, member)| {
            case(
                &format!("total {op} {value} on {properties}"),
                purchased_where(op, value.clone()),
                purchase_with(properties.clone()),
                *member,
            )
        })
        .collect()
}

#[test]
fn property_ops_follow_the_field_ops() {
    check(property_cases(&[
        ("equals", json!(100), json!({"total": 100}), true),
        ("equals", json!(100), json!({"total": 100.0}), true),
        ("equals", json!(100), json!({"total": 99}), false),
        ("not_equals", json!(100), json!({"total": 99}), true),
        ("not_equals", json!(100), json!({"total": 100}), false),
        ("greater_than", json!(100), json!({"total": 100.5}), true),
        ("greater_than", json!(100), json!({"total": 100}), false),
        ("greater_or_equal", json!(100), json!({"total": 100}), true),
        ("less_than", json!(100), json!({"total": 100}), false),
        ("less_or_equal", json!(100), json!({"total": 100}), true),
        ("between", json!([10, 20]), json!({"total": 10}), true),
        ("between", json!([10, 20]), json!({"total": 20}), true),
        ("between", json!([10, 20]), json!({"total": 20.5}), false),
        ("equals", json!("Big"), json!({"total": "BIG"}), true),
        ("equals", json!("Big"), json!({"total": "big "}), false),
        ("not_equals", json!("Big"), json!({"total": "small"}), true),
        ("contains", json!("ig"), json!({"total": "BIG"}), true),
        ("not_contains", json!("ig"), json!({"total": "BIG"}), false),
        ("starts_with", json!("b"), json!({"total": "BIG"}), true),
        ("ends_with", json!("G"), json!({"total": "big"}), true),
        ("in", json!(["small", "big"]), json!({"total": "Big"}), true),
        (
            "not_in",
            json!(["small", "big"]),
            json!({"total": "Big"}),
            false,
        ),
        ("not_in", json!(["small"]), json!({"total": "Big"}), true),
        ("is_true", Value::Null, json!({"total": true}), true),
        ("is_true", Value::Null, json!({"total": false}), false),
        ("is_false", Value::Null, json!({"total": false}), true),
        ("is_false", Value::Null, json!({"total": true}), false),
        ("has_value", Value::Null, json!({"total": 0}), true),
        ("has_value", Value::Null, json!({"total": ""}), true),
        ("has_value", Value::Null, json!({"total": false}), true),
        ("has_no_value", Value::Null, json!({"total": 0}), false),
    ]));
}

#[test]
fn a_missing_or_null_property_is_no_value_so_only_negations_and_has_no_value_match() {
    let missing = json!({"other": 1});
    let null = json!({"total": null});
    let mut rows = Vec::new();
    for properties in [missing, null] {
        rows.extend([
            ("equals", json!(100), properties.clone(), false),
            ("not_equals", json!(100), properties.clone(), true),
            ("greater_than", json!(-1), properties.clone(), false),
            ("between", json!([-1e9, 1e9]), properties.clone(), false),
            ("equals", json!("big"), properties.clone(), false),
            ("not_equals", json!("big"), properties.clone(), true),
            ("contains", json!("b"), properties.clone(), false),
            ("not_contains", json!("b"), properties.clone(), true),
            ("starts_with", json!("b"), properties.clone(), false),
            ("in", json!(["big"]), properties.clone(), false),
            ("not_in", json!(["big"]), properties.clone(), true),
            ("is_true", Value::Null, properties.clone(), false),
            ("is_false", Value::Null, properties.clone(), false),
            ("has_value", Value::Null, properties.clone(), false),
            ("has_no_value", Value::Null, properties.clone(), true),
        ]);
    }
    check(property_cases(&rows));
}

#[test]
fn a_property_of_another_json_type_than_the_op_never_matches_not_even_a_negation() {
    check(property_cases(&[
        ("equals", json!(100), json!({"total": "100"}), false),
        ("not_equals", json!(100), json!({"total": "100"}), false),
        ("not_equals", json!(100), json!({"total": true}), false),
        ("greater_than", json!(1), json!({"total": "100"}), false),
        ("equals", json!("100"), json!({"total": 100}), false),
        ("not_equals", json!("100"), json!({"total": 100}), false),
        ("not_contains", json!("x"), json!({"total": 100}), false),
        ("not_in", json!(["x"]), json!({"total": false}), false),
        ("is_true", Value::Null, json!({"total": "true"}), false),
        ("is_false", Value::Null, json!({"total": 0}), false),
        // Arrays and objects are present but of no op's type.
        ("not_equals", json!(1), json!({"total": [1]}), false),
        ("not_equals", json!("a"), json!({"total": ["a"]}), false),
        (
            "not_contains",
            json!("a"),
            json!({"total": {"a": 1}}),
            false,
        ),
        ("equals", json!(1), json!({"total": {"value": 1}}), false),
        ("has_value", Value::Null, json!({"total": []}), true),
        ("has_value", Value::Null, json!({"total": {}}), true),
        ("has_no_value", Value::Null, json!({"total": []}), false),
    ]));
}

#[test]
fn a_dotted_path_reads_nested_objects() {
    let rule = |path: &str, op: &str, value: Value| {
        json!({"custom_event": "Purchase", "op": "occurred",
               "where": [{"property": path, "op": op, "value": value}]})
    };
    let nested = json!({"order": {"total": 120, "shop": {"country": "PL"}}, "total": 5});
    check(vec![
        case(
            "order.total",
            rule("order.total", "equals", json!(120)),
            purchase_with(nested.clone()),
            true,
        ),
        case(
            "total is the top-level one",
            rule("total", "equals", json!(5)),
            purchase_with(nested.clone()),
            true,
        ),
        case(
            "three levels",
            rule("order.shop.country", "equals", json!("pl")),
            purchase_with(nested.clone()),
            true,
        ),
        case(
            "a missing nested key is no value",
            rule("order.tax", "not_equals", json!(1)),
            purchase_with(nested.clone()),
            true,
        ),
        case(
            "a missing nested key does not match a positive op",
            rule("order.tax", "less_than", json!(1e9)),
            purchase_with(nested.clone()),
            false,
        ),
        // Decision: a path through something that is not an object reaches nothing.
        case(
            "a path through a number is no value",
            rule("total.amount", "not_equals", json!(1)),
            purchase_with(nested.clone()),
            true,
        ),
        case(
            "a path through null is no value",
            rule("order.total", "not_equals", json!(1)),
            purchase_with(json!({"order": null})),
            true,
        ),
        case(
            "a key with a dot in it is not reachable",
            rule("order.total", "equals", json!(7)),
            purchase_with(json!({"order.total": 7})),
            false,
        ),
    ]);
}

#[test]
fn all_property_conditions_must_hold_on_the_same_event() {
    let rule = json!({"custom_event": "Purchase", "op": "occurred", "where": [
        {"property": "plan", "op": "equals", "value": "pro"},
        {"property": "total", "op": "greater_than", "value": 100},
    ]});
    let event = |properties: Value| custom("Purchase", an_hour_ago(), properties);
    check(vec![
        case(
            "one event has both",
            rule.clone(),
            with_custom(vec![event(json!({"plan": "Pro", "total": 200}))]),
            true,
        ),
        case(
            "each condition holds on a different event",
            rule.clone(),
            with_custom(vec![
                event(json!({"plan": "pro", "total": 50})),
                event(json!({"plan": "free", "total": 200})),
            ]),
            false,
        ),
        case(
            "the event of the other name has both",
            rule,
            with_custom(vec![custom(
                "Signup",
                an_hour_ago(),
                json!({"plan": "pro", "total": 200}),
            )]),
            false,
        ),
    ]);
}

#[test]
fn custom_event_names_must_match_and_a_never_sent_name_matches_no_one() {
    let purchased = json!({"custom_event": "Purchase", "op": "occurred"});
    let never = json!({"custom_event": "Never sent", "op": "not_occurred"});
    let unsent = json!({"custom_event": "Never sent", "op": "occurred"});
    let event = |name: &str| custom(name, an_hour_ago(), json!({}));
    check(vec![
        case(
            "same name",
            purchased.clone(),
            with_custom(vec![event("Purchase")]),
            true,
        ),
        case(
            "other name",
            purchased.clone(),
            with_custom(vec![event("Signup")]),
            false,
        ),
        // Decision: event names compare exactly.
        case(
            "name in other case",
            purchased,
            with_custom(vec![event("purchase")]),
            false,
        ),
        case(
            "never sent: not_occurred",
            never,
            with_custom(vec![event("Purchase")]),
            true,
        ),
        case(
            "never sent: occurred",
            unsent,
            with_custom(vec![event("Purchase")]),
            false,
        ),
    ]);
}

#[test]
fn visit_url_applies_a_text_op_to_the_url_ignoring_case() {
    let visited =
        |op: &str, value: Value| json!({"visit_url": {"op": op, "value": value}, "op": "occurred"});
    let at = |url: &str| with_visits(vec![visit(url, an_hour_ago())]);
    let url = "https://Shop.example.com/Pricing?plan=pro";
    check(vec![
        case(
            "equals, other case",
            visited("equals", json!("https://shop.example.com/pricing?plan=PRO")),
            at(url),
            true,
        ),
        case(
            "equals, other url",
            visited("equals", json!("https://shop.example.com/pricing")),
            at(url),
            false,
        ),
        case(
            "not_equals, same url",
            visited("not_equals", json!(url)),
            at(url),
            false,
        ),
        case(
            "not_equals, other url",
            visited("not_equals", json!("https://x")),
            at(url),
            true,
        ),
        case(
            "contains",
            visited("contains", json!("/pricing")),
            at(url),
            true,
        ),
        case(
            "contains, absent",
            visited("contains", json!("/blog")),
            at(url),
            false,
        ),
        case(
            "not_contains, present",
            visited("not_contains", json!("/PRICING")),
            at(url),
            false,
        ),
        case(
            "not_contains, absent",
            visited("not_contains", json!("/blog")),
            at(url),
            true,
        ),
        case(
            "starts_with",
            visited("starts_with", json!("HTTPS://shop.")),
            at(url),
            true,
        ),
        case(
            "starts_with, no",
            visited("starts_with", json!("http://shop.")),
            at(url),
            false,
        ),
        case(
            "ends_with",
            visited("ends_with", json!("plan=pro")),
            at(url),
            true,
        ),
        case(
            "ends_with, no",
            visited("ends_with", json!("/pricing")),
            at(url),
            false,
        ),
        case(
            "in",
            visited("in", json!(["https://x", url])),
            at(url),
            true,
        ),
        case(
            "in, no",
            visited("in", json!(["https://x"])),
            at(url),
            false,
        ),
        case(
            "not_in, listed",
            visited("not_in", json!([url])),
            at(url),
            false,
        ),
        case(
            "not_in, not listed",
            visited("not_in", json!(["https://x"])),
            at(url),
            true,
        ),
    ]);
}

#[test]
fn a_negated_url_op_picks_visits_whose_url_does_not_match() {
    let other_page =
        json!({"visit_url": {"op": "not_contains", "value": "/pricing"}, "op": "occurred"});
    let never_pricing =
        json!({"visit_url": {"op": "contains", "value": "/pricing"}, "op": "not_occurred"});
    let pages = |urls: &[&str]| with_visits(urls.iter().map(|u| visit(u, an_hour_ago())).collect());
    check(vec![
        case(
            "only /pricing visited",
            other_page.clone(),
            pages(&["/pricing"]),
            false,
        ),
        case(
            "/pricing and /blog visited",
            other_page.clone(),
            pages(&["/pricing", "/blog"]),
            true,
        ),
        case("nothing visited", other_page, pages(&[]), false),
        case(
            "never /pricing: visited it",
            never_pricing.clone(),
            pages(&["/blog", "/pricing"]),
            false,
        ),
        case(
            "never /pricing: visited /blog",
            never_pricing.clone(),
            pages(&["/blog"]),
            true,
        ),
        case("never /pricing: no visits", never_pricing, pages(&[]), true),
    ]);
}

#[test]
fn a_visit_without_url_condition_is_a_visit_of_any_page() {
    let any_page = json!({"op": "occurred"});
    let any_page_null = json!({"visit_url": null, "op": "occurred", "min_count": 2});
    let never = json!({"op": "not_occurred", "within": {"last_days": 7}});
    check(vec![
        case(
            "one visit",
            any_page.clone(),
            with_visits(vec![visit("/x", an_hour_ago())]),
            true,
        ),
        case("no visit", any_page.clone(), ContactData::default(), false),
        case(
            "a visit after now",
            any_page,
            with_visits(vec![visit("/x", ts_ms(NOW, 1))]),
            false,
        ),
        case(
            "visit_url null, two visits",
            any_page_null,
            with_visits(vec![visit("/x", an_hour_ago()), visit("/y", an_hour_ago())]),
            true,
        ),
        case(
            "no visit in 7 days, visited 8 days ago",
            never.clone(),
            with_visits(vec![visit("/x", ts("2025-06-07T12:00:00Z"))]),
            true,
        ),
        case(
            "no visit in 7 days, visited yesterday",
            never.clone(),
            with_visits(vec![visit("/x", ts("2025-06-14T12:00:00Z"))]),
            false,
        ),
        case(
            "a visit does not count as a custom event or a system event",
            json!({"any": [
                {"custom_event": "/x", "op": "occurred"},
                {"system_event": "MailClick", "op": "occurred"},
            ]}),
            with_visits(vec![visit("/x", an_hour_ago())]),
            false,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Segment references and groups
// ---------------------------------------------------------------------------------------

fn in_city(city: &str) -> ContactData {
    with_field("city", Some(FieldValue::Text(city.to_owned())))
}

#[test]
fn segment_references_use_the_referenced_segment_rule() {
    let in_1 = json!({"segment": 1, "op": "in"});
    let not_in_1 = json!({"segment": 1, "op": "not_in"});
    let in_2 = json!({"segment": 2, "op": "in"});
    let not_in_2 = json!({"segment": 2, "op": "not_in"});
    let vip = with_field("vip", Some(FieldValue::Boolean(true)));
    check(vec![
        case("in 1, lives in Paris", in_1.clone(), in_city("paris"), true),
        case("in 1, lives in Lyon", in_1.clone(), in_city("Lyon"), false),
        case("in 1, no city", in_1, ContactData::default(), false),
        case(
            "not_in 1, lives in Paris",
            not_in_1.clone(),
            in_city("Paris"),
            false,
        ),
        case(
            "not_in 1, lives in Lyon",
            not_in_1.clone(),
            in_city("Lyon"),
            true,
        ),
        case("not_in 1, no city", not_in_1, ContactData::default(), true),
        case("in 2 (through 1)", in_2.clone(), in_city("Paris"), true),
        case("in 2 (as a VIP)", in_2.clone(), vip.clone(), true),
        case("in 2, neither", in_2, in_city("Lyon"), false),
        case(
            "not_in 2 (through 1)",
            not_in_2.clone(),
            in_city("Paris"),
            false,
        ),
        case("not_in 2, neither", not_in_2, in_city("Lyon"), true),
        case(
            "in 3 (behaviour)",
            json!({"segment": 3, "op": "in"}),
            opens(1),
            true,
        ),
    ]);
}

#[test]
fn an_unknown_segment_is_empty_and_a_reference_cycle_ends_without_overflowing() {
    // Neither can come through `parse_rule`, so the rules are built directly.
    let reference =
        |segment: SegmentId, member: bool| Rule::Segment(SegmentCondition { segment, member });
    let mut segments: HashMap<SegmentId, Rule> = HashMap::new();
    segments.insert(10, reference(11, true));
    segments.insert(11, reference(10, true));
    segments.insert(12, Rule::Not(Box::new(reference(12, true))));
    let clock = utc_clock(NOW);
    let anyone = ContactData::default();
    let rows = [
        ("in an unknown segment", reference(99, true), false),
        ("not_in an unknown segment", reference(99, false), true),
        ("in a two-segment cycle", reference(10, true), false),
        ("not_in a two-segment cycle", reference(10, false), true),
    ];
    for (what, r, member) in rows {
        assert_eq!(is_member(&r, &anyone, &clock, &segments), member, "{what}");
    }
    // A self-negating cycle gives some answer; `in` and `not_in` still disagree.
    let inside = is_member(&reference(12, true), &anyone, &clock, &segments);
    let outside = is_member(&reference(12, false), &anyone, &clock, &segments);
    assert_ne!(inside, outside, "in and not_in of a self-negating cycle");
}

#[test]
fn groups_combine_their_children_and_not_is_the_complement() {
    let paris = json!({"field": "city", "op": "equals", "value": "Paris"});
    let vip = json!({"field": "vip", "op": "is_true"});
    let adult = json!({"field": "age", "op": "greater_or_equal", "value": 18});
    let contact = |city: &str, is_vip: bool, age: f64| {
        let mut c = in_city(city);
        c.fields.insert("vip".into(), FieldValue::Boolean(is_vip));
        c.fields.insert("age".into(), FieldValue::Number(age));
        c
    };
    let all = json!({"all": [paris, vip, adult]});
    let any = json!({"any": [paris, vip, adult]});
    // The panel's `paris or vip and adult` is `any[paris, all[vip, adult]]`.
    let panel = json!({"any": [{"all": [paris]}, {"all": [vip, adult]}]});
    let nested_not = json!({"all": [{"not": paris}, {"not": {"not": vip}}]});
    check(vec![
        case(
            "all, every child",
            all.clone(),
            contact("Paris", true, 30.0),
            true,
        ),
        case(
            "all, one child fails",
            all.clone(),
            contact("Paris", true, 10.0),
            false,
        ),
        case(
            "all, a single child",
            json!({"all": [paris]}),
            in_city("Paris"),
            true,
        ),
        case(
            "any, one child",
            any.clone(),
            contact("Lyon", false, 30.0),
            true,
        ),
        case(
            "any, no child",
            any.clone(),
            contact("Lyon", false, 10.0),
            false,
        ),
        case("any, nothing set", any, ContactData::default(), false),
        case(
            "panel form, first group",
            panel.clone(),
            contact("Paris", false, 10.0),
            true,
        ),
        case(
            "panel form, second group",
            panel.clone(),
            contact("Lyon", true, 30.0),
            true,
        ),
        case(
            "panel form, half of the second",
            panel,
            contact("Lyon", true, 10.0),
            false,
        ),
        case("not", json!({"not": paris}), in_city("Paris"), false),
        case(
            "not, no value",
            json!({"not": paris}),
            ContactData::default(),
            true,
        ),
        case(
            "not of a group",
            json!({"not": all}),
            contact("Paris", true, 10.0),
            true,
        ),
        case(
            "not not",
            nested_not.clone(),
            contact("Lyon", true, 1.0),
            true,
        ),
        case(
            "not not, fails",
            nested_not,
            contact("Paris", true, 1.0),
            false,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Properties over random contacts
// ---------------------------------------------------------------------------------------

const CITIES: [&str; 7] = [
    "Paris",
    "paris",
    "Paris ",
    "ŁÓDŹ",
    "łódź",
    "İstanbul",
    "New York",
];
const NUMBERS: [f64; 6] = [-1.5, -0.0, 0.0, 10.0, 18.0, 42.0];
const DATES: [&str; 6] = [
    "2000-02-29",
    "1990-06-15",
    "1990-06-20",
    "2025-06-14",
    "2025-06-15",
    "2025-12-31",
];
const URLS: [&str; 4] = ["/pricing", "/PRICING?x=1", "/blog", "/"];
const IDS: [&str; 3] = ["a", "b", "c"];

/// Events from 50 days before now to 2 days after it, on whole minutes and odd ms.
fn timestamp_strategy() -> impl Strategy<Value = Timestamp> {
    (-72_000i64..2_880, prop::bool::ANY).prop_map(|(minutes, odd)| {
        let ms = minutes * 60_000 + if odd { 1 } else { 0 };
        ts_ms(NOW, ms)
    })
}

fn id_strategy() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(IDS.to_vec()).prop_map(str::to_owned))
}

fn property_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        prop::sample::select(NUMBERS.to_vec()).prop_map(|x| json!(x)),
        prop::sample::select(CITIES.to_vec()).prop_map(|s| json!(s)),
        prop::bool::ANY.prop_map(Value::Bool),
        Just(json!([1, "a"])),
        Just(json!({"total": 10})),
    ]
}

fn properties_strategy() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (
        prop::option::of(property_strategy()),
        prop::option::of(property_strategy()),
    )
        .prop_map(|(total, order_total)| {
            let mut m = serde_json::Map::new();
            if let Some(t) = total {
                m.insert("total".into(), t);
            }
            if let Some(t) = order_total {
                m.insert("order".into(), json!({"total": t}));
            }
            m
        })
}

fn contact_strategy() -> impl Strategy<Value = ContactData> {
    let fields = (
        prop::option::of(prop::sample::select(CITIES.to_vec())),
        prop::option::of(prop::sample::select(NUMBERS.to_vec())),
        prop::option::of(prop::sample::select(DATES.to_vec())),
        prop::option::of(prop::bool::ANY),
        prop::option::of(prop::sample::select(vec!["a@example.com", "B@EXAMPLE.COM"])),
    );
    let system = prop::collection::vec(
        (
            prop::sample::select(SystemEventKind::ALL.to_vec()),
            timestamp_strategy(),
            prop::option::of(prop::sample::select(vec!["c1", "c2"])),
            id_strategy(),
        )
            .prop_map(|(kind, at, campaign, id)| SystemEvent {
                id,
                kind,
                timestamp: at,
                campaign: campaign.map(str::to_owned),
                url: None,
            }),
        0..4,
    );
    let custom_events = prop::collection::vec(
        (
            prop::sample::select(vec!["Purchase", "Signup"]),
            timestamp_strategy(),
            properties_strategy(),
            id_strategy(),
        )
            .prop_map(|(name, at, properties, id)| CustomEvent {
                id,
                name: name.to_owned(),
                timestamp: at,
                properties,
            }),
        0..4,
    );
    let visits = prop::collection::vec(
        (
            prop::sample::select(URLS.to_vec()),
            timestamp_strategy(),
            id_strategy(),
        )
            .prop_map(|(url, at, id)| Visit {
                id,
                url: url.to_owned(),
                timestamp: at,
            }),
        0..4,
    );
    (fields, system, custom_events, visits).prop_map(
        |((city, age, birthday, vip, email), system_events, custom_events, visits)| {
            let mut c = ContactData {
                email: email.map(str::to_owned),
                system_events,
                custom_events,
                visits,
                ..ContactData::default()
            };
            if let Some(city) = city {
                c.fields
                    .insert("city".into(), FieldValue::Text(city.to_owned()));
            }
            if let Some(age) = age {
                c.fields.insert("age".into(), FieldValue::Number(age));
            }
            if let Some(b) = birthday {
                c.fields.insert("birthday".into(), date(b));
            }
            if let Some(vip) = vip {
                c.fields.insert("vip".into(), FieldValue::Boolean(vip));
            }
            c
        },
    )
}

fn window_strategy() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop_oneof![
        (1u32..60).prop_map(|n| json!({"last_days": n})),
        timestamp_strategy().prop_map(|t| json!({"since": t.to_string()})),
        timestamp_strategy().prop_map(|t| json!({"before": t.to_string()})),
        (timestamp_strategy(), 1i64..100_000).prop_map(|(t, minutes)| {
            json!({"between": [t.to_string(), ts_ms(&t.to_string(), minutes * 60_000).to_string()]})
        }),
    ])
}

/// A behaviour condition's source, without `op`, counts or window.
fn event_source_strategy() -> impl Strategy<Value = Value> {
    let text = prop::sample::select(CITIES.to_vec());
    let number = prop::sample::select(NUMBERS.to_vec());
    let path = prop::sample::select(vec!["total", "order.total"]);
    let property = prop_oneof![
        (
            path.clone(),
            prop::sample::select(vec![
                "equals",
                "not_equals",
                "contains",
                "not_contains",
                "starts_with"
            ]),
            text.clone()
        )
            .prop_map(|(p, op, v)| json!({"property": p, "op": op, "value": v})),
        (
            path.clone(),
            prop::sample::select(vec![
                "equals",
                "not_equals",
                "greater_than",
                "less_or_equal"
            ]),
            number
        )
            .prop_map(|(p, op, v)| json!({"property": p, "op": op, "value": v})),
        (
            path,
            prop::sample::select(vec!["has_value", "has_no_value", "is_true", "is_false"])
        )
            .prop_map(|(p, op)| json!({"property": p, "op": op})),
    ];
    prop_oneof![
        (
            prop::sample::select(SystemEventKind::ALL.to_vec()),
            prop::option::of(prop::sample::select(vec!["c1", "c2"]))
        )
            .prop_map(|(kind, campaign)| {
                let mut v = json!({"system_event": kind.as_str()});
                if let Some(c) = campaign {
                    v["campaign"] = json!(c);
                }
                v
            }),
        (
            prop::sample::select(vec!["Purchase", "Signup"]),
            prop::collection::vec(property, 0..3)
        )
            .prop_map(|(name, filters)| {
                let mut v = json!({"custom_event": name});
                if !filters.is_empty() {
                    v["where"] = Value::Array(filters);
                }
                v
            }),
        prop::option::of((
            prop::sample::select(vec![
                "equals",
                "not_equals",
                "contains",
                "not_contains",
                "in",
                "not_in"
            ]),
            prop::sample::select(URLS.to_vec())
        ))
        .prop_map(|url| match url {
            None => json!({}),
            Some((op, u)) if op.ends_with("in") => json!({"visit_url": {"op": op, "value": [u]}}),
            Some((op, u)) => json!({"visit_url": {"op": op, "value": u}}),
        }),
    ]
}

fn with_key(mut object: Value, key: &str, value: Value) -> Value {
    object[key] = value;
    object
}

/// A pair of conditions that, by the spec, split every set of contacts in two:
/// an op and its negation.
fn complementary_pair_strategy() -> impl Strategy<Value = (Value, Value)> {
    let text_field = prop::sample::select(vec!["city", "email"]);
    let text = prop::sample::select(
        CITIES
            .iter()
            .chain(["a@example.com", "ari"].iter())
            .copied()
            .collect::<Vec<_>>(),
    );
    let text_pairs = (
        text_field.clone(),
        prop::sample::select(vec![("equals", "not_equals"), ("contains", "not_contains")]),
        text.clone(),
    )
        .prop_map(|(f, (yes, no), v)| {
            (
                json!({"field": f, "op": yes, "value": v}),
                json!({"field": f, "op": no, "value": v}),
            )
        });
    let in_pairs = (text_field.clone(), prop::collection::vec(text, 1..3)).prop_map(|(f, v)| {
        (
            json!({"field": f, "op": "in", "value": v}),
            json!({"field": f, "op": "not_in", "value": v}),
        )
    });
    let presence_pairs = prop::sample::select(vec!["city", "email", "age", "birthday", "vip"])
        .prop_map(|f| {
            (
                json!({"field": f, "op": "has_value"}),
                json!({"field": f, "op": "has_no_value"}),
            )
        });
    let number_pairs = prop::sample::select(NUMBERS.to_vec()).prop_map(|x| {
        (
            json!({"field": "age", "op": "equals", "value": x}),
            json!({"field": "age", "op": "not_equals", "value": x}),
        )
    });
    let date_value = prop_oneof![
        prop::sample::select(DATES.to_vec()).prop_map(|d| json!(d)),
        (-400i32..400).prop_map(|n| json!({"relative_days": n})),
    ];
    let date_pairs = date_value.prop_map(|d| {
        (
            json!({"field": "birthday", "op": "equals", "value": d}),
            json!({"field": "birthday", "op": "not_equals", "value": d}),
        )
    });
    let behaviour_pairs =
        (event_source_strategy(), window_strategy()).prop_map(|(source, window)| {
            let source = match window {
                Some(w) => with_key(source, "within", w),
                None => source,
            };
            (
                with_key(source.clone(), "op", json!("occurred")),
                with_key(source, "op", json!("not_occurred")),
            )
        });
    let segment_pairs = prop::sample::select(vec![1i64, 2, 3]).prop_map(|s| {
        (
            json!({"segment": s, "op": "in"}),
            json!({"segment": s, "op": "not_in"}),
        )
    });
    prop_oneof![
        text_pairs,
        in_pairs,
        presence_pairs,
        number_pairs,
        date_pairs,
        behaviour_pairs,
        segment_pairs
    ]
}

/// Any rule: conditions of every kind under `all`, `any` and `not`.
fn rule_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        complementary_pair_strategy().prop_map(|(yes, _)| yes),
        complementary_pair_strategy().prop_map(|(_, no)| no),
        (
            event_source_strategy(),
            window_strategy(),
            1u32..3,
            prop::option::of(1u32..4)
        )
            .prop_map(|(source, window, min, max)| {
                let mut v = with_key(source, "op", json!("occurred"));
                v["min_count"] = json!(min);
                if let Some(extra) = max {
                    v["max_count"] = json!(min + extra - 1);
                }
                if let Some(w) = window {
                    v["within"] = w;
                }
                v
            }),
        prop::sample::select(vec![
            json!({"field": "age", "op": "between", "value": [0, 18]}),
            json!({"field": "age", "op": "greater_than", "value": 0}),
            json!({"field": "birthday", "op": "anniversary_within", "value": 7}),
            json!({"field": "birthday", "op": "before", "value": {"relative_days": 0}}),
            json!({"field": "vip", "op": "is_false"}),
            json!({"field": "city", "op": "starts_with", "value": "p"}),
        ]),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|rs| json!({"all": rs})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|rs| json!({"any": rs})),
            inner.prop_map(|r| json!({"not": r})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn an_op_and_its_negation_split_every_contact_into_exactly_one_of_the_two(
        (yes, no) in complementary_pair_strategy(),
        contact in contact_strategy(),
    ) {
        let clock = utc_clock(NOW);
        let segments = segments();
        let in_yes = is_member(&rule(&yes), &contact, &clock, &segments);
        let in_no = is_member(&rule(&no), &contact, &clock, &segments);
        prop_assert!(in_yes != in_no, "{yes} -> {in_yes}, {no} -> {in_no} for {contact:?}");
    }

    #[test]
    fn not_of_a_rule_matches_exactly_the_contacts_the_rule_does_not(
        r in rule_strategy(),
        contact in contact_strategy(),
    ) {
        let clock = utc_clock(NOW);
        let segments = segments();
        let positive = is_member(&rule(&r), &contact, &clock, &segments);
        let negated = is_member(&rule(&json!({"not": r})), &contact, &clock, &segments);
        prop_assert!(positive != negated, "{r} -> {positive} and its not -> {negated}");
    }
}
