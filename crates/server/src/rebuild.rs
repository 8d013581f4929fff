//! Building an account's index at start: from its snapshot plus what the store received
//! after it, or, without a usable snapshot, from every contact and event in the store.
//!
//! Either way the result is the same index, and the membership changes that happened
//! while the service was down are logged once: a full rebuild compares the membership
//! with the change log's state; a restart from a snapshot compares only the contacts its
//! replay moved, and those the log moved after the snapshot, with the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use segmentd_engine::{Event, Index, MembershipChange};
use segmentd_rules::{Clock as RuleClock, Rule, SegmentId};
use segmentd_store::{Account, ChangeRecord, ContactId, Store, Watermark};

use crate::catalog::{load_catalog, parse_saved_rules};
use crate::index::{IndexError, contact_values, engine_event};
use crate::snapshot::{self, SnapshotError};

/// Rows read from the store at a time while replaying.
const REPLAY_PAGE: u32 = 20_000;

/// Saved segments in an order where every segment comes after those it refers to.
pub fn dependency_order(rules: &HashMap<SegmentId, Rule>) -> Vec<SegmentId> {
    fn visit(
        id: SegmentId,
        rules: &HashMap<SegmentId, Rule>,
        done: &mut BTreeSet<SegmentId>,
        out: &mut Vec<SegmentId>,
    ) {
        if !done.insert(id) {
            return;
        }
        if let Some(rule) = rules.get(&id) {
            for dep in rule.referenced_segments() {
                visit(dep, rules, done, out);
            }
            out.push(id);
        }
    }
    let mut ids: Vec<SegmentId> = rules.keys().copied().collect();
    ids.sort_unstable();
    let mut done = BTreeSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        visit(id, rules, &mut done, &mut out);
    }
    out
}

/// How an account's index was built, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Snapshot,
    Store,
}

pub struct Built {
    pub index: Index,
    pub source: Source,
}

/// Builds the account's index (from its snapshot in `dir` when there is a usable one)
/// and logs the membership changes that happened while the service was down.
pub async fn build(
    store: &dyn Store,
    account: &Account,
    zone: &TimeZone,
    dir: Option<&Path>,
    now: Timestamp,
) -> Result<Built, IndexError> {
    if let Some(dir) = dir {
        let started = Instant::now();
        let (dir, id, name, z) = (
            dir.to_owned(),
            account.id,
            account.time_zone.clone(),
            zone.clone(),
        );
        let read = tokio::task::spawn_blocking(move || snapshot::read(&dir, id, &name, &z))
            .await
            .map_err(|e| IndexError::Task(e.to_string()))?;
        match read {
            Ok((header, restored)) => {
                tracing::info!(
                    account = account.id,
                    ms = started.elapsed().as_millis() as u64,
                    "index snapshot loaded; replaying what the store received after it"
                );
                let index = replay(
                    store,
                    account,
                    zone,
                    header.watermark,
                    header.rules,
                    restored,
                    now,
                )
                .await?;
                return Ok(Built {
                    index,
                    source: Source::Snapshot,
                });
            }
            Err(SnapshotError::Missing) => {
                tracing::info!(
                    account = account.id,
                    "no index snapshot: building from the store"
                )
            }
            Err(e) => tracing::warn!(
                account = account.id,
                error = %e,
                "index snapshot refused: building from the store"
            ),
        }
    }
    Ok(Built {
        index: full(store, account, zone, now).await?,
        source: Source::Store,
    })
}

/// The account's saved rules, parsed, in dependency order.
pub(crate) async fn saved_rules(
    store: &dyn Store,
    account: &Account,
) -> Result<Vec<(SegmentId, Rule)>, IndexError> {
    let (catalog, saved) = load_catalog(store, account.id).await?;
    let mut rules = parse_saved_rules(&catalog, &saved)?;
    Ok(dependency_order(&rules)
        .into_iter()
        .filter_map(|id| rules.remove(&id).map(|r| (id, r)))
        .collect())
}

fn set_segment(
    index: &mut Index,
    id: SegmentId,
    rule: Rule,
) -> Result<Vec<MembershipChange>, IndexError> {
    index
        .set_segment(id, rule)
        .map_err(|e| IndexError::Engine(e.to_string()))
}

/// Every contact and event of the account, read from the store, then every segment
/// evaluated; the change log is brought to the resulting membership.
async fn full(
    store: &dyn Store,
    account: &Account,
    zone: &TimeZone,
    now: Timestamp,
) -> Result<Index, IndexError> {
    let started = Instant::now();
    let mut index = Index::new(RuleClock::new(now, zone));
    let mut contacts = store.all_contacts(account.id).await?;
    tracing::info!(
        account = account.id,
        contacts = contacts.len(),
        ms = started.elapsed().as_millis() as u64,
        "rebuild: contacts read"
    );
    // In store-id order: the index maps ascending ids to slots with no extra memory.
    contacts.sort_unstable_by_key(|c| c.id);
    for c in &contacts {
        index.upsert_contact(c.id, &c.external_id, &contact_values(c));
    }
    let external: HashMap<ContactId, String> = contacts
        .into_iter()
        .map(|c| (c.id, c.external_id))
        .collect();
    let stored = store.all_events(account.id).await?;
    tracing::info!(
        account = account.id,
        events = stored.len(),
        ms = started.elapsed().as_millis() as u64,
        "rebuild: events read"
    );
    let events: Vec<(ContactId, Event)> = stored
        .into_iter()
        .map(|e| (e.contact_id, engine_event(e.client_id, e.timestamp, e.body)))
        .collect();
    index.add_events(events.iter().map(|(c, e)| (*c, e)));
    drop(events);
    for (id, rule) in saved_rules(store, account).await? {
        set_segment(&mut index, id, rule)?;
    }
    index.compact();
    tracing::info!(
        account = account.id,
        ms = started.elapsed().as_millis() as u64,
        "rebuild: segments evaluated"
    );
    // Membership may have changed while the service was down (time passed, or a write
    // was stored but its changes were not logged): log the difference now.
    let diff = log_difference(store, account, &index, &external, now).await?;
    tracing::info!(
        account = account.id,
        contacts = index.contact_count(),
        events = index.event_count(),
        changes_logged = diff,
        ms = started.elapsed().as_millis() as u64,
        "account indexed from the store"
    );
    Ok(index)
}

/// Brings the change log to the index's membership: what differs is logged as entered
/// or exited at `now` (`external`: external ids of contacts the index may not know).
/// Returns how many changes it logged.
pub async fn log_difference(
    store: &dyn Store,
    account: &Account,
    index: &Index,
    external: &HashMap<ContactId, String>,
    now: Timestamp,
) -> Result<usize, IndexError> {
    let logged = logged_membership(store, account).await?;
    let diff = difference(logged, index, external, now);
    store.record_changes(account.id, &diff).await?;
    Ok(diff.len())
}

/// Each segment's members as the change log has them (the last entry per contact).
pub async fn logged_membership(
    store: &dyn Store,
    account: &Account,
) -> Result<BTreeMap<SegmentId, HashMap<ContactId, String>>, IndexError> {
    let mut logged: BTreeMap<SegmentId, HashMap<ContactId, String>> = BTreeMap::new();
    for (segment, contact, external_id) in store.logged_members(account.id).await? {
        logged
            .entry(segment)
            .or_default()
            .insert(contact, external_id);
    }
    Ok(logged)
}

/// What the change log must record to hold the index's membership.
pub fn difference(
    mut logged: BTreeMap<SegmentId, HashMap<ContactId, String>>,
    index: &Index,
    external: &HashMap<ContactId, String>,
    now: Timestamp,
) -> Vec<ChangeRecord> {
    let mut diff = Vec::new();
    for s in index.segment_ids() {
        let was = logged.remove(&s).unwrap_or_default();
        let is: BTreeSet<ContactId> = index
            .membership(s)
            .map(|m| index.store_ids(m).into_iter().collect())
            .unwrap_or_default();
        for &c in is.iter().filter(|c| !was.contains_key(c)) {
            let name = external
                .get(&c)
                .cloned()
                .or_else(|| index.external_id(c).map(str::to_owned));
            diff.push(change_record(s, c, name, true, now));
        }
        for (c, external_id) in was.into_iter().filter(|(c, _)| !is.contains(c)) {
            diff.push(change_record(s, c, Some(external_id), false, now));
        }
    }
    diff
}

/// A cluster node's index of an account from rows read in one database snapshot
/// (`ClusterStore::load`): the same as a full rebuild's, nothing logged.
pub async fn from_rows(
    store: &dyn Store,
    account: &Account,
    zone: &TimeZone,
    mut contacts: Vec<segmentd_store::Contact>,
    events: Vec<segmentd_store::StoredEvent>,
    now: Timestamp,
) -> Result<Index, IndexError> {
    let mut index = Index::new(RuleClock::new(now, zone));
    contacts.sort_unstable_by_key(|c| c.id);
    for c in &contacts {
        index.upsert_contact(c.id, &c.external_id, &contact_values(c));
    }
    drop(contacts);
    let events: Vec<(ContactId, Event)> = events
        .into_iter()
        .map(|e| (e.contact_id, engine_event(e.client_id, e.timestamp, e.body)))
        .collect();
    index.add_events(events.iter().map(|(c, e)| (*c, e)));
    drop(events);
    for (id, rule) in saved_rules(store, account).await? {
        set_segment(&mut index, id, rule)?;
    }
    index.compact();
    Ok(index)
}

fn change_record(
    segment: SegmentId,
    contact: ContactId,
    external_id: Option<String>,
    entered: bool,
    at: Timestamp,
) -> ChangeRecord {
    ChangeRecord {
        segment,
        contact,
        external_id: external_id.unwrap_or_default(),
        entered,
        at,
    }
}

/// The snapshot's index brought to the store as it is now: its segments restored (or
/// evaluated again where the rule changed since), then the contacts deleted and written
/// and the events received after the snapshot's watermark replayed, then the clock
/// moved to now. The changes the replay made are compared with what the log received
/// after the snapshot, and only the differences are logged.
async fn replay(
    store: &dyn Store,
    account: &Account,
    zone: &TimeZone,
    since: Watermark,
    rules: BTreeMap<SegmentId, serde_json::Value>,
    restored: segmentd_engine::Restored,
    now: Timestamp,
) -> Result<Index, IndexError> {
    let started = Instant::now();
    let mut index = restored.index;
    let mut members = restored.segments;
    // First every segment the snapshot holds, with its membership then (the log's state),
    // then the ones whose rule changed since (or that are new) evaluated afresh: their
    // changes are relative to that membership, and their dependents are restored already.
    let rules_now = saved_rules(store, account).await?;
    let mut again = Vec::new();
    for (id, rule) in rules_now {
        let same = rules.get(&id) == Some(&rule.to_json());
        match members.remove(&id) {
            Some(m) => {
                index
                    .restore_segment(id, rule.clone(), m)
                    .map_err(|e| IndexError::Engine(e.to_string()))?;
                if !same {
                    again.push((id, rule));
                }
            }
            None => again.push((id, rule)),
        }
    }
    index.finish_restore();
    let mut changes = Vec::new();
    for (id, rule) in again {
        changes.extend(set_segment(&mut index, id, rule)?);
    }
    // External ids of contacts that leave the index (their exits are logged).
    let mut known: HashMap<ContactId, String> = HashMap::new();
    let deleted = store.contacts_deleted_since(account.id, &since).await?;
    for id in &deleted {
        if let Some(e) = index.external_id(*id) {
            known.insert(*id, e.to_owned());
        }
        changes.extend(index.delete_contact(*id));
    }
    let mut after = None;
    let mut written = 0usize;
    loop {
        let page = store
            .contacts_changed_since(account.id, &since, after, REPLAY_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        written += page.len();
        for c in &page {
            changes.extend(index.upsert_contact(c.id, &c.external_id, &contact_values(c)));
        }
    }
    let mut after = None;
    let mut received = 0usize;
    loop {
        let page = store
            .events_since(account.id, &since, after, REPLAY_PAGE)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(*last);
        received += page.len();
        let events: Vec<(ContactId, Event)> = page
            .into_iter()
            .map(|(_, e)| (e.contact_id, engine_event(e.client_id, e.timestamp, e.body)))
            .collect();
        changes.extend(index.add_events(events.iter().map(|(c, e)| (*c, e))));
    }
    changes.extend(index.refresh(&RuleClock::new(now, zone)));
    index.compact();

    // Each (segment, contact) the replay moved: its state before (the snapshot's, which
    // the log agreed with) and after.
    let mut moved: HashMap<(SegmentId, ContactId), (bool, bool)> = HashMap::new();
    for c in &changes {
        moved
            .entry((c.segment, c.contact))
            .and_modify(|(_, after)| *after = c.entered)
            .or_insert((!c.entered, c.entered));
    }
    // What the log received after the snapshot, last entry per (segment, contact).
    let mut logged: HashMap<(SegmentId, ContactId), (bool, String)> = HashMap::new();
    let mut after = None;
    loop {
        let page = store
            .changes_since(account.id, &since, after, REPLAY_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for c in page {
            let ch = c.change;
            logged.insert((ch.segment, ch.contact), (ch.entered, ch.external_id));
        }
    }
    let live: BTreeSet<SegmentId> = index.segment_ids().collect();
    let mut diff = Vec::new();
    let keys: BTreeSet<(SegmentId, ContactId)> =
        moved.keys().chain(logged.keys()).copied().collect();
    for key @ (segment, contact) in keys {
        if !live.contains(&segment) {
            continue;
        }
        let now_in = match moved.get(&key) {
            Some(&(_, after)) => after,
            None => index.is_member(segment, contact),
        };
        let (log_in, external) = match (logged.get(&key), moved.get(&key)) {
            (Some((entered, ext)), _) => (*entered, Some(ext.clone())),
            (None, Some(&(before, _))) => (before, None),
            (None, None) => continue,
        };
        if now_in != log_in {
            let external = external
                .or_else(|| index.external_id(contact).map(str::to_owned))
                .or_else(|| known.get(&contact).cloned());
            diff.push(change_record(segment, contact, external, now_in, now));
        }
    }
    store.record_changes(account.id, &diff).await?;
    tracing::info!(
        account = account.id,
        contacts = index.contact_count(),
        events = index.event_count(),
        deleted = deleted.len(),
        contacts_replayed = written,
        events_replayed = received,
        changes_logged = diff.len(),
        ms = started.elapsed().as_millis() as u64,
        "account indexed from its snapshot"
    );
    Ok(index)
}
