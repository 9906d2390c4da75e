//! A collection's sparse-vector index: the metadata key its schema indexes, whether BM25
//! weighting is on, and the inverted index over the records' vectors under that key.
//!
//! Like the metadata index it is derived from the records: filed and unfiled with them, rebuilt
//! on recovery, never stored.

use ochre_index::SparseIndex;
use ochre_types::{CollectionConfiguration, MetadataLookup, MetadataValue, SeqNo};

use crate::packed::PackedMetadata;

/// The sparse index of a collection whose schema enables one.
#[derive(Debug, Clone)]
pub(crate) struct SparseState {
    /// The metadata key holding the vectors.
    pub(crate) key: String,
    /// Query weights are scaled by each term's IDF over the collection.
    pub(crate) bm25: bool,
    pub(crate) index: SparseIndex,
}

/// What a collection's stored schema enables beside the vector index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaIndexes {
    /// The sparse-indexed key and its BM25 flag.
    pub(crate) sparse: Option<(String, bool)>,
    /// The `#document` full-text index (on unless the schema turns it off).
    pub(crate) fts: bool,
}

impl SchemaIndexes {
    /// Reads the schema kept in the configuration (Chroma's JSON shape; anything unreadable counts
    /// as the default: no sparse index, full-text on).
    pub(crate) fn of(c: &CollectionConfiguration) -> SchemaIndexes {
        let keys = c
            .schema
            .as_ref()
            .and_then(|s| s.get("keys"))
            .and_then(serde_json::Value::as_object);
        let sparse = keys.and_then(|keys| {
            keys.iter().find_map(|(k, vt)| {
                let ix = vt.get("sparse_vector")?.get("sparse_vector_index")?;
                if ix.get("enabled")?.as_bool()? {
                    let bm25 = ix
                        .get("config")
                        .and_then(|c| c.get("bm25"))
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false);
                    Some((k.clone(), bm25))
                } else {
                    None
                }
            })
        });
        let fts = keys
            .and_then(|k| k.get("#document"))
            .and_then(|d| d.get("string"))
            .and_then(|s| s.get("fts_index"))
            .and_then(|f| f.get("enabled"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        SchemaIndexes { sparse, fts }
    }
}

impl SparseState {
    /// An empty index for `key`.
    pub(crate) fn new(key: String, bm25: bool) -> Self {
        SparseState {
            key,
            bm25,
            index: SparseIndex::new(),
        }
    }

    /// Files (or unfiles) `seq` by its metadata's vector under the key.
    pub(crate) fn file(&mut self, seq: SeqNo, metadata: Option<&PackedMetadata>) {
        match metadata.and_then(|m| m.value(&self.key)) {
            Some(MetadataValue::Sparse(v)) => self.index.insert(seq, &v.indices, &v.values),
            _ => self.index.remove(seq),
        }
    }
}
