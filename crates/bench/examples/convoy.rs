//! The lock-convoy benchmark of issue 11: how fast collection Y answers while collection X
//! ingests 50,000 records, deletes 25,000 of them by filter and rebuilds its index.
//!
//! `cargo run --release -p ochre-bench --example convoy -- [DATASET_DIR] [X_RECORDS]`
//! (default `../shared/datasets/pypi-minilm`, 50,000). Y holds the first 10,000 vectors, X the
//! next ones; one thread drives X, the main thread times `count()` + `query()` (10 results,
//! documents and metadatas included) on Y, first with X idle (the reference), then while X
//! works. Prints p50, p99 and max of both and their ratio.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a benchmark harness: it prints its results, and a failed run should stop loudly"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ochre::{
    CreateCollection, DeleteRequest, Metadata, MetadataValue, Ochre, QueryRequest, RecordBatch,
    Where,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DIM: usize = 384;
const Y_RECORDS: usize = 10_000;

fn batch(vectors: &[Vec<f32>], first: usize) -> RecordBatch {
    let n = vectors.len();
    RecordBatch::new(
        (first..first + n).map(|i| format!("r{i}")).collect(),
        vectors.to_vec(),
    )
    .documents(
        (first..first + n)
            .map(|i| Some(format!("document {i} {}", "x".repeat(500))))
            .collect(),
    )
    .metadatas(
        (first..first + n)
            .map(|i| {
                let mut m = Metadata::new();
                m.insert("half".into(), MetadataValue::Int((i % 2) as i64));
                Some(m)
            })
            .collect(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let (p50, p99, max) = (
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        *times.last().unwrap(),
    );
    println!(
        "{name}: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    (p50, p99)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dataset = args
        .next()
        .unwrap_or_else(|| "../shared/datasets/pypi-minilm".into());
    let x_records: usize = args.next().map_or(Ok(50_000), |s| s.parse())?;
    let vectors = ochre_bench::read_f16(
        &std::path::Path::new(&dataset).join("base.f16"),
        DIM,
        Y_RECORDS + x_records,
    );
    let queries: Vec<Vec<f32>> = vectors.iter().step_by(97).take(200).cloned().collect();
    let dir = tempfile::tempdir()?;
    let db = Ochre::open(dir.path())?;
    let create = |name: &str| {
        db.create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: name.into(),
                ..Default::default()
            },
        )
        .map(|i| db.collection(i.id).unwrap())
    };
    let (x, y) = (create("busy")?, create("other")?);
    for (i, part) in vectors[..Y_RECORDS].chunks(1000).enumerate() {
        y.add(batch(part, i * 1000))?;
    }
    let probe = |q: &Vec<f32>| {
        let t = Instant::now();
        assert_eq!(y.count().unwrap(), Y_RECORDS);
        let r = y.query(QueryRequest::new(vec![q.clone()])).unwrap();
        assert_eq!(r.ids[0].len(), 10);
        t.elapsed()
    };
    let idle: Vec<Duration> = queries.iter().cycle().take(1000).map(probe).collect();
    let done = AtomicBool::new(false);
    let (busy, work) = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let t = Instant::now();
            for (i, part) in vectors[Y_RECORDS..].chunks(1000).enumerate() {
                x.add(batch(part, Y_RECORDS + i * 1000)).unwrap();
            }
            let ingest = t.elapsed();
            let deleted = x
                .delete(DeleteRequest {
                    where_: Some(Where::from_json(&serde_json::json!({"half": 1})).unwrap()),
                    ..Default::default()
                })
                .unwrap();
            let delete = t.elapsed() - ingest;
            x.wait_for_index_maintenance();
            let rebuild = t.elapsed() - ingest - delete;
            done.store(true, Ordering::SeqCst);
            (ingest, deleted, delete, rebuild)
        });
        let mut times = Vec::new();
        let mut i = 0;
        while !done.load(Ordering::SeqCst) {
            times.push(probe(&queries[i % queries.len()]));
            i += 1;
        }
        (times, worker.join().unwrap())
    });
    let (ingest, deleted, delete, rebuild) = work;
    println!(
        "X: ingest {x_records} in {:.1} s, delete {deleted} by filter in {:.2} s, background rebuild done {:.2} s later",
        ingest.as_secs_f64(),
        delete.as_secs_f64(),
        rebuild.as_secs_f64()
    );
    let (i50, i99) = summary("Y with X idle (reference)", idle);
    let (b50, b99) = summary("Y while X works", busy);
    println!(
        "ratio busy / idle: p50 {:.2}x, p99 {:.2}x",
        b50.as_secs_f64() / i50.as_secs_f64(),
        b99.as_secs_f64() / i99.as_secs_f64()
    );
    Ok(())
}
