//! The database instance: catalog of tenants, databases and collections, open and recovery.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ochre_storage::{CollectionRow, DatabaseRow, DirLock, Mutation, Reader, Store, TenantRow};
use ochre_types::{
    validate_collection_name, validate_database_name, validate_tenant_name, CollectionId,
    DatabaseId, Metadata,
};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::collection::{Collection, CollectionHandle, CollectionState};
use crate::error::{Error, ErrorKind, Result};
use crate::reclaim::Reclaimer;
use crate::request::{
    CollectionInfo, CreateCollection, DatabaseInfo, ModifyCollection, TenantInfo,
};
use crate::validate;
use crate::{DEFAULT_DATABASE, DEFAULT_TENANT};

/// Shared state of one open database.
pub(crate) struct Inner {
    /// Declared first, so it stops (and lets go of the store) before anything else closes.
    reclaimer: Option<Reclaimer>,
    /// Read-only connections for reading documents, reused (at most [`READERS_KEPT`] kept).
    /// Declared before the store, so they close first and the writer's close can checkpoint
    /// and remove the WAL.
    readers: Mutex<Vec<Reader>>,
    /// `None` in ephemeral mode.
    store: Option<Arc<Mutex<Store>>>,
    catalog: RwLock<Catalog>,
    /// Set when a commit failed: the outcome on disk is unknown, so writes stop until reopen.
    poisoned: Arc<AtomicBool>,
    path: Option<PathBuf>,
    /// Set when the database closes: background index rebuilds stop.
    pub(crate) closing: Arc<AtomicBool>,
    _lock: Option<DirLock>,
}

/// Idle store readers kept for reuse; more are opened while more reads run at once.
const READERS_KEPT: usize = 8;

#[derive(Default)]
struct Catalog {
    tenants: BTreeMap<String, TenantRow>,
    /// Keyed by (tenant, name).
    databases: BTreeMap<(String, String), DatabaseRow>,
    collections: HashMap<CollectionId, Arc<CollectionHandle>>,
    by_name: HashMap<(DatabaseId, String), CollectionId>,
    /// Names reserved by forks still copying their records, with the key each took.
    reserved: HashMap<(DatabaseId, String), i64>,
    next_key: i64,
}

impl Catalog {
    fn database(&self, tenant: &str, name: &str) -> Option<&DatabaseRow> {
        self.databases.get(&(tenant.to_owned(), name.to_owned()))
    }

    /// True when a collection has this name in the database, or a fork is creating one.
    fn name_taken(&self, db: DatabaseId, name: &str) -> bool {
        let k = (db, name.to_owned());
        self.by_name.contains_key(&k) || self.reserved.contains_key(&k)
    }

    /// The next collection key, taken.
    fn take_key(&mut self) -> Result<i64> {
        let key = self.next_key;
        if key >= 1 << 23 {
            return Err(Error::invalid(
                "too many collections have been created in this store",
            ));
        }
        self.next_key += 1;
        Ok(key)
    }
}

/// Where a collection's index checkpoint lives.
fn checkpoint_path(dir: &Path, id: CollectionId) -> PathBuf {
    dir.join("index").join(format!("{id}.hnsw"))
}

/// Where a collection's vector file lives (docs/format/vectors.md).
fn vector_file_path(dir: &Path, id: CollectionId) -> PathBuf {
    dir.join("index").join(format!("{id}.vec"))
}

/// Removes a file that may not exist; other failures are logged.
fn remove_if_present(path: &Path, what: &str) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove {what}")
        }
    }
}

/// Removes files in `index/` that no collection owns: checkpoints of collections deleted while
/// their file could not be removed (a crash between the commit and the removal), and temporary
/// files of interrupted checkpoint writes. Anything else in the folder is left alone.
fn remove_orphaned_checkpoints(dir: &Path, catalog: &Catalog) {
    let Ok(entries) = std::fs::read_dir(dir.join("index")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let orphan = if name.ends_with(".hnsw.tmp") || name.ends_with(".vec.tmp") {
            true
        } else if let Some(stem) = name
            .strip_suffix(".hnsw")
            .or_else(|| name.strip_suffix(".vec"))
        {
            Uuid::parse_str(stem)
                .is_ok_and(|id| !catalog.collections.contains_key(&CollectionId(id)))
        } else {
            false
        };
        if orphan {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed an orphaned index file")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove an orphaned index file")
                }
            }
        }
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    write_atomically_with(path, |f| f.write_all(bytes))
}

/// Writes the file `path` atomically with `fill`: into `<path>.tmp`, fsynced, renamed over
/// `path`, directory fsynced. A failure removes the temporary file; a crash leaves the old file
/// or the new one (and perhaps the temporary file, which the next open removes).
fn write_atomically_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, f);
        fill(&mut f)?;
        f.flush()?;
        f.get_ref().sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        remove_if_present(&tmp, "a partial index file");
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

impl Drop for Inner {
    /// A clean close checkpoints every changed index, with its vector file, so the next open
    /// is fast.
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        if self.path.is_none() || self.poisoned.load(Ordering::SeqCst) {
            return;
        }
        let handles: Vec<Arc<CollectionHandle>> =
            self.catalog.read().collections.values().cloned().collect();
        for h in handles {
            let mut st = h.state.write();
            // Read under the collection's lock, as writers commit under it: the version is the
            // one of the records the index holds.
            let version = self.store.as_ref().map(|s| s.lock().record_version(h.key));
            let due = match &version {
                Some(Ok(v)) => st.close_checkpoint_due(*v),
                Some(Err(e)) => {
                    tracing::warn!(collection = %h.id, error = %e, "cannot read the records' version; no vector file written");
                    st.checkpoint_due(true)
                }
                None => None,
            };
            let bytes = due.and_then(|_| st.checkpoint_bytes());
            // Readers may go on; nothing writes any more. The vector file is written from the
            // index under this read lock (streamed: no copy of the vectors is made).
            let st = parking_lot::RwLockWriteGuard::downgrade(st);
            if let (Some(generation), Some(bytes)) = (due, bytes) {
                if self.write_checkpoint(&h, generation, &bytes) {
                    if let (Some(Ok(v)), Some(index)) = (&version, st.index()) {
                        self.write_vector_file(&h, index, &bytes, *v);
                    }
                }
            }
        }
    }
}

impl Inner {
    /// Starts building `h`'s trigram index in the background (thread `ochre-text`), unless it
    /// exists, is being built, or the database has no store; document filters scan until it is
    /// installed.
    pub(crate) fn start_text_build(&self, h: &Arc<CollectionHandle>) {
        let Some(path) = &self.path else {
            return;
        };
        {
            let mut st = h.state.write();
            if !st.wants_text_index() {
                return;
            }
            st.text_pending = Some(Vec::new());
        }
        let handle = h.clone();
        let closing = self.closing.clone();
        let started = Reader::open(path).map_err(Error::from).and_then(|reader| {
            std::thread::Builder::new()
                .name("ochre-text".into())
                .spawn(move || crate::collection::build_text_index(handle, reader, closing))
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
        });
        if let Err(e) = started {
            tracing::warn!(collection = %h.id, error = %e, "cannot build the full-text index; document filters scan");
            h.state.write().text_pending = None;
        }
    }

    /// Writes checkpoint `bytes` of generation `generation` ([`CollectionState::checkpoint_due`])
    /// for the collection, unless a later generation is already written or the collection was
    /// deleted; true when it was written. Called without the collection's lock held, or under
    /// a read lock. A failure only costs restart time (the index is rebuilt from the store), so
    /// it is logged, not returned. The collection's vector file, if any, pairs with the
    /// checkpoint replaced, so it is removed.
    pub(crate) fn write_checkpoint(
        &self,
        h: &CollectionHandle,
        generation: u64,
        bytes: &[u8],
    ) -> bool {
        let Some(dir) = &self.path else {
            return false;
        };
        let mut written = h.checkpointed.lock();
        if generation <= *written || h.state.read_recursive().is_dropped() {
            return false;
        }
        let path = checkpoint_path(dir, h.id);
        match write_atomically(&path, bytes) {
            Ok(()) => {
                *written = generation;
                remove_if_present(&vector_file_path(dir, h.id), "a stale vector file");
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "index checkpoint failed; the next open rebuilds the index");
                false
            }
        }
    }

    /// Writes the vector file of `index`, paired with the checkpoint `checkpoint` just written
    /// and the records' version `store_version` (docs/format/vectors.md). A failure only costs
    /// the next open's time (it reads the vectors from the store), so it is logged.
    fn write_vector_file(
        &self,
        h: &CollectionHandle,
        index: &ochre_index::hnsw::HnswIndex,
        checkpoint: &[u8],
        store_version: u64,
    ) {
        let Some(dir) = &self.path else {
            return;
        };
        let Some(pairing) = ochre_index::hnsw::vectorfile::Pairing::of(checkpoint, store_version)
        else {
            return;
        };
        let _written = h.checkpointed.lock();
        let path = vector_file_path(dir, h.id);
        if let Err(e) = write_atomically_with(&path, |w| index.write_vector_file(w, pairing)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the vector file; the next open reads the vectors from the store");
        }
    }

    /// Finishes deleting collections whose catalog entries are gone: waits for writes in flight
    /// on each, forgets its state, removes its checkpoint and has its records purged in the
    /// background.
    pub(crate) fn finish_drops(&self, doomed: &[Arc<CollectionHandle>]) {
        for h in doomed {
            h.state.write().drop_all();
            // Under the checkpoint lock: a checkpoint being written finishes first.
            let _written = h.checkpointed.lock();
            self.remove_checkpoint(h.id);
            if let Some(r) = &self.reclaimer {
                r.purge(h.key);
            }
        }
    }

    /// Removes a dropped collection's checkpoint and vector file.
    pub(crate) fn remove_checkpoint(&self, id: CollectionId) {
        if let Some(dir) = &self.path {
            remove_if_present(&checkpoint_path(dir, id), "index checkpoint");
            remove_if_present(&vector_file_path(dir, id), "vector file");
        }
    }

    /// Commits mutations durably (no-op when ephemeral).
    ///
    /// A failure the store reports as transient (disk full, busy: the transaction was rolled back,
    /// nothing changed) is returned and the instance stays usable: the caller changes memory only
    /// after a successful commit, so memory and store still agree, and a retry once the condition
    /// clears succeeds. Any other failure leaves the outcome on disk unknown and poisons the
    /// instance: it refuses writes until reopened.
    pub(crate) fn commit(&self, mutations: &[Mutation<'_>]) -> Result<()> {
        self.check_writable()?;
        let Some(store) = &self.store else {
            return Ok(());
        };
        let result = store.lock().commit(mutations);
        if let Err(e) = result {
            if e.is_transient() {
                tracing::warn!(error = %e, "commit failed and was rolled back; nothing changed");
            } else {
                self.poisoned.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, "commit failed; refusing writes until reopen");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs `f` with a read-only connection to the store (one of the idle ones, or a new one).
    ///
    /// # Errors
    /// `f`'s; storage errors opening a connection; internal when the database has no store.
    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        let Some(dir) = &self.path else {
            return Err(Error::new(
                ErrorKind::Internal,
                "documents of an in-memory database are not in a store",
            ));
        };
        let idle = self.readers.lock().pop();
        let reader = match idle {
            Some(r) => r,
            None => Reader::open(dir)?,
        };
        let result = f(&reader);
        let mut idle = self.readers.lock();
        if idle.len() < READERS_KEPT {
            idle.push(reader);
        }
        result
    }

    /// True when collections keep their documents in memory (no store to read them from).
    pub(crate) fn holds_documents(&self) -> bool {
        self.store.is_none()
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Poisoned,
                "an earlier write failed in the storage layer; please close and re-open the database",
            ));
        }
        Ok(())
    }
}

/// An Ochre database instance. Cheap to clone; all clones share one state.
///
/// Thread-safe: reads run in parallel; writes to one collection are serialized.
#[derive(Clone)]
pub struct Ochre {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Ochre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ochre")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn default_rows() -> (TenantRow, DatabaseRow) {
    (
        TenantRow {
            name: DEFAULT_TENANT.into(),
            resource_name: None,
        },
        DatabaseRow {
            id: DatabaseId(Uuid::nil()),
            tenant: DEFAULT_TENANT.into(),
            name: DEFAULT_DATABASE.into(),
        },
    )
}

impl Ochre {
    /// A database that lives in memory only and vanishes when dropped.
    pub fn ephemeral() -> Ochre {
        let (t, d) = default_rows();
        let mut catalog = Catalog {
            next_key: 1,
            ..Default::default()
        };
        catalog.tenants.insert(t.name.clone(), t);
        catalog
            .databases
            .insert((d.tenant.clone(), d.name.clone()), d);
        Ochre {
            inner: Arc::new(Inner {
                reclaimer: None,
                store: None,
                catalog: RwLock::new(catalog),
                poisoned: Arc::new(AtomicBool::new(false)),
                path: None,
                closing: Arc::new(AtomicBool::new(false)),
                readers: Mutex::new(Vec::new()),
                _lock: None,
            }),
        }
    }

    /// Opens (creating if needed) a persistent database in directory `path`, recovering its state.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] when another process (or another open `Ochre` in this process) holds
    /// the directory; [`ErrorKind::Corrupted`] naming the damaged file; [`ErrorKind::Storage`]
    /// for I/O failures.
    pub fn open(path: impl AsRef<Path>) -> Result<Ochre> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| {
            Error::caused_by(
                ErrorKind::Storage,
                format!("cannot create data directory {}: {e}", path.display()),
                e,
            )
        })?;
        let lock = DirLock::acquire(path)?;
        let sending = path.join(crate::snapshot::SENDING_DIR);
        if sending.exists() {
            if let Err(e) = std::fs::remove_dir_all(&sending) {
                tracing::warn!(dir = %sending.display(), error = %e, "cannot remove snapshots left unsent");
            }
        }
        let mut store = Store::open(path)?;
        let mut catalog = Catalog {
            next_key: 1,
            ..Default::default()
        };
        let tenants = store.tenants()?;
        if tenants.is_empty() && store.databases()?.is_empty() && store.collections()?.is_empty() {
            let (t, d) = default_rows();
            store.commit(&[Mutation::PutTenant(&t), Mutation::PutDatabase(&d)])?;
        }
        for t in store.tenants()? {
            catalog.tenants.insert(t.name.clone(), t);
        }
        let mut db_by_id = HashMap::new();
        for d in store.databases()? {
            db_by_id.insert(d.id, (d.tenant.clone(), d.name.clone()));
            catalog
                .databases
                .insert((d.tenant.clone(), d.name.clone()), d);
        }
        for row in store.collections()? {
            let Some((tenant, database)) = db_by_id.get(&row.database_id).cloned() else {
                // A fork whose database was deleted while it copied, and the process stopped
                // before the fork could delete itself: it was never visible; finish deleting it.
                tracing::warn!(collection = %row.id, "removing a collection whose database was deleted");
                store.commit(&[Mutation::DeleteCollection { key: row.key }])?;
                catalog.next_key = catalog.next_key.max(row.key + 1);
                continue;
            };
            catalog.next_key = catalog.next_key.max(row.key + 1);
            let key = row.key;
            let id = row.id;
            let mut state = CollectionState::new(row, tenant, database, false);
            let checkpoint = std::fs::read(checkpoint_path(path, id)).ok();
            let vectors = checkpoint
                .as_ref()
                .and_then(|_| std::fs::File::open(vector_file_path(path, id)).ok());
            state.recover(&store, key, checkpoint, vectors)?;
            let handle = Arc::new(CollectionHandle::new(key, state));
            catalog.by_name.insert(
                (
                    handle.state.read().row.database_id,
                    handle.state.read().row.name.clone(),
                ),
                handle.id,
            );
            catalog.collections.insert(handle.id, handle);
        }
        // A deleted collection's key stays taken until its records are purged.
        let purges = store.purges()?;
        if let Some(max) = purges.iter().max() {
            catalog.next_key = catalog.next_key.max(max + 1);
        }
        remove_orphaned_checkpoints(path, &catalog);
        tracing::info!(path = %path.display(), collections = catalog.collections.len(), "opened");
        let store = Arc::new(Mutex::new(store));
        let poisoned = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        // Metadata indexes are built after the open returns (filters meanwhile scan).
        let pending: Vec<Arc<CollectionHandle>> = catalog
            .collections
            .values()
            .filter(|h| h.state.read().meta_pending)
            .cloned()
            .collect();
        if !pending.is_empty() {
            let handles = pending.clone();
            let closing = closing.clone();
            let started = std::thread::Builder::new()
                .name("ochre-meta".into())
                .spawn(move || crate::collection::build_metadata_indexes(handles, closing));
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start building metadata indexes; building them now");
                crate::collection::build_metadata_indexes(
                    pending,
                    Arc::new(AtomicBool::new(false)),
                );
            }
        }
        Ok(Ochre {
            inner: Arc::new(Inner {
                reclaimer: Reclaimer::start(store.clone(), poisoned.clone(), purges),
                store: Some(store),
                catalog: RwLock::new(catalog),
                poisoned,
                path: Some(path.to_owned()),
                closing,
                readers: Mutex::new(Vec::new()),
                _lock: Some(lock),
            }),
        })
    }

    /// The data directory, `None` when ephemeral.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    // ----- tenants -----

    /// Creates a tenant.
    ///
    /// # Errors
    /// Invalid name (fewer than 3 characters); [`ErrorKind::AlreadyExists`].
    pub fn create_tenant(&self, name: &str) -> Result<()> {
        validate_tenant_name(name)?;
        let mut cat = self.inner.catalog.write();
        if cat.tenants.contains_key(name) {
            return Err(Error::exists(format!("Tenant [{name}] already exists")));
        }
        let row = TenantRow {
            name: name.to_owned(),
            resource_name: None,
        };
        self.inner.commit(&[Mutation::PutTenant(&row)])?;
        cat.tenants.insert(name.to_owned(), row);
        Ok(())
    }

    /// Looks a tenant up.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn get_tenant(&self, name: &str) -> Result<TenantInfo> {
        let cat = self.inner.catalog.read();
        cat.tenants
            .get(name)
            .map(|t| TenantInfo {
                name: t.name.clone(),
                resource_name: t.resource_name.clone(),
            })
            .ok_or_else(|| Error::not_found(format!("Tenant [{name}] not found")))
    }

    /// Sets a tenant's resource name.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn update_tenant(&self, name: &str, resource_name: Option<String>) -> Result<()> {
        let mut cat = self.inner.catalog.write();
        let Some(old) = cat.tenants.get(name) else {
            return Err(Error::not_found(format!("Tenant [{name}] not found")));
        };
        let row = TenantRow {
            name: old.name.clone(),
            resource_name,
        };
        self.inner.commit(&[Mutation::PutTenant(&row)])?;
        cat.tenants.insert(name.to_owned(), row);
        Ok(())
    }

    /// All tenants, by name.
    pub fn list_tenants(&self) -> Vec<TenantInfo> {
        let cat = self.inner.catalog.read();
        cat.tenants
            .values()
            .map(|t| TenantInfo {
                name: t.name.clone(),
                resource_name: t.resource_name.clone(),
            })
            .collect()
    }

    /// Deletes a tenant with all its databases, collections and records.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn delete_tenant(&self, name: &str) -> Result<()> {
        let mut cat = self.inner.catalog.write();
        if !cat.tenants.contains_key(name) {
            return Err(Error::not_found(format!("Tenant [{name}] not found")));
        }
        let dbs: Vec<DatabaseRow> = cat
            .databases
            .values()
            .filter(|d| d.tenant == name)
            .cloned()
            .collect();
        let doomed = self.drop_databases(&mut cat, &dbs, &[name], &[])?;
        drop(cat);
        self.inner.finish_drops(&doomed);
        Ok(())
    }

    // ----- databases -----

    /// Creates a database in a tenant.
    ///
    /// # Errors
    /// Invalid name; [`ErrorKind::NotFound`] for an unknown tenant; [`ErrorKind::AlreadyExists`].
    pub fn create_database(&self, tenant: &str, name: &str) -> Result<DatabaseInfo> {
        validate_database_name(name)?;
        let mut cat = self.inner.catalog.write();
        if !cat.tenants.contains_key(tenant) {
            return Err(Error::not_found(format!("Tenant [{tenant}] not found")));
        }
        if cat.database(tenant, name).is_some() {
            return Err(Error::exists(format!("Database [{name}] already exists")));
        }
        let row = DatabaseRow {
            id: DatabaseId::new_random(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        };
        self.inner.commit(&[Mutation::PutDatabase(&row)])?;
        let info = DatabaseInfo {
            id: row.id,
            name: row.name.clone(),
            tenant: row.tenant.clone(),
        };
        cat.databases
            .insert((tenant.to_owned(), name.to_owned()), row);
        Ok(info)
    }

    /// Looks a database up.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn get_database(&self, tenant: &str, name: &str) -> Result<DatabaseInfo> {
        let cat = self.inner.catalog.read();
        cat.database(tenant, name)
            .map(|d| DatabaseInfo {
                id: d.id,
                name: d.name.clone(),
                tenant: d.tenant.clone(),
            })
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Database [{name}] not found. Are you sure it exists?"
                ))
            })
    }

    /// A tenant's databases ordered by name, after skipping `offset`, at most `limit`.
    pub fn list_databases(
        &self,
        tenant: &str,
        limit: Option<u32>,
        offset: u32,
    ) -> Vec<DatabaseInfo> {
        let cat = self.inner.catalog.read();
        cat.databases
            .values()
            .filter(|d| d.tenant == tenant)
            .skip(offset as usize)
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .map(|d| DatabaseInfo {
                id: d.id,
                name: d.name.clone(),
                tenant: d.tenant.clone(),
            })
            .collect()
    }

    /// Deletes a database with its collections and records.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn delete_database(&self, tenant: &str, name: &str) -> Result<()> {
        let mut cat = self.inner.catalog.write();
        let Some(row) = cat.database(tenant, name).cloned() else {
            return Err(Error::not_found(format!("Database [{name}] not found")));
        };
        let doomed = self.drop_databases(&mut cat, &[row], &[], &[])?;
        drop(cat);
        self.inner.finish_drops(&doomed);
        Ok(())
    }

    /// Deletes databases `dbs` with their collections and then `tenants`, and writes `then`, in
    /// one short commit (records are purged later); the catalog follows once it succeeded.
    /// Returns the deleted collections, for [`Inner::finish_drops`] once the catalog is let go.
    fn drop_databases(
        &self,
        cat: &mut Catalog,
        dbs: &[DatabaseRow],
        tenants: &[&str],
        then: &[Mutation<'_>],
    ) -> Result<Vec<Arc<CollectionHandle>>> {
        let doomed: Vec<Arc<CollectionHandle>> = cat
            .collections
            .values()
            .filter(|c| dbs.iter().any(|d| d.id == c.database_id))
            .cloned()
            .collect();
        let mut muts: Vec<Mutation<'_>> = doomed
            .iter()
            .map(|c| Mutation::DeleteCollection { key: c.key })
            .collect();
        muts.extend(dbs.iter().map(|d| Mutation::DeleteDatabase(d.id)));
        muts.extend(tenants.iter().map(|t| Mutation::DeleteTenant(t)));
        muts.extend_from_slice(then);
        self.inner.commit(&muts)?;
        for c in &doomed {
            cat.collections.remove(&c.id);
        }
        cat.by_name
            .retain(|(db, _), _| !dbs.iter().any(|d| d.id == *db));
        cat.reserved
            .retain(|(db, _), _| !dbs.iter().any(|d| d.id == *db));
        for d in dbs {
            cat.databases.remove(&(d.tenant.clone(), d.name.clone()));
        }
        for t in tenants {
            cat.tenants.remove(*t);
        }
        Ok(doomed)
    }

    /// Deletes everything and re-creates the default tenant and database, in one commit.
    ///
    /// # Errors
    /// Storage failures (nothing is deleted then).
    pub fn reset(&self) -> Result<()> {
        let mut cat = self.inner.catalog.write();
        let dbs: Vec<DatabaseRow> = cat.databases.values().cloned().collect();
        let tenants: Vec<String> = cat.tenants.keys().cloned().collect();
        let tenants: Vec<&str> = tenants.iter().map(String::as_str).collect();
        let (t, d) = default_rows();
        let doomed = self.drop_databases(
            &mut cat,
            &dbs,
            &tenants,
            &[Mutation::PutTenant(&t), Mutation::PutDatabase(&d)],
        )?;
        cat.tenants.insert(t.name.clone(), t);
        cat.databases.insert((d.tenant.clone(), d.name.clone()), d);
        drop(cat);
        self.inner.finish_drops(&doomed);
        Ok(())
    }

    /// Compacts the store file: the space records and collections freed returns to the file
    /// system (SQLite's `VACUUM`). Every write waits until it finishes; run it with no server on
    /// the directory (`ochre vacuum`). A no-op for an ephemeral database.
    ///
    /// # Errors
    /// Storage failures (the file is then as it was).
    pub fn vacuum(&self) -> Result<()> {
        self.inner.check_writable()?;
        if let Some(store) = &self.inner.store {
            store.lock().vacuum()?;
        }
        Ok(())
    }

    // ----- collections -----

    /// Creates a collection (or, with `get_or_create`, returns the existing one unchanged).
    ///
    /// # Errors
    /// Invalid name, metadata or HNSW parameters ([`crate::HnswConfig::check`]); `Database [d] does not
    /// exist` (invalid argument, as Chroma); [`ErrorKind::AlreadyExists`].
    pub fn create_collection(
        &self,
        tenant: &str,
        database: &str,
        req: CreateCollection,
    ) -> Result<CollectionInfo> {
        validate_collection_name(&req.name)
            .map_err(|e| Error::invalid_because(format!("Validation error: name: {e}"), e))?;
        if let Some(m) = &req.metadata {
            validate::collection_metadata(
                "metadata",
                m.iter().map(|(k, v)| (k, Some(v))),
                m.len(),
            )?;
        }
        req.configuration.hnsw.check()?;
        let mut cat = self.inner.catalog.write();
        let Some(db) = cat.database(tenant, database).cloned() else {
            return Err(Error::invalid(format!(
                "Database [{database}] does not exist"
            )));
        };
        if let Some(id) = cat.by_name.get(&(db.id, req.name.clone())) {
            if req.get_or_create {
                let handle = cat.collections.get(id).cloned().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Internal,
                        "catalog out of step: name without collection",
                    )
                })?;
                // The catalog is let go before the collection's lock is taken.
                drop(cat);
                let info = handle.state.read().info(handle.id);
                return Ok(info);
            }
            return Err(Error::exists(format!(
                "Collection [{}] already exists",
                req.name
            )));
        }
        if cat.reserved.contains_key(&(db.id, req.name.clone())) {
            return Err(Error::exists(format!(
                "Collection [{}] already exists",
                req.name
            )));
        }
        let key = cat.next_key;
        if key >= 1 << 23 {
            return Err(Error::invalid(
                "too many collections have been created in this store",
            ));
        }
        let row = CollectionRow {
            key,
            id: CollectionId::new_random(),
            database_id: db.id,
            name: req.name.clone(),
            metadata: req.metadata,
            configuration: req.configuration,
            dimension: None,
            forks: 0,
            total_ops: 0,
        };
        self.inner.commit(&[Mutation::PutCollection(&row)])?;
        cat.next_key += 1;
        let handle = Arc::new(CollectionHandle::new(
            key,
            CollectionState::new(
                row,
                db.tenant.clone(),
                db.name.clone(),
                self.inner.holds_documents(),
            ),
        ));
        cat.by_name.insert((db.id, req.name), handle.id);
        let info = handle.state.read().info(handle.id);
        cat.collections.insert(handle.id, handle);
        Ok(info)
    }

    /// A collection by name.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn get_collection(
        &self,
        tenant: &str,
        database: &str,
        name: &str,
    ) -> Result<CollectionInfo> {
        let handle = {
            let cat = self.inner.catalog.read();
            cat.database(tenant, database)
                .and_then(|db| cat.by_name.get(&(db.id, name.to_owned())))
                .and_then(|id| cat.collections.get(id))
                .cloned()
        };
        // A collection deleted between the lookup and here is gone.
        handle
            .and_then(|h| h.state.read().live_info(h.id))
            .ok_or_else(|| Error::not_found(format!("Collection [{name}] does not exist")))
    }

    /// A collection by id, within a tenant and database.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn get_collection_by_id(
        &self,
        tenant: &str,
        database: &str,
        id: CollectionId,
    ) -> Result<CollectionInfo> {
        self.collection_in(tenant, database, id)
            .map(|c| c.info())
            .map_err(|_| Error::not_found(format!("Collection [{id}] does not exist")))
    }

    /// A database's collections ordered by id, after skipping `offset`, at most `limit`.
    /// An unknown tenant or database has no collections.
    pub fn list_collections(
        &self,
        tenant: &str,
        database: &str,
        limit: Option<u32>,
        offset: u32,
    ) -> Vec<CollectionInfo> {
        let cat = self.inner.catalog.read();
        let Some(db) = cat.database(tenant, database) else {
            return Vec::new();
        };
        let mut ids: Vec<CollectionId> = cat
            .by_name
            .iter()
            .filter(|((d, _), _)| *d == db.id)
            .map(|(_, id)| *id)
            .collect();
        ids.sort();
        let handles: Vec<Arc<CollectionHandle>> = ids
            .into_iter()
            .skip(offset as usize)
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .filter_map(|id| cat.collections.get(&id).cloned())
            .collect();
        drop(cat);
        handles
            .iter()
            .filter_map(|h| h.state.read().live_info(h.id))
            .collect()
    }

    /// Number of collections in a database (0 for an unknown one).
    pub fn count_collections(&self, tenant: &str, database: &str) -> usize {
        let cat = self.inner.catalog.read();
        let Some(db) = cat.database(tenant, database) else {
            return 0;
        };
        cat.by_name.keys().filter(|(d, _)| *d == db.id).count()
    }

    /// Renames a collection, replaces its metadata or changes its mutable configuration, in one
    /// commit.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`]; invalid name, metadata or HNSW parameters (out of range, or
    /// `space` / `ef_construction`, which are fixed at creation); [`ErrorKind::AlreadyExists`]
    /// when the new name is taken.
    pub fn modify_collection(
        &self,
        tenant: &str,
        database: &str,
        id: CollectionId,
        req: ModifyCollection,
    ) -> Result<()> {
        if let Some(fixed) = req.hnsw.as_ref().and_then(|h| {
            h.set_fields()
                .find(|f| matches!(*f, "space" | "ef_construction"))
        }) {
            return Err(Error::invalid(format!(
                "hnsw {fixed} cannot be changed after the collection is created"
            )));
        }
        if let Some(h) = &req.hnsw {
            h.check()?;
        }
        if let Some(name) = &req.new_name {
            validate_collection_name(name).map_err(|e| {
                Error::invalid_because(format!("Validation error: new_name: {e}"), e)
            })?;
        }
        let new_metadata: Option<Option<Metadata>> = match &req.new_metadata {
            None => None,
            Some(m) => {
                validate::collection_metadata(
                    "new_metadata",
                    m.iter().map(|(k, v)| (k, v.as_ref())),
                    m.len(),
                )?;
                let kept: Metadata = m
                    .iter()
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect();
                Some((!kept.is_empty()).then_some(kept))
            }
        };
        let not_found = || Error::not_found(format!("Collection [{id}] does not exist."));
        let handle = {
            let cat = self.inner.catalog.read();
            self.scoped(&cat, tenant, database, id)
                .ok_or_else(not_found)?
        };
        // The collection's lock first, then the catalog's (never the other way round): a long
        // write on this collection holds up only this call.
        let mut state = handle.state.write();
        if state.is_dropped() {
            return Err(not_found());
        }
        let mut row = state.row.clone();
        let renamed = req.new_name.as_ref().is_some_and(|n| *n != row.name);
        if let Some(name) = &req.new_name {
            row.name = name.clone();
        }
        if let Some(m) = new_metadata {
            row.metadata = m;
        }
        if let Some(h) = &req.hnsw {
            h.apply(&mut row.configuration.hnsw);
        }
        if let Some(ef) = &req.embedding_function {
            row.configuration.embedding_function = Some(ef.clone());
        }
        if let Some(schema) = &req.schema {
            row.configuration.schema = Some(schema.clone());
        }
        // Under the catalog lock, so a deletion is either fully before (NotFound) or after.
        let mut cat = self.inner.catalog.write();
        if !cat.collections.contains_key(&id) {
            return Err(not_found());
        }
        if renamed && cat.name_taken(row.database_id, &row.name) {
            return Err(Error::exists(format!(
                "Collection [{}] already exists",
                row.name
            )));
        }
        self.inner.commit(&[Mutation::UpdateCollection(&row)])?;
        if renamed {
            cat.by_name
                .remove(&(row.database_id, state.row.name.clone()));
            cat.by_name.insert((row.database_id, row.name.clone()), id);
        }
        drop(cat);
        state.row = row;
        state.apply_tuning();
        state.refresh_indexes();
        Ok(())
    }

    /// Deletes a collection (by name) and all its records.
    ///
    /// The catalog changes in one short commit; the call then waits for writes in flight on the
    /// collection, and its records are removed in the background (their space comes back by
    /// itself, see [`crate::reclaim`]).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn delete_collection(&self, tenant: &str, database: &str, name: &str) -> Result<()> {
        let handle = {
            let mut cat = self.inner.catalog.write();
            let not_found = || Error::not_found(format!("Collection [{name}] does not exist"));
            let db = cat.database(tenant, database).ok_or_else(not_found)?.id;
            let id = *cat
                .by_name
                .get(&(db, name.to_owned()))
                .ok_or_else(not_found)?;
            let handle = cat.collections.get(&id).cloned().ok_or_else(not_found)?;
            self.inner
                .commit(&[Mutation::DeleteCollection { key: handle.key }])?;
            cat.by_name.remove(&(db, name.to_owned()));
            cat.collections.remove(&id);
            handle
        };
        self.inner.finish_drops(&[handle]);
        Ok(())
    }

    /// Copies a collection (configuration, metadata, dimension and every record) under a new name
    /// in the same database.
    ///
    /// The new name is reserved in a short catalog step, the records are copied holding only the
    /// source's lock (reads of the source go on; its writes wait), and the fork joins the catalog
    /// in another short step.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`]; invalid name; [`ErrorKind::AlreadyExists`].
    pub fn fork_collection(
        &self,
        tenant: &str,
        database: &str,
        id: CollectionId,
        new_name: &str,
    ) -> Result<CollectionInfo> {
        validate_collection_name(new_name)
            .map_err(|e| Error::invalid_because(format!("Validation error: new_name: {e}"), e))?;
        let not_found = || Error::not_found(format!("Collection [{id}] does not exist"));
        let (source, key) = {
            let mut cat = self.inner.catalog.write();
            let source = self
                .scoped(&cat, tenant, database, id)
                .ok_or_else(not_found)?;
            if cat.name_taken(source.database_id, new_name) {
                return Err(Error::exists(format!(
                    "Collection [{new_name}] already exists"
                )));
            }
            let key = cat.take_key()?;
            cat.reserved
                .insert((source.database_id, new_name.to_owned()), key);
            (source, key)
        };
        let name_key = (source.database_id, new_name.to_owned());
        let copied = self.copy_collection(&source, key, new_name);
        let mut cat = self.inner.catalog.write();
        // Still ours unless the database was deleted (or reset) while the records were copied:
        // then so is the fork.
        let still_reserved = cat.reserved.get(&name_key) == Some(&key);
        if still_reserved {
            cat.reserved.remove(&name_key);
        }
        let copy = copied?;
        if !still_reserved {
            self.inner.commit(&[Mutation::DeleteCollection { key }])?;
            drop(cat);
            if let Some(r) = &self.inner.reclaimer {
                r.purge(key);
            }
            return Err(not_found());
        }
        let handle = Arc::new(CollectionHandle::new(key, copy));
        let info = handle.state.read().info(handle.id);
        cat.by_name.insert(name_key, handle.id);
        cat.collections.insert(handle.id, handle);
        Ok(info)
    }

    /// Commits a copy of `source` as collection `key` named `name` and returns its state.
    fn copy_collection(
        &self,
        source: &CollectionHandle,
        key: i64,
        name: &str,
    ) -> Result<CollectionState> {
        // Upgradable: readers of the source go on while the records are copied.
        let src = source.state.upgradable_read();
        if src.is_dropped() {
            return Err(Error::not_found(format!(
                "Collection [{}] does not exist",
                source.id
            )));
        }
        let row = CollectionRow {
            key,
            id: CollectionId::new_random(),
            name: name.to_owned(),
            forks: 0,
            ..src.row.clone()
        };
        let mut counted = src.row.clone();
        counted.forks += 1;
        self.inner.commit(&[
            Mutation::UpdateCollection(&counted),
            Mutation::PutCollection(&row),
            Mutation::CopyRecords {
                from: source.key,
                to: key,
            },
        ])?;
        let copy = src.fork(row);
        let mut src = parking_lot::RwLockUpgradableReadGuard::upgrade(src);
        src.row = counted;
        Ok(copy)
    }

    /// Number of collections and of records across the whole database.
    pub fn stats(&self) -> (usize, usize) {
        let handles: Vec<Arc<CollectionHandle>> = self
            .inner
            .catalog
            .read()
            .collections
            .values()
            .cloned()
            .collect();
        let live: Vec<usize> = handles
            .iter()
            .filter_map(|h| {
                let st = h.state.read();
                (!st.is_dropped()).then(|| st.len())
            })
            .collect();
        (live.len(), live.iter().sum())
    }

    // ----- record access -----

    fn scoped(
        &self,
        cat: &Catalog,
        tenant: &str,
        database: &str,
        id: CollectionId,
    ) -> Option<Arc<CollectionHandle>> {
        let db = cat.database(tenant, database)?;
        let handle = cat.collections.get(&id)?;
        (handle.database_id == db.id).then(|| handle.clone())
    }

    /// A handle for record operations on a collection, by id.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] (`Collection [<id>] does not exist.`).
    pub fn collection(&self, id: CollectionId) -> Result<Collection> {
        let cat = self.inner.catalog.read();
        cat.collections
            .get(&id)
            .map(|h| Collection::new(self.inner.clone(), h.clone()))
            .ok_or_else(|| Error::not_found(format!("Collection [{id}] does not exist.")))
    }

    /// Like [`Ochre::collection`], but only when the collection is in the given tenant and database.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`].
    pub fn collection_in(
        &self,
        tenant: &str,
        database: &str,
        id: CollectionId,
    ) -> Result<Collection> {
        let cat = self.inner.catalog.read();
        self.scoped(&cat, tenant, database, id)
            .map(|h| Collection::new(self.inner.clone(), h))
            .ok_or_else(|| Error::not_found(format!("Collection [{id}] does not exist.")))
    }
}
