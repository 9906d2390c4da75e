//! Ochre's full-text index: trigram posting lists that narrow `where_document`'s `$contains` and
//! `$regex` (and so their negations) to candidate records.
//!
//! The index is a filter, not an evaluator: [`TextIndex::contains_candidates`] and
//! [`TextIndex::regex_candidates`] return a superset of the matching records, which the caller
//! verifies by reading the candidates' documents, so answers stay exact. When the index can prove
//! a list is already the exact answer it says so ([`Candidates::Exact`]: a three-byte needle, or a
//! pattern that is an alternation of three-byte strings).
//!
//! A trigram is three consecutive bytes of a document's UTF-8. A string is a substring of a
//! document exactly when its bytes are a byte substring, so a document holding a needle holds all
//! of the needle's trigrams: intersecting their posting lists loses no match. Patterns are parsed
//! with `regex-syntax`, as the `regex` crate parses them, and planned into an AND/OR tree of
//! trigrams (module `query`, after Russ Cox's Code Search); a tree that requires nothing answers
//! [`Candidates::All`].
//!
//! Layout: each record gets a dense `u32` slot when indexed; slots are appended, so appending to a
//! posting list keeps it sorted. A posting list (module `postings`) is either gaps bit-packed in
//! blocks of 128 with one skip entry (last slot, byte offset) per block and a varint tail (about
//! 5 bits per posting for a trigram in a tenth of the documents, 1–3 bytes for rare ones), or, for
//! a trigram in a third of the documents or more, a bitmap over slots (at most 3 bits per
//! posting, and a bit test per candidate). Intersections start from the shortest list, decode it,
//! then merge it with each longer list (galloping over skip entries and decoding only the blocks
//! they land in, or testing bits); an empty intersection stops at once.
//!
//! Removal clears the slot's bit in a live bitmap and leaves its postings in place (re-indexing
//! a record removes its old slot and appends a new one). Compaction rewrites every posting list
//! without the dead slots, renumbering the live ones densely in sequence-number order; it runs
//! when dead slots reach a quarter of all slots and at least [`COMPACT_MIN_DEAD`]. After a
//! compaction of `n` live slots at least `n / 3` removals must come before the next, so its cost
//! (one pass over the postings) is a constant number of postings per removal: amortised about four
//! times what indexing the removed document cost.
//!
//! Invariants:
//! - Every live record has exactly one live slot, holding the trigrams of its last indexed
//!   document; posting lists hold slots in ascending order.
//! - Candidate lists hold only live records, sorted by ascending sequence number, without
//!   duplicates, and include every live record whose document matches.
//! - The index never panics on a document, needle or pattern: an invalid pattern is a
//!   [`TextError`]; a pattern's plan is bounded in size whatever the pattern.
//! - If slots run out (2³² − 1 of them, even after compaction), further records are kept aside
//!   unindexed and every query answers [`Candidates::All`] until they are removed.

use rustc_hash::{FxHashMap, FxHashSet};

use ochre_types::SeqNo;

mod postings;
mod query;
#[cfg(test)]
mod tests;

use postings::{Postings, Universe, BITMAP_MIN_SLOTS};
use query::Query;

/// Compaction waits for at least this many dead slots (and a quarter of all slots).
pub const COMPACT_MIN_DEAD: usize = 256;

/// Slots an index hands out: slot values stay below `u32::MAX`.
const MAX_SLOTS: usize = u32::MAX as usize;

/// Why a text query could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// The `$regex` pattern is not valid `regex` syntax. The message is `regex-syntax`'s, the one
    /// `regex::Regex::new` reports for the same pattern.
    #[error("{0}")]
    Regex(String),
}

/// The records a document filter may match, among the live indexed records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    /// Every indexed record may match: the needle is shorter than a trigram (the empty needle
    /// too), or the pattern requires no trigram (`a*`, `.`, `\w+`, `ab`).
    All,
    /// The records that may match; every match is among them. Sorted ascending, unique.
    Some(Vec<SeqNo>),
    /// Exactly the records that match, so they need no verification. Sorted ascending, unique.
    Exact(Vec<SeqNo>),
}

impl Candidates {
    /// The listed records, or `None` for [`Candidates::All`].
    pub fn seqs(&self) -> Option<&[SeqNo]> {
        match self {
            Candidates::All => None,
            Candidates::Some(s) | Candidates::Exact(s) => Some(s),
        }
    }

    /// True when the list is exactly the matching records ([`Candidates::Exact`]).
    pub fn is_exact(&self) -> bool {
        matches!(self, Candidates::Exact(_))
    }
}

/// A trigram index over the documents of one collection, keyed by sequence number.
#[derive(Clone)]
pub struct TextIndex {
    /// Slot → sequence number, live or dead. Appended, so slots are handed out in order.
    seqs: Vec<SeqNo>,
    /// One bit per slot: set while the slot is its record's current one.
    live: Vec<u64>,
    /// Live record → its slot. Sequence numbers are ours, so a fast integer hash is safe.
    slots: FxHashMap<SeqNo, u32>,
    /// Trigram key (three bytes in the low 24 bits) → posting list; no list is empty.
    postings: FxHashMap<u32, Postings>,
    /// Slots whose bit is clear.
    dead: usize,
    /// Slot order is sequence-number order, so candidate lists come out sorted. Lost when a
    /// record is re-indexed after a larger one; compaction restores it.
    ordered: bool,
    /// Records indexed after the slots ran out (see the module invariants).
    unindexed: FxHashSet<SeqNo>,
    max_slots: usize,
    compact_min_dead: usize,
    bitmap_min_slots: usize,
    /// A document's trigram keys, reused between inserts.
    scratch: Vec<u32>,
}

impl Default for TextIndex {
    fn default() -> Self {
        TextIndex::new()
    }
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex")
            .field("records", &self.len())
            .field("slots", &self.seqs.len())
            .field("dead", &self.dead)
            .field("trigrams", &self.postings.len())
            .field("unindexed", &self.unindexed.len())
            .finish()
    }
}

/// What evaluating a query found.
enum Found {
    /// Every record may match.
    All,
    /// These live slots, ascending.
    Slots(Vec<u32>),
}

impl TextIndex {
    /// An empty index.
    pub fn new() -> Self {
        TextIndex::with_limits(MAX_SLOTS, COMPACT_MIN_DEAD, BITMAP_MIN_SLOTS)
    }

    /// An empty index with other slot, compaction and bitmap limits (tests reach the edges
    /// cheaply).
    fn with_limits(max_slots: usize, compact_min_dead: usize, bitmap_min_slots: usize) -> Self {
        TextIndex {
            seqs: Vec::new(),
            live: Vec::new(),
            slots: FxHashMap::default(),
            postings: FxHashMap::default(),
            dead: 0,
            ordered: true,
            unindexed: FxHashSet::default(),
            max_slots: max_slots.min(MAX_SLOTS),
            compact_min_dead,
            bitmap_min_slots,
            scratch: Vec::new(),
        }
    }

    /// Indexed (live) records.
    pub fn len(&self) -> usize {
        self.slots.len() + self.unindexed.len()
    }

    /// True when no record is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct trigrams with a posting list (dead postings included until compaction).
    pub fn trigrams(&self) -> usize {
        self.postings.len()
    }

    /// Indexes (or re-indexes) the document of `seq`, replacing what was indexed for it before.
    /// A document shorter than three bytes has no trigram: it is a candidate only where every
    /// record is ([`Candidates::All`]).
    pub fn insert(&mut self, seq: SeqNo, document: &str) {
        self.unlink(seq);
        if self.seqs.len() >= self.max_slots && self.dead > 0 {
            self.compact();
        }
        if self.seqs.len() >= self.max_slots {
            self.unindexed.insert(seq);
            return;
        }
        // Below `max_slots` ≤ `u32::MAX`.
        let slot = self.seqs.len() as u32;
        if self.seqs.last().is_some_and(|&last| last > seq) {
            self.ordered = false;
        }
        self.seqs.push(seq);
        if self.live.len() * 64 < self.seqs.len() {
            self.live.push(0);
        }
        if let Some(word) = self.live.get_mut(slot as usize / 64) {
            *word |= 1 << (slot % 64);
        }
        self.slots.insert(seq, slot);
        let mut keys = std::mem::take(&mut self.scratch);
        query::trigrams(document.as_bytes(), &mut keys);
        let universe = Universe {
            slots: self.seqs.len(),
            bitmap_min_slots: self.bitmap_min_slots,
        };
        for &k in &keys {
            self.postings.entry(k).or_default().push(slot, universe);
        }
        self.scratch = keys;
        self.maybe_compact();
    }

    /// Removes the document of `seq`; an absent sequence number is ignored.
    pub fn remove(&mut self, seq: SeqNo) {
        self.unlink(seq);
        self.maybe_compact();
    }

    /// Forgets the current slot of `seq`, if any, without compacting.
    fn unlink(&mut self, seq: SeqNo) {
        if let Some(slot) = self.slots.remove(&seq) {
            if let Some(word) = self.live.get_mut(slot as usize / 64) {
                *word &= !(1 << (slot % 64));
            }
            self.dead += 1;
        } else {
            self.unindexed.remove(&seq);
        }
    }

    fn is_live(&self, slot: u32) -> bool {
        self.live
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// Compacts when the rule of the module docs says so.
    fn maybe_compact(&mut self) {
        if self.dead >= self.compact_min_dead && self.dead * 4 >= self.seqs.len() {
            self.compact();
        }
    }

    /// Rewrites the posting lists without dead slots, renumbering live slots densely in
    /// sequence-number order, and releases spare capacity. Runs on its own when dead slots pass
    /// the threshold (module docs); calling it after a bulk load trims buffer slack. One pass over
    /// all postings.
    pub fn compact(&mut self) {
        let n = self.seqs.len();
        let mut order: Vec<u32> = (0..n as u32).filter(|&s| self.is_live(s)).collect();
        if !self.ordered {
            order.sort_unstable_by_key(|&s| self.seqs.get(s as usize).copied());
        }
        const GONE: u32 = u32::MAX;
        let mut remap = vec![GONE; n];
        for (new, &old) in order.iter().enumerate() {
            if let Some(r) = remap.get_mut(old as usize) {
                // `new` < `order.len()` ≤ `n` ≤ `u32::MAX`.
                *r = new as u32;
            }
        }
        let mut buf = Vec::new();
        let universe = Universe {
            slots: order.len(),
            bitmap_min_slots: self.bitmap_min_slots,
        };
        for list in self.postings.values_mut() {
            buf.clear();
            list.for_each(|s| match remap.get(s as usize) {
                Some(&r) if r != GONE => buf.push(r),
                _ => {}
            });
            if !self.ordered {
                buf.sort_unstable();
            }
            *list = Postings::from_sorted(&buf, universe);
        }
        self.postings.retain(|_, l| !l.is_empty());
        self.postings.shrink_to_fit();
        self.seqs = order
            .iter()
            .filter_map(|&s| self.seqs.get(s as usize).copied())
            .collect();
        for slot in self.slots.values_mut() {
            *slot = remap.get(*slot as usize).copied().unwrap_or(GONE);
        }
        self.slots.shrink_to_fit();
        let words = self.seqs.len().div_ceil(64);
        self.live = vec![u64::MAX; words];
        if let Some(last) = self.live.last_mut() {
            let used = self.seqs.len() % 64;
            if used > 0 {
                *last = (1 << used) - 1;
            }
        }
        self.dead = 0;
        self.ordered = true;
        self.scratch = Vec::new();
    }

    /// Records whose document may contain `needle` (case-sensitive substring, as `$contains`):
    /// a superset of the exact answer among live indexed records. A needle under three bytes
    /// answers [`Candidates::All`]; a three-byte one [`Candidates::Exact`].
    pub fn contains_candidates(&self, needle: &str) -> Candidates {
        let bytes = needle.as_bytes();
        if bytes.len() < 3 || !self.unindexed.is_empty() {
            return Candidates::All;
        }
        let mut keys = Vec::new();
        query::trigrams(bytes, &mut keys);
        let slots = self.intersect_trigrams(&keys).unwrap_or_default();
        self.finish(slots, bytes.len() == 3)
    }

    /// Records whose document may match `pattern` (`$regex`: `regex` crate syntax, matched
    /// anywhere in the document): a superset of the exact answer among live indexed records.
    ///
    /// # Errors
    /// [`TextError::Regex`] when `pattern` does not parse (with the `regex` crate's defaults).
    pub fn regex_candidates(&self, pattern: &str) -> Result<Candidates, TextError> {
        let hir = regex_syntax::Parser::new()
            .parse(pattern)
            .map_err(|e| TextError::Regex(e.to_string()))?;
        let plan = query::plan(&hir);
        if !self.unindexed.is_empty() {
            return Ok(Candidates::All);
        }
        Ok(match self.eval(&plan.query) {
            Found::All => Candidates::All,
            Found::Slots(slots) => self.finish(slots, plan.exact),
        })
    }

    /// Approximate heap and inline bytes the index holds (capacities; hash tables counted at
    /// one entry plus a control byte per slot of capacity). Walks the posting lists.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = |cap: usize, entry: usize| cap * (entry + 1);
        size_of::<Self>()
            + self.seqs.capacity() * size_of::<SeqNo>()
            + self.live.capacity() * size_of::<u64>()
            + table(self.slots.capacity(), size_of::<(SeqNo, u32)>())
            + table(self.postings.capacity(), size_of::<(u32, Postings)>())
            + self
                .postings
                .values()
                .map(Postings::heap_bytes)
                .sum::<usize>()
            + table(self.unindexed.capacity(), size_of::<SeqNo>())
            + self.scratch.capacity() * size_of::<u32>()
    }

    /// The live slots holding every trigram of `keys` (ascending, unique), or `None` when some
    /// trigram has no list at all.
    fn intersect_trigrams(&self, keys: &[u32]) -> Option<Vec<u32>> {
        let mut lists = keys
            .iter()
            .map(|k| self.postings.get(k))
            .collect::<Option<Vec<&Postings>>>()?;
        lists.sort_by_key(|l| l.len());
        let (first, rest) = lists.split_first()?;
        let mut cur = Vec::with_capacity(first.len());
        first.for_each(|s| {
            if self.is_live(s) {
                cur.push(s);
            }
        });
        for list in rest {
            if cur.is_empty() {
                break;
            }
            list.retain_present(&mut cur);
        }
        Some(cur)
    }

    fn eval(&self, q: &Query) -> Found {
        match q {
            Query::Any => Found::All,
            Query::Nothing => Found::Slots(Vec::new()),
            Query::Trigram(t) => Found::Slots(self.intersect_trigrams(&[*t]).unwrap_or_default()),
            Query::Or { parts, .. } => {
                let mut out = Vec::new();
                for p in parts {
                    match self.eval(p) {
                        Found::All => return Found::All,
                        Found::Slots(s) => out.extend(s),
                    }
                }
                out.sort_unstable();
                out.dedup();
                Found::Slots(out)
            }
            Query::And { parts, .. } => {
                let mut keys: Vec<u32> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Query::Trigram(t) => Some(*t),
                        _ => None,
                    })
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let mut cur = if keys.is_empty() {
                    None
                } else {
                    match self.intersect_trigrams(&keys) {
                        Some(s) if !s.is_empty() => Some(s),
                        _ => return Found::Slots(Vec::new()),
                    }
                };
                for p in parts.iter().filter(|p| !matches!(p, Query::Trigram(_))) {
                    if let Found::Slots(s) = self.eval(p) {
                        let next = match cur {
                            None => s,
                            Some(c) => intersect_sorted(c, &s),
                        };
                        if next.is_empty() {
                            return Found::Slots(next);
                        }
                        cur = Some(next);
                    }
                }
                cur.map_or(Found::All, Found::Slots)
            }
        }
    }

    /// Live slots (ascending) as sorted sequence numbers.
    fn finish(&self, slots: Vec<u32>, exact: bool) -> Candidates {
        let mut seqs: Vec<SeqNo> = slots
            .iter()
            .filter_map(|&s| self.seqs.get(s as usize).copied())
            .collect();
        if !self.ordered && !seqs.is_sorted() {
            seqs.sort_unstable();
        }
        if exact {
            Candidates::Exact(seqs)
        } else {
            Candidates::Some(seqs)
        }
    }
}

/// The elements of `a` also in `b` (both ascending).
fn intersect_sorted(mut a: Vec<u32>, b: &[u32]) -> Vec<u32> {
    let mut j = 0;
    a.retain(|&x| {
        j += b.get(j..).unwrap_or(&[]).partition_point(|&y| y < x);
        b.get(j) == Some(&x)
    });
    a
}
