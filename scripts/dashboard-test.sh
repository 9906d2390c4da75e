#!/usr/bin/env bash
# End-to-end tests of the dashboard in headless Chromium (tests/dashboard): Debian's chromium and
# playwright-core from npm (pinned in tests/dashboard/package-lock.json; Playwright's own browser
# download is never used), against `ochre run` servers the tests start on loopback.
#
#   scripts/dashboard-test.sh                 # builds ochre unless OCHRE_BIN names a binary
#   SCREENSHOTS=docs/dashboard scripts/dashboard-test.sh   # refreshes the docs' screenshots
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium > /dev/null; then
  echo "installing Debian's chromium" >&2
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq > /dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends chromium > /dev/null
fi
if [ -z "${OCHRE_BIN:-}" ]; then
  cargo build --release -p ochre-cli
  OCHRE_BIN=target/release/ochre
fi
OCHRE_BIN=$(realpath "$OCHRE_BIN")
# With the model the server embeds the test's documents and text queries (the dense text search
# is then tested too); scripts/test.sh always provides it.
OCHRE_TEST_MODEL_DIR=${OCHRE_TEST_MODEL_DIR:-}
export OCHRE_BIN OCHRE_TEST_MODEL_DIR CHROMIUM=${CHROMIUM:-$(command -v chromium)}
if [ -n "${SCREENSHOTS:-}" ]; then
  mkdir -p "$SCREENSHOTS"
  SCREENSHOTS=$(cd "$SCREENSHOTS" && pwd)
  export SCREENSHOTS
fi
cd tests/dashboard
npm ci --no-audit --no-fund
exec npm test --silent
