//! The engine's error: a kind to react to, and a message for people.

#![deny(
    clippy::wildcard_enum_match_arm,
    reason = "a new error kind must be mapped deliberately"
)]

use std::fmt;
use std::sync::Arc;

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

/// An engine error: a kind, a message for people, and the lower layer's error that caused it
/// (see [`std::error::Error::source`]), if any.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`, with `message` saying what failed at this layer.
    pub(crate) fn caused_by(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// An invalid argument, with the lower layer's error as its cause.
    pub(crate) fn invalid_because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::caused_by(ErrorKind::InvalidArgument, message, source)
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

/// Errors are equal when their kind and message are (the cause is not compared).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ochre_storage::Error> for Error {
    fn from(e: ochre_storage::Error) -> Self {
        let kind = match &e {
            ochre_storage::Error::Corrupted { .. } => ErrorKind::Corrupted,
            ochre_storage::Error::Locked { .. } => ErrorKind::Locked,
            ochre_storage::Error::Io { .. }
            | ochre_storage::Error::Sqlite { .. }
            | ochre_storage::Error::UnsupportedVersion { .. } => ErrorKind::Storage,
            // The store's error is non-exhaustive: a variant added later reads as a storage
            // failure until it is mapped here.
            _ => ErrorKind::Storage,
        };
        // The message is the storage error's own (it names the file); the error stays the cause.
        Error::caused_by(kind, e.to_string(), e)
    }
}

impl From<ochre_types::WhereError> for Error {
    fn from(e: ochre_types::WhereError) -> Self {
        Error::invalid_because(e.to_string(), e)
    }
}

impl From<ochre_types::NameError> for Error {
    fn from(e: ochre_types::NameError) -> Self {
        Error::invalid_because(e.to_string(), e)
    }
}

impl From<ochre_types::ConfigError> for Error {
    fn from(e: ochre_types::ConfigError) -> Self {
        Error::invalid_because(e.to_string(), e)
    }
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn storage_errors_stay_the_cause() {
        let e: Error = ochre_storage::Error::Corrupted {
            path: "x.sqlite3".into(),
            detail: "bad page".into(),
            source: None,
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::Corrupted);
        assert_eq!(e.message(), "x.sqlite3 is corrupted: bad page");
        let cause = e.source().expect("a cause");
        assert!(cause.downcast_ref::<ochre_storage::Error>().is_some());
    }
}
