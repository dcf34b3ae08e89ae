#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and fails on the first crash of any of them.
#
#   crates/fuzz/run.sh                  # each target for 20 s (FUZZ_SECONDS to change)
#   FUZZ_SECONDS=300 crates/fuzz/run.sh parser lower
#
# Works from any directory, on the stable toolchain: cargo-fuzz passes nightly-only
# flags (-Zsanitizer, sancov passes), which RUSTC_BOOTSTRAP=1 unlocks. libFuzzer itself
# is C++ built by libfuzzer-sys with the system C++ compiler (g++ is enough; no clang).
#
# The sanitizer is off by default (FUZZ_SANITIZER=address to turn ASan on): our crates
# deny unsafe code, so ASan finds little there and costs about 5x the runs; panics,
# overflow checks, debug assertions, timeouts and OOM are caught either way.
#
# Each target starts from seeds/<target> (read only) and corpus/<target> (new inputs,
# gitignored). A crash leaves its input in artifacts/<target>/ and its report in
# target/fuzz-logs/<target>.log; the script prints the report, goes on with the other
# targets and exits 1.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
SANITIZER="${FUZZ_SANITIZER:-none}"
# A single input slower than this is a failure (a hang), not a stall of the whole run.
TIMEOUT_PER_INPUT="${FUZZ_TIMEOUT:-10}"

export RUSTC_BOOTSTRAP=1
# A panic's report names where it happened (libFuzzer's own stack trace needs ASan).
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# --target-dir keeps the build in crates/fuzz/target whatever CARGO_TARGET_DIR says,
# where cargo-fuzz looks for the binaries.
cargo_fuzz=(--fuzz-dir "$FUZZ_DIR" --target-dir "$FUZZ_DIR/target" --sanitizer "$SANITIZER")

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
fi

start=$(date +%s)
cargo fuzz build "${cargo_fuzz[@]}"
echo "fuzz: built the targets in $(($(date +%s) - start)) s (sanitizer: $SANITIZER)"

logs="$FUZZ_DIR/target/fuzz-logs"
mkdir -p "$logs"
failed=()
for target in "${targets[@]}"; do
    corpus="$FUZZ_DIR/corpus/$target"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [[ -d "$FUZZ_DIR/seeds/$target" ]] && dirs+=("$FUZZ_DIR/seeds/$target")
    log="$logs/$target.log"

    if cargo fuzz run "${cargo_fuzz[@]}" "$target" "${dirs[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT_PER_INPUT" \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        echo "fuzz $target: ${runs:-?} runs, no crash"
    else
        failed+=("$target")
        echo "fuzz $target: FAILED (log: $log)"
        # The report: panic message, backtrace, the failing input and how to reproduce it.
        report=$(awk '/panicked at|ERROR: libFuzzer|==[0-9]+==ERROR/ { on = 1 }
                      /^Minimize test case with/ { exit }
                      on' "$log")
        if [[ -n "$report" ]]; then echo "$report" >&2; else tail -n 60 "$log" >&2; fi
        echo "fuzz $target: reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $FUZZ_DIR" \
            "--sanitizer $SANITIZER $target $FUZZ_DIR/artifacts/$target/<file>" >&2
    fi
done

echo "fuzz: done in $(($(date +%s) - start)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs in $FUZZ_DIR/artifacts/)" >&2
    exit 1
fi
