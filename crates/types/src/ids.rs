//! Identifier newtypes. User-visible record ids stay plain `String`s.

use std::fmt;
use uuid::Uuid;

/// A collection's immutable identity (a UUID, shown lower-case with hyphens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionId(pub Uuid);

/// A database's identity. The default database has the nil UUID, as in Chroma.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatabaseId(pub Uuid);

/// Position of a record in its collection's storage order (first-insertion order).
///
/// Sequence numbers only grow; a record keeps its number across updates, and a record that is
/// deleted and added again gets a new, larger one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(pub u64);

impl CollectionId {
    /// A fresh random (v4) id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl DatabaseId {
    /// A fresh random (v4) id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for CollectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Display for DatabaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}
