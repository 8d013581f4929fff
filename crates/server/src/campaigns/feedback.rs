//! What comes back after sending: bounces and complaints reported by the mail provider
//! (or read from a DSN by whatever receives them), and SMS replies.
//!
//! - A hard bounce makes the address `bounced` (later campaigns leave it out, reason
//!   `bounced`) and, when the message is known, counts in its campaign.
//! - A complaint (spam report) unsubscribes the address and counts in its campaign.
//! - An SMS reply of STOP (or a synonym) opts the number out of SMS; START opts it in.
//!
//! A report names the message by its Message-ID (`<c{campaign}.r{contact}@domain>`,
//! which segmentd gave it), or only the address.

use segmentd_store::{
    Account, CampaignId, Channel, ContactId, ContactUpsert, EmailStatus, Engagement, Patch,
    SmsStatus,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::writes;

/// The SMS replies that opt out (the usual carrier keywords), and those that opt in.
const STOP_WORDS: [&str; 9] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
    "ARRET",
];
const START_WORDS: [&str; 4] = ["START", "UNSTOP", "YES", "SUBSCRIBE"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// A permanent failure to deliver: the address does not exist.
    Bounce,
    /// The recipient marked the message as spam.
    Complaint,
}

/// One report: the address, and the message when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailReport {
    pub kind: Report,
    pub email: Option<String>,
    pub message_id: Option<String>,
}

/// What a batch of reports did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Applied {
    /// Reports that found their contact(s) and were applied.
    pub applied: u64,
    /// Reports naming no known message or address of this account.
    pub unmatched: u64,
}

/// `(campaign, contact)` from a Message-ID segmentd made.
pub fn parse_message_id(id: &str) -> Option<(CampaignId, ContactId)> {
    let local = id.trim().trim_start_matches('<').split('@').next()?;
    let (c, r) = local.strip_prefix('c')?.split_once(".r")?;
    Some((c.parse().ok()?, r.parse().ok()?))
}

pub async fn apply_email_reports(
    state: &AppState,
    account: &Account,
    reports: &[EmailReport],
) -> Result<Applied, ApiError> {
    let mut applied = Applied::default();
    let now = state.clock.now();
    for report in reports {
        let by_message = report.message_id.as_deref().and_then(parse_message_id);
        let contacts = match by_message {
            Some((_, contact)) => state.store.contacts_by_ids(account.id, &[contact]).await?,
            None => match &report.email {
                Some(email) => {
                    state
                        .store
                        .contacts_by_address(account.id, Channel::Email, email.trim())
                        .await?
                }
                None => Vec::new(),
            },
        };
        if contacts.is_empty() {
            applied.unmatched += 1;
            continue;
        }
        let status = match report.kind {
            Report::Bounce => EmailStatus::Bounced,
            Report::Complaint => EmailStatus::Unsubscribed,
        };
        let upserts: Vec<ContactUpsert> = contacts
            .iter()
            .map(|c| ContactUpsert {
                external_id: c.external_id.clone(),
                email_status: Patch::Set(status),
                ..ContactUpsert::default()
            })
            .collect();
        writes::upsert_contacts(state, account, &upserts).await?;
        if let Some((campaign, contact)) = by_message {
            let engagement = match report.kind {
                Report::Bounce => Engagement::Bounce,
                Report::Complaint => Engagement::Complaint,
            };
            state
                .store
                .record_engagement(account.id, campaign, contact, engagement, now)
                .await?;
        }
        applied.applied += 1;
    }
    Ok(applied)
}

/// What an SMS reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmsReply {
    /// A stop word: the number no longer gets SMS.
    OptedOut,
    /// A start word: the number gets SMS again.
    OptedIn,
    /// Any other text: nothing changes.
    Ignored,
}

/// The keyword a reply is, by its first word in any case (`stop`, `Stop please`).
pub fn sms_keyword(text: &str) -> SmsReply {
    let word = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_uppercase();
    if STOP_WORDS.contains(&word.as_str()) {
        SmsReply::OptedOut
    } else if START_WORDS.contains(&word.as_str()) {
        SmsReply::OptedIn
    } else {
        SmsReply::Ignored
    }
}

/// Applies an SMS reply from `from` to every contact with that phone number; how many
/// contacts changed, and what the reply meant.
pub async fn apply_sms_reply(
    state: &AppState,
    account: &Account,
    from: &str,
    text: &str,
) -> Result<(SmsReply, u64), ApiError> {
    let reply = sms_keyword(text);
    let status = match reply {
        SmsReply::OptedOut => SmsStatus::Unsubscribed,
        SmsReply::OptedIn => SmsStatus::Subscribed,
        SmsReply::Ignored => return Ok((reply, 0)),
    };
    let contacts = state
        .store
        .contacts_by_address(account.id, Channel::Sms, from.trim())
        .await?;
    let upserts: Vec<ContactUpsert> = contacts
        .iter()
        .map(|c| ContactUpsert {
            external_id: c.external_id.clone(),
            sms_status: Patch::Set(status),
            ..ContactUpsert::default()
        })
        .collect();
    if !upserts.is_empty() {
        writes::upsert_contacts(state, account, &upserts).await?;
    }
    Ok((reply, upserts.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_segmentd_made_name_their_campaign_and_contact() {
        let cases = [
            ("<c12.r345@shop.example>", Some((12, 345))),
            ("c1.r2@x", Some((1, 2))),
            ("<0100018f@email.amazonses.com>", None),
            ("<c1.rx@x>", None),
            ("", None),
        ];
        for (id, expected) in cases {
            assert_eq!(parse_message_id(id), expected, "{id}");
        }
    }

    #[test]
    fn sms_replies_are_read_by_their_first_word_in_any_case() {
        let cases = [
            ("STOP", SmsReply::OptedOut),
            ("stop please", SmsReply::OptedOut),
            (" Unsubscribe.", SmsReply::OptedOut),
            ("cancel", SmsReply::OptedOut),
            ("START", SmsReply::OptedIn),
            ("unstop", SmsReply::OptedIn),
            ("Thanks! Stop by soon", SmsReply::Ignored),
            ("", SmsReply::Ignored),
        ];
        for (text, expected) in cases {
            assert_eq!(sms_keyword(text), expected, "{text:?}");
        }
    }
}
