//! The vector file reader (`vectorfile::parse_header`, `VectorFile::from_bytes`, `verify`) and
//! the index made from a graph and a vector file (`ParsedCheckpoint::match_vector_file`,
//! `into_index_mapped`), whose vectors, codes, scales and norms are whatever the file holds.

use ochre_index::hnsw::format::{crc32, ParsedCheckpoint};
use ochre_index::hnsw::vectorfile::{parse_header, VectorFile, HEADER_BYTES};
use ochre_index::HnswIndex;
use ochre_types::{HnswConfig, SeqNo, Space};

/// Largest dimension and node count joined with a graph (the file's size bounds both anyway).
const MAX_DIM: usize = 64;
const MAX_NODES: usize = 256;

/// The control byte in front of the file's bytes.
const RESEAL: u8 = 1;
const COSINE: u8 = 2;
const IP: u8 = 4;

/// One byte of controls, then vector file bytes. The controls say whether to rewrite the header
/// and payload checksums (so mutations reach past them) and which space the graph joined with the
/// file uses. The shape asked for is the header's own; a file that reads and verifies is joined
/// with a graph of as many nodes, which then serves searches, inserts, removes and a rebuild, and
/// writes a checkpoint and a vector file that read back.
pub fn vectors(data: &[u8]) {
    let Some((&ctrl, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if ctrl & RESEAL != 0 {
        reseal(&mut bytes);
    }
    let Ok(header) = parse_header(&bytes) else {
        return;
    };
    let (dim, nodes) = (header.dim, header.nodes);
    let Ok(file) = VectorFile::from_bytes(&bytes, dim, nodes, &header.pairing) else {
        return;
    };
    assert_eq!(file.nodes(), nodes);
    if file.verify().is_err() || dim > MAX_DIM || nodes > MAX_NODES {
        return;
    }
    let space = if ctrl & COSINE != 0 {
        Space::Cosine
    } else if ctrl & IP != 0 {
        Space::Ip
    } else {
        Space::L2
    };
    let config = HnswConfig {
        space,
        max_neighbors: 4,
        num_threads: 1,
        ..Default::default()
    };
    let mut graph = HnswIndex::new(dim, &config);
    for s in 0..nodes as u64 {
        graph.insert(SeqNo(s), &crate::vector_of(s, dim));
    }
    let checkpoint = graph.to_checkpoint();
    let parsed = match ParsedCheckpoint::parse(&checkpoint, dim, &config) {
        Ok(p) => p,
        Err(e) => panic!("a fresh checkpoint does not parse: {e}"),
    };
    let seqs: Vec<SeqNo> = (0..nodes as u64).map(SeqNo).collect();
    let live = match parsed.match_vector_file(&seqs, &file) {
        Ok(live) => live,
        Err(e) => panic!("a file of the graph's shape does not match it: {e}"),
    };
    let mut index = parsed.into_index_mapped(live, file);
    assert_eq!((index.nodes(), index.len()), (nodes, nodes));
    search(&index, dim);
    index.remove(SeqNo(0));
    index.insert(SeqNo(nodes as u64 + 1), &crate::vector_of(7, dim));
    search(&index, dim);
    if index.needs_rebuild() {
        index = index.rebuilt(1);
        search(&index, dim);
    }
    let again = index.to_checkpoint();
    if let Err(e) = ParsedCheckpoint::parse(&again, dim, &config) {
        panic!("an index from a vector file writes a checkpoint it cannot read: {e}");
    }
    let mut out = Vec::new();
    if let Err(e) = index.write_vector_file(&mut out, header.pairing) {
        panic!("writing a vector file into memory failed: {e}");
    }
    if let Err(e) =
        VectorFile::from_bytes(&out, dim, index.nodes(), &header.pairing).and_then(|v| v.verify())
    {
        panic!("a written vector file does not read back: {e}");
    }
}

/// Rewrites the header CRC and, when the header's shape fits the file, the payload CRC.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_BYTES {
        return;
    }
    let crc = crc32(&bytes[..48]);
    bytes[48..52].copy_from_slice(&crc.to_le_bytes());
    let Ok(h) = parse_header(bytes) else {
        return;
    };
    // The layout of docs/format/vectors.md.
    let values = h.dim.saturating_mul(h.nodes);
    let pad = |x: usize| x.div_ceil(4096).saturating_mul(4096);
    let codes = pad(4096usize.saturating_add(values.saturating_mul(4)));
    let scales = pad(codes.saturating_add(values));
    let trailer = scales.saturating_add(h.nodes.saturating_mul(8));
    if trailer.saturating_add(16) != bytes.len() {
        return;
    }
    let mut payload = bytes[4096..4096 + values * 4].to_vec();
    payload.extend_from_slice(&bytes[codes..codes + values]);
    payload.extend_from_slice(&bytes[scales..trailer]);
    let crc = crc32(&payload);
    bytes[trailer..trailer + 4].copy_from_slice(&crc.to_le_bytes());
}

fn search(index: &HnswIndex, dim: usize) {
    for (q, k) in [(0u64, 1usize), (3, 5), (u64::MAX, index.len() + 1)] {
        let hits = index.search(&crate::vector_of(q, dim), k);
        assert!(
            hits.len() <= k.min(index.len()),
            "{} hits for k {k}",
            hits.len()
        );
        for h in &hits {
            assert!(index.get(h.seq).is_some(), "a hit is a live record");
        }
    }
}
