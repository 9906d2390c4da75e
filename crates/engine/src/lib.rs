//! Ochre: an embedded retrieval database for AI applications.
//!
//! An [`Ochre`] value is one database instance: ephemeral (in memory) or persistent (a data
//! directory). It holds tenants, databases in tenants, collections in databases, and records in
//! collections: an id, a dense embedding, an optional document, uri and metadata. Records are found
//! by nearest-neighbour search ([`Collection::query`]), by metadata and document filters, and by id.
//!
//! ```
//! use ochre::{Ochre, CreateCollection, RecordBatch, QueryRequest};
//!
//! let db = Ochre::ephemeral();
//! let info = db.create_collection("default_tenant", "default_database", CreateCollection {
//!     name: "docs".into(),
//!     ..Default::default()
//! })?;
//! let docs = db.collection(info.id)?;
//! docs.add(RecordBatch::new(
//!     vec!["a".into(), "b".into()],
//!     vec![vec![1.0, 0.0], vec![0.0, 1.0]],
//! ))?;
//! let hits = docs.query(QueryRequest::new(vec![vec![0.9, 0.1]]))?;
//! assert_eq!(hits.ids[0], ["a", "b"]);
//! # Ok::<(), ochre::Error>(())
//! ```
//!
//! Durability: in persistent mode every write call commits one SQLite transaction (WAL mode,
//! `synchronous=FULL`) before it returns, so an acknowledged write survives a crash and a batch is
//! applied entirely or not at all. The in-memory state (records, vector index) is rebuilt from the
//! store on open. One process at a time owns a directory (a `flock` on `LOCK`).
//!
//! This crate is not an HTTP server (see `ochre-server`) and computes no embeddings.

mod collection;
mod db;
mod error;
mod metaindex;
mod packed;
mod reclaim;
mod request;
pub mod search;
mod seqlist;
pub mod snapshot;
mod sparse;
mod validate;

pub use collection::{BulkLoadReport, Collection, ImportedGraph};
pub use db::Ochre;
pub use error::{Error, ErrorKind, Result};
pub use ochre_types::{
    validate_collection_name, CollectionConfiguration, CollectionId, ConfigError, DatabaseId,
    HnswConfig, HnswPatch, Metadata, MetadataValue, Space, SparseVector, UpdateMetadata, Where,
    WhereDocument,
};
pub use request::{
    CollectionInfo, CreateCollection, DatabaseInfo, DeleteRequest, GetRequest, GetResult, Include,
    ModifyCollection, QueryRequest, QueryResult, RecordBatch, TenantInfo,
};
pub use validate::WriteKind;

/// The largest embedding dimension a collection accepts (the largest common models use a few
/// thousand): one record can never cost more than 256 KiB of vector.
pub const MAX_DIMENSION: usize = 65_536;

/// The tenant every new store has.
pub const DEFAULT_TENANT: &str = "default_tenant";
/// The database every new store has, in [`DEFAULT_TENANT`], with the nil UUID as id.
pub const DEFAULT_DATABASE: &str = "default_database";
