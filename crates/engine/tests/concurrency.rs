//! Requests to one collection do not wait for work on another.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ochre::{CreateCollection, Ochre, RecordBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T: &str = "default_tenant";
const D: &str = "default_database";

fn create(db: &Ochre, name: &str) -> ochre::CollectionId {
    db.create_collection(
        T,
        D,
        CreateCollection {
            name: name.into(),
            ..Default::default()
        },
    )
    .expect("create")
    .id
}

/// See issue 11: a request for collection X waited for X's lock while holding the catalog's, so
/// once a catalog writer queued behind it, every request to any collection waited for X's write.
#[test]
fn a_long_write_on_one_collection_does_not_stall_another() {
    let db = Ochre::ephemeral();
    let (x, y) = (create(&db, "busy"), create(&db, "other"));
    db.collection(y)
        .expect("y")
        .add(RecordBatch::new(vec!["a".into()], vec![vec![1.0; 32]]))
        .expect("add to y");
    let mut rng = StdRng::seed_from_u64(7);
    let n = 40_000;
    let batch = RecordBatch::new(
        (0..n).map(|i| format!("r{i}")).collect(),
        (0..n)
            .map(|_| (0..32).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect(),
    );
    let done = AtomicBool::new(false);
    let (write_time, worst) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let start = Instant::now();
            db.collection(x).expect("x").add(batch).expect("long add");
            done.store(true, Ordering::SeqCst);
            start.elapsed()
        });
        // A reader of X (it waits for the write) and a catalog writer (it queues behind that
        // reader if the reader holds the catalog).
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let _ = db.collection_in(T, D, x).and_then(|c| c.count());
            }
        });
        s.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                let _ = create(&db, &format!("side{i}"));
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        let mut worst = Duration::ZERO;
        while !done.load(Ordering::SeqCst) {
            let start = Instant::now();
            let c = db.collection_in(T, D, y).expect("y");
            assert_eq!(c.count().expect("count"), 1);
            worst = worst.max(start.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        (writer.join().expect("writer"), worst)
    });
    assert!(
        write_time > Duration::from_millis(300),
        "the write ({write_time:?}) must be long enough to tell"
    );
    // Generous: the other collection answers in a small share of the write's time.
    assert!(
        worst * 4 < write_time,
        "a count on another collection took {worst:?} during a {write_time:?} write"
    );
}

/// `n` random 32-d records `r0..`.
fn random_batch(n: usize, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    RecordBatch::new(
        (0..n).map(|i| format!("r{i}")).collect(),
        (0..n)
            .map(|_| (0..32).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect(),
    )
    .documents((0..n).map(|i| Some(format!("document {i}"))).collect())
}

/// See issue 11: deleting a collection held the catalog's write lock while it waited for the
/// collection's (held by a long write), and a fork held it while copying every record; either
/// stalled every request to every collection.
#[test]
fn deleting_a_busy_collection_and_forking_a_large_one_do_not_stall_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Ochre::open(dir.path()).expect("open");
    let (x, y, z) = (
        create(&db, "busy"),
        create(&db, "other"),
        create(&db, "large"),
    );
    db.collection(y)
        .expect("y")
        .add(RecordBatch::new(vec!["a".into()], vec![vec![1.0; 32]]))
        .expect("add to y");
    db.collection(z)
        .expect("z")
        .add(random_batch(20_000, 3))
        .expect("add to z");
    let batch = random_batch(30_000, 5);
    let done = AtomicBool::new(false);
    let (busy_time, worst) = std::thread::scope(|s| {
        let work = s.spawn(|| {
            let start = Instant::now();
            std::thread::scope(|inner| {
                inner.spawn(|| db.collection(x).expect("x").add(batch).expect("long add"));
                inner.spawn(|| {
                    std::thread::sleep(Duration::from_millis(30));
                    db.delete_collection(T, D, "busy").expect("delete busy");
                });
                inner.spawn(|| {
                    std::thread::sleep(Duration::from_millis(30));
                    db.fork_collection(T, D, z, "large-copy").expect("fork");
                });
            });
            done.store(true, Ordering::SeqCst);
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(60));
        let mut worst = Duration::ZERO;
        let mut i = 0;
        while !done.load(Ordering::SeqCst) {
            let start = Instant::now();
            let c = db.collection_in(T, D, y).expect("y");
            assert_eq!(c.count().expect("count"), 1);
            let _ = create(&db, &format!("side{i}"));
            i += 1;
            worst = worst.max(start.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        (work.join().expect("work"), worst)
    });
    assert!(
        busy_time > Duration::from_millis(300),
        "the work ({busy_time:?}) must be long enough to tell"
    );
    assert!(
        worst * 4 < busy_time,
        "a count and a create took {worst:?} while a busy collection was deleted and a large one forked ({busy_time:?})"
    );
    // Both finished as asked: the busy collection is gone, the fork has every record.
    assert!(db.get_collection(T, D, "busy").is_err());
    let fork = db.get_collection(T, D, "large-copy").expect("fork");
    let fork = db.collection(fork.id).expect("fork handle");
    assert_eq!(fork.count().expect("count"), 20_000);
    let got = fork
        .get(ochre::GetRequest {
            ids: Some(vec!["r7".into()]),
            include: ochre::Include {
                documents: true,
                ..Default::default()
            },
            ..Default::default()
        })
        .expect("get");
    assert_eq!(got.documents, Some(vec![Some("document 7".into())]));
}
