//! What a fan-out message carries: the log range one write of the owner made
//! (`from` exclusive, `to` inclusive) and, when the write only touched contacts and
//! events, the very slices the owner applied to its index, so that a follower applies
//! them as they are, without reading PostgreSQL. Other writes (fields, segments) carry
//! the range alone and the follower reads their log entries.
//!
//! The types mirror the index's slices field for field; they are only ever read from a
//! node of the same cluster, which built them from values it had already parsed.
//! Timestamps travel as integer nanoseconds: exact, and cheaper to read than text.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use segmentd_engine::Event;
use segmentd_rules::{CustomEvent, FieldValue, SystemEvent, SystemEventKind, Visit};
use segmentd_store::{Contact, ContactId, EmailStatus, SmsStatus};
use serde::{Deserialize, Serialize};

use crate::index::Slice;

#[derive(Debug, Serialize, Deserialize)]
pub struct Change {
    /// The log sequence the write started after.
    pub from: i64,
    /// The write's last log sequence.
    pub to: i64,
    /// What the owner applied; `None`: read the log entries `from + 1 ..= to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slices: Option<Vec<WireSlice>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WireSlice {
    Contacts(Vec<WireContact>),
    Deleted(ContactId),
    Events(Vec<(ContactId, WireEvent)>),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireContact {
    id: ContactId,
    external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_status: Option<EmailStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sms_status: Option<SmsStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    push_tokens: Vec<String>,
    fields: BTreeMap<String, WireValue>,
}

#[derive(Debug, Serialize, Deserialize)]
enum WireValue {
    Text(String),
    Number(f64),
    Date(Date),
    Boolean(bool),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WireEvent {
    System {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        kind: SystemEventKind,
        #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
        at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    Custom {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        name: String,
        #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
        at: Timestamp,
        properties: serde_json::Map<String, serde_json::Value>,
    },
    Visit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        url: String,
        #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
        at: Timestamp,
    },
}

/// The slices as a message can carry them; `None` when one of them cannot be (a field
/// or segment change: the follower reads those from the log).
pub fn carry(slices: &[Slice]) -> Option<Vec<WireSlice>> {
    slices
        .iter()
        .map(|slice| {
            Some(match slice {
                Slice::Contacts(contacts) => {
                    WireSlice::Contacts(contacts.iter().map(WireContact::from).collect())
                }
                Slice::ContactDeleted(id) => WireSlice::Deleted(*id),
                Slice::Events(events) => WireSlice::Events(
                    events
                        .iter()
                        .map(|(id, e)| (*id, WireEvent::from(e)))
                        .collect(),
                ),
                Slice::FieldDeleted(_)
                | Slice::Segment(..)
                | Slice::Tick
                | Slice::Reevaluate(_) => {
                    return None;
                }
            })
        })
        .collect()
}

/// The slices a message carried, to apply as the owner did.
pub fn slices(wire: Vec<WireSlice>) -> Vec<Slice> {
    wire.into_iter()
        .map(|w| match w {
            WireSlice::Contacts(c) => Slice::Contacts(c.into_iter().map(Contact::from).collect()),
            WireSlice::Deleted(id) => Slice::ContactDeleted(id),
            WireSlice::Events(e) => {
                Slice::Events(e.into_iter().map(|(id, e)| (id, Event::from(e))).collect())
            }
        })
        .collect()
}

impl From<&Contact> for WireContact {
    fn from(c: &Contact) -> Self {
        WireContact {
            id: c.id,
            external_id: c.external_id.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            email_status: c.email_status,
            sms_status: c.sms_status,
            push_tokens: c.push_tokens.clone(),
            fields: c
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), WireValue::from(v)))
                .collect(),
        }
    }
}

impl From<WireContact> for Contact {
    fn from(c: WireContact) -> Self {
        Contact {
            id: c.id,
            external_id: c.external_id,
            email: c.email,
            phone: c.phone,
            email_status: c.email_status,
            sms_status: c.sms_status,
            push_tokens: c.push_tokens,
            fields: c
                .fields
                .into_iter()
                .map(|(k, v)| (k, FieldValue::from(v)))
                .collect(),
        }
    }
}

impl From<&FieldValue> for WireValue {
    fn from(v: &FieldValue) -> Self {
        match v {
            FieldValue::Text(s) => WireValue::Text(s.clone()),
            FieldValue::Number(n) => WireValue::Number(*n),
            FieldValue::Date(d) => WireValue::Date(*d),
            FieldValue::Boolean(b) => WireValue::Boolean(*b),
        }
    }
}

impl From<WireValue> for FieldValue {
    fn from(v: WireValue) -> Self {
        match v {
            WireValue::Text(s) => FieldValue::Text(s),
            WireValue::Number(n) => FieldValue::Number(n),
            WireValue::Date(d) => FieldValue::Date(d),
            WireValue::Boolean(b) => FieldValue::Boolean(b),
        }
    }
}

impl From<&Event> for WireEvent {
    fn from(e: &Event) -> Self {
        match e {
            Event::System(s) => WireEvent::System {
                id: s.id.clone(),
                kind: s.kind,
                at: s.timestamp,
                campaign: s.campaign.clone(),
                url: s.url.clone(),
            },
            Event::Custom(c) => WireEvent::Custom {
                id: c.id.clone(),
                name: c.name.clone(),
                at: c.timestamp,
                properties: c.properties.clone(),
            },
            Event::Visit(v) => WireEvent::Visit {
                id: v.id.clone(),
                url: v.url.clone(),
                at: v.timestamp,
            },
        }
    }
}

impl From<WireEvent> for Event {
    fn from(e: WireEvent) -> Self {
        match e {
            WireEvent::System {
                id,
                kind,
                at,
                campaign,
                url,
            } => Event::System(SystemEvent {
                id,
                kind,
                timestamp: at,
                campaign,
                url,
            }),
            WireEvent::Custom {
                id,
                name,
                at,
                properties,
            } => Event::Custom(CustomEvent {
                id,
                name,
                timestamp: at,
                properties,
            }),
            WireEvent::Visit { id, url, at } => Event::Visit(Visit {
                id,
                url,
                timestamp: at,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        Contact {
            id: 7,
            external_id: "c-7".into(),
            email: Some("a@example.com".into()),
            phone: None,
            email_status: Some(EmailStatus::Subscribed),
            sms_status: None,
            push_tokens: vec!["t1".into()],
            fields: BTreeMap::from([
                ("age".to_owned(), FieldValue::Number(41.5)),
                ("city".to_owned(), FieldValue::Text("Łódź".into())),
                (
                    "born".to_owned(),
                    FieldValue::Date(jiff::civil::date(1985, 2, 28)),
                ),
                ("vip".to_owned(), FieldValue::Boolean(true)),
            ]),
        }
    }

    fn events() -> Vec<(ContactId, Event)> {
        let at: Timestamp = "2026-12-01T10:00:00.123456Z".parse().expect("a timestamp");
        let mut properties = serde_json::Map::new();
        properties.insert("amount".into(), serde_json::json!(12.5));
        properties.insert("tags".into(), serde_json::json!(["a", "b"]));
        vec![
            (
                7,
                Event::System(SystemEvent {
                    id: Some("m1".into()),
                    kind: SystemEventKind::MailClick,
                    timestamp: at,
                    campaign: Some("spring".into()),
                    url: Some("https://example.com/x".into()),
                }),
            ),
            (
                7,
                Event::Custom(CustomEvent {
                    id: None,
                    name: "purchase".into(),
                    timestamp: at,
                    properties,
                }),
            ),
            (
                8,
                Event::Visit(Visit {
                    id: None,
                    url: "/pricing".into(),
                    timestamp: at,
                }),
            ),
        ]
    }

    #[test]
    fn contact_and_event_slices_cross_the_wire_unchanged() {
        let sent = vec![
            Slice::Contacts(vec![contact()]),
            Slice::Events(events()),
            Slice::ContactDeleted(9),
        ];
        let change = Change {
            from: 4,
            to: 6,
            slices: carry(&sent),
        };
        let bytes = serde_json::to_vec(&change).expect("encodes");
        let read: Change = serde_json::from_slice(&bytes).expect("decodes");
        assert_eq!((read.from, read.to), (4, 6));
        let got = slices(read.slices.expect("slices were carried"));
        assert_eq!(got.len(), 3);
        match (&got[0], &got[1], &got[2]) {
            (Slice::Contacts(c), Slice::Events(e), Slice::ContactDeleted(9)) => {
                assert_eq!(c, &vec![contact()]);
                assert_eq!(e, &events());
            }
            other => panic!("unexpected slices {other:?}"),
        }
    }

    #[test]
    fn field_and_segment_changes_are_not_carried() {
        for slices in [
            vec![Slice::FieldDeleted("age".into())],
            vec![Slice::Contacts(vec![contact()]), Slice::Segment(3, None)],
        ] {
            assert!(carry(&slices).is_none(), "{slices:?}");
        }
    }
}
