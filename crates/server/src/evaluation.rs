//! The one seam through which handlers evaluate rules.
//!
//! [`ReferenceEvaluator`] answers with the reference evaluator of the rules crate over a
//! fresh read of the account's data: obviously right, linear in the account's size. The
//! in-memory engine will implement the same trait, and no handler will change.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use segmentd_rules::{
    Clock as RuleClock, ContactData, CustomEvent, Rule, SegmentId, SystemEvent, Visit, is_member,
};
use segmentd_store::{Account, Contact, EventBody, NewEvent, Store, StoreError};

use crate::catalog::{load_catalog, parse_saved_rules};
use crate::state::Clock;

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
    async fn events_added(
        &self,
        _account: &Account,
        _events: &[NewEvent],
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

pub struct ReferenceEvaluator {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl ReferenceEvaluator {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        ReferenceEvaluator { store, clock }
    }

    async fn snapshot(
        &self,
        account: &Account,
        as_of: Option<Timestamp>,
    ) -> Result<Snapshot, EvalError> {
        let zone = TimeZone::get(&account.time_zone).map_err(|_| EvalError::TimeZone {
            account: account.id,
            zone: account.time_zone.clone(),
        })?;
        let now = as_of.unwrap_or_else(|| self.clock.now());
        let (catalog, segments) = load_catalog(self.store.as_ref(), account.id).await?;
        let rules = parse_saved_rules(&catalog, &segments)?;
        let contacts = self.store.all_contacts(account.id).await?;
        let mut data: HashMap<i64, ContactData> =
            contacts.iter().map(|c| (c.id, contact_data(c))).collect();
        for event in self.store.all_events(account.id).await? {
            if let Some(d) = data.get_mut(&event.contact_id) {
                push_event(d, event.client_id, event.timestamp, event.body);
            }
        }
        Ok(Snapshot {
            clock: RuleClock::new(now, &zone),
            rules,
            contacts: contacts
                .into_iter()
                .map(|c| {
                    let d = data.remove(&c.id).unwrap_or_default();
                    (c, d)
                })
                .collect(),
        })
    }
}

struct Snapshot {
    clock: RuleClock,
    rules: HashMap<SegmentId, Rule>,
    /// Sorted by external id.
    contacts: Vec<(Contact, ContactData)>,
}

impl Snapshot {
    fn matching<'a>(&'a self, rule: &'a Rule) -> impl Iterator<Item = &'a Contact> + 'a {
        self.contacts
            .iter()
            .filter(move |(_, d)| is_member(rule, d, &self.clock, &self.rules))
            .map(|(c, _)| c)
    }

    fn saved(&self, id: SegmentId) -> Option<&Rule> {
        self.rules.get(&id)
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

#[async_trait]
impl Evaluator for ReferenceEvaluator {
    async fn counts(
        &self,
        account: &Account,
        segments: &[SegmentId],
        as_of: Option<Timestamp>,
    ) -> Result<Vec<u64>, EvalError> {
        let snap = self.snapshot(account, as_of).await?;
        Ok(segments
            .iter()
            .map(|id| match snap.saved(*id) {
                Some(rule) => snap.matching(rule).count() as u64,
                None => 0,
            })
            .collect())
    }

    async fn members(
        &self,
        account: &Account,
        segment: SegmentId,
        as_of: Option<Timestamp>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Contact>, EvalError> {
        let snap = self.snapshot(account, as_of).await?;
        let Some(rule) = snap.saved(segment) else {
            return Ok(Vec::new());
        };
        Ok(snap
            .matching(rule)
            .filter(|c| after.is_none_or(|a| c.external_id.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn preview(
        &self,
        account: &Account,
        rule: &Rule,
        as_of: Option<Timestamp>,
        sample: usize,
    ) -> Result<Preview, EvalError> {
        let snap = self.snapshot(account, as_of).await?;
        let mut count = 0;
        let mut ids = Vec::new();
        for c in snap.matching(rule) {
            count += 1;
            if ids.len() < sample {
                ids.push(c.external_id.clone());
            }
        }
        Ok(Preview { count, sample: ids })
    }

    async fn explain(
        &self,
        account: &Account,
        rule: &Rule,
        contact: &Contact,
        as_of: Option<Timestamp>,
    ) -> Result<Option<serde_json::Value>, EvalError> {
        let snap = self.snapshot(account, as_of).await?;
        Ok(snap
            .contacts
            .iter()
            .find(|(c, _)| c.id == contact.id)
            .map(|(_, data)| {
                let tree = segmentd_rules::explain::explain(rule, data, &snap.clock, &snap.rules);
                serde_json::to_value(tree).unwrap_or_default()
            }))
    }
}
