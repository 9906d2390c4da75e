//! Ochre's sparse inverted index: exact top-k by inner product, with dynamic pruning.
//!
//! It serves Chroma's sparse-vector `$knn` and BM25 search. A sparse vector is a list of
//! `(index, value)` pairs; here the indices are called terms. Vectors are stored under the
//! [`SeqNo`] of their record, and a query returns the `k` stored vectors with the largest inner
//! product `q·v`, largest first.
//!
//! # Layout
//!
//! - Every vector gets a dense `u32` slot, assigned in insertion order; a replaced or removed
//!   vector's slot becomes a tombstone in the live bitmap.
//! - A forward store holds each slot's pairs back to back (for [`SparseIndex::get`], for
//!   removals, and for scoring a candidate set directly, [`SparseIndex::search_among`]).
//! - Each term has postings (`postings`): `(slot, value)` entries sorted by slot, in blocks of
//!   [`BLOCK`] entries that record their last slot and largest value. A new slot is larger than
//!   every other, so insertion only appends.
//!
//! # Scores
//!
//! The score of `v` for `q` is `Σ q_t·v_t` over the terms `t` both hold (whatever their values,
//! zeros included), summed in ascending term order in `f64` (each product of two `f32`s is exact
//! in `f64`) and rounded to `f32` once. That order is fixed, so every path (pruned, exhaustive,
//! candidate scan) and any brute force following the rule give bit-identical scores. A vector
//! sharing no term with the query is not a hit, whatever `k`. Ties rank by ascending [`SeqNo`].
//!
//! # Search
//!
//! When every query value and every value in the query terms' postings is non-negative and
//! finite, [`SparseIndex::search`] runs MaxScore (Turtle & Flood, 1995) with block-max bounds
//! (Ding & Suel, 2011), document at a time in slot order:
//! - Terms are sorted by their upper bound `q_t · max v_t`. Once the heap holds `k` hits with
//!   threshold `θ`, the longest prefix of terms whose bounds sum below `θ` is *non-essential*:
//!   a vector holding only those terms cannot enter, so candidates come from the other
//!   (essential) terms' postings only, and the non-essential ones are only probed.
//! - When one essential term's next slots come before every other essential term's (always,
//!   once a single term is essential, the usual state for short queries), its entries up to
//!   the next one's slot are handled as a batch within one block: the block is skipped if its
//!   maximum cannot enter; entries that cannot enter on their own bound are dropped; the rest
//!   are bounded by the non-essential terms' block maxima over the batch's slot range, then
//!   probed term by term in descending bound order, galloping through each term's postings
//!   and dropping candidates as soon as their partial score plus the remaining bounds cannot
//!   reach `θ`.
//! - A slot several essential terms share is merged: first a region check (within the
//!   first-ending current block of the essential terms, each contributes at most its block's
//!   maximum; if their sum cannot enter, the whole region is skipped), then the non-essential
//!   terms are bounded by the blocks that would hold the slot and probed as above.
//! - Terms whose postings run out are dropped from the query, which tightens the bounds.
//! - Bounds are compared after a relative slack that covers `f64` rounding differences between
//!   summation orders, and against the exact `f64` limit below which a sum rounds under `θ`,
//!   so pruning never drops a vector whose exact score would enter.
//! - Ties: while slots are in ascending sequence-number order (the usual case: the engine
//!   inserts in log order; a global rebuild restores it), a later candidate loses a tie against
//!   every hit already held, so a bound that can only *equal* `θ` prunes too.
//!
//! Pruning needs non-negative contributions: the bounds are query weights times maximum values,
//! which bound `q_t·v_t` only when `q_t ≥ 0`, and a vector lacking a term gets 0 from it, which
//! only a non-negative bound covers. With any negative (or non-finite, which breaks the
//! arithmetic of bounds) value among the query or its terms' postings, the search falls back to
//! exhaustive term-at-a-time accumulation over every posting of the query terms, which is exact
//! too. A filter (`allow`) is applied to candidates before they are scored; a very selective one
//! keeps `θ` low and so prunes less, but never changes the answer. For a small explicit
//! candidate set, [`SparseIndex::search_among`] scores the candidates from the forward store
//! instead of walking postings.
//!
//! # Deletions and memory
//!
//! Removing a vector tombstones its slot and counts one dead entry in each of its terms. A term
//! whose dead entries outnumber its live ones is compacted on the spot (freed when none is left
//! alive), so postings never hold more dead entries than live ones, and each compaction costs at
//! most twice the removals that caused it. When tombstoned slots and dead forward-store pairs
//! together outnumber the live ones, the whole index is rebuilt from the forward store with
//! slots renumbered densely in sequence-number order (amortised O(1) per removed pair, plus the
//! sort). The same rebuild restores that order when an insert breaks it (a sequence number not
//! above every earlier one), once as many more vectors have been appended as were live then.
//!
//! Invariants:
//! - Every term's postings are strictly ascending by slot; every slot is below `u32::MAX` (the
//!   cursors' end marker).
//! - A live slot's pairs in the forward store are strictly ascending by term, and the slot has
//!   exactly one entry in the postings of each of those terms.
//! - `by_seq` maps exactly the live sequence numbers to their slots.
//! - `ordered` implies that live slots hold strictly ascending sequence numbers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use rustc_hash::FxHashMap;

use ochre_types::SeqNo;

mod postings;
mod search;

use postings::{Postings, END};
use search::Scratch;

/// Entries per postings block (a power of two): small enough that a block's maximum is a tight
/// bound, large enough that the block table stays a small fraction of the postings.
pub const BLOCK: usize = 1 << BLOCK_SHIFT;
const BLOCK_SHIFT: u32 = 7;

/// Garbage (tombstoned slots plus dead forward-store pairs) below which no global rebuild runs.
const REBUILD_MIN: usize = 64;

/// One search hit: a vector's sequence number and its score `q·v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseHit {
    pub seq: SeqNo,
    pub score: f32,
}

/// A bitmap over slots.
#[derive(Debug, Clone, Default)]
pub(super) struct Live(Vec<u64>);

impl Live {
    #[inline]
    fn get(&self, slot: u32) -> bool {
        self.0
            .get(slot as usize >> 6)
            .is_some_and(|w| w >> (slot & 63) & 1 == 1)
    }

    fn set(&mut self, slot: u32, on: bool) {
        let w = slot as usize >> 6;
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        if on {
            self.0[w] |= 1 << (slot & 63);
        } else {
            self.0[w] &= !(1 << (slot & 63));
        }
    }
}

/// An exact sparse inverted index over vectors stored under sequence numbers.
///
/// See the [module documentation](crate::sparse) for the layout, the scoring rule and the pruning.
/// Searches take `&self` and may run on several threads at once.
pub struct SparseIndex {
    /// The sequence number of each slot (tombstoned ones keep their last).
    slot_seq: Vec<SeqNo>,
    live: Live,
    /// Live sequence numbers to slots. Sequence numbers are ours, not a client's, so a fast
    /// integer hash is safe.
    by_seq: FxHashMap<SeqNo, u32>,
    /// Forward store: slot `s` holds `fwd_terms[fwd_off[s]..fwd_off[s + 1]]` (and the values
    /// beside them); `fwd_off` has one more element than `slot_seq`.
    fwd_off: Vec<usize>,
    fwd_terms: Vec<u32>,
    fwd_values: Vec<f32>,
    /// Pairs of live slots in the forward store.
    fwd_live: usize,
    /// Term to its postings in `terms`. Terms come from clients, so this map keeps std's
    /// DoS-resistant hasher.
    term_ids: HashMap<u32, u32>,
    terms: Vec<Postings>,
    /// Entries of `terms` freed (their term lost its last live vector), for reuse.
    free_terms: Vec<u32>,
    /// Whether live slots are in strictly ascending sequence-number order.
    ordered: bool,
    /// The largest sequence number ever given a slot (since the last rebuild).
    max_seq: Option<SeqNo>,
    /// While not `ordered`: appends left before a rebuild restores the order (set to the live
    /// count when the order breaks, so reordering costs O(1) amortised per append).
    reorder_in: usize,
    shift: u32,
    scratch: Mutex<Vec<Scratch>>,
}

impl Default for SparseIndex {
    fn default() -> Self {
        SparseIndex::new()
    }
}

impl Clone for SparseIndex {
    fn clone(&self) -> Self {
        SparseIndex {
            slot_seq: self.slot_seq.clone(),
            live: self.live.clone(),
            by_seq: self.by_seq.clone(),
            fwd_off: self.fwd_off.clone(),
            fwd_terms: self.fwd_terms.clone(),
            fwd_values: self.fwd_values.clone(),
            fwd_live: self.fwd_live,
            term_ids: self.term_ids.clone(),
            terms: self.terms.clone(),
            free_terms: self.free_terms.clone(),
            ordered: self.ordered,
            max_seq: self.max_seq,
            reorder_in: self.reorder_in,
            shift: self.shift,
            scratch: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for SparseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseIndex")
            .field("live", &self.len())
            .field("slots", &self.slot_seq.len())
            .field("terms", &self.term_ids.len())
            .field("pairs", &self.fwd_live)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl SparseIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::with_block_shift(BLOCK_SHIFT)
    }

    /// An empty index with blocks of `1 << shift` entries (tests use tiny blocks to exercise
    /// block skipping on small data).
    fn with_block_shift(shift: u32) -> Self {
        SparseIndex {
            slot_seq: Vec::new(),
            live: Live::default(),
            by_seq: FxHashMap::default(),
            fwd_off: vec![0],
            fwd_terms: Vec::new(),
            fwd_values: Vec::new(),
            fwd_live: 0,
            term_ids: HashMap::new(),
            terms: Vec::new(),
            free_terms: Vec::new(),
            ordered: true,
            max_seq: None,
            reorder_in: 0,
            shift,
            scratch: Mutex::default(),
        }
    }

    /// Live (stored, not removed) vectors.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// True when no vector is stored.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Stores the vector of `seq`, replacing the one it had (a replacement is a removal and an
    /// insertion: the vector gets a new slot). Amortised O(nnz) (plus hashing its terms).
    ///
    /// The caller validates the vector: `indices` strictly ascending, `values` finite and as
    /// many. Anything else is still stored without panicking: pairs past the shorter slice are
    /// ignored, pairs are sorted by index and the values of a repeated index summed; non-finite
    /// values are kept, give scores by IEEE arithmetic, and turn pruning off for their terms. A
    /// vector with no pairs is stored (it counts in [`len`](Self::len)) but is never a hit.
    ///
    /// # Panics
    /// When `u32::MAX` vectors are live and one more is inserted (slots are `u32`, and
    /// `u32::MAX` marks the end of a postings list).
    pub fn insert(&mut self, seq: SeqNo, indices: &[u32], values: &[f32]) {
        let (indices, values) = normalized(indices, values);
        if let Some(&old) = self.by_seq.get(&seq) {
            self.remove_slot(old);
        }
        if self.slot_seq.len() >= END as usize {
            self.rebuild();
            if self.slot_seq.len() >= END as usize {
                panic!("sparse index full: {} live vectors", self.len());
            }
        }
        let slot = self.slot_seq.len() as u32;
        if self.ordered && self.max_seq.is_some_and(|m| m >= seq) {
            self.ordered = false;
            self.reorder_in = self.len().max(REBUILD_MIN);
        }
        if !self.ordered {
            self.reorder_in = self.reorder_in.saturating_sub(1);
        }
        self.max_seq = Some(self.max_seq.map_or(seq, |m| m.max(seq)));
        self.slot_seq.push(seq);
        self.live.set(slot, true);
        self.by_seq.insert(seq, slot);
        self.fwd_terms.extend_from_slice(&indices);
        self.fwd_values.extend_from_slice(&values);
        self.fwd_off.push(self.fwd_terms.len());
        self.fwd_live += indices.len();
        for (&t, &v) in indices.iter().zip(values.iter()) {
            let id = match self.term_ids.get(&t) {
                Some(&id) => id,
                None => self.new_term(t, 1),
            };
            self.terms[id as usize].push(slot, v, self.shift);
        }
        self.maybe_rebuild();
    }

    /// A postings entry for term `t` (reusing a freed one), expecting about `n` entries.
    fn new_term(&mut self, t: u32, n: usize) -> u32 {
        let postings = Postings::with_capacity(n);
        let id = match self.free_terms.pop() {
            Some(id) => {
                self.terms[id as usize] = postings;
                id
            }
            None => {
                self.terms.push(postings);
                (self.terms.len() - 1) as u32
            }
        };
        self.term_ids.insert(t, id);
        id
    }

    /// Removes the vector of `seq`; absent sequence numbers are ignored. Amortised O(nnz).
    pub fn remove(&mut self, seq: SeqNo) {
        if let Some(&slot) = self.by_seq.get(&seq) {
            self.remove_slot(slot);
            self.maybe_rebuild();
        }
    }

    /// Tombstones a live slot, counts its dead postings entries and compacts the terms whose
    /// dead entries now outnumber the live ones.
    fn remove_slot(&mut self, slot: u32) {
        let seq = self.slot_seq[slot as usize];
        self.by_seq.remove(&seq);
        self.live.set(slot, false);
        let (from, to) = self.range(slot);
        self.fwd_live -= to - from;
        for i in from..to {
            let t = self.fwd_terms[i];
            let Some(&id) = self.term_ids.get(&t) else {
                debug_assert!(false, "term {t} of a live slot has no postings");
                continue;
            };
            let postings = &mut self.terms[id as usize];
            if postings.kill_one() {
                if postings.live() == 0 {
                    *postings = Postings::default();
                    self.term_ids.remove(&t);
                    self.free_terms.push(id);
                } else {
                    postings.compact(&self.live, self.shift);
                }
            }
        }
    }

    /// Rebuilds when garbage (tombstoned slots and their forward-store pairs) outnumbers what is
    /// live (past [`REBUILD_MIN`]), or when the appends allowed out of sequence-number order are
    /// used up.
    fn maybe_rebuild(&mut self) {
        let dead_slots = self.slot_seq.len() - self.len();
        let dead_pairs = self.fwd_terms.len() - self.fwd_live;
        let garbage = dead_slots + dead_pairs;
        let compact = garbage >= REBUILD_MIN && garbage > self.len() + self.fwd_live;
        let reorder = !self.ordered && self.reorder_in == 0;
        if compact || reorder {
            self.rebuild();
        }
    }

    /// Renumbers the live slots densely in sequence-number order and rebuilds the forward
    /// store, the postings and the term table from the live vectors.
    fn rebuild(&mut self) {
        let mut slots: Vec<u32> = self.by_seq.values().copied().collect();
        slots.sort_unstable_by_key(|&s| self.slot_seq[s as usize]);
        let mut fresh = SparseIndex::with_block_shift(self.shift);
        fresh.slot_seq.reserve_exact(slots.len());
        fresh.by_seq.reserve(slots.len());
        fresh.fwd_off.reserve_exact(slots.len());
        fresh.fwd_terms.reserve_exact(self.fwd_live);
        fresh.fwd_values.reserve_exact(self.fwd_live);
        fresh.term_ids.reserve(self.term_ids.len());
        fresh.terms.reserve_exact(self.term_ids.len());
        for (new, &old) in slots.iter().enumerate() {
            let new = new as u32;
            let seq = self.slot_seq[old as usize];
            fresh.slot_seq.push(seq);
            fresh.live.set(new, true);
            fresh.by_seq.insert(seq, new);
            let (from, to) = self.range(old);
            for i in from..to {
                let (t, v) = (self.fwd_terms[i], self.fwd_values[i]);
                let id = match fresh.term_ids.get(&t) {
                    Some(&id) => id,
                    None => {
                        let n = self
                            .term_ids
                            .get(&t)
                            .map_or(1, |&id| self.terms[id as usize].live() as usize);
                        fresh.new_term(t, n)
                    }
                };
                fresh.terms[id as usize].push(new, v, fresh.shift);
            }
            fresh.fwd_terms.extend_from_slice(&self.fwd_terms[from..to]);
            fresh
                .fwd_values
                .extend_from_slice(&self.fwd_values[from..to]);
            fresh.fwd_off.push(fresh.fwd_terms.len());
        }
        fresh.fwd_live = fresh.fwd_terms.len();
        fresh.max_seq = fresh.slot_seq.last().copied();
        fresh.scratch = std::mem::take(&mut self.scratch);
        *self = fresh;
    }

    /// The forward-store range of `slot`.
    #[inline]
    fn range(&self, slot: u32) -> (usize, usize) {
        let s = slot as usize;
        (self.fwd_off[s], self.fwd_off[s + 1])
    }

    /// The stored vector of `seq` as `(indices, values)`, indices strictly ascending.
    pub fn get(&self, seq: SeqNo) -> Option<(Vec<u32>, Vec<f32>)> {
        let &slot = self.by_seq.get(&seq)?;
        let (from, to) = self.range(slot);
        Some((
            self.fwd_terms[from..to].to_vec(),
            self.fwd_values[from..to].to_vec(),
        ))
    }

    /// Live vectors holding an entry (of any value, zero included) for `term`: the document
    /// frequency BM25's IDF needs.
    pub fn doc_freq(&self, term: u32) -> usize {
        self.postings(term).map_or(0, |p| p.live() as usize)
    }

    /// Sequence numbers of the live vectors, in no particular order.
    pub fn seqs(&self) -> impl Iterator<Item = SeqNo> + '_ {
        self.by_seq.keys().copied()
    }

    fn postings(&self, term: u32) -> Option<&Postings> {
        self.term_ids.get(&term).map(|&id| &self.terms[id as usize])
    }

    /// Releases spare capacity (growth headroom of the slot table, forward store, postings and
    /// hash tables), for instance after loading a collection. Does not drop tombstones; O(size).
    pub fn shrink_to_fit(&mut self) {
        self.slot_seq.shrink_to_fit();
        self.live.0.shrink_to_fit();
        self.by_seq.shrink_to_fit();
        self.fwd_off.shrink_to_fit();
        self.fwd_terms.shrink_to_fit();
        self.fwd_values.shrink_to_fit();
        self.term_ids.shrink_to_fit();
        self.terms.shrink_to_fit();
        self.terms.iter_mut().for_each(Postings::shrink_to_fit);
        self.free_terms.shrink_to_fit();
    }

    /// Approximate heap bytes held (capacities of the slot table, forward store, postings and
    /// hash tables), for metrics.
    pub fn memory_bytes(&self) -> usize {
        // A hashbrown bucket is the entry plus one control byte; tables are at most 7/8 full,
        // which `capacity()` already accounts for.
        let by_seq = self.by_seq.capacity() * (size_of::<(SeqNo, u32)>() + 1);
        let term_ids = self.term_ids.capacity() * (size_of::<(u32, u32)>() + 1);
        let scratch = self
            .scratch
            .lock()
            .map_or(0, |pool| pool.iter().map(Scratch::heap_bytes).sum());
        self.slot_seq.capacity() * size_of::<SeqNo>()
            + self.live.0.capacity() * size_of::<u64>()
            + by_seq
            + self.fwd_off.capacity() * size_of::<usize>()
            + self.fwd_terms.capacity() * size_of::<u32>()
            + self.fwd_values.capacity() * size_of::<f32>()
            + term_ids
            + self.terms.capacity() * size_of::<Postings>()
            + self.terms.iter().map(Postings::heap_bytes).sum::<usize>()
            + self.free_terms.capacity() * size_of::<u32>()
            + scratch
    }
}

/// `indices` and `values` cut to the same length, sorted by index with repeated indices merged
/// (values summed); borrowed when they already were.
fn normalized<'a>(indices: &'a [u32], values: &'a [f32]) -> (Cow<'a, [u32]>, Cow<'a, [f32]>) {
    let n = indices.len().min(values.len());
    let (indices, values) = (&indices[..n], &values[..n]);
    if indices.windows(2).all(|w| w[0] < w[1]) {
        return (Cow::Borrowed(indices), Cow::Borrowed(values));
    }
    let mut pairs: Vec<(u32, f32)> = indices
        .iter()
        .copied()
        .zip(values.iter().copied())
        .collect();
    pairs.sort_by_key(|p| p.0);
    let mut out_i: Vec<u32> = Vec::with_capacity(n);
    let mut out_v: Vec<f32> = Vec::with_capacity(n);
    for (t, v) in pairs {
        match (out_i.last(), out_v.last_mut()) {
            (Some(&last), Some(acc)) if last == t => *acc += v,
            _ => {
                out_i.push(t);
                out_v.push(v);
            }
        }
    }
    (Cow::Owned(out_i), Cow::Owned(out_v))
}

#[cfg(test)]
mod tests;
