//! `search_api <workload.json>`: the workload of `bench/search.py` through Ochre's embedded Rust
//! API (`Collection::search`, no HTTP), so its table can show what the engine itself costs. Not
//! meant to be run by hand: the script writes the workload (data set, scale, the documents' BM25
//! vectors from Chroma's `chroma_bm25`, the query vectors) and reads the JSON printed on stdout:
//! per-request latencies in seconds for each phase.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    reason = "a benchmark harness: it prints its results, and a failed run should stop loudly"
)]

use std::path::PathBuf;
use std::time::Instant;

use ochre::search::{Knn, KnnQuery, Rank, SearchPlan, Select};
use ochre::{
    CollectionConfiguration, CreateCollection, GetRequest, Include, Metadata, MetadataValue, Ochre,
    RecordBatch, WhereDocument, DEFAULT_DATABASE, DEFAULT_TENANT,
};
use ochre_bench::{read_f16, read_records};
use ochre_types::SparseVector;
use serde_json::{json, Value};

const DIM: usize = 384;

fn sparse(v: &Value) -> SparseVector {
    let nums = |k: &str| v[k].as_array().expect("array").clone();
    SparseVector {
        indices: nums("indices")
            .iter()
            .map(|x| x.as_u64().expect("u32") as u32)
            .collect(),
        values: nums("values")
            .iter()
            .map(|x| x.as_f64().expect("f32") as f32)
            .collect(),
        tokens: None,
    }
}

fn lines(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("readable")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn main() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::env::args()
                .nth(1)
                .expect("usage: search_api <workload.json>"),
        )
        .expect("readable workload"),
    )
    .expect("workload JSON");
    let dataset = PathBuf::from(spec["dataset"].as_str().expect("dataset"));
    let n = spec["n"].as_u64().expect("n") as usize;
    let nq = spec["queries"].as_u64().expect("queries") as usize;
    let words: Vec<String> = spec["words"]
        .as_array()
        .expect("words")
        .iter()
        .map(|w| w.as_str().expect("word").to_owned())
        .collect();
    let base = read_f16(&dataset.join("base.f16"), DIM, n);
    let queries = read_f16(&dataset.join("queries.f16"), DIM, nq);
    let recs = read_records(
        &PathBuf::from(spec["records_tsv"].as_str().expect("records_tsv")),
        n,
    );
    let doc_vecs: Vec<SparseVector> = lines(spec["doc_vectors"].as_str().expect("path"))
        .iter()
        .map(sparse)
        .collect();
    let q_vecs: Vec<SparseVector> = lines(spec["query_vectors"].as_str().expect("path"))
        .iter()
        .map(sparse)
        .collect();
    let db = Ochre::open(spec["data_dir"].as_str().expect("data_dir")).expect("open");
    let configuration = CollectionConfiguration {
        schema: Some(
            json!({"keys": {"bm25": {"sparse_vector": {"sparse_vector_index": {
            "enabled": true, "config": {"bm25": true, "source_key": "#document"}}}}}}),
        ),
        ..CollectionConfiguration::default()
    };
    let info = db
        .create_collection(
            DEFAULT_TENANT,
            DEFAULT_DATABASE,
            CreateCollection {
                name: "search".into(),
                configuration,
                ..CreateCollection::default()
            },
        )
        .expect("create");
    let c = db.collection(info.id).expect("collection");
    let t = Instant::now();
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let metas = (start..end)
            .map(|i| {
                let mut m = Metadata::new();
                m.insert("year".into(), MetadataValue::Int(recs[i].year));
                m.insert(
                    "bm25".into(),
                    MetadataValue::Sparse(Box::new(doc_vecs[i].clone())),
                );
                Some(m)
            })
            .collect();
        c.add(
            RecordBatch::new(
                (start..end).map(|i| format!("r{i}")).collect(),
                base[start..end].to_vec(),
            )
            .documents(
                (start..end)
                    .map(|i| Some(recs[i].summary.clone()))
                    .collect(),
            )
            .metadatas(metas),
        )
        .expect("add");
    }
    let ingest = t.elapsed().as_secs_f64();
    let dense = |q: &[f32], limit: u32, rank: bool| {
        Rank::Knn(Knn {
            query: KnnQuery::Dense(q.to_vec()),
            key: "#embedding".into(),
            limit,
            default: None,
            return_rank: rank,
        })
    };
    let bm25 = |q: &SparseVector, limit: u32, rank: bool| {
        Rank::Knn(Knn {
            query: KnnQuery::Sparse(q.clone()),
            key: "bm25".into(),
            limit,
            default: None,
            return_rank: rank,
        })
    };
    let plan = |rank: Rank| SearchPlan {
        rank: Some(rank),
        limit: Some(10),
        select: Select {
            score: true,
            ..Select::default()
        },
        ..SearchPlan::default()
    };
    let rrf = |a: Rank, b: Rank| {
        let term = |r: Rank| {
            Rank::Div(
                Box::new(Rank::Val(1.0)),
                Box::new(Rank::Sum(vec![Rank::Val(60.0), r])),
            )
        };
        Rank::Mul(vec![Rank::Val(-1.0), Rank::Sum(vec![term(a), term(b)])])
    };
    let dense_lat = timed(nq, |i| {
        c.search(&[plan(dense(&queries[i], 10, false))])
            .expect("search");
    });
    let bm25_lat = timed(nq, |i| {
        c.search(&[plan(bm25(&q_vecs[i % q_vecs.len()], 10, false))])
            .expect("search");
    });
    let hybrid_lat = timed(nq, |i| {
        let r = rrf(
            dense(&queries[i], 50, true),
            bm25(&q_vecs[i % q_vecs.len()], 50, true),
        );
        c.search(&[plan(r)]).expect("search");
    });
    let contains_lat = timed(nq, |i| {
        let wd = WhereDocument::from_json(&json!({"$contains": words[i % words.len()]}))
            .expect("filter");
        c.get(GetRequest {
            where_document: Some(wd),
            limit: Some(10),
            include: Include {
                documents: false,
                metadatas: false,
                ..Include::default()
            },
            ..GetRequest::default()
        })
        .expect("get");
    });
    println!(
        "{}",
        json!({"ingest": ingest, "dense search": dense_lat, "bm25": bm25_lat,
               "hybrid": hybrid_lat, "contains get": contains_lat})
    );
}
