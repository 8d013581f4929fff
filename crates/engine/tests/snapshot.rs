//! An index written to a snapshot and read back answers exactly as the index it was
//! taken of, and stays equal to it through the same later writes and clock moves.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use segmentd_engine::{Address, Channels, ContactValues, Event, Index, MembershipChange};
use segmentd_rules::ContactData;
use segmentd_rules::rule::Rule;

fn zone() -> TimeZone {
    TimeZone::fixed(jiff::tz::offset(-5))
}

/// Channel states that vary with the contact, so that reach has something to count.
fn channels(i: usize) -> Channels {
    let states = [
        Address::None,
        Address::Subscribed,
        Address::Unsubscribed,
        Address::Bounced,
    ];
    Channels {
        email: states[i % 4],
        sms: states[(i / 2) % 3],
        push: i.is_multiple_of(3),
    }
}

fn load_with_channels(index: &mut Index, contacts: &[ContactData]) {
    for (i, c) in contacts.iter().enumerate() {
        let values = ContactValues {
            channels: channels(i),
            ..ContactValues::from(c)
        };
        index.upsert_contact(store_id(i), &format!("Ext-{i:03}"), &values);
        let evs = events_of(c);
        index.add_events(evs.iter().map(|e| (store_id(i), e)));
    }
}

fn sorted(mut changes: Vec<MembershipChange>) -> Vec<MembershipChange> {
    changes.sort_by_key(|c| (c.segment, c.contact, c.entered));
    changes
}

fn round_trip(index: &Index, saved: &[Rule]) -> Index {
    let mut bytes = Vec::new();
    index.write_snapshot(&mut bytes).unwrap();
    let restored = Index::read_snapshot(&mut bytes.as_slice(), &zone()).unwrap();
    let mut members = restored.segments;
    let mut copy = restored.index;
    for (i, rule) in saved.iter().enumerate() {
        let id = i as i64 + 1;
        copy.restore_segment(id, rule.clone(), members.remove(&id).unwrap())
            .unwrap();
    }
    copy.finish_restore();
    copy
}

/// Everything a reader can ask, the same on both.
fn same_answers(a: &Index, b: &Index, rule: &Rule) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.clock(), b.clock());
    prop_assert_eq!(a.contact_count(), b.contact_count());
    prop_assert_eq!(a.event_count(), b.event_count());
    for id in 1..=3 {
        // Member by member: roaring's `==` also compares how each block is stored.
        let members = |i: &Index| i.membership(id).map(|m| m.iter().collect::<Vec<u32>>());
        prop_assert_eq!(members(a), members(b), "segment {}", id);
        prop_assert_eq!(a.members(id, None, 100), b.members(id, None, 100));
    }
    for clock in [
        a.clock().clone(),
        clock_at(now() + SignedDuration::from_hours(30)),
    ] {
        let set = a.evaluate_bits(rule, &clock);
        prop_assert_eq!(
            &set,
            &b.evaluate_bits(rule, &clock),
            "rule {}",
            rule.to_json()
        );
        prop_assert_eq!(a.reach(&set), b.reach(&set));
    }
    for q in ["", "e", "ext-00", "EXT-001", "a", "+", "x"] {
        prop_assert_eq!(
            a.search(q, None, 50),
            b.search(q, None, 50),
            "search {:?}",
            q
        );
    }
    prop_assert_eq!(a.builder_catalog(100), b.builder_catalog(100));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_snapshot_read_back_answers_and_moves_on_as_the_index_it_was_taken_of(
        mut contacts in prop::collection::vec(contact(), 1..12),
        saved in saved_segments(),
        rule in rule(vec![1, 2, 3]),
        deleted in prop::collection::vec(0usize..12, 0..3),
        later in prop::collection::vec((0usize..12, system_event()), 0..6),
        steps in prop::collection::vec(
            prop::sample::select(vec![1i64, 999, 3_600_000, 86_400_000, 8 * 86_400_000]), 1..4),
    ) {
        namespace_ids(&mut contacts, false);
        let mut index = Index::new(clock_at(now()));
        for (i, r) in saved.iter().enumerate() {
            index.set_segment(i as i64 + 1, r.clone()).unwrap();
        }
        load_with_channels(&mut index, &contacts);
        for d in &deleted {
            index.delete_contact(store_id(*d));
        }
        let mut copy = round_trip(&index, &saved);
        same_answers(&index, &copy, &rule)?;

        // The same writes and clock moves after the snapshot, on both.
        for (n, (c, e)) in later.iter().enumerate() {
            let mut e = e.clone();
            e.id = Some(format!("later-{n}"));
            let e = Event::System(e);
            prop_assert_eq!(
                sorted(index.add_events([(store_id(*c), &e)])),
                sorted(copy.add_events([(store_id(*c), &e)]))
            );
        }
        let mut at = now();
        for ms in steps {
            at += SignedDuration::from_millis(ms);
            prop_assert_eq!(
                sorted(index.refresh(&clock_at(at))),
                sorted(copy.refresh(&clock_at(at)))
            );
        }
        same_answers(&index, &copy, &rule)?;
    }
}

/// A snapshot cut short, or of another version, is refused, never half read.
#[test]
fn a_cut_or_foreign_snapshot_is_refused() {
    let mut index = Index::new(clock_at(now()));
    for i in 0..50 {
        index.upsert_contact(store_id(i), &format!("c{i}"), &ContactValues::default());
    }
    let mut bytes = Vec::new();
    index.write_snapshot(&mut bytes).unwrap();
    for cut in [0, 3, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Index::read_snapshot(&mut &bytes[..cut], &zone()).is_err(),
            "cut at {cut}"
        );
    }
    let mut other = bytes.clone();
    other[0] ^= 0x40;
    assert!(matches!(
        Index::read_snapshot(&mut other.as_slice(), &zone()),
        Err(segmentd_engine::SnapshotError::Version(_))
    ));
    assert!(Index::read_snapshot(&mut bytes.as_slice(), &zone()).is_ok());
}
