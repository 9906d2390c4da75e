//! What writes do to the vector index: which ones touch it, and what recall is left after many.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{
    Collection, CollectionConfiguration, CreateCollection, DeleteRequest, HnswConfig,
    MetadataValue, Ochre, QueryRequest, RecordBatch,
};

const DIM: usize = 16;

fn collection(db: &Ochre) -> Collection {
    collection_with(db, HnswConfig::default())
}

fn collection_with(db: &Ochre, hnsw: HnswConfig) -> Collection {
    let info = db
        .create_collection(
            crate::DEFAULT_TENANT,
            crate::DEFAULT_DATABASE,
            CreateCollection {
                name: "writes".into(),
                configuration: CollectionConfiguration {
                    hnsw,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect("create");
    db.collection(info.id).expect("handle")
}

/// A small beam and degree, so recall is below 1 and a damaged graph shows.
fn narrow() -> HnswConfig {
    HnswConfig {
        ef_search: 10,
        max_neighbors: 6,
        ef_construction: 40,
        ..HnswConfig::default()
    }
}

/// Clustered vectors, closer to real embeddings than uniform noise.
fn clustered(rng: &mut StdRng, centers: &[Vec<f32>]) -> Vec<f32> {
    let c = &centers[rng.gen_range(0..centers.len())];
    c.iter().map(|x| x + rng.gen_range(-0.3..0.3)).collect()
}

fn centers(rng: &mut StdRng) -> Vec<Vec<f32>> {
    (0..24)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

/// `(nodes including tombstones, live vectors)` of the collection's index.
fn index_shape(c: &Collection) -> (usize, usize) {
    let st = c.handle.state.read();
    let ix = st.index.as_ref().expect("an index");
    (ix.nodes(), ix.len())
}

fn metadata_round(c: &Collection, n: usize, round: i64) {
    for chunk in ids(0..n).chunks(1000) {
        let mut b = RecordBatch {
            ids: chunk.to_vec(),
            ..Default::default()
        };
        b.metadatas = Some(
            chunk
                .iter()
                .map(|_| Some([("round".to_owned(), Some(MetadataValue::Int(round)))].into()))
                .collect(),
        );
        b.documents = Some(
            chunk
                .iter()
                .map(|id| Some(format!("{id} {round}")))
                .collect(),
        );
        c.update(b).expect("update");
    }
}

#[test]
fn updates_that_keep_the_vector_leave_the_index_alone() {
    let db = Ochre::ephemeral();
    let c = collection(&db);
    let mut rng = StdRng::seed_from_u64(1);
    let centers = centers(&mut rng);
    let n = 3000;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| clustered(&mut rng, &centers)).collect();
    c.add(RecordBatch::new(ids(0..n), vectors.clone()))
        .expect("add");
    assert_eq!(index_shape(&c), (n, n));
    for round in 0..5 {
        metadata_round(&c, n, round);
    }
    assert_eq!(
        index_shape(&c),
        (n, n),
        "metadata-only updates add no nodes"
    );
    // Setting the same vector again is no change either; a new vector replaces the node.
    c.upsert(RecordBatch::new(ids(0..100), vectors[..100].to_vec()))
        .expect("same vectors");
    assert_eq!(index_shape(&c), (n, n));
    let moved: Vec<Vec<f32>> = (0..100).map(|_| clustered(&mut rng, &centers)).collect();
    c.update(RecordBatch::new(ids(0..100), moved.clone()))
        .expect("new vectors");
    assert_eq!(
        index_shape(&c),
        (n + 100, n),
        "one tombstone per replaced vector"
    );
    let got = c
        .query(QueryRequest::new(vec![moved[7].clone()]))
        .expect("query");
    assert_eq!(got.ids[0][0], "r7", "the record is found at its new vector");
}

#[test]
fn tombstones_from_replaced_vectors_are_compacted_on_write() {
    let db = Ochre::ephemeral();
    let c = collection(&db);
    let mut rng = StdRng::seed_from_u64(2);
    let centers = centers(&mut rng);
    let n = 4000;
    let fresh = |rng: &mut StdRng, k: usize| -> Vec<Vec<f32>> {
        (0..k).map(|_| clustered(rng, &centers)).collect()
    };
    c.add(RecordBatch::new(ids(0..n), fresh(&mut rng, n)))
        .expect("add");
    // Replace a tenth of the vectors at a time: past a sixth of tombstones the graph is
    // rebuilt in the background, so the node count never runs away.
    for round in 0..6 {
        let start = (round * 400) % n;
        c.upsert(RecordBatch::new(
            ids(start..start + 400),
            fresh(&mut rng, 400),
        ))
        .expect("upsert");
        c.wait_for_index_maintenance();
        let (nodes, live) = index_shape(&c);
        assert_eq!(live, n);
        assert!(
            nodes * 4 <= live * 5 + 400 * 4,
            "round {round}: {nodes} nodes"
        );
    }
}

#[test]
fn deleting_every_record_empties_the_index_at_once() {
    let db = Ochre::ephemeral();
    let c = collection(&db);
    let mut rng = StdRng::seed_from_u64(4);
    let centers = centers(&mut rng);
    let n = 6000;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| clustered(&mut rng, &centers)).collect();
    c.add(RecordBatch::new(ids(0..n), vectors.clone()))
        .expect("add");
    // Deleting in batches, as a client empties a collection: rebuilds start on the way (past
    // a sixth of tombstones) and give up once the deletes outrun them.
    for chunk in ids(0..n).chunks(500) {
        c.delete(DeleteRequest {
            ids: Some(chunk.to_vec()),
            ..Default::default()
        })
        .expect("delete");
    }
    // The last delete empties the graph, or the rebuild still running then does.
    c.wait_for_index_maintenance();
    assert_eq!(index_shape(&c), (0, 0), "no tombstones are kept");
    // The collection goes on as before, dimension and all.
    c.add(RecordBatch::new(ids(0..10), vectors[..10].to_vec()))
        .expect("add again");
    assert_eq!(index_shape(&c), (10, 10));
    let got = c
        .query(QueryRequest::new(vec![vectors[3].clone()]))
        .expect("query");
    assert_eq!(got.ids[0][0], "r3");
}

#[test]
fn emptying_and_refilling_while_a_rebuild_runs_keeps_every_vector() {
    let db = Ochre::ephemeral();
    let c = collection(&db);
    let mut rng = StdRng::seed_from_u64(5);
    let centers = centers(&mut rng);
    let n = 12_000;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| clustered(&mut rng, &centers)).collect();
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let (a, b) = (chunk[0], chunk[chunk.len() - 1] + 1);
        c.add(RecordBatch::new(ids(a..b), vectors[a..b].to_vec()))
            .expect("add");
    }
    let delete = |range: std::ops::Range<usize>| {
        c.delete(DeleteRequest {
            ids: Some(ids(range)),
            ..Default::default()
        })
        .expect("delete");
    };
    // Past a sixth of tombstones: a rebuild starts. Then, while it copies, everything goes
    // and new records come.
    delete(0..n / 5);
    delete(n / 5..n);
    let again: Vec<Vec<f32>> = (0..300).map(|_| clustered(&mut rng, &centers)).collect();
    c.add(RecordBatch::new(
        (0..300).map(|i| format!("new{i}")).collect(),
        again.clone(),
    ))
    .expect("refill");
    c.wait_for_index_maintenance();
    let (_, live) = index_shape(&c);
    assert_eq!(live, 300, "the index holds every record");
    for (i, v) in again.iter().enumerate().step_by(37) {
        let got = c.query(QueryRequest::new(vec![v.clone()])).expect("query");
        assert_eq!(got.ids[0][0], format!("new{i}"));
    }
}

/// Recall@10 of the collection's queries against brute force over `model`.
fn recall(c: &Collection, model: &[(String, Vec<f32>)], queries: &[Vec<f32>]) -> f64 {
    let mut hits = 0;
    let mut total = 0;
    for q in queries {
        let mut exact: Vec<(f32, &str)> = model
            .iter()
            .map(|(id, v)| {
                let d = v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
                (d, id.as_str())
            })
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let got = c.query(QueryRequest::new(vec![q.clone()])).expect("query");
        for (_, id) in exact.iter().take(10) {
            total += 1;
            if got.ids[0].iter().any(|g| g == id) {
                hits += 1;
            }
        }
    }
    hits as f64 / total as f64
}

#[test]
fn recall_after_update_rounds_stays_that_of_a_fresh_build() {
    let mut rng = StdRng::seed_from_u64(3);
    let centers = centers(&mut rng);
    let n = 6000;
    let db = Ochre::ephemeral();
    let c = collection_with(&db, narrow());
    let mut model: Vec<(String, Vec<f32>)> = ids(0..n)
        .into_iter()
        .map(|id| (id, clustered(&mut rng, &centers)))
        .collect();
    for chunk in model.chunks(1000) {
        c.add(RecordBatch::new(
            chunk.iter().map(|(id, _)| id.clone()).collect(),
            chunk.iter().map(|(_, v)| v.clone()).collect(),
        ))
        .expect("add");
    }
    // Five rounds of metadata-only updates of everything, vector upserts of a tenth, deletes
    // and re-adds of a twentieth.
    for round in 0..5 {
        metadata_round(&c, n, round);
        let start = round as usize * 600;
        for (_, v) in &mut model[start..start + 600] {
            *v = clustered(&mut rng, &centers);
        }
        let part = &model[start..start + 600];
        c.upsert(RecordBatch::new(
            part.iter().map(|(id, _)| id.clone()).collect(),
            part.iter().map(|(_, v)| v.clone()).collect(),
        ))
        .expect("upsert");
        let gone: Vec<String> = (0..n).step_by(20).map(|i| format!("r{i}")).collect();
        c.delete(DeleteRequest {
            ids: Some(gone.clone()),
            ..Default::default()
        })
        .expect("delete");
        let back: Vec<(String, Vec<f32>)> = model
            .iter()
            .filter(|(id, _)| gone.contains(id))
            .cloned()
            .collect();
        c.add(RecordBatch::new(
            back.iter().map(|(id, _)| id.clone()).collect(),
            back.iter().map(|(_, v)| v.clone()).collect(),
        ))
        .expect("re-add");
    }
    let queries: Vec<Vec<f32>> = (0..200).map(|_| clustered(&mut rng, &centers)).collect();
    c.wait_for_index_maintenance();
    let after = recall(&c, &model, &queries);
    let fresh_db = Ochre::ephemeral();
    let fresh = collection_with(&fresh_db, narrow());
    fresh
        .add(RecordBatch::new(
            model.iter().map(|(id, _)| id.clone()).collect(),
            model.iter().map(|(_, v)| v.clone()).collect(),
        ))
        .expect("fresh");
    let baseline = recall(&fresh, &model, &queries);
    assert!(
        after >= baseline - 0.01,
        "recall after updates {after:.4} vs a fresh build {baseline:.4}"
    );
}

#[test]
fn a_schema_change_with_a_write_keeps_the_index() {
    let db = Ochre::ephemeral();
    let c = collection(&db);
    let mut rng = StdRng::seed_from_u64(4);
    let centers = centers(&mut rng);
    let n = 3000;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| clustered(&mut rng, &centers)).collect();
    c.add(RecordBatch::new(ids(0..n), vectors.clone()))
        .expect("add");
    // The collection row changes (its schema) without changing the dimension: the records
    // already indexed stay indexed.
    c.write_evolving_schema(
        crate::WriteKind::Add,
        RecordBatch::new(vec!["extra".into()], vec![vectors[0].clone()]),
        |_| Some(serde_json::json!({"keys": {}})),
    )
    .expect("write with schema");
    assert_eq!(index_shape(&c), (n + 1, n + 1));
    let got = c
        .query(QueryRequest::new(vec![vectors[1234].clone()]))
        .expect("query");
    assert_eq!(got.ids[0][0], "r1234");
    assert_eq!(
        c.info().configuration.schema,
        Some(serde_json::json!({"keys": {}}))
    );
}

/// The ids a `get` with these filters selects, sorted.
fn ids_where(
    c: &Collection,
    where_: Option<crate::Where>,
    where_document: Option<crate::WhereDocument>,
) -> Vec<String> {
    let got = c
        .get(crate::GetRequest {
            ids: None,
            where_,
            where_document,
            limit: None,
            offset: None,
            include: crate::Include::default(),
        })
        .expect("get");
    let mut ids = got.ids;
    ids.sort();
    ids
}

fn selected(c: &Collection, filter: serde_json::Value) -> Vec<String> {
    let w = crate::Where::from_json(&filter).expect("filter");
    ids_where(c, Some(w), None)
}

/// After an open the metadata index is built in the background. Until it is installed, filters
/// scan and answer the same; writes made meanwhile are in the index once it is; a fork taken
/// meanwhile gets an index of its own.
#[test]
fn metadata_filters_answer_the_same_before_and_after_the_index_is_built() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 300;
    let id = {
        let db = Ochre::open(dir.path()).expect("open");
        let c = collection(&db);
        let mut b = RecordBatch::new(ids(0..n), (0..n).map(|i| vec![i as f32; DIM]).collect());
        b.metadatas = Some(
            (0..n)
                .map(|i| {
                    Some(
                        [
                            ("k".to_owned(), Some(MetadataValue::Int((i % 7) as i64))),
                            (
                                "s".to_owned(),
                                Some(MetadataValue::Str(format!("x{}", i % 3))),
                            ),
                        ]
                        .into(),
                    )
                })
                .collect(),
        );
        c.add(b).expect("add");
        c.id()
    };
    let db = Ochre::open(dir.path()).expect("reopen");
    let c = db.collection(id).expect("handle");
    c.wait_for_index_maintenance();
    let filters = [
        json!({"k": 3}),
        json!({"k": {"$gte": 5}}),
        json!({"$and": [{"s": "x1"}, {"k": {"$ne": 1}}]}),
        json!({"$or": [{"s": {"$in": ["x0", "x2"]}}, {"k": {"$lt": 1}}]}),
    ];
    let built: Vec<Vec<String>> = filters.iter().map(|f| selected(&c, f.clone())).collect();
    assert_eq!(built[0].len(), (0..n).filter(|i| i % 7 == 3).count());
    // Back to the state right after an open: no index, filters scan.
    {
        let mut st = c.handle.state.write();
        st.meta = crate::metaindex::MetaIndex::default();
        st.meta_pending = true;
    }
    let scanned: Vec<Vec<String>> = filters.iter().map(|f| selected(&c, f.clone())).collect();
    assert_eq!(scanned, built, "a scan answers as the index does");
    // Writes while the index is pending: an update of metadata, a delete, an add.
    let mut upd = RecordBatch {
        ids: vec!["r3".into()],
        ..Default::default()
    };
    upd.metadatas = Some(vec![Some(
        [("k".to_owned(), Some(MetadataValue::Int(100)))].into(),
    )]);
    c.update(upd).expect("update");
    c.delete(DeleteRequest {
        ids: Some(vec!["r10".into()]),
        where_: None,
        where_document: None,
        limit: None,
    })
    .expect("delete");
    let mut add = RecordBatch::new(vec!["new".into()], vec![vec![0.5; DIM]]);
    add.metadatas = Some(vec![Some(
        [("k".to_owned(), Some(MetadataValue::Int(3)))].into(),
    )]);
    c.add(add).expect("add");
    let fork = db
        .fork_collection(crate::DEFAULT_TENANT, crate::DEFAULT_DATABASE, id, "copy")
        .expect("fork");
    let fork = db.collection(fork.id).expect("fork handle");
    assert!(
        !fork.handle.state.read().meta_pending,
        "a fork builds its own index"
    );
    let expect_after: Vec<Vec<String>> = filters.iter().map(|f| selected(&c, f.clone())).collect();
    assert!(
        expect_after[0].contains(&"new".to_owned()) && !expect_after[0].contains(&"r10".to_owned())
    );
    assert_eq!(selected(&c, json!({"k": 100})), vec!["r3".to_owned()]);
    crate::collection::build_metadata_indexes(
        vec![c.handle.clone()],
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    assert!(!c.handle.state.read().meta_pending);
    let indexed: Vec<Vec<String>> = filters.iter().map(|f| selected(&c, f.clone())).collect();
    assert_eq!(
        indexed, expect_after,
        "the installed index holds the writes made meanwhile"
    );
    assert_eq!(selected(&c, json!({"k": 100})), vec!["r3".to_owned()]);
    let forked: Vec<Vec<String>> = filters.iter().map(|f| selected(&fork, f.clone())).collect();
    assert_eq!(forked, expect_after);
}

fn with_document(c: &Collection, text: &str) -> Vec<String> {
    let wd = crate::WhereDocument::from_json(&serde_json::json!({"$contains": text}))
        .expect("where_document");
    ids_where(c, None, Some(wd))
}

/// In a database with a store, the trigram index is built only once a document filter needs
/// it: until then no memory goes to it and document filters scan (with the same answers).
#[test]
fn the_text_index_is_built_on_the_first_document_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 200;
    let db = Ochre::open(dir.path()).expect("open");
    let c = collection(&db);
    let mut b = RecordBatch::new(ids(0..n), (0..n).map(|i| vec![i as f32; DIM]).collect());
    b.documents = Some(
        (0..n)
            .map(|i| {
                Some(format!(
                    "doc {i} {}",
                    if i % 4 == 0 { "apple" } else { "pear" }
                ))
            })
            .collect(),
    );
    c.add(b).expect("add");
    let has_text = |c: &Collection| c.handle.state.read().text.is_some();
    assert!(!has_text(&c), "no index before a document filter");
    c.query(QueryRequest::new(vec![vec![1.0; DIM]]))
        .expect("plain query");
    c.wait_for_index_maintenance();
    assert!(
        !has_text(&c),
        "queries without document filters build nothing"
    );
    let apples: Vec<String> = {
        let mut v: Vec<String> = (0..n)
            .filter(|i| i % 4 == 0)
            .map(|i| format!("r{i}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(with_document(&c, "apple"), apples, "the first one scans");
    c.wait_for_index_maintenance();
    assert!(has_text(&c), "and asks for the index");
    assert_eq!(
        with_document(&c, "apple"),
        apples,
        "the index answers the same"
    );
    // Writes after the build are indexed.
    let mut more = RecordBatch::new(vec!["new".into()], vec![vec![0.5; DIM]]);
    more.documents = Some(vec![Some("an apple tart".into())]);
    c.add(more).expect("add");
    assert!(with_document(&c, "apple tart") == vec!["new".to_owned()]);
    // A reopened collection starts without one again.
    let id = c.id();
    drop(c);
    drop(db);
    let db = Ochre::open(dir.path()).expect("reopen");
    let c = db.collection(id).expect("handle");
    c.wait_for_index_maintenance();
    assert!(!has_text(&c));
    let mut expect = apples.clone();
    expect.push("new".into());
    expect.sort();
    assert_eq!(with_document(&c, "apple"), expect);
    c.wait_for_index_maintenance();
    assert!(has_text(&c));
    // An in-memory database indexes documents as they come.
    let mem = Ochre::ephemeral();
    let m = collection(&mem);
    assert!(has_text(&m));
}
