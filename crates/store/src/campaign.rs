//! Campaign rows: a campaign, its frozen recipients and their delivery status.

use jiff::Timestamp;
use segmentd_rules::SegmentId;

use crate::{AccountId, ContactId, UnreachableCounts};

pub type CampaignId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Push,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            "push" => Some(Channel::Push),
            _ => None,
        }
    }
}

/// `Draft` → (`Scheduled` →) `Sending` (recipients frozen) → `Sent` (every recipient
/// has a final status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Sending,
    Sent,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Sent => "sent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(CampaignStatus::Draft),
            "scheduled" => Some(CampaignStatus::Scheduled),
            "sending" => Some(CampaignStatus::Sending),
            "sent" => Some(CampaignStatus::Sent),
            _ => None,
        }
    }
}

/// What a new campaign stores, validated by the caller. A `scheduled_at` makes it
/// `Scheduled`, otherwise it is a `Draft`.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignDraft {
    pub name: String,
    pub channel: Channel,
    /// The channel's content (subject, bodies, text…), as JSON.
    pub content: serde_json::Value,
    pub targets: Vec<SegmentId>,
    pub exclusions: Vec<SegmentId>,
    pub scheduled_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub account_id: AccountId,
    pub name: String,
    pub channel: Channel,
    pub content: serde_json::Value,
    pub targets: Vec<SegmentId>,
    pub exclusions: Vec<SegmentId>,
    pub status: CampaignStatus,
    pub scheduled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// When the recipients were computed and frozen.
    pub frozen_at: Option<Timestamp>,
    /// When the last recipient got a final status.
    pub sent_at: Option<Timestamp>,
    /// The excluded counts by reason at freezing time, as JSON.
    pub excluded: Option<serde_json::Value>,
}

/// `Sending` is written (and committed) just before a delivery attempt: a recipient
/// found in it after a crash may or may not have been reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    Queued,
    Sending,
    Sent,
    Failed,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Queued => "queued",
            RecipientStatus::Sending => "sending",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(RecipientStatus::Queued),
            "sending" => Some(RecipientStatus::Sending),
            "sent" => Some(RecipientStatus::Sent),
            "failed" => Some(RecipientStatus::Failed),
            _ => None,
        }
    }
}

/// One recipient as frozen: the contact and the address used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    pub contact_id: ContactId,
    pub external_id: String,
    pub address: String,
}

/// What [`Store::freeze_campaign_for`](crate::Store::freeze_campaign_for) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FreezeOutcome {
    /// `false` (and nothing stored) when the campaign is unknown or already frozen.
    pub frozen: bool,
    /// Recipients stored.
    pub stored: u64,
    /// Listed contacts left out because they cannot be reached on the campaign's channel
    /// now (they may have unsubscribed since the caller chose them), by reason.
    pub unreachable: UnreachableCounts,
    /// Listed ids with no contact in the account (deleted since they were chosen).
    pub unknown: u64,
}

impl FreezeOutcome {
    /// Listed contacts that were not stored: unreachable or unknown.
    pub fn skipped(&self) -> u64 {
        self.unreachable.total() + self.unknown
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub contact_id: ContactId,
    pub external_id: String,
    pub address: String,
    pub status: RecipientStatus,
    pub reason: Option<String>,
    pub attempts: u32,
}

/// How many of a campaign's frozen recipients are in each delivery status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipientCounts {
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
}

impl RecipientCounts {
    pub fn total(&self) -> u64 {
        self.queued + self.sending + self.sent + self.failed
    }

    /// Adds `n` recipients of the status spelled `status`.
    pub fn add(&mut self, status: &str, n: u64) {
        match RecipientStatus::parse(status) {
            Some(RecipientStatus::Queued) => self.queued += n,
            Some(RecipientStatus::Sending) => self.sending += n,
            Some(RecipientStatus::Sent) => self.sent += n,
            Some(RecipientStatus::Failed) => self.failed += n,
            None => {}
        }
    }
}

/// A campaign the delivery worker must look at: `Sending`, or `Scheduled` and due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignToRun {
    pub account_id: AccountId,
    pub id: CampaignId,
    pub status: CampaignStatus,
}
