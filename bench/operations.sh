#!/usr/bin/env bash
# Operations benchmark: import of a Chroma directory vs re-adding through chromadb's client,
# export/import throughput, online snapshot time and write stall (bench/operations.py).
#
#   bench/operations.sh              # 100,000 records
#   bench/operations.sh --n 10000    # quick
#
# Uses the venv of bench/python_inprocess.sh ($OCHRE_BENCH_VENV, default .venv-bench-python,
# created with chromadb==1.5.9 and numpy on first use) and target/release/ochre (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OCHRE_BENCH_VENV:-.venv-bench-python}
if ! "$venv/bin/python" -c 'import chromadb, numpy; assert chromadb.__version__ == "1.5.9"' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==1.5.9" numpy psutil >&2
fi
cargo build --release -p ochre-cli >&2
exec "$venv/bin/python" bench/operations.py "$@"
