//! Readers for the pypi-minilm benchmark data set (`../shared/datasets/pypi-minilm`): float16
//! vectors, exact top-100 ground truth and the record table; and the measuring helpers the
//! benchmarks share. Used by the index benchmark (`ochre-bench`), the embedded end-to-end
//! benchmark (`embedded`), the sparse-index comparison with tantivy (`sparse_vs_tantivy`) and
//! the `reopen` example. A benchmark helper, not a library for users:
//! a missing or malformed file panics with its path.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    reason = "a benchmark harness: it prints its results, and a failed run should stop loudly"
)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Converts an IEEE 754 half-precision value to `f32` (exactly: every f16 is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalize.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (31, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The first `limit` rows of a little-endian float16 matrix with `dim` columns, as f32.
///
/// # Panics
/// When the file cannot be read.
pub fn read_f16(path: &Path, dim: usize, limit: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let wanted = bytes.len().min(limit.saturating_mul(dim).saturating_mul(2));
    bytes[..wanted]
        .chunks_exact(2)
        .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
        .collect::<Vec<f32>>()
        .chunks_exact(dim)
        .take(limit)
        .map(<[f32]>::to_vec)
        .collect()
}

/// A ground-truth file: per query, the exact top-100 base rows (little-endian i32).
///
/// # Panics
/// When the file cannot be read.
pub fn read_gt(path: &Path) -> Vec<Vec<u64>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect::<Vec<u64>>()
        .chunks_exact(100)
        .map(<[u64]>::to_vec)
        .collect()
}

/// One row of `records.tsv` (`row, name, year, month, rank, letter, bucket, summary`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub row: u64,
    pub name: String,
    pub year: i64,
    pub month: String,
    pub rank: i64,
    pub letter: String,
    pub bucket: i64,
    pub summary: String,
}

/// The collection the benchmarks create: `name`, cosine space, every other setting the default.
pub fn cosine_collection(name: &str) -> ochre::CreateCollection {
    ochre::CreateCollection {
        name: name.to_owned(),
        configuration: ochre::CollectionConfiguration {
            hnsw: ochre::HnswConfig {
                space: ochre::Space::Cosine,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

impl Record {
    /// The metadata the benchmarks store with a record: year, letter, bucket and rank (what
    /// their filters select on).
    pub fn metadata(&self) -> ochre::Metadata {
        use ochre::MetadataValue;
        ochre::Metadata::from([
            ("year".to_owned(), MetadataValue::Int(self.year)),
            ("letter".to_owned(), MetadataValue::Str(self.letter.clone())),
            ("bucket".to_owned(), MetadataValue::Int(self.bucket)),
            ("rank".to_owned(), MetadataValue::Int(self.rank)),
        ])
    }
}

/// The first `limit` records of `records.tsv` (header line first; fields are separated by tabs
/// and contain none). A name ending in `.gz` is decompressed through the `gzip` program.
///
/// # Panics
/// When the file cannot be read or a line does not have the eight fields.
pub fn read_records(path: &Path, limit: usize) -> Vec<Record> {
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("gzip -dc {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "gzip -dc {}: {}",
            path.display(),
            out.status
        );
        String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let bad = |line: &str| -> ! { panic!("{}: malformed line {line:?}", path.display()) };
    text.lines()
        .skip(1)
        .take(limit)
        .map(|line| {
            let f: Vec<&str> = line.splitn(8, '\t').collect();
            let [row, name, year, month, rank, letter, bucket, summary] = f[..] else {
                bad(line)
            };
            let int = |s: &str| s.parse::<i64>().unwrap_or_else(|_| bad(line));
            Record {
                row: row.parse().unwrap_or_else(|_| bad(line)),
                name: name.to_owned(),
                year: int(year),
                month: month.to_owned(),
                rank: int(rank),
                letter: letter.to_owned(),
                bucket: int(bucket),
                summary: summary.to_owned(),
            }
        })
        .collect()
}

/// Calls `f` on every item from `threads` workers that take the next item from a shared cursor
/// (dynamic scheduling, as hnswlib's ParallelFor and concurrent clients do); the results come back
/// in item order. One thread or fewer runs on the caller's thread.
///
/// # Panics
/// When `f` panics.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            break mine;
                        };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a benchmark worker panicked"))
            .collect()
    });
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in parts.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every item taken once"))
        .collect()
}

/// This process's peak resident set (VmHWM), in bytes; `None` where /proc is not there.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
