//! Top-k queries: block-max MaxScore for non-negative queries, exhaustive term-at-a-time
//! accumulation otherwise, and the direct scan of a candidate set. The module documentation of
//! [`super`] describes the algorithms and the scoring rule all three follow.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ochre_types::SeqNo;

use super::postings::{prunable, Cursor, Postings, END};
use super::{normalized, SparseHit, SparseIndex};

/// A query term the index holds.
struct QueryTerm<'a> {
    postings: &'a Postings,
    q: f32,
    /// Its position in the query's ascending term order.
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
            heap: BinaryHeap::with_capacity(k + 1),
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
            .enumerate()
            .filter_map(|(pos, (&t, &q))| {
                self.postings(t).map(|postings| QueryTerm {
                    postings,
                    q,
                    qpos: pos as u32,
                })
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
        // ubp[i]: the bounds of terms 0..=i summed.
        let ubp: Vec<f64> = cur
            .iter()
            .scan(0.0f64, |acc, c| {
                *acc += c.ub;
                Some(*acc)
            })
            .collect();
        // Sums of up to n + 1 non-negative terms in different orders differ by less than
        // (n + 1) ulps of the total; a bound inflated by more than that stays above the score.
        let slack = 1.0 + 4.0 * (n as f64 + 2.0) * f64::EPSILON;
        let ties_lose = self.ordered;
        // True when a vector whose score is at most `bound` cannot enter.
        let cannot_enter = |bound: f64, theta: f32| -> bool {
            let b = (bound * slack) as f32;
            b < theta || (ties_lose && b <= theta)
        };
        let mut top = TopK::new(k);
        let mut theta = f32::NEG_INFINITY;
        // Terms 0..essential are non-essential.
        let mut essential = 0usize;
        let mut parts: Vec<(u32, f64)> = Vec::with_capacity(n);
        let mut block_pre = vec![0.0f64; n];
        let mut d = cur.iter().map(Cursor::doc).min().unwrap_or(END);
        while d != END {
            let this = d;
            parts.clear();
            let mut score = 0.0f64;
            let mut next = END;
            for c in &mut cur[essential..] {
                if c.doc() == this {
                    let p = c.q * f64::from(c.value());
                    score += p;
                    parts.push((c.qpos, p));
                    c.advance();
                }
                next = next.min(c.doc());
            }
            d = next;
            if !self.live.get(this) {
                continue;
            }
            if essential > 0 {
                if cannot_enter(score + ubp[essential - 1], theta) {
                    continue;
                }
                let mut acc = 0.0f64;
                for (c, pre) in cur[..essential].iter_mut().zip(block_pre.iter_mut()) {
                    acc += c.q * f64::from(c.shallow(this));
                    *pre = acc;
                }
                if cannot_enter(score + acc, theta) {
                    continue;
                }
            }
            let seq = self.slot_seq[this as usize];
            if allow.is_some_and(|f| !f(seq)) {
                continue;
            }
            let mut lost = false;
            for i in (0..essential).rev() {
                let c = &mut cur[i];
                c.seek(this);
                if c.doc() == this {
                    let p = c.q * f64::from(c.value());
                    score += p;
                    parts.push((c.qpos, p));
                }
                if i > 0 && cannot_enter(score + block_pre[i - 1], theta) {
                    lost = true;
                    break;
                }
            }
            if lost {
                continue;
            }
            if top.push(canonical(&mut parts), seq) {
                theta = top.threshold();
                while essential < n && cannot_enter(ubp[essential], theta) {
                    essential += 1;
                }
                if essential == n {
                    break;
                }
            }
        }
        top.into_hits()
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
