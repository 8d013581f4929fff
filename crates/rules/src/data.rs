//! The data that rules read: field types and values, contacts, events and visits.
//!
//! These are domain types, already parsed: a `FieldValue::Number` is finite, a text value
//! is non-empty (an empty string means "no value" and is never stored as a value).

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// The four types a custom field can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Boolean,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored value of a custom field. "No value" is the absence of an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Text(String),
    Number(f64),
    Date(Date),
    Boolean(bool),
}

impl FieldValue {
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValue::Text(_) => FieldType::Text,
            FieldValue::Number(_) => FieldType::Number,
            FieldValue::Date(_) => FieldType::Date,
            FieldValue::Boolean(_) => FieldType::Boolean,
        }
    }

    /// Parses a JSON value written to a field of type `ty`.
    ///
    /// `Ok(None)` means the write clears the value (`null` or `""`), as the spec says.
    pub fn from_json(ty: FieldType, value: &serde_json::Value) -> Result<Option<Self>, String> {
        use serde_json::Value as J;
        match (ty, value) {
            (_, J::Null) => Ok(None),
            (_, J::String(s)) if s.is_empty() => Ok(None),
            (FieldType::Text, J::String(s)) => {
                if s.chars().count() > MAX_TEXT_VALUE_CHARS {
                    Err(format!(
                        "expected a text of at most {MAX_TEXT_VALUE_CHARS} characters"
                    ))
                } else {
                    Ok(Some(FieldValue::Text(s.clone())))
                }
            }
            (FieldType::Text, _) => Err("expected a text (a JSON string)".into()),
            (FieldType::Number, J::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(FieldValue::Number(x))),
                _ => Err("expected a finite number".into()),
            },
            (FieldType::Number, _) => Err("expected a number".into()),
            (FieldType::Date, J::String(s)) => parse_date(s)
                .map(|d| Some(FieldValue::Date(d)))
                .ok_or_else(|| "expected a date \"YYYY-MM-DD\"".into()),
            (FieldType::Date, _) => Err("expected a date \"YYYY-MM-DD\"".into()),
            (FieldType::Boolean, J::Bool(b)) => Ok(Some(FieldValue::Boolean(*b))),
            (FieldType::Boolean, _) => Err("expected true or false".into()),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(s) => serde_json::Value::String(s.clone()),
            FieldValue::Number(x) => serde_json::Number::from_f64(*x)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            FieldValue::Date(d) => serde_json::Value::String(d.to_string()),
            FieldValue::Boolean(b) => serde_json::Value::Bool(*b),
        }
    }
}

/// The longest text a contact's field may hold. Longer writes are rejected, not cut.
pub const MAX_TEXT_VALUE_CHARS: usize = 10_000;

/// Parses a strict `YYYY-MM-DD` calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    // jiff also accepts forms such as `+002024-01-01`; the spec allows only the plain one.
    let plain = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !plain {
        return None;
    }
    s.parse::<Date>().ok()
}

/// Parses an RFC 3339 timestamp that carries an offset (`Z` or `+02:00`).
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// The four system events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SystemEventKind {
    MailOpen,
    MailClick,
    SmsClick,
    PushClick,
}

impl SystemEventKind {
    pub const ALL: [SystemEventKind; 4] = [
        SystemEventKind::MailOpen,
        SystemEventKind::MailClick,
        SystemEventKind::SmsClick,
        SystemEventKind::PushClick,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SystemEventKind::MailOpen => "MailOpen",
            SystemEventKind::MailClick => "MailClick",
            SystemEventKind::SmsClick => "SmsClick",
            SystemEventKind::PushClick => "PushClick",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SystemEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemEvent {
    pub id: Option<String>,
    pub kind: SystemEventKind,
    pub timestamp: Timestamp,
    pub campaign: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomEvent {
    pub id: Option<String>,
    pub name: String,
    pub timestamp: Timestamp,
    pub properties: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub id: Option<String>,
    pub url: String,
    pub timestamp: Timestamp,
}

/// Everything the reference evaluator needs to know about one contact.
///
/// Events are given in arrival order: when two events of one kind share an `id`, the
/// first one is the stored one and the later ones are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactData {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub fields: BTreeMap<String, FieldValue>,
    pub system_events: Vec<SystemEvent>,
    pub custom_events: Vec<CustomEvent>,
    pub visits: Vec<Visit>,
}
