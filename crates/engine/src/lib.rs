//! The in-memory index of one account: rules evaluated as set algebra over bit sets, and
//! the membership of saved segments kept up to date as data arrives.
//!
//! - Contacts get dense `u32` slots in arrival order; the caller names them by the
//!   store's `i64` id. A deleted contact leaves a hole cleared from `alive`.
//! - Field values are columns ([`fields`]): text dictionary-encoded on the lowercased
//!   value with a posting per distinct value (email and phone, near-unique, in a per-slot
//!   byte arena instead), numbers (`f32` while exact), day numbers, boolean bit sets.
//! - Events are streams per kind, sorted by slot in time runs ([`events`]).
//! - Saved segments keep a membership bitmap; a write re-decides only the contacts it
//!   touched for only the segments that read what it changed, in dependency order, and
//!   returns the [`MembershipChange`]s. Time moves membership too: [`Index::refresh`]
//!   re-decides the contacts whose events enter or leave a condition as `now` moves
//!   (`timers.rs`), and re-evaluates segments with relative dates when the day changes.
//!
//! The reference evaluator (`segmentd_rules::eval`) is the oracle: every result here
//! equals what it decides contact by contact. No I/O, no clock reads.

mod bits;
mod catalog;
mod chunked;
mod dict;
mod eval;
mod events;
mod explain;
mod fields;
mod order;
mod reach;
mod search;
mod segments;
mod snapshot;
mod timers;

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;
use segmentd_rules::rule::{FieldRef, Rule, SegmentId};
use segmentd_rules::{Clock, ContactData, CustomEvent, FieldValue, SystemEvent, Visit};

pub use bits::Bits;
pub use catalog::{BuilderCatalog, Counted, EventInfo, PropertyInfo};
pub use explain::{ExplainNode, Explanation};
pub use reach::{Address, Channel, Channels, ReachCounts, Reachable};
pub use snapshot::{Restored, SNAPSHOT_VERSION, SnapshotError};

use crate::catalog::Tallies;
use crate::chunked::Chunked;
use crate::dict::Dict;
use crate::eval::{Refs, ms_floor};
use crate::events::Events;
use crate::fields::{Field, Stored, day_number};
use crate::order::ExternalOrder;
use crate::reach::Reach;
use crate::search::SortedKeys;
pub(crate) use crate::segments::Segments;
use crate::segments::StreamKey;
use crate::timers::Timers;

/// Out-of-order store ids wait in a map until this many (or an eighth of the sorted
/// ones) are merged into the sorted ids. (Debug builds, i.e. the tests, merge often.)
const ID_MERGE_MIN: usize = if cfg!(debug_assertions) { 2 } else { 1024 };

/// One contact entering (`entered: true`) or leaving a saved segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MembershipChange {
    pub segment: SegmentId,
    /// The contact's store id.
    pub contact: i64,
    pub entered: bool,
}

/// The values of a contact that rules and campaigns read. Full replacement: a field
/// missing here has no value after the write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactValues {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub fields: BTreeMap<String, FieldValue>,
    /// Where messages can reach the contact (campaign audiences, reach counts).
    pub channels: Channels,
}

impl From<&ContactData> for ContactValues {
    fn from(c: &ContactData) -> Self {
        ContactValues {
            email: c.email.clone(),
            phone: c.phone.clone(),
            fields: c.fields.clone(),
            channels: Channels::default(),
        }
    }
}

/// One stored event of a contact.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    System(SystemEvent),
    Custom(CustomEvent),
    Visit(Visit),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// Saving this rule would make segment references go round in a circle.
    Cycle(SegmentId),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Cycle(id) => write!(f, "segment {id} would refer to itself"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Heap bytes of the index's parts (capacities, i.e. what the allocator holds, minus
/// its own per-allocation overhead).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MemoryReport {
    pub contacts: usize,
    pub fields: usize,
    pub events: usize,
    pub segments: usize,
    /// The timers of rolling windows and events dated ahead of the clock.
    pub timers: usize,
    pub total: usize,
}

/// What [`Index::refresh`] did last time, and what the timers hold now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefreshStats {
    /// Contacts re-decided because one of their events entered or left a condition.
    pub redecided: usize,
    /// Timer entries that came due (a contact may have several, or none that changed).
    pub fired: usize,
    /// Saved segments re-evaluated whole (a new day for relative dates and
    /// anniversaries, or a clock moved back).
    pub reevaluated: usize,
    /// Timer entries pending now.
    pub pending: usize,
}

/// The in-memory index of one account.
#[derive(Debug)]
pub struct Index {
    /// The clock maintained membership is valid at (set by `new` and `refresh`).
    clock: Clock,
    /// Slot → store id.
    store_ids: Chunked<i64>,
    /// `store_ids[..ascending]` is strictly increasing: store id → slot by a guess
    /// (dense ids) or a binary search, with no map. Later slots whose id does not extend
    /// that run (e.g. contacts loaded in external-id order) are found in `sorted`
    /// (store ids with their slots, by id: 12 bytes a contact) or, until the next merge
    /// into it, in `overflow`. Deleted contacts stay until that merge (`alive` tells).
    ascending: usize,
    sorted_ids: Vec<i64>,
    sorted_slots: Vec<u32>,
    overflow: HashMap<i64, u32>,
    pub(crate) alive: Bits,
    order: ExternalOrder,
    pub(crate) fields: HashMap<FieldRef, Field>,
    pub(crate) events: Events,
    /// Client ids of stored events: "the first one stays".
    seen_event_ids: Dict,
    pub(crate) segments: Segments,
    /// Who each channel reaches.
    reach: Reach,
    /// Live counts behind the builder's catalog.
    pub(crate) tallies: Tallies,
    /// Contacts by lowercased external id, e-mail and phone, for prefix search.
    by_external_id: SortedKeys,
    by_email: SortedKeys,
    by_phone: SortedKeys,
    /// When time alone changes a contact's behaviour conditions.
    timers: Timers,
    last_refresh: RefreshStats,
}

impl Index {
    /// An empty index whose maintained membership is kept at `clock` until the next
    /// [`Index::refresh`].
    pub fn new(clock: Clock) -> Self {
        Index {
            clock: clock.clone(),
            store_ids: Chunked::new(),
            ascending: 0,
            sorted_ids: Vec::new(),
            sorted_slots: Vec::new(),
            overflow: HashMap::new(),
            alive: Bits::new(0),
            order: ExternalOrder::default(),
            fields: HashMap::new(),
            events: Events::new(),
            seen_event_ids: Dict::default(),
            segments: Segments::default(),
            reach: Reach::default(),
            tallies: Tallies::default(),
            by_external_id: SortedKeys::default(),
            by_email: SortedKeys::default(),
            by_phone: SortedKeys::default(),
            timers: Timers::new(ms_floor(clock.now)),
            last_refresh: RefreshStats::default(),
        }
    }

    /// The clock maintained membership is valid at.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Live contacts.
    pub fn contact_count(&self) -> u64 {
        self.alive.count()
    }

    /// Stored events of every kind (deleted contacts' included until they are dropped).
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The dense id of a live contact.
    pub fn slot_of(&self, contact: i64) -> Option<u32> {
        let ids = &self.store_ids;
        let ascending = self.ascending;
        let live = |i: usize| {
            (i < ascending && ids.get(i) == Some(contact) && self.alive.get(i as u32))
                .then_some(i as u32)
        };
        if ascending > 0
            && let Some(first) = ids.get(0)
        {
            // Dense ids: the slot is the distance from the first one.
            let guess = contact.wrapping_sub(first);
            if (0..ascending as i64).contains(&guess)
                && let Some(s) = live(guess as usize)
            {
                return Some(s);
            }
            if let Some(s) = live(ids.partition_point_in(0, ascending, |id| id < contact)) {
                return Some(s);
            }
        }
        if let Ok(i) = self.sorted_ids.binary_search(&contact) {
            let s = self.sorted_slots[i];
            if self.alive.get(s) {
                return Some(s);
            }
        }
        self.overflow.get(&contact).copied()
    }

    /// Moves `overflow` into the sorted ids (dropping deleted contacts) once it is large.
    fn maybe_merge_ids(&mut self, force: bool) {
        let len = self.overflow.len();
        if len == 0 || (!force && len <= ID_MERGE_MIN.max(self.sorted_ids.len() / 8)) {
            return;
        }
        let mut pairs: Vec<(i64, u32)> = Vec::with_capacity(self.sorted_ids.len() + len);
        pairs.extend(
            self.sorted_ids
                .iter()
                .copied()
                .zip(self.sorted_slots.iter().copied())
                .filter(|&(_, s)| self.alive.get(s)),
        );
        pairs.extend(self.overflow.drain());
        pairs.sort_unstable();
        self.overflow = HashMap::new();
        self.sorted_ids = pairs.iter().map(|p| p.0).collect();
        self.sorted_slots = pairs.iter().map(|p| p.1).collect();
    }

    /// The store id of a dense id.
    pub fn store_id(&self, slot: u32) -> Option<i64> {
        self.store_ids.get(slot as usize)
    }

    /// The store ids of a set of dense ids (e.g. from [`Index::evaluate`]), in dense order.
    pub fn store_ids(&self, slots: &RoaringBitmap) -> Vec<i64> {
        slots.iter().filter_map(|s| self.store_id(s)).collect()
    }

    // -----------------------------------------------------------------------------------
    // Reads
    // -----------------------------------------------------------------------------------

    /// The live contacts (dense ids) matching `rule` at `clock`. References to saved
    /// segments read their current rule: from maintained membership when `clock` is the
    /// index's clock, afresh otherwise.
    pub fn evaluate(&self, rule: &Rule, clock: &Clock) -> RoaringBitmap {
        self.evaluate_bits(rule, clock).to_roaring()
    }

    /// As [`Index::evaluate`], as a dense bit set (cheaper to count).
    pub fn evaluate_bits(&self, rule: &Rule, clock: &Clock) -> Bits {
        let mut refs = if *clock == self.clock {
            Refs::Maintained
        } else {
            Refs::Fresh(HashMap::new())
        };
        self.eval_bits(rule, clock, &mut refs, 0)
    }

    /// As [`Index::evaluate`] but always evaluating referenced segments afresh.
    pub fn evaluate_fresh(&self, rule: &Rule, clock: &Clock) -> RoaringBitmap {
        self.eval_bits(rule, clock, &mut Refs::Fresh(HashMap::new()), 0)
            .to_roaring()
    }

    /// Members of a saved segment (0 for an unknown one).
    pub fn count(&self, segment: SegmentId) -> u64 {
        self.segments
            .saved
            .get(&segment)
            .map_or(0, |s| s.members.len())
    }

    pub fn is_member(&self, segment: SegmentId, contact: i64) -> bool {
        match (self.segments.saved.get(&segment), self.slot_of(contact)) {
            (Some(s), Some(slot)) => s.members.contains(slot),
            _ => false,
        }
    }

    /// The maintained members (dense ids) of a saved segment.
    pub fn membership(&self, segment: SegmentId) -> Option<&RoaringBitmap> {
        self.segments.saved.get(&segment).map(|s| &s.members)
    }

    /// The ids of the saved segments.
    pub fn segment_ids(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.segments.saved.keys().copied()
    }

    /// The external id of a live contact (store id).
    pub fn external_id(&self, contact: i64) -> Option<&str> {
        self.slot_of(contact).map(|s| self.order.ext(s))
    }

    /// How many of `set` (dense ids) each channel reaches.
    pub fn reach(&self, set: &Bits) -> ReachCounts {
        self.reach.counts(set)
    }

    /// The members of any of `targets` and of none of `exclusions` (saved segments),
    /// split for a message on `channel`; `excluded` counts the targeted members that an
    /// exclusion segment took out.
    pub fn audience(
        &self,
        targets: &[SegmentId],
        exclusions: &[SegmentId],
        channel: Channel,
    ) -> (Reachable, u64) {
        let n = self.alive.len();
        let mut targeted = Bits::new(n);
        for id in targets {
            if let Some(m) = self.membership(*id) {
                targeted.or_roaring(m);
            }
        }
        let mut excluded = Bits::new(n);
        for id in exclusions {
            if let Some(m) = self.membership(*id) {
                excluded.or_roaring(m);
            }
        }
        let taken = targeted.and_count(&excluded);
        targeted.and_not_with(&excluded);
        targeted.and_with(&self.alive);
        (self.reach.split(&targeted, channel), taken)
    }

    /// The channels of a live contact (store id).
    pub fn channels(&self, contact: i64) -> Option<Channels> {
        self.slot_of(contact).map(|s| self.reach.get(s))
    }

    /// The saved segment's rule.
    pub fn segment_rule(&self, segment: SegmentId) -> Option<&Rule> {
        self.segments.saved.get(&segment).map(|s| &s.rule)
    }

    /// Up to `limit` members of a saved segment (store ids), sorted by external id,
    /// starting after `after_external_id`.
    pub fn members(
        &self,
        segment: SegmentId,
        after_external_id: Option<&str>,
        limit: usize,
    ) -> Vec<i64> {
        match self.segments.saved.get(&segment) {
            Some(s) => self.page(&s.members, after_external_id, limit),
            None => Vec::new(),
        }
    }

    /// Up to `limit` contacts of `set` (dense ids, e.g. from `evaluate`) as store ids,
    /// sorted by external id, starting after `after_external_id`.
    pub fn page(&self, set: &RoaringBitmap, after: Option<&str>, limit: usize) -> Vec<i64> {
        self.order
            .page(set, &self.alive, after, limit)
            .into_iter()
            .filter_map(|s| self.store_id(s))
            .collect()
    }

    // -----------------------------------------------------------------------------------
    // Writes
    // -----------------------------------------------------------------------------------

    /// Creates or replaces a contact's values.
    pub fn upsert_contact(
        &mut self,
        contact: i64,
        external_id: &str,
        values: &ContactValues,
    ) -> Vec<MembershipChange> {
        let (slot, created) = match self.slot_of(contact) {
            Some(slot) => (slot, false),
            None => {
                let slot = self.store_ids.len() as u32;
                let extends = self.ascending == self.store_ids.len()
                    && self.store_ids.last().is_none_or(|l| l < contact);
                self.store_ids.push(contact);
                if extends {
                    self.ascending += 1;
                } else {
                    self.overflow.insert(contact, slot);
                    self.maybe_merge_ids(false);
                }
                self.alive.set(slot);
                (slot, true)
            }
        };
        let old_keys = if created {
            [None, None, None]
        } else {
            self.search_keys(slot)
        };
        self.order.set(slot, external_id);
        self.order.maybe_compact(&self.alive);
        self.reach.set(slot, &values.channels);

        let mut wanted: HashMap<FieldRef, FieldValue> = HashMap::new();
        if let Some(e) = &values.email {
            wanted.insert(FieldRef::Email, FieldValue::Text(e.clone()));
        }
        if let Some(p) = &values.phone {
            wanted.insert(FieldRef::Phone, FieldValue::Text(p.clone()));
        }
        for (k, v) in &values.fields {
            wanted.insert(FieldRef::Custom(k.clone()), v.clone());
        }
        let mut changed: Vec<FieldRef> = Vec::new();
        for (key, field) in self.fields.iter_mut() {
            if !wanted.contains_key(key) && field.present.get(slot) {
                field.clear(slot);
                changed.push(key.clone());
            }
        }
        for (key, value) in wanted {
            let field = self
                .fields
                .entry(key.clone())
                .or_insert_with(|| Field::new(&key));
            if !same_value(field.get(slot), &value) {
                field.set(slot, &value);
                changed.push(key);
            }
        }
        self.update_search(slot, old_keys);
        if created {
            let all: Vec<SegmentId> = self.segments.order.clone();
            self.redecide(slot, &all)
        } else {
            let readers = self.segments.readers_of_fields(&changed);
            self.redecide(slot, &readers)
        }
    }

    /// Deletes a contact: it leaves every segment.
    pub fn delete_contact(&mut self, contact: i64) -> Vec<MembershipChange> {
        let Some(slot) = self.slot_of(contact) else {
            return Vec::new();
        };
        let old_keys = self.search_keys(slot);
        self.overflow.remove(&contact);
        self.alive.clear(slot);
        self.order.remove(slot);
        for field in self.fields.values_mut() {
            field.clear(slot);
        }
        self.update_search(slot, old_keys);
        self.reach.clear(slot);
        self.forget_events(slot);
        let mut changes = Vec::new();
        for id in self.segments.order.clone() {
            if let Some(s) = self.segments.saved.get_mut(&id)
                && s.members.remove(slot)
            {
                changes.push(MembershipChange {
                    segment: id,
                    contact,
                    entered: false,
                });
            }
        }
        changes
    }

    /// Adds a batch of events (store contact id, event). Events of unknown contacts are
    /// ignored; an event whose client id was seen before is ignored ("the first one
    /// stays"). Timestamps are kept to the millisecond (finer digits are cut).
    pub fn add_events<'e>(
        &mut self,
        events: impl IntoIterator<Item = (i64, &'e Event)>,
    ) -> Vec<MembershipChange> {
        let now = ms_floor(self.clock.now);
        // (slot, stream, the earliest instant after `now` at which one of the new events
        // changes a condition, `i64::MAX` for none) for streams read by saved segments.
        let mut touched: Vec<(u32, StreamKey, i64)> = Vec::new();
        for (contact, event) in events {
            let Some(slot) = self.slot_of(contact) else {
                continue;
            };
            let id = match event {
                Event::System(e) => e.id.as_deref(),
                Event::Custom(e) => e.id.as_deref(),
                Event::Visit(v) => v.id.as_deref(),
            };
            if let Some(id) = id {
                let known = self.seen_event_ids.len();
                self.seen_event_ids.intern(id);
                if self.seen_event_ids.len() == known {
                    continue;
                }
            }
            let (key, ts) = match event {
                Event::System(e) => {
                    let ts = ms_floor(e.timestamp);
                    let payload = self.events.campaign_code(e.campaign.as_deref());
                    self.tallies.campaign(payload, true);
                    self.events.system[e.kind as usize].push(slot, ts, payload);
                    (StreamKey::System(e.kind as u8), ts)
                }
                Event::Custom(e) => {
                    let ts = ms_floor(e.timestamp);
                    let stream = self.events.custom.entry(e.name.clone()).or_default();
                    let record = stream.props.add(&mut self.events.properties, &e.properties);
                    stream.push(slot, ts, record);
                    (StreamKey::Custom(e.name.clone()), ts)
                }
                Event::Visit(v) => {
                    let ts = ms_floor(v.timestamp);
                    let code = self.events.urls.intern(&events::lower(&v.url));
                    self.events.visits.push(slot, ts, code);
                    self.tallies.visit(code, &self.events.urls, true);
                    (StreamKey::Visits, ts)
                }
            };
            if self.segments.reads_stream(&key) {
                let first = self.timers.first_change(&key, ts, now);
                touched.push((slot, key, first.unwrap_or(i64::MAX)));
            }
        }
        let mut changes = Vec::new();
        // Sorted, each (slot, stream) once with its earliest instant.
        touched.sort_unstable();
        touched.dedup_by(|later, kept| later.0 == kept.0 && later.1 == kept.1);
        for run in touched.chunk_by(|a, b| a.0 == b.0) {
            let keys: Vec<&StreamKey> = run.iter().map(|(_, k, _)| k).collect();
            let readers = self.segments.readers_of_streams(&keys);
            changes.extend(self.redecide(run[0].0, &readers));
            // Right after the re-decision, which has just read the same events.
            for (slot, key, first) in run {
                if *first != i64::MAX {
                    let stream = key.stream(&self.events);
                    self.timers.arm_added(key, stream, *slot, *first, now);
                }
            }
        }
        changes
    }

    /// Removes a custom field's values from every contact (the field was deleted).
    pub fn drop_field(&mut self, key: &str) -> Vec<MembershipChange> {
        let key = FieldRef::Custom(key.to_owned());
        if self.fields.remove(&key).is_none() {
            return Vec::new();
        }
        let readers = self.segments.readers_of_fields(std::slice::from_ref(&key));
        self.reevaluate(&readers)
    }

    /// Saves or replaces a segment's rule and re-evaluates it and the segments that
    /// refer to it. Refused when it would close a cycle of references.
    pub fn set_segment(
        &mut self,
        id: SegmentId,
        rule: Rule,
    ) -> Result<Vec<MembershipChange>, EngineError> {
        self.segments.set(id, rule)?;
        self.sync_timers();
        let affected = self.segments.with_dependents(&[id]);
        Ok(self.reevaluate(&affected))
    }

    /// Removes a saved segment: its members leave it; segments referring to it now refer
    /// to an empty segment.
    pub fn remove_segment(&mut self, id: SegmentId) -> Vec<MembershipChange> {
        let Some(old) = self.segments.remove(id) else {
            return Vec::new();
        };
        self.sync_timers();
        let mut changes: Vec<MembershipChange> = old
            .members
            .iter()
            .filter_map(|slot| self.store_id(slot))
            .map(|contact| MembershipChange {
                segment: id,
                contact,
                entered: false,
            })
            .collect();
        let dependents = self.segments.with_dependents(&[id]);
        changes.extend(self.reevaluate(&dependents));
        changes
    }

    /// Moves the index's clock to `clock` and updates the membership that time alone
    /// changes: the contacts whose events enter a condition (dated after the old clock)
    /// or leave a rolling window are re-decided, for the segments reading those windows
    /// and the segments referring to them (`timers.rs`); on a new day, segments with
    /// relative dates or anniversaries (and those referring to them) are re-evaluated
    /// whole. A clock moved back re-evaluates every time-dependent segment instead.
    pub fn refresh(&mut self, clock: &Clock) -> Vec<MembershipChange> {
        let (mut changes, whole) = self.refresh_timers(clock);
        for id in whole {
            changes.extend(self.reevaluate_segment(id));
        }
        changes
    }

    /// As [`Index::refresh`] but for the whole re-evaluations of a new day, which it
    /// returns instead (in dependency order) for the caller to run one at a time with
    /// [`Index::reevaluate_segment`] (each a pass over the contacts), so that a server
    /// can let readers in between them. Writes in between are decided at the new clock
    /// already, so the result is the same.
    pub fn refresh_timers(&mut self, clock: &Clock) -> (Vec<MembershipChange>, Vec<SegmentId>) {
        let old = std::mem::replace(&mut self.clock, clock.clone());
        let (f0, f1) = (ms_floor(old.now), ms_floor(clock.now));
        if f1 < f0 {
            return (self.refresh_backwards(&old), Vec::new());
        }
        // The one step that costs a pass over the contacts, once a day: relative dates
        // and anniversaries move for everyone at once when the day changes.
        let whole = if old.today != clock.today {
            self.segments.moved_by_today()
        } else {
            Vec::new()
        };
        let mut stats = RefreshStats::default();
        let mut changes = Vec::new();
        if f1 > f0 {
            let (fired, popped) = self.timers.fire(&self.events, &self.alive, f0, f1);
            stats.fired = popped;
            for group in fired.chunk_by(|a, b| a.slot == b.slot) {
                let mut readers: Vec<SegmentId> = Vec::new();
                for f in group {
                    let Some((key, lengths)) = self.timers.key(f.queue) else {
                        continue;
                    };
                    if f.entered {
                        readers.extend_from_slice(self.segments.readers_of_stream(key));
                        continue;
                    }
                    for (i, &length) in lengths.iter().enumerate().take(64) {
                        if f.left & (1 << i) != 0 {
                            readers.extend_from_slice(self.segments.readers_of_window(key, length));
                        }
                    }
                }
                self.segments.in_order(&mut readers);
                // Segments re-evaluated whole below need no contact-by-contact pass.
                readers.retain(|id| !whole.contains(id));
                if !readers.is_empty() {
                    stats.redecided += 1;
                    changes.extend(self.redecide(group[0].slot, &readers));
                }
            }
            if self.timers.needs_rebase(f1) {
                self.timers
                    .rebuild(self.segments.timer_keys(), &self.events, &self.alive, f1);
            }
        }
        stats.reevaluated = whole.len();
        stats.pending = self.timers.pending();
        self.last_refresh = stats;
        (changes, whole)
    }

    /// Re-evaluates one saved segment whole at the index's clock (a step of a new day's
    /// refresh: see [`Index::refresh_timers`]).
    pub fn reevaluate_segment(&mut self, id: SegmentId) -> Vec<MembershipChange> {
        self.reevaluate(&[id])
    }

    /// The clock moved back (only tests do that): re-evaluates every segment whose
    /// membership can move with time (rolling windows, relative dates and anniversaries
    /// when the day changed, behaviour over events dated between the two clocks, and the
    /// segments referring to them), then rebuilds the timers at the new clock. Correct,
    /// not fast.
    fn refresh_backwards(&mut self, old: &Clock) -> Vec<MembershipChange> {
        let clock = self.clock.clone();
        let today_moved = old.today != clock.today;
        let earliest = ms_floor(old.now.min(clock.now));
        let events = &self.events;
        let stale: Vec<SegmentId> = self
            .segments
            .saved
            .iter()
            .filter(|(_, s)| {
                s.time.rolling_now
                    || (today_moved && s.time.rolling_today)
                    || s.reads
                        .streams
                        .iter()
                        .any(|k| k.stream(events).is_some_and(|st| st.max_ts > earliest))
            })
            .map(|(id, _)| *id)
            .collect();
        let affected = self.segments.with_dependents(&stale);
        let changes = self.reevaluate(&affected);
        self.timers.rebuild(
            self.segments.timer_keys(),
            &self.events,
            &self.alive,
            ms_floor(clock.now),
        );
        self.last_refresh = RefreshStats {
            reevaluated: affected.len(),
            pending: self.timers.pending(),
            ..RefreshStats::default()
        };
        changes
    }

    /// What the last [`Index::refresh`] did, and the timer entries pending now.
    pub fn refresh_stats(&self) -> RefreshStats {
        RefreshStats {
            pending: self.timers.pending(),
            ..self.last_refresh
        }
    }

    /// Brings the timers in line with what saved segments read (after a segment is
    /// saved or removed).
    fn sync_timers(&mut self) {
        let now = ms_floor(self.clock.now);
        self.timers
            .sync(self.segments.timer_keys(), &self.events, &self.alive, now);
    }

    /// Merges pending appends (event tails, new external ids) into their sorted forms.
    /// Writes do it on their own as tails grow; call it when idle to keep reads fast.
    pub fn compact(&mut self) {
        self.events.compact();
        self.order.compact(&self.alive);
        for f in self.fields.values_mut() {
            f.shrink();
        }
        self.store_ids.shrink();
        self.alive.shrink();
        self.maybe_merge_ids(true);
        self.events.release();
        self.compact_search();
        self.reach.shrink();
        self.timers.shrink();
    }

    /// Heap bytes held by the index.
    pub fn memory(&self) -> MemoryReport {
        let contacts = self.store_ids.heap_bytes()
            + self.sorted_ids.capacity() * 8
            + self.sorted_slots.capacity() * 4
            + self.overflow.capacity() * 17
            + self.alive.heap_bytes()
            + self.order.heap_bytes()
            + self.seen_event_ids.heap_bytes()
            + self.reach.heap_bytes()
            + self.search_heap_bytes();
        let fields = self.fields.values().map(Field::heap_bytes).sum::<usize>();
        let events = self.events.heap_bytes() + self.tallies.heap_bytes();
        let segments = self.segments.heap_bytes();
        let timers = self.timers.heap_bytes();
        MemoryReport {
            contacts,
            fields,
            events,
            segments,
            timers,
            total: contacts + fields + events + segments + timers,
        }
    }

    // -----------------------------------------------------------------------------------
    // Maintenance
    // -----------------------------------------------------------------------------------

    /// Re-decides one contact for `segments` (in dependency order) at the index's clock.
    fn redecide(&mut self, slot: u32, segments: &[SegmentId]) -> Vec<MembershipChange> {
        let mut changes = Vec::new();
        let Some(contact) = self.store_id(slot) else {
            return changes;
        };
        let alive = self.alive.get(slot);
        for id in segments {
            let Some(s) = self.segments.saved.get(id) else {
                continue;
            };
            let now =
                alive && self.decide(&s.rule, slot, &self.clock, eval::RefMode::Maintained, 0);
            let was = s.members.contains(slot);
            if now != was {
                if let Some(s) = self.segments.saved.get_mut(id) {
                    if now {
                        s.members.insert(slot);
                    } else {
                        s.members.remove(slot);
                    }
                }
                changes.push(MembershipChange {
                    segment: *id,
                    contact,
                    entered: now,
                });
            }
        }
        changes
    }

    /// Re-evaluates whole `segments` (in dependency order) at the index's clock.
    fn reevaluate(&mut self, segments: &[SegmentId]) -> Vec<MembershipChange> {
        let mut changes = Vec::new();
        for id in segments {
            let Some(s) = self.segments.saved.get(id) else {
                continue;
            };
            let new = self
                .eval_bits(&s.rule, &self.clock, &mut Refs::Maintained, 0)
                .to_roaring();
            let entered = &new - &s.members;
            let exited = &s.members - &new;
            for slot in &entered {
                if let Some(contact) = self.store_id(slot) {
                    changes.push(MembershipChange {
                        segment: *id,
                        contact,
                        entered: true,
                    });
                }
            }
            for slot in &exited {
                if let Some(contact) = self.store_id(slot) {
                    changes.push(MembershipChange {
                        segment: *id,
                        contact,
                        entered: false,
                    });
                }
            }
            if let Some(s) = self.segments.saved.get_mut(id) {
                s.members = new;
            }
        }
        changes
    }
}

/// Whether a stored value already equals a value being written (as rules see them).
fn same_value(old: Option<Stored<'_>>, new: &FieldValue) -> bool {
    match (old, new) {
        (None, FieldValue::Text(s)) => s.is_empty(),
        (None, _) => false,
        (Some(Stored::Text(a)), FieldValue::Text(b)) => a == b.to_lowercase(),
        (Some(Stored::Number(a)), FieldValue::Number(b)) => a.to_bits() == b.to_bits(),
        (Some(Stored::Date(a)), FieldValue::Date(b)) => a == day_number(*b),
        (Some(Stored::Boolean(a)), FieldValue::Boolean(b)) => a == *b,
        (Some(_), _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Store ids in any order, deleted and created again, map to their live slots.
    #[test]
    fn store_ids_in_any_order_find_their_slots() {
        let clock = Clock::new(jiff::Timestamp::UNIX_EPOCH, &jiff::tz::TimeZone::UTC);
        let mut index = Index::new(clock);
        let mut live: HashMap<i64, u32> = HashMap::new();
        let mut state = 5u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        let values = ContactValues::default();
        for round in 0..3000 {
            // Ascending at first, then in any order.
            let id = if round < 300 {
                round * 3
            } else {
                (next() % 5000) as i64
            };
            if next() % 5 == 0 {
                index.delete_contact(id);
                live.remove(&id);
            } else {
                index.upsert_contact(id, "x", &values);
                let slot = (index.store_ids.len() - 1) as u32;
                live.entry(id).or_insert(slot);
            }
            if round % 500 == 0 {
                index.compact();
            }
            if round % 97 == 0 {
                for probe in 0..5000 {
                    assert_eq!(index.slot_of(probe), live.get(&probe).copied(), "{probe}");
                }
            }
        }
        assert_eq!(index.contact_count(), live.len() as u64);
    }
}
