//! Replays the fuzz corpus without the fuzzer: every file of `fuzz/corpus/<target>/` and every
//! reproducer in `fuzz/regressions/<target>/` through the harness its target runs
//! (`ochre_fuzzing`), so `cargo test` catches a regression the fuzzer once found or a seed
//! covers. Reproducers are named after the bug they found; each has its own test below too.

#![allow(clippy::unwrap_used, reason = "a test: a panic is a failure")]

use std::path::{Path, PathBuf};

use ochre_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(kind: &str, min_files: usize) {
    for (target, harness) in TARGETS {
        let dir = fuzz_dir().join(kind).join(target);
        let inputs = files(&dir);
        assert!(
            inputs.len() >= min_files,
            "{} holds {} files",
            dir.display(),
            inputs.len()
        );
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| harness(&bytes));
            assert!(outcome.is_ok(), "{} fails", input.display());
        }
    }
}

#[test]
fn every_corpus_seed_passes_its_target() {
    replay("corpus", 10);
}

#[test]
fn every_regression_reproducer_passes_its_target() {
    replay("regressions", 0);
}

/// Writes the checkpoint seeds of `fuzz/corpus/checkpoint/` (graphs whose stored vectors are
/// `ochre_fuzzing::vector_of`, so the loader's fast and slow paths both run): run by hand with
/// `cargo test -p ochre-fuzzing --test corpus -- --ignored write_checkpoint_seeds`.
#[test]
#[ignore = "writes the checked-in seeds; run by hand"]
fn write_checkpoint_seeds() {
    use ochre_index::hnsw::format::crc32;
    use ochre_index::HnswIndex;
    use ochre_types::{HnswConfig, SeqNo, Space};

    let dir = fuzz_dir().join("corpus/checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let shapes: &[(&str, Space, usize, u64, u64, u64)] = &[
        // name, space, dimension, M, records, of which removed
        ("l2_d8_m16_empty", Space::L2, 8, 16, 0, 0),
        ("l2_d8_m16_one", Space::L2, 8, 16, 1, 0),
        ("l2_d8_m4_n12", Space::L2, 8, 4, 12, 0),
        ("l2_d8_m4_n30_tombstones", Space::L2, 8, 4, 30, 7),
        ("cosine_d3_m2_n9", Space::Cosine, 3, 2, 9, 1),
        ("ip_d5_m8_n16", Space::Ip, 5, 8, 16, 0),
        ("l2_d1_m2_n6_all_removed", Space::L2, 1, 2, 6, 6),
    ];
    for &(name, space, dim, m, n, removed) in shapes {
        let config = HnswConfig {
            space,
            max_neighbors: m,
            num_threads: 1,
            ..Default::default()
        };
        let mut index = HnswIndex::new(dim, &config);
        for s in 0..n {
            index.insert(SeqNo(s * 3 + 1), &ochre_fuzzing::vector_of(s * 3 + 1, dim));
        }
        for s in 0..removed {
            index.remove(SeqNo(s * 3 + 1));
        }
        let v2 = index.to_checkpoint();
        // The same graph as format version 1 (its fingerprints are version 2's, so its nodes
        // load as stale: the loader's slow path).
        let mut v1 = v2.clone();
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let body = v1.len() - 12;
        let crc = crc32(&v1[..body]);
        v1[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        for (suffix, ctrl, bytes) in [
            ("map", 0u8, &v2),
            ("rows", 2, &v2),
            ("rows_dropped_changed_extra", 2 | 4 | 8 | 16, &v2),
            ("v1_map_extra", 16, &v1),
        ] {
            let mut seed = vec![ctrl];
            seed.extend_from_slice(bytes);
            std::fs::write(dir.join(format!("{name}_{suffix}")), seed).unwrap();
        }
    }
}

/// Writes the vector file seeds of `fuzz/corpus/vectors/` (the files of small graphs, each
/// under every control byte): run by hand with
/// `cargo test -p ochre-fuzzing --test corpus -- --ignored write_vector_seeds`.
#[test]
#[ignore = "writes the checked-in seeds; run by hand"]
fn write_vector_seeds() {
    use ochre_index::hnsw::vectorfile::Pairing;
    use ochre_index::HnswIndex;
    use ochre_types::{HnswConfig, SeqNo, Space};

    let dir = fuzz_dir().join("corpus/vectors");
    std::fs::create_dir_all(&dir).unwrap();
    let shapes: &[(&str, Space, usize, u64, u64)] = &[
        // name, space, dimension, records, of which removed
        ("l2_d8_empty", Space::L2, 8, 0, 0),
        ("l2_d8_one", Space::L2, 8, 1, 0),
        ("l2_d8_n12", Space::L2, 8, 12, 0),
        ("l2_d8_n30_tombstones", Space::L2, 8, 30, 7),
        ("cosine_d3_n9", Space::Cosine, 3, 9, 1),
        ("ip_d5_n16", Space::Ip, 5, 16, 0),
    ];
    for &(name, space, dim, n, removed) in shapes {
        let config = HnswConfig {
            space,
            max_neighbors: 4,
            num_threads: 1,
            ..Default::default()
        };
        let mut index = HnswIndex::new(dim, &config);
        for s in 0..n {
            index.insert(SeqNo(s), &ochre_fuzzing::vector_of(s + 100, dim));
        }
        for s in 0..removed {
            index.remove(SeqNo(s * 2));
        }
        let pairing = Pairing::of(&index.to_checkpoint(), n * 3).unwrap();
        let mut file = Vec::new();
        index.write_vector_file(&mut file, pairing).unwrap();
        for (suffix, ctrl) in [("l2", 0u8), ("resealed", 1), ("cosine", 2), ("ip", 4)] {
            let mut seed = vec![ctrl];
            seed.extend_from_slice(&file);
            std::fs::write(dir.join(format!("{name}_{suffix}")), seed).unwrap();
        }
    }
}
