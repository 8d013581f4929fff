//! [`EngineEvaluator`]: the [`Evaluator`] the service runs, backed by the in-memory
//! index of `segmentd-engine`, one per account.
//!
//! The store stays the source of truth. Each account's index is built from the store
//! (at start for every account, or on first use for an account created later) and then
//! kept in step by the write hooks, which handlers call after the store has committed.
//! Every membership change a write or the passing of time causes is appended to the
//! store's change log before the request that caused it is answered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use segmentd_engine::{ContactValues, Event, Index, MembershipChange};
use segmentd_rules::{Clock as RuleClock, Rule, SegmentId};
use segmentd_store::{Account, AccountId, ChangeRecord, Contact, ContactId, NewEvent, Store};

use crate::catalog::{load_catalog, parse_saved_rules};
use crate::evaluation::{EvalError, Evaluator, Preview};
use crate::state::Clock;

/// How far the index's clock may lag `now` before a write first refreshes it. Reads of
/// saved segments answer at the index's clock, so this (and the refresh timer) bounds how
/// stale a count can be.
const MAX_CLOCK_LAG_MS: i64 = 1_000;

struct AccountIndex {
    zone: TimeZone,
    index: RwLock<Index>,
}

pub struct EngineEvaluator {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    accounts: RwLock<HashMap<AccountId, Arc<AccountIndex>>>,
}

fn values(c: &Contact) -> ContactValues {
    ContactValues {
        email: c.email.clone(),
        phone: c.phone.clone(),
        fields: c.fields.clone(),
    }
}

fn event(
    client_id: Option<String>,
    timestamp: Timestamp,
    body: segmentd_store::EventBody,
) -> Event {
    let mut data = segmentd_rules::ContactData::default();
    crate::evaluation::push_event(&mut data, client_id, timestamp, body);
    match (
        data.system_events.pop(),
        data.custom_events.pop(),
        data.visits.pop(),
    ) {
        (Some(e), _, _) => Event::System(e),
        (_, Some(e), _) => Event::Custom(e),
        (_, _, Some(e)) => Event::Visit(e),
        // push_event always pushes exactly one; an empty visit keeps this total.
        _ => Event::Visit(segmentd_rules::Visit {
            id: None,
            url: String::new(),
            timestamp,
        }),
    }
}

/// Saved segments in an order where every segment comes after those it refers to.
fn dependency_order(rules: &HashMap<SegmentId, Rule>) -> Vec<SegmentId> {
    fn visit(
        id: SegmentId,
        rules: &HashMap<SegmentId, Rule>,
        done: &mut BTreeSet<SegmentId>,
        out: &mut Vec<SegmentId>,
    ) {
        if !done.insert(id) {
            return;
        }
        if let Some(rule) = rules.get(&id) {
            for dep in rule.referenced_segments() {
                visit(dep, rules, done, out);
            }
            out.push(id);
        }
    }
    let mut ids: Vec<SegmentId> = rules.keys().copied().collect();
    ids.sort_unstable();
    let mut done = BTreeSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        visit(id, rules, &mut done, &mut out);
    }
    out
}

impl EngineEvaluator {
    /// Builds the index of every account in the store, logging progress.
    pub async fn load(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Self, EvalError> {
        let evaluator = EngineEvaluator {
            store,
            clock,
            accounts: RwLock::new(HashMap::new()),
        };
        let accounts = evaluator.store.accounts().await?;
        for account in &accounts {
            evaluator.index_of(account).await?;
        }
        tracing::info!(accounts = accounts.len(), "all accounts indexed");
        Ok(evaluator)
    }

    fn cached(&self, account: AccountId) -> Option<Arc<AccountIndex>> {
        self.accounts
            .read()
            .ok()
            .and_then(|m| m.get(&account).cloned())
    }

    /// The account's index, built from the store on first use.
    async fn index_of(&self, account: &Account) -> Result<Arc<AccountIndex>, EvalError> {
        if let Some(found) = self.cached(account.id) {
            return Ok(found);
        }
        let built = Arc::new(self.build(account).await?);
        let mut map = self
            .accounts
            .write()
            .map_err(|_| EvalError::Engine("index lock poisoned".into()))?;
        // Two requests may have built it at once; the first one in wins.
        Ok(map.entry(account.id).or_insert(built).clone())
    }

    async fn build(&self, account: &Account) -> Result<AccountIndex, EvalError> {
        let started = Instant::now();
        let zone = TimeZone::get(&account.time_zone).map_err(|_| EvalError::TimeZone {
            account: account.id,
            zone: account.time_zone.clone(),
        })?;
        let now = self.clock.now();
        let mut index = Index::new(RuleClock::new(now, &zone));
        let mut contacts = self.store.all_contacts(account.id).await?;
        // In store-id order: the index maps ascending ids to slots with no extra memory.
        contacts.sort_unstable_by_key(|c| c.id);
        for c in &contacts {
            index.upsert_contact(c.id, &c.external_id, &values(c));
        }
        let stored = self.store.all_events(account.id).await?;
        let events: Vec<(ContactId, Event)> = stored
            .into_iter()
            .map(|e| (e.contact_id, event(e.client_id, e.timestamp, e.body)))
            .collect();
        index.add_events(events.iter().map(|(c, e)| (*c, e)));
        let (catalog, segments) = load_catalog(self.store.as_ref(), account.id).await?;
        let mut rules = parse_saved_rules(&catalog, &segments)?;
        for id in dependency_order(&rules) {
            if let Some(rule) = rules.remove(&id) {
                index
                    .set_segment(id, rule)
                    .map_err(|e| EvalError::Engine(format!("{e:?}")))?;
            }
        }
        // Membership may have changed while the service was down (time passed, or a write
        // was stored but its changes were not logged): log the difference now.
        let external: HashMap<ContactId, &str> = contacts
            .iter()
            .map(|c| (c.id, c.external_id.as_str()))
            .collect();
        let mut logged: BTreeMap<SegmentId, HashMap<ContactId, String>> = BTreeMap::new();
        for (segment, contact, external_id) in self.store.logged_members(account.id).await? {
            logged
                .entry(segment)
                .or_default()
                .insert(contact, external_id);
        }
        let mut diff = Vec::new();
        for s in &segments {
            let was = logged.remove(&s.id).unwrap_or_default();
            let is: BTreeSet<ContactId> = index
                .membership(s.id)
                .map(|m| index.store_ids(m).into_iter().collect())
                .unwrap_or_default();
            for &c in is.iter().filter(|c| !was.contains_key(c)) {
                diff.push(ChangeRecord {
                    segment: s.id,
                    contact: c,
                    external_id: external.get(&c).copied().unwrap_or_default().to_owned(),
                    entered: true,
                    at: now,
                });
            }
            for (c, external_id) in was.into_iter().filter(|(c, _)| !is.contains(c)) {
                diff.push(ChangeRecord {
                    segment: s.id,
                    contact: c,
                    external_id,
                    entered: false,
                    at: now,
                });
            }
        }
        self.store.record_changes(account.id, &diff).await?;
        tracing::info!(
            account = account.id,
            contacts = index.contact_count(),
            events = index.event_count(),
            segments = segments.len(),
            changes_logged = diff.len(),
            ms = started.elapsed().as_millis() as u64,
            "account indexed"
        );
        Ok(AccountIndex {
            zone,
            index: RwLock::new(index),
        })
    }

    fn clock_at(&self, idx: &AccountIndex, at: Timestamp) -> RuleClock {
        RuleClock::new(at, &idx.zone)
    }

    /// Applies `write` to the index (first moving its clock to now when it lags, or when
    /// `newest` — the latest timestamp the write brings — is ahead of it) and logs every
    /// membership change.
    ///
    /// The write runs on tokio's blocking pool: it holds the index's lock for
    /// milliseconds (a batch of 10,000 events), and waiting for that lock or holding it on
    /// one of the runtime's few worker threads would stall every other request on it,
    /// parsing of the next batch included.
    async fn write(
        &self,
        account: &Account,
        newest: Option<Timestamp>,
        known: &HashMap<ContactId, String>,
        write: impl FnOnce(&mut Index) -> Result<Vec<MembershipChange>, EvalError> + Send + 'static,
    ) -> Result<(), EvalError> {
        let idx = self.index_of(account).await?;
        let now = self.clock.now();
        let changes = tokio::task::spawn_blocking(move || {
            let mut index = idx
                .index
                .write()
                .map_err(|_| EvalError::Engine("index lock poisoned".into()))?;
            let at = index.clock().now;
            let lagging = now.as_millisecond() - at.as_millisecond() > MAX_CLOCK_LAG_MS;
            let mut changes = if lagging || newest.is_some_and(|t| t > at) {
                index.refresh(&RuleClock::new(now, &idx.zone))
            } else {
                Vec::new()
            };
            changes.extend(write(&mut index)?);
            Ok::<_, EvalError>(changes)
        })
        .await
        .map_err(|e| EvalError::Engine(format!("index write stopped: {e}")))??;
        self.log(account, &changes, known, now).await
    }

    /// Appends changes to the store's log, looking up the external ids it is not given.
    async fn log(
        &self,
        account: &Account,
        changes: &[MembershipChange],
        known: &HashMap<ContactId, String>,
        at: Timestamp,
    ) -> Result<(), EvalError> {
        if changes.is_empty() {
            return Ok(());
        }
        let missing: Vec<ContactId> = changes
            .iter()
            .map(|c| c.contact)
            .filter(|c| !known.contains_key(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let looked_up: HashMap<ContactId, String> = self
            .store
            .contacts_by_ids(account.id, &missing)
            .await?
            .into_iter()
            .map(|c| (c.id, c.external_id))
            .collect();
        let records: Vec<ChangeRecord> = changes
            .iter()
            .map(|c| ChangeRecord {
                segment: c.segment,
                contact: c.contact,
                external_id: known
                    .get(&c.contact)
                    .or_else(|| looked_up.get(&c.contact))
                    .cloned()
                    .unwrap_or_default(),
                entered: c.entered,
                at,
            })
            .collect();
        self.store.record_changes(account.id, &records).await?;
        Ok(())
    }

    fn read<T>(idx: &AccountIndex, f: impl FnOnce(&Index) -> T) -> Result<T, EvalError> {
        let index = idx
            .index
            .read()
            .map_err(|_| EvalError::Engine("index lock poisoned".into()))?;
        Ok(f(&index))
    }

    async fn contacts(
        &self,
        account: &Account,
        ids: &[ContactId],
    ) -> Result<Vec<Contact>, EvalError> {
        Ok(self.store.contacts_by_ids(account.id, ids).await?)
    }
}

#[async_trait]
impl Evaluator for EngineEvaluator {
    async fn counts(
        &self,
        account: &Account,
        segments: &[SegmentId],
        as_of: Option<Timestamp>,
    ) -> Result<Vec<u64>, EvalError> {
        let idx = self.index_of(account).await?;
        let clock = as_of.map(|t| self.clock_at(&idx, t));
        Self::read(&idx, |index| {
            segments
                .iter()
                .map(|&id| match (&clock, index.segment_rule(id)) {
                    (None, _) => index.count(id),
                    (Some(clock), Some(rule)) => index.evaluate_bits(rule, clock).count(),
                    (Some(_), None) => 0,
                })
                .collect()
        })
    }

    async fn members(
        &self,
        account: &Account,
        segment: SegmentId,
        as_of: Option<Timestamp>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Contact>, EvalError> {
        let idx = self.index_of(account).await?;
        let ids = Self::read(&idx, |index| match as_of {
            None => index.members(segment, after, limit),
            Some(t) => match index.segment_rule(segment) {
                Some(rule) => {
                    let set = index.evaluate(rule, &self.clock_at(&idx, t));
                    index.page(&set, after, limit)
                }
                None => Vec::new(),
            },
        })?;
        self.contacts(account, &ids).await
    }

    async fn preview(
        &self,
        account: &Account,
        rule: &Rule,
        as_of: Option<Timestamp>,
        sample: usize,
    ) -> Result<Preview, EvalError> {
        let idx = self.index_of(account).await?;
        let clock = self.clock_at(&idx, as_of.unwrap_or_else(|| self.clock.now()));
        let (count, ids) = Self::read(&idx, |index| {
            let set = index.evaluate(rule, &clock);
            (set.len(), index.page(&set, None, sample))
        })?;
        let sample = self
            .contacts(account, &ids)
            .await?
            .into_iter()
            .map(|c| c.external_id)
            .collect();
        Ok(Preview { count, sample })
    }

    async fn explain(
        &self,
        account: &Account,
        rule: &Rule,
        contact: &Contact,
        as_of: Option<Timestamp>,
    ) -> Result<Option<serde_json::Value>, EvalError> {
        let idx = self.index_of(account).await?;
        let clock = self.clock_at(&idx, as_of.unwrap_or_else(|| self.clock.now()));
        Self::read(&idx, |index| {
            index
                .explain(rule, contact.id, &clock)
                .map(|e| serde_json::to_value(e.tree).unwrap_or_default())
        })
    }

    async fn contacts_upserted(
        &self,
        account: &Account,
        external_ids: &[String],
    ) -> Result<(), EvalError> {
        let contacts = self
            .store
            .contacts_by_external_ids(account.id, external_ids)
            .await?;
        let known = contacts
            .iter()
            .map(|c| (c.id, c.external_id.clone()))
            .collect();
        self.write(account, None, &known, move |index| {
            let mut changes = Vec::new();
            for c in &contacts {
                changes.extend(index.upsert_contact(c.id, &c.external_id, &values(c)));
            }
            Ok(changes)
        })
        .await
    }

    async fn contact_deleted(&self, account: &Account, contact: &Contact) -> Result<(), EvalError> {
        let known = HashMap::from([(contact.id, contact.external_id.clone())]);
        let id = contact.id;
        self.write(account, None, &known, move |index| {
            Ok(index.delete_contact(id))
        })
        .await
    }

    async fn events_added(
        &self,
        account: &Account,
        events: Vec<NewEvent>,
        contacts: &[ContactId],
    ) -> Result<(), EvalError> {
        // The store resolved every contact already; its ids come in batch order.
        let newest = events.iter().map(|e| e.timestamp).max();
        let mut known = HashMap::with_capacity(events.len());
        let converted: Vec<(ContactId, Event)> = events
            .into_iter()
            .zip(contacts.iter().copied())
            .map(|(e, id)| {
                known.entry(id).or_insert(e.contact);
                (id, event(e.client_id, e.timestamp, e.body))
            })
            .collect();
        self.write(account, newest, &known, move |index| {
            Ok(index.add_events(converted.iter().map(|(c, e)| (*c, e))))
        })
        .await
    }

    async fn field_deleted(&self, account: &Account, key: &str) -> Result<(), EvalError> {
        let key = key.to_owned();
        self.write(account, None, &HashMap::new(), move |index| {
            Ok(index.drop_field(&key))
        })
        .await
    }

    async fn segment_saved(
        &self,
        account: &Account,
        id: SegmentId,
        rule: &Rule,
    ) -> Result<(), EvalError> {
        let rule = rule.clone();
        self.write(account, None, &HashMap::new(), move |index| {
            index
                .set_segment(id, rule)
                .map_err(|e| EvalError::Engine(format!("{e:?}")))
        })
        .await
    }

    async fn segment_deleted(&self, account: &Account, id: SegmentId) -> Result<(), EvalError> {
        // The store dropped the segment and its log; its exits have nowhere to go.
        let idx = self.index_of(account).await?;
        let mut index = idx
            .index
            .write()
            .map_err(|_| EvalError::Engine("index lock poisoned".into()))?;
        index.remove_segment(id);
        Ok(())
    }

    async fn refresh(&self) -> Result<(), EvalError> {
        let accounts: Vec<AccountId> = self
            .accounts
            .read()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        for id in accounts {
            if let Some(account) = self.store.account(id).await? {
                self.write(&account, None, &HashMap::new(), |_| Ok(Vec::new()))
                    .await?;
            }
        }
        Ok(())
    }
}
