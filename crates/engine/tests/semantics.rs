//! Chroma's record semantics, case by case (spec §7), and the open/lock/corruption behaviour.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use ochre::{
    Collection, CreateCollection, DeleteRequest, ErrorKind, GetRequest, Include, Metadata,
    MetadataValue, Ochre, QueryRequest, RecordBatch, Space, UpdateMetadata, Where,
};
use serde_json::json;

const T: &str = "default_tenant";
const D: &str = "default_database";

fn meta(pairs: &[(&str, MetadataValue)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn upd(pairs: &[(&str, Option<MetadataValue>)]) -> UpdateMetadata {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn collection(db: &Ochre, name: &str) -> Collection {
    let info = db
        .create_collection(
            T,
            D,
            CreateCollection {
                name: name.into(),
                ..Default::default()
            },
        )
        .expect("create");
    db.collection(info.id).expect("handle")
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn all(c: &Collection) -> ochre::GetResult {
    c.get(GetRequest {
        include: Include::all(),
        ..Default::default()
    })
    .expect("get")
}

#[test]
fn duplicate_ids_in_a_batch_apply_in_order() {
    let db = Ochre::ephemeral();
    let c = collection(&db, "dups");
    c.add(RecordBatch::new(
        ids(&["d", "d"]),
        vec![vec![1.0], vec![2.0]],
    ))
    .expect("add");
    assert_eq!(all(&c).embeddings, Some(vec![vec![1.0]]), "first add wins");
    let mut b = RecordBatch::new(ids(&["a", "a"]), vec![vec![1.0], vec![2.0]]);
    b.metadatas = Some(vec![
        Some(upd(&[("x", Some(MetadataValue::Int(1)))])),
        Some(upd(&[("y", Some(MetadataValue::Int(2)))])),
    ]);
    c.upsert(b).expect("upsert");
    let g = c
        .get(GetRequest {
            ids: Some(ids(&["a"])),
            include: Include::all(),
            ..Default::default()
        })
        .expect("get");
    assert_eq!(g.embeddings, Some(vec![vec![2.0]]));
    assert_eq!(
        g.metadatas,
        Some(vec![Some(meta(&[
            ("x", MetadataValue::Int(1)),
            ("y", MetadataValue::Int(2))
        ]))])
    );
}

#[test]
fn upsert_and_update_merge_metadata_and_keep_nulls() {
    let db = Ochre::ephemeral();
    let c = collection(&db, "merge");
    c.add(
        RecordBatch::new(ids(&["a"]), vec![vec![1.0, 0.0]])
            .documents(vec![Some("doc".into())])
            .uris(vec![Some("u".into())])
            .metadatas(vec![Some(meta(&[
                ("x", MetadataValue::Int(1)),
                ("y", MetadataValue::Str("q".into())),
            ]))]),
    )
    .expect("add");
    let mut b = RecordBatch {
        ids: ids(&["a", "unknown"]),
        ..Default::default()
    };
    b.metadatas = Some(vec![
        Some(upd(&[("w", Some(MetadataValue::Int(9))), ("x", None)])),
        Some(upd(&[("z", Some(MetadataValue::Int(1)))])),
    ]);
    b.documents = Some(vec![None, Some("nope".into())]);
    c.update(b).expect("update ignores unknown ids");
    let g = all(&c);
    assert_eq!(g.ids, ids(&["a"]));
    assert_eq!(
        g.documents,
        Some(vec![Some("doc".into())]),
        "null document keeps the old one"
    );
    assert_eq!(g.uris, Some(vec![Some("u".into())]));
    assert_eq!(
        g.embeddings,
        Some(vec![vec![1.0, 0.0]]),
        "absent embedding keeps the old one"
    );
    assert_eq!(
        g.metadatas,
        Some(vec![Some(meta(&[
            ("w", MetadataValue::Int(9)),
            ("y", MetadataValue::Str("q".into()))
        ]))])
    );
    // Deleting every key leaves an empty map, since the record has a uri (as Chroma reads it).
    let mut b = RecordBatch::new(ids(&["a"]), vec![vec![0.0, 1.0]]);
    b.metadatas = Some(vec![Some(upd(&[("w", None), ("y", None)]))]);
    c.upsert(b).expect("upsert");
    assert_eq!(all(&c).metadatas, Some(vec![Some(Metadata::new())]));
}

#[test]
fn storage_order_survives_updates_and_readds_go_last() {
    let db = Ochre::ephemeral();
    let c = collection(&db, "order");
    c.add(RecordBatch::new(ids(&["c", "a", "b"]), vec![vec![1.0]; 3]))
        .expect("add");
    c.upsert(RecordBatch::new(ids(&["a"]), vec![vec![2.0]]))
        .expect("upsert");
    c.delete(DeleteRequest {
        ids: Some(ids(&["c"])),
        ..Default::default()
    })
    .expect("delete");
    c.add(RecordBatch::new(ids(&["c"]), vec![vec![3.0]]))
        .expect("re-add");
    assert_eq!(all(&c).ids, ids(&["a", "b", "c"]));
    let g = c
        .get(GetRequest {
            ids: Some(ids(&["c", "a", "a"])),
            ..Default::default()
        })
        .expect("get");
    assert_eq!(
        g.ids,
        ids(&["a", "c"]),
        "request order is not used; duplicates collapse"
    );
    let g = c
        .get(GetRequest {
            offset: Some(1),
            limit: Some(1),
            ..Default::default()
        })
        .expect("get");
    assert_eq!(g.ids, ids(&["b"]));
}

#[test]
fn validation_errors_change_nothing() {
    let db = Ochre::ephemeral();
    let c = collection(&db, "valid");
    let cases: Vec<(RecordBatch, &str)> = vec![
        (
            RecordBatch::new(ids(&["a"]), vec![vec![]]),
            "Each embedding must have at least 1 dimension",
        ),
        (
            RecordBatch::new(ids(&["a"]), vec![vec![f32::NAN]]),
            "Embeddings must not contain NaN or Infinity values",
        ),
        (
            RecordBatch::new(ids(&["a", "b"]), vec![vec![1.0], vec![1.0, 2.0]]),
            "Inconsistent dimensions in provided embeddings",
        ),
        (
            RecordBatch::new(ids(&["a", "b"]), vec![vec![1.0]]),
            "Inconsistent number of IDs, embeddings, documents, URIs and metadatas",
        ),
        (
            RecordBatch::new(ids(&[""]), vec![vec![1.0]]),
            "Empty ID, ID must have at least one character",
        ),
        (
            RecordBatch::new(ids(&["a"]), vec![vec![1.0]])
                .metadatas(vec![Some(meta(&[("$bad", MetadataValue::Int(1))]))]),
            "Validation error: metadatas: Invalid metadata at index 0",
        ),
        (
            RecordBatch::new(ids(&["a"]), vec![vec![1.0]]).metadatas(vec![Some(meta(&[(
                "chroma:document",
                MetadataValue::Int(1),
            )]))]),
            "Validation error: metadatas: Invalid metadata at index 0",
        ),
    ];
    for (b, msg) in cases {
        let e = c.add(b).expect_err(msg);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains(msg), "{} vs {msg}", e.message());
        assert_eq!(c.count().expect("count"), 0);
        assert_eq!(
            c.info().dimension,
            None,
            "a failed write does not fix the dimension"
        );
    }
    c.add(RecordBatch::new(ids(&["a"]), vec![vec![1.0, 2.0]]))
        .expect("add");
    let e = c
        .add(RecordBatch::new(ids(&["b"]), vec![vec![1.0]]))
        .expect_err("dimension");
    assert_eq!(
        e.message(),
        "Collection expecting embedding with dimension of 2, got 1"
    );
    // An empty batch is fine.
    c.add(RecordBatch::new(vec![], vec![]))
        .expect("empty batch");
}

#[test]
fn delete_reports_like_chroma() {
    let db = Ochre::ephemeral();
    let c = collection(&db, "del");
    c.add(
        RecordBatch::new(ids(&["i0", "i1", "i2"]), vec![vec![1.0]; 3]).metadatas(vec![
            Some(meta(&[("k", MetadataValue::Int(1))])),
            Some(meta(&[("k", MetadataValue::Int(1))])),
            None,
        ]),
    )
    .expect("add");
    let n = c
        .delete(DeleteRequest {
            ids: Some(ids(&["i0", "zz", "zz2"])),
            ..Default::default()
        })
        .expect("delete");
    assert_eq!(n, 3, "id-only deletes report the number of ids sent");
    assert_eq!(c.delete(DeleteRequest::default()).expect("noop"), 0);
    let e = c
        .delete(DeleteRequest {
            ids: Some(vec![]),
            ..Default::default()
        })
        .expect_err("empty ids");
    assert_eq!(
        e.message(),
        "Validation error: ids, where: Either ids or where must be specified"
    );
    let e = c
        .delete(DeleteRequest {
            ids: Some(ids(&["i1"])),
            limit: Some(1),
            ..Default::default()
        })
        .expect_err("limit");
    assert!(e
        .message()
        .contains("limit can only be specified when a where clause is provided"));
    let w = Where::from_json(&json!({"k": 1})).expect("valid");
    let n = c
        .delete(DeleteRequest {
            where_: Some(w),
            limit: Some(5),
            ..Default::default()
        })
        .expect("filter delete");
    assert_eq!(n, 1, "filter deletes report records removed");
    assert_eq!(all(&c).ids, ids(&["i2"]));
}

#[test]
fn query_semantics() {
    let db = Ochre::ephemeral();
    let c = collection(&db, "query");
    // Never written: any dimension gives empty lists.
    let r = c
        .query(QueryRequest::new(vec![vec![1.0; 7], vec![2.0; 7]]))
        .expect("empty collection");
    assert_eq!(r.ids, vec![Vec::<String>::new(), vec![]]);
    assert_eq!(r.distances, Some(vec![vec![], vec![]]));
    let e = c
        .query(QueryRequest::new(vec![vec![1.0; 2], vec![2.0; 3]]))
        .expect_err("mixed");
    assert_eq!(
        e.message(),
        "Inconsistent dimensions in provided embeddings"
    );

    c.add(
        RecordBatch::new(
            ids(&["a", "b", "c"]),
            vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]],
        )
        .metadatas(vec![
            Some(meta(&[("k", MetadataValue::Int(1))])),
            None,
            Some(meta(&[("k", MetadataValue::Int(1))])),
        ]),
    )
    .expect("add");
    let mut q = QueryRequest::new(vec![vec![0.1, 0.2]]);
    let r = c.query(q.clone()).expect("query");
    assert_eq!(r.ids[0], ids(&["b", "a", "c"]));
    assert!(
        (r.distances.as_ref().expect("included")[0][1] - 0.85).abs() < 1e-6,
        "squared L2"
    );
    q.where_ = Some(Where::from_json(&json!({"k": 1})).expect("valid"));
    q.n_results = 10;
    assert_eq!(
        c.query(q.clone()).expect("filtered").ids[0],
        ids(&["a", "c"]),
        "filter before top-k"
    );
    q.where_ = None;
    q.ids = Some(ids(&["a", "gone"]));
    let e = c.query(q.clone()).expect_err("unknown id");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("Error finding id"));
    q.where_ = Some(Where::from_json(&json!({"k": 1})).expect("valid"));
    assert_eq!(
        c.query(q.clone())
            .expect("with filter unknown ids are ignored")
            .ids[0],
        ids(&["a"])
    );
    q.ids = Some(vec![]);
    assert_eq!(
        c.query(q).expect("empty ids").ids,
        vec![Vec::<String>::new()]
    );
    let e = c
        .query(QueryRequest::new(vec![vec![1.0; 3]]))
        .expect_err("dimension");
    assert_eq!(
        e.message(),
        "Collection expecting embedding with dimension of 2, got 3"
    );
}

#[test]
fn distances_per_space() {
    let db = Ochre::ephemeral();
    for (space, want) in [(Space::L2, 1.0f32), (Space::Cosine, 0.0), (Space::Ip, -1.0)] {
        let mut req = CreateCollection {
            name: format!("space-{space}"),
            ..Default::default()
        };
        req.configuration.hnsw.space = space;
        let info = db.create_collection(T, D, req).expect("create");
        let c = db.collection(info.id).expect("handle");
        c.add(RecordBatch::new(ids(&["v"]), vec![vec![0.0, 2.0]]))
            .expect("add");
        let r = c
            .query(QueryRequest::new(vec![vec![0.0, 1.0]]))
            .expect("query");
        let d = r.distances.expect("included")[0][0];
        assert!((d - want).abs() < 1e-6, "{space}: {d} vs {want}");
    }
}

#[test]
fn catalog_rules() {
    let db = Ochre::ephemeral();
    let e = db
        .create_collection(
            T,
            D,
            CreateCollection {
                name: "ab".into(),
                ..Default::default()
            },
        )
        .expect_err("short");
    assert!(e
        .message()
        .starts_with("Validation error: name: Expected a name containing 3-512 characters"));
    let e = db
        .create_collection(
            T,
            "nodb",
            CreateCollection {
                name: "abc".into(),
                ..Default::default()
            },
        )
        .expect_err("missing db");
    assert_eq!(
        (e.kind(), e.message()),
        (ErrorKind::InvalidArgument, "Database [nodb] does not exist")
    );
    let e = db
        .create_collection(
            T,
            D,
            CreateCollection {
                name: "abc".into(),
                metadata: Some(Metadata::new()),
                ..Default::default()
            },
        )
        .expect_err("empty metadata");
    assert_eq!(
        e.message(),
        "Validation error: metadata: Metadata cannot be empty"
    );
    let a = db
        .create_collection(
            T,
            D,
            CreateCollection {
                name: "abc".into(),
                ..Default::default()
            },
        )
        .expect("create");
    let again = db
        .create_collection(
            T,
            D,
            CreateCollection {
                name: "abc".into(),
                get_or_create: true,
                metadata: Some(meta(&[("x", MetadataValue::Int(1))])),
                ..Default::default()
            },
        )
        .expect("get_or_create");
    assert_eq!(
        again, a,
        "get_or_create returns the existing collection unchanged"
    );
    let e = db
        .create_collection(
            T,
            D,
            CreateCollection {
                name: "abc".into(),
                ..Default::default()
            },
        )
        .expect_err("dup");
    assert_eq!(
        (e.kind(), e.message()),
        (ErrorKind::AlreadyExists, "Collection [abc] already exists")
    );
    db.create_collection(
        T,
        D,
        CreateCollection {
            name: "xyz".into(),
            ..Default::default()
        },
    )
    .expect("create");
    let e = db
        .modify_collection(
            T,
            D,
            a.id,
            ochre::ModifyCollection {
                new_name: Some("xyz".into()),
                ..Default::default()
            },
        )
        .expect_err("rename onto existing");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    db.modify_collection(
        T,
        D,
        a.id,
        ochre::ModifyCollection {
            new_name: Some("renamed".into()),
            new_metadata: Some(upd(&[("z", Some(MetadataValue::Int(1))), ("gone", None)])),
            ..Default::default()
        },
    )
    .expect("modify");
    let info = db.get_collection(T, D, "renamed").expect("renamed");
    assert_eq!(info.metadata, Some(meta(&[("z", MetadataValue::Int(1))])));
    assert!(db.get_collection(T, D, "abc").is_err());
    let listed: Vec<_> = db
        .list_collections(T, D, None, 0)
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "collections are listed by id");
    assert_eq!(db.list_collections(T, D, Some(1), 1).len(), 1);
    assert_eq!(db.count_collections(T, D), 2);

    db.create_tenant("acme").expect("tenant");
    assert_eq!(
        db.create_tenant("acme").expect_err("dup").kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        db.create_database("nobody", "dbx")
            .expect_err("tenant")
            .kind(),
        ErrorKind::NotFound
    );
    db.create_database("acme", "db1").expect("db");
    let c = db
        .create_collection(
            "acme",
            "db1",
            CreateCollection {
                name: "abc".into(),
                ..Default::default()
            },
        )
        .expect("create");
    assert!(
        db.collection_in(T, D, c.id).is_err(),
        "record access is scoped by tenant and database"
    );
    let handle = db.collection_in("acme", "db1", c.id).expect("scoped");
    db.delete_database("acme", "db1").expect("delete db");
    assert_eq!(
        handle.count().expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert!(db.list_databases("acme", None, 0).is_empty());
}

#[test]
fn persistent_state_survives_reopen_and_the_directory_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let db = Ochre::open(dir.path()).expect("open");
        let e = Ochre::open(dir.path()).expect_err("second open");
        assert_eq!(e.kind(), ErrorKind::Locked);
        assert!(e.message().contains("LOCK"), "{e}");
        let c = collection(&db, "keep");
        c.add(
            RecordBatch::new(ids(&["a", "b"]), vec![vec![1.5, 2.0], vec![3.0, 4.0]]).metadatas(
                vec![
                    Some(meta(&[
                        ("f", MetadataValue::Float(1.0)),
                        ("a", MetadataValue::StrArray(vec!["x".into()])),
                    ])),
                    None,
                ],
            ),
        )
        .expect("add");
        db.create_tenant("acme").expect("tenant");
        c.id()
    };
    let db = Ochre::open(dir.path()).expect("reopen");
    let c = db.collection(id).expect("still there");
    let g = all(&c);
    assert_eq!(g.ids, ids(&["a", "b"]));
    assert_eq!(g.embeddings, Some(vec![vec![1.5, 2.0], vec![3.0, 4.0]]));
    assert_eq!(
        g.metadatas.expect("included")[0],
        Some(meta(&[
            ("f", MetadataValue::Float(1.0)),
            ("a", MetadataValue::StrArray(vec!["x".into()]))
        ]))
    );
    assert_eq!(c.info().dimension, Some(2));
    db.get_tenant("acme").expect("tenant persisted");
}

#[test]
fn corrupt_store_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Ochre::open(dir.path()).expect("open");
        let c = collection(&db, "doomed");
        c.add(RecordBatch::new(ids(&["a"]), vec![vec![1.0]]))
            .expect("add");
    }
    let file = dir.path().join("ochre.sqlite3");
    let mut bytes = std::fs::read(&file).expect("read");
    // Overwrite everything after the 100-byte SQLite header with noise.
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&file, &bytes).expect("write");
    let _ = std::fs::remove_file(dir.path().join("ochre.sqlite3-wal"));
    let e = Ochre::open(dir.path()).expect_err("corrupt");
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.message().contains("ochre.sqlite3"), "{e}");
}

/// A store whose collection holds `n` records of dimension 2 with metadata, closed cleanly.
fn store_with_records(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Ochre::open(dir.path()).expect("open");
    let c = collection(&db, "damaged");
    let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let mut batch = RecordBatch::new(names, (0..n).map(|i| vec![i as f32, 1.0]).collect());
    batch.metadatas = Some(
        (0..n)
            .map(|i| Some(upd(&[("i", Some(MetadataValue::Int(i as i64)))])))
            .collect(),
    );
    c.add(batch).expect("add");
    dir
}

/// Runs one SQL statement against the closed store of `dir`.
fn tamper(dir: &tempfile::TempDir, sql: &str) {
    let conn = rusqlite::Connection::open(dir.path().join("ochre.sqlite3")).expect("sqlite");
    assert_eq!(conn.execute(sql, []).expect("tamper"), 1, "{sql}");
}

#[test]
fn damaged_records_are_reported_on_open_never_loaded() {
    // Recovery reads records on one thread and decodes their metadata on another, in batches of
    // 1024: the damage sits in a middle batch, so each thread has work before and after it.
    let n = 3000;
    let cases = [
        (
            "UPDATE records SET metadata = '{\"i\": ' WHERE id = 'r1500'",
            "r1500",
        ),
        (
            "UPDATE records SET metadata = '{\"i\": null}' WHERE id = 'r2100'",
            "r2100",
        ),
        (
            "UPDATE records SET embedding = x'0000803f' WHERE id = 'r1700'",
            "dimension",
        ),
        (
            "UPDATE records SET embedding = x'0000c07f0000803f' WHERE id = 'r2999'",
            "non-finite",
        ),
        ("UPDATE records SET id = 'r7' WHERE id = 'r2500'", "twice"),
    ];
    for (sql, needle) in cases {
        let dir = store_with_records(n);
        tamper(&dir, sql);
        let e = Ochre::open(dir.path()).expect_err(sql);
        assert_eq!(e.kind(), ErrorKind::Corrupted, "{sql}: {e}");
        assert!(e.message().contains(needle), "{sql}: {e}");
        assert!(e.message().contains("ochre.sqlite3"), "{sql}: {e}");
    }
    // Two damaged rows: the first in storage order is reported, whichever thread finds it.
    let dir = store_with_records(n);
    tamper(
        &dir,
        "UPDATE records SET metadata = '{\"i\": ' WHERE id = 'r1100'",
    );
    tamper(
        &dir,
        "UPDATE records SET embedding = x'0000803f' WHERE id = 'r2900'",
    );
    let e = Ochre::open(dir.path()).expect_err("two damaged rows");
    assert!(e.message().contains("r1100"), "{e}");
    // Undamaged, the same store opens whole.
    let dir = store_with_records(n);
    let db = Ochre::open(dir.path()).expect("open");
    let c = db.get_collection(T, D, "damaged").expect("collection");
    let c = db.collection(c.id).expect("handle");
    assert_eq!(c.count().expect("count"), n);
    let got = c
        .get(GetRequest {
            ids: Some(ids(&["r2999"])),
            include: Include {
                metadatas: true,
                ..Default::default()
            },
            ..Default::default()
        })
        .expect("get");
    assert_eq!(
        got.metadatas.expect("included")[0],
        Some(meta(&[("i", MetadataValue::Int(2999))]))
    );
}

#[test]
fn operation_and_fork_counters_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let db = Ochre::open(dir.path()).expect("open");
        let c = collection(&db, "counted");
        c.add(RecordBatch::new(
            ids(&["a", "b", "c"]),
            vec![vec![1.0], vec![2.0], vec![3.0]],
        ))
        .expect("add");
        c.delete(DeleteRequest {
            ids: Some(ids(&["a", "zz"])),
            ..Default::default()
        })
        .expect("delete");
        // A rejected write counts nothing.
        c.add(RecordBatch::new(ids(&["d"]), vec![vec![1.0, 2.0]]))
            .expect_err("dimension");
        db.fork_collection(T, D, c.id(), "counted-fork")
            .expect("fork");
        let info = c.info();
        assert_eq!((info.total_ops, info.forks), (5, 1));
        c.id()
    };
    let db = Ochre::open(dir.path()).expect("reopen");
    let info = db.collection(id).expect("handle").info();
    assert_eq!((info.total_ops, info.forks), (5, 1));
    let fork = db.get_collection(T, D, "counted-fork").expect("fork");
    assert_eq!((fork.total_ops, fork.forks), (5, 0));
}

#[test]
fn a_failed_commit_poisons_writes_while_reads_keep_the_committed_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Ochre::open(dir.path()).expect("open");
    let c = collection(&db, "poisoned");
    c.add(
        RecordBatch::new(ids(&["a", "b"]), vec![vec![1.0, 0.0], vec![0.0, 1.0]])
            .documents(vec![Some("first".into()), Some("second".into())]),
    )
    .expect("add");
    // Make the next commit fail, deterministically and without permissions (tests run as root,
    // where chmod does not stop writes): a second connection adds a trigger that aborts every
    // record insert, so the engine's transaction fails inside SQLite and rolls back.
    let conn = rusqlite::Connection::open(dir.path().join("ochre.sqlite3")).expect("sqlite");
    conn.execute_batch(
        "CREATE TRIGGER test_fail_commit BEFORE INSERT ON records
         BEGIN SELECT RAISE(ABORT, 'injected commit failure'); END;",
    )
    .expect("trigger");
    let e = c
        .add(RecordBatch::new(ids(&["c"]), vec![vec![1.0, 1.0]]))
        .expect_err("the commit fails");
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.message().contains("injected commit failure"), "{e}");

    // Every later write is refused with Poisoned, including ones the trigger would not stop.
    let poisoned = |r: Result<(), ochre::Error>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Poisoned, "{what}: {e}");
    };
    poisoned(
        c.add(RecordBatch::new(ids(&["d"]), vec![vec![0.5, 0.5]])),
        "add",
    );
    poisoned(
        c.upsert(RecordBatch::new(ids(&["a"]), vec![vec![2.0, 2.0]])),
        "upsert",
    );
    poisoned(
        c.update(RecordBatch::new(ids(&["b"]), vec![vec![3.0, 3.0]])),
        "update",
    );
    poisoned(
        c.delete(DeleteRequest {
            ids: Some(ids(&["a"])),
            ..Default::default()
        })
        .map(|_| ()),
        "delete records",
    );
    poisoned(
        db.create_collection(
            T,
            D,
            CreateCollection {
                name: "another".into(),
                ..Default::default()
            },
        )
        .map(|_| ()),
        "create collection",
    );
    poisoned(db.delete_collection(T, D, "poisoned"), "delete collection");
    poisoned(db.create_tenant("acme"), "create tenant");

    // Reads answer with the last committed state.
    assert_eq!(c.count().expect("count"), 2);
    let g = all(&c);
    assert_eq!(g.ids, ids(&["a", "b"]));
    assert_eq!(g.embeddings, Some(vec![vec![1.0, 0.0], vec![0.0, 1.0]]));
    assert_eq!(
        g.documents,
        Some(vec![Some("first".into()), Some("second".into())])
    );
    let mut q = QueryRequest::new(vec![vec![0.9, 0.1]]);
    q.n_results = 5;
    assert_eq!(c.query(q).expect("query").ids, vec![ids(&["a", "b"])]);
    assert_eq!(
        db.list_collections(T, D, None, 0)
            .into_iter()
            .map(|i| i.name)
            .collect::<Vec<_>>(),
        ["poisoned"]
    );
    db.get_collection(T, D, "poisoned").expect("still listed");

    // Reopened (without the trigger), the store holds the committed state and takes writes.
    conn.execute_batch("DROP TRIGGER test_fail_commit")
        .expect("drop trigger");
    drop(conn);
    drop(c);
    drop(db);
    let db = Ochre::open(dir.path()).expect("reopen");
    let c = db
        .collection(db.get_collection(T, D, "poisoned").expect("kept").id)
        .expect("handle");
    assert_eq!(all(&c).ids, ids(&["a", "b"]));
    c.add(RecordBatch::new(ids(&["c"]), vec![vec![1.0, 1.0]]))
        .expect("writable after reopen");
    assert_eq!(c.count().expect("count"), 3);
}

/// A trigger from a second connection that aborts every insert into `table`: the engine's next
/// transaction touching it fails inside SQLite and rolls back as a whole.
/// Makes every insert into or update of `table` fail (and with it the commit).
fn fail_inserts_into(dir: &std::path::Path, table: &str) {
    let conn = rusqlite::Connection::open(dir.join("ochre.sqlite3")).expect("sqlite");
    conn.execute_batch(&format!(
        "CREATE TRIGGER test_fail_{table} BEFORE INSERT ON {table}
         BEGIN SELECT RAISE(ABORT, 'injected commit failure'); END;
         CREATE TRIGGER test_fail_update_{table} BEFORE UPDATE ON {table}
         BEGIN SELECT RAISE(ABORT, 'injected commit failure'); END;"
    ))
    .expect("trigger");
}

fn drop_trigger(dir: &std::path::Path, table: &str) {
    let conn = rusqlite::Connection::open(dir.join("ochre.sqlite3")).expect("sqlite");
    conn.execute_batch(&format!(
        "DROP TRIGGER test_fail_{table}; DROP TRIGGER test_fail_update_{table};"
    ))
    .expect("drop trigger");
}

#[test]
fn a_write_and_its_schema_change_commit_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Ochre::open(dir.path()).expect("open");
        let c = collection(&db, "evolving");
        c.write_evolving_schema(
            ochre::WriteKind::Add,
            RecordBatch::new(ids(&["a"]), vec![vec![1.0, 0.0]]),
            |_| Some(json!({"generation": 1})),
        )
        .expect("write");
        assert_eq!(
            c.info().configuration.schema,
            Some(json!({"generation": 1}))
        );
        // The schema change fails (it rewrites the collection row); the record write in the
        // same batch must fail with it.
        fail_inserts_into(dir.path(), "collections");
        let e = c
            .write_evolving_schema(
                ochre::WriteKind::Add,
                RecordBatch::new(ids(&["b"]), vec![vec![0.0, 1.0]]),
                |_| Some(json!({"generation": 2})),
            )
            .expect_err("the commit fails");
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
        assert_eq!(
            c.info().configuration.schema,
            Some(json!({"generation": 1})),
            "memory unchanged"
        );
    }
    drop_trigger(dir.path(), "collections");
    let db = Ochre::open(dir.path()).expect("reopen");
    let info = db.get_collection(T, D, "evolving").expect("collection");
    assert_eq!(
        info.configuration.schema,
        Some(json!({"generation": 1})),
        "the schema change failed with its write"
    );
    assert_eq!(
        db.collection(info.id)
            .expect("handle")
            .count()
            .expect("count"),
        1,
        "the record failed with its schema change"
    );
}

#[test]
fn reset_is_one_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Ochre::open(dir.path()).expect("open");
        db.create_tenant("acme").expect("tenant");
        let c = collection(&db, "kept");
        c.add(RecordBatch::new(ids(&["a"]), vec![vec![1.0, 0.0]]))
            .expect("add");
        // Re-creating the default tenant is the last step of a reset: when it fails, nothing
        // before it may have happened either.
        fail_inserts_into(dir.path(), "tenants");
        assert_eq!(
            db.reset().expect_err("the commit fails").kind(),
            ErrorKind::Storage
        );
        assert!(db.get_collection(T, D, "kept").is_ok(), "memory unchanged");
    }
    drop_trigger(dir.path(), "tenants");
    let db = Ochre::open(dir.path()).expect("reopen");
    let info = db.get_collection(T, D, "kept").expect("collection kept");
    assert_eq!(
        db.collection(info.id)
            .expect("handle")
            .count()
            .expect("count"),
        1
    );
    assert!(db.get_tenant("acme").is_ok(), "tenant kept");
    db.reset().expect("reset");
    assert!(db.get_collection(T, D, "kept").is_err());
    assert!(db.get_tenant("acme").is_err());
    assert!(db.get_tenant(T).is_ok(), "default tenant re-created");
    drop(db);
    let db = Ochre::open(dir.path()).expect("reopen after reset");
    assert!(db.get_tenant(T).is_ok());
    assert_eq!(db.list_collections(T, D, None, 0).len(), 0);
}

#[test]
fn orphaned_index_files_are_removed_on_open_and_vacuum_returns_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let db = Ochre::open(dir.path()).expect("open");
        let c = collection(&db, "kept");
        let docs: Vec<Option<String>> = (0..3000)
            .map(|i| Some(format!("{i} {}", "x".repeat(500))))
            .collect();
        let embeddings: Vec<Vec<f32>> = (0..3000).map(|i| vec![i as f32, 1.0]).collect();
        let names: Vec<String> = (0..3000).map(|i| format!("r{i}")).collect();
        c.add(RecordBatch::new(names, embeddings).documents(docs))
            .expect("add");
        c.id()
    };
    let index = dir.path().join("index");
    let own = index.join(format!("{id}.hnsw"));
    assert!(own.exists(), "a checkpoint was written on close");
    // A dropped collection whose file survived a crash, a torn checkpoint write, and a file
    // that is not Ochre's.
    let orphan = index.join("7b0e5d6c-3f5a-4c1e-9a43-0d2b8f1e6a11.hnsw");
    let torn = index.join(format!("{id}.hnsw.tmp"));
    let foreign = index.join("notes.txt");
    for f in [&orphan, &torn, &foreign] {
        std::fs::copy(&own, f).expect("copy");
    }
    let db = Ochre::open(dir.path()).expect("reopen");
    assert!(own.exists());
    assert!(!orphan.exists() && !torn.exists(), "orphans removed");
    assert!(foreign.exists(), "other files are left alone");
    // Deleting every record frees pages inside the file; vacuum gives them back.
    let c = db.collection(id).expect("handle");
    c.delete(DeleteRequest {
        ids: Some((0..3000).map(|i| format!("r{i}")).collect()),
        ..Default::default()
    })
    .expect("delete all");
    assert_eq!(c.count().expect("count"), 0);
    let file = dir.path().join("ochre.sqlite3");
    let wal = dir.path().join("ochre.sqlite3-wal");
    let size = || {
        std::fs::metadata(&file).map_or(0, |m| m.len())
            + std::fs::metadata(&wal).map_or(0, |m| m.len())
    };
    let before = size();
    db.vacuum().expect("vacuum");
    let after = size();
    assert!(after * 4 < before, "vacuum: {before} -> {after} bytes");
}

/// Records of `key`'s collection still in the store file (read beside the open database).
fn stored_records(dir: &std::path::Path, key: i64) -> i64 {
    let c = rusqlite::Connection::open_with_flags(
        dir.join("ochre.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("sqlite");
    c.query_row(
        "SELECT count(*) FROM records WHERE rowid >= ?1 AND rowid < ?2",
        [key << 40, (key + 1) << 40],
        |r| r.get(0),
    )
    .expect("count")
}

#[test]
fn a_deleted_collection_is_purged_in_the_background_even_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 5000;
    let add = |c: &Collection| {
        let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let embeddings: Vec<Vec<f32>> = (0..n).map(|i| vec![i as f32, 1.0]).collect();
        let docs: Vec<Option<String>> = (0..n).map(|i| Some(format!("old {i}"))).collect();
        c.add(RecordBatch::new(names, embeddings).documents(docs))
            .expect("add");
    };
    {
        let db = Ochre::open(dir.path()).expect("open");
        add(&collection(&db, "doomed"));
        db.delete_collection(T, D, "doomed").expect("delete");
        assert!(db.get_collection(T, D, "doomed").is_err(), "gone at once");
        // Closed straight away: the purge may be unfinished; it resumes on the next open.
    }
    assert!(stored_records(dir.path(), 1) <= n as i64);
    let db = Ochre::open(dir.path()).expect("reopen");
    // A collection created while the old records may still be there never sees them.
    let fresh = collection(&db, "fresh");
    assert_eq!(fresh.count().expect("count"), 0);
    let start = std::time::Instant::now();
    while stored_records(dir.path(), 1) > 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the purge did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(fresh);
    drop(db);
    let db = Ochre::open(dir.path()).expect("reopen again");
    let fresh = db.get_collection(T, D, "fresh").expect("fresh");
    assert_eq!(
        db.collection(fresh.id).expect("h").count().expect("count"),
        0
    );
    // Same name again, new records: only the new ones.
    let again = collection(&db, "doomed");
    again
        .add(RecordBatch::new(ids(&["new"]), vec![vec![0.0, 1.0]]))
        .expect("add");
    drop(again);
    drop(db);
    let db = Ochre::open(dir.path()).expect("reopen a third time");
    let again = db.get_collection(T, D, "doomed").expect("doomed again");
    assert_eq!(
        db.collection(again.id).expect("h").count().expect("count"),
        1
    );
}

/// Review of issue 11: a fork whose database is deleted while it copies deletes itself; if the
/// process stops first, its row points at a missing database. Opening finishes the deletion
/// instead of refusing the directory.
#[test]
fn a_collection_left_without_its_database_is_removed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Ochre::open(dir.path()).expect("open");
        db.create_database(T, "other").expect("database");
        let info = db
            .create_collection(
                T,
                "other",
                CreateCollection {
                    name: "orphan".into(),
                    ..Default::default()
                },
            )
            .expect("create");
        db.collection(info.id)
            .expect("handle")
            .add(RecordBatch::new(
                ids(&["a", "b"]),
                vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            ))
            .expect("add");
        collection(&db, "kept")
            .add(RecordBatch::new(ids(&["k"]), vec![vec![1.0, 1.0]]))
            .expect("add kept");
    }
    {
        let c = rusqlite::Connection::open(dir.path().join("ochre.sqlite3")).expect("sqlite");
        c.execute("DELETE FROM databases WHERE name = 'other'", [])
            .expect("delete the database row alone");
    }
    let db = Ochre::open(dir.path()).expect("opens");
    let kept = db.get_collection(T, D, "kept").expect("kept");
    assert_eq!(
        db.collection(kept.id).expect("h").count().expect("count"),
        1
    );
    assert_eq!(db.stats(), (1, 1), "the orphan is gone");
    let start = std::time::Instant::now();
    while stored_records(dir.path(), 1) > 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "purged"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_record_with_a_uri_and_no_metadata_reads_back_an_empty_map() {
    // Chroma 1.5.9 keeps the uri among a record's metadata: such a record's metadata is `{}`;
    // without a uri it is none.
    let db = Ochre::ephemeral();
    let c = collection(&db, "uris");
    c.add(
        RecordBatch::new(ids(&["u", "n", "m"]), vec![vec![1.0, 0.0]; 3])
            .uris(vec![
                Some("s3://b/k".into()),
                None,
                Some("file:///x".into()),
            ])
            .metadatas(vec![
                None,
                None,
                Some(meta(&[("k", MetadataValue::Int(1))])),
            ]),
    )
    .unwrap();
    let got = all(&c);
    assert_eq!(
        got.metadatas.unwrap(),
        vec![
            Some(Metadata::new()),
            None,
            Some(meta(&[("k", MetadataValue::Int(1))]))
        ]
    );
}
