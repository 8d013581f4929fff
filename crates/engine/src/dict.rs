//! A compact string interner: distinct strings in one byte arena, found by a 64-bit hash.
//!
//! About `len + 4 + ~18` bytes per distinct string, so that high-cardinality text (emails,
//! phone numbers, URLs) stays small. Codes are dense `u32`s in first-seen order and never
//! change.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hasher};

/// `u32::MAX` is never a code: it stands for "no value" in columns.
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Default, Clone)]
pub struct Dict {
    bytes: Vec<u8>,
    /// `offs[code]..offs[code + 1]` is the string of `code` in `bytes`.
    offs: Vec<u32>,
    /// Hash → the first code with that hash.
    by_hash: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    /// The (rare) later strings whose hash collided with an earlier one.
    collisions: HashMap<Box<str>, u32>,
}

/// Keys are already hashes: pass them through.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

fn hash(s: &str) -> u64 {
    // SipHash with fixed keys: deterministic across runs.
    let mut h = BuildHasherDefault::<DefaultHasher>::default().build_hasher();
    h.write(s.as_bytes());
    h.finish()
}

impl Dict {
    pub fn len(&self) -> usize {
        self.offs.len().saturating_sub(1)
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        let code = *self.by_hash.get(&hash(s))?;
        if self.str(code) == s {
            Some(code)
        } else {
            self.collisions.get(s).copied()
        }
    }

    pub fn intern(&mut self, s: &str) -> u32 {
        if self.offs.is_empty() {
            self.offs.push(0);
        }
        let h = hash(s);
        let collided = match self.by_hash.get(&h) {
            Some(&code) if self.str(code) == s => return code,
            Some(_) => {
                if let Some(&code) = self.collisions.get(s) {
                    return code;
                }
                true
            }
            None => false,
        };
        let code = self.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.offs.push(self.bytes.len() as u32);
        if collided {
            self.collisions.insert(s.into(), code);
        } else {
            self.by_hash.insert(h, code);
        }
        code
    }

    /// The string of `code` ("" for an unknown code).
    pub fn str(&self, code: u32) -> &str {
        let c = code as usize;
        match (self.offs.get(c), self.offs.get(c + 1)) {
            (Some(&a), Some(&b)) => {
                std::str::from_utf8(&self.bytes[a as usize..b as usize]).unwrap_or("")
            }
            _ => "",
        }
    }

    /// Every `(code, string)`.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        (0..self.len() as u32).map(|c| (c, self.str(c)))
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.offs.capacity() * 4
            + self.by_hash.capacity() * 13
            + self.collisions.capacity() * 40
    }
}
