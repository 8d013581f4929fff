//! Campaign rows as both backends read them, and their decoding.

use crate::common::{ContactRow, FieldTypes, from_ms};
use crate::*;

pub(crate) const CAMPAIGN_COLUMNS: &str = "id, account_id, name, channel, content, targets, exclusions, status, \
     scheduled_at, created_at, frozen_at, sent_at, excluded, status_reason, rate_per_second";

pub(crate) const RECIPIENT_COLUMNS: &str = "contact_id, external_id, address, status, reason, attempts, \
     next_attempt_at, first_attempt_at";

pub(crate) struct CampaignRow {
    id: i64,
    account_id: i64,
    name: String,
    channel: String,
    content: String,
    targets: String,
    exclusions: String,
    status: String,
    scheduled_at: Option<i64>,
    created_at: i64,
    frozen_at: Option<i64>,
    sent_at: Option<i64>,
    excluded: Option<String>,
    status_reason: Option<String>,
    rate_per_second: Option<i64>,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for CampaignRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(CampaignRow {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            name: row.try_get("name")?,
            channel: row.try_get("channel")?,
            content: row.try_get("content")?,
            targets: row.try_get("targets")?,
            exclusions: row.try_get("exclusions")?,
            status: row.try_get("status")?,
            scheduled_at: row.try_get("scheduled_at")?,
            created_at: row.try_get("created_at")?,
            frozen_at: row.try_get("frozen_at")?,
            sent_at: row.try_get("sent_at")?,
            excluded: row.try_get("excluded")?,
            status_reason: row.try_get("status_reason")?,
            rate_per_second: row.try_get("rate_per_second")?,
        })
    }
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("campaign {what}: {e}")))
}

fn opt_ms(ms: Option<i64>) -> Result<Option<jiff::Timestamp>> {
    ms.map(from_ms).transpose()
}

impl CampaignRow {
    pub fn decode(self) -> Result<Campaign> {
        Ok(Campaign {
            id: self.id,
            account_id: self.account_id,
            name: self.name,
            channel: Channel::parse(&self.channel)
                .ok_or_else(|| StoreError::Corrupt(format!("campaign channel {}", self.channel)))?,
            content: json(&self.content, "content")?,
            targets: json(&self.targets, "targets")?,
            exclusions: json(&self.exclusions, "exclusions")?,
            status: CampaignStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("campaign status {}", self.status)))?,
            scheduled_at: opt_ms(self.scheduled_at)?,
            created_at: from_ms(self.created_at)?,
            frozen_at: opt_ms(self.frozen_at)?,
            sent_at: opt_ms(self.sent_at)?,
            excluded: self
                .excluded
                .as_deref()
                .map(|t| json(t, "excluded"))
                .transpose()?,
            status_reason: self.status_reason,
            rate_per_second: self
                .rate_per_second
                .map(|r| u32::try_from(r.max(1)).unwrap_or(u32::MAX)),
        })
    }
}

pub(crate) struct RecipientRow {
    contact_id: i64,
    external_id: String,
    address: String,
    status: String,
    reason: Option<String>,
    attempts: i64,
    next_attempt_at: i64,
    first_attempt_at: Option<i64>,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for RecipientRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(RecipientRow {
            contact_id: row.try_get("contact_id")?,
            external_id: row.try_get("external_id")?,
            address: row.try_get("address")?,
            status: row.try_get("status")?,
            reason: row.try_get("reason")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            first_attempt_at: row.try_get("first_attempt_at")?,
        })
    }
}

impl RecipientRow {
    pub fn decode(self) -> Result<Recipient> {
        Ok(Recipient {
            contact_id: self.contact_id,
            external_id: self.external_id,
            address: self.address,
            status: RecipientStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("recipient status {}", self.status)))?,
            reason: self.reason,
            attempts: u32::try_from(self.attempts.max(0)).unwrap_or(u32::MAX),
            next_attempt_at: match self.next_attempt_at {
                0 => None,
                ms => Some(from_ms(ms)?),
            },
            first_attempt_at: opt_ms(self.first_attempt_at)?,
        })
    }
}

/// `value` as JSON text, to store or to bind a whole list as one parameter.
pub(crate) fn to_json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// How many contact ids `freeze_campaign_for` reads (and inserts as recipients) at a
/// time: the contacts in memory at once, whatever the campaign's size.
pub(crate) const FREEZE_CHUNK: usize = 5_000;

/// The ids a freeze reads: sorted (chunks then read nearby rows) and each once.
pub(crate) fn freeze_ids(contacts: &[ContactId]) -> Vec<ContactId> {
    let mut ids = contacts.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The recipients among one chunk's contacts (`asked` distinct ids were looked up,
/// `found` came back), counting the unreachable and unknown ones into `outcome`.
pub(crate) fn chunk_recipients(
    asked: usize,
    found: Vec<Contact>,
    channel: Channel,
    outcome: &mut FreezeOutcome,
) -> Vec<NewRecipient> {
    outcome.unknown += asked.saturating_sub(found.len()) as u64;
    let mut recipients = Vec::with_capacity(found.len());
    for contact in found {
        match contact.address(channel) {
            Ok(address) => recipients.push(NewRecipient {
                contact_id: contact.id,
                external_id: contact.external_id,
                address,
            }),
            Err(why) => outcome.unreachable.add(why),
        }
    }
    recipients
}

/// A contact row read for its addresses only (see `ADDRESS_COLUMNS`).
pub(crate) fn decode_for_address(row: ContactRow) -> Result<Contact> {
    row.decode(&FieldTypes::new())
}

/// The start of the hour `ms` falls in, as activity is counted.
pub(crate) fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(3_600_000)
}

/// How many outcomes of each final kind a batch holds, for the activity counts.
pub(crate) fn outcome_kinds(outcomes: &[Outcome]) -> Vec<(&'static str, i64)> {
    let mut counts: Vec<(&'static str, i64)> = Vec::new();
    for o in outcomes {
        let kind = match o.status {
            RecipientStatus::Sent => "sent",
            RecipientStatus::Failed => "failed",
            RecipientStatus::Bounced => "bounced",
            RecipientStatus::Unknown => "unknown",
            RecipientStatus::Queued | RecipientStatus::Sending => continue,
        };
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts
}

/// The SQL condition (on `contacts c`) that a contact can still be reached on `channel`:
/// the rule of [`Contact::address`], for a recipient sent again.
pub(crate) fn reachable_sql(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => {
            "c.email IS NOT NULL AND (c.email_status IS NULL OR c.email_status = 'subscribed')"
        }
        Channel::Sms => {
            "c.phone IS NOT NULL AND (c.sms_status IS NULL OR c.sms_status = 'subscribed')"
        }
        Channel::Push => "c.push_tokens <> '[]'",
    }
}

/// The SQL list of `statuses`, quoted (they are our own fixed words, never user text).
pub(crate) fn status_list(statuses: &[RecipientStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQL list of campaign `statuses`, quoted.
pub(crate) fn campaign_status_list(statuses: &[CampaignStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
