//! The request decoders: arbitrary bytes as the body of every route, with the route's own checks.
//! The harness is `ochre_fuzzing::requests` (crates/fuzzing), which `cargo test` replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ochre_fuzzing::requests(data));
