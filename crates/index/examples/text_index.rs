//! Measures the trigram text index on English-like prose: memory per record and candidate times.
//! `cargo run --release -p ochre-index --example text_index`
//!
//! Two corpora: 20,000 documents of ~2 KB (memory), and 100,000 short documents of ~150 bytes
//! (candidate times for `$contains` words and phrases, and a few `$regex` patterns). Words are
//! Zipf-distributed over a head of common English words and a synthetic tail, with some numbers
//! and capitalized names.

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    reason = "a measurement harness: it prints its results, and its fixed patterns are valid"
)]

use std::time::{Duration, Instant};

use ochre_index::{Candidates, TextIndex};
use ochre_types::SeqNo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// English-like text (the same generator as the text index's memory test).
struct Prose {
    words: Vec<String>,
    cumulative: Vec<f64>,
    rng: StdRng,
}

impl Prose {
    fn new(seed: u64) -> Prose {
        const COMMON: &str = "the of and to a in is it you that he was for on are with as I his \
            they be at one have this from or had by hot word but what some we can out other were all \
            there when up use your how said an each she which do their time if will way about many \
            then them write would like so these her long make thing see him two has look more day \
            could go come did number sound no most people my over know water than call first who may \
            down side been now find any new work part take get place made live where after back \
            little only round man year came show every good me give our under name very through just \
            form sentence great think say help low line differ turn cause much mean before move right \
            boy old too same tell does set three want air well also play small end put home read hand \
            port large spell add even land here must big high such follow act why ask men change went \
            light kind off need house picture try us again animal point mother world";
        let mut rng = StdRng::seed_from_u64(seed);
        let mut words: Vec<String> = COMMON.split_whitespace().map(str::to_owned).collect();
        let onsets = [
            "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "ch",
            "cl", "dr", "gr", "pl", "pr", "sh", "st", "th", "tr",
        ];
        let vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "io", "y"];
        let codas = [
            "", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck", "rt", "ed", "ing", "tion",
            "ment", "ly",
        ];
        while words.len() < 30_000 {
            let mut w = String::new();
            for _ in 0..rng.gen_range(1..4) {
                w.push_str(onsets[rng.gen_range(0..onsets.len())]);
                w.push_str(vowels[rng.gen_range(0..vowels.len())]);
            }
            w.push_str(codas[rng.gen_range(0..codas.len())]);
            words.push(w);
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / (r as f64 + 2.7);
                total
            })
            .collect();
        Prose {
            words,
            cumulative,
            rng,
        }
    }

    fn document(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes + 32);
        let top = self.cumulative.last().copied().unwrap_or(1.0);
        while out.len() < bytes {
            let n = self.rng.gen_range(6..20);
            for i in 0..n {
                let x = self.rng.gen_range(0.0..top);
                let r = self.cumulative.partition_point(|&c| c < x);
                let w = &self.words[r.min(self.words.len() - 1)];
                if i == 0 {
                    let mut cs = w.chars();
                    if let Some(c) = cs.next() {
                        out.extend(c.to_uppercase());
                        out.push_str(cs.as_str());
                    }
                } else {
                    out.push(' ');
                    match self.rng.gen_range(0..40) {
                        // Numbers and proper names: the long tail of real text's trigrams.
                        0 => out.push_str(&self.rng.gen_range(0..100_000).to_string()),
                        1 | 2 => {
                            let mut cs = w.chars();
                            if let Some(c) = cs.next() {
                                out.extend(c.to_uppercase());
                                out.push_str(cs.as_str());
                            }
                        }
                        _ => out.push_str(w),
                    }
                }
                if i + 1 < n && self.rng.gen_range(0..12) == 0 {
                    out.push(',');
                }
            }
            out.push_str(if self.rng.gen_range(0..10) == 0 {
                "? "
            } else {
                ". "
            });
        }
        out
    }
}

fn build(n: u64, bytes: usize, seed: u64) -> (TextIndex, Vec<String>, Duration) {
    let mut prose = Prose::new(seed);
    let docs: Vec<String> = (0..n).map(|_| prose.document(bytes)).collect();
    let mut t = TextIndex::new();
    let start = Instant::now();
    for (i, d) in docs.iter().enumerate() {
        t.insert(SeqNo(i as u64), d);
    }
    (t, docs, start.elapsed())
}

/// Median time of `f` over repeated calls, and its last answer.
fn time(f: impl Fn() -> Candidates) -> (Duration, Candidates) {
    let mut times = Vec::new();
    let mut last = f();
    for _ in 0..21 {
        let start = Instant::now();
        last = f();
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], last)
}

fn describe(c: &Candidates, docs: &[String], matches: impl Fn(&str) -> bool) -> String {
    let truth = docs.iter().filter(|d| matches(d)).count();
    match c {
        Candidates::All => format!("All (true {truth})"),
        Candidates::Some(s) => format!("{} candidates (true {truth})", s.len()),
        Candidates::Exact(s) => format!("{} exact (true {truth})", s.len()),
    }
}

fn main() {
    let (mut t, docs, took) = build(20_000, 2048, 1);
    let avg = docs.iter().map(String::len).sum::<usize>() / docs.len();
    let before = t.memory_bytes();
    let start = Instant::now();
    t.compact();
    let compacted = start.elapsed();
    println!(
        "20,000 × {avg} B prose: indexed in {took:.2?}, {} trigrams, {:.0} B/record \
         ({:.0} B/record after compact(), which took {compacted:.2?})",
        t.trigrams(),
        before as f64 / 20_000.0,
        t.memory_bytes() as f64 / 20_000.0,
    );
    drop(docs);

    let (t, docs, took) = build(100_000, 150, 2);
    let avg = docs.iter().map(String::len).sum::<usize>() / docs.len();
    println!(
        "100,000 × {avg} B prose: indexed in {took:.2?}, {} trigrams, {:.0} B/record",
        t.trigrams(),
        t.memory_bytes() as f64 / 100_000.0
    );
    for needle in [
        "the",
        "water",
        "people",
        "mother",
        "picture",
        "world",
        "sentence",
        "the water",
        "qzx",
        "Animal",
    ] {
        let (d, c) = time(|| t.contains_candidates(needle));
        let what = describe(&c, &docs, |doc| doc.contains(needle));
        println!("  $contains {needle:?}: {d:.1?}, {what}");
    }
    for pattern in [
        "(?i)water",
        "peo.le",
        "house|picture",
        "\\bworld\\b",
        "moth(er)+ ",
    ] {
        let re = regex::Regex::new(pattern).expect("a valid pattern");
        let (d, c) = time(|| t.regex_candidates(pattern).expect("a valid pattern"));
        let what = describe(&c, &docs, |doc| re.is_match(doc));
        println!("  $regex {pattern:?}: {d:.1?}, {what}");
    }
}
