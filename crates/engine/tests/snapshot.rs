//! Snapshots and restore: a snapshot taken while a writer goes on holds a prefix of the
//! acknowledged batches, whole ones only, at least every batch acknowledged before it began; a
//! damaged or foreign snapshot is refused with a clear error and nothing is restored.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failing test"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ochre::snapshot::{restore, verify_snapshot, MANIFEST};
use ochre::{
    CreateCollection, DeleteRequest, ErrorKind, GetRequest, Include, Metadata, MetadataValue,
    Ochre, QueryRequest, RecordBatch,
};

const BATCH: usize = 40;
const DIM: usize = 8;

fn vector(batch: u64, i: usize) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((batch as f32) * 0.37 + (i as f32) * 0.11 + d as f32).sin())
        .collect()
}

fn batch_of(b: u64) -> RecordBatch {
    let ids = (0..BATCH).map(|i| format!("b{b:05}-{i:03}")).collect();
    let embeddings = (0..BATCH).map(|i| vector(b, i)).collect();
    let metadatas = (0..BATCH)
        .map(|i| {
            let mut m = Metadata::new();
            m.insert("batch".into(), MetadataValue::Int(b as i64));
            m.insert("i".into(), MetadataValue::Int(i as i64));
            Some(m)
        })
        .collect();
    RecordBatch::new(ids, embeddings)
        .documents((0..BATCH).map(|i| Some(format!("doc {b} {i}"))).collect())
        .metadatas(metadatas)
}

fn create(db: &Ochre, name: &str) -> ochre::Collection {
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: name.into(),
                ..Default::default()
            },
        )
        .unwrap();
    db.collection(info.id).unwrap()
}

/// Batches present in a restored collection, each checked to be whole and intact.
fn batches_in(c: &ochre::Collection) -> Vec<u64> {
    let all = c
        .get(GetRequest {
            include: Include::all(),
            ..Default::default()
        })
        .unwrap();
    let mut per_batch: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, id) in all.ids.iter().enumerate() {
        let b: u64 = id[1..6].parse().unwrap();
        let i: usize = id[7..].parse().unwrap();
        let e = all.embeddings.as_ref().unwrap()[k].clone();
        assert_eq!(e, vector(b, i), "embedding of {id}");
        assert_eq!(
            all.documents.as_ref().unwrap()[k].as_deref(),
            Some(format!("doc {b} {i}").as_str())
        );
        *per_batch.entry(b).or_default() += 1;
    }
    for (b, n) in &per_batch {
        assert_eq!(*n, BATCH, "batch {b} is torn: {n} of {BATCH} records");
    }
    per_batch.into_keys().collect()
}

#[test]
fn a_snapshot_under_writes_holds_a_prefix_of_whole_batches() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let db = Arc::new(Ochre::open(&data).unwrap());
    let c = create(&db, "busy");
    // A second collection with a checkpoint on disk: its index comes from the copied file.
    let quiet = create(&db, "quiet");
    for b in 0..5 {
        quiet.add(batch_of(b)).unwrap();
    }
    quiet
        .delete(DeleteRequest {
            ids: Some(vec!["b00000-000".into()]),
            ..Default::default()
        })
        .unwrap();

    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut b = 0;
            while !stop.load(Ordering::SeqCst) {
                c.add(batch_of(b)).unwrap();
                b += 1;
                acked.store(b, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 30 {
        std::thread::yield_now();
    }
    let before = acked.load(Ordering::SeqCst);
    let snap = root.path().join("snap");
    let manifest = db.snapshot(&snap).unwrap();
    let after = acked.load(Ordering::SeqCst);
    // Writes went on: let the writer run a little past the snapshot, then stop it.
    while acked.load(Ordering::SeqCst) < after + 5 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(manifest.bytes() > 0);
    assert!(manifest.files.iter().any(|f| f.path == "ochre.sqlite3"));
    verify_snapshot(&snap).unwrap();

    let restored_dir = root.path().join("restored");
    restore(&snap, &restored_dir).unwrap();
    let restored = Ochre::open(&restored_dir).unwrap();
    let info = restored
        .get_collection("default_tenant", "default_database", "busy")
        .unwrap();
    let rc = restored.collection(info.id).unwrap();
    let present = batches_in(&rc);
    let k = present.len() as u64;
    assert_eq!(present, (0..k).collect::<Vec<_>>(), "batches form a prefix");
    assert!(
        k >= before,
        "{k} batches restored, {before} were acknowledged before"
    );
    assert!(
        k <= after,
        "{k} batches restored, only {after} acknowledged by the end"
    );
    // The restored index answers: each record's own vector finds it first.
    let q = rc
        .query(QueryRequest {
            n_results: 1,
            ..QueryRequest::new(vec![vector(k / 2, 7)])
        })
        .unwrap();
    assert_eq!(q.ids[0], vec![format!("b{:05}-007", k / 2)]);

    let qi = restored
        .get_collection("default_tenant", "default_database", "quiet")
        .unwrap();
    let qc = restored.collection(qi.id).unwrap();
    assert_eq!(qc.count().unwrap(), 5 * BATCH - 1);
    let q = qc
        .query(QueryRequest {
            n_results: 1,
            ..QueryRequest::new(vec![vector(3, 5)])
        })
        .unwrap();
    assert_eq!(q.ids[0], vec!["b00003-005".to_string()]);
}

fn small_snapshot(root: &Path) -> std::path::PathBuf {
    let data = root.join("data");
    let db = Ochre::open(&data).unwrap();
    let c = create(&db, "small");
    c.add(batch_of(0)).unwrap();
    let snap = root.join("snap");
    db.snapshot(&snap).unwrap();
    snap
}

#[test]
fn a_damaged_snapshot_is_refused_and_nothing_is_restored() {
    let root = tempfile::tempdir().unwrap();
    let snap = small_snapshot(root.path());
    let target = root.path().join("target");

    // One flipped byte in the store.
    let store = snap.join("ochre.sqlite3");
    let mut bytes = std::fs::read(&store).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&store, &bytes).unwrap();
    let e = restore(&snap, &target).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("ochre.sqlite3"), "{e}");
    assert!(!target.exists());
    bytes[mid] ^= 0x55;
    std::fs::write(&store, &bytes).unwrap();

    // A missing file.
    std::fs::rename(&store, root.path().join("aside")).unwrap();
    let e = restore(&snap, &target).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(!target.exists());
    std::fs::rename(root.path().join("aside"), &store).unwrap();

    // A manifest of a later version.
    let manifest_path = snap.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        text.replace("\"version\": 1", "\"version\": 99"),
    )
    .unwrap();
    let e = restore(&snap, &target).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("version 99"), "{e}");
    std::fs::write(&manifest_path, &text).unwrap();

    // A file the manifest does not list.
    std::fs::write(snap.join("index").join("stray.hnsw"), b"x").unwrap();
    let e = restore(&snap, &target).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("does not list"), "{e}");
    std::fs::remove_file(snap.join("index").join("stray.hnsw")).unwrap();

    // Not a snapshot at all.
    let e = restore(root.path(), &target).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!target.exists());

    // A data directory that is in use.
    let e = restore(&snap, &root.path().join("data")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

    // Intact again: it restores, into an empty directory too.
    std::fs::create_dir(&target).unwrap();
    restore(&snap, &target).unwrap();
    let db = Ochre::open(&target).unwrap();
    let info = db
        .get_collection("default_tenant", "default_database", "small")
        .unwrap();
    assert_eq!(db.collection(info.id).unwrap().count().unwrap(), BATCH);
    // Nothing else was left beside it.
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_snapshot_destination_must_be_new_and_the_database_persistent() {
    let root = tempfile::tempdir().unwrap();
    let snap = small_snapshot(root.path());
    let db = Ochre::open(root.path().join("other")).unwrap();
    let e = db.snapshot(&snap).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = Ochre::ephemeral()
        .snapshot(&root.path().join("x"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(!root.path().join("x").exists());
}

#[test]
fn a_snapshot_travels_as_a_tar_stream_and_a_cut_stream_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let snap = small_snapshot(root.path());
    let mut stream = Vec::new();
    let sent = verify_snapshot(&snap).unwrap();
    ochre::snapshot::write_snapshot_tar(&snap, &sent, &mut stream).unwrap();
    let got = ochre::snapshot::receive_snapshot(&stream[..], &root.path().join("got")).unwrap();
    assert_eq!(sent, got);
    restore(&root.path().join("got"), &root.path().join("data2")).unwrap();

    // Cut anywhere, the stream is refused and nothing is left.
    for cut in [0, 100, 512, stream.len() / 2, stream.len() - 2048] {
        let dest = root.path().join(format!("cut{cut}"));
        let e = ochre::snapshot::receive_snapshot(&stream[..cut], &dest).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupted, "cut at {cut}: {e}");
        assert!(!dest.exists());
    }
    // An entry with another name (a path outside the snapshot) is refused.
    let mut evil = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_old();
    header.set_size(3);
    header.set_entry_type(tar::EntryType::Regular);
    // Written by hand: the tar crate refuses to build such a name.
    let name = b"index/../../x";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    evil.append(&header, &b"abc"[..]).unwrap();
    let bytes = evil.into_inner().unwrap();
    let e = ochre::snapshot::receive_snapshot(&bytes[..], &root.path().join("evil")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains("unexpected entry"), "{e}");
    assert!(!root.path().join("x").exists());
}
