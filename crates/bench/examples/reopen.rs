//! Times `Ochre::open` of a data directory step by step, the work `ochre run` and
//! `ochre.PersistentClient(path)` do before they answer, and the memory an ingest peaks at:
//!
//! ```text
//! cargo run --release -p ochre-bench --example reopen -- create DIR N     # the first N pypi-minilm records
//! cargo run --release -p ochre-bench --example reopen -- open DIR [RUNS]  # open, get, one query; RUNS times
//! ```
//!
//! `create` makes collection "bench" (cosine; documents and the metadata of the end-to-end
//! benchmark) in batches of 1,000 and prints the RSS every 5,000 records; `open` prints the
//! seconds of `Ochre::open`, of the first query and of the drop, the RSS after the first query
//! and once the background indexes (metadata, full text) are built, then the peak RSS. Each open
//! after the first in one process reuses memory the allocator already holds: the first is the
//! one a restart pays. The data set is `../shared/datasets/pypi-minilm` (env `OCHRE_DATASET`);
//! the allocator is mimalloc, as in `ochre run` and the Python package. Run it under
//! `perf record` to see where an open goes.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    reason = "a benchmark harness: it prints its results, and a failed run should stop loudly"
)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use ochre::{Ochre, QueryRequest, RecordBatch, DEFAULT_DATABASE, DEFAULT_TENANT};
use ochre_bench::{cosine_collection, peak_rss, read_f16, read_records};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * 4096)
}

const DIM: usize = 384;
const NAME: &str = "bench";

fn dataset() -> PathBuf {
    std::env::var_os("OCHRE_DATASET").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/pypi-minilm"),
        PathBuf::from,
    )
}

fn create(dir: &Path, n: usize) {
    let data = dataset();
    let base = read_f16(&data.join("base.f16"), DIM, n);
    let records = read_records(&data.join("records.tsv.gz"), n);
    let db = Ochre::open(dir).expect("open");
    let info = db
        .create_collection(DEFAULT_TENANT, DEFAULT_DATABASE, cosine_collection(NAME))
        .expect("create collection");
    let coll = db.collection(info.id).expect("collection");
    // `OCHRE_BENCH_NO_DOCUMENTS=1`: records without documents (what the text index costs).
    let no_documents = std::env::var_os("OCHRE_BENCH_NO_DOCUMENTS").is_some();
    let start = Instant::now();
    for (vectors, recs) in base.chunks(1000).zip(records.chunks(1000)) {
        let batch = RecordBatch::new(
            recs.iter().map(|r| r.row.to_string()).collect(),
            vectors.to_vec(),
        )
        .documents(
            recs.iter()
                .map(|r| (!no_documents).then(|| r.summary.clone()))
                .collect(),
        )
        .metadatas(recs.iter().map(|r| Some(r.metadata())).collect());
        coll.add(batch).expect("add");
        let done = coll.count().expect("count");
        if done.is_multiple_of(5000) {
            println!(
                "{done} records: RSS {:.1} MiB, peak {:.1} MiB",
                rss() as f64 / 1048576.0,
                peak_rss().unwrap_or(0) as f64 / 1048576.0
            );
        }
    }
    println!(
        "created {n} records in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

fn open(dir: &Path, runs: usize) {
    let query = read_f16(&dataset().join("queries.f16"), DIM, 1)
        .pop()
        .expect("a query");
    for _ in 0..runs {
        let t0 = Instant::now();
        let db = Ochre::open(dir).expect("open");
        let t1 = Instant::now();
        let info = db
            .get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, NAME)
            .expect("get collection");
        let coll = db.collection(info.id).expect("collection");
        let res = coll
            .query(QueryRequest::new(vec![query.clone()]))
            .expect("query");
        let t2 = Instant::now();
        let opened = rss();
        // The metadata and full-text indexes, built in the background after the open.
        coll.wait_for_index_maintenance();
        let indexed = rss();
        let t_indexed = Instant::now();
        drop(coll);
        drop(db);
        let t3 = Instant::now();
        println!(
            "open {:.3} s, first query {:.4} s ({} hits), background indexes {:.3} s later, close {:.3} s; RSS {:.1} MiB open, {:.1} MiB with the background indexes",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            res.ids.first().map_or(0, Vec::len),
            (t_indexed - t2).as_secs_f64(),
            (t3 - t_indexed).as_secs_f64(),
            opened as f64 / 1048576.0,
            indexed as f64 / 1048576.0,
        );
    }
    if let Some(rss) = peak_rss() {
        println!("peak RSS {:.1} MiB", rss as f64 / 1048576.0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["create", dir, n] => create(Path::new(dir), n.parse().expect("N")),
        ["open", dir] => open(Path::new(dir), 5),
        ["open", dir, runs] => open(Path::new(dir), runs.parse().expect("RUNS")),
        _ => {
            eprintln!("usage: reopen create DIR N | reopen open DIR [RUNS]");
            std::process::exit(2);
        }
    }
}
