//! The rows the store keeps, as domain types. Wire formats live in the server.

use std::collections::BTreeMap;

use jiff::Timestamp;
use segmentd_rules::{FieldType, FieldValue, SegmentId, SystemEventKind};
use serde::{Deserialize, Serialize};

use crate::campaign::Channel;

pub type AccountId = i64;
pub type ContactId = i64;
pub type UserId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    /// An IANA time zone name, checked when the account is created.
    pub time_zone: String,
}

/// An API key as listed: its name and the start of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The first 16 hex digits of the key's hash: public, stable, names it in the API.
    pub id: String,
    pub account_id: AccountId,
    pub name: String,
    /// The key's first characters, to recognise it (empty for keys made before names).
    pub prefix: String,
    /// Whether it may list, create and revoke the account's keys.
    pub admin: bool,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// What a new API key stores: the hash of the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailStatus {
    Subscribed,
    Unsubscribed,
    Bounced,
}

impl EmailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailStatus::Subscribed => "subscribed",
            EmailStatus::Unsubscribed => "unsubscribed",
            EmailStatus::Bounced => "bounced",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscribed" => Some(EmailStatus::Subscribed),
            "unsubscribed" => Some(EmailStatus::Unsubscribed),
            "bounced" => Some(EmailStatus::Bounced),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsStatus {
    Subscribed,
    Unsubscribed,
}

impl SmsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsStatus::Subscribed => "subscribed",
            SmsStatus::Unsubscribed => "unsubscribed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscribed" => Some(SmsStatus::Subscribed),
            "unsubscribed" => Some(SmsStatus::Unsubscribed),
            _ => None,
        }
    }
}

/// A contact as stored. `email_status`/`sms_status` are `None` until set explicitly;
/// the effective status is then "subscribed" when the address is present (see
/// [`Contact::effective_email_status`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub external_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub email_status: Option<EmailStatus>,
    pub sms_status: Option<SmsStatus>,
    pub push_tokens: Vec<String>,
    pub fields: BTreeMap<String, FieldValue>,
}

impl Contact {
    pub fn effective_email_status(&self) -> Option<EmailStatus> {
        self.email
            .as_ref()
            .map(|_| self.email_status.unwrap_or(EmailStatus::Subscribed))
    }
    pub fn effective_sms_status(&self) -> Option<SmsStatus> {
        self.phone
            .as_ref()
            .map(|_| self.sms_status.unwrap_or(SmsStatus::Subscribed))
    }

    /// The address this contact is reached at on `channel`, or why it cannot be: e-mail
    /// needs an address whose effective status is subscribed, SMS a phone number whose
    /// effective status is subscribed, push at least one token (all of them, joined by
    /// `,`). The one place this rule lives: campaign audiences and freezing use it.
    pub fn address(&self, channel: Channel) -> Result<String, Unreachable> {
        match channel {
            Channel::Email => match (&self.email, self.effective_email_status()) {
                (Some(email), Some(EmailStatus::Subscribed)) => Ok(email.clone()),
                (Some(_), Some(EmailStatus::Unsubscribed)) => Err(Unreachable::Unsubscribed),
                (Some(_), Some(EmailStatus::Bounced)) => Err(Unreachable::Bounced),
                _ => Err(Unreachable::NoAddress),
            },
            Channel::Sms => match (&self.phone, self.effective_sms_status()) {
                (Some(phone), Some(SmsStatus::Subscribed)) => Ok(phone.clone()),
                (Some(_), Some(SmsStatus::Unsubscribed)) => Err(Unreachable::Unsubscribed),
                _ => Err(Unreachable::NoAddress),
            },
            Channel::Push if self.push_tokens.is_empty() => Err(Unreachable::NoAddress),
            Channel::Push => Ok(self.push_tokens.join(",")),
        }
    }
}

/// Why a contact cannot be reached on a channel ([`Contact::address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    /// No e-mail address, phone number or push token for the channel.
    NoAddress,
    /// The address is there but its effective status is unsubscribed.
    Unsubscribed,
    /// The e-mail address bounced.
    Bounced,
}

/// Contacts that cannot be reached, counted by [`Unreachable`] reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnreachableCounts {
    pub no_address: u64,
    pub unsubscribed: u64,
    pub bounced: u64,
}

impl UnreachableCounts {
    pub fn add(&mut self, why: Unreachable) {
        match why {
            Unreachable::NoAddress => self.no_address += 1,
            Unreachable::Unsubscribed => self.unsubscribed += 1,
            Unreachable::Bounced => self.bounced += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.no_address + self.unsubscribed + self.bounced
    }
}

/// Where an account's data stood when an index snapshot was taken: what the store had
/// received up to then. The server writes it into the snapshot's header and, at start,
/// replays only what came after it (`Store::contacts_changed_since`,
/// `contacts_deleted_since`, `events_since`). Opaque positions: compare them only
/// through those calls. Taken with [`Store::watermark`](crate::Store::watermark) while
/// none of the account's writes is in flight (the server's write gate).
///
/// There is no `Default`: a zero watermark is not "before everything" (contacts stored
/// before migration 0006 all have revision 0); a full rebuild reads `all_contacts` and
/// `all_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The account's newest contact revision (`contacts.rev`).
    pub contact_rev: i64,
    /// The newest position in the contact deletion log.
    pub tombstone_seq: i64,
    /// The newest event id. Event ids are shared by all accounts: this is a position in
    /// the store's arrival order, not a count of the account's events.
    pub event_id: i64,
    /// The newest position in the membership change log (shared by all accounts too).
    pub change_seq: i64,
}

/// A change to one optional attribute.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T: Clone> Patch<T> {
    pub fn apply(&self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(v) => Some(v.clone()),
        }
    }
}

/// One item of a contact upsert batch, already validated by the caller.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactUpsert {
    pub external_id: String,
    pub email: Patch<String>,
    pub phone: Patch<String>,
    pub email_status: Patch<EmailStatus>,
    pub sms_status: Patch<SmsStatus>,
    pub push_tokens: Patch<Vec<String>>,
    /// Field key → new value; `None` clears the value. Keys not listed are kept.
    pub fields: BTreeMap<String, Option<FieldValue>>,
}

/// What an event carries besides its contact, time and client id.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    System {
        kind: SystemEventKind,
        campaign: Option<String>,
        url: Option<String>,
    },
    Custom {
        name: String,
        properties: serde_json::Map<String, serde_json::Value>,
    },
    Visit {
        url: String,
    },
}

/// One item of an event batch. `contact` is the contact's external id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub client_id: Option<String>,
    pub contact: String,
    pub timestamp: Timestamp,
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub client_id: Option<String>,
    pub contact_id: ContactId,
    pub timestamp: Timestamp,
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    pub accepted: u64,
    pub duplicates: u64,
    /// The stored id of each event's contact, in batch order: resolved once here so
    /// that the caller's index need not look the external ids up again.
    pub contacts: Vec<ContactId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: SegmentId,
    pub name: String,
    pub description: String,
    /// The rule in its canonical JSON form.
    pub rule: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDraft {
    pub name: String,
    pub description: String,
    pub rule: serde_json::Value,
}

/// A panel user. `password_hash` is an argon2 PHC string made by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    /// As given when the user was created; unique across the installation, ignoring case.
    pub email: String,
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// A panel session, found by the hash of its cookie token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub account_id: AccountId,
    /// The signed-in user's e-mail address.
    pub email: String,
    /// Sent back with every state-changing request of the session.
    pub csrf_token: String,
    pub expires_at: Timestamp,
    /// It also ends when unused until then (pushed forward as it is used).
    pub idle_until: Option<Timestamp>,
}

/// What a new session stores: the hash of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Hex SHA-256 of the cookie's token.
    pub token_hash: String,
    pub user_id: UserId,
    pub account_id: AccountId,
    pub csrf_token: String,
    pub expires_at: Timestamp,
    pub idle_until: Option<Timestamp>,
}

/// One change of a saved segment's membership, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub segment: SegmentId,
    pub contact: ContactId,
    pub external_id: String,
    /// `true`: the contact entered the segment; `false`: it exited.
    pub entered: bool,
    pub at: Timestamp,
}

/// A recorded change with its position in the log (the feed's cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChange {
    pub seq: i64,
    pub change: ChangeRecord,
}

/// How many contacts entered and exited a segment in one 15-minute bucket. Every time
/// zone's offset is a whole number of quarter hours, so buckets add up to local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeBucket {
    pub start: Timestamp,
    pub entered: u64,
    pub exited: u64,
}

pub const CHANGE_BUCKET_MS: i64 = 15 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(
        email: Option<EmailStatus>,
        phone: Option<SmsStatus>,
        has_email: bool,
        has_phone: bool,
        tokens: &[&str],
    ) -> Contact {
        Contact {
            id: 1,
            external_id: "c".to_owned(),
            email: has_email.then(|| "c@example.com".to_owned()),
            phone: has_phone.then(|| "+48100".to_owned()),
            email_status: email,
            sms_status: phone,
            push_tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn a_contacts_address_per_channel_follows_its_effective_status() {
        use EmailStatus as E;
        use SmsStatus as S;
        use Unreachable::*;
        let ok = |s: &str| Ok(s.to_owned());
        let cases: Vec<(Contact, Channel, Result<String, Unreachable>)> = vec![
            // E-mail: an address whose effective status is subscribed.
            (
                contact(None, None, true, false, &[]),
                Channel::Email,
                ok("c@example.com"),
            ),
            (
                contact(Some(E::Subscribed), None, true, false, &[]),
                Channel::Email,
                ok("c@example.com"),
            ),
            (
                contact(Some(E::Unsubscribed), None, true, false, &[]),
                Channel::Email,
                Err(Unsubscribed),
            ),
            (
                contact(Some(E::Bounced), None, true, false, &[]),
                Channel::Email,
                Err(Bounced),
            ),
            (
                contact(None, None, false, true, &["t"]),
                Channel::Email,
                Err(NoAddress),
            ),
            (
                contact(Some(E::Subscribed), None, false, false, &[]),
                Channel::Email,
                Err(NoAddress),
            ),
            (
                contact(Some(E::Bounced), None, false, false, &[]),
                Channel::Email,
                Err(NoAddress),
            ),
            // SMS: a phone number whose effective status is subscribed.
            (
                contact(None, None, false, true, &[]),
                Channel::Sms,
                ok("+48100"),
            ),
            (
                contact(None, Some(S::Subscribed), false, true, &[]),
                Channel::Sms,
                ok("+48100"),
            ),
            (
                contact(None, Some(S::Unsubscribed), false, true, &[]),
                Channel::Sms,
                Err(Unsubscribed),
            ),
            (
                contact(None, Some(S::Subscribed), true, false, &[]),
                Channel::Sms,
                Err(NoAddress),
            ),
            // Push: every token, joined by commas; statuses do not matter.
            (
                contact(
                    Some(E::Unsubscribed),
                    Some(S::Unsubscribed),
                    true,
                    true,
                    &["a", "b"],
                ),
                Channel::Push,
                ok("a,b"),
            ),
            (
                contact(None, None, false, false, &["only"]),
                Channel::Push,
                ok("only"),
            ),
            (
                contact(None, None, true, true, &[]),
                Channel::Push,
                Err(NoAddress),
            ),
        ];
        for (i, (c, channel, expected)) in cases.into_iter().enumerate() {
            assert_eq!(c.address(channel), expected, "case {i}: {channel:?} {c:?}");
        }
    }

    #[test]
    fn unreachable_contacts_are_counted_by_reason() {
        let mut counts = UnreachableCounts::default();
        for why in [
            Unreachable::NoAddress,
            Unreachable::Bounced,
            Unreachable::NoAddress,
        ] {
            counts.add(why);
        }
        assert_eq!(
            counts,
            UnreachableCounts {
                no_address: 2,
                unsubscribed: 0,
                bounced: 1
            }
        );
        assert_eq!(counts.total(), 3);
    }

    #[test]
    fn a_watermark_round_trips_through_json() {
        let w = Watermark {
            contact_rev: 7,
            tombstone_seq: 3,
            event_id: 1 << 40,
            change_seq: 12,
        };
        let text = serde_json::to_string(&w).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"contact_rev":7,"tombstone_seq":3,"event_id":1099511627776,"change_seq":12}"#
        );
        assert_eq!(serde_json::from_str::<Watermark>(&text).ok(), Some(w));
    }
}
