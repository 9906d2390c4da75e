//! One collection's in-memory state and its record operations.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ochre_index::{HnswIndex, Neighbor, TextIndex};
use ochre_storage::{CollectionRow, DocumentWrite, Mutation, Reader, RecordRow};
use ochre_types::{
    CollectionConfiguration, CollectionId, DatabaseId, Metadata, SeqNo, Where, WhereDocument,
};
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::db::Inner;
use crate::error::{Error, ErrorKind, Result};
use crate::metaindex::MetaIndex;
use crate::packed::{KeyInterner, PackedMetadata};
use crate::request::{
    CollectionInfo, DeleteRequest, GetRequest, GetResult, Include, QueryRequest, QueryResult,
    RecordBatch,
};
use crate::sparse::{SchemaIndexes, SparseState};
use crate::validate::{self, WriteKind};

mod recovery;
mod search;
#[cfg(test)]
mod tests;
mod text;

/// Largest sequence number a collection may hand out (the store reserves 40 bits).
const MAX_SEQ: u64 = (1 << 40) - 1;

/// The vector index for a collection: HNSW with the collection's parameters.
fn new_index(row: &CollectionRow, dimension: u32) -> HnswIndex {
    HnswIndex::new(dimension as usize, &row.configuration.hnsw)
}

/// Stores `items` in `index` on the index's build threads.
fn insert_all(index: &mut HnswIndex, items: &[(SeqNo, &[f32])]) {
    let threads = index.threads();
    index.insert_batch(items, threads);
}

/// Rebuilds the index when deletions have degraded it, in place (recovery, before the
/// collection is shared); true if it did.
fn maintain(index: &mut HnswIndex) -> bool {
    if !index.needs_rebuild() {
        return false;
    }
    *index = index.rebuilt(index.threads());
    true
}

/// A vector-index graph built elsewhere, for [`Collection::finish_bulk_load`]: the index's
/// [`PrebuiltGraph`](ochre_index::hnsw::format::PrebuiltGraph) with its nodes named by record id
/// (`None`: a deleted node, kept only to route through); `m` is the collection's
/// `max_neighbors`.
pub type ImportedGraph = ochre_index::hnsw::format::PrebuiltGraph<String>;

/// What [`Collection::finish_bulk_load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkLoadReport {
    /// The graph given was adopted.
    pub adopted: bool,
    /// Why it was not, when one was given.
    pub refused: Option<String>,
    /// Vectors linked into the graph here (all of them without an adopted graph; those it
    /// lacked with one).
    pub linked: usize,
    /// Nodes of the adopted graph whose record was not there (now tombstones).
    pub stale: usize,
}

/// A record's non-vector fields; the embedding lives in the vector index.
#[derive(Debug, Clone)]
pub(crate) struct StoredRecord {
    pub(crate) id: String,
    /// The document when the collection holds documents in memory (ephemeral databases); a
    /// persistent collection leaves it `None` and reads documents from the store.
    pub(crate) document: Option<String>,
    pub(crate) uri: Option<String>,
    pub(crate) metadata: Option<PackedMetadata>,
}

/// Everything known about one collection.
///
/// Invariant: `by_id`, `records`, `meta` and `index` hold exactly the same set of records (`meta`
/// under each record's current metadata; while `meta_pending`, `meta` is empty instead);
/// `index` is `Some` exactly when `row.dimension` is.
pub(crate) struct CollectionState {
    pub(crate) row: CollectionRow,
    tenant: String,
    database: String,
    /// Set when the collection was deleted; handles still held then see NotFound.
    dropped: bool,
    by_id: HashMap<String, SeqNo>,
    records: BTreeMap<SeqNo, StoredRecord>,
    /// Scalar metadata values → records, for filters.
    meta: MetaIndex,
    /// The metadata index is still being built in the background after an open
    /// ([`build_metadata_indexes`]): `meta` is empty and filters scan the records meanwhile.
    pub(crate) meta_pending: bool,
    /// The metadata keys the records share.
    keys: KeyInterner,
    index: Option<HnswIndex>,
    next_seq: u64,
    /// Index changes since the last checkpoint.
    dirty: usize,
    /// The store's version of the records ([`ochre_storage::Store::record_version`]) that the
    /// vector file on disk was written at, while it pairs with the checkpoint on disk: loaded
    /// from it, or written at a close. Any checkpoint written since forgets it.
    pub(crate) vectors_written: Option<u64>,
    /// Documents live in `records` (no store) rather than only in the store.
    docs_held: bool,
    /// A background rebuild of the index is under way.
    rebuilding: bool,
    /// Checkpoints handed out ([`CollectionState::checkpoint_due`]).
    checkpoints: u64,
    /// The sparse index of the key the schema names, if any.
    sparse: Option<SparseState>,
    /// The trigram index of the documents, unless the schema turns full-text search off. In a
    /// database with a store it is built on first need, in the background: the first document
    /// filter scans and asks for it (`text_requested`), so memory goes to it only in collections
    /// that filter on documents.
    text: Option<TextIndex>,
    /// The schema lets documents be indexed (`fts_index`).
    fts: bool,
    /// A document filter scanned for want of the trigram index: the read's caller starts its
    /// build once the read is done ([`BuildTextOnDemand`]). Shared with the handle, which reads
    /// it without taking the lock.
    text_requested: Arc<std::sync::atomic::AtomicBool>,
    /// While the trigram index is built in the background: the records whose document writes
    /// changed since, to re-read before it is installed.
    pub(crate) text_pending: Option<Vec<SeqNo>>,
    /// A bulk load is under way ([`Collection::defer_indexing`]): the vector index stores new
    /// vectors without linking them into its graph.
    defer_links: bool,
    /// Records the bulk load expects: room for them is made in the index when it is created.
    bulk_expected: usize,
}

/// A collection in the catalog: its store key, id and state.
///
/// The id, key and database never change for a handle, so the catalog reads them without taking
/// the collection's lock (which a long write may hold).
pub(crate) struct CollectionHandle {
    pub(crate) key: i64,
    pub(crate) id: CollectionId,
    pub(crate) database_id: DatabaseId,
    pub(crate) state: RwLock<CollectionState>,
    /// The generation of the last checkpoint written; held while one is written.
    pub(crate) checkpointed: Mutex<u64>,
    /// The state's `text_requested` flag, read after a read without retaking the lock.
    text_requested: Arc<std::sync::atomic::AtomicBool>,
}

impl CollectionHandle {
    pub(crate) fn new(key: i64, state: CollectionState) -> Self {
        CollectionHandle {
            key,
            id: state.row.id,
            database_id: state.row.database_id,
            text_requested: state.text_requested.clone(),
            state: RwLock::new(state),
            checkpointed: Mutex::new(0),
        }
    }
}

/// What a write batch does to a record's document.
enum StagedDocument {
    /// The record exists and its document stays.
    Keep,
    Set(Option<String>),
}

/// A record under construction by a write batch.
struct Staged {
    seq: SeqNo,
    id: String,
    embedding: Vec<f32>,
    document: StagedDocument,
    uri: Option<String>,
    metadata: Option<Metadata>,
}

/// Where a read finds documents: in the records (held) or through a store reader.
enum DocSource<'a> {
    Held,
    Store(&'a Reader, i64),
}

impl DocSource<'_> {
    /// The document of `r` (sequence number `seq`).
    fn get<'r>(&self, seq: SeqNo, r: &'r StoredRecord) -> Result<Option<Cow<'r, str>>> {
        match self {
            DocSource::Held => Ok(r.document.as_deref().map(Cow::Borrowed)),
            DocSource::Store(reader, key) => match reader.document(*key, seq)? {
                Some(d) => Ok(d.map(Cow::Owned)),
                None => Err(Error::new(
                    ErrorKind::Internal,
                    format!("record {:?} is missing from the store", r.id),
                )),
            },
        }
    }
}

impl CollectionState {
    /// A collection's state; `docs_held` keeps documents in memory (a database without a
    /// store), otherwise they are read from the store.
    pub(crate) fn new(
        row: CollectionRow,
        tenant: String,
        database: String,
        docs_held: bool,
    ) -> Self {
        let index = row.dimension.map(|d| new_index(&row, d));
        let schema = SchemaIndexes::of(&row.configuration);
        let sparse = schema.sparse.map(|(key, bm25)| SparseState::new(key, bm25));
        // Held documents are indexed as they come (there is no store to build from later).
        let text = (schema.fts && docs_held).then(TextIndex::new);
        CollectionState {
            row,
            tenant,
            database,
            dropped: false,
            by_id: HashMap::new(),
            records: BTreeMap::new(),
            meta: MetaIndex::default(),
            meta_pending: false,
            keys: KeyInterner::default(),
            index,
            next_seq: 1,
            dirty: 0,
            vectors_written: None,
            docs_held,
            rebuilding: false,
            checkpoints: 0,
            sparse,
            text,
            fts: schema.fts,
            text_requested: Arc::default(),
            text_pending: None,
            defer_links: false,
            bulk_expected: 0,
        }
    }

    /// Runs `f` with the place documents are read from.
    fn with_docs<T>(
        &self,
        inner: &Inner,
        f: impl FnOnce(&DocSource<'_>) -> Result<T>,
    ) -> Result<T> {
        if self.docs_held {
            return f(&DocSource::Held);
        }
        inner.with_reader(|reader| f(&DocSource::Store(reader, self.row.key)))
    }

    /// Files a record (replacing the one with its sequence number) in the id map, the record map
    /// and the metadata index; the vector index is the caller's.
    fn put_record(&mut self, seq: SeqNo, record: StoredRecord) {
        if !self.meta_pending {
            // An update keeps the record's sequence number: unfile its old metadata first.
            if let Some(old) = self.records.get(&seq) {
                self.meta
                    .remove(seq, old.metadata.iter().flat_map(PackedMetadata::iter));
            }
            self.meta
                .insert(seq, record.metadata.iter().flat_map(PackedMetadata::iter));
        }
        if let Some(sp) = self.sparse.as_mut() {
            sp.file(seq, record.metadata.as_ref());
        }
        self.by_id.insert(record.id.clone(), seq);
        self.records.insert(seq, record);
    }

    /// Takes a record out of the id map, the record map and the metadata index.
    fn remove_record(&mut self, seq: SeqNo) {
        if let Some(r) = self.records.remove(&seq) {
            self.by_id.remove(&r.id);
            if !self.meta_pending {
                self.meta
                    .remove(seq, r.metadata.iter().flat_map(PackedMetadata::iter));
            }
            if let Some(sp) = self.sparse.as_mut() {
                sp.index.remove(seq);
            }
            if let Some(t) = self.text.as_mut() {
                t.remove(seq);
            }
            if let Some(p) = self.text_pending.as_mut() {
                p.push(seq);
            }
        }
    }

    /// When the index changed enough since the last checkpoint (with `force`, at all), the
    /// generation of the checkpoint to write now; the count of changes starts again. The bytes
    /// ([`CollectionState::checkpoint_bytes`]) may then be taken under a read lock.
    pub(crate) fn checkpoint_due(&mut self, force: bool) -> Option<u64> {
        let threshold = (self.row.configuration.hnsw.sync_threshold as usize)
            .max(self.records.len() / 4)
            .max(1);
        // A graph with unlinked nodes is never written: loaded back, nothing would reach them.
        if self.dirty == 0
            || (!force && self.dirty < threshold)
            || self.index.as_ref().is_none_or(HnswIndex::has_unlinked)
        {
            return None;
        }
        self.dirty = 0;
        // A new checkpoint breaks the pairing with the vector file (its writer removes it).
        self.vectors_written = None;
        self.checkpoints += 1;
        Some(self.checkpoints)
    }

    /// At a clean close: the generation of the checkpoint to write with a vector file, when the
    /// index changed since the last checkpoint or the vector file on disk does not match
    /// `store_version` (the records' version in the store now); `None` when the files on disk
    /// are current, or the index cannot be written (no index, or nodes waiting to be linked).
    pub(crate) fn close_checkpoint_due(&mut self, store_version: u64) -> Option<u64> {
        if self.index.is_none() || (self.dirty == 0 && self.vectors_written == Some(store_version))
        {
            return None;
        }
        self.dirty = self.dirty.max(1);
        self.checkpoint_due(true)
    }

    /// The vector index, if the collection has one.
    pub(crate) fn index(&self) -> Option<&HnswIndex> {
        self.index.as_ref()
    }

    /// Replaces an index whose every node is a tombstone with an empty one, freeing them (the
    /// next checkpoint records it). Only the write path with no rebuild running, or the
    /// rebuild itself, may call it: a rebuild walks the index by node number.
    fn empty_a_hollow_index(&mut self) {
        if let Some(ix) = self
            .index
            .as_mut()
            .filter(|ix| ix.is_empty() && ix.nodes() > 0)
        {
            *ix = ix.empty_like();
            self.dirty = self.dirty.max(1);
        }
    }

    /// Checkpoint bytes of the vector index (none while some of its nodes wait to be linked).
    pub(crate) fn checkpoint_bytes(&self) -> Option<Vec<u8>> {
        let index = self.index.as_ref().filter(|ix| !ix.has_unlinked())?;
        Some(index.to_checkpoint())
    }

    pub(crate) fn info(&self, id: CollectionId) -> CollectionInfo {
        CollectionInfo {
            id,
            name: self.row.name.clone(),
            tenant: self.tenant.clone(),
            database: self.database.clone(),
            metadata: self.row.metadata.clone(),
            configuration: self.row.configuration.clone(),
            dimension: self.row.dimension,
            forks: self.row.forks,
            total_ops: self.row.total_ops,
        }
    }

    /// Brings the derived indexes in line with the schema: a sparse index for the key it names
    /// (built from the records when the key changes), none when it names none.
    pub(crate) fn refresh_indexes(&mut self) {
        let want = SchemaIndexes::of(&self.row.configuration).sparse;
        let have = self.sparse.as_ref().map(|s| (s.key.clone(), s.bm25));
        if want == have {
            return;
        }
        self.sparse = want.map(|(key, bm25)| {
            let mut sp = SparseState::new(key, bm25);
            if have.as_ref().map(|h| &h.0) == Some(&sp.key) {
                // Only the BM25 flag changed: the postings stay.
                if let Some(old) = self.sparse.take() {
                    sp.index = old.index;
                }
            } else {
                for (seq, r) in &self.records {
                    sp.file(*seq, r.metadata.as_ref());
                }
                sp.index.shrink_to_fit();
            }
            sp
        });
    }

    /// Applies the configuration's changeable knobs (`ef_search`, `num_threads`) to the live
    /// index.
    pub(crate) fn apply_tuning(&mut self) {
        if let Some(ix) = self.index.as_mut() {
            ix.configure(&self.row.configuration.hnsw);
        }
    }

    /// The description, unless the collection was deleted (a handle looked up just before).
    pub(crate) fn live_info(&self, id: CollectionId) -> Option<CollectionInfo> {
        (!self.dropped).then(|| self.info(id))
    }

    /// True once the collection was deleted.
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Forgets everything (after the deletion is committed).
    pub(crate) fn drop_all(&mut self) {
        self.dropped = true;
        self.by_id = HashMap::new();
        self.records = BTreeMap::new();
        self.meta = MetaIndex::default();
        self.meta_pending = false;
        self.keys = KeyInterner::default();
        self.index = None;
        self.sparse = None;
        self.text = None;
        self.text_pending = None;
    }

    /// No trigram index exists or is being built, and one may be: full-text search is on and
    /// the collection is not deleted.
    pub(crate) fn wants_text_index(&self) -> bool {
        self.fts && !self.dropped && self.text.is_none() && self.text_pending.is_none()
    }

    /// The metadata index of the records, built from scratch.
    pub(crate) fn metadata_index(&self) -> MetaIndex {
        let never = std::sync::atomic::AtomicBool::new(false);
        self.metadata_index_unless(&never).unwrap_or_default()
    }

    /// [`CollectionState::metadata_index`], given up (`None`) soon after `stop` is set.
    fn metadata_index_unless(&self, stop: &std::sync::atomic::AtomicBool) -> Option<MetaIndex> {
        let mut meta = MetaIndex::default();
        for (i, (seq, r)) in self.records.iter().enumerate() {
            if i % 4096 == 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            meta.insert(*seq, r.metadata.iter().flat_map(PackedMetadata::iter));
        }
        Some(meta)
    }

    /// A copy with another row (new id, key and name).
    pub(crate) fn fork(&self, row: CollectionRow) -> CollectionState {
        CollectionState {
            row,
            tenant: self.tenant.clone(),
            database: self.database.clone(),
            dropped: false,
            by_id: self.by_id.clone(),
            records: self.records.clone(),
            meta: if self.meta_pending {
                self.metadata_index()
            } else {
                self.meta.clone()
            },
            meta_pending: false,
            // A fresh set: keys shared with the source would never look unused to either sweep.
            keys: KeyInterner::default(),
            // A fork of a collection in a bulk load is not one: its vectors are linked now.
            index: self.index.clone().map(|mut ix| {
                ix.link_deferred();
                ix
            }),
            next_seq: self.next_seq,
            dirty: self.records.len().max(1),
            vectors_written: None,
            docs_held: self.docs_held,
            rebuilding: false,
            checkpoints: 0,
            sparse: self.sparse.clone(),
            // A fork made while the source's index is still being built scans instead.
            text: self.text.clone(),
            fts: self.fts,
            text_requested: Arc::default(),
            text_pending: None,
            defer_links: false,
            bulk_expected: 0,
        }
    }

    /// True when `r`, whose document is `doc`, passes the filters.
    fn matches(
        r: &StoredRecord,
        doc: Option<&str>,
        w: Option<&Where>,
        wd: Option<&WhereDocument>,
    ) -> bool {
        w.is_none_or(|w| w.matches(&r.id, r.metadata.as_ref(), doc))
            && wd.is_none_or(|wd| wd.matches(doc))
    }

    /// Sequence numbers of the first `first` records selected by ids ∩ filters, in storage order
    /// (a scan stops there). Filters on documents read them from the store when the collection
    /// does not hold them: a handful by sequence number, or all of them in one streaming scan.
    ///
    /// # Errors
    /// Storage errors while reading documents.
    fn select(
        &self,
        inner: &Inner,
        ids: Option<&[String]>,
        w: Option<&Where>,
        wd: Option<&WhereDocument>,
        first: usize,
    ) -> Result<Vec<SeqNo>> {
        self.select_or_superset(inner, ids, w, wd, first, false)
            .map(|(seqs, _)| seqs)
    }

    /// [`CollectionState::select`]; with `superset`, candidates that would each be read from the
    /// store to check their document come back unchecked instead (flag `false`; the filters'
    /// in-memory parts already applied), for a caller that checks only the few it ranks first.
    fn select_or_superset(
        &self,
        inner: &Inner,
        ids: Option<&[String]>,
        w: Option<&Where>,
        wd: Option<&WhereDocument>,
        first: usize,
        superset: bool,
    ) -> Result<(Vec<SeqNo>, bool)> {
        let reads_docs = wd.is_some() || w.is_some_and(Where::reads_document);
        // Sequence numbers to look up one at a time.
        let seqs = match ids {
            Some(ids) => {
                let mut seqs: Vec<SeqNo> = ids
                    .iter()
                    .filter_map(|id| self.by_id.get(id).copied())
                    .collect();
                seqs.sort_unstable();
                seqs.dedup();
                Some(seqs)
            }
            None => {
                // An exact answer is used whatever its size (no record is looked at); candidates
                // that must each be looked up and checked pay only while they are few next to a
                // scan of every record in order.
                let budget = (self.records.len() / 8).max(256);
                let all = || self.records.keys().copied().collect::<Vec<_>>();
                // While the metadata index is built after an open, filters scan.
                let w = w.filter(|_| !self.meta_pending);
                match w.and_then(|w| self.meta.candidates(w, self.records.len(), &all)) {
                    Some((mut seqs, true)) if !reads_docs => {
                        seqs.truncate(first);
                        return Ok((seqs, true));
                    }
                    Some((seqs, _)) if seqs.len() <= budget => Some(seqs),
                    _ => None,
                }
            }
        };
        // The full-text index narrows document conditions to candidates; when its answer for
        // `where_document` is exact and `where` reads no document, no document is read at all.
        let mut wd = wd;
        let mut reads_docs = reads_docs;
        let mut seqs = seqs;
        if reads_docs && self.wants_text_index() {
            // This one scans; the index is built for the next ones.
            self.text_requested
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(t) = self.text.as_ref().filter(|_| reads_docs) {
            let from_wd = wd.and_then(|wd| text::document(t, wd));
            let w_reads = w.is_some_and(Where::reads_document);
            let from_w = w
                .filter(|_| w_reads)
                .and_then(|w| text::where_clauses(t, w));
            let exact = wd.is_none() || from_wd.as_ref().is_some_and(|(_, e)| *e);
            let narrowed = match (from_wd, from_w) {
                (Some((a, _)), Some((b, _))) => Some(crate::metaindex::intersect(&a, &b)),
                (Some((a, _)), None) | (None, Some((a, _))) => Some(a),
                (None, None) => None,
            };
            if let Some(n) = narrowed {
                let exact = exact && !w_reads;
                // Looking candidates up one by one pays while they are few next to a scan.
                if exact || n.len() <= (self.records.len() / 4).max(256) {
                    seqs = Some(match seqs {
                        Some(s) => crate::metaindex::intersect(&s, &n),
                        None => n,
                    });
                    if exact {
                        wd = None;
                        reads_docs = false;
                    }
                }
            }
        }
        // In memory when the filters need no document or the collection holds them (a
        // persistent record's `document` is `None`, never looked at then).
        if !reads_docs || self.docs_held {
            let check = |s: &SeqNo| {
                self.records
                    .get(s)
                    .is_some_and(|r| Self::matches(r, r.document.as_deref(), w, wd))
            };
            return Ok((
                match seqs {
                    Some(seqs) => seqs.into_iter().filter(check).take(first).collect(),
                    None => self
                        .records
                        .keys()
                        .copied()
                        .filter(check)
                        .take(first)
                        .collect(),
                },
                true,
            ));
        }
        if let (true, Some(seqs)) = (superset, &seqs) {
            let w_reads = w.is_some_and(Where::reads_document);
            let maybe: Vec<SeqNo> = seqs
                .iter()
                .copied()
                .filter(|s| {
                    self.records.get(s).is_some_and(|r| {
                        w_reads || w.is_none_or(|w| w.matches(&r.id, r.metadata.as_ref(), None))
                    })
                })
                .collect();
            return Ok((maybe, false));
        }
        let key = self.row.key;
        inner.with_reader(|reader| {
            let mut out = Vec::new();
            match seqs {
                Some(seqs) => {
                    let docs = DocSource::Store(reader, key);
                    for s in seqs {
                        if out.len() >= first {
                            break;
                        }
                        let Some(r) = self.records.get(&s) else {
                            continue;
                        };
                        if Self::matches(r, docs.get(s, r)?.as_deref(), w, wd) {
                            out.push(s);
                        }
                    }
                }
                None if first > 0 => {
                    reader.scan_documents(key, |s, doc| {
                        if let Some(r) = self.records.get(&s) {
                            if Self::matches(r, doc, w, wd) {
                                out.push(s);
                            }
                        }
                        out.len() < first
                    })?;
                }
                None => {}
            }
            Ok((out, true))
        })
    }

    /// The `k` nearest to `q` among candidates `c` that pass the request's filters, reading the
    /// documents of the nearest candidates only: `2k` are ranked, checked, and the search widened
    /// fourfold until `k` pass or the candidates run out. Each document is read once.
    ///
    /// # Errors
    /// Storage errors while reading documents.
    fn nearest_passing(
        &self,
        inner: &Inner,
        index: &HnswIndex,
        q: &[f32],
        k: usize,
        c: &ochre_index::CandidateSet,
        req: &QueryRequest,
    ) -> Result<Vec<Neighbor>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let (w, wd) = (req.where_.as_ref(), req.where_document.as_ref());
        inner.with_reader(|reader| {
            let docs = DocSource::Store(reader, self.row.key);
            let mut passed: HashMap<SeqNo, bool> = HashMap::new();
            let mut want = k.saturating_mul(2);
            loop {
                let hits = index.search_candidates(q, want, c);
                let mut out = Vec::with_capacity(k);
                for h in &hits {
                    let ok = match passed.get(&h.seq) {
                        Some(ok) => *ok,
                        None => {
                            let ok = match self.records.get(&h.seq) {
                                Some(r) => Self::matches(r, docs.get(h.seq, r)?.as_deref(), w, wd),
                                None => false,
                            };
                            passed.insert(h.seq, ok);
                            ok
                        }
                    };
                    if ok {
                        out.push(*h);
                        if out.len() == k {
                            return Ok(out);
                        }
                    }
                }
                if hits.len() < want {
                    return Ok(out);
                }
                want = want.saturating_mul(4);
            }
        })
    }

    /// The records `seqs` with the fields `include` asks for.
    ///
    /// # Errors
    /// Storage errors while reading documents.
    fn project(&self, inner: &Inner, seqs: &[SeqNo], include: Include) -> Result<GetResult> {
        let recs: Vec<(SeqNo, &StoredRecord)> = seqs
            .iter()
            .filter_map(|s| self.records.get(s).map(|r| (*s, r)))
            .collect();
        let documents = if include.documents && !recs.is_empty() {
            Some(self.with_docs(inner, |docs| {
                recs.iter()
                    .map(|(s, r)| Ok(docs.get(*s, r)?.map(Cow::into_owned)))
                    .collect::<Result<Vec<_>>>()
            })?)
        } else {
            include.documents.then(Vec::new)
        };
        Ok(GetResult {
            ids: recs.iter().map(|(_, r)| r.id.clone()).collect(),
            embeddings: include.embeddings.then(|| {
                seqs.iter()
                    .map(|s| {
                        self.index
                            .as_ref()
                            .and_then(|i| i.get(*s))
                            .map(<[f32]>::to_vec)
                            .unwrap_or_default()
                    })
                    .collect()
            }),
            documents,
            uris: include
                .uris
                .then(|| recs.iter().map(|(_, r)| r.uri.clone()).collect()),
            // Chroma keeps a record's uri among its metadata, so a record with a uri and no
            // metadata reads back with an empty map, not none.
            metadatas: include.metadatas.then(|| {
                recs.iter()
                    .map(|(_, r)| match &r.metadata {
                        Some(m) => Some(m.unpack()),
                        None => r.uri.as_ref().map(|_| Metadata::new()),
                    })
                    .collect()
            }),
        })
    }
}

/// A handle for record operations on one collection. Cheap to clone.
///
/// After the collection is deleted, every operation fails with [`ErrorKind::NotFound`].
#[derive(Clone)]
pub struct Collection {
    inner: Arc<Inner>,
    handle: Arc<CollectionHandle>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("id", &self.handle.id)
            .finish()
    }
}

/// The share of tombstones past which a write starts a background rebuild.
#[derive(Debug, Clone, Copy)]
enum RebuildPast {
    /// Adds, updates and upserts (replaced vectors), which go on at any pace.
    Sixth,
    /// Deletes: a run of them is usually followed by more (or empties the index, which needs no
    /// rebuild), so compaction waits until half the graph is tombstones.
    Half,
}

/// Declared before a read's lock guard, so dropped after it: starts the trigram index's build
/// when a document filter of the read scanned for want of one.
struct BuildTextOnDemand<'a>(&'a Collection);

impl Drop for BuildTextOnDemand<'_> {
    fn drop(&mut self) {
        let c = self.0;
        let asked = c
            .handle
            .text_requested
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if asked {
            c.inner.start_text_build(&c.handle);
        }
    }
}

impl Collection {
    pub(crate) fn new(inner: Arc<Inner>, handle: Arc<CollectionHandle>) -> Self {
        Collection { inner, handle }
    }

    fn gone(&self) -> Error {
        Error::not_found(format!("Collection [{}] does not exist.", self.handle.id))
    }

    /// The collection id.
    pub fn id(&self) -> CollectionId {
        self.handle.id
    }

    /// The collection's current description.
    pub fn info(&self) -> CollectionInfo {
        self.handle.state.read().info(self.handle.id)
    }

    /// Starts a bulk load (an import into a new collection): from now on writes store their
    /// vectors in the index without linking them into its graph, which
    /// [`Collection::finish_bulk_load`] does once, for all of them, or replaces by a graph built
    /// elsewhere. Meanwhile every answer stays right (vector searches scan exactly, so they are
    /// slower) and no checkpoint is written (a database closed before the load finishes builds
    /// the graph when it is next opened). `expected_records`, when known, makes room for that
    /// many vectors at once (0: none made; the arrays grow as records come); called again during
    /// the same load, it makes room for the larger figure.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a deleted collection.
    pub fn defer_indexing(&self, expected_records: usize) -> Result<()> {
        let mut st = self.handle.state.write();
        if st.dropped {
            return Err(self.gone());
        }
        st.defer_links = true;
        st.bulk_expected = st.bulk_expected.max(expected_records);
        let expected = st.bulk_expected;
        if let Some(ix) = st.index.as_mut() {
            ix.defer_links(true);
            ix.reserve(expected.saturating_sub(ix.nodes()));
        }
        Ok(())
    }

    /// Ends a bulk load ([`Collection::defer_indexing`]): adopts `graph`, built elsewhere over
    /// the records written since (Chroma's HNSW files, on an import), when it has the index's
    /// degree and is consistent, and links into the graph whatever it lacks; without a graph,
    /// or when it does not fit, links every deferred vector. A checkpoint is then written as
    /// after any write of that size. The graph's nodes must stand for the records' current
    /// vectors: a record whose vector changed since the graph was built should be named by no
    /// node (`None`), so that it is linked where it is now.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a deleted collection.
    pub fn finish_bulk_load(&self, graph: Option<ImportedGraph>) -> Result<BulkLoadReport> {
        let mut guard = self.handle.state.write();
        if guard.dropped {
            return Err(self.gone());
        }
        guard.defer_links = false;
        guard.bulk_expected = 0;
        let st = &mut *guard;
        let Some(ix) = st.index.as_mut() else {
            return Ok(BulkLoadReport::default());
        };
        let mut report = BulkLoadReport::default();
        match graph {
            Some(_) if st.rebuilding => {
                report.refused = Some("a rebuild of the index is running".to_owned());
            }
            Some(g) => {
                // Nodes naming a record that is not here (deleted meanwhile, or never written)
                // route only; they are counted as stale.
                let mut unmatched = 0;
                let prebuilt = g.map_nodes(|id| {
                    let seq = st.by_id.get(&id).copied();
                    unmatched += usize::from(seq.is_none());
                    seq
                });
                match ix.adopt(prebuilt) {
                    Ok(r) => {
                        report.adopted = true;
                        report.linked = r.missing.len();
                        report.stale = r.stale + unmatched;
                    }
                    Err(e) => report.refused = Some(e.to_string()),
                }
            }
            None => {}
        }
        report.linked += ix.unlinked();
        ix.link_deferred();
        let len = ix.len();
        tracing::info!(collection = %self.handle.id, adopted = report.adopted, linked = report.linked, refused = report.refused.as_deref(), "bulk load finished");
        st.dirty = st.dirty.max(len);
        self.finish_write(guard, RebuildPast::Sixth);
        Ok(report)
    }

    /// Waits until no background rebuild of the collection's vector index is under way (one
    /// starts when deletes and replaced vectors have left tombstones in a sixth of the graph;
    /// queries are answered meanwhile by the old graph), until a full-text index being built in
    /// the background (on the first document filter) is in place (document filters scan
    /// meanwhile), and until its
    /// metadata index likewise (metadata filters scan meanwhile). For tests and benchmarks that
    /// measure the maintained indexes.
    pub fn wait_for_index_maintenance(&self) {
        while {
            let st = self.handle.state.read();
            st.rebuilding || st.text_pending.is_some() || st.meta_pending
        } {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Adds records; ids that already exist (or repeat earlier in the batch) are skipped silently.
    ///
    /// # Errors
    /// Validation errors (nothing is written); [`ErrorKind::NotFound`]; storage errors.
    pub fn add(&self, batch: RecordBatch) -> Result<()> {
        self.write(WriteKind::Add, batch, |_| None)
    }

    /// Inserts new ids and merges into existing ones (metadata key by key; `None` values delete).
    ///
    /// # Errors
    /// As [`Collection::add`].
    pub fn upsert(&self, batch: RecordBatch) -> Result<()> {
        self.write(WriteKind::Upsert, batch, |_| None)
    }

    /// Changes existing records; unknown ids are skipped silently.
    ///
    /// # Errors
    /// As [`Collection::add`].
    pub fn update(&self, batch: RecordBatch) -> Result<()> {
        self.write(WriteKind::Update, batch, |_| None)
    }

    /// Writes a batch as [`Collection::add`], [`Collection::upsert`] or [`Collection::update`]
    /// do, and changes the stored schema in the same transaction: `evolve` sees the current
    /// configuration (under the collection's write lock, after the batch validated) and returns
    /// the new schema, or `None` to leave it. The HTTP layer uses this to record metadata keys as
    /// writes introduce them.
    ///
    /// # Errors
    /// As [`Collection::add`]; nothing is written on error.
    pub fn write_evolving_schema(
        &self,
        kind: WriteKind,
        batch: RecordBatch,
        evolve: impl FnOnce(&CollectionConfiguration) -> Option<serde_json::Value>,
    ) -> Result<()> {
        self.write(kind, batch, evolve)
    }

    fn write(
        &self,
        kind: WriteKind,
        batch: RecordBatch,
        evolve: impl FnOnce(&CollectionConfiguration) -> Option<serde_json::Value>,
    ) -> Result<()> {
        let mut st = self.handle.state.write();
        if st.dropped {
            return Err(self.gone());
        }
        self.inner.check_writable()?;
        let dim = validate::batch(kind, &batch, st.row.dimension)?;
        let ops = batch.ids.len() as u64;
        let mut staged: Vec<Staged> = Vec::new();
        let mut pos: HashMap<&str, usize> = HashMap::new();
        let mut next_seq = st.next_seq;
        for (i, id) in batch.ids.iter().enumerate() {
            let embedding = batch.embeddings.as_ref().and_then(|e| e[i].as_ref());
            let document = batch.documents.as_ref().and_then(|d| d[i].as_ref());
            let uri = batch.uris.as_ref().and_then(|u| u[i].as_ref());
            let metadata = batch.metadatas.as_ref().and_then(|m| m[i].as_ref());
            let merge = |s: &mut Staged| {
                if let Some(e) = embedding {
                    s.embedding = e.clone();
                }
                if let Some(d) = document {
                    s.document = StagedDocument::Set(Some(d.clone()));
                }
                if let Some(u) = uri {
                    s.uri = Some(u.clone());
                }
                if let Some(m) = metadata {
                    s.metadata = validate::merged_metadata(s.metadata.as_ref(), m);
                }
            };
            if let Some(&j) = pos.get(id.as_str()) {
                if kind != WriteKind::Add {
                    merge(&mut staged[j]);
                }
                continue;
            }
            if let Some(&seq) = st.by_id.get(id) {
                if kind == WriteKind::Add {
                    continue;
                }
                let out_of_step = || {
                    Error::new(
                        ErrorKind::Internal,
                        format!("collection state out of step for record {id:?}"),
                    )
                };
                let old = st.records.get(&seq).ok_or_else(out_of_step)?;
                let old_embedding = st
                    .index
                    .as_ref()
                    .and_then(|ix| ix.get(seq))
                    .ok_or_else(out_of_step)?
                    .to_vec();
                let mut s = Staged {
                    seq,
                    id: id.clone(),
                    embedding: old_embedding,
                    document: StagedDocument::Keep,
                    uri: old.uri.clone(),
                    metadata: old.metadata.as_ref().map(PackedMetadata::unpack),
                };
                merge(&mut s);
                pos.insert(id, staged.len());
                staged.push(s);
                continue;
            }
            if kind == WriteKind::Update {
                continue;
            }
            let Some(embedding) = embedding else {
                return Err(Error::invalid(format!(
                    "record {id:?} has no embedding (add and upsert need one for every record)"
                )));
            };
            if next_seq > MAX_SEQ {
                return Err(Error::invalid(
                    "this collection has used up its sequence numbers",
                ));
            }
            pos.insert(id, staged.len());
            staged.push(Staged {
                seq: SeqNo(next_seq),
                id: id.clone(),
                embedding: embedding.clone(),
                document: StagedDocument::Set(document.cloned()),
                uri: uri.cloned(),
                metadata: metadata.and_then(validate::inserted_metadata),
            });
            next_seq += 1;
        }
        let new_dim = match (st.row.dimension, dim) {
            (None, Some(d)) => Some(d),
            _ => None,
        };
        // The collection row changes when the batch fixes the dimension or evolves the schema.
        let mut row = None;
        if let Some(d) = new_dim {
            let mut r = st.row.clone();
            r.dimension = Some(d);
            row = Some(r);
        }
        if let Some(schema) = evolve(&st.row.configuration) {
            row.get_or_insert_with(|| st.row.clone())
                .configuration
                .schema = Some(schema);
        }
        {
            let mut muts: Vec<Mutation<'_>> = Vec::with_capacity(staged.len() + 2);
            if let Some(r) = &row {
                muts.push(Mutation::UpdateCollection(r));
            }
            muts.push(Mutation::CountOps {
                key: self.handle.key,
                n: ops,
            });
            for s in &staged {
                muts.push(Mutation::PutRecord(RecordRow {
                    collection_key: self.handle.key,
                    seq: s.seq,
                    id: &s.id,
                    embedding: &s.embedding,
                    document: match &s.document {
                        StagedDocument::Keep => DocumentWrite::Keep,
                        StagedDocument::Set(d) => DocumentWrite::Set(d.as_deref()),
                    },
                    uri: s.uri.as_deref(),
                    metadata: s.metadata.as_ref(),
                }));
            }
            if muts.is_empty() {
                return Ok(());
            }
            // The store transaction, made durable (WAL, fsync) before the write is applied.
            tracing::debug_span!("commit", records = staged.len())
                .in_scope(|| self.inner.commit(&muts))?;
        }
        // Committed: apply to memory. Nothing below can fail.
        if let Some(r) = row {
            if new_dim.is_some() {
                let mut index = new_index(&r, r.dimension.unwrap_or(0));
                index.defer_links(st.defer_links);
                if st.defer_links {
                    index.reserve(st.bulk_expected);
                }
                st.index = Some(index);
            }
            st.row = r;
            st.refresh_indexes();
        }
        st.row.total_ops += ops;
        st.next_seq = next_seq;
        if !staged.is_empty() {
            // Nothing after the commit may fail: the index exists, since this write (or an earlier
            // one) fixed the dimension and created it.
            #[allow(clippy::expect_used, reason = "a committed record write has an index")]
            let index = st
                .index
                .as_mut()
                .expect("a record write fixes the dimension");
            // Only new records and changed vectors go into the graph: an update of metadata,
            // document or uri (or one that sets the same vector) leaves the record's node alone.
            let items: Vec<(SeqNo, &[f32])> = staged
                .iter()
                .filter(|s| index.get(s.seq) != Some(s.embedding.as_slice()))
                .map(|s| (s.seq, s.embedding.as_slice()))
                .collect();
            tracing::debug_span!("index_insert", vectors = items.len())
                .in_scope(|| insert_all(index, &items));
            st.dirty += items.len();
        }
        for s in staged {
            if let StagedDocument::Set(d) = &s.document {
                if let Some(t) = st.text.as_mut() {
                    match d {
                        Some(d) => t.insert(s.seq, d),
                        None => t.remove(s.seq),
                    }
                }
                if let Some(p) = st.text_pending.as_mut() {
                    p.push(s.seq);
                }
            }
            let metadata = s.metadata.map(|m| PackedMetadata::pack(m, &mut st.keys));
            let document = match s.document {
                _ if !st.docs_held => None,
                StagedDocument::Keep => st.records.get_mut(&s.seq).and_then(|r| r.document.take()),
                StagedDocument::Set(d) => d,
            };
            st.put_record(
                s.seq,
                StoredRecord {
                    id: s.id,
                    document,
                    uri: s.uri,
                    metadata,
                },
            );
        }
        // Replaced vectors leave tombstones; past a sixth of the graph it is rebuilt.
        self.finish_write(st, RebuildPast::Sixth);
        Ok(())
    }

    /// After a write applied to memory: starts a background rebuild when tombstones have
    /// degraded the index (past `past` of its nodes), and writes a checkpoint when one is due,
    /// under a read lock only (the file itself with no lock held).
    fn finish_write(&self, mut st: RwLockWriteGuard<'_, CollectionState>, past: RebuildPast) {
        // Every vector deleted: nothing to rebuild; an empty graph lets them go at once. While
        // a rebuild runs, the index is its to replace (it walks the graph by node number): it
        // gives up on an empty index and empties it itself.
        if !st.rebuilding {
            st.empty_a_hollow_index();
        }
        let divisor = match past {
            RebuildPast::Sixth => 6,
            RebuildPast::Half => 2,
        };
        if st
            .index
            .as_ref()
            .is_some_and(|ix| ix.tombstones_exceed(divisor))
            && !st.rebuilding
        {
            st.rebuilding = true;
            let handle = self.handle.clone();
            let closing = self.inner.closing.clone();
            let started = std::thread::Builder::new()
                .name("ochre-rebuild".into())
                .spawn(move || rebuild_in_background(&handle, &closing));
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start a background rebuild; rebuilding in place");
                st.rebuilding = false;
                if let Some(ix) = st.index.as_mut() {
                    maintain(ix);
                }
            }
        }
        let Some(generation) = st.checkpoint_due(false) else {
            return;
        };
        let st = RwLockWriteGuard::downgrade(st);
        let bytes = st.checkpoint_bytes();
        drop(st);
        if let Some(bytes) = bytes {
            self.inner
                .write_checkpoint(&self.handle, generation, &bytes);
        }
    }

    /// Deletes records by ids and/or filters; returns Chroma's `deleted` figure (the number of ids
    /// sent for an id-only delete, the number of records removed otherwise).
    ///
    /// # Errors
    /// `ids: []` without a filter, or `limit` without a filter (invalid argument);
    /// [`ErrorKind::NotFound`]; storage errors.
    pub fn delete(&self, req: DeleteRequest) -> Result<u32> {
        let has_filter = req.where_.is_some() || req.where_document.is_some();
        if req.ids.as_ref().is_some_and(Vec::is_empty) && !has_filter {
            return Err(Error::invalid(
                "Validation error: ids, where: Either ids or where must be specified",
            ));
        }
        if req.limit.is_some() && !has_filter {
            return Err(Error::invalid(
                "Validation error: limit, where: limit can only be specified when a where clause is provided",
            ));
        }
        let _text = BuildTextOnDemand(self);
        let mut st = self.handle.state.write();
        if st.dropped {
            return Err(self.gone());
        }
        self.inner.check_writable()?;
        if req.ids.is_none() && !has_filter {
            return Ok(0);
        }
        let seqs = st.select(
            &self.inner,
            req.ids.as_deref(),
            req.where_.as_ref(),
            req.where_document.as_ref(),
            req.limit.map_or(usize::MAX, |l| l as usize),
        )?;
        let reported = match (&req.ids, has_filter) {
            (Some(ids), false) => ids.len(),
            _ => seqs.len(),
        };
        let ops = reported as u64;
        if ops > 0 {
            let mut muts: Vec<Mutation<'_>> = seqs
                .iter()
                .map(|s| Mutation::DeleteRecord {
                    collection_key: self.handle.key,
                    seq: *s,
                })
                .collect();
            muts.push(Mutation::CountOps {
                key: self.handle.key,
                n: ops,
            });
            tracing::debug_span!("commit", records = seqs.len())
                .in_scope(|| self.inner.commit(&muts))?;
            st.row.total_ops += ops;
        }
        for s in seqs {
            st.remove_record(s);
            if let Some(ix) = st.index.as_mut() {
                ix.remove(s);
            }
        }
        st.dirty += reported;
        // Deletes often come in runs (emptying a collection batch by batch): a rebuild started at
        // a sixth would hold a second copy of most of what the next batches delete.
        self.finish_write(st, RebuildPast::Half);
        Ok(u32::try_from(reported).unwrap_or(u32::MAX))
    }

    /// Records selected by ids ∩ where ∩ where_document, in storage order, after offset and limit.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn get(&self, req: GetRequest) -> Result<GetResult> {
        let _text = BuildTextOnDemand(self);
        let st = self.handle.state.read();
        if st.dropped {
            return Err(self.gone());
        }
        let offset = req.offset.unwrap_or(0) as usize;
        let limit = req.limit.map_or(usize::MAX, |l| l as usize);
        let filter = tracing::debug_span!("filter", records = tracing::field::Empty).entered();
        let seqs: Vec<SeqNo> =
            if req.ids.is_none() && req.where_.is_none() && req.where_document.is_none() {
                st.records
                    .keys()
                    .skip(offset)
                    .take(limit)
                    .copied()
                    .collect()
            } else {
                let all = st.select(
                    &self.inner,
                    req.ids.as_deref(),
                    req.where_.as_ref(),
                    req.where_document.as_ref(),
                    offset.saturating_add(limit),
                )?;
                all.into_iter().skip(offset).collect()
            };
        filter.record("records", seqs.len());
        drop(filter);
        let _hydrate = tracing::debug_span!("hydrate", records = seqs.len()).entered();
        st.project(&self.inner, &seqs, req.include)
    }

    /// The first `n` records with embeddings, documents and metadatas.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn peek(&self, n: u32) -> Result<GetResult> {
        self.get(GetRequest {
            limit: Some(n),
            include: Include {
                embeddings: true,
                documents: true,
                metadatas: true,
                uris: false,
                distances: false,
            },
            ..Default::default()
        })
    }

    /// Number of records.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn count(&self) -> Result<usize> {
        let st = self.handle.state.read();
        if st.dropped {
            return Err(self.gone());
        }
        Ok(st.records.len())
    }

    /// The `n_results` nearest records to each query embedding among those selected by ids and
    /// filters; exact distances, nearest first.
    ///
    /// # Errors
    /// Inconsistent or wrong query dimensions; `Error finding id` (invalid argument; Chroma makes
    /// it internal) when `ids` names an unknown record and no filter is given;
    /// [`ErrorKind::NotFound`].
    pub fn query(&self, req: QueryRequest) -> Result<QueryResult> {
        let _text = BuildTextOnDemand(self);
        let st = self.handle.state.read();
        if st.dropped {
            return Err(self.gone());
        }
        let mut dim = None;
        for q in &req.embeddings {
            if q.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid(
                    "Validation error: query_embeddings: Embeddings must not contain NaN or Infinity values",
                ));
            }
            match dim {
                None => dim = Some(q.len()),
                Some(d) if d != q.len() => {
                    return Err(Error::invalid(
                        "Inconsistent dimensions in provided embeddings",
                    ))
                }
                Some(_) => {}
            }
        }
        let nq = req.embeddings.len();
        let inc = req.include;
        let mut out = QueryResult {
            ids: Vec::with_capacity(nq),
            embeddings: inc.embeddings.then(Vec::new),
            documents: inc.documents.then(Vec::new),
            uris: inc.uris.then(Vec::new),
            metadatas: inc.metadatas.then(Vec::new),
            distances: inc.distances.then(Vec::new),
        };
        let (Some(index), Some(coll_dim)) = (&st.index, st.row.dimension) else {
            for _ in 0..nq {
                push_hits(&mut out, &self.inner, &st, &[], inc)?;
            }
            return Ok(out);
        };
        if let Some(d) = dim {
            if d != coll_dim as usize {
                return Err(Error::invalid(format!(
                    "Collection expecting embedding with dimension of {coll_dim}, got {d}"
                )));
            }
        }
        let has_filter = req.where_.is_some() || req.where_document.is_some();
        let mut unchecked = false;
        let filter = tracing::debug_span!("filter", candidates = tracing::field::Empty).entered();
        // None = every record; Some(list) = exactly these (or, when `unchecked`, a superset
        // whose documents are still to be checked).
        let candidates: Option<Vec<SeqNo>> = match (&req.ids, has_filter) {
            (None, false) => None,
            (Some(ids), false) => {
                let mut seqs = Vec::with_capacity(ids.len());
                for id in ids {
                    match st.by_id.get(id) {
                        Some(s) => seqs.push(*s),
                        // Chroma answers this with a 500 `InternalError`; it is the client's
                        // mistake, so a 400 with Chroma's message (which its clients match on).
                        None => {
                            return Err(Error::invalid(
                                "Error executing plan: Internal error: Error finding id",
                            ))
                        }
                    }
                }
                seqs.sort_unstable();
                seqs.dedup();
                Some(seqs)
            }
            (ids, true) => {
                let (seqs, checked) = st.select_or_superset(
                    &self.inner,
                    ids.as_deref(),
                    req.where_.as_ref(),
                    req.where_document.as_ref(),
                    usize::MAX,
                    true,
                )?;
                unchecked = !checked;
                Some(seqs)
            }
        };
        if let Some(c) = &candidates {
            filter.record("candidates", c.len());
        }
        drop(filter);
        let k = req.n_results as usize;
        // How the index is searched: the whole graph, a traversal limited to the candidates, or
        // an exact scan of them (small sets).
        let plan = tracing::debug_span!("plan", strategy = tracing::field::Empty).entered();
        let prepared = candidates.as_deref().map(|c| index.candidates(c));
        plan.record(
            "strategy",
            match &prepared {
                None => "graph",
                Some(c) if c.is_exact() => "exact_scan",
                Some(_) => "filtered_graph",
            },
        );
        drop(plan);
        if let (true, Some(c)) = (unchecked, &prepared) {
            // Candidates whose documents are yet to be checked: rank first, then read the
            // documents of the nearest only, widening the search until k of them pass.
            for q in &req.embeddings {
                let hits = tracing::debug_span!("index_search", documents_checked = true)
                    .in_scope(|| st.nearest_passing(&self.inner, index, q, k, c, &req))?;
                let _hydrate = tracing::debug_span!("hydrate", records = hits.len()).entered();
                push_hits(&mut out, &self.inner, &st, &hits, inc)?;
            }
            return Ok(out);
        }
        let search = |q: &Vec<f32>| -> Vec<Neighbor> {
            match &prepared {
                None => index.search(q, k),
                Some(c) => index.search_candidates(q, k, c),
            }
        };
        let hits: Vec<Vec<Neighbor>> = tracing::debug_span!("index_search", queries = nq)
            .in_scope(|| parallel_map(&req.embeddings, index.len(), &search));
        let _hydrate = tracing::debug_span!(
            "hydrate",
            records = hits.iter().map(Vec::len).sum::<usize>()
        )
        .entered();
        for h in &hits {
            push_hits(&mut out, &self.inner, &st, h, inc)?;
        }
        Ok(out)
    }
}

/// Vectors copied per step of a background rebuild.
const REBUILD_SLICE: usize = 4096;

/// Rebuilds a collection's index from its live vectors and swaps it in.
///
/// The new graph is filled a slice of the old one's nodes at a time; each slice is copied under
/// a read lock and inserted with no lock held, so reads and writes go on meanwhile. Nodes that
/// writes add meanwhile come after the slices already copied and are picked up by later ones;
/// the last slice, the removal of records deleted meanwhile and the swap happen under the write
/// lock, the only wait the rebuild imposes.
fn rebuild_in_background(handle: &CollectionHandle, closing: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    /// Clears the collection's `rebuilding` flag however the rebuild ends (a panic included),
    /// so a later write can start another.
    struct Done<'a>(&'a CollectionHandle);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.state.write().rebuilding = false;
        }
    }
    let _done = Done(handle);
    let mut fresh: Option<HnswIndex> = None;
    let mut next = 0;
    let mut copied = 0;
    let (started_with, live_at_start) = handle
        .state
        .read()
        .index
        .as_ref()
        .map_or((0, 0), |ix| (ix.nodes(), ix.len()));
    loop {
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let (seqs, data, end, threads) = {
            let st = handle.state.read();
            let Some(ix) = st.index.as_ref().filter(|_| !st.dropped) else {
                return;
            };
            if ix.is_empty() {
                drop(st);
                handle.state.write().empty_a_hollow_index();
                return;
            }
            // Deletes have outrun the rebuild: most of what it holds (or of what was live when
            // it started, should replaced vectors have made it copy more) is gone already. Give
            // up rather than hold a second graph of dead vectors; the next write starts over
            // from what is live then.
            let held = fresh.as_ref().map_or(0, HnswIndex::nodes);
            if held >= REBUILD_SLICE && ix.len() * 2 < held.min(live_at_start) {
                return;
            }
            if fresh.is_none() {
                fresh = Some(ix.empty_like());
            }
            let (seqs, data, end) = ix.live_from(next, REBUILD_SLICE);
            (seqs, data, end, ix.threads())
        };
        let Some(f) = fresh.as_mut() else { return };
        let dim = f.dimension().max(1);
        let items: Vec<(SeqNo, &[f32])> =
            seqs.iter().copied().zip(data.chunks_exact(dim)).collect();
        f.insert_batch(&items, threads);
        // A short slice means the walk caught up with the writes: the rest is done under the
        // write lock. So is everything past twice the nodes the walk started with, should
        // writes outpace it.
        let caught_up = end.saturating_sub(next) < REBUILD_SLICE;
        next = end;
        copied += seqs.len();
        if caught_up || copied > 2 * started_with {
            break;
        }
    }
    let Some(mut fresh) = fresh else { return };
    let mut st = handle.state.write();
    if st.dropped || closing.load(Ordering::SeqCst) {
        return;
    }
    let Some(old) = st.index.as_ref() else {
        return;
    };
    if old.is_empty() {
        st.empty_a_hollow_index();
        return;
    }
    // Nodes added since the last slice, then records removed since they were copied.
    let (seqs, data, _) = old.live_from(next, usize::MAX);
    let dim = fresh.dimension().max(1);
    let items: Vec<(SeqNo, &[f32])> = seqs.iter().copied().zip(data.chunks_exact(dim)).collect();
    fresh.insert_batch(&items, old.threads());
    let gone: Vec<SeqNo> = fresh.seqs().filter(|s| old.get(*s).is_none()).collect();
    for s in gone {
        fresh.remove(s);
    }
    fresh.configure(&st.row.configuration.hnsw);
    st.index = Some(fresh);
    // The next write checkpoints the new graph.
    st.dirty = st.dirty.max(st.records.len()).max(1);
    tracing::debug!(
        records = st.records.len(),
        "rebuilt a vector index in the background"
    );
}

/// Builds the metadata indexes of collections opened without one (their `meta_pending` set), one
/// collection at a time under an upgradable read lock: queries go on meanwhile (their metadata
/// filters scan), writes wait, so nothing changes between the build and the install. Stops soon
/// after the database starts closing (which needs the collections' write locks).
pub(crate) fn build_metadata_indexes(
    handles: Vec<Arc<CollectionHandle>>,
    closing: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    for h in handles {
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let st = h.state.upgradable_read();
        if !st.meta_pending {
            continue;
        }
        let Some(meta) = st.metadata_index_unless(&closing) else {
            return;
        };
        let mut st = parking_lot::RwLockUpgradableReadGuard::upgrade(st);
        st.meta = meta;
        st.meta_pending = false;
    }
}

/// Builds the trigram index of a collection whose build was asked for (its `text_pending` set,
/// by [`Inner::start_text_build`]), with its own store reader: the documents are scanned with no
/// lock held, then, under the write lock, the records writes touched meanwhile are re-read and
/// the index installed. Until then its document filters scan. Stops when the database closes.
pub(crate) fn build_text_index(
    h: Arc<CollectionHandle>,
    reader: Reader,
    closing: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut text = TextIndex::new();
    let scanned = reader.scan_documents(h.key, |seq, doc| {
        if let Some(d) = doc {
            text.insert(seq, d);
        }
        !closing.load(Ordering::SeqCst)
    });
    if closing.load(Ordering::SeqCst) {
        return;
    }
    let mut st = h.state.write();
    let Some(touched) = st.text_pending.take() else {
        return;
    };
    if let Err(e) = scanned {
        tracing::warn!(collection = %h.id, error = %e, "cannot build the full-text index; document filters scan");
        return;
    }
    let mut ok = true;
    for seq in touched {
        let doc = if st.records.contains_key(&seq) {
            match reader.document(h.key, seq) {
                Ok(d) => d.flatten(),
                Err(e) => {
                    tracing::warn!(collection = %h.id, error = %e, "cannot build the full-text index; document filters scan");
                    ok = false;
                    break;
                }
            }
        } else {
            None
        };
        match doc {
            Some(d) => text.insert(seq, &d),
            None => text.remove(seq),
        }
    }
    if ok && !st.dropped {
        st.text = Some(text);
    }
}

/// Runs `f` over the queries, on several threads when the work is large enough to pay for them.
fn parallel_map<F>(queries: &[Vec<f32>], n: usize, f: &F) -> Vec<Vec<Neighbor>>
where
    F: Fn(&Vec<f32>) -> Vec<Neighbor> + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    if queries.len() < 2 || threads < 2 || queries.len() * n < 200_000 {
        return queries.iter().map(f).collect();
    }
    let chunk = queries.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn push_hits(
    out: &mut QueryResult,
    inner: &Inner,
    st: &CollectionState,
    hits: &[Neighbor],
    inc: Include,
) -> Result<()> {
    let seqs: Vec<SeqNo> = hits.iter().map(|h| h.seq).collect();
    let g = st.project(inner, &seqs, inc)?;
    out.ids.push(g.ids);
    if let (Some(v), Some(x)) = (out.embeddings.as_mut(), g.embeddings) {
        v.push(x);
    }
    if let (Some(v), Some(x)) = (out.documents.as_mut(), g.documents) {
        v.push(x);
    }
    if let (Some(v), Some(x)) = (out.uris.as_mut(), g.uris) {
        v.push(x);
    }
    if let (Some(v), Some(x)) = (out.metadatas.as_mut(), g.metadatas) {
        v.push(x);
    }
    if let Some(v) = out.distances.as_mut() {
        v.push(hits.iter().map(|h| h.distance).collect());
    }
    Ok(())
}
