//! Top-k queries: block-max MaxScore for non-negative queries, exhaustive term-at-a-time
//! accumulation otherwise, and the direct scan of a candidate set. The module documentation of
//! [`super`] describes the algorithms and the scoring rule all three follow.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ochre_types::SeqNo;

use super::postings::{prunable, Cursor, Entry, Postings, END};
use super::{normalized, SparseHit, SparseIndex};

/// Queries of at most this many terms (the index holds) probe batches of candidates term by
/// term; longer ones complete each candidate on its own.
const BATCH_TERMS: usize = 32;

/// A query term the index holds.
struct QueryTerm<'a> {
    postings: &'a Postings,
    q: f32,
    /// Its position among the query's terms the index holds, in ascending term order.
    qpos: u32,
}

/// A hit ordered so that the worse one is greater: lower score, or the same score and a larger
/// sequence number. A max-heap of these keeps the worst of the best `k` on top.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: f32,
    seq: SeqNo,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.seq.cmp(&other.seq))
    }
}

/// The best `k` hits seen so far.
struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            // A huge `k` (callers may pass any) grows the heap as hits come instead.
            heap: BinaryHeap::with_capacity(k.min(1 << 12) + 1),
        }
    }

    /// Offers a hit; true when it entered.
    #[inline]
    fn push(&mut self, score: f32, seq: SeqNo) -> bool {
        let r = Ranked { score, seq };
        if self.heap.len() < self.k {
            self.heap.push(r);
            return true;
        }
        match self.heap.peek_mut() {
            Some(mut worst) if r < *worst => {
                *worst = r;
                true
            }
            _ => false,
        }
    }

    /// The score a hit must reach to enter (`-inf` until `k` hits are held).
    #[inline]
    fn threshold(&self) -> f32 {
        match self.heap.peek() {
            Some(w) if self.heap.len() >= self.k => w.score,
            _ => f32::NEG_INFINITY,
        }
    }

    /// The hits, best first.
    fn into_hits(self) -> Vec<SparseHit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| SparseHit {
                seq: r.seq,
                score: r.score,
            })
            .collect()
    }
}

/// Reusable buffers of the exhaustive search: per-slot sums, which slots have one, and the list
/// of those slots (to reset only them).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    acc: Vec<f64>,
    seen: Vec<u64>,
    touched: Vec<u32>,
}

impl Scratch {
    pub(super) fn heap_bytes(&self) -> usize {
        self.acc.capacity() * size_of::<f64>()
            + self.seen.capacity() * size_of::<u64>()
            + self.touched.capacity() * size_of::<u32>()
    }
}

/// Sums a candidate's contributions `(query position, product)` in query term order: the one
/// summation order every path uses.
#[inline]
fn canonical(parts: &mut [(u32, f64)]) -> f32 {
    if parts.len() > 1 {
        parts.sort_unstable_by_key(|p| p.0);
    }
    parts.iter().fold(0.0f64, |acc, p| acc + p.1) as f32
}

impl SparseIndex {
    /// The `k` live vectors with the largest inner product `q·v`, largest first, ties by
    /// ascending sequence number. Scores follow the rule in the [module documentation](crate::sparse)
    /// exactly (no approximation: the result is what a brute-force scan with that rule returns).
    ///
    /// Only vectors sharing at least one term with the query are candidates, so fewer than `k`
    /// hits come back when fewer vectors qualify; an empty query, or `k == 0`, returns none.
    /// `allow`, when given, is asked about each candidate's sequence number and only those it
    /// accepts can be hits; it is called at most once per candidate and not for candidates
    /// pruned before it matters.
    ///
    /// The query follows the same contract as [`insert`](Self::insert) (and is normalized the
    /// same way if it does not). Non-negative, finite queries over non-negative postings are
    /// pruned (block-max MaxScore); others are answered by exhaustive accumulation.
    pub fn search(
        &self,
        q_indices: &[u32],
        q_values: &[f32],
        k: usize,
        allow: Option<&dyn Fn(SeqNo) -> bool>,
    ) -> Vec<SparseHit> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let (qi, qv) = normalized(q_indices, q_values);
        let terms: Vec<QueryTerm<'_>> = qi
            .iter()
            .zip(qv.iter())
            .filter_map(|(&t, &q)| self.postings(t).map(|postings| (postings, q)))
            .enumerate()
            .map(|(pos, (postings, q))| QueryTerm {
                postings,
                q,
                qpos: pos as u32,
            })
            .collect();
        if terms.is_empty() {
            return Vec::new();
        }
        let k = k.min(self.len());
        let prune = terms
            .iter()
            .all(|t| prunable(t.q) && !t.postings.negative());
        if prune {
            self.maxscore(&terms, k, allow)
        } else {
            self.exhaustive(&terms, k, allow)
        }
    }

    /// The `k` best among the live vectors of `candidates` (duplicates and absent sequence
    /// numbers ignored), by the same rule and order as [`search`](Self::search), scored
    /// directly from the forward store: the fast path for a small filtered set, costing
    /// O(Σ (nnz + query terms)) over the candidates whatever the postings' lengths.
    pub fn search_among(
        &self,
        q_indices: &[u32],
        q_values: &[f32],
        k: usize,
        candidates: &[SeqNo],
    ) -> Vec<SparseHit> {
        if k == 0 {
            return Vec::new();
        }
        let (qi, qv) = normalized(q_indices, q_values);
        if qi.is_empty() {
            return Vec::new();
        }
        let mut slots: Vec<u32> = candidates
            .iter()
            .filter_map(|s| self.by_seq.get(s).copied())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let mut top = TopK::new(k.min(slots.len()));
        for slot in slots {
            let (from, to) = self.range(slot);
            if let Some(score) = merge_score(
                &qi,
                &qv,
                &self.fwd_terms[from..to],
                &self.fwd_values[from..to],
            ) {
                top.push(score, self.slot_seq[slot as usize]);
            }
        }
        top.into_hits()
    }

    /// Block-max MaxScore, document at a time over `terms` (all non-negative).
    fn maxscore(
        &self,
        terms: &[QueryTerm<'_>],
        k: usize,
        allow: Option<&dyn Fn(SeqNo) -> bool>,
    ) -> Vec<SparseHit> {
        let mut cur: Vec<Cursor<'_>> = terms
            .iter()
            .map(|t| t.postings.cursor(f64::from(t.q), t.qpos, self.shift))
            .collect();
        // Ascending bounds: non-essential terms are always a prefix.
        cur.sort_by(|a, b| a.ub.total_cmp(&b.ub).then(a.qpos.cmp(&b.qpos)));
        let n = cur.len();
        let ubp = cur
            .iter()
            .scan(0.0f64, |acc, c| {
                *acc += c.ub;
                Some(*acc)
            })
            .collect();
        MaxScore {
            index: self,
            gate: Gate {
                // Sums of up to n + 1 non-negative terms in different orders differ by less
                // than (n + 1) ulps of the total; a bound inflated by more than that stays
                // above the score.
                slack: 1.0 + 4.0 * (n as f64 + 2.0) * f64::EPSILON,
                ties_lose: self.ordered,
                limit: f64::NEG_INFINITY,
            },
            cur,
            ubp,
            theta: f32::NEG_INFINITY,
            top: TopK::new(k),
            essential: 0,
            region_ok: None,
            parts: Vec::with_capacity(n),
            block_pre: vec![0.0; n],
            batch: Vec::with_capacity(1 << self.shift),
            contrib: if n <= BATCH_TERMS {
                vec![0.0; n << self.shift]
            } else {
                Vec::new()
            },
            allow,
            terms: n,
        }
        .run()
    }

    /// Exhaustive term-at-a-time accumulation: every posting of every query term is added into
    /// a per-slot sum, terms in ascending order (the summation order), then the live, allowed
    /// slots go through the heap.
    fn exhaustive(
        &self,
        terms: &[QueryTerm<'_>],
        k: usize,
        allow: Option<&dyn Fn(SeqNo) -> bool>,
    ) -> Vec<SparseHit> {
        let mut s = self.take_scratch();
        for t in terms {
            let q = f64::from(t.q);
            for e in t.postings.entries() {
                let i = e.slot as usize;
                let (w, bit) = (i >> 6, 1u64 << (i & 63));
                if s.seen[w] & bit == 0 {
                    if !self.live.get(e.slot) {
                        continue;
                    }
                    s.seen[w] |= bit;
                    s.touched.push(e.slot);
                }
                s.acc[i] += q * f64::from(e.value);
            }
        }
        let mut top = TopK::new(k);
        for &slot in &s.touched {
            let seq = self.slot_seq[slot as usize];
            if allow.is_none_or(|f| f(seq)) {
                top.push(s.acc[slot as usize] as f32, seq);
            }
        }
        for &slot in &s.touched {
            s.acc[slot as usize] = 0.0;
            s.seen[slot as usize >> 6] = 0;
        }
        s.touched.clear();
        self.give_scratch(s);
        top.into_hits()
    }

    /// Cleared buffers covering every slot.
    fn take_scratch(&self) -> Scratch {
        let mut s = self
            .scratch
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        let n = self.slot_seq.len();
        if s.acc.len() < n {
            s.acc.resize(n, 0.0);
        }
        if s.seen.len() < n.div_ceil(64) {
            s.seen.resize(n.div_ceil(64), 0);
        }
        s
    }

    /// Returns buffers for reuse (a few are kept).
    fn give_scratch(&self, s: Scratch) {
        if let Ok(mut pool) = self.scratch.lock() {
            if pool.len() < 4 {
                pool.push(s);
            }
        }
    }
}

/// Decides whether a bound can still beat the threshold.
#[derive(Clone, Copy)]
struct Gate {
    /// Relative inflation of bounds, covering summation-order rounding.
    slack: f64,
    /// True when slots are in sequence-number order, so a later candidate loses every tie
    /// against the hits held (which all have smaller slots).
    ties_lose: bool,
    /// Inflated bounds below this cannot enter: `-inf` until the heap is full.
    limit: f64,
}

impl Gate {
    /// Sets the threshold `theta` (an f32 score). A vector's score is an f64 sum rounded to f32
    /// (to nearest), so an inflated bound `x` rules it out when `x` rounds below `theta`, which
    /// is certain when `x` is below the midpoint between `theta` and the f32 before it; when
    /// ties lose, rounding *to* `theta` is enough, which is certain below `theta` plus half the
    /// gap to the f32 before it (at most half the gap to the one after). These limits are
    /// exact in f64. An infinite threshold prunes nothing unless ties lose.
    fn set_theta(&mut self, theta: f32) {
        let (t, before) = (f64::from(theta), f64::from(theta.next_down()));
        self.limit = if !theta.is_finite() {
            if self.ties_lose && theta > 0.0 {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            }
        } else if !before.is_finite() {
            f64::NEG_INFINITY
        } else if self.ties_lose {
            t + (t - before) * 0.5
        } else {
            (before + t) * 0.5
        };
    }

    /// True when a vector whose score is at most `bound` cannot enter.
    #[inline]
    fn cannot_enter(self, bound: f64) -> bool {
        bound * self.slack < self.limit
    }
}

/// The state of one block-max MaxScore query.
///
/// The loop looks at the essential cursors' two smallest slots. When one cursor (the lead) is
/// alone below the others, its entries up to the next cursor's slot (and the end of its
/// block) are candidates only it holds among the essential terms: they are handled as a
/// batch ([`MaxScore::lead_batch`]). When several essential cursors share the smallest slot,
/// that slot is merged and completed on its own ([`MaxScore::merged`]). With one essential
/// term, the usual state for short queries once the heap is full, everything is batches.
struct MaxScore<'a, 'f> {
    index: &'a SparseIndex,
    gate: Gate,
    /// Cursors by ascending bound; `cur[..essential]` are the non-essential terms.
    cur: Vec<Cursor<'a>>,
    /// `ubp[i]`: the bounds of terms `0..=i` summed.
    ubp: Vec<f64>,
    theta: f32,
    top: TopK,
    essential: usize,
    /// Merged candidates up to this slot passed the region check under the current threshold.
    region_ok: Option<u32>,
    /// The current merged candidate's contributions `(query position, product)`.
    parts: Vec<(u32, f64)>,
    /// `block_pre[i]`: the block bounds of non-essential terms `0..=i` summed, for the current
    /// candidate or batch.
    block_pre: Vec<f64>,
    /// The current batch: `(slot, partial score, row of contrib)`.
    batch: Vec<(u32, f64, usize)>,
    /// Row `r` holds batch candidate `r`'s product for each query position (0 where absent,
    /// which leaves the ordered sum unchanged); empty when the query has more than
    /// [`BATCH_TERMS`] terms, whose batches are completed candidate by candidate.
    contrib: Vec<f64>,
    allow: Option<&'f dyn Fn(SeqNo) -> bool>,
    /// The query's terms (cursors are dropped as they run out; query positions stay below
    /// this).
    terms: usize,
}

impl MaxScore<'_, '_> {
    fn run(mut self) -> Vec<SparseHit> {
        while self.essential < self.cur.len() {
            // The smallest slot among the essential cursors (and whose it is), and the next.
            let (mut lead, mut d, mut d2) = (self.essential, END, END);
            for (i, c) in self.cur.iter().enumerate().skip(self.essential) {
                let doc = c.doc();
                if doc < d {
                    (lead, d2, d) = (i, d, doc);
                } else if doc < d2 {
                    d2 = doc;
                }
            }
            if d == END {
                break;
            }
            if d < d2 {
                self.lead_batch(lead, d2);
            } else {
                self.merged(d);
            }
        }
        self.top.into_hits()
    }

    /// Drops the cursors that ran out (they contribute nothing to later candidates, and their
    /// bounds would only loosen the others'), recomputing the bound sums and the partition.
    fn drop_exhausted(&mut self) {
        let ne = self.essential;
        let dropped_ne = self.cur[..ne].iter().filter(|c| c.doc() == END).count();
        self.cur.retain(|c| c.doc() != END);
        let mut acc = 0.0f64;
        self.ubp.clear();
        for c in &self.cur {
            acc += c.ub;
            self.ubp.push(acc);
        }
        // The remaining non-essential prefix still cannot enter (its bound sum only shrank);
        // extend it as far as the new sums allow.
        self.essential = ne - dropped_ne;
        while self.essential < self.cur.len() && self.gate.cannot_enter(self.ubp[self.essential]) {
            self.essential += 1;
        }
        self.region_ok = None;
    }

    /// The sum of the non-essential terms' bounds.
    #[inline]
    fn rest(&self) -> f64 {
        match self.essential {
            0 => 0.0,
            ne => self.ubp[ne - 1],
        }
    }

    /// Handles the lead cursor's entries below `limit` within its current block: no other
    /// essential term holds those slots. The block is skipped if its maximum cannot enter;
    /// otherwise the entries that can (and are live and allowed) form a batch, bounded by the
    /// non-essential terms' block maxima over its slot range, then probed term by term in
    /// descending bound order, galloping through each term's postings and dropping the
    /// candidates that fall out of reach; the survivors' contributions are summed in query
    /// order and offered to the heap.
    fn lead_batch(&mut self, lead: usize, limit: u32) {
        let rest = self.rest();
        let c = &mut self.cur[lead];
        let (q, qpos) = (c.q, c.qpos as usize);
        let Some((_, max)) = c.current_block() else {
            return;
        };
        let block = c.rest_of_block();
        // Usually the whole rest of the block (one essential term) or a few entries (terms
        // interleaving).
        let len = if block.last().is_some_and(|e| e.slot < limit) {
            block.len()
        } else {
            let near = block.iter().take(8).take_while(|e| e.slot < limit).count();
            if near < 8 {
                near
            } else {
                block.partition_point(|e| e.slot < limit)
            }
        };
        let chunk = &block[..len];
        c.skip(chunk.len());
        let ran_out = c.doc() == END;
        if !self.gate.cannot_enter(q * f64::from(max) + rest) {
            if self.contrib.is_empty() {
                self.each(chunk, q, qpos as u32, rest);
            } else {
                self.batch(chunk, q, qpos, rest);
            }
        }
        if ran_out {
            self.drop_exhausted();
        }
    }

    /// [`lead_batch`](Self::lead_batch)'s batch, for queries of at most [`BATCH_TERMS`] terms.
    fn batch(&mut self, chunk: &[Entry], q: f64, qpos: usize, rest: f64) {
        let terms = self.terms;
        let ne = self.essential;
        self.batch.clear();
        for entry in chunk {
            let p = q * f64::from(entry.value);
            if self.gate.cannot_enter(p + rest) || !self.index.live.get(entry.slot) {
                continue;
            }
            if let Some(f) = self.allow {
                if !f(self.index.slot_seq[entry.slot as usize]) {
                    continue;
                }
            }
            let row = self.batch.len();
            self.contrib[row * terms + qpos] = p;
            self.batch.push((entry.slot, p, row));
        }
        let rows = self.batch.len();
        if let (Some(&(lo, _, _)), Some(&(hi, _, _))) = (self.batch.first(), self.batch.last()) {
            if ne > 0 {
                let mut acc = 0.0f64;
                for (c, pre) in self.cur[..ne].iter_mut().zip(self.block_pre.iter_mut()) {
                    acc += c.q * f64::from(c.window_max(lo, hi));
                    *pre = acc;
                }
                let gate = self.gate;
                self.batch.retain(|&(_, p, _)| !gate.cannot_enter(p + acc));
            }
        }
        let gate = self.gate;
        for i in (0..ne).rev() {
            if self.batch.is_empty() {
                break;
            }
            let below = if i > 0 { self.block_pre[i - 1] } else { 0.0 };
            let c = &mut self.cur[i];
            let (cq, cpos) = (c.q, c.qpos as usize);
            let mut kept = 0;
            for b in 0..self.batch.len() {
                let (slot, mut score, row) = self.batch[b];
                c.gallop(slot);
                if c.doc() == slot {
                    let p = cq * f64::from(c.value());
                    score += p;
                    self.contrib[row * terms + cpos] = p;
                }
                if !gate.cannot_enter(score + below) {
                    self.batch[kept] = (slot, score, row);
                    kept += 1;
                }
            }
            self.batch.truncate(kept);
        }
        for b in 0..self.batch.len() {
            let (slot, _, row) = self.batch[b];
            let score = self.contrib[row * terms..(row + 1) * terms]
                .iter()
                .fold(0.0f64, |acc, &p| acc + p) as f32;
            self.offer(score, slot);
        }
        self.contrib[..rows * terms].fill(0.0);
    }

    /// [`lead_batch`](Self::lead_batch)'s entries completed one by one, for queries of more
    /// than [`BATCH_TERMS`] terms (a batch's rows would be as long as the query).
    fn each(&mut self, chunk: &[Entry], q: f64, qpos: u32, rest: f64) {
        for entry in chunk {
            let p = q * f64::from(entry.value);
            if self.gate.cannot_enter(p + rest) {
                continue;
            }
            self.parts.clear();
            self.parts.push((qpos, p));
            self.finish(entry.slot, p);
        }
    }

    /// Handles slot `d`, held by several essential cursors: first the region check, then the
    /// essential terms' products, then [`finish`](Self::finish).
    fn merged(&mut self, d: u32) {
        if self.theta > f32::NEG_INFINITY && self.region_ok.is_none_or(|r| d > r) {
            match self.region(d) {
                Some(end) => self.region_ok = Some(end),
                None => return,
            }
        }
        self.parts.clear();
        let mut score = 0.0f64;
        let mut ran_out = false;
        for c in &mut self.cur[self.essential..] {
            if c.doc() == d {
                let p = c.q * f64::from(c.value());
                score += p;
                self.parts.push((c.qpos, p));
                c.advance();
                ran_out |= c.doc() == END;
            }
        }
        self.finish(d, score);
        if ran_out {
            self.drop_exhausted();
        }
    }

    /// The region check at candidate `d`: the region runs from `d` to the end of the
    /// first-ending current block among the essential terms. Within it each essential term
    /// contributes at most its current block's maximum (its entries there are in that block),
    /// and nothing if its next entry lies beyond. `Some(end)` when a vector in the region may
    /// enter; otherwise every essential cursor skips the region.
    fn region(&mut self, d: u32) -> Option<u32> {
        let ess = self.essential;
        let end = self.cur[ess..]
            .iter()
            .filter_map(Cursor::current_block)
            .map(|(last, _)| last)
            .min()
            .unwrap_or(END);
        debug_assert!(end >= d && end < END);
        let mut bound = self.rest();
        for c in &self.cur[ess..] {
            if let Some((_, max)) = c.current_block() {
                if c.doc() <= end {
                    bound += c.q * f64::from(max);
                }
            }
        }
        if !self.gate.cannot_enter(bound) {
            return Some(end);
        }
        let mut ran_out = false;
        for c in &mut self.cur[ess..] {
            c.seek(end.saturating_add(1));
            ran_out |= c.doc() == END;
        }
        if ran_out {
            self.drop_exhausted();
        }
        None
    }

    /// Completes candidate `this`, whose essential terms gave `score` (their products are in
    /// `parts`): checks it is live, bounds its non-essential terms (globally, then by block),
    /// asks the filter, looks the non-essential terms up in descending bound order while it can
    /// still enter, and offers the canonical score to the heap.
    fn finish(&mut self, this: u32, mut score: f64) {
        let gate = self.gate;
        if !self.index.live.get(this) {
            return;
        }
        let ne = self.essential;
        if ne > 0 {
            if gate.cannot_enter(score + self.ubp[ne - 1]) {
                return;
            }
            let mut acc = 0.0f64;
            for (c, pre) in self.cur[..ne].iter_mut().zip(self.block_pre.iter_mut()) {
                acc += c.q * f64::from(c.shallow(this));
                *pre = acc;
            }
            if gate.cannot_enter(score + acc) {
                return;
            }
        }
        if let Some(f) = self.allow {
            if !f(self.index.slot_seq[this as usize]) {
                return;
            }
        }
        for i in (0..ne).rev() {
            let c = &mut self.cur[i];
            c.seek(this);
            if c.doc() == this {
                let p = c.q * f64::from(c.value());
                score += p;
                self.parts.push((c.qpos, p));
            }
            if i > 0 && gate.cannot_enter(score + self.block_pre[i - 1]) {
                return;
            }
        }
        let score = canonical(&mut self.parts);
        self.offer(score, this);
    }

    /// Offers a scored candidate to the heap; when it enters, updates the threshold and the
    /// partition.
    #[inline]
    fn offer(&mut self, score: f32, slot: u32) {
        if !self.top.push(score, self.index.slot_seq[slot as usize]) {
            return;
        }
        self.theta = self.top.threshold();
        self.gate.set_theta(self.theta);
        self.region_ok = None;
        while self.essential < self.cur.len() && self.gate.cannot_enter(self.ubp[self.essential]) {
            self.essential += 1;
        }
    }
}

/// The score of a stored vector for a query, both sorted by term: `None` when they share no
/// term.
fn merge_score(qi: &[u32], qv: &[f32], vi: &[u32], vv: &[f32]) -> Option<f32> {
    let (mut a, mut b) = (0, 0);
    let mut acc = 0.0f64;
    let mut shared = false;
    while a < qi.len() && b < vi.len() {
        match qi[a].cmp(&vi[b]) {
            Ordering::Less => a += 1,
            Ordering::Greater => b += 1,
            Ordering::Equal => {
                acc += f64::from(qv[a]) * f64::from(vv[b]);
                shared = true;
                a += 1;
                b += 1;
            }
        }
    }
    shared.then_some(acc as f32)
}
