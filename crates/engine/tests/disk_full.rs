//! Disk space: a full disk is a transient failure (the write that hit it is refused and changes
//! nothing, the instance keeps answering and, once space is freed, accepts writes again; run on a
//! small tmpfs of its own, as root, as the tests run here and in CI), and space that deletes free
//! goes back to the file system by itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ochre::{CreateCollection, ErrorKind, Ochre, RecordBatch};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (as the test suite runs here and in CI)"
        );
        SmallDisk { mount, _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn batch(start: usize, n: usize, dim: usize) -> RecordBatch {
    let ids = (start..start + n).map(|i| format!("r{i}")).collect();
    let embeddings = (start..start + n)
        .map(|i| (0..dim).map(|j| ((i * dim + j) as f32).sin()).collect())
        .collect();
    RecordBatch::new(ids, embeddings).documents(
        (start..start + n)
            .map(|i| Some(format!("document {i} {}", "x".repeat(200))))
            .collect(),
    )
}

#[test]
fn a_full_disk_refuses_the_write_and_recovers_when_space_is_freed() {
    let disk = SmallDisk::new("8m");
    let data = disk.path().join("data");
    // Space to give back later.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 3 << 20]).expect("ballast");
    let db = Ochre::open(&data).expect("open");
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "full".into(),
                ..Default::default()
            },
        )
        .expect("create");
    let c = db.collection(info.id).expect("handle");
    let (n, dim) = (200, 64);
    let mut written = 0;
    let error = loop {
        match c.add(batch(written, n, dim)) {
            Ok(()) => written += n,
            Err(e) => break e,
        }
        assert!(written < 100_000, "the disk never filled");
    };
    assert!(written > 0, "some batches fit");
    assert_eq!(error.kind(), ErrorKind::Storage, "{error}");
    assert!(error.message().contains("full"), "{error}");
    // Nothing of the refused batch is visible, and the instance still answers.
    assert_eq!(c.count().expect("count"), written);
    // Still full: the same write fails again, still without poisoning anything.
    let again = c.add(batch(written, n, dim)).expect_err("still full");
    assert_eq!(again.kind(), ErrorKind::Storage, "{again}");
    // Space comes back: the write goes through.
    std::fs::remove_file(&ballast).expect("free space");
    c.add(batch(written, n, dim)).expect("space was freed");
    assert_eq!(c.count().expect("count"), written + n);
    drop(c);
    drop(db);
    let db = Ochre::open(&data).expect("reopen");
    let c = db.collection(info.id).expect("handle");
    assert_eq!(
        c.count().expect("count"),
        written + n,
        "every acknowledged batch, and only those"
    );
}

/// Bytes of the store's files (the file and its WAL).
fn store_bytes(dir: &Path) -> u64 {
    ["ochre.sqlite3", "ochre.sqlite3-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn space_freed_by_deletes_returns_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Ochre::open(dir.path()).expect("open");
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "shrinking".into(),
                ..Default::default()
            },
        )
        .expect("create");
    let c = db.collection(info.id).expect("handle");
    let n = 20_000;
    let docs = |start: usize| -> Vec<Option<String>> {
        (start..start + 1000)
            .map(|i| Some(format!("{i} {}", "y".repeat(2000))))
            .collect()
    };
    for start in (0..n).step_by(1000) {
        let ids = (start..start + 1000).map(|i| format!("r{i}")).collect();
        let vectors = (start..start + 1000).map(|i| vec![i as f32, 1.0]).collect();
        c.add(RecordBatch::new(ids, vectors).documents(docs(start)))
            .expect("add");
    }
    let full = store_bytes(dir.path());
    for start in (0..n).step_by(1000) {
        c.delete(ochre::DeleteRequest {
            ids: Some((start..start + 1000).map(|i| format!("r{i}")).collect()),
            ..Default::default()
        })
        .expect("delete");
    }
    assert_eq!(c.count().expect("count"), 0);
    // No manual step: the background reclaimer gives the pages back within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = store_bytes(dir.path());
    while now * 10 > full * 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        now = store_bytes(dir.path());
    }
    assert!(
        now * 10 <= full * 3,
        "store {full} -> {now} bytes after deleting everything"
    );
    // Still a working store.
    c.add(RecordBatch::new(vec!["again".into()], vec![vec![1.0, 2.0]]))
        .expect("add after reclaiming");
    drop(c);
    drop(db);
    let db = Ochre::open(dir.path()).expect("reopen");
    assert_eq!(
        db.collection(info.id)
            .expect("handle")
            .count()
            .expect("count"),
        1
    );
}
