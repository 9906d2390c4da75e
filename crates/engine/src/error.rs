//! The engine's error: a kind to react to, and a message for people.

use std::fmt;

/// What went wrong, coarsely, so callers (the HTTP server, bindings) can react without reading
/// messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or violates a rule; nothing was changed.
    InvalidArgument,
    /// A tenant, database or collection does not exist.
    NotFound,
    /// A tenant, database or collection with that name already exists.
    AlreadyExists,
    /// A request the engine could not serve for an internal reason (Chroma's `InternalError`).
    Internal,
    /// Reading or writing the store failed.
    Storage,
    /// Bytes on disk are damaged or not Ochre's; the message names the file.
    Corrupted,
    /// Another process holds the data directory.
    Locked,
    /// An earlier write failed at the storage layer; the database refuses writes until reopened.
    Poisoned,
}

/// An engine error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (Chroma's wording where Chroma has one).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<ochre_storage::Error> for Error {
    fn from(e: ochre_storage::Error) -> Self {
        let kind = match &e {
            ochre_storage::Error::Corrupted { .. } => ErrorKind::Corrupted,
            ochre_storage::Error::Locked { .. } => ErrorKind::Locked,
            _ => ErrorKind::Storage,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ochre_types::WhereError> for Error {
    fn from(e: ochre_types::WhereError) -> Self {
        Error::invalid(e.to_string())
    }
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, Error>;
