//! One term's postings: `(slot, value)` entries sorted by slot, cut into fixed-size blocks that
//! each know their last slot (to skip them) and their largest value (to bound them), and the
//! cursor searches walk them with.
//!
//! Invariants:
//! - Slots are strictly ascending (new slots are always the largest, so [`Postings::push`] keeps
//!   the order by appending).
//! - Block `b` covers entries `b << shift .. min((b + 1) << shift, len)`; `blocks` is empty while
//!   the entries fit in one block (most terms of a long-tailed vocabulary), and then the one
//!   block is described by `entries.last()` and `max`.
//! - `max` and each block's `max` bound every value they cover, dead entries included (they
//!   only tighten at compaction); `negative` is set when some entry (dead ones included) is
//!   negative or not finite, which rules out pruning on this term.
//! - `live + dead == entries.len()`; `dead` entries are tombstoned slots, dropped by
//!   [`Postings::compact`].

use super::Live;

/// The end-of-list marker a cursor reports once exhausted; slots stay below it.
pub(super) const END: u32 = u32::MAX;

/// One posting: the vector at `slot` has `value` for this term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Entry {
    pub(super) slot: u32,
    pub(super) value: f32,
}

/// What a block knows about its entries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Block {
    /// The slot of its last entry.
    last: u32,
    /// The largest value among its entries.
    max: f32,
}

/// The postings of one term.
#[derive(Debug, Clone, Default)]
pub(super) struct Postings {
    entries: Vec<Entry>,
    blocks: Vec<Block>,
    max: f32,
    live: u32,
    dead: u32,
    negative: bool,
}

/// True when `v` keeps block-max pruning valid (non-negative and finite).
#[inline]
pub(super) fn prunable(v: f32) -> bool {
    v >= 0.0 && v.is_finite()
}

impl Postings {
    /// Empty postings expecting about `n` entries.
    pub(super) fn with_capacity(n: usize) -> Postings {
        Postings {
            entries: Vec::with_capacity(n),
            ..Postings::default()
        }
    }

    /// Live entries: the term's document frequency.
    pub(super) fn live(&self) -> u32 {
        self.live
    }

    /// True when some entry is negative or not finite.
    pub(super) fn negative(&self) -> bool {
        self.negative
    }

    /// Appends the entry of a new slot, larger than every slot present.
    pub(super) fn push(&mut self, slot: u32, value: f32, shift: u32) {
        debug_assert!(self.entries.last().is_none_or(|e| e.slot < slot));
        let n = self.entries.len();
        if n == 0 || value > self.max {
            self.max = value;
        }
        self.negative |= !prunable(value);
        self.entries.push(Entry { slot, value });
        self.live += 1;
        let block = 1usize << shift;
        if n + 1 > block {
            if self.blocks.is_empty() {
                // The first entry past one block: describe block 0, which was implicit.
                self.blocks.push(block_of(&self.entries[..block]));
            }
            if n.is_multiple_of(block) {
                self.blocks.push(Block {
                    last: slot,
                    max: value,
                });
            } else if let Some(b) = self.blocks.last_mut() {
                b.last = slot;
                if value > b.max {
                    b.max = value;
                }
            }
        }
    }

    /// Counts one entry as dead (its slot was tombstoned). Returns true when dead entries now
    /// outnumber live ones, the point at which the owner compacts (or frees) these postings;
    /// compaction then costs at most twice the removals that led to it.
    pub(super) fn kill_one(&mut self) -> bool {
        self.live = self.live.saturating_sub(1);
        self.dead += 1;
        self.dead > self.live
    }

    /// Drops the entries of dead slots and recomputes the blocks, maxima and sign flag; releases
    /// capacity the survivors no longer need.
    pub(super) fn compact(&mut self, live: &Live, shift: u32) {
        self.entries.retain(|e| live.get(e.slot));
        if self.entries.capacity() > 2 * self.entries.len() + 4 {
            self.entries.shrink_to_fit();
        }
        self.live = self.entries.len() as u32;
        self.dead = 0;
        self.reblock(shift);
    }

    /// Recomputes `blocks`, `max` and `negative` from the entries.
    fn reblock(&mut self, shift: u32) {
        let block = 1usize << shift;
        self.blocks.clear();
        if self.entries.len() > block {
            self.blocks.extend(self.entries.chunks(block).map(block_of));
        }
        self.blocks.shrink_to_fit();
        self.max = block_of(&self.entries).max;
        self.negative = self.entries.iter().any(|e| !prunable(e.value));
    }

    /// Releases spare capacity.
    pub(super) fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.blocks.shrink_to_fit();
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>() + self.blocks.capacity() * size_of::<Block>()
    }

    /// A cursor at the first entry, for a query weight `q` (non-negative when pruning) at
    /// position `qpos` of the query's ascending term order.
    pub(super) fn cursor(&self, q: f64, qpos: u32, shift: u32) -> Cursor<'_> {
        let single = Block {
            last: self.entries.last().map_or(0, |e| e.slot),
            max: self.max,
        };
        let nblocks = if self.blocks.is_empty() {
            1
        } else {
            self.blocks.len()
        };
        Cursor {
            entries: &self.entries,
            blocks: &self.blocks,
            single,
            nblocks,
            shift,
            pos: 0,
            blk: 0,
            q,
            ub: q * f64::from(self.max),
            qpos,
        }
    }

    /// The entries, in slot order (dead ones included).
    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// The block describing `entries` (`last` is 0 and `max` is 0 when there are none).
fn block_of(entries: &[Entry]) -> Block {
    let mut b = Block {
        last: entries.last().map_or(0, |e| e.slot),
        max: entries.first().map_or(0.0, |e| e.value),
    };
    for e in entries {
        if e.value > b.max {
            b.max = e.value;
        }
    }
    b
}

/// A position in one term's postings during a query.
///
/// Targets given to [`Cursor::seek`] and [`Cursor::shallow`] never decrease during a query (they
/// are document-at-a-time candidates), which is what lets both only move forward.
pub(super) struct Cursor<'a> {
    entries: &'a [Entry],
    blocks: &'a [Block],
    /// The one block when `blocks` is empty.
    single: Block,
    nblocks: usize,
    shift: u32,
    /// The current entry.
    pos: usize,
    /// The block [`Cursor::shallow`] last stopped at; every earlier block ends before the
    /// targets still to come.
    blk: usize,
    /// The query weight of this term.
    pub(super) q: f64,
    /// `q` times the term's largest value: no entry contributes more.
    pub(super) ub: f64,
    /// This term's position in the query's ascending term order (the summation order).
    pub(super) qpos: u32,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn block(&self, b: usize) -> Block {
        if self.blocks.is_empty() {
            self.single
        } else {
            self.blocks[b]
        }
    }

    /// The slot of the current entry, or [`END`].
    #[inline]
    pub(super) fn doc(&self) -> u32 {
        self.entries.get(self.pos).map_or(END, |e| e.slot)
    }

    /// The value of the current entry (0 once exhausted).
    #[inline]
    pub(super) fn value(&self) -> f32 {
        self.entries.get(self.pos).map_or(0.0, |e| e.value)
    }

    /// The last slot and the largest value of the block holding the current entry; `None` once
    /// exhausted.
    #[inline]
    pub(super) fn current_block(&self) -> Option<(u32, f32)> {
        if self.pos >= self.entries.len() {
            return None;
        }
        let b = self.block(self.pos >> self.shift);
        Some((b.last, b.max))
    }

    /// The entries from the current one to the end of its block (none once exhausted).
    #[inline]
    pub(super) fn rest_of_block(&self) -> &'a [Entry] {
        let end = ((self.pos >> self.shift) + 1) << self.shift;
        let entries: &'a [Entry] = self.entries;
        entries
            .get(self.pos..end.min(entries.len()))
            .unwrap_or_default()
    }

    /// Moves `n` entries on.
    #[inline]
    pub(super) fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    /// Moves to the next entry.
    #[inline]
    pub(super) fn advance(&mut self) {
        self.pos += 1;
    }

    /// Moves to the first entry whose slot is at least `target`, skipping whole blocks by their
    /// last slot and binary-searching the block that holds it.
    #[inline]
    pub(super) fn seek(&mut self, target: u32) {
        if self.doc() >= target {
            return;
        }
        let mut b = self.blk.max(self.pos >> self.shift);
        while b < self.nblocks && self.block(b).last < target {
            b += 1;
        }
        self.blk = b;
        if b == self.nblocks {
            self.pos = self.entries.len();
            return;
        }
        let start = self.pos.max(b << self.shift);
        let end = ((b + 1) << self.shift).min(self.entries.len());
        // Gallop from `start` (targets are usually a few entries ahead), then binary-search the
        // last step. The block's last slot is at least `target`, so the answer is before `end`.
        let (mut lo, mut step) = (start, 1);
        while lo + step < end && self.entries[lo + step].slot < target {
            lo += step;
            step *= 2;
        }
        let hi = (lo + step).min(end);
        self.pos = lo + self.entries[lo..hi].partition_point(|e| e.slot < target);
    }

    /// Moves to the first entry whose slot is at least `target` by galloping from the current
    /// one, without the block table: for targets a few entries ahead, as when probing a batch
    /// of candidates in slot order.
    #[inline]
    pub(super) fn gallop(&mut self, target: u32) {
        let e = self.entries;
        let mut lo = self.pos;
        if e.get(lo).is_none_or(|x| x.slot >= target) {
            return;
        }
        // e[lo] is below target; double the step until an entry is not.
        let mut step = 1;
        while lo + step < e.len() && e[lo + step].slot < target {
            lo += step;
            step *= 2;
        }
        // The answer is in lo + 1..=hi; the last step is usually short enough to walk.
        let hi = (lo + step).min(e.len());
        if hi - lo <= 16 {
            let mut j = lo + 1;
            while j < hi && e[j].slot < target {
                j += 1;
            }
            self.pos = j;
        } else {
            self.pos = lo + 1 + e[lo + 1..hi].partition_point(|x| x.slot < target);
        }
    }

    /// The largest value among the blocks that may hold slots `lo..=hi` (0 when none remains),
    /// moving the block pointer to the first of them; `lo` is at least every earlier target.
    #[inline]
    pub(super) fn window_max(&mut self, lo: u32, hi: u32) -> f32 {
        if self.pos >= self.entries.len() {
            return 0.0;
        }
        let mut b = self.blk.max(self.pos >> self.shift);
        while b < self.nblocks && self.block(b).last < lo {
            b += 1;
        }
        self.blk = b;
        let mut max = 0.0f32;
        while b < self.nblocks {
            let block = self.block(b);
            if block.max > max {
                max = block.max;
            }
            if block.last >= hi {
                break;
            }
            b += 1;
        }
        max
    }

    /// An upper bound on this term's value for slot `target`, from the largest value of the
    /// block that would hold it (0 when no entry at or after `target` remains). Moves only the
    /// block pointer, never reads entries.
    #[inline]
    pub(super) fn shallow(&mut self, target: u32) -> f32 {
        if self.pos >= self.entries.len() {
            return 0.0;
        }
        let mut b = self.blk.max(self.pos >> self.shift);
        while b < self.nblocks && self.block(b).last < target {
            b += 1;
        }
        self.blk = b;
        if b == self.nblocks {
            0.0
        } else {
            self.block(b).max
        }
    }
}
