//! The SQLite store: open/migrate, commit mutation batches, load state.

use std::path::{Path, PathBuf};

use ochre_types::{CollectionConfiguration, CollectionId, DatabaseId, Metadata, SeqNo};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use crate::codec::{
    check_embedding, decode_configuration, decode_metadata, encode_configuration, encode_embedding,
    encode_metadata, DecodeError,
};
use crate::{Error, Result};

/// The store format this build writes.
pub const FORMAT_VERSION: i64 = 4;
/// The oldest store format this build opens.
pub const OLDEST_SUPPORTED_FORMAT: i64 = 1;
/// SQLite `application_id` of an Ochre store: ASCII "OCHR".
const APPLICATION_ID: i64 = 0x4f43_4852;
/// Size the WAL is checkpointed at and truncated back to (SQLite's default with 4 KiB pages).
const WAL_BYTES: i64 = 4 << 20;

/// Records of one collection occupy rowids `[key << SEQ_BITS, (key + 1) << SEQ_BITS)`.
const SEQ_BITS: u32 = 40;
/// The file name inside the data directory.
pub const DB_FILE: &str = "ochre.sqlite3";

/// Numbered migrations; never edit one that has shipped, add the next.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_counters.sql")),
    (3, include_str!("migrations/0003_purges.sql")),
    (4, include_str!("migrations/0004_record_versions.sql")),
];

/// A tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub name: String,
    pub resource_name: Option<String>,
}

/// A database.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseRow {
    pub id: DatabaseId,
    pub tenant: String,
    pub name: String,
}

/// A collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRow {
    /// Small integer key, unique in the store, below 2^23.
    pub key: i64,
    pub id: CollectionId,
    pub database_id: DatabaseId,
    pub name: String,
    pub metadata: Option<Metadata>,
    pub configuration: CollectionConfiguration,
    pub dimension: Option<u32>,
    /// Collections forked from this one.
    pub forks: u64,
    /// Record operations ever written (one per id of each add, upsert, update and delete).
    pub total_ops: u64,
}

/// A record to write.
#[derive(Debug, Clone, Copy)]
pub struct RecordRow<'a> {
    pub collection_key: i64,
    pub seq: SeqNo,
    pub id: &'a str,
    pub embedding: &'a [f32],
    pub document: DocumentWrite<'a>,
    pub uri: Option<&'a str>,
    pub metadata: Option<&'a Metadata>,
}

/// What a record write does to the record's document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DocumentWrite<'a> {
    /// The document becomes this (or none).
    Set(Option<&'a str>),
    /// The stored document stays as it is; the record must exist.
    Keep,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRecord<'a> {
    pub seq: SeqNo,
    pub id: String,
    /// The stored vector, still in its on-disk encoding (checked: non-empty, whole floats);
    /// `None` when not asked for ([`Columns::embeddings`]).
    pub embedding: Option<RawEmbedding<'a>>,
    pub document: Option<String>,
    pub uri: Option<String>,
    pub metadata: Option<StoredMetadata>,
}

/// Which of a record's large columns [`Store::load_records`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub embeddings: bool,
    pub documents: bool,
}

/// A record's metadata as stored, not yet decoded: recovery decodes it on another thread than
/// the one reading the file.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMetadata(pub(crate) String);

impl StoredMetadata {
    /// The metadata.
    ///
    /// # Errors
    /// What is malformed (the caller names the record and the file).
    pub fn decode(&self) -> std::result::Result<Metadata, DecodeError> {
        decode_metadata(&self.0)
    }

    /// The metadata as entries sorted by key, each key passed through `key` once (an interner):
    /// what [`StoredMetadata::decode`] gives, without building maps on the way.
    ///
    /// # Errors
    /// As [`StoredMetadata::decode`].
    pub fn decode_entries<K: Ord>(
        &self,
        key: impl FnMut(&str) -> K,
    ) -> std::result::Result<Vec<(K, ochre_types::MetadataValue)>, DecodeError> {
        crate::codec::decode_metadata_entries(&self.0, key)
    }
}

/// A stored embedding as read from the file: little-endian IEEE-754 binary32 values. Decoding
/// straight into the caller's buffer spares recovery one allocation and one copy per record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawEmbedding<'a>(pub(crate) &'a [u8]);

impl RawEmbedding<'_> {
    /// Number of components.
    pub fn dimension(&self) -> usize {
        self.0.len() / 4
    }

    /// The stored bytes: little-endian binary32 values, back to back.
    pub fn le_bytes(&self) -> &[u8] {
        self.0
    }

    /// Appends the components to `out` (a `Vec`, or an index arena).
    pub fn append_to(&self, out: &mut impl Extend<f32>) {
        out.extend(
            self.0
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
}

/// One change inside an atomic batch.
#[derive(Debug, Clone, Copy)]
pub enum Mutation<'a> {
    PutTenant(&'a TenantRow),
    DeleteTenant(&'a str),
    PutDatabase(&'a DatabaseRow),
    DeleteDatabase(DatabaseId),
    /// Inserts a new collection row (records are untouched); a key, id or name in its database
    /// that is taken fails the commit (never replaces another collection's row).
    PutCollection(&'a CollectionRow),
    /// Rewrites the row of an existing collection; nothing when the collection was deleted (a
    /// write racing the deletion does not bring the row back).
    UpdateCollection(&'a CollectionRow),
    /// Deletes the collection row and marks its key for purging: its records stay in the file
    /// until [`Store::purge_step`] has removed them all, and the key is not reused before.
    DeleteCollection {
        key: i64,
    },
    /// Copies every record of collection `from` to collection `to` (same sequence numbers);
    /// `to` must have none.
    CopyRecords {
        from: i64,
        to: i64,
    },
    /// Inserts or replaces one record.
    PutRecord(RecordRow<'a>),
    DeleteRecord {
        collection_key: i64,
        seq: SeqNo,
    },
    /// Adds `n` to the collection's `total_ops`.
    CountOps {
        key: i64,
        n: u64,
    },
}

/// Largest sequence number a collection may use.
pub const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

fn rowid(collection_key: i64, seq: SeqNo) -> i64 {
    (collection_key << SEQ_BITS) | (seq.0 as i64)
}

/// The durable store of one data directory.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store file in `dir`, checks its identity and version, and
    /// applies pending migrations. The caller holds the directory lock.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when the file is not an Ochre store or is damaged,
    /// [`Error::UnsupportedVersion`] for a newer format, [`Error::Sqlite`] otherwise.
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join(DB_FILE);
        let sql = |e| Error::sqlite(&path, e);
        let conn = Connection::open(&path).map_err(sql)?;
        let app: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(sql)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sql)?;
        if app != APPLICATION_ID && !(app == 0 && version == 0 && tables == 0) {
            return Err(Error::Corrupted {
                path,
                detail: format!("not an Ochre store (application_id {app:#x})"),
                source: None,
            });
        }
        if version > FORMAT_VERSION || (version != 0 && version < OLDEST_SUPPORTED_FORMAT) {
            return Err(Error::UnsupportedVersion {
                path,
                found: version,
                oldest: OLDEST_SUPPORTED_FORMAT,
                newest: FORMAT_VERSION,
            });
        }
        if tables == 0 {
            // A new file: 16 KiB pages (a record with a 384-float embedding is ~1.7 KB, so a
            // scan of the records reads a quarter as many pages as with SQLite's default 4 KiB).
            // Only possible before the first table exists; older stores keep their page size.
            // Incremental auto-vacuum: pages freed by deletes can be handed back to the file
            // system in small steps (`reclaim`) while the store is in use. Also settable only
            // before the first table; `vacuum` converts an older store.
            conn.execute_batch("PRAGMA page_size=16384; PRAGMA auto_vacuum=INCREMENTAL;")
                .map_err(sql)?;
        }
        // WAL + synchronous=FULL: every commit fsyncs the WAL before returning; a torn WAL tail
        // fails its frame checksums and is ignored on recovery (docs/format/sqlite.md).
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Corrupted {
                path,
                detail: format!("cannot switch to WAL journal mode (got {mode})"),
                source: None,
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA cache_size=-4096;",
        )
        .map_err(sql)?;
        // SQLite checkpoints the WAL into the file every 1000 pages by default: 4 MiB with 4 KiB
        // pages, but 16 MiB with ours, and the WAL file keeps the size it reached. Keep it at
        // 4 MiB whatever the page size.
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sql)?;
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint={}; PRAGMA journal_size_limit={WAL_BYTES};",
            (WAL_BYTES / page_size.max(512)).max(1)
        ))
        .map_err(sql)?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, e: rusqlite::Error) -> Error {
        Error::sqlite(&self.path, e)
    }

    fn undecodable(&self, what: String, source: DecodeError) -> Error {
        Error::Corrupted {
            path: self.path.clone(),
            detail: format!("{what}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    fn corrupted(&self, detail: impl Into<String>) -> Error {
        Error::Corrupted {
            path: self.path.clone(),
            detail: detail.into(),
            source: None,
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let sql = |e| Error::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, hash TEXT NOT NULL)",
        )
        .map_err(sql)?;
        for (version, text) in MIGRATIONS {
            let hash = fnv1a(text.as_bytes());
            let applied: Option<String> = tx
                .query_row(
                    "SELECT hash FROM migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            match applied {
                Some(h) if h == hash => {}
                Some(h) => {
                    return Err(Error::Corrupted {
                        path: path.clone(),
                        detail: format!(
                            "migration {version} was applied with hash {h}, this build has {hash}"
                        ),
                        source: None,
                    })
                }
                None => {
                    tx.execute_batch(text).map_err(sql)?;
                    tx.execute(
                        "INSERT INTO migrations (version, hash) VALUES (?1, ?2)",
                        params![version, hash],
                    )
                    .map_err(sql)?;
                }
            }
        }
        tx.execute_batch(&format!(
            "PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={FORMAT_VERSION};"
        ))
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Applies `mutations` atomically and durably: when this returns `Ok`, all of them are on
    /// stable storage; when it returns `Err` or the process dies first, none are.
    ///
    /// # Errors
    /// [`Error::Sqlite`] / [`Error::Corrupted`]; after an error the caller must assume the
    /// outcome of the commit itself is unknown until reopen.
    pub fn commit(&mut self, mutations: &[Mutation<'_>]) -> Result<()> {
        let path = self.path.clone();
        let sql = |e| Error::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        // Collections whose records this commit writes: each gets a new random record version
        // (random, not counted: a store put back to an older copy and written to again must not
        // come back to a version a vector file was written at).
        let mut touched: Vec<i64> = Vec::new();
        let mut touch = |key: i64| {
            if !touched.contains(&key) {
                touched.push(key);
            }
        };
        for m in mutations {
            match m {
                Mutation::PutRecord(r) => touch(r.collection_key),
                Mutation::DeleteRecord { collection_key, .. } => touch(*collection_key),
                Mutation::CopyRecords { to, .. } => touch(*to),
                Mutation::PutTenant(_)
                | Mutation::DeleteTenant(_)
                | Mutation::PutDatabase(_)
                | Mutation::DeleteDatabase(_)
                | Mutation::PutCollection(_)
                | Mutation::UpdateCollection(_)
                | Mutation::DeleteCollection { .. }
                | Mutation::CountOps { .. } => {}
            }
            match m {
                Mutation::PutTenant(t) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO tenants (name, resource_name) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute(params![t.name, t.resource_name]))
                    .map_err(sql)?;
                }
                Mutation::DeleteTenant(name) => {
                    tx.prepare_cached("DELETE FROM tenants WHERE name = ?1")
                        .and_then(|mut s| s.execute([name]))
                        .map_err(sql)?;
                }
                Mutation::PutDatabase(d) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO databases (id, tenant, name) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![d.id.0.to_string(), d.tenant, d.name]))
                    .map_err(sql)?;
                }
                Mutation::DeleteDatabase(id) => {
                    tx.prepare_cached("DELETE FROM databases WHERE id = ?1")
                        .and_then(|mut s| s.execute([id.0.to_string()]))
                        .map_err(sql)?;
                }
                Mutation::PutCollection(c) | Mutation::UpdateCollection(c) => {
                    let sql_text = if matches!(m, Mutation::PutCollection(_)) {
                        "INSERT INTO collections
                         (key, id, database_id, name, metadata, configuration, dimension,
                          forks, total_ops)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    } else {
                        "UPDATE collections SET id = ?2, database_id = ?3, name = ?4,
                         metadata = ?5, configuration = ?6, dimension = ?7, forks = ?8,
                         total_ops = ?9 WHERE key = ?1"
                    };
                    tx.prepare_cached(sql_text)
                        .and_then(|mut s| {
                            s.execute(params![
                                c.key,
                                c.id.0.to_string(),
                                c.database_id.0.to_string(),
                                c.name,
                                c.metadata.as_ref().map(encode_metadata),
                                encode_configuration(&c.configuration),
                                c.dimension,
                                i64::try_from(c.forks).unwrap_or(i64::MAX),
                                i64::try_from(c.total_ops).unwrap_or(i64::MAX),
                            ])
                        })
                        .map_err(sql)?;
                }
                Mutation::CountOps { key, n } => {
                    tx.prepare_cached(
                        "UPDATE collections SET total_ops = total_ops + ?2 WHERE key = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![key, i64::try_from(*n).unwrap_or(i64::MAX)])
                    })
                    .map_err(sql)?;
                }
                Mutation::DeleteCollection { key } => {
                    tx.prepare_cached("DELETE FROM collections WHERE key = ?1")
                        .and_then(|mut s| s.execute([key]))
                        .map_err(sql)?;
                    tx.prepare_cached("INSERT OR IGNORE INTO purges (key) VALUES (?1)")
                        .and_then(|mut s| s.execute([key]))
                        .map_err(sql)?;
                }
                Mutation::CopyRecords { from, to } => {
                    tx.prepare_cached(
                        "INSERT INTO records (rowid, id, embedding, document, uri, metadata)
                         SELECT rowid - ?1 + ?3, id, embedding, document, uri, metadata
                         FROM records WHERE rowid >= ?1 AND rowid < ?2",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            from << SEQ_BITS,
                            (from + 1) << SEQ_BITS,
                            to << SEQ_BITS
                        ])
                    })
                    .map_err(sql)?;
                }
                Mutation::PutRecord(r) => {
                    let row = rowid(r.collection_key, r.seq);
                    let embedding = encode_embedding(r.embedding);
                    let metadata = r.metadata.map(encode_metadata);
                    match r.document {
                        DocumentWrite::Set(document) => {
                            tx.prepare_cached(
                                "INSERT OR REPLACE INTO records
                                 (rowid, id, embedding, document, uri, metadata)
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            )
                            .and_then(|mut s| {
                                s.execute(params![row, r.id, embedding, document, r.uri, metadata])
                            })
                            .map_err(sql)?;
                        }
                        DocumentWrite::Keep => {
                            let changed = tx
                                .prepare_cached(
                                    "UPDATE records SET id = ?2, embedding = ?3, uri = ?4,
                                     metadata = ?5 WHERE rowid = ?1",
                                )
                                .and_then(|mut s| {
                                    s.execute(params![row, r.id, embedding, r.uri, metadata])
                                })
                                .map_err(sql)?;
                            if changed != 1 {
                                return Err(Error::Corrupted {
                                    path: path.clone(),
                                    detail: format!(
                                        "record {:?} to update is missing from collection {}",
                                        r.id, r.collection_key
                                    ),
                                    source: None,
                                });
                            }
                        }
                    }
                }
                Mutation::DeleteRecord {
                    collection_key,
                    seq,
                } => {
                    tx.prepare_cached("DELETE FROM records WHERE rowid = ?1")
                        .and_then(|mut s| s.execute([rowid(*collection_key, *seq)]))
                        .map_err(sql)?;
                }
            }
        }
        for key in touched {
            tx.prepare_cached("UPDATE collections SET record_version = random() WHERE key = ?1")
                .and_then(|mut s| s.execute([key]))
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// All tenants.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn tenants(&self) -> Result<Vec<TenantRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, resource_name FROM tenants ORDER BY name")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TenantRow {
                    name: r.get(0)?,
                    resource_name: r.get(1)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))
    }

    fn uuid(&self, text: &str) -> Result<Uuid> {
        Uuid::parse_str(text).map_err(|e| self.corrupted(format!("bad uuid {text:?}: {e}")))
    }

    /// All databases.
    ///
    /// # Errors
    /// On SQLite failure or a malformed row.
    pub fn databases(&self) -> Result<Vec<DatabaseRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, tenant, name FROM databases")
            .map_err(|e| self.sql(e))?;
        let rows: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(|(id, tenant, name)| {
                Ok(DatabaseRow {
                    id: DatabaseId(self.uuid(&id)?),
                    tenant,
                    name,
                })
            })
            .collect()
    }

    /// All collections.
    ///
    /// # Errors
    /// On SQLite failure or a malformed row.
    pub fn collections(&self) -> Result<Vec<CollectionRow>> {
        type Raw = (
            i64,
            String,
            String,
            String,
            Option<String>,
            String,
            Option<i64>,
            i64,
            i64,
        );
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, id, database_id, name, metadata, configuration, dimension,
                        forks, total_ops
                 FROM collections ORDER BY key",
            )
            .map_err(|e| self.sql(e))?;
        let rows: Vec<Raw> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sql(e))?;
        rows.into_iter()
            .map(
                |(key, id, db, name, metadata, config, dimension, forks, ops)| {
                    let bad = |d: String| self.corrupted(format!("collection {name}: {d}"));
                    let undecodable =
                        |source| self.undecodable(format!("collection {name}"), source);
                    Ok(CollectionRow {
                        key,
                        id: CollectionId(self.uuid(&id)?),
                        database_id: DatabaseId(self.uuid(&db)?),
                        metadata: metadata
                            .as_deref()
                            .map(decode_metadata)
                            .transpose()
                            .map_err(undecodable)?,
                        configuration: decode_configuration(&config).map_err(undecodable)?,
                        dimension: dimension
                            .map(|d| u32::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
                            .transpose()?,
                        forks: u64::try_from(forks).map_err(|_| bad(format!("forks {forks}")))?,
                        total_ops: u64::try_from(ops)
                            .map_err(|_| bad(format!("total_ops {ops}")))?,
                        name,
                    })
                },
            )
            .collect()
    }

    /// Streams the records of one collection, in storage order, into `f`. Metadata is handed
    /// over undecoded ([`StoredMetadata::decode`]).
    ///
    /// # Errors
    /// On SQLite failure or a malformed row, naming the file.
    /// With `columns.documents` false, every record's `document` is `None` (the caller reads
    /// documents through a [`Reader`] when it needs them); with `columns.embeddings` false,
    /// every `embedding` is `None` and the column is not decoded.
    pub fn load_records(
        &self,
        collection_key: i64,
        columns: Columns,
        mut f: impl FnMut(LoadedRecord) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT rowid, id, {}, {}, uri, metadata FROM records
             WHERE rowid >= ?1 AND rowid < ?2 ORDER BY rowid",
            if columns.embeddings {
                "embedding"
            } else {
                "NULL"
            },
            if columns.documents {
                "document"
            } else {
                "NULL"
            },
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let mut rows = stmt
            .query(params![
                collection_key << SEQ_BITS,
                (collection_key + 1) << SEQ_BITS
            ])
            .map_err(|e| self.sql(e))?;
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let rowid: i64 = row.get(0).map_err(|e| self.sql(e))?;
            let id: String = row.get(1).map_err(|e| self.sql(e))?;
            let embedding = if columns.embeddings {
                let blob = row.get_ref(2).map_err(|e| self.sql(e))?;
                let bytes = blob.as_blob().map_err(|_| {
                    self.corrupted(format!("record {id:?}: embedding is not a blob"))
                })?;
                check_embedding(bytes)
                    .map_err(|source| self.undecodable(format!("record {id:?}"), source))?;
                Some(RawEmbedding(bytes))
            } else {
                None
            };
            let metadata: Option<String> = row.get(5).map_err(|e| self.sql(e))?;
            f(LoadedRecord {
                seq: SeqNo((rowid & MAX_SEQ as i64) as u64),
                document: row.get(3).map_err(|e| self.sql(e))?,
                uri: row.get(4).map_err(|e| self.sql(e))?,
                id,
                embedding,
                metadata: metadata.map(StoredMetadata),
            })?;
        }
        Ok(())
    }

    /// The version of a collection's records: a new random value after every commit that
    /// inserts, changes or deletes one of them, and after every inserted or updated record row
    /// however it was written (triggers), so it tells whether the records changed since it was
    /// last read. Only equality means anything.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; [`Error::Corrupted`] when the collection does not exist.
    pub fn record_version(&self, collection_key: i64) -> Result<u64> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT record_version FROM collections WHERE key = ?1",
                [collection_key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let v =
            v.ok_or_else(|| self.corrupted(format!("collection {collection_key} is missing")))?;
        // Random 64-bit values: the bits, as stored.
        Ok(v as u64)
    }

    /// Keys of deleted collections whose records are not all removed yet.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn purges(&self) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT key FROM purges ORDER BY key")
            .map_err(|e| self.sql(e))?;
        let keys = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.sql(e))?
            .collect::<rusqlite::Result<Vec<i64>>>()
            .map_err(|e| self.sql(e))?;
        Ok(keys)
    }

    /// Removes at most `limit` records of the deleted collection `key`, in one transaction; once
    /// none is left, also its purge mark. True when the purge is complete.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (nothing changed).
    pub fn purge_step(&mut self, key: i64, limit: u32) -> Result<bool> {
        let path = self.path.clone();
        let sql = |e| Error::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let removed = tx
            .prepare_cached(
                "DELETE FROM records WHERE rowid IN
                 (SELECT rowid FROM records WHERE rowid >= ?1 AND rowid < ?2 LIMIT ?3)",
            )
            .and_then(|mut s| s.execute(params![key << SEQ_BITS, (key + 1) << SEQ_BITS, limit]))
            .map_err(sql)?;
        let done = removed < limit as usize;
        if done {
            tx.prepare_cached("DELETE FROM purges WHERE key = ?1")
                .and_then(|mut s| s.execute([key]))
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(done)
    }

    /// A read-only connection to this store, for reading documents beside the writer.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn reader(&self) -> Result<Reader> {
        Reader::open(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// Runs SQLite's own consistency check.
    ///
    /// # Errors
    /// [`Error::Corrupted`] with SQLite's findings.
    pub fn check_integrity(&self) -> Result<()> {
        let result: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if result != "ok" {
            return Err(self.corrupted(result));
        }
        Ok(())
    }

    /// Rebuilds the file without free pages (`VACUUM`) and truncates the WAL: the space freed
    /// by deletes returns to the file system. Takes as long as rewriting every page; writers
    /// wait meanwhile (it is meant for a store no server is using).
    ///
    /// # Errors
    /// [`Error::Sqlite`] (for instance when the disk cannot hold the temporary copy).
    pub fn vacuum(&mut self) -> Result<()> {
        // Setting the mode before VACUUM converts a store created without incremental
        // auto-vacuum, so `reclaim` works on it from then on.
        self.conn
            .execute_batch(
                "PRAGMA auto_vacuum=INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(|e| self.sql(e))
    }

    /// Copies the WAL into the file and empties it (`PRAGMA wal_checkpoint(TRUNCATE)`): the file
    /// takes its final size (pages reclaimed leave it only at a checkpoint) and the WAL none.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn checkpoint_wal(&mut self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| self.sql(e))
    }

    /// Copies as much of the WAL into the file as no reader still needs, without waiting for
    /// readers (`PRAGMA wal_checkpoint(PASSIVE)`); the file takes its new size once a
    /// checkpoint completes, and the WAL is cut back to its size limit when it restarts.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn checkpoint_wal_passive(&mut self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE);")
            .map_err(|e| self.sql(e))
    }

    /// Pages inside the file that deletes freed and nothing uses yet.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn free_pages(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// True when the file can give free pages back in steps (incremental auto-vacuum: stores
    /// created by this version, or converted by [`Store::vacuum`]).
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn reclaims(&self) -> Result<bool> {
        let mode: i64 = self
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        Ok(mode == 2)
    }

    /// Gives at most `pages` free pages back to the file system (`PRAGMA incremental_vacuum`):
    /// one short transaction, durable like any commit, changing no data.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (nothing is lost: the pages stay free inside the file).
    pub fn reclaim(&mut self, pages: u32) -> Result<()> {
        // The pragma frees one page per step of its statement: step it to the end.
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({pages})"))
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([]).map_err(|e| Error::sqlite(&self.path, e))?;
        while rows
            .next()
            .map_err(|e| Error::sqlite(&self.path, e))?
            .is_some()
        {}
        Ok(())
    }
}

/// A read-only connection to a store: documents are read through it, on the caller's thread,
/// while the [`Store`] writes. Each call reads the latest committed state.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// Opens a reader on the store in data directory `dir`.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn open(dir: &Path) -> Result<Reader> {
        let path = &dir.join(DB_FILE);
        let sql = |e| Error::sqlite(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        // A small page cache per reader: the hot pages are the operating system's to keep.
        conn.execute_batch("PRAGMA cache_size=-2048;")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        Ok(Reader {
            conn,
            path: path.to_owned(),
        })
    }

    fn sql(&self, e: rusqlite::Error) -> Error {
        Error::sqlite(&self.path, e)
    }

    /// Writes a consistent copy of the whole store, as of one moment, to the new file `dest`
    /// (SQLite's `VACUUM INTO`: one read transaction, so writers go on meanwhile; the copy has no
    /// free pages, the same page size, identity and format version). The copy is fsynced before
    /// this returns. `dest` must not exist.
    ///
    /// # Errors
    /// [`Error::Sqlite`] (for instance when `dest` exists or the disk is full); the caller
    /// removes a partial `dest`.
    pub fn copy_to(&self, dest: &Path) -> Result<()> {
        let Some(target) = dest.to_str() else {
            return Err(Error::Io {
                path: dest.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path is not valid UTF-8",
                ),
            });
        };
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map_err(|e| Error::sqlite(dest, e))?;
        // SQLite does not sync the file VACUUM INTO writes.
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::Io {
                path: dest.to_owned(),
                source: e,
            })
    }

    /// The document of record `seq` of collection `key`: `None` when the record is absent,
    /// `Some(None)` when it has no document.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; [`Error::Corrupted`] when the column is not text.
    pub fn document(&self, key: i64, seq: SeqNo) -> Result<Option<Option<String>>> {
        self.conn
            .prepare_cached("SELECT document FROM records WHERE rowid = ?1")
            .and_then(|mut s| {
                s.query_row([rowid(key, seq)], |r| r.get::<_, Option<String>>(0))
                    .optional()
            })
            .map_err(|e| self.sql(e))
    }

    /// Calls `f` with the sequence number and document of collection `key`'s records, in
    /// storage order, from sequence number `from` on, until `f` returns false.
    ///
    /// # Errors
    /// [`Error::Sqlite`]; [`Error::Corrupted`] when a document is not text.
    pub fn scan_documents(
        &self,
        key: i64,
        mut f: impl FnMut(SeqNo, Option<&str>) -> bool,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, document FROM records WHERE rowid >= ?1 AND rowid < ?2
                 ORDER BY rowid",
            )
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt
            .query(params![key << SEQ_BITS, (key + 1) << SEQ_BITS])
            .map_err(|e| self.sql(e))?;
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let rowid: i64 = row.get(0).map_err(|e| self.sql(e))?;
            let document = row.get_ref(1).map_err(|e| self.sql(e))?;
            let document = match document {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Text(t) => {
                    Some(std::str::from_utf8(t).map_err(|_| Error::Corrupted {
                        path: self.path.clone(),
                        detail: format!("record at rowid {rowid}: document is not UTF-8"),
                        source: None,
                    })?)
                }
                rusqlite::types::ValueRef::Integer(_)
                | rusqlite::types::ValueRef::Real(_)
                | rusqlite::types::ValueRef::Blob(_) => {
                    return Err(Error::Corrupted {
                        path: self.path.clone(),
                        detail: format!("record at rowid {rowid}: document is not text"),
                        source: None,
                    })
                }
            };
            if !f(SeqNo((rowid & MAX_SEQ as i64) as u64), document) {
                break;
            }
        }
        Ok(())
    }
}

/// FNV-1a 64-bit, hex: a stable fingerprint of a migration's text.
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_checkpointed_at_a_few_mebibytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        let coll = CollectionRow {
            key: 1,
            id: CollectionId::new_random(),
            database_id: DatabaseId(Uuid::nil()),
            name: "wal".into(),
            metadata: None,
            configuration: CollectionConfiguration::default(),
            dimension: Some(384),
            forks: 0,
            total_ops: 0,
        };
        s.commit(&[Mutation::PutCollection(&coll)])
            .expect("collection");
        let v = vec![0.5f32; 384];
        let ids: Vec<String> = (0..6000).map(|i| format!("r{i}")).collect();
        // 30 commits of 200 records of 1.5 KiB each: 9 MiB through the WAL.
        for batch in ids.chunks(200) {
            let rows: Vec<Mutation<'_>> = batch
                .iter()
                .map(|id| {
                    Mutation::PutRecord(RecordRow {
                        collection_key: 1,
                        seq: SeqNo(id[1..].parse::<u64>().expect("number")),
                        id,
                        embedding: &v,
                        document: DocumentWrite::Set(None),
                        uri: None,
                        metadata: None,
                    })
                })
                .collect();
            s.commit(&rows).expect("records");
        }
        let wal = std::fs::metadata(dir.path().join("ochre.sqlite3-wal")).expect("wal");
        // 4 MiB, plus at most the one transaction that crossed the mark.
        assert!(
            wal.len() < (4 << 20) + (1 << 20),
            "WAL of {} bytes",
            wal.len()
        );
    }

    #[test]
    fn commit_and_reload_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let coll = CollectionRow {
            key: 3,
            id: CollectionId::new_random(),
            database_id: DatabaseId(Uuid::nil()),
            name: "abc".into(),
            metadata: None,
            configuration: CollectionConfiguration::default(),
            dimension: Some(2),
            forks: 1,
            total_ops: 5,
        };
        let meta: Metadata = [("k".to_owned(), ochre_types::MetadataValue::Int(3))]
            .into_iter()
            .collect();
        {
            let mut s = Store::open(dir.path()).expect("open");
            s.commit(&[
                Mutation::PutCollection(&coll),
                Mutation::PutRecord(RecordRow {
                    collection_key: 3,
                    seq: SeqNo(7),
                    id: "a",
                    embedding: &[1.0, 2.0],
                    document: DocumentWrite::Set(Some("doc")),
                    uri: None,
                    metadata: Some(&meta),
                }),
                Mutation::PutRecord(RecordRow {
                    collection_key: 4,
                    seq: SeqNo(1),
                    id: "other",
                    embedding: &[1.0, 2.0],
                    document: DocumentWrite::Set(None),
                    uri: None,
                    metadata: None,
                }),
            ])
            .expect("commit");
            s.commit(&[Mutation::CountOps { key: 3, n: 4 }])
                .expect("count");
        }
        let s = Store::open(dir.path()).expect("reopen");
        let mut expected = coll.clone();
        expected.total_ops = 9;
        assert_eq!(s.collections().expect("collections"), vec![expected]);
        let mut got = vec![];
        s.load_records(
            3,
            Columns {
                embeddings: true,
                documents: true,
            },
            |r| {
                let mut embedding = Vec::new();
                let e = r.embedding.expect("asked for");
                e.append_to(&mut embedding);
                got.push((
                    r.seq,
                    embedding,
                    e.dimension(),
                    r.document,
                    r.metadata.map(|m| m.decode().expect("valid metadata")),
                ));
                Ok(())
            },
        )
        .expect("load");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, SeqNo(7));
        assert_eq!(got[0].1, vec![1.0, 2.0]);
        assert_eq!(got[0].2, 2);
        assert_eq!(got[0].3.as_deref(), Some("doc"));
        assert_eq!(got[0].4, Some(meta));
        s.check_integrity().expect("intact");
    }

    #[test]
    fn a_version_1_store_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("sqlite");
            conn.execute_batch(MIGRATIONS[0].1).expect("v1 schema");
            conn.execute_batch(&format!(
                "CREATE TABLE migrations (version INTEGER PRIMARY KEY, hash TEXT NOT NULL);
                 INSERT INTO migrations VALUES (1, '{}');
                 PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version=1;",
                fnv1a(MIGRATIONS[0].1.as_bytes()),
            ))
            .expect("v1 data");
            conn.execute(
                "INSERT INTO collections (key, id, database_id, name, configuration)
                 VALUES (1, ?1, ?2, 'old', ?3)",
                params![
                    Uuid::new_v4().to_string(),
                    Uuid::nil().to_string(),
                    encode_configuration(&CollectionConfiguration::default())
                ],
            )
            .expect("v1 collection");
        }
        let s = Store::open(dir.path()).expect("migrates");
        let version: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, FORMAT_VERSION);
        let c = s.collections().expect("collections");
        assert_eq!(
            (c[0].name.as_str(), c[0].forks, c[0].total_ops),
            ("old", 0, 0)
        );
        // A store created before incremental auto-vacuum keeps it off until vacuumed.
        let mut s = s;
        assert!(!s.reclaims().expect("mode"));
        s.vacuum().expect("vacuum");
        assert!(s.reclaims().expect("mode"), "vacuum converts it");
        assert_eq!(s.collections().expect("collections").len(), 1);
    }

    #[test]
    fn new_stores_give_freed_pages_back_in_steps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("create");
        assert!(s.reclaims().expect("mode"));
        let doc = "d".repeat(4000);
        let rows: Vec<RecordRow<'_>> = (0..2000u64)
            .map(|i| RecordRow {
                collection_key: 1,
                seq: SeqNo(i + 1),
                id: "x",
                embedding: &[1.0, 2.0],
                document: DocumentWrite::Set(Some(&doc)),
                uri: None,
                metadata: None,
            })
            .collect();
        let puts: Vec<Mutation<'_>> = rows.iter().map(|r| Mutation::PutRecord(*r)).collect();
        s.commit(&puts).expect("write");
        let deletes: Vec<Mutation<'_>> = rows
            .iter()
            .map(|r| Mutation::DeleteRecord {
                collection_key: 1,
                seq: r.seq,
            })
            .collect();
        s.commit(&deletes).expect("delete");
        let free = s.free_pages().expect("free");
        assert!(free > 256, "{free} free pages");
        s.reclaim(256).expect("step");
        assert_eq!(
            s.free_pages().expect("free"),
            free - 256,
            "one step, 256 pages"
        );
        while s.free_pages().expect("free") > 0 {
            s.reclaim(256).expect("step");
        }
        s.checkpoint_wal().expect("checkpoint");
        let bytes = std::fs::metadata(dir.path().join(DB_FILE))
            .expect("file")
            .len();
        assert!(
            bytes < 1 << 20,
            "file {bytes} bytes after giving everything back"
        );
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(DB_FILE),
            b"this is not sqlite at all, not even close....",
        )
        .expect("write");
        let err = Store::open(dir.path()).expect_err("garbage");
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");

        let dir = tempfile::tempdir().expect("tempdir");
        {
            let c = Connection::open(dir.path().join(DB_FILE)).expect("sqlite");
            c.execute_batch("CREATE TABLE t(x)").expect("table");
        }
        let err = Store::open(dir.path()).expect_err("foreign sqlite");
        assert!(err.to_string().contains("not an Ochre store"), "{err}");
    }

    #[test]
    fn newer_formats_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path()).expect("create"));
        {
            let c = Connection::open(dir.path().join(DB_FILE)).expect("sqlite");
            c.execute_batch("PRAGMA user_version=99").expect("bump");
        }
        let err = Store::open(dir.path()).expect_err("newer");
        assert!(
            matches!(err, Error::UnsupportedVersion { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn corrupt_record_bytes_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path()).expect("create"));
        {
            let c = Connection::open(dir.path().join(DB_FILE)).expect("sqlite");
            c.execute(
                "INSERT INTO records (rowid, id, embedding) VALUES (?1, 'x', x'010203')",
                [1i64 << SEQ_BITS],
            )
            .expect("insert");
        }
        let s = Store::open(dir.path()).expect("open");
        let err = s
            .load_records(
                1,
                Columns {
                    embeddings: true,
                    documents: true,
                },
                |_| Ok(()),
            )
            .expect_err("torn blob");
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");
        assert!(err.to_string().contains(DB_FILE), "{err}");
    }

    /// A collection row with key `key` and 2-d vectors, and `n` records `r0..` in it.
    fn collection_with_records(s: &mut Store, key: i64, n: u64) -> CollectionRow {
        let coll = CollectionRow {
            key,
            id: CollectionId::new_random(),
            database_id: DatabaseId(Uuid::nil()),
            name: format!("c{key}"),
            metadata: None,
            configuration: CollectionConfiguration::default(),
            dimension: Some(2),
            forks: 0,
            total_ops: 0,
        };
        let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let docs: Vec<String> = (0..n).map(|i| format!("document {i}")).collect();
        let mut muts = vec![Mutation::PutCollection(&coll)];
        for (i, id) in ids.iter().enumerate() {
            muts.push(Mutation::PutRecord(RecordRow {
                collection_key: key,
                seq: SeqNo(i as u64 + 1),
                id,
                embedding: &[1.0, 2.0],
                document: DocumentWrite::Set(Some(&docs[i])),
                uri: None,
                metadata: None,
            }));
        }
        s.commit(&muts).expect("commit");
        coll
    }

    fn record_count(s: &Store, key: i64) -> usize {
        let mut n = 0;
        s.load_records(
            key,
            Columns {
                embeddings: true,
                documents: false,
            },
            |_| {
                n += 1;
                Ok(())
            },
        )
        .expect("load");
        n
    }

    /// Every commit that changes a collection's records raises its version, as does an update
    /// of a record row made outside Ochre; nothing else does, and other collections keep theirs.
    #[test]
    fn record_versions_rise_with_every_record_change_and_only_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        let a = collection_with_records(&mut s, 1, 3);
        collection_with_records(&mut s, 2, 2);
        let v = |s: &Store, k| s.record_version(k).expect("version");
        let (a0, b0) = (v(&s, 1), v(&s, 2));
        assert!(a0 != 0 && b0 != 0);
        let mut renamed = a.clone();
        renamed.name = "renamed".into();
        s.commit(&[
            Mutation::UpdateCollection(&renamed),
            Mutation::CountOps { key: 1, n: 3 },
        ])
        .expect("rename");
        assert_eq!(v(&s, 1), a0, "the collection row is not a record");
        let put = |seq, document| {
            Mutation::PutRecord(RecordRow {
                collection_key: 1,
                seq: SeqNo(seq),
                id: "r0",
                embedding: &[3.0, 4.0],
                document,
                uri: None,
                metadata: None,
            })
        };
        let mut seen = vec![a0];
        for m in [
            put(1, DocumentWrite::Keep),
            put(1, DocumentWrite::Set(None)),
            put(9, DocumentWrite::Set(Some("new"))),
            Mutation::DeleteRecord {
                collection_key: 1,
                seq: SeqNo(9),
            },
        ] {
            s.commit(&[m]).expect("write");
            let now = v(&s, 1);
            assert!(!seen.contains(&now), "{seen:?} then {now}");
            seen.push(now);
        }
        s.conn
            .execute(
                "UPDATE records SET metadata = '{}' WHERE rowid = ?1",
                [rowid(1, SeqNo(2))],
            )
            .expect("raw update");
        let raw = v(&s, 1);
        assert!(!seen.contains(&raw), "a raw SQL update counts too");
        s.conn
            .execute(
                "INSERT OR REPLACE INTO records (rowid, id, embedding)
                 VALUES (?1, 'r1', x'0000803f0000803f')",
                [rowid(1, SeqNo(2))],
            )
            .expect("raw replace");
        assert_ne!(v(&s, 1), raw, "a raw SQL replace counts too");
        let copy = CollectionRow {
            key: 3,
            id: CollectionId::new_random(),
            name: "copy".into(),
            ..a.clone()
        };
        s.commit(&[
            Mutation::PutCollection(&copy),
            Mutation::CopyRecords { from: 1, to: 3 },
        ])
        .expect("copy");
        assert!(v(&s, 3) != 0, "copied records count for the copy");
        assert_eq!(v(&s, 2), b0, "another collection's version stays");
        assert!(matches!(s.record_version(7), Err(Error::Corrupted { .. })));
    }

    #[test]
    fn a_deleted_collection_is_purged_in_steps_and_its_key_stays_marked_until_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        collection_with_records(&mut s, 5, 10);
        let other = collection_with_records(&mut s, 6, 3);
        s.commit(&[Mutation::DeleteCollection { key: 5 }])
            .expect("delete");
        assert_eq!(s.collections().expect("collections"), vec![other]);
        assert_eq!(s.purges().expect("purges"), vec![5]);
        assert_eq!(record_count(&s, 5), 10, "records stay until purged");
        assert!(!s.purge_step(5, 4).expect("step"));
        assert_eq!(record_count(&s, 5), 6);
        assert!(!s.purge_step(5, 4).expect("step"));
        assert!(s.purge_step(5, 4).expect("last step"));
        assert_eq!(record_count(&s, 5), 0);
        assert_eq!(s.purges().expect("purges"), Vec::<i64>::new());
        assert_eq!(record_count(&s, 6), 3, "other collections untouched");
    }

    #[test]
    fn copy_records_copies_every_field_to_the_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        collection_with_records(&mut s, 1, 5);
        s.commit(&[Mutation::CopyRecords { from: 1, to: 2 }])
            .expect("copy");
        let collect = |key| {
            let mut got = Vec::new();
            s.load_records(
                key,
                Columns {
                    embeddings: true,
                    documents: true,
                },
                |r| {
                    got.push((r.seq, r.id, r.document));
                    Ok(())
                },
            )
            .expect("load");
            got
        };
        assert_eq!(collect(1), collect(2));
        assert_eq!(collect(2).len(), 5);
    }

    #[test]
    fn keeping_the_document_rewrites_the_rest_and_needs_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        collection_with_records(&mut s, 1, 2);
        let row = |seq, id| {
            Mutation::PutRecord(RecordRow {
                collection_key: 1,
                seq: SeqNo(seq),
                id,
                embedding: &[3.0, 4.0],
                document: DocumentWrite::Keep,
                uri: Some("u"),
                metadata: None,
            })
        };
        s.commit(&[row(1, "r0")]).expect("update");
        let reader = s.reader().expect("reader");
        assert_eq!(
            reader.document(1, SeqNo(1)).expect("read"),
            Some(Some("document 0".to_owned()))
        );
        let mut uri = None;
        s.load_records(
            1,
            Columns {
                embeddings: true,
                documents: false,
            },
            |r| {
                if r.seq == SeqNo(1) {
                    uri = r.uri;
                }
                Ok(())
            },
        )
        .expect("load");
        assert_eq!(uri.as_deref(), Some("u"));
        // Keeping the document of a record that is not there is refused, and nothing changes.
        let err = s
            .commit(&[row(2, "r1"), row(9, "ghost")])
            .expect_err("missing");
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");
        assert_eq!(
            reader.document(1, SeqNo(9)).expect("read"),
            None,
            "nothing was inserted"
        );
    }

    #[test]
    fn updating_a_deleted_collection_does_not_bring_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        let mut coll = collection_with_records(&mut s, 1, 1);
        s.commit(&[Mutation::DeleteCollection { key: 1 }])
            .expect("delete");
        coll.dimension = Some(3);
        s.commit(&[Mutation::UpdateCollection(&coll)])
            .expect("update");
        assert!(s.collections().expect("collections").is_empty());
    }

    #[test]
    fn a_reader_scans_documents_in_order_and_stops_when_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("open");
        collection_with_records(&mut s, 1, 6);
        collection_with_records(&mut s, 2, 2);
        let reader = Reader::open(dir.path()).expect("reader");
        let mut seen = Vec::new();
        reader
            .scan_documents(1, |seq, doc| {
                seen.push((seq.0, doc.map(str::to_owned)));
                seen.len() < 4
            })
            .expect("scan");
        let expected: Vec<(u64, Option<String>)> = (1..=4)
            .map(|i| (i, Some(format!("document {}", i - 1))))
            .collect();
        assert_eq!(seen, expected);
        // A reader sees later commits.
        s.commit(&[Mutation::DeleteRecord {
            collection_key: 1,
            seq: SeqNo(1),
        }])
        .expect("delete");
        assert_eq!(reader.document(1, SeqNo(1)).expect("read"), None);
        assert!(reader.document(1, SeqNo(2)).expect("read").is_some());
    }
}
