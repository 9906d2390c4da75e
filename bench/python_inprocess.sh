#!/usr/bin/env bash
# In-process benchmark: chromadb.PersistentClient 1.5.9 vs ochre.PersistentClient (python/), on
# the pypi-minilm data, each implementation in its own fresh subprocesses (bench/python_inprocess.py).
#
#   bench/python_inprocess.sh --n 10000                  # quick (a minute or two)
#   bench/python_inprocess.sh                            # headline: 100,000 records
#   bench/python_inprocess.sh --impl chromadb --n 10000  # one implementation
#   bench/python_inprocess.sh --help                     # all options
#
# The venv is $OCHRE_BENCH_VENV (default .venv-bench-python, created on first use with
# chromadb==1.5.9, numpy, psutil and maturin from PyPI). The `ochre` package must be importable
# in it when --impl includes ochre (the default): build it with
#   (cd python && "$venv/bin/maturin" develop --release)
# or set OCHRE_BENCH_BUILD=1 to have this script do that first. Reads ../shared/datasets/pypi-minilm
# (env OCHRE_DATASET or --dataset). Prints a Markdown table; writes nothing into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OCHRE_BENCH_VENV:-.venv-bench-python}
if ! "$venv/bin/python" -c 'import chromadb, numpy, psutil; assert chromadb.__version__ == "1.5.9"' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==1.5.9" numpy psutil "maturin>=1.7,<2" >&2
fi
venv=$(cd "$venv" && pwd)
impls=chromadb,ochre
prev=
for a in "$@"; do
  case $a in --impl=*) impls=${a#--impl=} ;; -h|--help) impls= ;; esac
  [ "$prev" = --impl ] && impls=$a
  prev=$a
done
if [[ ",$impls," == *",ochre,"* ]]; then
  if [ "${OCHRE_BENCH_BUILD:-0}" = 1 ]; then
    (cd python && VIRTUAL_ENV=$venv "$venv/bin/maturin" develop --release >&2) \
      || { echo "building the ochre package failed" >&2; exit 1; }
  fi
  if ! "$venv/bin/python" -c 'import ochre; ochre.PersistentClient' 2>/dev/null; then
    echo "the ochre package is not importable in $venv: build it with" >&2
    echo "  (cd python && $venv/bin/maturin develop --release)   or OCHRE_BENCH_BUILD=1 $0 $*" >&2
    echo "or run the chromadb half alone: $0 --impl chromadb $*" >&2
    exit 1
  fi
fi
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
export OCHRE_BENCH_COMMAND="bench/python_inprocess.sh${*:+ $*}"
exec "$venv/bin/python" bench/python_inprocess.py "$@"
