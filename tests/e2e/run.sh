#!/usr/bin/env bash
# End-to-end tests: the official chromadb Python client against `ochre run`.
# Uses the environment of scripts/python-env.sh (chromadb 1.5.9 from PyPI); expects target/release/ochre
# (override with OCHRE_BIN).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=$(scripts/python-env.sh)
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
exec "$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"
