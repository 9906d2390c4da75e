//! The HNSW checkpoint reader and loader: a control byte, then checkpoint bytes.
//! The harness is `ochre_fuzzing::checkpoint` (crates/fuzzing), which `cargo test` replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ochre_fuzzing::checkpoint(data));
