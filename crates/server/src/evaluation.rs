//! The one seam through which handlers evaluate rules, and through which they tell an
//! evaluator that keeps state about each acknowledged write. The service runs
//! [`crate::engine::EngineEvaluator`]; the helpers at the end turn stored rows into the
//! rules crate's data types.

use async_trait::async_trait;
use jiff::Timestamp;
use segmentd_rules::{ContactData, CustomEvent, Rule, SegmentId, SystemEvent, Visit};
use segmentd_store::{Account, Contact, ContactId, EventBody, NewEvent, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("account {account} has an unknown time zone {zone:?}")]
    TimeZone { account: i64, zone: String },
    #[error("the index refused a segment: {0}")]
    Engine(String),
}

/// What a preview answers: how many contacts match and the first few of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub count: u64,
    pub sample: Vec<String>,
}

#[async_trait]
pub trait Evaluator: Send + Sync + 'static {
    /// The number of members of each saved segment, in the order asked.
    async fn counts(
        &self,
        account: &Account,
        segments: &[SegmentId],
        as_of: Option<Timestamp>,
    ) -> Result<Vec<u64>, EvalError>;

    /// Members of a saved segment sorted by external id, strictly after `after`.
    async fn members(
        &self,
        account: &Account,
        segment: SegmentId,
        as_of: Option<Timestamp>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Contact>, EvalError>;

    /// Evaluates a rule that is not saved.
    async fn preview(
        &self,
        account: &Account,
        rule: &Rule,
        as_of: Option<Timestamp>,
        sample: usize,
    ) -> Result<Preview, EvalError>;

    /// "Why is this contact in or out": `rule`'s tree with each node's truth value for
    /// one contact (and matching event counts), as JSON. `None` if the contact is unknown.
    async fn explain(
        &self,
        account: &Account,
        rule: &Rule,
        contact: &Contact,
        as_of: Option<Timestamp>,
    ) -> Result<Option<serde_json::Value>, EvalError>;

    // What an evaluator that keeps state is told after each acknowledged write. The
    // store already holds the write; these keep a cache in step with it.

    async fn contacts_upserted(
        &self,
        _account: &Account,
        _external_ids: &[String],
    ) -> Result<(), EvalError> {
        Ok(())
    }
    async fn contact_deleted(
        &self,
        _account: &Account,
        _contact: &Contact,
    ) -> Result<(), EvalError> {
        Ok(())
    }
    /// `contacts` holds the stored id of each event's contact, in batch order, as the
    /// store resolved them (`InsertOutcome::contacts`).
    async fn events_added(
        &self,
        _account: &Account,
        _events: Vec<NewEvent>,
        _contacts: &[ContactId],
    ) -> Result<(), EvalError> {
        Ok(())
    }
    async fn field_deleted(&self, _account: &Account, _key: &str) -> Result<(), EvalError> {
        Ok(())
    }
    async fn segment_saved(
        &self,
        _account: &Account,
        _id: SegmentId,
        _rule: &Rule,
    ) -> Result<(), EvalError> {
        Ok(())
    }
    async fn segment_deleted(&self, _account: &Account, _id: SegmentId) -> Result<(), EvalError> {
        Ok(())
    }
    /// Re-decides what time alone changes (rolling windows, relative dates); called on a
    /// timer.
    async fn refresh(&self) -> Result<(), EvalError> {
        Ok(())
    }
}

/// The fields of a stored contact in the form the reference evaluator reads.
pub fn contact_data(c: &Contact) -> ContactData {
    ContactData {
        email: c.email.clone(),
        phone: c.phone.clone(),
        fields: c.fields.clone(),
        ..ContactData::default()
    }
}

pub fn push_event(d: &mut ContactData, id: Option<String>, timestamp: Timestamp, body: EventBody) {
    match body {
        EventBody::System {
            kind,
            campaign,
            url,
        } => d.system_events.push(SystemEvent {
            id,
            kind,
            timestamp,
            campaign,
            url,
        }),
        EventBody::Custom { name, properties } => d.custom_events.push(CustomEvent {
            id,
            name,
            timestamp,
            properties,
        }),
        EventBody::Visit { url } => d.visits.push(Visit { id, url, timestamp }),
    }
}
