//! Golden compatibility: data directories written by earlier commits (tests/data, one per
//! combination of store and checkpoint format that has shipped) open with today's code and hold
//! exactly what was written.
//!
//! Each fixture is `db/` (the data directory) plus `expected.json` (every tenant, database,
//! collection and record the generator wrote; see tests/data/README.md). A test copies `db/` to a
//! temporary directory first, because opening migrates it in place.
//!
//! That a checkpoint was loaded rather than silently rebuilt is observed two ways without any
//! hook in the engine: the engine logs `loaded index checkpoint` (with the replayed and stale
//! counts) through `tracing`, captured here by a small subscriber; and a clean checkpoint that was
//! loaded leaves the index unchanged, so closing does not rewrite the file, while a rebuilt index
//! counts as changed and is written again on close (in today's format, and without the fixture's
//! tombstones).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ochre::{
    CollectionInfo, GetRequest, HnswConfig, Include, Metadata, MetadataValue, Ochre, QueryRequest,
    RecordBatch, Space, Where,
};
use serde_json::{json, Value};

/// The store format today's code writes (docs/format/sqlite.md).
const STORE_FORMAT: i64 = 4;
/// The checkpoint format today's code writes (docs/format/hnsw.md).
const CHECKPOINT_FORMAT: u32 = 2;

// ----- fixtures -----

struct Fixture {
    name: &'static str,
    /// The copy under test.
    _tmp: tempfile::TempDir,
    db: PathBuf,
    /// The checked-in data directory (never opened).
    original: PathBuf,
    expected: Value,
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

fn fixture(name: &'static str) -> Fixture {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name);
    let text = std::fs::read_to_string(root.join("expected.json")).expect("expected.json");
    let expected: Value = serde_json::from_str(&text).expect("valid json");
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    copy_dir(&root.join("db"), &db);
    Fixture {
        name,
        _tmp: tmp,
        db,
        original: root.join("db"),
        expected,
    }
}

impl Fixture {
    fn store_format(&self) -> i64 {
        self.expected["generator"]["store_format"]
            .as_i64()
            .expect("number")
    }

    fn checkpoint_format(&self) -> u32 {
        self.expected["generator"]["checkpoint_format"]
            .as_u64()
            .expect("number") as u32
    }

    /// (tenant, database, collection) for every expected collection.
    fn collections(&self) -> Vec<(&str, &str, &Value)> {
        let mut out = Vec::new();
        for t in self.expected["tenants"].as_array().expect("tenants") {
            for d in t["databases"].as_array().expect("databases") {
                for c in d["collections"].as_array().expect("collections") {
                    out.push((
                        t["name"].as_str().expect("name"),
                        d["name"].as_str().expect("name"),
                        c,
                    ));
                }
            }
        }
        out
    }
}

fn checkpoint_path(db: &Path, id: &str) -> PathBuf {
    db.join("index").join(format!("{id}.hnsw"))
}

fn vector_file_path(db: &Path, id: &str) -> PathBuf {
    db.join("index").join(format!("{id}.vec"))
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

/// `PRAGMA user_version` and the applied migrations of a closed store.
fn store_version(db: &Path) -> (i64, Vec<i64>) {
    let conn = rusqlite::Connection::open(db.join("ochre.sqlite3")).expect("sqlite");
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    let mut stmt = conn
        .prepare("SELECT version FROM migrations ORDER BY version")
        .expect("migrations");
    let migrations = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<Vec<i64>, _>>()
        .expect("rows");
    (version, migrations)
}

// ----- expected values -----

#[derive(Debug, PartialEq)]
struct Rec {
    id: String,
    /// Bit patterns, so the comparison is exact.
    embedding: Vec<u32>,
    document: Option<String>,
    uri: Option<String>,
    metadata: Option<Metadata>,
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn array<T>(v: &Value, f: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| f(x).expect("typed element"))
        .collect()
}

/// Decodes the generator's tagged metadata (`{"key": {"int": 1}}`).
fn metadata(v: &Value) -> Option<Metadata> {
    let obj = v.as_object()?;
    Some(
        obj.iter()
            .map(|(k, tagged)| {
                let (tag, x) = tagged
                    .as_object()
                    .and_then(|o| o.iter().next())
                    .expect("tagged value");
                let value = match tag.as_str() {
                    "bool" => MetadataValue::Bool(x.as_bool().expect("bool")),
                    "int" => MetadataValue::Int(x.as_i64().expect("int")),
                    "float" => MetadataValue::Float(x.as_f64().expect("float")),
                    "str" => MetadataValue::Str(opt_str(x).expect("str")),
                    "bools" => MetadataValue::BoolArray(array(x, Value::as_bool)),
                    "ints" => MetadataValue::IntArray(array(x, Value::as_i64)),
                    "floats" => MetadataValue::FloatArray(array(x, Value::as_f64)),
                    "strs" => MetadataValue::StrArray(array(x, opt_str)),
                    other => panic!("unknown tag {other}"),
                };
                (k.clone(), value)
            })
            .collect(),
    )
}

fn embedding(v: &Value) -> Vec<f32> {
    // Every component is k/256 - 1: exact as f64 and as f32.
    array(v, |x| x.as_f64().map(|f| f as f32))
}

fn expected_records(c: &Value) -> Vec<Rec> {
    c["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| Rec {
            id: opt_str(&r["id"]).expect("id"),
            embedding: embedding(&r["embedding"])
                .iter()
                .map(|x| x.to_bits())
                .collect(),
            document: opt_str(&r["document"]),
            uri: opt_str(&r["uri"]),
            // As written; a record with a uri and no metadata reads back an empty map (Chroma's
            // rule).
            metadata: metadata(&r["metadata"])
                .or_else(|| opt_str(&r["uri"]).map(|_| Metadata::new())),
        })
        .collect()
}

fn expected_hnsw(c: &Value) -> HnswConfig {
    let h = &c["hnsw"];
    let n = |k: &str| h[k].as_u64().expect("number");
    HnswConfig {
        space: h["space"].as_str().expect("space").parse().expect("space"),
        ef_construction: n("ef_construction"),
        ef_search: n("ef_search"),
        max_neighbors: n("max_neighbors"),
        num_threads: n("num_threads"),
        resize_factor: h["resize_factor"].as_f64().expect("number"),
        sync_threshold: n("sync_threshold"),
        batch_size: n("batch_size"),
    }
}

fn all_records(db: &Ochre, info: &CollectionInfo) -> Vec<Rec> {
    let got = db
        .collection(info.id)
        .expect("collection")
        .get(GetRequest {
            include: Include::all(),
            ..Default::default()
        })
        .expect("get");
    let embeddings = got.embeddings.expect("included");
    let documents = got.documents.expect("included");
    let uris = got.uris.expect("included");
    let metadatas = got.metadatas.expect("included");
    (0..got.ids.len())
        .map(|i| Rec {
            id: got.ids[i].clone(),
            embedding: embeddings[i].iter().map(|x| x.to_bits()).collect(),
            document: documents[i].clone(),
            uri: uris[i].clone(),
            metadata: metadatas[i].clone(),
        })
        .collect()
}

// ----- log capture -----

/// One captured `tracing` event: its fields (the message under `message`) as text.
type Fields = BTreeMap<String, String>;

/// A subscriber that keeps every event of the thread it is the default of.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Fields>>>);

struct Visitor<'a>(&'a mut Fields);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().expect("capture").push(fields);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Opens `db`, returning the database and the events logged while opening.
fn open_logged(db: &Path) -> (Ochre, Vec<Fields>) {
    let capture = Capture::default();
    let opened =
        tracing::subscriber::with_default(capture.clone(), || Ochre::open(db).expect("open"));
    let events = capture.0.lock().expect("capture").clone();
    (opened, events)
}

/// Asserts that every collection with a checkpoint loaded it (with the expected number of
/// replayed records and stale nodes) and that no checkpoint was rejected.
fn assert_checkpoints_loaded(f: &Fixture, events: &[Fields], lagging_replayed: bool) {
    assert_loads(f, events, Load::Store { lagging_replayed });
}

/// How an open is expected to have loaded each checkpoint.
#[derive(Clone, Copy)]
enum Load {
    /// Vectors from the store (with the lagging collection's replay, or none).
    Store { lagging_replayed: bool },
    /// With the vector file written at the last close.
    VectorFile,
    /// A fixture's first open: the lagging collection from the store with its replay (its
    /// vector file pairs with the checkpoint its writer put back over), the others with their
    /// vector files.
    FixtureVectors,
}

fn assert_loads(f: &Fixture, events: &[Fields], how: Load) {
    let lagging_replayed = matches!(
        how,
        Load::Store {
            lagging_replayed: true
        } | Load::FixtureVectors
    );
    for e in events {
        let message = e.get("message").map_or("", String::as_str);
        assert!(
            !message.contains("unusable"),
            "{}: a checkpoint was rejected: {e:?}",
            f.name
        );
    }
    for (_, _, c) in f.collections() {
        let id = c["id"].as_str().expect("id");
        let clean = c["checkpoint"]["replayed"] == 0 && c["checkpoint"]["stale"] == 0;
        let mapped = match how {
            Load::Store { .. } => false,
            Load::VectorFile => true,
            Load::FixtureVectors => clean,
        };
        let wanted = if mapped {
            "loaded index checkpoint with its vector file"
        } else {
            "loaded index checkpoint"
        };
        let loads: Vec<&Fields> = events
            .iter()
            .filter(|e| {
                e.get("message").map(String::as_str) == Some(wanted)
                    && e.get("collection").map(String::as_str) == Some(id)
            })
            .collect();
        let name = &c["name"];
        if c["checkpoint"].is_null() {
            assert!(loads.is_empty(), "{}: {name} has no checkpoint", f.name);
            continue;
        }
        let (replayed, stale) = if lagging_replayed {
            (
                c["checkpoint"]["replayed"].as_u64().expect("number"),
                c["checkpoint"]["stale"].as_u64().expect("number"),
            )
        } else {
            (0, 0)
        };
        assert_eq!(loads.len(), 1, "{}: {name} loaded its checkpoint", f.name);
        if mapped {
            continue;
        }
        assert_eq!(
            loads[0].get("replayed"),
            Some(&replayed.to_string()),
            "{}: {name} replayed",
            f.name
        );
        assert_eq!(
            loads[0].get("stale"),
            Some(&stale.to_string()),
            "{}: {name} stale nodes",
            f.name
        );
    }
}

// ----- queries -----

/// SplitMix64, for query vectors.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim)
            .map(|_| ((self.next_u64() >> 32) % 513) as f32 / 256.0 - 1.0)
            .collect()
    }
}

/// The distance Ochre reports (docs: squared L2, 1 - cos, 1 - dot), in f64.
fn distance(space: Space, q: &[f32], v: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
    match space {
        Space::L2 => q
            .iter()
            .zip(v)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum(),
        Space::Cosine => {
            let nq: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nv: f64 = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            1.0 - dot / (nq * nv)
        }
        Space::Ip => 1.0 - dot,
    }
}

/// Queries the collection (unfiltered and with `bucket == 2`) and asserts the exact nearest ids
/// and distances of a brute-force search over the expected records. Queries whose top k + 1
/// distances are not clearly apart are skipped (the answer would depend on rounding).
fn assert_queries(db: &Ochre, info: &CollectionInfo, c: &Value) {
    let space = info.configuration.hnsw.space;
    let records: Vec<(String, Vec<f32>, Option<Metadata>)> = c["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                opt_str(&r["id"]).expect("id"),
                embedding(&r["embedding"]),
                metadata(&r["metadata"]),
            )
        })
        .collect();
    if records.is_empty() {
        return;
    }
    let dim = records[0].1.len();
    let coll = db.collection(info.id).expect("collection");
    let mut rng = Rng(info.name.bytes().fold(7, |h, b| h * 31 + b as u64));
    for filtered in [false, true] {
        let pool: Vec<&(String, Vec<f32>, Option<Metadata>)> = records
            .iter()
            .filter(|r| {
                !filtered
                    || r.2.as_ref().and_then(|m| m.get("bucket")) == Some(&MetadataValue::Int(2))
            })
            .collect();
        if pool.is_empty() {
            continue;
        }
        let k = pool.len().min(10);
        let mut checked = 0;
        for _ in 0..20 {
            let q = rng.vector(dim);
            let mut brute: Vec<(f64, &str)> = pool
                .iter()
                .map(|r| (distance(space, &q, &r.1), r.0.as_str()))
                .collect();
            brute.sort_by(|a, b| a.0.total_cmp(&b.0));
            let apart = brute
                .windows(2)
                .take(k)
                .all(|w| w[1].0 - w[0].0 > 1e-4 * w[0].0.abs().max(1.0));
            if !apart {
                continue;
            }
            let mut req = QueryRequest::new(vec![q]);
            req.n_results = k as u32;
            if filtered {
                req.where_ = Some(Where::from_json(&json!({"bucket": 2})).expect("filter"));
            }
            let got = coll.query(req).expect("query");
            let want: Vec<&str> = brute[..k].iter().map(|b| b.1).collect();
            assert_eq!(
                got.ids[0], want,
                "{} (filtered: {filtered}): nearest ids",
                info.name
            );
            let distances = &got.distances.as_ref().expect("distances")[0];
            for (d, (b, _)) in distances.iter().zip(&brute) {
                assert!(
                    (*d as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{}: distance {d} vs {b}",
                    info.name
                );
            }
            checked += 1;
            if checked == 3 {
                break;
            }
        }
        assert_eq!(checked, 3, "{}: three usable queries", info.name);
    }
}

// ----- the checks -----

/// Every tenant, database, collection (configuration and counters) and record is as written.
fn assert_contents(f: &Fixture, db: &Ochre) {
    let tenants = f.expected["tenants"].as_array().expect("tenants");
    let names: Vec<String> = db.list_tenants().into_iter().map(|t| t.name).collect();
    let want: Vec<&str> = tenants
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, want, "{}: tenants", f.name);
    for t in tenants {
        let tenant = t["name"].as_str().expect("name");
        let info = db.get_tenant(tenant).expect("tenant");
        assert_eq!(info.resource_name, opt_str(&t["resource_name"]));
        let dbs = t["databases"].as_array().expect("databases");
        let listed: Vec<(String, String)> = db
            .list_databases(tenant, None, 0)
            .into_iter()
            .map(|d| (d.name, d.id.to_string()))
            .collect();
        let want: Vec<(String, String)> = dbs
            .iter()
            .map(|d| {
                (
                    opt_str(&d["name"]).expect("name"),
                    opt_str(&d["id"]).expect("id"),
                )
            })
            .collect();
        assert_eq!(listed, want, "{}: databases of {tenant}", f.name);
        for d in dbs {
            let database = d["name"].as_str().expect("name");
            let colls = d["collections"].as_array().expect("collections");
            let mut listed: Vec<String> = db
                .list_collections(tenant, database, None, 0)
                .into_iter()
                .map(|c| c.name)
                .collect();
            listed.sort();
            let want: Vec<&str> = colls
                .iter()
                .map(|c| c["name"].as_str().expect("name"))
                .collect();
            assert_eq!(listed, want, "{}: collections of {database}", f.name);
            assert_eq!(db.count_collections(tenant, database), colls.len());
            for c in colls {
                let name = c["name"].as_str().expect("name");
                let info = db
                    .get_collection(tenant, database, name)
                    .expect("collection");
                let what = format!("{}: {tenant}/{database}/{name}", f.name);
                assert_eq!(info.id.to_string(), c["id"].as_str().expect("id"), "{what}");
                assert_eq!(info.tenant, tenant, "{what}");
                assert_eq!(info.database, database, "{what}");
                assert_eq!(info.metadata, metadata(&c["metadata"]), "{what}: metadata");
                assert_eq!(info.configuration.hnsw, expected_hnsw(c), "{what}: hnsw");
                let ef =
                    (!c["embedding_function"].is_null()).then(|| c["embedding_function"].clone());
                assert_eq!(
                    info.configuration.embedding_function, ef,
                    "{what}: embedding function"
                );
                assert_eq!(info.configuration.schema, None, "{what}: schema");
                assert_eq!(
                    info.dimension.map(u64::from),
                    c["dimension"].as_u64(),
                    "{what}: dimension"
                );
                assert_eq!(info.forks, c["forks"].as_u64().expect("forks"), "{what}");
                assert_eq!(
                    info.total_ops,
                    c["total_ops"].as_u64().expect("total_ops"),
                    "{what}: total_ops"
                );
                let want = expected_records(c);
                let coll = db.collection(info.id).expect("collection");
                assert_eq!(coll.count().expect("count"), want.len(), "{what}: count");
                let got = all_records(db, &info);
                assert_eq!(got.len(), want.len(), "{what}: records");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g, w, "{what}");
                }
                assert_queries(db, &info, c);
            }
        }
    }
}

/// The whole check of one fixture.
fn check(name: &'static str, store_format: i64, checkpoint_format: u32) {
    check_with(name, store_format, checkpoint_format, false);
}

/// As [`check`], for a fixture written with vector files (`vectors`): its first open uses them.
fn check_with(name: &'static str, store_format: i64, checkpoint_format: u32, vectors: bool) {
    let f = fixture(name);
    assert_eq!(f.store_format(), store_format, "{name}: expected.json");
    assert_eq!(
        f.checkpoint_format(),
        checkpoint_format,
        "{name}: expected.json"
    );

    // The checked-in files really are in the formats the name says.
    assert_eq!(store_version(&f.db).0, store_format, "{name}: user_version");
    for (_, _, c) in f.collections() {
        let path = checkpoint_path(&f.db, c["id"].as_str().expect("id"));
        if c["checkpoint"].is_null() {
            assert!(!path.exists(), "{name}: {} has no checkpoint", c["name"]);
            continue;
        }
        let bytes = std::fs::read(&path).expect("checkpoint");
        assert_eq!(&bytes[..8], b"OCHRHNSW");
        assert_eq!(
            u32_at(&bytes, 8),
            checkpoint_format,
            "{name}: {}",
            c["name"]
        );
        let space: Space = c["hnsw"]["space"]
            .as_str()
            .expect("space")
            .parse()
            .expect("space");
        let code = match space {
            Space::L2 => 0,
            Space::Cosine => 1,
            Space::Ip => 2,
        };
        assert_eq!(bytes[12], code, "{name}: {} space", c["name"]);
        assert_eq!(
            u64::from(u32_at(&bytes, 16)),
            c["dimension"].as_u64().expect("dimension")
        );
        assert_eq!(
            u64::from(u32_at(&bytes, 20)),
            c["hnsw"]["max_neighbors"].as_u64().expect("m")
        );
        let nodes = u32_at(&bytes, 32) as usize;
        let records = c["records"].as_array().expect("records").len();
        if c["name"] == "l2_default" {
            // Tombstones: a rebuild from the store could never produce this file.
            assert!(nodes > records, "{name}: l2_default has tombstones");
        }
    }

    // First open: migrates the store, loads every checkpoint (with its vector file, where the
    // fixture has one that pairs).
    let (db, events) = open_logged(&f.db);
    if vectors {
        assert_loads(&f, &events, Load::FixtureVectors);
    } else {
        assert_checkpoints_loaded(&f, &events, true);
    }
    assert_contents(&f, &db);
    drop(db);
    assert_eq!(
        store_version(&f.db),
        (STORE_FORMAT, vec![1, 2, 3, 4]),
        "{name}: migrated on open"
    );
    // The close wrote every checkpoint again, in today's format, with a vector file beside it.
    // A clean checkpoint that was loaded is the same graph: in today's format, the same bytes (a
    // rebuilt index would differ, without the fixture's tombstones); the lagging one replayed
    // records, so it differs.
    for (_, _, c) in f.collections() {
        let id = c["id"].as_str().expect("id");
        let vectors = vector_file_path(&f.db, id);
        if c["checkpoint"].is_null() {
            assert!(!vectors.exists(), "{name}: {} has no index", c["name"]);
            continue;
        }
        let v = std::fs::read(&vectors).expect("vector file");
        assert_eq!(&v[..8], b"OCHRVECS", "{name}: {}", c["name"]);
        let now = std::fs::read(checkpoint_path(&f.db, id)).expect("checkpoint");
        let before = std::fs::read(checkpoint_path(&f.original, id)).expect("checkpoint");
        assert_eq!(u32_at(&now, 8), CHECKPOINT_FORMAT);
        let clean = c["checkpoint"]["replayed"] == 0 && c["checkpoint"]["stale"] == 0;
        if clean {
            assert_eq!(u32_at(&now, 32), u32_at(&before, 32), "{name}: same nodes");
        }
        if clean && checkpoint_format == CHECKPOINT_FORMAT {
            assert!(now == before, "{name}: {} checkpoint changed", c["name"]);
        } else if !clean {
            assert!(now != before, "{name}: {} checkpoint kept", c["name"]);
        }
    }

    // Second open: everything loads cleanly from the checkpoints and their vector files, and
    // the contents are unchanged. A new record is written.
    let (db, events) = open_logged(&f.db);
    assert_loads(&f, &events, Load::VectorFile);
    assert_contents(&f, &db);
    let l2 = db
        .get_collection("default_tenant", "default_database", "l2_default")
        .expect("collection");
    let before = all_records(&db, &l2);
    let mut m = Metadata::new();
    m.insert("new".into(), MetadataValue::Str("after migration".into()));
    db.collection(l2.id)
        .expect("collection")
        .add(
            RecordBatch::new(vec!["compat-new".into()], vec![vec![0.5; 8]])
                .documents(vec![Some("written by today's code".into())])
                .metadatas(vec![Some(m.clone())]),
        )
        .expect("add");
    drop(db);
    assert_eq!(store_version(&f.db), (STORE_FORMAT, vec![1, 2, 3, 4]));
    let bytes = std::fs::read(checkpoint_path(&f.db, &l2.id.to_string())).expect("checkpoint");
    assert_eq!(u32_at(&bytes, 8), CHECKPOINT_FORMAT, "{name}: rewritten");

    // Third open: the new record is there, after the old ones; its checkpoint loads, with the
    // vector file the close wrote after the write.
    let (db, events) = open_logged(&f.db);
    assert!(
        events.iter().any(|e| {
            e.get("message").map(String::as_str)
                == Some("loaded index checkpoint with its vector file")
                && e.get("collection") == Some(&l2.id.to_string())
        }),
        "{name}: rewritten checkpoint loads"
    );
    let info = db
        .get_collection("default_tenant", "default_database", "l2_default")
        .expect("collection");
    assert_eq!(info.total_ops, l2.total_ops + 1);
    let after = all_records(&db, &info);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..]);
    let new = &after[before.len()];
    assert_eq!(new.id, "compat-new");
    assert_eq!(new.embedding, vec![0.5f32.to_bits(); 8]);
    assert_eq!(new.document.as_deref(), Some("written by today's code"));
    assert_eq!(new.uri, None);
    assert_eq!(new.metadata, Some(m));
    let mut req = QueryRequest::new(vec![vec![0.5; 8]]);
    req.n_results = 1;
    let hit = db
        .collection(info.id)
        .expect("collection")
        .query(req)
        .expect("query");
    assert_eq!(hit.ids[0], ["compat-new"]);
}

#[test]
fn store_v1_checkpoint_v1() {
    check("store_v1_checkpoint_v1", 1, 1);
}

#[test]
fn store_v2_checkpoint_v1() {
    check("store_v2_checkpoint_v1", 2, 1);
}

#[test]
fn store_v2_checkpoint_v2() {
    check("store_v2_checkpoint_v2", 2, 2);
}

#[test]
fn store_v4_checkpoint_v2_vectors_v1() {
    // Written with vector files: the first open maps them (the lagging collection's pairs with
    // the checkpoint its writer put back over, so it is read from the store and replayed).
    let name = "store_v4_checkpoint_v2_vectors_v1";
    let index = fixtures_root().join(name).join("db").join("index");
    let vector_files = std::fs::read_dir(&index)
        .expect("index dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "vec"))
        })
        .count();
    assert!(vector_files >= 6, "{name}: {vector_files} vector files");
    check_with(name, 4, 2, true);
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

/// The SQLite header's auto-vacuum fields: (largest root page, incremental flag); both zero when
/// auto-vacuum is off.
fn auto_vacuum(file: &Path) -> (u32, u32) {
    let bytes = std::fs::read(file).expect("store file");
    (u32_be(&bytes[52..56]), u32_be(&bytes[64..68]))
}

#[allow(
    clippy::big_endian_bytes,
    reason = "SQLite's file header is big-endian; Ochre's own formats are little-endian"
)]
fn u32_be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[test]
fn store_v2_checkpoint_v2_autovacuum() {
    // Format 2 with incremental auto-vacuum (stores created since the background reclaimer).
    let name = "store_v2_checkpoint_v2_autovacuum";
    let file = fixtures_root().join(name).join("db").join("ochre.sqlite3");
    let (root, incremental) = auto_vacuum(&file);
    assert!(
        root > 0 && incremental == 1,
        "{name}: written with incremental auto-vacuum"
    );
    let older = fixtures_root()
        .join("store_v2_checkpoint_v2")
        .join("db")
        .join("ochre.sqlite3");
    assert_eq!(auto_vacuum(&older), (0, 0), "the older fixture has it off");
    check(name, 2, 2);
}
