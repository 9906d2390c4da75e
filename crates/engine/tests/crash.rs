//! Crash test: a child process writes batches and reports each acknowledged one; the parent
//! SIGKILLs it at random moments, reopens the directory and checks that every acknowledged batch is
//! fully present and that no batch is partially visible.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use ochre::{
    CreateCollection, DeleteRequest, GetRequest, Include, MetadataValue, Ochre, QueryRequest,
    RecordBatch, UpdateMetadata, Where,
};
use rand::{Rng, SeedableRng};

const BATCH: usize = 40;
const DIM: usize = 8;

fn batch(i: u64) -> RecordBatch {
    let ids = (0..BATCH).map(|j| format!("b{i}-{j}")).collect();
    let embeddings = (0..BATCH)
        .map(|j| {
            (0..DIM)
                .map(|d| (i as f32) + (j * d) as f32 * 0.01)
                .collect()
        })
        .collect();
    let mut b = RecordBatch::new(ids, embeddings).documents(
        (0..BATCH)
            .map(|j| Some(format!("document {i} {j}")))
            .collect(),
    );
    b.metadatas = Some(
        (0..BATCH)
            .map(|_| {
                let mut m = UpdateMetadata::new();
                m.insert("batch".into(), Some(MetadataValue::Int(i as i64)));
                Some(m)
            })
            .collect(),
    );
    b
}

/// The child: when OCHRE_CRASH_DIR is set, write batches forever, printing `ack <n>` after each.
/// Every fifth batch is an upsert that rewrites the previous batch's metadata, and every seventh
/// deletes the batch before, so updates and deletes are crash-tested too.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("OCHRE_CRASH_DIR") else {
        return;
    };
    let start: u64 = std::env::var("OCHRE_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let db = Ochre::open(&dir).expect("child opens");
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "crash".into(),
                get_or_create: true,
                ..Default::default()
            },
        )
        .expect("collection");
    let coll = db.collection(info.id).expect("handle");
    let mut out = std::io::stdout().lock();
    for i in start.. {
        if matches!(op_kind(i), Op::Delete) {
            coll.delete(DeleteRequest {
                where_: Some(
                    Where::from_json(&serde_json::json!({"batch": i as i64 - 1})).expect("valid"),
                ),
                ..Default::default()
            })
            .expect("delete");
            writeln!(out, "del {}", i - 1).expect("stdout");
        } else if matches!(op_kind(i), Op::Rewrite) {
            let mut b = batch(i - 1);
            b.metadatas = Some(
                (0..BATCH)
                    .map(|_| {
                        let mut m = UpdateMetadata::new();
                        m.insert("rewritten".into(), Some(MetadataValue::Bool(true)));
                        Some(m)
                    })
                    .collect(),
            );
            coll.upsert(b).expect("upsert");
            writeln!(out, "upd {}", i - 1).expect("stdout");
        } else {
            coll.add(batch(i)).expect("add");
            writeln!(out, "ack {i}").expect("stdout");
        }
        out.flush().expect("flush");
    }
}

enum Op {
    Add,
    Rewrite,
    Delete,
}

/// Which operation the child performs at step `i`.
fn op_kind(i: u64) -> Op {
    if i % 7 == 6 {
        Op::Delete
    } else if i % 5 == 4 {
        Op::Rewrite
    } else {
        Op::Add
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Present { rewritten: bool },
    Deleted,
}

#[test]
fn acknowledged_batches_survive_sigkill() {
    if std::env::var("OCHRE_CRASH_DIR").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // What acknowledged operations promise about each batch.
    let mut expect: BTreeMap<u64, Expect> = BTreeMap::new();
    let mut next = 0u64;
    let rounds = 24;
    let mut total_acks = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("OCHRE_CRASH_DIR", dir.path())
            .env("OCHRE_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let lines = reader.join().expect("reader");
        let mut last_op = None;
        for line in lines {
            // libtest may print "test crash_child ... " on the same line before the first report.
            let line = ["ack ", "upd ", "del "]
                .iter()
                .filter_map(|p| line.find(p))
                .min()
                .map_or("", |at| &line[at..]);
            let mut parts = line.split_whitespace();
            let (Some(op), Some(n)) = (
                parts.next(),
                parts.next().and_then(|n| n.parse::<u64>().ok()),
            ) else {
                continue;
            };
            match op {
                "ack" => {
                    expect.insert(n, Expect::Present { rewritten: false });
                    last_op = Some(n);
                }
                "upd" => {
                    expect.insert(n, Expect::Present { rewritten: true });
                    last_op = Some(n + 1);
                }
                "del" => {
                    expect.insert(n, Expect::Deleted);
                    last_op = Some(n + 1);
                }
                _ => continue,
            }
            total_acks += 1;
        }
        next = last_op.map_or(next, |n| n + 1);

        // Reopen and check.
        let db = Ochre::open(dir.path()).expect("reopen after SIGKILL");
        let info = match db.get_collection("default_tenant", "default_database", "crash") {
            Ok(info) => info,
            Err(_) => {
                assert!(expect.is_empty(), "round {round}: collection lost");
                continue;
            }
        };
        let coll = db.collection(info.id).expect("handle");
        let all = coll
            .get(GetRequest {
                include: Include::all(),
                ..Default::default()
            })
            .expect("get");
        let mut per_batch: BTreeMap<u64, (usize, BTreeSet<bool>)> = BTreeMap::new();
        for (i, id) in all.ids.iter().enumerate() {
            let b: u64 = id[1..id.find('-').expect("id shape")]
                .parse()
                .expect("batch number");
            let m = all.metadatas.as_ref().expect("included")[i]
                .clone()
                .expect("metadata");
            let e = per_batch.entry(b).or_default();
            e.0 += 1;
            e.1.insert(m.contains_key("rewritten"));
        }
        for (b, (count, rewritten)) in &per_batch {
            assert_eq!(*count, BATCH, "round {round}: batch {b} is partial");
            assert_eq!(
                rewritten.len(),
                1,
                "round {round}: batch {b} partially rewritten"
            );
        }
        // The operation in flight at the kill may or may not have landed (but never partially).
        let inflight = next;
        match op_kind(inflight) {
            Op::Delete => {
                let b = inflight - 1;
                if expect.contains_key(&b) && !per_batch.contains_key(&b) {
                    expect.insert(b, Expect::Deleted);
                    next = inflight + 1;
                }
            }
            Op::Rewrite => {
                // The upsert rewrites batch b, or inserts it when b was never added (the step
                // before was a delete of b - 1).
                let b = inflight - 1;
                if per_batch.get(&b).is_some_and(|p| p.1.contains(&true))
                    && expect.get(&b) != Some(&Expect::Present { rewritten: true })
                {
                    expect.insert(b, Expect::Present { rewritten: true });
                    next = inflight + 1;
                }
            }
            Op::Add => {
                if per_batch.contains_key(&inflight) && !expect.contains_key(&inflight) {
                    expect.insert(inflight, Expect::Present { rewritten: false });
                    next = inflight + 1;
                }
            }
        }
        for (b, e) in &expect {
            match e {
                Expect::Present { rewritten } => {
                    let got = per_batch
                        .get(b)
                        .unwrap_or_else(|| panic!("round {round}: acknowledged batch {b} lost"));
                    assert_eq!(
                        got.1.contains(&true),
                        *rewritten,
                        "round {round}: rewrite state of batch {b}"
                    );
                }
                Expect::Deleted => {
                    assert!(
                        !per_batch.contains_key(b),
                        "round {round}: acknowledged delete of {b} lost"
                    );
                }
            }
        }
        let unexpected: Vec<&u64> = per_batch
            .keys()
            .filter(|b| !expect.contains_key(b))
            .collect();
        assert!(
            unexpected.is_empty(),
            "round {round}: unacknowledged batches {unexpected:?}"
        );
        // The vector index holds each record with its vector (whether it came from a vector
        // file the last clean close wrote, which later writes made stale, or from the store):
        // restricted to its batch's ids (few enough candidates to be scanned exactly, with the
        // index's own vectors), each batch's first vector finds its record first.
        for b in per_batch.keys() {
            let mut req = QueryRequest::new(vec![vec![*b as f32; DIM]]);
            req.n_results = 1;
            req.ids = Some((0..BATCH).map(|j| format!("b{b}-{j}")).collect());
            let got = coll.query(req).expect("query");
            assert_eq!(
                got.ids[0],
                [format!("b{b}-0")],
                "round {round}: batch {b} in the index"
            );
        }
        // Closed cleanly: the next child opens from the checkpoint and vector file this writes.
        drop(db);
    }
    assert!(
        total_acks > rounds,
        "children made progress: {total_acks} acknowledged operations"
    );
    eprintln!("crash test: {rounds} rounds, {total_acks} acknowledged operations");
}
