//! The exact index: every vector in one contiguous arena, searched by a full scan.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use ochre_types::{SeqNo, Space};

use crate::distance::Kernels;
use crate::{Neighbor, VectorIndex};

/// Exact nearest-neighbour search over a dense arena.
///
/// Rows are packed: removing a row moves the last row into its place, so the arena never has
/// holes and a scan touches only live vectors.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    space: Space,
    dimension: usize,
    kernels: Kernels,
    arena: Vec<f32>,
    norms: Vec<f32>,
    row_seq: Vec<SeqNo>,
    seq_row: HashMap<SeqNo, usize>,
}

/// Max-heap entry: the worst of the current best k sits on top.
#[derive(PartialEq)]
pub(crate) struct Candidate(pub(crate) f32, pub(crate) SeqNo);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, distance: f32, seq: SeqNo) {
        if self.heap.len() < self.k {
            self.heap.push(Candidate(distance, seq));
        } else if let Some(top) = self.heap.peek() {
            if Candidate(distance, seq) < *top {
                self.heap.pop();
                self.heap.push(Candidate(distance, seq));
            }
        }
    }

    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Candidate(distance, seq)| Neighbor { seq, distance })
            .collect()
    }
}

impl FlatIndex {
    /// An empty index for vectors of `dimension` floats.
    pub fn new(space: Space, dimension: usize) -> Self {
        FlatIndex {
            space,
            dimension,
            kernels: Kernels::detect(),
            arena: Vec::new(),
            norms: Vec::new(),
            row_seq: Vec::new(),
            seq_row: HashMap::new(),
        }
    }

    /// The vector dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.arena[r * self.dimension..(r + 1) * self.dimension]
    }

    fn query_norm(&self, query: &[f32]) -> f32 {
        match self.space {
            Space::Cosine => self.kernels.norm(query),
            Space::L2 | Space::Ip => 0.0,
        }
    }
}

impl VectorIndex for FlatIndex {
    fn space(&self) -> Space {
        self.space
    }

    fn len(&self) -> usize {
        self.row_seq.len()
    }

    fn insert(&mut self, seq: SeqNo, vector: &[f32]) {
        assert_eq!(
            vector.len(),
            self.dimension,
            "dimension checked by the caller"
        );
        let norm = self.kernels.norm(vector);
        if let Some(&r) = self.seq_row.get(&seq) {
            self.arena[r * self.dimension..(r + 1) * self.dimension].copy_from_slice(vector);
            self.norms[r] = norm;
            return;
        }
        self.seq_row.insert(seq, self.row_seq.len());
        self.row_seq.push(seq);
        self.arena.extend_from_slice(vector);
        self.norms.push(norm);
    }

    fn remove(&mut self, seq: SeqNo) {
        let Some(r) = self.seq_row.remove(&seq) else {
            return;
        };
        let last = self.row_seq.len() - 1;
        if r != last {
            let d = self.dimension;
            self.arena.copy_within(last * d..(last + 1) * d, r * d);
            self.norms[r] = self.norms[last];
            let moved = self.row_seq[last];
            self.row_seq[r] = moved;
            self.seq_row.insert(moved, r);
        }
        self.row_seq.pop();
        self.norms.pop();
        self.arena.truncate(last * self.dimension);
    }

    fn get(&self, seq: SeqNo) -> Option<&[f32]> {
        self.seq_row.get(&seq).map(|&r| self.row(r))
    }

    fn search(&self, query: &[f32], k: usize) -> Vec<Neighbor> {
        if k == 0 || query.len() != self.dimension {
            return Vec::new();
        }
        let qn = self.query_norm(query);
        let mut top = TopK::new(k);
        for (r, &seq) in self.row_seq.iter().enumerate() {
            let d = self
                .kernels
                .distance(self.space, query, qn, self.row(r), self.norms[r]);
            top.push(d, seq);
        }
        top.into_sorted()
    }

    fn search_among(&self, query: &[f32], k: usize, candidates: &[SeqNo]) -> Vec<Neighbor> {
        if k == 0 || query.len() != self.dimension {
            return Vec::new();
        }
        let qn = self.query_norm(query);
        let mut top = TopK::new(k);
        for seq in candidates {
            if let Some(&r) = self.seq_row.get(seq) {
                let d = self
                    .kernels
                    .distance(self.space, query, qn, self.row(r), self.norms[r]);
                top.push(d, *seq);
            }
        }
        top.into_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// After any sequence of inserts and removes, search equals a sort over what is stored.
        #[test]
        fn search_matches_sorted_scan(
            ops in proptest::collection::vec((0u64..20, proptest::option::of(proptest::collection::vec(-1.0f32..1.0, 3))), 0..60),
            query in proptest::collection::vec(-1.0f32..1.0, 3),
            k in 0usize..25,
        ) {
            for space in [Space::L2, Space::Cosine, Space::Ip] {
                let mut index = FlatIndex::new(space, 3);
                let mut model: HashMap<u64, Vec<f32>> = HashMap::new();
                for (seq, v) in &ops {
                    match v {
                        Some(v) => { index.insert(SeqNo(*seq), v); model.insert(*seq, v.clone()); }
                        None => { index.remove(SeqNo(*seq)); model.remove(seq); }
                    }
                }
                prop_assert_eq!(index.len(), model.len());
                let k2 = Kernels::portable();
                let mut expected: Vec<(f32, u64)> = model.iter().map(|(s, v)| {
                    (k2.distance(space, &query, k2.norm(&query), v, k2.norm(v)), *s)
                }).collect();
                expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                expected.truncate(k);
                let got = index.search(&query, k);
                prop_assert_eq!(got.len(), expected.len());
                for (g, e) in got.iter().zip(&expected) {
                    prop_assert!((g.distance - e.0).abs() < 1e-4);
                }
                let allowed: Vec<SeqNo> = model.keys().filter(|s| *s % 2 == 0).map(|s| SeqNo(*s)).collect();
                let filtered = index.search_among(&query, k, &allowed);
                prop_assert_eq!(filtered.len(), allowed.len().min(k));
                prop_assert!(filtered.iter().all(|n| allowed.contains(&n.seq)));
            }
        }
    }
}
