//! The collection schema of Chroma's API (spec §11.3–§11.5, §8.5).
//!
//! A schema says, per metadata key and value type, whether the inverted index is on, whether the
//! document has a full-text index, and how the vector index is configured. Ochre keeps every
//! value in its own indexes regardless; what the schema changes is what clients observe: the
//! `schema` field of a collection, the validation of a schema at create time, and the filters that
//! are refused because their key's index is disabled.
//!
//! The engine stores the reconciled schema as opaque JSON in the collection's configuration. The
//! vector-index parts of a stored schema are never trusted on read: they are rewritten from the
//! engine's HNSW configuration and embedding function ([`Schema::with_vector_config`]), so a
//! modify that changes `ef_search` shows up in the schema as it does in `configuration_json`.

use std::collections::{BTreeMap, BTreeSet};

use ochre::{CollectionConfiguration, HnswConfig, HnswPatch, MetadataValue, UpdateMetadata, Where};
use ochre_types::{DocOp, MetaOp, Scalar, ScalarList};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

const DOCUMENT_KEY: &str = "#document";
const EMBEDDING_KEY: &str = "#embedding";

/// A whole schema: defaults per value type, and per-key overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    #[serde(default)]
    pub defaults: ValueTypes,
    #[serde(default, alias = "key_overrides")]
    pub keys: BTreeMap<String, ValueTypes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmek: Option<Cmek>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_attached_function_id: Option<String>,
}

/// Customer-managed encryption key (Chroma Cloud); stored and returned, never used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Cmek {
    Gcp(String),
}

/// The indexes of each value type, for one key or for the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueTypes {
    #[serde(default, alias = "#string", skip_serializing_if = "Option::is_none")]
    pub string: Option<StringIndexes>,
    #[serde(
        default,
        alias = "#float_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub float_list: Option<FloatListIndexes>,
    #[serde(
        default,
        alias = "#sparse_vector",
        skip_serializing_if = "Option::is_none"
    )]
    pub sparse_vector: Option<SparseVectorIndexes>,
    #[serde(default, alias = "#int", skip_serializing_if = "Option::is_none")]
    pub int: Option<IntIndexes>,
    #[serde(default, alias = "#float", skip_serializing_if = "Option::is_none")]
    pub float: Option<FloatIndexes>,
    #[serde(default, alias = "#bool", skip_serializing_if = "Option::is_none")]
    pub bool: Option<BoolIndexes>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StringIndexes {
    #[serde(default, alias = "$fts_index", skip_serializing_if = "Option::is_none")]
    pub fts_index: Option<Index<Empty>>,
    #[serde(
        default,
        alias = "$string_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub string_inverted_index: Option<Index<Empty>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloatListIndexes {
    #[serde(
        default,
        alias = "$vector_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub vector_index: Option<Index<VectorConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVectorIndexes {
    #[serde(
        default,
        alias = "$sparse_vector_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub sparse_vector_index: Option<Index<SparseConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntIndexes {
    #[serde(
        default,
        alias = "$int_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub int_inverted_index: Option<Index<Empty>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloatIndexes {
    #[serde(
        default,
        alias = "$float_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub float_inverted_index: Option<Index<Empty>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoolIndexes {
    #[serde(
        default,
        alias = "$bool_inverted_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub bool_inverted_index: Option<Index<Empty>>,
}

/// One index: on or off, and its configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index<C> {
    pub enabled: bool,
    #[serde(default)]
    pub config: C,
}

/// The configuration of the inverted and full-text indexes: no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VectorConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_function: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "hnsw_without_space"
    )]
    pub hnsw: Option<HnswPatch>,
    /// Chroma's distributed index; a single node turns it into HNSW with default parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spann: Option<Value>,
}

/// A schema's HNSW block over the defaults (or a base): `default` where the user's says nothing.
fn merged_hnsw(default: Option<&HnswPatch>, user: Option<&HnswPatch>) -> Option<HnswPatch> {
    match (default, user) {
        (Some(d), Some(u)) => Some(u.or(d)),
        (d, u) => u.or(d).cloned(),
    }
}

fn is_default_hnsw(h: &HnswPatch) -> bool {
    *h == HnswPatch::of(&HnswConfig::default())
}

/// A schema's `hnsw` block (Chroma's `HnswIndexConfig`): no `space`, which the vector index
/// config holds.
fn hnsw_without_space<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<HnswPatch>, D::Error> {
    crate::wire::patch_with_fields(
        d,
        &[
            "ef_construction",
            "max_neighbors",
            "ef_search",
            "num_threads",
            "batch_size",
            "sync_threshold",
            "resize_factor",
        ],
    )
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_function: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm25: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

fn on<C: Default>(enabled: bool) -> Option<Index<C>> {
    Some(Index {
        enabled,
        config: C::default(),
    })
}

/// Whether an embedding function descriptor counts as "the default" (absent, unknown, or the
/// known function named `default`); a legacy descriptor does not.
pub fn is_default_embedding_function(ef: Option<&Value>) -> bool {
    match ef {
        None | Some(Value::Null) => true,
        Some(v) => match v.get("type").and_then(Value::as_str) {
            Some("unknown") => true,
            Some("known") => v.get("name").and_then(Value::as_str) == Some("default"),
            _ => false,
        },
    }
}

/// Whether a resolved configuration is Chroma's default one (all HNSW parameters at their
/// defaults, l2, and a default embedding function).
pub fn is_default_configuration(c: &CollectionConfiguration) -> bool {
    c.hnsw == HnswConfig::default() && is_default_embedding_function(c.embedding_function.as_ref())
}

/// The value type of a metadata value or filter operand, named as in Chroma's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ValueType {
    Bool,
    Int,
    Float,
    Str,
    Sparse,
}

impl ValueType {
    fn name(self) -> &'static str {
        match self {
            ValueType::Bool => "Bool",
            ValueType::Int => "Int",
            ValueType::Float => "Float",
            ValueType::Str => "Str",
            ValueType::Sparse => "SparseVector",
        }
    }

    /// The type whose index a metadata value uses (arrays use their element type's).
    pub fn of(v: &MetadataValue) -> ValueType {
        match v {
            MetadataValue::Bool(_) | MetadataValue::BoolArray(_) => ValueType::Bool,
            MetadataValue::Int(_) | MetadataValue::IntArray(_) => ValueType::Int,
            MetadataValue::Float(_) | MetadataValue::FloatArray(_) => ValueType::Float,
            MetadataValue::Str(_) | MetadataValue::StrArray(_) => ValueType::Str,
            MetadataValue::Sparse(_) => ValueType::Sparse,
        }
    }

    fn of_scalar(s: &Scalar) -> ValueType {
        match s {
            Scalar::Bool(_) => ValueType::Bool,
            Scalar::Int(_) => ValueType::Int,
            Scalar::Float(_) => ValueType::Float,
            Scalar::Str(_) => ValueType::Str,
        }
    }

    fn of_list(s: &ScalarList) -> ValueType {
        match s {
            ScalarList::Bool(_) => ValueType::Bool,
            ScalarList::Int(_) => ValueType::Int,
            ScalarList::Float(_) => ValueType::Float,
            ScalarList::Str(_) => ValueType::Str,
        }
    }
}

impl ValueTypes {
    /// Whether the inverted index for `ty` is on here; `None` when this entry does not say.
    fn inverted_enabled(&self, ty: ValueType) -> Option<bool> {
        match ty {
            ValueType::Bool => self.bool.as_ref()?.bool_inverted_index.as_ref(),
            ValueType::Int => self.int.as_ref()?.int_inverted_index.as_ref(),
            ValueType::Float => self.float.as_ref()?.float_inverted_index.as_ref(),
            ValueType::Str => self.string.as_ref()?.string_inverted_index.as_ref(),
            ValueType::Sparse => return Some(self.sparse_index()?.enabled),
        }
        .map(|i| i.enabled)
    }

    fn has(&self, ty: ValueType) -> bool {
        match ty {
            ValueType::Bool => self.bool.is_some(),
            ValueType::Int => self.int.is_some(),
            ValueType::Float => self.float.is_some(),
            ValueType::Str => self.string.is_some(),
            ValueType::Sparse => self.sparse_vector.is_some(),
        }
    }

    fn copy_from(&mut self, defaults: &ValueTypes, ty: ValueType) {
        match ty {
            ValueType::Bool => self.bool = defaults.bool.clone(),
            ValueType::Int => self.int = defaults.int.clone(),
            ValueType::Float => self.float = defaults.float.clone(),
            ValueType::Str => self.string = defaults.string.clone(),
            ValueType::Sparse => self.sparse_vector = defaults.sparse_vector.clone(),
        }
    }

    fn vector_index_mut(&mut self) -> Option<&mut Index<VectorConfig>> {
        self.float_list.as_mut()?.vector_index.as_mut()
    }

    fn vector_index(&self) -> Option<&Index<VectorConfig>> {
        self.float_list.as_ref()?.vector_index.as_ref()
    }

    fn sparse_index(&self) -> Option<&Index<SparseConfig>> {
        self.sparse_vector.as_ref()?.sparse_vector_index.as_ref()
    }

    fn fts_index(&self) -> Option<&Index<Empty>> {
        self.string.as_ref()?.fts_index.as_ref()
    }

    /// `user` over `self`, index by index: the user's flag and config win, the rest is kept.
    fn merged_with(&self, user: &ValueTypes) -> ValueTypes {
        fn pick<T: Clone>(d: &Option<T>, u: &Option<T>) -> Option<T> {
            u.clone().or_else(|| d.clone())
        }
        let string = match (&self.string, &user.string) {
            (Some(d), Some(u)) => Some(StringIndexes {
                fts_index: pick(&d.fts_index, &u.fts_index),
                string_inverted_index: pick(&d.string_inverted_index, &u.string_inverted_index),
            }),
            (d, u) => pick(d, u),
        };
        let float_list = match (&self.float_list, &user.float_list) {
            (Some(d), Some(u)) => Some(FloatListIndexes {
                vector_index: match (&d.vector_index, &u.vector_index) {
                    (Some(d), Some(u)) => Some(Index {
                        enabled: u.enabled,
                        config: VectorConfig {
                            space: pick(&d.config.space, &u.config.space),
                            embedding_function: pick(
                                &d.config.embedding_function,
                                &u.config.embedding_function,
                            ),
                            source_key: pick(&d.config.source_key, &u.config.source_key),
                            // A single node runs HNSW: a SPANN block is dropped, its space kept.
                            hnsw: merged_hnsw(d.config.hnsw.as_ref(), u.config.hnsw.as_ref()),
                            spann: None,
                        },
                    }),
                    (d, u) => pick(d, u),
                },
            }),
            (d, u) => pick(d, u),
        };
        let sparse_vector = match (&self.sparse_vector, &user.sparse_vector) {
            (Some(d), Some(u)) => Some(SparseVectorIndexes {
                sparse_vector_index: match (&d.sparse_vector_index, &u.sparse_vector_index) {
                    (Some(d), Some(u)) => Some(Index {
                        enabled: u.enabled,
                        config: SparseConfig {
                            embedding_function: pick(
                                &d.config.embedding_function,
                                &u.config.embedding_function,
                            ),
                            source_key: pick(&d.config.source_key, &u.config.source_key),
                            bm25: pick(&d.config.bm25, &u.config.bm25),
                            algorithm: pick(&d.config.algorithm, &u.config.algorithm),
                        },
                    }),
                    (d, u) => pick(d, u),
                },
            }),
            (d, u) => pick(d, u),
        };
        ValueTypes {
            string,
            float_list,
            sparse_vector,
            int: match (&self.int, &user.int) {
                (Some(d), Some(u)) => Some(IntIndexes {
                    int_inverted_index: pick(&d.int_inverted_index, &u.int_inverted_index),
                }),
                (d, u) => pick(d, u),
            },
            float: match (&self.float, &user.float) {
                (Some(d), Some(u)) => Some(FloatIndexes {
                    float_inverted_index: pick(&d.float_inverted_index, &u.float_inverted_index),
                }),
                (d, u) => pick(d, u),
            },
            bool: match (&self.bool, &user.bool) {
                (Some(d), Some(u)) => Some(BoolIndexes {
                    bool_inverted_index: pick(&d.bool_inverted_index, &u.bool_inverted_index),
                }),
                (d, u) => pick(d, u),
            },
        }
    }

    /// Whether these are the default `defaults` (every inverted index on, FTS and vector and
    /// sparse indexes off with default configs).
    fn is_default_defaults(&self) -> bool {
        let inverted_on = [
            ValueType::Bool,
            ValueType::Int,
            ValueType::Float,
            ValueType::Str,
        ]
        .iter()
        .all(|&t| self.inverted_enabled(t) != Some(false));
        let fts_off = self.fts_index().is_none_or(|i| !i.enabled);
        let vector_default = self.vector_index().is_none_or(|v| {
            !v.enabled && v.config.source_key.is_none() && is_default_vector_config(&v.config)
        });
        let sparse_default = self.sparse_index().is_none_or(|s| {
            !s.enabled
                && is_default_embedding_function(s.config.embedding_function.as_ref())
                && s.config.source_key.is_none()
                && s.config.bm25 != Some(true)
        });
        inverted_on && fts_off && vector_default && sparse_default
    }

    fn is_default_embedding_key(&self) -> bool {
        self.string.is_none()
            && self.int.is_none()
            && self.float.is_none()
            && self.bool.is_none()
            && self.sparse_vector.is_none()
            && self.vector_index().is_none_or(|v| {
                v.enabled
                    && v.config.source_key.as_deref() == Some(DOCUMENT_KEY)
                    && is_default_vector_config(&v.config)
            })
    }

    fn is_default_document_key(&self) -> bool {
        self.float_list.is_none()
            && self.int.is_none()
            && self.float.is_none()
            && self.bool.is_none()
            && self.sparse_vector.is_none()
            && self.fts_index().is_none_or(|i| i.enabled)
            && self
                .string
                .as_ref()
                .and_then(|s| s.string_inverted_index.as_ref())
                .is_none_or(|i| !i.enabled)
    }
}

fn is_default_vector_config(c: &VectorConfig) -> bool {
    is_default_embedding_function(c.embedding_function.as_ref())
        && c.space.as_deref().is_none_or(|s| s == "l2")
        && match (&c.hnsw, &c.spann) {
            (Some(h), None) => is_default_hnsw(h),
            (None, Some(s)) => s.as_object().is_none_or(|o| o.is_empty()),
            (None, None) => true,
            (Some(_), Some(_)) => false,
        }
}

/// A schema that breaks one of Chroma's rules (its messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("Cannot set source_attached_function_id. This field is reserved for system use.")]
    AttachedFunction,
    #[error(
        "Vector index cannot be enabled by default. It can only be enabled on #embedding field."
    )]
    VectorIndexByDefault,
    #[error("Both spann and hnsw config cannot be present at the same time.")]
    SpannAndHnsw,
    #[error("Sparse vector index cannot be enabled by default. Please enable sparse vector index on specific keys. At most one sparse vector index is allowed for the collection.")]
    SparseByDefault,
    #[error("Full text search / regular expression index cannot be enabled by default. It can only be enabled on #document field.")]
    FtsByDefault,
    #[error("key cannot begin with '#'. Keys starting with '#' are reserved for system use: {0}")]
    ReservedKey(String),
    #[error("Document field cannot have any value types other than string: {0}")]
    DocumentTypes(String),
    #[error("Embedding field cannot have any value types other than float_list: {0}")]
    EmbeddingTypes(String),
    #[error("Vector index can only be enabled on #embedding field: {0}")]
    VectorIndexKey(String),
    #[error("Vector index can only source from #document")]
    VectorSource,
    #[error("If source_key is provided then embedding_function must also be provided since there is no default embedding function.")]
    SourceWithoutFunction,
    #[error("source_key cannot begin with '#'. The only valid key starting with '#' is Key.DOCUMENT or '#document'.")]
    SparseSource,
    #[error(
        "Full text search / regular expression index can only be enabled on #document field: {0}"
    )]
    FtsKey(String),
    #[error("String inverted index can not be enabled on #document key: {0}")]
    DocumentInverted(String),
    #[error("At most one sparse vector index is allowed for the collection: {0:?}")]
    ManySparse(Vec<String>),
    #[error("CMEK does not match expected pattern: Gcp({0:?})")]
    Cmek(String),
}

impl Schema {
    /// The schema of a new collection with this vector-index configuration.
    pub fn default_for(c: &CollectionConfiguration) -> Schema {
        let inverted = ValueTypes {
            string: Some(StringIndexes {
                fts_index: on(false),
                string_inverted_index: on(true),
            }),
            float_list: Some(FloatListIndexes {
                vector_index: on(false),
            }),
            sparse_vector: Some(SparseVectorIndexes {
                sparse_vector_index: Some(Index {
                    enabled: false,
                    config: SparseConfig {
                        embedding_function: Some(serde_json::json!({"type": "unknown"})),
                        bm25: Some(false),
                        ..Default::default()
                    },
                }),
            }),
            int: Some(IntIndexes {
                int_inverted_index: on(true),
            }),
            float: Some(FloatIndexes {
                float_inverted_index: on(true),
            }),
            bool: Some(BoolIndexes {
                bool_inverted_index: on(true),
            }),
        };
        let mut keys = BTreeMap::new();
        keys.insert(
            EMBEDDING_KEY.to_string(),
            ValueTypes {
                float_list: Some(FloatListIndexes {
                    vector_index: Some(Index {
                        enabled: true,
                        config: VectorConfig {
                            source_key: Some(DOCUMENT_KEY.to_string()),
                            ..Default::default()
                        },
                    }),
                }),
                ..Default::default()
            },
        );
        keys.insert(
            DOCUMENT_KEY.to_string(),
            ValueTypes {
                string: Some(StringIndexes {
                    fts_index: on(true),
                    string_inverted_index: on(false),
                }),
                ..Default::default()
            },
        );
        let mut s = Schema {
            defaults: inverted,
            keys,
            cmek: None,
            source_attached_function_id: None,
        };
        s.set_vector_config(c);
        s
    }

    /// Parses a schema sent by a client.
    ///
    /// # Errors
    /// 422 for a body that is not a schema.
    pub fn parse(v: &Value) -> Result<Schema, ApiError> {
        Schema::deserialize(v).map_err(|e| ApiError::shape(format!("schema: {e}")))
    }

    /// The stored schema of a collection (or the default one), with its vector-index parts
    /// rewritten from the engine's configuration.
    pub fn of_collection(c: &CollectionConfiguration) -> Schema {
        let mut s = c
            .schema
            .as_ref()
            .and_then(|v| Schema::deserialize(v).ok())
            .unwrap_or_else(|| Schema::default_for(c));
        s.set_vector_config(c);
        s
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Writes space, HNSW parameters and embedding function into both vector-index configs
    /// (defaults and `#embedding`).
    fn set_vector_config(&mut self, c: &CollectionConfiguration) {
        let slots = [
            self.defaults.vector_index_mut(),
            self.keys
                .get_mut(EMBEDDING_KEY)
                .and_then(ValueTypes::vector_index_mut),
        ];
        for vi in slots.into_iter().flatten() {
            vi.config.space = Some(c.hnsw.space.as_str().to_string());
            vi.config.hnsw = Some(HnswPatch::of(&c.hnsw));
            vi.config.spann = None;
            vi.config.embedding_function = c.embedding_function.clone();
        }
    }

    /// The checks Chroma runs on a schema in a create request (spec §11.5); the message is the
    /// part after `Validation error: schema: `.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.source_attached_function_id.is_some() {
            return Err(SchemaError::AttachedFunction);
        }
        if let Some(v) = self.defaults.vector_index() {
            if v.enabled {
                return Err(SchemaError::VectorIndexByDefault);
            }
            if v.config.hnsw.is_some() && v.config.spann.is_some() {
                return Err(SchemaError::SpannAndHnsw);
            }
        }
        if self.defaults.sparse_index().is_some_and(|s| s.enabled) {
            return Err(SchemaError::SparseByDefault);
        }
        if self.defaults.fts_index().is_some_and(|i| i.enabled) {
            return Err(SchemaError::FtsByDefault);
        }
        let mut sparse_keys = Vec::new();
        for (key, vt) in &self.keys {
            if key.starts_with('#') && key != DOCUMENT_KEY && key != EMBEDDING_KEY {
                return Err(SchemaError::ReservedKey(key.clone()));
            }
            let others = vt.int.is_some() || vt.float.is_some() || vt.bool.is_some();
            if key == DOCUMENT_KEY
                && (others || vt.float_list.is_some() || vt.sparse_vector.is_some())
            {
                return Err(SchemaError::DocumentTypes(key.clone()));
            }
            if key == EMBEDDING_KEY && (others || vt.string.is_some() || vt.sparse_vector.is_some())
            {
                return Err(SchemaError::EmbeddingTypes(key.clone()));
            }
            if let Some(v) = vt.vector_index() {
                if v.enabled && key != EMBEDDING_KEY {
                    return Err(SchemaError::VectorIndexKey(key.clone()));
                }
                if v.config
                    .source_key
                    .as_deref()
                    .is_some_and(|k| k != DOCUMENT_KEY)
                {
                    return Err(SchemaError::VectorSource);
                }
            }
            if let Some(s) = vt.sparse_index() {
                if s.enabled {
                    sparse_keys.push(key.clone());
                    if s.config.source_key.is_some() && s.config.embedding_function.is_none() {
                        return Err(SchemaError::SourceWithoutFunction);
                    }
                }
                if s.config
                    .source_key
                    .as_deref()
                    .is_some_and(|k| k.starts_with('#') && k != DOCUMENT_KEY)
                {
                    return Err(SchemaError::SparseSource);
                }
            }
            if vt.fts_index().is_some_and(|i| i.enabled) && key != DOCUMENT_KEY {
                return Err(SchemaError::FtsKey(key.clone()));
            }
            let inverted = vt
                .string
                .as_ref()
                .and_then(|s| s.string_inverted_index.as_ref());
            if key == DOCUMENT_KEY && inverted.is_some_and(|i| i.enabled) {
                return Err(SchemaError::DocumentInverted(key.clone()));
            }
        }
        if sparse_keys.len() > 1 {
            return Err(SchemaError::ManySparse(sparse_keys));
        }
        if let Some(Cmek::Gcp(resource)) = &self.cmek {
            if !is_gcp_key(resource) {
                return Err(SchemaError::Cmek(resource.clone()));
            }
        }
        Ok(())
    }

    /// Whether this schema is Chroma's default schema (so that a configuration may set it).
    pub fn is_default(&self) -> bool {
        self.defaults.is_default_defaults()
            && self.cmek.is_none()
            && self.keys.iter().all(|(k, vt)| match k.as_str() {
                EMBEDDING_KEY => vt.is_default_embedding_key(),
                DOCUMENT_KEY => vt.is_default_document_key(),
                _ => false,
            })
    }

    /// A user's (possibly partial) schema over the default one.
    pub fn merged_onto(&self, default: &Schema) -> Schema {
        let mut keys = default.keys.clone();
        for (k, user) in &self.keys {
            let merged = match keys.get(k) {
                Some(d) => d.merged_with(user),
                None => user.clone(),
            };
            keys.insert(k.clone(), merged);
        }
        Schema {
            defaults: default.defaults.merged_with(&self.defaults),
            keys,
            cmek: self.cmek.clone().or_else(|| default.cmek.clone()),
            source_attached_function_id: None,
        }
    }

    pub fn sparse_enabled(&self) -> bool {
        self.defaults.sparse_index().is_some_and(|s| s.enabled)
            || self
                .keys
                .values()
                .any(|vt| vt.sparse_index().is_some_and(|s| s.enabled))
    }

    /// The keys with an enabled sparse vector index, and its configuration (at most one for a
    /// schema that passed [`Schema::validate`]).
    pub fn sparse_indexes(&self) -> impl Iterator<Item = (&str, &SparseConfig)> {
        self.keys.iter().filter_map(|(k, vt)| {
            vt.sparse_index()
                .filter(|s| s.enabled)
                .map(|s| (k.as_str(), &s.config))
        })
    }

    /// The vector index config that drives the collection (`#embedding`'s, else the defaults').
    fn embedding_vector_config(&self) -> Option<&VectorConfig> {
        self.keys
            .get(EMBEDDING_KEY)
            .and_then(ValueTypes::vector_index)
            .or_else(|| self.defaults.vector_index())
            .map(|v| &v.config)
    }

    fn is_fts_enabled(&self) -> bool {
        self.keys
            .get(DOCUMENT_KEY)
            .and_then(ValueTypes::fts_index)
            .or_else(|| self.defaults.fts_index())
            .is_none_or(|i| i.enabled)
    }

    fn inverted_enabled(&self, key: &str, ty: ValueType) -> bool {
        self.keys
            .get(key)
            .and_then(|vt| vt.inverted_enabled(ty))
            .or_else(|| self.defaults.inverted_enabled(ty))
            .unwrap_or(true)
    }

    /// Adds `keys[key][type]` (copied from the defaults) for a key/type pair first seen in a
    /// write; `true` when the schema changed. `chroma:` keys are not tracked.
    pub fn ensure_key(&mut self, key: &str, ty: ValueType) -> bool {
        if key.starts_with("chroma:") {
            return false;
        }
        let entry = self.keys.entry(key.to_string()).or_default();
        if entry.has(ty) {
            return false;
        }
        entry.copy_from(&self.defaults, ty);
        true
    }

    /// Adds key/type pairs (see [`key_types`]); `true` when the schema changed.
    pub fn ensure_keys(&mut self, pairs: &BTreeSet<(String, ValueType)>) -> bool {
        let mut changed = false;
        for (k, t) in pairs {
            changed |= self.ensure_key(k, *t);
        }
        changed
    }

    /// Refuses filters on keys/types whose index is disabled, and document filters when the
    /// document's full-text index is disabled (spec §8.5).
    ///
    /// # Errors
    /// 400 `InvalidArgumentError`.
    pub fn check_filters(
        &self,
        where_: Option<&Where>,
        where_document: bool,
    ) -> Result<(), ApiError> {
        if where_document && !self.is_fts_enabled() {
            return Err(fts_disabled());
        }
        match where_ {
            Some(w) => self.check_where(w),
            None => Ok(()),
        }
    }

    fn check_where(&self, w: &Where) -> Result<(), ApiError> {
        match w {
            Where::And(c) | Where::Or(c) => c.iter().try_for_each(|w| self.check_where(w)),
            Where::Document(_) if !self.is_fts_enabled() => Err(fts_disabled()),
            Where::Document(DocOp::Contains(_) | DocOp::NotContains(_))
            | Where::Document(DocOp::Regex(_) | DocOp::NotRegex(_))
            | Where::Id(_) => Ok(()),
            Where::Meta { key, op } => {
                let ty = match op {
                    MetaOp::Eq(s)
                    | MetaOp::Ne(s)
                    | MetaOp::Gt(s)
                    | MetaOp::Gte(s)
                    | MetaOp::Lt(s)
                    | MetaOp::Lte(s)
                    | MetaOp::Contains(s)
                    | MetaOp::NotContains(s) => ValueType::of_scalar(s),
                    MetaOp::In(l) | MetaOp::Nin(l) => ValueType::of_list(l),
                };
                if self.inverted_enabled(key, ty) {
                    Ok(())
                } else {
                    Err(ApiError::invalid(format!(
                        "Cannot filter using metadata key '{key}' with type '{}' because indexing is disabled",
                        ty.name()
                    )))
                }
            }
        }
    }
}

/// The metadata key/type pairs a write carries (deletions carry none).
pub fn key_types(metadatas: &[Option<UpdateMetadata>]) -> BTreeSet<(String, ValueType)> {
    let mut out = BTreeSet::new();
    for m in metadatas.iter().flatten() {
        for (k, v) in m {
            if let Some(v) = v {
                out.insert((k.clone(), ValueType::of(v)));
            }
        }
    }
    out
}

fn fts_disabled() -> ApiError {
    ApiError::invalid("Cannot filter using full-text search because FTS indexing is disabled")
}

/// `projects/.+/locations/.+/keyRings/.+/cryptoKeys/.+`
fn is_gcp_key(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let labels = ["projects", "locations", "keyRings", "cryptoKeys"];
    parts.len() >= 8
        && labels
            .iter()
            .enumerate()
            .all(|(i, l)| parts[2 * i] == *l && !parts[2 * i + 1].is_empty())
}

/// Reconciles the configuration (already resolved from `configuration` and `hnsw:*` metadata)
/// with the user's schema at create time (spec §11.3), returning the configuration to store
/// (with the full schema inside).
///
/// # Errors
/// 400 for an invalid schema, for a non-default configuration next to a non-default schema, and
/// for an enabled sparse vector index (not available on a single node); 422 for a malformed
/// schema.
pub fn reconcile(
    mut config: CollectionConfiguration,
    user: Option<&Value>,
) -> Result<CollectionConfiguration, ApiError> {
    let user = user
        .filter(|v| !v.is_null())
        .map(Schema::parse)
        .transpose()?;
    if let Some(u) = &user {
        u.validate()
            .map_err(|m| ApiError::invalid(format!("Validation error: schema: {m}")))?;
    }
    let config_default = is_default_configuration(&config);
    if user.as_ref().is_some_and(|u| !u.is_default()) && !config_default {
        return Err(ApiError::invalid(
            "Failed to reconcile schema: Cannot set both collection config and schema simultaneously",
        ));
    }
    let default = Schema::default_for(&config);
    let merged = user.map(|u| u.merged_onto(&default));
    let schema = match merged {
        Some(m) if config_default && !m.is_default() => m,
        _ => default,
    };
    if let Some(vc) = schema.embedding_vector_config() {
        let mut hnsw = HnswConfig::default();
        if let Some(space) = &vc.space {
            hnsw.space = space.parse().map_err(|e: ochre_types::UnknownSpace| {
                ApiError::shape(format!("schema: space: {e}"))
            })?;
        }
        if let Some(h) = &vc.hnsw {
            h.apply(&mut hnsw);
        }
        if config_default {
            config.hnsw = hnsw;
            if !is_default_embedding_function(vc.embedding_function.as_ref())
                || config.embedding_function.is_none()
            {
                config.embedding_function = vc.embedding_function.clone();
            }
        }
    }
    config.schema = Some(schema.to_json());
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn default_config() -> CollectionConfiguration {
        CollectionConfiguration::default()
    }

    #[test]
    fn default_schema_matches_chroma_shape() {
        let s = Schema::default_for(&default_config()).to_json();
        let threads = HnswConfig::default().num_threads;
        assert_eq!(
            s,
            json!({"defaults": {
                "string": {"fts_index": {"enabled": false, "config": {}}, "string_inverted_index": {"enabled": true, "config": {}}},
                "float_list": {"vector_index": {"enabled": false, "config": {"space": "l2",
                    "hnsw": {"ef_construction": 100, "max_neighbors": 16, "ef_search": 100, "num_threads": threads,
                             "batch_size": 100, "sync_threshold": 1000, "resize_factor": 1.2}}}},
                "sparse_vector": {"sparse_vector_index": {"enabled": false, "config": {"embedding_function": {"type": "unknown"}, "bm25": false}}},
                "int": {"int_inverted_index": {"enabled": true, "config": {}}},
                "float": {"float_inverted_index": {"enabled": true, "config": {}}},
                "bool": {"bool_inverted_index": {"enabled": true, "config": {}}}},
             "keys": {
                "#embedding": {"float_list": {"vector_index": {"enabled": true, "config": {"space": "l2", "source_key": "#document",
                    "hnsw": {"ef_construction": 100, "max_neighbors": 16, "ef_search": 100, "num_threads": threads,
                             "batch_size": 100, "sync_threshold": 1000, "resize_factor": 1.2}}}}},
                "#document": {"string": {"fts_index": {"enabled": true, "config": {}}, "string_inverted_index": {"enabled": false, "config": {}}}}}})
        );
        assert!(Schema::default_for(&default_config()).is_default());
    }

    #[test]
    fn aliases_are_accepted() {
        let s = Schema::parse(&json!({"key_overrides": {"x": {"#string": {"$string_inverted_index": {"enabled": false, "config": {}}}}}})).unwrap();
        assert!(!s.inverted_enabled("x", ValueType::Str));
        assert!(s.inverted_enabled("x", ValueType::Int));
        assert!(Schema::parse(&json!({"defaults": {"int": {"int_inverted_index": {"enabled": true, "config": {"bogus": 1}}}}})).is_err());
    }

    #[test]
    fn partial_user_schema_is_merged_onto_defaults() {
        let user = json!({"keys": {"tag": {"string": {"string_inverted_index": {"enabled": false, "config": {}}}}}});
        let c = reconcile(default_config(), Some(&user)).unwrap();
        let s = Schema::of_collection(&c);
        assert_eq!(s.keys.len(), 3);
        assert_eq!(s.defaults, Schema::default_for(&c).defaults);
        let err = s.check_filters(
            Some(&Where::from_json(&json!({"tag": "a"})).unwrap()),
            false,
        );
        assert_eq!(
            err.unwrap_err().message,
            "Cannot filter using metadata key 'tag' with type 'Str' because indexing is disabled"
        );
        s.check_filters(Some(&Where::from_json(&json!({"tag": 3})).unwrap()), false)
            .unwrap();
        s.check_filters(
            Some(&Where::from_json(&json!({"other": "a"})).unwrap()),
            true,
        )
        .unwrap();
    }

    #[test]
    fn config_and_schema_conflict() {
        let mut config = default_config();
        config.embedding_function = Some(json!({"type": "known", "name": "mine", "config": {}}));
        let user = json!({"keys": {"#embedding": {"float_list": {"vector_index": {"enabled": true,
            "config": {"embedding_function": {"type": "known", "name": "other", "config": {}}, "source_key": "#document"}}}}}});
        let e = reconcile(config.clone(), Some(&user)).unwrap_err();
        assert!(e
            .message
            .contains("Cannot set both collection config and schema"));
        // A default schema next to the configuration takes the configuration's function.
        let c = reconcile(
            config,
            Some(&Schema::default_for(&default_config()).to_json()),
        )
        .unwrap();
        let s = Schema::of_collection(&c).to_json();
        assert_eq!(
            s["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["embedding_function"]
                ["name"],
            "mine"
        );
        assert_eq!(
            s["defaults"]["float_list"]["vector_index"]["config"]["embedding_function"]["name"],
            "mine"
        );
    }

    #[test]
    fn spann_schema_becomes_hnsw_with_its_space() {
        let user = json!({"keys": {"#embedding": {"float_list": {"vector_index": {"enabled": true,
            "config": {"space": "cosine", "spann": {"search_nprobe": 16, "ef_construction": 120}}}}}}});
        let c = reconcile(default_config(), Some(&user)).unwrap();
        assert_eq!(c.hnsw.space.as_str(), "cosine");
        assert_eq!(c.hnsw.ef_construction, 100);
        let s = Schema::of_collection(&c).to_json();
        let vi = &s["keys"]["#embedding"]["float_list"]["vector_index"]["config"];
        assert!(vi.get("spann").is_none());
        assert_eq!(vi["hnsw"]["ef_construction"], 100);
    }

    #[test]
    fn validation_messages() {
        let cases = [
            (
                json!({"defaults": {"float_list": {"vector_index": {"enabled": true, "config": {}}}}}),
                "Vector index cannot be enabled by default",
            ),
            (json!({"keys": {"#foo": {}}}), "key cannot begin with '#'"),
            (
                json!({"keys": {"#document": {"int": {"int_inverted_index": {"enabled": true, "config": {}}}}}}),
                "Document field cannot have",
            ),
            (
                json!({"keys": {"x": {"string": {"fts_index": {"enabled": true, "config": {}}}}}}),
                "can only be enabled on #document field: x",
            ),
            (
                json!({"keys": {"x": {"float_list": {"vector_index": {"enabled": true, "config": {}}}}}}),
                "Vector index can only be enabled on #embedding field: x",
            ),
            (
                json!({"cmek": {"gcp": "nope"}}),
                "CMEK does not match expected pattern",
            ),
        ];
        for (schema, msg) in cases {
            let e = reconcile(default_config(), Some(&schema)).unwrap_err();
            assert!(
                e.message.starts_with("Validation error: schema: "),
                "{}",
                e.message
            );
            assert!(e.message.contains(msg), "{} vs {msg}", e.message);
        }
        let sparse = json!({"keys": {"s": {"sparse_vector": {"sparse_vector_index": {"enabled": true, "config": {}}}}}});
        // Chroma refuses a sparse index on a single node; Ochre has one.
        let c = reconcile(default_config(), Some(&sparse)).expect("sparse index accepted");
        assert!(Schema::of_collection(&c).sparse_enabled());
        assert!(is_gcp_key("projects/p/locations/l/keyRings/r/cryptoKeys/k"));
    }

    #[test]
    fn key_evolution_copies_defaults() {
        let mut s = Schema::default_for(&default_config());
        let mut m = UpdateMetadata::new();
        m.insert("x".into(), Some(MetadataValue::Int(1)));
        m.insert("t".into(), Some(MetadataValue::StrArray(vec!["a".into()])));
        m.insert(
            "chroma:document".into(),
            Some(MetadataValue::Str("d".into())),
        );
        let pairs = key_types(&[Some(m), None]);
        assert!(s.ensure_keys(&pairs));
        assert!(!s.ensure_keys(&pairs));
        let j = s.to_json();
        assert_eq!(j["keys"]["x"]["int"]["int_inverted_index"]["enabled"], true);
        assert!(j["keys"]["x"].get("string").is_none());
        assert!(j["keys"]["t"]["string"].is_object());
        assert!(j["keys"].get("chroma:document").is_none());
    }
}
