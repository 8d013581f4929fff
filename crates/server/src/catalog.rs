//! Building an account's rule [`Catalog`] and parsing its saved rules.

use std::collections::HashMap;

use segmentd_rules::{Catalog, Rule, SegmentId, parse_rule};
use segmentd_store::{AccountId, Segment, Store, StoreError};
use serde_json::Value;

/// The ids a stored rule refers to, read from its JSON without a full parse, so that the
/// catalog can be built before any rule is parsed against it.
pub fn json_segment_refs(rule: &Value) -> Vec<SegmentId> {
    let mut out = Vec::new();
    let mut stack = vec![rule];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(id) = m.get("segment").and_then(Value::as_i64) {
                    out.push(id);
                }
                stack.extend(m.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

pub fn catalog_of(fields: &[segmentd_store::FieldDef], segments: &[Segment]) -> Catalog {
    Catalog {
        fields: fields
            .iter()
            .map(|f| (f.key.clone(), f.field_type))
            .collect(),
        segments: segments
            .iter()
            .map(|s| (s.id, json_segment_refs(&s.rule)))
            .collect(),
    }
}

/// An account's catalog, with its segments as stored.
pub async fn load_catalog(
    store: &dyn Store,
    account: AccountId,
) -> Result<(Catalog, Vec<Segment>), StoreError> {
    let fields = store.fields(account).await?;
    let segments = store.segments(account, None).await?;
    Ok((catalog_of(&fields, &segments), segments))
}

/// Parses every saved rule. A saved rule was valid when saved, and the API refuses
/// changes that would break it (deleting a used field or a referenced segment), so a
/// failure here means the stored data was changed behind the API's back.
pub fn parse_saved_rules(
    catalog: &Catalog,
    segments: &[Segment],
) -> Result<HashMap<SegmentId, Rule>, StoreError> {
    segments
        .iter()
        .map(|s| {
            parse_rule(&s.rule, "rule", catalog, Some(s.id))
                .map(|r| (s.id, r))
                .map_err(|issues| {
                    let first = issues.first().map(ToString::to_string).unwrap_or_default();
                    StoreError::Corrupt(format!("segment {} has an invalid rule: {first}", s.id))
                })
        })
        .collect()
}
