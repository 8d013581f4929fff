//! A campaign's statistics: its recipients by delivery status (one grouped count) and
//! what happened per hour (the activity counts kept as it happens), never a scan of
//! events.

use std::collections::BTreeMap;

use segmentd_store::{AccountId, CampaignId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// What happened in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct HourStats {
    /// The hour's start, RFC 3339.
    pub hour: String,
    pub sent: u64,
    pub failed: u64,
    pub bounced: u64,
    pub unknown: u64,
    /// Recipients who opened for the first time in that hour (people only).
    pub opens: u64,
    pub machine_opens: u64,
    /// Recipients who clicked for the first time in that hour.
    pub clicks: u64,
    pub unsubscribes: u64,
    pub complaints: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CampaignStats {
    /// Frozen recipients, and how many are in each delivery status now.
    pub recipients: u64,
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    /// Hard bounces: refused at sending, or reported later.
    pub bounced: u64,
    /// Outcome never known (not retried; see "resend").
    pub unknown: u64,
    /// Recipients who opened at least once (a person, not a prefetcher).
    pub unique_opens: u64,
    /// Opens by prefetchers and scanners (each one), not counted as opens.
    pub machine_opens: u64,
    pub unique_clicks: u64,
    pub unsubscribes: u64,
    pub complaints: u64,
    /// Oldest first; hours with nothing are left out.
    pub hourly: Vec<HourStats>,
}

pub async fn campaign_stats(
    state: &AppState,
    account: AccountId,
    id: CampaignId,
) -> Result<CampaignStats, ApiError> {
    let counts = state.store.recipient_counts(account, id).await?;
    let mut stats = CampaignStats {
        recipients: counts.total(),
        queued: counts.queued,
        sending: counts.sending,
        sent: counts.sent,
        failed: counts.failed,
        bounced: counts.bounced,
        unknown: counts.unknown,
        ..CampaignStats::default()
    };
    let mut hours: BTreeMap<jiff::Timestamp, HourStats> = BTreeMap::new();
    for b in state.store.campaign_activity(account, id).await? {
        let hour = hours.entry(b.hour).or_insert_with(|| HourStats {
            hour: b.hour.to_string(),
            ..HourStats::default()
        });
        let (slot, total) = match b.kind.as_str() {
            "sent" => (&mut hour.sent, None),
            "failed" => (&mut hour.failed, None),
            "bounced" => (&mut hour.bounced, None),
            "unknown" => (&mut hour.unknown, None),
            "open" => (&mut hour.opens, Some(&mut stats.unique_opens)),
            "machine_open" => (&mut hour.machine_opens, Some(&mut stats.machine_opens)),
            "click" => (&mut hour.clicks, Some(&mut stats.unique_clicks)),
            "unsubscribe" => (&mut hour.unsubscribes, Some(&mut stats.unsubscribes)),
            "complaint" => (&mut hour.complaints, Some(&mut stats.complaints)),
            _ => continue,
        };
        *slot += b.n;
        if let Some(total) = total {
            *total += b.n;
        }
    }
    stats.hourly = hours.into_values().collect();
    Ok(stats)
}
