//! Whole requests through the server's router to an ephemeral database: a byte picking the route,
//! then the JSON body; no answer may be a 5xx.
//! The harness is `ochre_fuzzing::routes` (crates/fuzzing), which `cargo test` replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ochre_fuzzing::routes(data));
