//! The engine decides exactly as the reference evaluator, on random data and rules.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use jiff::SignedDuration;
use proptest::prelude::*;
use segmentd_engine::Index;
use segmentd_rules::rule::{Rule, SegmentId};
use segmentd_rules::{ContactData, is_member};

fn setup(
    mut contacts: Vec<ContactData>,
    saved: Vec<Rule>,
) -> (Index, BTreeMap<i64, ContactData>, HashMap<SegmentId, Rule>) {
    namespace_ids(&mut contacts, true);
    let mut index = Index::new(clock_at(now()));
    let mut segments = HashMap::new();
    // Half the segments before the data (maintained while loading), half after.
    for (i, r) in saved.iter().enumerate().take(2) {
        index.set_segment(i as i64 + 1, r.clone()).unwrap();
        segments.insert(i as i64 + 1, r.clone());
    }
    load(&mut index, &contacts);
    for (i, r) in saved.iter().enumerate().skip(2) {
        index.set_segment(i as i64 + 1, r.clone()).unwrap();
        segments.insert(i as i64 + 1, r.clone());
    }
    let by_id = contacts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (store_id(i), c))
        .collect();
    (index, by_id, segments)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn evaluate_equals_the_reference_evaluator_on_random_data_and_rules(
        contacts in prop::collection::vec(contact(), 0..14),
        saved in saved_segments(),
        rule in rule(vec![1, 2, 3, 99]),
        later_hours in prop::sample::select(vec![0i64, 1, 23, 24, 30, 24 * 8]),
    ) {
        let (index, contacts, segments) = setup(contacts, saved);
        let clock = clock_at(now());
        let want = expected(&rule, &contacts, &clock, &segments);
        prop_assert_eq!(&actual(&index, &index.evaluate(&rule, &clock)), &want, "rule {}", rule.to_json());
        prop_assert_eq!(&actual(&index, &index.evaluate_fresh(&rule, &clock)), &want);

        // Another clock: references are evaluated afresh.
        let other = clock_at(now() + SignedDuration::from_hours(later_hours) + SignedDuration::from_millis(1));
        let want = expected(&rule, &contacts, &other, &segments);
        prop_assert_eq!(actual(&index, &index.evaluate(&rule, &other)), want);

        // Maintained membership of the saved segments.
        for (id, r) in &segments {
            let want = expected(r, &contacts, &clock, &segments);
            prop_assert_eq!(actual(&index, index.membership(*id).unwrap()), want.clone());
            prop_assert_eq!(index.count(*id), want.len() as u64);
        }

        // Explanations agree too.
        for (id, c) in contacts.iter().take(3) {
            let e = index.explain(&rule, *id, &clock).unwrap();
            prop_assert_eq!(e.matched, is_member(&rule, c, &clock, &segments));
        }
    }
}
