//! The decoders of the store's columns (`ochre_storage::fuzzing`, `decode_configuration`).

use ochre_index::HnswIndex;
use ochre_server::fuzzing::Schema;
use ochre_storage::fuzzing::{raw_embedding, stored_metadata};
use ochre_storage::{decode_configuration, encode_configuration};
use ochre_types::{metadata_to_json, SeqNo};

/// A `configuration` column, then every use recovery and the server make of it: the index built
/// with it, the schema answered from it; and what decodes must read back as itself once
/// re-encoded.
fn configuration(text: &str) {
    let Ok(c) = decode_configuration(text) else {
        return;
    };
    let encoded = encode_configuration(&c);
    match decode_configuration(&encoded) {
        Ok(back) => assert_eq!(back, c, "configuration changes on a round trip"),
        Err(e) => panic!("re-encoded configuration {encoded} does not decode: {e}"),
    }
    let _ = c.hnsw.check();
    let _ = Schema::of_collection(&c).to_json();
    // An index of a small dimension with the stored knobs (clamped into their ranges), used.
    let mut index = HnswIndex::new(3, &c.hnsw);
    for i in 0..4u64 {
        let x = i as f32;
        index.insert(SeqNo(i), &[x, 1.0 - x, 0.5]);
    }
    let hits = index.search(&[0.5, 0.5, 0.5], 3);
    assert!(hits.len() <= 3);
}

/// A record's `metadata` column, decoded as recovery decodes it, then filtered on.
fn metadata(text: &str) {
    // Recovery's direct decode and the reference one agree on every input.
    let direct = stored_metadata(text).decode_entries(str::to_owned).ok();
    let reference = stored_metadata(text)
        .decode()
        .ok()
        .map(|m| m.into_iter().collect::<Vec<_>>());
    assert_eq!(direct, reference, "the direct metadata decode disagrees");
    let Ok(m) = stored_metadata(text).decode() else {
        return;
    };
    let encoded = metadata_to_json(&m).to_string();
    match stored_metadata(&encoded).decode() {
        Ok(back) => assert_eq!(back, m, "metadata changes on a round trip"),
        Err(e) => panic!("re-encoded metadata {encoded} does not decode: {e}"),
    }
    let filters = [
        r#"{"i": {"$gte": 0}}"#,
        r#"{"$or": [{"s": "a"}, {"f": {"$lt": 1.5}}, {"sa": {"$contains": "a"}}]}"#,
        r#"{"b": {"$in": [true]}}"#,
    ];
    for f in filters {
        if let Ok(v) = serde_json::from_str(f) {
            if let Ok(w) = ochre_types::Where::from_json(&v) {
                let _ = w.matches("id", Some(&m), None);
            }
        }
    }
}

/// A record's `embedding` column.
fn embedding(bytes: &[u8]) {
    let Ok(raw) = raw_embedding(bytes) else {
        return;
    };
    let mut out = Vec::new();
    raw.append_to(&mut out);
    assert_eq!(out.len(), raw.dimension());
    assert!(!out.is_empty());
}

/// The first byte picks the column (`configuration`, `metadata` or `embedding`); the rest are its
/// bytes. Text columns that are not UTF-8 never reach a decoder (SQLite's text is read as a
/// `String`, which refuses them).
pub fn store_rows(data: &[u8]) {
    let Some((&column, bytes)) = data.split_first() else {
        return;
    };
    match column % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                configuration(text);
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                metadata(text);
            }
        }
        _ => embedding(bytes),
    }
}
