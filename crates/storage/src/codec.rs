//! Encodings of values inside SQLite columns (see docs/format/sqlite.md).

use ochre_types::{
    metadata_from_json, metadata_to_json, CollectionConfiguration, Metadata, MetadataError,
    MetadataValue,
};
use serde_json::Value;

/// Embedding column: the f32 values, little-endian, back to back.
pub(crate) fn encode_embedding(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Why a stored value could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An embedding column that is empty or not a whole number of 4-byte floats.
    #[error("embedding of {0} bytes")]
    Embedding(usize),
    /// A JSON column that does not parse or has the wrong shape.
    #[error("{column}: {source}")]
    Json {
        column: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    #[error("metadata key {0} holds null")]
    NullValue(String),
}

/// Checks an embedding column: non-empty, a whole number of 4-byte floats.
pub fn check_embedding(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return Err(DecodeError::Embedding(bytes.len()));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn decode_embedding(bytes: &[u8]) -> Result<Vec<f32>, DecodeError> {
    check_embedding(bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Metadata column: a JSON object (integers without, floats with a fraction or exponent).
pub(crate) fn encode_metadata(m: &Metadata) -> String {
    metadata_to_json(m).to_string()
}

pub fn decode_metadata(text: &str) -> Result<Metadata, DecodeError> {
    let v: Value = serde_json::from_str(text).map_err(|source| DecodeError::Json {
        column: "metadata",
        source,
    })?;
    metadata_from_json(&v)?
        .into_iter()
        .map(|(k, v)| v.map(|v| (k.clone(), v)).ok_or(DecodeError::NullValue(k)))
        .collect()
}

/// Decodes a metadata column straight into entries sorted by key, no key twice, each key passed
/// through `key` once (recovery hands in an interner, so a key costs no allocation per record):
/// the result of [`decode_metadata`] without its two intermediate maps.
///
/// # Errors
/// As [`decode_metadata`], with its messages: a column the direct path cannot take is decoded
/// again by it, which decides.
pub fn decode_metadata_entries<K: Ord>(
    text: &str,
    mut key: impl FnMut(&str) -> K,
) -> Result<Vec<(K, MetadataValue)>, DecodeError> {
    match direct_entries(text, &mut key) {
        Some(entries) => Ok(entries),
        None => Ok(decode_metadata(text)?
            .into_iter()
            .map(|(k, v)| (key(&k), v))
            .collect()),
    }
}

/// The fast path of [`decode_metadata_entries`]: `None` for anything but a well-formed object of
/// valid values (the reference path then reports the error).
fn direct_entries<K: Ord>(
    text: &str,
    key: &mut impl FnMut(&str) -> K,
) -> Option<Vec<(K, MetadataValue)>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut raw = serde::de::Deserializer::deserialize_map(&mut de, EntriesVisitor { key }).ok()?;
    de.end().ok()?;
    // Duplicate keys: the last one wins, as in a JSON map.
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(K, MetadataValue)> = Vec::with_capacity(raw.len());
    let mut iter = raw.into_iter().peekable();
    while let Some((k, v)) = iter.next() {
        if iter.peek().is_some_and(|(next, _)| *next == k) {
            continue;
        }
        let value = match v {
            Value::String(s) => MetadataValue::Str(s),
            Value::Null => return None,
            other @ (Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)) => {
                match MetadataValue::from_json(&other).ok()? {
                    Some(value) => value,
                    // An empty array: the key is dropped.
                    None => continue,
                }
            }
        };
        out.push((k, value));
    }
    Some(out)
}

/// Reads a JSON object's entries, keys mapped on the way, values as they are.
struct EntriesVisitor<'k, F> {
    key: &'k mut F,
}

impl<'de, K, F: FnMut(&str) -> K> serde::de::Visitor<'de> for EntriesVisitor<'_, F> {
    type Value = Vec<(K, Value)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a metadata object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(k) = map.next_key_seed(KeySeed {
            key: &mut *self.key,
        })? {
            out.push((k, map.next_value::<Value>()?));
        }
        Ok(out)
    }
}

/// One key, handed to the caller's mapping while still borrowed from the input.
struct KeySeed<'k, F> {
    key: &'k mut F,
}

impl<'de, K, F: FnMut(&str) -> K> serde::de::DeserializeSeed<'de> for KeySeed<'_, F> {
    type Value = K;

    fn deserialize<D: serde::de::Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K, F: FnMut(&str) -> K> serde::de::Visitor<'de> for KeySeed<'_, F> {
    type Value = K;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<K, E> {
        Ok((self.key)(v))
    }
}

/// Configuration column: [`CollectionConfiguration`] as JSON (its serde shape: `hnsw` with
/// every parameter, `embedding_function` and `schema`, null when absent).
#[allow(
    clippy::expect_used,
    reason = "string keys and numbers only: serde_json cannot fail (non-finite floats become null)"
)]
pub fn encode_configuration(c: &CollectionConfiguration) -> String {
    serde_json::to_string(c).expect("a configuration always serializes")
}

/// Parses a configuration column.
///
/// # Errors
/// [`DecodeError::Json`] saying which field is missing or mistyped.
pub fn decode_configuration(text: &str) -> Result<CollectionConfiguration, DecodeError> {
    serde_json::from_str(text).map_err(|source| DecodeError::Json {
        column: "configuration",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ochre_types::Space;
    use proptest::prelude::*;
    use serde_json::json;

    /// What recovery did before the direct path: the reference decode, keys owned.
    fn reference(text: &str) -> Option<Vec<(String, MetadataValue)>> {
        decode_metadata(text).ok().map(|m| m.into_iter().collect())
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|i| json!(i)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z\\\\\"é]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z#]{0,7}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An object written with repeated and escaped keys, in any order, as text.
    fn object_text() -> impl Strategy<Value = String> {
        prop::collection::vec(("[a-c\\\\\"]{0,2}", json_value()), 0..6).prop_map(|entries| {
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        /// The direct decode gives what the reference decode gives, for any object text (repeated
        /// keys, escapes, nulls, empty and mixed arrays, sparse-vector shapes); and it errs
        /// exactly where the reference errs.
        #[test]
        fn direct_metadata_decode_matches_the_reference(text in object_text()) {
            let direct = decode_metadata_entries(&text, str::to_owned).ok();
            prop_assert_eq!(direct, reference(&text));
        }

        /// What the store writes reads back as itself.
        #[test]
        fn direct_metadata_decode_reads_what_is_written(m in prop::collection::btree_map(
            "[a-z]{1,4}",
            prop_oneof![
                any::<i64>().prop_map(MetadataValue::Int),
                (-1e300f64..1e300).prop_map(MetadataValue::Float),
                any::<bool>().prop_map(MetadataValue::Bool),
                "[a-z\\\\\"é]{0,6}".prop_map(MetadataValue::Str),
                prop::collection::vec("[a-z]{0,3}", 1..4).prop_map(MetadataValue::StrArray),
                prop::collection::vec(any::<i64>(), 1..4).prop_map(MetadataValue::IntArray),
            ],
            0..6,
        )) {
            let direct = decode_metadata_entries(&encode_metadata(&m), str::to_owned).expect("valid");
            prop_assert_eq!(direct, m.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn direct_metadata_decode_matches_the_reference_on_any_text(text in ".{0,24}") {
            let direct = decode_metadata_entries(&text, str::to_owned).ok();
            prop_assert_eq!(direct, reference(&text));
        }
    }

    #[test]
    fn direct_metadata_decode_maps_each_key_once_and_keeps_the_last_duplicate() {
        let mut seen = Vec::new();
        let entries = decode_metadata_entries(r#"{"b":1,"a":"x","b":2.5,"e":[]}"#, |k| {
            seen.push(k.to_owned());
            k.to_owned()
        })
        .expect("valid");
        assert_eq!(
            entries,
            vec![
                ("a".to_owned(), MetadataValue::Str("x".into())),
                ("b".to_owned(), MetadataValue::Float(2.5)),
            ]
        );
        assert_eq!(seen, ["b", "a", "b", "e"]);
        // Errors are the reference decode's, message included.
        let err = decode_metadata_entries(r#"{"a":null}"#, str::to_owned).expect_err("null");
        assert_eq!(err.to_string(), "metadata key a holds null");
    }

    #[test]
    fn embedding_round_trip_and_rejects_torn_blobs() {
        let v = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e38];
        assert_eq!(decode_embedding(&encode_embedding(&v)).expect("valid"), v);
        assert!(decode_embedding(&[1, 2, 3]).is_err());
        assert!(decode_embedding(&[]).is_err());
        assert_eq!(encode_embedding(&[1.0]), vec![0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn configuration_round_trip() {
        let mut c = CollectionConfiguration::default();
        c.hnsw.space = Space::Cosine;
        c.hnsw.resize_factor = -1.0;
        c.embedding_function = Some(json!({"type": "known", "name": "default", "config": {}}));
        assert_eq!(
            decode_configuration(&encode_configuration(&c)).expect("valid"),
            c
        );
        assert!(decode_configuration("{}").is_err());
        assert!(decode_configuration("not json").is_err());
    }

    #[test]
    fn configuration_columns_written_by_the_old_encoder_still_decode() {
        // The column as the hand-written encoder of store formats 1 and 2 wrote it (keys sorted);
        // the serde-derived codec reads it, and writes the same JSON value.
        let text = r#"{"embedding_function":null,"hnsw":{"batch_size":100,"ef_construction":100,"ef_search":100,"max_neighbors":16,"num_threads":2,"resize_factor":1.2,"space":"l2","sync_threshold":1000},"schema":null}"#;
        let c = CollectionConfiguration {
            hnsw: ochre_types::HnswConfig {
                num_threads: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(decode_configuration(text).expect("valid"), c);
        let written: Value = serde_json::from_str(&encode_configuration(&c)).expect("json");
        let old: Value = serde_json::from_str(text).expect("json");
        assert_eq!(written, old);
    }

    #[test]
    fn metadata_round_trip() {
        let m: Metadata = [
            ("f".to_owned(), MetadataValue::Float(1.0)),
            ("i".to_owned(), MetadataValue::Int(1)),
        ]
        .into_iter()
        .collect();
        assert_eq!(decode_metadata(&encode_metadata(&m)).expect("valid"), m);
        assert!(decode_metadata("{\"a\":null}").is_err());
    }
}
