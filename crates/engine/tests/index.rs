//! The vector index through the engine: approximate search on larger collections, filters,
//! deletes, concurrent insert and search.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use std::sync::Arc;

use ochre::{
    CreateCollection, DeleteRequest, Include, Metadata, MetadataValue, Ochre, QueryRequest,
    RecordBatch, Where,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DIM: usize = 16;

fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centers: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centers[rng.gen_range(0..20)];
            c.iter().map(|x| x + rng.gen_range(-0.2..0.2)).collect()
        })
        .collect()
}

fn exact(base: &[(String, Vec<f32>)], q: &[f32], k: usize) -> Vec<String> {
    let mut d: Vec<(f32, &String)> = base
        .iter()
        .map(|(id, v)| {
            (
                v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                id,
            )
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

#[test]
fn large_collections_use_the_graph_with_high_recall_filters_and_deletes() {
    let db = Ochre::ephemeral();
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "big".into(),
                ..Default::default()
            },
        )
        .expect("create");
    let c = db.collection(info.id).expect("handle");
    let n = 6000;
    let vs = vectors(n, 1);
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    for start in (0..n).step_by(1000) {
        let end = start + 1000;
        let metas: Vec<Option<Metadata>> = (start..end)
            .map(|i| {
                Some(
                    [("bucket".to_owned(), MetadataValue::Int((i % 100) as i64))]
                        .into_iter()
                        .collect(),
                )
            })
            .collect();
        c.add(RecordBatch::new(ids[start..end].to_vec(), vs[start..end].to_vec()).metadatas(metas))
            .expect("add");
    }
    let base: Vec<(String, Vec<f32>)> = ids.iter().cloned().zip(vs.iter().cloned()).collect();
    let queries = vectors(50, 2);
    let mut hits = 0;
    for q in &queries {
        let got = c.query(QueryRequest::new(vec![q.clone()])).expect("query");
        let want = exact(&base, q, 10);
        hits += got.ids[0].iter().filter(|id| want.contains(id)).count();
    }
    let recall = hits as f64 / 500.0;
    assert!(recall >= 0.9, "recall {recall}");

    // A 1% filter: exact, and min(k, matches) results.
    let mut q = QueryRequest::new(vec![queries[0].clone()]);
    q.n_results = 100;
    q.where_ = Some(Where::from_json(&json!({"bucket": 7})).expect("valid"));
    q.include = Include::default();
    let got = c.query(q.clone()).expect("filtered");
    assert_eq!(got.ids[0].len(), 60);
    let filtered: Vec<(String, Vec<f32>)> = base
        .iter()
        .filter(|(id, _)| id[1..].parse::<usize>().expect("n") % 100 == 7)
        .cloned()
        .collect();
    assert_eq!(got.ids[0], exact(&filtered, &queries[0], 100));

    // Delete 80%: nothing deleted comes back, and results stay full.
    let deleted = c
        .delete(DeleteRequest {
            where_: Some(Where::from_json(&json!({"bucket": {"$gte": 20}})).expect("valid")),
            ..Default::default()
        })
        .expect("delete");
    assert_eq!(deleted, 4800);
    for q in &queries[..10] {
        let mut req = QueryRequest::new(vec![q.clone()]);
        req.n_results = 50;
        let got = c.query(req).expect("query");
        assert_eq!(got.ids[0].len(), 50);
        assert!(got.ids[0]
            .iter()
            .all(|id| id[1..].parse::<usize>().expect("n") % 100 < 20));
    }
}

#[test]
fn concurrent_inserts_and_searches() {
    let db = Ochre::ephemeral();
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "busy".into(),
                ..Default::default()
            },
        )
        .expect("create");
    let c = Arc::new(db.collection(info.id).expect("handle"));
    let vs = vectors(4000, 3);
    c.add(RecordBatch::new(
        (0..100).map(|i| format!("r{i}")).collect(),
        vs[..100].to_vec(),
    ))
    .expect("seed");
    std::thread::scope(|s| {
        let writer = {
            let c = c.clone();
            let vs = &vs;
            s.spawn(move || {
                for start in (100..4000).step_by(300) {
                    let end = (start + 300).min(4000);
                    c.add(RecordBatch::new(
                        (start..end).map(|i| format!("r{i}")).collect(),
                        vs[start..end].to_vec(),
                    ))
                    .expect("add");
                }
            })
        };
        for _ in 0..2 {
            let c = c.clone();
            let q = vs[5].clone();
            s.spawn(move || {
                for _ in 0..200 {
                    let got = c.query(QueryRequest::new(vec![q.clone()])).expect("query");
                    assert_eq!(
                        got.ids[0].len(),
                        10,
                        "at least 100 records are always there"
                    );
                    assert_eq!(got.ids[0][0], "r5", "a stored vector finds itself");
                }
            });
        }
        writer.join().expect("writer");
    });
    assert_eq!(c.count().expect("count"), 4000);
}

fn open_big(dir: &std::path::Path) -> (Ochre, ochre::Collection) {
    let db = Ochre::open(dir).expect("open");
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "big".into(),
                get_or_create: true,
                ..Default::default()
            },
        )
        .expect("create");
    let c = db.collection(info.id).expect("handle");
    (db, c)
}

fn top_ids(c: &ochre::Collection, q: &[f32]) -> Vec<String> {
    let mut req = QueryRequest::new(vec![q.to_vec()]);
    req.n_results = 20;
    c.query(req).expect("query").ids.remove(0)
}

#[test]
fn index_checkpoints_survive_reopen_staleness_and_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vs = vectors(5000, 7);
    let queries = vectors(20, 8);
    let ids: Vec<String> = (0..5000).map(|i| format!("r{i}")).collect();
    let first: Vec<Vec<String>>;
    {
        let (_db, c) = open_big(dir.path());
        for start in (0..4000).step_by(1000) {
            c.add(RecordBatch::new(
                ids[start..start + 1000].to_vec(),
                vs[start..start + 1000].to_vec(),
            ))
            .expect("add");
        }
        first = queries.iter().map(|q| top_ids(&c, q)).collect();
    }
    let ckpt_dir = dir.path().join("index");
    let mut files: Vec<_> = std::fs::read_dir(&ckpt_dir)
        .expect("index dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "a checkpoint and a vector file: {files:?}");
    let (file, vec_file) = (files[0].clone(), files[1].clone());
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some("hnsw"));
    assert_eq!(vec_file.extension().and_then(|e| e.to_str()), Some("vec"));
    let old = std::fs::read(&file).expect("checkpoint");
    let old_vec = std::fs::read(&vec_file).expect("vector file");
    assert_eq!(&old[..8], b"OCHRHNSW");
    assert_eq!(&old_vec[..8], b"OCHRVECS");

    // Reopen from the checkpoint and its vector file: same answers; a close without changes
    // leaves both files alone.
    {
        let (_db, c) = open_big(dir.path());
        let again: Vec<Vec<String>> = queries.iter().map(|q| top_ids(&c, q)).collect();
        assert_eq!(again, first, "a checkpoint restores the same graph");
    }
    assert_eq!(std::fs::read(&file).expect("checkpoint"), old);
    assert_eq!(std::fs::read(&vec_file).expect("vector file"), old_vec);
    {
        let (_db, c) = open_big(dir.path());
        // Change things: delete some, add new, move one.
        c.delete(DeleteRequest {
            ids: Some(ids[..1000].to_vec()),
            ..Default::default()
        })
        .expect("delete");
        c.add(RecordBatch::new(ids[4000..].to_vec(), vs[4000..].to_vec()))
            .expect("add");
        c.upsert(RecordBatch::new(
            vec!["r1500".into()],
            vec![queries[0].clone()],
        ))
        .expect("move");
    }
    let new_vec = std::fs::read(&vec_file).expect("vector file rewritten at close");
    assert_ne!(new_vec, old_vec);
    let check_changed = |what: &str| {
        let (_db, c) = open_big(dir.path());
        assert_eq!(c.count().expect("count"), 4000, "{what}");
        let got = top_ids(&c, &queries[0]);
        assert_eq!(
            got[0], "r1500",
            "{what}: the moved record is found at its new place: {got:?}"
        );
        for q in &queries {
            let got = top_ids(&c, q);
            assert_eq!(got.len(), 20);
            assert!(
                got.iter()
                    .all(|id| id[1..].parse::<usize>().expect("n") >= 1000),
                "{what}: deleted records never come back"
            );
        }
    };
    // Put the stale checkpoint back, as if the process died before checkpointing the changes:
    // the newer vector file does not pair with it.
    std::fs::write(&file, &old).expect("stale checkpoint");
    check_changed("stale checkpoint");
    // Both stale files back: they pair, but the store's records have changed since.
    std::fs::write(&file, &old).expect("stale checkpoint");
    std::fs::write(&vec_file, &old_vec).expect("stale vector file");
    check_changed("stale checkpoint and vector file");
    // A vector file damaged in its vectors is not used (its CRC fails); the store's are.
    check_changed("rewritten");
    let mut bad = std::fs::read(&vec_file).expect("vector file");
    bad[4096 + 17] ^= 0x40;
    std::fs::write(&vec_file, &bad).expect("corrupt");
    check_changed("damaged vector file");
    // A damaged checkpoint is rebuilt from the store.
    let mut bad = std::fs::read(&file).expect("checkpoint");
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&file, &bad).expect("corrupt");
    {
        let (_db, c) = open_big(dir.path());
        assert_eq!(c.count().expect("count"), 4000);
        let got = top_ids(&c, &queries[0]);
        assert_eq!(got[0], "r1500");
    }
    // Deleting the collection removes its checkpoint and vector file.
    {
        let db = Ochre::open(dir.path()).expect("open");
        db.delete_collection("default_tenant", "default_database", "big")
            .expect("delete");
    }
    assert!(!file.exists());
    assert!(!vec_file.exists());
}

fn recall_at_10(c: &ochre::Collection, base: &[(String, Vec<f32>)], queries: &[Vec<f32>]) -> f64 {
    let mut hits = 0;
    for q in queries {
        let got = c.query(QueryRequest::new(vec![q.clone()])).expect("query");
        let want = exact(base, q, 10);
        hits += got.ids[0].iter().filter(|id| want.contains(id)).count();
    }
    hits as f64 / (10 * queries.len()) as f64
}

#[test]
fn a_bulk_load_answers_exactly_until_it_links_or_adopts_a_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 3000;
    let vs = vectors(n, 11);
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let queries = vectors(30, 12);
    let load = |name: &str, graph: Option<ochre::ImportedGraph>| {
        let db = Ochre::open(dir.path()).expect("open");
        let info = db
            .create_collection(
                "default_tenant",
                "default_database",
                CreateCollection {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .expect("create");
        let c = db.collection(info.id).expect("handle");
        c.defer_indexing(n).expect("defer");
        for start in (0..n).step_by(1000) {
            c.add(RecordBatch::new(
                ids[start..start + 1000].to_vec(),
                vs[start..start + 1000].to_vec(),
            ))
            .expect("add");
        }
        // Meanwhile: exact answers, and every record reachable for updates and deletes.
        let base: Vec<(String, Vec<f32>)> = ids.iter().cloned().zip(vs.iter().cloned()).collect();
        assert_eq!(recall_at_10(&c, &base, &queries), 1.0);
        c.delete(DeleteRequest {
            ids: Some(vec!["r0".into()]),
            ..Default::default()
        })
        .expect("delete");
        c.upsert(RecordBatch::new(vec!["r1".into()], vec![vs[2].clone()]))
            .expect("upsert");
        let report = c.finish_bulk_load(graph).expect("finish");
        let mut base = base;
        base.remove(0);
        base[0].1 = vs[2].clone();
        (db, info.id, report, base)
    };

    // Without a graph: linked here, once.
    let (db, id, report, base) = load("linked", None);
    assert!(!report.adopted && report.refused.is_none());
    assert_eq!(report.linked, n + 1, "3000 adds and an upsert's new vector");
    let c = db.collection(id).expect("handle");
    assert!(recall_at_10(&c, &base, &queries) >= 0.9);
    drop((c, db));

    // A graph of another degree: refused, the index built here instead.
    let wrong = ochre::ImportedGraph {
        m: 3,
        nodes: vec![Some("r5".into())],
        levels: vec![0],
        layer0: vec![vec![]],
        upper: vec![vec![]],
        entry: 0,
        max_level: 0,
    };
    let (db, id, report, base) = load("refused", Some(wrong));
    assert!(!report.adopted);
    assert!(
        report
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("max_neighbors")),
        "{report:?}"
    );
    let c = db.collection(id).expect("handle");
    assert!(recall_at_10(&c, &base, &queries) >= 0.9);
    drop((c, db));

    // A consistent graph over the first 2,500 ids (each node linked to its ring neighbours; r0,
    // deleted meanwhile, and r7, a tombstone in the graph already, route only): adopted; the
    // records it lacks (r7 and r2500..) are linked in.
    let m = 16;
    let k = 2500u32;
    let ring = ochre::ImportedGraph {
        m,
        nodes: (0..k).map(|i| (i != 7).then(|| format!("r{i}"))).collect(),
        levels: vec![0; k as usize],
        layer0: (0..k)
            .map(|i| (1..=m as u32).map(|d| (i + d) % k).collect())
            .collect(),
        upper: vec![vec![]; k as usize],
        entry: 0,
        max_level: 0,
    };
    let (db, id, report, _) = load("adopted", Some(ring));
    assert!(report.adopted, "{report:?}");
    assert_eq!(report.stale, 1, "r0, deleted meanwhile, names no record");
    assert_eq!(report.linked, 1 + 500);
    let c = db.collection(id).expect("handle");
    assert_eq!(c.count().expect("count"), n - 1);
    let r1 = c
        .get(ochre::GetRequest {
            ids: Some(vec!["r1".into(), "r7".into(), "r2999".into()]),
            include: Include::all(),
            ..Default::default()
        })
        .expect("get");
    assert_eq!(r1.ids.len(), 3);
    assert_eq!(r1.embeddings.expect("embeddings")[0], vs[2]);
    drop((c, db));
    // The adopted graph was checkpointed: reopening loads it and every record is there.
    let db = Ochre::open(dir.path()).expect("reopen");
    assert_eq!(
        db.collection(id).expect("handle").count().expect("count"),
        n - 1
    );
}
