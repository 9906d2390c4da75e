#!/usr/bin/env bash
# Creates (once) the Python environment the end-to-end and conformance tests use: the official
# chromadb 1.5.9 client with the needs of Chroma's own test suite, from PyPI. Prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OCHRE_TEST_VENV:-.venv-test}
if ! "$venv/bin/python" -c 'import chromadb, hypothesis, pytest_asyncio, hnswlib, fastapi, psutil, numpy; assert chromadb.__version__ == "1.5.9"' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==1.5.9" "pytest<8.4" "pytest-asyncio<1" \
    hypothesis psutil chroma-hnswlib fastapi opentelemetry-instrumentation-fastapi numpy >&2
fi
echo "$PWD/$venv"
