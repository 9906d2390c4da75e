//! Encodings of values inside SQLite columns (see docs/format/sqlite.md).

use ochre_types::{
    metadata_from_json, metadata_to_json, CollectionConfiguration, HnswConfig, Metadata,
};
use serde_json::{json, Value};

/// Embedding column: the f32 values, little-endian, back to back.
pub(crate) fn encode_embedding(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Checks an embedding column: non-empty, a whole number of 4-byte floats.
pub(crate) fn check_embedding(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return Err(format!("embedding of {} bytes", bytes.len()));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn decode_embedding(bytes: &[u8]) -> Result<Vec<f32>, String> {
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

pub(crate) fn decode_metadata(text: &str) -> Result<Metadata, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("metadata: {e}"))?;
    metadata_from_json(&v)?
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => Ok((k, v)),
            None => Err(format!("metadata key {k} holds null")),
        })
        .collect()
}

/// Configuration column: a JSON object with the HNSW parameters, the embedding function
/// descriptor and the schema.
pub fn encode_configuration(c: &CollectionConfiguration) -> String {
    let h = &c.hnsw;
    json!({
        "hnsw": {
            "space": h.space.as_str(),
            "ef_construction": h.ef_construction,
            "ef_search": h.ef_search,
            "max_neighbors": h.max_neighbors,
            "num_threads": h.num_threads,
            "resize_factor": h.resize_factor,
            "sync_threshold": h.sync_threshold,
            "batch_size": h.batch_size,
        },
        "embedding_function": c.embedding_function,
        "schema": c.schema,
    })
    .to_string()
}

/// Parses a configuration column.
///
/// # Errors
/// A description of the first missing or mistyped field.
pub fn decode_configuration(text: &str) -> Result<CollectionConfiguration, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("configuration: {e}"))?;
    let h = v
        .get("hnsw")
        .and_then(Value::as_object)
        .ok_or("configuration: missing hnsw")?;
    let int = |k: &str| {
        h.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("configuration: hnsw.{k} missing"))
    };
    let space = h
        .get("space")
        .and_then(Value::as_str)
        .ok_or("configuration: hnsw.space missing")?
        .parse()?;
    let opt = |k: &str| match v.get(k) {
        None | Some(Value::Null) => None,
        Some(x) => Some(x.clone()),
    };
    Ok(CollectionConfiguration {
        hnsw: HnswConfig {
            space,
            ef_construction: int("ef_construction")?,
            ef_search: int("ef_search")?,
            max_neighbors: int("max_neighbors")?,
            num_threads: int("num_threads")?,
            resize_factor: h
                .get("resize_factor")
                .and_then(Value::as_f64)
                .ok_or("configuration: hnsw.resize_factor missing")?,
            sync_threshold: int("sync_threshold")?,
            batch_size: int("batch_size")?,
        },
        embedding_function: opt("embedding_function"),
        schema: opt("schema"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ochre_types::{MetadataValue, Space};

    #[test]
    fn embedding_round_trip_and_rejects_torn_blobs() {
        let v = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e38];
        assert_eq!(decode_embedding(&encode_embedding(&v)), Ok(v));
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
        assert_eq!(decode_configuration(&encode_configuration(&c)), Ok(c));
        assert!(decode_configuration("{}").is_err());
        assert!(decode_configuration("not json").is_err());
    }

    #[test]
    fn metadata_round_trip() {
        let m: Metadata = [
            ("f".to_owned(), MetadataValue::Float(1.0)),
            ("i".to_owned(), MetadataValue::Int(1)),
        ]
        .into_iter()
        .collect();
        assert_eq!(decode_metadata(&encode_metadata(&m)), Ok(m));
        assert!(decode_metadata("{\"a\":null}").is_err());
    }
}
