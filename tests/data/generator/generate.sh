#!/usr/bin/env bash
# Regenerates one golden fixture under tests/data with the engine of an older commit.
#
#   tests/data/generator/generate.sh <commit> <fixture-name> <store_format> <checkpoint_format>
#
# e.g. tests/data/generator/generate.sh 05fa20c store_v1_checkpoint_v1 1 1
#
# Run by hand, never in CI (it builds the old commit). It adds a detached scratch worktree of
# <commit> next to this repository (../old-<commit>), copies fixture_gen.rs into it as an example
# of the engine crate, runs it (offline, sharing $CARGO_TARGET_DIR if set), and replaces
# tests/data/<fixture-name>/ with the result. The scratch worktree is removed afterwards.
#
# What is kept: db/ochre.sqlite3 (the engine closed it cleanly, so SQLite checkpointed its WAL
# into the file and deleted ochre.sqlite3-wal and -shm; the script fails if they are still there)
# and db/index/*.hnsw (with *.vec, vector files, from store format 4 on). What is dropped: db/LOCK, whose content is only the writer's pid
# (docs/format/lock.md); opening creates it.
set -euo pipefail

if [ $# -ne 4 ]; then
    sed -n '4,6p' "$0" >&2
    exit 2
fi
commit=$1
name=$2
store_format=$3
checkpoint_format=$4

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
sha=$(git -C "$repo" rev-parse --short "$commit^{commit}")
scratch=$(dirname "$repo")/old-$sha
out=$(mktemp -d)/fixture

git -C "$repo" worktree add --detach "$scratch" "$sha"
cleanup() { git -C "$repo" worktree remove --force "$scratch"; }
trap cleanup EXIT

mkdir -p "$scratch/crates/engine/examples"
cp "$repo/tests/data/generator/fixture_gen.rs" "$scratch/crates/engine/examples/fixture_gen.rs"
(cd "$scratch" && cargo run --offline --quiet -p ochre --example fixture_gen -- \
    "$out" "$sha" "$store_format" "$checkpoint_format")
# The old crates have the same package ids as today's and newer source mtimes, so a shared target
# dir would otherwise keep serving their artifacts to builds of the current tree.
(cd "$scratch" && cargo clean --offline --quiet -p ochre -p ochre-types -p ochre-index -p ochre-storage)

rm -f "$out/db/LOCK"
for f in "$out"/db/ochre.sqlite3-wal "$out"/db/ochre.sqlite3-shm "$out"/db/index/*.tmp; do
    if [ -e "$f" ]; then
        echo "unexpected $f: the database was not closed cleanly" >&2
        exit 1
    fi
done

rm -rf "${repo:?}/tests/data/$name"
cp -r "$out" "$repo/tests/data/$name"
rm -rf "$(dirname "$out")"
du -ab "$repo/tests/data/$name"
