#!/usr/bin/env bash
# Dashboard benchmark (bench/dashboard.mjs): each view's time to show its data in headless
# Chromium on N pypi-minilm records, beside its main API call alone. Needs Debian's chromium
# (scripts/dashboard-test.sh installs it) and builds target/release/ochre unless OCHRE_BIN is set.
#
#   bench/dashboard.sh               # 100,000 records
#   bench/dashboard.sh --n 10000     # quick
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OCHRE_BIN:-}" ]; then
  cargo build --release -p ochre-cli >&2
  export OCHRE_BIN=$PWD/target/release/ochre
fi
(cd tests/dashboard && npm ci --no-audit --no-fund)
export OCHRE_DATASET=${OCHRE_DATASET:-$PWD/../shared/datasets/pypi-minilm}
exec node bench/dashboard.mjs "$@"
