//! Server-side embedding, an Ochre extension: what Chroma's clients compute before they send a
//! request, done by the server for requests that leave it out (Ochre's own clients and CLI send
//! text; Chroma's official clients keep embedding client-side, so their requests never reach
//! these paths with anything left to do).
//!
//! - Writes without embeddings, for a collection whose configured embedding function is Chroma's
//!   default MiniLM one, when the server has the model: the documents are embedded
//!   ([`prepare_write`]).
//! - Writes with documents, for a collection whose sparse vector index takes `chroma_bm25`
//!   vectors of `#document`: each record that has a document and does not carry the key gets its
//!   BM25 vector there, as chromadb's client does it (`_apply_sparse_embeddings_to_metadatas`).
//! - Text `$knn` queries: embedded with the model for `#embedding`, with BM25 for a
//!   `chroma_bm25` sparse key ([`resolve_text_queries`]).
//!
//! Everything here runs on the blocking pool, after the collection has been looked up.

use std::collections::BTreeSet;

use ochre::search::KnnQuery;
use ochre::{CollectionConfiguration, MetadataValue, RecordBatch, UpdateMetadata, WriteKind};
use ochre_embed::bm25::{self, Bm25, SparseEmbedding};
use ochre_embed::{is_minilm_function, MiniLm};
use ochre_types::SparseVector;
use serde_json::Value;

use crate::error::ApiError;
use crate::schema::{Schema, SparseConfig, ValueType};
use crate::search::SearchRequest;

const DOCUMENT_KEY: &str = "#document";
const EMBEDDING_KEY: &str = "#embedding";

/// Whether the collection's configured embedding function is all-MiniLM-L6-v2.
fn minilm_configured(c: &CollectionConfiguration) -> bool {
    c.embedding_function
        .as_ref()
        .is_some_and(is_minilm_function)
}

/// The embedder of a sparse index whose embedding function is `chroma_bm25`
/// (`{"type": "known", "name": "chroma_bm25", "config": {...}}`); `None` for any other function.
fn bm25_of(key: &str, c: &SparseConfig) -> Option<Result<Bm25, ApiError>> {
    let ef = c.embedding_function.as_ref()?;
    if ef.get("type").and_then(Value::as_str) != Some("known")
        || ef.get("name").and_then(Value::as_str) != Some(bm25::NAME)
    {
        return None;
    }
    Some(match ef.get("config") {
        None | Some(Value::Null) => Ok(Bm25::default()),
        Some(config) => Bm25::from_config(config).map_err(|e| {
            ApiError::invalid(format!(
                "the sparse vector index of '{key}' has an unusable chroma_bm25 configuration: {e}"
            ))
        }),
    })
}

fn sparse_vector(e: SparseEmbedding) -> SparseVector {
    SparseVector {
        indices: e.indices,
        values: e.values,
        tokens: e.labels,
    }
}

fn embedding_failed(e: ochre_embed::EmbedError) -> ApiError {
    ApiError::internal(format!("embedding on the server failed: {e}"))
}

/// Completes a write batch once its collection is known: embeds the documents of a batch sent
/// without embeddings (when `model` is there and the collection's embedding function is MiniLM),
/// refuses an add or upsert still without embeddings (the error the server has always given),
/// and fills in `chroma_bm25` sparse vectors. `keys` gains the sparse key when a vector was
/// filled in (for the schema's key evolution).
///
/// # Errors
/// 422 `missing field `embeddings`` for an add or upsert without embeddings the server does not
/// compute; 400 when a record of such an add or upsert has no document, or the lengths disagree;
/// 400 for an unusable `chroma_bm25` configuration; 500 if the model fails.
pub fn prepare_write(
    batch: &mut RecordBatch,
    kind: WriteKind,
    configuration: &CollectionConfiguration,
    model: Option<&MiniLm>,
    keys: &mut BTreeSet<(String, ValueType)>,
) -> Result<(), ApiError> {
    if batch.embeddings.is_none() {
        if let (Some(model), Some(documents)) = (model, &batch.documents) {
            if minilm_configured(configuration) {
                batch.embeddings = embed_documents(model, kind, &batch.ids, documents)?;
            }
        }
        if batch.embeddings.is_none() && kind != WriteKind::Update {
            return Err(ApiError::shape("missing field `embeddings`"));
        }
    }
    fill_bm25(batch, configuration, keys)
}

/// The embeddings of a batch's documents: every record's for add and upsert (each must have a
/// document), those that have one for update (`None` keeps a record's vector; `None` overall
/// when no record has a document, which is an update of metadata or uris only).
fn embed_documents(
    model: &MiniLm,
    kind: WriteKind,
    ids: &[String],
    documents: &[Option<String>],
) -> Result<Option<Vec<Option<Vec<f32>>>>, ApiError> {
    if documents.len() != ids.len() {
        return Err(ApiError::invalid(
            "Inconsistent number of IDs, embeddings, documents, URIs and metadatas",
        ));
    }
    if kind != WriteKind::Update {
        if let Some(i) = documents.iter().position(Option::is_none) {
            return Err(ApiError::invalid(format!(
                "Record '{}' has no document: a write without embeddings is embedded from its \
                 documents, so every record needs one (or send embeddings)",
                ids[i]
            )));
        }
    }
    let texts: Vec<&str> = documents.iter().flatten().map(String::as_str).collect();
    if texts.is_empty() && kind == WriteKind::Update {
        return Ok(None);
    }
    let mut vectors = model.embed(&texts).map_err(embedding_failed)?.into_iter();
    Ok(Some(
        documents
            .iter()
            .map(|d| d.as_ref().and_then(|_| vectors.next()))
            .collect(),
    ))
}

/// chromadb's client-side sparse fill, for `chroma_bm25` indexes over `#document`: each record
/// with a document whose metadata does not name the index's key (a `null` that deletes it counts
/// as naming it) gets the document's BM25 vector under the key; an empty vector (a document with
/// no terms) is stored as such, as the client stores it.
fn fill_bm25(
    batch: &mut RecordBatch,
    configuration: &CollectionConfiguration,
    keys: &mut BTreeSet<(String, ValueType)>,
) -> Result<(), ApiError> {
    let RecordBatch {
        ids,
        documents: Some(documents),
        metadatas,
        ..
    } = batch
    else {
        return Ok(());
    };
    let n = ids.len();
    // Lengths that disagree are refused by the engine; nothing to fill then.
    if documents.len() != n || metadatas.as_ref().is_some_and(|m| m.len() != n) {
        return Ok(());
    }
    let schema = Schema::of_collection(configuration);
    for (key, config) in schema.sparse_indexes() {
        if config.source_key.as_deref() != Some(DOCUMENT_KEY) {
            continue;
        }
        let Some(bm25) = bm25_of(key, config) else {
            continue;
        };
        let carries = |i: usize| {
            metadatas
                .as_ref()
                .and_then(|ms| ms[i].as_ref())
                .is_some_and(|m| m.contains_key(key))
        };
        let targets: Vec<usize> = (0..n)
            .filter(|&i| documents[i].is_some() && !carries(i))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let bm25 = bm25?;
        let ms = metadatas.get_or_insert_with(|| vec![None; n]);
        for i in targets {
            let Some(doc) = &documents[i] else { continue };
            let v = sparse_vector(bm25.embed(doc));
            ms[i]
                .get_or_insert_with(UpdateMetadata::new)
                .insert(key.to_owned(), Some(MetadataValue::Sparse(Box::new(v))));
        }
        keys.insert((key.to_owned(), ValueType::Sparse));
    }
    Ok(())
}

fn invalid_at(path: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("Validation error: {path}: {message}"))
}

/// Replaces the placeholder query of every text `$knn` of `req` by the text's embedding: with
/// `model` for `#embedding` (the collection's embedding function must be MiniLM), with the key's
/// `chroma_bm25` function for a sparse-indexed key. At most `max_texts` per request.
///
/// # Errors
/// 400 when a text cannot be embedded here (no model, another embedding function, a key without
/// a `chroma_bm25` sparse index) or there are too many; 500 if the model fails.
pub fn resolve_text_queries(
    req: &mut SearchRequest,
    configuration: &CollectionConfiguration,
    model: Option<&MiniLm>,
    max_texts: usize,
) -> Result<(), ApiError> {
    if req.texts.is_empty() {
        return Ok(());
    }
    if req.texts.len() > max_texts {
        return Err(ApiError::invalid(format!(
            "{} text $knn queries exceed the maximum batch size {max_texts}",
            req.texts.len()
        )));
    }
    let schema = Schema::of_collection(configuration);
    let mut queries: Vec<Option<KnnQuery>> = vec![None; req.texts.len()];
    let mut dense = Vec::new();
    let mut sparse: Option<(&str, Bm25)> = None;
    for (i, t) in req.texts.iter().enumerate() {
        if t.key == EMBEDDING_KEY {
            let Some(model) = model else {
                return Err(invalid_at(
                    &t.path,
                    "this server has no embedding model to embed a text query (start `ochre run` \
                     with `embedding_model` or OCHRE_MODEL_DIR), so send the query's embedding",
                ));
            };
            if !minilm_configured(configuration) {
                return Err(invalid_at(
                    &t.path,
                    "the server embeds a text query only for a collection whose embedding \
                     function is Chroma's default (all-MiniLM-L6-v2); send the query's embedding",
                ));
            }
            dense.push((i, model));
            continue;
        }
        let bm25 = match &sparse {
            Some((k, b)) if *k == t.key => b,
            _ => {
                let found = schema
                    .sparse_indexes()
                    .find(|(k, _)| *k == t.key)
                    .and_then(|(k, c)| bm25_of(k, c).map(|b| (k, b)));
                let Some((k, b)) = found else {
                    return Err(invalid_at(
                        &t.path,
                        format!(
                            "Cannot embed string query for key '{}': the server embeds text for \
                             `#embedding` and for a key whose sparse vector index has the \
                             chroma_bm25 embedding function; send a vector instead",
                            t.key
                        ),
                    ));
                };
                &sparse.insert((k, b?)).1
            }
        };
        queries[i] = Some(KnnQuery::Sparse(sparse_vector(bm25.embed(&t.text))));
    }
    if let Some((_, model)) = dense.first() {
        let texts: Vec<&str> = dense
            .iter()
            .map(|(i, _)| req.texts[*i].text.as_str())
            .collect();
        let vectors = model.embed(&texts).map_err(embedding_failed)?;
        for ((i, _), v) in dense.iter().zip(vectors) {
            queries[*i] = Some(KnnQuery::Dense(v));
        }
    }
    for (t, q) in req.texts.iter().zip(queries) {
        let knn = req
            .plans
            .get_mut(t.plan)
            .and_then(|p| p.rank.as_mut())
            .and_then(|r| r.knns_mut().into_iter().nth(t.knn));
        match (knn, q) {
            (Some(knn), Some(q)) => knn.query = q,
            _ => {
                return Err(ApiError::internal(format!(
                    "the text query at {} was lost between parsing and embedding",
                    t.path
                )))
            }
        }
    }
    Ok(())
}
