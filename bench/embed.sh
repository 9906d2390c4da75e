#!/usr/bin/env bash
# Local embeddings: fidelity, texts/s against sentence-transformers (torch, CPU), and a folder of
# text files through `ochre ingest` against sentence-transformers + chromadb (bench/embed.py says
# what is measured). Prints markdown tables.
#
#   bench/embed.sh --files 1000      # quick
#   bench/embed.sh                   # 2,000 texts, 10,000 files
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/python-env.sh embed)
model=$(scripts/model-dir.sh embed)
if [ -z "${OCHRE_BIN:-}" ]; then
  cargo build --release -q -p ochre-cli
  OCHRE_BIN=$PWD/target/release/ochre
fi
export ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1
exec "$venv/bin/python" bench/embed.py --ochre "$OCHRE_BIN" --model "$model" "$@"
