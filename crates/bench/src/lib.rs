//! Readers for the pypi-minilm benchmark data set (`../shared/datasets/pypi-minilm`): float16
//! vectors, exact top-100 ground truth and the record table. Shared by the index benchmark
//! (`ochre-bench`) and the embedded end-to-end benchmark (`embedded`). A benchmark helper, not a
//! library for users: a missing or malformed file panics with its path.

use std::path::Path;

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
    bytes
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

/// The first `limit` records of an uncompressed `records.tsv` (header line first; fields are
/// separated by tabs and contain none).
///
/// # Panics
/// When the file cannot be read or a line does not have the eight fields.
pub fn read_records(path: &Path, limit: usize) -> Vec<Record> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
