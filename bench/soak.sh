#!/usr/bin/env bash
# Soak benchmark, "the life of a real collection": Chroma 1.5.9 vs Ochre over HTTP, side by side:
# ingest, metadata-only update rounds, an upsert with new vectors, delete-all, idle, restart;
# RSS, data-dir size, query latency and recall sampled along the way.
#
#   bench/soak.sh --records 2000 --rounds 2 --queries 50 --settle 5   # smoke (a few minutes)
#   bench/soak.sh                                                     # 20,000 records, 5 rounds
#   bench/soak.sh --only ochre                                        # one side
#   bench/soak.sh --help                                              # all options (--write, --keep, ...)
#
# Uses the venv of scripts/python-env.sh (chromadb 1.5.9, numpy, psutil from PyPI), builds
# `ochre` in release (skipped when OCHRE_BIN names a binary), reads ../shared/datasets/pypi-minilm
# (env OCHRE_DATASET), prints a Markdown table; --write appends it to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/python-env.sh)
if [ -z "${OCHRE_BIN:-}" ]; then
  cargo build --release -q -p ochre-cli
  export OCHRE_BIN=$PWD/target/release/ochre
fi
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
export OCHRE_BENCH_COMMAND="bench/soak.sh${*:+ $*}"
exec "$venv/bin/python" bench/soak.py "$@"
