//! `cargo run --release -p ochre-bench --bin sparse_vs_tantivy -- [dataset dir] [n] [queries]`
//!
//! BM25 top-10 over the pypi-minilm package summaries (`records.tsv.gz`, the first `n` rows,
//! default 100,000): Ochre's [`SparseIndex`] against tantivy, both in RAM, single-threaded.
//!
//! - Tokens: split on non-alphanumeric characters, tokens of 40 bytes or more dropped,
//!   lowercased — exactly tantivy's `default` tokenizer, so both index the same tokens.
//! - Ochre: each token hashed to a `u32` term (FNV-1a); document weights as Chroma's BM25
//!   embedding computes them, `tf·(k1+1) / (tf + k1·(1 − b + b·len/256))` with k1 = 1.2,
//!   b = 0.75 and Chroma's fixed average length 256; query weights the IDF
//!   `ln((N − n_t + 0.5)/(n_t + 0.5) + 1)` from [`SparseIndex::doc_freq`], one per distinct
//!   query token.
//! - tantivy 0.27: one text field indexed with frequencies and field norms (no positions, not
//!   stored), one indexing thread, one commit (one segment); queries are a `BooleanQuery` of
//!   `Should` term queries ranked by its BM25 (its own average length and quantized field norms,
//!   so its ranking differs from Chroma's), collected by `TopDocs` (block-WAND).
//! - Queries (default 1,000): windows of 2–4 consecutive known tokens from the summaries of the
//!   rows after the first `n` (other packages), seeded, stop words included.
//!
//! Query rates are the best of five passes over all queries, the two engines alternating (the
//! machine may be shared); a second table times the slowest queries one by one (20 runs each,
//! so their postings are in cache). Build time includes tokenizing; for Ochre, the final
//! `shrink_to_fit` (as after loading a collection); for tantivy, creating the index, adding the
//! documents, the commit and opening a searcher. Query time includes building the query from
//! its tokens. Ochre's top-10 is checked against a brute-force scan with the same scoring rule
//! (recall must be 1.0, and the results bit-identical). Memory: Ochre's
//! [`SparseIndex::memory_bytes`] (capacity before the shrink in parentheses); tantivy's
//! `space_usage` of its (compressed) segment.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a benchmark harness: it prints its results, and a failed run should stop loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use ochre_bench::{parallel_map, read_records};
use ochre_index::{SparseHit, SparseIndex};
use ochre_types::SeqNo;
use tantivy::collector::TopDocs;
use tantivy::query::BooleanQuery;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::{Index, IndexWriter, TantivyDocument, Term};

const K1: f32 = 1.2;
const B: f32 = 0.75;
const AVG_DOC_LEN: f32 = 256.0;
const K: usize = 10;

/// Lowercased alphanumeric runs shorter than 40 bytes (tantivy's `default` tokenizer).
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() < 40)
        .map(str::to_lowercase)
        .collect()
}

/// FNV-1a, 32 bits: the token's term.
fn term(token: &str) -> u32 {
    token.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A document's BM25 vector, as Chroma's BM25 embedding builds it.
fn doc_vector(tokens: &[String]) -> (Vec<u32>, Vec<f32>) {
    let mut tf: BTreeMap<u32, u32> = BTreeMap::new();
    for t in tokens {
        *tf.entry(term(t)).or_default() += 1;
    }
    let norm = K1 * (1.0 - B + B * tokens.len() as f32 / AVG_DOC_LEN);
    tf.into_iter()
        .map(|(t, f)| {
            let f = f as f32;
            (t, f * (K1 + 1.0) / (f + norm))
        })
        .unzip()
}

/// A query's vector: its distinct terms weighted by IDF.
fn query_vector(ix: &SparseIndex, tokens: &[String]) -> (Vec<u32>, Vec<f32>) {
    let terms: BTreeSet<u32> = tokens.iter().map(|t| term(t)).collect();
    let n = ix.len() as f32;
    terms
        .into_iter()
        .map(|t| {
            let nt = ix.doc_freq(t) as f32;
            (t, ((n - nt + 0.5) / (nt + 0.5) + 1.0).ln())
        })
        .unzip()
}

/// The exact top-k by the index's scoring rule (f64 products over shared terms in ascending
/// term order, rounded once; ties by ascending sequence number), by scanning every document.
fn brute(docs: &[(Vec<u32>, Vec<f32>)], qi: &[u32], qv: &[f32], k: usize) -> Vec<SparseHit> {
    let mut hits = Vec::new();
    for (s, (vi, vv)) in docs.iter().enumerate() {
        let (mut a, mut b, mut acc, mut shared) = (0, 0, 0.0f64, false);
        while a < qi.len() && b < vi.len() {
            match qi[a].cmp(&vi[b]) {
                std::cmp::Ordering::Less => a += 1,
                std::cmp::Ordering::Greater => b += 1,
                std::cmp::Ordering::Equal => {
                    acc += f64::from(qv[a]) * f64::from(vv[b]);
                    shared = true;
                    a += 1;
                    b += 1;
                }
            }
        }
        if shared {
            hits.push(SparseHit {
                seq: SeqNo(s as u64),
                score: acc as f32,
            });
        }
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq)));
    hits.truncate(k);
    hits
}

/// SplitMix64: a seeded generator for picking query windows.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Runs `a` and `b` over the queries, alternating five passes each (this machine is shared, so
/// alternating spreads load changes over both); the results of the last pass of each and their
/// best rates.
fn timed<A, B>(
    queries: &[Vec<String>],
    a: impl Fn(&[String]) -> A,
    b: impl Fn(&[String]) -> B,
) -> (Vec<A>, Vec<B>, f64, f64) {
    let (mut best_a, mut best_b) = (0.0f64, 0.0f64);
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let start = Instant::now();
        out_a = queries.iter().map(|q| a(q)).collect();
        best_a = best_a.max(queries.len() as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        out_b = queries.iter().map(|q| b(q)).collect();
        best_b = best_b.max(queries.len() as f64 / start.elapsed().as_secs_f64());
    }
    (out_a, out_b, best_a, best_b)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .map_or("../shared/datasets/pypi-minilm", String::as_str),
    )
    .to_owned();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let nq: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let records = read_records(&dir.join("records.tsv.gz"), usize::MAX);
    assert!(records.len() > n, "need more than {n} records");
    let summaries: Vec<&str> = records[..n].iter().map(|r| r.summary.as_str()).collect();

    // Ochre.
    let start = Instant::now();
    let mut ix = SparseIndex::new();
    for (s, text) in summaries.iter().enumerate() {
        let (i, v) = doc_vector(&tokens(text));
        ix.insert(SeqNo(s as u64), &i, &v);
    }
    let grown_bytes = ix.memory_bytes();
    ix.shrink_to_fit();
    let ochre_build = start.elapsed().as_secs_f64();
    // The brute force's own copy of the vectors (not read back from the index).
    let docs: Vec<(Vec<u32>, Vec<f32>)> =
        summaries.iter().map(|t| doc_vector(&tokens(t))).collect();
    let pairs: usize = docs.iter().map(|d| d.0.len()).sum();

    // tantivy.
    let start = Instant::now();
    let mut schema = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("default")
        .set_index_option(IndexRecordOption::WithFreqs);
    let body = schema.add_text_field(
        "body",
        TextOptions::default().set_indexing_options(indexing),
    );
    let index = Index::create_in_ram(schema.build());
    let mut writer: IndexWriter = index
        .writer_with_num_threads(1, 200_000_000)
        .expect("tantivy writer");
    for text in &summaries {
        let mut doc = TantivyDocument::default();
        doc.add_text(body, text);
        writer.add_document(doc).expect("tantivy add");
    }
    writer.commit().expect("tantivy commit");
    let reader = index.reader().expect("tantivy reader");
    let searcher = reader.searcher();
    let tantivy_build = start.elapsed().as_secs_f64();
    assert_eq!(
        searcher.segment_readers().len(),
        1,
        "one segment, so doc ids are rows"
    );
    let tantivy_bytes = searcher
        .space_usage()
        .map_or(0, |u| u.total().get_bytes() as usize);

    // Queries: windows of 2-4 consecutive known tokens from other packages' summaries.
    let mut rng = Rng(0x5eed);
    let others: Vec<Vec<String>> = records[n..]
        .iter()
        .map(|r| {
            tokens(&r.summary)
                .into_iter()
                .filter(|t| ix.doc_freq(term(t)) > 0)
                .collect::<Vec<String>>()
        })
        .filter(|t| t.len() >= 2)
        .collect();
    assert!(!others.is_empty(), "no summary to draw queries from");
    let queries: Vec<Vec<String>> = (0..nq)
        .map(|i| {
            let t = &others[i % others.len()];
            let len = (2 + rng.below(3)).min(t.len());
            let from = rng.below(t.len() - len + 1);
            t[from..from + len].to_vec()
        })
        .collect();
    let terms_per_query = queries
        .iter()
        .map(|q| q.iter().collect::<BTreeSet<_>>().len())
        .sum::<usize>() as f64
        / nq as f64;
    let postings_per_query = queries
        .iter()
        .map(|q| {
            let (qi, _) = query_vector(&ix, q);
            qi.iter().map(|&t| ix.doc_freq(t)).sum::<usize>()
        })
        .sum::<usize>() as f64
        / nq as f64;

    let ochre = |q: &[String]| {
        let (qi, qv) = query_vector(&ix, q);
        ix.search(&qi, &qv, K, None)
    };
    let tantivy = |q: &[String]| {
        let terms: BTreeSet<&String> = q.iter().collect();
        let query = BooleanQuery::new_multiterms_query(
            terms
                .into_iter()
                .map(|t| Term::from_field_text(body, t))
                .collect(),
        );
        searcher
            .search(&query, &TopDocs::with_limit(K).order_by_score())
            .expect("tantivy search")
    };
    let (ours, theirs, ochre_qps, tantivy_qps) = timed(&queries, ochre, tantivy);

    // The slowest queries for Ochre, each timed over 20 runs, with tantivy's time beside.
    let per_query = |f: &dyn Fn(&[String]), q: &[String]| {
        let start = Instant::now();
        for _ in 0..20 {
            f(q);
        }
        start.elapsed().as_secs_f64() * 1e6 / 20.0
    };
    let mut slow: Vec<(f64, f64, &Vec<String>)> = queries
        .iter()
        .map(|q| {
            (
                per_query(&|q| drop(std::hint::black_box(ochre(q))), q),
                per_query(&|q| drop(std::hint::black_box(tantivy(q))), q),
                q,
            )
        })
        .collect();
    slow.sort_by(|a, b| b.0.total_cmp(&a.0));

    // Exactness: Ochre's top-10 against the brute force (two threads).
    let truth: Vec<Vec<SparseHit>> = parallel_map(&queries, 2, |q| {
        let (qi, qv) = query_vector(&ix, q);
        brute(&docs, &qi, &qv, K)
    });
    let mut found = 0usize;
    let mut wanted = 0usize;
    let mut identical = 0usize;
    let bits = |h: &[SparseHit]| -> Vec<(u64, u32)> {
        h.iter().map(|h| (h.seq.0, h.score.to_bits())).collect()
    };
    for (got, want) in ours.iter().zip(&truth) {
        wanted += want.len();
        found += want
            .iter()
            .filter(|w| got.iter().any(|g| g.seq == w.seq))
            .count();
        identical += usize::from(bits(got) == bits(want));
    }
    let recall = if wanted == 0 {
        1.0
    } else {
        found as f64 / wanted as f64
    };
    let overlap: usize = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| {
            t.iter()
                .filter(|(_, a)| o.iter().any(|h| h.seq.0 == u64::from(a.doc_id)))
                .count()
        })
        .sum();

    println!(
        "data: {n} summaries, {pairs} (document, term) pairs, {nq} queries of {terms_per_query:.2} \
         distinct terms touching {postings_per_query:.0} postings on average, top-{K}, 1 thread"
    );
    println!();
    println!("| engine | build (s) | top-{K} queries/s | recall@{K} vs brute force | heap / index bytes |");
    println!("|---|---|---|---|---|");
    println!(
        "| ochre SparseIndex | {ochre_build:.2} | {ochre_qps:.0} | {recall:.4} ({identical}/{nq} identical) | {:.1} MB ({:.1} MB) |",
        ix.memory_bytes() as f64 / 1e6,
        grown_bytes as f64 / 1e6
    );
    println!(
        "| tantivy 0.27 | {tantivy_build:.2} | {tantivy_qps:.0} | - | {:.1} MB |",
        tantivy_bytes as f64 / 1e6
    );
    println!();
    println!(
        "ochre / tantivy: {:.2}x queries/s, {:.2}x build time; top-{K} overlap with tantivy's \
         ranking (its own BM25 length normalization): {:.1}%",
        ochre_qps / tantivy_qps,
        ochre_build / tantivy_build,
        100.0 * overlap as f64 / (nq * K) as f64
    );
    println!();
    println!("slowest queries for ochre (µs per query, mean of 20 runs):");
    println!("| query | document frequencies | ochre µs | tantivy µs |");
    println!("|---|---|---|---|");
    for (o, t, q) in slow.iter().take(8) {
        let (qi, _) = query_vector(&ix, q);
        let dfs: Vec<usize> = qi.iter().map(|&t| ix.doc_freq(t)).collect();
        println!("| {} | {dfs:?} | {o:.0} | {t:.0} |", q.join(" "));
    }
    let sum = |f: fn(&(f64, f64, &Vec<String>)) -> f64| slow.iter().map(f).sum::<f64>();
    println!(
        "sum over all queries: ochre {:.0} µs, tantivy {:.0} µs",
        sum(|r| r.0),
        sum(|r| r.1)
    );
    assert!(
        recall == 1.0 && identical == nq,
        "Ochre's top-{K} is not exact"
    );
}
