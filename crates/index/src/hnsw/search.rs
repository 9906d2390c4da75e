//! Search: greedy descent through the upper layers, an int8-quantized beam search on layer 0,
//! exact re-ranking, and the exact scan for small or selective candidate sets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ochre_types::{SeqNo, Space};

use super::graph::Visited;
use super::quantize::quantize_to;
use super::{prefetch_row, HnswIndex};
use crate::flat::{Candidate, TopK};
use crate::Neighbor;

/// The quantized walk keeps `ef_search × 3/2` candidates: a step costs about half an f32 step,
/// so Ochre spends the saving on recall (0.98 at Chroma's defaults on real embeddings) and is
/// still faster than hnswlib at the same `ef_search`.
const BEAM_FACTOR_NUM: usize = 3;
const BEAM_FACTOR_DEN: usize = 2;

/// Below this many live vectors (or candidates) a scan is both exact and as fast as the graph.
pub const EXACT_SCAN_BELOW: usize = 2048;

/// A candidate set resolved to graph nodes (see [`HnswIndex::candidates`]).
#[derive(Debug, Clone)]
pub struct CandidateSet {
    nodes: Vec<u32>,
    /// Present when the set is large enough for a filtered traversal.
    bitmap: Option<Vec<u64>>,
}

impl CandidateSet {
    /// True when searches scan the set exactly.
    pub fn is_exact(&self) -> bool {
        self.bitmap.is_none()
    }
}

impl HnswIndex {
    /// Greedy descent on one layer from `ep`.
    pub(super) fn greedy(
        &self,
        dist: &impl Fn(u32) -> f32,
        mut ep: u32,
        mut d: f32,
        layer: usize,
    ) -> (u32, f32) {
        loop {
            let mut changed = false;
            let mut best = (ep, d);
            self.graph.for_neighbors(ep, layer, |nb| {
                let dn = dist(nb);
                if dn < best.1 {
                    best = (nb, dn);
                    changed = true;
                }
            });
            (ep, d) = best;
            if !changed {
                return (ep, d);
            }
        }
    }

    /// Beam search on one layer. Returns up to `ef` (distance, node) pairs, nearest first, among
    /// nodes accepted by `accept` (all nodes route the search).
    // The hot loop takes its inputs unbundled on purpose: no struct to build per call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn search_layer(
        &self,
        dist: &impl Fn(u32) -> f32,
        prefetch: &impl Fn(u32),
        entries: &[(f32, u32)],
        ef: usize,
        layer: usize,
        accept: &dyn Fn(u32) -> bool,
        visited: &mut Visited,
    ) -> Vec<(f32, u32)> {
        let mut candidates: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        let mut results: BinaryHeap<Candidate> = BinaryHeap::new();
        let mut batch: Vec<u32> = Vec::with_capacity(self.graph.m0);
        for &(d, n) in entries {
            if visited.insert(n) {
                candidates.push(Reverse(Candidate(d, SeqNo(n as u64))));
                if accept(n) {
                    results.push(Candidate(d, SeqNo(n as u64)));
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        while let Some(Reverse(Candidate(d, node))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| d > w.0) {
                break;
            }
            let node = node.0 as u32;
            // Gather the unvisited neighbours and prefetch their rows before computing any
            // distance, so the memory loads overlap.
            batch.clear();
            self.graph.for_neighbors(node, layer, |nb| {
                if visited.insert(nb) {
                    batch.push(nb);
                }
            });
            for &nb in &batch {
                prefetch(nb);
            }
            for &nb in &batch {
                let dn = dist(nb);
                let worst = results.peek().map_or(f32::INFINITY, |w| w.0);
                if results.len() < ef || dn < worst {
                    candidates.push(Reverse(Candidate(dn, SeqNo(nb as u64))));
                    if accept(nb) {
                        results.push(Candidate(dn, SeqNo(nb as u64)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        results
            .into_sorted_vec()
            .into_iter()
            .map(|Candidate(d, n)| (d, n.0 as u32))
            .collect()
    }

    /// The `k` nearest of `nodes` by exact distance.
    fn exact(
        &self,
        q: &[f32],
        q_inv: f32,
        k: usize,
        nodes: impl Iterator<Item = u32>,
    ) -> Vec<Neighbor> {
        let nodes: Vec<u32> = nodes.collect();
        let mut top = TopK::new(k);
        for (i, &n) in nodes.iter().enumerate() {
            if let Some(&ahead) = nodes.get(i + 2) {
                prefetch_row(self.rows.all(), ahead as usize * self.dim, self.dim);
            }
            top.push(self.dist_q(q, q_inv, n), self.nodes.seq[n as usize]);
        }
        top.into_sorted()
    }

    /// The graph walk: quantized descent and beam, then exact re-ranking of what the beam kept.
    fn traverse(
        &self,
        q: &[f32],
        q_inv: f32,
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Neighbor> {
        let (entry, max_level) = self.graph.top();
        let Some(mut ep) = entry else {
            return Vec::new();
        };
        let mut codes = vec![0i8; q.len()];
        let q_scale = quantize_to(q, &mut codes);
        let q_norm2 = self.kernels.dot(q, q);
        let approx = |n: u32| {
            let dot = self.kernels.dot_i8(&codes, self.codes.row(n, self.dim)) as f32
                * q_scale
                * self.codes.scale(n);
            match self.space {
                Space::L2 => q_norm2 + self.rows.norm2(n) - 2.0 * dot,
                Space::Ip => 1.0 - dot,
                Space::Cosine => 1.0 - dot * q_inv * self.rows.inv_norm(n),
            }
        };
        let mut d = approx(ep);
        for layer in (1..=max_level).rev() {
            (ep, d) = self.greedy(&approx, ep, d, layer);
        }
        let mut visited = self.visited.take(self.nodes.len());
        let found = self.search_layer(
            &approx,
            &|n| prefetch_row(self.codes.all(), n as usize * self.dim, self.dim),
            &[(d, ep)],
            self.beam(k),
            0,
            accept,
            &mut visited,
        );
        self.visited.give(visited);
        // Re-rank everything the walk kept with exact distances, loading rows ahead.
        let mut top = TopK::new(k);
        for (i, &(_, n)) in found.iter().enumerate() {
            if let Some(&(_, ahead)) = found.get(i + 2) {
                prefetch_row(self.rows.all(), ahead as usize * self.dim, self.dim);
            }
            top.push(self.dist_q(q, q_inv, n), self.nodes.seq[n as usize]);
        }
        top.into_sorted()
    }

    /// The beam of a layer-0 walk for `k` results. Tombstones fill neighbour lists without
    /// ever being results, so the beam widens with their share: the walk keeps as many live
    /// candidates as it would in a graph without them.
    fn beam(&self, k: usize) -> usize {
        let base = (self.knobs.ef_search * BEAM_FACTOR_NUM / BEAM_FACTOR_DEN).max(k);
        let (nodes, live) = (self.nodes.len(), self.nodes.live().max(1));
        if nodes == live {
            return base;
        }
        // base × (nodes / live)³: a sixth of tombstones (where a rebuild starts) widens it by
        // 1.7×.
        let (n, l) = (nodes as u128, live as u128);
        let widened = base as u128 * n * n * n / (l * l * l);
        usize::try_from(widened).unwrap_or(usize::MAX).min(base * 2)
    }

    /// The `k` nearest live vectors.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<Neighbor> {
        if k == 0 || q.len() != self.dim || self.is_empty() {
            return Vec::new();
        }
        let q_inv = self.inv_norm(q);
        let live = |n: u32| !self.nodes.deleted[n as usize];
        let all = || (0..self.nodes() as u32).filter(|&n| live(n));
        // While links are deferred the graph does not reach every node: scan.
        if self.len() < EXACT_SCAN_BELOW || self.has_unlinked() {
            return self.exact(q, q_inv, k, all());
        }
        let found = self.traverse(q, q_inv, k, &live);
        if found.len() < k.min(self.len()) {
            return self.exact(q, q_inv, k, all());
        }
        found
    }

    /// Resolves a candidate set once, for any number of searches.
    ///
    /// Sets below a quarter of the live vectors (or [`EXACT_SCAN_BELOW`]) are scanned exactly:
    /// a filtered traversal has to visit about `1 / selectivity` times more nodes than an
    /// unfiltered one, so below that share a scan is both cheaper and exact.
    pub fn candidates(&self, seqs: &[SeqNo]) -> CandidateSet {
        let nodes: Vec<u32> = seqs
            .iter()
            .filter_map(|s| self.nodes.by_seq.get(s).copied())
            .collect();
        let bitmap = if nodes.len() < EXACT_SCAN_BELOW
            || nodes.len() * 4 < self.len()
            || self.has_unlinked()
        {
            None
        } else {
            let mut bitmap = vec![0u64; self.nodes().div_ceil(64)];
            for &n in &nodes {
                bitmap[n as usize / 64] |= 1 << (n % 64);
            }
            Some(bitmap)
        };
        CandidateSet { nodes, bitmap }
    }

    /// The `k` nearest among a prepared candidate set (see [`HnswIndex::candidates`]); a filtered
    /// traversal that comes up short falls back to the exact scan.
    pub fn search_candidates(&self, q: &[f32], k: usize, c: &CandidateSet) -> Vec<Neighbor> {
        if k == 0 || q.len() != self.dim {
            return Vec::new();
        }
        let q_inv = self.inv_norm(q);
        let Some(bitmap) = &c.bitmap else {
            return self.exact(q, q_inv, k, c.nodes.iter().copied());
        };
        let accept = |n: u32| bitmap[n as usize / 64] & (1 << (n % 64)) != 0;
        let found = self.traverse(q, q_inv, k, &accept);
        if found.len() < k.min(c.nodes.len()) {
            return self.exact(q, q_inv, k, c.nodes.iter().copied());
        }
        found
    }

    /// The `k` nearest among the live vectors of `candidates`.
    pub fn search_among(&self, q: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor> {
        self.search_candidates(q, k, &self.candidates(candidates))
    }
}
