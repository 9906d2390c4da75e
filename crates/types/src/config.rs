//! Distance spaces and collection configuration.

use std::fmt;
use std::str::FromStr;

/// The distance function of a collection. All three are "smaller is nearer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Space {
    /// Squared Euclidean distance (no square root), as Chroma and hnswlib report it.
    #[default]
    L2,
    /// `1 - cos(q, v)`; a zero vector on either side gives `1.0`.
    Cosine,
    /// `1 - q·v`, unnormalized; may be negative.
    Ip,
}

impl Space {
    /// The name Chroma uses (`l2`, `cosine`, `ip`).
    pub fn as_str(self) -> &'static str {
        match self {
            Space::L2 => "l2",
            Space::Cosine => "cosine",
            Space::Ip => "ip",
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Space {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "l2" => Ok(Space::L2),
            "cosine" => Ok(Space::Cosine),
            "ip" => Ok(Space::Ip),
            other => Err(format!(
                "unknown space {other:?}: expected l2, cosine or ip"
            )),
        }
    }
}

/// HNSW parameters, with Chroma's names and defaults. Stored and returned as given; see
/// docs/ARCHITECTURE.md for which ones the current index honours.
#[derive(Debug, Clone, PartialEq)]
pub struct HnswConfig {
    pub space: Space,
    /// Build-time beam width. Default 100.
    pub ef_construction: u64,
    /// Query-time beam width. Default 100; modifiable.
    pub ef_search: u64,
    /// Graph degree M. Default 16.
    pub max_neighbors: u64,
    /// Threads for index work. Default: the number of CPUs.
    pub num_threads: u64,
    /// Capacity growth factor. Default 1.2.
    pub resize_factor: f64,
    /// Writes between index checkpoints. Default 1000.
    pub sync_threshold: u64,
    /// Chroma's brute-force buffer size. Default 100.
    pub batch_size: u64,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            space: Space::L2,
            ef_construction: 100,
            ef_search: 100,
            max_neighbors: 16,
            num_threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            resize_factor: 1.2,
            sync_threshold: 1000,
            batch_size: 100,
        }
    }
}

/// A collection's configuration: its vector index parameters, the embedding function descriptor
/// the clients stored (opaque JSON, returned verbatim) and the schema (opaque JSON, owned by the
/// HTTP layer).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollectionConfiguration {
    pub hnsw: HnswConfig,
    pub embedding_function: Option<serde_json::Value>,
    pub schema: Option<serde_json::Value>,
}
