//! all-MiniLM-L6-v2 (and other BERT sentence encoders in sentence-transformers layout) on the CPU.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::EmbedError;

/// Texts per forward pass at most. Small batches are faster per text on the CPU (measured on
/// 1,000 pypi-minilm summaries, 2 cores, one batch per core: 16 rows 6.5 s, 32 rows 6.7 s; one
/// batch at a time: 64 rows 8.4 s, 256 rows 18 s): their activations stay in cache.
const MAX_ROWS: usize = 16;

/// A sentence encoder: a BERT model, its tokenizer, mean pooling over the attention mask and L2
/// normalisation, as sentence-transformers and Chroma's default embedding function compute it.
///
/// `embed` takes `&self` and the model is `Send + Sync`: one loaded model serves every thread.
pub struct MiniLm {
    model: BertModel,
    /// Truncates to `max_tokens` (special tokens included): what the model sees.
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation: what chunking counts.
    counter: Tokenizer,
    max_tokens: usize,
    dimension: usize,
    dir: PathBuf,
    /// Batches run at once by [`MiniLm::embed`].
    threads: usize,
    /// Calls of [`MiniLm::embed`] running at once, across all callers.
    gate: Gate,
}

/// A counting semaphore: at most `limit` holders at a time; the others wait.
struct Gate {
    free: std::sync::Mutex<usize>,
    wake: std::sync::Condvar,
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate {
            free: std::sync::Mutex::new(limit.max(1)),
            wake: std::sync::Condvar::new(),
        }
    }

    fn enter(&self) -> GateGuard<'_> {
        // A panic while holding the lock cannot leave the count wrong (it is only ever changed
        // by one statement), so a poisoned lock is used as it is.
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self
                .wake
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        GateGuard(self)
    }
}

struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        *self
            .0
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.0.wake.notify_one();
    }
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

/// `sentence_bert_config.json`: the sequence length the model was trained with.
#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// `1_Pooling/config.json`: only mean pooling is implemented.
#[derive(serde::Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Embeddings by input position, as a worker returns them.
type Embedded = Vec<(usize, Vec<f32>)>;

/// all-MiniLM-L6-v2's sequence length (and Chroma's ONNX model's truncation).
const DEFAULT_MAX_TOKENS: usize = 256;

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EmbedError::MissingFile { path }
        } else {
            EmbedError::Io { path, source: e }
        }
    })
}

fn malformed(dir: &Path, file: &str, reason: impl std::fmt::Display) -> EmbedError {
    EmbedError::Malformed {
        path: dir.join(file),
        reason: reason.to_string(),
    }
}

impl MiniLm {
    /// Loads a model directory in sentence-transformers layout: `config.json` (a BERT config),
    /// `tokenizer.json`, `model.safetensors`, and optionally `sentence_bert_config.json` (the
    /// sequence length; 256 when absent) and `1_Pooling/config.json` (must ask for mean pooling).
    ///
    /// # Errors
    /// [`EmbedError::MissingFile`] naming the first missing file; [`EmbedError::Malformed`] when a
    /// file does not parse or the weights do not fit the configuration; [`EmbedError::Io`].
    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
        let config: Config = serde_json::from_slice(&read(dir, "config.json")?)
            .map_err(|e| malformed(dir, "config.json", e))?;
        let tokenizer_bytes = read(dir, "tokenizer.json")?;
        let weights = read(dir, "model.safetensors")?;
        let max_tokens = match read(dir, "sentence_bert_config.json") {
            Ok(bytes) => serde_json::from_slice::<SentenceBertConfig>(&bytes)
                .map_err(|e| malformed(dir, "sentence_bert_config.json", e))?
                .max_seq_length
                .unwrap_or(DEFAULT_MAX_TOKENS),
            Err(EmbedError::MissingFile { .. }) => DEFAULT_MAX_TOKENS,
            Err(e) => return Err(e),
        };
        if max_tokens < 3 || max_tokens > config.max_position_embeddings {
            return Err(malformed(
                dir,
                "sentence_bert_config.json",
                format!(
                    "max_seq_length {max_tokens} is outside 3..={}",
                    config.max_position_embeddings
                ),
            ));
        }
        match read(dir, "1_Pooling/config.json") {
            Ok(bytes) => {
                let pooling: PoolingConfig = serde_json::from_slice(&bytes)
                    .map_err(|e| malformed(dir, "1_Pooling/config.json", e))?;
                if !pooling.pooling_mode_mean_tokens {
                    return Err(malformed(
                        dir,
                        "1_Pooling/config.json",
                        "only mean pooling (pooling_mode_mean_tokens) is supported",
                    ));
                }
            }
            Err(EmbedError::MissingFile { .. }) => {}
            Err(e) => return Err(e),
        }
        let counter = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| malformed(dir, "tokenizer.json", e))?;
        let mut counter = counter;
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| malformed(dir, "tokenizer.json", e))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| malformed(dir, "tokenizer.json", e))?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| malformed(dir, "model.safetensors", e))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| malformed(dir, "model.safetensors", e))?;
        Ok(MiniLm {
            model,
            tokenizer,
            counter,
            max_tokens,
            dimension: config.hidden_size,
            dir: dir.to_path_buf(),
            threads: 1,
            gate: Gate::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
        })
    }

    /// Runs up to `threads` batches at once, each on its own thread (default 1: one batch at a
    /// time, each matrix product parallelised by candle). Batch parallelism is faster for
    /// throughput — on 2 cores, 1,000 short texts took 6.5 s against 8.4 s — when candle's own
    /// threading is off: set `RAYON_NUM_THREADS=1` and `CANDLE_NUM_THREADS=1` in the environment
    /// before any thread starts, as the `ochre` embedding commands do.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> MiniLm {
        self.threads = threads.max(1);
        self
    }

    /// The embedding dimension (384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The tokens per text the model reads, special tokens included; longer texts are truncated.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unit-length embeddings of `texts`, in order. Texts longer than [`MiniLm::max_tokens`]
    /// are truncated (as sentence-transformers does); an empty text embeds its special tokens.
    ///
    /// At most as many calls as the machine has cores run at once; the others wait their turn,
    /// so concurrent callers (a server's requests) cannot multiply the working memory without
    /// bound.
    ///
    /// # Errors
    /// [`EmbedError::Inference`] if the tokenizer or the model fails (not expected for any text).
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _turn = self.gate.enter();
        // Only a text's start can reach the model: 32 bytes per token it reads is far more than
        // WordPiece text needs (about 4), and bounds what tokenizing costs (the tokenizer keeps
        // every token of its input) whatever the texts' length.
        let cut = self.max_tokens.saturating_mul(32);
        let inputs: Vec<&str> = texts.iter().map(|t| prefix(t.as_ref(), cut)).collect();
        // Sorted by length, so a batch pads to similar lengths; tokenized batch by batch.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].len());
        let batches: Vec<&[usize]> = order.chunks(MAX_ROWS).collect();
        // Batches are handed out in order to `threads` workers (this thread alone for one).
        let next = AtomicUsize::new(0);
        let work = || {
            let mut got = Vec::new();
            while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                let encodings = self
                    .tokenizer
                    .encode_batch(batch.iter().map(|&i| inputs[i]).collect::<Vec<_>>(), true)
                    .map_err(|e| EmbedError::Inference(e.to_string()))?;
                got.extend(batch.iter().copied().zip(self.embed_batch(&encodings)?));
            }
            Ok::<_, EmbedError>(got)
        };
        let workers = self.threads.min(batches.len()).max(1);
        let results: Vec<Result<Embedded, EmbedError>> = if workers == 1 {
            vec![work()]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(EmbedError::Inference("an embedding thread panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let mut out = vec![Vec::new(); inputs.len()];
        for r in results {
            for (i, v) in r? {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, encodings: &[tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inference = |e: candle_core::Error| EmbedError::Inference(e.to_string());
        let len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let rows = encodings.len();
        let mut ids = vec![0u32; rows * len];
        let mut mask = vec![0u32; rows * len];
        for (r, e) in encodings.iter().enumerate() {
            for (c, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).enumerate() {
                ids[r * len + c] = id;
                mask[r * len + c] = m;
            }
        }
        let device = &self.model.device;
        let ids = Tensor::from_vec(ids, (rows, len), device).map_err(inference)?;
        let mask = Tensor::from_vec(mask, (rows, len), device).map_err(inference)?;
        let types = ids.zeros_like().map_err(inference)?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(inference)?;
        // Mean over the real tokens: padding positions are masked out of sum and count.
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(inference)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .map_err(inference)?;
        let counts = mask
            .sum(1)
            .and_then(|c| c.clamp(1e-9, f32::MAX))
            .map_err(inference)?;
        let mean = summed.broadcast_div(&counts).map_err(inference)?;
        let norms = mean
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .and_then(|n| n.clamp(1e-12, f32::MAX))
            .map_err(inference)?;
        mean.broadcast_div(&norms)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(inference)
    }

    /// Splits `text` into chunks of at most `size` tokens (as this model's tokenizer counts them,
    /// without special tokens) where consecutive chunks share `overlap` tokens. Returns byte
    /// ranges of `text`, from the first token of a chunk to the end of its last, in order; a
    /// text with no tokens has no chunks.
    ///
    /// # Errors
    /// [`EmbedError::Chunking`] when `size` is 0, `overlap >= size`, or `size` exceeds what the
    /// model reads (`max_tokens - 2`); [`EmbedError::Inference`] if the tokenizer fails.
    pub fn chunks(
        &self,
        text: &str,
        size: usize,
        overlap: usize,
    ) -> Result<Vec<Range<usize>>, EmbedError> {
        let limit = self.max_tokens.saturating_sub(2);
        if size > limit {
            return Err(EmbedError::Chunking(format!(
                "a chunk of {size} tokens is longer than the model reads ({limit} tokens)"
            )));
        }
        let encoding = self
            .counter
            .encode(text, false)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let offsets: Vec<(usize, usize)> = encoding.get_offsets().to_vec();
        chunk_spans(text, &offsets, size, overlap)
    }
}

/// The chunk byte ranges of `text` given its tokens' byte `offsets`: windows of `size` tokens
/// advancing by `size - overlap`, the last one ending at the last token. Offsets that are not
/// on character boundaries (a tokenizer that splits inside a character) are widened to the
/// enclosing characters.
///
/// # Errors
/// [`EmbedError::Chunking`] when `size` is 0 or `overlap >= size`.
pub fn chunk_spans(
    text: &str,
    offsets: &[(usize, usize)],
    size: usize,
    overlap: usize,
) -> Result<Vec<Range<usize>>, EmbedError> {
    if size == 0 {
        return Err(EmbedError::Chunking(
            "the chunk size must be at least 1 token".into(),
        ));
    }
    if overlap >= size {
        return Err(EmbedError::Chunking(format!(
            "the overlap ({overlap} tokens) must be smaller than the chunk size ({size} tokens)"
        )));
    }
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let ceil = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let step = size - overlap;
    let mut spans = Vec::new();
    let mut start = 0;
    while start < offsets.len() {
        let end = (start + size).min(offsets.len());
        let from = floor(offsets[start].0);
        let to = ceil(offsets[end - 1].1).max(from);
        spans.push(from..to);
        if end == offsets.len() {
            break;
        }
        start += step;
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    out.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, text.len()));
        }
        out
    }

    #[test]
    fn chunks_cover_the_text_with_the_overlap_asked_for() {
        let text = "a b c d e f g h i j";
        let spans = chunk_spans(text, &words(text), 4, 1).unwrap();
        let parts: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(parts, ["a b c d", "d e f g", "g h i j"]);
        let spans = chunk_spans(text, &words(text), 4, 0).unwrap();
        let parts: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(parts, ["a b c d", "e f g h", "i j"]);
    }

    #[test]
    fn a_short_or_empty_text_is_one_chunk_or_none() {
        assert_eq!(
            chunk_spans("", &[], 4, 1).unwrap(),
            Vec::<Range<usize>>::new()
        );
        let text = "  hello world ";
        assert_eq!(chunk_spans(text, &words(text), 4, 1).unwrap(), vec![2..13]);
        // Exactly one window: no second chunk made of the overlap alone.
        let text = "a b c d";
        assert_eq!(chunk_spans(text, &words(text), 4, 2).unwrap(), vec![0..7]);
    }

    #[test]
    fn bad_sizes_are_refused_and_offsets_inside_characters_are_widened() {
        assert!(chunk_spans("a", &[(0, 1)], 0, 0).is_err());
        assert!(chunk_spans("a", &[(0, 1)], 2, 2).is_err());
        let text = "héllo";
        // 'é' spans bytes 1..3; offsets that cut it are moved to its boundaries.
        assert_eq!(chunk_spans(text, &[(0, 2)], 4, 0).unwrap(), vec![0..3]);
        assert_eq!(chunk_spans(text, &[(2, 6)], 4, 0).unwrap(), vec![1..6]);
    }
}
