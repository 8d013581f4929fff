//! Columnar field values: one set of columns per field (custom key, `email`, `phone`).
//!
//! A contact holds at most one value per field. Values are kept in the column of their
//! own type, so a condition of another type than the stored value reads "no value", as
//! the reference evaluator does.

use jiff::civil::Date;
use roaring::RoaringBitmap;
use segmentd_rules::FieldValue;
use segmentd_rules::rule::{FieldRef, TextOp};

use crate::bits::Bits;
use crate::chunked::Chunked;
use crate::dict::{Dict, NONE};

/// A dictionary-encoded text column: the distinct LOWERCASED values and each value's
/// posting.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct DictColumn {
    pub dict: Dict,
    /// Per slot: the value's code, or `NONE`.
    codes: Codes,
    /// Per code: `EMPTY`, a single slot (high bit clear), or `MANY | index` into `many`.
    postings: Vec<u32>,
    many: Vec<RoaringBitmap>,
}

/// Per-slot codes: two bytes each while the dictionary is small (`u16::MAX` is `NONE`),
/// four once it grows past that.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Codes {
    Small(Chunked<u16>),
    Large(Chunked<u32>),
}

impl Default for Codes {
    fn default() -> Self {
        Codes::Small(Chunked::new())
    }
}

impl Codes {
    fn len(&self) -> usize {
        match self {
            Codes::Small(v) => v.len(),
            Codes::Large(v) => v.len(),
        }
    }

    fn get(&self, slot: u32) -> u32 {
        match self {
            Codes::Small(v) => match v.get(slot as usize) {
                None | Some(u16::MAX) => NONE,
                Some(c) => u32::from(c),
            },
            Codes::Large(v) => v.get(slot as usize).unwrap_or(NONE),
        }
    }

    fn set(&mut self, slot: u32, code: u32) {
        let i = slot as usize;
        if let Codes::Small(v) = self
            && code != NONE
            && code >= u32::from(u16::MAX)
        {
            let wide = v
                .iter()
                .map(|c| if c == u16::MAX { NONE } else { u32::from(c) })
                .collect();
            *self = Codes::Large(wide);
        }
        match self {
            Codes::Small(v) => {
                let c = if code == NONE { u16::MAX } else { code as u16 };
                v.set(i, c, u16::MAX);
            }
            Codes::Large(v) => v.set(i, code, NONE),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Codes::Small(v) => v.heap_bytes(),
            Codes::Large(v) => v.heap_bytes(),
        }
    }
}

const EMPTY: u32 = u32::MAX;

/// Postings are read (~1 ns a member) rather than the code column scanned (~2 ns a
/// slot) while they hold at most this fraction of the slots.
const POSTINGS_UP_TO: u64 = 4;
const MANY: u32 = 1 << 31;

impl DictColumn {
    pub fn code_of(&self, slot: u32) -> u32 {
        self.codes.get(slot)
    }

    /// The lowercased value of `slot`.
    pub fn value(&self, slot: u32) -> Option<&str> {
        match self.code_of(slot) {
            NONE => None,
            c => Some(self.dict.str(c)),
        }
    }

    fn set(&mut self, slot: u32, lower: &str) {
        self.unset(slot);
        let code = self.dict.intern(lower);
        self.codes.set(slot, code);
        if self.postings.len() <= code as usize {
            self.postings.resize(code as usize + 1, EMPTY);
        }
        let p = self.postings[code as usize];
        if p == EMPTY {
            self.postings[code as usize] = slot;
        } else if p & MANY == 0 {
            let mut r = RoaringBitmap::new();
            r.insert(p);
            r.insert(slot);
            self.postings[code as usize] = MANY | self.many.len() as u32;
            self.many.push(r);
        } else if let Some(r) = self.many.get_mut((p & !MANY) as usize) {
            r.insert(slot);
        }
    }

    fn unset(&mut self, slot: u32) {
        let code = self.code_of(slot);
        if code == NONE {
            return;
        }
        self.codes.set(slot, NONE);
        let p = self.postings[code as usize];
        if p == slot {
            self.postings[code as usize] = EMPTY;
        } else if p != EMPTY
            && p & MANY != 0
            && let Some(r) = self.many.get_mut((p & !MANY) as usize)
        {
            r.remove(slot);
        }
    }

    /// Adds the slots holding `code` to `out`.
    pub fn posting_into(&self, code: u32, out: &mut Bits) {
        match self.postings.get(code as usize).copied().unwrap_or(EMPTY) {
            EMPTY => {}
            p if p & MANY == 0 => out.set(p),
            p => {
                if let Some(r) = self.many.get((p & !MANY) as usize) {
                    out.or_roaring(r);
                }
            }
        }
    }

    /// The number of slots holding `code`.
    pub fn posting_count(&self, code: u32) -> u64 {
        match self.postings.get(code as usize).copied().unwrap_or(EMPTY) {
            EMPTY => 0,
            p if p & MANY == 0 => 1,
            p => self.many.get((p & !MANY) as usize).map_or(0, |r| r.len()),
        }
    }

    /// Adds the slots whose code is in `codes` to `out`: through the postings when they
    /// are few and hold at most `1 / POSTINGS_UP_TO` of the slots, else by one pass over
    /// the code column (branch-free, ~2 ns a slot).
    pub fn select_into(&self, codes: &Bits, out: &mut Bits) {
        let n = self.codes.len() as u64;
        let mut few = true;
        let mut total = 0u64;
        let mut seen = 0;
        for c in codes.iter() {
            seen += 1;
            if seen > 64 {
                few = false;
                break;
            }
            total += self.posting_count(c);
            if total > n / POSTINGS_UP_TO {
                few = false;
                break;
            }
        }
        if few {
            for c in codes.iter() {
                self.posting_into(c, out);
            }
        } else {
            let mut scanned = Bits::new(self.codes.len());
            match &self.codes {
                Codes::Small(v) => scanned.fill_from_chunked(v, |c| codes.get(u32::from(c))),
                Codes::Large(v) => scanned.fill_from_chunked(v, |c| codes.get(c)),
            }
            out.or_with(&scanned);
        }
    }

    fn shrink(&mut self) {
        match &mut self.codes {
            Codes::Small(v) => v.shrink(),
            Codes::Large(v) => v.shrink(),
        }
        self.postings.shrink_to_fit();
        self.many.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.dict.heap_bytes()
            + self.codes.heap_bytes()
            + self.postings.capacity() * 4
            + self.many.capacity() * 24
            + self
                .many
                .iter()
                .map(|r| r.serialized_size() + 16)
                .sum::<usize>()
    }
}

/// A text column of near-unique values (email, phone): each slot's LOWERCASED value in
/// one byte arena (a length prefix, then the bytes), with no dictionary and no postings.
/// Ops scan the arena (tens of MB at 10M contacts: milliseconds) or, inside an `all` that
/// already narrowed the contacts, read only the remaining contacts' values.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ArenaColumn {
    /// Per slot: the start of its entry in `bytes`, or `NONE`.
    starts: Chunked<u32>,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    /// Bytes of entries no slot points at any more.
    garbage: usize,
}

/// Length prefixes up to this are one byte; longer ones are `LONG` then four bytes.
const LONG: u8 = u8::MAX;

impl ArenaColumn {
    fn entry(&self, start: u32) -> &[u8] {
        let s = start as usize;
        let Some(&first) = self.bytes.get(s) else {
            return &[];
        };
        let (len, at) = if first == LONG {
            let mut w = [0u8; 4];
            if let Some(b) = self.bytes.get(s + 1..s + 5) {
                w.copy_from_slice(b);
            }
            (u32::from_le_bytes(w) as usize, s + 5)
        } else {
            (first as usize, s + 1)
        };
        self.bytes.get(at..at + len).unwrap_or(&[])
    }

    fn entry_size(len: usize) -> usize {
        len + if len < LONG as usize { 1 } else { 5 }
    }

    /// The lowercased value's bytes of `slot`.
    pub fn bytes_of(&self, slot: u32) -> Option<&[u8]> {
        match self.starts.get(slot as usize).unwrap_or(NONE) {
            NONE => None,
            s => Some(self.entry(s)),
        }
    }

    pub fn value(&self, slot: u32) -> Option<&str> {
        self.bytes_of(slot)
            .map(|b| std::str::from_utf8(b).unwrap_or(""))
    }

    fn push_entry(bytes: &mut Vec<u8>, v: &[u8]) {
        if v.len() < LONG as usize {
            bytes.push(v.len() as u8);
        } else {
            bytes.push(LONG);
            bytes.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        bytes.extend_from_slice(v);
    }

    fn set(&mut self, slot: u32, lower: &str) {
        self.unset(slot);
        let size = Self::entry_size(lower.len());
        if self.bytes.len() + size >= NONE as usize {
            self.compact();
            if self.bytes.len() + size >= NONE as usize {
                return; // Beyond 4 GiB of values in one field: not kept.
            }
        }
        self.starts
            .set(slot as usize, self.bytes.len() as u32, NONE);
        Self::push_entry(&mut self.bytes, lower.as_bytes());
    }

    fn unset(&mut self, slot: u32) {
        let Some(s) = self.starts.get_mut(slot as usize) else {
            return;
        };
        if *s == NONE {
            return;
        }
        let start = std::mem::replace(s, NONE);
        self.garbage += Self::entry_size(self.entry(start).len());
        if self.garbage > 1 << 16 && self.garbage * 2 > self.bytes.len() {
            self.compact();
        }
    }

    /// Rewrites the arena without garbage, in slot order.
    fn compact(&mut self) {
        let mut bytes = Vec::with_capacity(self.bytes.len() - self.garbage.min(self.bytes.len()));
        for i in 0..self.starts.len() {
            let s = self.starts.get(i).unwrap_or(NONE);
            if s != NONE {
                let v = self.entry(s);
                let at = bytes.len() as u32;
                Self::push_entry(&mut bytes, v);
                if let Some(start) = self.starts.get_mut(i) {
                    *start = at;
                }
            }
        }
        self.bytes = bytes;
        self.garbage = 0;
    }

    fn shrink(&mut self) {
        self.starts.shrink();
        self.bytes.shrink_to_fit();
    }

    /// Sets in `out` the slots whose value passes `test` (one pass over the arena).
    fn select(&self, out: &mut Bits, test: impl Fn(&[u8]) -> bool) {
        let bytes = self.bytes.as_slice();
        out.fill_from_chunked(&self.starts, |s| {
            if s == NONE {
                return false;
            }
            let at = s as usize;
            // The common short entry inline; long ones through `entry`.
            match bytes.get(at) {
                Some(&len) if len != LONG => {
                    bytes.get(at + 1..at + 1 + len as usize).is_some_and(&test)
                }
                _ => test(self.entry(s)),
            }
        });
    }

    /// Sets in `out` the slots matching the positive form of `op`; the op is matched
    /// once, outside the loop.
    fn select_op(&self, op: &TextOp, out: &mut Bits) {
        match op {
            TextOp::Equals(t) | TextOp::NotEquals(t) => {
                let n = t.lower.as_bytes();
                self.select(out, |v| v == n)
            }
            TextOp::In(items) | TextOp::NotIn(items) => {
                let items: Vec<&[u8]> = items.iter().map(|t| t.lower.as_bytes()).collect();
                self.select(out, |v| items.contains(&v))
            }
            TextOp::Contains(t) | TextOp::NotContains(t) => {
                let n = t.lower.as_bytes();
                self.select(out, |v| contains(v, n))
            }
            TextOp::StartsWith(t) => {
                let n = t.lower.as_bytes();
                self.select(out, |v| v.starts_with(n))
            }
            TextOp::EndsWith(t) => {
                let n = t.lower.as_bytes();
                self.select(out, |v| v.ends_with(n))
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.starts.heap_bytes() + self.bytes.capacity()
    }
}

/// The positive form of a text op (negations are complemented by the caller) as a test on
/// a lowercased value's bytes. On bytes: a valid UTF-8 needle can only match a valid
/// haystack at character boundaries, so byte matching equals `str` matching.
pub fn text_bytes_test(op: &TextOp) -> impl Fn(&[u8]) -> bool + '_ {
    move |v: &[u8]| match op {
        TextOp::Equals(t) | TextOp::NotEquals(t) => v == t.lower.as_bytes(),
        TextOp::In(items) | TextOp::NotIn(items) => items.iter().any(|t| v == t.lower.as_bytes()),
        TextOp::Contains(t) | TextOp::NotContains(t) => contains(v, t.lower.as_bytes()),
        TextOp::StartsWith(t) => v.starts_with(t.lower.as_bytes()),
        TextOp::EndsWith(t) => v.ends_with(t.lower.as_bytes()),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if hay.len() < needle.len() {
        return false;
    }
    let last = hay.len() - needle.len();
    hay[..=last]
        .iter()
        .enumerate()
        .any(|(i, &b)| b == first && hay[i + 1..i + needle.len()] == *rest)
}

/// Whether a text op is negated (its set is the complement of the positive op's).
pub fn text_negated(op: &TextOp) -> bool {
    matches!(
        op,
        TextOp::NotEquals(_) | TextOp::NotContains(_) | TextOp::NotIn(_)
    )
}

/// A text column: dictionary-encoded (few distinct values) or an arena (near-unique).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum TextColumn {
    Dict(DictColumn),
    Arena(ArenaColumn),
}

impl TextColumn {
    pub fn value(&self, slot: u32) -> Option<&str> {
        match self {
            TextColumn::Dict(d) => d.value(slot),
            TextColumn::Arena(a) => a.value(slot),
        }
    }

    fn set(&mut self, slot: u32, lower: &str) {
        match self {
            TextColumn::Dict(d) => d.set(slot, lower),
            TextColumn::Arena(a) => a.set(slot, lower),
        }
    }

    fn unset(&mut self, slot: u32) {
        match self {
            TextColumn::Dict(d) => d.unset(slot),
            TextColumn::Arena(a) => a.unset(slot),
        }
    }

    /// The value's bytes of `slot` in an arena column (`None` for a dictionary one).
    pub fn arena_bytes(&self, slot: u32) -> Option<&[u8]> {
        match self {
            TextColumn::Dict(_) => None,
            TextColumn::Arena(a) => a.bytes_of(slot),
        }
    }

    /// Whether ops on this column scan every value (no postings).
    pub fn is_arena(&self) -> bool {
        matches!(self, TextColumn::Arena(_))
    }

    /// Adds to `out` the slots matching the POSITIVE form of `op`.
    pub fn select_positive(&self, op: &TextOp, out: &mut Bits) {
        match self {
            TextColumn::Dict(d) => {
                let t = crate::eval::text_codes(&d.dict, op);
                d.select_into(&t.codes, out);
            }
            TextColumn::Arena(a) => {
                let mut scanned = Bits::new(a.starts.len());
                a.select_op(op, &mut scanned);
                out.or_with(&scanned);
            }
        }
    }

    fn shrink(&mut self) {
        match self {
            TextColumn::Dict(d) => d.shrink(),
            TextColumn::Arena(a) => a.shrink(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            TextColumn::Dict(d) => d.heap_bytes(),
            TextColumn::Arena(a) => a.heap_bytes(),
        }
    }
}

/// A number column: `f32` (4 bytes a slot) while every value round-trips through it
/// exactly, `f64` from the first one that does not.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct NumberColumn {
    pub has: Bits,
    narrow: Chunked<f32>,
    /// Non-empty once a value needed all 64 bits (then `narrow` is empty).
    wide: Chunked<f64>,
}

impl NumberColumn {
    pub fn get(&self, slot: u32) -> f64 {
        let i = slot as usize;
        if self.wide.is_empty() {
            self.narrow.get(i).map_or(0.0, f64::from)
        } else {
            self.wide.get(i).unwrap_or(0.0)
        }
    }

    fn set(&mut self, slot: u32, x: f64) {
        let i = slot as usize;
        let exact = f64::from(x as f32).to_bits() == x.to_bits();
        if self.wide.is_empty() && !exact {
            self.wide = self.narrow.iter().map(f64::from).collect();
            self.narrow = Chunked::new();
            if self.wide.is_empty() {
                self.wide.push(0.0);
            }
        }
        if self.wide.is_empty() {
            self.narrow.set(i, x as f32, 0.0);
        } else {
            self.wide.set(i, x, 0.0);
        }
    }

    /// Sets in `out` the slots whose value (with or without one) passes `f`.
    pub fn fill(&self, out: &mut Bits, f: impl Fn(f64) -> bool) {
        if self.wide.is_empty() {
            out.fill_from_chunked(&self.narrow, |v| f(f64::from(v)));
        } else {
            out.fill_from_chunked(&self.wide, f);
        }
    }

    fn shrink(&mut self) {
        self.narrow.shrink();
        self.wide.shrink();
    }

    fn heap_bytes(&self) -> usize {
        self.has.heap_bytes() + self.narrow.heap_bytes() + self.wide.heap_bytes()
    }
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct DateColumn {
    pub has: Bits,
    /// Day numbers (days since 1970-01-01).
    pub days: Chunked<i32>,
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct BoolColumn {
    pub is_true: Bits,
    pub is_false: Bits,
}

/// Every column of one field.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Field {
    /// Slots with a value of any type (a text value is never empty).
    pub present: Bits,
    pub text: Option<TextColumn>,
    pub number: Option<NumberColumn>,
    pub date: Option<DateColumn>,
    pub boolean: Option<BoolColumn>,
    /// Text values go to an arena rather than a dictionary (near-unique values).
    arena_text: bool,
}

/// A field value as the index keeps it (text lowercased).
#[derive(Debug, Clone, PartialEq)]
pub enum Stored<'a> {
    Text(&'a str),
    Number(f64),
    Date(i32),
    Boolean(bool),
}

impl Field {
    /// The columns of field `key`: email and phone (near-unique) keep text in an arena.
    pub fn new(key: &FieldRef) -> Self {
        Field {
            arena_text: matches!(key, FieldRef::Email | FieldRef::Phone),
            ..Field::default()
        }
    }

    pub fn get(&self, slot: u32) -> Option<Stored<'_>> {
        if !self.present.get(slot) {
            return None;
        }
        if let Some(t) = &self.text
            && let Some(v) = t.value(slot)
        {
            return Some(Stored::Text(v));
        }
        if let Some(n) = &self.number
            && n.has.get(slot)
        {
            return Some(Stored::Number(n.get(slot)));
        }
        if let Some(d) = &self.date
            && d.has.get(slot)
        {
            return Some(Stored::Date(d.days.get(slot as usize).unwrap_or(0)));
        }
        if let Some(b) = &self.boolean {
            if b.is_true.get(slot) {
                return Some(Stored::Boolean(true));
            }
            if b.is_false.get(slot) {
                return Some(Stored::Boolean(false));
            }
        }
        None
    }

    pub fn clear(&mut self, slot: u32) {
        if !self.present.get(slot) {
            return;
        }
        self.present.clear(slot);
        if let Some(t) = &mut self.text {
            t.unset(slot);
        }
        if let Some(n) = &mut self.number {
            n.has.clear(slot);
        }
        if let Some(d) = &mut self.date {
            d.has.clear(slot);
        }
        if let Some(b) = &mut self.boolean {
            b.is_true.clear(slot);
            b.is_false.clear(slot);
        }
    }

    /// Sets the value of `slot`; an empty text clears it ("no value").
    pub fn set(&mut self, slot: u32, value: &FieldValue) {
        self.clear(slot);
        let i = slot as usize;
        match value {
            FieldValue::Text(s) if s.is_empty() => return,
            FieldValue::Text(s) => {
                let arena = self.arena_text;
                self.text
                    .get_or_insert_with(|| {
                        if arena {
                            TextColumn::Arena(ArenaColumn::default())
                        } else {
                            TextColumn::Dict(DictColumn::default())
                        }
                    })
                    .set(slot, &s.to_lowercase());
            }
            FieldValue::Number(x) => {
                let n = self.number.get_or_insert_with(NumberColumn::default);
                n.set(slot, *x);
                n.has.set(slot);
            }
            FieldValue::Date(d) => {
                let c = self.date.get_or_insert_with(DateColumn::default);
                c.days.set(i, day_number(*d), 0);
                c.has.set(slot);
            }
            FieldValue::Boolean(b) => {
                let c = self.boolean.get_or_insert_with(BoolColumn::default);
                if *b {
                    c.is_true.set(slot);
                } else {
                    c.is_false.set(slot);
                }
            }
        }
        self.present.set(slot);
    }

    /// Gives back spare capacity (after a build or a compaction).
    pub fn shrink(&mut self) {
        self.present.shrink();
        if let Some(t) = &mut self.text {
            t.shrink();
        }
        if let Some(n) = &mut self.number {
            n.has.shrink();
            n.shrink();
        }
        if let Some(d) = &mut self.date {
            d.has.shrink();
            d.days.shrink();
        }
        if let Some(b) = &mut self.boolean {
            b.is_true.shrink();
            b.is_false.shrink();
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.present.heap_bytes()
            + self.text.as_ref().map_or(0, TextColumn::heap_bytes)
            + self.number.as_ref().map_or(0, NumberColumn::heap_bytes)
            + self
                .date
                .as_ref()
                .map_or(0, |d| d.has.heap_bytes() + d.days.heap_bytes())
            + self
                .boolean
                .as_ref()
                .map_or(0, |b| b.is_true.heap_bytes() + b.is_false.heap_bytes())
    }
}

/// Days since 1970-01-01 (proleptic Gregorian), after H. Hinnant's `days_from_civil`.
pub fn day_number(d: Date) -> i32 {
    days_from_civil(
        i32::from(d.year()),
        i32::from(d.month()),
        i32::from(d.day()),
    )
}

pub fn days_from_civil(y: i32, m: i32, d: i32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(month, day)` of a day number.
pub fn month_day(z: i32) -> (u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (m as u8, d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip_through_month_and_day() {
        let mut d = Date::new(-9999, 1, 1).ok();
        let mut n = 0;
        while let Some(date) = d {
            let z = day_number(date);
            assert_eq!(month_day(z), (date.month() as u8, date.day() as u8));
            assert_eq!(
                z,
                date.since(Date::new(1970, 1, 1).unwrap_or_default())
                    .map(|s| s.get_days())
                    .unwrap_or(0)
            );
            n += 1;
            d = date.checked_add(jiff::Span::new().days(997)).ok();
        }
        assert!(n > 1000);
    }
    /// Codes read back what was set, before and after growing past two bytes.
    #[test]
    fn codes_read_back_across_the_upgrade_to_four_bytes() {
        let mut codes = Codes::default();
        let mut model = vec![NONE; 1000];
        for code in 0..70_000u32 {
            let slot = (code.wrapping_mul(2_654_435_761) >> 22) % 1000;
            let c = if code % 5 == 0 { NONE } else { code };
            codes.set(slot, c);
            model[slot as usize] = c;
            if code % 9_999 == 0 || code == 65_535 {
                for (s, &want) in model.iter().enumerate() {
                    assert_eq!(codes.get(s as u32), want);
                }
            }
        }
        assert!(matches!(codes, Codes::Large(_)));
    }

    /// Arena and dictionary columns agree with the reference's
    /// text ops through updates, long values and arena compactions.
    #[test]
    fn text_columns_match_the_reference_ops() {
        use segmentd_rules::rule::Text;
        let mut state = 3u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        for (key, distinct) in [
            (FieldRef::Email, 100_000u64),
            (FieldRef::Custom("city".into()), 40),
            (FieldRef::Custom("id".into()), 5000),
        ] {
            let mut field = Field::new(&key);
            let slots = 3000u32;
            let mut model: Vec<Option<String>> = vec![None; slots as usize];
            for round in 0..8000u64 {
                let slot = (next() % u64::from(slots)) as u32;
                if next() % 7 == 0 {
                    field.clear(slot);
                    model[slot as usize] = None;
                    continue;
                }
                let v = next() % distinct;
                let long = if v % 13 == 0 {
                    "x".repeat(300)
                } else {
                    String::new()
                };
                let value = format!("Val{v}-{long}{}", round % 3);
                field.set(slot, &FieldValue::Text(value.clone()));
                model[slot as usize] = Some(value.to_lowercase());
            }
            let t = |s: &str| Text::new(s);
            let ops = [
                TextOp::Equals(t("val7-1")),
                TextOp::NotEquals(t("val7-1")),
                TextOp::In(vec![t("val3-2"), t("VAL5-0")]),
                TextOp::NotIn(vec![t("val3-2")]),
                TextOp::Contains(t("1-")),
                TextOp::NotContains(t("xxx")),
                TextOp::StartsWith(t("val1")),
                TextOp::EndsWith(t("x2")),
            ];
            let col = field.text.as_ref();
            let mut all = Bits::new(slots as usize);
            for s in 0..slots {
                all.set(s);
            }
            for op in &ops {
                let mut whole = Bits::new(slots as usize);
                if let Some(c) = col {
                    c.select_positive(op, &mut whole);
                }
                if text_negated(op) {
                    whole.complement_within(&all);
                }
                // As an `all` narrowing an arena column reads one slot at a time.
                let test = text_bytes_test(op);
                let one = |s: u32| {
                    col.and_then(|c| c.arena_bytes(s)).is_some_and(&test) != text_negated(op)
                };
                for s in 0..slots {
                    let v = model[s as usize].as_deref();
                    let want = crate::eval::text_op_matches(op, v);
                    assert_eq!(whole.get(s), want, "{key:?} {op:?} slot {s}");
                    if col.is_some_and(TextColumn::is_arena) {
                        assert_eq!(one(s), want, "{key:?} {op:?} slot {s} within");
                    }
                    assert_eq!(field.get(s).is_some(), v.is_some());
                    if let Some(Stored::Text(got)) = field.get(s) {
                        assert_eq!(Some(got), v);
                    }
                }
            }
        }
    }
}
