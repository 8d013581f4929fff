//! "Why is this contact in or out": the rule tree with each node's truth value for one
//! contact, decided by the reference evaluator ([`is_member`] on every node), and for
//! behaviour conditions the number of events that matched.
//!
//! The JSON shape is that of the engine's explanation (`kind`, `matched`, `rule`,
//! `matching_events`, `children`), so a client reads either the same way.

use serde::Serialize;

use crate::data::ContactData;
use crate::eval::{Clock, SegmentRules, is_member, matching_event_count};
use crate::rule::Rule;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainNode {
    /// `all`, `any`, `not`, `field`, `behaviour` or `segment`.
    pub kind: &'static str,
    pub matched: bool,
    /// The leaf's canonical JSON; absent on groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<serde_json::Value>,
    /// Behaviour conditions: how many of the contact's events passed every filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_events: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ExplainNode>,
}

/// Explains `rule` for one contact. The root's `matched` is `is_member(rule, …)`.
pub fn explain(
    rule: &Rule,
    contact: &ContactData,
    clock: &Clock,
    segments: &dyn SegmentRules,
) -> ExplainNode {
    let matched = is_member(rule, contact, clock, segments);
    let leaf = |kind| ExplainNode {
        kind,
        matched,
        rule: Some(rule.to_json()),
        matching_events: None,
        children: Vec::new(),
    };
    let group = |kind, children: &[Rule]| ExplainNode {
        kind,
        matched,
        rule: None,
        matching_events: None,
        children: children
            .iter()
            .map(|c| explain(c, contact, clock, segments))
            .collect(),
    };
    match rule {
        Rule::All(children) => group("all", children),
        Rule::Any(children) => group("any", children),
        Rule::Not(child) => group("not", std::slice::from_ref(child.as_ref())),
        Rule::Field(_) => leaf("field"),
        Rule::Segment(_) => leaf("segment"),
        Rule::Behaviour(b) => ExplainNode {
            matching_events: Some(matching_event_count(b, contact, clock)),
            ..leaf("behaviour")
        },
    }
}
