//! A dense bit set over contact slots: the working type of whole-account evaluation.
//!
//! At 1M contacts a set is 16,384 words (128 KiB): AND/OR/NOT and popcount over it take
//! microseconds, faster than any sparse form for the sets a rule produces.

use roaring::RoaringBitmap;

use crate::chunked::{BLOCK, Chunked};

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    /// An empty set over `len` slots.
    pub fn new(len: usize) -> Self {
        Bits {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grows (never shrinks) to `len` slots; new slots are clear.
    pub fn grow(&mut self, len: usize) {
        if len > self.len {
            self.len = len;
            self.words.resize(len.div_ceil(64), 0);
        }
    }

    #[inline]
    pub fn get(&self, i: u32) -> bool {
        let i = i as usize;
        match self.words.get(i / 64) {
            Some(w) => (w >> (i % 64)) & 1 == 1,
            None => false,
        }
    }

    /// Sets bit `i`, growing when needed.
    #[inline]
    pub fn set(&mut self, i: u32) {
        let i = i as usize;
        if i >= self.len {
            self.grow(i + 1);
        }
        self.words[i / 64] |= 1 << (i % 64);
    }

    #[inline]
    pub fn clear(&mut self, i: u32) {
        let i = i as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    #[inline]
    pub fn assign(&mut self, i: u32, value: bool) {
        if value { self.set(i) } else { self.clear(i) }
    }

    /// Sets bit `i` where `f(values[i])`, for every `i` (clears the others).
    pub fn fill_from<T: Copy>(&mut self, values: &[T], f: impl Fn(T) -> bool) {
        self.grow(values.len());
        for (w, chunk) in self.words.iter_mut().zip(values.chunks(64)) {
            let mut word = 0u64;
            for (b, &v) in chunk.iter().enumerate() {
                word |= u64::from(f(v)) << b;
            }
            *w = word;
        }
    }

    /// As [`Bits::fill_from`] over a [`Chunked`] column (its blocks fill whole words).
    pub fn fill_from_chunked<T: Copy>(&mut self, values: &Chunked<T>, f: impl Fn(T) -> bool) {
        self.grow(values.len());
        for (k, block) in values.blocks().enumerate() {
            let first = k * (BLOCK / 64);
            let words = self.words.iter_mut().skip(first);
            for (w, chunk) in words.zip(block.chunks(64)) {
                let mut word = 0u64;
                for (b, &v) in chunk.iter().enumerate() {
                    word |= u64::from(f(v)) << b;
                }
                *w = word;
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// `|self ∩ other|`, with nothing allocated.
    pub fn and_count(&self, other: &Bits) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }

    /// `self := self \ other`.
    pub fn and_not_with(&mut self, other: &Bits) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    pub fn and_with(&mut self, other: &Bits) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    pub fn or_with(&mut self, other: &Bits) {
        if other.len > self.len {
            self.grow(other.len);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// `self := universe \ self` (the complement against `universe`, e.g. the live
    /// contacts).
    pub fn complement_within(&mut self, universe: &Bits) {
        self.grow(universe.len);
        for (i, w) in self.words.iter_mut().enumerate() {
            *w = !*w & universe.words.get(i).copied().unwrap_or(0);
        }
    }

    /// The set bits in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    None
                } else {
                    let b = w.trailing_zeros();
                    w &= w - 1;
                    Some((wi as u32) * 64 + b)
                }
            })
        })
    }

    pub fn or_roaring(&mut self, r: &RoaringBitmap) {
        if let Some(max) = r.max() {
            self.grow(max as usize + 1);
        }
        for i in r {
            self.words[i as usize / 64] |= 1 << (i % 64);
        }
    }

    pub fn from_roaring(r: &RoaringBitmap, len: usize) -> Self {
        let mut b = Bits::new(len);
        b.or_roaring(r);
        b
    }

    pub fn to_roaring(&self) -> RoaringBitmap {
        let mut bytes = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        RoaringBitmap::from_lsb0_bytes(0, &bytes)
    }

    /// Gives back spare capacity (growth by doubling leaves up to as much again).
    pub fn shrink(&mut self) {
        self.words.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}
