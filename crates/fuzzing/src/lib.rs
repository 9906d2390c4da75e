//! The fuzz harnesses. Each function takes the raw bytes of one fuzz input, feeds them to one
//! family of decoders the way a request or a file would reach them, and checks what the decoders
//! promise: no panic, a client's mistake is a 4xx and never a 5xx, and what is accepted survives
//! the round trip Ochre puts it through (stored, read back, re-serialized). [`routes`] sends
//! whole requests through the router to an ephemeral database, so the engine's answers are
//! checked too.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` call these functions and nothing else; the test
//! `tests/corpus.rs` replays every file of the checked-in corpus (`fuzz/corpus/`) and every
//! reproducer of a fixed bug (`fuzz/regressions/`) through them, so `cargo test` catches a
//! regression without the fuzzer.
//!
//! Not an API: the functions panic (that is how a fuzzer learns of a bug).

mod checkpoint;
mod filter;
mod requests;
mod routes;
mod store_rows;
mod vectors;

pub use checkpoint::{checkpoint, vector_of};
pub use filter::filter;
pub use requests::requests;
pub use routes::routes;
pub use store_rows::store_rows;
pub use vectors::vectors;

/// What a target runs on one input.
pub type Harness = fn(&[u8]);

/// The targets, by the name of their fuzz target and corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("filter", filter),
    ("requests", requests),
    ("checkpoint", checkpoint),
    ("store_rows", store_rows),
    ("routes", routes),
    ("vectors", vectors),
];
