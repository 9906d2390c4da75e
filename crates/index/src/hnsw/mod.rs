//! Hierarchical navigable small-world graph (Malkov & Yashunin, 2016), Ochre's own.
//!
//! Layout: vectors in one contiguous arena indexed by node id; layer-0 adjacency in one flat array
//! (`m0 + 1` slots per node: count, then neighbour ids) so a search walks memory it can prefetch;
//! upper layers (few nodes) in the same slot layout, per node. List slots are atomics: searches
//! read them without locks, and inserters lock only the node whose lists they rewrite. Neighbour
//! selection uses the paper's heuristic (keep a candidate only if it is closer to the new node
//! than to every neighbour kept so far), which is what keeps recall high on clustered real
//! embeddings.
//!
//! Deletes are tombstones: a deleted node still routes searches but is never returned. When
//! tombstones pass a quarter of the nodes the owner rebuilds the graph from the live vectors
//! ([`HnswIndex::needs_rebuild`], [`HnswIndex::rebuilt`]), which also reclaims their memory.
//!
//! Filtered search: small candidate sets are scanned exactly; larger ones use a bitmap over node
//! ids during traversal, and if the traversal finds fewer than `min(k, candidates)` results the
//! search falls back to the exact scan, so a filter never shrinks the answer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use parking_lot::Mutex as NodeLock;
use rustc_hash::FxHashMap;

use ochre_types::{SeqNo, Space};

use crate::distance::Kernels;
use crate::flat::{Candidate, TopK};
use crate::Neighbor;

pub mod format;

/// Node id inside one graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// Graph parameters (Chroma's names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Neighbours per node on upper layers; layer 0 keeps `2 * m`.
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Seed of the level generator (fixed for reproducible graphs).
    pub seed: u64,
    /// Threads for batch insertion and rebuilds (Chroma's `num_threads`).
    pub threads: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 100,
            ef_search: 100,
            seed: 0x5eed,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The quantized walk keeps `ef_search × 3/2` candidates: a step costs about half an f32 step,
/// so Ochre spends the saving on recall (0.98 at Chroma's defaults on real embeddings) and is
/// still faster than hnswlib at the same `ef_search`.
const BEAM_FACTOR_NUM: usize = 3;
const BEAM_FACTOR_DEN: usize = 2;

/// Below this many live vectors (or candidates) a scan is both exact and as fast as the graph.
pub const EXACT_SCAN_BELOW: usize = 2048;

/// Generation-stamped visited set, reused across searches.
struct Visited {
    marks: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Visited {
            marks: vec![0; n],
            generation: 1,
        }
    }

    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.generation = 1;
        }
    }

    /// Marks `i`; true if it was not yet visited.
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let slot = &mut self.marks[i as usize];
        if *slot == self.generation {
            false
        } else {
            *slot = self.generation;
            true
        }
    }
}

/// An HNSW index over vectors of one dimension.
pub struct HnswIndex {
    space: Space,
    dim: usize,
    params: HnswParams,
    kernels: Kernels,
    m0: usize,
    level_mult: f64,
    rng: u64,
    vectors: Vec<f32>,
    /// `1 / (‖v‖ + 1e-32)` per node (cosine only; 1.0 otherwise).
    inv_norms: Vec<f32>,
    /// int8 codes of the vectors (`round(v / scale)`), walked by searches; exact f32 distances
    /// re-rank what the walk found.
    codes: Vec<i8>,
    /// Per node: the code scale (`max |v_i| / 127`).
    scales: Vec<f32>,
    /// Per node: `‖v‖²` (exact), for approximate L2 from an approximate dot product.
    norms2: Vec<f32>,
    node_seq: Vec<SeqNo>,
    /// Sequence numbers are ours, not a client's, so a fast integer hash is safe.
    seq_node: FxHashMap<SeqNo, NodeId>,
    deleted: Vec<bool>,
    n_deleted: usize,
    levels: Vec<u8>,
    /// `(m0 + 1)` slots per node: count, then ids. Atomics so parallel insertion can update
    /// lists while other inserters read them; a torn read only yields a slightly stale list.
    layer0: Vec<AtomicU32>,
    /// Lists on layers 1..=level, `(m + 1)` slots per list like `layer0`; node `n`'s lists start
    /// at `upper_off[n]`. Searches read every list without taking a lock.
    upper: Vec<AtomicU32>,
    upper_off: Vec<u32>,
    /// Per node, the lock its list writers hold.
    locks: Vec<NodeLock<()>>,
    /// Entry node and top level.
    top: NodeLock<(Option<NodeId>, usize)>,
    /// Nodes at the last orphan repair.
    repaired_at: usize,
    visited: Mutex<Vec<Visited>>,
}

impl Clone for HnswIndex {
    fn clone(&self) -> Self {
        HnswIndex {
            space: self.space,
            dim: self.dim,
            params: self.params,
            kernels: self.kernels,
            m0: self.m0,
            level_mult: self.level_mult,
            rng: self.rng,
            vectors: self.vectors.clone(),
            inv_norms: self.inv_norms.clone(),
            codes: self.codes.clone(),
            scales: self.scales.clone(),
            norms2: self.norms2.clone(),
            node_seq: self.node_seq.clone(),
            seq_node: self.seq_node.clone(),
            deleted: self.deleted.clone(),
            n_deleted: self.n_deleted,
            levels: self.levels.clone(),
            layer0: self
                .layer0
                .iter()
                .map(|a| AtomicU32::new(a.load(Relaxed)))
                .collect(),
            upper: self
                .upper
                .iter()
                .map(|a| AtomicU32::new(a.load(Relaxed)))
                .collect(),
            upper_off: self.upper_off.clone(),
            locks: self.locks.iter().map(|_| NodeLock::new(())).collect(),
            top: NodeLock::new(*self.top.lock()),
            repaired_at: self.repaired_at,
            visited: Mutex::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("space", &self.space)
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("nodes", &self.node_seq.len())
            .field("deleted", &self.n_deleted)
            .finish()
    }
}

impl HnswIndex {
    /// An empty graph.
    pub fn new(space: Space, dim: usize, params: HnswParams) -> Self {
        let m = params.m.max(2);
        HnswIndex {
            space,
            dim,
            params: HnswParams { m, ..params },
            kernels: Kernels::detect(),
            m0: 2 * m,
            level_mult: 1.0 / (m as f64).ln(),
            rng: params.seed | 1,
            vectors: Vec::new(),
            inv_norms: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            norms2: Vec::new(),
            node_seq: Vec::new(),
            seq_node: FxHashMap::default(),
            deleted: Vec::new(),
            n_deleted: 0,
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            upper_off: Vec::new(),
            locks: Vec::new(),
            top: NodeLock::new((None, 0)),
            repaired_at: 0,
            visited: Mutex::new(Vec::new()),
        }
    }

    /// The parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the number of threads used by batch insertion and rebuilds.
    pub fn set_threads(&mut self, threads: usize) {
        self.params.threads = threads.max(1);
    }

    /// Changes the query-time beam width.
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// The distance space.
    pub fn space(&self) -> Space {
        self.space
    }

    /// The vector dimension.
    pub fn dimension(&self) -> usize {
        self.dim
    }

    /// Live (not deleted) vectors.
    pub fn len(&self) -> usize {
        self.node_seq.len() - self.n_deleted
    }

    /// True when no live vector is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence numbers of the live vectors.
    pub fn seqs(&self) -> impl Iterator<Item = SeqNo> + '_ {
        self.node_seq
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| !**d)
            .map(|(s, _)| *s)
    }

    /// Nodes including tombstones.
    pub fn nodes(&self) -> usize {
        self.node_seq.len()
    }

    /// True when tombstones have grown past a quarter of the graph.
    pub fn needs_rebuild(&self) -> bool {
        self.n_deleted > 64 && self.n_deleted * 4 > self.node_seq.len()
    }

    /// A fresh graph holding only the live vectors (reclaims tombstones).
    pub fn rebuilt(&self, threads: usize) -> HnswIndex {
        let mut fresh = HnswIndex::new(self.space, self.dim, self.params);
        let live: Vec<(SeqNo, &[f32])> = self
            .node_seq
            .iter()
            .enumerate()
            .filter(|(n, _)| !self.deleted[*n])
            .map(|(n, seq)| (*seq, self.vector(n as u32)))
            .collect();
        fresh.insert_batch(&live, threads);
        fresh
    }

    #[inline]
    fn vector(&self, n: u32) -> &[f32] {
        let s = n as usize * self.dim;
        &self.vectors[s..s + self.dim]
    }

    /// `n`'s list on `layer`: a count slot, then the capacity's id slots.
    #[inline]
    fn slots(&self, n: u32, layer: usize) -> &[AtomicU32] {
        if layer == 0 {
            let s = n as usize * (self.m0 + 1);
            &self.layer0[s..s + self.m0 + 1]
        } else if layer <= self.levels[n as usize] as usize {
            let m = self.params.m;
            let s = self.upper_off[n as usize] as usize + (layer - 1) * (m + 1);
            &self.upper[s..s + m + 1]
        } else {
            &[]
        }
    }

    /// Calls `f` for each neighbour of `n` on `layer`. Lock-free: a list being rewritten
    /// concurrently reads as a mix of its old and new ids, all valid nodes.
    #[inline]
    fn for_neighbors(&self, n: u32, layer: usize, mut f: impl FnMut(u32)) {
        let slots = self.slots(n, layer);
        let Some((count, ids)) = slots.split_first() else {
            return;
        };
        let count = (count.load(Relaxed) as usize).min(ids.len());
        for slot in &ids[..count] {
            f(slot.load(Relaxed));
        }
    }

    /// A copy of `n`'s list on `layer`.
    pub(crate) fn list(&self, n: u32, layer: usize) -> Vec<u32> {
        let mut out = Vec::new();
        self.for_neighbors(n, layer, |x| out.push(x));
        out
    }

    /// Replaces `n`'s list on `layer`; the caller holds `n`'s lock.
    fn set_list(&self, n: u32, layer: usize, list: &[u32]) {
        let slots = self.slots(n, layer);
        let Some((count, ids)) = slots.split_first() else {
            return;
        };
        let len = list.len().min(ids.len());
        for (slot, &x) in ids.iter().zip(&list[..len]) {
            slot.store(x, Relaxed);
        }
        count.store(len as u32, Relaxed);
    }

    /// Distance from a prepared query to node `n`.
    #[inline]
    fn dist_q(&self, q: &[f32], q_inv: f32, n: u32) -> f32 {
        let v = self.vector(n);
        match self.space {
            Space::L2 => self.kernels.l2_squared(q, v),
            Space::Ip => 1.0 - self.kernels.dot(q, v),
            Space::Cosine => 1.0 - self.kernels.dot(q, v) * q_inv * self.inv_norms[n as usize],
        }
    }

    #[inline]
    fn dist_nodes(&self, a: u32, b: u32) -> f32 {
        self.dist_q(self.vector(a), self.inv_norms[a as usize], b)
    }

    fn inv_norm(&self, v: &[f32]) -> f32 {
        match self.space {
            Space::Cosine => 1.0 / (self.kernels.norm(v) + 1e-32),
            Space::L2 | Space::Ip => 1.0,
        }
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*: deterministic per seed, good enough for level assignment.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let u = ((r >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-u.ln() * self.level_mult) as usize).min(31)
    }

    fn take_visited(&self) -> Visited {
        let n = self.node_seq.len();
        let mut v = self
            .visited
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_else(|| Visited::new(n));
        v.reset(n);
        v
    }

    fn give_visited(&self, v: Visited) {
        if let Ok(mut pool) = self.visited.lock() {
            if pool.len() < 16 {
                pool.push(v);
            }
        }
    }

    /// Greedy descent on one layer from `ep`.
    fn greedy(
        &self,
        dist: &impl Fn(u32) -> f32,
        mut ep: u32,
        mut d: f32,
        layer: usize,
    ) -> (u32, f32) {
        loop {
            let mut changed = false;
            let mut best = (ep, d);
            self.for_neighbors(ep, layer, |nb| {
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
    fn search_layer(
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
        let mut batch: Vec<u32> = Vec::with_capacity(self.m0);
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
            self.for_neighbors(node, layer, |nb| {
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

    /// The paper's neighbour-selection heuristic over candidates sorted nearest first.
    fn select(&self, candidates: &[(f32, u32)], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for &(d, c) in candidates {
            if kept.len() >= m {
                break;
            }
            if kept.iter().all(|&k| self.dist_nodes(c, k) > d) {
                kept.push(c);
            }
        }
        kept
    }

    /// Stores (or replaces) the vector of `seq`.
    ///
    /// # Panics
    /// When `vector` does not have the index dimension (callers validate first).
    pub fn insert(&mut self, seq: SeqNo, vector: &[f32]) {
        let node = self.push_node(seq, vector);
        self.connect(node);
    }

    /// Stores many vectors, linking them into the graph on `threads` threads.
    ///
    /// Parallel insertion follows hnswlib's scheme: each node's lists are guarded by its own lock,
    /// readers see lists through atomics, so inserters only wait for each other on the few nodes
    /// they both update.
    ///
    /// # Panics
    /// When a vector does not have the index dimension (callers validate first).
    pub fn insert_batch(&mut self, items: &[(SeqNo, &[f32])], threads: usize) {
        let first = self.node_seq.len() as u32;
        for (seq, v) in items {
            self.push_node(*seq, v);
        }
        let last = self.node_seq.len() as u32;
        let mut next = first;
        // Seed the graph sequentially so parallel inserters always have somewhere to start.
        while next < last && (next as usize) < 256 {
            self.connect(next);
            next += 1;
        }
        if threads <= 1 || last - next < 64 {
            for n in next..last {
                self.connect(n);
            }
            self.maybe_repair();
            return;
        }
        let counter = AtomicUsize::new(next as usize);
        let this = &*self;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let n = counter.fetch_add(1, Relaxed);
                    if n >= last as usize {
                        break;
                    }
                    this.connect(n as u32);
                });
            }
        });
        self.maybe_repair();
    }

    /// Runs [`HnswIndex::repair_orphans`] once the graph has grown by a tenth (at least 1024
    /// nodes) since the last run, so its cost (a pass over every edge) stays a small constant
    /// share of insertion however the writes are batched. (Smaller graphs are never walked:
    /// searches scan below [`EXACT_SCAN_BELOW`] vectors.)
    fn maybe_repair(&mut self) {
        let n = self.node_seq.len();
        if n >= self.repaired_at + (self.repaired_at / 10).max(1024) {
            self.repair_orphans();
            self.repaired_at = n;
        }
    }

    /// Makes every live vector findable after a batch of insertions.
    ///
    /// Pruning by later insertions (and races between parallel inserters) can take away a node's
    /// last incoming layer-0 edges — sometimes of a whole group of nodes, cutting it off from the
    /// entry point — or leave a node a single edge from far away that a search reaching its
    /// neighbourhood never follows. A walk from the entry point finds the cut-off nodes; those and
    /// the weakly linked ones (at most one incoming edge) are searched for with their own vector,
    /// and a node the search misses is linked from where the search ended (else from its nearest
    /// reachable neighbour), replacing that node's farthest link among nodes that keep another
    /// incoming edge. Costs one pass over the edges, and a search per repaired node.
    fn repair_orphans(&mut self) {
        let n = self.node_seq.len();
        let Some(entry) = self.top.lock().0.map(|e| e.0) else {
            return;
        };
        let mut indeg = vec![0u32; n];
        for a in 0..n as u32 {
            self.for_neighbors(a, 0, |b| {
                if let Some(d) = indeg.get_mut(b as usize) {
                    *d += 1;
                }
            });
        }
        let mut reached = vec![false; n];
        self.mark_reachable(entry, &mut reached);
        for u in 0..n as u32 {
            let i = u as usize;
            if self.deleted[i] || u == entry || (reached[i] && indeg[i] > 1) {
                continue;
            }
            let seq = self.node_seq[i];
            let found = self.search(self.vector(u), 2);
            if reached[i] && found.iter().any(|f| f.seq == seq) {
                continue;
            }
            let mut near: Vec<(f32, u32)> = self
                .list(u, 0)
                .into_iter()
                .filter(|&v| v != u && reached[v as usize])
                .map(|v| (self.dist_nodes(u, v), v))
                .collect();
            near.sort_by(|a, b| a.0.total_cmp(&b.0));
            let landed = found
                .iter()
                .filter_map(|f| self.seq_node.get(&f.seq).map(|n| (f.distance, n.0)))
                .filter(|&(_, v)| v != u && reached[v as usize]);
            for (_, v) in landed.chain(near) {
                let mut list = self.list(v, 0);
                if list.contains(&u) {
                    break;
                }
                if list.len() < self.m0 {
                    list.push(u);
                } else {
                    let victim = list
                        .iter()
                        .enumerate()
                        .filter(|(_, &w)| indeg[w as usize] > 1)
                        .map(|(i, &w)| (self.dist_nodes(v, w), i))
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    let Some((_, k)) = victim else {
                        continue;
                    };
                    indeg[list[k] as usize] -= 1;
                    list[k] = u;
                }
                self.set_list(v, 0, &list);
                indeg[i] += 1;
                break;
            }
            if !reached[i] {
                self.mark_reachable(u, &mut reached);
            }
        }
    }

    /// Marks every node reachable from `from` on layer 0.
    fn mark_reachable(&self, from: u32, reached: &mut [bool]) {
        let mut stack = vec![from];
        reached[from as usize] = true;
        while let Some(a) = stack.pop() {
            self.for_neighbors(a, 0, |b| {
                if let Some(r) = reached.get_mut(b as usize) {
                    if !*r {
                        *r = true;
                        stack.push(b);
                    }
                }
            });
        }
    }

    /// Appends a node (vector, level, empty lists) without linking it.
    fn push_node(&mut self, seq: SeqNo, vector: &[f32]) -> u32 {
        assert_eq!(vector.len(), self.dim, "dimension checked by the caller");
        self.remove(seq);
        let node = self.node_seq.len() as u32;
        let level = self.random_level();
        let (vcap, ccap) = (self.vectors.capacity(), self.codes.capacity());
        self.vectors.extend_from_slice(vector);
        let inv = self.inv_norm(vector);
        self.inv_norms.push(inv);
        let scale = quantize_into(vector, &mut self.codes);
        if self.vectors.capacity() != vcap {
            crate::memory::advise_huge(&mut self.vectors);
        }
        if self.codes.capacity() != ccap {
            crate::memory::advise_huge(&mut self.codes);
        }
        self.scales.push(scale);
        self.norms2.push(self.kernels.dot(vector, vector));
        self.node_seq.push(seq);
        self.seq_node.insert(seq, NodeId(node));
        self.deleted.push(false);
        self.levels.push(level as u8);
        self.layer0.extend((0..=self.m0).map(|_| AtomicU32::new(0)));
        self.upper_off.push(self.upper.len() as u32);
        self.upper
            .extend((0..level * (self.params.m + 1)).map(|_| AtomicU32::new(0)));
        self.locks.push(NodeLock::new(()));
        node
    }

    /// Links an appended node into the graph. Safe to run for different nodes concurrently.
    fn connect(&self, node: u32) {
        let level = self.levels[node as usize] as usize;
        let (entry, max_level) = {
            let mut top = self.top.lock();
            match top.0 {
                None => {
                    *top = (Some(NodeId(node)), level);
                    return;
                }
                Some(e) => (e.0, top.1),
            }
        };
        if entry == node {
            return;
        }
        let q = self.vector(node);
        let inv = self.inv_norms[node as usize];
        let dist = |n: u32| self.dist_q(q, inv, n);
        let mut ep = entry;
        let mut d = dist(ep);
        for layer in (level + 1..=max_level).rev() {
            (ep, d) = self.greedy(&dist, ep, d, layer);
        }
        // First the node's own lists on every layer, then the links to it: other inserters can
        // reach the node only through those links, so they never see (and never link into) a
        // node whose lower-layer lists are not written yet.
        let mut entries = vec![(d, ep)];
        let mut visited = self.take_visited();
        let mut plan: Vec<(usize, Vec<u32>)> = Vec::new();
        for layer in (0..=level.min(max_level)).rev() {
            visited.reset(self.node_seq.len());
            let found = self.search_layer(
                &dist,
                &|n| prefetch_row(&self.vectors, n as usize * self.dim, self.dim.min(64)),
                &entries,
                self.params.ef_construction.max(self.params.m),
                layer,
                &|_| true,
                &mut visited,
            );
            let found: Vec<(f32, u32)> = found.into_iter().filter(|&(_, n)| n != node).collect();
            let chosen = self.select(&found, self.params.m);
            {
                let _own = self.locks[node as usize].lock();
                self.set_list(node, layer, &chosen);
            }
            plan.push((layer, chosen));
            if !found.is_empty() {
                entries = found;
            }
        }
        self.give_visited(visited);
        for (layer, chosen) in plan {
            let max = if layer == 0 { self.m0 } else { self.params.m };
            let mut reachable = false;
            for &nb in &chosen {
                reachable |= self.link(nb, node, layer, max);
            }
            if !reachable {
                // Every neighbour pruned the new node away (it is an outlier): force one
                // incoming edge, replacing the nearest neighbour's farthest link, so the node can
                // always be found.
                if let Some(&nb) = chosen.first() {
                    self.force_link(nb, node, layer);
                }
            }
        }
        if level > max_level {
            let mut top = self.top.lock();
            if level > top.1 {
                *top = (Some(NodeId(node)), level);
            }
        }
    }

    /// Replaces the farthest link of `node` with `new`.
    fn force_link(&self, node: u32, new: u32, layer: usize) {
        let _lock = self.locks[node as usize].lock();
        let mut list = self.list(node, layer);
        if list.contains(&new) {
            return;
        }
        let farthest = list
            .iter()
            .enumerate()
            .map(|(i, &c)| (self.dist_nodes(node, c), i))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, i)| i);
        match farthest {
            Some(i) => list[i] = new,
            None => list.push(new),
        }
        self.set_list(node, layer, &list);
    }

    /// Adds `new` to `node`'s list on `layer`, shrinking with the heuristic when full. Returns
    /// whether `new` is in the list afterwards.
    fn link(&self, node: u32, new: u32, layer: usize, max: usize) -> bool {
        let _lock = self.locks[node as usize].lock();
        let current = self.list(node, layer);
        if current.contains(&new) {
            return true;
        }
        if current.len() < max {
            let mut list = current;
            list.push(new);
            self.set_list(node, layer, &list);
            return true;
        }
        let mut cands: Vec<(f32, u32)> = current
            .iter()
            .chain(std::iter::once(&new))
            .map(|&c| (self.dist_nodes(node, c), c))
            .collect();
        cands.sort_by(|a, b| a.0.total_cmp(&b.0));
        let kept = self.select(&cands, max);
        let linked = kept.contains(&new);
        self.set_list(node, layer, &kept);
        linked
    }

    /// Tombstones the vector of `seq`; absent sequence numbers are ignored.
    pub fn remove(&mut self, seq: SeqNo) {
        if let Some(NodeId(n)) = self.seq_node.remove(&seq) {
            self.deleted[n as usize] = true;
            self.n_deleted += 1;
        }
    }

    /// The stored vector of `seq`.
    pub fn get(&self, seq: SeqNo) -> Option<&[f32]> {
        self.seq_node.get(&seq).map(|n| self.vector(n.0))
    }

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
                prefetch_row(&self.vectors, ahead as usize * self.dim, self.dim);
            }
            top.push(self.dist_q(q, q_inv, n), self.node_seq[n as usize]);
        }
        top.into_sorted()
    }

    fn traverse(
        &self,
        q: &[f32],
        q_inv: f32,
        k: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Neighbor> {
        let (entry, max_level) = *self.top.lock();
        let Some(NodeId(mut ep)) = entry else {
            return Vec::new();
        };
        let mut codes = Vec::with_capacity(self.dim);
        let q_scale = quantize_into(q, &mut codes);
        let q_norm2 = self.kernels.dot(q, q);
        let approx = |n: u32| {
            let s = n as usize * self.dim;
            let dot = self.kernels.dot_i8(&codes, &self.codes[s..s + self.dim]) as f32
                * q_scale
                * self.scales[n as usize];
            match self.space {
                Space::L2 => q_norm2 + self.norms2[n as usize] - 2.0 * dot,
                Space::Ip => 1.0 - dot,
                Space::Cosine => 1.0 - dot * q_inv * self.inv_norms[n as usize],
            }
        };
        let mut d = approx(ep);
        for layer in (1..=max_level).rev() {
            (ep, d) = self.greedy(&approx, ep, d, layer);
        }
        let mut visited = self.take_visited();
        let found = self.search_layer(
            &approx,
            &|n| prefetch_row(&self.codes, n as usize * self.dim, self.dim),
            &[(d, ep)],
            (self.params.ef_search * BEAM_FACTOR_NUM / BEAM_FACTOR_DEN).max(k),
            0,
            accept,
            &mut visited,
        );
        self.give_visited(visited);
        // Re-rank everything the walk kept with exact distances, loading rows ahead.
        let mut top = TopK::new(k);
        for (i, &(_, n)) in found.iter().enumerate() {
            if let Some(&(_, ahead)) = found.get(i + 2) {
                prefetch_row(&self.vectors, ahead as usize * self.dim, self.dim);
            }
            top.push(self.dist_q(q, q_inv, n), self.node_seq[n as usize]);
        }
        top.into_sorted()
    }

    /// The `k` nearest live vectors.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<Neighbor> {
        if k == 0 || q.len() != self.dim || self.is_empty() {
            return Vec::new();
        }
        let q_inv = self.inv_norm(q);
        let live = |n: u32| !self.deleted[n as usize];
        if self.len() < EXACT_SCAN_BELOW {
            return self.exact(q, q_inv, k, (0..self.nodes() as u32).filter(|&n| live(n)));
        }
        let found = self.traverse(q, q_inv, k, &live);
        if found.len() < k.min(self.len()) {
            return self.exact(q, q_inv, k, (0..self.nodes() as u32).filter(|&n| live(n)));
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
            .filter_map(|s| self.seq_node.get(s).map(|n| n.0))
            .collect();
        let bitmap = if nodes.len() < EXACT_SCAN_BELOW || nodes.len() * 4 < self.len() {
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

/// Asks the CPU to start loading `len` elements of `data` from `start` (a hint; no effect on
/// results, a no-op off x86-64).
#[inline]
fn prefetch_row<T>(data: &[T], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let Some(row) = data.get(start..start + len) else {
            return;
        };
        let bytes = std::mem::size_of_val(row);
        let base = row.as_ptr() as *const i8;
        let mut off = 0;
        while off < bytes {
            // SAFETY: prefetching is a hint that never faults; the address is inside `row`.
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch(base.add(off), std::arch::x86_64::_MM_HINT_T0)
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, start, len);
    }
}

/// Appends the int8 codes of `v` to `out` and returns their scale (`max |v_i| / 127`). Codes are
/// `v_i / scale` rounded half away from zero (done by hand: `f32::round` is a libm call on
/// baseline x86-64, and this loop is most of the work of loading a checkpoint).
fn quantize_into(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let start = out.len();
    out.resize(start + v.len(), 0);
    quantize_to(v, &mut out[start..])
}

/// As [`quantize_into`], writing the codes into `out` (of `v`'s length).
fn quantize_to(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let inv = 1.0 / scale;
    for (o, x) in out.iter_mut().zip(v) {
        let y = (x * inv).clamp(-127.0, 127.0);
        // `as` truncates toward zero, so adding ±0.5 first rounds half away from zero.
        *o = (y + 0.5f32.copysign(y)) as i8;
    }
    scale
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlatIndex, VectorIndex};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Clustered data, closer to real embeddings than uniform noise.
    /// `vs[i]` as record `i`, as `insert_batch` takes them.
    fn numbered(vs: &[Vec<f32>]) -> Vec<(SeqNo, &[f32])> {
        vs.iter()
            .enumerate()
            .map(|(i, v)| (SeqNo(i as u64), v.as_slice()))
            .collect()
    }

    fn data(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let centers: Vec<Vec<f32>> = (0..32)
            .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        (0..n)
            .map(|_| {
                let c = &centers[rng.gen_range(0..centers.len())];
                c.iter().map(|x| x + rng.gen_range(-0.3..0.3)).collect()
            })
            .collect()
    }

    fn recall(space: Space, n: usize, filter_every: Option<u64>) -> f64 {
        let dim = 24;
        // Inner product is used with normalized embeddings in practice (it is not a metric on
        // raw vectors, for any graph index); normalize for the angular spaces.
        let norm = |mut v: Vec<f32>| {
            if space != Space::L2 {
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
            }
            v
        };
        let vs: Vec<Vec<f32>> = data(n, dim, 1).into_iter().map(norm).collect();
        let mut h = HnswIndex::new(space, dim, HnswParams::default());
        let mut f = FlatIndex::new(space, dim);
        for (i, v) in vs.iter().enumerate() {
            h.insert(SeqNo(i as u64), v);
            f.insert(SeqNo(i as u64), v);
        }
        let queries: Vec<Vec<f32>> = data(100, dim, 2).into_iter().map(norm).collect();
        let k = 10;
        let mut hits = 0;
        let mut total = 0;
        for q in &queries {
            let (got, want) = match filter_every {
                None => (h.search(q, k), f.search(q, k, None)),
                Some(m) => {
                    let c: Vec<SeqNo> = (0..n as u64).filter(|s| s % m == 0).map(SeqNo).collect();
                    let got = h.search_among(q, k, &c);
                    assert!(got.iter().all(|g| g.seq.0 % m == 0), "filter respected");
                    (got, f.search_among(q, k, &c))
                }
            };
            assert_eq!(got.len(), want.len(), "min(k, matches) results");
            for w in &want {
                if got.iter().any(|g| g.seq == w.seq) {
                    hits += 1;
                }
            }
            for g in &got {
                let exact = want.iter().find(|w| w.seq == g.seq).map(|w| w.distance);
                if let Some(e) = exact {
                    assert!((e - g.distance).abs() < 1e-4, "exact distances");
                }
            }
            total += want.len();
        }
        hits as f64 / total as f64
    }

    #[test]
    fn parallel_batch_insert_matches_sequential_quality() {
        let dim = 24;
        let vs = data(6000, dim, 11);
        let items = numbered(&vs);
        let mut h = HnswIndex::new(Space::L2, dim, HnswParams::default());
        h.insert_batch(&items, 4);
        assert_eq!(h.len(), 6000);
        let mut f = FlatIndex::new(Space::L2, dim);
        for (s, v) in &items {
            f.insert(*s, v);
        }
        let mut hits = 0;
        let queries = data(100, dim, 12);
        for q in &queries {
            let want = f.search(q, 10, None);
            let got = h.search(q, 10);
            hits += want
                .iter()
                .filter(|w| got.iter().any(|g| g.seq == w.seq))
                .count();
        }
        let recall = hits as f64 / 1000.0;
        assert!(recall >= 0.93, "recall {recall}");
    }

    #[test]
    fn every_vector_stays_findable_under_parallel_insertion() {
        // Uniform random vectors in 24 dimensions are a hard case for graph connectivity, and
        // four threads on fewer cores interleave inserters as much as they can.
        let dim = 24;
        for seed in 0..4 {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let vs: Vec<Vec<f32>> = (0..4000)
                .map(|_| (0..dim).map(|_| rng.gen_range(0.0..1.0)).collect())
                .collect();
            let items = numbered(&vs);
            let mut h = HnswIndex::new(Space::L2, dim, HnswParams::default());
            h.insert_batch(&items[..1000], 4);
            h.insert_batch(&items[1000..], 4);
            for (s, v) in &items {
                assert_eq!(h.search(v, 1)[0].seq, *s, "seed {seed}");
            }
        }
    }

    #[test]
    fn recall_is_high_in_every_space() {
        for space in [Space::L2, Space::Cosine, Space::Ip] {
            let r = recall(space, 6000, None);
            assert!(r >= 0.93, "{space}: recall {r}");
        }
    }

    #[test]
    fn filtered_search_is_correct_at_every_selectivity() {
        // 50% and 10% use the filtered traversal, 1% the exact scan.
        for every in [2, 10, 100] {
            let r = recall(Space::L2, 6000, Some(every));
            assert!(r >= 0.95, "1/{every}: recall {r}");
        }
        assert_eq!(
            recall(Space::L2, 6000, Some(100)),
            1.0,
            "selective filters are exact"
        );
    }

    #[test]
    fn deleted_vectors_are_never_returned_and_rebuild_reclaims() {
        let dim = 8;
        let vs = data(4000, dim, 3);
        let mut h = HnswIndex::new(Space::L2, dim, HnswParams::default());
        for (i, v) in vs.iter().enumerate() {
            h.insert(SeqNo(i as u64), v);
        }
        for s in (0..4000).filter(|s| s % 3 != 0) {
            h.remove(SeqNo(s));
        }
        assert_eq!(h.len(), 1334);
        for q in data(50, dim, 4) {
            let got = h.search(&q, 10);
            assert_eq!(got.len(), 10);
            assert!(
                got.iter().all(|g| g.seq.0 % 3 == 0),
                "tombstones stay hidden"
            );
        }
        assert!(h.needs_rebuild());
        let fresh = h.rebuilt(2);
        assert_eq!((fresh.len(), fresh.nodes()), (1334, 1334));
        assert!(!fresh.needs_rebuild());
        // Replacing a vector moves the record.
        h.insert(SeqNo(0), &vec![100.0; dim]);
        assert_eq!(h.search(&vec![100.0; dim], 1)[0].seq, SeqNo(0));
        assert_eq!(h.get(SeqNo(0)), Some(&vec![100.0; dim][..]));
    }

    #[test]
    fn search_never_returns_fewer_than_available() {
        let dim = 4;
        let mut h = HnswIndex::new(
            Space::Cosine,
            dim,
            HnswParams {
                m: 4,
                ef_construction: 8,
                ef_search: 1,
                seed: 9,
                threads: 1,
            },
        );
        for (i, v) in data(3000, dim, 5).iter().enumerate() {
            h.insert(SeqNo(i as u64), v);
        }
        let q = vec![0.5; dim];
        assert_eq!(
            h.search(&q, 500).len(),
            500,
            "k beyond ef still gets k results"
        );
        let c: Vec<SeqNo> = (0..2500).map(SeqNo).collect();
        assert_eq!(h.search_among(&q, 3000, &c).len(), 2500);
    }
}
