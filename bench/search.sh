#!/usr/bin/env bash
# Search API benchmark over HTTP: BM25 (Chroma's chroma_bm25 weights), hybrid RRF and full-text
# filters on Ochre, Chroma 1.5.9's where_document path beside it (bench/search.py says what is
# measured). Appends its table to docs/benchmarks.md unless --no-write.
#
#   bench/search.sh --scale 10000     # quick
#   bench/search.sh                   # 100,000 records
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/python-env.sh)
if [ -z "${OCHRE_BIN:-}" ]; then
  cargo build --release -q -p ochre-cli
  export OCHRE_BIN=$PWD/target/release/ochre
fi
if [ -z "${OCHRE_SEARCH_BIN:-}" ]; then
  cargo build --release -q -p ochre-bench --bin search_api
  export OCHRE_SEARCH_BIN=$PWD/target/release/search_api
fi
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
exec "$venv/bin/python" bench/search.py "$@"
