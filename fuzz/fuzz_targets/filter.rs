//! The filter parser: arbitrary bytes as JSON, parsed as `where` and `where_document`, evaluated.
//! The harness is `ochre_fuzzing::filter` (crates/fuzzing), which `cargo test` replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ochre_fuzzing::filter(data));
