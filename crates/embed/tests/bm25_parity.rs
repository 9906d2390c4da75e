//! `ochre_embed::bm25` against chromadb 1.5.9's own `ChromaBm25EmbeddingFunction`: every line of
//! the fixture (see `fixtures/make_bm25_fixture.py`) is a text with the vector chromadb made of
//! it, labels included. Indices and labels must be identical, values equal as `f32`.

use ochre_embed::bm25::Bm25;
use serde_json::{json, Value};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/bm25-chromadb.jsonl"
);

#[test]
fn embeddings_match_chromadb() {
    let plain = Bm25::default();
    let labelled = Bm25::from_config(&json!({"include_tokens": true})).unwrap();
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let mut failures = Vec::new();
    let mut lines = 0;
    for (n, line) in fixture.lines().enumerate() {
        lines += 1;
        let case: Value = serde_json::from_str(line).unwrap();
        let text = case["text"].as_str().unwrap();
        let indices: Vec<u32> = serde_json::from_value(case["indices"].clone()).unwrap();
        let values: Vec<f64> = serde_json::from_value(case["values"].clone()).unwrap();
        let labels: Option<Vec<String>> = serde_json::from_value(case["labels"].clone()).unwrap();

        let got = plain.embed(text);
        let values_match = got.values.len() == values.len()
            && got.values.iter().zip(&values).all(|(&a, &b)| {
                let (a, b) = (f64::from(a), f64::from(b as f32));
                (a - b).abs() <= 1e-6 * b.abs().max(1.0)
            });
        if got.indices != indices || !values_match || got.labels.is_some() {
            failures.push(format!(
                "line {}: {text:?}\n  chromadb {indices:?} {values:?}\n  ochre    {:?} {:?}",
                n + 1,
                got.indices,
                got.values
            ));
            continue;
        }
        let with_labels = labelled.embed(text);
        if with_labels.indices != indices || with_labels.labels != labels {
            failures.push(format!(
                "line {}: {text:?}\n  chromadb labels {labels:?}\n  ochre    labels {:?}",
                n + 1,
                with_labels.labels
            ));
        }
    }
    assert!(lines >= 300, "the fixture has only {lines} lines");
    assert!(
        failures.is_empty(),
        "{} of {lines} texts differ from chromadb:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
