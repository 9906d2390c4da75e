//! Ochre's durable store.
//!
//! One SQLite database file (`ochre.sqlite3`) in the data directory holds the catalog (tenants,
//! databases, collections) and every record. A write is a list of [`Mutation`]s committed in one
//! SQLite transaction; the database runs in WAL mode with `synchronous=FULL`, so a commit that
//! returned is on stable storage and a commit interrupted by a crash is absent as a whole.
//! The directory is guarded by an exclusive lock on `LOCK` (see [`DirLock`]).
//!
//! This crate is not a cache and not a query engine: the engine keeps its in-memory state and
//! only writes and loads through here. The file format is specified in docs/format/sqlite.md.
//!
//! Invariants:
//! - A record's rowid is `collection key × 2^40 + sequence number`, so a collection's records are
//!   one rowid range, in storage order.
//! - Every value read back is checked; malformed bytes give [`Error::Corrupted`] naming the file.

#![deny(
    clippy::wildcard_enum_match_arm,
    reason = "the store decodes what it wrote: a new mutation, error or format variant must be handled at every match"
)]

mod codec;
mod lock;
mod store;

pub use codec::{decode_configuration, encode_configuration, DecodeError};
pub use lock::DirLock;
pub use store::{
    CollectionRow, Columns, DatabaseRow, DocumentWrite, LoadedRecord, Mutation, RawEmbedding,
    Reader, RecordRow, Store, StoredMetadata, TenantRow, DB_FILE, FORMAT_VERSION,
    OLDEST_SUPPORTED_FORMAT,
};

/// The row decoders recovery runs on the bytes of the store file, for the fuzz targets (`fuzz/`)
/// and their corpus replay; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::codec::{check_embedding, decode_metadata};

    /// An embedding column as [`crate::Store::load_records`] hands it over: checked, undecoded.
    ///
    /// # Errors
    /// As [`check_embedding`].
    pub fn raw_embedding(bytes: &[u8]) -> Result<crate::RawEmbedding<'_>, crate::DecodeError> {
        check_embedding(bytes)?;
        Ok(crate::RawEmbedding(bytes))
    }

    /// A metadata column as [`crate::Store::load_records`] hands it over.
    pub fn stored_metadata(text: &str) -> crate::StoredMetadata {
        crate::StoredMetadata(text.to_owned())
    }
}

use std::path::PathBuf;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Damaged or foreign bytes; `source` is the lower error when there is one (a
    /// [`DecodeError`] for a stored value that did not decode, SQLite's for a damaged page; its
    /// text is part of `detail`).
    #[error("{path} is corrupted: {detail}")]
    Corrupted {
        path: PathBuf,
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("{path} is locked by another Ochre process (pid {holder}); close it first or use another directory")]
    Locked { path: PathBuf, holder: String },
    #[error("{path} has format version {found}; this Ochre reads versions {oldest} to {newest}")]
    UnsupportedVersion {
        path: PathBuf,
        found: i64,
        oldest: i64,
        newest: i64,
    },
}

impl Error {
    /// True when the failed operation changed nothing and may succeed later: SQLite ran out of
    /// disk space (`SQLITE_FULL`, which rolls the transaction back) or found the file busy or
    /// locked. A commit failing this way leaves the store as it was before the commit began;
    /// any other failure (an I/O error while syncing, say) leaves its outcome unknown.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ffi::ErrorCode;
        match self {
            Error::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => matches!(
                e.code,
                ErrorCode::DiskFull | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
            ),
            Error::Io { .. }
            | Error::Sqlite { .. }
            | Error::Corrupted { .. }
            | Error::Locked { .. }
            | Error::UnsupportedVersion { .. } => false,
        }
    }

    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Error {
        use rusqlite::ffi::ErrorCode;
        if let rusqlite::Error::SqliteFailure(e, _) = &source {
            if matches!(e.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) {
                return Error::Corrupted {
                    path: path.to_owned(),
                    detail: source.to_string(),
                    source: Some(Box::new(source)),
                };
            }
        }
        Error::Sqlite {
            path: path.to_owned(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
