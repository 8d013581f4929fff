//! The segment rule language of `spec/rules.md`.
//!
//! - [`data`]: what rules read (field values, contacts, events, visits).
//! - [`rule`]: the typed rule tree and its canonical JSON form.
//! - [`parse`]: JSON → typed rule, checked against an account's [`Catalog`], reporting
//!   every problem with its path.
//! - [`eval`]: the reference evaluator, one contact at a time, written to be obviously
//!   right; it is the oracle for the fast engine.
//!
//! No I/O, no clock reads: the evaluation time is always passed in.

pub mod data;
pub mod eval;
pub mod explain;
pub mod parse;
pub mod rule;

use std::collections::HashMap;
use std::fmt;

pub use data::{
    ContactData, CustomEvent, FieldType, FieldValue, SystemEvent, SystemEventKind, Visit,
};
pub use eval::{Clock, SegmentRules, is_member};
pub use parse::parse_rule;
pub use rule::{Rule, SegmentId};

/// What a rule is checked against: the account's custom fields and its segments.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Custom field key → type. `email` and `phone` are built in and not listed here.
    pub fields: HashMap<String, FieldType>,
    /// Every segment of the account → the ids its rule refers to directly.
    pub segments: HashMap<SegmentId, Vec<SegmentId>>,
}

/// One problem found in input, with the JSON path where it is, e.g.
/// `rule.any[1].all[0].value`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl Issue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Limits of `spec/rules.md`.
pub mod limits {
    pub const MAX_DEPTH: usize = 8;
    pub const MAX_CONDITIONS: usize = 200;
    pub const MAX_TEXT_CHARS: usize = 1_000;
    pub const MAX_IN_ITEMS: usize = 1_000;
    pub const MAX_LAST_DAYS: u32 = 3_650;
    pub const MAX_ANNIVERSARY_DAYS: u16 = 366;
    /// Not in the spec: relative dates reach at most 100 years either way.
    pub const MAX_RELATIVE_DAYS: i32 = 36_500;
    pub const MAX_EVENT_NAME_CHARS: usize = 200;
}
