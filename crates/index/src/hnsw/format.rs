//! The HNSW checkpoint file (docs/format/hnsw.md): graph, node ↔ sequence-number map and a
//! fingerprint of each node's vector. Vectors themselves live in the store; on load they are
//! supplied by the caller and checked against the fingerprints.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use ochre_types::{SeqNo, Space};

use super::{HnswIndex, HnswParams, NodeId};

/// First bytes of a checkpoint file.
pub const MAGIC: &[u8; 8] = b"OCHRHNSW";
/// Last bytes of a checkpoint file.
pub const END_MAGIC: &[u8; 8] = b"OCHREND\0";
/// The format this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads.
pub const OLDEST_SUPPORTED_FORMAT: u32 = 1;

/// Why a checkpoint could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("not an HNSW checkpoint (bad magic)")]
    BadMagic,
    #[error("checkpoint format version {0} is not supported")]
    Version(u32),
    #[error("checkpoint checksum mismatch (torn or damaged file)")]
    Checksum,
    #[error("checkpoint is truncated or malformed: {0}")]
    Malformed(&'static str),
    #[error("checkpoint is for another index shape: {0}")]
    Mismatch(&'static str),
}

/// What loading a checkpoint found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Nodes whose record is gone or changed since the checkpoint (now tombstones).
    pub stale: usize,
    /// Records the caller must (re)insert: not in the checkpoint, or changed since.
    pub missing: Vec<SeqNo>,
}

/// The fingerprint of a vector in format version 2: four independent multiply–xorshift lanes over
/// the vector's 64-bit words (two f32, the lower-indexed one in the low half; a last odd f32 is
/// padded with zero bits; word `j` goes to lane `j mod 4`), then the lanes and the dimension folded
/// together (docs/format/hnsw.md). About ten times faster than byte-wise FNV: reopening checks one
/// per node.
pub fn fingerprint(v: &[f32]) -> u64 {
    const P: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes: [u64; 4] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut mix = |l: usize, w: u64| {
        let h = (lanes[l] ^ w).wrapping_mul(P);
        lanes[l] = h ^ (h >> 29);
    };
    let word = |a: f32, b: f32| u64::from(a.to_bits()) | (u64::from(b.to_bits()) << 32);
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..4 {
            mix(l, word(c[2 * l], c[2 * l + 1]));
        }
    }
    if !tail.is_empty() {
        let mut c = [0.0f32; 8];
        c[..tail.len()].copy_from_slice(tail);
        for l in 0..4 {
            if 2 * l < tail.len() {
                mix(l, word(c[2 * l], c[2 * l + 1]));
            }
        }
    }
    let mut r = v.len() as u64;
    for h in lanes {
        r = (r ^ h).wrapping_mul(P);
        r ^= r >> 31;
    }
    r
}

/// FNV-1a 64 of a vector's little-endian bytes: the fingerprint of format version 1.
pub fn fingerprint_v1(v: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in v {
        for b in x.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// CRC-32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = !0u32;
    for b in bytes {
        crc = table[((crc ^ u32::from(*b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn space_code(s: Space) -> u8 {
    match s {
        Space::L2 => 0,
        Space::Cosine => 1,
        Space::Ip => 2,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(FormatError::Malformed("unexpected end"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    /// The next `n` little-endian u32 values.
    fn halves(&mut self, n: usize) -> Result<impl Iterator<Item = u32> + 'a, FormatError> {
        let len = n.checked_mul(4).ok_or(FormatError::Malformed("length"))?;
        Ok(self
            .take(len)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }
    /// The next `n` little-endian u64 values.
    fn words(&mut self, n: usize) -> Result<impl Iterator<Item = u64> + 'a, FormatError> {
        let len = n.checked_mul(8).ok_or(FormatError::Malformed("length"))?;
        Ok(self
            .take(len)?
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])))
    }
}

impl HnswIndex {
    /// Serializes the graph (not the vectors) into checkpoint bytes.
    pub fn to_checkpoint(&self) -> Vec<u8> {
        let n = self.node_seq.len();
        let mut out = Vec::with_capacity(64 + n * (8 + 8 + 2 + (self.m0 + 1) * 4));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(space_code(self.space));
        out.extend_from_slice(&[0, 0, 0]);
        let (entry, max_level) = *self.top.lock();
        for v in [
            self.dim as u32,
            self.params.m as u32,
            self.params.ef_construction as u32,
            self.params.ef_search as u32,
            n as u32,
            entry.map_or(u32::MAX, |e| e.0),
            max_level as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.rng.to_le_bytes());
        for s in &self.node_seq {
            out.extend_from_slice(&s.0.to_le_bytes());
        }
        for i in 0..n {
            let fp = if self.deleted[i] {
                0
            } else {
                fingerprint(self.vector(i as u32))
            };
            out.extend_from_slice(&fp.to_le_bytes());
        }
        out.extend(self.deleted.iter().map(|d| u8::from(*d)));
        out.extend_from_slice(&self.levels);
        for x in &self.layer0 {
            out.extend_from_slice(&x.load(std::sync::atomic::Ordering::Relaxed).to_le_bytes());
        }
        for (i, &level) in self.levels.iter().enumerate() {
            for layer in 1..=level as usize {
                let list = self.list(i as u32, layer);
                out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for x in list {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(END_MAGIC);
        out
    }

    /// Rebuilds an index from checkpoint bytes and the current records' vectors.
    ///
    /// `vectors` maps every live record to its vector. Nodes whose record is gone or whose vector
    /// changed become tombstones (routing through an approximate vector: their nearest live
    /// neighbour's); records absent from the checkpoint are listed in [`LoadReport::missing`] for
    /// the caller to insert.
    ///
    /// # Errors
    /// [`FormatError`] when the bytes are not a valid checkpoint of this shape; the caller then
    /// rebuilds from the records.
    pub fn from_checkpoint(
        bytes: &[u8],
        space: Space,
        dim: usize,
        m: usize,
        vectors: &HashMap<SeqNo, &[f32]>,
    ) -> Result<(HnswIndex, LoadReport), FormatError> {
        let parsed = ParsedCheckpoint::parse(bytes, space, dim, m)?;
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
        space: Space,
        dim: usize,
        m: usize,
        seqs: &[SeqNo],
        data: &mut Vec<f32>,
    ) -> Result<(HnswIndex, LoadReport), FormatError> {
        ParsedCheckpoint::parse(bytes, space, dim, m)?.into_index(seqs, data)
    }
}

/// A checkpoint whose bytes have been read and checked (checksum, version, shape, every list in
/// range) but not yet joined with the stored vectors. Parsing needs no vectors, so recovery does
/// it while the records are still being read.
pub struct ParsedCheckpoint {
    params: HnswParams,
    space: Space,
    dim: usize,
    rng: u64,
    fp: fn(&[f32]) -> u64,
    node_seq: Vec<SeqNo>,
    fps: Vec<u64>,
    deleted: Vec<bool>,
    levels: Vec<u8>,
    layer0: Vec<u32>,
    upper: Vec<Vec<Vec<u32>>>,
    entry: u32,
    max_level: usize,
}

impl ParsedCheckpoint {
    /// Reads and checks a checkpoint for an index of this `space`, dimension and `m`.
    ///
    /// # Errors
    /// [`FormatError`] when the bytes are not a valid checkpoint of this shape.
    pub fn parse(bytes: &[u8], space: Space, dim: usize, m: usize) -> Result<Self, FormatError> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if &bytes[bytes.len() - 8..] != END_MAGIC {
            return Err(FormatError::Checksum);
        }
        let body = &bytes[..bytes.len() - 12];
        let crc_bytes = &bytes[bytes.len() - 12..bytes.len() - 8];
        let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        if crc32(body) != stored {
            return Err(FormatError::Checksum);
        }
        let mut r = Reader { bytes: body, at: 8 };
        let version = r.u32()?;
        if !(OLDEST_SUPPORTED_FORMAT..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::Version(version));
        }
        let fp: fn(&[f32]) -> u64 = if version == 1 {
            fingerprint_v1
        } else {
            fingerprint
        };
        let code = r.u8()?;
        r.take(3)?;
        if code != space_code(space) {
            return Err(FormatError::Mismatch("space"));
        }
        let fdim = r.u32()? as usize;
        let fm = r.u32()? as usize;
        let ef_construction = r.u32()? as usize;
        let ef_search = r.u32()? as usize;
        let n = r.u32()? as usize;
        let entry = r.u32()?;
        let max_level = r.u32()? as usize;
        let rng = r.u64()?;
        if fdim != dim {
            return Err(FormatError::Mismatch("dimension"));
        }
        if fm != m.max(2) {
            return Err(FormatError::Mismatch("max_neighbors"));
        }
        let params = HnswParams {
            m: fm,
            ef_construction,
            ef_search,
            seed: rng,
            ..HnswParams::default()
        };
        let m0 = 2 * fm;
        let node_seq: Vec<SeqNo> = r.words(n)?.map(SeqNo).collect();
        let fps: Vec<u64> = r.words(n)?.collect();
        let deleted: Vec<bool> = r.take(n)?.iter().map(|b| *b != 0).collect();
        let levels: Vec<u8> = r.take(n)?.to_vec();
        let layer0: Vec<u32> = r
            .halves(
                n.checked_mul(m0 + 1)
                    .ok_or(FormatError::Malformed("node count"))?,
            )?
            .collect();
        let mut upper = Vec::with_capacity(n);
        for &l in &levels {
            if l > 31 {
                return Err(FormatError::Malformed("level"));
            }
            let mut lists = Vec::with_capacity(l as usize);
            for _ in 0..l {
                let c = r.u32()? as usize;
                if c > fm {
                    return Err(FormatError::Malformed("upper list length"));
                }
                lists.push(r.halves(c)?.collect::<Vec<u32>>());
            }
            upper.push(lists);
        }
        if r.at != body.len() {
            return Err(FormatError::Malformed("trailing bytes"));
        }
        // Structural checks: every id in range, counts within bounds, entry valid.
        for list in layer0.chunks_exact(m0 + 1) {
            let c = list[0] as usize;
            if c > m0 || list[1..1 + c].iter().any(|&x| x as usize >= n) {
                return Err(FormatError::Malformed("layer-0 list"));
            }
        }
        if upper.iter().flatten().flatten().any(|&x| x as usize >= n) {
            return Err(FormatError::Malformed("upper list id"));
        }
        if n > 0 && (entry as usize >= n || levels[entry as usize] as usize != max_level) {
            return Err(FormatError::Malformed("entry point"));
        }
        for lists in &upper {
            for (li, list) in lists.iter().enumerate() {
                if list.iter().any(|&x| (levels[x as usize] as usize) < li + 1) {
                    return Err(FormatError::Malformed("upper list level"));
                }
            }
        }
        Ok(ParsedCheckpoint {
            params,
            space,
            dim,
            rng,
            fp,
            node_seq,
            fps,
            deleted,
            levels,
            layer0,
            upper,
            entry,
            max_level,
        })
    }

    /// Joins the graph with the stored vectors, as [`HnswIndex::from_checkpoint_rows`] does.
    ///
    /// # Errors
    /// [`FormatError::Mismatch`] when `data` does not hold `seqs.len()` rows of the dimension;
    /// `data` is then left as it was.
    pub fn into_index(
        self,
        seqs: &[SeqNo],
        data: &mut Vec<f32>,
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

    /// Checks each node's vector against its fingerprint and builds the index: nodes whose record
    /// is gone or changed become tombstones, records the graph lacks are reported as missing.
    fn attach(self, vectors: Source<'_>) -> (HnswIndex, LoadReport) {
        let ParsedCheckpoint {
            params,
            space,
            dim,
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
        let fm = params.m;
        let mut index = HnswIndex::new(space, dim, params);
        index.rng = rng;
        let m0 = index.m0;
        let n = node_seq.len();
        let mut report = LoadReport::default();
        let mut seq_node = FxHashMap::with_capacity_and_hasher(n, Default::default());
        let mut n_deleted = 0;
        // Fast path: the nodes are the stored rows, in order, all live and unchanged; the rows
        // become the arena as they are.
        let fresh = vectors
            .aligned(&node_seq, &deleted)
            .is_some_and(|aligned| (0..n).all(|i| fp(&aligned[i * dim..(i + 1) * dim]) == fps[i]));
        let vecs = if fresh {
            for (i, seq) in node_seq.iter().enumerate() {
                seq_node.insert(*seq, NodeId(i as u32));
            }
            vectors.into_data()
        } else {
            let mut known: Vec<bool> = vec![false; n];
            let mut vecs: Vec<f32> = crate::memory::huge_vec(n * dim);
            vecs.resize(n * dim, 0.0);
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
                        seq_node.insert(node_seq[i], NodeId(i as u32));
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
            // Tombstones without a vector route through their nearest known neighbour's vector.
            for i in 0..n {
                if known[i] {
                    continue;
                }
                let s = i * (m0 + 1);
                let c = layer0[s] as usize;
                if let Some(&nb) = layer0[s + 1..s + 1 + c]
                    .iter()
                    .find(|&&x| known[x as usize])
                {
                    let (a, b) = (i * dim, nb as usize * dim);
                    vecs.copy_within(b..b + dim, a);
                }
            }
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
                    node_seq,
                    seq_node,
                    deleted,
                    n_deleted,
                    levels,
                    layer0,
                    upper,
                    fm,
                    entry,
                    max_level,
                },
            ),
            report,
        )
    }
}

/// The number of nodes a checkpoint claims (from its header, unverified): a capacity hint for the
/// caller's vector buffer. `None` for anything that does not start like a checkpoint.
pub fn checkpoint_nodes(bytes: &[u8]) -> Option<usize> {
    if bytes.get(..8)? != MAGIC {
        return None;
    }
    let n = bytes.get(32..36)?;
    Some(u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize)
}

/// Where a checkpoint load finds the stored vectors.
enum Source<'a> {
    Map(&'a HashMap<SeqNo, &'a [f32]>),
    Rows {
        seqs: &'a [SeqNo],
        data: &'a mut Vec<f32>,
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

    /// The rows, when they are exactly the checkpoint's nodes in order and none is a tombstone.
    fn aligned(&self, node_seq: &[SeqNo], deleted: &[bool]) -> Option<&[f32]> {
        match self {
            Source::Rows { seqs, data, .. } if *seqs == node_seq && !deleted.iter().any(|d| *d) => {
                Some(data.as_slice())
            }
            _ => None,
        }
    }

    fn into_data(self) -> Vec<f32> {
        match self {
            Source::Rows { data, .. } => std::mem::take(data),
            Source::Map(_) => Vec::new(),
        }
    }
}

/// The validated pieces of a checkpoint, with the vectors in node order.
struct Parts {
    vecs: Vec<f32>,
    node_seq: Vec<SeqNo>,
    seq_node: FxHashMap<SeqNo, NodeId>,
    deleted: Vec<bool>,
    n_deleted: usize,
    levels: Vec<u8>,
    layer0: Vec<u32>,
    upper: Vec<Vec<Vec<u32>>>,
    fm: usize,
    entry: u32,
    max_level: usize,
}

/// Fills `index` from validated parts, deriving norms and int8 codes from the vectors (on two
/// threads: it is most of a load's work).
fn finish(mut index: HnswIndex, p: Parts) -> HnswIndex {
    let n = p.node_seq.len();
    let dim = index.dim;
    let vecs = &p.vecs;
    let half = n / 2;
    let this = &index;
    // Zeroed memory straight from the system: the pages are touched first by the threads below.
    let mut codes = vec![0i8; n * dim];
    crate::memory::advise_huge(&mut codes);
    let derive = |range: std::ops::Range<usize>, codes: &mut [i8]| {
        let mut scales = Vec::with_capacity(range.len());
        let mut inv = Vec::with_capacity(range.len());
        let mut norms2 = Vec::with_capacity(range.len());
        let start = range.start;
        for i in range {
            let v = &vecs[i * dim..(i + 1) * dim];
            let k = i - start;
            inv.push(this.inv_norm(v));
            scales.push(super::quantize_to(v, &mut codes[k * dim..(k + 1) * dim]));
            norms2.push(this.kernels.dot(v, v));
        }
        (scales, inv, norms2)
    };
    let (first, second) = codes.split_at_mut(half * dim);
    let (a, b) = std::thread::scope(|s| {
        let other = std::thread::Builder::new().spawn_scoped(s, || derive(half..n, second));
        let a = derive(0..half, first);
        match other {
            Ok(t) => (a, t.join().ok()),
            Err(_) => (a, None),
        }
    });
    let b = match b {
        Some(b) => b,
        None => {
            let (_, second) = codes.split_at_mut(half * dim);
            derive(half..n, second)
        }
    };
    let (mut scales, mut inv, mut norms2) = a;
    scales.extend(b.0);
    inv.extend(b.1);
    norms2.extend(b.2);
    index.codes = codes;
    index.scales = scales;
    index.inv_norms = inv;
    index.norms2 = norms2;
    index.vectors = p.vecs;
    index.node_seq = p.node_seq;
    index.seq_node = p.seq_node;
    index.deleted = p.deleted;
    index.n_deleted = p.n_deleted;
    index.levels = p.levels;
    index.layer0 = p
        .layer0
        .into_iter()
        .map(std::sync::atomic::AtomicU32::new)
        .collect();
    index.upper_off = Vec::with_capacity(n);
    index.upper = Vec::new();
    for (node, lists) in p.upper.iter().enumerate() {
        index.upper_off.push(index.upper.len() as u32);
        index
            .upper
            .extend((0..lists.len() * (p.fm + 1)).map(|_| std::sync::atomic::AtomicU32::new(0)));
        for (li, list) in lists.iter().enumerate() {
            index.set_list(node as u32, li + 1, list);
        }
    }
    index.locks = (0..n).map(|_| parking_lot::Mutex::new(())).collect();
    index.top = parking_lot::Mutex::new(((n > 0).then_some(NodeId(p.entry)), p.max_level));
    // Repaired again once it grows by a tenth, like a freshly built graph.
    index.repaired_at = n;
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (HnswIndex, Vec<Vec<f32>>) {
        let mut h = HnswIndex::new(
            Space::Cosine,
            3,
            HnswParams {
                m: 4,
                ef_construction: 16,
                ef_search: 16,
                seed: 1,
                threads: 1,
            },
        );
        let vs: Vec<Vec<f32>> = (0..300)
            .map(|i| vec![(i as f32).sin(), (i as f32).cos(), i as f32 * 0.01])
            .collect();
        for (i, v) in vs.iter().enumerate() {
            h.insert(SeqNo(i as u64), v);
        }
        h.remove(SeqNo(5));
        (h, vs)
    }

    /// Record `i` → `vs[i]`, for every `i` not in `skip`.
    fn vectors_except<'a>(vs: &'a [Vec<f32>], skip: &[usize]) -> HashMap<SeqNo, &'a [f32]> {
        vs.iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .map(|(i, v)| (SeqNo(i as u64), v.as_slice()))
            .collect()
    }

    #[test]
    fn round_trip_restores_the_same_answers() {
        let (h, vs) = sample();
        let bytes = h.to_checkpoint();
        assert_eq!(&bytes[..8], MAGIC);
        let map = vectors_except(&vs, &[5]);
        let (back, report) =
            HnswIndex::from_checkpoint(&bytes, Space::Cosine, 3, 4, &map).expect("valid");
        assert_eq!(report, LoadReport::default());
        for q in &vs[..20] {
            assert_eq!(back.search(q, 5), h.search(q, 5));
        }
    }

    #[test]
    fn stored_rows_are_adopted_when_aligned_and_copied_otherwise() {
        let (mut h, vs) = sample();
        h.insert(SeqNo(5), &vs[5]); // re-added: node order now differs from storage order
        let dense = {
            let mut d = HnswIndex::new(Space::Cosine, 3, h.params());
            for (i, v) in vs.iter().enumerate() {
                d.insert(SeqNo(i as u64), v);
            }
            d
        };
        let seqs: Vec<SeqNo> = (0..vs.len() as u64).map(SeqNo).collect();
        let rows = || vs.iter().flatten().copied().collect::<Vec<f32>>();
        for (index, adopted) in [(&dense, true), (&h, false)] {
            let bytes = index.to_checkpoint();
            let mut data = rows();
            let (back, report) =
                HnswIndex::from_checkpoint_rows(&bytes, Space::Cosine, 3, 4, &seqs, &mut data)
                    .expect("valid");
            assert_eq!(report, LoadReport::default());
            assert_eq!(data.is_empty(), adopted);
            for q in &vs[..20] {
                assert_eq!(back.search(q, 5), index.search(q, 5));
            }
        }
        // A damaged file leaves the rows to the caller.
        let mut bytes = dense.to_checkpoint();
        bytes[60] ^= 1;
        let mut data = rows();
        assert!(
            HnswIndex::from_checkpoint_rows(&bytes, Space::Cosine, 3, 4, &seqs, &mut data).is_err()
        );
        assert_eq!(data.len(), vs.len() * 3);
    }

    #[test]
    fn version_1_files_still_load() {
        let (h, vs) = sample();
        let mut bytes = h.to_checkpoint();
        // Rewrite as version 1: the version field and FNV-1a fingerprints, then the CRC.
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let n = 300;
        let node_seq: Vec<u64> = (0..n)
            .map(|i| {
                let at = 52 + 8 * i;
                u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
            })
            .collect();
        for (i, seq) in node_seq.iter().enumerate() {
            let at = 52 + 8 * n + 8 * i;
            let old = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
            let fp = if old == 0 {
                0
            } else {
                fingerprint_v1(&vs[*seq as usize])
            };
            bytes[at..at + 8].copy_from_slice(&fp.to_le_bytes());
        }
        let body_end = bytes.len() - 12;
        let crc = crc32(&bytes[..body_end]);
        bytes[body_end..body_end + 4].copy_from_slice(&crc.to_le_bytes());
        let map = vectors_except(&vs, &[5]);
        let (back, report) =
            HnswIndex::from_checkpoint(&bytes, Space::Cosine, 3, 4, &map).expect("valid v1");
        assert_eq!(report, LoadReport::default());
        for q in &vs[..20] {
            assert_eq!(back.search(q, 5), h.search(q, 5));
        }
    }

    #[test]
    fn fingerprints_see_every_component() {
        for dim in [1, 3, 7, 8, 9, 384] {
            let v: Vec<f32> = (0..dim).map(|i| i as f32 * 0.5 - 1.0).collect();
            let base = fingerprint(&v);
            for i in 0..dim {
                let mut w = v.clone();
                w[i] += 1e-3;
                assert_ne!(fingerprint(&w), base, "dim {dim} component {i}");
            }
            let mut longer = v.clone();
            longer.push(0.0);
            assert_ne!(
                fingerprint(&longer),
                base,
                "a zero component changes the length"
            );
        }
    }

    #[test]
    fn changed_and_new_records_are_reported() {
        let (h, vs) = sample();
        let bytes = h.to_checkpoint();
        let changed = vec![9.0f32, 9.0, 9.0];
        let extra = vec![1.0f32, 2.0, 3.0];
        let mut map = vectors_except(&vs, &[5, 7]);
        map.insert(SeqNo(8), &changed);
        map.insert(SeqNo(1000), &extra);
        let (back, report) =
            HnswIndex::from_checkpoint(&bytes, Space::Cosine, 3, 4, &map).expect("valid");
        assert_eq!(report.stale, 2, "7 deleted, 8 changed");
        assert_eq!(report.missing, vec![SeqNo(8), SeqNo(1000)]);
        assert!(back.get(SeqNo(7)).is_none());
    }

    #[test]
    fn damage_is_detected_never_a_panic() {
        let (h, vs) = sample();
        let bytes = h.to_checkpoint();
        let map = vectors_except(&vs, &[]);
        assert_eq!(
            HnswIndex::from_checkpoint(&bytes[..bytes.len() - 1], Space::Cosine, 3, 4, &map).err(),
            Some(FormatError::Checksum)
        );
        let mut flipped = bytes.clone();
        flipped[100] ^= 0x40;
        assert_eq!(
            HnswIndex::from_checkpoint(&flipped, Space::Cosine, 3, 4, &map).err(),
            Some(FormatError::Checksum)
        );
        assert_eq!(
            HnswIndex::from_checkpoint(b"garbage!", Space::Cosine, 3, 4, &map).err(),
            Some(FormatError::BadMagic)
        );
        assert_eq!(
            HnswIndex::from_checkpoint(&bytes, Space::L2, 3, 4, &map).err(),
            Some(FormatError::Mismatch("space"))
        );
        // Every truncation fails cleanly.
        for cut in (0..bytes.len()).step_by(97) {
            assert!(HnswIndex::from_checkpoint(&bytes[..cut], Space::Cosine, 3, 4, &map).is_err());
        }
    }
}
