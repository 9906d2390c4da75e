//! Checkpoint round trips and reconciliation with the store's vectors.

use std::collections::HashMap;

use ochre_types::{HnswConfig, SeqNo, Space};

use crate::hnsw::format::{crc32, fingerprint_v1, FormatError, ParsedCheckpoint, MAGIC};
use crate::hnsw::vectorfile::{Pairing, VectorFile, VectorFileError};
use crate::hnsw::{HnswIndex, LoadReport};
use crate::memory::Arena;

/// A small cosine graph of degree 4.
fn config() -> HnswConfig {
    HnswConfig {
        space: Space::Cosine,
        max_neighbors: 4,
        ef_construction: 16,
        ef_search: 16,
        num_threads: 1,
        ..HnswConfig::default()
    }
}

fn sample() -> (HnswIndex, Vec<Vec<f32>>) {
    let mut h = HnswIndex::new(3, &config());
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
    let (back, report) = HnswIndex::from_checkpoint(&bytes, 3, &config(), &map).expect("valid");
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
        let mut d = HnswIndex::new(3, &config());
        for (i, v) in vs.iter().enumerate() {
            d.insert(SeqNo(i as u64), v);
        }
        d
    };
    let seqs: Vec<SeqNo> = (0..vs.len() as u64).map(SeqNo).collect();
    let rows = || Arena::from(vs.iter().flatten().copied().collect::<Vec<f32>>());
    for (index, adopted) in [(&dense, true), (&h, false)] {
        let bytes = index.to_checkpoint();
        let mut data = rows();
        let (back, report) =
            HnswIndex::from_checkpoint_rows(&bytes, 3, &config(), &seqs, &mut data).expect("valid");
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
    assert!(HnswIndex::from_checkpoint_rows(&bytes, 3, &config(), &seqs, &mut data).is_err());
    assert_eq!(data.len(), vs.len() * 3);
}

#[test]
fn an_aligned_row_whose_vector_changed_is_not_adopted() {
    // The rows line up with the nodes, but one vector changed under the same sequence number
    // (an update after the checkpoint): its fingerprint, checked while norms and codes are
    // derived, sends the load down the copying path, where that node becomes a tombstone.
    let vs: Vec<Vec<f32>> = (0..300)
        .map(|i| {
            let x = i as f32;
            vec![x.sin(), x.cos(), (x * 0.37).sin()]
        })
        .collect();
    let mut h = HnswIndex::new(3, &config());
    for (i, v) in vs.iter().enumerate() {
        h.insert(SeqNo(i as u64), v);
    }
    let bytes = h.to_checkpoint();
    let seqs: Vec<SeqNo> = (0..vs.len() as u64).map(SeqNo).collect();
    for changed in [0usize, 149, 150, 299] {
        let mut now = vs.clone();
        now[changed] = vec![9.0, -9.0, 9.0];
        let mut data = Arena::from(now.iter().flatten().copied().collect::<Vec<f32>>());
        let (mut back, report) =
            HnswIndex::from_checkpoint_rows(&bytes, 3, &config(), &seqs, &mut data).expect("valid");
        assert_eq!(report.stale, 1, "row {changed}");
        assert_eq!(report.missing, vec![SeqNo(changed as u64)]);
        assert!(
            !data.is_empty(),
            "row {changed}: the rows were copied, not adopted"
        );
        back.insert(SeqNo(changed as u64), &now[changed]);
        assert_eq!(back.search(&now[changed], 1)[0].seq, SeqNo(changed as u64));
        for (i, q) in now.iter().enumerate().step_by(37) {
            assert_eq!(
                back.search(q, 1)[0].seq,
                SeqNo(i as u64),
                "row {changed}, query {i}"
            );
        }
    }
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
    let (back, report) = HnswIndex::from_checkpoint(&bytes, 3, &config(), &map).expect("valid v1");
    assert_eq!(report, LoadReport::default());
    for q in &vs[..20] {
        assert_eq!(back.search(q, 5), h.search(q, 5));
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
    let (back, report) = HnswIndex::from_checkpoint(&bytes, 3, &config(), &map).expect("valid");
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
        HnswIndex::from_checkpoint(&bytes[..bytes.len() - 1], 3, &config(), &map).err(),
        Some(FormatError::Checksum)
    );
    let mut flipped = bytes.clone();
    flipped[100] ^= 0x40;
    assert_eq!(
        HnswIndex::from_checkpoint(&flipped, 3, &config(), &map).err(),
        Some(FormatError::Checksum)
    );
    assert_eq!(
        HnswIndex::from_checkpoint(b"garbage!", 3, &config(), &map).err(),
        Some(FormatError::BadMagic)
    );
    assert_eq!(
        HnswIndex::from_checkpoint(
            &bytes,
            3,
            &HnswConfig {
                space: Space::L2,
                ..config()
            },
            &map
        )
        .err(),
        Some(FormatError::Mismatch("space"))
    );
    // Every truncation fails cleanly.
    for cut in (0..bytes.len()).step_by(97) {
        assert!(HnswIndex::from_checkpoint(&bytes[..cut], 3, &config(), &map).is_err());
    }
}

#[test]
fn a_loaded_graph_writes_back_the_same_bytes() {
    // Levels, lists, entry point, tombstones and the level generator's state all survive a load:
    // written again with the same configuration, the checkpoint is byte for byte the same.
    let (h, vs) = sample();
    let bytes = h.to_checkpoint();
    let (back, _) = HnswIndex::from_checkpoint(&bytes, 3, &config(), &vectors_except(&vs, &[5]))
        .expect("valid");
    assert!(
        back.to_checkpoint() == bytes,
        "checkpoint changed by a load"
    );
}

#[test]
fn a_loaded_graph_is_walked_like_the_original() {
    // Large enough that searches walk the graph instead of scanning (EXACT_SCAN_BELOW).
    let dim = 8;
    let vs: Vec<Vec<f32>> = (0..3000)
        .map(|i| {
            (0..dim)
                .map(|j| ((i * 7 + j * 13) as f32 * 0.37).sin())
                .collect()
        })
        .collect();
    let cfg = HnswConfig {
        max_neighbors: 8,
        ef_search: 20,
        num_threads: 1,
        ..HnswConfig::default()
    };
    let mut h = HnswIndex::new(dim, &cfg);
    for (i, v) in vs.iter().enumerate() {
        h.insert(SeqNo(i as u64), v);
    }
    assert!(h.len() >= crate::hnsw::EXACT_SCAN_BELOW);
    let bytes = h.to_checkpoint();
    let seqs: Vec<SeqNo> = (0..vs.len() as u64).map(SeqNo).collect();
    let mut data = Arena::from(vs.iter().flatten().copied().collect::<Vec<f32>>());
    let (back, report) =
        HnswIndex::from_checkpoint_rows(&bytes, dim, &cfg, &seqs, &mut data).expect("valid");
    assert_eq!(report, LoadReport::default());
    for q in vs.iter().step_by(97) {
        assert_eq!(back.search(q, 10), h.search(q, 10));
    }
    assert!(back.to_checkpoint() == bytes);
}

/// `h`'s graph as another implementation would hand it over.
fn prebuilt(h: &HnswIndex) -> crate::hnsw::format::PrebuiltGraph {
    let n = h.nodes.seq.len();
    let (entry, max_level) = h.graph.top();
    crate::hnsw::format::PrebuiltGraph {
        m: h.graph.m,
        nodes: (0..n)
            .map(|i| (!h.nodes.deleted[i]).then_some(h.nodes.seq[i]))
            .collect(),
        levels: h.graph.levels().to_vec(),
        layer0: (0..n as u32).map(|i| h.graph.list(i, 0)).collect(),
        upper: (0..n as u32)
            .map(|i| (1..=h.graph.level(i)).map(|l| h.graph.list(i, l)).collect())
            .collect(),
        entry: entry.unwrap_or(0),
        max_level,
    }
}

#[test]
fn an_adopted_graph_answers_like_the_one_it_came_from() {
    let (h, vs) = sample();
    let map = vectors_except(&vs, &[5]);
    let parsed = prebuilt(&h)
        .into_checkpoint(3, &config(), &map)
        .expect("a consistent graph");
    let (back, report) = parsed.into_index_map(&map);
    assert_eq!(report, LoadReport::default());
    assert_eq!(back.len(), h.len());
    for q in &vs[..40] {
        assert_eq!(back.search(q, 5), h.search(q, 5));
    }
    // A record the graph does not know is reported for insertion; one it names but that is
    // not there becomes a tombstone.
    let mut fewer = map.clone();
    fewer.remove(&SeqNo(7));
    let extra = [9.0, 9.0, 9.0];
    fewer.insert(SeqNo(1000), &extra);
    let (_, report) = prebuilt(&h)
        .into_checkpoint(3, &config(), &fewer)
        .expect("consistent")
        .into_index_map(&fewer);
    assert_eq!((report.stale, report.missing), (1, vec![SeqNo(1000)]));
}

#[test]
fn an_inconsistent_graph_is_refused_not_adopted() {
    let (h, vs) = sample();
    let map = vectors_except(&vs, &[5]);
    let good = prebuilt(&h);
    let n = good.nodes.len() as u32;
    let mut cases: Vec<(&str, crate::hnsw::format::PrebuiltGraph)> = Vec::new();
    let mut g = good.clone();
    g.layer0[3].push(n);
    cases.push(("a layer-0 id out of range", g));
    let mut g = good.clone();
    g.layer0[3] = (0..9).collect();
    cases.push(("a layer-0 list longer than 2m", g));
    let mut g = good.clone();
    g.m = 5;
    cases.push(("another degree", g));
    let mut g = good.clone();
    g.entry = n;
    cases.push(("an entry out of range", g));
    let mut g = good.clone();
    g.max_level += 1;
    cases.push(("an entry not on the top level", g));
    let mut g = good.clone();
    let low = (0..n as usize)
        .find(|&i| g.levels[i] == 0)
        .expect("a level-0 node");
    let high = (0..n as usize)
        .find(|&i| g.levels[i] > 0)
        .expect("an upper node");
    g.upper[high][0].push(low as u32);
    cases.push(("an upper neighbour not on that layer", g));
    let mut g = good.clone();
    g.levels[high] += 1;
    cases.push(("a level without its lists", g));
    let mut g = good;
    g.nodes.pop();
    cases.push(("fewer nodes than lists", g));
    for (what, g) in cases {
        assert!(
            g.into_checkpoint(3, &config(), &map).is_err(),
            "{what} was adopted"
        );
    }
}

#[test]
fn deferred_links_answer_exactly_then_link_as_an_ordinary_build() {
    let (h, vs) = sample();
    let items: Vec<(SeqNo, &[f32])> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| (SeqNo(i as u64), v.as_slice()))
        .collect();
    let mut d = HnswIndex::new(3, &config());
    d.defer_links(true);
    d.insert_batch(&items[..150], 1);
    for (s, v) in &items[150..] {
        d.insert(*s, v);
    }
    d.remove(SeqNo(5));
    assert!(d.has_unlinked());
    assert_eq!(d.len(), h.len());
    for q in &vs[..20] {
        let exact = d.search(q, 5);
        assert_eq!(exact.len(), 5);
        assert!(exact.windows(2).all(|w| w[0].distance <= w[1].distance));
        assert!(!exact.iter().any(|n| n.seq == SeqNo(5)));
    }
    d.link_deferred();
    assert!(!d.has_unlinked());
    // Linked in the same order on one thread: the same graph as inserting one by one.
    assert!(d.to_checkpoint() == h.to_checkpoint());
}

#[test]
fn a_deferred_index_adopts_a_graph_built_elsewhere() {
    let (h, vs) = sample();
    let mut d = HnswIndex::new(3, &config());
    d.defer_links(true);
    let items: Vec<(SeqNo, &[f32])> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| (SeqNo(i as u64), v.as_slice()))
        .collect();
    d.insert_batch(&items, 1);
    d.remove(SeqNo(5));
    let extra = [0.5, 0.5, 9.0];
    d.insert(SeqNo(500), &extra);
    let report = d.adopt(prebuilt(&h)).expect("adopted");
    assert_eq!((report.stale, report.missing), (0, vec![SeqNo(500)]));
    assert!(!d.has_unlinked());
    assert_eq!(d.len(), h.len() + 1);
    for q in &vs[..40] {
        let got: Vec<SeqNo> = d.search(q, 5).iter().map(|n| n.seq).collect();
        let want: Vec<SeqNo> = h.search(q, 5).iter().map(|n| n.seq).collect();
        assert_eq!(got, want);
    }
    assert_eq!(d.search(&extra, 1)[0].seq, SeqNo(500));
    // A graph that does not fit leaves the index as it was.
    let mut bad = prebuilt(&h);
    bad.m = 7;
    let before = d.to_checkpoint();
    assert!(d.adopt(bad).is_err());
    assert!(d.to_checkpoint() == before);
}

#[test]
fn an_adopted_graph_is_walked_like_its_source() {
    // Above EXACT_SCAN_BELOW, so searches walk the adopted lists.
    let dim = 8;
    let vs: Vec<Vec<f32>> = (0..3000)
        .map(|i| {
            (0..dim)
                .map(|j| ((i * 7 + j * 13) as f32 * 0.37).sin())
                .collect()
        })
        .collect();
    let cfg = HnswConfig {
        max_neighbors: 8,
        ef_search: 20,
        num_threads: 1,
        ..HnswConfig::default()
    };
    let items: Vec<(SeqNo, &[f32])> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| (SeqNo(i as u64), v.as_slice()))
        .collect();
    let mut h = HnswIndex::new(dim, &cfg);
    h.insert_batch(&items, 1);
    let mut d = HnswIndex::new(dim, &cfg);
    d.defer_links(true);
    d.insert_batch(&items, 1);
    assert!(d.len() >= crate::hnsw::EXACT_SCAN_BELOW && d.has_unlinked());
    let report = d.adopt(prebuilt(&h)).expect("adopted");
    assert_eq!(report, LoadReport::default());
    // The same lists, entry and levels: the same walks.
    let (ge, gl) = (d.graph.top(), h.graph.top());
    assert_eq!(ge, gl);
    for n in (0..3000u32).step_by(37) {
        assert_eq!(d.graph.list(n, 0), h.graph.list(n, 0));
    }
    let same = vs
        .iter()
        .step_by(31)
        .filter(|q| d.search(q, 10) == h.search(q, 10))
        .count();
    assert_eq!(same, vs.iter().step_by(31).count());
}

#[test]
fn adoption_renumbers_the_graph_and_leaves_the_vectors_in_place() {
    // The records arrive in another order than the graph's nodes, one the graph names is not
    // here, one here is not in the graph, and the index was already linked once: every record
    // keeps its node and vector, the graph's lists are renumbered to them, and the graph's
    // tombstones come after the records (so checkpoints reload without a copy).
    let (h, vs) = sample();
    let mut d = HnswIndex::new(3, &config());
    for i in (0..vs.len()).rev().filter(|&i| i != 5 && i != 17) {
        d.insert(SeqNo(i as u64), &vs[i]);
    }
    let extra = [0.25, -0.5, 4.0];
    d.insert(SeqNo(900), &extra);
    d.remove(SeqNo(40));
    let before: HashMap<SeqNo, u32> = d.nodes.by_seq.clone().into_iter().collect();
    let records = d.nodes.len();
    let report = d.adopt(prebuilt(&h)).expect("adopted");
    // Record 17 is named by the graph but absent; 40 was deleted here: both tombstones.
    assert_eq!((report.stale, report.missing), (2, vec![SeqNo(900)]));
    assert!(!d.has_unlinked());
    assert_eq!(d.len(), vs.len() - 3 + 1);
    // Graph nodes 5 (deleted there), 17 and 40 (no live record here) follow the records.
    assert_eq!(d.nodes.len(), records + 3);
    assert!(d.nodes.deleted[records..].iter().all(|x| *x));
    let seq_of = |ix: &HnswIndex, n: u32| ix.nodes.seq[n as usize];
    assert_eq!(d.graph.top().1, h.graph.top().1, "the top level is kept");
    // Its lists are the graph's, renumbered: the same records (live neighbours).
    let named = |ix: &HnswIndex, list: Vec<u32>| -> Vec<SeqNo> {
        list.into_iter()
            .filter(|&x| !ix.nodes.deleted[x as usize])
            .map(|x| seq_of(ix, x))
            .filter(|s| ![SeqNo(17), SeqNo(40)].contains(s))
            .collect()
    };
    for (i, v) in vs.iter().enumerate() {
        let seq = SeqNo(i as u64);
        match d.get(seq) {
            Some(stored) => {
                assert!(![5, 17, 40].contains(&i));
                assert_eq!(stored, v.as_slice(), "record {i} kept its vector");
                let node = d.nodes.by_seq[&seq];
                assert_eq!(node, before[&seq], "record {i} kept its node");
                // (Linking record 900 afterwards may have put it in, pruning another.)
                let (got, want) = (
                    named(&d, d.graph.list(node, 0)),
                    named(&h, h.graph.list(i as u32, 0)),
                );
                if got.contains(&SeqNo(900)) {
                    assert!(
                        got.iter().all(|s| *s == SeqNo(900) || want.contains(s)),
                        "record {i}"
                    );
                } else {
                    assert_eq!(got, want, "record {i}'s layer-0 list");
                }
                assert_eq!(d.search(v, 1)[0].seq, seq);
            }
            None => assert!([5, 17, 40].contains(&i), "record {i} was lost"),
        }
    }
    assert_eq!(d.get(SeqNo(900)), Some(extra.as_slice()));
    assert_eq!(d.search(&extra, 1)[0].seq, SeqNo(900));
    // What it became survives a checkpoint like any index.
    let map: HashMap<SeqNo, &[f32]> = (0..vs.len())
        .filter(|i| ![5, 17, 40].contains(i))
        .map(|i| (SeqNo(i as u64), vs[i].as_slice()))
        .chain([(SeqNo(900), extra.as_slice())])
        .collect();
    let (back, report) =
        HnswIndex::from_checkpoint(&d.to_checkpoint(), 3, &config(), &map).expect("valid");
    assert_eq!(report, LoadReport::default());
    for q in vs.iter().step_by(7) {
        assert_eq!(back.search(q, 5), d.search(q, 5));
    }
    // Reloaded from the store's rows (live nodes in node order), the rows become the arena
    // without a copy, the trailing tombstones notwithstanding.
    let mut fresh = HnswIndex::new(3, &config());
    for i in (0..vs.len()).filter(|i| ![5, 17, 40].contains(i)) {
        fresh.insert(SeqNo(i as u64), &vs[i]);
    }
    let mut g = prebuilt(&h);
    let graph_nodes = g.nodes.len();
    g.nodes[17] = None;
    g.nodes[40] = None;
    let report = fresh.adopt(g).expect("adopted");
    assert_eq!(report, LoadReport::default());
    assert_eq!(fresh.nodes.len(), vs.len() - 3 + 3);
    let seqs: Vec<SeqNo> = fresh.nodes.seq[..fresh.nodes.len() - 3].to_vec();
    let mut data = Arena::from(
        seqs.iter()
            .flat_map(|s| vs[s.0 as usize].clone())
            .collect::<Vec<f32>>(),
    );
    data.reserve_exact(3 * 3);
    let (again, report) =
        HnswIndex::from_checkpoint_rows(&fresh.to_checkpoint(), 3, &config(), &seqs, &mut data)
            .expect("valid");
    assert_eq!(report, LoadReport::default());
    assert!(data.is_empty(), "the rows were taken as the arena");
    assert_eq!(again.nodes.len(), graph_nodes);
    for q in vs.iter().step_by(7) {
        assert_eq!(again.search(q, 5), fresh.search(q, 5));
    }
}

/// A dense graph of `n` 8-d cosine vectors (large enough for its arenas to be mapped from a
/// file), records `0..n` in order.
fn dense(n: usize) -> (HnswIndex, Vec<Vec<f32>>) {
    let mut h = HnswIndex::new(8, &config());
    let vs: Vec<Vec<f32>> = (0..n)
        .map(|i| (0..8).map(|j| ((i * 8 + j) as f32 * 0.37).sin()).collect())
        .collect();
    for (i, v) in vs.iter().enumerate() {
        h.insert(SeqNo(i as u64), v);
    }
    (h, vs)
}

fn vector_file_bytes(h: &HnswIndex, pairing: Pairing) -> Vec<u8> {
    let mut out = Vec::new();
    h.write_vector_file(&mut out, pairing).expect("write");
    out
}

#[test]
fn a_mapped_vector_file_gives_the_same_index_and_writes_back_the_same_bytes() {
    let (mut h, vs) = dense(1500);
    // Tombstones among the live nodes: one record deleted, one whose vector changed.
    h.remove(SeqNo(10));
    h.remove(SeqNo(20));
    h.insert(SeqNo(20), &vs[700]);
    let bytes = h.to_checkpoint();
    let pairing = Pairing::of(&bytes, 7).expect("pairing");
    let file_bytes = vector_file_bytes(&h, pairing);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.vec");
    std::fs::write(&path, &file_bytes).expect("write");
    let file = std::fs::File::open(&path).expect("open");
    // SAFETY: the test's own file, left alone while the index lives.
    let mapped = unsafe { VectorFile::open(&file, 8, 1501, 1501, &pairing) }.expect("open");
    mapped.verify().expect("intact");
    let seqs: Vec<SeqNo> = (0..1500).filter(|s| *s != 10).map(SeqNo).collect();
    let parsed = ParsedCheckpoint::parse(&bytes, 8, &config()).expect("parse");
    let live = parsed.match_vector_file(&seqs, &mapped).expect("fits");
    let mut back = parsed.into_index_mapped(live, mapped);
    assert_eq!(back.file_backed(), cfg!(target_os = "linux"));
    assert_eq!(back.to_checkpoint(), bytes);
    assert_eq!(vector_file_bytes(&back, pairing), file_bytes);
    for q in &vs[..30] {
        assert_eq!(back.search(q, 5), h.search(q, 5));
    }
    // Writes after the load (into the fresh room after the file's pages, and over them, copied
    // on write) give what the same writes give the original; the file itself is never written.
    let mut orig = h;
    let extra: Vec<Vec<f32>> = (0..300)
        .map(|i| (0..8).map(|j| ((i * 5 + j) as f32 * 0.11).cos()).collect())
        .collect();
    for (i, v) in extra.iter().enumerate() {
        back.insert(SeqNo(2000 + i as u64), v);
        orig.insert(SeqNo(2000 + i as u64), v);
    }
    for s in [3u64, 400, 1499, 2001] {
        back.remove(SeqNo(s));
        orig.remove(SeqNo(s));
    }
    for q in vs[..30].iter().chain(&extra[..10]) {
        assert_eq!(back.search(q, 5), orig.search(q, 5));
    }
    assert_eq!(back.to_checkpoint(), orig.to_checkpoint());
    drop(back);
    assert_eq!(std::fs::read(&path).expect("read"), file_bytes);
}

#[test]
fn a_vector_file_is_used_only_with_its_checkpoint_store_version_and_records() {
    let (h, _) = dense(600);
    let bytes = h.to_checkpoint();
    let pairing = Pairing::of(&bytes, 3).expect("pairing");
    let file = vector_file_bytes(&h, pairing);
    let stale = |p: Pairing| VectorFile::from_bytes(&file, 8, 600, &p).map(|_| ());
    assert!(stale(pairing).is_ok());
    for other in [
        Pairing {
            store_version: 4,
            ..pairing
        },
        Pairing {
            graph_crc: pairing.graph_crc ^ 1,
            ..pairing
        },
        Pairing {
            graph_len: pairing.graph_len + 1,
            ..pairing
        },
    ] {
        assert!(
            matches!(stale(other), Err(VectorFileError::Stale(_))),
            "{other:?}"
        );
    }
    assert!(matches!(
        VectorFile::from_bytes(&file, 8, 599, &pairing),
        Err(VectorFileError::Stale(_))
    ));
    assert!(matches!(
        VectorFile::from_bytes(&file, 4, 600, &pairing),
        Err(VectorFileError::Stale(_))
    ));
    // Records that are not the checkpoint's live nodes (one deleted since, one added) do not
    // fit; the same ones in another order do.
    let parsed = || ParsedCheckpoint::parse(&bytes, 8, &config()).expect("parse");
    let v = VectorFile::from_bytes(&file, 8, 600, &pairing).expect("valid");
    let fewer: Vec<SeqNo> = (0..600).filter(|s| *s != 9).map(SeqNo).collect();
    let other: Vec<SeqNo> = (1..601).map(SeqNo).collect();
    for seqs in [&fewer, &other] {
        assert!(matches!(
            parsed().match_vector_file(seqs, &v),
            Err(FormatError::Mismatch(_))
        ));
    }
    let all: Vec<SeqNo> = (0..600).rev().map(SeqNo).collect();
    assert!(parsed().match_vector_file(&all, &v).is_ok());
}

#[test]
fn vector_file_damage_is_detected_never_a_panic() {
    let (h, _) = dense(300);
    let bytes = h.to_checkpoint();
    let pairing = Pairing::of(&bytes, 1).expect("pairing");
    let file = vector_file_bytes(&h, pairing);
    let open =
        |b: &[u8]| VectorFile::from_bytes(b, 8, 300, &pairing).and_then(|v| v.verify().map(|()| v));
    assert!(open(&file).is_ok());
    for cut in (0..file.len()).step_by(97).chain([file.len() - 1]) {
        assert!(open(&file[..cut]).is_err(), "truncated at {cut}");
    }
    let mut flipped = 0;
    for at in (0..file.len()).step_by(61) {
        let mut b = file.clone();
        b[at] ^= 0x10;
        if open(&b).is_ok() {
            // Only padding (which no check reads) may change unnoticed.
            flipped += 1;
            assert!(
                at >= crate::hnsw::vectorfile::HEADER_BYTES,
                "header byte {at}"
            );
        }
    }
    assert!(flipped < file.len() / 61 / 2, "most flips are seen");
}

/// Records on a chain of clusters (each batch of 40 a tight cluster one step along the diagonal
/// from the last, some batches deleted, some re-added), as the crash test writes them: loaded
/// from a checkpoint, lagging or current, every record's own vector finds it. Tombstones have no
/// vector in the store; routing them through one neighbour's vector (as loads once did) put a
/// deleted cluster's nodes a cluster away and left records unreachable.
#[test]
fn tombstone_estimates_keep_every_record_reachable_after_a_load() {
    let dim = 8;
    let cfg = HnswConfig {
        num_threads: 1,
        ..HnswConfig::default()
    };
    let vec_of = |i: u64, j: u64| -> Vec<f32> {
        (0..dim)
            .map(|d| i as f32 + (j * d as u64) as f32 * 0.01)
            .collect()
    };
    let seq_of = |i: u64, j: u64| SeqNo(i * 100 + j);
    let mut h = HnswIndex::new(dim, &cfg);
    let mut live: std::collections::BTreeMap<SeqNo, Vec<f32>> = Default::default();
    let mut lagging = None;
    for i in 0..110u64 {
        for j in 0..40 {
            let (b, s) = if i % 7 == 6 || i % 5 == 4 {
                (i - 1, seq_of(i - 1, j))
            } else {
                (i, seq_of(i, j))
            };
            if i % 7 == 6 {
                h.remove(s);
                live.remove(&s);
            } else if let std::collections::btree_map::Entry::Vacant(e) = live.entry(s) {
                h.insert(s, &vec_of(b, j));
                e.insert(vec_of(b, j));
            }
        }
        if i == 90 {
            lagging = Some(h.to_checkpoint());
        }
    }
    let map: HashMap<SeqNo, &[f32]> = live.iter().map(|(s, v)| (*s, v.as_slice())).collect();
    let unreachable = |ix: &HnswIndex| -> Vec<SeqNo> {
        live.keys()
            .filter(|s| ix.search(&live[s], 1).first().map(|h| h.seq) != Some(**s))
            .copied()
            .collect()
    };
    // HNSW is approximate: here it misses 7 of 3,520 records at k = 1 built in memory, and
    // 8 and 15 loaded; routing tombstones through a single neighbour missed 7 % of the clusters'
    // first records (the crash test's check). Allow 1 %.
    let at_most = live.len() / 100;
    assert!(unreachable(&h).len() <= at_most);
    let (mut behind, report) =
        HnswIndex::from_checkpoint(&lagging.expect("written"), dim, &cfg, &map).expect("valid");
    for s in &report.missing {
        behind.insert(*s, map[s]);
    }
    let missed = unreachable(&behind);
    assert!(missed.len() <= at_most, "lagging checkpoint: {missed:?}");
    let (current, report) =
        HnswIndex::from_checkpoint(&h.to_checkpoint(), dim, &cfg, &map).expect("valid");
    assert!(report.missing.is_empty());
    let missed = unreachable(&current);
    assert!(missed.len() <= at_most, "current checkpoint: {missed:?}");
}
