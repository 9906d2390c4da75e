//! A Chroma persistent directory (chromadb 1.0 to 1.5) read as an import source, without running
//! Chroma and without changing a byte of it (docs/format/chroma-import.md has the layout this
//! reads and why).
//!
//! What Chroma shows for a collection is rebuilt the way Chroma itself rebuilds it when a process
//! first reads the collection: the records, their order, documents, uris and metadata come from
//! the SQLite metadata segment; the vectors from the HNSW segment's files (by the label map in
//! `index_metadata.pickle`), overlaid with the log entries (`embeddings_queue`) the index had not
//! persisted yet. For a cosine collection Chroma returns the stored unit vector times the stored
//! norm, so vectors taken from the log go through the same rounding.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{json, Map, Value};

use crate::transfer::{CollectionSpec, Item, Record, Source};

/// The migration levels of the releases this reader knows: sysdb 9 (1.0) or 10 (1.3+), metadb 5
/// (1.0) or 6 (1.5+), embeddings_queue 2.
const SYSDB: std::ops::RangeInclusive<i64> = 9..=10;
const METADB: std::ops::RangeInclusive<i64> = 5..=6;
const QUEUE: std::ops::RangeInclusive<i64> = 1..=2;

/// Records read from the metadata segment per query.
const CHUNK: i64 = 1000;

struct ChromaCollection {
    id: String,
    name: String,
    dimension: Option<i64>,
    config_json: Option<String>,
    schema: Option<String>,
    database: String,
    tenant: String,
    metadata_segment: String,
    vector_segment: String,
}

/// A Chroma persistent directory, opened read-only.
pub struct ChromaDir {
    dir: PathBuf,
    conn: Connection,
    /// Which releases wrote it, for messages: e.g. "chromadb 1.5".
    pub release: &'static str,
    arrays: bool,
    /// The import's check pass: vectors are not read, only looked for ([`Source::skim`]).
    skim: bool,
}

fn sqlite_context(dir: &Path) -> String {
    format!("reading {}", dir.join("chroma.sqlite3").display())
}

impl ChromaDir {
    /// Opens `dir` and checks that it is a Chroma directory of a supported version.
    ///
    /// # Errors
    /// A clear message when it is not a Chroma directory, or of a version this Ochre does not
    /// read.
    pub fn open(dir: &Path) -> anyhow::Result<ChromaDir> {
        let file = dir.join("chroma.sqlite3");
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        if !file.is_file() {
            if dir.join("chroma-collections.parquet").exists() {
                bail!(
                    "{} was written by chromadb before 0.4 (DuckDB and Parquet), which is not supported; \
                     migrate it with Chroma's chroma-migrate tool first",
                    dir.display()
                );
            }
            bail!(
                "{} is not a Chroma directory: it has no chroma.sqlite3",
                dir.display()
            );
        }
        let mut magic = [0u8; 16];
        File::open(&file)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} is not a Chroma directory: chroma.sqlite3 is not an SQLite database",
                    dir.display()
                )
            })?;
        if &magic != b"SQLite format 3\0" {
            bail!(
                "{} is not a Chroma directory: chroma.sqlite3 is not an SQLite database",
                dir.display()
            );
        }
        // Read-only: Chroma's own open would migrate, lock and compact the directory.
        let conn = Connection::open_with_flags(
            &file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| sqlite_context(dir))?;
        // The import reads the whole file twice (check, then write), by index order rather than
        // file order: a page cache that holds it (up to 256 MiB) reads each page once.
        conn.pragma_update(None, "cache_size", -262_144)
            .with_context(|| sqlite_context(dir))?;
        let tables: HashSet<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()
            })
            .with_context(|| sqlite_context(dir))?;
        for needed in [
            "migrations",
            "tenants",
            "databases",
            "collections",
            "collection_metadata",
            "segments",
            "segment_metadata",
            "embeddings",
            "embedding_metadata",
            "embeddings_queue",
            "max_seq_id",
        ] {
            if !tables.contains(needed) {
                bail!(
                    "{} is not a Chroma directory of a supported version: chroma.sqlite3 has no table {needed}",
                    dir.display()
                );
            }
        }
        let level = |d: &str| -> anyhow::Result<i64> {
            conn.query_row(
                "SELECT coalesce(max(version), 0) FROM migrations WHERE dir = ?1",
                [d],
                |r| r.get(0),
            )
            .with_context(|| sqlite_context(dir))
        };
        let (sysdb, metadb, queue) = (
            level("sysdb")?,
            level("metadb")?,
            level("embeddings_queue")?,
        );
        if metadb < *METADB.start() || sysdb < *SYSDB.start() {
            bail!(
                "{} was written by chromadb 0.x (migrations sysdb {sysdb}, metadb {metadb}), which \
                 this Ochre does not read; open it once with chromadb 1.5 (it upgrades the directory \
                 in place, so copy it first) and import the copy",
                dir.display()
            );
        }
        if !SYSDB.contains(&sysdb) || !METADB.contains(&metadb) || !QUEUE.contains(&queue) {
            bail!(
                "{} was written by a chromadb newer than 1.5 (migrations sysdb {sysdb}, metadb {metadb}, \
                 embeddings_queue {queue}); this Ochre reads chromadb 1.0 to 1.5",
                dir.display()
            );
        }
        let release = match (sysdb, metadb) {
            (10, 6) => "chromadb 1.5",
            (10, _) => "chromadb 1.3-1.4",
            _ => "chromadb 1.0-1.2",
        };
        Ok(ChromaDir {
            dir: dir.to_owned(),
            conn,
            release,
            arrays: tables.contains("embedding_metadata_array"),
            skim: false,
        })
    }

    fn collections(&self) -> anyhow::Result<Vec<ChromaCollection>> {
        let has_schema = self
            .conn
            .prepare("SELECT 1 FROM pragma_table_info('collections') WHERE name = 'schema_str'")?
            .exists([])?;
        let schema_col = if has_schema { "c.schema_str" } else { "NULL" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT c.id, c.name, c.dimension, c.config_json_str, {schema_col}, d.name, d.tenant_id \
             FROM collections c JOIN databases d ON d.id = c.database_id \
             ORDER BY d.tenant_id, d.name, c.name"
        ))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for (id, name, dimension, config_json, schema, database, tenant) in rows {
            let segment = |scope: &str| -> anyhow::Result<String> {
                self.conn
                    .query_row(
                        "SELECT id FROM segments WHERE collection = ?1 AND scope = ?2",
                        [&id, scope],
                        |r| r.get(0),
                    )
                    .optional()?
                    .with_context(|| format!("collection {name} ({id}) has no {scope} segment"))
            };
            out.push(ChromaCollection {
                metadata_segment: segment("METADATA")?,
                vector_segment: segment("VECTOR")?,
                id,
                name,
                dimension,
                config_json,
                schema,
                database,
                tenant,
            });
        }
        Ok(out)
    }

    /// A typed metadata map from `(key, str, int, float, bool)` rows.
    fn typed_map(&self, sql: &str, key: &str) -> anyhow::Result<Map<String, Value>> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query([key])?;
        let mut m = Map::new();
        while let Some(r) = rows.next()? {
            let k: String = r.get(0)?;
            if let Some(v) = typed(r, 1)? {
                m.insert(k, v);
            }
        }
        Ok(m)
    }

    fn max_seq(&self, segment: &str) -> anyhow::Result<i64> {
        let v: Option<rusqlite::types::Value> = self
            .conn
            .query_row(
                "SELECT seq_id FROM max_seq_id WHERE segment_id = ?1",
                [segment],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match v {
            Some(rusqlite::types::Value::Integer(n)) => n,
            // chromadb 0.x wrote it as 8 big-endian bytes; 1.0's migration made it an integer,
            // but a row it did not rewrite would still read so.
            #[allow(
                clippy::big_endian_bytes,
                reason = "chromadb's 0.x encoding of the number"
            )]
            Some(rusqlite::types::Value::Blob(b)) if b.len() == 8 => {
                i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            None | Some(rusqlite::types::Value::Null) => 0,
            Some(other) => bail!("max_seq_id of segment {segment} is {other:?}"),
        })
    }
}

/// The value of typed columns `(str, int, float, bool)` starting at `at`, if any is set (in
/// Chroma's order of precedence).
fn typed(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Value>> {
    if let Some(s) = r.get::<_, Option<String>>(at)? {
        return Ok(Some(Value::String(s)));
    }
    if let Some(i) = r.get::<_, Option<i64>>(at + 1)? {
        return Ok(Some(json!(i)));
    }
    if let Some(f) = r.get::<_, Option<f64>>(at + 2)? {
        return Ok(serde_json::Number::from_f64(f).map(Value::Number));
    }
    if let Some(b) = r.get::<_, Option<i64>>(at + 3)? {
        return Ok(Some(Value::Bool(b != 0)));
    }
    Ok(None)
}

const DEFAULT_HNSW: [(&str, f64); 7] = [
    ("ef_construction", 100.0),
    ("ef_search", 100.0),
    ("max_neighbors", 16.0),
    ("resize_factor", 1.2),
    ("sync_threshold", 1000.0),
    ("batch_size", 100.0),
    ("num_threads", -1.0),
];

/// The collection's configuration as Chroma resolves it: the schema's vector index (or, for a
/// collection from before schemas, the configuration column), unless that is all defaults and
/// the vector segment's legacy `hnsw:*` metadata says otherwise. Returns the configuration in the
/// API's form (`hnsw` with `space`, `embedding_function`) and the space.
fn resolve_configuration(
    schema: Option<&Value>,
    config_json: Option<&str>,
    segment_meta: &Map<String, Value>,
) -> (Value, String) {
    // The vector index's configuration: in the schema (`space` beside `hnsw`), or for a
    // collection from before schemas in the configuration column (`space` inside `hnsw`).
    let column = config_json.and_then(|t| serde_json::from_str::<Value>(t).ok());
    let config = match schema {
        Some(schema) => [&schema["keys"]["#embedding"], &schema["defaults"]]
            .into_iter()
            .find_map(|base| base["float_list"]["vector_index"]["config"].as_object()),
        None => column.as_ref().and_then(Value::as_object),
    };
    let mut hnsw = config
        .and_then(|c| c.get("hnsw"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut space = config
        .and_then(|c| c.get("space"))
        .or_else(|| hnsw.get("space"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let embedding_function = config
        .and_then(|c| c.get("embedding_function"))
        .cloned()
        .unwrap_or(Value::Null);
    let all_default = space.as_deref().is_none_or(|s| s == "l2")
        && DEFAULT_HNSW.iter().all(|(k, d)| {
            hnsw.get(*k)
                .and_then(Value::as_f64)
                .is_none_or(|v| v == *d || *k == "num_threads")
        });
    let legacy = |k: &str| segment_meta.get(&format!("hnsw:{k}")).cloned();
    if all_default && legacy("space").is_some() {
        // Chroma's legacy fallback: the parameters the segment was built with.
        for (from, to) in [
            ("M", "max_neighbors"),
            ("construction_ef", "ef_construction"),
            ("search_ef", "ef_search"),
            ("num_threads", "num_threads"),
            ("resize_factor", "resize_factor"),
            ("sync_threshold", "sync_threshold"),
            ("batch_size", "batch_size"),
        ] {
            if let Some(v) = legacy(from) {
                hnsw.insert(to.into(), v);
            }
        }
        space = legacy("space").and_then(|v| v.as_str().map(str::to_owned));
    }
    let space = space.unwrap_or_else(|| "l2".into());
    hnsw.insert("space".into(), Value::String(space.clone()));
    let mut configuration = json!({"hnsw": hnsw});
    if !embedding_function.is_null() {
        configuration["embedding_function"] = embedding_function;
    }
    (configuration, space)
}

/// The largest id map read (a map of 10 million ids is ~400 MiB).
const MAX_PICKLE: u64 = 2 << 30;

/// Chroma's id map (`index_metadata.pickle`): user id → HNSW label.
fn load_labels(path: &Path) -> anyhow::Result<HashMap<String, u64>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .len();
    if size > MAX_PICKLE {
        bail!(
            "{} is larger than any id map ({size} bytes)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = crate::pickle::parse(&bytes)
        .with_context(|| format!("{} is not Chroma's id map", path.display()))?;
    // 1.x writes a dict; 0.x a `PersistentData` object, whose state is the same dict.
    let Some(crate::pickle::Value::Dict(map)) = value.get("id_to_label") else {
        bail!("{} has no id_to_label map", path.display());
    };
    let mut out = HashMap::with_capacity(map.len());
    for (k, v) in map {
        let (crate::pickle::Value::Str(id), crate::pickle::Value::Int(label)) = (k, v) else {
            bail!(
                "{} has an id_to_label entry that is not text → integer",
                path.display()
            );
        };
        let label = u64::try_from(*label)
            .with_context(|| format!("{}: negative label for {id}", path.display()))?;
        out.insert(id.clone(), label);
    }
    Ok(out)
}

/// The HNSW segment's files: where each label's vector is.
struct HnswFiles {
    data: File,
    lengths: Option<File>,
    /// label → element (internal id); deleted elements are absent.
    elements: HashMap<u64, u64>,
    size_per_element: u64,
    data_offset: u64,
    dimension: usize,
    path: PathBuf,
    folder: PathBuf,
    /// Each element's label (`None`: deleted), in element order.
    labels: Vec<Option<u64>>,
    /// Each element's layer-0 neighbours (`None`: a list longer than maxM0 was found).
    layer0: Option<Vec<Vec<u32>>>,
    /// Upper layers' degree (`maxM`) and layer 0's (`maxM0`).
    max_m: u64,
    max_m0: u64,
    /// Where searches enter, and its level (`-1` for an empty index).
    entry: u32,
    max_level: i32,
    /// Records come in about the order their vectors were added, so the vectors are read a
    /// few MiB at a time rather than one `pread` each.
    data_window: std::cell::RefCell<Window>,
    length_window: std::cell::RefCell<Window>,
}

/// The little-endian u32 at `o` in `b`.
fn le_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// A piece of a file kept in memory for reads near each other.
#[derive(Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

/// Bytes a [`Window`] reads at once.
const WINDOW: usize = 4 << 20;

impl Window {
    /// Fills `out` from `file` at `offset`, from the window when it holds those bytes.
    fn read(&mut self, file: &File, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let end = offset + out.len() as u64;
        if offset < self.start || end > self.start + self.bytes.len() as u64 {
            if out.len() > WINDOW / 2 {
                return file.read_exact_at(out, offset);
            }
            // A quarter behind the miss as well: records come in about the order of their
            // vectors, not exactly.
            let from = offset.saturating_sub((WINDOW / 4) as u64);
            self.bytes.clear();
            self.bytes.resize(WINDOW, 0);
            let mut filled = 0;
            while filled < WINDOW {
                match file.read_at(&mut self.bytes[filled..], from + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.bytes.clear();
                        return Err(e);
                    }
                }
            }
            self.bytes.truncate(filled);
            self.start = from;
            if (filled as u64) < end - from {
                self.bytes.clear();
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let at = (offset - self.start) as usize;
        out.copy_from_slice(&self.bytes[at..at + out.len()]);
        Ok(())
    }
}

/// hnswlib's `header.bin` as Chroma's fork persists it: 100 bytes, little-endian.
const HEADER_BYTES: usize = 100;
/// The largest layer-0 degree (`maxM0` = 2M) accepted; Chroma caps M far below.
const MAX_DEGREE: u64 = 8192;
/// The largest dimension accepted (Ochre's own limit is lower).
const MAX_DIMENSION: i64 = 1 << 16;
const DELETE_MARK: u8 = 0x01;

impl HnswFiles {
    /// Opens the files of an index of `dimension`-float vectors expected to hold `expected`
    /// live ones.
    fn open(
        folder: &Path,
        dimension: usize,
        cosine: bool,
        expected: usize,
    ) -> anyhow::Result<HnswFiles> {
        let at = |n: &str| folder.join(n);
        let mut header = [0u8; HEADER_BYTES];
        File::open(at("header.bin"))
            .and_then(|mut f| f.read_exact(&mut header))
            .with_context(|| format!("cannot read {}", at("header.bin").display()))?;
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let version = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if version != 1 {
            bail!(
                "{} has HNSW persistence version {version}; this Ochre reads version 1",
                at("header.bin").display()
            );
        }
        let (level0, max_elements, count, size, label_offset, data_offset, max_m0) = (
            u64_at(4),
            u64_at(12),
            u64_at(20),
            u64_at(28),
            u64_at(36),
            u64_at(44),
            u64_at(68),
        );
        let max_level = i32::from_le_bytes([header[52], header[53], header[54], header[55]]);
        let entry = u32::from_le_bytes([header[56], header[57], header[58], header[59]]);
        let max_m = u64_at(60);
        let damaged =
            |what: &str| anyhow::anyhow!("{} is damaged: {what}", at("header.bin").display());
        // Every size is checked against the others before anything is allocated from it.
        if max_m0 == 0 || max_m0 > MAX_DEGREE || data_offset != 4 + 4 * max_m0 || level0 != 0 {
            return Err(damaged("inconsistent element layout"));
        }
        if label_offset.checked_sub(data_offset) != Some(4 * dimension as u64) {
            return Err(damaged(&format!(
                "its vectors are not of the collection's dimension {dimension}"
            )));
        }
        if size != label_offset + 8 {
            return Err(damaged("inconsistent element layout"));
        }
        if count > max_elements {
            return Err(damaged("more elements than its capacity"));
        }
        let data = File::open(at("data_level0.bin"))
            .with_context(|| format!("cannot open {}", at("data_level0.bin").display()))?;
        let len = data.metadata()?.len();
        if count.checked_mul(size).is_none_or(|need| need > len) {
            return Err(anyhow::anyhow!(
                "{} is cut short: {count} elements of {size} bytes do not fit in {len} bytes",
                at("data_level0.bin").display()
            ));
        }
        let mut elements = HashMap::with_capacity(expected.min(usize::try_from(count)?));
        let mut reader = BufReader::with_capacity(1 << 20, &data);
        let mut element = vec![0u8; usize::try_from(size)?];
        let label_at = usize::try_from(label_offset)?;
        // The same pass takes layer 0 of the graph (each element: a u16 count, a flags byte, a
        // spare byte, maxM0 u32 slots), for [`HnswFiles::graph`]; a list longer than maxM0
        // makes the graph unusable, not the vectors.
        let slots = usize::try_from(max_m0)?;
        let mut labels = Vec::with_capacity(usize::try_from(count)?);
        let mut layer0 = Some(Vec::with_capacity(usize::try_from(count)?));
        for i in 0..count {
            reader
                .read_exact(&mut element)
                .with_context(|| format!("reading {}", at("data_level0.bin").display()))?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&element[label_at..label_at + 8]);
            let label = u64::from_le_bytes(b);
            let live = element[2] & DELETE_MARK == 0;
            if live {
                elements.insert(label, i);
            }
            labels.push(live.then_some(label));
            let n = usize::from(u16::from_le_bytes([element[0], element[1]]));
            if n > slots {
                layer0 = None;
            }
            if let Some(lists) = layer0.as_mut() {
                lists.push(
                    (0..n)
                        .map(|j| le_u32(&element, 4 + 4 * j))
                        .collect::<Vec<u32>>(),
                );
            }
        }
        drop(reader);
        let lengths = if cosine {
            let f = File::open(at("length.bin"))
                .with_context(|| format!("cannot open {}", at("length.bin").display()))?;
            if count
                .checked_mul(4)
                .is_none_or(|need| f.metadata().map_or(true, |m| m.len() < need))
            {
                bail!("{} is cut short", at("length.bin").display());
            }
            Some(f)
        } else {
            None
        };
        Ok(HnswFiles {
            data,
            lengths,
            elements,
            size_per_element: size,
            data_offset,
            dimension,
            path: at("data_level0.bin"),
            folder: folder.to_owned(),
            labels,
            layer0,
            max_m,
            max_m0,
            entry,
            max_level,
            data_window: Default::default(),
            length_window: Default::default(),
        })
    }

    /// The index's graph, for Ochre to adopt instead of building its own: node `i` is element
    /// `i`, standing for the record `id_of(label)` returns (`None`: deleted in the files, or
    /// changed since by the log; Ochre links such records itself). `Ok(None)` when the graph
    /// cannot be taken as it is (a layout Ochre's index does not have: upper degree not half the
    /// lower one); damage is an error, as for the vectors.
    fn graph(
        &mut self,
        id_of: &dyn Fn(u64) -> Option<String>,
    ) -> anyhow::Result<Option<ochre::ImportedGraph>> {
        let (m, m0) = (self.max_m, self.max_m0);
        if m == 0 || m.checked_mul(2) != Some(m0) {
            return Ok(None);
        }
        let n = self.labels.len();
        let damaged = |file: &str, what: &str| {
            anyhow::anyhow!("{} is damaged: {what}", self.folder.join(file).display())
        };
        // Layer 0 and the labels were read with the vectors' layout in `open`.
        let layer0 = self
            .layer0
            .take()
            .ok_or_else(|| damaged("data_level0.bin", "a neighbour list longer than maxM0"))?;
        let mut graph = ochre::ImportedGraph {
            m: usize::try_from(m)?,
            nodes: self.labels.iter().map(|l| l.and_then(id_of)).collect(),
            levels: Vec::with_capacity(n),
            layer0,
            upper: Vec::with_capacity(n),
            entry: self.entry,
            max_level: usize::try_from(self.max_level.max(0))?,
        };
        // The upper layers: link_lists.bin holds, for each element, a u32 byte size (0 on
        // layer 0 only) and then, per level, a u16 count, two spare bytes and maxM u32 slots.
        let path = self.folder.join("link_lists.bin");
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let per_level = 4 + 4 * usize::try_from(m)?;
        let mut block = Vec::new();
        for _ in 0..n {
            let mut size = [0u8; 4];
            reader
                .read_exact(&mut size)
                .with_context(|| format!("{} is cut short", path.display()))?;
            let size = u32::from_le_bytes(size) as usize;
            if !size.is_multiple_of(per_level) || size / per_level > 31 {
                return Err(damaged(
                    "link_lists.bin",
                    "an element's lists have an odd size",
                ));
            }
            block.resize(size, 0);
            reader
                .read_exact(&mut block)
                .with_context(|| format!("{} is cut short", path.display()))?;
            let mut lists = Vec::with_capacity(size / per_level);
            for level in block.chunks_exact(per_level) {
                let count = usize::from(u16::from_le_bytes([level[0], level[1]]));
                if count * 4 + 4 > per_level {
                    return Err(damaged(
                        "link_lists.bin",
                        "a neighbour list longer than maxM",
                    ));
                }
                lists.push((0..count).map(|j| le_u32(level, 4 + 4 * j)).collect());
            }
            // Fits: at most 31 levels.
            graph.levels.push(lists.len() as u8);
            graph.upper.push(lists);
        }
        Ok(Some(graph))
    }

    /// The vector of `label` as Chroma returns it (for cosine: the unit vector times its norm).
    fn vector(&self, label: u64) -> anyhow::Result<Option<Vec<f32>>> {
        let Some(&i) = self.elements.get(&label) else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; self.dimension * 4];
        self.data_window
            .borrow_mut()
            .read(
                &self.data,
                i * self.size_per_element + self.data_offset,
                &mut bytes,
            )
            .with_context(|| format!("reading {}", self.path.display()))?;
        let mut v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(lengths) = &self.lengths {
            let mut b = [0u8; 4];
            self.length_window
                .borrow_mut()
                .read(lengths, i * 4, &mut b)
                .with_context(|| format!("reading {}", self.folder.join("length.bin").display()))?;
            let norm = f32::from_le_bytes(b);
            for x in &mut v {
                *x *= norm;
            }
        }
        Ok(Some(v))
    }
}

/// What Chroma's cosine index returns for a vector added to it: hnswlib's normalisation (a
/// sequential f32 sum of squares, `1 / (norm + 1e-30)`), then the product with the norm.
fn cosine_round_trip(v: &mut [f32]) {
    let mut sum = 0f32;
    for &x in v.iter() {
        sum += x * x;
    }
    let norm = sum.sqrt();
    let inverse = 1.0f32 / (norm + 1e-30f32);
    for x in v.iter_mut() {
        *x = (*x * inverse) * norm;
    }
}

const ADD: i64 = 0;
const UPDATE: i64 = 1;
const UPSERT: i64 = 2;
const DELETE: i64 = 3;

/// One log entry of a collection.
struct LogEntry {
    seq: i64,
    operation: i64,
    id: String,
    vector: Option<Vec<f32>>,
    metadata: Option<Map<String, Value>>,
}

impl ChromaDir {
    fn log(&self, c: &ChromaCollection, after: i64) -> anyhow::Result<Vec<LogEntry>> {
        let topic = format!("persistent://default/default/{}", c.id);
        let mut stmt = self.conn.prepare(
            "SELECT seq_id, operation, id, vector, encoding, metadata FROM embeddings_queue \
             WHERE topic = ?1 AND seq_id > ?2 ORDER BY seq_id",
        )?;
        let mut rows = stmt.query(params![topic, after])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let id: String = r.get(2)?;
            let vector = match (
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ) {
                (Some(bytes), Some(enc)) if enc == "FLOAT32" => {
                    if bytes.len() % 4 != 0
                        || c.dimension
                            .is_some_and(|d| Some(bytes.len() as i64) != d.checked_mul(4))
                    {
                        bail!(
                            "log entry {seq} of collection {}: a vector of {} bytes for dimension {:?}",
                            c.name,
                            bytes.len(),
                            c.dimension
                        );
                    }
                    Some(
                        bytes
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    )
                }
                (Some(_), enc) => bail!(
                    "log entry {seq} of collection {}: vector encoding {enc:?} is not supported",
                    c.name
                ),
                (None, _) => None,
            };
            let metadata = match r.get::<_, Option<String>>(5)? {
                Some(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => Some(m),
                    Ok(Value::Null) => None,
                    _ => bail!(
                        "log entry {seq} of collection {}: its metadata is not a JSON object",
                        c.name
                    ),
                },
                None => None,
            };
            out.push(LogEntry {
                seq,
                operation: r.get(1)?,
                id,
                vector,
                metadata,
            });
        }
        Ok(out)
    }

    /// The smallest and largest offset id of the collection's records (`None`: it has none).
    fn id_span(&self, c: &ChromaCollection) -> anyhow::Result<Option<(i64, i64)>> {
        let span: (Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT min(id), max(id) FROM embeddings WHERE segment_id = ?1",
            params![c.metadata_segment],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(span.0.zip(span.1))
    }

    /// The record ids, in Chroma's order, of one chunk from offset id `from` up to `last`.
    fn chunk(
        &self,
        c: &ChromaCollection,
        from: i64,
        last: i64,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        // A walk of the table by id, within the collection's span (`+segment_id` keeps SQLite
        // off the (segment_id, embedding_id) index, which it would otherwise pick, reading all of
        // the segment's rows and sorting them for every chunk: quadratic in its size).
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, embedding_id FROM embeddings WHERE +segment_id = ?1 AND id >= ?2 \
             AND id <= ?3 ORDER BY id LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![c.metadata_segment, from, last, CHUNK], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The metadata maps (with `chroma:` keys) of a chunk's records.
    fn chunk_metadata(
        &self,
        rows: &[(i64, String)],
    ) -> anyhow::Result<HashMap<i64, Map<String, Value>>> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(HashMap::new());
        };
        let wanted: HashSet<i64> = rows.iter().map(|r| r.0).collect();
        let mut out: HashMap<i64, Map<String, Value>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, key, string_value, int_value, float_value, bool_value \
             FROM embedding_metadata WHERE id BETWEEN ?1 AND ?2",
        )?;
        let mut q = stmt.query(params![first.0, last.0])?;
        while let Some(r) = q.next()? {
            let id: i64 = r.get(0)?;
            if !wanted.contains(&id) {
                continue;
            }
            if let Some(v) = typed(r, 2)? {
                out.entry(id).or_default().insert(r.get(1)?, v);
            }
        }
        if self.arrays {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, key, string_value, int_value, float_value, bool_value \
                 FROM embedding_metadata_array WHERE id BETWEEN ?1 AND ?2 ORDER BY id, key, rowid",
            )?;
            let mut q = stmt.query(params![first.0, last.0])?;
            while let Some(r) = q.next()? {
                let id: i64 = r.get(0)?;
                if !wanted.contains(&id) {
                    continue;
                }
                let key: String = r.get(1)?;
                let Some(v) = typed(r, 2)? else { continue };
                let m = out.entry(id).or_default();
                match m.get_mut(&key) {
                    Some(Value::Array(a)) => a.push(v),
                    _ => {
                        m.insert(key, Value::Array(vec![v]));
                    }
                }
            }
        }
        Ok(out)
    }

    fn emit_collection(
        &self,
        c: &ChromaCollection,
        f: &mut dyn FnMut(Item) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let metadata = self.typed_map(
            "SELECT key, str_value, int_value, float_value, bool_value FROM collection_metadata \
             WHERE collection_id = ?1",
            &c.id,
        )?;
        let segment_meta = self.typed_map(
            "SELECT key, str_value, int_value, float_value, bool_value FROM segment_metadata \
             WHERE segment_id = ?1",
            &c.vector_segment,
        )?;
        let schema = c
            .schema
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "null")
            .map(serde_json::from_str::<Value>)
            .transpose()
            .with_context(|| format!("the schema of collection {} is not JSON", c.name))?;
        let (configuration, space) =
            resolve_configuration(schema.as_ref(), c.config_json.as_deref(), &segment_meta);
        f(Item::Collection(CollectionSpec {
            tenant: c.tenant.clone(),
            database: c.database.clone(),
            name: c.name.clone(),
            metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
            configuration: Some(configuration),
            schema,
        }))?;
        let cosine = space == "cosine";
        let dimension = match c.dimension {
            Some(d) if (1..=MAX_DIMENSION).contains(&d) => Some(usize::try_from(d)?),
            Some(d) => bail!("collection {} has dimension {d}", c.name),
            None => None,
        };

        // The vectors: the index files (when Chroma would load them), then the log after them.
        let folder = self.dir.join(&c.vector_segment);
        let pickle = folder.join("index_metadata.pickle");
        let mut labels = HashMap::new();
        let mut files = None;
        if let (Some(d), true) = (dimension, pickle.is_file()) {
            labels = load_labels(&pickle)?;
            if !labels.is_empty() {
                files = Some(HnswFiles::open(&folder, d, cosine, labels.len())?);
            }
        }
        let vector_seen = if files.is_some() {
            self.max_seq(&c.vector_segment)?
        } else {
            0
        };
        // The log is read once, from the older of the two segments' marks.
        let metadata_seen = self.max_seq(&c.metadata_segment)?;
        let log = self.log(c, vector_seen.min(metadata_seen))?;

        // Log entries the metadata segment had not applied (a crash between the log write and
        // the segment's): normally none.
        let mut pending = log.iter().filter(|e| e.seq > metadata_seen).peekable();
        let overlay = if pending.peek().is_none() {
            None
        } else {
            Some(self.metadata_overlay(c, pending)?)
        };

        let mut newer: HashMap<String, Option<Vec<f32>>> = HashMap::new();
        for e in log.into_iter().filter(|e| e.seq > vector_seen) {
            let present = match newer.get(&e.id) {
                Some(v) => v.is_some(),
                None => labels.contains_key(&e.id),
            };
            let vector = e.vector.map(|mut v| {
                if cosine {
                    cosine_round_trip(&mut v);
                }
                v
            });
            match (e.operation, vector) {
                (ADD, Some(v)) if !present => {
                    newer.insert(e.id, Some(v));
                }
                (UPDATE, Some(v)) if present => {
                    newer.insert(e.id, Some(v));
                }
                (UPSERT, Some(v)) => {
                    newer.insert(e.id, Some(v));
                }
                (DELETE, _) => {
                    newer.insert(e.id, None);
                }
                _ => {}
            }
        }

        // The index's graph, for a local import to adopt: its nodes stand for the records whose
        // vector is the one in the files (not changed or deleted by the log since).
        if let (Some(files), false) = (files.as_mut(), self.skim) {
            let id_of_label: HashMap<u64, &str> =
                labels.iter().map(|(id, l)| (*l, id.as_str())).collect();
            let id_of = |label: u64| {
                id_of_label
                    .get(&label)
                    .filter(|id| !newer.contains_key(**id))
                    .map(|id| (*id).to_owned())
            };
            // A graph that cannot be read is no reason to fail: Ochre builds its own.
            match files.graph(&id_of) {
                Ok(Some(graph)) => f(Item::Graph(Box::new(graph)))?,
                Ok(None) => {}
                Err(e) => eprintln!(
                    "collection {}: Chroma's HNSW graph cannot be used ({e:#}); Ochre builds its own",
                    c.name
                ),
            }
        }

        let skim = self.skim;
        let vector_of = |id: &str| -> anyhow::Result<Vec<f32>> {
            let found = match newer.get(id) {
                Some(v) => v.clone(),
                None => match (labels.get(id), &files) {
                    // The check pass: the vector is there, and its length is the collection's.
                    (Some(&label), Some(files)) if skim => files
                        .elements
                        .contains_key(&label)
                        .then(|| vec![0.0; files.dimension]),
                    (Some(&label), Some(files)) => files.vector(label)?,
                    _ => None,
                },
            };
            found.with_context(|| {
                format!(
                    "record {id:?} of collection {} has no vector in the index files or the log \
                     (Chroma cannot read this collection either)",
                    c.name
                )
            })
        };
        let mut emit = |id: String, mut m: Map<String, Value>| -> anyhow::Result<()> {
            let document = match m.remove("chroma:document") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            let uri = match m.remove("chroma:uri") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            };
            m.retain(|k, _| !k.starts_with("chroma:"));
            let embedding = vector_of(&id)?;
            f(Item::Record(Record {
                id,
                embedding,
                document,
                uri,
                metadata: (!m.is_empty()).then_some(Value::Object(m)),
            }))
        };
        let mut span = self.id_span(c)?;
        while let Some((from, end)) = span {
            let rows = self.chunk(c, from, end)?;
            let Some(last) = rows.last() else { break };
            span = last
                .0
                .checked_add(1)
                .filter(|next| *next <= end)
                .map(|next| (next, end));
            let mut metadata = self.chunk_metadata(&rows)?;
            for (oid, id) in rows {
                let mut m = metadata.remove(&oid).unwrap_or_default();
                if let Some(o) = &overlay {
                    match o.existing.get(&id) {
                        Some(None) => continue,
                        Some(Some(new)) => m = new.clone(),
                        None => {}
                    }
                }
                emit(id, m)?;
            }
        }
        if let Some(o) = overlay {
            for (id, m) in o.added {
                emit(id, m)?;
            }
        }
        Ok(())
    }

    /// Applies log entries the metadata segment had not seen to its records: for existing ids
    /// their final metadata (`None`: deleted, or moved to the end by a delete and re-add), and
    /// the ids added, in the order Chroma would place them (after every existing record).
    fn metadata_overlay<'e>(
        &self,
        c: &ChromaCollection,
        pending: impl Iterator<Item = &'e LogEntry>,
    ) -> anyhow::Result<Overlay> {
        /// An id's state: still at its place among the existing records, and its metadata
        /// (`None` while deleted).
        struct State {
            in_place: bool,
            metadata: Option<Map<String, Value>>,
        }
        let merge = |m: &mut Map<String, Value>, update: &Option<Map<String, Value>>| {
            for (k, v) in update.iter().flatten() {
                if v.is_null() {
                    m.remove(k);
                } else {
                    m.insert(k.clone(), v.clone());
                }
            }
        };
        let mut states: HashMap<String, State> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for e in pending {
            if !states.contains_key(&e.id) {
                let base = self
                    .conn
                    .query_row(
                        "SELECT id FROM embeddings WHERE segment_id = ?1 AND embedding_id = ?2",
                        [&c.metadata_segment, &e.id],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()?;
                let state = match base {
                    Some(oid) => State {
                        in_place: true,
                        metadata: Some(
                            self.chunk_metadata(&[(oid, e.id.clone())])?
                                .remove(&oid)
                                .unwrap_or_default(),
                        ),
                    },
                    None => State {
                        in_place: false,
                        metadata: None,
                    },
                };
                states.insert(e.id.clone(), state);
            }
            let Some(state) = states.get_mut(&e.id) else {
                continue;
            };
            match (e.operation, &mut state.metadata) {
                (ADD | UPSERT, None) => {
                    // A new record (or one deleted before): it goes to the end.
                    let mut m = Map::new();
                    merge(&mut m, &e.metadata);
                    state.metadata = Some(m);
                    state.in_place = false;
                    order.retain(|i| *i != e.id);
                    order.push(e.id.clone());
                }
                (UPDATE | UPSERT, Some(m)) => merge(m, &e.metadata),
                (DELETE, _) => state.metadata = None,
                _ => {}
            }
        }
        let added = order
            .into_iter()
            .filter_map(|id| {
                let m = states.get(&id).and_then(|s| s.metadata.clone())?;
                Some((id, m))
            })
            .collect();
        let existing = states
            .into_iter()
            .map(|(id, s)| {
                let m = if s.in_place { s.metadata } else { None };
                (id, m)
            })
            .collect();
        Ok(Overlay { existing, added })
    }
}

struct Overlay {
    existing: HashMap<String, Option<Map<String, Value>>>,
    added: Vec<(String, Map<String, Value>)>,
}

impl Source for ChromaDir {
    fn describe(&self) -> String {
        format!("{} ({})", self.dir.display(), self.release)
    }

    fn skim(&mut self, skim: bool) {
        self.skim = skim;
    }

    fn items(&mut self, f: &mut dyn FnMut(Item) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let tenants: Vec<String> = self
            .conn
            .prepare("SELECT id FROM tenants ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut databases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in self
            .conn
            .prepare("SELECT tenant_id, name FROM databases ORDER BY tenant_id, name")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        {
            let (t, d) = row?;
            databases.entry(t).or_default().push(d);
        }
        let collections = self.collections()?;
        for t in tenants {
            f(Item::Tenant(t.clone()))?;
            for d in databases.remove(&t).unwrap_or_default() {
                f(Item::Database {
                    tenant: t.clone(),
                    name: d.clone(),
                })?;
                for c in collections
                    .iter()
                    .filter(|c| c.tenant == t && c.database == d)
                {
                    self.emit_collection(c, f)
                        .with_context(|| format!("reading collection {} of {}/{}", c.name, t, d))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cosine_round_trip_matches_chromas_rounding() {
        // Chroma 1.5.9 returns [4, 5, 6.00000048] for an added [4, 5, 6].
        let mut v = [4.0f32, 5.0, 6.0];
        cosine_round_trip(&mut v);
        assert_eq!(v, [4.0, 5.0, 6.000_000_5]);
        let mut zero = [0.0f32; 3];
        cosine_round_trip(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }

    #[test]
    fn legacy_segment_parameters_apply_only_over_a_default_configuration() {
        let mut seg = Map::new();
        seg.insert("hnsw:space".into(), json!("cosine"));
        seg.insert("hnsw:M".into(), json!(32));
        let (cfg, space) = resolve_configuration(None, None, &seg);
        assert_eq!(space, "cosine");
        assert_eq!(cfg["hnsw"]["max_neighbors"], 32);
        let schema = json!({"keys": {"#embedding": {"float_list": {"vector_index": {"config": {
            "space": "ip", "hnsw": {"ef_search": 50}}}}}}});
        let (cfg, space) = resolve_configuration(Some(&schema), None, &seg);
        assert_eq!(space, "ip");
        assert_eq!(cfg["hnsw"]["ef_search"], 50);
    }
}
