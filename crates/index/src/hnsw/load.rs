//! Joining a checkpoint with the store: each node's vector is checked against its fingerprint,
//! nodes whose record is gone or changed become tombstones, and records the graph lacks are
//! reported for the caller to insert.

#![deny(
    clippy::wildcard_enum_match_arm,
    reason = "a new vector source must be handled wherever a load reads one"
)]

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use ochre_types::{HnswConfig, SeqNo};

use super::format::{FormatError, ParsedCheckpoint, PrebuiltGraph};
use super::graph::Graph;
use super::insert::Levels;
use super::quantize::{quantize_to, Codes};
use super::vectorfile::VectorFile;
use super::vectors::Rows;
use super::HnswIndex;
use crate::memory::Arena;

/// The live node of each record, checked against a vector file
/// ([`ParsedCheckpoint::match_vector_file`]).
#[derive(Debug)]
pub struct LiveNodes(FxHashMap<SeqNo, u32>);

/// What loading a checkpoint found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Nodes whose record is gone or changed since the checkpoint (now tombstones).
    pub stale: usize,
    /// Records the caller must (re)insert: not in the checkpoint, or changed since.
    pub missing: Vec<SeqNo>,
}

impl HnswIndex {
    /// Rebuilds an index from checkpoint bytes and the current records' vectors.
    ///
    /// `vectors` maps every live record to its vector. Nodes whose record is gone or whose vector
    /// changed become tombstones (routing through an estimated vector: the mean of their known
    /// neighbours'); records absent from the checkpoint are listed in [`LoadReport::missing`] for
    /// the caller to insert.
    ///
    /// # Errors
    /// [`FormatError`] when the bytes are not a valid checkpoint of this shape; the caller then
    /// rebuilds from the records.
    pub fn from_checkpoint(
        bytes: &[u8],
        dim: usize,
        config: &HnswConfig,
        vectors: &HashMap<SeqNo, &[f32]>,
    ) -> Result<(HnswIndex, LoadReport), FormatError> {
        let parsed = ParsedCheckpoint::parse(bytes, dim, config)?;
        Ok(parsed.attach(Source::Map(vectors)))
    }

    /// As [`HnswIndex::from_checkpoint`], with the stored vectors as one buffer in storage order
    /// (`data` holds `seqs.len()` rows of `dim`). When the checkpoint's nodes are exactly these
    /// records in this order — the usual case after a clean close — the buffer is taken (left
    /// empty) and becomes the index's arena without a copy; otherwise, and on error, it is left
    /// as it was.
    ///
    /// # Errors
    /// As [`HnswIndex::from_checkpoint`].
    pub fn from_checkpoint_rows(
        bytes: &[u8],
        dim: usize,
        config: &HnswConfig,
        seqs: &[SeqNo],
        data: &mut Arena<f32>,
    ) -> Result<(HnswIndex, LoadReport), FormatError> {
        ParsedCheckpoint::parse(bytes, dim, config)?.into_index(seqs, data)
    }
}

impl HnswIndex {
    /// Replaces the graph with `graph`, built elsewhere over the same records (an import's), in
    /// place of linking them here: each live node takes its record's vector from this index,
    /// records the graph lacks are linked in as usual, and nodes naming a record this index does
    /// not hold become tombstones (the report counts both). Links stop being deferred.
    ///
    /// # Errors
    /// As [`PrebuiltGraph::into_checkpoint`] (a graph of another degree, or inconsistent); the
    /// index is then left as it was.
    pub fn adopt(&mut self, graph: PrebuiltGraph) -> Result<LoadReport, FormatError> {
        // Checked before anything changes. The fingerprints are not needed: the vectors are
        // this index's own, matched to the graph's nodes by sequence number.
        let parsed = graph.into_checkpoint(self.dim, &self.shape(), &HashMap::new())?;
        let ParsedCheckpoint {
            m,
            node_seq,
            deleted: gone,
            levels: graph_levels,
            layer0: graph_layer0,
            upper: graph_upper,
            entry,
            max_level,
            ..
        } = parsed;
        let (g_n, n) = (node_seq.len(), self.nodes.len());
        if n.saturating_add(g_n) > u32::MAX as usize {
            return Err(FormatError::Malformed("node count"));
        }
        let mut report = LoadReport::default();
        // The vectors stay where they are (node order stays storage order, so checkpoints
        // reload without a copy); the graph is renumbered instead. Each graph node becomes the
        // node of its record here; its tombstones, and nodes naming no record here, are
        // appended as tombstones.
        let mut node_of: Vec<u32> = vec![0; g_n];
        let mut given_lists = vec![false; n];
        let mut appended = 0usize;
        for g in 0..g_n {
            let claim = if gone[g] {
                None
            } else {
                self.nodes
                    .by_seq
                    .get(&node_seq[g])
                    .copied()
                    .filter(|&k| !given_lists[k as usize])
            };
            match claim {
                Some(k) => {
                    node_of[g] = k;
                    given_lists[k as usize] = true;
                }
                None => {
                    report.stale += usize::from(!gone[g]);
                    node_of[g] = (n + appended) as u32;
                    appended += 1;
                }
            }
        }
        drop(node_seq);
        drop(gone);
        let total = n + appended;
        let m0 = 2 * m;
        // The renumbered graph. Nodes here the graph lacks keep their level, with empty lists.
        let mut levels = self.graph.levels().to_vec();
        levels.resize(total, 0);
        let mut upper: Vec<Vec<Vec<u32>>> = levels
            .iter()
            .map(|&l| vec![Vec::new(); usize::from(l)])
            .collect();
        let mut layer0 = vec![0u32; total * (m0 + 1)];
        for g in 0..g_n {
            let t = node_of[g] as usize;
            levels[t] = graph_levels[g];
            let src = &graph_layer0[g * (m0 + 1)..(g + 1) * (m0 + 1)];
            let dst = &mut layer0[t * (m0 + 1)..(t + 1) * (m0 + 1)];
            let count = src[0] as usize;
            dst[0] = src[0];
            for (d, s) in dst[1..=count].iter_mut().zip(&src[1..=count]) {
                *d = node_of[*s as usize];
            }
            upper[t] = graph_upper[g]
                .iter()
                .map(|list| list.iter().map(|&x| node_of[x as usize]).collect())
                .collect();
        }
        drop(graph_layer0);
        drop(graph_upper);
        drop(graph_levels);
        // The appended tombstones route through an estimate of their vector from their
        // neighbours holding a record.
        self.rows.resize(total);
        self.codes.resize(total, self.dim);
        let mut known: Vec<bool> = (0..total).map(|i| i < n).collect();
        estimate_unknown(&layer0, m0, &mut known, self.rows.all_mut(), self.dim);
        let mut v = vec![0.0f32; self.dim];
        for t in n as u32..total as u32 {
            v.copy_from_slice(self.rows.row(t));
            let norm2 = self.kernels.dot(&v, &v);
            let inv = super::vectors::inv_norm_from_norm2(self.space, norm2);
            self.rows.set_row(t, &v, inv, norm2);
            self.codes.set_row(t, &v);
        }
        self.nodes.seq.resize(total, SeqNo(0));
        self.nodes.deleted.resize(total, true);
        self.nodes.n_deleted += appended;
        let unlinked: Vec<u32> = (0..n as u32)
            .filter(|&k| !given_lists[k as usize] && !self.nodes.deleted[k as usize])
            .collect();
        drop(given_lists);
        report.missing = unlinked
            .iter()
            .map(|&k| self.nodes.seq[k as usize])
            .collect();
        report.missing.sort_unstable();
        let entry = (g_n > 0).then(|| node_of[entry as usize]);
        drop(node_of);
        self.graph = Graph::from_parts(m, levels, layer0, &upper, entry, max_level);
        drop(upper);
        // What the graph lacks is linked in as deferred nodes are; nodes the other
        // implementation left unreachable get links, as after a build here.
        self.defer = false;
        self.unlinked_from = None;
        self.repaired_at = total;
        let threads = self.threads();
        self.connect_nodes(&unlinked, g_n, threads);
        self.repair_orphans();
        self.repaired_at = self.nodes.len();
        Ok(report)
    }
}

impl ParsedCheckpoint {
    /// Joins the graph with the records' vectors, as [`HnswIndex::from_checkpoint`] does.
    pub fn into_index_map(self, vectors: &HashMap<SeqNo, &[f32]>) -> (HnswIndex, LoadReport) {
        self.attach(Source::Map(vectors))
    }

    /// Joins the graph with the stored vectors, as [`HnswIndex::from_checkpoint_rows`] does.
    ///
    /// # Errors
    /// [`FormatError::Mismatch`] when `data` does not hold `seqs.len()` rows of the dimension;
    /// `data` is then left as it was.
    pub fn into_index(
        self,
        seqs: &[SeqNo],
        data: &mut Arena<f32>,
    ) -> Result<(HnswIndex, LoadReport), FormatError> {
        let dim = self.dim;
        if data.len() != seqs.len() * dim {
            return Err(FormatError::Mismatch("vector rows"));
        }
        Ok(self.attach(Source::Rows {
            seqs,
            data,
            rows: std::cell::OnceCell::new(),
            dim,
        }))
    }

    /// Whether [`ParsedCheckpoint::into_index_mapped`] can join this graph with `file`, and the
    /// live node of each record if so: the file holds every node, and the checkpoint's live
    /// nodes are exactly the stored records `seqs` (in any order; tombstones anywhere).
    ///
    /// # Errors
    /// [`FormatError::Mismatch`] naming what differs.
    pub fn match_vector_file(
        &self,
        seqs: &[SeqNo],
        file: &VectorFile,
    ) -> Result<LiveNodes, FormatError> {
        let n = self.node_seq.len();
        if file.dim != self.dim || file.nodes() != n {
            return Err(FormatError::Mismatch("vector file shape"));
        }
        if file.data.len() != n * self.dim || file.codes.len() != n * self.dim {
            return Err(FormatError::Mismatch("vector file rows"));
        }
        let mut seq_node = FxHashMap::with_capacity_and_hasher(seqs.len(), Default::default());
        for (i, (seq, gone)) in self.node_seq.iter().zip(&self.deleted).enumerate() {
            if !gone && seq_node.insert(*seq, i as u32).is_some() {
                return Err(FormatError::Mismatch("a record with two live nodes"));
            }
        }
        // The store's sequence numbers are unique (row ids), so equal counts and every one
        // found make the sets equal.
        if seq_node.len() != seqs.len() || seqs.iter().any(|s| !seq_node.contains_key(s)) {
            return Err(FormatError::Mismatch("stored records"));
        }
        Ok(LiveNodes(seq_node))
    }

    /// Builds the index from the graph and a vector file written with it, without deriving
    /// anything: the file's vectors and codes become the index's arenas as they are (mapped).
    /// `live` comes from [`ParsedCheckpoint::match_vector_file`] on the same two.
    pub fn into_index_mapped(self, live: LiveNodes, file: VectorFile) -> HnswIndex {
        let index = HnswIndex::new(self.dim, &self.config);
        let space = index.space;
        // Matched: the live nodes are exactly `live`'s.
        let n_deleted = self.node_seq.len() - live.0.len();
        let derived = Derived {
            inv: file
                .norms2
                .iter()
                .map(|&n2| super::vectors::inv_norm_from_norm2(space, n2))
                .collect(),
            scales: file.scales,
            norms2: file.norms2,
        };
        let mut index = finish(
            index,
            Parts {
                vecs: file.data,
                codes: file.codes,
                derived,
                node_seq: self.node_seq,
                seq_node: live.0,
                deleted: self.deleted,
                n_deleted,
                levels: self.levels,
                layer0: self.layer0,
                upper: self.upper,
                m: self.m,
                entry: self.entry,
                max_level: self.max_level,
            },
        );
        index.levels = Levels::resume(self.m, self.rng);
        index
    }

    /// Checks each node's vector against its fingerprint and builds the index: nodes whose record
    /// is gone or changed become tombstones, records the graph lacks are reported as missing.
    fn attach(self, vectors: Source<'_>) -> (HnswIndex, LoadReport) {
        let ParsedCheckpoint {
            config,
            dim,
            m,
            rng,
            fp,
            node_seq,
            fps,
            mut deleted,
            levels,
            layer0,
            upper,
            entry,
            max_level,
        } = self;
        let mut index = HnswIndex::new(dim, &config);
        index.levels = Levels::resume(m, rng);
        let m0 = 2 * m;
        let n = node_seq.len();
        let mut report = LoadReport::default();
        let mut seq_node = FxHashMap::with_capacity_and_hasher(n, Default::default());
        let mut n_deleted = 0;
        // Fast path: the nodes are the stored rows, in order, live and unchanged, then perhaps
        // tombstones (an adopted graph's); the rows become the arena as they are.
        let rows = vectors.rows();
        // Each row's norms and code are derived while its fingerprint is checked (one pass over
        // the vectors, on two threads); a mismatch drops what was derived.
        let mut codes: Arena<i8> = Arena::zeroed(n * dim);
        let derived = vectors.aligned(&node_seq, &deleted).and_then(|aligned| {
            derive(
                &index,
                aligned,
                &mut codes[..rows * dim],
                Some((&fps[..rows], fp)),
            )
        });
        let fresh = derived.is_some();
        let vecs = if fresh {
            for (i, seq) in node_seq[..rows].iter().enumerate() {
                seq_node.insert(*seq, i as u32);
            }
            let mut vecs = vectors.into_data();
            // The trailing tombstones route through an estimate of their vector from their live
            // neighbours' (the engine sizes the buffer by the checkpoint's node count, so there
            // this does not reallocate).
            vecs.resize(n * dim, 0.0);
            let mut known: Vec<bool> = (0..n).map(|i| i < rows).collect();
            estimate_unknown(&layer0, m0, &mut known, &mut vecs, dim);
            n_deleted = n - rows;
            vecs
        } else {
            let mut known: Vec<bool> = vec![false; n];
            let mut vecs: Arena<f32> = Arena::zeroed(n * dim);
            for i in 0..n {
                let live = !deleted[i];
                match vectors.get(&node_seq[i]) {
                    Some(v)
                        if live
                            && v.len() == dim
                            && fp(v) == fps[i]
                            && !seq_node.contains_key(&node_seq[i]) =>
                    {
                        vecs[i * dim..(i + 1) * dim].copy_from_slice(v);
                        known[i] = true;
                        seq_node.insert(node_seq[i], i as u32);
                    }
                    _ => {
                        if live {
                            report.stale += 1;
                        }
                        deleted[i] = true;
                    }
                }
                if deleted[i] {
                    n_deleted += 1;
                }
            }
            // Tombstones without a vector route through an estimate of it.
            estimate_unknown(&layer0, m0, &mut known, &mut vecs, dim);
            for seq in vectors.seqs() {
                if !seq_node.contains_key(&seq) {
                    report.missing.push(seq);
                }
            }
            report.missing.sort_unstable();
            vecs
        };
        (
            finish(
                index,
                Parts {
                    vecs,
                    codes,
                    derived: derived.unwrap_or_default(),
                    node_seq,
                    seq_node,
                    deleted,
                    n_deleted,
                    levels,
                    layer0,
                    upper,
                    m,
                    entry,
                    max_level,
                },
            ),
            report,
        )
    }
}

/// The mean of the vectors of `node`'s layer-0 neighbours (in flat `layer0` slots, `m0 + 1` per
/// node) that `usable` accepts, into `out`; false when it has none. Where a tombstone without a
/// vector of its own gets one to route through: its neighbours were chosen around it, so their
/// mean lies near where it was, where any single one of them may be a cluster away (routing
/// through a neighbour's own vector left records unreachable after a lagging checkpoint).
fn neighbour_mean<'v>(
    layer0: &[u32],
    m0: usize,
    node: usize,
    usable: impl Fn(u32) -> bool,
    vector: impl Fn(u32) -> &'v [f32],
    out: &mut [f32],
) -> bool {
    let s = node * (m0 + 1);
    let count = layer0[s] as usize;
    let mut k = 0usize;
    for &x in &layer0[s + 1..s + 1 + count] {
        if usable(x) {
            if k == 0 {
                out.copy_from_slice(vector(x));
            } else {
                for (o, v) in out.iter_mut().zip(vector(x)) {
                    *o += v;
                }
            }
            k += 1;
        }
    }
    if k > 1 {
        let inv = 1.0 / k as f32;
        out.iter_mut().for_each(|o| *o *= inv);
    }
    k > 0
}

/// Gives every node not `known` an estimate of its vector: the mean of its neighbours' vectors
/// that are known or already estimated, pass after pass outwards from the known nodes (a
/// tombstone whose neighbours are all tombstones too, as in a deleted cluster, gets one from
/// theirs). Estimates of a pass are usable from the next one, so a pass does not depend on the
/// order it visits nodes in; after the first, a pass visits only the unknown nodes that point at
/// one the last pass estimated (nothing else can have changed), so a deep region of tombstones
/// costs its size, not its size times its depth. Nodes no pass reaches keep what `vecs` holds.
fn estimate_unknown(layer0: &[u32], m0: usize, known: &mut [bool], vecs: &mut [f32], dim: usize) {
    let n = known.len();
    // The unknown nodes whose layer-0 list holds each node.
    let mut pointing: Vec<Vec<u32>> = vec![Vec::new(); n];
    for i in (0..n).filter(|&i| !known[i]) {
        let s = i * (m0 + 1);
        for &x in &layer0[s + 1..s + 1 + layer0[s] as usize] {
            if let Some(p) = pointing.get_mut(x as usize) {
                p.push(i as u32);
            }
        }
    }
    let mut candidates: Vec<usize> = (0..n).filter(|&i| !known[i]).collect();
    // The pass that last queued each node (so a pass queues it once).
    let mut queued = vec![0u32; n];
    let mut pass = 0u32;
    let mut mean = vec![0.0f32; dim];
    while !candidates.is_empty() {
        pass += 1;
        let mut done = Vec::new();
        for &i in &candidates {
            if neighbour_mean(
                layer0,
                m0,
                i,
                |x| known.get(x as usize).copied().unwrap_or(false),
                |x| &vecs[x as usize * dim..(x as usize + 1) * dim],
                &mut mean,
            ) {
                done.push((i, mean.clone()));
            }
        }
        candidates.clear();
        for (i, v) in &done {
            vecs[i * dim..(i + 1) * dim].copy_from_slice(v);
            known[*i] = true;
        }
        for (i, _) in &done {
            for &p in &pointing[*i] {
                let p = p as usize;
                if !known[p] && queued[p] != pass {
                    queued[p] = pass;
                    candidates.push(p);
                }
            }
        }
    }
}

/// Where a checkpoint load finds the stored vectors.
enum Source<'a> {
    Map(&'a HashMap<SeqNo, &'a [f32]>),
    Rows {
        seqs: &'a [SeqNo],
        data: &'a mut Arena<f32>,
        /// Row of each sequence number, built only when the checkpoint does not line up with the
        /// rows (a clean close needs no lookups).
        rows: std::cell::OnceCell<FxHashMap<SeqNo, usize>>,
        dim: usize,
    },
}

impl Source<'_> {
    fn get(&self, seq: &SeqNo) -> Option<&[f32]> {
        match self {
            Source::Map(m) => m.get(seq).copied(),
            Source::Rows {
                seqs,
                data,
                rows,
                dim,
            } => {
                let rows =
                    rows.get_or_init(|| seqs.iter().enumerate().map(|(i, s)| (*s, i)).collect());
                rows.get(seq).map(|&r| &data[r * dim..(r + 1) * dim])
            }
        }
    }

    fn seqs(&self) -> Vec<SeqNo> {
        match self {
            Source::Map(m) => m.keys().copied().collect(),
            Source::Rows { seqs, .. } => seqs.to_vec(),
        }
    }

    /// The rows, when they are exactly the checkpoint's first nodes in order, none of them a
    /// tombstone, and every node after them is one.
    fn aligned(&self, node_seq: &[SeqNo], deleted: &[bool]) -> Option<&[f32]> {
        match self {
            Source::Rows { seqs, data, .. }
                if node_seq.len() >= seqs.len()
                    && node_seq[..seqs.len()] == **seqs
                    && deleted[..seqs.len()].iter().all(|d| !*d)
                    && deleted[seqs.len()..].iter().all(|d| *d) =>
            {
                Some(&data[..])
            }
            Source::Rows { .. } | Source::Map(_) => None,
        }
    }

    /// How many rows the source holds (0 for a map).
    fn rows(&self) -> usize {
        match self {
            Source::Rows { seqs, .. } => seqs.len(),
            Source::Map(_) => 0,
        }
    }

    fn into_data(self) -> Arena<f32> {
        match self {
            Source::Rows { data, .. } => std::mem::take(data),
            Source::Map(_) => Arena::default(),
        }
    }
}

/// The validated pieces of a checkpoint, with the vectors in node order.
struct Parts {
    vecs: Arena<f32>,
    /// Room for every node's code; the first `derived.len()` rows are filled.
    codes: Arena<i8>,
    /// What is already derived for the first nodes.
    derived: Derived,
    node_seq: Vec<SeqNo>,
    seq_node: FxHashMap<SeqNo, u32>,
    deleted: Vec<bool>,
    n_deleted: usize,
    levels: Vec<u8>,
    layer0: Vec<u32>,
    upper: Vec<Vec<Vec<u32>>>,
    m: usize,
    entry: u32,
    max_level: usize,
}

/// Per-node values derived from the vectors: int8 scales, inverse norms, squared norms.
#[derive(Default)]
struct Derived {
    scales: Vec<f32>,
    inv: Vec<f32>,
    norms2: Vec<f32>,
}

impl Derived {
    fn len(&self) -> usize {
        self.scales.len()
    }

    fn append(&mut self, other: Derived) {
        self.scales.extend(other.scales);
        self.inv.extend(other.inv);
        self.norms2.extend(other.norms2);
    }
}

/// The fingerprints recorded for the first rows, and the function that computes one.
type Fingerprints<'a> = (&'a [u64], fn(&[f32]) -> u64);

/// Derives norms and int8 codes (into `codes`, `dim` per row) for the rows of `vecs`, on two
/// threads: most of a load's work. With `check`, each row's fingerprint is compared with the
/// one recorded and the first mismatch makes it `None` (what was derived is then meaningless).
fn derive(
    index: &HnswIndex,
    vecs: &[f32],
    codes: &mut [i8],
    check: Option<Fingerprints<'_>>,
) -> Option<Derived> {
    let dim = index.dim;
    let rows = vecs.len().checked_div(dim).unwrap_or(0);
    let half = rows / 2;
    let part = |range: std::ops::Range<usize>, codes: &mut [i8]| -> Option<Derived> {
        let mut d = Derived {
            scales: Vec::with_capacity(range.len()),
            inv: Vec::with_capacity(range.len()),
            norms2: Vec::with_capacity(range.len()),
        };
        let start = range.start;
        for i in range {
            let v = &vecs[i * dim..(i + 1) * dim];
            if let Some((fps, fp)) = check {
                if fps.get(i) != Some(&fp(v)) {
                    return None;
                }
            }
            let k = i - start;
            // One dot gives both norms.
            let norm2 = index.kernels.dot(v, v);
            d.inv
                .push(super::vectors::inv_norm_from_norm2(index.space, norm2));
            d.scales
                .push(quantize_to(v, &mut codes[k * dim..(k + 1) * dim]));
            d.norms2.push(norm2);
        }
        Some(d)
    };
    let (first, second) = codes.split_at_mut(half * dim);
    let (a, b) = std::thread::scope(|s| {
        let other = std::thread::Builder::new().spawn_scoped(s, || part(half..rows, second));
        let a = part(0..half, first);
        match other {
            Ok(t) => (a, t.join().ok()),
            Err(_) => (a, None),
        }
    });
    let b = match b {
        Some(b) => b,
        None => {
            let (_, second) = codes.split_at_mut(half * dim);
            part(half..rows, second)
        }
    };
    let mut a = a?;
    a.append(b?);
    Some(a)
}

/// Fills `index` from validated parts, deriving norms and int8 codes for the nodes not derived
/// yet.
fn finish(mut index: HnswIndex, p: Parts) -> HnswIndex {
    let n = p.node_seq.len();
    let dim = index.dim;
    let mut derived = p.derived;
    let mut codes = p.codes;
    let done = derived.len();
    if done < n {
        let rest = derive(
            &index,
            &p.vecs[done * dim..n * dim],
            &mut codes[done * dim..n * dim],
            None,
        );
        // Without a check, every row is derived.
        derived.append(rest.unwrap_or_default());
    }
    index.codes = Codes::from_parts(codes, derived.scales);
    index.rows = Rows::from_parts(dim, p.vecs, derived.inv, derived.norms2);
    index.nodes.seq = p.node_seq;
    index.nodes.by_seq = p.seq_node;
    index.nodes.deleted = p.deleted;
    index.nodes.n_deleted = p.n_deleted;
    index.graph = Graph::from_parts(
        p.m,
        p.levels,
        p.layer0,
        &p.upper,
        (n > 0).then_some(p.entry),
        p.max_level,
    );
    // Repaired again once it grows by a tenth, like a freshly built graph.
    index.repaired_at = n;
    index
}

#[cfg(test)]
mod tests;
