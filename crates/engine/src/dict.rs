//! A compact string interner: distinct strings in one byte arena, found by a 64-bit hash.
//!
//! About `len + 4 + ~18` bytes per distinct string, so that high-cardinality text (emails,
//! phone numbers, URLs) stays small. Codes are dense `u32`s in first-seen order and never
//! change.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `u32::MAX` is never a code: it stands for "no value" in columns.
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dict {
    #[serde(with = "serde_bytes")]
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

/// A fixed (deterministic) multiply-rotate hash over 8-byte words, with a final mix.
/// Its quality only matters for speed: colliding strings are told apart by `collisions`.
fn hash(s: &str) -> u64 {
    const K: u64 = 0x51_7C_C1_B7_27_22_0A_95;
    let bytes = s.as_bytes();
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // Final avalanche (SplitMix64), so that the low and high bits both depend on all.
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
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

    /// Every `(code, bytes of the string)`.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.offs
            .windows(2)
            .enumerate()
            .map(|(c, w)| (c as u32, &self.bytes[w[0] as usize..w[1] as usize]))
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.offs.capacity() * 4
            + self.by_hash.capacity() * 17
            + self.collisions.capacity() * 40
    }
}
