//! Beyond `spec/api.md`: what happens to a segment's membership over time, and why a
//! contact is in or out.
//!
//! - `GET /segments/{id}/changes`: every entry and exit, in order, paged by cursor.
//! - `GET /segments/{id}/history?days=N`: per day (account's time zone) how many entered,
//!   how many exited, and the total at the end of the day; days before the segment was
//!   saved are computed from the data (`crate::history`) and marked `computed`.
//! - `GET /segments/{id}/explain?contact=EXT`: the rule tree with each node's truth value
//!   for one contact.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use segmentd_rules::{SegmentId, parse_rule};
use segmentd_store::Account;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::paging::{DEFAULT_LIMIT, MAX_LIMIT, Page, as_of};
use crate::auth::Authenticated;
use crate::catalog::load_catalog;
use crate::error::{ApiError, ErrorBody};
use crate::history::{self, DayCounts};
use crate::state::AppState;

const DEFAULT_DAYS: i64 = 30;
const MAX_DAYS: i64 = 366;

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    pub external_id: String,
    /// `entered` or `exited`.
    pub change: String,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayOut {
    pub day: String,
    pub added: u64,
    pub removed: u64,
    /// Members at the end of the day.
    pub total: u64,
    /// The day is from before the segment's change log began: its figures were computed
    /// by evaluating the rule as of the day's end (fields as they are now).
    pub computed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    pub items: Vec<DayOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainOut {
    pub segment: SegmentId,
    pub external_id: String,
    pub member: bool,
    pub as_of: String,
    /// Nodes: `kind`, `matched`, `rule` (leaves), `matching_events` (behaviour),
    /// `children` (groups).
    #[schema(value_type = Object)]
    pub explanation: serde_json::Value,
}

pub async fn existing(state: &AppState, account: i64, raw: &str) -> Result<SegmentId, ApiError> {
    let not_found = || ApiError::NotFound(format!("no segment with id {raw:?}"));
    let id = raw.parse::<SegmentId>().map_err(|_| not_found())?;
    state
        .store
        .segment(account, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(id)
}

/// A segment's entries and exits in the order they happened.
#[utoipa::path(get, path = "/api/v1/segments/{id}/changes", tag = "segments",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "1 to 10,000; default 100"),
           ("cursor" = Option<String>, Query, pattern = "^[0-9a-f]*$", max_length = 1600, description = "next_cursor of the previous page")),
    responses((status = 200, body = Page<ChangeOut>), (status = 404, body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Page<ChangeOut>>, ApiError> {
    let id = existing(&state, account.id, &id).await?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "limit",
                    format!("expected a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::validation("cursor", "not a cursor this API returned"))?,
        ),
    };
    let mut rows = state
        .store
        .changes_page(account.id, id, after, (limit + 1) as u32)
        .await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|r| ChangeOut {
                external_id: r.change.external_id,
                change: if r.change.entered {
                    "entered"
                } else {
                    "exited"
                }
                .to_owned(),
                at: r.change.at.to_string(),
            })
            .collect(),
        next_cursor,
    }))
}

/// Daily entries, exits and totals over the last `days` days (today included).
#[utoipa::path(get, path = "/api/v1/segments/{id}/history", tag = "segments",
    params(("days" = Option<i64>, Query, description = "1 to 366; default 30")),
    responses((status = 200, body = HistoryOut), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<HistoryOut>, ApiError> {
    let id = existing(&state, account.id, &id).await?;
    let days = match query.get("days") {
        None => DEFAULT_DAYS,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_DAYS).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "days",
                    format!("expected a whole number from 1 to {MAX_DAYS}"),
                )
            })?,
    };
    Ok(Json(daily_history(&state, &account, id, days).await?))
}

/// A saved segment's entries, exits and totals per day of the account's time zone, over
/// the last `days` days (the API and the panel's growth chart). Days from the one the
/// segment was saved on come from the change log; days before it are computed from the
/// data (`crate::history`, cached), and so are the saving day's entries and exits (the
/// log records every member entering then).
pub async fn daily_history(
    state: &AppState,
    account: &Account,
    id: SegmentId,
    days: i64,
) -> Result<HistoryOut, ApiError> {
    let zone = TimeZone::get(&account.time_zone).map_err(ApiError::internal)?;
    let now = state.clock.now();
    let today = zone.to_datetime(now).date();
    let first = today
        .checked_sub((days - 1).days())
        .map_err(ApiError::internal)?;
    let segment = state
        .store
        .segment(account.id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no segment with id {id}")))?;
    let saved_on = zone.to_datetime(segment.created_at).date();
    let buckets = state.store.change_buckets(account.id, id).await?;
    // Changes before the window still count toward its totals.
    let mut before = 0i64;
    let mut per_day: BTreeMap<Date, (u64, u64)> = BTreeMap::new();
    for b in buckets {
        let day = zone.to_datetime(b.start).date();
        if day < first {
            before += b.entered as i64 - b.exited as i64;
        } else if day <= today {
            let slot = per_day.entry(day).or_default();
            slot.0 += b.entered;
            slot.1 += b.exited;
        }
    }
    // Days before the log, and the saving day when it is over, computed (and cached).
    let mut computed_days = Vec::new();
    let mut day = first;
    while day <= today && (day < saved_on || (day == saved_on && day < today)) {
        computed_days.push(day);
        day = day.tomorrow().map_err(ApiError::internal)?;
    }
    let mut computed: BTreeMap<Date, DayCounts> = computed_days
        .iter()
        .copied()
        .zip(history::computed_days(state, account, id, segment.updated_at, &computed_days).await?)
        .collect();
    if saved_on == today && first <= today {
        // Saved today: today's moves since yesterday's end, not cached (today moves).
        let since = history::day_end(today.yesterday().map_err(ApiError::internal)?, &zone)?;
        let moves = history::series(state, account, id, vec![since, now]).await?;
        if let Some(m) = moves.first() {
            computed.insert(today, *m);
        }
    }
    let mut items = Vec::with_capacity(days as usize);
    let mut total = before;
    let mut day = first;
    while day <= today {
        let (added, removed) = per_day.get(&day).copied().unwrap_or_default();
        total += added as i64 - removed as i64;
        let out = match computed.get(&day) {
            Some(c) if day < saved_on => DayOut {
                day: day.to_string(),
                added: c.added,
                removed: c.removed,
                total: c.total,
                computed: true,
            },
            // The saving day: its total from the log, its moves computed.
            Some(c) => DayOut {
                day: day.to_string(),
                added: c.added,
                removed: c.removed,
                total: total.max(0) as u64,
                computed: false,
            },
            None => DayOut {
                day: day.to_string(),
                added,
                removed,
                total: total.max(0) as u64,
                computed: false,
            },
        };
        items.push(out);
        day = day.tomorrow().map_err(ApiError::internal)?;
    }
    Ok(HistoryOut { items })
}

/// Why a contact is in or out of a segment: each node of the rule with its truth value.
#[utoipa::path(get, path = "/api/v1/segments/{id}/explain", tag = "segments",
    params(("contact" = String, Query, description = "the contact's external id"),
           ("as_of" = Option<String>, Query, format = DateTime, description = "RFC 3339 evaluation time")),
    responses((status = 200, body = ExplainOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn explain(
    State(state): State<AppState>,
    Authenticated(account): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ExplainOut>, ApiError> {
    let id = existing(&state, account.id, &id).await?;
    let at = as_of(&query)?.unwrap_or_else(|| state.clock.now());
    let external_id = query
        .get("contact")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::validation("contact", "expected the contact's external id"))?;
    let contact = state
        .store
        .contact(account.id, external_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no contact with external_id \"{external_id}\""))
        })?;
    let (catalog, segments) = load_catalog(state.store.as_ref(), account.id).await?;
    let stored = segments
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no segment with id {id}")))?;
    let rule = parse_rule(&stored.rule, "rule", &catalog, Some(id)).map_err(|issues| {
        ApiError::internal(format!("segment {id} has an invalid rule: {issues:?}"))
    })?;
    let explanation = state
        .index
        .explain(&account, &rule, contact.id, Some(at))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no contact with external_id \"{external_id}\""))
        })?;
    Ok(Json(ExplainOut {
        segment: id,
        external_id: contact.external_id,
        member: explanation.matched,
        as_of: at.to_string(),
        explanation: serde_json::to_value(explanation).map_err(ApiError::internal)?,
    }))
}
