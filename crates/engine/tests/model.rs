//! Model-based test: seeded random operation sequences run on the engine and on a plain in-memory
//! reference model, compared after every step, in ephemeral and persistent modes (with reopens).

use std::collections::BTreeMap;

use ochre::{
    CollectionId, CreateCollection, DeleteRequest, ErrorKind, GetRequest, Include, Metadata,
    MetadataValue, Ochre, QueryRequest, RecordBatch, UpdateMetadata, Where,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const T: &str = "default_tenant";
const D: &str = "default_database";
const DIM: usize = 3;

#[derive(Debug, Clone, PartialEq)]
struct ModelRecord {
    id: String,
    embedding: Vec<f32>,
    document: Option<String>,
    uri: Option<String>,
    metadata: Option<Metadata>,
}

#[derive(Debug, Default)]
struct ModelCollection {
    dim: Option<usize>,
    /// Storage order.
    records: Vec<ModelRecord>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Add,
    Upsert,
    Update,
}

impl ModelCollection {
    fn position(&self, id: &str) -> Option<usize> {
        self.records.iter().position(|r| r.id == id)
    }

    fn write(&mut self, kind: Kind, b: &RecordBatch) {
        for (i, id) in b.ids.iter().enumerate() {
            let emb = b.embeddings.as_ref().and_then(|e| e[i].clone());
            let doc = b.documents.as_ref().and_then(|d| d[i].clone());
            let uri = b.uris.as_ref().and_then(|d| d[i].clone());
            let meta = b.metadatas.as_ref().and_then(|d| d[i].clone());
            match self.position(id) {
                Some(p) => {
                    if kind == Kind::Add {
                        continue;
                    }
                    let r = &mut self.records[p];
                    if let Some(e) = emb {
                        r.embedding = e;
                    }
                    if doc.is_some() {
                        r.document = doc;
                    }
                    if uri.is_some() {
                        r.uri = uri;
                    }
                    if let Some(m) = meta {
                        let mut cur = r.metadata.clone().unwrap_or_default();
                        for (k, v) in m {
                            match v {
                                Some(v) => {
                                    cur.insert(k, v);
                                }
                                None => {
                                    cur.remove(&k);
                                }
                            }
                        }
                        r.metadata = (!cur.is_empty()).then_some(cur);
                    }
                }
                None => {
                    if kind == Kind::Update {
                        continue;
                    }
                    let m: Metadata = meta
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(k, v)| v.map(|v| (k, v)))
                        .collect();
                    self.records.push(ModelRecord {
                        id: id.clone(),
                        embedding: emb.expect("add/upsert embeddings"),
                        document: doc,
                        uri,
                        metadata: (!m.is_empty()).then_some(m),
                    });
                }
            }
        }
    }

    fn select(&self, ids: Option<&[String]>, w: Option<&Where>) -> Vec<&ModelRecord> {
        self.records
            .iter()
            .filter(|r| ids.is_none_or(|ids| ids.contains(&r.id)))
            .filter(|r| {
                w.is_none_or(|w| w.matches(&r.id, r.metadata.as_ref(), r.document.as_deref()))
            })
            .collect()
    }
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

struct Harness {
    rng: StdRng,
    db: Ochre,
    dir: Option<tempfile::TempDir>,
    model: BTreeMap<String, ModelCollection>,
    ids: BTreeMap<String, CollectionId>,
    steps: usize,
}

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

impl Harness {
    fn new(seed: u64, persistent: bool) -> Self {
        let (db, dir) = if persistent {
            let dir = tempfile::tempdir().expect("tempdir");
            (Ochre::open(dir.path()).expect("open"), Some(dir))
        } else {
            (Ochre::ephemeral(), None)
        };
        Harness {
            rng: StdRng::seed_from_u64(seed),
            db,
            dir,
            model: BTreeMap::new(),
            ids: BTreeMap::new(),
            steps: 0,
        }
    }

    fn rid(&mut self) -> String {
        format!("id{}", self.rng.gen_range(0..12))
    }

    fn value(&mut self) -> MetadataValue {
        match self.rng.gen_range(0..6) {
            0 => MetadataValue::Int(self.rng.gen_range(-2..3)),
            1 => MetadataValue::Float(self.rng.gen_range(-2..3) as f64 * 0.5),
            2 => MetadataValue::Str(["a", "b", "c"][self.rng.gen_range(0..3)].into()),
            3 => MetadataValue::Bool(self.rng.gen()),
            4 => MetadataValue::IntArray(vec![self.rng.gen_range(0..3), self.rng.gen_range(0..3)]),
            _ => MetadataValue::StrArray(vec![
                "a".into(),
                ["b", "c"][self.rng.gen_range(0..2)].into(),
            ]),
        }
    }

    fn metadata(&mut self, allow_null: bool) -> Option<UpdateMetadata> {
        if self.rng.gen_bool(0.2) {
            return None;
        }
        let mut m = UpdateMetadata::new();
        for key in ["k", "j"] {
            match self.rng.gen_range(0..4) {
                0 => {}
                1 if allow_null => {
                    m.insert(key.into(), None);
                }
                _ => {
                    let v = self.value();
                    m.insert(key.into(), Some(v));
                }
            }
        }
        Some(m)
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.rng.gen_range(-1.0..1.0)).collect()
    }

    fn filter(&mut self) -> Where {
        let candidates = [
            json!({"k": 1}),
            json!({"k": {"$gte": 0}}),
            json!({"k": {"$ne": "a"}}),
            json!({"j": {"$in": ["a", "b"]}}),
            json!({"k": {"$contains": 1}}),
            json!({"j": {"$not_contains": "b"}}),
            json!({"$or": [{"k": {"$lt": 0.5}}, {"j": true}]}),
            json!({"$and": [{"k": {"$nin": [0, 1]}}, {"#document": {"$contains": "o"}}]}),
            json!({"#document": {"$not_contains": "x"}}),
        ];
        let v = &candidates[self.rng.gen_range(0..candidates.len())];
        Where::from_json(v).expect("valid filter")
    }

    fn batch(&mut self, kind: Kind, dim: usize) -> RecordBatch {
        let n = self.rng.gen_range(0..5);
        let ids: Vec<String> = (0..n).map(|_| self.rid()).collect();
        let embeddings = if kind == Kind::Update && self.rng.gen_bool(0.3) {
            None
        } else {
            Some(
                (0..n)
                    .map(|_| {
                        if kind == Kind::Update && self.rng.gen_bool(0.3) {
                            None
                        } else {
                            Some(self.vector(dim))
                        }
                    })
                    .collect(),
            )
        };
        let documents = self.rng.gen_bool(0.7).then(|| {
            (0..n)
                .map(|_| {
                    self.rng
                        .gen_bool(0.8)
                        .then(|| ["foo", "bar", "box", ""][self.rng.gen_range(0..4)].to_owned())
                })
                .collect()
        });
        let uris = self.rng.gen_bool(0.3).then(|| {
            (0..n)
                .map(|i| (i % 2 == 0).then(|| format!("u{i}")))
                .collect()
        });
        let allow_null = kind != Kind::Add;
        let metadatas = self
            .rng
            .gen_bool(0.8)
            .then(|| (0..n).map(|_| self.metadata(allow_null)).collect());
        RecordBatch {
            ids,
            embeddings,
            documents,
            uris,
            metadatas,
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        let name = NAMES[self.rng.gen_range(0..NAMES.len())].to_owned();
        let op = self.rng.gen_range(0..100);
        if op < 6 {
            let r = self.db.create_collection(
                T,
                D,
                CreateCollection {
                    name: name.clone(),
                    ..Default::default()
                },
            );
            if self.model.contains_key(&name) {
                assert_eq!(r.expect_err("duplicate").kind(), ErrorKind::AlreadyExists);
            } else {
                let info = r.expect("create");
                self.model.insert(name.clone(), ModelCollection::default());
                self.ids.insert(name, info.id);
            }
            return;
        }
        if op < 9 {
            let r = self.db.delete_collection(T, D, &name);
            if self.model.remove(&name).is_some() {
                r.expect("delete collection");
                self.ids.remove(&name);
            } else {
                assert_eq!(r.expect_err("missing").kind(), ErrorKind::NotFound);
            }
            return;
        }
        if op < 12 {
            if let Some(dir) = &self.dir {
                let path = dir.path().to_owned();
                self.db = Ochre::ephemeral(); // drops the old instance, releasing the lock
                self.db = Ochre::open(&path).expect("reopen");
            }
            return;
        }
        let Some(id) = self.ids.get(&name).copied() else {
            return;
        };
        let coll = self.db.collection(id).expect("collection exists");
        let model_dim = self.model[&name].dim;
        match op {
            12..=49 => {
                let kind = [Kind::Add, Kind::Upsert, Kind::Update][self.rng.gen_range(0..3)];
                let wrong = model_dim.is_some() && self.rng.gen_bool(0.1);
                let dim = if wrong { DIM - 1 } else { DIM };
                let b = self.batch(kind, dim);
                let r = match kind {
                    Kind::Add => coll.add(b.clone()),
                    Kind::Upsert => coll.upsert(b.clone()),
                    Kind::Update => coll.update(b.clone()),
                };
                let carries = b.embeddings.iter().flatten().flatten().count() > 0;
                let m = self.model.get_mut(&name).expect("present");
                let conflict = carries && m.dim.is_some_and(|d| d != dim);
                if conflict {
                    assert_eq!(r.expect_err("dimension").kind(), ErrorKind::InvalidArgument);
                } else {
                    r.unwrap_or_else(|e| panic!("step {}: {kind:?} failed: {e}", self.steps));
                    if carries && m.dim.is_none() {
                        m.dim = Some(dim);
                    }
                    m.write(kind, &b);
                }
            }
            50..=64 => {
                let by_ids = self.rng.gen_bool(0.5);
                let ids: Option<Vec<String>> = by_ids.then(|| (0..3).map(|_| self.rid()).collect());
                let w = (!by_ids || self.rng.gen_bool(0.3)).then(|| self.filter());
                let limit = w
                    .is_some()
                    .then(|| self.rng.gen_range(0..4))
                    .filter(|_| self.rng.gen_bool(0.3));
                let deleted = coll
                    .delete(DeleteRequest {
                        ids: ids.clone(),
                        where_: w.clone(),
                        where_document: None,
                        limit,
                    })
                    .expect("delete");
                let m = self.model.get_mut(&name).expect("present");
                let mut doomed: Vec<String> = m
                    .select(ids.as_deref(), w.as_ref())
                    .iter()
                    .map(|r| r.id.clone())
                    .collect();
                if let Some(l) = limit {
                    doomed.truncate(l as usize);
                }
                let expected = if w.is_none() {
                    ids.as_ref().map_or(0, Vec::len)
                } else {
                    doomed.len()
                };
                assert_eq!(deleted as usize, expected, "deleted count");
                m.records.retain(|r| !doomed.contains(&r.id));
            }
            65..=79 => {
                let ids: Option<Vec<String>> = self
                    .rng
                    .gen_bool(0.3)
                    .then(|| (0..4).map(|_| self.rid()).collect());
                let w = self.rng.gen_bool(0.5).then(|| self.filter());
                let limit = self.rng.gen_bool(0.3).then(|| self.rng.gen_range(0..5));
                let offset = self.rng.gen_bool(0.3).then(|| self.rng.gen_range(0..5));
                let got = coll
                    .get(GetRequest {
                        ids: ids.clone(),
                        where_: w.clone(),
                        where_document: None,
                        limit,
                        offset,
                        include: Include::all(),
                    })
                    .expect("get");
                let m = &self.model[&name];
                let expected: Vec<&ModelRecord> = m
                    .select(ids.as_deref(), w.as_ref())
                    .into_iter()
                    .skip(offset.unwrap_or(0) as usize)
                    .take(limit.map_or(usize::MAX, |l| l as usize))
                    .collect();
                assert_eq!(
                    got.ids,
                    expected.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                    "get ids, filter {w:?}"
                );
            }
            80..=94 => {
                let n_results = self.rng.gen_range(0..6);
                let q = self.vector(DIM);
                let w = self.rng.gen_bool(0.4).then(|| self.filter());
                let r = coll.query(QueryRequest {
                    embeddings: vec![q.clone()],
                    n_results,
                    ids: None,
                    where_: w.clone(),
                    where_document: None,
                    include: Include::all(),
                });
                let m = &self.model[&name];
                let got = r.expect("query");
                let mut expected: Vec<(f32, String)> = match m.dim {
                    None => vec![],
                    Some(_) => m
                        .select(None, w.as_ref())
                        .iter()
                        .map(|r| (distance(&q, &r.embedding), r.id.clone()))
                        .collect(),
                };
                expected.sort_by(|a, b| a.0.total_cmp(&b.0));
                expected.truncate(n_results as usize);
                assert_eq!(got.ids.len(), 1);
                assert_eq!(
                    got.ids[0],
                    expected.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
                    "query ids"
                );
                let d = got.distances.expect("included");
                for (g, e) in d[0].iter().zip(&expected) {
                    assert!((g - e.0).abs() < 1e-5, "distance {g} vs {}", e.0);
                }
            }
            _ => {
                assert_eq!(
                    coll.count().expect("count"),
                    self.model[&name].records.len()
                );
            }
        }
    }

    /// Full comparison of every collection.
    fn check(&self) {
        let listed: Vec<String> = {
            let mut v: Vec<String> = self
                .db
                .list_collections(T, D, None, 0)
                .into_iter()
                .map(|c| c.name)
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            listed,
            self.model.keys().cloned().collect::<Vec<_>>(),
            "collections"
        );
        for (name, m) in &self.model {
            let coll = self.db.collection(self.ids[name]).expect("exists");
            assert_eq!(
                coll.info().dimension.map(|d| d as usize),
                m.dim,
                "dimension of {name}"
            );
            let got = coll
                .get(GetRequest {
                    include: Include::all(),
                    ..Default::default()
                })
                .expect("get all");
            let actual: Vec<ModelRecord> = (0..got.ids.len())
                .map(|i| ModelRecord {
                    id: got.ids[i].clone(),
                    embedding: got.embeddings.as_ref().expect("included")[i].clone(),
                    document: got.documents.as_ref().expect("included")[i].clone(),
                    uri: got.uris.as_ref().expect("included")[i].clone(),
                    metadata: got.metadatas.as_ref().expect("included")[i].clone(),
                })
                .collect();
            assert_eq!(
                actual, m.records,
                "records of {name} after step {}",
                self.steps
            );
        }
    }
}

fn run(seeds: std::ops::Range<u64>, steps: usize, persistent: bool) -> usize {
    let mut total = 0;
    for seed in seeds {
        let mut h = Harness::new(seed, persistent);
        for _ in 0..steps {
            h.step();
            h.check();
            total += 1;
        }
    }
    total
}

#[test]
fn engine_matches_model_ephemeral() {
    let steps = run(0..200, 120, false);
    assert_eq!(steps, 200 * 120);
}

#[test]
fn engine_matches_model_persistent_with_reopens() {
    let steps = run(1000..1030, 80, true);
    assert_eq!(steps, 30 * 80);
}
