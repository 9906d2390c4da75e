//! The HNSW checkpoint reader (`ParsedCheckpoint::parse`) and the loader that joins it with the
//! stored vectors (`HnswIndex::from_checkpoint`, `from_checkpoint_rows`).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use ochre_index::hnsw::format::{checkpoint_nodes, crc32, ParsedCheckpoint, END_MAGIC};
use ochre_index::HnswIndex;
use ochre_types::{HnswConfig, SeqNo, Space};

/// The largest dimension the harness asks for: the loader's memory is nodes × dimension, and
/// the node count is bounded by the file, so a small dimension keeps every input cheap.
const MAX_DIM: usize = 64;

/// Byte offsets in the checkpoint header (docs/format/hnsw.md).
const SPACE_AT: usize = 12;
const DIM_AT: usize = 16;
const M_AT: usize = 20;
const NODES_AT: usize = 32;
const SEQS_AT: usize = 52;

/// The control byte in front of the checkpoint bytes.
const RESEAL: u8 = 1;
const ROWS: u8 = 2;
const DROP_SOME: u8 = 4;
const CHANGE_SOME: u8 = 8;
const EXTRA_RECORDS: u8 = 16;
const OTHER_DIM: u8 = 32;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The stored vector of `seq` (what the corpus generator, `tests/corpus.rs`, wrote the
/// checkpoints' fingerprints from).
pub fn vector_of(seq: u64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| {
            let h =
                (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (j as u64)).wrapping_mul(0xff51_afd7);
            ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// One byte of controls, then checkpoint bytes. The controls say whether to rewrite the checksum
/// and end marker (so that mutations reach past the checksum), which vectors the store holds
/// (all of the checkpoint's, some dropped or changed, some records the checkpoint lacks) and in
/// which form (a map, or rows in storage order). The shape asked for is the header's own (space,
/// dimension up to [`MAX_DIM`], degree), or another dimension.
pub fn checkpoint(data: &[u8]) {
    let Some((&ctrl, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if ctrl & RESEAL != 0 && bytes.len() >= 12 {
        let body = bytes.len() - 12;
        let crc = crc32(&bytes[..body]);
        bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        bytes[body + 4..].copy_from_slice(END_MAGIC);
    }
    let _ = checkpoint_nodes(&bytes);
    let space = match bytes.get(SPACE_AT) {
        Some(1) => Space::Cosine,
        Some(2) => Space::Ip,
        _ => Space::L2,
    };
    let header_dim = u32_at(&bytes, DIM_AT).unwrap_or(8) as usize;
    let dim = if ctrl & OTHER_DIM != 0 {
        header_dim % 7 + 1
    } else {
        header_dim.clamp(1, MAX_DIM)
    };
    let config = HnswConfig {
        space,
        max_neighbors: u64::from(u32_at(&bytes, M_AT).unwrap_or(16)),
        num_threads: 1,
        ..Default::default()
    };
    if ParsedCheckpoint::parse(&bytes, dim, &config).is_err() {
        return;
    }
    // Parsed: the header's node count and sequence numbers are what the file says.
    let n = u32_at(&bytes, NODES_AT).unwrap_or(0) as usize;
    let seqs: Vec<u64> = (0..n)
        .filter_map(|i| {
            let at = SEQS_AT + 8 * i;
            let b = bytes.get(at..at + 8)?;
            Some(u64::from_le_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ]))
        })
        .collect();
    assert_eq!(
        seqs.len(),
        n,
        "a parsed checkpoint holds its sequence numbers"
    );

    // The store: each record once (the store's rowids are unique), in storage order.
    let mut seen = HashSet::new();
    let mut store: Vec<(SeqNo, Vec<f32>)> = Vec::new();
    for (i, &s) in seqs.iter().enumerate() {
        if !seen.insert(s) || (ctrl & DROP_SOME != 0 && i % 3 == 0) {
            continue;
        }
        let mut v = vector_of(s, dim);
        if ctrl & CHANGE_SOME != 0 && i % 4 == 1 {
            v[0] += 1.0;
        }
        store.push((SeqNo(s), v));
    }
    if ctrl & EXTRA_RECORDS != 0 {
        let top = seqs.iter().copied().max().unwrap_or(0);
        for s in [top.wrapping_add(1), top.wrapping_add(2)] {
            if seen.insert(s) {
                store.push((SeqNo(s), vector_of(s, dim)));
            }
        }
    }
    store.sort_by_key(|(s, _)| *s);

    let loaded = if ctrl & ROWS != 0 {
        let order: Vec<SeqNo> = store.iter().map(|(s, _)| *s).collect();
        let mut data = ochre_index::memory::Arena::from(
            store
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .collect::<Vec<f32>>(),
        );
        HnswIndex::from_checkpoint_rows(&bytes, dim, &config, &order, &mut data)
    } else {
        let map: HashMap<SeqNo, &[f32]> = store.iter().map(|(s, v)| (*s, v.as_slice())).collect();
        HnswIndex::from_checkpoint(&bytes, dim, &config, &map)
    };
    let (mut index, report) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => panic!("a checkpoint that parses does not load: {e}"),
    };
    assert_eq!(index.nodes(), n);
    assert!(
        report.missing.windows(2).all(|w| w[0] < w[1]),
        "missing records are sorted and distinct"
    );
    assert_eq!(
        index.len() + report.missing.len(),
        store.len(),
        "every stored record is either in the graph or reported missing"
    );

    // The caller inserts what is missing, then the index serves queries and writes.
    let vectors: HashMap<SeqNo, &[f32]> = store.iter().map(|(s, v)| (*s, v.as_slice())).collect();
    for seq in &report.missing {
        if let Some(v) = vectors.get(seq) {
            index.insert(*seq, v);
        }
    }
    assert_eq!(index.len(), store.len());
    search(&index, dim, store.len());
    if let Some((s, _)) = store.first() {
        index.remove(*s);
    }
    let extra = SeqNo(u64::MAX - 1);
    index.insert(extra, &vector_of(extra.0, dim));
    search(&index, dim, index.len());
    if index.needs_rebuild() {
        index = index.rebuilt(1);
        search(&index, dim, index.len());
    }
    // What it writes reads back.
    let again = index.to_checkpoint();
    if let Err(e) = ParsedCheckpoint::parse(&again, dim, &config) {
        panic!("a loaded index writes a checkpoint it cannot read: {e}");
    }
}

fn search(index: &HnswIndex, dim: usize, live: usize) {
    for (q, k) in [(0u64, 1usize), (7, 5), (u64::MAX, live + 1)] {
        let hits = index.search(&vector_of(q, dim), k);
        assert!(hits.len() <= k.min(live), "{} hits for k {k}", hits.len());
        assert!(
            hits.windows(2)
                .all(|w| w[0].distance.partial_cmp(&w[1].distance) != Some(Ordering::Greater)),
            "hits are sorted by distance"
        );
        let distinct: HashSet<SeqNo> = hits.iter().map(|h| h.seq).collect();
        assert_eq!(distinct.len(), hits.len(), "a record is returned once");
        for h in &hits {
            assert!(index.get(h.seq).is_some(), "a hit is a live record");
        }
    }
}
