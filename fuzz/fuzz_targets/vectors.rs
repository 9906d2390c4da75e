//! The vector file reader and the index made from a graph and a vector file: a control byte, then
//! vector file bytes. The harness is `ochre_fuzzing::vectors` (crates/fuzzing), which `cargo test`
//! replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ochre_fuzzing::vectors(data));
