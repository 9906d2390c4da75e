//! Request validation with Chroma's messages. Everything here runs before any state changes.

use ochre_types::{validate_record_metadata, Metadata, MetadataValue, UpdateMetadata};

use crate::error::{Error, Result};
use crate::request::RecordBatch;

/// Checks collection metadata (`field` is `metadata` or `new_metadata` in messages).
pub(crate) fn collection_metadata<'a>(
    field: &str,
    entries: impl IntoIterator<Item = (&'a String, Option<&'a MetadataValue>)>,
    len: usize,
) -> Result<()> {
    if len == 0 {
        return Err(Error::invalid(format!(
            "Validation error: {field}: Metadata cannot be empty"
        )));
    }
    for (k, v) in entries {
        if k.is_empty() {
            return Err(Error::invalid(format!(
                "Validation error: {field}: Metadata key cannot be empty"
            )));
        }
        if k.starts_with('#') || k.starts_with('$') {
            return Err(Error::invalid(format!(
                "Validation error: {field}: Metadata key cannot start with '#' or '$': {k}"
            )));
        }
        if let Some(MetadataValue::Sparse(_)) = v {
            return Err(Error::invalid(format!(
                "Validation error: {field}: Sparse vectors are not allowed in collection metadata: {k}"
            )));
        }
        if let Some(MetadataValue::Float(f)) = v {
            if !f.is_finite() {
                return Err(Error::invalid(format!(
                    "Validation error: {field}: Metadata value for {k} must be finite"
                )));
            }
        }
    }
    Ok(())
}

/// Which write a batch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// New ids only; existing ones are skipped.
    Add,
    /// New ids inserted, existing ones merged.
    Upsert,
    /// Existing ids merged; unknown ones are skipped.
    Update,
}

/// Validates a write batch and returns the dimension its embeddings share, if any carry one.
pub(crate) fn batch(
    kind: WriteKind,
    b: &RecordBatch,
    collection_dim: Option<u32>,
) -> Result<Option<u32>> {
    let n = b.ids.len();
    if kind != WriteKind::Update && b.embeddings.is_none() {
        return Err(Error::invalid(
            "Validation error: embeddings: embeddings are required for add and upsert",
        ));
    }
    let mut dim: Option<usize> = None;
    if let Some(embs) = &b.embeddings {
        for e in embs.iter() {
            let Some(e) = e else {
                if kind != WriteKind::Update {
                    return Err(Error::invalid(
                        "Validation error: embeddings: embeddings are required for add and upsert",
                    ));
                }
                continue;
            };
            if e.is_empty() {
                return Err(Error::invalid(
                    "Validation error: embeddings: Each embedding must have at least 1 dimension",
                ));
            }
            if e.len() > crate::MAX_DIMENSION {
                return Err(Error::invalid(format!(
                    "Validation error: embeddings: an embedding has {} dimensions; the maximum is {}",
                    e.len(),
                    crate::MAX_DIMENSION
                )));
            }
            if e.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid(
                    "Validation error: embeddings: Embeddings must not contain NaN or Infinity values",
                ));
            }
        }
    }
    if let Some(ms) = &b.metadatas {
        for (i, m) in ms.iter().enumerate() {
            let Some(m) = m else { continue };
            // Chroma's message names only the index; the rule broken stays the cause.
            let message = || format!("Validation error: metadatas: Invalid metadata at index {i}");
            if kind == WriteKind::Add && m.values().any(Option::is_none) {
                return Err(Error::invalid(message()));
            }
            validate_record_metadata(m.iter().map(|(k, v)| (k, v.as_ref())))
                .map_err(|e| Error::invalid_because(message(), e))?;
        }
    }
    if let Some(embs) = &b.embeddings {
        for e in embs.iter().flatten() {
            match dim {
                None => dim = Some(e.len()),
                Some(d) if d != e.len() => {
                    return Err(Error::invalid(
                        "Inconsistent dimensions in provided embeddings",
                    ))
                }
                Some(_) => {}
            }
        }
    }
    let dim = dim
        .map(|d| u32::try_from(d).map_err(|_| Error::invalid("embedding dimension is too large")))
        .transpose()?;
    if let (Some(expected), Some(got)) = (collection_dim, dim) {
        if expected != got {
            return Err(Error::invalid(format!(
                "Collection expecting embedding with dimension of {expected}, got {got}"
            )));
        }
    }
    let lengths_ok = b.embeddings.as_ref().is_none_or(|v| v.len() == n)
        && b.documents.as_ref().is_none_or(|v| v.len() == n)
        && b.uris.as_ref().is_none_or(|v| v.len() == n)
        && b.metadatas.as_ref().is_none_or(|v| v.len() == n);
    if !lengths_ok {
        return Err(Error::invalid(
            "Inconsistent number of IDs, embeddings, documents, URIs and metadatas",
        ));
    }
    if b.ids.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "Empty ID, ID must have at least one character",
        ));
    }
    Ok(dim)
}

/// Turns an update map into plain metadata, dropping deletions (for inserts).
pub(crate) fn inserted_metadata(m: &UpdateMetadata) -> Option<Metadata> {
    let out: Metadata = m
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Merges an update map into existing metadata: set keys, delete `None` keys, keep the rest.
pub(crate) fn merged_metadata(old: Option<&Metadata>, m: &UpdateMetadata) -> Option<Metadata> {
    let mut out = old.cloned().unwrap_or_default();
    for (k, v) in m {
        match v {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                out.remove(k);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}
