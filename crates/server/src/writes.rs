//! The write path: one function per kind of write, called by the API, the panel, the
//! tracking endpoints, campaigns and the demo. Each one does, in this order:
//!
//! 1. the store commit (the write is durable, or nothing happened);
//! 2. the index update ([`crate::index::Indexes::apply`]), in slices;
//! 3. the membership change log.
//!
//! Handlers parse and check their input, call one of these, and answer. Everything here
//! holds the account's write gate from before the commit until the changes are logged,
//! so that an index snapshot never sees a write half done, and so that, in a cluster,
//! the log range an owner sends its followers with each write is that write's alone.

use std::collections::HashMap;
use std::sync::Arc;

use segmentd_engine::MembershipChange;
use segmentd_rules::{Issue, SegmentId, parse_rule};
use segmentd_store::{
    Account, ContactId, ContactUpsert, FieldDef, InsertOutcome, NewEvent, Segment, SegmentDraft,
    StoreError,
};

use crate::catalog::load_catalog;
use crate::error::ApiError;
use crate::index::{AccountIndex, IndexError, Slice, WRITE_SLICE, engine_event};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// What the write names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule or another row forbids the write; `path` names the input at
    /// fault, when one is.
    #[error("{message}")]
    Conflict {
        message: String,
        path: Option<String>,
    },
    /// Items of an event batch name contacts that do not exist: (batch index, external id).
    #[error("{} event(s) name unknown contacts", .0.len())]
    UnknownContacts(Vec<(usize, String)>),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotFound(message) => ApiError::NotFound(message),
            WriteError::Conflict { message, path } => ApiError::Conflict { message, path },
            WriteError::UnknownContacts(items) => ApiError::Validation(
                items
                    .into_iter()
                    .map(|(i, contact)| {
                        Issue::new(
                            format!("events[{i}].contact"),
                            format!("unknown contact \"{contact}\""),
                        )
                    })
                    .collect(),
            ),
            WriteError::Store(e) => e.into(),
            WriteError::Index(e) => e.into(),
        }
    }
}

/// Applies `slices` to the account's index and logs the membership changes.
async fn apply_and_log(
    state: &AppState,
    account: &Account,
    idx: &Arc<AccountIndex>,
    slices: Vec<Slice>,
    known: &HashMap<ContactId, String>,
) -> Result<Vec<MembershipChange>, WriteError> {
    // A cluster owner sends followers what it applies (before applying takes it).
    let carried = state
        .cluster
        .as_ref()
        .and_then(|_| crate::cluster::wire::carry(&slices));
    let changes = state.index.apply(idx, slices).await?;
    // Followers need the write, not its membership changes (which the owner alone logs,
    // or its successor when it takes over): it goes to them first.
    if let Some(cluster) = &state.cluster {
        cluster.written(account.id, carried).await;
    }
    Ok(state.index.log(account, changes, known).await?)
}

/// Creates or updates contacts by external id (the batch is one transaction).
pub async fn upsert_contacts(
    state: &AppState,
    account: &Account,
    batch: &[ContactUpsert],
) -> Result<u64, WriteError> {
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let upserted = state.store.upsert_contacts(account.id, batch).await?;
    // Upserts patch: the index takes each contact's whole values as stored now.
    let ids: Vec<String> = batch.iter().map(|u| u.external_id.clone()).collect();
    let contacts = state
        .store
        .contacts_by_external_ids(account.id, &ids)
        .await?;
    let known = contacts
        .iter()
        .map(|c| (c.id, c.external_id.clone()))
        .collect();
    let mut slices = Vec::with_capacity(contacts.len() / WRITE_SLICE + 1);
    let mut rest = contacts;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(WRITE_SLICE));
        slices.push(Slice::Contacts(std::mem::replace(&mut rest, tail)));
    }
    apply_and_log(state, account, &idx, slices, &known).await?;
    Ok(upserted)
}

/// Deletes a contact with its events. `false` if there was none.
pub async fn delete_contact(
    state: &AppState,
    account: &Account,
    external_id: &str,
) -> Result<bool, WriteError> {
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let Some(contact) = state.store.contact(account.id, external_id).await? else {
        return Ok(false);
    };
    if !state.store.delete_contact(account.id, external_id).await? {
        return Ok(false);
    }
    let known = HashMap::from([(contact.id, contact.external_id)]);
    apply_and_log(
        state,
        account,
        &idx,
        vec![Slice::ContactDeleted(contact.id)],
        &known,
    )
    .await?;
    Ok(true)
}

/// Records a batch of events (one transaction); events naming unknown contacts refuse
/// the whole batch.
pub async fn add_events(
    state: &AppState,
    account: &Account,
    batch: Vec<NewEvent>,
) -> Result<InsertOutcome, WriteError> {
    forget_history_if_backdated(state, account, &batch);
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let outcome = match state.store.insert_events(account.id, &batch).await {
        Ok(outcome) => outcome,
        Err(StoreError::UnknownContacts(indexes)) => {
            return Err(WriteError::UnknownContacts(
                indexes
                    .into_iter()
                    .map(|i| {
                        let contact = batch.get(i).map(|e| e.contact.clone()).unwrap_or_default();
                        (i, contact)
                    })
                    .collect(),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    // The index drops repeated client ids exactly as the store did (the first one
    // stays), so it is given the whole batch, with the contact ids the store resolved.
    let mut known = HashMap::new();
    let mut slices = Vec::with_capacity(batch.len() / WRITE_SLICE + 1);
    let mut slice = Vec::with_capacity(batch.len().min(WRITE_SLICE));
    for (e, &id) in batch.into_iter().zip(&outcome.contacts) {
        known.entry(id).or_insert(e.contact);
        slice.push((id, engine_event(e.client_id, e.timestamp, e.body)));
        if slice.len() == WRITE_SLICE {
            slices.push(Slice::Events(std::mem::take(&mut slice)));
        }
    }
    if !slice.is_empty() {
        slices.push(Slice::Events(slice));
    }
    apply_and_log(state, account, &idx, slices, &known).await?;
    Ok(outcome)
}

/// Events timestamped before today change what segments' computed past days were: the
/// account's cached ones are dropped (`crate::history`).
fn forget_history_if_backdated(state: &AppState, account: &Account, batch: &[NewEvent]) {
    let today_start = jiff::tz::TimeZone::get(&account.time_zone)
        .ok()
        .and_then(|zone| {
            let today = zone.to_datetime(state.clock.now()).date();
            zone.to_timestamp(today.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        });
    if today_start.is_none_or(|start| batch.iter().any(|e| e.timestamp < start)) {
        state.computed_history.forget_account(account.id);
    }
}

/// Declares a custom field (no contact has a value of it yet: the index has nothing to do).
pub async fn create_field(
    state: &AppState,
    account: &Account,
    field: &FieldDef,
) -> Result<(), WriteError> {
    let idx = state.index.for_write(account).await?;
    // Every write that logs holds the gate (`Cluster::written`).
    let _write = idx.enter_write().await;
    let created = state.store.create_field(account.id, field).await;
    state.catalogs.invalidate(account.id);
    if let Some(cluster) = &state.cluster {
        cluster.written(account.id, None).await;
    }
    created.map_err(|e| match e {
        StoreError::Conflict(_) => WriteError::Conflict {
            message: format!("a field with key \"{}\" already exists", field.key),
            path: Some("key".into()),
        },
        other => other.into(),
    })
}

/// Deletes a custom field and every value of it, unless a saved rule reads it.
pub async fn delete_field(
    state: &AppState,
    account: &Account,
    key: &str,
) -> Result<(), WriteError> {
    let not_found = || WriteError::NotFound(format!("no field with key \"{key}\""));
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let (catalog, segments) = load_catalog(state.store.as_ref(), account.id).await?;
    if !catalog.fields.contains_key(key) {
        return Err(not_found());
    }
    let rules = crate::catalog::parse_saved_rules(&catalog, &segments)?;
    let users: Vec<&str> = segments
        .iter()
        .filter(|s| {
            rules
                .get(&s.id)
                .is_some_and(|r| r.custom_fields().contains(key))
        })
        .map(|s| s.name.as_str())
        .collect();
    if !users.is_empty() {
        return Err(WriteError::Conflict {
            message: format!(
                "field \"{key}\" is used by the rules of segment(s): {}",
                users.join(", ")
            ),
            path: None,
        });
    }
    let deleted = state.store.delete_field(account.id, key).await;
    state.catalogs.invalidate(account.id);
    if !deleted? {
        return Err(not_found());
    }
    apply_and_log(
        state,
        account,
        &idx,
        vec![Slice::FieldDeleted(key.to_owned())],
        &HashMap::new(),
    )
    .await?;
    Ok(())
}

fn name_conflict(e: StoreError, name: &str) -> WriteError {
    match e {
        StoreError::Conflict(_) => WriteError::Conflict {
            message: format!(
                "a segment named \"{name}\" already exists (names are compared without case)"
            ),
            path: Some("name".into()),
        },
        other => other.into(),
    }
}

/// Brings the index's copy of a segment to what the store holds now: its rule re-read
/// and parsed, or its removal. Serialized per account, so that of two racing updates the
/// hook that runs last applies the rule stored last, whichever request it belongs to.
async fn sync_segment(
    state: &AppState,
    account: &Account,
    idx: &Arc<AccountIndex>,
    id: SegmentId,
) -> Result<(), WriteError> {
    let _hook = idx.segment_hook().await;
    // Its references (and existence) are in the catalog that drafts are parsed against.
    state.catalogs.invalidate(account.id);
    let rule = match state.store.segment(account.id, id).await? {
        None => None,
        Some(saved) => {
            let (catalog, _) = load_catalog(state.store.as_ref(), account.id).await?;
            let rule = parse_rule(&saved.rule, "rule", &catalog, Some(id)).map_err(|issues| {
                let first = issues.first().map(ToString::to_string).unwrap_or_default();
                StoreError::Corrupt(format!("segment {id} has an invalid rule: {first}"))
            })?;
            Some(rule)
        }
    };
    apply_and_log(
        state,
        account,
        idx,
        vec![Slice::Segment(id, rule)],
        &HashMap::new(),
    )
    .await?;
    Ok(())
}

/// Saves a new segment (its draft checked by the caller against the account's catalog).
pub async fn create_segment(
    state: &AppState,
    account: &Account,
    draft: &SegmentDraft,
) -> Result<Segment, WriteError> {
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let segment = state
        .store
        .create_segment(account.id, draft, state.clock.now())
        .await
        .map_err(|e| name_conflict(e, &draft.name))?;
    sync_segment(state, account, &idx, segment.id).await?;
    Ok(segment)
}

/// Replaces a segment's name, description and rule.
pub async fn update_segment(
    state: &AppState,
    account: &Account,
    id: SegmentId,
    draft: &SegmentDraft,
) -> Result<Segment, WriteError> {
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let segment = state
        .store
        .update_segment(account.id, id, draft, state.clock.now())
        .await
        .map_err(|e| name_conflict(e, &draft.name))?
        .ok_or_else(|| WriteError::NotFound(format!("no segment with id {id}")))?;
    sync_segment(state, account, &idx, id).await?;
    Ok(segment)
}

/// Deletes a segment that no other segment refers to.
pub async fn delete_segment(
    state: &AppState,
    account: &Account,
    id: SegmentId,
) -> Result<(), WriteError> {
    let not_found = || WriteError::NotFound(format!("no segment with id {id}"));
    let idx = state.index.for_write(account).await?;
    let _write = idx.enter_write().await;
    let (catalog, segments) = load_catalog(state.store.as_ref(), account.id).await?;
    if !catalog.segments.contains_key(&id) {
        return Err(not_found());
    }
    let users: Vec<&str> = segments
        .iter()
        .filter(|s| {
            s.id != id
                && catalog
                    .segments
                    .get(&s.id)
                    .is_some_and(|refs| refs.contains(&id))
        })
        .map(|s| s.name.as_str())
        .collect();
    if !users.is_empty() {
        return Err(WriteError::Conflict {
            message: format!("segment {id} is referenced by: {}", users.join(", ")),
            path: None,
        });
    }
    if !state.store.delete_segment(account.id, id).await? {
        return Err(not_found());
    }
    sync_segment(state, account, &idx, id).await
}
