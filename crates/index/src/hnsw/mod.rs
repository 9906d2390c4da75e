//! Hierarchical navigable small-world graph (Malkov & Yashunin, 2016), Ochre's own.
//!
//! The index is four parts, each in its own module: the node vectors and their norms
//! ([`vectors`]), their int8 codes ([`quantize`]), the graph's adjacency and locks ([`graph`]),
//! and the node ↔ sequence-number bookkeeping here. [`insert`] links new nodes into the graph
//! (one at a time or in parallel), [`search`] walks it, [`format`] writes and reads checkpoint
//! bytes, and [`load`] joins a checkpoint with the store's vectors.
//!
//! Neighbour selection uses the paper's heuristic (keep a candidate only if it is closer to the
//! new node than to every neighbour kept so far), which is what keeps recall high on clustered
//! real embeddings.
//!
//! Deletes are tombstones: a deleted node still routes searches but is never returned. When
//! tombstones pass a sixth of the nodes the owner rebuilds the graph from the live vectors
//! ([`HnswIndex::needs_rebuild`], [`HnswIndex::rebuilt`]), which also reclaims their memory.
//!
//! Filtered search: small candidate sets are scanned exactly; larger ones use a bitmap over node
//! ids during traversal, and if the traversal finds fewer than `min(k, candidates)` results the
//! search falls back to the exact scan, so a filter never shrinks the answer.

use rustc_hash::FxHashMap;

use ochre_types::{HnswConfig, SeqNo, Space};

use crate::distance::Kernels;

pub mod format;
mod graph;
mod insert;
pub mod load;
mod quantize;
mod search;
pub mod vectorfile;
mod vectors;

pub use load::LoadReport;
pub use search::{CandidateSet, EXACT_SCAN_BELOW};

use graph::{Graph, VisitedPool};
use insert::Levels;
use quantize::Codes;
use vectors::Rows;

/// The sizes an index works with, from a range-checked [`HnswConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Knobs {
    ef_construction: usize,
    ef_search: usize,
    threads: usize,
}

impl Knobs {
    fn of(c: &HnswConfig) -> Knobs {
        Knobs {
            ef_construction: c.build_beam(),
            ef_search: c.search_beam(),
            threads: c.build_threads(),
        }
    }
}

/// Which sequence number each node holds, and which nodes are tombstones.
#[derive(Clone, Default)]
struct Nodes {
    seq: Vec<SeqNo>,
    /// Live nodes by sequence number. Sequence numbers are ours, not a client's, so a fast
    /// integer hash is safe.
    by_seq: FxHashMap<SeqNo, u32>,
    deleted: Vec<bool>,
    n_deleted: usize,
}

impl Nodes {
    fn len(&self) -> usize {
        self.seq.len()
    }

    fn live(&self) -> usize {
        self.seq.len() - self.n_deleted
    }

    /// Tombstones the node of `seq`, if it has a live one.
    fn remove(&mut self, seq: SeqNo) {
        if let Some(n) = self.by_seq.remove(&seq) {
            self.deleted[n as usize] = true;
            self.n_deleted += 1;
        }
    }
}

/// The seed of the level generator: fixed, so graphs are reproducible.
const SEED: u64 = 0x5eed;

/// An HNSW index over vectors of one dimension.
pub struct HnswIndex {
    space: Space,
    dim: usize,
    kernels: Kernels,
    knobs: Knobs,
    levels: Levels,
    rows: Rows,
    codes: Codes,
    nodes: Nodes,
    graph: Graph,
    /// Nodes at the last orphan repair.
    repaired_at: usize,
    visited: VisitedPool,
    /// Insertions append nodes without linking them ([`HnswIndex::defer_links`]).
    defer: bool,
    /// The first node not linked into the graph yet: every node from it on is unlinked, and
    /// searches scan exactly until [`HnswIndex::link_deferred`] or [`HnswIndex::adopt`].
    unlinked_from: Option<u32>,
}

impl Clone for HnswIndex {
    fn clone(&self) -> Self {
        HnswIndex {
            space: self.space,
            dim: self.dim,
            kernels: self.kernels,
            knobs: self.knobs,
            levels: self.levels.clone(),
            rows: self.rows.clone(),
            codes: self.codes.clone(),
            nodes: self.nodes.clone(),
            graph: self.graph.clone(),
            repaired_at: self.repaired_at,
            visited: VisitedPool::default(),
            defer: self.defer,
            unlinked_from: self.unlinked_from,
        }
    }
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("space", &self.space)
            .field("dim", &self.dim)
            .field("m", &self.graph.m)
            .field("knobs", &self.knobs)
            .field("nodes", &self.nodes.len())
            .field("deleted", &self.nodes.n_deleted)
            .finish()
    }
}

impl HnswIndex {
    /// An empty graph for vectors of `dim` floats, with `config`'s space and sizes (clamped into
    /// their ranges, see [`HnswConfig::check`]).
    pub fn new(dim: usize, config: &HnswConfig) -> Self {
        Self::with_seed(dim, config, SEED)
    }

    fn with_seed(dim: usize, config: &HnswConfig, seed: u64) -> Self {
        let m = config.graph_degree();
        HnswIndex {
            space: config.space,
            dim,
            kernels: Kernels::detect(),
            knobs: Knobs::of(config),
            levels: Levels::new(m, seed),
            rows: Rows::new(dim),
            codes: Codes::default(),
            nodes: Nodes::default(),
            graph: Graph::new(m),
            repaired_at: 0,
            visited: VisitedPool::default(),
            defer: false,
            unlinked_from: None,
        }
    }

    /// Applies the knobs that may change after creation (`ef_search`, `num_threads`).
    pub fn configure(&mut self, config: &HnswConfig) {
        let k = Knobs::of(config);
        self.knobs.ef_search = k.ef_search;
        self.knobs.threads = k.threads;
    }

    /// Threads that batch insertion and rebuilds use (`num_threads`, at most the cores).
    pub fn threads(&self) -> usize {
        self.knobs.threads
    }

    /// The graph degree (upper-layer list capacity; layer 0 keeps twice as many).
    pub fn degree(&self) -> usize {
        self.graph.m
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
        self.nodes.live()
    }

    /// True when no live vector is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence numbers of the live vectors.
    pub fn seqs(&self) -> impl Iterator<Item = SeqNo> + '_ {
        self.nodes
            .seq
            .iter()
            .zip(&self.nodes.deleted)
            .filter(|(_, d)| !**d)
            .map(|(s, _)| *s)
    }

    /// True while the vectors or codes are still (partly) the pages of a vector file
    /// ([`vectorfile`]) rather than memory of their own.
    pub fn file_backed(&self) -> bool {
        self.rows.file_backed() || self.codes.file_backed()
    }

    /// Nodes including tombstones.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// True when tombstones have grown past a sixth of the graph (they waste neighbour-list
    /// slots, which costs recall; rebuilds run in the background, so this can be early).
    pub fn needs_rebuild(&self) -> bool {
        self.tombstones_exceed(6)
    }

    /// True when more than 64 nodes, and more than `1 / divisor` of the graph, are tombstones.
    pub fn tombstones_exceed(&self, divisor: usize) -> bool {
        self.nodes.n_deleted > 64 && self.nodes.n_deleted.saturating_mul(divisor) > self.nodes.len()
    }

    /// A fresh graph holding only the live vectors (reclaims tombstones).
    pub fn rebuilt(&self, threads: usize) -> HnswIndex {
        let mut fresh = HnswIndex {
            knobs: self.knobs,
            ..HnswIndex::with_seed(self.dim, &self.shape(), self.levels.seed())
        };
        let live: Vec<(SeqNo, &[f32])> = (0..self.nodes.len() as u32)
            .filter(|&n| !self.nodes.deleted[n as usize])
            .map(|n| (self.nodes.seq[n as usize], self.rows.row(n)))
            .collect();
        fresh.insert_batch(&live, threads);
        fresh
    }

    /// An empty index with this one's space, degree, knobs and level seed: what a rebuild
    /// fills ([`HnswIndex::live_from`]).
    pub fn empty_like(&self) -> HnswIndex {
        HnswIndex {
            knobs: self.knobs,
            ..HnswIndex::with_seed(self.dim, &self.shape(), self.levels.seed())
        }
    }

    /// Copies of the live vectors among nodes `from..from + max` (by node number, which is
    /// insertion order): their sequence numbers, their components back to back, and the node
    /// after the last one looked at. A rebuild walks the index this way a slice at a time,
    /// letting go of the owner's lock between slices; nodes added meanwhile come at the end.
    pub fn live_from(&self, from: usize, max: usize) -> (Vec<SeqNo>, Vec<f32>, usize) {
        let end = from.saturating_add(max).min(self.nodes.len());
        let mut seqs = Vec::new();
        let mut data = Vec::new();
        for n in from.min(end)..end {
            if !self.nodes.deleted[n] {
                seqs.push(self.nodes.seq[n]);
                data.extend_from_slice(self.rows.row(n as u32));
            }
        }
        (seqs, data, end)
    }

    /// A configuration with this index's space and degree (the rest default).
    fn shape(&self) -> HnswConfig {
        HnswConfig {
            space: self.space,
            max_neighbors: self.graph.m as u64,
            ..HnswConfig::default()
        }
    }

    /// Tombstones the vector of `seq`; absent sequence numbers are ignored.
    pub fn remove(&mut self, seq: SeqNo) {
        self.nodes.remove(seq);
    }

    /// The stored vector of `seq`.
    pub fn get(&self, seq: SeqNo) -> Option<&[f32]> {
        self.nodes.by_seq.get(&seq).map(|&n| self.rows.row(n))
    }

    /// Exact distance from a prepared query (`q_inv` from [`vectors::inv_norm`]) to node `n`.
    #[inline]
    fn dist_q(&self, q: &[f32], q_inv: f32, n: u32) -> f32 {
        let v = self.rows.row(n);
        match self.space {
            Space::L2 => self.kernels.l2_squared(q, v),
            Space::Ip => 1.0 - self.kernels.dot(q, v),
            Space::Cosine => 1.0 - self.kernels.dot(q, v) * q_inv * self.rows.inv_norm(n),
        }
    }

    /// Exact distance between two nodes.
    #[inline]
    fn dist_nodes(&self, a: u32, b: u32) -> f32 {
        self.dist_q(self.rows.row(a), self.rows.inv_norm(a), b)
    }

    fn inv_norm(&self, v: &[f32]) -> f32 {
        vectors::inv_norm(&self.kernels, self.space, v)
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

#[cfg(test)]
mod tests;
