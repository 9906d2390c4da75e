//! Ochre's indexes: dense vectors, sparse vectors and document text.
//!
//! [`hnsw`] is the dense index the engine uses: Ochre's own HNSW graph with int8-quantized
//! walks, exact re-ranking, filtered search over candidate sets, tombstones with rebuilds, and
//! versioned checkpoint files ([`hnsw::format`]) reconciled with the store on load
//! ([`hnsw::load`]). [`FlatIndex`] is the exact scan, kept as the reference tests and benchmarks
//! measure against. [`distance`] holds the distance kernels (AVX2+FMA, AVX-512 and NEON variants
//! chosen at run time, a portable fallback the compiler vectorizes); [`memory`] backs large
//! buffers with huge pages.
//!
//! [`sparse`] is the sparse index behind Chroma's sparse-vector `$knn` and BM25 search
//! ([`SparseIndex`]): block-max postings with exact top-k by inner product (MaxScore pruning for
//! non-negative queries, exhaustive accumulation otherwise), document frequencies for IDF, and
//! tombstones compacted away as they accumulate. It is in memory only.
//!
//! [`text`] is the full-text index for `where_document`: compressed trigram posting lists that
//! turn `$contains` and `$regex` into a candidate superset ([`TextIndex`]), which the caller
//! verifies against the documents.
//!
//! This crate is not a store: it never reads or writes a file (checkpoints are bytes the caller
//! persists), and it knows nothing of records or metadata.
//!
//! Invariants:
//! - An index maps [`SeqNo`]s to what it indexes: dense vectors of one fixed dimension, sparse
//!   vectors, or documents' trigrams; it never sees record ids or metadata, and keeps no
//!   document text.
//! - Dense search results are sorted by ascending distance and hold `min(k, candidates)`
//!   entries, where candidates are all live vectors or, when given, the live ones among a
//!   candidate set. Distances are Chroma's: squared L2, `1 - cosine`, `1 - dot`, in f32.
//! - Sparse search results are exact: sorted by descending inner product, ties by ascending
//!   [`SeqNo`], holding `min(k, candidates)` entries, where candidates are the live (allowed)
//!   vectors sharing a term with the query.
//! - Text candidates are a superset of the live records whose document matches, sorted by
//!   sequence number.

pub mod distance;
mod flat;
pub mod hnsw;
pub mod memory;
pub mod sparse;
pub mod text;

pub use flat::FlatIndex;
pub use hnsw::{CandidateSet, HnswIndex};
use ochre_types::{SeqNo, Space};
pub use sparse::{SparseHit, SparseIndex};
pub use text::{Candidates, TextError, TextIndex};

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub seq: SeqNo,
    pub distance: f32,
}

/// The capability of a vector index: store vectors under sequence numbers and find the nearest.
/// Implemented by [`HnswIndex`] and [`FlatIndex`], so tests and benchmarks can hold either.
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
    /// The `k` nearest stored vectors to `query`, nearest first.
    fn search(&self, query: &[f32], k: usize) -> Vec<Neighbor>;
    /// The `k` nearest among exactly `candidates`, nearest first.
    fn search_among(&self, query: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor>;
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
    fn search(&self, query: &[f32], k: usize) -> Vec<Neighbor> {
        HnswIndex::search(self, query, k)
    }
    fn search_among(&self, query: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor> {
        HnswIndex::search_among(self, query, k, candidates)
    }
}
