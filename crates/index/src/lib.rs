//! Ochre's vector indexes.
//!
//! [`distance`] holds the distance kernels (AVX2+FMA with runtime dispatch, a portable fallback
//! that the compiler vectorizes elsewhere). [`VectorIndex`] is the capability every index offers;
//! [`AnyIndex`] is the closed set of implementations the engine holds. Today that set is the exact
//! [`FlatIndex`]; the HNSW index joins it without changing callers.
//!
//! Invariants:
//! - An index maps [`SeqNo`]s to vectors of one fixed dimension; it never sees record ids,
//!   metadata or documents.
//! - Search results are sorted by ascending distance and hold `min(k, candidates)` entries, where
//!   candidates are all stored vectors or, when given, the allowed ones.
//! - Distances are Chroma's: squared L2, `1 - cosine`, `1 - dot`, in f32.

pub mod distance;
mod flat;
pub mod hnsw;
pub mod memory;

pub use flat::FlatIndex;
pub use hnsw::{CandidateSet, HnswIndex, HnswParams};
use ochre_types::{SeqNo, Space};

/// Which stored vectors a search may return.
pub trait Allow {
    /// True when the vector stored under `seq` may be returned.
    fn allows(&self, seq: SeqNo) -> bool;
}

impl Allow for std::collections::HashSet<SeqNo> {
    fn allows(&self, seq: SeqNo) -> bool {
        self.contains(&seq)
    }
}

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub seq: SeqNo,
    pub distance: f32,
}

/// The capability of a vector index: store vectors under sequence numbers and find the nearest.
pub trait VectorIndex {
    /// The distance space.
    fn space(&self) -> Space;
    /// Number of stored vectors.
    fn len(&self) -> usize;
    /// True when nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Stores (or replaces) the vector of `seq`.
    ///
    /// # Panics
    /// When `vector` does not have the index dimension (callers validate first).
    fn insert(&mut self, seq: SeqNo, vector: &[f32]);
    /// Removes the vector of `seq`; absent sequence numbers are ignored.
    fn remove(&mut self, seq: SeqNo);
    /// The stored vector of `seq`.
    fn get(&self, seq: SeqNo) -> Option<&[f32]>;
    /// The `k` nearest stored vectors to `query` among the allowed ones, nearest first.
    fn search(&self, query: &[f32], k: usize, allow: Option<&dyn Allow>) -> Vec<Neighbor>;
    /// The `k` nearest among exactly `candidates` (a small explicit set), nearest first.
    fn search_among(&self, query: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor>;
}

/// A candidate set prepared for one index.
#[derive(Debug)]
pub enum Prepared<'a> {
    Seqs(&'a [SeqNo]),
    Hnsw(CandidateSet),
}

/// The closed set of index implementations.
#[derive(Debug, Clone)]
pub enum AnyIndex {
    Flat(FlatIndex),
    Hnsw(Box<HnswIndex>),
}

impl AnyIndex {
    /// An empty exact index.
    pub fn flat(space: Space, dimension: usize) -> Self {
        AnyIndex::Flat(FlatIndex::new(space, dimension))
    }

    /// An empty HNSW index.
    pub fn hnsw(space: Space, dimension: usize, params: HnswParams) -> Self {
        AnyIndex::Hnsw(Box::new(HnswIndex::new(space, dimension, params)))
    }

    /// Changes the build threads (no-op for exact indexes).
    pub fn set_threads(&mut self, threads: usize) {
        if let AnyIndex::Hnsw(h) = self {
            h.set_threads(threads);
        }
    }

    /// Changes the query-time beam width (no-op for exact indexes).
    pub fn set_ef_search(&mut self, ef: usize) {
        if let AnyIndex::Hnsw(h) = self {
            h.set_ef_search(ef);
        }
    }

    /// Stores many vectors at once (in parallel where the index supports it).
    pub fn insert_batch(&mut self, items: &[(SeqNo, &[f32])]) {
        match self {
            AnyIndex::Hnsw(h) => {
                let t = h.params().threads;
                h.insert_batch(items, t)
            }
            AnyIndex::Flat(f) => items.iter().for_each(|(s, v)| f.insert(*s, v)),
        }
    }

    /// Resolves a candidate set once for several searches.
    pub fn prepare<'a>(&self, seqs: &'a [SeqNo]) -> Prepared<'a> {
        match self {
            AnyIndex::Hnsw(h) => Prepared::Hnsw(h.candidates(seqs)),
            AnyIndex::Flat(_) => Prepared::Seqs(seqs),
        }
    }

    /// The `k` nearest among a prepared candidate set.
    pub fn search_prepared(&self, query: &[f32], k: usize, p: &Prepared<'_>) -> Vec<Neighbor> {
        match (self, p) {
            (AnyIndex::Hnsw(h), Prepared::Hnsw(c)) => h.search_candidates(query, k, c),
            (_, Prepared::Seqs(s)) => self.search_among(query, k, s),
            (AnyIndex::Flat(_), Prepared::Hnsw(_)) => Vec::new(),
        }
    }

    /// Rebuilds the index when deletions have degraded it; returns true if it did.
    pub fn maintain(&mut self) -> bool {
        match self {
            AnyIndex::Hnsw(h) if h.needs_rebuild() => {
                **h = h.rebuilt(h.params().threads);
                true
            }
            AnyIndex::Hnsw(_) | AnyIndex::Flat(_) => false,
        }
    }
}

impl VectorIndex for HnswIndex {
    fn space(&self) -> Space {
        HnswIndex::space(self)
    }
    fn len(&self) -> usize {
        HnswIndex::len(self)
    }
    fn insert(&mut self, seq: SeqNo, vector: &[f32]) {
        HnswIndex::insert(self, seq, vector)
    }
    fn remove(&mut self, seq: SeqNo) {
        HnswIndex::remove(self, seq)
    }
    fn get(&self, seq: SeqNo) -> Option<&[f32]> {
        HnswIndex::get(self, seq)
    }
    fn search(&self, query: &[f32], k: usize, allow: Option<&dyn Allow>) -> Vec<Neighbor> {
        match allow {
            None => HnswIndex::search(self, query, k),
            Some(a) => {
                let seqs: Vec<SeqNo> = self.seqs().filter(|s| a.allows(*s)).collect();
                HnswIndex::search_among(self, query, k, &seqs)
            }
        }
    }
    fn search_among(&self, query: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor> {
        HnswIndex::search_among(self, query, k, candidates)
    }
}

impl VectorIndex for AnyIndex {
    fn space(&self) -> Space {
        match self {
            AnyIndex::Flat(i) => i.space(),
            AnyIndex::Hnsw(i) => i.space(),
        }
    }
    fn len(&self) -> usize {
        match self {
            AnyIndex::Flat(i) => i.len(),
            AnyIndex::Hnsw(i) => HnswIndex::len(i),
        }
    }
    fn insert(&mut self, seq: SeqNo, vector: &[f32]) {
        match self {
            AnyIndex::Flat(i) => i.insert(seq, vector),
            AnyIndex::Hnsw(i) => HnswIndex::insert(i, seq, vector),
        }
    }
    fn remove(&mut self, seq: SeqNo) {
        match self {
            AnyIndex::Flat(i) => i.remove(seq),
            AnyIndex::Hnsw(i) => HnswIndex::remove(i, seq),
        }
    }
    fn get(&self, seq: SeqNo) -> Option<&[f32]> {
        match self {
            AnyIndex::Flat(i) => i.get(seq),
            AnyIndex::Hnsw(i) => HnswIndex::get(i, seq),
        }
    }
    fn search(&self, query: &[f32], k: usize, allow: Option<&dyn Allow>) -> Vec<Neighbor> {
        match self {
            AnyIndex::Flat(i) => i.search(query, k, allow),
            AnyIndex::Hnsw(i) => VectorIndex::search(i.as_ref(), query, k, allow),
        }
    }
    fn search_among(&self, query: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor> {
        match self {
            AnyIndex::Flat(i) => i.search_among(query, k, candidates),
            AnyIndex::Hnsw(i) => HnswIndex::search_among(i, query, k, candidates),
        }
    }
}
