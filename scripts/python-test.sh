#!/usr/bin/env bash
# The Python package's tests: builds the wheel of python/ from this checkout (maturin, release by
# default), installs it into a fresh venv beside chromadb 1.5.9 and the integrations (LangChain,
# LlamaIndex), and runs python/tests with pytest. Extra arguments go to pytest.
#
#   scripts/python-test.sh                    # everything
#   scripts/python-test.sh -k parity          # some tests
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh venv each run (OCHRE_PYTHON_VENV names another place; it is removed and made anew).
venv=${OCHRE_PYTHON_VENV:-$PWD/.venv-python}
case $venv in
  "$PWD/.venv-python") rm -rf "$venv" ;;
  *) [ ! -e "$venv" ] || { echo "$venv exists: OCHRE_PYTHON_VENV must name a new directory" >&2; exit 2; } ;;
esac
python3 -m venv "$venv"
# The integrations pinned to the versions the tests were written against.
"$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==1.5.9" "pytest<8.4" numpy \
  "maturin>=1.7,<2" "langchain-chroma==1.1.0" "langchain-core==1.8.3" "llama-index-core==0.14.25" \
  "llama-index-vector-stores-chroma==0.6.0"
# The wheel, built as a user's `pip install ./python` builds it (abi3, release), into target/wheels;
# OCHRE_WHEEL_PROFILE names another Cargo profile (the test command uses `dev`, whose settings
# and dependencies `cargo test` shares; not `test`, which maturin would build as a test harness).
rm -rf target/wheels
"$venv/bin/maturin" build --profile "${OCHRE_WHEEL_PROFILE:-release}" --quiet -m python/Cargo.toml \
  --out target/wheels
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps target/wheels/ochre-*.whl
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
cd python/tests
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
