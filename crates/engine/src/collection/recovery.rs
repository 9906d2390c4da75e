//! Recovery: rebuilding a collection's in-memory state from the store and its index checkpoint.

use std::collections::HashMap;

use ochre_index::hnsw::format::{FormatError, ParsedCheckpoint};
use ochre_index::hnsw::load::LiveNodes;
use ochre_index::hnsw::vectorfile::{Pairing, VectorFile, VectorFileError};
use ochre_storage::{Columns, DecodeError, LoadedRecord, RawEmbedding, Store, StoredMetadata};
use ochre_types::{CollectionId, SeqNo};

use super::{insert_all, maintain, new_index, CollectionState, StoredRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::metaindex::MetaIndex;
use crate::packed::{KeyInterner, PackedMetadata};

/// Embeddings read during recovery, in storage order, back to back in one buffer.
struct LoadedVectors {
    seqs: Vec<SeqNo>,
    /// Emptied when the index adopts it.
    data: ochre_index::memory::Arena<f32>,
    dim: usize,
}

impl LoadedVectors {
    /// Room for `rows` records and `vector_rows` vectors of `dim` (the checkpoint's node count
    /// is the hint; no vectors when a vector file holds them), in memory backed by huge pages.
    fn with_capacity(rows: usize, vector_rows: usize, dim: usize) -> Self {
        LoadedVectors {
            seqs: Vec::with_capacity(rows),
            data: ochre_index::memory::Arena::with_capacity(vector_rows.saturating_mul(dim)),
            dim,
        }
    }

    /// Appends a stored vector; `false` (and nothing appended) when a component is not finite.
    fn push(&mut self, seq: SeqNo, v: RawEmbedding<'_>) -> bool {
        let start = self.data.len();
        self.data.extend_from_le_bytes(v.le_bytes());
        if self.data[start..].iter().any(|x| !x.is_finite()) {
            self.data.truncate(start);
            return false;
        }
        self.dim = v.dimension();
        self.seqs.push(seq);
        true
    }

    /// Records a row whose vector is not read (a vector file holds it).
    fn push_seq(&mut self, seq: SeqNo) {
        self.seqs.push(seq);
    }

    /// Appends a stored record's vector after checking it against the collection: the
    /// `Corrupted` error for a wrong dimension or a non-finite component.
    fn take(
        &mut self,
        r: &LoadedRecord<'_>,
        embedding: RawEmbedding<'_>,
        collection: CollectionId,
        dim: Option<usize>,
        corrupted: impl Fn(String) -> ochre_storage::Error,
    ) -> ochre_storage::Result<()> {
        let Some(d) = dim else {
            return Err(corrupted(format!(
                "collection {collection} has records but no dimension"
            )));
        };
        if embedding.dimension() != d {
            return Err(corrupted(format!(
                "record {:?} has dimension {}, collection {collection} has {d}",
                r.id,
                embedding.dimension(),
            )));
        }
        if !self.push(r.seq, embedding) {
            return Err(corrupted(format!(
                "record {:?} has a non-finite embedding",
                r.id
            )));
        }
        Ok(())
    }

    fn iter(&self) -> impl Iterator<Item = (SeqNo, &[f32])> {
        let dim = self.dim;
        self.seqs
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| Some((*s, self.data.get(i * dim..(i + 1) * dim)?)))
    }
}

/// Why the maps could not be built from the records read.
#[derive(Debug, thiserror::Error)]
enum RecoveryError {
    #[error("record {id:?}: {source}")]
    Metadata {
        id: String,
        #[source]
        source: DecodeError,
    },
    #[error("record id {0:?} appears twice")]
    DuplicateId(String),
    #[error("recovery thread panicked")]
    Panicked,
}

/// Records per batch handed from the thread reading the store to the one building the maps.
const RECOVER_BATCH: usize = 1024;

/// A record read during recovery, on its way to the maps (its vector is already in the buffer).
struct Pending {
    seq: SeqNo,
    id: String,
    document: Option<String>,
    uri: Option<String>,
    metadata: Option<StoredMetadata>,
}

/// The id and record maps under construction during recovery (the metadata index is built
/// after the open returns, [`super::build_metadata_indexes`]).
struct RecoveredMaps {
    by_id: HashMap<String, SeqNo>,
    keys: KeyInterner,
    /// In storage order, which is sequence order.
    records: Vec<(SeqNo, StoredRecord)>,
}

impl RecoveredMaps {
    fn with_capacity(n: usize) -> Self {
        RecoveredMaps {
            by_id: HashMap::with_capacity(n),
            keys: KeyInterner::default(),
            records: Vec::with_capacity(n),
        }
    }

    /// Decodes a batch's metadata and files its records.
    ///
    /// # Errors
    /// The first malformed metadata or repeated id.
    fn absorb(&mut self, batch: Vec<Pending>) -> std::result::Result<(), RecoveryError> {
        for r in batch {
            let keys = &mut self.keys;
            let metadata = match r
                .metadata
                .map(|m| m.decode_entries(|k| keys.intern(k)))
                .transpose()
            {
                Ok(m) => m.map(PackedMetadata::from_sorted),
                Err(source) => return Err(RecoveryError::Metadata { id: r.id, source }),
            };
            if self.by_id.insert(r.id.clone(), r.seq).is_some() {
                return Err(RecoveryError::DuplicateId(r.id));
            }
            self.records.push((
                r.seq,
                StoredRecord {
                    id: r.id,
                    document: r.document,
                    uri: r.uri,
                    metadata,
                },
            ));
        }
        Ok(())
    }
}

/// Where the reading thread puts batches: the map-building thread, or (when it could not be
/// started) maps built in place.
enum Sink<'scope> {
    Thread(
        std::sync::mpsc::SyncSender<Vec<Pending>>,
        std::thread::ScopedJoinHandle<'scope, std::result::Result<RecoveredMaps, RecoveryError>>,
    ),
    Inline(Box<std::result::Result<RecoveredMaps, RecoveryError>>),
}

impl Sink<'_> {
    /// Hands a batch over; `false` once the maps have stopped at an error (which `finish`
    /// returns), so the reader can stop too.
    fn put(&mut self, batch: Vec<Pending>) -> bool {
        match self {
            // A closed channel means the other thread stopped at an error.
            Sink::Thread(tx, _) => tx.send(batch).is_ok(),
            Sink::Inline(maps) => match maps.as_mut() {
                Ok(m) => match m.absorb(batch) {
                    Ok(()) => true,
                    Err(e) => {
                        **maps = Err(e);
                        false
                    }
                },
                Err(_) => false,
            },
        }
    }

    fn finish(self) -> std::result::Result<RecoveredMaps, RecoveryError> {
        match self {
            Sink::Thread(tx, thread) => {
                drop(tx);
                thread.join().unwrap_or(Err(RecoveryError::Panicked))
            }
            Sink::Inline(maps) => *maps,
        }
    }
}

impl CollectionState {
    /// Reads the collection's records from the store and rebuilds its maps and vector index.
    ///
    /// Three threads share the work (a fourth faults the vector buffer in, a bounded way ahead
    /// of the first): this one steps through the file and copies each vector into one buffer
    /// for the whole collection (so recovery does not fragment the heap); a second decodes
    /// metadata and fills the id and record maps from batches this one hands over; a third
    /// parses the index checkpoint, which needs no vectors until the end.
    ///
    /// With a vector file that pairs with the checkpoint and the store's records
    /// ([`VectorFile`]), no vector is read from the store: the file is mapped, a thread checks
    /// its CRC in place of the prefault, and the index takes the file's vectors and codes as
    /// they are. If anything about it does not hold up, the vectors are read from the store
    /// after all, as without one.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] naming the file for a malformed or inconsistent record; store
    /// errors.
    pub(crate) fn recover(
        &mut self,
        store: &Store,
        key: i64,
        checkpoint: Option<Vec<u8>>,
        vector_file: Option<std::fs::File>,
    ) -> Result<()> {
        let corrupted = |detail: String| corrupted(store, detail);
        let dim = self.row.dimension.map(|d| d as usize);
        let config = &self.row.configuration.hnsw;
        // The checkpoint's node count sizes the buffers (unverified, but bounded by the file's
        // size).
        let hint = checkpoint.as_deref().map_or(0, |b| {
            ochre_index::hnsw::format::checkpoint_nodes(b).unwrap_or(0)
        });
        let mapped = match (checkpoint.as_deref(), dim, vector_file) {
            (Some(bytes), Some(d), Some(file)) => {
                self.open_vector_file(store, key, bytes, d, hint, &file)
            }
            _ => None,
        };
        let mut vectors = LoadedVectors::with_capacity(
            hint,
            if mapped.is_some() { 0 } else { hint },
            dim.unwrap_or(0),
        );
        let mut next_seq = self.next_seq;
        let row_id = self.row.id;
        // Fresh memory is zeroed by the kernel on first touch, on the touching thread: a fourth
        // thread faults the vector buffer in ahead of the reader, which would otherwise spend
        // about half the read waiting on it.
        let prefault = vectors.data.prefault();
        let read_done = &std::sync::atomic::AtomicBool::new(false);
        // Bytes of vectors the reader has copied: the prefault stays a bounded way ahead.
        let written = &std::sync::atomic::AtomicUsize::new(0);
        let columns = Columns {
            embeddings: mapped.is_none(),
            documents: false,
        };
        let (read, absorbed, parsed, verified) = std::thread::scope(|s| {
            if let Some(p) = prefault {
                // Not started: the reader faults its pages itself.
                let _ = std::thread::Builder::new()
                    .name("ochre-recover-prefault".into())
                    .spawn_scoped(s, move || p.run(written, read_done));
            }
            let verifier = mapped.as_ref().map(|(file, _)| {
                std::thread::Builder::new()
                    .name("ochre-recover-verify".into())
                    .spawn_scoped(s, move || file.verify())
            });
            let parser = match (checkpoint.as_deref(), dim) {
                (Some(bytes), Some(d)) => Some(
                    std::thread::Builder::new()
                        .name("ochre-recover-index".into())
                        .spawn_scoped(s, move || ParsedCheckpoint::parse(bytes, d, config))
                        .map_err(|_| bytes),
                ),
                _ => None,
            };
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Pending>>(16);
            let mut sink = match std::thread::Builder::new()
                .name("ochre-recover-records".into())
                .spawn_scoped(s, move || {
                    let mut maps = RecoveredMaps::with_capacity(hint);
                    for batch in rx {
                        maps.absorb(batch)?;
                    }
                    Ok(maps)
                }) {
                Ok(thread) => Sink::Thread(tx, thread),
                Err(_) => Sink::Inline(Box::new(Ok(RecoveredMaps::with_capacity(hint)))),
            };
            let mut batch = Vec::with_capacity(RECOVER_BATCH);
            let read = store.load_records(key, columns, |r| {
                match r.embedding {
                    Some(e) => vectors.take(&r, e, row_id, dim, corrupted)?,
                    None => vectors.push_seq(r.seq),
                }
                next_seq = next_seq.max(r.seq.0 + 1);
                batch.push(Pending {
                    seq: r.seq,
                    id: r.id,
                    document: r.document,
                    uri: r.uri,
                    metadata: r.metadata,
                });
                if batch.len() == RECOVER_BATCH {
                    // Published once a batch, not once a row: 1024 vectors (1.5 MiB at 384
                    // dimensions) are a small step against the prefault's 64 MiB window.
                    written.store(
                        vectors.data.len() * std::mem::size_of::<f32>(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(RECOVER_BATCH));
                    if !sink.put(full) {
                        // The maps stopped at a damaged record; its error is reported below.
                        return Err(corrupted("recovery stopped".to_owned()));
                    }
                }
                Ok(())
            });
            read_done.store(true, std::sync::atomic::Ordering::Relaxed);
            if read.is_ok() && !batch.is_empty() {
                sink.put(batch);
            }
            let absorbed = sink.finish();
            let parsed = parser.map(|p| match p {
                Ok(thread) => thread
                    .join()
                    .unwrap_or(Err(FormatError::Malformed("parser thread panicked"))),
                Err(bytes) => ParsedCheckpoint::parse(bytes, dim.unwrap_or(0), config),
            });
            let verified = verifier.map(|v| match v {
                Ok(thread) => thread.join().unwrap_or(Err(VectorFileError::Checksum)),
                Err(_) => mapped.as_ref().map_or(Ok(()), |(file, _)| file.verify()),
            });
            (read, absorbed, parsed, verified)
        });
        // The maps only ever see records the reader already passed, so their error, if any, is
        // the first damage in storage order (and the reason the reader stopped early).
        let maps = absorbed.map_err(|e| {
            let message = format!("{} is corrupted: {e}", store.path().display());
            Error::caused_by(ErrorKind::Corrupted, message, e)
        })?;
        read?;
        self.by_id = maps.by_id;
        // The metadata index is built in the background once the database is open
        // ([`super::build_metadata_indexes`]); filters scan until then.
        self.meta = MetaIndex::default();
        self.keys = maps.keys;
        self.records = maps.records.into_iter().collect();
        self.meta_pending = !self.records.is_empty();
        // The trigram index is built from the documents when a document filter first needs it
        // ([`super::BuildTextOnDemand`]).
        self.text = None;
        self.next_seq = next_seq;
        match mapped {
            Some((file, version)) => {
                let fits = match (&parsed, verified) {
                    (Some(Ok(p)), Some(Ok(()))) => p
                        .match_vector_file(&vectors.seqs, &file)
                        .map_err(|e| e.to_string()),
                    (Some(Err(e)), _) => Err(e.to_string()),
                    (_, Some(Err(e))) => Err(e.to_string()),
                    _ => Err("no checkpoint".to_owned()),
                };
                match (fits, parsed) {
                    (Ok(live), Some(Ok(p))) => self.adopt_vector_file(p, live, file, version),
                    (fits, parsed) => {
                        let why = fits.err().unwrap_or_default();
                        tracing::warn!(collection = %self.row.id, reason = %why, "vector file unusable; reading the vectors from the store");
                        drop(file);
                        let vectors = read_vectors(store, key, row_id, dim, hint)?;
                        self.build_index(vectors, parsed);
                    }
                }
            }
            None => self.build_index(vectors, parsed),
        }
        // Derived from the records just loaded.
        self.sparse = None;
        self.refresh_indexes();
        Ok(())
    }

    /// The collection's vector file, opened and mapped, with the store's version of the records,
    /// when it pairs with `checkpoint` and that version; `None` (logged) when it does not, or the
    /// version cannot be read.
    fn open_vector_file(
        &self,
        store: &Store,
        key: i64,
        checkpoint: &[u8],
        dim: usize,
        nodes: usize,
        file: &std::fs::File,
    ) -> Option<(VectorFile, u64)> {
        let version = match store.record_version(key) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(collection = %self.row.id, error = %e, "cannot read the records' version; reading the vectors from the store");
                return None;
            }
        };
        let pairing = Pairing::of(checkpoint, version)?;
        // Room for the collection to double before its arenas move off the file's pages (address
        // space only until written).
        let room = nodes.saturating_mul(2);
        // SAFETY: the vector file is the engine's own: written once to a temporary file and
        // renamed into place, never written in place or truncated; the directory lock keeps
        // other Ochre processes out of the data directory while it is open.
        match unsafe { VectorFile::open(file, dim, nodes, room, &pairing) } {
            Ok(v) => Some((v, version)),
            Err(e) => {
                tracing::info!(collection = %self.row.id, reason = %e, "vector file not used; reading the vectors from the store");
                None
            }
        }
    }

    /// Installs the index built from the checkpoint and its vector file, matched.
    fn adopt_vector_file(
        &mut self,
        parsed: ParsedCheckpoint,
        live: LiveNodes,
        file: VectorFile,
        version: u64,
    ) {
        let mut index = parsed.into_index_mapped(live, file);
        tracing::info!(collection = %self.row.id, nodes = index.nodes(), "loaded index checkpoint with its vector file");
        // Rebuilt (too many tombstones), it differs from the files: the next close rewrites them.
        self.dirty = usize::from(maintain(&mut index));
        self.index = Some(index);
        self.vectors_written = Some(version);
    }

    /// Builds the vector index after loading: from the checkpoint when it is valid (inserting
    /// only records it lacks), from scratch otherwise.
    fn build_index(
        &mut self,
        mut vectors: LoadedVectors,
        checkpoint: Option<std::result::Result<ParsedCheckpoint, FormatError>>,
    ) {
        let Some(dim) = self.row.dimension else {
            return;
        };
        if let Some(parsed) = checkpoint {
            match parsed.and_then(|p| p.into_index(&vectors.seqs, &mut vectors.data)) {
                Ok((mut index, report)) => {
                    // Records the checkpoint lacks (written after it) are inserted now; their
                    // rows are still in `vectors` whenever there are any (the rows are adopted
                    // only when the checkpoint holds exactly the stored records).
                    let map: HashMap<SeqNo, &[f32]> = if report.missing.is_empty() {
                        HashMap::new()
                    } else {
                        vectors.iter().collect()
                    };
                    let items: Vec<(SeqNo, &[f32])> = report
                        .missing
                        .iter()
                        .filter_map(|s| map.get(s).map(|v| (*s, *v)))
                        .collect();
                    insert_all(&mut index, &items);
                    self.dirty = report.stale + report.missing.len();
                    tracing::info!(collection = %self.row.id, replayed = report.missing.len(), stale = report.stale, "loaded index checkpoint");
                    maintain(&mut index);
                    self.index = Some(index);
                    return;
                }
                Err(e) => {
                    tracing::warn!(collection = %self.row.id, error = %e, "index checkpoint unusable; rebuilding from the stored records");
                }
            }
        }
        let mut index = new_index(&self.row, dim);
        let items: Vec<(SeqNo, &[f32])> = vectors.iter().collect();
        insert_all(&mut index, &items);
        self.dirty = items.len().max(1);
        self.index = Some(index);
    }
}

/// The store's error for a damaged record.
fn corrupted(store: &Store, detail: String) -> ochre_storage::Error {
    ochre_storage::Error::Corrupted {
        path: store.path().to_owned(),
        detail,
        source: None,
    }
}

/// The vectors of a collection's records, read from the store (when a vector file could not be
/// used after all).
///
/// # Errors
/// As [`CollectionState::recover`].
fn read_vectors(
    store: &Store,
    key: i64,
    collection: CollectionId,
    dim: Option<usize>,
    hint: usize,
) -> Result<LoadedVectors> {
    let corrupted = |detail: String| corrupted(store, detail);
    let mut vectors = LoadedVectors::with_capacity(hint, hint, dim.unwrap_or(0));
    let columns = Columns {
        embeddings: true,
        documents: false,
    };
    store.load_records(key, columns, |r| match r.embedding {
        Some(e) => vectors.take(&r, e, collection, dim, corrupted),
        None => Err(corrupted(format!("record {:?} has no embedding", r.id))),
    })?;
    Ok(vectors)
}
