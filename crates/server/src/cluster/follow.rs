//! A follower's index brought up to the account's change log.
//!
//! Entries are applied in sequence order. Each names ids; the rows are read as they are
//! now (a contact written again later comes with its later values, which its own later
//! entry applies again; one deleted since is skipped, and its deletion entry follows),
//! so the index ends where the owner's is. The membership changes this makes are not
//! logged: the owner logs them.

use std::collections::{BTreeSet, HashMap};

use segmentd_engine::Event;
use segmentd_store::ContactId;
use segmentd_store::cluster::{LogEntry, LogKind};

use super::Held;
use crate::index::{IndexError, Slice, engine_event};
use crate::state::AppState;

/// Log entries read at a time.
const LOG_PAGE: u32 = 512;

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
        let after = held.applied.load(std::sync::atomic::Ordering::Acquire);
        let entries = cluster.store.log_since(account.id, after, LOG_PAGE).await?;
        if entries.is_empty() {
            break;
        }
        let n = entries.len();
        for entry in entries {
            let seq = entry.seq;
            let slices = slices_of(state, account, &idx, entry).await?;
            if !slices.is_empty() {
                state.index.apply(&idx, slices).await?;
            }
            held.applied
                .store(seq, std::sync::atomic::Ordering::Release);
        }
        applied += n;
        if n < LOG_PAGE as usize {
            break;
        }
    }
    Ok(applied)
}

async fn slices_of(
    state: &AppState,
    account: &segmentd_store::Account,
    idx: &std::sync::Arc<crate::index::AccountIndex>,
    entry: LogEntry,
) -> Result<Vec<Slice>, IndexError> {
    let Some(cluster) = state.cluster.as_ref() else {
        return Ok(Vec::new());
    };
    Ok(match entry.kind {
        LogKind::Contacts => {
            let contacts = state.store.contacts_by_ids(account.id, &entry.ids).await?;
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
    idx: &std::sync::Arc<crate::index::AccountIndex>,
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
