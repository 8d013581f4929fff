//! A follower's index brought up to the owner's.
//!
//! The fast way is the owner's fan-out message (`wire::Change`): when it starts where
//! the index is and carries the slices the owner applied, they are applied as they are.
//! Otherwise — a message missed, a write whose slices do not travel (fields, segments),
//! NATS down — the account's change log is read from PostgreSQL and applied in sequence
//! order. Each entry names ids; the rows are read as they are now (a contact written
//! again later comes with its later values, which its own later entry applies again;
//! one deleted since is skipped, and its deletion entry follows), so the index ends
//! where the owner's is. The membership changes this makes are not logged: the owner
//! logs them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use segmentd_engine::Event;
use segmentd_store::ContactId;
use segmentd_store::cluster::{LogEntry, LogKind};

use super::Held;
use super::wire::{self, Change};
use crate::index::{AccountIndex, IndexError, Slice, engine_event};
use crate::state::AppState;

/// Log entries read at a time.
const LOG_PAGE: u32 = 512;
/// Ids of consecutive entries of one kind read from the store together.
const READ_IDS: usize = 20_000;

/// Applies one fan-out message of the account: its slices when they start where the
/// index is, the log otherwise.
pub async fn apply_message(
    state: &AppState,
    held: &Held,
    payload: bytes::Bytes,
) -> Result<(), IndexError> {
    // A write of thousands of events takes milliseconds to read: off the runtime.
    let read = tokio::task::spawn_blocking(move || {
        serde_json::from_slice::<Change>(&payload).map(|change| {
            let slices = change.slices.map(wire::slices);
            (change.from, change.to, slices)
        })
    })
    .await
    .map_err(|e| IndexError::Task(e.to_string()))?;
    let (from, to, slices) = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(account = held.account.id, error = %e, "unreadable fan-out message");
            return catch_up(state, held).await.map(drop);
        }
    };
    {
        let _applying = held.applying.lock().await;
        let applied = held.applied.load(Ordering::Acquire);
        if to <= applied {
            return Ok(());
        }
        if let Some(slices) = slices
            && from == applied
        {
            let Some(idx) = state.index.held(held.account.id) else {
                return Ok(());
            };
            state.index.apply(&idx, slices).await?;
            held.applied.store(to, Ordering::Release);
            held.from_messages.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    catch_up(state, held).await.map(drop)
}

/// Applies the account's log after what the index has, up to its end. Returns the
/// entries applied.
pub async fn catch_up(state: &AppState, held: &Held) -> Result<usize, IndexError> {
    let Some(cluster) = state.cluster.as_ref() else {
        return Ok(0);
    };
    let account = &held.account;
    let _applying = held.applying.lock().await;
    let Some(idx) = state.index.held(account.id) else {
        return Ok(0);
    };
    let mut applied = 0;
    loop {
        let after = held.applied.load(Ordering::Acquire);
        let entries = cluster.store.log_since(account.id, after, LOG_PAGE).await?;
        let n = entries.len();
        for run in runs(entries) {
            let seq = run.seq;
            let slices = slices_of(state, account, &idx, run).await?;
            if !slices.is_empty() {
                state.index.apply(&idx, slices).await?;
            }
            held.applied.store(seq, Ordering::Release);
        }
        held.from_log.fetch_add(n as u64, Ordering::Relaxed);
        applied += n;
        if n < LOG_PAGE as usize {
            break;
        }
    }
    Ok(applied)
}

/// Consecutive entries that read rows of one kind (contacts, events) merged into one, up
/// to `READ_IDS` ids, so that a backlog is read in a few large queries; the merged
/// entry carries the last sequence.
fn runs(entries: Vec<LogEntry>) -> Vec<LogEntry> {
    let mut runs: Vec<LogEntry> = Vec::new();
    for entry in entries {
        if let Some(last) = runs.last_mut()
            && last.kind == entry.kind
            && matches!(entry.kind, LogKind::Contacts | LogKind::Events)
            && last.ids.len() + entry.ids.len() <= READ_IDS
        {
            last.ids.extend(entry.ids);
            last.seq = entry.seq;
            continue;
        }
        runs.push(entry);
    }
    runs
}

async fn slices_of(
    state: &AppState,
    account: &segmentd_store::Account,
    idx: &Arc<AccountIndex>,
    entry: LogEntry,
) -> Result<Vec<Slice>, IndexError> {
    let Some(cluster) = state.cluster.as_ref() else {
        return Ok(Vec::new());
    };
    Ok(match entry.kind {
        LogKind::Contacts => {
            let mut ids = entry.ids;
            ids.sort_unstable();
            ids.dedup();
            let contacts = state.store.contacts_by_ids(account.id, &ids).await?;
            vec![Slice::Contacts(contacts)]
        }
        LogKind::Events => {
            let events: Vec<(ContactId, Event)> = cluster
                .store
                .events_by_ids(account.id, &entry.ids)
                .await?
                .into_iter()
                .map(|e| (e.contact_id, engine_event(e.client_id, e.timestamp, e.body)))
                .collect();
            vec![Slice::Events(events)]
        }
        LogKind::Deleted => entry
            .ids
            .iter()
            .map(|id| Slice::ContactDeleted(*id))
            .collect(),
        LogKind::Definitions => {
            state.catalogs.invalidate(account.id);
            definitions(state, account, idx).await?
        }
    })
}

/// The segments whose saved rule differs from the index's, in dependency order, and
/// those gone.
async fn definitions(
    state: &AppState,
    account: &segmentd_store::Account,
    idx: &Arc<AccountIndex>,
) -> Result<Vec<Slice>, IndexError> {
    let saved = crate::rebuild::saved_rules(state.store.as_ref(), account).await?;
    let held: HashMap<_, _> = crate::index::evaluate(idx.clone(), |index| {
        index
            .segment_ids()
            .filter_map(|s| index.segment_rule(s).map(|r| (s, r.to_json())))
            .collect()
    })
    .await?;
    let kept: BTreeSet<_> = saved.iter().map(|(id, _)| *id).collect();
    let mut slices: Vec<Slice> = held
        .keys()
        .filter(|id| !kept.contains(id))
        .map(|id| Slice::Segment(*id, None))
        .collect();
    for (id, rule) in saved {
        if held.get(&id) != Some(&rule.to_json()) {
            slices.push(Slice::Segment(id, Some(rule)));
        }
    }
    Ok(slices)
}
