#!/usr/bin/env bash
# Durability soak: ROUNDS rounds (default 1,000) of the crash test. In each round a child process
# writes batches (adds, updates, deletes) to a persistent database and is killed with SIGKILL at
# a random moment; the database is reopened and every batch the child had acknowledged must be
# there, whole, and nothing half-applied. One run of the test is 24 rounds on a fresh directory
# (as in every test run); this repeats it until ROUNDS rounds have run.
#
#   scripts/kill9.sh          # 1,000 rounds (about 7 minutes on 2 cores)
#   scripts/kill9.sh 200
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1000}
per_run=24
runs=$(( (rounds + per_run - 1) / per_run ))
start=$(date +%s)
cargo test -q -p ochre --test crash --no-run
for i in $(seq 1 "$runs"); do
  cargo test -q -p ochre --test crash acknowledged_batches_survive_sigkill -- --exact >/dev/null
  printf '\rkill -9 rounds: %d of %d' $(( i * per_run )) $(( runs * per_run )) >&2
done
echo >&2
echo "kill -9 rounds: $(( runs * per_run )), every acknowledged batch intact after each, $(( $(date +%s) - start )) s"
