//! "Why is this contact in or out": the rule tree annotated with each node's truth value.

use segmentd_rules::Clock;
use segmentd_rules::rule::Rule;
use serde::Serialize;

use crate::Index;
use crate::eval::RefMode;

/// The explanation of one contact against one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The contact's store id.
    pub contact: i64,
    pub matched: bool,
    pub tree: ExplainNode,
}

/// One node of the rule tree: the same type the reference evaluator's `explain` builds,
/// so both answer in one JSON shape.
pub use segmentd_rules::explain::ExplainNode;

impl Index {
    /// Explains whether the live contact `contact` (store id) matches `rule` at `clock`;
    /// `None` for an unknown contact. Segment references read maintained membership when
    /// `clock` is the index's clock, the referenced rules afresh otherwise.
    pub fn explain(&self, rule: &Rule, contact: i64, clock: &Clock) -> Option<Explanation> {
        let slot = self.slot_of(contact)?;
        let refs = if *clock == *self.clock() {
            RefMode::Maintained
        } else {
            RefMode::Fresh
        };
        let tree = self.explain_node(rule, slot, clock, refs);
        Some(Explanation {
            contact,
            matched: tree.matched,
            tree,
        })
    }

    fn explain_node(&self, rule: &Rule, slot: u32, clock: &Clock, refs: RefMode) -> ExplainNode {
        let group = |kind, children: Vec<ExplainNode>, matched| ExplainNode {
            kind,
            matched,
            rule: None,
            matching_events: None,
            children,
        };
        let leaf = |kind, matched, events| ExplainNode {
            kind,
            matched,
            rule: Some(rule.to_json()),
            matching_events: events,
            children: Vec::new(),
        };
        match rule {
            Rule::All(rs) => {
                let children: Vec<ExplainNode> = rs
                    .iter()
                    .map(|r| self.explain_node(r, slot, clock, refs))
                    .collect();
                let matched = children.iter().all(|c| c.matched);
                group("all", children, matched)
            }
            Rule::Any(rs) => {
                let children: Vec<ExplainNode> = rs
                    .iter()
                    .map(|r| self.explain_node(r, slot, clock, refs))
                    .collect();
                let matched = children.iter().any(|c| c.matched);
                group("any", children, matched)
            }
            Rule::Not(r) => {
                let child = self.explain_node(r, slot, clock, refs);
                let matched = !child.matched;
                group("not", vec![child], matched)
            }
            Rule::Field(c) => leaf("field", self.decide_field(c, slot, clock), None),
            Rule::Behaviour(b) => {
                let p = self.prepare_behaviour(b, clock, false);
                let n = p.count(self, slot);
                leaf("behaviour", p.decide_count(n), Some(n))
            }
            Rule::Segment(s) => leaf(
                "segment",
                self.in_segment(s.segment, slot, clock, refs, 0) == s.member,
                None,
            ),
        }
    }
}
