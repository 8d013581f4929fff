//! A growable array kept in blocks of one fixed size, for the columns that grow with
//! the contacts (codes, numbers, days, store ids, per-slot totals).
//!
//! Why not a `Vec`: a `Vec` that grows by doubling is copied to a new place at each
//! growth, and while it is smaller than glibc's mmap threshold (which glibc raises up
//! to 32 MiB as big blocks are freed) the old copy becomes a free hole in the heap that
//! the process keeps resident. With a few dozen columns growing side by side those holes
//! were about a third of the index's RSS. A full block here never moves, and a freed
//! block has the size of the next one. Spare capacity is at most one block per column;
//! the last block grows by doubling up to the block size, so that small indexes (and
//! the many small accounts of one server) stay small.

/// Entries per block: 64 KiB of `u32`, a multiple of 64 so that a block fills whole
/// words of a [`crate::bits::Bits`].
pub const BLOCK_SHIFT: u32 = 14;
pub const BLOCK: usize = 1 << BLOCK_SHIFT;
const MASK: usize = BLOCK - 1;

/// The first capacity of a last block.
const FIRST: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chunked<T> {
    /// Every block but the last holds exactly `BLOCK` entries.
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T: Copy> Chunked<T> {
    pub fn new() -> Self {
        Chunked {
            blocks: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        self.blocks.get(i >> BLOCK_SHIFT)?.get(i & MASK).copied()
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.blocks.get_mut(i >> BLOCK_SHIFT)?.get_mut(i & MASK)
    }

    /// Sets entry `i`, growing with `fill` up to it when needed.
    pub fn set(&mut self, i: usize, value: T, fill: T) {
        if i >= self.len {
            self.grow_to(i + 1, fill);
        }
        if let Some(v) = self.get_mut(i) {
            *v = value;
        }
    }

    pub fn last(&self) -> Option<T> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    pub fn push(&mut self, value: T) {
        match self.blocks.last_mut() {
            Some(b) if b.len() < BLOCK => {
                if b.len() == b.capacity() {
                    let want = (b.capacity() * 2).clamp(FIRST, BLOCK);
                    b.reserve_exact(want - b.len());
                }
                b.push(value);
            }
            _ => {
                let mut b = Vec::with_capacity(FIRST);
                b.push(value);
                self.blocks.push(b);
            }
        }
        self.len += 1;
    }

    /// Grows (never shrinks) to `len` entries, the new ones `fill`.
    pub fn grow_to(&mut self, len: usize, fill: T) {
        while self.len < len {
            match self.blocks.last_mut() {
                Some(b) if b.len() < BLOCK => {
                    let want = (len - self.len).min(BLOCK - b.len());
                    if b.capacity() - b.len() < want {
                        // Doubling, or straight to what is needed, up to a block.
                        let cap = (b.capacity() * 2).max(b.len() + want).clamp(FIRST, BLOCK);
                        b.reserve_exact(cap - b.len());
                    }
                    b.resize(b.len() + want, fill);
                    self.len += want;
                }
                _ => {
                    let want = (len - self.len).min(BLOCK);
                    let mut b = Vec::with_capacity(want.clamp(FIRST, BLOCK));
                    b.resize(want, fill);
                    self.blocks.push(b);
                    self.len += want;
                }
            }
        }
    }

    /// The blocks in order: `BLOCK` entries each but the last.
    pub fn blocks(&self) -> impl Iterator<Item = &[T]> {
        self.blocks.iter().map(Vec::as_slice)
    }

    /// Entries `a..b` (clamped to the length) as slices cut at block boundaries.
    pub fn slices(&self, a: usize, b: usize) -> impl Iterator<Item = &[T]> {
        let b = b.min(self.len);
        let a = a.min(b);
        let first = a >> BLOCK_SHIFT;
        let last = if b == a {
            first
        } else {
            (b - 1) >> BLOCK_SHIFT
        };
        self.blocks
            .iter()
            .enumerate()
            .skip(first)
            .take(if b == a { 0 } else { last - first + 1 })
            .map(move |(k, block)| {
                let start = k << BLOCK_SHIFT;
                let from = a.max(start) - start;
                let to = b.min(start + block.len()) - start;
                &block[from..to]
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.blocks.iter().flat_map(|b| b.iter().copied())
    }

    /// The first index in `start..end` whose entry fails `pred`, for entries where
    /// `pred` holds on a prefix of that range (e.g. sorted ones).
    pub fn partition_point_in(&self, start: usize, end: usize, pred: impl Fn(T) -> bool) -> usize {
        let hi = end.min(self.len);
        let (mut lo, mut hi) = (start.min(hi), hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(v) if pred(v) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Gives back the last block's spare capacity.
    pub fn shrink(&mut self) {
        if let Some(b) = self.blocks.last_mut() {
            b.shrink_to_fit();
        }
        self.blocks.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.capacity() * std::mem::size_of::<T>())
            .sum::<usize>()
            + self.blocks.capacity() * std::mem::size_of::<Vec<T>>()
    }
}

impl<T: Copy> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut c = Chunked::new();
        for v in iter {
            c.push(v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One case: a sequence of operations, checked against a `Vec` after each.
    enum Op {
        Push(u32),
        GrowTo(usize, u32),
        Set(usize, u32),
        Shrink,
    }

    fn check(name: &str, ops: &[Op]) {
        let mut c: Chunked<u32> = Chunked::new();
        let mut model: Vec<u32> = Vec::new();
        for op in ops {
            match *op {
                Op::Push(v) => {
                    c.push(v);
                    model.push(v);
                }
                Op::GrowTo(n, fill) => {
                    c.grow_to(n, fill);
                    if model.len() < n {
                        model.resize(n, fill);
                    }
                }
                Op::Set(i, v) => {
                    c.set(i, v, 7);
                    if model.len() <= i {
                        model.resize(i + 1, 7);
                    }
                    model[i] = v;
                }
                Op::Shrink => c.shrink(),
            }
        }
        assert_eq!(c.len(), model.len(), "{name}: len");
        assert_eq!(c.iter().collect::<Vec<_>>(), model, "{name}: entries");
        for (i, &v) in model.iter().enumerate() {
            assert_eq!(c.get(i), Some(v), "{name}: get {i}");
        }
        assert_eq!(c.get(model.len()), None, "{name}: past the end");
        assert_eq!(c.last(), model.last().copied(), "{name}: last");
        let n = model.len();
        for (a, b) in [
            (0, n),
            (1, n / 2),
            (n / 3, n),
            (BLOCK - 1, BLOCK + 1),
            (n, n),
        ] {
            let got: Vec<u32> = c.slices(a, b).flatten().copied().collect();
            let want = model.get(a.min(n)..b.min(n).max(a.min(n))).unwrap_or(&[]);
            assert_eq!(got, want, "{name}: slices {a}..{b}");
        }
        for (k, block) in c.blocks().enumerate() {
            let full = (k + 1) * BLOCK <= n;
            assert_eq!(block.len() == BLOCK, full, "{name}: block {k} full");
        }
        // Spare capacity: less than one block, and none after a shrink.
        let spare = c.heap_bytes() / 4 - n;
        assert!(spare < BLOCK + 64, "{name}: spare {spare}");
    }

    #[test]
    fn chunked_arrays_read_back_like_a_vec() {
        let pushes = |n: u32| (0..n).map(Op::Push).collect::<Vec<_>>();
        let cases: Vec<(&str, Vec<Op>)> = vec![
            ("empty", vec![]),
            ("one", pushes(1)),
            ("less than a block", pushes(1000)),
            ("exactly a block", pushes(BLOCK as u32)),
            ("a block and one", pushes(BLOCK as u32 + 1)),
            ("several blocks", pushes(3 * BLOCK as u32 + 5)),
            (
                "grow from empty past blocks",
                vec![Op::GrowTo(2 * BLOCK + 3, 9)],
            ),
            (
                "grow then push",
                vec![
                    Op::GrowTo(BLOCK - 2, 1),
                    Op::Push(5),
                    Op::Push(6),
                    Op::Push(7),
                ],
            ),
            (
                "set far out, then near",
                vec![
                    Op::Set(BLOCK + 10, 3),
                    Op::Set(2, 4),
                    Op::Set(BLOCK + 11, 5),
                ],
            ),
            (
                "grow never shrinks",
                vec![Op::GrowTo(100, 1), Op::GrowTo(10, 2)],
            ),
            (
                "shrink then grow",
                vec![
                    Op::GrowTo(BLOCK + 5, 1),
                    Op::Shrink,
                    Op::Push(2),
                    Op::GrowTo(BLOCK * 2, 3),
                ],
            ),
        ];
        for (name, ops) in &cases {
            check(name, ops);
        }
    }

    #[test]
    fn partition_points_match_a_sorted_vec() {
        let sorted: Vec<u32> = (0..(2 * BLOCK as u32 + 100)).map(|i| i / 3 * 2).collect();
        let c: Chunked<u32> = sorted.iter().copied().collect();
        for (x, end) in [
            (0, sorted.len()),
            (1, sorted.len()),
            (500, sorted.len()),
            (sorted[BLOCK], sorted.len()),
            (u32::MAX, sorted.len()),
            (sorted[BLOCK + 7], BLOCK),
            (10, 0),
        ] {
            let want = sorted[..end].partition_point(|&v| v < x);
            assert_eq!(
                c.partition_point_in(0, end, |v| v < x),
                want,
                "{x} in ..{end}"
            );
            // From a start inside the prefix, the same point.
            let from = want / 2;
            assert_eq!(
                c.partition_point_in(from, end, |v| v < x),
                want,
                "{x} in {from}..{end}"
            );
        }
    }
}
