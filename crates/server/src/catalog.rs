//! Building an account's rule [`Catalog`] and parsing its saved rules, and the parsed
//! catalogs kept per account for the reads that parse a rule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// Each account's catalog as last read, for the reads that parse a draft rule (previews,
/// live counts, saves): without it every keystroke of the builder would read the fields
/// and every saved rule. Every field and segment write of this process invalidates its
/// account's entry after its store commit and before it answers, so a read that follows
/// a write sees it. (A second process on the same store is as blind to it as its index.)
#[derive(Default)]
pub struct CatalogCache {
    entries: Mutex<HashMap<AccountId, CacheEntry>>,
}

#[derive(Default)]
struct CacheEntry {
    /// Bumped by each invalidation, so that a read that loaded before it cannot put back
    /// what it loaded.
    generation: u64,
    catalog: Option<Arc<Catalog>>,
}

impl CatalogCache {
    /// The account's catalog, read from the store only when no valid copy is kept.
    pub async fn get(
        &self,
        store: &dyn Store,
        account: AccountId,
    ) -> Result<Arc<Catalog>, StoreError> {
        let generation = {
            let entries = self.lock();
            match entries.get(&account) {
                Some(CacheEntry {
                    catalog: Some(c), ..
                }) => return Ok(c.clone()),
                Some(e) => e.generation,
                None => 0,
            }
        };
        let (catalog, _) = load_catalog(store, account).await?;
        let catalog = Arc::new(catalog);
        let mut entries = self.lock();
        let entry = entries.entry(account).or_default();
        if entry.generation == generation {
            entry.catalog = Some(catalog.clone());
        }
        Ok(catalog)
    }

    /// Forgets the account's catalog: its fields or segments changed.
    pub fn invalidate(&self, account: AccountId) {
        let mut entries = self.lock();
        let entry = entries.entry(account).or_default();
        entry.generation += 1;
        entry.catalog = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, CacheEntry>> {
        // The map holds no invariant a panic could break halfway.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
