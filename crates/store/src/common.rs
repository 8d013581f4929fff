//! What both backends share: encoding of rows to and from domain types, the merge of a
//! contact upsert, and error mapping. No SQL here.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use segmentd_rules::{FieldType, FieldValue, SystemEventKind};

use crate::model::*;
use crate::{Result, StoreError};

/// Milliseconds since the Unix epoch (finer digits are cut, toward the past).
pub(crate) fn to_ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

pub(crate) fn from_ms(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

/// The time for bookkeeping columns (`created_at` of accounts and contacts) that no
/// caller reads back; times that matter to callers are passed in.
pub(crate) fn now_ms() -> i64 {
    to_ms(Timestamp::now())
}

/// `Conflict(what)` for a unique violation, the database error otherwise.
pub(crate) fn unique_to_conflict(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match e {
        sqlx::Error::Database(ref d) if d.is_unique_violation() => StoreError::Conflict(what()),
        e => StoreError::Database(e),
    }
}

pub(crate) fn parse_field_type(s: &str) -> Result<FieldType> {
    match s {
        "text" => Ok(FieldType::Text),
        "number" => Ok(FieldType::Number),
        "date" => Ok(FieldType::Date),
        "boolean" => Ok(FieldType::Boolean),
        other => Err(StoreError::Corrupt(format!("unknown field type {other:?}"))),
    }
}

/// Field key → type, to decode contacts' stored values.
pub(crate) type FieldTypes = HashMap<String, FieldType>;

pub(crate) fn field_types(defs: &[FieldDef]) -> FieldTypes {
    defs.iter().map(|d| (d.key.clone(), d.field_type)).collect()
}

/// A contacts row as stored, before decoding.
pub(crate) struct ContactRow {
    pub id: i64,
    pub external_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub email_status: Option<String>,
    pub sms_status: Option<String>,
    pub push_tokens: String,
    pub fields: String,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for ContactRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(ContactRow {
            id: row.try_get("id")?,
            external_id: row.try_get("external_id")?,
            email: row.try_get("email")?,
            phone: row.try_get("phone")?,
            email_status: row.try_get("email_status")?,
            sms_status: row.try_get("sms_status")?,
            push_tokens: row.try_get("push_tokens")?,
            fields: row.try_get("fields")?,
        })
    }
}

/// The columns `ContactRow` reads, for `SELECT`s.
pub(crate) const CONTACT_COLUMNS: &str =
    "id, external_id, email, phone, email_status, sms_status, push_tokens, fields";

/// [`CONTACT_COLUMNS`] without the field values (an empty object in their place), for
/// reads that only need a contact's addresses: its `fields` JSON is not carried nor
/// parsed.
pub(crate) const ADDRESS_COLUMNS: &str =
    "id, external_id, email, phone, email_status, sms_status, push_tokens, '{}' AS fields";

impl ContactRow {
    pub fn decode(self, types: &FieldTypes) -> Result<Contact> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("contact {:?}: {what}", self.external_id));
        let email_status = match self.email_status.as_deref() {
            None => None,
            Some(s) => Some(EmailStatus::parse(s).ok_or_else(|| corrupt("email_status"))?),
        };
        let sms_status = match self.sms_status.as_deref() {
            None => None,
            Some(s) => Some(SmsStatus::parse(s).ok_or_else(|| corrupt("sms_status"))?),
        };
        let push_tokens: Vec<String> =
            serde_json::from_str(&self.push_tokens).map_err(|_| corrupt("push_tokens"))?;
        let raw: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.fields).map_err(|_| corrupt("fields"))?;
        let mut fields = BTreeMap::new();
        for (key, value) in raw {
            // A key without a definition (its field deleted by a racing call) is no value.
            let Some(&ty) = types.get(&key) else { continue };
            match FieldValue::from_json(ty, &value) {
                Ok(Some(v)) => {
                    fields.insert(key, v);
                }
                Ok(None) => {}
                Err(e) => return Err(corrupt(&format!("field {key:?}: {e}"))),
            }
        }
        Ok(Contact {
            id: self.id,
            external_id: self.external_id,
            email: self.email,
            phone: self.phone,
            email_status,
            sms_status,
            push_tokens,
            fields,
        })
    }
}

/// A contact's stored attributes while an upsert batch is merged in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactState {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub email_status: Option<EmailStatus>,
    pub sms_status: Option<SmsStatus>,
    pub push_tokens: Vec<String>,
    /// Kept as JSON: keys are carried over untouched unless the upsert names them.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl ContactState {
    /// Reads a stored row; only the raw JSON shapes are checked here.
    pub fn from_row(row: &ContactRow) -> Result<Self> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("contact {:?}: {what}", row.external_id));
        Ok(ContactState {
            email: row.email.clone(),
            phone: row.phone.clone(),
            email_status: match row.email_status.as_deref() {
                None => None,
                Some(s) => Some(EmailStatus::parse(s).ok_or_else(|| corrupt("email_status"))?),
            },
            sms_status: match row.sms_status.as_deref() {
                None => None,
                Some(s) => Some(SmsStatus::parse(s).ok_or_else(|| corrupt("sms_status"))?),
            },
            push_tokens: serde_json::from_str(&row.push_tokens)
                .map_err(|_| corrupt("push_tokens"))?,
            fields: serde_json::from_str(&row.fields).map_err(|_| corrupt("fields"))?,
        })
    }

    /// Applies one upsert item on top of this state. Values of keys that are not in
    /// `known` (a field deleted since the caller validated the batch) are dropped.
    pub fn apply(&mut self, item: &ContactUpsert, known: &FieldTypes) {
        self.email = item.email.apply(self.email.take());
        self.phone = item.phone.apply(self.phone.take());
        self.email_status = item.email_status.apply(self.email_status);
        self.sms_status = item.sms_status.apply(self.sms_status);
        match &item.push_tokens {
            Patch::Keep => {}
            Patch::Clear => self.push_tokens.clear(),
            Patch::Set(tokens) => self.push_tokens = tokens.clone(),
        }
        for (key, value) in &item.fields {
            if !known.contains_key(key) {
                continue;
            }
            match value {
                Some(v) => {
                    self.fields.insert(key.clone(), v.to_json());
                }
                None => {
                    self.fields.remove(key);
                }
            }
        }
    }

    pub fn push_tokens_json(&self) -> String {
        serde_json::Value::from(self.push_tokens.clone()).to_string()
    }

    pub fn fields_json(&self) -> String {
        serde_json::Value::Object(self.fields.clone()).to_string()
    }
}

/// Merges a batch into final states, one per distinct external id, in first-seen order.
/// `existing` holds the stored states of the batch's contacts that already exist;
/// `known` the account's field definitions, read in the same transaction.
pub(crate) fn merge_batch<'a>(
    batch: &'a [ContactUpsert],
    mut existing: HashMap<String, ContactState>,
    known: &FieldTypes,
) -> Vec<(&'a str, ContactState)> {
    let mut order: Vec<&'a str> = Vec::new();
    let mut states: HashMap<&'a str, ContactState> = HashMap::with_capacity(batch.len());
    for item in batch {
        let id = item.external_id.as_str();
        let state = states.entry(id).or_insert_with(|| {
            order.push(id);
            existing.remove(id).unwrap_or_default()
        });
        state.apply(item, known);
    }
    order
        .into_iter()
        .filter_map(|id| states.remove(id).map(|s| (id, s)))
        .collect()
}

/// A contact's stored `fields` JSON without `key`; `None` when it did not hold the key.
pub(crate) fn without_key(contact: i64, fields: &str, key: &str) -> Result<Option<String>> {
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(fields)
        .map_err(|e| StoreError::Corrupt(format!("contact {contact}: fields: {e}")))?;
    Ok(map
        .remove(key)
        .map(|_| serde_json::Value::Object(map).to_string()))
}

/// Distinct external ids of a batch, in first-seen order.
pub(crate) fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

/// An event's columns besides account, contact, time and client id.
pub(crate) struct EventColumns {
    pub kind: &'static str,
    pub name: Option<String>,
    pub campaign: Option<String>,
    pub url: Option<String>,
    pub properties: Option<String>,
}

pub(crate) fn encode_event(body: &EventBody) -> EventColumns {
    match body {
        EventBody::System {
            kind,
            campaign,
            url,
        } => EventColumns {
            kind: kind.as_str(),
            name: None,
            campaign: campaign.clone(),
            url: url.clone(),
            properties: None,
        },
        EventBody::Custom { name, properties } => EventColumns {
            kind: "custom",
            name: Some(name.clone()),
            campaign: None,
            url: None,
            properties: Some(serde_json::Value::Object(properties.clone()).to_string()),
        },
        EventBody::Visit { url } => EventColumns {
            kind: "visit",
            name: None,
            campaign: None,
            url: Some(url.clone()),
            properties: None,
        },
    }
}

/// An events row as stored, before decoding.
pub(crate) struct EventRow {
    pub contact_id: i64,
    pub kind: String,
    pub name: Option<String>,
    pub ts: i64,
    pub campaign: Option<String>,
    pub url: Option<String>,
    pub properties: Option<String>,
    pub client_id: Option<String>,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for EventRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(EventRow {
            contact_id: row.try_get("contact_id")?,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            ts: row.try_get("ts")?,
            campaign: row.try_get("campaign")?,
            url: row.try_get("url")?,
            properties: row.try_get("properties")?,
            client_id: row.try_get("client_id")?,
        })
    }
}

pub(crate) const EVENT_COLUMNS: &str =
    "contact_id, kind, name, ts, campaign, url, properties, client_id";

/// [`EVENT_COLUMNS`], each qualified by `table`, for queries that join events.
pub(crate) fn prefixed_event_columns(table: &str) -> String {
    EVENT_COLUMNS
        .split(", ")
        .map(|column| format!("{table}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An events row with its id, for reads that return ids (`events_since`).
pub(crate) struct IdEventRow {
    pub id: i64,
    pub row: EventRow,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for IdEventRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(IdEventRow {
            id: row.try_get("id")?,
            row: EventRow::from_row(row)?,
        })
    }
}

impl IdEventRow {
    pub fn decode(self) -> Result<(i64, StoredEvent)> {
        Ok((self.id, self.row.decode()?))
    }
}

impl EventRow {
    pub fn decode(self) -> Result<StoredEvent> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!("event of contact {}: {what}", self.contact_id))
        };
        let body = match self.kind.as_str() {
            "custom" => {
                let name = self
                    .name
                    .clone()
                    .ok_or_else(|| corrupt("custom event without a name"))?;
                let properties = match self.properties.as_deref() {
                    None => serde_json::Map::new(),
                    Some(text) => serde_json::from_str(text).map_err(|_| corrupt("properties"))?,
                };
                EventBody::Custom { name, properties }
            }
            "visit" => EventBody::Visit {
                url: self
                    .url
                    .clone()
                    .ok_or_else(|| corrupt("visit without a url"))?,
            },
            other => EventBody::System {
                kind: SystemEventKind::parse(other)
                    .ok_or_else(|| corrupt(&format!("kind {other:?}")))?,
                campaign: self.campaign.clone(),
                url: self.url.clone(),
            },
        };
        Ok(StoredEvent {
            client_id: self.client_id,
            contact_id: self.contact_id,
            timestamp: from_ms(self.ts)?,
            body,
        })
    }
}

/// A segments row as stored, before decoding.
pub(crate) struct SegmentRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub rule: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for SegmentRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(SegmentRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            rule: row.try_get("rule")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

pub(crate) const SEGMENT_COLUMNS: &str = "id, name, description, rule, created_at, updated_at";

impl SegmentRow {
    pub fn decode(self) -> Result<Segment> {
        Ok(Segment {
            id: self.id,
            rule: serde_json::from_str(&self.rule)
                .map_err(|e| StoreError::Corrupt(format!("segment {}: rule: {e}", self.id)))?,
            name: self.name,
            description: self.description,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

/// The key that makes segment names unique regardless of case.
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

pub(crate) fn segment_conflict(name: &str) -> String {
    format!("segment name {name:?}")
}

pub(crate) fn field_conflict(key: &str) -> String {
    format!("field key {key:?}")
}

/// Keeps the segments whose name contains `search`, compared case-insensitively.
pub(crate) fn filter_segments(segments: Vec<Segment>, search: Option<&str>) -> Vec<Segment> {
    match search {
        None | Some("") => segments,
        Some(s) => {
            let needle = s.to_lowercase();
            segments
                .into_iter()
                .filter(|seg| seg.name.to_lowercase().contains(&needle))
                .collect()
        }
    }
}

pub(crate) fn user_conflict(email: &str) -> String {
    format!("user e-mail {email:?}")
}

/// A row of `membership_changes`, the same on both backends.
#[derive(sqlx::FromRow)]
pub(crate) struct ChangeRow {
    pub seq: i64,
    pub segment_id: i64,
    pub contact_id: i64,
    pub external_id: String,
    pub entered: bool,
    pub at: i64,
}

impl ChangeRow {
    pub fn decode(self) -> Result<StoredChange> {
        Ok(StoredChange {
            seq: self.seq,
            change: ChangeRecord {
                segment: self.segment_id,
                contact: self.contact_id,
                external_id: self.external_id,
                entered: self.entered,
                at: from_ms(self.at)?,
            },
        })
    }
}

pub(crate) const CHANGE_COLUMNS: &str = "seq, segment_id, contact_id, external_id, entered, at";

/// The bucket counts query, the same SQL on both backends (integer division).
pub(crate) fn change_buckets_sql(placeholder_account: &str, placeholder_segment: &str) -> String {
    format!(
        "SELECT bucket, entered, exited FROM membership_change_buckets \
         WHERE account_id = {placeholder_account} AND segment_id = {placeholder_segment} \
         ORDER BY bucket"
    )
}

/// A batch of changes summed per (segment, 15-minute bucket): `(segment, bucket,
/// entered, exited)`, sorted, so that concurrent batches lock bucket rows in one order.
pub(crate) fn bucket_sums(changes: &[ChangeRecord]) -> Vec<(i64, i64, i64, i64)> {
    let mut sums: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for c in changes {
        let bucket = to_ms(c.at).div_euclid(CHANGE_BUCKET_MS);
        let sum = sums.entry((c.segment, bucket)).or_default();
        if c.entered {
            sum.0 += 1;
        } else {
            sum.1 += 1;
        }
    }
    sums.into_iter()
        .map(|((segment, bucket), (entered, exited))| (segment, bucket, entered, exited))
        .collect()
}

/// Membership per the log: the latest change of each (segment, contact) is an entry.
pub(crate) fn logged_members_sql(placeholder_account: &str) -> String {
    format!(
        "SELECT c.segment_id, c.contact_id, c.external_id FROM membership_changes c \
         JOIN (SELECT MAX(seq) AS seq FROM membership_changes WHERE account_id = {placeholder_account} \
               GROUP BY segment_id, contact_id) latest ON c.seq = latest.seq \
         WHERE c.entered"
    )
}

/// Puts rows fetched by id back in the order the caller asked for.
pub(crate) fn in_order<K: std::hash::Hash + Eq>(
    asked: impl Iterator<Item = K>,
    found: Vec<Contact>,
    key: impl Fn(&Contact) -> K,
) -> Vec<Contact> {
    let mut by_key: HashMap<K, Contact> = found.into_iter().map(|c| (key(&c), c)).collect();
    asked.filter_map(|k| by_key.remove(&k)).collect()
}

/// The columns of an API key (table alias `k`), as [`api_key_from_row`] reads them.
pub(crate) const API_KEY_COLUMNS: &str = "k.key_hash, k.account_id AS key_account_id, \
     k.name AS key_name, k.prefix, k.admin, k.created_at, k.last_used_at, k.revoked_at";

pub(crate) fn api_key_from_row<R: sqlx::Row>(row: &R) -> Result<ApiKey>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let hash: String = row.try_get("key_hash")?;
    Ok(ApiKey {
        id: hash.chars().take(16).collect(),
        account_id: row.try_get("key_account_id")?,
        name: row.try_get("key_name")?,
        prefix: row.try_get("prefix")?,
        admin: row.try_get("admin")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(from_ms)
            .transpose()?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_ms)
            .transpose()?,
    })
}
