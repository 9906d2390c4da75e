//! Encodings of values inside SQLite columns (see docs/format/sqlite.md).

use ochre_types::{
    metadata_from_json, metadata_to_json, CollectionConfiguration, Metadata, MetadataError,
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
    use ochre_types::{MetadataValue, Space};
    use serde_json::json;

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
