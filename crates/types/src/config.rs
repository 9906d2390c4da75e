//! Distance spaces and collection configuration: one full HNSW configuration ([`HnswConfig`]),
//! one all-optional patch of it ([`HnswPatch`]), and the one place every knob is range-checked
//! ([`HnswConfig::check`]) and turned into the sizes an index uses.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The distance function of a collection. All three are "smaller is nearer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A space name that is not `l2`, `cosine` or `ip`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown space {name:?}: expected l2, cosine or ip")]
pub struct UnknownSpace {
    pub name: String,
}

impl FromStr for Space {
    type Err = UnknownSpace;
    fn from_str(s: &str) -> Result<Self, UnknownSpace> {
        match s {
            "l2" => Ok(Space::L2),
            "cosine" => Ok(Space::Cosine),
            "ip" => Ok(Space::Ip),
            other => Err(UnknownSpace {
                name: other.to_owned(),
            }),
        }
    }
}

/// HNSW parameters, with Chroma's names and defaults. Stored and returned as given; see
/// docs/ARCHITECTURE.md for which ones the index honours. The field order is the order of the
/// stored JSON (docs/format/sqlite.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The accepted range of each integer knob. Wide enough for every value Chroma's own tests use
/// (up to 1000 for the graph sizes), narrow enough that no configuration can make one record
/// cost megabytes or a search unbounded work.
pub const MAX_NEIGHBORS: RangeInclusive<u64> = 1..=2048;
pub const EF_CONSTRUCTION: RangeInclusive<u64> = 1..=10_000;
pub const EF_SEARCH: RangeInclusive<u64> = 1..=10_000;
pub const NUM_THREADS: RangeInclusive<u64> = 1..=1024;
pub const SYNC_THRESHOLD: RangeInclusive<u64> = 2..=u32::MAX as u64;
pub const BATCH_SIZE: RangeInclusive<u64> = 2..=u32::MAX as u64;

/// A configuration knob outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("Invalid HNSW configuration: {knob} must be between {min} and {max}, got {value}")]
    OutOfRange {
        knob: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("Invalid HNSW configuration: resize_factor must be a positive number, got {0}")]
    ResizeFactor(f64),
}

impl HnswConfig {
    /// Checks every knob against its range (the constants above).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first knob out of range.
    pub fn check(&self) -> Result<(), ConfigError> {
        HnswPatch::of(self).check()
    }

    /// The graph degree an index builds with: `max_neighbors` clamped into range, and at least 2
    /// (a graph of degree 1 is a list). Values stored before the ranges existed load clamped.
    pub fn graph_degree(&self) -> usize {
        clamp(self.max_neighbors, &MAX_NEIGHBORS).max(2)
    }

    /// `ef_construction` clamped into range.
    pub fn build_beam(&self) -> usize {
        clamp(self.ef_construction, &EF_CONSTRUCTION)
    }

    /// `ef_search` clamped into range.
    pub fn search_beam(&self) -> usize {
        clamp(self.ef_search, &EF_SEARCH)
    }

    /// Threads for index builds: `num_threads`, at least 1, at most the machine's cores.
    pub fn build_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        clamp(self.num_threads, &NUM_THREADS).min(cores)
    }
}

fn clamp(v: u64, range: &RangeInclusive<u64>) -> usize {
    usize::try_from(v.clamp(*range.start(), *range.end())).unwrap_or(usize::MAX)
}

/// Some HNSW parameters: what a request or a schema sets, the rest left to a base
/// ([`HnswPatch::apply`]). Serialized with absent fields omitted, in the schema's field order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HnswPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<Space>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_neighbors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_threads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_factor: Option<f64>,
}

impl HnswPatch {
    /// Every parameter of `c` except the space (the schema keeps the space apart).
    pub fn of(c: &HnswConfig) -> HnswPatch {
        HnswPatch {
            space: None,
            ef_construction: Some(c.ef_construction),
            max_neighbors: Some(c.max_neighbors),
            ef_search: Some(c.ef_search),
            num_threads: Some(c.num_threads),
            batch_size: Some(c.batch_size),
            sync_threshold: Some(c.sync_threshold),
            resize_factor: Some(c.resize_factor),
        }
    }

    /// Checks every parameter this patch sets against its range (the constants above); what
    /// it leaves unset is not looked at (a stored value from before the ranges stays changeable
    /// by a patch that does not touch it).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first knob out of range.
    pub fn check(&self) -> Result<(), ConfigError> {
        let knobs = [
            ("max_neighbors", self.max_neighbors, MAX_NEIGHBORS),
            ("ef_construction", self.ef_construction, EF_CONSTRUCTION),
            ("ef_search", self.ef_search, EF_SEARCH),
            ("num_threads", self.num_threads, NUM_THREADS),
            ("sync_threshold", self.sync_threshold, SYNC_THRESHOLD),
            ("batch_size", self.batch_size, BATCH_SIZE),
        ];
        for (knob, value, range) in knobs {
            match value {
                Some(value) if !range.contains(&value) => {
                    return Err(ConfigError::OutOfRange {
                        knob,
                        value,
                        min: *range.start(),
                        max: *range.end(),
                    });
                }
                Some(_) | None => {}
            }
        }
        match self.resize_factor {
            Some(r) if !(r.is_finite() && r > 0.0) => Err(ConfigError::ResizeFactor(r)),
            Some(_) | None => Ok(()),
        }
    }

    /// Sets on `base` every parameter this patch has.
    pub fn apply(&self, base: &mut HnswConfig) {
        if let Some(s) = self.space {
            base.space = s;
        }
        let ints = [
            (self.ef_construction, &mut base.ef_construction),
            (self.max_neighbors, &mut base.max_neighbors),
            (self.ef_search, &mut base.ef_search),
            (self.num_threads, &mut base.num_threads),
            (self.batch_size, &mut base.batch_size),
            (self.sync_threshold, &mut base.sync_threshold),
        ];
        for (v, slot) in ints {
            if let Some(v) = v {
                *slot = v;
            }
        }
        if let Some(v) = self.resize_factor {
            base.resize_factor = v;
        }
    }

    /// This patch, with `fallback`'s parameters where it has none.
    pub fn or(&self, fallback: &HnswPatch) -> HnswPatch {
        HnswPatch {
            space: self.space.or(fallback.space),
            ef_construction: self.ef_construction.or(fallback.ef_construction),
            max_neighbors: self.max_neighbors.or(fallback.max_neighbors),
            ef_search: self.ef_search.or(fallback.ef_search),
            num_threads: self.num_threads.or(fallback.num_threads),
            batch_size: self.batch_size.or(fallback.batch_size),
            sync_threshold: self.sync_threshold.or(fallback.sync_threshold),
            resize_factor: self.resize_factor.or(fallback.resize_factor),
        }
    }

    /// The names of the parameters this patch sets, in field order.
    pub fn set_fields(&self) -> impl Iterator<Item = &'static str> {
        [
            ("space", self.space.is_some()),
            ("ef_construction", self.ef_construction.is_some()),
            ("max_neighbors", self.max_neighbors.is_some()),
            ("ef_search", self.ef_search.is_some()),
            ("num_threads", self.num_threads.is_some()),
            ("batch_size", self.batch_size.is_some()),
            ("sync_threshold", self.sync_threshold.is_some()),
            ("resize_factor", self.resize_factor.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
    }
}

/// A collection's configuration: its vector index parameters, the embedding function descriptor
/// the clients stored (opaque JSON, returned verbatim) and the schema (opaque JSON, owned by the
/// HTTP layer). Serialized as the store's configuration column (docs/format/sqlite.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CollectionConfiguration {
    pub hnsw: HnswConfig,
    #[serde(default)]
    pub embedding_function: Option<serde_json::Value>,
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_sets_only_what_it_has() {
        let mut c = HnswConfig::default();
        let p = HnswPatch {
            space: Some(Space::Ip),
            ef_search: Some(7),
            resize_factor: Some(2.0),
            ..HnswPatch::default()
        };
        p.apply(&mut c);
        let want = HnswConfig {
            space: Space::Ip,
            ef_search: 7,
            resize_factor: 2.0,
            ..HnswConfig::default()
        };
        assert_eq!(c, want);
        assert_eq!(
            p.set_fields().collect::<Vec<_>>(),
            ["space", "ef_search", "resize_factor"]
        );
        let merged = p.or(&HnswPatch::of(&HnswConfig::default()));
        assert_eq!(merged.ef_search, Some(7));
        assert_eq!(merged.max_neighbors, Some(16));
    }

    #[test]
    fn every_knob_is_range_checked() {
        assert_eq!(HnswConfig::default().check(), Ok(()));
        let huge = HnswConfig {
            max_neighbors: u64::MAX,
            ..HnswConfig::default()
        };
        assert!(matches!(
            huge.check(),
            Err(ConfigError::OutOfRange {
                knob: "max_neighbors",
                ..
            })
        ));
        assert_eq!(huge.graph_degree(), 2048, "stored values load clamped");
        for bad in [
            HnswConfig {
                ef_search: 0,
                ..HnswConfig::default()
            },
            HnswConfig {
                sync_threshold: 1,
                ..HnswConfig::default()
            },
            HnswConfig {
                resize_factor: f64::NAN,
                ..HnswConfig::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let one = HnswConfig {
            max_neighbors: 1,
            ..HnswConfig::default()
        };
        assert_eq!(one.check(), Ok(()));
        assert_eq!(one.graph_degree(), 2);
        // A patch is checked for what it sets only.
        let patch = HnswPatch {
            ef_search: Some(50),
            ..HnswPatch::default()
        };
        assert_eq!(patch.check(), Ok(()));
        let bad = HnswPatch {
            batch_size: Some(1),
            ..HnswPatch::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn spaces_parse_and_serialize_by_chroma_name() {
        for s in [Space::L2, Space::Cosine, Space::Ip] {
            assert_eq!(s.as_str().parse::<Space>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).expect("serializable"),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(
            "L2".parse::<Space>(),
            Err(UnknownSpace { name: "L2".into() })
        );
    }
}
