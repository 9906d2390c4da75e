//! Chroma's BM25 sparse embedding (`chroma_bm25`), reproduced exactly.
//!
//! [`Bm25`] turns a text into the same [`SparseEmbedding`] that chromadb 1.5.9's Python
//! `ChromaBm25EmbeddingFunction` computes, so vectors made by either side can be mixed in one
//! collection. The steps, each one Python's own:
//!
//! 1. every run of characters that is neither `\w` nor `\s` (Python's `re` meaning) becomes one
//!    space; `\w` is `str.isalnum()` or `_` by Python 3.11's Unicode 14.0 tables (the table
//!    `PY_WORD_RANGES`), `\s` is `str.isspace()`, which unlike [`char::is_whitespace`] includes the
//!    separators U+001C..U+001F;
//! 2. the text is lower-cased (`str.lower()`: full case mapping and the final-sigma rule) and split
//!    on runs of that whitespace;
//! 3. stopwords (by default [`DEFAULT_STOPWORDS`]) and tokens longer than `token_max_length` code
//!    points are dropped;
//! 4. each token is stemmed by the Snowball English stemmer, version 3.1.1 (the one the Python
//!    `snowballstemmer` 3.1.1 package ships); the stem is stripped of whitespace and dropped if
//!    empty;
//! 5. each stem is hashed with MurmurHash3 (x86, 32-bit, seed 0) of its UTF-8 bytes, read as an
//!    `i32` and made absolute (so `i32::MIN` gives 2^31); stems with equal hashes count as one
//!    term;
//! 6. a term seen `tf` times in a document of `n` stems scores
//!    `tf * (k + 1) / (tf + k * (1 - b + b * n / avg_doc_length))`, computed in `f64` and stored as
//!    `f32`, and the terms are sorted by index.
//!
//! The stemmer is a port of Snowball 3.1.1's `english.sbl` (as the Python package generates it),
//! not the `rust-stemmers` crate: that crate implements the Snowball 2 English stemmer, which stems
//! `internal`, `emergency`, `organization`, `university`, `paste`, `added`, `geologist`, `vying`
//! and their families differently (Snowball 3 added prefixes to the R1 exceptions, `-ogist`, the
//! `-ying` rule and the `aeo` undoubling exception).
//!
//! Known difference: lower-casing uses Rust's [`str::to_lowercase`], whose Unicode tables are the
//! toolchain's rather than Python 3.11's. They agree on every character that can reach that step
//! except in one context: Python counts U+0295 (`ʕ`) as cased, so a capital sigma next to it
//! lower-cases to `ς`/`σ` the other way round.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

/// The embedding function's name in Chroma collection configurations.
pub const NAME: &str = "chroma_bm25";

/// Default BM25 term-frequency saturation, `k`.
pub const DEFAULT_K: f64 = 1.2;

/// Default BM25 length normalisation, `b`.
pub const DEFAULT_B: f64 = 0.75;

/// Default average document length, in stems.
pub const DEFAULT_AVG_DOC_LENGTH: f64 = 256.0;

/// Default length (in code points, after lower-casing) above which a token is dropped.
pub const DEFAULT_TOKEN_MAX_LENGTH: usize = 40;

/// Chroma's default stopwords (NLTK's English list), compared after lower-casing.
#[rustfmt::skip]
pub const DEFAULT_STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "ain", "all", "am", "an", "and", "any",
    "are", "aren", "aren't", "as", "at", "be", "because", "been", "before", "being", "below",
    "between", "both", "but", "by", "can", "couldn", "couldn't", "d", "did", "didn", "didn't", "do",
    "does", "doesn", "doesn't", "doing", "don", "don't", "down", "during", "each", "few", "for",
    "from", "further", "had", "hadn", "hadn't", "has", "hasn", "hasn't", "have", "haven", "haven't",
    "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if",
    "in", "into", "is", "isn", "isn't", "it", "it's", "its", "itself", "just", "ll", "m", "ma",
    "me", "mightn", "mightn't", "more", "most", "mustn", "mustn't", "my", "myself", "needn",
    "needn't", "no", "nor", "not", "now", "o", "of", "off", "on", "once", "only", "or", "other",
    "our", "ours", "ourselves", "out", "over", "own", "re", "s", "same", "shan", "shan't", "she",
    "she's", "should", "should've", "shouldn", "shouldn't", "so", "some", "such", "t", "than",
    "that", "that'll", "the", "their", "theirs", "them", "themselves", "then", "there", "these",
    "they", "this", "those", "through", "to", "too", "under", "until", "up", "ve", "very", "was",
    "wasn", "wasn't", "we", "were", "weren", "weren't", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "won", "won't", "wouldn", "wouldn't", "y", "you", "you'd",
    "you'll", "you're", "you've", "your", "yours", "yourself", "yourselves",
];

/// A sparse vector: strictly ascending `indices` with one value each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseEmbedding {
    /// Term hashes, strictly ascending.
    pub indices: Vec<u32>,
    /// BM25 score of each index.
    pub values: Vec<f32>,
    /// The stem behind each index (the first one seen, if several stems share a hash) when the
    /// embedder was configured with `include_tokens`; `None` otherwise, and for an empty vector.
    pub labels: Option<Vec<String>>,
}

/// A `chroma_bm25` configuration that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Bm25ConfigError {
    /// The configuration is not a JSON object.
    #[error("chroma_bm25 config must be an object, got {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A key holds a value of the wrong JSON type.
    #[error("chroma_bm25 config: {key} must be {expected}, got {found}")]
    WrongType {
        /// The configuration key.
        key: &'static str,
        /// What the key must hold.
        expected: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A key holds a value of the right type that cannot be used.
    #[error("chroma_bm25 config: {key} {reason}")]
    InvalidValue {
        /// The configuration key.
        key: &'static str,
        /// Why the value cannot be used.
        reason: &'static str,
    },
}

/// Chroma's BM25 sparse embedder (`chroma_bm25`).
///
/// It holds its configuration and the stopword set; it is immutable, `Send` and `Sync`, so one
/// value can serve every thread.
#[derive(Debug, Clone)]
pub struct Bm25 {
    k: f64,
    b: f64,
    avg_doc_length: f64,
    token_max_length: usize,
    include_tokens: bool,
    /// The stopwords as configured, or `None` for [`DEFAULT_STOPWORDS`] (for [`Bm25::config`]).
    stopwords: Option<Vec<String>>,
    /// The stopwords, lower-cased.
    stopword_set: HashSet<String>,
    stemmer: EnglishStemmer,
}

impl Default for Bm25 {
    /// Chroma's defaults: `k` 1.2, `b` 0.75, `avg_doc_length` 256, `token_max_length` 40, the
    /// default stopwords, no labels.
    fn default() -> Self {
        Bm25 {
            k: DEFAULT_K,
            b: DEFAULT_B,
            avg_doc_length: DEFAULT_AVG_DOC_LENGTH,
            token_max_length: DEFAULT_TOKEN_MAX_LENGTH,
            include_tokens: false,
            stopwords: None,
            stopword_set: stopword_set(DEFAULT_STOPWORDS.iter().copied()),
            stemmer: EnglishStemmer,
        }
    }
}

impl Bm25 {
    /// Builds an embedder from a configuration as chromadb's `get_config()` writes it: an object
    /// with the optional keys `k`, `b`, `avg_doc_length` (numbers), `token_max_length` (a
    /// non-negative integer), `stopwords` (an array of strings, or `null` for the defaults) and
    /// `include_tokens` (a boolean). A missing key takes its default; other keys are ignored.
    ///
    /// # Errors
    /// [`Bm25ConfigError`] for a non-object, a key of the wrong type, a negative or fractional
    /// `token_max_length`, or an `avg_doc_length` of zero (chromadb would divide by it).
    pub fn from_config(config: &Value) -> Result<Bm25, Bm25ConfigError> {
        let Value::Object(map) = config else {
            return Err(Bm25ConfigError::NotAnObject {
                found: json_type(config),
            });
        };
        let mut bm25 = Bm25::default();
        if let Some(k) = number(map, "k")? {
            bm25.k = k;
        }
        if let Some(b) = number(map, "b")? {
            bm25.b = b;
        }
        if let Some(avg) = number(map, "avg_doc_length")? {
            if avg == 0.0 {
                return Err(Bm25ConfigError::InvalidValue {
                    key: "avg_doc_length",
                    reason: "must not be zero",
                });
            }
            bm25.avg_doc_length = avg;
        }
        if let Some(max) = token_max_length(map)? {
            bm25.token_max_length = max;
        }
        match map.get("include_tokens") {
            None => {}
            Some(Value::Bool(include)) => bm25.include_tokens = *include,
            Some(other) => {
                return Err(Bm25ConfigError::WrongType {
                    key: "include_tokens",
                    expected: "a boolean",
                    found: json_type(other),
                })
            }
        }
        match map.get("stopwords") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                let words = items
                    .iter()
                    .map(|item| match item {
                        Value::String(word) => Ok(word.clone()),
                        other => Err(Bm25ConfigError::WrongType {
                            key: "stopwords",
                            expected: "an array of strings",
                            found: json_type(other),
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                bm25.stopword_set = stopword_set(words.iter().map(String::as_str));
                bm25.stopwords = Some(words);
            }
            Some(other) => {
                return Err(Bm25ConfigError::WrongType {
                    key: "stopwords",
                    expected: "an array of strings",
                    found: json_type(other),
                })
            }
        }
        Ok(bm25)
    }

    /// The configuration as chromadb's `get_config()` returns it: `k`, `b`, `avg_doc_length`,
    /// `token_max_length`, `include_tokens`, and `stopwords` only when they were configured.
    /// [`Bm25::from_config`] reads it back to an equal embedder.
    pub fn config(&self) -> Value {
        let mut map = Map::new();
        map.insert("k".into(), float(self.k));
        map.insert("b".into(), float(self.b));
        map.insert("avg_doc_length".into(), float(self.avg_doc_length));
        map.insert(
            "token_max_length".into(),
            Value::from(self.token_max_length),
        );
        map.insert("include_tokens".into(), Value::Bool(self.include_tokens));
        if let Some(words) = &self.stopwords {
            map.insert("stopwords".into(), Value::from(words.clone()));
        }
        Value::Object(map)
    }

    /// The stems of `text`, in order and with repeats: the terms [`Bm25::embed`] counts.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let lowered = remove_non_word(text).to_lowercase();
        lowered
            .split(is_py_space)
            .filter(|token| !token.is_empty())
            .filter(|token| !self.stopword_set.contains(*token))
            .filter(|token| token.chars().count() <= self.token_max_length)
            .filter_map(|token| {
                let stem = self.stemmer.stem(token);
                let stripped = stem.trim_matches(is_py_space);
                if stripped.is_empty() {
                    None
                } else if stripped.len() == stem.len() {
                    Some(stem)
                } else {
                    Some(stripped.to_owned())
                }
            })
            .collect()
    }

    /// The BM25 sparse embedding of `text`, as chromadb computes it for a document or a query
    /// (chroma_bm25 embeds both alike). An empty vector (`labels` `None`) when no stem remains.
    pub fn embed(&self, text: &str) -> SparseEmbedding {
        let tokens = self.tokenize(text);
        if tokens.is_empty() {
            return SparseEmbedding::default();
        }
        let doc_len = tokens.len() as f64;
        // Hash -> (count, first stem with that hash); BTreeMap iterates in ascending index order.
        let mut counts: BTreeMap<u32, (u32, String)> = BTreeMap::new();
        for token in tokens {
            let hash = token_hash(&token);
            counts.entry(hash).or_insert((0, token)).0 += 1;
        }
        let norm = self.k * (1.0 - self.b + (self.b * doc_len) / self.avg_doc_length);
        let mut embedding = SparseEmbedding {
            indices: Vec::with_capacity(counts.len()),
            values: Vec::with_capacity(counts.len()),
            labels: self
                .include_tokens
                .then(|| Vec::with_capacity(counts.len())),
        };
        for (hash, (count, label)) in counts {
            let tf = f64::from(count);
            let score = tf * (self.k + 1.0) / (tf + norm);
            embedding.indices.push(hash);
            embedding.values.push(score as f32);
            if let Some(labels) = &mut embedding.labels {
                labels.push(label);
            }
        }
        embedding
    }
}

/// The lower-cased set of `words`, as chromadb builds it.
fn stopword_set<'a>(words: impl Iterator<Item = &'a str>) -> HashSet<String> {
    words.map(str::to_lowercase).collect()
}

/// A JSON number as a float for the configuration.
fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// The type of a JSON value, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The number under `key`, if present.
fn number(map: &Map<String, Value>, key: &'static str) -> Result<Option<f64>, Bm25ConfigError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(Bm25ConfigError::WrongType {
            key,
            expected: "a number",
            found: "a number out of range",
        }),
        Some(other) => Err(Bm25ConfigError::WrongType {
            key,
            expected: "a number",
            found: json_type(other),
        }),
    }
}

/// `token_max_length`, if present: a non-negative integer (an integral float is accepted, as
/// Python's `int()` would).
fn token_max_length(map: &Map<String, Value>) -> Result<Option<usize>, Bm25ConfigError> {
    const KEY: &str = "token_max_length";
    let n = match map.get(KEY) {
        None => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(other) => {
            return Err(Bm25ConfigError::WrongType {
                key: KEY,
                expected: "an integer",
                found: json_type(other),
            })
        }
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(usize::try_from(u).unwrap_or(usize::MAX)));
    }
    let invalid = |reason| Err(Bm25ConfigError::InvalidValue { key: KEY, reason });
    match n.as_f64() {
        Some(x) if x < 0.0 => invalid("must not be negative"),
        Some(x) if x.fract() == 0.0 => Ok(Some(x as usize)),
        _ => invalid("must be an integer"),
    }
}

/// Python's `re.sub(r"[^\w\s]+", " ", text)`.
fn remove_non_word(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if is_py_word(c) || is_py_space(c) {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push(' ');
            in_run = true;
        }
    }
    out
}

/// Python's `str.isspace()` (and `re`'s `\s`, and what `str.split()` and `str.strip()` cut at).
fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python 3.11's `re` `\w`: `str.isalnum()` or `_`.
fn is_py_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let cp = u32::from(c);
    PY_WORD_RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// chromadb's `Murmur3AbsHasher`: `abs(mmh3.hash(token, seed=0))`.
fn token_hash(token: &str) -> u32 {
    (murmur3_x86_32(token.as_bytes(), 0) as i32).unsigned_abs()
}

/// MurmurHash3, x86 32-bit variant.
fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        h ^= mix(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &byte| (k << 8) | u32::from(byte));
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The Snowball English stemmer, version 3.1.1: a port of the code Snowball 3.1.1 generates from
/// `english.sbl` (the Python `snowballstemmer` 3.1.1 package's `EnglishStemmer`), step for step.
/// It works on code points, as the Python code does. Its tables are static, so the value holds
/// nothing and serves any number of threads.
#[derive(Debug, Clone, Copy, Default)]
struct EnglishStemmer;

impl EnglishStemmer {
    /// The stem of a lower-case word.
    fn stem(self, word: &str) -> String {
        let mut env = SnowballEnv::new(word);
        env.stem();
        env.current.iter().collect()
    }
}

/// An `among` table: each string (ASCII) with its result. Snowball picks the longest that matches.
type Among = &'static [(&'static str, i32)];

#[rustfmt::skip]
const A_0: Among = &[
    ("arsen", -1), ("commun", -1), ("emerg", -1), ("gener", -1), ("inter", -1), ("later", -1),
    ("organ", -1), ("past", -1), ("univers", -1),
];
const A_1: Among = &[("'", 1), ("'s'", 1), ("'s", 1)];
#[rustfmt::skip]
const A_2: Among = &[
    ("ied", 2), ("s", 3), ("ies", 2), ("sses", 1), ("ss", -1), ("us", -1),
];
const A_3: Among = &[("succ", 1), ("proc", 1), ("exc", 1)];
#[rustfmt::skip]
const A_4: Among = &[
    ("even", 2), ("cann", 2), ("inn", 2), ("earr", 2), ("herr", 2), ("out", 2), ("y", 1),
];
#[rustfmt::skip]
const A_5: Among = &[
    ("", -1), ("ed", 2), ("eed", 1), ("ing", 3), ("edly", 2), ("eedly", 1), ("ingly", 2),
];
#[rustfmt::skip]
const A_6: Among = &[
    ("", 3), ("bb", 2), ("dd", 2), ("ff", 2), ("gg", 2), ("bl", 1), ("mm", 2), ("nn", 2), ("pp", 2),
    ("rr", 2), ("at", 1), ("tt", 2), ("iz", 1),
];
#[rustfmt::skip]
const A_7: Among = &[
    ("anci", 3), ("enci", 2), ("ogi", 14), ("li", 16), ("bli", 12), ("abli", 4), ("alli", 8),
    ("fulli", 9), ("lessli", 15), ("ousli", 10), ("entli", 5), ("aliti", 8), ("biliti", 12),
    ("iviti", 11), ("tional", 1), ("ational", 7), ("alism", 8), ("ation", 7), ("ization", 6),
    ("izer", 6), ("ator", 7), ("iveness", 11), ("fulness", 9), ("ousness", 10), ("ogist", 13),
];
#[rustfmt::skip]
const A_8: Among = &[
    ("icate", 4), ("ative", 6), ("alize", 3), ("iciti", 4), ("ical", 4), ("tional", 1),
    ("ational", 2), ("ful", 5), ("ness", 5),
];
#[rustfmt::skip]
const A_9: Among = &[
    ("ic", 1), ("ance", 1), ("ence", 1), ("able", 1), ("ible", 1), ("ate", 1), ("ive", 1),
    ("ize", 1), ("iti", 1), ("al", 1), ("ism", 1), ("ion", 2), ("er", 1), ("ous", 1), ("ant", 1),
    ("ent", 1), ("ment", 1), ("ement", 1),
];
const A_10: Among = &[("e", 1), ("l", 2)];
#[rustfmt::skip]
const A_11: Among = &[
    ("andes", -1), ("atlas", -1), ("bias", -1), ("cosmos", -1), ("early", 6), ("gently", 4),
    ("howe", -1), ("idly", 3), ("news", -1), ("only", 7), ("singly", 8), ("skies", 2), ("skis", 1),
    ("sky", -1), ("ugly", 5),
];
const AS_11: [&str; 8] = [
    "ski", "sky", "idl", "gentl", "ugli", "earli", "onli", "singl",
];

fn g_v(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}
fn g_v_wxy(c: char) -> bool {
    matches!(c, 'Y' | 'a' | 'e' | 'i' | 'o' | 'u' | 'w' | 'x' | 'y')
}
fn g_valid_li(c: char) -> bool {
    matches!(c, 'c' | 'd' | 'e' | 'g' | 'h' | 'k' | 'm' | 'n' | 'r' | 't')
}
fn g_aeo(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'o')
}

/// Snowball's machine state (`BaseStemmer`) with the English stemmer's variables. Positions are
/// code-point offsets; `cursor`, `bra` and `ket` stay within `limit_backward..=limit`, and `limit`
/// is the length of `current`.
struct SnowballEnv {
    current: Vec<char>,
    cursor: usize,
    limit: usize,
    limit_backward: usize,
    bra: usize,
    ket: usize,
    y_found: bool,
    p1: usize,
    p2: usize,
}

impl SnowballEnv {
    fn new(word: &str) -> Self {
        let current: Vec<char> = word.chars().collect();
        let limit = current.len();
        SnowballEnv {
            current,
            cursor: 0,
            limit,
            limit_backward: 0,
            bra: 0,
            ket: limit,
            y_found: false,
            p1: 0,
            p2: 0,
        }
    }

    /// The character at `i` (NUL, in no grouping, past the end; never reached by the rules).
    fn at(&self, i: usize) -> char {
        self.current.get(i).copied().unwrap_or('\0')
    }

    /// The distance from the cursor to the limit, which a backward rule saves and restores.
    fn tail_len(&self) -> usize {
        self.limit - self.cursor
    }

    fn set_tail_len(&mut self, v: usize) {
        self.cursor = self.limit.saturating_sub(v);
    }

    fn in_grouping(&mut self, g: fn(char) -> bool) -> bool {
        if self.cursor >= self.limit || !g(self.at(self.cursor)) {
            return false;
        }
        self.cursor += 1;
        true
    }

    fn go_in_grouping(&mut self, g: fn(char) -> bool) -> bool {
        while self.cursor < self.limit {
            if !g(self.at(self.cursor)) {
                return true;
            }
            self.cursor += 1;
        }
        false
    }

    fn go_out_grouping(&mut self, g: fn(char) -> bool) -> bool {
        while self.cursor < self.limit {
            if g(self.at(self.cursor)) {
                return true;
            }
            self.cursor += 1;
        }
        false
    }

    fn in_grouping_b(&mut self, g: fn(char) -> bool) -> bool {
        if self.cursor <= self.limit_backward || !g(self.at(self.cursor - 1)) {
            return false;
        }
        self.cursor -= 1;
        true
    }

    fn out_grouping_b(&mut self, g: fn(char) -> bool) -> bool {
        if self.cursor <= self.limit_backward || g(self.at(self.cursor - 1)) {
            return false;
        }
        self.cursor -= 1;
        true
    }

    fn go_out_grouping_b(&mut self, g: fn(char) -> bool) -> bool {
        while self.cursor > self.limit_backward {
            if g(self.at(self.cursor - 1)) {
                return true;
            }
            self.cursor -= 1;
        }
        false
    }

    /// Steps back over `c` if it precedes the cursor.
    fn eq_c_b(&mut self, c: char) -> bool {
        if self.cursor <= self.limit_backward || self.at(self.cursor - 1) != c {
            return false;
        }
        self.cursor -= 1;
        true
    }

    /// Steps back over `s` (ASCII) if it precedes the cursor.
    fn eq_s_b(&mut self, s: &str) -> bool {
        let n = s.len();
        if self.cursor - self.limit_backward < n
            || !self.current[self.cursor - n..self.cursor]
                .iter()
                .copied()
                .eq(s.chars())
        {
            return false;
        }
        self.cursor -= n;
        true
    }

    /// The result of the longest string of `among` starting at the cursor (which moves past
    /// it), or 0 if none does.
    fn find_among(&mut self, among: Among) -> i32 {
        let rest = &self.current[self.cursor..self.limit];
        let best = among
            .iter()
            .filter(|(s, _)| s.len() <= rest.len() && rest[..s.len()].iter().copied().eq(s.chars()))
            .max_by_key(|(s, _)| s.len());
        match best {
            Some(&(s, result)) => {
                self.cursor += s.len();
                result
            }
            None => 0,
        }
    }

    /// The result of the longest string of `among` ending at the cursor (which moves before
    /// it), or 0 if none does.
    fn find_among_b(&mut self, among: Among) -> i32 {
        let rest = &self.current[self.limit_backward..self.cursor];
        let best = among
            .iter()
            .filter(|(s, _)| {
                s.len() <= rest.len() && rest[rest.len() - s.len()..].iter().copied().eq(s.chars())
            })
            .max_by_key(|(s, _)| s.len());
        match best {
            Some(&(s, result)) => {
                self.cursor -= s.len();
                result
            }
            None => 0,
        }
    }

    /// Replaces `bra..ket` by `s` (ASCII), moving the cursor and limit as Snowball does.
    fn slice_from(&mut self, s: &str) {
        let (bra, ket) = (self.bra, self.ket);
        if bra > ket || ket > self.limit {
            return; // Python asserts this; the English rules never get here.
        }
        self.current.splice(bra..ket, s.chars());
        let new_ket = bra + s.len();
        self.limit = self.limit + s.len() - (ket - bra);
        if self.cursor >= ket {
            self.cursor = self.cursor + s.len() - (ket - bra);
        } else if self.cursor > bra {
            self.cursor = bra;
        }
        self.ket = new_ket;
    }

    fn slice_del(&mut self) {
        self.slice_from("");
    }

    fn r1(&self) -> bool {
        self.p1 <= self.cursor
    }

    fn r2(&self) -> bool {
        self.p2 <= self.cursor
    }

    fn stem(&mut self) {
        if self.exception1() {
            return;
        }
        self.cursor = 0;
        if self.limit < 3 {
            return;
        }
        self.prelude();
        self.mark_regions();
        self.limit_backward = self.cursor;
        self.cursor = self.limit;
        type Step = fn(&mut SnowballEnv);
        let steps: [Step; 7] = [
            Self::step_1a,
            Self::step_1b,
            Self::step_1c,
            Self::step_2,
            Self::step_3,
            Self::step_4,
            Self::step_5,
        ];
        for step in steps {
            let v = self.tail_len();
            step(self);
            self.set_tail_len(v);
        }
        self.cursor = self.limit_backward;
        self.postlude();
    }

    fn exception1(&mut self) -> bool {
        self.bra = self.cursor;
        let among_var = self.find_among(A_11);
        if among_var == 0 {
            return false;
        }
        self.ket = self.cursor;
        if self.cursor < self.limit {
            return false;
        }
        if let Some(s) = usize::try_from(among_var - 1)
            .ok()
            .and_then(|i| AS_11.get(i))
        {
            self.slice_from(s);
        }
        true
    }

    fn prelude(&mut self) {
        self.y_found = false;
        let v1 = self.cursor;
        self.bra = self.cursor;
        if self.cursor < self.limit && self.at(self.cursor) == '\'' {
            self.cursor += 1;
            self.ket = self.cursor;
            self.slice_del();
        }
        self.cursor = v1;
        self.bra = self.cursor;
        if self.cursor < self.limit && self.at(self.cursor) == 'y' {
            self.cursor += 1;
            self.ket = self.cursor;
            self.slice_from("Y");
            self.y_found = true;
        }
        self.cursor = v1;
        // repeat goto (v ['y']) <- 'Y'
        loop {
            let v4 = self.cursor;
            let found = loop {
                let v5 = self.cursor;
                if self.in_grouping(g_v) {
                    self.bra = self.cursor;
                    if self.cursor < self.limit && self.at(self.cursor) == 'y' {
                        self.cursor += 1;
                        self.ket = self.cursor;
                        self.cursor = v5;
                        break true;
                    }
                }
                self.cursor = v5;
                if self.cursor >= self.limit {
                    break false;
                }
                self.cursor += 1;
            };
            if !found {
                self.cursor = v4;
                break;
            }
            self.slice_from("Y");
            self.y_found = true;
        }
        self.cursor = v1;
    }

    fn mark_regions(&mut self) {
        self.p1 = self.limit;
        self.p2 = self.limit;
        let v1 = self.cursor;
        'lab0: {
            let v2 = self.cursor;
            if self.find_among(A_0) == 0 {
                self.cursor = v2;
                if !self.go_out_grouping(g_v) {
                    break 'lab0;
                }
                self.cursor += 1;
                if !self.go_in_grouping(g_v) {
                    break 'lab0;
                }
                self.cursor += 1;
            }
            self.p1 = self.cursor;
            if !self.go_out_grouping(g_v) {
                break 'lab0;
            }
            self.cursor += 1;
            if !self.go_in_grouping(g_v) {
                break 'lab0;
            }
            self.cursor += 1;
            self.p2 = self.cursor;
        }
        self.cursor = v1;
    }

    fn shortv(&mut self) -> bool {
        let v1 = self.tail_len();
        if self.out_grouping_b(g_v_wxy) && self.in_grouping_b(g_v) && self.out_grouping_b(g_v) {
            return true;
        }
        self.set_tail_len(v1);
        if self.out_grouping_b(g_v) && self.in_grouping_b(g_v) && self.cursor <= self.limit_backward
        {
            return true;
        }
        self.set_tail_len(v1);
        self.eq_s_b("past")
    }

    fn step_1a(&mut self) {
        let v1 = self.tail_len();
        self.ket = self.cursor;
        if self.find_among_b(A_1) == 0 {
            self.set_tail_len(v1);
        } else {
            self.bra = self.cursor;
            self.slice_del();
        }
        self.ket = self.cursor;
        let among_var = self.find_among_b(A_2);
        if among_var == 0 {
            return;
        }
        self.bra = self.cursor;
        match among_var {
            1 => self.slice_from("ss"),
            2 => {
                if self.cursor >= self.limit_backward + 2 {
                    self.cursor -= 2;
                    self.slice_from("i");
                } else {
                    self.slice_from("ie");
                }
            }
            3 => {
                if self.cursor <= self.limit_backward {
                    return;
                }
                self.cursor -= 1;
                if !self.go_out_grouping_b(g_v) {
                    return;
                }
                self.cursor -= 1;
                self.slice_del();
            }
            _ => {}
        }
    }

    fn step_1b(&mut self) {
        self.ket = self.cursor;
        let among_var = self.find_among_b(A_5);
        self.bra = self.cursor;
        let v1 = self.tail_len();
        // `true` when the suffix is handled here; `false` falls through to deleting it.
        let handled = match among_var {
            1 => {
                let v2 = self.tail_len();
                if self.r1() {
                    let v3 = self.tail_len();
                    let keep = self.find_among_b(A_3) != 0 && self.cursor <= self.limit_backward;
                    if !keep {
                        self.set_tail_len(v3);
                        self.slice_from("ee");
                    }
                }
                self.set_tail_len(v2);
                true
            }
            2 => false,
            3 => match self.find_among_b(A_4) {
                0 => false,
                1 => {
                    let v4 = self.tail_len();
                    if self.out_grouping_b(g_v) && self.cursor <= self.limit_backward {
                        self.set_tail_len(v4);
                        self.bra = self.cursor;
                        self.slice_from("ie");
                        true
                    } else {
                        false
                    }
                }
                _ => self.cursor <= self.limit_backward,
            },
            _ => true,
        };
        if handled {
            return;
        }
        self.set_tail_len(v1);
        let v5 = self.tail_len();
        if !self.go_out_grouping_b(g_v) {
            return;
        }
        self.set_tail_len(v5);
        self.slice_del();
        self.ket = self.cursor;
        self.bra = self.cursor;
        let v6 = self.tail_len();
        match self.find_among_b(A_6) {
            1 => {
                self.slice_from("e");
                return;
            }
            2 => {
                let v7 = self.tail_len();
                if self.in_grouping_b(g_aeo) && self.cursor <= self.limit_backward {
                    return;
                }
                self.set_tail_len(v7);
            }
            _ => {
                if self.cursor != self.p1 {
                    return;
                }
                let v8 = self.tail_len();
                if !self.shortv() {
                    return;
                }
                self.set_tail_len(v8);
                self.slice_from("e");
                return;
            }
        }
        self.set_tail_len(v6);
        self.ket = self.cursor;
        if self.cursor <= self.limit_backward {
            return;
        }
        self.cursor -= 1;
        self.bra = self.cursor;
        self.slice_del();
    }

    fn step_1c(&mut self) {
        self.ket = self.cursor;
        if !self.eq_c_b('y') && !self.eq_c_b('Y') {
            return;
        }
        self.bra = self.cursor;
        if !self.out_grouping_b(g_v) {
            return;
        }
        if self.cursor <= self.limit_backward {
            return;
        }
        self.slice_from("i");
    }

    fn step_2(&mut self) {
        self.ket = self.cursor;
        let among_var = self.find_among_b(A_7);
        if among_var == 0 {
            return;
        }
        self.bra = self.cursor;
        if !self.r1() {
            return;
        }
        let replacement = match among_var {
            1 => "tion",
            2 => "ence",
            3 => "ance",
            4 => "able",
            5 => "ent",
            6 => "ize",
            7 => "ate",
            8 => "al",
            9 => "ful",
            10 => "ous",
            11 => "ive",
            12 => "ble",
            13 => "og",
            14 => {
                if !self.eq_c_b('l') {
                    return;
                }
                "og"
            }
            15 => "less",
            _ => {
                if !self.in_grouping_b(g_valid_li) {
                    return;
                }
                ""
            }
        };
        self.slice_from(replacement);
    }

    fn step_3(&mut self) {
        self.ket = self.cursor;
        let among_var = self.find_among_b(A_8);
        if among_var == 0 {
            return;
        }
        self.bra = self.cursor;
        if !self.r1() {
            return;
        }
        let replacement = match among_var {
            1 => "tion",
            2 => "ate",
            3 => "al",
            4 => "ic",
            5 => "",
            _ => {
                if !self.r2() {
                    return;
                }
                ""
            }
        };
        self.slice_from(replacement);
    }

    fn step_4(&mut self) {
        self.ket = self.cursor;
        let among_var = self.find_among_b(A_9);
        if among_var == 0 {
            return;
        }
        self.bra = self.cursor;
        if !self.r2() {
            return;
        }
        if among_var != 1 && !self.eq_c_b('s') && !self.eq_c_b('t') {
            return;
        }
        self.slice_del();
    }

    fn step_5(&mut self) {
        self.ket = self.cursor;
        let among_var = self.find_among_b(A_10);
        if among_var == 0 {
            return;
        }
        self.bra = self.cursor;
        if among_var == 1 {
            if !self.r2() {
                if !self.r1() {
                    return;
                }
                let v1 = self.tail_len();
                if self.shortv() {
                    return;
                }
                self.set_tail_len(v1);
            }
        } else if !self.r2() || !self.eq_c_b('l') {
            return;
        }
        self.slice_del();
    }

    fn postlude(&mut self) {
        if !self.y_found {
            return;
        }
        // repeat goto (['Y']) <- 'y'
        loop {
            let v1 = self.cursor;
            let found = loop {
                let v2 = self.cursor;
                self.bra = self.cursor;
                if self.cursor < self.limit && self.at(self.cursor) == 'Y' {
                    self.cursor += 1;
                    self.ket = self.cursor;
                    self.cursor = v2;
                    break true;
                }
                self.cursor = v2;
                if self.cursor >= self.limit {
                    break false;
                }
                self.cursor += 1;
            };
            if !found {
                self.cursor = v1;
                break;
            }
            self.slice_from("y");
        }
    }
}

/// The code points Python 3.11's `re` matches with `\w` (`str.isalnum()` or `_`, Unicode 14.0),
/// as inclusive ranges, ascending. Printed by `tests/fixtures/make_bm25_fixture.py --word-table`.
#[rustfmt::skip]
const PY_WORD_RANGES: &[(u32, u32)] = &[
    (0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A), (0xAA, 0xAA), (0xB2, 0xB3),
    (0xB5, 0xB5), (0xB9, 0xBA), (0xBC, 0xBE), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x2C1),
    (0x2C6, 0x2D1), (0x2E0, 0x2E4), (0x2EC, 0x2EC), (0x2EE, 0x2EE), (0x370, 0x374), (0x376, 0x377),
    (0x37A, 0x37D), (0x37F, 0x37F), (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1),
    (0x3A3, 0x3F5), (0x3F7, 0x481), (0x48A, 0x52F), (0x531, 0x556), (0x559, 0x559), (0x560, 0x588),
    (0x5D0, 0x5EA), (0x5EF, 0x5F2), (0x620, 0x64A), (0x660, 0x669), (0x66E, 0x66F), (0x671, 0x6D3),
    (0x6D5, 0x6D5), (0x6E5, 0x6E6), (0x6EE, 0x6FC), (0x6FF, 0x6FF), (0x710, 0x710), (0x712, 0x72F),
    (0x74D, 0x7A5), (0x7B1, 0x7B1), (0x7C0, 0x7EA), (0x7F4, 0x7F5), (0x7FA, 0x7FA), (0x800, 0x815),
    (0x81A, 0x81A), (0x824, 0x824), (0x828, 0x828), (0x840, 0x858), (0x860, 0x86A), (0x870, 0x887),
    (0x889, 0x88E), (0x8A0, 0x8C9), (0x904, 0x939), (0x93D, 0x93D), (0x950, 0x950), (0x958, 0x961),
    (0x966, 0x96F), (0x971, 0x980), (0x985, 0x98C), (0x98F, 0x990), (0x993, 0x9A8), (0x9AA, 0x9B0),
    (0x9B2, 0x9B2), (0x9B6, 0x9B9), (0x9BD, 0x9BD), (0x9CE, 0x9CE), (0x9DC, 0x9DD), (0x9DF, 0x9E1),
    (0x9E6, 0x9F1), (0x9F4, 0x9F9), (0x9FC, 0x9FC), (0xA05, 0xA0A), (0xA0F, 0xA10), (0xA13, 0xA28),
    (0xA2A, 0xA30), (0xA32, 0xA33), (0xA35, 0xA36), (0xA38, 0xA39), (0xA59, 0xA5C), (0xA5E, 0xA5E),
    (0xA66, 0xA6F), (0xA72, 0xA74), (0xA85, 0xA8D), (0xA8F, 0xA91), (0xA93, 0xAA8), (0xAAA, 0xAB0),
    (0xAB2, 0xAB3), (0xAB5, 0xAB9), (0xABD, 0xABD), (0xAD0, 0xAD0), (0xAE0, 0xAE1), (0xAE6, 0xAEF),
    (0xAF9, 0xAF9), (0xB05, 0xB0C), (0xB0F, 0xB10), (0xB13, 0xB28), (0xB2A, 0xB30), (0xB32, 0xB33),
    (0xB35, 0xB39), (0xB3D, 0xB3D), (0xB5C, 0xB5D), (0xB5F, 0xB61), (0xB66, 0xB6F), (0xB71, 0xB77),
    (0xB83, 0xB83), (0xB85, 0xB8A), (0xB8E, 0xB90), (0xB92, 0xB95), (0xB99, 0xB9A), (0xB9C, 0xB9C),
    (0xB9E, 0xB9F), (0xBA3, 0xBA4), (0xBA8, 0xBAA), (0xBAE, 0xBB9), (0xBD0, 0xBD0), (0xBE6, 0xBF2),
    (0xC05, 0xC0C), (0xC0E, 0xC10), (0xC12, 0xC28), (0xC2A, 0xC39), (0xC3D, 0xC3D), (0xC58, 0xC5A),
    (0xC5D, 0xC5D), (0xC60, 0xC61), (0xC66, 0xC6F), (0xC78, 0xC7E), (0xC80, 0xC80), (0xC85, 0xC8C),
    (0xC8E, 0xC90), (0xC92, 0xCA8), (0xCAA, 0xCB3), (0xCB5, 0xCB9), (0xCBD, 0xCBD), (0xCDD, 0xCDE),
    (0xCE0, 0xCE1), (0xCE6, 0xCEF), (0xCF1, 0xCF2), (0xD04, 0xD0C), (0xD0E, 0xD10), (0xD12, 0xD3A),
    (0xD3D, 0xD3D), (0xD4E, 0xD4E), (0xD54, 0xD56), (0xD58, 0xD61), (0xD66, 0xD78), (0xD7A, 0xD7F),
    (0xD85, 0xD96), (0xD9A, 0xDB1), (0xDB3, 0xDBB), (0xDBD, 0xDBD), (0xDC0, 0xDC6), (0xDE6, 0xDEF),
    (0xE01, 0xE30), (0xE32, 0xE33), (0xE40, 0xE46), (0xE50, 0xE59), (0xE81, 0xE82), (0xE84, 0xE84),
    (0xE86, 0xE8A), (0xE8C, 0xEA3), (0xEA5, 0xEA5), (0xEA7, 0xEB0), (0xEB2, 0xEB3), (0xEBD, 0xEBD),
    (0xEC0, 0xEC4), (0xEC6, 0xEC6), (0xED0, 0xED9), (0xEDC, 0xEDF), (0xF00, 0xF00), (0xF20, 0xF33),
    (0xF40, 0xF47), (0xF49, 0xF6C), (0xF88, 0xF8C), (0x1000, 0x102A), (0x103F, 0x1049),
    (0x1050, 0x1055), (0x105A, 0x105D), (0x1061, 0x1061), (0x1065, 0x1066), (0x106E, 0x1070),
    (0x1075, 0x1081), (0x108E, 0x108E), (0x1090, 0x1099), (0x10A0, 0x10C5), (0x10C7, 0x10C7),
    (0x10CD, 0x10CD), (0x10D0, 0x10FA), (0x10FC, 0x1248), (0x124A, 0x124D), (0x1250, 0x1256),
    (0x1258, 0x1258), (0x125A, 0x125D), (0x1260, 0x1288), (0x128A, 0x128D), (0x1290, 0x12B0),
    (0x12B2, 0x12B5), (0x12B8, 0x12BE), (0x12C0, 0x12C0), (0x12C2, 0x12C5), (0x12C8, 0x12D6),
    (0x12D8, 0x1310), (0x1312, 0x1315), (0x1318, 0x135A), (0x1369, 0x137C), (0x1380, 0x138F),
    (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1401, 0x166C), (0x166F, 0x167F), (0x1681, 0x169A),
    (0x16A0, 0x16EA), (0x16EE, 0x16F8), (0x1700, 0x1711), (0x171F, 0x1731), (0x1740, 0x1751),
    (0x1760, 0x176C), (0x176E, 0x1770), (0x1780, 0x17B3), (0x17D7, 0x17D7), (0x17DC, 0x17DC),
    (0x17E0, 0x17E9), (0x17F0, 0x17F9), (0x1810, 0x1819), (0x1820, 0x1878), (0x1880, 0x1884),
    (0x1887, 0x18A8), (0x18AA, 0x18AA), (0x18B0, 0x18F5), (0x1900, 0x191E), (0x1946, 0x196D),
    (0x1970, 0x1974), (0x1980, 0x19AB), (0x19B0, 0x19C9), (0x19D0, 0x19DA), (0x1A00, 0x1A16),
    (0x1A20, 0x1A54), (0x1A80, 0x1A89), (0x1A90, 0x1A99), (0x1AA7, 0x1AA7), (0x1B05, 0x1B33),
    (0x1B45, 0x1B4C), (0x1B50, 0x1B59), (0x1B83, 0x1BA0), (0x1BAE, 0x1BE5), (0x1C00, 0x1C23),
    (0x1C40, 0x1C49), (0x1C4D, 0x1C7D), (0x1C80, 0x1C88), (0x1C90, 0x1CBA), (0x1CBD, 0x1CBF),
    (0x1CE9, 0x1CEC), (0x1CEE, 0x1CF3), (0x1CF5, 0x1CF6), (0x1CFA, 0x1CFA), (0x1D00, 0x1DBF),
    (0x1E00, 0x1F15), (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57),
    (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2070, 0x2071),
    (0x2074, 0x2079), (0x207F, 0x2089), (0x2090, 0x209C), (0x2102, 0x2102), (0x2107, 0x2107),
    (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
    (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149),
    (0x214E, 0x214E), (0x2150, 0x2189), (0x2460, 0x249B), (0x24EA, 0x24FF), (0x2776, 0x2793),
    (0x2C00, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3), (0x2CFD, 0x2CFD), (0x2D00, 0x2D25),
    (0x2D27, 0x2D27), (0x2D2D, 0x2D2D), (0x2D30, 0x2D67), (0x2D6F, 0x2D6F), (0x2D80, 0x2D96),
    (0x2DA0, 0x2DA6), (0x2DA8, 0x2DAE), (0x2DB0, 0x2DB6), (0x2DB8, 0x2DBE), (0x2DC0, 0x2DC6),
    (0x2DC8, 0x2DCE), (0x2DD0, 0x2DD6), (0x2DD8, 0x2DDE), (0x2E2F, 0x2E2F), (0x3005, 0x3007),
    (0x3021, 0x3029), (0x3031, 0x3035), (0x3038, 0x303C), (0x3041, 0x3096), (0x309D, 0x309F),
    (0x30A1, 0x30FA), (0x30FC, 0x30FF), (0x3105, 0x312F), (0x3131, 0x318E), (0x3192, 0x3195),
    (0x31A0, 0x31BF), (0x31F0, 0x31FF), (0x3220, 0x3229), (0x3248, 0x324F), (0x3251, 0x325F),
    (0x3280, 0x3289), (0x32B1, 0x32BF), (0x3400, 0x4DBF), (0x4E00, 0xA48C), (0xA4D0, 0xA4FD),
    (0xA500, 0xA60C), (0xA610, 0xA62B), (0xA640, 0xA66E), (0xA67F, 0xA69D), (0xA6A0, 0xA6EF),
    (0xA717, 0xA71F), (0xA722, 0xA788), (0xA78B, 0xA7CA), (0xA7D0, 0xA7D1), (0xA7D3, 0xA7D3),
    (0xA7D5, 0xA7D9), (0xA7F2, 0xA801), (0xA803, 0xA805), (0xA807, 0xA80A), (0xA80C, 0xA822),
    (0xA830, 0xA835), (0xA840, 0xA873), (0xA882, 0xA8B3), (0xA8D0, 0xA8D9), (0xA8F2, 0xA8F7),
    (0xA8FB, 0xA8FB), (0xA8FD, 0xA8FE), (0xA900, 0xA925), (0xA930, 0xA946), (0xA960, 0xA97C),
    (0xA984, 0xA9B2), (0xA9CF, 0xA9D9), (0xA9E0, 0xA9E4), (0xA9E6, 0xA9FE), (0xAA00, 0xAA28),
    (0xAA40, 0xAA42), (0xAA44, 0xAA4B), (0xAA50, 0xAA59), (0xAA60, 0xAA76), (0xAA7A, 0xAA7A),
    (0xAA7E, 0xAAAF), (0xAAB1, 0xAAB1), (0xAAB5, 0xAAB6), (0xAAB9, 0xAABD), (0xAAC0, 0xAAC0),
    (0xAAC2, 0xAAC2), (0xAADB, 0xAADD), (0xAAE0, 0xAAEA), (0xAAF2, 0xAAF4), (0xAB01, 0xAB06),
    (0xAB09, 0xAB0E), (0xAB11, 0xAB16), (0xAB20, 0xAB26), (0xAB28, 0xAB2E), (0xAB30, 0xAB5A),
    (0xAB5C, 0xAB69), (0xAB70, 0xABE2), (0xABF0, 0xABF9), (0xAC00, 0xD7A3), (0xD7B0, 0xD7C6),
    (0xD7CB, 0xD7FB), (0xF900, 0xFA6D), (0xFA70, 0xFAD9), (0xFB00, 0xFB06), (0xFB13, 0xFB17),
    (0xFB1D, 0xFB1D), (0xFB1F, 0xFB28), (0xFB2A, 0xFB36), (0xFB38, 0xFB3C), (0xFB3E, 0xFB3E),
    (0xFB40, 0xFB41), (0xFB43, 0xFB44), (0xFB46, 0xFBB1), (0xFBD3, 0xFD3D), (0xFD50, 0xFD8F),
    (0xFD92, 0xFDC7), (0xFDF0, 0xFDFB), (0xFE70, 0xFE74), (0xFE76, 0xFEFC), (0xFF10, 0xFF19),
    (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0xFF66, 0xFFBE), (0xFFC2, 0xFFC7), (0xFFCA, 0xFFCF),
    (0xFFD2, 0xFFD7), (0xFFDA, 0xFFDC), (0x10000, 0x1000B), (0x1000D, 0x10026), (0x10028, 0x1003A),
    (0x1003C, 0x1003D), (0x1003F, 0x1004D), (0x10050, 0x1005D), (0x10080, 0x100FA),
    (0x10107, 0x10133), (0x10140, 0x10178), (0x1018A, 0x1018B), (0x10280, 0x1029C),
    (0x102A0, 0x102D0), (0x102E1, 0x102FB), (0x10300, 0x10323), (0x1032D, 0x1034A),
    (0x10350, 0x10375), (0x10380, 0x1039D), (0x103A0, 0x103C3), (0x103C8, 0x103CF),
    (0x103D1, 0x103D5), (0x10400, 0x1049D), (0x104A0, 0x104A9), (0x104B0, 0x104D3),
    (0x104D8, 0x104FB), (0x10500, 0x10527), (0x10530, 0x10563), (0x10570, 0x1057A),
    (0x1057C, 0x1058A), (0x1058C, 0x10592), (0x10594, 0x10595), (0x10597, 0x105A1),
    (0x105A3, 0x105B1), (0x105B3, 0x105B9), (0x105BB, 0x105BC), (0x10600, 0x10736),
    (0x10740, 0x10755), (0x10760, 0x10767), (0x10780, 0x10785), (0x10787, 0x107B0),
    (0x107B2, 0x107BA), (0x10800, 0x10805), (0x10808, 0x10808), (0x1080A, 0x10835),
    (0x10837, 0x10838), (0x1083C, 0x1083C), (0x1083F, 0x10855), (0x10858, 0x10876),
    (0x10879, 0x1089E), (0x108A7, 0x108AF), (0x108E0, 0x108F2), (0x108F4, 0x108F5),
    (0x108FB, 0x1091B), (0x10920, 0x10939), (0x10980, 0x109B7), (0x109BC, 0x109CF),
    (0x109D2, 0x10A00), (0x10A10, 0x10A13), (0x10A15, 0x10A17), (0x10A19, 0x10A35),
    (0x10A40, 0x10A48), (0x10A60, 0x10A7E), (0x10A80, 0x10A9F), (0x10AC0, 0x10AC7),
    (0x10AC9, 0x10AE4), (0x10AEB, 0x10AEF), (0x10B00, 0x10B35), (0x10B40, 0x10B55),
    (0x10B58, 0x10B72), (0x10B78, 0x10B91), (0x10BA9, 0x10BAF), (0x10C00, 0x10C48),
    (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x10CFA, 0x10D23), (0x10D30, 0x10D39),
    (0x10E60, 0x10E7E), (0x10E80, 0x10EA9), (0x10EB0, 0x10EB1), (0x10F00, 0x10F27),
    (0x10F30, 0x10F45), (0x10F51, 0x10F54), (0x10F70, 0x10F81), (0x10FB0, 0x10FCB),
    (0x10FE0, 0x10FF6), (0x11003, 0x11037), (0x11052, 0x1106F), (0x11071, 0x11072),
    (0x11075, 0x11075), (0x11083, 0x110AF), (0x110D0, 0x110E8), (0x110F0, 0x110F9),
    (0x11103, 0x11126), (0x11136, 0x1113F), (0x11144, 0x11144), (0x11147, 0x11147),
    (0x11150, 0x11172), (0x11176, 0x11176), (0x11183, 0x111B2), (0x111C1, 0x111C4),
    (0x111D0, 0x111DA), (0x111DC, 0x111DC), (0x111E1, 0x111F4), (0x11200, 0x11211),
    (0x11213, 0x1122B), (0x11280, 0x11286), (0x11288, 0x11288), (0x1128A, 0x1128D),
    (0x1128F, 0x1129D), (0x1129F, 0x112A8), (0x112B0, 0x112DE), (0x112F0, 0x112F9),
    (0x11305, 0x1130C), (0x1130F, 0x11310), (0x11313, 0x11328), (0x1132A, 0x11330),
    (0x11332, 0x11333), (0x11335, 0x11339), (0x1133D, 0x1133D), (0x11350, 0x11350),
    (0x1135D, 0x11361), (0x11400, 0x11434), (0x11447, 0x1144A), (0x11450, 0x11459),
    (0x1145F, 0x11461), (0x11480, 0x114AF), (0x114C4, 0x114C5), (0x114C7, 0x114C7),
    (0x114D0, 0x114D9), (0x11580, 0x115AE), (0x115D8, 0x115DB), (0x11600, 0x1162F),
    (0x11644, 0x11644), (0x11650, 0x11659), (0x11680, 0x116AA), (0x116B8, 0x116B8),
    (0x116C0, 0x116C9), (0x11700, 0x1171A), (0x11730, 0x1173B), (0x11740, 0x11746),
    (0x11800, 0x1182B), (0x118A0, 0x118F2), (0x118FF, 0x11906), (0x11909, 0x11909),
    (0x1190C, 0x11913), (0x11915, 0x11916), (0x11918, 0x1192F), (0x1193F, 0x1193F),
    (0x11941, 0x11941), (0x11950, 0x11959), (0x119A0, 0x119A7), (0x119AA, 0x119D0),
    (0x119E1, 0x119E1), (0x119E3, 0x119E3), (0x11A00, 0x11A00), (0x11A0B, 0x11A32),
    (0x11A3A, 0x11A3A), (0x11A50, 0x11A50), (0x11A5C, 0x11A89), (0x11A9D, 0x11A9D),
    (0x11AB0, 0x11AF8), (0x11C00, 0x11C08), (0x11C0A, 0x11C2E), (0x11C40, 0x11C40),
    (0x11C50, 0x11C6C), (0x11C72, 0x11C8F), (0x11D00, 0x11D06), (0x11D08, 0x11D09),
    (0x11D0B, 0x11D30), (0x11D46, 0x11D46), (0x11D50, 0x11D59), (0x11D60, 0x11D65),
    (0x11D67, 0x11D68), (0x11D6A, 0x11D89), (0x11D98, 0x11D98), (0x11DA0, 0x11DA9),
    (0x11EE0, 0x11EF2), (0x11FB0, 0x11FB0), (0x11FC0, 0x11FD4), (0x12000, 0x12399),
    (0x12400, 0x1246E), (0x12480, 0x12543), (0x12F90, 0x12FF0), (0x13000, 0x1342E),
    (0x14400, 0x14646), (0x16800, 0x16A38), (0x16A40, 0x16A5E), (0x16A60, 0x16A69),
    (0x16A70, 0x16ABE), (0x16AC0, 0x16AC9), (0x16AD0, 0x16AED), (0x16B00, 0x16B2F),
    (0x16B40, 0x16B43), (0x16B50, 0x16B59), (0x16B5B, 0x16B61), (0x16B63, 0x16B77),
    (0x16B7D, 0x16B8F), (0x16E40, 0x16E96), (0x16F00, 0x16F4A), (0x16F50, 0x16F50),
    (0x16F93, 0x16F9F), (0x16FE0, 0x16FE1), (0x16FE3, 0x16FE3), (0x17000, 0x187F7),
    (0x18800, 0x18CD5), (0x18D00, 0x18D08), (0x1AFF0, 0x1AFF3), (0x1AFF5, 0x1AFFB),
    (0x1AFFD, 0x1AFFE), (0x1B000, 0x1B122), (0x1B150, 0x1B152), (0x1B164, 0x1B167),
    (0x1B170, 0x1B2FB), (0x1BC00, 0x1BC6A), (0x1BC70, 0x1BC7C), (0x1BC80, 0x1BC88),
    (0x1BC90, 0x1BC99), (0x1D2E0, 0x1D2F3), (0x1D360, 0x1D378), (0x1D400, 0x1D454),
    (0x1D456, 0x1D49C), (0x1D49E, 0x1D49F), (0x1D4A2, 0x1D4A2), (0x1D4A5, 0x1D4A6),
    (0x1D4A9, 0x1D4AC), (0x1D4AE, 0x1D4B9), (0x1D4BB, 0x1D4BB), (0x1D4BD, 0x1D4C3),
    (0x1D4C5, 0x1D505), (0x1D507, 0x1D50A), (0x1D50D, 0x1D514), (0x1D516, 0x1D51C),
    (0x1D51E, 0x1D539), (0x1D53B, 0x1D53E), (0x1D540, 0x1D544), (0x1D546, 0x1D546),
    (0x1D54A, 0x1D550), (0x1D552, 0x1D6A5), (0x1D6A8, 0x1D6C0), (0x1D6C2, 0x1D6DA),
    (0x1D6DC, 0x1D6FA), (0x1D6FC, 0x1D714), (0x1D716, 0x1D734), (0x1D736, 0x1D74E),
    (0x1D750, 0x1D76E), (0x1D770, 0x1D788), (0x1D78A, 0x1D7A8), (0x1D7AA, 0x1D7C2),
    (0x1D7C4, 0x1D7CB), (0x1D7CE, 0x1D7FF), (0x1DF00, 0x1DF1E), (0x1E100, 0x1E12C),
    (0x1E137, 0x1E13D), (0x1E140, 0x1E149), (0x1E14E, 0x1E14E), (0x1E290, 0x1E2AD),
    (0x1E2C0, 0x1E2EB), (0x1E2F0, 0x1E2F9), (0x1E7E0, 0x1E7E6), (0x1E7E8, 0x1E7EB),
    (0x1E7ED, 0x1E7EE), (0x1E7F0, 0x1E7FE), (0x1E800, 0x1E8C4), (0x1E8C7, 0x1E8CF),
    (0x1E900, 0x1E943), (0x1E94B, 0x1E94B), (0x1E950, 0x1E959), (0x1EC71, 0x1ECAB),
    (0x1ECAD, 0x1ECAF), (0x1ECB1, 0x1ECB4), (0x1ED01, 0x1ED2D), (0x1ED2F, 0x1ED3D),
    (0x1EE00, 0x1EE03), (0x1EE05, 0x1EE1F), (0x1EE21, 0x1EE22), (0x1EE24, 0x1EE24),
    (0x1EE27, 0x1EE27), (0x1EE29, 0x1EE32), (0x1EE34, 0x1EE37), (0x1EE39, 0x1EE39),
    (0x1EE3B, 0x1EE3B), (0x1EE42, 0x1EE42), (0x1EE47, 0x1EE47), (0x1EE49, 0x1EE49),
    (0x1EE4B, 0x1EE4B), (0x1EE4D, 0x1EE4F), (0x1EE51, 0x1EE52), (0x1EE54, 0x1EE54),
    (0x1EE57, 0x1EE57), (0x1EE59, 0x1EE59), (0x1EE5B, 0x1EE5B), (0x1EE5D, 0x1EE5D),
    (0x1EE5F, 0x1EE5F), (0x1EE61, 0x1EE62), (0x1EE64, 0x1EE64), (0x1EE67, 0x1EE6A),
    (0x1EE6C, 0x1EE72), (0x1EE74, 0x1EE77), (0x1EE79, 0x1EE7C), (0x1EE7E, 0x1EE7E),
    (0x1EE80, 0x1EE89), (0x1EE8B, 0x1EE9B), (0x1EEA1, 0x1EEA3), (0x1EEA5, 0x1EEA9),
    (0x1EEAB, 0x1EEBB), (0x1F100, 0x1F10C), (0x1FBF0, 0x1FBF9), (0x20000, 0x2A6DF),
    (0x2A700, 0x2B738), (0x2B740, 0x2B81D), (0x2B820, 0x2CEA1), (0x2CEB0, 0x2EBE0),
    (0x2F800, 0x2FA1D), (0x30000, 0x3134A),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(text: &str) -> Vec<String> {
        Bm25::default().tokenize(text)
    }

    #[test]
    fn empty_text_embeds_to_an_empty_vector() {
        let labelled = Bm25::from_config(&json!({"include_tokens": true})).unwrap();
        for bm25 in [Bm25::default(), labelled] {
            assert_eq!(bm25.embed(""), SparseEmbedding::default());
            assert_eq!(
                bm25.embed(" \t\n\u{1c}\u{3000}"),
                SparseEmbedding::default()
            );
            assert!(bm25.tokenize("").is_empty());
        }
    }

    #[test]
    fn only_stopwords_and_punctuation_embed_to_nothing() {
        assert!(tokens("The and OF a is it's THEIR").is_empty());
        assert_eq!(
            Bm25::default().embed("!!! ... --- ()"),
            SparseEmbedding::default()
        );
    }

    #[test]
    fn punctuation_splits_and_underscore_is_a_word_character() {
        assert_eq!(
            tokens("snake_case!!! foo-bar __ a_b"),
            ["snake_cas", "foo", "bar", "__", "a_b"]
        );
        assert_eq!(
            tokens("The running dogs, they're RUNNING!"),
            ["run", "dog", "run"]
        );
    }

    #[test]
    fn unicode_letters_and_digits_follow_python_isalnum() {
        // Circled letters are alphabetic to Rust but not `isalnum()` to Python; Ⅻ lower-cases.
        assert_eq!(tokens("Café ½ ٣ ⓐ Ⅻ x²"), ["café", "½", "٣", "ⅻ", "x²"]);
        // Devanagari vowel signs are marks, not `\w`: they split the word as in Python.
        assert_eq!(tokens("हिन्दी"), ["ह", "न", "द"]);
        assert_eq!(tokens("ΟΔΟΣ ΣΟΦΟΣ"), ["οδος", "σοφος"]);
        assert_eq!(tokens("İstanbul"), ["i\u{307}stanbul"]);
    }

    #[test]
    fn over_long_tokens_are_dropped_by_code_points() {
        let text = format!(
            "{} {} {} {}",
            "a".repeat(40),
            "b".repeat(41),
            "é".repeat(40),
            "é".repeat(41)
        );
        assert_eq!(tokens(&text), ["a".repeat(40), "é".repeat(40)]);
        let short = Bm25::from_config(&json!({"token_max_length": 3})).unwrap();
        assert_eq!(short.tokenize("cat horse ox"), ["cat", "ox"]);
    }

    #[test]
    fn python_whitespace_includes_the_information_separators() {
        assert_eq!(
            tokens("alpha\u{1c}beta\u{1f}gamma\u{200b}delta\u{a0}eps"),
            ["alpha", "beta", "gamma", "delta", "ep"]
        );
        for c in [
            '\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}', '\u{85}', '\u{2003}', '\u{3000}',
        ] {
            assert!(is_py_space(c), "{c:?}");
        }
        assert!(!is_py_space('\u{200b}') && !is_py_word('\u{200b}'));
    }

    #[test]
    fn repeated_words_count_once_with_their_frequency() {
        let bm25 = Bm25::from_config(&json!({"include_tokens": true})).unwrap();
        let embedding = bm25.embed("run run running");
        assert_eq!(embedding.indices, [243_905_464]);
        assert_eq!(embedding.values, [1.993_628_318_584_070_9_f64 as f32]);
        assert_eq!(embedding.labels, Some(vec!["run".to_owned()]));
    }

    #[test]
    fn hash_collisions_merge_including_opposite_signs() {
        // mmh3 gives these 1356481811 and -1356481811.
        let bm25 = Bm25::from_config(&json!({"include_tokens": true})).unwrap();
        let embedding = bm25.embed("bvxqgjh kvzxvdh");
        assert_eq!(embedding.indices, [1_356_481_811]);
        assert_eq!(embedding.values, [1.907_213_003_725_025_4_f64 as f32]);
        assert_eq!(embedding.labels, Some(vec!["bvxqgjh".to_owned()]));
    }

    #[test]
    fn murmur3_matches_mmh3() {
        let cases: [(&str, i32); 8] = [
            ("", 0),
            ("a", 1_009_084_850),
            ("ab", -1_681_926_305),
            ("abc", -1_277_324_294),
            ("abcd", 1_139_631_978),
            ("hello", 613_153_351),
            ("café", 605_818_632),
            ("数据", -638_560_728),
        ];
        for (text, expected) in cases {
            assert_eq!(
                murmur3_x86_32(text.as_bytes(), 0) as i32,
                expected,
                "{text:?}"
            );
            assert_eq!(token_hash(text), expected.unsigned_abs());
        }
        assert_eq!(i32::MIN.unsigned_abs(), 2_147_483_648);
    }

    #[test]
    fn matches_chromadb_reference_vector() {
        // chromadb's test_comprehensive_tokenization_matches_reference.
        let embedding =
            Bm25::default().embed("Usain Bolt's top speed reached ~27.8 mph (44.72 km/h)");
        assert_eq!(
            embedding.indices,
            [
                230_246_813,
                395_514_983,
                458_027_949,
                488_165_615,
                729_632_045,
                734_978_415,
                997_512_866,
                1_114_505_193,
                1_381_820_790,
                1_501_587_190,
                1_649_421_877,
                1_837_285_388
            ]
        );
        assert!(embedding
            .values
            .iter()
            .all(|v| (v - 1.639_115_3).abs() < 1e-5));
        assert_eq!(embedding.labels, None);
    }

    #[test]
    fn custom_parameters_change_scores() {
        let bm25 = Bm25::from_config(&json!({"k": 2, "b": 0.5, "avg_doc_length": 10.0})).unwrap();
        let embedding = bm25.embed("run run walk");
        assert_eq!(embedding.indices, [242_017_537, 243_905_464]);
        assert_eq!(
            embedding.values,
            [
                1.304_347_826_086_956_5_f64 as f32,
                1.818_181_818_181_818_3_f64 as f32
            ]
        );
    }

    #[test]
    fn snowball_3_english_stems() {
        let stemmer = EnglishStemmer;
        let cases = [
            ("internal", "internal"),
            ("emergency", "emergenc"),
            ("organization", "organiz"),
            ("university", "universiti"),
            ("pasted", "paste"),
            ("added", "add"),
            ("geologist", "geolog"),
            ("vying", "vie"),
            ("dying", "die"),
            ("inning", "inning"),
            ("generously", "generous"),
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("skies", "sky"),
            ("news", "news"),
            ("succeeded", "succeed"),
            ("yelling", "yell"),
            ("crying", "cri"),
            ("sayings", "say"),
            ("yyyy", "yyyi"),
            ("ab", "ab"),
            ("'tis", "tis"),
            ("cafés", "café"),
        ];
        for (word, stem) in cases {
            assert_eq!(stemmer.stem(word), stem, "{word}");
        }
    }

    #[test]
    fn custom_stopwords_replace_the_defaults_lower_cased() {
        let bm25 = Bm25::from_config(&json!({"stopwords": ["Foo", "BAR"]})).unwrap();
        assert_eq!(bm25.tokenize("foo bar the baz"), ["the", "baz"]);
        let defaults = Bm25::from_config(&json!({"stopwords": null})).unwrap();
        assert_eq!(defaults.tokenize("foo the"), ["foo"]);
    }

    #[test]
    fn config_round_trips() {
        let default = Bm25::default().config();
        assert_eq!(
            default,
            json!({"k": 1.2, "b": 0.75, "avg_doc_length": 256.0, "token_max_length": 40,
                   "include_tokens": false})
        );
        let custom = json!({"k": 1.5, "b": 0.5, "avg_doc_length": 100.0, "token_max_length": 12,
                            "include_tokens": true, "stopwords": ["x", "Y"]});
        let bm25 = Bm25::from_config(&custom).unwrap();
        assert_eq!(bm25.config(), custom);
        assert_eq!(Bm25::from_config(&bm25.config()).unwrap().config(), custom);
        assert_eq!(Bm25::from_config(&json!({})).unwrap().config(), default);
    }

    #[test]
    fn wrong_config_types_are_typed_errors() {
        let err = |config: Value| Bm25::from_config(&config).unwrap_err();
        assert_eq!(
            err(json!([])),
            Bm25ConfigError::NotAnObject { found: "an array" }
        );
        assert_eq!(
            err(json!({"k": "1.2"})),
            Bm25ConfigError::WrongType {
                key: "k",
                expected: "a number",
                found: "a string"
            }
        );
        assert_eq!(
            err(json!({"b": null})),
            Bm25ConfigError::WrongType {
                key: "b",
                expected: "a number",
                found: "null"
            }
        );
        assert_eq!(
            err(json!({"include_tokens": 1})),
            Bm25ConfigError::WrongType {
                key: "include_tokens",
                expected: "a boolean",
                found: "a number"
            }
        );
        assert_eq!(
            err(json!({"stopwords": ["a", 1]})),
            Bm25ConfigError::WrongType {
                key: "stopwords",
                expected: "an array of strings",
                found: "a number"
            }
        );
        assert_eq!(
            err(json!({"stopwords": "a"})),
            Bm25ConfigError::WrongType {
                key: "stopwords",
                expected: "an array of strings",
                found: "a string"
            }
        );
        assert!(matches!(
            err(json!({"token_max_length": -1})),
            Bm25ConfigError::InvalidValue {
                key: "token_max_length",
                ..
            }
        ));
        assert!(matches!(
            err(json!({"token_max_length": 4.5})),
            Bm25ConfigError::InvalidValue {
                key: "token_max_length",
                ..
            }
        ));
        assert!(matches!(
            err(json!({"avg_doc_length": 0})),
            Bm25ConfigError::InvalidValue {
                key: "avg_doc_length",
                ..
            }
        ));
        let integral = Bm25::from_config(&json!({"token_max_length": 7.0})).unwrap();
        assert_eq!(integral.config()["token_max_length"], json!(7));
        assert_eq!(
            err(json!({"k": true})).to_string(),
            "chroma_bm25 config: k must be a number, got a boolean"
        );
    }

    #[test]
    fn word_table_is_sorted_and_disjoint() {
        assert!(PY_WORD_RANGES.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(PY_WORD_RANGES.iter().all(|&(lo, hi)| lo <= hi));
    }

    #[test]
    fn bm25_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Bm25>();
    }
}
