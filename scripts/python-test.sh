#!/usr/bin/env bash
# The Python package's tests: builds the wheel of python/ from this checkout (maturin, release),
# installs it into a fresh venv beside chromadb 1.5.9 and the integrations (LangChain,
# LlamaIndex), and runs python/tests with pytest. Extra arguments go to pytest.
#
#   scripts/python-test.sh                    # everything
#   scripts/python-test.sh -k parity          # some tests
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OCHRE_PYTHON_VENV:-$PWD/.venv-python}
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==1.5.9" "pytest<8.4" numpy \
  "maturin>=1.7,<2" langchain-chroma langchain-core llama-index-core llama-index-vector-stores-chroma
# The wheel, built as a user's `pip install ./python` builds it (abi3, release), into target/wheels.
rm -rf target/wheels
"$venv/bin/maturin" build --release --quiet -m python/Cargo.toml --out target/wheels
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps target/wheels/ochre-*.whl
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
cd python/tests
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
