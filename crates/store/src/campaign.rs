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

/// `Draft` → (`Scheduled` →) `Sending` (recipients frozen) ⇄ `Paused`, → `Sent` (every
/// recipient has a final status). A scheduled campaign can be `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Sending,
    Paused,
    Sent,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Sent => "sent",
            CampaignStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(CampaignStatus::Draft),
            "scheduled" => Some(CampaignStatus::Scheduled),
            "sending" => Some(CampaignStatus::Sending),
            "paused" => Some(CampaignStatus::Paused),
            "sent" => Some(CampaignStatus::Sent),
            "cancelled" => Some(CampaignStatus::Cancelled),
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
    /// At most this many messages a second for this campaign (besides the global limit).
    pub rate_per_second: Option<u32>,
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
    /// Why it is paused, when it is.
    pub status_reason: Option<String>,
    pub rate_per_second: Option<u32>,
}

/// What a guarded campaign change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Done; the campaign as it is now (`None` after a delete).
    Done(Option<Campaign>),
    NotFound,
    /// Refused: the campaign is in this status, which the change does not start from.
    Refused(CampaignStatus),
}

/// `Sending` is written (and committed) just before a delivery attempt. An attempt whose
/// outcome never came back (a timeout after the message went out, a crash during it) is
/// `Unknown` and never retried blindly. `Bounced` is a hard bounce of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    Queued,
    Sending,
    Sent,
    Failed,
    Bounced,
    Unknown,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Queued => "queued",
            RecipientStatus::Sending => "sending",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Failed => "failed",
            RecipientStatus::Bounced => "bounced",
            RecipientStatus::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(RecipientStatus::Queued),
            "sending" => Some(RecipientStatus::Sending),
            "sent" => Some(RecipientStatus::Sent),
            "failed" => Some(RecipientStatus::Failed),
            "bounced" => Some(RecipientStatus::Bounced),
            "unknown" => Some(RecipientStatus::Unknown),
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
    /// When a queued recipient is due again after a temporary failure.
    pub next_attempt_at: Option<Timestamp>,
    /// When it was first tried: temporary failures are retried for a bounded time.
    pub first_attempt_at: Option<Timestamp>,
}

/// One attempt's result, as delivery records it (many in one transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub contact_id: ContactId,
    /// `Queued` (a retry is due at `next_attempt_at`, or the attempt never started),
    /// `Sent`, `Failed`, `Bounced` or `Unknown`.
    pub status: RecipientStatus,
    pub reason: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
}

/// Something a recipient did (or that happened to them) after delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engagement {
    /// A human open (the first one counts).
    Open,
    /// An open by a known prefetcher or proxy (every one counts; see docs/semantics.md).
    MachineOpen,
    Click,
    Unsubscribe,
    Complaint,
    /// A bounce reported after the message was accepted.
    Bounce,
}

impl Engagement {
    /// The activity kind it is counted under.
    pub fn kind(self) -> &'static str {
        match self {
            Engagement::Open => "open",
            Engagement::MachineOpen => "machine_open",
            Engagement::Click => "click",
            Engagement::Unsubscribe => "unsubscribe",
            Engagement::Complaint => "complaint",
            Engagement::Bounce => "bounced",
        }
    }
}

/// How many things of one kind happened in a campaign during one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityBucket {
    /// The hour's start.
    pub hour: Timestamp,
    /// `sent`, `failed`, `bounced`, `unknown`, `open`, `machine_open`, `click`,
    /// `unsubscribe` or `complaint`.
    pub kind: String,
    pub n: u64,
}

/// How many of a campaign's frozen recipients are in each delivery status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipientCounts {
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    pub bounced: u64,
    pub unknown: u64,
}

impl RecipientCounts {
    pub fn total(&self) -> u64 {
        self.queued + self.sending + self.sent + self.failed + self.bounced + self.unknown
    }

    /// Adds `n` recipients of the status spelled `status`.
    pub fn add(&mut self, status: &str, n: u64) {
        match RecipientStatus::parse(status) {
            Some(RecipientStatus::Queued) => self.queued += n,
            Some(RecipientStatus::Sending) => self.sending += n,
            Some(RecipientStatus::Sent) => self.sent += n,
            Some(RecipientStatus::Failed) => self.failed += n,
            Some(RecipientStatus::Bounced) => self.bounced += n,
            Some(RecipientStatus::Unknown) => self.unknown += n,
            None => {}
        }
    }
}

/// A campaign the delivery worker must look at: `Sending` or `Paused`, or `Scheduled`
/// and due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignToRun {
    pub account_id: AccountId,
    pub id: CampaignId,
    pub status: CampaignStatus,
}
