//! Writes one golden compatibility fixture (see `tests/data/README.md`).
//!
//! Not part of the workspace: `generate.sh` copies this file into a scratch worktree of an older
//! commit as `crates/engine/examples/fixture_gen.rs` and runs it there, so the data directory is
//! written by that commit's own engine. The one API it uses (`ochre::Ochre` and the request types)
//! is the same at every commit that wrote a fixture, so there is one file and no `cfg`.
//!
//! Usage: `cargo run -p ochre --example fixture_gen -- <out> <commit> <store_format> <checkpoint_format>`
//!
//! `<out>` must not exist. It receives `db/` (the data directory, closed cleanly) and
//! `expected.json`: every tenant, database and collection with its configuration and every record
//! as this program wrote it. The program keeps its own model of the records (add skips existing
//! ids, upsert/update merge metadata key by key and a `None` value deletes, a re-added id gets a
//! new, later place in storage order) and checks that the engine returns exactly the model before
//! it writes the file, so `expected.json` is what was written, not merely what was read back.
//!
//! Data is deterministic (a fixed-seed SplitMix64). Embedding components are k/256 - 1 for k in
//! 0..=512: exact in f32, f64 and decimal, so JSON round-trips them bit for bit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ochre::{
    CollectionConfiguration, CreateCollection, DeleteRequest, GetRequest, HnswConfig, Include,
    Metadata, MetadataValue, Ochre, RecordBatch, Space, UpdateMetadata, Where,
};
use serde_json::{json, Value};

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A non-zero vector of `dim` components k/256 - 1.
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        loop {
            let v: Vec<f32> = (0..dim)
                .map(|_| ((self.next_u64() >> 32) % 513) as f32 / 256.0 - 1.0)
                .collect();
            if v.iter().any(|x| *x != 0.0) {
                return v;
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    id: String,
    embedding: Vec<f32>,
    document: Option<String>,
    uri: Option<String>,
    metadata: Option<Metadata>,
}

/// A write as this program issues it: `None` fields are "absent" (keep on update).
struct Write {
    id: String,
    embedding: Option<Vec<f32>>,
    document: Option<String>,
    uri: Option<String>,
    metadata: Option<UpdateMetadata>,
}

fn batch(writes: &[Write]) -> RecordBatch {
    RecordBatch {
        ids: writes.iter().map(|w| w.id.clone()).collect(),
        embeddings: Some(writes.iter().map(|w| w.embedding.clone()).collect()),
        documents: Some(writes.iter().map(|w| w.document.clone()).collect()),
        uris: Some(writes.iter().map(|w| w.uri.clone()).collect()),
        metadatas: Some(writes.iter().map(|w| w.metadata.clone()).collect()),
    }
}

fn merge(old: Option<&Metadata>, m: &UpdateMetadata) -> Option<Metadata> {
    let mut out = old.cloned().unwrap_or_default();
    for (k, v) in m {
        match v {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                out.remove(k);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// One collection: the engine's handle and this program's model of its records.
struct Coll {
    handle: ochre::Collection,
    next_seq: u64,
    recs: BTreeMap<u64, Rec>,
    by_id: HashMap<String, u64>,
    total_ops: u64,
    /// Set for a collection whose checkpoint is restored to an older one after close.
    lag: Option<(usize, usize)>,
}

impl Coll {
    fn new(handle: ochre::Collection) -> Self {
        Coll {
            handle,
            next_seq: 1,
            recs: BTreeMap::new(),
            by_id: HashMap::new(),
            total_ops: 0,
            lag: None,
        }
    }

    fn insert(&mut self, w: &Write) {
        let metadata = w.metadata.as_ref().and_then(|m| merge(None, m));
        let rec = Rec {
            id: w.id.clone(),
            embedding: w.embedding.clone().expect("inserts carry embeddings"),
            document: w.document.clone(),
            uri: w.uri.clone(),
            metadata,
        };
        self.recs.insert(self.next_seq, rec);
        self.by_id.insert(w.id.clone(), self.next_seq);
        self.next_seq += 1;
    }

    fn change(&mut self, seq: u64, w: &Write) {
        let r = self.recs.get_mut(&seq).expect("by_id and recs agree");
        if let Some(e) = &w.embedding {
            r.embedding = e.clone();
        }
        if let Some(d) = &w.document {
            r.document = Some(d.clone());
        }
        if let Some(u) = &w.uri {
            r.uri = Some(u.clone());
        }
        if let Some(m) = &w.metadata {
            r.metadata = merge(r.metadata.as_ref(), m);
        }
    }

    fn add(&mut self, writes: Vec<Write>) {
        self.handle.add(batch(&writes)).expect("add");
        self.total_ops += writes.len() as u64;
        for w in &writes {
            if !self.by_id.contains_key(&w.id) {
                self.insert(w);
            }
        }
    }

    fn upsert(&mut self, writes: Vec<Write>) {
        self.handle.upsert(batch(&writes)).expect("upsert");
        self.total_ops += writes.len() as u64;
        for w in &writes {
            match self.by_id.get(&w.id).copied() {
                Some(seq) => self.change(seq, w),
                None => self.insert(w),
            }
        }
    }

    fn update(&mut self, writes: Vec<Write>) {
        self.handle.update(batch(&writes)).expect("update");
        self.total_ops += writes.len() as u64;
        for w in &writes {
            if let Some(seq) = self.by_id.get(&w.id).copied() {
                self.change(seq, w);
            }
        }
    }

    fn delete_ids(&mut self, ids: &[String]) {
        self.handle
            .delete(DeleteRequest {
                ids: Some(ids.to_vec()),
                ..Default::default()
            })
            .expect("delete");
        self.total_ops += ids.len() as u64;
        for id in ids {
            if let Some(seq) = self.by_id.remove(id) {
                self.recs.remove(&seq);
            }
        }
    }

    /// Deletes by a metadata filter; `pred` is the same filter over the model.
    fn delete_where(&mut self, filter: Value, pred: impl Fn(&Rec) -> bool) {
        let w = Where::from_json(&filter).expect("valid filter");
        let doomed: Vec<u64> = self
            .recs
            .iter()
            .filter(|(_, r)| pred(r))
            .map(|(s, _)| *s)
            .collect();
        assert!(!doomed.is_empty(), "filter {filter} matches nothing");
        let n = self
            .handle
            .delete(DeleteRequest {
                where_: Some(w),
                ..Default::default()
            })
            .expect("delete where");
        assert_eq!(n as usize, doomed.len(), "delete {filter}");
        self.total_ops += doomed.len() as u64;
        for s in doomed {
            let r = self.recs.remove(&s).expect("present");
            self.by_id.remove(&r.id);
        }
    }

    /// Panics unless the engine holds exactly the model.
    fn check(&self) {
        let got = self
            .handle
            .get(GetRequest {
                include: Include::all(),
                ..Default::default()
            })
            .expect("get");
        let want: Vec<&Rec> = self.recs.values().collect();
        let name = self.handle.info().name;
        assert_eq!(got.ids.len(), want.len(), "{name}: count");
        let embeddings = got.embeddings.expect("included");
        let documents = got.documents.expect("included");
        let uris = got.uris.expect("included");
        let metadatas = got.metadatas.expect("included");
        for (i, w) in want.iter().enumerate() {
            let g = Rec {
                id: got.ids[i].clone(),
                embedding: embeddings[i].clone(),
                document: documents[i].clone(),
                uri: uris[i].clone(),
                metadata: metadatas[i].clone(),
            };
            // Engines since Chroma's uri parity read a record with a uri and no metadata back with
            // an empty map (Chroma keeps the uri among the metadata); what was written is none.
            let mut want = (*w).clone();
            if want.metadata.is_none() && want.uri.is_some() && g.metadata == Some(Metadata::new()) {
                want.metadata = g.metadata.clone();
            }
            assert_eq!(g, want, "{name}: record {i}");
        }
    }

    fn to_json(&self) -> Value {
        let info = self.handle.info();
        let h = &info.configuration.hnsw;
        let records: Vec<Value> = self
            .recs
            .values()
            .map(|r| {
                json!({
                    "id": r.id,
                    "embedding": r.embedding,
                    "document": r.document,
                    "uri": r.uri,
                    "metadata": r.metadata.as_ref().map(metadata_json),
                })
            })
            .collect();
        json!({
            "name": info.name,
            "id": info.id.to_string(),
            "metadata": info.metadata.as_ref().map(metadata_json),
            "hnsw": {
                "space": h.space.as_str(),
                "ef_construction": h.ef_construction,
                "ef_search": h.ef_search,
                "max_neighbors": h.max_neighbors,
                "num_threads": h.num_threads,
                "resize_factor": h.resize_factor,
                "sync_threshold": h.sync_threshold,
                "batch_size": h.batch_size,
            },
            "embedding_function": info.configuration.embedding_function,
            "dimension": info.dimension,
            "total_ops": self.total_ops,
            "forks": 0,
            "checkpoint": if self.recs.is_empty() && self.next_seq == 1 {
                Value::Null
            } else {
                let (replayed, stale) = self.lag.unwrap_or((0, 0));
                json!({"replayed": replayed, "stale": stale})
            },
            "records": records,
        })
    }
}

/// Metadata with each value tagged by its type, so ints, floats and arrays round-trip exactly.
fn metadata_json(m: &Metadata) -> Value {
    let entries = m.iter().map(|(k, v)| {
        let tagged = match v {
            MetadataValue::Bool(b) => json!({"bool": b}),
            MetadataValue::Int(i) => json!({"int": i}),
            MetadataValue::Float(f) => json!({"float": f}),
            MetadataValue::Str(s) => json!({"str": s}),
            MetadataValue::BoolArray(a) => json!({"bools": a}),
            MetadataValue::IntArray(a) => json!({"ints": a}),
            MetadataValue::FloatArray(a) => json!({"floats": a}),
            MetadataValue::StrArray(a) => json!({"strs": a}),
            // Commits since sparse vectors have more variants; this program writes none of them
            // (on older commits the arm is unreachable, a warning only).
            #[allow(unreachable_patterns)]
            _ => unreachable!("the fixture writes only these value types"),
        };
        (k.clone(), tagged)
    });
    Value::Object(entries.collect())
}

fn set(pairs: Vec<(&str, MetadataValue)>) -> UpdateMetadata {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v)))
        .collect()
}

/// The metadata of record `i`: every 10th record carries every value type (with extremes),
/// every 7th none at all, the rest a few scalars.
fn record_metadata(i: i64) -> Option<UpdateMetadata> {
    use MetadataValue::*;
    if i % 7 == 3 {
        return None;
    }
    let mut m = set(vec![
        ("i", Int(i)),
        ("bucket", Int(i % 10)),
        ("even", Bool(i % 2 == 0)),
    ]);
    if i % 10 == 0 {
        m.extend(set(vec![
            ("f", Float(i as f64 * 0.25 + 0.1)),
            ("s", Str(format!("rec-{i} ünïcødé ✓"))),
            ("big", Int(if i % 20 == 0 { i64::MAX } else { i64::MIN })),
            ("tiny", Float(if i % 20 == 0 { 1e-300 } else { -1e300 })),
            ("whole", Float(2.0)),
            ("ints", IntArray(vec![i, -i, 0])),
            ("floats", FloatArray(vec![0.5, -1.25, i as f64 / 3.0])),
            ("strs", StrArray(vec!["a".into(), format!("r{i}")])),
            ("bools", BoolArray(vec![true, false, i % 4 == 0])),
        ]));
    }
    Some(m)
}

fn new_write(rng: &mut Rng, dim: usize, i: i64) -> Write {
    Write {
        id: format!("id-{i:05}"),
        embedding: Some(rng.vector(dim)),
        document: (i % 5 != 1).then(|| format!("document {i}: the quick brown fox")),
        uri: (i % 3 == 0).then(|| format!("file:///data/{i}.txt")),
        metadata: record_metadata(i),
    }
}

fn config(space: Space, m: u64, ef_c: u64, ef_s: u64, threads: u64, sync: u64) -> HnswConfig {
    HnswConfig {
        space,
        ef_construction: ef_c,
        ef_search: ef_s,
        max_neighbors: m,
        num_threads: threads,
        resize_factor: 1.2,
        sync_threshold: sync,
        batch_size: 100,
    }
}

fn create(
    db: &Ochre,
    tenant: &str,
    database: &str,
    name: &str,
    hnsw: HnswConfig,
    metadata: Option<Metadata>,
    embedding_function: Option<Value>,
) -> Coll {
    let info = db
        .create_collection(
            tenant,
            database,
            CreateCollection {
                name: name.into(),
                metadata,
                configuration: CollectionConfiguration {
                    hnsw,
                    embedding_function,
                    schema: None,
                },
                get_or_create: false,
            },
        )
        .expect("create collection");
    Coll::new(db.collection(info.id).expect("collection"))
}

fn writes(rng: &mut Rng, dim: usize, range: std::ops::Range<i64>) -> Vec<Write> {
    range.map(|i| new_write(rng, dim, i)).collect()
}

fn ids(range: impl Iterator<Item = i64>) -> Vec<String> {
    range.map(|i| format!("id-{i:05}")).collect()
}

fn checkpoint_file(dir: &Path, c: &Coll) -> PathBuf {
    dir.join("index").join(format!("{}.hnsw", c.handle.id()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, commit, store_format, checkpoint_format] = args.as_slice() else {
        panic!("usage: fixture_gen <out> <commit> <store_format> <checkpoint_format>");
    };
    let out = PathBuf::from(out);
    assert!(!out.exists(), "{} exists", out.display());
    let dir = out.join("db");
    let db = Ochre::open(&dir).expect("open");
    let mut rng = Rng::new(0x0c4e_0001);

    // default_tenant / default_database: one collection per space, different HNSW settings.
    let mut l2 = create(
        &db,
        "default_tenant",
        "default_database",
        "l2_default",
        config(Space::L2, 16, 100, 100, 2, 1000),
        Some(
            [("purpose".to_owned(), MetadataValue::Str("golden".into()))]
                .into_iter()
                .collect(),
        ),
        None,
    );
    for start in (0..400).step_by(100) {
        l2.add(writes(&mut rng, 8, start..start + 100));
    }
    // Repeated ids in an add are skipped.
    l2.add(writes(&mut rng, 8, 398..402));
    // Upsert: new embedding and metadata for ten, metadata merge only for ten, five new ids.
    let mut ups: Vec<Write> = Vec::new();
    for i in 10..20 {
        ups.push(Write {
            id: format!("id-{i:05}"),
            embedding: Some(rng.vector(8)),
            document: Some(format!("upserted {i}")),
            uri: None,
            metadata: Some(set(vec![("upserted", MetadataValue::Bool(true))])),
        });
    }
    for i in 20..30 {
        let old = l2.recs[&l2.by_id[&format!("id-{i:05}")]].embedding.clone();
        let mut m: UpdateMetadata = set(vec![("bucket", MetadataValue::Int(-1))]);
        m.insert("even".into(), None);
        ups.push(Write {
            id: format!("id-{i:05}"),
            embedding: Some(old),
            document: None,
            uri: Some(format!("s3://bucket/{i}")),
            metadata: Some(m),
        });
    }
    ups.extend(writes(&mut rng, 8, 402..407));
    l2.upsert(ups);
    // Update: documents only, a metadata key removed, an embedding changed; unknown ids skipped.
    let mut upd: Vec<Write> = Vec::new();
    for i in 30..45 {
        let mut m = UpdateMetadata::new();
        m.insert("i".into(), None);
        m.insert("updated".into(), Some(MetadataValue::Int(i * 100)));
        upd.push(Write {
            id: format!("id-{i:05}"),
            embedding: (i % 3 == 0).then(|| rng.vector(8)),
            document: Some(format!("updated {i}")),
            uri: None,
            metadata: Some(m),
        });
    }
    upd.push(Write {
        id: "no-such-id".into(),
        embedding: None,
        document: Some("never stored".into()),
        uri: None,
        metadata: None,
    });
    l2.update(upd);
    // Deletes leave tombstones in the graph (well under a quarter, so no rebuild).
    l2.delete_ids(&ids((100..112).chain([5000])));
    l2.delete_where(json!({"$and": [{"bucket": 3}, {"i": {"$gte": 200}}]}), |r| {
        let m = r.metadata.as_ref();
        m.and_then(|m| m.get("bucket")) == Some(&MetadataValue::Int(3))
            && matches!(m.and_then(|m| m.get("i")), Some(MetadataValue::Int(i)) if *i >= 200)
    });
    // A deleted id added again gets a new, later place in storage order.
    l2.add(writes(&mut rng, 8, 105..107));
    l2.check();

    let mut cos = create(
        &db,
        "default_tenant",
        "default_database",
        "cosine_m8",
        config(Space::Cosine, 8, 40, 50, 1, 100),
        None,
        None,
    );
    cos.add(writes(&mut rng, 8, 0..150));
    cos.add(writes(&mut rng, 8, 150..200));
    cos.delete_ids(&ids(0..5));
    cos.check();

    let mut ip = create(
        &db,
        "default_tenant",
        "default_database",
        "ip_dim4",
        config(Space::Ip, 32, 200, 20, 1, 1000),
        None,
        None,
    );
    ip.add(writes(&mut rng, 4, 0..60));
    ip.check();

    let empty = create(
        &db,
        "default_tenant",
        "default_database",
        "empty",
        config(Space::L2, 16, 100, 100, 1, 1000),
        None,
        None,
    );
    empty.check();

    // A checkpoint that lags the store, as after a crash between a commit and the next
    // checkpoint: the checkpoint written after the 200th record is put back after close.
    let mut lag = create(
        &db,
        "default_tenant",
        "default_database",
        "lagging",
        config(Space::L2, 16, 100, 100, 1, 50),
        None,
        None,
    );
    for start in (0..200).step_by(50) {
        lag.add(writes(&mut rng, 8, start..start + 50));
    }
    let snapshot = std::fs::read(checkpoint_file(&dir, &lag)).expect("checkpoint after 200");
    assert_eq!(
        u32::from_le_bytes(snapshot[32..36].try_into().expect("4 bytes")),
        200,
        "the snapshot holds the first 200 records"
    );
    let mut changed: Vec<Write> = Vec::new();
    for i in 0..5 {
        changed.push(Write {
            id: format!("id-{i:05}"),
            embedding: Some(rng.vector(8)),
            document: None,
            uri: None,
            metadata: None,
        });
    }
    lag.update(changed);
    let mut meta_only: Vec<Write> = Vec::new();
    for i in 5..10 {
        let old = lag.recs[&lag.by_id[&format!("id-{i:05}")]].embedding.clone();
        meta_only.push(Write {
            id: format!("id-{i:05}"),
            embedding: Some(old),
            document: Some(format!("after the checkpoint {i}")),
            uri: None,
            metadata: Some(set(vec![("late", MetadataValue::Bool(true))])),
        });
    }
    lag.upsert(meta_only);
    lag.delete_ids(&ids(10..13));
    lag.add(writes(&mut rng, 8, 200..220));
    // Five changed vectors and three deleted records are stale nodes; the five changed and
    // twenty new records are replayed.
    lag.lag = Some((25, 8));
    lag.check();

    // A fork (the source counts it in store format 2).
    let fork_info = db
        .fork_collection(
            "default_tenant",
            "default_database",
            ip.handle.id(),
            "ip_fork",
        )
        .expect("fork");
    let mut fork = Coll::new(db.collection(fork_info.id).expect("fork handle"));
    fork.next_seq = ip.next_seq;
    fork.recs = ip.recs.clone();
    fork.by_id = ip.by_id.clone();
    // The fork's row is a copy of the source's, operation counter included.
    fork.total_ops = ip.total_ops;
    fork.check();

    // A second database in the default tenant, without collections.
    db.create_database("default_tenant", "empty_db")
        .expect("database");

    // A second tenant with a resource name, a database and a collection carrying collection
    // metadata of every scalar type and an embedding function descriptor.
    db.create_tenant("acme").expect("tenant");
    db.update_tenant("acme", Some("acme-resource".into()))
        .expect("update tenant");
    db.create_database("acme", "research").expect("database");
    let coll_meta: Metadata = [
        ("owner", MetadataValue::Str("acme".into())),
        ("version", MetadataValue::Int(3)),
        ("weight", MetadataValue::Float(0.75)),
        ("public", MetadataValue::Bool(false)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut notes = create(
        &db,
        "acme",
        "research",
        "notes",
        config(Space::Cosine, 12, 64, 80, 2, 1000),
        Some(coll_meta),
        Some(json!({"type": "known", "name": "default", "config": {}})),
    );
    notes.add(writes(&mut rng, 8, 0..120));
    notes.delete_where(json!({"bucket": 7}), |r| {
        r.metadata.as_ref().and_then(|m| m.get("bucket")) == Some(&MetadataValue::Int(7))
    });
    notes.check();

    let lag_path = checkpoint_file(&dir, &lag);
    let mut l2_json = l2.to_json();
    let mut ip_json = ip.to_json();
    let store_v2 = store_format.as_str() != "1";
    if store_v2 {
        ip_json["forks"] = json!(1);
    }
    for j in [&mut l2_json, &mut ip_json] {
        if !store_v2 {
            j["total_ops"] = json!(0);
        }
    }
    let mut default_colls = vec![
        l2_json,
        cos.to_json(),
        ip_json,
        empty.to_json(),
        lag.to_json(),
        fork.to_json(),
    ];
    let mut acme_colls = vec![notes.to_json()];
    for c in default_colls.iter_mut().chain(acme_colls.iter_mut()) {
        // Store format 1 has no counters; migrating to 2 starts them at 0.
        if !store_v2 {
            c["total_ops"] = json!(0);
            c["forks"] = json!(0);
        }
    }
    default_colls.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    acme_colls.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let default_db = db
        .get_database("default_tenant", "default_database")
        .expect("db");
    let empty_db = db.get_database("default_tenant", "empty_db").expect("db");
    let research = db.get_database("acme", "research").expect("db");
    let expected = json!({
        "generator": {
            "commit": commit,
            "store_format": store_format.parse::<u32>().expect("number"),
            "checkpoint_format": checkpoint_format.parse::<u32>().expect("number"),
        },
        "tenants": [
            {
                "name": "acme",
                "resource_name": "acme-resource",
                "databases": [
                    {"name": "research", "id": research.id.to_string(), "collections": acme_colls},
                ],
            },
            {
                "name": "default_tenant",
                "resource_name": null,
                "databases": [
                    {"name": "default_database", "id": default_db.id.to_string(), "collections": default_colls},
                    {"name": "empty_db", "id": empty_db.id.to_string(), "collections": []},
                ],
            },
        ],
    });
    drop((l2, cos, ip, empty, lag, fork, notes));
    drop(db);
    std::fs::write(&lag_path, &snapshot).expect("restore the lagging checkpoint");
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string(&expected).expect("json") + "\n",
    )
    .expect("write expected.json");
}
