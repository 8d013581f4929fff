//! The reference evaluator. (Being written.)

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::data::ContactData;
use crate::rule::{Rule, SegmentId};

/// The evaluation time and the calendar day it falls on in the account's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Clock {
    pub now: Timestamp,
    pub today: Date,
}

impl Clock {
    pub fn new(now: Timestamp, time_zone: &TimeZone) -> Self {
        Clock {
            now,
            today: now.to_zoned(time_zone.clone()).date(),
        }
    }
}

/// How the evaluator finds the current rule of a referenced segment.
pub trait SegmentRules {
    fn rule(&self, id: SegmentId) -> Option<&Rule>;
}

impl SegmentRules for std::collections::HashMap<SegmentId, Rule> {
    fn rule(&self, id: SegmentId) -> Option<&Rule> {
        self.get(&id)
    }
}

/// Decides whether `contact` matches `rule` at `clock`.
pub fn is_member(rule: &Rule, contact: &ContactData, clock: &Clock, segments: &dyn SegmentRules) -> bool {
    let _ = (rule, contact, clock, segments);
    false
}
