//! JSON → typed [`Rule`], checked against a [`Catalog`]. (Being written.)

use serde_json::Value;

use crate::rule::{Rule, SegmentId};
use crate::{Catalog, Issue};

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
    let _ = (json, catalog, this_segment);
    Err(vec![Issue::new(path, "not implemented yet")])
}
