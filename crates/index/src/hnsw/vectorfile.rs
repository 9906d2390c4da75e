//! The vector file `index/<collection-id>.vec` (docs/format/vectors.md): an index's vectors,
//! int8 codes, scales and squared norms, in node order, written beside a checkpoint on a clean
//! close so the next open maps them instead of reading every vector from the store and deriving
//! the rest again.
//!
//! A file is only used with the checkpoint it was written with and while the store's records are
//! as they were ([`Pairing`]); its contents are checked against a CRC before the index uses them.
//! Sections are page-aligned so they can be mapped ([`crate::memory::Arena::map_file`]).

use std::borrow::Cow;
use std::io::Write;

use super::HnswIndex;
use crate::memory::Arena;

/// First bytes of a vector file.
pub const MAGIC: &[u8; 8] = b"OCHRVECS";
/// Last bytes of a vector file.
pub const END_MAGIC: &[u8; 8] = b"OCHRVEND";
/// The format this build writes and reads.
pub const VERSION: u32 = 1;
/// Alignment of every section (the largest page size a map may need).
const ALIGN: u64 = 4096;
/// Bytes of the header that carry fields (the rest of the first page is zero).
pub const HEADER_BYTES: usize = 52;
/// Trailer: payload CRC, four zero bytes, end magic.
const TRAILER_BYTES: u64 = 16;

/// What a vector file must agree with to be used: the checkpoint written with it (its length
/// and CRC field) and the version of the collection's records in the store when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pairing {
    pub graph_len: u64,
    pub graph_crc: u32,
    pub store_version: u64,
}

impl Pairing {
    /// The pairing of checkpoint `bytes` with store version `store_version`; `None` when the
    /// bytes are too short to hold a CRC.
    pub fn of(checkpoint: &[u8], store_version: u64) -> Option<Pairing> {
        let len = checkpoint.len();
        let crc = checkpoint.get(len.checked_sub(12)?..len - 8)?;
        Some(Pairing {
            graph_len: len as u64,
            graph_crc: u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]),
            store_version,
        })
    }
}

/// Why a vector file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VectorFileError {
    #[error("cannot read the vector file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a vector file (bad magic)")]
    BadMagic,
    #[error("vector file format version {0} is not supported")]
    Version(u32),
    #[error("vector file header checksum mismatch")]
    HeaderChecksum,
    #[error("vector file is truncated or malformed: {0}")]
    Malformed(&'static str),
    #[error("vector file belongs to another checkpoint or store state: {0}")]
    Stale(&'static str),
    #[error("vector file checksum mismatch (damaged file)")]
    Checksum,
}

/// A vector file's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub dim: usize,
    pub nodes: usize,
    pub pairing: Pairing,
}

/// Where each section of a file of `nodes` vectors of `dim` lies (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    vectors: u64,
    codes: u64,
    scales: u64,
    norms2: u64,
    trailer: u64,
    total: u64,
}

impl Layout {
    fn of(dim: usize, nodes: usize) -> Option<Layout> {
        let (dim, nodes) = (dim as u64, nodes as u64);
        let values = dim.checked_mul(nodes)?;
        let vectors = ALIGN;
        let codes = vectors
            .checked_add(values.checked_mul(4)?)?
            .checked_next_multiple_of(ALIGN)?;
        let scales = codes.checked_add(values)?.checked_next_multiple_of(ALIGN)?;
        let norms2 = scales.checked_add(nodes.checked_mul(4)?)?;
        let trailer = norms2.checked_add(nodes.checked_mul(4)?)?;
        let total = trailer.checked_add(TRAILER_BYTES)?;
        Some(Layout {
            vectors,
            codes,
            scales,
            norms2,
            trailer,
            total,
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The header's bytes.
fn encode_header(h: &Header) -> [u8; HEADER_BYTES] {
    let mut b = [0u8; HEADER_BYTES];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(h.dim as u32).to_le_bytes());
    b[16..24].copy_from_slice(&(h.nodes as u64).to_le_bytes());
    b[24..32].copy_from_slice(&h.pairing.store_version.to_le_bytes());
    b[32..40].copy_from_slice(&h.pairing.graph_len.to_le_bytes());
    b[40..44].copy_from_slice(&h.pairing.graph_crc.to_le_bytes());
    let crc = crc32fast::hash(&b[..48]);
    b[48..52].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Reads and checks a header from the first bytes of a file (at least [`HEADER_BYTES`]).
///
/// # Errors
/// A short or damaged header, another format or version.
pub fn parse_header(bytes: &[u8]) -> Result<Header, VectorFileError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(VectorFileError::BadMagic);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(VectorFileError::Malformed("header"));
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(VectorFileError::Version(version));
    }
    if crc32fast::hash(&bytes[..48]) != u32_at(bytes, 48) || u32_at(bytes, 44) != 0 {
        return Err(VectorFileError::HeaderChecksum);
    }
    let dim = u32_at(bytes, 12) as usize;
    let nodes =
        usize::try_from(u64_at(bytes, 16)).map_err(|_| VectorFileError::Malformed("node count"))?;
    Ok(Header {
        dim,
        nodes,
        pairing: Pairing {
            store_version: u64_at(bytes, 24),
            graph_len: u64_at(bytes, 32),
            graph_crc: u32_at(bytes, 40),
        },
    })
}

/// The layout of a file with `header`, checked against what the caller expects and the file's
/// length.
fn check(
    header: &Header,
    file_len: u64,
    dim: usize,
    nodes: usize,
    pairing: &Pairing,
) -> Result<Layout, VectorFileError> {
    if header.dim != dim || dim == 0 {
        return Err(VectorFileError::Stale("dimension"));
    }
    if header.nodes != nodes {
        return Err(VectorFileError::Stale("node count"));
    }
    if header.pairing.graph_len != pairing.graph_len
        || header.pairing.graph_crc != pairing.graph_crc
    {
        return Err(VectorFileError::Stale("checkpoint"));
    }
    if header.pairing.store_version != pairing.store_version {
        return Err(VectorFileError::Stale("store version"));
    }
    let layout = Layout::of(dim, nodes).ok_or(VectorFileError::Malformed("size"))?;
    if file_len != layout.total {
        return Err(VectorFileError::Malformed("file length"));
    }
    Ok(layout)
}

/// The little-endian bytes of `xs` (borrowed on a little-endian machine).
fn le_bytes(xs: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: f32 has no padding and any alignment suits u8; the bytes are `xs`'s own, and
        // on a little-endian machine they are the little-endian encoding.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(xs.as_ptr().cast::<u8>(), std::mem::size_of_val(xs))
        })
    } else {
        Cow::Owned(xs.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// The bytes of `xs` (i8 and u8 share size, alignment and every bit pattern).
fn code_bytes(xs: &[i8]) -> &[u8] {
    // SAFETY: as the comment above says; the slice borrows `xs`.
    unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<u8>(), xs.len()) }
}

/// Writes `xs` little-endian, in pieces of 1 MiB (so a big-endian machine's conversion stays
/// small), adding them to `crc`.
fn put_floats(
    out: &mut impl Write,
    crc: &mut crc32fast::Hasher,
    xs: &[f32],
) -> std::io::Result<()> {
    for chunk in xs.chunks(1 << 18) {
        let b = le_bytes(chunk);
        crc.update(&b);
        out.write_all(&b)?;
    }
    Ok(())
}

fn pad(out: &mut impl Write, written: u64, to: u64) -> std::io::Result<()> {
    let zeros = [0u8; ALIGN as usize];
    let mut left = to.saturating_sub(written);
    while left > 0 {
        let n = left.min(ALIGN);
        out.write_all(&zeros[..n as usize])?;
        left -= n;
    }
    Ok(())
}

impl HnswIndex {
    /// Writes the vector file of this index (every node's vector, code, scale and squared norm,
    /// tombstones' routing vectors included), paired with `pairing`: the checkpoint written from
    /// this same state and the store's version of the records. Streams from the index's memory
    /// (nothing the size of the vectors is allocated).
    ///
    /// # Errors
    /// What `out` returns.
    pub fn write_vector_file(&self, out: &mut impl Write, pairing: Pairing) -> std::io::Result<()> {
        let (dim, nodes) = (self.dim, self.nodes.len());
        let layout =
            Layout::of(dim, nodes).ok_or_else(|| std::io::Error::other("vector file too large"))?;
        let header = encode_header(&Header {
            dim,
            nodes,
            pairing,
        });
        out.write_all(&header)?;
        pad(out, HEADER_BYTES as u64, layout.vectors)?;
        let mut crc = crc32fast::Hasher::new();
        let vectors = &self.rows.all()[..nodes * dim];
        put_floats(out, &mut crc, vectors)?;
        pad(
            out,
            layout.vectors + (vectors.len() * 4) as u64,
            layout.codes,
        )?;
        let codes = code_bytes(&self.codes.all()[..nodes * dim]);
        crc.update(codes);
        out.write_all(codes)?;
        pad(out, layout.codes + codes.len() as u64, layout.scales)?;
        let scales: Vec<f32> = (0..nodes as u32).map(|n| self.codes.scale(n)).collect();
        put_floats(out, &mut crc, &scales)?;
        let norms2: Vec<f32> = (0..nodes as u32).map(|n| self.rows.norm2(n)).collect();
        put_floats(out, &mut crc, &norms2)?;
        out.write_all(&crc.finalize().to_le_bytes())?;
        out.write_all(&[0; 4])?;
        out.write_all(END_MAGIC)
    }
}

/// A vector file's contents, mapped (or read) and checked for shape; [`VectorFile::verify`]
/// checks the contents against the CRC.
pub struct VectorFile {
    pub(super) dim: usize,
    pub(super) data: Arena<f32>,
    pub(super) codes: Arena<i8>,
    pub(super) scales: Vec<f32>,
    pub(super) norms2: Vec<f32>,
    crc: u32,
    pairing: Pairing,
}

impl std::fmt::Debug for VectorFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorFile")
            .field("dim", &self.dim)
            .field("nodes", &self.scales.len())
            .field("pairing", &self.pairing)
            .finish_non_exhaustive()
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl VectorFile {
    /// Opens the vector file of an index of `nodes` nodes of `dim` that must agree with
    /// `pairing`; its vectors and codes are mapped copy-on-write with room for `capacity`
    /// nodes, its scales and norms read. Nothing else of the file is read yet.
    ///
    /// # Errors
    /// A file of another format, shape, checkpoint or store version, or one of the wrong
    /// length; I/O errors.
    ///
    /// # Safety
    /// As [`Arena::map_file`]: nobody truncates or writes the file in place while the result
    /// (or an index made from it) lives.
    pub unsafe fn open(
        file: &std::fs::File,
        dim: usize,
        nodes: usize,
        capacity: usize,
        pairing: &Pairing,
    ) -> Result<VectorFile, VectorFileError> {
        let mut head = [0u8; HEADER_BYTES];
        crate::memory::read_exact_at(file, &mut head, 0)?;
        let header = parse_header(&head)?;
        let layout = check(&header, file.metadata()?.len(), dim, nodes, pairing)?;
        let values = nodes * dim;
        let capacity = capacity.max(nodes);
        // SAFETY: the caller's promise, passed on.
        let data = unsafe { Arena::map_file(file, layout.vectors, values, capacity * dim)? };
        // SAFETY: likewise.
        let codes = unsafe { Arena::map_file(file, layout.codes, values, capacity * dim)? };
        let mut tail = vec![0u8; (layout.total - layout.scales) as usize];
        crate::memory::read_exact_at(file, &mut tail, layout.scales)?;
        Self::finish(&header, &layout, data, codes, &tail)
    }

    /// As [`VectorFile::open`], from the file's bytes (copied into memory): for tests and
    /// fuzzing, which exercise the same checks.
    ///
    /// # Errors
    /// As [`VectorFile::open`].
    pub fn from_bytes(
        bytes: &[u8],
        dim: usize,
        nodes: usize,
        pairing: &Pairing,
    ) -> Result<VectorFile, VectorFileError> {
        let header = parse_header(bytes)?;
        let layout = check(&header, bytes.len() as u64, dim, nodes, pairing)?;
        let values = nodes * dim;
        let at = |o: u64| o as usize;
        let mut data = Arena::with_capacity(values);
        data.extend_from_le_bytes(&bytes[at(layout.vectors)..at(layout.vectors) + values * 4]);
        let mut codes = Arena::with_capacity(values);
        codes.extend(
            bytes[at(layout.codes)..at(layout.codes) + values]
                .iter()
                .map(|b| *b as i8),
        );
        Self::finish(&header, &layout, data, codes, &bytes[at(layout.scales)..])
    }

    /// Takes the scales, norms and trailer from `tail` (the file from the scales on).
    fn finish(
        header: &Header,
        layout: &Layout,
        data: Arena<f32>,
        codes: Arena<i8>,
        tail: &[u8],
    ) -> Result<VectorFile, VectorFileError> {
        let nodes = header.nodes;
        let norms_at = (layout.norms2 - layout.scales) as usize;
        let trailer_at = (layout.trailer - layout.scales) as usize;
        let trailer = &tail[trailer_at..];
        if &trailer[8..16] != END_MAGIC || trailer[4..8] != [0; 4] {
            return Err(VectorFileError::Malformed("trailer"));
        }
        Ok(VectorFile {
            dim: header.dim,
            data,
            codes,
            scales: floats(&tail[..nodes * 4]),
            norms2: floats(&tail[norms_at..norms_at + nodes * 4]),
            crc: u32_at(trailer, 0),
            pairing: header.pairing,
        })
    }

    /// Nodes in the file.
    pub fn nodes(&self) -> usize {
        self.scales.len()
    }

    /// What the file was written with.
    pub fn pairing(&self) -> Pairing {
        self.pairing
    }

    /// Checks the contents against the file's CRC (reads every page of the vectors and codes).
    ///
    /// # Errors
    /// [`VectorFileError::Checksum`] when they differ.
    pub fn verify(&self) -> Result<(), VectorFileError> {
        let mut crc = crc32fast::Hasher::new();
        for chunk in self.data.chunks(1 << 18) {
            crc.update(&le_bytes(chunk));
        }
        crc.update(code_bytes(&self.codes));
        crc.update(&le_bytes(&self.scales));
        crc.update(&le_bytes(&self.norms2));
        if crc.finalize() == self.crc {
            Ok(())
        } else {
            Err(VectorFileError::Checksum)
        }
    }
}
