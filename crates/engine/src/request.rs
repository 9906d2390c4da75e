//! Requests and results of the record and collection operations.

use ochre_types::{
    CollectionConfiguration, CollectionId, DatabaseId, HnswPatch, Metadata, UpdateMetadata, Where,
    WhereDocument,
};

/// A tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantInfo {
    pub name: String,
    /// Set by `update_tenant`; Chroma Cloud's resource name.
    pub resource_name: Option<String>,
}

/// A database.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseInfo {
    pub id: DatabaseId,
    pub name: String,
    pub tenant: String,
}

/// A collection as callers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    pub id: CollectionId,
    pub name: String,
    pub tenant: String,
    pub database: String,
    pub metadata: Option<Metadata>,
    pub configuration: CollectionConfiguration,
    /// Fixed by the first write that carries an embedding; `None` before.
    pub dimension: Option<u32>,
    /// Collections forked from this one.
    pub forks: u64,
    /// Record operations ever written: one per id of each add, upsert, update and delete (what
    /// Chroma's `indexing_status` counts). Every one is indexed before its write returns.
    pub total_ops: u64,
}

/// Arguments of `create_collection`.
#[derive(Debug, Clone, Default)]
pub struct CreateCollection {
    pub name: String,
    /// `None` or a non-empty map.
    pub metadata: Option<Metadata>,
    pub configuration: CollectionConfiguration,
    /// Return the existing collection (unchanged) instead of failing when the name is taken.
    pub get_or_create: bool,
}

/// Arguments of `modify_collection`; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ModifyCollection {
    pub new_name: Option<String>,
    /// Replaces the whole metadata; `None` values are dropped; must not be empty.
    pub new_metadata: Option<UpdateMetadata>,
    /// HNSW parameters to change; `space` and `ef_construction` are fixed at creation.
    pub hnsw: Option<HnswPatch>,
    pub embedding_function: Option<serde_json::Value>,
    /// Replaces the stored schema (kept for the HTTP layer).
    pub schema: Option<serde_json::Value>,
}

/// A batch for `add`, `upsert` or `update`. Every present list is parallel to `ids`.
#[derive(Debug, Clone, Default)]
pub struct RecordBatch {
    pub ids: Vec<String>,
    /// Required (with no `None` entries) for `add` and `upsert`; in `update` a `None` entry keeps
    /// the stored embedding.
    pub embeddings: Option<Vec<Option<Vec<f32>>>>,
    /// A `None` entry means "no document" on insert and "keep" on update.
    pub documents: Option<Vec<Option<String>>>,
    /// A `None` entry means "no uri" on insert and "keep" on update.
    pub uris: Option<Vec<Option<String>>>,
    /// Metadata; a `None` value inside a map deletes that key (update/upsert only).
    pub metadatas: Option<Vec<Option<UpdateMetadata>>>,
}

impl RecordBatch {
    /// A batch of ids and embeddings.
    pub fn new(ids: Vec<String>, embeddings: Vec<Vec<f32>>) -> Self {
        RecordBatch {
            ids,
            embeddings: Some(embeddings.into_iter().map(Some).collect()),
            ..Default::default()
        }
    }

    /// Adds documents.
    pub fn documents(mut self, documents: Vec<Option<String>>) -> Self {
        self.documents = Some(documents);
        self
    }

    /// Adds metadatas.
    pub fn metadatas(mut self, metadatas: Vec<Option<Metadata>>) -> Self {
        self.metadatas = Some(
            metadatas
                .into_iter()
                .map(|m| m.map(|m| m.into_iter().map(|(k, v)| (k, Some(v))).collect()))
                .collect(),
        );
        self
    }

    /// Adds uris.
    pub fn uris(mut self, uris: Vec<Option<String>>) -> Self {
        self.uris = Some(uris);
        self
    }
}

/// Which fields a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Include {
    pub embeddings: bool,
    pub documents: bool,
    pub metadatas: bool,
    pub uris: bool,
    /// Query only.
    pub distances: bool,
}

impl Default for Include {
    /// Chroma's default for get: documents and metadatas (queries add distances).
    fn default() -> Self {
        Include {
            embeddings: false,
            documents: true,
            metadatas: true,
            uris: false,
            distances: true,
        }
    }
}

impl Include {
    /// Everything.
    pub fn all() -> Self {
        Include {
            embeddings: true,
            documents: true,
            metadatas: true,
            uris: true,
            distances: true,
        }
    }
}

/// Arguments of `get`.
#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    pub ids: Option<Vec<String>>,
    pub where_: Option<Where>,
    pub where_document: Option<WhereDocument>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    pub include: Include,
}

/// Result of `get`: parallel lists in storage order; not-included fields are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GetResult {
    pub ids: Vec<String>,
    pub embeddings: Option<Vec<Vec<f32>>>,
    pub documents: Option<Vec<Option<String>>>,
    pub uris: Option<Vec<Option<String>>>,
    pub metadatas: Option<Vec<Option<Metadata>>>,
}

/// Arguments of `query`.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub embeddings: Vec<Vec<f32>>,
    /// Default 10.
    pub n_results: u32,
    pub ids: Option<Vec<String>>,
    pub where_: Option<Where>,
    pub where_document: Option<WhereDocument>,
    pub include: Include,
}

impl QueryRequest {
    /// A query for the 10 nearest records to each embedding.
    pub fn new(embeddings: Vec<Vec<f32>>) -> Self {
        QueryRequest {
            embeddings,
            n_results: 10,
            ids: None,
            where_: None,
            where_document: None,
            include: Include::default(),
        }
    }
}

/// Result of `query`: one list per query embedding, nearest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub ids: Vec<Vec<String>>,
    pub embeddings: Option<Vec<Vec<Vec<f32>>>>,
    pub documents: Option<Vec<Vec<Option<String>>>>,
    pub uris: Option<Vec<Vec<Option<String>>>>,
    pub metadatas: Option<Vec<Vec<Option<Metadata>>>>,
    pub distances: Option<Vec<Vec<f32>>>,
}

/// Arguments of `delete`.
#[derive(Debug, Clone, Default)]
pub struct DeleteRequest {
    pub ids: Option<Vec<String>>,
    pub where_: Option<Where>,
    pub where_document: Option<WhereDocument>,
    /// Only with a filter: delete at most this many matches, in storage order.
    pub limit: Option<u32>,
}
