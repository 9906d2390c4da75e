#!/usr/bin/env bash
# The test command (README "Test"). CI runs exactly this via .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
