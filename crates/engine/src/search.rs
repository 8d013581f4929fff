//! Contact search by prefix: slots sorted by a lowercased key (external id, e-mail,
//! phone) whose bytes live elsewhere in the index, so an order costs four bytes a contact.
//!
//! Recent inserts wait in a sorted set until they are merged into the sorted vector
//! (when they outgrow an eighth of it), as the external-id order does. The vector is only
//! rewritten by merges: a slot whose key changed, or that was removed, keeps its place
//! there under the key it had (kept in `moved`) until the next merge drops it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use segmentd_rules::rule::{FieldRef, SegmentId};

use crate::Index;
use crate::bits::Bits;
use crate::fields::{Field, TextColumn};

/// A slot's current key, lowercased (`None`: it has none).
pub trait KeyOf<'k>: Fn(u32) -> Option<Cow<'k, [u8]>> {}
impl<'k, F: Fn(u32) -> Option<Cow<'k, [u8]>>> KeyOf<'k> for F {}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct SortedKeys {
    /// Slots by (key, slot) as of the last merge.
    sorted: Vec<u32>,
    /// Slots of `sorted` whose key changed or went since, with the key they are sorted by.
    moved: HashMap<u32, Box<[u8]>>,
    /// Inserted since the last merge.
    pending: BTreeSet<(Box<[u8]>, u32)>,
}

/// The first key after every key starting with `prefix` (`None`: there is none).
fn after_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl SortedKeys {
    /// The key `slot` is sorted by in `sorted`.
    fn sorted_key<'a, 'k: 'a>(&'a self, slot: u32, key: &impl KeyOf<'k>) -> Cow<'a, [u8]> {
        match self.moved.get(&slot) {
            Some(k) => Cow::Borrowed(k),
            None => key(slot).unwrap_or(Cow::Borrowed(&[])),
        }
    }

    /// Records that `slot`'s key goes from `old` to `new` (either may be `None`).
    pub fn update(&mut self, slot: u32, old: Option<&[u8]>, new: Option<&[u8]>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            let recent: (Box<[u8]>, u32) = (old.into(), slot);
            if !self.pending.remove(&recent) {
                // It is in `sorted` (once per merge: a later change finds it pending).
                self.moved.entry(slot).or_insert(recent.0);
            }
        }
        if let Some(new) = new {
            self.pending.insert((new.into(), slot));
        }
    }

    /// Merges the pending keys into the sorted vector once they are many, dropping moved
    /// slots and slots no longer alive.
    pub fn maybe_compact<'k>(&mut self, alive: &Bits, key: &impl KeyOf<'k>) {
        if self.pending.len() > 1024.max(self.sorted.len() / 8) {
            self.compact(alive, key);
        }
    }

    pub fn compact<'k>(&mut self, alive: &Bits, key: &impl KeyOf<'k>) {
        let pending = std::mem::take(&mut self.pending);
        let moved = std::mem::take(&mut self.moved);
        let keep = |s: &u32| alive.get(*s) && !moved.contains_key(s);
        let old: Vec<u32> = std::mem::take(&mut self.sorted)
            .into_iter()
            .filter(keep)
            .collect();
        let mut out = Vec::with_capacity(old.len() + pending.len());
        let mut i = 0;
        for (k, slot) in pending {
            if !alive.get(slot) {
                continue;
            }
            while let Some(&s) = old.get(i) {
                let ks = key(s).unwrap_or(Cow::Borrowed(&[]));
                if (ks.as_ref(), s) < (k.as_ref(), slot) {
                    out.push(s);
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(slot);
        }
        out.extend_from_slice(old.get(i..).unwrap_or(&[]));
        self.sorted = out;
    }

    /// Sets in `out` every slot whose key starts with `prefix` (removed slots included:
    /// the caller keeps the live ones).
    pub fn prefix_into<'k>(&self, prefix: &[u8], key: &impl KeyOf<'k>, out: &mut Bits) {
        let lo = self
            .sorted
            .partition_point(|&s| self.sorted_key(s, key).as_ref() < prefix);
        let hi = match after_prefix(prefix) {
            Some(end) => self
                .sorted
                .partition_point(|&s| self.sorted_key(s, key).as_ref() < end.as_slice()),
            None => self.sorted.len(),
        };
        for &s in self.sorted.get(lo..hi).unwrap_or(&[]) {
            if !self.moved.contains_key(&s) {
                out.set(s);
            }
        }
        let first: (Box<[u8]>, u32) = (prefix.into(), 0);
        for (k, s) in self
            .pending
            .range((Bound::Included(first), Bound::Unbounded))
        {
            if !k.starts_with(prefix) {
                break;
            }
            out.set(*s);
        }
    }

    pub fn shrink(&mut self) {
        self.sorted.shrink_to_fit();
        self.moved.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * 4
            + self.moved.capacity() * 32
            + self.moved.values().map(|k| k.len()).sum::<usize>()
            + self
                .pending
                .iter()
                .map(|(k, _)| k.len() + 40)
                .sum::<usize>()
    }
}

/// Unicode lowercase, borrowed when `s` is already lowercase ASCII.
pub fn lower_bytes(s: &str) -> Cow<'_, [u8]> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s.as_bytes())
    } else {
        Cow::Owned(s.to_lowercase().into_bytes())
    }
}

/// A contact's search keys: lowercased external id, e-mail and phone.
type Keys = [Option<Vec<u8>>; 3];

impl Index {
    /// The search keys `slot` has now (`None` for a slot never seen).
    pub(crate) fn search_keys(&self, slot: u32) -> Keys {
        let known = (slot as usize) < self.store_ids.len();
        let arena = |f: &FieldRef| {
            self.fields
                .get(f)
                .and_then(|f| f.text.as_ref())
                .and_then(|t| t.arena_bytes(slot))
                .map(<[u8]>::to_vec)
        };
        [
            known.then(|| lower_bytes(self.order.ext(slot)).into_owned()),
            arena(&FieldRef::Email),
            arena(&FieldRef::Phone),
        ]
    }

    /// Moves `slot` in the search orders from its `old` keys to the ones it has now.
    pub(crate) fn update_search(&mut self, slot: u32, old: Keys) {
        let new = if self.alive.get(slot) {
            self.search_keys(slot)
        } else {
            [None, None, None]
        };
        let orders = [
            &mut self.by_external_id,
            &mut self.by_email,
            &mut self.by_phone,
        ];
        for ((order, old), new) in orders.into_iter().zip(&old).zip(&new) {
            order.update(slot, old.as_deref(), new.as_deref());
        }
        let (order, fields, alive) = (&self.order, &self.fields, &self.alive);
        let ext = |s: u32| Some(lower_bytes(order.ext(s)));
        self.by_external_id.maybe_compact(alive, &ext);
        let email = arena_key(fields, &FieldRef::Email);
        self.by_email.maybe_compact(alive, &email);
        let phone = arena_key(fields, &FieldRef::Phone);
        self.by_phone.maybe_compact(alive, &phone);
    }

    /// Merges the search orders' pending keys (when idle).
    pub(crate) fn compact_search(&mut self) {
        let (order, fields, alive) = (&self.order, &self.fields, &self.alive);
        let ext = |s: u32| Some(lower_bytes(order.ext(s)));
        self.by_external_id.compact(alive, &ext);
        let email = arena_key(fields, &FieldRef::Email);
        self.by_email.compact(alive, &email);
        let phone = arena_key(fields, &FieldRef::Phone);
        self.by_phone.compact(alive, &phone);
        for k in [
            &mut self.by_external_id,
            &mut self.by_email,
            &mut self.by_phone,
        ] {
            k.shrink();
        }
    }

    pub(crate) fn search_heap_bytes(&self) -> usize {
        self.by_external_id.heap_bytes() + self.by_email.heap_bytes() + self.by_phone.heap_bytes()
    }

    /// The live contacts (dense ids) whose external id, e-mail, phone or a text field's
    /// value starts with `query`, ignoring case.
    pub fn search_set(&self, query: &str) -> Bits {
        let q = lower_bytes(query);
        let mut out = Bits::new(self.alive.len());
        let ext = |s: u32| Some(lower_bytes(self.order.ext(s)));
        self.by_external_id.prefix_into(&q, &ext, &mut out);
        let email = arena_key(&self.fields, &FieldRef::Email);
        self.by_email.prefix_into(&q, &email, &mut out);
        let phone = arena_key(&self.fields, &FieldRef::Phone);
        self.by_phone.prefix_into(&q, &phone, &mut out);
        for (key, field) in &self.fields {
            if let (FieldRef::Custom(_), Some(TextColumn::Dict(d))) = (key, field.text.as_ref()) {
                for (code, value) in d.dict.iter_bytes() {
                    if value.starts_with(&q) {
                        d.posting_into(code, &mut out);
                    }
                }
            }
        }
        out.and_with(&self.alive);
        out
    }

    /// Up to `limit` contacts (store ids) matching `query` as [`Index::search_set`]
    /// says, by external id, after `after`.
    pub fn search(&self, query: &str, after: Option<&str>, limit: usize) -> Vec<i64> {
        self.page(&self.search_set(query).to_roaring(), after, limit)
    }

    /// The members of the saved segment `segment` that [`Index::search_set`] finds for
    /// `query`: how many, and up to `limit` of them (store ids) by external id after
    /// `after`. The search's set ANDed with the membership; no contact is read.
    pub fn search_members(
        &self,
        segment: SegmentId,
        query: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (u64, Vec<i64>) {
        let Some(members) = self.membership(segment) else {
            return (0, Vec::new());
        };
        let found = self.search_set(query).to_roaring() & members;
        (found.len(), self.page(&found, after, limit))
    }

    /// The live contacts (store ids) whose e-mail address is `email`, ignoring case.
    pub fn find_by_email(&self, email: &str) -> Vec<i64> {
        let q = lower_bytes(email);
        let mut found = Bits::new(self.alive.len());
        let key = arena_key(&self.fields, &FieldRef::Email);
        self.by_email.prefix_into(&q, &key, &mut found);
        found.and_with(&self.alive);
        found
            .iter()
            .filter(|&s| key(s).is_some_and(|k| *k == *q))
            .filter_map(|s| self.store_id(s))
            .collect()
    }
}

/// The key function of an arena text column (e-mail, phone).
fn arena_key<'a>(
    fields: &'a HashMap<FieldRef, Field>,
    field: &FieldRef,
) -> impl Fn(u32) -> Option<Cow<'a, [u8]>> + 'a {
    let column = fields.get(field).and_then(|f| f.text.as_ref());
    move |s| column.and_then(|t| t.arena_bytes(s)).map(Cow::Borrowed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Through inserts, changes, removals and merges, a prefix finds exactly the live
    /// slots whose current key starts with it.
    #[test]
    fn prefixes_find_current_keys_through_changes_and_merges() {
        let mut state = 17u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        let words = [
            "", "a", "ab", "abc", "b", "ba", "é", "z\u{ff}", "zz", "ab\u{ff}",
        ];
        let mut keys = SortedKeys::default();
        let mut model: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let mut alive = Bits::new(0);
        for round in 0..6000 {
            let slot = (next() % 300) as u32;
            let old = model.get(&slot).cloned();
            let new = if next() % 6 == 0 {
                None
            } else {
                let w = words[(next() % words.len() as u64) as usize];
                Some(format!("{w}{}", next() % 4).into_bytes())
            };
            keys.update(slot, old.as_deref(), new.as_deref());
            match &new {
                Some(k) => {
                    model.insert(slot, k.clone());
                    alive.set(slot);
                }
                None => {
                    model.remove(&slot);
                    alive.clear(slot);
                }
            }
            let key_of = |s: u32| model.get(&s).map(|k| Cow::Borrowed(k.as_slice()));
            keys.maybe_compact(&alive, &key_of);
            if round % 1500 == 0 {
                keys.compact(&alive, &key_of);
            }
            if round % 97 == 0 {
                for p in ["", "a", "ab", "b", "é", "z\u{ff}", "zz", "q", "ab\u{ff}"] {
                    let mut found = Bits::new(300);
                    keys.prefix_into(p.as_bytes(), &key_of, &mut found);
                    found.and_with(&alive);
                    let got: Vec<u32> = found.iter().collect();
                    let want: Vec<u32> = model
                        .iter()
                        .filter(|(_, k)| k.starts_with(p.as_bytes()))
                        .map(|(s, _)| *s)
                        .collect();
                    assert_eq!(got, want, "prefix {p:?} at round {round}");
                }
            }
        }
    }
}
