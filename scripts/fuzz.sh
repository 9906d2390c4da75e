#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every target in fuzz/, each for a bounded
# time: `scripts/fuzz.sh [SECONDS] [TARGET...]` (SECONDS also from FUZZ_SECONDS; default 30 each,
# what CI runs; all targets by default). Installs cargo-fuzz if it is missing, builds every target,
# runs each from the checked-in seeds (fuzz/corpus/<target>/, read only: what a run finds goes to a
# scratch corpus under the target directory, kept between runs), and fails if any target crashed,
# hung, ran out of memory or leaked; the reproducers are listed at the end (fuzz/artifacts/<target>/).
# Works on the stable toolchain: cargo-fuzz's nightly flags are allowed with RUSTC_BOOTSTRAP=1.
# See fuzz/README.md for long local runs.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-30}"
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
all_targets=(filter requests checkpoint store_rows routes vectors)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("${all_targets[@]}")
fi

if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation); stable rustc takes them with
# RUSTC_BOOTSTRAP=1, and a nightly does anyway.
export RUSTC_BOOTSTRAP=1
# Release code with debug assertions (integer overflow panics, as in tests); AddressSanitizer on,
# for the unsafe distance kernels and buffers.
build_flags=(-O --debug-assertions)
target_dir="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
scratch="$target_dir/fuzz-corpus"

cd fuzz
echo "== building ${targets[*]}"
if [[ ${#targets[@]} -eq ${#all_targets[@]} ]]; then
    cargo fuzz build "${build_flags[@]}"
else
    for t in "${targets[@]}"; do
        cargo fuzz build "${build_flags[@]}" "$t"
    done
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    case "$t" in
        filter | requests | store_rows | routes) opts+=(-dict=dicts/json.dict) ;;
    esac
    log="$target_dir/fuzz-$t.log"
    echo "== $t: ${seconds}s (log: $log)"
    if cargo fuzz run "${build_flags[@]}" "$t" "$scratch/$t" "corpus/$t" -- "${opts[@]}" >"$log" 2>&1; then
        grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    else
        echo "!! $t failed:"
        grep -E -A12 '^(==[0-9]+==|thread .* panicked)' "$log" | head -n 40 || tail -n 40 "$log"
        failed+=("$t")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "!! fuzzing found failures in: ${failed[*]}. Reproducers (replay one with"
    echo "!!   RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} <target> <file>, in fuzz/):"
    for t in "${failed[@]}"; do
        ls -1 "$PWD/artifacts/$t"/* 2>/dev/null | sed 's/^/!!   /'
    done
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
