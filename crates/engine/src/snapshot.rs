//! An index written to bytes and read back whole: columns, streams, dictionaries, search
//! orders, tallies, timers and every saved segment's membership. Rules are not written:
//! the caller parses them again (rules are parsed, never trusted) and restores each
//! segment with [`Index::restore_segment`], then calls [`Index::finish_restore`].
//!
//! The form is bincode's (fixed-width integers, lengths before sequences), streamed, so
//! that neither side holds a second copy of the index in memory. It is an engine-private
//! layout: [`SNAPSHOT_VERSION`] changes with any change to the structures written, and a
//! reader refuses any other version.

use std::collections::HashMap;
use std::io::{Read, Write};

use jiff::tz::TimeZone;
use roaring::RoaringBitmap;
use segmentd_rules::Clock;
use segmentd_rules::rule::{FieldRef, Rule, SegmentId};
use serde::{Deserialize, Serialize};

use crate::bits::Bits;
use crate::catalog::Tallies;
use crate::chunked::Chunked;
use crate::dict::Dict;
use crate::events::Events;
use crate::fields::Field;
use crate::order::ExternalOrder;
use crate::reach::Reach;
use crate::search::SortedKeys;
use crate::timers::Timers;
use crate::{EngineError, Index, RefreshStats, Segments};

/// The layout of what [`Index::write_snapshot`] writes.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug)]
pub enum SnapshotError {
    /// Written by another version of the engine.
    Version(String),
    Encode(String),
    Decode(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Version(v) => write!(f, "engine snapshot version {v}"),
            SnapshotError::Encode(e) => write!(f, "writing the snapshot failed: {e}"),
            SnapshotError::Decode(e) => write!(f, "the snapshot does not read back: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// An index read back, with its saved segments' membership (to restore with their rules).
#[derive(Debug)]
pub struct Restored {
    pub index: Index,
    pub segments: HashMap<SegmentId, RoaringBitmap>,
}

// `Written` and `Read` must list the same fields in the same order with the same types:
// the form has no field names.

#[derive(Serialize)]
struct Written<'a> {
    clock_ns: i128,
    store_ids: &'a Chunked<i64>,
    ascending: u64,
    sorted_ids: &'a [i64],
    sorted_slots: &'a [u32],
    overflow: &'a HashMap<i64, u32>,
    alive: &'a Bits,
    order: &'a ExternalOrder,
    fields: &'a HashMap<FieldRef, Field>,
    events: &'a Events,
    seen_event_ids: &'a Dict,
    members: Vec<(SegmentId, &'a RoaringBitmap)>,
    reach: &'a Reach,
    tallies: &'a Tallies,
    by_external_id: &'a SortedKeys,
    by_email: &'a SortedKeys,
    by_phone: &'a SortedKeys,
    timers: &'a Timers,
}

#[derive(Deserialize)]
struct ReadBack {
    clock_ns: i128,
    store_ids: Chunked<i64>,
    ascending: u64,
    sorted_ids: Vec<i64>,
    sorted_slots: Vec<u32>,
    overflow: HashMap<i64, u32>,
    alive: Bits,
    order: ExternalOrder,
    fields: HashMap<FieldRef, Field>,
    events: Events,
    seen_event_ids: Dict,
    members: Vec<(SegmentId, RoaringBitmap)>,
    reach: Reach,
    tallies: Tallies,
    by_external_id: SortedKeys,
    by_email: SortedKeys,
    by_phone: SortedKeys,
    timers: Timers,
}

impl Index {
    /// Writes the whole index to `w` (which the caller buffers).
    pub fn write_snapshot(&self, w: &mut impl Write) -> Result<(), SnapshotError> {
        let encode = |e: bincode::Error| SnapshotError::Encode(e.to_string());
        bincode::serialize_into(&mut *w, &SNAPSHOT_VERSION).map_err(encode)?;
        let mut members: Vec<(SegmentId, &RoaringBitmap)> = self
            .segments
            .saved
            .iter()
            .map(|(id, s)| (*id, &s.members))
            .collect();
        members.sort_unstable_by_key(|(id, _)| *id);
        let written = Written {
            clock_ns: self.clock.now.as_nanosecond(),
            store_ids: &self.store_ids,
            ascending: self.ascending as u64,
            sorted_ids: &self.sorted_ids,
            sorted_slots: &self.sorted_slots,
            overflow: &self.overflow,
            alive: &self.alive,
            order: &self.order,
            fields: &self.fields,
            events: &self.events,
            seen_event_ids: &self.seen_event_ids,
            members,
            reach: &self.reach,
            tallies: &self.tallies,
            by_external_id: &self.by_external_id,
            by_email: &self.by_email,
            by_phone: &self.by_phone,
            timers: &self.timers,
        };
        bincode::serialize_into(w, &written).map_err(encode)
    }

    /// Reads an index written by [`Index::write_snapshot`], its clock at the instant it
    /// was written in `zone`. Its saved segments come back as memberships only.
    pub fn read_snapshot(r: &mut impl Read, zone: &TimeZone) -> Result<Restored, SnapshotError> {
        let decode = |e: bincode::Error| SnapshotError::Decode(e.to_string());
        let version: u32 = bincode::deserialize_from(&mut *r).map_err(decode)?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version.to_string()));
        }
        let read: ReadBack = bincode::deserialize_from(r).map_err(decode)?;
        let now = jiff::Timestamp::from_nanosecond(read.clock_ns)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let index = Index {
            clock: Clock::new(now, zone),
            store_ids: read.store_ids,
            ascending: read.ascending as usize,
            sorted_ids: read.sorted_ids,
            sorted_slots: read.sorted_slots,
            overflow: read.overflow,
            alive: read.alive,
            order: read.order,
            fields: read.fields,
            events: read.events,
            seen_event_ids: read.seen_event_ids,
            segments: Segments::default(),
            reach: read.reach,
            tallies: read.tallies,
            by_external_id: read.by_external_id,
            by_email: read.by_email,
            by_phone: read.by_phone,
            timers: read.timers,
            last_refresh: RefreshStats::default(),
        };
        Ok(Restored {
            index,
            segments: read.members.into_iter().collect(),
        })
    }

    /// Saves a segment's rule with the membership it had when the snapshot was written,
    /// without evaluating it. Restore segments in dependency order, then call
    /// [`Index::finish_restore`].
    pub fn restore_segment(
        &mut self,
        id: SegmentId,
        rule: Rule,
        members: RoaringBitmap,
    ) -> Result<(), EngineError> {
        self.segments.set(id, rule)?;
        if let Some(s) = self.segments.saved.get_mut(&id) {
            s.members = members;
        }
        Ok(())
    }

    /// Brings the timers in line with the restored segments (queues whose windows did not
    /// change are kept as written).
    pub fn finish_restore(&mut self) {
        self.sync_timers();
    }
}
