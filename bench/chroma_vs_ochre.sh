#!/usr/bin/env bash
# End-to-end benchmark, Chroma 1.5.9 vs Ochre over HTTP (+ Ochre embedded), on the pypi-minilm data.
#
#   bench/chroma_vs_ochre.sh --scale 10000   # quick (a few minutes)
#   bench/chroma_vs_ochre.sh                 # headline: 100,000 records
#   bench/chroma_vs_ochre.sh --help          # all options (--no-write, --passes, --keep, ...)
#
# Uses the venv of scripts/python-env.sh (chromadb 1.5.9, numpy, psutil from PyPI), builds
# `ochre` and the `embedded` benchmark in release (skipped when OCHRE_BIN / OCHRE_EMBEDDED_BIN
# name binaries), reads ../shared/datasets/pypi-minilm (env OCHRE_DATASET), prints a Markdown
# table and appends it to docs/benchmarks.md unless --no-write. Needs no network after setup.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/python-env.sh)
if [ -z "${OCHRE_BIN:-}" ]; then
  cargo build --release -q -p ochre-cli
  export OCHRE_BIN=$PWD/target/release/ochre
fi
if [ -z "${OCHRE_EMBEDDED_BIN:-}" ] && [[ " $* " != *" --no-embedded "* ]]; then
  cargo build --release -q -p ochre-bench --bin embedded
  export OCHRE_EMBEDDED_BIN=$PWD/target/release/embedded
fi
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
export OCHRE_BENCH_COMMAND="bench/chroma_vs_ochre.sh${*:+ $*}"
exec "$venv/bin/python" bench/chroma_vs_ochre.py "$@"
