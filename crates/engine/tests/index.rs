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
    let files: Vec<_> = std::fs::read_dir(&ckpt_dir)
        .expect("index dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "one checkpoint per collection");
    let file = files[0].clone();
    let old = std::fs::read(&file).expect("checkpoint");
    assert_eq!(&old[..8], b"OCHRHNSW");

    // Reopen from the checkpoint: same answers.
    {
        let (_db, c) = open_big(dir.path());
        let again: Vec<Vec<String>> = queries.iter().map(|q| top_ids(&c, q)).collect();
        assert_eq!(again, first, "a checkpoint restores the same graph");
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
    // Put the stale checkpoint back, as if the process died before checkpointing the changes.
    std::fs::write(&file, &old).expect("stale checkpoint");
    {
        let (_db, c) = open_big(dir.path());
        assert_eq!(c.count().expect("count"), 4000);
        let got = top_ids(&c, &queries[0]);
        assert_eq!(
            got[0], "r1500",
            "the moved record is found at its new place: {got:?}"
        );
        for q in &queries {
            let got = top_ids(&c, q);
            assert_eq!(got.len(), 20);
            assert!(
                got.iter()
                    .all(|id| id[1..].parse::<usize>().expect("n") >= 1000),
                "deleted records never come back"
            );
        }
    }
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
    // Deleting the collection removes its checkpoint.
    {
        let db = Ochre::open(dir.path()).expect("open");
        db.delete_collection("default_tenant", "default_database", "big")
            .expect("delete");
    }
    assert!(!file.exists());
}
