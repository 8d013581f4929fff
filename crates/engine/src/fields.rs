//! Columnar field values: one set of columns per field (custom key, `email`, `phone`).
//!
//! A contact holds at most one value per field. Values are kept in the column of their
//! own type, so a condition of another type than the stored value reads "no value", as
//! the reference evaluator does.

use jiff::civil::Date;
use roaring::RoaringBitmap;
use segmentd_rules::FieldValue;

use crate::bits::Bits;
use crate::dict::{Dict, NONE};

/// A text column: the dictionary of distinct LOWERCASED values and each value's posting.
#[derive(Debug, Default, Clone)]
pub struct TextColumn {
    pub dict: Dict,
    /// Per slot: the value's code, or `NONE`.
    pub codes: Vec<u32>,
    /// Per code: `EMPTY`, a single slot (high bit clear), or `MANY | index` into `many`.
    postings: Vec<u32>,
    many: Vec<RoaringBitmap>,
}

const EMPTY: u32 = u32::MAX;
const MANY: u32 = 1 << 31;

impl TextColumn {
    pub fn code_of(&self, slot: u32) -> u32 {
        self.codes.get(slot as usize).copied().unwrap_or(NONE)
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
        if self.codes.len() <= slot as usize {
            self.codes.resize(slot as usize + 1, NONE);
        }
        self.codes[slot as usize] = code;
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
        self.codes[slot as usize] = NONE;
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
    fn posting_len(&self, code: u32) -> u64 {
        match self.postings.get(code as usize).copied().unwrap_or(EMPTY) {
            EMPTY => 0,
            p if p & MANY == 0 => 1,
            p => self.many.get((p & !MANY) as usize).map_or(0, |r| r.len()),
        }
    }

    /// Adds the slots whose code is in `codes` to `out`: through the postings when they
    /// are few and small, else by one pass over the code column (branch-free, ~1 ns a
    /// slot) — turning a large posting into bits costs more than scanning.
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
            total += self.posting_len(c);
            if total > n / 64 {
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
            scanned.fill_from(&self.codes, |c| codes.get(c));
            out.or_with(&scanned);
        }
    }

    fn heap_bytes(&self) -> usize {
        self.dict.heap_bytes()
            + self.codes.capacity() * 4
            + self.postings.capacity() * 4
            + self.many.capacity() * 24
            + self
                .many
                .iter()
                .map(|r| r.serialized_size() + 16)
                .sum::<usize>()
    }
}

#[derive(Debug, Default, Clone)]
pub struct NumberColumn {
    pub has: Bits,
    pub values: Vec<f64>,
}

#[derive(Debug, Default, Clone)]
pub struct DateColumn {
    pub has: Bits,
    /// Day numbers (days since 1970-01-01).
    pub days: Vec<i32>,
}

#[derive(Debug, Default, Clone)]
pub struct BoolColumn {
    pub is_true: Bits,
    pub is_false: Bits,
}

/// Every column of one field.
#[derive(Debug, Default, Clone)]
pub struct Field {
    /// Slots with a value of any type (a text value is never empty).
    pub present: Bits,
    pub text: Option<TextColumn>,
    pub number: Option<NumberColumn>,
    pub date: Option<DateColumn>,
    pub boolean: Option<BoolColumn>,
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
            return Some(Stored::Number(n.values[slot as usize]));
        }
        if let Some(d) = &self.date
            && d.has.get(slot)
        {
            return Some(Stored::Date(d.days[slot as usize]));
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
                self.text
                    .get_or_insert_with(TextColumn::default)
                    .set(slot, &s.to_lowercase());
            }
            FieldValue::Number(x) => {
                let n = self.number.get_or_insert_with(NumberColumn::default);
                if n.values.len() <= i {
                    n.values.resize(i + 1, 0.0);
                }
                n.values[i] = *x;
                n.has.set(slot);
            }
            FieldValue::Date(d) => {
                let c = self.date.get_or_insert_with(DateColumn::default);
                if c.days.len() <= i {
                    c.days.resize(i + 1, 0);
                }
                c.days[i] = day_number(*d);
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

    pub fn heap_bytes(&self) -> usize {
        self.present.heap_bytes()
            + self.text.as_ref().map_or(0, TextColumn::heap_bytes)
            + self
                .number
                .as_ref()
                .map_or(0, |n| n.has.heap_bytes() + n.values.capacity() * 8)
            + self
                .date
                .as_ref()
                .map_or(0, |d| d.has.heap_bytes() + d.days.capacity() * 4)
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
}
