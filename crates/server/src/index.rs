//! [`Indexes`]: the in-memory index of every account (`segmentd-engine`), what every read
//! of membership goes through, and what [`crate::writes`] keeps in step with the store.
//!
//! The store stays the source of truth. Each account's index is built from the store (at
//! start for every account, or on first use for an account created later) and then kept
//! in step by the write path, which applies each write after the store has committed it.
//!
//! Reads never queue behind a long write. A writer holds an account's index lock for one
//! slice at a time (at most [`WRITE_SLICE`] contacts or events, or one refresh step) and
//! lets waiting readers in between slices; counts of saved segments take no index lock at
//! all: they read the sizes published after every slice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use parking_lot::RwLock;
use segmentd_engine::{
    Address, BuilderCatalog, Channel, Channels, ContactValues, Counted, Event, Index,
    MembershipChange, ReachCounts,
};
use segmentd_rules::rule::FieldRef;
use segmentd_rules::{Clock as RuleClock, ContactData, Rule, SegmentId};
use segmentd_store::{
    Account, AccountId, ChangeRecord, Contact, ContactId, EventBody, Store, StoreError, Unreachable,
};

use crate::rebuild::{self, Source};
use crate::snapshot;
use crate::state::Clock;

/// How far the index's clock may lag `now` before a write first refreshes it. Reads of
/// saved segments answer at the index's clock, so this (and the refresh timer) bounds how
/// stale a count can be.
const MAX_CLOCK_LAG_MS: i64 = 1_000;

/// The most contacts or events a writer applies under one hold of an account's index
/// lock: a reader waits for at most one slice (about a millisecond at 1M contacts).
pub const WRITE_SLICE: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("account {account} has an unknown time zone {zone:?}")]
    TimeZone { account: i64, zone: String },
    #[error("the index refused a segment: {0}")]
    Engine(String),
    #[error("an index task stopped: {0}")]
    Task(String),
    #[error("saving an index snapshot failed: {0}")]
    Snapshot(String),
    /// Cluster: this node holds no index of the account.
    #[error("account {0} is not held by this node")]
    NotHere(AccountId),
    /// Cluster: this node does not own the account, so it does not write it.
    #[error("account {0} is not owned by this node")]
    NotOwner(AccountId),
}

/// What a preview answers: how many contacts match and the first few of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub count: u64,
    pub sample: Vec<String>,
}

/// Whose values [`Indexes::suggestions`] lists.
#[derive(Debug, Clone)]
pub enum ValuesOf {
    /// A custom text field's values starting with the second text.
    Field(String, String),
    /// A custom event's property values starting with `prefix`.
    Property {
        event: String,
        path: String,
        prefix: String,
    },
    /// Visited URL prefixes containing the text.
    Url(String),
}

/// A campaign's audience as [`Indexes::audience`] computes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// How many the message would go to.
    pub count: u64,
    /// Their store ids, when asked for.
    pub recipients: Vec<ContactId>,
    pub no_address: u64,
    pub unsubscribed: u64,
    pub bounced: u64,
    /// Targeted members taken out by an exclusion segment.
    pub exclusion_segments: u64,
}

/// The sizes of the saved segments as of one write slice, read without the index lock.
#[derive(Debug, Default)]
struct Published {
    counts: HashMap<SegmentId, u64>,
    /// The instant the index's time-dependent memberships are exact as of: its clock,
    /// moved by writes with newer events and by the refresh.
    exact_at: Timestamp,
}

/// A saved segment's maintained size and the instant it is exact as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedCount {
    pub count: u64,
    pub as_of: Timestamp,
}

/// One account's index with what guards it.
pub struct AccountIndex {
    zone: TimeZone,
    index: RwLock<Index>,
    /// The size of every saved segment, published by each write slice before its lock
    /// is released.
    counts: Mutex<Arc<Published>>,
    /// Contacts plus events, published with the sizes.
    size: AtomicU64,
    /// Held shared by every write from its store commit to its change log, so that no
    /// write of this process is half done while it is held exclusively.
    gate: tokio::sync::RwLock<()>,
    /// Serializes the segment hook (re-read the saved rule, apply it), so that the last
    /// hook to run applies the rule the store holds last.
    segment_sync: tokio::sync::Mutex<()>,
    /// Contacts, events and other writes applied since its last snapshot: what a restart
    /// would replay.
    unsaved: AtomicU64,
    /// When its last snapshot was saved (or it was built).
    saved_at: Mutex<Instant>,
    /// Held while a snapshot is written and put in place: one at a time.
    saving: tokio::sync::Mutex<()>,
    /// Whether it was built from a snapshot or from the store.
    source: Source,
    /// Whether this node writes the account and logs its membership changes: always
    /// outside a cluster; in one, only while it owns the account.
    owned: std::sync::atomic::AtomicBool,
    /// Set on a cluster node's indexes: writes of the account then take their turn
    /// (`writer`) from before the store commit until they are sent to the followers, so
    /// that the log range each write sends is its own.
    one_writer: std::sync::atomic::AtomicBool,
    writer: tokio::sync::Mutex<()>,
}

/// What a write holds from before its store commit until its changes are logged (and,
/// in a cluster, sent).
pub struct WriteTurn<'a> {
    _gate: tokio::sync::RwLockReadGuard<'a, ()>,
    _turn: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl AccountIndex {
    fn new(zone: TimeZone, index: Index, source: Source) -> Self {
        let account = AccountIndex {
            zone,
            index: RwLock::new(index),
            counts: Mutex::new(Arc::new(Published::default())),
            size: AtomicU64::new(0),
            gate: tokio::sync::RwLock::new(()),
            segment_sync: tokio::sync::Mutex::new(()),
            unsaved: AtomicU64::new(0),
            saved_at: Mutex::new(Instant::now()),
            saving: tokio::sync::Mutex::new(()),
            source,
            owned: std::sync::atomic::AtomicBool::new(true),
            one_writer: std::sync::atomic::AtomicBool::new(false),
            writer: tokio::sync::Mutex::new(()),
        };
        account.publish(&account.index.read());
        if source == Source::Store {
            // No snapshot holds any of it: a restart now would rebuild everything.
            let size = account.size.load(Ordering::Relaxed);
            account.unsaved.store(size.max(1), Ordering::Relaxed);
        }
        account
    }

    /// Publishes the sizes of the saved segments for lock-free counts.
    fn publish(&self, index: &Index) {
        let published = Published {
            counts: index
                .segment_ids()
                .map(|id| (id, index.count(id)))
                .collect(),
            exact_at: index.clock().now,
        };
        if let Ok(mut c) = self.counts.lock() {
            *c = Arc::new(published);
        }
        self.size.store(
            index.contact_count() + index.event_count() as u64,
            Ordering::Relaxed,
        );
    }

    fn published(&self) -> Arc<Published> {
        self.counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn clock_at(&self, at: Timestamp) -> RuleClock {
        RuleClock::new(at, &self.zone)
    }

    /// Runs `f` on the index under its read lock. Blocks: call it on the blocking pool
    /// ([`Indexes`]'s reads do), never on a runtime worker, which a waiting writer would
    /// stall with every task on it.
    pub fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.index.read())
    }

    /// Waits until no write of this process is between store commit and change log, and
    /// keeps writes out while the guard lives.
    pub async fn quiesce(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// Held by a write from before its store commit until its changes are logged.
    pub async fn enter_write(&self) -> WriteTurn<'_> {
        let turn = if self.one_writer.load(Ordering::Acquire) {
            Some(self.writer.lock().await)
        } else {
            None
        };
        WriteTurn {
            _gate: self.gate.read().await,
            _turn: turn,
        }
    }

    /// Whether this node writes the account (see `owned`).
    pub fn is_owned(&self) -> bool {
        self.owned.load(Ordering::Acquire)
    }

    pub fn set_owned(&self, owned: bool) {
        self.owned.store(owned, Ordering::Release);
    }

    pub async fn segment_hook(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.segment_sync.lock().await
    }
}

/// Which accounts [`Indexes::save_snapshots`] saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveWhen {
    /// Every account written to since its last snapshot (when stopping).
    Changed,
    /// Those whose replay has grown to a quarter of the index (at least
    /// `SNAPSHOT_MIN_ROWS`) and were saved `SNAPSHOT_MIN_GAP` ago, or that were written
    /// to and saved `SNAPSHOT_MAX_AGE` ago: a restart replays at most about that.
    Due,
}

/// Writes a restart may have to replay before a snapshot is due, at the least.
pub const SNAPSHOT_MIN_ROWS: u64 = 200_000;
/// Snapshots of one account are at least this far apart, but when stopping: writing one
/// holds writes back (about a second per million contacts), which a bulk load must not
/// pay again and again.
pub const SNAPSHOT_MIN_GAP: std::time::Duration = std::time::Duration::from_secs(60);
/// How long written-to accounts go without a snapshot, at most.
pub const SNAPSHOT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

impl SaveWhen {
    fn due(self, idx: &AccountIndex) -> bool {
        let unsaved = idx.unsaved.load(Ordering::Relaxed);
        if unsaved == 0 {
            return false;
        }
        match self {
            SaveWhen::Changed => true,
            SaveWhen::Due => {
                let size = idx.size.load(Ordering::Relaxed);
                let age = idx
                    .saved_at
                    .lock()
                    .map(|at| at.elapsed())
                    .unwrap_or(SNAPSHOT_MAX_AGE);
                (unsaved >= SNAPSHOT_MIN_ROWS.max(size / 4) && age >= SNAPSHOT_MIN_GAP)
                    || age >= SNAPSHOT_MAX_AGE
            }
        }
    }
}

/// A membership change with the contact's external id, when the index still knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub change: MembershipChange,
    pub external_id: Option<String>,
}

/// One piece of a write, applied under one hold of the index lock.
#[derive(Debug)]
pub enum Slice {
    Contacts(Vec<Contact>),
    ContactDeleted(ContactId),
    Events(Vec<(ContactId, Event)>),
    FieldDeleted(String),
    /// The segment's rule as the store holds it now; `None`: it is gone.
    Segment(SegmentId, Option<Rule>),
    /// Nothing but moving the clock (the refresh timer).
    Tick,
    /// One segment re-evaluated whole: a step of a new day's refresh.
    Reevaluate(SegmentId),
}

impl Slice {
    /// What a restart would replay of it (contacts and events; one for other writes).
    fn rows(&self) -> usize {
        match self {
            Slice::Contacts(c) => c.len(),
            Slice::Events(e) => e.len(),
            Slice::ContactDeleted(_) | Slice::FieldDeleted(_) | Slice::Segment(..) => 1,
            Slice::Tick | Slice::Reevaluate(_) => 0,
        }
    }
}

pub struct Indexes {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Where account snapshots are kept (`None`: never saved, always rebuilt).
    snapshots: Option<PathBuf>,
    accounts: Mutex<HashMap<AccountId, Arc<AccountIndex>>>,
    /// Serializes first-use builds, so that an account is built once.
    building: tokio::sync::Mutex<()>,
    /// Whether `of` builds an account's index on first use. In a cluster the node's
    /// agent decides which accounts it holds (`insert`, `remove`).
    on_demand: bool,
}

pub fn contact_values(c: &Contact) -> ContactValues {
    // The store's `Contact::address` is the one rule of who a channel reaches.
    let address = |channel| match c.address(channel) {
        Ok(_) => Address::Subscribed,
        Err(Unreachable::Unsubscribed) => Address::Unsubscribed,
        Err(Unreachable::Bounced) => Address::Bounced,
        Err(Unreachable::NoAddress) => Address::None,
    };
    ContactValues {
        email: c.email.clone(),
        phone: c.phone.clone(),
        fields: c.fields.clone(),
        channels: Channels {
            email: address(segmentd_store::Channel::Email),
            sms: address(segmentd_store::Channel::Sms),
            push: c.address(segmentd_store::Channel::Push).is_ok(),
        },
    }
}

/// A stored event in the engine's form.
pub fn engine_event(client_id: Option<String>, timestamp: Timestamp, body: EventBody) -> Event {
    match body {
        EventBody::System {
            kind,
            campaign,
            url,
        } => Event::System(segmentd_rules::SystemEvent {
            id: client_id,
            kind,
            timestamp,
            campaign,
            url,
        }),
        EventBody::Custom { name, properties } => Event::Custom(segmentd_rules::CustomEvent {
            id: client_id,
            name,
            timestamp,
            properties,
        }),
        EventBody::Visit { url } => Event::Visit(segmentd_rules::Visit {
            id: client_id,
            url,
            timestamp,
        }),
    }
}

/// A contact in the form the reference evaluator reads (tests compare against it).
pub fn contact_data(c: &Contact, events: impl IntoIterator<Item = Event>) -> ContactData {
    let mut data = ContactData {
        email: c.email.clone(),
        phone: c.phone.clone(),
        fields: c.fields.clone(),
        ..ContactData::default()
    };
    for e in events {
        match e {
            Event::System(e) => data.system_events.push(e),
            Event::Custom(e) => data.custom_events.push(e),
            Event::Visit(v) => data.visits.push(v),
        }
    }
    data
}

fn zone_of(account: &Account) -> Result<TimeZone, IndexError> {
    TimeZone::get(&account.time_zone).map_err(|_| IndexError::TimeZone {
        account: account.id,
        zone: account.time_zone.clone(),
    })
}

/// Applies one slice to the index, first moving its clock to `now` when it lags or when
/// the slice brings events dated after it. Returns the changes, and the slices the clock
/// move left to do (whole re-evaluations of a new day, one segment each).
fn apply_slice(
    index: &mut Index,
    zone: &TimeZone,
    now: Timestamp,
    slice: Slice,
) -> (Vec<MembershipChange>, Vec<Slice>) {
    let at = index.clock().now;
    let newest = match &slice {
        Slice::Events(events) => events.iter().map(|(_, e)| event_time(e)).max(),
        _ => None,
    };
    let lagging = now.as_millisecond() - at.as_millisecond() > MAX_CLOCK_LAG_MS;
    // Never back: concurrent writes read `now` before taking turns at the lock, and a
    // clock moved back would re-evaluate every time-dependent segment.
    let moves =
        now > at && (lagging || newest.is_some_and(|t| t > at) || matches!(slice, Slice::Tick));
    let (mut changes, whole) = if moves {
        index.refresh_timers(&RuleClock::new(now, zone))
    } else {
        (Vec::new(), Vec::new())
    };
    match slice {
        Slice::Contacts(contacts) => {
            for c in &contacts {
                changes.extend(index.upsert_contact(c.id, &c.external_id, &contact_values(c)));
            }
        }
        Slice::ContactDeleted(id) => changes.extend(index.delete_contact(id)),
        Slice::Events(events) => {
            changes.extend(index.add_events(events.iter().map(|(c, e)| (*c, e))));
        }
        Slice::FieldDeleted(key) => changes.extend(index.drop_field(&key)),
        Slice::Segment(id, Some(rule)) => match index.set_segment(id, rule) {
            Ok(c) => changes.extend(c),
            // The store refuses cycles first; an index that still does keeps the old rule.
            Err(e) => tracing::error!(segment = id, error = %e, "the index refused a saved rule"),
        },
        // The store dropped the segment and its log: its exits have nowhere to go.
        Slice::Segment(id, None) => {
            index.remove_segment(id);
        }
        Slice::Reevaluate(id) => changes.extend(index.reevaluate_segment(id)),
        Slice::Tick => {}
    }
    (changes, whole.into_iter().map(Slice::Reevaluate).collect())
}

fn event_time(e: &Event) -> Timestamp {
    match e {
        Event::System(e) => e.timestamp,
        Event::Custom(e) => e.timestamp,
        Event::Visit(v) => v.timestamp,
    }
}

impl Indexes {
    /// Builds the index of every account in the store (from its snapshot in `snapshots`
    /// when there is a usable one), logging progress.
    pub async fn load(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        snapshots: Option<PathBuf>,
    ) -> Result<Self, IndexError> {
        let indexes = Indexes {
            store,
            clock,
            snapshots,
            accounts: Mutex::new(HashMap::new()),
            building: tokio::sync::Mutex::new(()),
            on_demand: true,
        };
        let accounts = indexes.store.accounts().await?;
        for account in &accounts {
            indexes.of(account).await?;
        }
        tracing::info!(accounts = accounts.len(), "all accounts indexed");
        Ok(indexes)
    }

    /// No index yet: a cluster node's agent inserts those of the accounts it holds.
    pub fn empty(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Indexes {
            store,
            clock,
            snapshots: None,
            accounts: Mutex::new(HashMap::new()),
            building: tokio::sync::Mutex::new(()),
            on_demand: false,
        }
    }

    /// Holds `index` as the account's (a cluster node's agent), not owned until
    /// [`AccountIndex::set_owned`].
    pub fn insert(&self, account: &Account, index: Index) -> Result<Arc<AccountIndex>, IndexError> {
        let idx = Arc::new(AccountIndex::new(zone_of(account)?, index, Source::Store));
        idx.set_owned(false);
        idx.one_writer.store(true, Ordering::Release);
        if let Ok(mut map) = self.accounts.lock() {
            map.insert(account.id, idx.clone());
        }
        Ok(idx)
    }

    /// Stops holding the account's index.
    pub fn remove(&self, account: AccountId) {
        if let Ok(mut map) = self.accounts.lock() {
            map.remove(&account);
        }
    }

    /// The account's index if this node holds it.
    pub fn held(&self, account: AccountId) -> Option<Arc<AccountIndex>> {
        self.cached(account)
    }

    /// The account's index for a write: this node must own the account.
    pub async fn for_write(&self, account: &Account) -> Result<Arc<AccountIndex>, IndexError> {
        let idx = self.of(account).await?;
        if !idx.is_owned() {
            return Err(IndexError::NotOwner(account.id));
        }
        Ok(idx)
    }

    fn cached(&self, account: AccountId) -> Option<Arc<AccountIndex>> {
        self.accounts
            .lock()
            .ok()
            .and_then(|m| m.get(&account).cloned())
    }

    /// The account's index, built from the store on first use.
    pub async fn of(&self, account: &Account) -> Result<Arc<AccountIndex>, IndexError> {
        if let Some(found) = self.cached(account.id) {
            return Ok(found);
        }
        if !self.on_demand {
            return Err(IndexError::NotHere(account.id));
        }
        let _building = self.building.lock().await;
        if let Some(found) = self.cached(account.id) {
            return Ok(found);
        }
        let built = Arc::new(self.build(account).await?);
        if let Ok(mut map) = self.accounts.lock() {
            map.insert(account.id, built.clone());
        }
        Ok(built)
    }

    async fn build(&self, account: &Account) -> Result<AccountIndex, IndexError> {
        let zone = zone_of(account)?;
        let built = rebuild::build(
            self.store.as_ref(),
            account,
            &zone,
            self.snapshots.as_deref(),
            self.clock.now(),
        )
        .await?;
        // An index built from the store differs from any snapshot; one from a snapshot
        // differs by its replay, which another restart could replay again.
        Ok(AccountIndex::new(zone, built.index, built.source))
    }

    /// Saves a snapshot of the accounts' indexes that `when` asks for, so that a restart
    /// replays little.
    pub async fn save_snapshots(&self, when: SaveWhen) -> Result<(), IndexError> {
        let Some(dir) = self.snapshots.clone() else {
            return Ok(());
        };
        let accounts: Vec<(AccountId, Arc<AccountIndex>)> = self
            .accounts
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        for (id, idx) in accounts {
            if !when.due(&idx) {
                continue;
            }
            let Some(account) = self.store.account(id).await? else {
                continue;
            };
            let _saving = idx.saving.lock().await;
            let started = Instant::now();
            // No write of this process is half done while the gate is held: the index
            // holds the store exactly up to the watermark read now.
            let _quiet = idx.quiesce().await;
            let watermark = self.store.watermark(id).await?;
            let header = snapshot::Header {
                account: id,
                time_zone: account.time_zone.clone(),
                watermark,
                rules: evaluate(idx.clone(), |index| {
                    index
                        .segment_ids()
                        .filter_map(|s| index.segment_rule(s).map(|r| (s, r.to_json())))
                        .collect()
                })
                .await?,
                saved_at: self.clock.now(),
            };
            let (dir, held) = (dir.clone(), idx.clone());
            let written = tokio::task::spawn_blocking(move || {
                held.read(|index| snapshot::write(&dir, &header, index))
            })
            .await
            .map_err(|e| IndexError::Task(e.to_string()))?
            .map_err(|e| IndexError::Snapshot(e.to_string()))?;
            // Writes go on while the file reaches the disk.
            idx.unsaved.store(0, Ordering::Relaxed);
            drop(_quiet);
            let bytes = tokio::task::spawn_blocking(move || written.commit())
                .await
                .map_err(|e| IndexError::Task(e.to_string()))?
                .map_err(|e| IndexError::Snapshot(e.to_string()))?;
            if let Ok(mut at) = idx.saved_at.lock() {
                *at = Instant::now();
            }
            tracing::info!(
                account = id,
                bytes,
                ms = started.elapsed().as_millis() as u64,
                "index snapshot saved"
            );
        }
        Ok(())
    }

    /// How the account's index was built at start, if it is built.
    pub fn built_from(&self, account: AccountId) -> Option<Source> {
        self.cached(account).map(|idx| idx.source)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Applies the slices of one write in turn, each under one hold of the index lock,
    /// on tokio's blocking pool (a runtime worker never waits for the lock), and returns
    /// every membership change. The caller logs them ([`Indexes::log`]).
    pub async fn apply(
        &self,
        idx: &Arc<AccountIndex>,
        slices: Vec<Slice>,
    ) -> Result<Vec<Change>, IndexError> {
        self.apply_observed(idx, slices, |_| {}).await
    }

    /// As [`Indexes::apply`], calling `between(n)` after the `n`-th slice, once the lock
    /// is released (tests hold a write there to read meanwhile).
    pub async fn apply_observed(
        &self,
        idx: &Arc<AccountIndex>,
        slices: Vec<Slice>,
        mut between: impl FnMut(usize) + Send + 'static,
    ) -> Result<Vec<Change>, IndexError> {
        let idx = idx.clone();
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || {
            let mut changes = Vec::new();
            // Moving the clock alone leaves a snapshot valid (its timers fire early).
            let rows: usize = slices.iter().map(Slice::rows).sum();
            idx.unsaved.fetch_add(rows as u64, Ordering::Relaxed);
            let mut queue: std::collections::VecDeque<Slice> = slices.into();
            let mut n = 0;
            while let Some(slice) = queue.pop_front() {
                let mut index = idx.index.write();
                let (done, more) = apply_slice(&mut index, &idx.zone, now, slice);
                // Published before any reader can see the new state: a count and a
                // member page read at once agree, whichever lock-free side they took.
                idx.publish(&index);
                let index = parking_lot::RwLockWriteGuard::downgrade(index);
                // External ids for the log, while the contacts are at hand (a deleted
                // one's comes from the write).
                changes.extend(done.into_iter().map(|c| Change {
                    external_id: index.external_id(c.contact).map(str::to_owned),
                    change: c,
                }));
                drop(index);
                n += 1;
                between(n);
                // A new day's whole re-evaluations come next, one hold each.
                for s in more.into_iter().rev() {
                    queue.push_front(s);
                }
            }
            changes
        })
        .await
        .map_err(|e| IndexError::Task(e.to_string()))
    }

    /// Appends changes to the store's log (`known`: external ids of contacts the index no
    /// longer has, e.g. deleted by the write).
    pub async fn log(
        &self,
        account: &Account,
        changes: Vec<Change>,
        known: &HashMap<ContactId, String>,
    ) -> Result<Vec<MembershipChange>, IndexError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // Only the owner logs: a follower's changes are the owner's, logged there (or
        // by its successor's start-up difference).
        if self.cached(account.id).is_some_and(|idx| !idx.is_owned()) {
            return Ok(changes.into_iter().map(|c| c.change).collect());
        }
        let at = self.clock.now();
        let records: Vec<ChangeRecord> = changes
            .iter()
            .map(|c| ChangeRecord {
                segment: c.change.segment,
                contact: c.change.contact,
                external_id: c
                    .external_id
                    .clone()
                    .or_else(|| known.get(&c.change.contact).cloned())
                    .unwrap_or_default(),
                entered: c.change.entered,
                at,
            })
            .collect();
        match self.store.record_changes(account.id, &records).await {
            Ok(()) => {}
            // Ownership moved after this write committed: the write stands, and the new
            // owner logs what the log lacks when it takes over.
            Err(e) if e.is_not_owner() => {
                tracing::warn!(
                    account = account.id,
                    "changes not logged: the account moved"
                )
            }
            Err(e) => return Err(e.into()),
        }
        Ok(changes.into_iter().map(|c| c.change).collect())
    }

    /// Moves every account's clock to now (rolling windows, relative dates); called on a
    /// timer.
    pub async fn refresh(&self) -> Result<(), IndexError> {
        let accounts: Vec<AccountId> = self
            .accounts
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        for id in accounts {
            let (Some(account), Some(idx)) = (self.store.account(id).await?, self.cached(id))
            else {
                continue;
            };
            let _write = idx.enter_write().await;
            let changes = self.apply(&idx, vec![Slice::Tick]).await?;
            self.log(&account, changes, &HashMap::new()).await?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------

    /// The number of members of each saved segment, in the order asked: now from the
    /// published sizes (no lock), at `as_of` by evaluating afresh.
    pub async fn counts(
        &self,
        account: &Account,
        segments: &[SegmentId],
        as_of: Option<Timestamp>,
    ) -> Result<Vec<u64>, IndexError> {
        let idx = self.of(account).await?;
        let Some(at) = as_of else {
            let published = idx.published();
            return Ok(segments
                .iter()
                .map(|id| published.counts.get(id).copied().unwrap_or(0))
                .collect());
        };
        let clock = idx.clock_at(at);
        let segments = segments.to_vec();
        evaluate(idx, move |index| {
            segments
                .iter()
                .map(|&id| match index.segment_rule(id) {
                    Some(rule) => index.evaluate_bits(rule, &clock).count(),
                    None => 0,
                })
                .collect()
        })
        .await
    }

    /// A saved segment's maintained size, read without the index lock, or `None` when
    /// the account has no such segment: the membership that member pages and the change
    /// log read, so all three agree.
    pub async fn saved_count(
        &self,
        account: &Account,
        segment: SegmentId,
    ) -> Result<Option<SavedCount>, IndexError> {
        let published = self.of(account).await?.published();
        Ok(published.counts.get(&segment).map(|&count| SavedCount {
            count,
            as_of: published.exact_at,
        }))
    }

    /// Whether the account has the saved segment, from the published sizes.
    /// How many live contacts the account has (a popcount of the index's live set).
    pub async fn contact_count(&self, account: &Account) -> Result<u64, IndexError> {
        let idx = self.of(account).await?;
        evaluate(idx, |index| index.contact_count()).await
    }

    pub async fn has_segment(
        &self,
        account: &Account,
        segment: SegmentId,
    ) -> Result<bool, IndexError> {
        Ok(self.saved_count(account, segment).await?.is_some())
    }

    /// Members of a saved segment sorted by external id, strictly after `after`.
    pub async fn members(
        &self,
        account: &Account,
        segment: SegmentId,
        as_of: Option<Timestamp>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Contact>, IndexError> {
        let idx = self.of(account).await?;
        let after = after.map(str::to_owned);
        let ids = match as_of {
            None => {
                evaluate(idx, move |index| {
                    index.members(segment, after.as_deref(), limit)
                })
                .await?
            }
            Some(t) => {
                let clock = idx.clock_at(t);
                evaluate(idx, move |index| match index.segment_rule(segment) {
                    Some(rule) => {
                        let set = index.evaluate(rule, &clock);
                        index.page(&set, after.as_deref(), limit)
                    }
                    None => Vec::new(),
                })
                .await?
            }
        };
        Ok(self.store.contacts_by_ids(account.id, &ids).await?)
    }

    /// Evaluates a rule that is not saved.
    pub async fn preview(
        &self,
        account: &Account,
        rule: &Rule,
        as_of: Option<Timestamp>,
        sample: usize,
    ) -> Result<Preview, IndexError> {
        let idx = self.of(account).await?;
        let clock = idx.clock_at(as_of.unwrap_or_else(|| self.clock.now()));
        let rule = rule.clone();
        evaluate(idx, move |index| {
            let set = index.evaluate(&rule, &clock);
            // The first members in external-id order, named by the index itself: no
            // store read, and no sort of the whole set.
            let sample = index
                .page(&set, None, sample)
                .into_iter()
                .filter_map(|id| index.external_id(id).map(str::to_owned))
                .collect();
            Preview {
                count: set.len(),
                sample,
            }
        })
        .await
    }

    /// A draft's live count and reach by channel, from bit sets: no member is listed
    /// and no contact read.
    pub async fn count_with_reach(
        &self,
        account: &Account,
        rule: &Rule,
    ) -> Result<(u64, ReachCounts), IndexError> {
        let idx = self.of(account).await?;
        let clock = idx.clock_at(self.clock.now());
        let rule = rule.clone();
        evaluate(idx, move |index| {
            let set = index.evaluate_bits(&rule, &clock);
            (set.count(), index.reach(&set))
        })
        .await
    }

    /// What the condition builder offers (event names with their properties, campaigns,
    /// URL prefixes), from counts the index keeps.
    pub async fn builder_catalog(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<BuilderCatalog, IndexError> {
        let idx = self.of(account).await?;
        evaluate(idx, move |index| index.builder_catalog(limit)).await
    }

    /// The most frequent values of a text field, or of a custom event's property.
    pub async fn suggestions(
        &self,
        account: &Account,
        of: &ValuesOf,
        limit: usize,
    ) -> Result<Vec<Counted>, IndexError> {
        let idx = self.of(account).await?;
        let of = of.clone();
        evaluate(idx, move |index| match of {
            ValuesOf::Field(key, prefix) => {
                index.field_values_starting(&FieldRef::Custom(key), &prefix, limit)
            }
            ValuesOf::Property {
                event,
                path,
                prefix,
            } => index.property_values_starting(&event, &path, &prefix, limit),
            ValuesOf::Url(text) => index.url_prefixes_containing(&text, limit),
        })
        .await
    }

    /// Contacts whose external id, e-mail, phone or a text field's value starts with
    /// `query` (any case), by external id after `after`.
    pub async fn search(
        &self,
        account: &Account,
        query: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Contact>, IndexError> {
        let idx = self.of(account).await?;
        let (query, after) = (query.to_owned(), after.map(str::to_owned));
        let ids = evaluate(idx, move |index| {
            index.search(&query, after.as_deref(), limit)
        })
        .await?;
        Ok(self.store.contacts_by_ids(account.id, &ids).await?)
    }

    /// The members of a saved segment whose external id, e-mail, phone or a text field's
    /// value starts with `query` (any case): how many, and a page of them by external id
    /// after `after`. The search's bit set ANDed with the membership.
    pub async fn search_members(
        &self,
        account: &Account,
        segment: SegmentId,
        query: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(u64, Vec<Contact>), IndexError> {
        let idx = self.of(account).await?;
        let (query, after) = (query.to_owned(), after.map(str::to_owned));
        let (count, ids) = evaluate(idx, move |index| {
            index.search_members(segment, &query, after.as_deref(), limit)
        })
        .await?;
        Ok((count, self.store.contacts_by_ids(account.id, &ids).await?))
    }

    /// The contacts (store ids) with this e-mail address, any case.
    pub async fn find_by_email(
        &self,
        account: &Account,
        email: &str,
    ) -> Result<Vec<ContactId>, IndexError> {
        let idx = self.of(account).await?;
        let email = email.to_owned();
        evaluate(idx, move |index| index.find_by_email(&email)).await
    }

    /// A campaign's audience now: members of any target, minus members of any exclusion,
    /// split by whether `channel` reaches them. Recipients come as store ids (in slot
    /// order), so that freezing them streams ids, never contacts.
    pub async fn audience(
        &self,
        account: &Account,
        targets: &[SegmentId],
        exclusions: &[SegmentId],
        channel: Channel,
        with_recipients: bool,
    ) -> Result<Audience, IndexError> {
        let idx = self.of(account).await?;
        let (targets, exclusions) = (targets.to_vec(), exclusions.to_vec());
        evaluate(idx, move |index| {
            let (split, exclusion_segments) = index.audience(&targets, &exclusions, channel);
            Audience {
                count: split.recipients.count(),
                recipients: if with_recipients {
                    split
                        .recipients
                        .iter()
                        .filter_map(|s| index.store_id(s))
                        .collect()
                } else {
                    Vec::new()
                },
                no_address: split.no_address,
                unsubscribed: split.unsubscribed,
                bounced: split.bounced,
                exclusion_segments,
            }
        })
        .await
    }

    /// "Why is this contact in or out": `rule`'s tree with each node's truth value for
    /// one contact (and matching event counts). `None` if the contact is unknown.
    pub async fn explain(
        &self,
        account: &Account,
        rule: &Rule,
        contact: ContactId,
        as_of: Option<Timestamp>,
    ) -> Result<Option<segmentd_engine::ExplainNode>, IndexError> {
        let idx = self.of(account).await?;
        let clock = idx.clock_at(as_of.unwrap_or_else(|| self.clock.now()));
        let rule = rule.clone();
        evaluate(idx, move |index| {
            index.explain(&rule, contact, &clock).map(|e| e.tree)
        })
        .await
    }

    /// The saved segments (of `segments`) the contact is a member of now.
    pub async fn member_of(
        &self,
        account: &Account,
        contact: ContactId,
        segments: &[SegmentId],
    ) -> Result<Vec<SegmentId>, IndexError> {
        let idx = self.of(account).await?;
        let segments = segments.to_vec();
        evaluate(idx, move |index| {
            segments
                .into_iter()
                .filter(|&s| index.is_member(s, contact))
                .collect()
        })
        .await
    }
}

/// Runs a read of the index on the blocking pool under its read lock: waiting for a
/// writer's slice, or evaluating for milliseconds, never holds a runtime worker.
pub(crate) async fn evaluate<T: Send + 'static>(
    idx: Arc<AccountIndex>,
    f: impl FnOnce(&Index) -> T + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(move || idx.read(f))
        .await
        .map_err(|e| IndexError::Task(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::sync::mpsc;
    use std::time::Duration;

    use segmentd_rules::{Catalog, parse_rule};
    use segmentd_store::Contact;

    use super::*;
    use crate::state::SystemClock;

    fn contact(id: i64) -> Contact {
        Contact {
            id,
            external_id: format!("c{id:05}"),
            email: Some(format!("c{id}@example.com")),
            phone: None,
            email_status: None,
            sms_status: None,
            push_tokens: Vec::new(),
            fields: BTreeMap::new(),
        }
    }

    fn purchase(contact: ContactId) -> (ContactId, Event) {
        let e = engine_event(
            None,
            Timestamp::now(),
            EventBody::Custom {
                name: "purchase".into(),
                properties: serde_json::Map::new(),
            },
        );
        (contact, e)
    }

    /// While a batch of three slices is half applied, counts, member pages and live
    /// counts answer with what its first slice did; counts answer even while a writer
    /// holds the index lock, since they read published sizes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::await_holding_lock)]
    async fn reads_answer_between_the_slices_of_a_large_batch() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = segmentd_store::open(&url).await.unwrap();
        let account = store.create_account("A", "UTC").await.unwrap();
        let indexes = Indexes::load(store.clone(), Arc::new(SystemClock), None)
            .await
            .unwrap();
        let idx = indexes.of(&account).await.unwrap();
        let rule = parse_rule(
            &serde_json::json!({"custom_event": "purchase", "op": "occurred"}),
            "rule",
            &Catalog::default(),
            None,
        )
        .unwrap();
        let contacts = (1..=3 * WRITE_SLICE as i64).map(contact).collect();
        indexes
            .apply(
                &idx,
                vec![
                    Slice::Contacts(contacts),
                    Slice::Segment(7, Some(rule.clone())),
                ],
            )
            .await
            .unwrap();
        assert_eq!(indexes.counts(&account, &[7], None).await.unwrap(), [0]);

        let slices: Vec<Slice> = (0..3)
            .map(|k| {
                let first = 1 + k * WRITE_SLICE as i64;
                Slice::Events((first..first + WRITE_SLICE as i64).map(purchase).collect())
            })
            .collect();
        let (reached, wait_reached) = mpsc::channel();
        let (go, wait_go) = mpsc::channel::<()>();
        let writing = {
            let (indexes, idx) = (Arc::new(indexes), idx.clone());
            let handle = {
                let indexes = indexes.clone();
                tokio::spawn(async move {
                    indexes
                        .apply_observed(&idx, slices, move |n| {
                            if n == 1 {
                                reached.send(()).unwrap();
                                wait_go.recv().unwrap();
                            }
                        })
                        .await
                })
            };
            (indexes, handle)
        };
        let (indexes, handle) = writing;
        tokio::task::spawn_blocking(move || wait_reached.recv().unwrap())
            .await
            .unwrap();
        let one = WRITE_SLICE as u64;
        assert_eq!(indexes.counts(&account, &[7], None).await.unwrap(), [one]);
        // (The contacts are the index's only: the store has none to list.)
        let page = idx.read(|index| index.members(7, None, 5_000));
        assert_eq!(page.len() as u64, one);
        let (live, _) = indexes.count_with_reach(&account, &rule).await.unwrap();
        assert_eq!(live, one);
        // A writer holding the lock does not hold counts up. (Held across the await on
        // purpose: that is the writer the count must not wait for.)
        {
            let _writer = idx.index.write();
            let counted = tokio::time::timeout(
                Duration::from_secs(10),
                indexes.counts(&account, &[7], None),
            )
            .await
            .expect("a count waited for the writer");
            assert_eq!(counted.unwrap(), [one]);
        }
        go.send(()).unwrap();
        let changes = handle.await.unwrap().unwrap();
        assert_eq!(changes.len(), 3 * WRITE_SLICE);
        assert_eq!(
            indexes.counts(&account, &[7], None).await.unwrap(),
            [3 * one]
        );
    }
}
