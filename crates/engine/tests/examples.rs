//! Hand-written cases: the edges the property tests reach only by luck.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use segmentd_engine::{ContactValues, EngineError, Event, Index, MembershipChange};
use segmentd_rules::rule::{
    BehaviourCondition, EventSource, FieldCondition, FieldRef, FieldTest, Occurrence, Rule,
    SegmentCondition, Text, TextOp, Window,
};
use segmentd_rules::{FieldValue, Visit};

fn visited(within: Option<Window>) -> Rule {
    Rule::Behaviour(BehaviourCondition {
        source: EventSource::Visit { url: None },
        occurrence: Occurrence::Occurred {
            min_count: 1,
            max_count: None,
        },
        within,
    })
}

fn visit_at(ts: Timestamp) -> Event {
    Event::Visit(Visit {
        id: None,
        url: "https://x.com/".into(),
        timestamp: ts,
    })
}

fn city_is(city: &str) -> Rule {
    Rule::Field(FieldCondition {
        field: FieldRef::Custom("city".into()),
        test: FieldTest::Text(TextOp::Equals(Text::new(city))),
    })
}

fn with_city(city: &str) -> ContactValues {
    let mut v = ContactValues::default();
    v.fields
        .insert("city".into(), FieldValue::Text(city.into()));
    v
}

fn entered(segment: i64, contact: i64) -> MembershipChange {
    MembershipChange {
        segment,
        contact,
        entered: true,
    }
}

fn left(segment: i64, contact: i64) -> MembershipChange {
    MembershipChange {
        segment,
        contact,
        entered: false,
    }
}

#[test]
fn an_event_that_makes_a_contact_match_returns_its_entry() {
    let mut index = Index::new(clock_at(now()));
    index
        .set_segment(1, visited(Some(Window::LastDays(1))))
        .unwrap();
    assert_eq!(
        index.upsert_contact(7, "x", &ContactValues::default()),
        vec![]
    );
    let e = visit_at(now() - SignedDuration::from_hours(1));
    assert_eq!(index.add_events([(7, &e)]), vec![entered(1, 7)]);
    assert_eq!(index.count(1), 1);
    assert!(index.is_member(1, 7));
}

#[test]
fn a_rolling_window_lets_the_contact_go_when_refresh_moves_the_clock_past_its_event() {
    let mut index = Index::new(clock_at(now()));
    index
        .set_segment(1, visited(Some(Window::LastDays(1))))
        .unwrap();
    index.upsert_contact(7, "x", &ContactValues::default());
    let e = visit_at(now() - SignedDuration::from_hours(23));
    index.add_events([(7, &e)]);
    assert_eq!(
        index.refresh(&clock_at(now() + SignedDuration::from_mins(30))),
        vec![]
    );
    assert_eq!(
        index.refresh(&clock_at(now() + SignedDuration::from_hours(2))),
        vec![left(1, 7)]
    );
}

#[test]
fn a_future_event_counts_once_refresh_reaches_its_time() {
    let mut index = Index::new(clock_at(now()));
    index.set_segment(1, visited(None)).unwrap();
    index.upsert_contact(7, "x", &ContactValues::default());
    let e = visit_at(now() + SignedDuration::from_mins(5));
    assert_eq!(index.add_events([(7, &e)]), vec![]);
    assert_eq!(
        index.refresh(&clock_at(now() + SignedDuration::from_mins(5))),
        vec![entered(1, 7)]
    );
}

#[test]
fn segment_references_follow_the_referenced_segment_in_dependency_order() {
    let mut index = Index::new(clock_at(now()));
    index.set_segment(1, city_is("Paris")).unwrap();
    index
        .set_segment(
            2,
            Rule::Segment(SegmentCondition {
                segment: 1,
                member: false,
            }),
        )
        .unwrap();
    assert_eq!(
        index.upsert_contact(7, "x", &with_city("PARIS")),
        vec![entered(1, 7)]
    );
    assert_eq!(
        index.upsert_contact(7, "x", &with_city("Lyon")),
        vec![left(1, 7), entered(2, 7)]
    );
    assert_eq!(index.remove_segment(1), vec![]);
    assert_eq!(index.count(2), 1);
}

#[test]
fn a_rule_that_would_refer_to_itself_is_refused() {
    let mut index = Index::new(clock_at(now()));
    let refers = |s| {
        Rule::Segment(SegmentCondition {
            segment: s,
            member: true,
        })
    };
    index.set_segment(1, city_is("Paris")).unwrap();
    index.set_segment(2, refers(1)).unwrap();
    assert_eq!(index.set_segment(1, refers(2)), Err(EngineError::Cycle(1)));
    assert_eq!(index.set_segment(3, refers(3)), Err(EngineError::Cycle(3)));
}

#[test]
fn dropping_a_field_lets_its_holders_leave_the_segments_that_read_it() {
    let mut index = Index::new(clock_at(now()));
    index.set_segment(1, city_is("Paris")).unwrap();
    index.upsert_contact(7, "x", &with_city("Paris"));
    assert_eq!(index.drop_field("city"), vec![left(1, 7)]);
}

#[test]
fn deleting_a_contact_takes_it_out_of_every_segment() {
    let mut index = Index::new(clock_at(now()));
    index.set_segment(1, city_is("Paris")).unwrap();
    index
        .set_segment(2, Rule::Not(Box::new(city_is("Paris"))))
        .unwrap();
    index.upsert_contact(7, "x", &with_city("Paris"));
    index.upsert_contact(8, "y", &with_city("Rome"));
    assert_eq!(index.delete_contact(7), vec![left(1, 7)]);
    assert_eq!(index.count(1), 0);
    assert_eq!(index.count(2), 1);
}

#[test]
fn members_are_listed_by_external_id_page_after_page() {
    let mut index = Index::new(clock_at(now()));
    index
        .set_segment(1, Rule::Not(Box::new(city_is("nowhere"))))
        .unwrap();
    for (i, ext) in ["d", "a", "c", "b", "e"].iter().enumerate() {
        index.upsert_contact(i as i64, ext, &ContactValues::default());
    }
    assert_eq!(index.members(1, None, 2), vec![1, 3]);
    assert_eq!(index.members(1, Some("b"), 2), vec![2, 0]);
    assert_eq!(index.members(1, Some("d"), 10), vec![4]);
    index.compact();
    assert_eq!(index.members(1, Some("a"), 3), vec![3, 2, 0]);
    // A renamed contact moves.
    index.upsert_contact(1, "z", &ContactValues::default());
    assert_eq!(index.members(1, None, 10), vec![3, 2, 0, 4, 1]);
}

#[test]
fn explain_annotates_each_node_with_its_truth_and_event_count() {
    let mut index = Index::new(clock_at(now()));
    index.upsert_contact(7, "x", &with_city("Paris"));
    let e = visit_at(now() - SignedDuration::from_hours(1));
    index.add_events([(7, &e), (7, &e)]);
    let rule = Rule::All(vec![city_is("paris"), Rule::Not(Box::new(visited(None)))]);
    let x = index.explain(&rule, 7, &clock_at(now())).unwrap();
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "contact": 7,
            "matched": false,
            "tree": {"kind": "all", "matched": false, "children": [
                {"kind": "field", "matched": true,
                 "rule": {"field": "city", "op": "equals", "value": "paris"}},
                {"kind": "not", "matched": false, "children": [
                    {"kind": "behaviour", "matched": true, "matching_events": 2,
                     "rule": {"op": "occurred"}}
                ]}
            ]}
        })
    );
    assert!(index.explain(&rule, 99, &clock_at(now())).is_none());
}

#[test]
fn a_relative_date_moves_membership_when_refresh_reaches_the_next_day() {
    use segmentd_rules::rule::{DateOp, DateValue};
    let mut index = Index::new(clock_at(now()));
    let tomorrow_is_birthday = Rule::Field(FieldCondition {
        field: FieldRef::Custom("renewal".into()),
        test: FieldTest::Date(DateOp::Equals(DateValue::Relative(1))),
    });
    index.set_segment(1, tomorrow_is_birthday).unwrap();
    let mut v = ContactValues::default();
    let today = index.clock().today;
    v.fields.insert(
        "renewal".into(),
        FieldValue::Date(today.checked_add(jiff::Span::new().days(2)).unwrap()),
    );
    assert_eq!(index.upsert_contact(7, "x", &v), vec![]);
    assert_eq!(
        index.refresh(&clock_at(now() + SignedDuration::from_hours(24))),
        vec![entered(1, 7)]
    );
    assert_eq!(
        index.refresh(&clock_at(now() + SignedDuration::from_hours(48))),
        vec![left(1, 7)]
    );
}
