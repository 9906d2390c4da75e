//! The bytes of the HNSW checkpoint file (docs/format/hnsw.md): graph, node ↔ sequence-number
//! map and a fingerprint of each node's vector. This module writes them and reads them back
//! into a checked [`ParsedCheckpoint`]; joining that with the store's vectors is
//! [`super::load`]'s job.

#![deny(
    clippy::wildcard_enum_match_arm,
    reason = "a new space, version or error variant must be handled wherever the checkpoint bytes are read or written"
)]

use ochre_types::{HnswConfig, SeqNo, Space};

use super::HnswIndex;

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
    crc32fast::hash(bytes)
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
        let n = self.nodes.len();
        let m0 = self.graph.m0;
        let mut out = Vec::with_capacity(64 + n * (8 + 8 + 2 + (m0 + 1) * 4));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(space_code(self.space));
        out.extend_from_slice(&[0, 0, 0]);
        let (entry, max_level) = self.graph.top();
        for v in [
            self.dim as u32,
            self.graph.m as u32,
            self.knobs.ef_construction as u32,
            self.knobs.ef_search as u32,
            n as u32,
            entry.unwrap_or(u32::MAX),
            max_level as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.levels.state().to_le_bytes());
        for s in &self.nodes.seq {
            out.extend_from_slice(&s.0.to_le_bytes());
        }
        for i in 0..n {
            let fp = if self.nodes.deleted[i] {
                0
            } else {
                fingerprint(self.rows.row(i as u32))
            };
            out.extend_from_slice(&fp.to_le_bytes());
        }
        out.extend(self.nodes.deleted.iter().map(|d| u8::from(*d)));
        out.extend_from_slice(self.graph.levels());
        for x in self.graph.layer0_slots() {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for (i, &level) in self.graph.levels().iter().enumerate() {
            for layer in 1..=level as usize {
                let list = self.graph.list(i as u32, layer);
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
}

/// A checkpoint whose bytes have been read and checked (checksum, version, shape, every list in
/// range) but not yet joined with the stored vectors. Parsing needs no vectors, so recovery does
/// it while the records are still being read.
pub struct ParsedCheckpoint {
    pub(super) config: HnswConfig,
    pub(super) dim: usize,
    pub(super) m: usize,
    pub(super) rng: u64,
    pub(super) fp: fn(&[f32]) -> u64,
    pub(super) node_seq: Vec<SeqNo>,
    pub(super) fps: Vec<u64>,
    pub(super) deleted: Vec<bool>,
    pub(super) levels: Vec<u8>,
    /// Layer-0 lists in slot layout (`2m + 1` per node).
    pub(super) layer0: Vec<u32>,
    pub(super) upper: Vec<Vec<Vec<u32>>>,
    pub(super) entry: u32,
    pub(super) max_level: usize,
}

impl ParsedCheckpoint {
    /// Reads and checks a checkpoint for an index of dimension `dim` with `config`'s space and
    /// graph degree.
    ///
    /// # Errors
    /// [`FormatError`] when the bytes are not a valid checkpoint of this shape.
    pub fn parse(bytes: &[u8], dim: usize, config: &HnswConfig) -> Result<Self, FormatError> {
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
        if code != space_code(config.space) {
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
        if fm != config.graph_degree() {
            return Err(FormatError::Mismatch("max_neighbors"));
        }
        // The beams are the caller's (the configuration's) from here on; the file's are only
        // informative.
        let _ = (ef_construction, ef_search);
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
        let parsed = ParsedCheckpoint {
            config: config.clone(),
            dim,
            m: fm,
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
        };
        parsed.check_structure()?;
        Ok(parsed)
    }

    /// The graph's own consistency: every id in range, counts within bounds, upper-layer
    /// neighbours present on their layer, the entry node on the top level.
    fn check_structure(&self) -> Result<(), FormatError> {
        let (n, m0) = (self.node_seq.len(), 2 * self.m);
        let levels = &self.levels;
        if self.fps.len() != n
            || self.deleted.len() != n
            || levels.len() != n
            || self.upper.len() != n
        {
            return Err(FormatError::Malformed("node count"));
        }
        if self.layer0.len() != n * (m0 + 1) {
            return Err(FormatError::Malformed("layer-0 list"));
        }
        for list in self.layer0.chunks_exact(m0 + 1) {
            let c = list[0] as usize;
            if c > m0 || list[1..1 + c].iter().any(|&x| x as usize >= n) {
                return Err(FormatError::Malformed("layer-0 list"));
            }
        }
        for (lists, &level) in self.upper.iter().zip(levels) {
            if level > 31 || lists.len() != level as usize {
                return Err(FormatError::Malformed("level"));
            }
            for (li, list) in lists.iter().enumerate() {
                if list.len() > self.m {
                    return Err(FormatError::Malformed("upper list length"));
                }
                if list.iter().any(|&x| x as usize >= n) {
                    return Err(FormatError::Malformed("upper list id"));
                }
                if list.iter().any(|&x| (levels[x as usize] as usize) < li + 1) {
                    return Err(FormatError::Malformed("upper list level"));
                }
            }
        }
        let (entry, max_level) = (self.entry, self.max_level);
        if n > 0 && (entry as usize >= n || levels[entry as usize] as usize != max_level) {
            return Err(FormatError::Malformed("entry point"));
        }
        Ok(())
    }
}

/// A graph built by another HNSW implementation (Chroma's hnswlib files, say), to be adopted as
/// it is rather than built again: node `i` stands for the record `nodes[i]` (`None`: a deleted
/// node, kept to route through), lives on layers `0..=levels[i]`, and has the neighbours
/// `layer0[i]` on layer 0 (at most `2m`) and `upper[i][l - 1]` on layer `l` (at most `m`).
/// Records are named by sequence number here; a caller that knows them by another name (the
/// engine, by id) holds a `PrebuiltGraph<Name>` and [`PrebuiltGraph::map_nodes`] it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrebuiltGraph<N = SeqNo> {
    /// The upper layers' degree; layer 0 has twice it. Must be the index's `max_neighbors`.
    pub m: usize,
    pub nodes: Vec<Option<N>>,
    pub levels: Vec<u8>,
    pub layer0: Vec<Vec<u32>>,
    pub upper: Vec<Vec<Vec<u32>>>,
    /// The node searches start from (on the top layer).
    pub entry: u32,
    pub max_level: usize,
}

/// The level generator's state for an adopted graph (any non-zero value will do).
const ADOPTED_RNG: u64 = 0x9e37_79b9_7f4a_7c15;

impl<N> PrebuiltGraph<N> {
    /// The same graph with each node's record renamed by `f` (`None`: no such record, the node
    /// becomes a tombstone).
    pub fn map_nodes<M>(self, mut f: impl FnMut(N) -> Option<M>) -> PrebuiltGraph<M> {
        PrebuiltGraph {
            m: self.m,
            nodes: self.nodes.into_iter().map(|n| n.and_then(&mut f)).collect(),
            levels: self.levels,
            layer0: self.layer0,
            upper: self.upper,
            entry: self.entry,
            max_level: self.max_level,
        }
    }
}

impl PrebuiltGraph {
    /// The graph as a checked [`ParsedCheckpoint`] for an index of dimension `dim` with `config`,
    /// each live node's fingerprint taken from `vectors` (a node whose record is not there
    /// will be a tombstone).
    ///
    /// # Errors
    /// [`FormatError::Mismatch`] when `m` is not the configuration's graph degree;
    /// [`FormatError::Malformed`] for an inconsistent graph (an id out of range, a list too long,
    /// an upper-layer neighbour missing from that layer, an entry node not on the top level).
    pub fn into_checkpoint(
        self,
        dim: usize,
        config: &HnswConfig,
        vectors: &std::collections::HashMap<SeqNo, &[f32]>,
    ) -> Result<ParsedCheckpoint, FormatError> {
        let PrebuiltGraph {
            m,
            nodes,
            levels,
            layer0,
            upper,
            entry,
            max_level,
        } = self;
        if m != config.graph_degree() {
            return Err(FormatError::Mismatch("max_neighbors"));
        }
        let n = nodes.len();
        if layer0.len() != n {
            return Err(FormatError::Malformed("layer-0 list"));
        }
        let m0 = 2 * m;
        let mut slots = Vec::with_capacity(n * (m0 + 1));
        for list in &layer0 {
            if list.len() > m0 {
                return Err(FormatError::Malformed("layer-0 list"));
            }
            slots.push(list.len() as u32);
            slots.extend_from_slice(list);
            slots.resize(slots.len() + m0 - list.len(), 0);
        }
        let fps = nodes
            .iter()
            .map(|s| {
                s.and_then(|s| vectors.get(&s))
                    .map_or(0, |v| fingerprint(v))
            })
            .collect();
        let parsed = ParsedCheckpoint {
            config: config.clone(),
            dim,
            m,
            rng: ADOPTED_RNG,
            fp: fingerprint,
            deleted: nodes.iter().map(Option::is_none).collect(),
            node_seq: nodes.into_iter().map(|s| s.unwrap_or(SeqNo(0))).collect(),
            fps,
            levels,
            layer0: slots,
            upper,
            entry,
            max_level,
        };
        parsed.check_structure()?;
        Ok(parsed)
    }
}

/// The number of nodes a checkpoint claims (from its header, unverified): a capacity hint for the
/// caller's vector buffer, never more than the file could hold (each node takes at least 18
/// bytes). `None` for anything that does not start like a checkpoint.
pub fn checkpoint_nodes(bytes: &[u8]) -> Option<usize> {
    if bytes.get(..8)? != MAGIC {
        return None;
    }
    let n = bytes.get(32..36)?;
    let claimed = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
    Some(claimed.min(bytes.len() / 18))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn crc_is_the_ieee_polynomial() {
        // The check value of CRC-32/ISO-HDLC, which format versions 1 and 2 use.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn the_claimed_node_count_is_bounded_by_the_file() {
        let mut bytes = vec![0u8; 64];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(checkpoint_nodes(&bytes), Some(64 / 18));
        assert_eq!(checkpoint_nodes(b"garbage!"), None);
    }
}
