//! Ochre's vocabulary: the types every other crate speaks.
//!
//! This crate holds identifiers ([`CollectionId`], [`DatabaseId`], [`SeqNo`]), record metadata
//! ([`MetadataValue`], [`Metadata`]), the filter language ([`Where`], [`WhereDocument`]) with its
//! parser and evaluator, distance spaces ([`Space`]) and collection configuration ([`HnswConfig`],
//! its patch [`HnswPatch`], [`CollectionConfiguration`]), and the name validators. Every fallible
//! function returns a typed error whose `Display` is Chroma's message.
//!
//! It is not a place for I/O, async code or storage: nothing here touches a file or a socket.
//!
//! Invariants:
//! - Filters from clients go through the parser ([`Where::from_json`],
//!   [`WhereDocument::from_json`]), which applies Chroma's grammar and typing rules. The AST's
//!   variants are public, so a program may build any filter directly; the evaluator gives every
//!   such value a meaning (it never panics).
//! - Every HNSW knob is range-checked in one place, [`HnswConfig::check`].
//! - Numbers in metadata compare exactly: an `i64` and an `f64` are compared as mathematical numbers.

mod config;
mod filter;
mod ids;
mod metadata;
mod names;

pub use config::{
    CollectionConfiguration, ConfigError, HnswConfig, HnswPatch, Space, UnknownSpace,
};
pub use filter::{DocOp, IdOp, MetaOp, Scalar, ScalarList, Where, WhereDocument, WhereError};
pub use ids::{CollectionId, DatabaseId, SeqNo};
pub use metadata::{
    compare_int_float, f32_as_f64, metadata_from_json, metadata_to_json, validate_record_metadata,
    Metadata, MetadataError, MetadataLookup, MetadataValue, SparseError, SparseVector,
    UpdateMetadata,
};
pub use names::{
    validate_collection_name, validate_database_name, validate_tenant_name, NameError,
};
