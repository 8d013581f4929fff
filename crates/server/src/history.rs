//! History from data: what a segment's membership was on days before its change log
//! began (the day it was saved), computed by evaluating its rule as of each day's end in
//! the account's time zone (the last millisecond of the day). Events after that instant
//! are not seen by the evaluation; contact fields are read as they are now (the store
//! keeps no past values), so a computed day is an estimate, marked `computed`.
//!
//! Each day costs one evaluation of the rule over the account's index, under one hold of
//! the read lock (writers wait at most one evaluation); the day before the first is
//! evaluated too, so that each day's entries and exits are the differences of two sets.
//! Computed days do not change as time passes, so they are cached per segment
//! ([`ComputedHistory`]) until its rule is saved again (the cache is keyed by the
//! segment's `updated_at`) or data about the past arrives: events timestamped before
//! today, or an import (`forget_account`).

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use segmentd_rules::{Clock as RuleClock, SegmentId};
use segmentd_store::{Account, AccountId};

use crate::error::ApiError;
use crate::index::IndexError;
use crate::state::AppState;

/// A day's size and moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// Members at the end of the day.
    pub total: u64,
    pub added: u64,
    pub removed: u64,
}

#[derive(Default)]
struct Entry {
    /// The segment's `updated_at` the days were computed for.
    rule_at: Option<Timestamp>,
    zone: String,
    days: BTreeMap<Date, DayCounts>,
}

/// Computed days per segment.
#[derive(Default)]
pub struct ComputedHistory {
    entries: parking_lot::Mutex<HashMap<(AccountId, SegmentId), Entry>>,
}

impl ComputedHistory {
    /// Drops every computed day of the account (data about the past arrived).
    pub fn forget_account(&self, account: AccountId) {
        self.entries.lock().retain(|(a, _), _| *a != account);
    }

    fn cached(
        &self,
        account: &Account,
        segment: SegmentId,
        rule_at: Timestamp,
        days: &[Date],
    ) -> Option<Vec<DayCounts>> {
        let entries = self.entries.lock();
        let entry = entries.get(&(account.id, segment))?;
        if entry.rule_at != Some(rule_at) || entry.zone != account.time_zone {
            return None;
        }
        days.iter().map(|d| entry.days.get(d).copied()).collect()
    }

    fn keep(
        &self,
        account: &Account,
        segment: SegmentId,
        rule_at: Timestamp,
        days: &[Date],
        counts: &[DayCounts],
    ) {
        let mut entries = self.entries.lock();
        let entry = entries.entry((account.id, segment)).or_default();
        if entry.rule_at != Some(rule_at) || entry.zone != account.time_zone {
            *entry = Entry {
                rule_at: Some(rule_at),
                zone: account.time_zone.clone(),
                days: BTreeMap::new(),
            };
        }
        entry
            .days
            .extend(days.iter().copied().zip(counts.iter().copied()));
    }
}

/// The last millisecond of `day` in `zone`.
pub fn day_end(day: Date, zone: &TimeZone) -> Result<Timestamp, ApiError> {
    let next = day
        .tomorrow()
        .and_then(|d| zone.to_timestamp(d.to_datetime(jiff::civil::Time::midnight())))
        .map_err(ApiError::internal)?;
    Timestamp::from_millisecond(next.as_millisecond() - 1).map_err(ApiError::internal)
}

/// The segment's membership at each instant: the first is the baseline, each next one
/// gives its total and the entries and exits since the one before.
pub async fn series(
    state: &AppState,
    account: &Account,
    segment: SegmentId,
    instants: Vec<Timestamp>,
) -> Result<Vec<DayCounts>, ApiError> {
    let zone = TimeZone::get(&account.time_zone).map_err(ApiError::internal)?;
    let idx = state.index.of(account).await?;
    let mut out = Vec::with_capacity(instants.len().saturating_sub(1));
    let mut previous: Option<roaring::RoaringBitmap> = None;
    for at in instants {
        let clock = RuleClock::new(at, &zone);
        let idx = idx.clone();
        // One evaluation per hold of the read lock, on the blocking pool.
        let set = tokio::task::spawn_blocking(move || {
            idx.read(|index| {
                index
                    .segment_rule(segment)
                    .map(|rule| index.evaluate(rule, &clock))
                    .unwrap_or_default()
            })
        })
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?;
        if let Some(before) = &previous {
            out.push(DayCounts {
                total: set.len(),
                added: set.difference_len(before),
                removed: before.difference_len(&set),
            });
        }
        previous = Some(set);
    }
    Ok(out)
}

/// The segment's counts computed for `days` (ascending, consecutive), from the cache
/// when it has them all.
pub async fn computed_days(
    state: &AppState,
    account: &Account,
    segment: SegmentId,
    rule_at: Timestamp,
    days: &[Date],
) -> Result<Vec<DayCounts>, ApiError> {
    let Some(&first) = days.first() else {
        return Ok(Vec::new());
    };
    if let Some(hit) = state
        .computed_history
        .cached(account, segment, rule_at, days)
    {
        return Ok(hit);
    }
    let zone = TimeZone::get(&account.time_zone).map_err(ApiError::internal)?;
    let mut instants = Vec::with_capacity(days.len() + 1);
    instants.push(day_end(
        first.yesterday().map_err(ApiError::internal)?,
        &zone,
    )?);
    for &day in days {
        instants.push(day_end(day, &zone)?);
    }
    let counts = series(state, account, segment, instants).await?;
    state
        .computed_history
        .keep(account, segment, rule_at, days, &counts);
    Ok(counts)
}
