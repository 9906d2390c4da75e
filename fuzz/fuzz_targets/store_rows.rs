//! The store's column decoders: a byte picking the column, then its bytes.
//! The harness is `ochre_fuzzing::store_rows` (crates/fuzzing), which `cargo test` replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ochre_fuzzing::store_rows(data));
